"""Pearson correlation per column: how well each voxel's responses are predicted.

:func:`correlation_score` is the accuracy of voxelwise encoding models: the
Pearson r between the measured and the predicted responses of each voxel
(column) over the test images (rows). Columns are read in blocks, so that
memory-mapped inputs of a whole brain are never loaded whole, and each block
is computed in float64. A column that is constant in either input has no
correlation: its r is NaN, with a warning, never a silent 0.
"""

import numpy as np

from brainldm._warnings import warn

__all__ = ["column_correlations", "correlation_score", "warn_constant_columns"]

# Columns per block: 1,000 test images x 2,048 columns of float64 is 16 MB per input.
_BATCH = 2048


def _as_matrix(array, name):
    """A 2-D numpy view of the input (a 1-D one is one column); memmaps stay memmaps."""
    array = array if isinstance(array, np.ndarray) else np.asarray(array)
    if array.ndim not in (1, 2):
        raise ValueError(
            f"{name} must be 1-D or 2-D (n_samples, n_columns), got shape {array.shape}"
        )
    return array if array.ndim == 2 else array.reshape(-1, 1)


def _raise_non_finite(array, name):
    """Count and locate the NaN and infinite values of the whole input, and raise."""
    from brainldm._validation import check_finite  # loads torch: on the error path only

    if any(stride < 0 for stride in array.strides):
        array = np.ascontiguousarray(array)  # torch cannot view negative strides
    check_finite(array, name)


def column_correlations(y_true, y_pred):
    """Pearson r of each column of `y_true` with the same column of `y_pred`.

    The building block of :func:`correlation_score`, for inputs that fit in
    memory (one block of columns): it computes in float64, reports NaN for a
    column that is constant in either input, and warns about nothing.

    Parameters
    ----------
    y_true, y_pred : arrays of shape (n_samples, n_columns)

    Returns
    -------
    r : array of shape (n_columns,), float64

    Examples
    --------
    >>> import numpy as np
    >>> y_true = np.array([[1.0, 2.0], [2.0, 2.0], [3.0, 2.0]])
    >>> column_correlations(y_true, np.array([[1.0, 1.0], [3.0, 2.0], [2.0, 3.0]]))
    array([0.5, nan])
    """
    norms = []
    centred = []
    for array in (y_true, y_pred):
        block = np.asarray(array, dtype=np.float64)
        mean = block.mean(0)
        block = block - mean
        norm = np.sqrt(np.einsum("ij,ij->j", block, block))
        # A constant column leaves only round-off after centring.
        tiny = 10 * np.finfo(np.float64).eps * np.maximum(1.0, np.abs(mean)) * np.sqrt(len(block))
        norm[norm <= tiny] = np.nan
        norms.append(norm)
        centred.append(block)
    products = np.einsum("ij,ij->j", *centred)
    return np.clip(products / (norms[0] * norms[1]), -1.0, 1.0)


def warn_constant_columns(
    r, what="columns", remedy="leave them out of summaries", *, quantity="r", source=None
):
    """Warn, once, how many entries of `r` are NaN because their column is constant.

    Parameters
    ----------
    r : array of shape (n_columns,)
        Values per column, NaN where the column is constant, e.g. from
        :func:`column_correlations`.
    what : str, default="columns"
        What a column is, for the message (e.g. ``"voxels"``).
    remedy : str, default="leave them out of summaries"
        What to do about it, the end of the message.
    quantity : str, default="r"
        The name of the values, for the message.
    source : str, default=None
        Where the columns are constant; None: in the responses or the predictions.

    Examples
    --------
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     warn_constant_columns(np.array([0.5, np.nan]), "voxels")
    >>> print(caught[0].message)
    1 of 2 voxels are constant in the responses or the predictions (first: [1]), so their r is NaN, not 0; leave them out of summaries
    """
    constant = np.flatnonzero(np.isnan(r))
    if constant.size:
        source = source or "in the responses or the predictions"
        warn(
            f"{constant.size} of {len(r)} {what} are constant {source} (first: "
            f"{constant[:5].tolist()}), so their {quantity} is NaN, not 0; {remedy}"
        )


def correlation_score(y_true, y_pred, *, batch_size=_BATCH):
    """Pearson r between measured and predicted values, per column (voxel).

    Parameters
    ----------
    y_true : array of shape (n_samples, n_columns) or (n_samples,)
        Measured responses, e.g. test betas (a ``np.memmap`` is read in blocks
        of columns).
    y_pred : array of the same shape
        Predicted responses.
    batch_size : int, default=2048
        Columns read and computed together; bounds the memory used.

    Returns
    -------
    r : array of shape (n_columns,), float64
        NaN for a column constant in `y_true` or in `y_pred`. A 1-D input is
        one column.

    Raises
    ------
    ValueError
        If the shapes differ, there are fewer than 2 rows, or an input holds
        NaN or infinite values.

    Warns
    -----
    UserWarning
        When some columns are constant, saying how many and which.

    See Also
    --------
    brainldm.encoding.significance : p and FDR q values of these r.
    brainldm.encoding.VoxelwiseEncoder.score_voxels : r of an encoder's predictions.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y_true = rng.standard_normal((100, 3))
    >>> y_pred = y_true + rng.standard_normal((100, 3)) * [0.1, 1.0, 10.0]
    >>> correlation_score(y_true, y_pred).round(2)
    array([1.  , 0.75, 0.16])
    """
    true, pred = _as_matrix(y_true, "y_true"), _as_matrix(y_pred, "y_pred")
    if np.shape(true) != np.shape(pred):
        raise ValueError(
            f"y_true and y_pred must have the same shape, got {np.shape(y_true)} and "
            f"{np.shape(y_pred)}"
        )
    n_samples, n_columns = np.shape(true)
    if n_samples < 2:
        raise ValueError(f"a correlation needs at least 2 samples (rows), got {n_samples}")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    r = np.empty(n_columns)
    for start in range(0, n_columns, batch_size):
        columns = slice(start, start + batch_size)
        blocks = [np.asarray(true[:, columns]), np.asarray(pred[:, columns])]
        for block, array, name in zip(blocks, (true, pred), ("y_true", "y_pred"), strict=True):
            if not np.isfinite(block).all():
                _raise_non_finite(array, name)
        r[columns] = column_correlations(*blocks)
    warn_constant_columns(r)
    return r
