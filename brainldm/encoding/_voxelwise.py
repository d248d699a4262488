"""VoxelwiseEncoder: features -> every voxel, by z-scoring, PCA and per-voxel ridge."""

from numbers import Integral

import numpy as np
from sklearn.utils.validation import check_array

from brainldm._backend import exact_float32
from brainldm._validation import Interval, check_finite
from brainldm.features.reduction import FeatureReducer
from brainldm.metrics.correlation import column_correlations, warn_constant_columns
from brainldm.ridge import DEFAULT_ALPHAS, BaseRidgeCV, target_batches

__all__ = ["VoxelwiseEncoder"]


def _constant_columns(Y, n_targets_batch):
    """Which columns of Y hold a single value, read in batches of columns."""
    matrix = Y.reshape(len(Y), -1)
    constant = np.empty(matrix.shape[1], dtype=bool)
    for batch in target_batches(matrix.shape[1], n_targets_batch):
        constant[batch] = (matrix[:, batch] == matrix[:1, batch]).all(0)
    return constant


class VoxelwiseEncoder(BaseRidgeCV):
    """Predict every voxel from features: z-score, PCA, ridge with an alpha per voxel.

    Features (e.g. ``z`` of the seen images, one row per trial) are z-scored
    with the training rows' mean and standard deviation, then reduced by a PCA
    without whitening fitted on the training images only: when ``groups`` are
    passed to `fit`, on the first row of each group (an image's trials share
    its features, so that row is the image); both by a
    :class:`~brainldm.features.FeatureReducer`. Ridge regression
    (:func:`brainldm.ridge.solve_ridge_cv`, the decoders' solver and
    estimator code) then maps the components to each voxel, with an alpha
    per voxel chosen by K-fold cross-validation, grouped by image.

    Parameters
    ----------
    alphas : sequence of float, default=DEFAULT_ALPHAS
        Positive regularisation strengths tried for every voxel (by default
        1e-2 to 1e8 by decades).
    cv : int, scikit-learn splitter or "loo", default=5
        Folds: an int gives unshuffled ``KFold``, or ``GroupKFold`` when
        ``groups`` are passed to `fit`; or any splitter. ``"loo"``: exact
        leave-one-out from one decomposition of all rows, for one row per
        image (e.g. training responses averaged over repetitions); refused
        when ``groups`` repeat.
    n_components : int or None, default=6400
        Principal components kept (the paper's 6,400). Capped, with a
        warning, at the number of training images and of features; None
        skips the PCA.
    standardize : bool, default=True
        Z-score each feature with the training rows' mean and standard
        deviation before the PCA.
    fit_intercept : bool, default=True
        Fit an intercept per voxel.
    n_targets_batch : int or None, default=2048
        Voxels solved (and scored) together; bounds peak memory, as ``Y`` is
        read one batch of voxels at a time.
    device : str or None, default=None
        Where the ridge solver runs: ``"cpu"``, ``"cuda"`` or None (CPU). The
        PCA runs on the CPU.
    distributed : bool, default=False
        Fit the voxel batches on the workers of the current dask.distributed
        client (``solve_ridge_cv(..., distributed=True)``): each fold is
        decomposed once and broadcast, each task fits one batch of voxels.
        Create the client first, e.g. ``Client(n_workers=4)``, or one on a
        SLURM cluster with dask-jobqueue; needs the ``distributed`` extra.
    progress : bool, default=False
        Show a progress bar over voxel batches.

    Attributes
    ----------
    coef_ : array of shape (n_voxels, ``n_components_``) or (``n_components_``,)
        Weights on the principal components (on the z-scored features when
        the PCA is skipped).
    intercept_ : array of shape (n_voxels,) or float
    best_alphas_ : array of shape (n_voxels,) or float
        Alpha chosen for each voxel.
    cv_scores_ : array of shape (n_voxels,) or float
        Mean over folds of the negative MSE at the chosen alpha (over rows,
        of the squared leave-one-out error, with ``cv="loo"``).
    reducer_ : FeatureReducer
        The z-scoring of the features (``reducer_.mean_``, ``reducer_.scale_``)
        and the PCA fitted on the training images (``reducer_.pca_``, None when
        ``n_components`` is None).
    n_components_ : int
        Components kept (the number of features when the PCA is skipped).
    n_features_in_ : int
        Number of features seen in `fit`.

    Notes
    -----
    The PCA is scikit-learn's with ``svd_solver="auto"`` and
    ``random_state=0``: randomized, and much faster, when ``n_components``
    is below 80% of the smaller side of data larger than 500 x 500, else
    exact; an ``IncrementalPCA`` over batches of rows when the training
    images' features pass 2 GiB in float32. Memory: a fit holds the features, their components, one batch of
    voxels of ``Y`` and one fold's decomposition; ``coef_`` grows with the
    voxels (6,400 components x 250,000 voxels is 6.4 GB in float32).

    See Also
    --------
    significance : p and FDR q values of the held-out r.
    noise_ceiling : how much of each voxel's variance is explainable.
    brainldm.metrics.correlation_score : Pearson r per voxel.

    Examples
    --------
    >>> import numpy as np
    >>> from brainldm.encoding import VoxelwiseEncoder
    >>> rng = np.random.default_rng(1)
    >>> features = rng.standard_normal((50, 8))  # 50 images: 40 to train on, 10 to test
    >>> weights = rng.standard_normal((8, 5))  # 5 voxels
    >>> trials = np.repeat(np.arange(40), 3)  # 3 trials per training image
    >>> Y = features[trials] @ weights + 4 * rng.standard_normal((120, 5))
    >>> encoder = VoxelwiseEncoder(n_components=6).fit(features[trials], Y, groups=trials)
    >>> encoder.coef_.shape, encoder.reducer_.pca_.n_samples_
    ((5, 6), 40)
    >>> Y_test = features[40:] @ weights + rng.standard_normal((10, 5))
    >>> encoder.score_voxels(features[40:], Y_test).round(2)
    array([0.91, 0.23, 0.76, 0.79, 0.88])
    >>> round(encoder.score(features[40:], Y_test), 2)
    0.72
    """

    _parameter_constraints = {
        "n_components": [Interval(Integral, 1, None), None],
        "distributed": ["boolean"],
    }

    def __init__(
        self,
        alphas=DEFAULT_ALPHAS,
        *,
        cv=5,
        n_components=6400,
        standardize=True,
        fit_intercept=True,
        n_targets_batch=2048,
        device=None,
        distributed=False,
        progress=False,
    ):
        self.alphas = alphas
        self.cv = cv
        self.n_components = n_components
        self.standardize = standardize
        self.fit_intercept = fit_intercept
        self.n_targets_batch = n_targets_batch
        self.device = device
        self.distributed = distributed
        self.progress = progress

    def fit(self, X, Y, groups=None):
        """Fit the PCA on the training images and a ridge per voxel.

        Parameters
        ----------
        X : array of shape (n_samples, n_features)
            Features of the image each row (trial) showed.
        Y : array of shape (n_samples, n_voxels) or (n_samples,)
            Responses, e.g. single-trial betas; read one batch of voxels at a
            time, so a float32 ``np.memmap`` is neither loaded nor copied whole.
        groups : array of shape (n_samples,), default=None
            The image of each row: folds never split an image's trials, and
            the PCA is fitted on one row per image.

        Returns
        -------
        self : object
            The fitted encoder.

        Raises
        ------
        ValueError
            Before any work, on NaN or infinite values in X or Y (saying how
            many and where), mismatched rows, ``n_components`` < 1,
            ``groups`` with fewer distinct values than folds, or repeated
            ``groups`` with ``cv="loo"``.

        Warns
        -----
        UserWarning
            When ``n_components`` exceeds what the data allow, and when some
            voxels of Y are constant over the training rows.
        """
        return super().fit(X, Y, groups)

    def _solver_options(self):
        return {"distributed": self.distributed}

    def _check_fit_input(self, X, y, groups):
        X, y, splits = super()._check_fit_input(X, y, groups)
        constant = _constant_columns(y, self.n_targets_batch)
        warn_constant_columns(
            np.where(constant, np.nan, 0.0),
            "voxels",
            "drop them (e.g. voxels outside the brain): nothing can be learnt for them",
            quantity="r on held-out data",
            source="over the training rows of Y",
        )
        return X, y, splits

    def _fit_features(self, X, groups):
        self.reducer_ = FeatureReducer(self.n_components, standardize=self.standardize)
        features = self.reducer_.fit_transform(X, groups=groups)
        self.n_components_ = features.shape[1]
        # The solver may overwrite the features only when they are not (a view of) X.
        return features, not np.may_share_memory(features, X), None, None

    def _predict_features(self, X):
        return self.reducer_.transform(X)

    def predict(self, X):
        """Predict each voxel's response.

        Parameters
        ----------
        X : array of shape (n_samples, n_features)
            Features, with the columns seen in `fit`.

        Returns
        -------
        array of shape (n_samples, n_voxels) or (n_samples,)
        """
        return super().predict(X)

    def score_voxels(self, X, Y):
        """Pearson r of the predictions with Y, per voxel, one batch of voxels at a time.

        Parameters
        ----------
        X : array of shape (n_samples, n_features)
            Features of held-out images.
        Y : array of shape (n_samples, n_voxels) or (n_samples,)
            Their measured responses, e.g. the test betas averaged over
            repetitions (a ``np.memmap`` is read in batches of voxels).

        Returns
        -------
        r : array of shape (n_voxels,), float64
            NaN, with a warning, for voxels constant in Y or in the predictions.
        """
        features = self._predict_features(self._check_predict_input(X))
        Y = check_array(
            exact_float32(Y),
            ensure_2d=False,
            dtype=(np.float64, np.float32),
            ensure_all_finite=False,
        )
        coef = self.coef_.reshape(-1, features.shape[1])
        intercept = np.atleast_1d(self.intercept_)
        if Y.shape[:1] != features.shape[:1] or np.prod(Y.shape[1:], dtype=int) != len(coef):
            raise ValueError(
                f"Y must have shape ({len(features)}, {len(coef)}) (rows of X, voxels seen in "
                f"fit), got {Y.shape}"
            )
        check_finite(Y, "Y")
        matrix = Y.reshape(len(Y), -1)
        r = np.empty(len(coef))
        for batch in target_batches(len(coef), self.n_targets_batch):
            predicted = features @ coef[batch].T + intercept[batch]
            r[batch] = column_correlations(matrix[:, batch], predicted)
        warn_constant_columns(r, "voxels")
        return r

    def score(self, X, y, sample_weight=None):
        """Mean over voxels of the Pearson r of the predictions (NaN voxels left out).

        A float, so that ``GridSearchCV`` and ``cross_val_score`` rank
        settings by it.

        Parameters
        ----------
        X : array of shape (n_samples, n_features)
        y : array of shape (n_samples, n_voxels) or (n_samples,)
            Measured responses (named ``y`` as scikit-learn passes it).
        sample_weight : None
            Not supported; must be None.

        Returns
        -------
        float
            NaN when every voxel's r is NaN.
        """
        if sample_weight is not None:
            raise ValueError("VoxelwiseEncoder.score does not support sample_weight")
        r = self.score_voxels(X, y)
        return float("nan") if np.isnan(r).all() else float(np.nanmean(r))
