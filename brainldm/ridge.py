"""Ridge regression with an alpha per target chosen by K-fold cross-validation.

This module is the one place where brainldm solves ridge problems: the fMRI
decoders (:mod:`brainldm.decoding`) and the voxelwise encoding models call
:func:`solve_ridge_cv` with any ``X`` (n_samples, n_features) and ``Y``
(n_samples, n_targets).

How it is solved. Each fold is diagonalised once: the eigendecomposition of the
train Gram matrix ``X'X`` (p x p) when there are at least as many train rows as
features, else of the kernel ``XX'`` (n x n). Every alpha of the grid is then
scored from that one decomposition, with no refit per alpha. Folds are
solved one after the other, so that a single fold's decomposition is held at
a time, and within a fold targets are processed in batches
(``n_targets_batch``). ``X'Y`` is computed once per target and kept in the
memory of the weights, which the refit overwrites: peak memory is that of the
inputs and the weights plus terms that grow with the batch and with
``n_features ** 2``, never with ``n_targets`` otherwise. ``Y`` is never copied
or upcast whole. Computation runs in torch on the CPU or on a CUDA device;
numpy inputs give numpy outputs.

Folds are grouped when ``groups`` are given: NSD shows each training image in
three trials spread over sessions, and folds that put one repetition in train
and another in validation reward under-regularised models.

``cv="loo"`` scores exact leave-one-out instead, from the one decomposition of
all rows that the refit needs anyway, for data with one row per image.
"""

import numbers

import numpy as np
import torch
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.model_selection import GroupKFold, KFold
from sklearn.utils import Bunch
from sklearn.utils.validation import check_array, check_is_fitted, validate_data
from tqdm.auto import tqdm

from brainldm._backend import as_tensor, compute_dtype, exact_float32, to_output
from brainldm._validation import (
    Interval,
    check_finite,
    check_parameter,
    resolve_device,
    validate_params,
)
from brainldm._warnings import warn

__all__ = [
    "BaseRidgeCV",
    "DEFAULT_ALPHAS",
    "RepeatedRowsWarning",
    "TAKAGI2023",
    "check_alphas",
    "check_finite",
    "cv_splits",
    "solve_ridge",
    "solve_ridge_cv",
    "standardize_columns",
    "target_batches",
    "warn_repeated_rows",
]

#: Decades from 1e-2 to 1e8: wide enough for standardised fMRI features with a
#: few hundred to tens of thousands of samples.
DEFAULT_ALPHAS = tuple(float(alpha) for alpha in np.logspace(-2, 8, 11))

#: Settings that reproduce the original code of Takagi & Nishimoto (2023):
#: himalaya ``RidgeCV`` with these alphas, no intercept and unshuffled
#: ``KFold(5)``, which ignores ``groups``. (Their X is standardised first, as
#: the decoders do by default.)
TAKAGI2023 = {
    "alphas": (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0),
    "fit_intercept": False,
    "cv": KFold(n_splits=5),
}

# Fraction of targets whose best alpha may sit on an edge of the grid before
# the grid is deemed too narrow.
_EDGE_FRACTION = 0.1
# Rows (or columns) per block when accumulating Gram matrices in float64.
_BLOCK = 2048
# Rows per block when computing column statistics, to bound temporaries.
_STATS_BLOCK = 4096
_FLOAT_DTYPES = (np.float64, np.float32)
# The cv that asks for exact leave-one-out from one decomposition.
_LOO = "loo"
# A number of targets solved together: a positive int, or None for all at once.
_BATCH = (Interval(numbers.Integral, 1, None), None)


def check_alphas(alphas):
    """Return alphas as a sorted 1-D float64 array, or raise a ValueError."""
    values = np.atleast_1d(np.asarray(alphas, dtype=np.float64))
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"alphas must be a non-empty 1-D sequence of floats, got {alphas!r}")
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ValueError(
            f"alphas must be positive and finite, got {values.tolist()}: "
            "use a grid such as np.logspace(-2, 8, 11)"
        )
    return np.unique(values)


class RepeatedRowsWarning(UserWarning):
    """Training rows repeat one image, and cross-validation without groups splits them.

    Issued by ``fit`` when rows share their targets (a decoder: the ``z`` or
    ``c`` of one image) or their features (an encoder: one image's features),
    no ``groups`` reached ``fit`` and ``cv`` does not come as explicit folds:
    folds then hold repetitions of the images they test, which rewards weak
    regularisation.
    Pass ``groups=`` (the image of each row) to ``fit``; inside a scikit-learn
    meta-estimator, route it with ``sklearn.set_config(enable_metadata_routing=True)``
    and ``set_fit_request(groups=True)``. To refuse such fits, turn the warning
    into an error: ``warnings.simplefilter("error", RepeatedRowsWarning)``.
    """


def _first_repeat(*arrays):
    """Indices (i, j), i < j, of two equal rows of one of ``arrays``, or None.

    Rows are compared on a few columns first, then candidates in full, so that
    wide arrays (59,136 columns of ``c``) cost little.
    """
    for array in arrays:
        array = np.asarray(array)
        if array.ndim == 1:
            array = array[:, None]
        if len(array) < 2 or not array.size:
            continue
        head = np.ascontiguousarray(array[:, : min(32, array.shape[1])])
        keys = head.view(np.dtype((np.void, head.dtype.itemsize * head.shape[1]))).ravel()
        _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        earliest = first[inverse.ravel()]
        for j in np.flatnonzero(earliest != np.arange(len(array))):
            if np.array_equal(array[earliest[j]], array[j]):
                return int(earliest[j]), int(j)
    return None


def _is_splitter(cv):
    """Whether cv is a scikit-learn splitter (a str has a ``split`` method too)."""
    return hasattr(cv, "split") and not isinstance(cv, str)


def warn_repeated_rows(X, y, groups, cv, caller):
    """Warn (:class:`RepeatedRowsWarning`) when rows repeat and the folds may split them.

    Parameters
    ----------
    X, y : arrays of shape (n_samples, ...)
        A fit's features and targets.
    groups : array of shape (n_samples,) or None
    cv : int, splitter, list of (train, test) pairs or "loo"
        As :func:`cv_splits` takes it, or ``"loo"`` (which splits by rows too);
        explicit folds are the caller's choice and never warned of.
    caller : str
        Who fits, for the message.

    Examples
    --------
    >>> import warnings
    >>> import numpy as np
    >>> y = np.repeat(np.eye(3), 2, axis=0)
    >>> X = np.random.default_rng(0).normal(size=(6, 4))
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     warn_repeated_rows(X, y, None, 2, "LatentDecoder.fit")
    ...     warn_repeated_rows(X, y, [0, 0, 1, 1, 2, 2], 2, "LatentDecoder.fit")
    >>> [w.category.__name__ for w in caught]
    ['RepeatedRowsWarning']
    """
    splits_by_rows = (
        isinstance(cv, numbers.Integral)
        or (isinstance(cv, str) and cv == _LOO)
        or (_is_splitter(cv) and "Group" not in type(cv).__name__)
    )
    if groups is not None or not splits_by_rows:
        return
    repeat = _first_repeat(y, X)
    if repeat is None:
        return
    i, j = repeat
    warn(
        f"{caller}: rows {i} and {j} of the training data are equal (as repetitions of one "
        "image are), and no groups reached fit, so cross-validation can put an image's "
        "repetitions in the training and the validation folds, which favours weak "
        "regularisation. Pass groups= (the image of each row) to fit; inside GridSearchCV "
        "or a Pipeline, route it: sklearn.set_config(enable_metadata_routing=True) and "
        "estimator.set_fit_request(groups=True). warnings.simplefilter('error', "
        "RepeatedRowsWarning) refuses such fits. With cv='loo', every held-out row has its "
        "repetitions in training: average the repetitions into one row instead.",
        RepeatedRowsWarning,
    )


def _check_groups(groups, n_samples):
    """Return groups as an array of one label per sample (or None), or raise."""
    if groups is None:
        return None
    groups = np.asarray(groups)
    if groups.ndim != 1 or len(groups) != n_samples:
        raise ValueError(
            f"groups must have one label per sample: got shape {groups.shape} for "
            f"n_samples={n_samples}; pass e.g. the image index of each trial"
        )
    return groups


def cv_splits(cv, n_samples, groups=None):
    """Return the cross-validation folds as a list of (train, test) index arrays.

    Parameters
    ----------
    cv : int, scikit-learn splitter or list of (train, test) index arrays
        An int k gives ``KFold(k)`` (unshuffled) or, when `groups` are given,
        ``GroupKFold(k)``; a splitter (``KFold``, ``GroupKFold``,
        ``LeaveOneGroupOut``, ...) is used as is, with `groups`.
    n_samples : int
    groups : array of shape (n_samples,) or None
        Group label of each sample (e.g. the image a trial showed). No group
        is split across a train and a test set.

    Returns
    -------
    list of (train, test) pairs of int64 arrays

    Raises
    ------
    ValueError
        If `cv` is invalid, `groups` has the wrong length or fewer distinct
        values than folds, or a fold is empty.

    Examples
    --------
    >>> import numpy as np
    >>> groups = np.repeat(np.arange(4), 3)
    >>> [np.unique(groups[test]).tolist() for _, test in cv_splits(2, 12, groups)]
    [[1, 3], [0, 2]]
    """
    groups = _check_groups(groups, n_samples)
    if isinstance(cv, numbers.Integral) and not isinstance(cv, bool):
        if cv < 2:
            raise ValueError(f"cv must be an int >= 2, got {cv!r}")
        if n_samples < cv:
            raise ValueError(
                f"cv={cv} folds need at least {cv} samples, got n_samples={n_samples}: "
                "pass more samples or a smaller cv"
            )
        if groups is not None:
            n_groups = len(np.unique(groups))
            if n_groups < cv:
                raise ValueError(
                    f"groups has {n_groups} distinct values, fewer than cv={cv} folds: "
                    "pass a smaller cv or finer groups"
                )
            cv = GroupKFold(n_splits=cv)
        else:
            cv = KFold(n_splits=cv)
    if _is_splitter(cv):
        pairs = cv.split(np.empty((n_samples, 1)), None, groups)
    elif isinstance(cv, (list, tuple)):
        pairs = cv
    else:
        raise ValueError(
            "cv must be an int >= 2, a scikit-learn splitter, a list of (train, test) "
            f"index arrays or, where a solver takes it, 'loo', got {cv!r}"
        )
    splits = [
        (np.asarray(train, dtype=np.int64), np.asarray(test, dtype=np.int64))
        for train, test in pairs
    ]
    if not splits or any(len(train) == 0 or len(test) == 0 for train, test in splits):
        raise ValueError(
            f"cv produced an empty train or test set ({len(splits)} folds); check cv and groups"
        )
    return splits


def _folds(cv, n_samples, groups):
    """``"loo"`` once leave-one-out is checked to be sound here, else :func:`cv_splits`."""
    if not (isinstance(cv, str) and cv == _LOO):
        return cv_splits(cv, n_samples, groups)
    if n_samples < 2:
        raise ValueError(f"cv='loo' needs at least 2 samples, got n_samples={n_samples}")
    groups = _check_groups(groups, n_samples)
    if groups is not None:
        n_groups = len(np.unique(groups))
        if n_groups < n_samples:
            raise ValueError(
                f"cv='loo' leaves out one row at a time, but groups has {n_groups} distinct "
                f"values for {n_samples} rows: a held-out row's repetitions would stay in "
                "training, which favours weak regularisation. Average the repetitions of each "
                "image into one row (load_nsd(..., average_train=True)), or use grouped "
                "K-fold (cv=5 with groups)"
            )
    return _LOO


def _validate(X, Y, alphas):
    """Check shapes, values and alphas before any work; return sorted alphas."""
    if X.ndim != 2:
        raise ValueError(
            f"X must be 2-D (n_samples, n_features), got shape {tuple(X.shape)}; "
            "reshape a single feature with X.reshape(-1, 1)"
        )
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"X is empty: shape {tuple(X.shape)}")
    if Y.ndim not in (1, 2):
        raise ValueError(f"Y must be 1-D or 2-D (n_samples, n_targets), got shape {Y.shape}")
    if Y.shape[0] != X.shape[0]:
        raise ValueError(
            f"X and Y must have the same number of rows, got {X.shape[0]} and {Y.shape[0]}"
        )
    alphas = check_alphas(alphas)
    check_finite(X, "X")
    check_finite(Y, "Y")
    return alphas


def _gram(X, rows=None):
    """Return X[rows]' X[rows] accumulated in float64, one block of rows at a time."""
    n_rows = X.shape[0] if rows is None else len(rows)
    gram = torch.zeros(X.shape[1], X.shape[1], dtype=torch.float64, device=X.device)
    for start in range(0, n_rows, _BLOCK):
        chunk = slice(start, start + _BLOCK)
        block = (X[chunk] if rows is None else X[rows[chunk]]).double()
        gram.addmm_(block.T, block)
    return gram


def _kernel(X):
    """Return X X' accumulated in float64, one block of columns at a time."""
    kernel = torch.zeros(X.shape[0], X.shape[0], dtype=torch.float64, device=X.device)
    for start in range(0, X.shape[1], _BLOCK):
        block = X[:, start : start + _BLOCK].double()
        kernel.addmm_(block, block.T)
    return kernel


def _eigh(matrix, dtype):
    """Eigendecomposition in the compute dtype, with round-off negatives set to 0."""
    eigenvalues, eigenvectors = torch.linalg.eigh(matrix.to(dtype))
    return eigenvalues.clamp_(min=0), eigenvectors


def _eigh_off_constant(kernel, dtype):
    """Eigendecomposition of a centred kernel on the rows' space orthogonal to the constant.

    The kernel of centred rows maps the constant vector to 0 exactly, but an
    eigendecomposition in float32 returns it with a round-off eigenvalue and
    mixed with its neighbours, which the leave-one-out denominators ``1 - h_ii``
    (small when alpha is) cannot afford. A Householder reflection ``H`` that
    sends the constant vector to the last axis removes it exactly: the leading
    block of ``H K H`` is decomposed, and its eigenvectors mapped back by ``H``,
    giving n - 1 eigenpairs, all orthogonal to the constant.
    """
    n_samples = kernel.shape[0]
    reflector = torch.full((n_samples,), n_samples**-0.5, dtype=kernel.dtype, device=kernel.device)
    reflector[-1] += 1.0
    scale = 2.0 / float(reflector @ reflector)
    product = kernel @ reflector
    reflected = kernel.clone()
    reflected.addr_(reflector, product, alpha=-scale).addr_(product, reflector, alpha=-scale)
    reflected.addr_(reflector, reflector, alpha=scale**2 * float(reflector @ product))
    eigenvalues, block = _eigh(reflected[:-1, :-1], dtype)
    reflector = reflector.to(dtype)
    eigenvectors = torch.zeros(n_samples, n_samples - 1, dtype=dtype, device=kernel.device)
    eigenvectors[:-1] = block
    eigenvectors.addr_(reflector, reflector[:-1] @ block, alpha=-scale)
    return eigenvalues, eigenvectors


class _Problem:
    """The features side of a ridge problem: centred X and its decompositions.

    Holds what does not depend on the targets, so that each batch of targets
    only pays for products with its own columns. Folds are decomposed one at a
    time (:meth:`fold`), so that one fold's eigenvectors are held at once.
    """

    def __init__(self, X, splits, fit_intercept, dtype, copy_X):
        self.X = X
        self.fit_intercept = fit_intercept
        self.dtype = dtype
        n_samples, n_features = X.shape
        self.x_mean = torch.zeros(n_features, dtype=torch.float64, device=X.device)
        if fit_intercept:
            self.x_mean = X.mean(0, dtype=torch.float64)
            if copy_X:
                self.X = X - self.x_mean.to(dtype)
            else:
                self.X = X.sub_(self.x_mean.to(dtype))
        self.primal = n_features <= n_samples
        primal_folds = [n_features <= len(train) for train, _ in splits]
        self.needs_XtY = self.primal or any(primal_folds)
        self.gram = _gram(self.X) if self.needs_XtY else None
        self.kernel = _kernel(self.X) if not self.primal or not all(primal_folds) else None
        self.eigenvalues = self.eigenvectors = None

    def _indices(self, rows):
        return torch.as_tensor(rows, device=self.X.device)

    def fold(self, train, test):
        """Decompose the train rows of one fold; project its held-out rows."""
        if self.X.shape[1] <= len(train):
            return self._primal_fold(train, test)
        return self._dual_fold(train, test)

    def _primal_fold(self, train, test):
        train, test = self._indices(train), self._indices(test)
        n_train = len(train)
        X_test = self.X[test]
        # Mean of the train rows, from the column sums, without indexing the train rows.
        shift = torch.zeros(self.X.shape[1], dtype=torch.float64, device=self.X.device)
        if self.fit_intercept:
            shift = (self.X.sum(0, dtype=torch.float64) - X_test.sum(0, dtype=torch.float64)) / (
                n_train
            )
        train_gram = _gram(self.X, test).neg_().add_(self.gram)
        train_gram.addr_(shift, shift, alpha=-n_train)
        eigenvalues, eigenvectors = _eigh(train_gram, self.dtype)
        del train_gram
        shift = shift.to(self.dtype)
        return Bunch(
            primal=True,
            train=train,
            test=test,
            n_train=n_train,
            shift=shift,
            X_test=X_test,
            eigenvalues=eigenvalues,
            eigenvectors=eigenvectors,
            A=(X_test - shift) @ eigenvectors,
        )

    def _dual_fold(self, train, test):
        train, test = self._indices(train), self._indices(test)
        train_kernel = self.kernel[train][:, train]
        cross_kernel = self.kernel[test][:, train]
        if self.fit_intercept:
            # Double centring with the train means: the kernel of the train-centred rows.
            row_mean = train_kernel.mean(1)
            total_mean = row_mean.mean()
            train_kernel = train_kernel - row_mean[:, None] - row_mean[None, :] + total_mean
            cross_kernel = (
                cross_kernel - cross_kernel.mean(1, keepdim=True) - row_mean[None, :] + total_mean
            )
        eigenvalues, eigenvectors = _eigh(train_kernel, self.dtype)
        return Bunch(
            primal=False,
            train=train,
            test=test,
            n_train=len(train),
            eigenvalues=eigenvalues,
            eigenvectors=eigenvectors,
            A=cross_kernel.to(self.dtype) @ eigenvectors,
        )

    def decompose(self, off_constant=False):
        """Decompose all rows for the refit, and free the Gram and kernel matrices.

        ``off_constant`` removes the constant direction of a centred kernel exactly
        (:func:`_eigh_off_constant`), which leave-one-out needs; the K-fold refit
        keeps the plain decomposition, so that its results do not change.
        """
        if self.primal:
            self.eigenvalues, self.eigenvectors = _eigh(self.gram, self.dtype)
        elif self.fit_intercept and off_constant:
            self.eigenvalues, self.eigenvectors = _eigh_off_constant(self.kernel, self.dtype)
        else:
            self.eigenvalues, self.eigenvectors = _eigh(self.kernel, self.dtype)
        self.gram = self.kernel = None

    def prepare_leave_one_out(self, alphas):
        """Hold what every target's leave-one-out errors share, from the decomposition.

        The leave-one-out error of row i is ``(y_i - yhat_i) / (1 - h_ii)``, with
        ``h_ii`` the diagonal of the hat matrix of the fit on all rows: exactly
        the error of the model refit without row i. With an intercept the hat
        matrix gains ``1 / n`` (the mean, fitted unpenalised: the constant column
        with an infinite weight), which refits the centring without row i too.
        Sets the denominators ``1 - h_ii``, shape (n_alphas, n_samples), and in
        the primal form the rows in the eigenbasis ``X V``. In the dual form the
        eigenvectors ``Q`` of a centred kernel leave out the constant
        (:func:`_eigh_off_constant`), so that ``sum_k Q_ik^2 = 1 - 1 / n``.
        """
        n_samples = self.X.shape[0]
        eigenvalues = self.eigenvalues.double()
        alphas = alphas.double()
        self.loo_rows = self.X @ self.eigenvectors if self.primal else None
        basis = self.loo_rows if self.primal else self.eigenvectors
        if self.primal:
            # h_ii = sum_k (X V)_ik^2 / (lambda_k + alpha)
            weights = 1.0 / (eigenvalues[:, None] + alphas[None, :])
        else:
            # 1 - h_ii = sum_k Q_ik^2 alpha / (lambda_k + alpha): no cancellation near h = 1.
            weights = alphas[None, :] / (eigenvalues[:, None] + alphas[None, :])
        denominators = torch.empty(
            len(alphas), n_samples, dtype=torch.float64, device=self.X.device
        )
        for start in range(0, n_samples, _BLOCK):
            rows = slice(start, start + _BLOCK)
            denominators[:, rows] = (basis[rows].double().square() @ weights).T
        if self.primal:
            denominators.neg_().add_(1.0 - self.fit_intercept / n_samples)
        self.loo_denominators = denominators.to(self.dtype)

    def score_leave_one_out(self, Y, XtY, alphas):
        """Negative mean squared leave-one-out error, shape (n_alphas, n_targets).

        The mean over rows of ``-e_i ** 2``: the score of K-fold with one row
        per fold. Needs :meth:`decompose` and :meth:`prepare_leave_one_out`.
        """
        scores = torch.empty(len(alphas), Y.shape[1], dtype=self.dtype, device=Y.device)
        projected = self.eigenvectors.T @ (XtY if self.primal else Y)
        for index, alpha in enumerate(alphas):
            weights = 1.0 / (self.eigenvalues + alpha)
            if self.primal:
                residual = torch.addmm(Y, self.loo_rows, projected * weights[:, None], alpha=-1.0)
            else:
                # Y - Q diag(lambda / (lambda + alpha)) Q'Y, with Y centred when it must be.
                residual = self.eigenvectors @ (projected * (alpha * weights)[:, None])
            residual /= self.loo_denominators[index][:, None]
            scores[index] = torch.linalg.vector_norm(residual, dim=0).square_().neg_()
        return scores / len(Y)

    def load(self, Y, batch):
        """Copy a batch of target columns, centred; return it and its mean."""
        Y_batch = Y[:, batch].to(dtype=self.dtype, device=self.X.device, copy=True)
        y_mean = Y_batch.mean(0) if self.fit_intercept else torch.zeros_like(Y_batch[0])
        Y_batch -= y_mean
        return Y_batch, y_mean

    def cross(self, Y):
        """X'Y of centred targets, or None when no primal solve needs it."""
        return self.X.T @ Y if self.needs_XtY else None

    def score(self, fold, Y, XtY, alphas):
        """Negative MSE on the held-out rows of `fold`, shape (n_alphas, n_targets)."""
        scores = torch.empty(len(alphas), Y.shape[1], dtype=self.dtype, device=Y.device)
        Y_test = Y[fold.test]
        y_shift = torch.zeros_like(Y[0])
        if self.fit_intercept:
            y_shift = (Y.sum(0) - Y_test.sum(0)) / fold.n_train
        if fold.primal:
            train_XtY = XtY - fold.X_test.T @ Y_test
            if self.fit_intercept:
                train_XtY.addr_(fold.shift, y_shift, alpha=-fold.n_train)
            projected = fold.eigenvectors.T @ train_XtY
            del train_XtY
        else:
            projected = fold.eigenvectors.T @ (Y[fold.train] - y_shift)
        residual_base = Y_test - y_shift
        for index, alpha in enumerate(alphas):
            weights = 1.0 / (fold.eigenvalues + alpha)
            residual = torch.addmm(residual_base, fold.A, projected * weights[:, None], alpha=-1.0)
            scores[index] = torch.linalg.vector_norm(residual, dim=0).square_().neg_()
        return scores / len(residual_base)

    def refit(self, Y, y_mean, XtY, alphas):
        """Ridge weights and intercepts on all rows, one alpha per target."""
        weights = 1.0 / (self.eigenvalues[:, None] + alphas[None, :])
        if self.primal:
            coef = self.eigenvectors @ ((self.eigenvectors.T @ XtY) * weights)
        else:
            coef = self.X.T @ (self.eigenvectors @ ((self.eigenvectors.T @ Y) * weights))
        return coef, y_mean - self.x_mean.to(self.dtype) @ coef


def target_batches(n_targets, n_targets_batch):
    """Slices of at most ``n_targets_batch`` targets (None: all at once)."""
    if n_targets_batch is None:
        n_targets_batch = n_targets
    check_parameter(n_targets_batch, "n_targets_batch", "target_batches", *_BATCH)
    return [slice(start, start + n_targets_batch) for start in range(0, n_targets, n_targets_batch)]


def solve_ridge_cv(
    X,
    Y,
    alphas=DEFAULT_ALPHAS,
    *,
    cv=5,
    groups=None,
    fit_intercept=True,
    alpha_per_target=True,
    n_targets_batch=2048,
    device=None,
    copy_X=True,
    progress=False,
    check_input=True,
    distributed=False,
):
    """Fit multi-target ridge regression, choosing alpha by K-fold cross-validation.

    Solves ``min_b ||Y - X b - 1 b0'||^2 + alpha ||b||^2`` for every target,
    with alpha picked from `alphas` by the mean over folds of the negative mean
    squared error on the held-out rows, then refits on all rows.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
        Features, numpy array or torch tensor. Not modified unless
        ``copy_X=False``.
    Y : array of shape (n_samples, n_targets) or (n_samples,)
        Targets. Never copied whole: batches of columns are.
    alphas : sequence of float, default=DEFAULT_ALPHAS
        Positive regularisation strengths to try (1e-2 ... 1e8 by decades).
    cv : int, scikit-learn splitter or "loo", default=5
        Number of folds, or a splitter. An int gives unshuffled ``KFold``, or
        ``GroupKFold`` when `groups` are given. ``"loo"``: exact leave-one-out
        over rows from one decomposition of all rows (see Notes); refused
        when `groups` repeat.
    groups : array of shape (n_samples,), default=None
        Group label of each sample, e.g. the image shown in each trial; no
        group is split between train and validation rows.
    fit_intercept : bool, default=True
        Fit an intercept per target (the original code fits none).
    alpha_per_target : bool, default=True
        Choose an alpha per target; if False, the alpha with the best score
        averaged over targets is shared by all.
    n_targets_batch : int or None, default=2048
        Targets solved together. Peak memory grows with it; ``None`` solves all
        targets at once.
    device : str, torch.device or None, default=None
        Where to compute: ``"cpu"``, ``"cuda"``; ``None`` uses the device of
        torch inputs, else the CPU.
    copy_X : bool, default=True
        If False, a writeable float X already on `device` in the compute dtype
        is centred in place, which saves one copy of X.
    progress : bool, default=False
        Show a progress bar over target batches.
    check_input : bool, default=True
        Check shapes and scan `X` and `Y` for NaN or infinite values. Callers
        that have already checked them (the decoders) pass False, so that a
        5 GiB `Y` is not scanned twice.
    distributed : bool, default=False
        Fit the target batches on the workers of the current dask.distributed
        client (``distributed.get_client()``) instead of in this process: each
        fold is decomposed once here and broadcast, and each worker task
        receives one batch of targets and returns its weights, so that voxels
        spread over processes or machines without recomputing a decomposition
        per chunk. The results equal the serial ones to float rounding. Needs
        the ``distributed`` extra and the CPU; the client holds every fold's
        decomposition at once (about ``n_folds * n_features ** 2`` values).
        With ``cv="loo"`` only the decomposition of all rows is broadcast.

    Returns
    -------
    result : sklearn.utils.Bunch
        With the keys:

        - ``coef``, array of shape (n_features, n_targets) or (n_features,):
          weights refit on all rows with each target's best alpha;
        - ``intercept``, array of shape (n_targets,) or float;
        - ``best_alphas``, array of shape (n_targets,) or float;
        - ``cv_scores``, array of shape (n_targets,) or float: mean over
          folds of the negative MSE at the best alpha (with ``cv="loo"``, the
          mean over rows of the negative squared leave-one-out error: the same
          score as ``cv=n_samples``);
        - ``alpha_scores``, array of shape (n_alphas, n_targets) or
          (n_alphas,): mean over folds of the negative MSE for every alpha;
        - ``alphas``, array of shape (n_alphas,): the alphas tried, sorted.

    Arrays are numpy when Y is a numpy array, else torch tensors on `device`.

    Raises
    ------
    ValueError
        On bad shapes, NaN or infinite values, non-positive alphas, or `groups`
        that do not match the rows or the folds (or that repeat, with
        ``cv="loo"``), before any computation.
    RuntimeError
        If a CUDA device is asked for and none is available.

    Warns
    -----
    UserWarning
        When the best alpha sits on an edge of the grid for more than 10% of
        the targets: widen `alphas` on that side.

    Notes
    -----
    With ``cv="loo"`` every row is a fold, and the error of the model refit
    without row i is ``(y_i - yhat_i) / (1 - h_ii)``, with ``yhat`` and the
    hat matrix diagonal ``h_ii`` of the fit on all rows (as scikit-learn's
    ``RidgeCV`` computes it): one eigendecomposition of all rows (``X'X`` or
    ``XX'``) scores every alpha and serves the refit, where K folds take K + 1.
    With an intercept, ``h_ii`` includes the unpenalised mean, so the
    centring is redone without row i as in K-fold. This is exact
    leave-one-out only when rows are independent (one row per image): with
    repeated images, average them or use grouped K-fold.

    See Also
    --------
    solve_ridge : ridge with given alphas, no cross-validation.
    brainldm.decoding.LatentDecoder : scikit-learn estimator built on this solver.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((60, 5))
    >>> Y = X @ rng.standard_normal((5, 3)) + 3 * rng.standard_normal((60, 3))
    >>> result = solve_ridge_cv(X, Y, alphas=np.logspace(-2, 4, 7))
    >>> result.coef.shape
    (5, 3)
    >>> result.best_alphas
    array([  1., 100., 100.])
    """
    alphas = _validate(X, Y, alphas) if check_input else check_alphas(alphas)
    splits = _folds(cv, X.shape[0], groups)
    batches = target_batches(1 if Y.ndim == 1 else Y.shape[1], n_targets_batch)
    device = resolve_device(device, X, Y)
    dtype = compute_dtype(X, Y)

    X_tensor, copied = as_tensor(X, dtype, device)
    read_only = isinstance(X, np.ndarray) and not X.flags.writeable
    problem = _Problem(
        X_tensor,
        [] if splits == _LOO else splits,
        fit_intercept,
        dtype,
        copy_X=not copied and (copy_X or read_only),
    )
    alphas_tensor = torch.as_tensor(alphas, dtype=dtype, device=device)
    Y_tensor, _ = as_tensor(Y)
    Y_matrix = Y_tensor.reshape(len(Y_tensor), -1)
    solve = _solve_on_cluster if distributed else _solve_serial
    coef, intercept, alpha_scores, best = solve(
        problem, splits, Y_matrix, batches, alphas_tensor, alpha_per_target, progress
    )
    _warn_on_edges(best, alphas)

    as_numpy = not isinstance(Y, torch.Tensor)
    result = Bunch(
        coef=coef,
        intercept=intercept,
        best_alphas=alphas_tensor[best],
        cv_scores=alpha_scores.gather(0, best[None])[0],
        alpha_scores=alpha_scores,
    )
    if Y.ndim == 1:
        result = Bunch(**{key: value[..., 0] for key, value in result.items()})
    result = Bunch(**{key: to_output(value, as_numpy) for key, value in result.items()})
    result.alphas = alphas if as_numpy else torch.as_tensor(alphas, device=device)
    return result


def _solve_leave_one_out(problem, Y_matrix, batches, alphas_tensor, alpha_per_target, progress):
    """Score by leave-one-out from the one decomposition of all rows, and refit from it too."""
    n_features, n_targets = problem.X.shape[1], Y_matrix.shape[1]
    dtype, device = problem.dtype, problem.X.device
    coef = torch.empty(n_features, n_targets, dtype=dtype, device=device)
    intercept = torch.zeros(n_targets, dtype=dtype, device=device)
    alpha_scores = torch.empty(len(alphas_tensor), n_targets, dtype=dtype, device=device)
    problem.decompose(off_constant=True)
    problem.prepare_leave_one_out(alphas_tensor)
    n_passes = 1 if alpha_per_target else 2
    with tqdm(total=n_passes * len(batches), desc="ridge LOO", disable=not progress) as bar:
        for batch in batches:
            Y_batch, y_mean = problem.load(Y_matrix, batch)
            XtY = problem.cross(Y_batch)
            scores = problem.score_leave_one_out(Y_batch, XtY, alphas_tensor)
            alpha_scores[:, batch] = scores
            if alpha_per_target:
                coef[:, batch], intercept[batch] = problem.refit(
                    Y_batch, y_mean, XtY, alphas_tensor[scores.argmax(0)]
                )
            bar.update()
        if alpha_per_target:
            return coef, intercept, alpha_scores, alpha_scores.argmax(0)
        best = alpha_scores.mean(1).argmax().repeat(n_targets)
        for batch in batches:
            Y_batch, y_mean = problem.load(Y_matrix, batch)
            coef[:, batch], intercept[batch] = problem.refit(
                Y_batch, y_mean, problem.cross(Y_batch), alphas_tensor[best[batch]]
            )
            bar.update()
    return coef, intercept, alpha_scores, best


def _solve_serial(problem, splits, Y_matrix, batches, alphas_tensor, alpha_per_target, progress):
    """Score every fold and refit, target batch by target batch, in this process."""
    if splits == _LOO:
        return _solve_leave_one_out(
            problem, Y_matrix, batches, alphas_tensor, alpha_per_target, progress
        )
    n_features, n_targets = problem.X.shape[1], Y_matrix.shape[1]
    dtype, device = problem.dtype, problem.X.device
    # X'Y of every target is cached in coef's memory, which the refit then
    # overwrites batch by batch: one product with X per target serves every
    # fold, while only one fold's decomposition is held at a time.
    coef = torch.empty(n_features, n_targets, dtype=dtype, device=device)
    intercept = torch.zeros(n_targets, dtype=dtype, device=device)
    alpha_scores = torch.zeros(len(alphas_tensor), n_targets, dtype=dtype, device=device)
    n_passes = len(splits) + 1 + problem.needs_XtY
    with tqdm(total=n_passes * len(batches), desc="ridge CV", disable=not progress) as bar:
        if problem.needs_XtY:
            for batch in batches:
                coef[:, batch] = problem.cross(problem.load(Y_matrix, batch)[0])
                bar.update()
        for train, test in splits:
            fold = problem.fold(train, test)
            for batch in batches:
                Y_batch, _ = problem.load(Y_matrix, batch)
                XtY = coef[:, batch] if problem.needs_XtY else None
                alpha_scores[:, batch] += problem.score(fold, Y_batch, XtY, alphas_tensor)
                bar.update()
            del fold
        alpha_scores /= len(splits)
        if alpha_per_target:
            best = alpha_scores.argmax(0)
        else:
            best = alpha_scores.mean(1).argmax().repeat(n_targets)
        problem.decompose()
        for batch in batches:
            Y_batch, y_mean = problem.load(Y_matrix, batch)
            XtY = coef[:, batch] if problem.needs_XtY else None
            coef[:, batch], intercept[batch] = problem.refit(
                Y_batch, y_mean, XtY, alphas_tensor[best[batch]]
            )
            bar.update()
    return coef, intercept, alpha_scores, best


def _cluster_client():
    """The dask.distributed client that ``distributed=True`` computes on.

    Returns
    -------
    client : distributed.Client
        The current client: the one most recently created in this process,
        or the one of the ``with Client(...)`` block being run.

    Raises
    ------
    ImportError
        If dask.distributed is not installed (``pip install "brainldm[distributed]"``).
    ValueError
        If no client was created.
    """
    try:
        from distributed import get_client
    except ImportError as error:
        raise ImportError(
            "distributed=True needs dask.distributed, an optional dependency: "
            'pip install "brainldm[distributed]"'
        ) from error
    try:
        return get_client()
    except ValueError as error:
        raise ValueError(
            "distributed=True found no dask client: create one before fitting, e.g. "
            "`from dask.distributed import Client; client = Client(n_workers=4)`, or "
            "`Client(SLURMCluster(...))` with dask-jobqueue"
        ) from error


def _fit_target_chunk(problem, folds, Y, alphas, alpha_per_target):
    """Score a chunk of targets on every fold and, with an alpha per target, refit it.

    The unit of work of ``solve_ridge_cv(..., distributed=True)``, run on a
    dask worker with the fold decompositions that the client computed once
    and broadcast.

    Parameters
    ----------
    problem : object
        The decomposed features side of the problem (the solver's own).
    folds : list or None
        Every fold's decomposition; None scores by leave-one-out from the
        decomposition of all rows.
    Y : torch.Tensor of shape (n_samples, n_chunk)
        The chunk's targets, in the compute dtype.
    alphas : torch.Tensor of shape (n_alphas,)
    alpha_per_target : bool
        Refit with each target's best alpha; else return the scores only,
        for the client to choose one alpha for all targets.

    Returns
    -------
    scores : torch.Tensor of shape (n_alphas, n_chunk)
        Mean over folds of the negative MSE.
    refit : tuple of (coef, intercept) or None
    """
    Y_batch, y_mean = problem.load(Y, slice(None))
    XtY = problem.cross(Y_batch)
    if folds is None:
        scores = problem.score_leave_one_out(Y_batch, XtY, alphas)
    else:
        scores = sum(problem.score(fold, Y_batch, XtY, alphas) for fold in folds) / len(folds)
    if not alpha_per_target:
        return scores, None
    return scores, problem.refit(Y_batch, y_mean, XtY, alphas[scores.argmax(0)])


def _refit_target_chunk(problem, Y, alphas):
    """Refit a chunk of targets with given alphas (one per target), on a dask worker."""
    Y_batch, y_mean = problem.load(Y, slice(None))
    return problem.refit(Y_batch, y_mean, problem.cross(Y_batch), alphas)


def _run_on_cluster(client, function, shared, chunks, extra, progress, desc):
    """Submit ``function(*shared, chunk, *extra(index))`` for every chunk, a few at a time.

    At most two chunks per worker thread are in flight, so that the targets
    sent to the cluster never exceed a few chunks; yields (index, result).
    """
    from distributed import as_completed

    limit = 2 * max(1, sum(client.nthreads().values()))
    pending = iter(enumerate(chunks))
    futures = {}

    def submit():
        """Send the next chunk and its task; None when every chunk is sent."""
        index, chunk = next(pending, (None, None))
        if chunk is None:
            return None
        future = client.submit(
            function, *shared, client.scatter(chunk(), direct=True), *extra(index), pure=False
        )
        futures[future] = index
        return future

    first = [submit() for _ in range(limit)]
    running = as_completed([future for future in first if future is not None])
    with tqdm(total=len(chunks), desc=desc, disable=not progress) as bar:
        for future in running:
            yield futures.pop(future), future.result()
            bar.update()
            following = submit()
            if following is not None:
                running.add(following)


def _solve_on_cluster(
    problem, splits, Y_matrix, batches, alphas_tensor, alpha_per_target, progress
):
    """The serial solve's results, with target batches fitted on dask workers.

    Each fold is decomposed once, here, and broadcast with the decomposed
    full problem to every worker; workers receive one batch of targets per
    task and return its scores (and weights).
    """
    client = _cluster_client()
    if problem.X.device.type != "cpu":
        raise ValueError(
            "distributed=True computes on the dask workers' CPUs: leave device=None "
            "(a GPU per worker is not supported)"
        )
    folds = None if splits == _LOO else [problem.fold(train, test) for train, test in splits]
    problem.decompose(off_constant=folds is None)
    if folds is None:
        problem.prepare_leave_one_out(alphas_tensor)
    shared = (client.scatter(problem, broadcast=True), client.scatter(folds, broadcast=True))
    n_features, n_targets = problem.X.shape[1], Y_matrix.shape[1]
    dtype = problem.dtype
    coef = torch.empty(n_features, n_targets, dtype=dtype)
    intercept = torch.zeros(n_targets, dtype=dtype)
    alpha_scores = torch.zeros(len(alphas_tensor), n_targets, dtype=dtype)

    def chunk(batch):
        return lambda: Y_matrix[:, batch].to(dtype=dtype).contiguous()

    chunks = [chunk(batch) for batch in batches]
    results = _run_on_cluster(
        client,
        _fit_target_chunk,
        shared,
        chunks,
        lambda index: (alphas_tensor, alpha_per_target),
        progress,
        "ridge CV (dask)",
    )
    for index, (scores, refit) in results:
        alpha_scores[:, batches[index]] = scores
        if refit is not None:
            coef[:, batches[index]], intercept[batches[index]] = refit
    if alpha_per_target:
        return coef, intercept, alpha_scores, alpha_scores.argmax(0)
    best = alpha_scores.mean(1).argmax().repeat(n_targets)
    results = _run_on_cluster(
        client,
        _refit_target_chunk,
        shared[:1],
        chunks,
        lambda index: (alphas_tensor[best[batches[index]]],),
        progress,
        "ridge refit (dask)",
    )
    for index, (weights, intercepts) in results:
        coef[:, batches[index]], intercept[batches[index]] = weights, intercepts
    return coef, intercept, alpha_scores, best


def _warn_on_edges(best, alphas):
    """Warn when the grid's smallest or largest alpha wins for too many targets."""
    if len(alphas) < 2:
        return
    for index, side, advice in ((0, "smallest", "smaller"), (len(alphas) - 1, "largest", "larger")):
        fraction = float((best == index).double().mean())
        if fraction > _EDGE_FRACTION:
            warn(
                f"the {side} alpha ({alphas[index]:g}) was best for {fraction:.0%} of the "
                f"targets: the optimum may lie beyond the grid; add {advice} alphas"
            )


def solve_ridge(X, Y, alphas, *, fit_intercept=True, n_targets_batch=2048, device=None):
    """Fit ridge regression with a given alpha, or one alpha per target.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
    Y : array of shape (n_samples, n_targets) or (n_samples,)
    alphas : float or array of shape (n_targets,)
        Positive regularisation strength(s).
    fit_intercept : bool, default=True
    n_targets_batch : int or None, default=2048
    device : str, torch.device or None, default=None

    Returns
    -------
    coef : array of shape (n_features, n_targets) or (n_features,)
    intercept : array of shape (n_targets,) or float

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> Y = np.array([1.0, 2.0, 3.0])
    >>> coef, intercept = solve_ridge(X, Y, 1e-9, fit_intercept=False)
    >>> np.round(coef, 6)
    array([1., 2.])
    """
    alphas_array = np.asarray(alphas, dtype=np.float64)
    n_targets = 1 if np.ndim(Y) == 1 else np.shape(Y)[1]
    if alphas_array.ndim == 0:
        alphas_array = np.full(n_targets, float(alphas_array))
    if alphas_array.shape != (n_targets,):
        raise ValueError(
            f"alphas must be a float or have one value per target ({n_targets}), "
            f"got shape {alphas_array.shape}"
        )
    _validate(X, Y, alphas_array)
    batches = target_batches(n_targets, n_targets_batch)
    device = resolve_device(device, X, Y)
    dtype = compute_dtype(X, Y)
    X_tensor, copied = as_tensor(X, dtype, device)
    problem = _Problem(X_tensor, [], fit_intercept, dtype, copy_X=not copied)
    problem.decompose()
    Y_tensor, _ = as_tensor(Y)
    Y_matrix = Y_tensor.reshape(len(Y_tensor), -1)
    alphas_tensor = torch.as_tensor(alphas_array, dtype=dtype, device=device)
    coef = torch.empty(X_tensor.shape[1], n_targets, dtype=dtype, device=device)
    intercept = torch.zeros(n_targets, dtype=dtype, device=device)
    for batch in batches:
        Y_batch, y_mean = problem.load(Y_matrix, batch)
        coef[:, batch], intercept[batch] = problem.refit(
            Y_batch, y_mean, problem.cross(Y_batch), alphas_tensor[batch]
        )
    if np.ndim(Y) == 1:
        coef, intercept = coef[:, 0], intercept[0]
    as_numpy = not isinstance(Y, torch.Tensor)
    return to_output(coef, as_numpy), to_output(intercept, as_numpy)


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
    for start in range(0, len(X), _STATS_BLOCK):
        block = X[start : start + _STATS_BLOCK] - mean
        squares += np.einsum("ij,ij->j", block, block)
    scale = np.sqrt(squares / len(X))
    # Constant columns carry no information; leave them unscaled as StandardScaler does.
    scale[scale < 10 * np.finfo(np.float64).eps * np.maximum(1.0, np.abs(mean))] = 1.0
    return mean, scale


def standardize_columns(X, *, copy=True):
    """Z-score the columns of X with their own mean and standard deviation.

    Statistics are accumulated in float64, one block of rows at a time;
    constant columns are centred but left unscaled, as scikit-learn's
    ``StandardScaler`` leaves them.

    Parameters
    ----------
    X : array of shape (n_samples, n_features), float32 or float64
    copy : bool, default=True
        Return a new array; False z-scores X in place.

    Returns
    -------
    standardized : array of shape (n_samples, n_features), of X's dtype
    mean : array of shape (n_features,), float64
    scale : array of shape (n_features,), float64
        ``standardized = (X - mean) / scale``.

    Examples
    --------
    >>> import numpy as np
    >>> Z, mean, scale = standardize_columns(np.array([[1.0, 5.0], [3.0, 5.0]]))
    >>> Z, mean, scale
    (array([[-1.,  0.],
           [ 1.,  0.]]), array([2., 5.]), array([1., 1.]))
    """
    mean, scale = _column_stats(X)
    if copy:
        X = X - mean.astype(X.dtype)
    else:
        X -= mean.astype(X.dtype)
    X /= scale.astype(X.dtype)
    return X, mean, scale


class BaseRidgeCV(RegressorMixin, BaseEstimator):
    """Ridge from fMRI (or features) to flat targets, with a CV-chosen alpha per target.

    The scikit-learn estimator that the decoders (:class:`~brainldm.decoding.LatentDecoder`,
    :class:`~brainldm.decoding.TextDecoder`) and the encoder
    (:class:`~brainldm.encoding.VoxelwiseEncoder`) share. `fit` validates the
    data, turns X into the features the solver sees (:meth:`_fit_features`),
    calls :func:`solve_ridge_cv` and stores its results; `predict` applies the
    same features (:meth:`_predict_features`) and the weights. By default, the
    decoders' way, the features are the columns ``voxels``, standardised on
    the training rows, and the scaling is folded into ``coef_``; subclasses
    override the two feature methods. The parameters are those of the decoders.
    """

    _parameter_constraints = {
        "standardize": ["boolean"],
        "fit_intercept": ["boolean"],
        "alpha_per_target": ["boolean"],
        "n_targets_batch": list(_BATCH),
        "progress": ["boolean"],
    }

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
        progress=False,
    ):
        self.alphas = alphas
        self.cv = cv
        self.voxels = voxels
        self.standardize = standardize
        self.fit_intercept = fit_intercept
        self.alpha_per_target = alpha_per_target
        self.n_targets_batch = n_targets_batch
        self.device = device
        self.progress = progress

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
        X, y, splits = self._check_fit_input(X, y, groups)
        warn_repeated_rows(X, y, groups, self.cv, f"{type(self).__name__}.fit")
        features, owned, shift, scale = self._fit_features(X, groups)
        result = solve_ridge_cv(
            features,
            y,
            self.alphas,
            cv=splits,
            fit_intercept=self.fit_intercept,
            n_targets_batch=self.n_targets_batch,
            device=self.device,
            copy_X=not owned,
            progress=self.progress,
            check_input=False,
            **self._solver_options(),
        )
        self._set_weights(result.coef, result.intercept, shift, scale, y.ndim)
        if y.ndim == 1:
            self.best_alphas_ = float(result.best_alphas)
            self.cv_scores_ = float(result.cv_scores)
        else:
            self.best_alphas_ = result.best_alphas
            self.cv_scores_ = result.cv_scores
        return self

    def _set_weights(self, coef, intercept, shift, scale, y_ndim):
        """Store the solver's weights as ``coef_`` and ``intercept_`` on the raw columns."""
        if scale is not None:
            # Fold the scaling into the weights, so that they apply to the raw columns.
            coef /= scale.astype(coef.dtype).reshape(-1, *([1] * (coef.ndim - 1)))
            intercept = intercept - shift.astype(coef.dtype) @ coef
        self.coef_ = coef.T
        self.intercept_ = float(intercept) if y_ndim == 1 else intercept

    def _solver_options(self):
        """Options of :func:`solve_ridge_cv` that a subclass sets from its own parameters."""
        return {"alpha_per_target": self.alpha_per_target}

    def refit_at_chosen_alphas(self, X, y, groups=None):
        """A copy fitted on (X, y) at this fitted estimator's ``best_alphas_``, with no search.

        The copy prepares its features as `fit` does (columns, z-scoring, any reduction)
        and solves one ridge per target at the alpha this estimator chose for it: the
        same model refitted on other rows, e.g. on the training folds of a
        cross-validation that must describe this estimator rather than alphas chosen
        anew on each fold.

        Parameters
        ----------
        X : array of shape (n_samples, n_features)
            The rows to fit on, with the columns seen in `fit`.
        y : array of shape (n_samples, n_targets) or (n_samples,)
            Their targets, with the targets seen in `fit`.
        groups : array of shape (n_samples,), default=None
            Group label of each row, for the features of subclasses that use them.

        Returns
        -------
        refit : estimator
            A fitted clone of this estimator that keeps its ``best_alphas_``
            (``cv_scores_`` are not computed).

        Examples
        --------
        >>> import numpy as np
        >>> from brainldm.decoding import LatentDecoder
        >>> rng = np.random.default_rng(0)
        >>> X = rng.standard_normal((60, 8))
        >>> y = X @ rng.standard_normal((8, 3)) + rng.standard_normal((60, 3))
        >>> decoder = LatentDecoder().fit(X, y)
        >>> half = decoder.refit_at_chosen_alphas(X[:30], y[:30])
        >>> bool(np.array_equal(half.best_alphas_, decoder.best_alphas_)), half.coef_.shape
        (True, (3, 8))
        """
        check_is_fitted(self, "best_alphas_")
        refit = clone(self)
        X, y, _ = refit._check_fit_input(X, y, groups)
        features, _, shift, scale = refit._fit_features(X, groups)
        coef, intercept = solve_ridge(
            features,
            y,
            self.best_alphas_,
            fit_intercept=self.fit_intercept,
            n_targets_batch=self.n_targets_batch,
            device=self.device,
        )
        refit._set_weights(coef, intercept, shift, scale, y.ndim)
        refit.best_alphas_ = self.best_alphas_
        return refit

    def _check_fit_input(self, X, y, groups):
        """Validate data and parameters before any work; return X, y and the folds."""
        validate_params(self)
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None"
            )
        X, y = exact_float32(X), exact_float32(y)
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
        check_alphas(self.alphas)
        resolve_device(self.device)
        return X, y, _folds(self.cv, len(X), groups)

    def _fit_features(self, X, groups):
        """Features for the solver from validated X.

        Returns ``(features, owned, shift, scale)``: whether the solver may
        overwrite `features`, and the affine map ``(X - shift) / scale`` to fold
        into ``coef_`` (both None when the weights apply to the features as
        they are).
        """
        indices = _voxel_indices(self.voxels, X.shape[1])
        self.voxel_indices_ = np.arange(X.shape[1]) if indices is None else indices
        features = X if indices is None else X[:, indices]
        if not self.standardize:
            return features, indices is not None, None, None
        features, shift, scale = standardize_columns(features, copy=indices is None)
        return features, True, shift, scale

    def _predict_features(self, X):
        """The columns of validated X that ``coef_`` applies to."""
        if np.array_equal(self.voxel_indices_, np.arange(X.shape[1])):
            return X
        return X[:, self.voxel_indices_]

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
        features = self._predict_features(self._check_predict_input(X))
        return features @ self.coef_.T + self.intercept_

    def _check_predict_input(self, X):
        """Check that the estimator is fitted and X is finite with the fitted columns."""
        check_is_fitted(self)
        X = validate_data(
            self, exact_float32(X), reset=False, dtype=_FLOAT_DTYPES, ensure_all_finite=False
        )
        check_finite(X, "X")
        return X

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags
