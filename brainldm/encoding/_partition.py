"""BandedVariancePartitioner: banded ridge on column blocks of X, and how the bands share each voxel."""

import inspect
import os
import warnings
from collections.abc import Mapping
from contextlib import contextmanager
from numbers import Integral

import numpy as np
from himalaya.backend import get_backend, set_backend
from himalaya.kernel_ridge import generate_dirichlet_samples
from himalaya.progress_bar import bar
from himalaya.ridge import GroupRidgeCV, solve_group_ridge_random_search
from himalaya.scoring import l2_neg_loss, r2_score_split
from himalaya.validation import check_random_state
from joblib import Memory
from scipy.linalg import cho_factor, cho_solve
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils import Bunch
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from brainldm._backend import exact_float32
from brainldm._cache import Cache, check_cache
from brainldm._validation import (
    Interval,
    Options,
    check_finite,
    check_int,
    resolve_device,
    validate_params,
)
from brainldm.encoding._statistics import significance
from brainldm.features.reduction import FeatureReducer
from brainldm.metrics.correlation import column_correlations, warn_constant_columns
from brainldm.ridge import DEFAULT_ALPHAS, check_alphas, cv_splits, target_batches

__all__ = ["BandedVariancePartitioner"]

# himalaya backend per ``device``: the CPU (None, as everywhere in brainldm) in numpy.
_BACKENDS = {None: "numpy", "cpu": "numpy", "cuda": "torch_cuda"}
_FLOAT_DTYPES = (np.float64, np.float32)
# Solver arguments that the estimator sets itself, and the parameter that sets each.
_OWN_SOLVER_ARGUMENTS = {
    "Xs": None,
    "Y": None,
    "alphas": "alphas",
    "n_iter": "n_iter",
    "n_targets_batch": "n_targets_batch",
    "progress_bar": "progress",
    "random_state": "random_state",
    "cv": "cv",
    "fit_intercept": None,
    "return_weights": None,
    "Y_in_cpu": "Y_in_cpu",
}
_SOLVER_ARGUMENTS = set(inspect.signature(solve_group_ridge_random_search).parameters)
# Solver arguments the dual solver cannot honour: it eigendecomposes the kernel, not X.
_PRIMAL_ONLY_ARGUMENTS = ("diagonalize_method",)


@contextmanager
def _himalaya_backend(name):
    """Set himalaya's (global) backend for the block, and restore the previous one after it."""
    previous = get_backend().name
    backend = set_backend(name, on_error="raise")
    try:
        yield backend
    finally:
        set_backend(previous, on_error="raise")


def _band_columns(bands, n_features):
    """Name -> slice of X's columns, from a mapping or (name, columns) pairs, checked."""
    pairs = list(bands.items()) if isinstance(bands, Mapping) else bands
    valid = isinstance(pairs, (list, tuple)) and all(
        isinstance(pair, (list, tuple)) and len(pair) == 2 and isinstance(pair[0], str)
        for pair in pairs
    )
    if not valid:
        raise ValueError(
            "bands must map band names to numbers of columns, e.g. {'z': 6400, 'zc': 6400} "
            f"or (('z', 6400), ('zc', 6400)), got {bands!r}"
        )
    names = [name for name, _ in pairs]
    if len(pairs) < 2 or len(set(names)) < len(names):
        raise ValueError(
            f"bands must name at least two distinct bands to partition, got {names}: "
            "fit a VoxelwiseEncoder for a single feature space"
        )
    counts = [columns for _, columns in pairs]
    for name, columns in pairs:
        if columns is not None:
            check_int(columns, f"bands[{name!r}]", "BandedVariancePartitioner", min_val=1)
    if counts.count(None) > 1:
        raise ValueError(f"at most one band may take the remaining columns (None), got {bands!r}")
    given = sum(columns for columns in counts if columns is not None)
    if None in counts:
        counts[counts.index(None)] = n_features - given
    if min(counts) < 1 or sum(counts) != n_features:
        raise ValueError(
            f"bands {dict(pairs)} take {given} columns, but X has {n_features} feature(s)"
            f"{', none left for the band given as None' if None in dict(pairs).values() else ''}"
            ": each band is a block of X's columns, in order"
        )
    ends = np.cumsum(counts)
    return {
        name: slice(int(end - n), int(end))
        for name, n, end in zip(names, counts, ends, strict=True)
    }


def _model_keys(names, reduced):
    """The band subsets to fit: all bands, then (if reduced) each alone and all but each."""
    keys = [tuple(names)]
    if reduced:
        keys += [(name,) for name in names]
        keys += [tuple(other for other in names if other != name) for name in names]
    return list(dict.fromkeys(keys))


def _check_solver_params(solver_params, solver):
    """A copy of solver_params, after refusing what the estimator sets or the solver lacks."""
    params = dict(solver_params or {})
    own = {key: _OWN_SOLVER_ARGUMENTS[key] for key in params if key in _OWN_SOLVER_ARGUMENTS}
    if own:
        hints = ", ".join(
            f"{key} (set {own[key]}= instead)" if own[key] else f"{key} (fixed)" for key in own
        )
        raise ValueError(f"solver_params must not hold {hints}")
    unknown = sorted(set(params) - _SOLVER_ARGUMENTS)
    if unknown:
        accepted = sorted(_SOLVER_ARGUMENTS - set(_OWN_SOLVER_ARGUMENTS))
        raise ValueError(
            f"solver_params has {unknown}, which himalaya's random-search solver does not "
            f"take; it accepts {accepted}"
        )
    if params.get("conservative", False) and not params.get("local_alpha", True):
        raise ValueError(
            "solver_params conservative=True needs local_alpha=True (one alpha per voxel)"
        )
    primal_only = [key for key in _PRIMAL_ONLY_ARGUMENTS if key in params]
    if primal_only and solver != "primal":
        raise ValueError(
            f"solver_params {primal_only} apply to the primal solver only (the dual solver "
            "eigendecomposes the kernel); drop them or set solver='primal'"
        )
    return params


def check_dual_on_cpu(solver, device, caller=None):
    """Refuse ``solver="dual"`` with a CUDA ``device``: the dual solver runs in numpy."""
    if solver == "dual" and str(device).startswith("cuda"):
        prefix = f"{caller}: " if caller else ""
        raise ValueError(
            f"{prefix}solver='dual' runs on the CPU only: set device=None, or solver='primal' "
            "(or 'auto') to fit on the GPU"
        )


def _to_numpy(backend, array):
    return np.asarray(backend.to_numpy(array))


def _fit_himalaya(Xs, Y, splits, params, estimator, backend):
    """Fit himalaya's GroupRidgeCV on the bands Xs; return its results as numpy arrays."""
    model = GroupRidgeCV(
        groups="input",
        solver="random_search",
        solver_params=params,
        fit_intercept=True,
        cv=splits,
        random_state=estimator.random_state,
        Y_in_cpu=estimator.Y_in_cpu,
    )
    with warnings.catch_warnings():
        # Said once by fit for the joint model, not once per reduced model.
        warnings.filterwarnings("ignore", message="Solving banded ridge is slower")
        model.fit(Xs, Y)
    return Bunch(
        coef=_to_numpy(backend, model.coef_).T,
        intercept=_to_numpy(backend, model.intercept_),
        deltas=_to_numpy(backend, model.deltas_),
        best_alphas=_to_numpy(backend, model.best_alphas_),
        cv_scores=_to_numpy(backend, model.cv_scores_).max(0),
    )


def _band_weightings(n_iter, n_bands, concentration, random_state):
    """The band weightings (points of the simplex) himalaya's random search tries, in order."""
    if not isinstance(n_iter, Integral):
        return np.asarray(n_iter, dtype=np.float64)
    weightings = generate_dirichlet_samples(
        n_samples=int(n_iter),
        n_kernels=n_bands,
        concentration=concentration,
        random_state=random_state,
    )
    weightings = np.array(weightings, dtype=np.float64)
    weightings[0] = 1 / n_bands
    return weightings


def _select_alphas(scores, alphas, local_alpha, conservative):
    """Per voxel, the index of the best alpha and its score averaged over folds.

    `scores` (n_folds, n_alphas, n_voxels); ties go to the larger alpha (a slope of
    1e-10 per unit of log alpha, kept in the returned score, as in himalaya).
    """
    mean = scores.mean(0, dtype=np.float64) + (np.log(alphas) * 1e-10)[:, None]
    if not local_alpha:  # one alpha for all voxels (conservative needs local_alpha)
        best = np.full(mean.shape[1], np.argmax(mean.mean(1)))
    else:
        best = np.argmax(mean, 0)
        if conservative:
            # The largest alpha within one standard deviation (over folds) of the best.
            to_beat = np.take_along_axis(mean - scores.std(0), best[None], 0)
            beats = (mean > to_beat).astype(np.float32) + (np.log(alphas) * 1e-4)[:, None]
            best = np.argmax(beats, 0)
    return best, np.take_along_axis(mean, best[None], 0)[0]


def _fold_kernels(kernel, train, test):
    """The kernel among training rows and from test to training rows, centred on the training rows.

    `kernel` is X @ X.T of all rows; the result is that of X minus its training rows' mean.
    """
    train_block = kernel[np.ix_(train, train)]
    test_block = kernel[np.ix_(test, train)]
    row_means = train_block.mean(1)
    grand_mean = row_means.mean()
    train_block += grand_mean - row_means[:, None] - row_means[None, :]
    test_block += grand_mean - test_block.mean(1)[:, None] - row_means[None, :]
    return train_block, test_block


# Rows of a kernel added at a time: bounds the temporary of each weighted sum.
_ROWS_BLOCK = 512


def _weighted_kernel(weighting, kernels, out=None):
    """sum_b w_b K_b, the kernel of the bands scaled by the square roots of the weighting.

    Written into ``out`` when given (the search reuses one array: a fresh (rows, rows)
    array costs a page fault per page, seconds at NSD's 8,859 rows).
    """
    total = np.multiply(kernels[0], weighting[0], out=out)
    for weight, kernel in zip(weighting[1:], kernels[1:], strict=True):
        for start in range(0, len(total), _ROWS_BLOCK):
            rows = slice(start, start + _ROWS_BLOCK)
            total[rows] += weight * kernel[rows]
    return total


def _eigh(kernel):
    """Eigenvalues and eigenvectors of a symmetric positive semi-definite kernel.

    Eigenvalues at rounding level (the kernel's null space: the centring direction, repeated
    rows) are set to infinity, so that ``1 / (value + alpha)`` drops those directions, as
    exact arithmetic does (the test kernel and X.T vanish on them), whatever the alpha.
    """
    values, vectors = np.linalg.eigh(kernel)
    values[values <= values[-1] * len(values) * np.finfo(values.dtype).eps] = np.inf
    return values, vectors


def _dual_fold_scores(kernel, Y, splits, alphas, options):
    """Scores (n_folds, n_alphas, n_voxels) of every alpha on each fold's held-out rows.

    Each fold's kernel is eigendecomposed in float64; the products with the voxels (the
    per-voxel work) run in Y's precision, as the primal solver's do.
    """
    n_alphas_batch = options["n_alphas_batch"] or 1
    dtype = Y.dtype
    scores = np.empty((len(splits), len(alphas), Y.shape[1]), dtype=dtype)
    for fold, (train, test) in enumerate(splits):
        train_kernel, test_kernel = _fold_kernels(kernel, train, test)
        values, vectors = _eigh(train_kernel)
        test_kernel = (test_kernel @ vectors).astype(dtype, copy=False)
        vectors = vectors.astype(dtype, copy=False)
        for batch in target_batches(Y.shape[1], options["n_targets_batch"]):
            y_train = np.asarray(Y[train, batch])
            mean = y_train.mean(0, dtype=np.float64)
            projected = vectors.T @ (y_train - mean.astype(dtype))
            y_test = (Y[test, batch] - mean).astype(dtype, copy=False)
            for start in range(0, len(alphas), n_alphas_batch):
                some = slice(start, start + n_alphas_batch)
                shrink = (1 / (values + alphas[some, None])).astype(dtype)
                predictions = (test_kernel * shrink[:, None, :]) @ projected
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", category=UserWarning)
                    scores[fold, some, batch] = options["score_func"](y_test, predictions)
    return scores


def _kernel_solver(weighting, kernels, alpha, buffer):
    """A function y -> (sum_b w_b K_b + alpha I)^-1 y, by Cholesky (eigenvectors if that fails).

    The factor is computed in ``buffer`` (overwritten), so that the refit's factorizations
    share one array.
    """
    regularized = _weighted_kernel(weighting, kernels, out=buffer)
    regularized.flat[:: len(regularized) + 1] += alpha
    try:
        factor = cho_factor(regularized, overwrite_a=True, check_finite=False)
    except np.linalg.LinAlgError:  # not positive definite to rounding: clip the eigenvalues
        values, vectors = _eigh(_weighted_kernel(weighting, kernels, out=buffer))
        return lambda y: vectors @ ((vectors.T @ y) / (values + alpha)[:, None])
    return lambda y: cho_solve(factor, y, check_finite=False)


def _dual_refit(kernels, bands, Y, weightings, choice, alphas, n_targets_batch):
    """Primal coefficients on all rows for each voxel's chosen (weighting, alpha).

    coef of band b = w_b X_b.T (sum_b w_b X_b X_b.T + alpha I)^-1 Y, X and Y centred: one
    Cholesky factorization per (weighting, alpha) chosen (each about a tenth of an
    eigendecomposition, and a weighting is seldom chosen with more than a few alphas).
    """
    dtype = Y.dtype
    # Y's precision for the products with the voxels; the solves stay in float64.
    bands = [band.astype(dtype, copy=False) for band in bands]
    coef = np.zeros((sum(band.shape[1] for band in bands), Y.shape[1]), dtype=dtype)
    ends = np.cumsum([0] + [band.shape[1] for band in bands])
    buffer = np.empty_like(kernels[0])
    for index in np.unique(choice):
        weighting = weightings[index]
        for alpha in np.unique(alphas[choice == index]):
            solve = _kernel_solver(weighting, kernels, alpha, buffer)
            voxels = np.flatnonzero((choice == index) & (alphas == alpha))
            for batch in target_batches(len(voxels), n_targets_batch):
                y = Y[:, voxels[batch]].astype(np.float64)
                dual = solve(y - y.mean(0)).astype(dtype)
                for band, w, start, end in zip(bands, weighting, ends, ends[1:], strict=False):
                    coef[start:end, voxels[batch]] = w * (band.T @ dual)
    return coef


def _centred_band(band, cache):
    """A band centred on its rows' mean in float64, with that mean and its kernel.

    The kernel (rows x rows, the costliest product of the dual solver) is read from
    `cache` when a band of the same contents saved it there.
    """
    offset = band.mean(0, dtype=np.float64)
    centred = band.astype(np.float64) - offset

    def compute():
        return {"kernel": centred @ centred.T}

    kernel = cache.arrays("partition/kernel", [band], compute)["kernel"]
    return Bunch(offset=offset, band=centred, kernel=kernel)


def _fit_dual(Xs, Y, splits, params, random_state, centred=None):
    """Banded ridge by himalaya's random search, solved in the dual (kernel) form.

    The same band weightings, alphas, scores, choice per voxel and refit as
    ``solve_group_ridge_random_search`` with an intercept (kernels, eigendecompositions and
    solves in float64, products with the voxels in Y's precision): per weighting w, the
    kernel sum_b w_b X_b X_b.T of each fold is eigendecomposed once for every alpha.
    `centred`: each band's :func:`_centred_band`, when the caller holds them already.
    """
    dtype = Xs[0].dtype
    options = {
        "score_func": params.get("score_func", l2_neg_loss),
        "n_targets_batch": params.get("n_targets_batch"),
        "n_alphas_batch": params.get("n_alphas_batch"),
    }
    weightings = _band_weightings(
        params["n_iter"], len(Xs), params.get("concentration", [0.1, 1.0]), random_state
    ).astype(dtype)
    given_alphas = np.asarray(params["alphas"], dtype=dtype)
    jitter = check_random_state(random_state) if params.get("jitter_alphas", False) else None
    if centred is None:
        centred = [_centred_band(band, Cache(None)) for band in Xs]
    offsets = [part.offset for part in centred]
    bands = [part.band for part in centred]
    kernels = [part.kernel for part in centred]
    Y = Y.astype(dtype, copy=False)
    n_voxels = Y.shape[1]
    cv_scores = np.zeros((len(weightings), n_voxels), dtype=dtype)
    best_scores = np.full(n_voxels, -np.inf, dtype=dtype)
    choice = np.zeros(n_voxels, dtype=int)
    best_alphas = np.ones(n_voxels, dtype=dtype)
    epsilon = np.finfo(dtype).eps
    title = f"{len(weightings)} random sampling with cv"
    kernel = None  # one (rows, rows) array for every weighting's kernel
    for index, weighting in enumerate(bar(weightings, title, use_it=params["progress_bar"])):
        alphas = given_alphas
        if jitter is not None:
            alphas = given_alphas * (10 ** (np.asarray(jitter.rand(), dtype=dtype) - 0.5))
        kernel = _weighted_kernel(weighting.astype(np.float64), kernels, out=kernel)
        scores = _dual_fold_scores(kernel, Y, splits, alphas.astype(np.float64), options)
        best, score = _select_alphas(
            scores,
            alphas,
            params.get("local_alpha", True),
            params.get("conservative", False),
        )
        cv_scores[index] = score
        # A later weighting replaces the best one only if it scores higher by more than eps.
        better = score > best_scores + epsilon
        best_scores[better] = score[better]
        choice[better] = index
        best_alphas[better] = alphas[best[better]]
    # A voxel no weighting scored (NaN) keeps himalaya's start: uniform bands, alpha 1, coef 0.
    chosen = best_scores > -np.inf
    coef = np.zeros((sum(band.shape[1] for band in bands), n_voxels), dtype=dtype)
    coef[:, chosen] = _dual_refit(
        kernels,
        bands,
        Y[:, chosen],
        weightings.astype(np.float64),
        choice[chosen],
        best_alphas[chosen].astype(np.float64),
        params.get("n_targets_batch_refit") or options["n_targets_batch"],
    )
    gammas = np.where(chosen[:, None], weightings[choice], np.asarray(1 / len(Xs), dtype=dtype))
    deltas = np.log(gammas.T / best_alphas[None])
    intercept = Y.mean(0, dtype=np.float64) - np.concatenate(offsets) @ coef
    return Bunch(
        coef=coef.T,
        intercept=intercept.astype(dtype),
        deltas=deltas,
        best_alphas=1 / np.exp(deltas).sum(0),
        cv_scores=cv_scores.max(0),
    )


def _centred_r2(y, prediction):
    """r² of each column once both are centred on their rows (himalaya's product measure)."""
    prediction = prediction - prediction.mean(-2, keepdims=True)
    return r2_score_split(y, prediction)


class BandedVariancePartitioner(RegressorMixin, BaseEstimator):
    """Split each voxel's explained variance between feature bands, by banded ridge.

    The paper's variance partition (Takagi & Nishimoto 2023, §3.4, on
    ``[z, z_c]``): one banded ridge regression (la Tour et al. 2022) predicts
    every voxel from the bands together, each band with its own
    regularisation learnt by cross-validation, and on held-out data the joint
    model's accuracy is split between the bands. The bands are column blocks
    of one 2-D X (e.g. ``np.hstack([z, zc])``), so the estimator fits in a
    scikit-learn ``Pipeline`` and under cross-validation.

    `fit` z-scores each band on the training rows and reduces it by a PCA
    fitted on the training images (one row per image when ``groups`` are
    given; a :class:`~brainldm.features.FeatureReducer`, as
    :class:`VoxelwiseEncoder` does), then fits himalaya's ``GroupRidgeCV``
    (alias ``BandedRidgeCV``) with its random-search solver on the bands,
    with an intercept, folds from :func:`brainldm.ridge.cv_splits` (grouped
    by image), or the same search solved in the dual (see ``solver``). With
    ``reduced_models`` it also fits, with the same alphas, band weightings
    and folds, each band alone and the joint model without each band, which
    `partition` needs for ``r2_alone`` and ``unique``.

    Parameters
    ----------
    bands : mapping or sequence of (str, int or None), default=(("z", 6400), ("zc", 6400))
        Ordered band name -> number of X's columns it takes (X's first
        columns are the first band's). One band may be None: it takes the
        columns the others leave. At least two bands.
    n_components : int or None, default=6400
        Principal components kept per band (the paper's 6,400), capped with a
        warning at the training images and the band's columns; None skips
        the PCA.
    standardize : bool, default=True
        Z-score each column with the training rows' statistics before the PCA.
    alphas : sequence of float, default=DEFAULT_ALPHAS
        Regularisation strengths himalaya tries with every band weighting
        (1e-2 to 1e8 by decades).
    n_iter : int, default=100
        Band weightings tried by the random search (himalaya's ``n_iter``;
        the first is uniform, the others drawn from a Dirichlet). A model
        with one band tries its one weighting once.
    cv : int or scikit-learn splitter, default=5
        Folds: an int gives ``KFold`` (unshuffled), or ``GroupKFold`` when
        ``groups`` are passed to `fit`.
    n_targets_batch : int or None, default=2048
        Voxels solved together in the cross-validation (himalaya's
        ``n_targets_batch``), and scored together by `partition`.
    solver : {"primal", "dual", "auto"}, default="primal"
        How each model's random search is solved; both give the same band
        weightings, alphas, scores, choice per voxel and refit (to float32
        rounding). ``"primal"``: himalaya's solver, which takes an SVD of
        the training rows' features for every fold and band weighting and
        holds an (alphas, features, training rows) array. ``"dual"``: the
        kernel form on the CPU (kernels, eigendecompositions and solves in
        float64, products with the voxels in X's precision): each band's kernel
        ``X_b @ X_b.T`` is computed once, and for every band weighting ``w``
        the kernel ``sum_b w_b X_b @ X_b.T`` of each fold's training rows is
        eigendecomposed once for all alphas; the coefficients are then
        ``w_b X_b.T (K_w + alpha I)^-1 Y``, so `predict` and `partition` do
        not change. It is cheaper when there are fewer rows than features
        (e.g. NSD's 8,859 training images and 2 x 6,400 components).
        ``"auto"``: per model, dual when the rows passed to `fit` are fewer
        than the model's (reduced) features and ``device`` is not
        ``"cuda"``, primal otherwise. ``"dual"`` with ``device="cuda"``
        raises. The default stays ``"primal"``, whose results the encoding
        analyses' documented numbers are.
    solver_params : dict or None, default=None
        Further arguments of himalaya's
        ``solve_group_ridge_random_search``: ``concentration``,
        ``n_targets_batch_refit``, ``n_alphas_batch``, ``local_alpha``,
        ``conservative``, ``jitter_alphas``, ``score_func``,
        ``diagonalize_method``, ``warn``. The ones this estimator sets
        (``alphas``, ``n_iter``, ``n_targets_batch``, ``Y_in_cpu``, ``cv``,
        ``random_state``, ``progress_bar``, ``fit_intercept``) raise. The
        dual solver honours them all but ``diagonalize_method``, which
        raises unless ``solver="primal"``; ``warn`` (about rows < features)
        is the primal solver's only, and ``n_alphas_batch`` is the alphas
        scored together (default 1 in the dual, all in the primal).
    reduced_models : bool, default=True
        Also fit each band alone and the joint model without each band
        (two more fits for two bands, 2 x n_bands for more). False fits the
        joint model only; `partition` then gives None for ``r2_alone`` and
        ``unique``.
    device : {None, "cpu", "cuda"}, default=None
        Where the fits run: None or ``"cpu"`` the CPU (himalaya's numpy
        backend; the dual solver is numpy's), ``"cuda"`` the GPU (its
        torch_cuda backend; primal only), as ``device`` means everywhere in
        brainldm. The backend is global in himalaya: it
        is set for each fit and restored after it. The PCA and the
        predictions run in numpy.
    Y_in_cpu : bool, default=False
        Keep Y in CPU memory during a GPU fit (himalaya's ``Y_in_cpu``).
    random_state : int or None, default=0
        Seed of the band weightings drawn, so that fits repeat.
    progress : bool, default=False
        Show himalaya's progress bar over band weightings.
    memory : str, path-like, joblib.Memory or None, default=None
        A folder where the dual solver saves each band's kernel and each
        one-band model (reduced), named by a digest of the band's values (and,
        for a model, of Y, the folds and the settings), and reads them back
        when a later fit has the same: partitions that share a band (the
        noise-level and stage analyses' ``z``) then compute its kernel and its
        one-band model once. Results are identical with or without it. None
        saves nothing; within one fit each band's kernel is computed once
        either way. The primal solver ignores it.

    Attributes
    ----------
    band_columns_ : dict of str to slice
        The columns of X each band takes.
    reducers_ : dict of str to FeatureReducer
        Per band, the fitted z-scoring and PCA.
    n_components_ : dict of str to int
        Components kept per band.
    models_ : dict of tuple of str to Bunch
        Per fitted band subset (the joint model is all bands, in order):
        ``coef`` (n_voxels, its components), ``intercept``, ``deltas``
        (log band scalings, (n_bands, n_voxels)), ``best_alphas`` and
        ``cv_scores`` (the best cross-validated score, negative MSE).
    coef_, intercept_, deltas_, best_alphas_, cv_scores_ : arrays
        The joint model's, as in ``models_`` (1-D y: ``coef_`` 1-D,
        ``intercept_`` a float).
    n_features_in_ : int

    Notes
    -----
    Held-out accuracy is measured on centred data: `partition` centres each
    voxel's responses and each band's part of the prediction on the
    held-out rows. himalaya's split r² (the product measure) requires
    zero-mean responses, and the intercept (e.g. a session offset between
    train and test) belongs to no band; so ``r2_joint``, ``r2_alone`` and
    ``unique`` are all ``1 - ||y - ŷ||² / ||y||²`` of centred y and ŷ, on one
    footing, and ``split`` sums to ``r2_joint`` exactly.

    Memory: himalaya centres a copy of Y (in X's dtype) for each fit; with
    ``device="cuda"`` it also moves Y to the GPU unless ``Y_in_cpu``. Split
    the voxels into chunks for a whole brain (each chunk re-decomposes the
    folds). The dual solver holds, in float64, the centred bands, one
    (rows, rows) kernel per band and a few more (rows, rows) arrays, and
    one batch of voxels at a time in float64 for the refit's solves.

    See Also
    --------
    VoxelwiseEncoder : one feature space at a time.
    himalaya.ridge.GroupRidgeCV : the banded ridge solved here.

    Examples
    --------
    >>> import numpy as np
    >>> from brainldm.encoding import BandedVariancePartitioner
    >>> rng = np.random.default_rng(0)
    >>> a, b = rng.standard_normal((2, 240, 4))
    >>> Y = np.column_stack([a @ rng.standard_normal(4), b @ rng.standard_normal(4)])
    >>> Y += 0.5 * rng.standard_normal(Y.shape)  # voxel 0 sees band a, voxel 1 band b
    >>> X = np.hstack([a, b])
    >>> model = BandedVariancePartitioner(bands={"a": 4, "b": 4}, n_components=None, n_iter=5)
    >>> result = model.fit(X[:200], Y[:200]).partition(X[200:], Y[200:])
    >>> float(result.split["a"][0].round(2)), float(result.split["b"][1].round(2))
    (0.91, 0.93)
    >>> np.allclose(result.split["a"] + result.split["b"], result.r2_joint)
    True
    >>> float(result.unique["a"][0].round(2)), result.significant
    (0.91, array([ True,  True]))
    """

    _parameter_constraints = {
        "n_components": [Interval(Integral, 1, None), None],
        "standardize": ["boolean"],
        "n_iter": [Interval(Integral, 1, None)],
        "n_targets_batch": [Interval(Integral, 1, None), None],
        "solver": [Options(("auto", "primal", "dual"))],
        "reduced_models": ["boolean"],
        "device": [Options(tuple(_BACKENDS))],
        "Y_in_cpu": ["boolean"],
        "random_state": [Interval(Integral, 0, None), np.random.RandomState, None],
        "progress": ["boolean"],
        "memory": [str, os.PathLike, Memory, Cache, None],
    }

    def __init__(
        self,
        bands=(("z", 6400), ("zc", 6400)),
        *,
        n_components=6400,
        standardize=True,
        alphas=DEFAULT_ALPHAS,
        n_iter=100,
        cv=5,
        n_targets_batch=2048,
        solver="primal",
        solver_params=None,
        reduced_models=True,
        device=None,
        Y_in_cpu=False,
        random_state=0,
        progress=False,
        memory=None,
    ):
        self.bands = bands
        self.n_components = n_components
        self.standardize = standardize
        self.alphas = alphas
        self.n_iter = n_iter
        self.cv = cv
        self.n_targets_batch = n_targets_batch
        self.solver = solver
        self.solver_params = solver_params
        self.reduced_models = reduced_models
        self.device = device
        self.Y_in_cpu = Y_in_cpu
        self.random_state = random_state
        self.progress = progress
        self.memory = memory

    def fit(self, X, Y, groups=None):
        """Reduce each band on the training images, then fit the joint and reduced models.

        Parameters
        ----------
        X : array of shape (n_samples, n_features)
            The bands side by side, in the order of ``bands``.
        Y : array of shape (n_samples, n_voxels) or (n_samples,)
            Responses, e.g. single-trial betas.
        groups : array of shape (n_samples,), default=None
            The image of each row: folds never split an image's trials, and
            each PCA is fitted on one row per image.

        Returns
        -------
        self : object

        Raises
        ------
        ValueError
            Before any work: on bands that do not add up to X's columns,
            fewer than two bands, NaN or infinite values (naming the band),
            bad parameters or solver_params, or mismatched rows.
        """
        X, Y, splits, params = self._check_fit_input(X, Y, groups)
        self.reducers_, features = {}, {}
        for name, columns in self.band_columns_.items():
            self.reducers_[name] = FeatureReducer(self.n_components, standardize=self.standardize)
            features[name] = self.reducers_[name].fit_transform(X[:, columns], groups=groups)
        self.n_components_ = {name: block.shape[1] for name, block in features.items()}
        names = list(self.band_columns_)
        Y_matrix = Y.reshape(len(Y), -1)
        self.models_, centred = {}, {}
        cache = check_cache(self.memory)
        with _himalaya_backend(_BACKENDS[self.device]) as backend:
            for key in _model_keys(names, self.reduced_models):
                # One band has one weighting: try it once, not n_iter times.
                n_iter = int(self.n_iter) if len(key) > 1 else np.ones((1, 1))
                solver = dict(params, n_iter=n_iter)
                Xs = [features[name] for name in key]
                if self._solver_of(Xs) == "dual":
                    for name in key:  # each band's kernel once per fit (or once per cache)
                        if name not in centred:
                            centred[name] = _centred_band(features[name], cache)
                    model = self._fit_dual_model(Xs, Y_matrix, splits, solver, centred, key, cache)
                else:
                    model = _fit_himalaya(Xs, Y_matrix, splits, solver, self, backend)
                self.models_[key] = model
        joint = self.models_[tuple(names)]
        self.coef_, self.intercept_ = joint.coef, joint.intercept
        self.deltas_, self.best_alphas_ = joint.deltas, joint.best_alphas
        self.cv_scores_ = joint.cv_scores
        if Y.ndim == 1:
            self.coef_, self.intercept_ = self.coef_[0], float(self.intercept_[0])
        return self

    def _fit_dual_model(self, Xs, Y, splits, solver, centred, key, cache):
        """One model by the dual solver; a one-band model is read from `cache` when saved."""
        parts = [centred[name] for name in key]
        if len(key) > 1:
            return _fit_dual(Xs, Y, splits, solver, self.random_state, parts)
        settings = {
            name: getattr(value, "__qualname__", value)
            for name, value in sorted(solver.items())
            if name != "progress_bar"
        }
        folds = [np.asarray(rows) for split in splits for rows in split]
        saved = cache.arrays(
            "partition/band-model",
            [Xs[0], Y, settings, repr(self.random_state), *folds],
            lambda: dict(_fit_dual(Xs, Y, splits, solver, self.random_state, parts)),
        )
        return Bunch(**saved)

    def _solver_of(self, Xs):
        """The solver of a model on the bands Xs: "auto" is dual if rows < features on the CPU."""
        if self.solver != "auto":
            return self.solver
        fewer_rows = len(Xs[0]) < sum(band.shape[1] for band in Xs)
        return "dual" if fewer_rows and self.device != "cuda" else "primal"

    def _check_fit_input(self, X, Y, groups):
        """Validate the data and the parameters before any work."""
        if Y is None:
            raise ValueError(
                "BandedVariancePartitioner requires y to be passed, but the target y is None"
            )
        X, Y = exact_float32(X), exact_float32(Y)
        X = validate_data(self, X, reset=True, dtype=_FLOAT_DTYPES, ensure_all_finite=False)
        Y = check_array(
            Y, ensure_2d=False, dtype=_FLOAT_DTYPES, ensure_all_finite=False, input_name="y"
        )
        if Y.ndim > 2 or len(Y) != len(X):
            raise ValueError(f"Y must be 1-D or 2-D with X's {len(X)} rows, got shape {Y.shape}")
        self.band_columns_ = _band_columns(self.bands, X.shape[1])
        for name, columns in self.band_columns_.items():
            check_finite(X[:, columns], f"band {name!r} of X")
        check_finite(Y, "Y")
        validate_params(self)
        check_alphas(self.alphas)
        check_dual_on_cpu(self.solver, self.device)
        if self.device is not None:
            resolve_device(self.device)
        params = _check_solver_params(self.solver_params, self.solver)
        params.update(
            alphas=check_alphas(self.alphas).astype(X.dtype),
            n_targets_batch=self.n_targets_batch,
            progress_bar=bool(self.progress),
        )
        return X, Y, cv_splits(self.cv, len(X), groups), params

    def _check_input(self, X):
        check_is_fitted(self)
        X = validate_data(
            self, exact_float32(X), reset=False, dtype=_FLOAT_DTYPES, ensure_all_finite=False
        )
        check_finite(X, "X")
        return X

    def _reduce(self, X):
        """Each band of validated X, reduced as in fit."""
        return {
            name: self.reducers_[name].transform(X[:, columns])
            for name, columns in self.band_columns_.items()
        }

    def _model(self, bands):
        """The key of the fitted model of `bands` (None: all), or a ValueError."""
        names = list(self.band_columns_)
        if bands is None:
            return tuple(names)
        bands = [bands] if isinstance(bands, str) else list(bands)
        unknown = [band for band in bands if band not in names]
        if unknown:
            raise ValueError(f"unknown band {unknown[0]!r}: the bands are {names}")
        key = tuple(name for name in names if name in bands)
        if key not in self.models_:
            fitted = [list(fitted) for fitted in self.models_]
            raise ValueError(
                f"no model was fitted on the bands {list(key)}; fitted: {fitted} "
                "(reduced_models=True fits each band alone and all bands but each)"
            )
        return key

    def _parts(self, features, key, batch):
        """Each band's part of the predictions of model `key`, for a slice of voxels."""
        coef = self.models_[key].coef[batch]
        parts, start = [], 0
        for name in key:
            width = self.n_components_[name]
            parts.append(features[name] @ coef[:, start : start + width].T)
            start += width
        return np.stack(parts)

    def predict(self, X, bands=None):
        """Predict each voxel's response, from the joint model or a reduced one.

        Parameters
        ----------
        X : array of shape (n_samples, n_features)
            The bands side by side, as in `fit`.
        bands : str, sequence of str or None, default=None
            The model to predict with: None the joint model; a band name,
            the model fitted on that band alone; names, the model fitted on
            those bands (all bands but one, with ``reduced_models``).

        Returns
        -------
        array of shape (n_samples, n_voxels) or (n_samples,)

        Raises
        ------
        ValueError
            If a band is unknown or no model was fitted on those bands.
        """
        features = self._reduce(self._check_input(X))
        key = self._model(bands)
        model = self.models_[key]
        prediction = self._parts(features, key, slice(None)).sum(0) + model.intercept
        return prediction[:, 0] if np.ndim(self.coef_) == 1 else prediction

    def partition(self, X, Y, alpha=0.05):
        """How the bands share each voxel's held-out accuracy.

        Responses and predictions are centred on the held-out rows first
        (see the class Notes). For every voxel:

        Parameters
        ----------
        X : array of shape (n_samples, n_features)
            Held-out rows (e.g. the test images), the bands side by side.
        Y : array of shape (n_samples, n_voxels) or (n_samples,)
            Their responses (e.g. averaged over repetitions); read one batch
            of voxels at a time.
        alpha : float, default=0.05
            FDR level of ``significant``.

        Returns
        -------
        Bunch
            Arrays of shape (n_voxels,) (one voxel for 1-D Y):

            - ``r_joint``: Pearson r of the joint model's predictions;
            - ``r2_joint``: its r²;
            - ``split``: band -> its share of ``r2_joint`` by himalaya's
              product measure (:func:`himalaya.scoring.r2_score_split`),
              ``r2_b = sum(2 y ŷ_b - ŷ_b ŷ) / sum(y²)``, which sums to
              ``r2_joint`` over the bands: the paper's split of the joint
              model's accuracy, the default view;
            - ``r2_alone``: band -> r² of the model fitted on that band alone
              (None without ``reduced_models``);
            - ``unique``: band -> ``r2_joint - r2(joint without the band)``,
              the classic unique variance; for two bands
              ``r2_joint - r2_alone[other]`` (None without ``reduced_models``);
            - ``p``, ``q``, ``significant``: one-sided p of ``r_joint``, its
              Benjamini-Hochberg q and ``q < alpha``
              (:func:`~brainldm.encoding.significance` with n the rows).

            NaN, with a warning, for voxels constant in Y.

        Raises
        ------
        ValueError
            If Y does not match X's rows and the voxels seen in fit, holds
            NaN, or has fewer than 3 rows.
        """
        X = self._check_input(X)
        Y = check_array(
            exact_float32(Y), ensure_2d=False, dtype=_FLOAT_DTYPES, ensure_all_finite=False
        )
        n_voxels = len(self.models_[self._model(None)].coef)
        if len(Y) != len(X) or len(Y) < 3 or np.prod(Y.shape[1:], dtype=int) != n_voxels:
            raise ValueError(
                f"Y must have shape ({len(X)}, {n_voxels}) (rows of X, at least 3; voxels "
                f"seen in fit), got {Y.shape}"
            )
        check_finite(Y, "Y")
        features = self._reduce(X)
        Y = Y.reshape(len(Y), -1)
        names = list(self.band_columns_)
        others = [key for key in self.models_ if key != tuple(names)]
        r = np.empty(n_voxels)
        split = np.empty((len(names), n_voxels))
        reduced = {key: np.empty(n_voxels) for key in others}
        # Constant voxels divide by zero; they are set to NaN below.
        with _himalaya_backend("numpy"), np.errstate(divide="ignore", invalid="ignore"):
            for batch in target_batches(n_voxels, self.n_targets_batch):
                y = Y[:, batch].astype(np.float64)
                y -= y.mean(0)
                parts = self._parts(features, tuple(names), batch)
                r[batch] = column_correlations(y, parts.sum(0))
                split[:, batch] = _centred_r2(y, parts)
                for key in others:
                    reduced[key][batch] = _centred_r2(y, self._parts(features, key, batch).sum(0))
        constant = np.isnan(column_correlations(Y, Y))
        warn_constant_columns(np.where(constant, np.nan, 0.0), "voxels", quantity="r and r²")
        r[constant] = split[:, constant] = np.nan
        for values in reduced.values():
            values[constant] = np.nan
        return self._result(names, r, split, reduced, significance(r, len(Y), alpha))

    def _result(self, names, r, split, reduced, tests):
        r2_joint = split.sum(0)
        r2_alone = unique = None
        if self.reduced_models:
            r2_alone = {name: reduced[(name,)] for name in names}
            unique = {
                name: r2_joint - reduced[tuple(other for other in names if other != name)]
                for name in names
            }
        return Bunch(
            r_joint=r,
            r2_joint=r2_joint,
            split=dict(zip(names, split, strict=True)),
            r2_alone=r2_alone,
            unique=unique,
            p=tests.p,
            q=tests.q,
            significant=tests.significant,
        )

    def score(self, X, y, sample_weight=None):
        """Mean over voxels of the joint model's held-out Pearson r (NaN voxels left out).

        A float, so that ``GridSearchCV`` and ``cross_val_score`` rank
        settings by it.

        Parameters
        ----------
        X : array of shape (n_samples, n_features)
        y : array of shape (n_samples, n_voxels) or (n_samples,)
        sample_weight : None
            Not supported; must be None.

        Returns
        -------
        float
        """
        if sample_weight is not None:
            raise ValueError("BandedVariancePartitioner.score does not support sample_weight")
        predicted = self.predict(X)
        y = check_array(exact_float32(y), ensure_2d=False, dtype=_FLOAT_DTYPES)
        if y.shape != predicted.shape:
            raise ValueError(f"y must have shape {predicted.shape}, got {y.shape}")
        r = column_correlations(y.reshape(len(y), -1), predicted.reshape(len(y), -1))
        return float("nan") if np.isnan(r).all() else float(np.nanmean(r))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags
