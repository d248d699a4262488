"""FeatureReducer: z-score features on the training rows, then reduce them by PCA.

The encoding models' reduction (Takagi & Nishimoto reduce every feature space to
6,400 components): one scikit-learn transformer, used by
:class:`~brainldm.encoding.VoxelwiseEncoder`,
:class:`~brainldm.encoding.BandedVariancePartitioner` and the four encoding
analyses. Features too large for memory (e.g. a U-Net layer pooled on a fine grid)
are reduced by an ``IncrementalPCA`` over batches of rows.
"""

from numbers import Integral

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.decomposition import PCA, IncrementalPCA
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted, validate_data
from tqdm.auto import tqdm

from brainldm._validation import Interval, Options, validate_params
from brainldm._warnings import warn
from brainldm.ridge import standardize_columns

__all__ = ["FeatureReducer"]

# PCA's random_state, so that a randomized decomposition is the same on every fit.
_PCA_SEED = 0
# With incremental="auto", rows to fit larger than this (bytes, float32) go through
# IncrementalPCA in batches of rows.
_PCA_IN_MEMORY = 2 * 1024**3
_MIN_BATCH = 2048


def _first_rows(groups, n_samples):
    """Indices of the first row of each group, in row order (all rows without groups)."""
    if groups is None:
        return np.arange(n_samples)
    _, first = np.unique(np.asarray(groups), return_index=True)
    return np.sort(first)


class FeatureReducer(TransformerMixin, BaseEstimator):
    """Z-score each feature on the training rows, then a PCA fitted on the training images.

    Each column is z-scored with the mean and standard deviation of all
    training rows (statistics in float64; constant columns centred, left
    unscaled, as ``StandardScaler`` leaves them), then a PCA without whitening
    is fitted on the first row of each group passed to `fit` (an image's
    trials share its features, so that row is the image).

    Parameters
    ----------
    n_components : int or None, default=6400
        Components kept (the paper's 6,400), capped with a warning at the
        number of training images and of features; None skips the PCA.
    standardize : bool, default=True
        Z-score the columns before the PCA.
    incremental : bool or "auto", default="auto"
        Fit an :class:`~sklearn.decomposition.IncrementalPCA` over batches of
        rows instead of a :class:`~sklearn.decomposition.PCA` on all of them;
        "auto" does so when the rows to fit pass 2 GiB in float32. X may then
        be a ``np.memmap``: it is read, z-scored and transformed one batch of
        rows at a time.
    batch_size : int or None, default=None
        Rows per batch of the incremental path; None is the larger of the
        components kept and 2,048.
    progress : bool, default=False
        Show a progress bar over the batches of the incremental fit.

    Attributes
    ----------
    mean_, scale_ : arrays of shape (n_features,), float64, or None
        The z-scoring (``(X - mean_) / scale_``); None when ``standardize`` is False.
    pca_ : PCA, IncrementalPCA or None
        The fitted decomposition; None when ``n_components`` is None.
    n_components_ : int
        Columns of the output (the features when the PCA is skipped).
    n_features_in_ : int
        Number of features seen in `fit`.

    Notes
    -----
    The in-memory PCA is scikit-learn's with ``svd_solver="auto"`` and
    ``random_state=0``: randomized, and much faster, when ``n_components`` is
    below 80% of the smaller side of data larger than 500 x 500, else exact.
    The incremental path's components agree with it up to the sign of each
    component and the precision of the decomposition.

    See Also
    --------
    brainldm.encoding.VoxelwiseEncoder : reduces its features with it.

    Examples
    --------
    >>> import numpy as np
    >>> from brainldm.features import FeatureReducer
    >>> X = np.random.default_rng(0).standard_normal((30, 5))
    >>> images = np.repeat(np.arange(10), 3)  # 3 trials per image
    >>> reducer = FeatureReducer(n_components=2).fit(X, groups=images)
    >>> reducer.transform(X).shape, reducer.pca_.n_samples_
    ((30, 2), 10)
    >>> FeatureReducer(n_components=None).fit_transform(np.arange(12.0).reshape(6, 2))[:2].round(3)
    array([[-1.464, -1.464],
           [-0.878, -0.878]])
    """

    _parameter_constraints = {
        "n_components": [Interval(Integral, 1, None), None],
        "standardize": ["boolean"],
        "incremental": ["boolean", Options(("auto",))],
        "batch_size": [Interval(Integral, 1, None), None],
        "progress": ["boolean"],
    }

    def __init__(
        self,
        n_components=6400,
        *,
        standardize=True,
        incremental="auto",
        batch_size=None,
        progress=False,
    ):
        self.n_components = n_components
        self.standardize = standardize
        self.incremental = incremental
        self.batch_size = batch_size
        self.progress = progress

    def fit(self, X, y=None, groups=None):
        """Learn the z-scoring on every row and the PCA on one row per group.

        Parameters
        ----------
        X : array of shape (n_samples, n_features), float32 or float64
            Training features, finite.
        y : None
            Ignored.
        groups : array of shape (n_samples,), default=None
            The image of each row; None fits the PCA on every row.

        Returns
        -------
        self : object

        Warns
        -----
        UserWarning
            When ``n_components`` exceeds what the data allow.
        """
        self._fit(X, groups)
        return self

    def fit_transform(self, X, y=None, groups=None):
        """Fit, then reduce the training rows (as `transform` does).

        Parameters
        ----------
        X : array of shape (n_samples, n_features)
        y : None
            Ignored.
        groups : array of shape (n_samples,), default=None

        Returns
        -------
        array of shape (n_samples, ``n_components_``)
        """
        return self._fit(X, groups)

    def _fit(self, X, groups):
        """Fit; return the reduced training rows (computed on the way when in memory)."""
        X = validate_data(self, X, dtype=(np.float64, np.float32), copy=False)
        validate_params(self)
        rows = _first_rows(groups, len(X))
        kept = None if self.n_components is None else self._kept(rows, X.shape[1])
        if self.incremental == "auto":
            incremental = kept is not None and len(rows) * X.shape[1] * 4 > _PCA_IN_MEMORY
        else:
            incremental = bool(self.incremental) and kept is not None
        self.pca_ = None
        if incremental:
            self._fit_incremental(X, rows, kept)
            return self.transform(X)
        features = X
        self.mean_ = self.scale_ = None
        if self.standardize:
            features, self.mean_, self.scale_ = standardize_columns(X)
        if kept is not None:
            self.pca_ = PCA(kept, svd_solver="auto", random_state=_PCA_SEED).fit(features[rows])
            features = self.pca_.transform(features)
        self.n_components_ = features.shape[1]
        return features

    def _kept(self, rows, n_features):
        kept = min(self.n_components, len(rows), n_features)
        if kept < self.n_components:
            warn(
                f"n_components={self.n_components} is more than the training data allow "
                f"({len(rows)} images, {n_features} features): keeping {kept}"
            )
        return kept

    def _batches(self, n_rows):
        size = self.batch_size or max(self.n_components_, _MIN_BATCH)
        return range(0, n_rows, size), size

    def _fit_incremental(self, X, rows, kept):
        """The z-scoring from every row, then an IncrementalPCA over batches of ``rows``."""
        self.mean_ = self.scale_ = None
        self.n_components_ = kept
        starts, size = self._batches(len(rows))
        if self.standardize:
            scaler = StandardScaler()
            for start in range(0, len(X), size):
                scaler.partial_fit(X[start : start + size])
            self.mean_, self.scale_ = scaler.mean_, scaler.scale_
        self.pca_ = IncrementalPCA(kept, batch_size=size)
        for start in tqdm(starts, disable=not self.progress, desc="PCA"):
            self.pca_.partial_fit(self._standardized(X[rows[start : start + size]]))

    def _standardized(self, X):
        if self.mean_ is None:
            return X
        return (X - self.mean_.astype(X.dtype)) / self.scale_.astype(X.dtype)

    def transform(self, X):
        """Reduce rows as the training rows were reduced.

        Parameters
        ----------
        X : array of shape (n_samples, n_features)
            With the columns seen in `fit`; read one batch of rows at a time
            when the PCA is incremental.

        Returns
        -------
        array of shape (n_samples, ``n_components_``), of X's float dtype
        """
        check_is_fitted(self, "n_components_")
        X = validate_data(self, X, dtype=(np.float64, np.float32), reset=False, copy=False)
        if not isinstance(self.pca_, IncrementalPCA):
            X = self._standardized(X)
            return X if self.pca_ is None else self.pca_.transform(X)
        scores = np.empty((len(X), self.n_components_), dtype=X.dtype)
        starts, size = self._batches(len(X))
        for start in starts:
            block = X[start : start + size]
            scores[start : start + len(block)] = self.pca_.transform(self._standardized(block))
        return scores
