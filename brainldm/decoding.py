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

from brainldm.ridge import BaseRidgeCV

__all__ = ["LatentDecoder", "TextDecoder", "reshape_targets"]


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
    progress : bool, default=False
        Show a progress bar over target batches.
    verbose : bool
        Deprecated alias of ``progress``.

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


class LatentDecoder(BaseRidgeCV):
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


class TextDecoder(BaseRidgeCV):
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
