"""Decoders from fMRI activity to the latent diffusion model's ``z`` and ``c``.

:class:`LatentDecoder` predicts the image latent ``z`` (SD v1.4: 4 x 40 x 40 =
6,400 values) and :class:`TextDecoder` the text conditioning ``c`` (77 tokens x
768 = 59,136 values), each a ridge regression with an alpha per target chosen
by K-fold cross-validation (:func:`brainldm.ridge.solve_ridge_cv`). Targets are
flat, one column per value; :func:`reshape_targets` restores their shape.

Both take the whole betas matrix and select their own voxels (``voxels``), so
one matrix feeds both decoders in a scikit-learn ``Pipeline`` or
``GridSearchCV``.
"""

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from brainldm._backend import resolve_device
from brainldm.ridge import (
    DEFAULT_ALPHAS,
    _batches,
    _check_alphas,
    check_finite,
    cv_splits,
    solve_ridge_cv,
)

__all__ = ["LatentDecoder", "TextDecoder", "reshape_targets"]

_FLOAT_DTYPES = (np.float64, np.float32)
# Rows per block when computing column statistics, to bound temporaries.
_BLOCK = 4096


def reshape_targets(Y, shape):
    """Reshape flat targets ``(n_samples, prod(shape))`` to ``(n_samples, *shape)``.

    Parameters
    ----------
    Y : array of shape (n_samples, n_targets)
        Flat decoder outputs, e.g. ``LatentDecoder().fit(...).predict(X)``.
    shape : tuple of int
        Shape of one sample, e.g. ``(4, 40, 40)`` for SD v1.4's ``z`` or
        ``(77, 768)`` for its ``c``; take it from the model, never assume it.

    Returns
    -------
    array of shape ``(n_samples, *shape)``
        A view of `Y` when possible.

    Raises
    ------
    ValueError
        If the number of targets is not the product of `shape`.

    Examples
    --------
    >>> import numpy as np
    >>> reshape_targets(np.zeros((2, 6400)), (4, 40, 40)).shape
    (2, 4, 40, 40)
    >>> reshape_targets(np.zeros((3, 59136)), (77, 768)).shape
    (3, 77, 768)
    """
    Y = np.asarray(Y)
    shape = tuple(int(size) for size in shape)
    if Y.ndim != 2 or Y.shape[1] != int(np.prod(shape)):
        raise ValueError(
            f"cannot reshape targets of shape {Y.shape} to (n_samples, *{shape}): "
            f"expected (n_samples, {int(np.prod(shape))})"
        )
    return Y.reshape(len(Y), *shape)


def _voxel_indices(voxels, n_features):
    """Return the selected columns as sorted-as-given int64 indices, or raise."""
    if voxels is None:
        return None
    voxels = np.asarray(voxels)
    if voxels.dtype == bool:
        if voxels.shape != (n_features,):
            raise ValueError(
                f"voxels is a boolean mask of shape {voxels.shape} but X has {n_features} "
                f"columns: pass a mask of length {n_features} or column indices"
            )
        indices = np.flatnonzero(voxels)
    elif voxels.ndim == 1 and voxels.dtype.kind in "iu":
        indices = voxels.astype(np.int64)
        outside = indices[(indices < 0) | (indices >= n_features)]
        if outside.size:
            raise ValueError(
                f"voxels holds indices outside [0, {n_features}) (X has {n_features} "
                f"columns): {outside[:5].tolist()}"
            )
    else:
        raise ValueError(
            "voxels must be None, a boolean mask of length n_features or a 1-D array of "
            f"column indices, got dtype {voxels.dtype} and shape {voxels.shape}"
        )
    if indices.size == 0:
        raise ValueError("voxels selects no column of X: pass a mask with at least one True")
    return indices


def _column_stats(X):
    """Column means and standard deviations in float64, one block of rows at a time."""
    mean = X.sum(0, dtype=np.float64) / len(X)
    squares = np.zeros(X.shape[1])
    for start in range(0, len(X), _BLOCK):
        block = X[start : start + _BLOCK] - mean
        squares += np.einsum("ij,ij->j", block, block)
    scale = np.sqrt(squares / len(X))
    # Constant columns carry no information; leave them unscaled as StandardScaler does.
    scale[scale < 10 * np.finfo(np.float64).eps * np.maximum(1.0, np.abs(mean))] = 1.0
    return mean, scale


class _RidgeDecoder(RegressorMixin, BaseEstimator):
    """Ridge regression from fMRI to flat targets with a CV-chosen alpha per target."""

    def __init__(
        self,
        alphas=DEFAULT_ALPHAS,
        *,
        cv=5,
        voxels=None,
        standardize=True,
        fit_intercept=True,
        alpha_per_target=True,
        n_targets_batch=2048,
        device=None,
        verbose=False,
    ):
        self.alphas = alphas
        self.cv = cv
        self.voxels = voxels
        self.standardize = standardize
        self.fit_intercept = fit_intercept
        self.alpha_per_target = alpha_per_target
        self.n_targets_batch = n_targets_batch
        self.device = device
        self.verbose = verbose

    def fit(self, X, y, groups=None):
        """Fit the decoder.

        Parameters
        ----------
        X : array of shape (n_samples, n_features)
            fMRI activity, e.g. single-trial betas of all voxels.
        y : array of shape (n_samples, n_targets) or (n_samples,)
            Flat targets, e.g. ``z`` or ``c`` of the image each trial showed.
        groups : array of shape (n_samples,), default=None
            Group label of each row, e.g. the image index of each trial, so
            that cross-validation never splits the repetitions of an image.

        Returns
        -------
        self : object
            The fitted decoder.
        """
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None"
            )
        X = validate_data(self, X, reset=True, dtype=_FLOAT_DTYPES, ensure_all_finite=False)
        y = check_array(
            y, ensure_2d=False, dtype=_FLOAT_DTYPES, ensure_all_finite=False, input_name="y"
        )
        if y.ndim > 2:
            raise ValueError(f"y must be 1-D or 2-D, got shape {y.shape}: flatten each sample")
        if len(y) != len(X):
            raise ValueError(
                f"X and y must have the same number of rows, got {len(X)} and {len(y)}"
            )
        check_finite(X, "X")
        check_finite(y, "y")
        _check_alphas(self.alphas)
        _batches(1 if y.ndim == 1 else y.shape[1], self.n_targets_batch)
        resolve_device(self.device)
        indices = _voxel_indices(self.voxels, X.shape[1])
        splits = cv_splits(self.cv, len(X), groups)

        features = X if indices is None else X[:, indices]
        owned = indices is not None
        shift = np.zeros(features.shape[1])
        scale = np.ones(features.shape[1])
        if self.standardize:
            shift, scale = _column_stats(features)
            if owned:
                features -= shift.astype(features.dtype)
                features /= scale.astype(features.dtype)
            else:
                features = features - shift.astype(features.dtype)
                features /= scale.astype(features.dtype)
                owned = True
        result = solve_ridge_cv(
            features,
            y,
            self.alphas,
            cv=splits,
            fit_intercept=self.fit_intercept,
            alpha_per_target=self.alpha_per_target,
            n_targets_batch=self.n_targets_batch,
            device=self.device,
            copy_X=not owned,
            progress_bar=self.verbose,
            check_input=False,
        )
        coef = result.coef
        if self.standardize:
            # Fold the scaling into the weights, so that they apply to the raw betas.
            coef /= scale.astype(coef.dtype).reshape(-1, *([1] * (coef.ndim - 1)))
        self.coef_ = coef.T
        self.intercept_ = result.intercept - shift.astype(coef.dtype) @ coef
        if y.ndim == 1:
            self.intercept_ = float(self.intercept_)
            self.best_alphas_ = float(result.best_alphas)
            self.cv_scores_ = float(result.cv_scores)
        else:
            self.best_alphas_ = result.best_alphas
            self.cv_scores_ = result.cv_scores
        self.voxel_indices_ = np.arange(X.shape[1]) if indices is None else indices
        return self

    def predict(self, X):
        """Predict flat targets from fMRI activity.

        Parameters
        ----------
        X : array of shape (n_samples, n_features)
            fMRI activity with the columns seen in `fit`.

        Returns
        -------
        array of shape (n_samples, n_targets) or (n_samples,)
        """
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=_FLOAT_DTYPES, ensure_all_finite=False)
        check_finite(X, "X")
        if not np.array_equal(self.voxel_indices_, np.arange(X.shape[1])):
            X = X[:, self.voxel_indices_]
        return X @ self.coef_.T + self.intercept_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags


_PARAMETERS = """
    Parameters
    ----------
    alphas : sequence of float, default=DEFAULT_ALPHAS
        Positive regularisation strengths tried for every target (by default
        1e-2 to 1e8 by decades).
    cv : int or scikit-learn splitter, default=5
        Folds: an int gives unshuffled ``KFold``, or ``GroupKFold`` when
        ``groups`` are passed to `fit`; or any splitter.
    voxels : array of bool or int, default=None
        Columns of X used (an ROI mask of length n_features, or indices);
        None uses all.
    standardize : bool, default=True
        Z-score each voxel with the train mean and standard deviation, as the
        paper does. The scaling is folded into ``coef_``.
    fit_intercept : bool, default=True
        Fit an intercept per target (the original code fits none).
    alpha_per_target : bool, default=True
        Choose an alpha per target, else one shared by all targets.
    n_targets_batch : int or None, default=2048
        Targets solved together; bounds peak memory.
    device : str or None, default=None
        ``"cpu"``, ``"cuda"`` or None (CPU).
    verbose : bool, default=False
        Show a progress bar over target batches.

    Attributes
    ----------
    coef_ : array of shape (n_targets, n_voxels) or (n_voxels,)
        Weights on the raw columns ``voxel_indices_`` of X.
    intercept_ : array of shape (n_targets,) or float
    best_alphas_ : array of shape (n_targets,) or float
        Alpha chosen for each target.
    cv_scores_ : array of shape (n_targets,) or float
        Mean over folds of the negative MSE at the chosen alpha.
    voxel_indices_ : array of shape (n_voxels,)
        Columns of X the decoder reads.
    n_features_in_ : int
        Number of columns of X seen in `fit`.

    Notes
    -----
    ``LatentDecoder(**brainldm.ridge.TAKAGI2023)`` reproduces the original code
    (no intercept, unshuffled ``KFold(5)`` that ignores groups, alphas 1e-6 to
    1); the defaults fit an intercept and group folds by image when ``groups``
    are given, which avoids the leak of repeated images across folds.

    See Also
    --------
    brainldm.ridge.solve_ridge_cv : the solver.
    reshape_targets : restore the shape of the flat targets.
"""


class LatentDecoder(_RidgeDecoder):
    __doc__ = (
        """Decode the image latent ``z`` from fMRI with per-target ridge regression.

    Targets are flat: SD v1.4's ``z`` (4 x 40 x 40) is 6,400 columns; any
    number of targets, or a 1-D y, works.
"""
        + _PARAMETERS
        + """
    Examples
    --------
    >>> import numpy as np
    >>> from brainldm.decoding import LatentDecoder, reshape_targets
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((120, 30))
    >>> z = X[:, :10] @ rng.standard_normal((10, 2 * 3 * 3))
    >>> z += 3 * rng.standard_normal(z.shape)
    >>> decoder = LatentDecoder(voxels=np.arange(10))
    >>> decoder = decoder.fit(X, z, groups=np.repeat(np.arange(40), 3))
    >>> reshape_targets(decoder.predict(X[:4]), (2, 3, 3)).shape
    (4, 2, 3, 3)
    >>> decoder.coef_.shape
    (18, 10)
    >>> decoder.best_alphas_[:3]
    array([10.,  1., 10.])
    """
    )


class TextDecoder(_RidgeDecoder):
    __doc__ = (
        """Decode the text conditioning ``c`` from fMRI with per-target ridge regression.

    Targets are flat: SD v1.4's ``c`` (77 tokens x 768) is 59,136 columns.
    At NSD scale (24,980 trials x 7,000 voxels, float32) ``y`` is 5.5 GiB and
    ``coef_`` 1.5 GiB; neither is copied whole, and targets are solved in
    batches of `n_targets_batch`: the whole fit peaks at about 11 GiB (see
    ``benchmarks/ridge.py nsd``).
"""
        + _PARAMETERS
        + """
    Examples
    --------
    >>> import numpy as np
    >>> from brainldm.decoding import TextDecoder, reshape_targets
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((100, 20)).astype(np.float32)
    >>> c = X @ rng.standard_normal((20, 4 * 8)) + 3 * rng.standard_normal((100, 4 * 8))
    >>> decoder = TextDecoder(n_targets_batch=16).fit(X, c.astype(np.float32))
    >>> reshape_targets(decoder.predict(X[:2]), (4, 8)).shape
    (2, 4, 8)
    >>> decoder.coef_.dtype
    dtype('float32')
    """
    )
