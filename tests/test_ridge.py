"""Specification of the ridge solver, on numpy and torch inputs."""

import warnings

import numpy as np
import pytest
import torch
from himalaya.backend import set_backend
from himalaya.ridge import RidgeCV as HimalayaRidgeCV
from sklearn.linear_model import Ridge, RidgeCV
from sklearn.model_selection import KFold, LeaveOneGroupOut

from brainldm.decoding import LatentDecoder
from brainldm.ridge import (
    TAKAGI2023,
    RepeatedRowsWarning,
    check_finite,
    cv_splits,
    solve_ridge,
    solve_ridge_cv,
)

BACKENDS = ["numpy", "torch"]


def as_backend(array, backend):
    return torch.from_numpy(np.ascontiguousarray(array)) if backend == "torch" else array


def as_numpy(array):
    return array.numpy() if isinstance(array, torch.Tensor) else np.asarray(array)


def planted_problem(n_samples=200, n_features=20, noise=(0.1, 1.0, 3.0, 10.0), seed=0):
    """X, Y = X W + b + noise, with one noise level per target."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_samples, n_features))
    weights = rng.standard_normal((n_features, len(noise)))
    Y = X @ weights + 2.0 + np.asarray(noise) * rng.standard_normal((n_samples, len(noise)))
    return X, Y, weights


def closed_form_ridge(X, Y, alpha, fit_intercept):
    """(X'X + alpha I)^-1 X'Y on centred data, and the intercept."""
    x_mean = X.mean(0) if fit_intercept else np.zeros(X.shape[1])
    y_mean = Y.mean(0) if fit_intercept else np.zeros(Y.shape[1])
    Xc, Yc = X - x_mean, Y - y_mean
    coef = np.linalg.solve(Xc.T @ Xc + alpha * np.eye(X.shape[1]), Xc.T @ Yc)
    return coef, y_mean - x_mean @ coef


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("shape", [(40, 8), (15, 30)], ids=["n>p", "n<p"])
def test_single_alpha_equals_closed_form_ridge(backend, fit_intercept, shape):
    X, Y, _ = planted_problem(*shape)
    result = solve_ridge_cv(
        as_backend(X, backend), as_backend(Y, backend), [3.0], fit_intercept=fit_intercept
    )
    coef, intercept = closed_form_ridge(X, Y, 3.0, fit_intercept)
    np.testing.assert_allclose(as_numpy(result.coef), coef, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(as_numpy(result.intercept), intercept, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("shape", [(60, 6), (30, 50)], ids=["n>p", "n<p"])
def test_cv_scores_equal_refits_on_each_fold(shape):
    X, Y, _ = planted_problem(*shape)
    alphas = [0.1, 10.0, 1000.0]
    result = solve_ridge_cv(X, Y, alphas, cv=4)
    expected = np.zeros((len(alphas), Y.shape[1]))
    for train, test in KFold(4).split(X):
        for index, alpha in enumerate(alphas):
            model = Ridge(alpha=alpha).fit(X[train], Y[train])
            expected[index] -= ((Y[test] - model.predict(X[test])) ** 2).mean(0) / 4
    np.testing.assert_allclose(result.alpha_scores, expected, rtol=1e-8)
    np.testing.assert_allclose(result.cv_scores, expected.max(0), rtol=1e-8)


LOO_ALPHAS = np.logspace(-3, 4, 8)
LOO_NOISE = (0.1, 1.0, 3.0, 10.0, 0.5)


@pytest.mark.filterwarnings("ignore:the (smallest|largest) alpha:UserWarning")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("shape", [(40, 8), (15, 30), (60, 200)], ids=["n>p", "n<p", "n<<p"])
def test_leave_one_out_scores_equal_kfold_with_one_row_per_fold(shape, fit_intercept, dtype):
    # The smallest alphas, where 1 - h_ii is small, are the hard case in float32.
    X, Y, _ = planted_problem(*shape, noise=LOO_NOISE)
    X, Y = X.astype(dtype), Y.astype(dtype)
    kwargs = dict(alphas=LOO_ALPHAS, fit_intercept=fit_intercept)
    loo = solve_ridge_cv(X, Y, cv="loo", **kwargs)
    kfold = solve_ridge_cv(X, Y, cv=shape[0], **kwargs)
    rtol = 1e-10 if dtype == np.float64 else 1e-4
    assert loo.alpha_scores.dtype == dtype
    np.testing.assert_allclose(loo.alpha_scores, kfold.alpha_scores, rtol=rtol)
    np.testing.assert_array_equal(loo.best_alphas, kfold.best_alphas)
    np.testing.assert_allclose(loo.coef, kfold.coef, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(loo.intercept, kfold.intercept, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("shape", [(25, 6), (12, 20)], ids=["n>p", "n<p"])
def test_leave_one_out_errors_equal_refits_without_each_row(shape, fit_intercept):
    X, Y, _ = planted_problem(*shape, noise=LOO_NOISE)
    alphas = [0.01, 1.0, 100.0]
    result = solve_ridge_cv(X, Y, alphas, cv="loo", fit_intercept=fit_intercept)
    expected = np.zeros((len(alphas), Y.shape[1]))
    for row in range(len(X)):
        train = np.arange(len(X)) != row
        for index, alpha in enumerate(alphas):
            model = Ridge(alpha=alpha, fit_intercept=fit_intercept).fit(X[train], Y[train])
            expected[index] -= (Y[row] - model.predict(X[row : row + 1])[0]) ** 2 / len(X)
    np.testing.assert_allclose(result.alpha_scores, expected, rtol=1e-9)


@pytest.mark.filterwarnings("ignore:the (smallest|largest) alpha:UserWarning")
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("shape", [(80, 10), (30, 50)], ids=["n>p", "n<p"])
def test_leave_one_out_alphas_and_scores_are_scikit_learns_ridgecv(shape, fit_intercept):
    # RidgeCV's default scoring is the mean squared leave-one-out error, as here.
    rng = np.random.default_rng(5)
    X, Y, _ = planted_problem(*shape, noise=rng.uniform(0.1, 20.0, 40), seed=5)
    ours = solve_ridge_cv(X, Y, LOO_ALPHAS, cv="loo", fit_intercept=fit_intercept)
    theirs = RidgeCV(LOO_ALPHAS, fit_intercept=fit_intercept, alpha_per_target=True).fit(X, Y)
    np.testing.assert_array_equal(ours.best_alphas, theirs.alpha_)
    np.testing.assert_allclose(ours.cv_scores, theirs.best_score_, rtol=1e-9)
    np.testing.assert_allclose(ours.coef, theirs.coef_.T, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(ours.intercept, theirs.intercept_, rtol=1e-8, atol=1e-10)


@pytest.mark.filterwarnings("ignore:the (smallest|largest) alpha:UserWarning")
def test_leave_one_out_decomposes_once_where_five_folds_decompose_six_times(monkeypatch):
    from brainldm import ridge

    calls = []
    original = ridge._eigh

    def counting_eigh(matrix, dtype):
        calls.append(matrix.shape)
        return original(matrix, dtype)

    monkeypatch.setattr(ridge, "_eigh", counting_eigh)
    for shape in [(40, 8), (15, 30)]:
        X, Y, _ = planted_problem(*shape)
        calls.clear()
        solve_ridge_cv(X, Y, cv=5)
        assert len(calls) == 6
        calls.clear()
        solve_ridge_cv(X, np.repeat(Y, 3, axis=1), cv="loo", n_targets_batch=5)
        assert len(calls) == 1


def test_leave_one_out_batches_and_a_shared_alpha_do_not_change_its_meaning():
    X, Y, _ = planted_problem(noise=np.linspace(0.1, 5, 7))
    whole = solve_ridge_cv(X, Y, cv="loo", n_targets_batch=None)
    batched = solve_ridge_cv(X, Y, cv="loo", n_targets_batch=3, progress=True)
    for key in ("coef", "intercept", "best_alphas", "alpha_scores"):
        np.testing.assert_allclose(batched[key], whole[key], rtol=1e-10, atol=1e-12)
    shared = solve_ridge_cv(X, Y, cv="loo", n_targets_batch=3, alpha_per_target=False)
    np.testing.assert_allclose(shared.alpha_scores, whole.alpha_scores, rtol=1e-10)
    best = shared.alphas[whole.alpha_scores.mean(1).argmax()]
    np.testing.assert_array_equal(shared.best_alphas, best)
    coef, _ = closed_form_ridge(X, Y, best, fit_intercept=True)
    np.testing.assert_allclose(shared.coef, coef, rtol=1e-9)


@pytest.mark.filterwarnings("ignore:the (smallest|largest) alpha:UserWarning")
def test_leave_one_out_refuses_repeated_groups_and_takes_distinct_ones():
    X, Y, _ = planted_problem(n_samples=30, n_features=4)
    with pytest.raises(
        ValueError,
        match="cv='loo'.*groups has 15 distinct values for 30 rows.*"
        "Average the repetitions.*grouped K-fold",
    ):
        solve_ridge_cv(X, Y, cv="loo", groups=np.repeat(np.arange(15), 2))
    with pytest.raises(ValueError, match="cv='loo'.*groups has 10 distinct values"):
        LatentDecoder(cv="loo").fit(X, Y, groups=np.tile(np.arange(10), 3))
    distinct = solve_ridge_cv(X, Y, cv="loo", groups=np.arange(30)[::-1])
    np.testing.assert_array_equal(distinct.coef, solve_ridge_cv(X, Y, cv="loo").coef)


@pytest.mark.filterwarnings("ignore:the (smallest|largest) alpha:UserWarning")
def test_leave_one_out_warns_of_repeated_rows_without_groups():
    rng = np.random.default_rng(0)
    images = np.tile(np.arange(20), 2)
    X = rng.standard_normal((40, 5))
    y = rng.standard_normal((20, 3))[images]
    with pytest.warns(RepeatedRowsWarning, match="cv='loo'.*average the repetitions"):
        LatentDecoder(cv="loo").fit(X, y)


@pytest.mark.parametrize("backend", BACKENDS)
def test_planted_maps_are_recovered_with_alphas_that_grow_with_noise(backend):
    X, Y, weights = planted_problem(n_samples=400, noise=(0.05, 1.0, 4.0, 16.0))
    result = solve_ridge_cv(as_backend(X, backend), as_backend(Y, backend), np.logspace(-3, 5, 17))
    best = as_numpy(result.best_alphas)
    assert np.all(np.diff(best) > 0), best
    np.testing.assert_allclose(as_numpy(result.coef)[:, 0], weights[:, 0], atol=0.01)
    np.testing.assert_allclose(as_numpy(result.intercept)[:2], 2.0, atol=0.1)


def test_target_batches_do_not_change_the_result():
    X, Y, _ = planted_problem(noise=np.linspace(0.1, 5, 7))
    whole = solve_ridge_cv(X, Y, n_targets_batch=None)
    batched = solve_ridge_cv(X, Y, n_targets_batch=3)
    for key in ("coef", "intercept", "best_alphas", "alpha_scores"):
        np.testing.assert_allclose(batched[key], whole[key], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("shape", [(40, 8), (15, 30)], ids=["n>p", "n<p"])
def test_one_decomposition_is_held_at_a_time(monkeypatch, shape):
    # Memory stays bounded at NSD scale because a fold's eigenvectors are
    # freed before the next fold (or the refit) is decomposed.
    import gc
    import weakref

    from brainldm import ridge

    alive, held = [], []
    original = ridge._eigh

    def recording_eigh(matrix, dtype):
        gc.collect()
        held.append(sum(ref() is not None for ref in alive))
        eigenvalues, eigenvectors = original(matrix, dtype)
        alive.append(weakref.ref(eigenvectors))
        return eigenvalues, eigenvectors

    monkeypatch.setattr(ridge, "_eigh", recording_eigh)
    X, Y, _ = planted_problem(*shape)
    solve_ridge_cv(X, np.repeat(Y, 3, axis=1), cv=5, n_targets_batch=5)
    assert held == [0] * 6


def test_shared_alpha_is_the_best_on_average_over_targets():
    X, Y, _ = planted_problem()
    result = solve_ridge_cv(X, Y, np.logspace(-2, 4, 7), alpha_per_target=False)
    assert len(np.unique(result.best_alphas)) == 1
    assert result.best_alphas[0] == result.alphas[result.alpha_scores.mean(1).argmax()]
    coef, _ = closed_form_ridge(X, Y, result.best_alphas[0], fit_intercept=True)
    np.testing.assert_allclose(result.coef, coef, rtol=1e-9)


def test_one_dimensional_y_gives_one_dimensional_results():
    X, Y, _ = planted_problem()
    result = solve_ridge_cv(X, Y[:, 1], [1.0, 10.0])
    assert result.coef.shape == (X.shape[1],)
    assert result.intercept.shape == result.best_alphas.shape == ()
    np.testing.assert_allclose(result.coef, solve_ridge_cv(X, Y, [1.0, 10.0]).coef[:, 1])


def test_float32_inputs_give_float32_results_close_to_float64():
    X, Y, _ = planted_problem()
    single = solve_ridge_cv(X.astype(np.float32), Y.astype(np.float32), [1.0])
    double = solve_ridge_cv(X, Y, [1.0])
    assert single.coef.dtype == np.float32
    np.testing.assert_allclose(single.coef, double.coef, rtol=1e-4, atol=1e-5)


def test_torch_inputs_give_torch_outputs_and_x_is_left_unchanged():
    X, Y, _ = planted_problem()
    X_tensor = torch.from_numpy(X.copy())
    result = solve_ridge_cv(X_tensor, torch.from_numpy(Y), [1.0])
    assert isinstance(result.coef, torch.Tensor)
    np.testing.assert_array_equal(X_tensor.numpy(), X)


def test_copy_x_false_centres_x_in_place_but_never_a_read_only_x():
    X, Y, _ = planted_problem()
    expected = solve_ridge_cv(X, Y, [1.0])
    owned = X.copy()
    in_place = solve_ridge_cv(owned, Y, [1.0], copy_X=False)
    np.testing.assert_allclose(in_place.coef, expected.coef)
    np.testing.assert_allclose(owned, X - X.mean(0))
    read_only = X.copy()
    read_only.flags.writeable = False
    solve_ridge_cv(read_only, Y, [1.0], copy_X=False)
    np.testing.assert_array_equal(read_only, X)


def test_solve_ridge_takes_one_alpha_per_target():
    X, Y, _ = planted_problem()
    alphas = np.array([0.5, 5.0, 50.0, 500.0])
    coef, intercept = solve_ridge(X, Y, alphas)
    for target, alpha in enumerate(alphas):
        model = Ridge(alpha=alpha).fit(X, Y[:, target])
        np.testing.assert_allclose(coef[:, target], model.coef_, rtol=1e-9)
        np.testing.assert_allclose(intercept[target], model.intercept_, rtol=1e-9)


def test_takagi2023_settings_reproduce_himalaya_ridgecv():
    X, Y, _ = planted_problem(n_samples=100, n_features=30)
    X = (X - X.mean(0)) / X.std(0)
    set_backend("numpy")
    original = HimalayaRidgeCV(alphas=np.asarray(TAKAGI2023["alphas"])).fit(X, Y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ours = solve_ridge_cv(X, Y, **TAKAGI2023)
    np.testing.assert_array_equal(ours.best_alphas, original.best_alphas_)
    np.testing.assert_allclose(ours.coef, original.coef_, rtol=1e-8)
    np.testing.assert_array_equal(ours.intercept, 0.0)


def test_best_alpha_on_an_edge_for_many_targets_warns():
    X, Y, _ = planted_problem(noise=(50.0, 50.0, 50.0, 0.1))
    with pytest.warns(UserWarning, match=r"largest alpha \(100\) was best for 75% of the targets"):
        solve_ridge_cv(X, Y, [1.0, 10.0, 100.0])


def test_best_alpha_inside_the_grid_does_not_warn():
    X, Y, _ = planted_problem()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        solve_ridge_cv(X, Y, np.logspace(-4, 6, 11))


def test_int_cv_without_groups_is_unshuffled_kfold():
    splits = cv_splits(5, 23)
    for (train, test), (kf_train, kf_test) in zip(
        splits, KFold(5).split(np.zeros(23)), strict=True
    ):
        np.testing.assert_array_equal(train, kf_train)
        np.testing.assert_array_equal(test, kf_test)


def test_grouped_folds_never_split_a_group():
    rng = np.random.default_rng(0)
    groups = rng.permutation(np.repeat(np.arange(40), 3))
    splits = cv_splits(5, len(groups), groups)
    assert len(splits) == 5
    for train, test in splits:
        assert not set(groups[train]) & set(groups[test])
    assert sorted(np.concatenate([test for _, test in splits])) == list(range(len(groups)))


def test_a_splitter_is_used_with_the_groups():
    groups = np.repeat([0, 1, 2], 4)
    splits = cv_splits(LeaveOneGroupOut(), 12, groups)
    assert [np.unique(groups[test]).tolist() for _, test in splits] == [[0], [1], [2]]


@pytest.mark.skipif(torch.cuda.is_available(), reason="the error path needs a machine without CUDA")
def test_cuda_request_without_a_gpu_raises_runtime_error():
    X, Y, _ = planted_problem()
    with pytest.raises(RuntimeError, match="device='cuda' was requested but torch sees no CUDA"):
        solve_ridge_cv(X, Y, device="cuda")


@pytest.mark.gpu
@pytest.mark.parametrize("cv", [5, "loo"])
@pytest.mark.parametrize("shape", [(200, 20), (30, 50)], ids=["primal", "dual"])
def test_cuda_results_equal_cpu_results(cv, shape):
    X, Y, _ = planted_problem(*shape)
    cpu = solve_ridge_cv(X, Y, cv=cv)
    cuda = solve_ridge_cv(X, Y, cv=cv, device="cuda")
    np.testing.assert_allclose(cuda.coef, cpu.coef, rtol=1e-6)
    np.testing.assert_array_equal(cuda.best_alphas, cpu.best_alphas)


def with_value(array, row, column, value):
    array = array.copy()
    array[row, column] = value
    return array


X_GOOD, Y_GOOD, _ = planted_problem(n_samples=30, n_features=4)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            dict(X=with_value(X_GOOD, 3, 2, np.nan)),
            r"X contains 1 NaN and 0 infinite values, at \(row, column\) \(3, 2\)",
        ),
        (
            dict(Y=with_value(with_value(Y_GOOD, 5, 0, np.inf), 7, 1, -np.inf)),
            r"Y contains 0 NaN and 2 infinite values, at \(row, column\) \(5, 0\), \(7, 1\)",
        ),
        (dict(Y=Y_GOOD[:-1]), "X and Y must have the same number of rows, got 30 and 29"),
        (dict(X=X_GOOD[:, 0]), r"X must be 2-D \(n_samples, n_features\), got shape \(30,\)"),
        (dict(X=np.zeros((30, 0))), r"X is empty: shape \(30, 0\)"),
        (dict(alphas=[1.0, 0.0]), r"alphas must be positive and finite, got \[1.0, 0.0\]"),
        (dict(alphas=[-1.0]), r"alphas must be positive and finite, got \[-1.0\]"),
        (dict(groups=np.arange(29)), r"groups must have one label per sample: got shape \(29,\)"),
        (
            dict(groups=np.repeat([0, 1, 2], 10)),
            "groups has 3 distinct values, fewer than cv=5 folds",
        ),
        (dict(cv=1), "cv must be an int >= 2, got 1"),
        (dict(cv="LOO"), "cv must be an int >= 2, a scikit-learn splitter.* or.*'loo', got 'LOO'"),
        (dict(X=X_GOOD[:1], Y=Y_GOOD[:1], cv="loo"), "cv='loo' needs at least 2 samples"),
        (
            dict(n_targets_batch=0),
            r"The 'n_targets_batch' parameter of target_batches must be an int in the range "
            r"\[1, inf\) or None\. Got 0 instead",
        ),
    ],
    ids=[
        "nan-in-X",
        "inf-in-Y",
        "rows-mismatch",
        "1d-X",
        "empty-X",
        "zero-alpha",
        "negative-alpha",
        "groups-length",
        "too-few-groups",
        "cv-one",
        "cv-unknown-string",
        "loo-one-row",
        "batch-zero",
    ],
)
def test_bad_input_raises_a_value_error_that_names_the_problem(kwargs, message):
    arguments = dict(X=X_GOOD, Y=Y_GOOD, alphas=[1.0]) | kwargs
    X, Y, alphas = arguments.pop("X"), arguments.pop("Y"), arguments.pop("alphas")
    with pytest.raises(ValueError, match=message):
        solve_ridge_cv(X, Y, alphas, **arguments)


def test_finite_check_reports_one_dimensional_positions():
    with pytest.raises(ValueError, match="y contains 2 NaN and 0 infinite values, at index 1, 3"):
        check_finite(np.array([0.0, np.nan, 1.0, np.nan]), "y")


@pytest.mark.slow
@pytest.mark.parametrize("alpha_per_target", [True, False])
@pytest.mark.parametrize("shape", [(120, 30), (40, 90)], ids=["primal", "dual"])
def test_distributed_solve_equals_the_serial_one(dask_client, dask_tasks, shape, alpha_per_target):
    rng = np.random.default_rng(3)
    n, p = shape
    X = rng.standard_normal(shape).astype(np.float32)
    Y = X @ rng.standard_normal((p, 70)) + 4 * rng.standard_normal((n, 70))
    Y = Y.astype(np.float32)
    groups = np.repeat(np.arange(n // 2), 2)
    kwargs = dict(groups=groups, n_targets_batch=16, alpha_per_target=alpha_per_target)
    serial = solve_ridge_cv(X, Y, **kwargs)
    before = dask_tasks()
    with dask_client.as_current():
        distributed = solve_ridge_cv(X, Y, distributed=True, **kwargs)
    # Every target batch ran as a task on the workers (two passes with a shared alpha).
    assert dask_tasks() - before == len(range(0, 70, 16)) * (1 if alpha_per_target else 2)
    np.testing.assert_array_equal(distributed.best_alphas, serial.best_alphas)
    for key in ("coef", "intercept", "cv_scores", "alpha_scores"):
        np.testing.assert_allclose(distributed[key], serial[key], rtol=1e-5, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("shape", [(120, 30), (40, 90)], ids=["primal", "dual"])
def test_distributed_leave_one_out_equals_the_serial_one(dask_client, dask_tasks, shape):
    X, Y, _ = planted_problem(*shape, noise=np.linspace(0.5, 8.0, 50), seed=3)
    X, Y = X.astype(np.float32), Y.astype(np.float32)
    kwargs = dict(cv="loo", n_targets_batch=16)
    serial = solve_ridge_cv(X, Y, **kwargs)
    before = dask_tasks()
    with dask_client.as_current():
        distributed = solve_ridge_cv(X, Y, distributed=True, **kwargs)
    assert dask_tasks() - before == len(range(0, 50, 16))
    np.testing.assert_array_equal(distributed.best_alphas, serial.best_alphas)
    for key in ("coef", "intercept", "cv_scores", "alpha_scores"):
        np.testing.assert_allclose(distributed[key], serial[key], rtol=1e-5, atol=1e-6)


def test_distributed_without_a_client_says_how_to_make_one():
    with pytest.raises(ValueError, match="found no dask client.*Client\\("):
        solve_ridge_cv(np.ones((10, 2)) + np.eye(10, 2), np.arange(10.0), distributed=True)


def test_distributed_without_dask_names_the_extra(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ImportError, match=r'pip install "brainldm\[distributed\]"'):
        solve_ridge_cv(np.ones((10, 2)) + np.eye(10, 2), np.arange(10.0), distributed=True)


def test_reversed_views_are_solved_as_their_copies():
    rng = np.random.default_rng(4)
    X, Y = rng.standard_normal((30, 4)), rng.standard_normal((30, 6))
    reversed_result = solve_ridge_cv(X[::-1], Y[:, ::-1], alphas=[1.0, 10.0])
    copied_result = solve_ridge_cv(X[::-1].copy(), Y[:, ::-1].copy(), alphas=[1.0, 10.0])
    np.testing.assert_array_equal(reversed_result.coef, copied_result.coef)
