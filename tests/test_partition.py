"""Specification of the banded variance partition: how bands share each voxel's accuracy."""

import numpy as np
import pytest
import torch
from himalaya.backend import get_backend, set_backend
from himalaya.ridge import RidgeCV
from sklearn.model_selection import GridSearchCV, GroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

import brainldm
from brainldm.encoding import BandedVariancePartitioner
from brainldm.features import FeatureReducer
from brainldm.ridge import cv_splits, standardize_columns

ALPHAS = np.logspace(-2, 5, 8)
WIDTH = 8  # columns per band
N_PER_CLASS = 10  # voxels driven by A only, then B only, then both

# Small noisy fits may pick an edge of the grid; himalaya says when rows are few.
pytestmark = pytest.mark.filterwarnings("ignore:Solving banded ridge is slower:UserWarning")


def _centred(array):
    return array - array.mean(0)


def planted(seed=0, n_images=300, n_test=200, rho=0.7, noise=0.5):
    """Two bands correlated at rho column by column; voxels driven by A, by B, and by both.

    Training rows are 2 trials per image (noise sd `noise`), test rows their
    average. Returns the data and, per voxel, the fraction of its explained
    variance that belongs to A by the product measure and by unique variance,
    computed on the test rows' noise-free signal.
    """
    rng = np.random.default_rng(seed)
    n = n_images + n_test
    A = rng.standard_normal((n, WIDTH))
    B = rho * A + np.sqrt(1 - rho**2) * rng.standard_normal((n, WIDTH))
    W, V = rng.standard_normal((2, WIDTH, 3 * N_PER_CLASS)) / np.sqrt(WIDTH)
    W[:, N_PER_CLASS : 2 * N_PER_CLASS] = 0  # B only
    V[:, :N_PER_CLASS] = 0  # A only
    scale = (A @ W + B @ V)[:n_images].std(0)
    from_a, from_b = A @ W / scale, B @ V / scale
    signal = from_a + from_b
    trials = np.tile(np.arange(n_images), 2)
    Y = signal[trials] + noise * rng.standard_normal((len(trials), signal.shape[1]))
    test = np.arange(n_images, n)
    Y_test = signal[test] + noise / np.sqrt(2) * rng.standard_normal((n_test, signal.shape[1]))
    s = _centred(signal[test])

    def r2_of(features):
        features = _centred(features)
        residual = s - features @ np.linalg.lstsq(features, s, rcond=None)[0]
        return 1 - (residual**2).sum(0) / (s**2).sum(0)

    split_a = (_centred(from_a[test]) * s).sum(0) / (s**2).sum(0)
    unique_a, unique_b = 1 - r2_of(B[test]), 1 - r2_of(A[test])
    X = np.hstack([A, B])
    truth = {"split": split_a, "unique": unique_a / (unique_a + unique_b)}
    return X[trials], Y, trials, X[test], Y_test, truth


def partitioner(**params):
    defaults = {"bands": {"a": WIDTH, "b": WIDTH}, "n_components": None, "n_iter": 5}
    return BandedVariancePartitioner(**{"alphas": ALPHAS, **defaults, **params})


@pytest.fixture(scope="module")
def fitted():
    X, Y, images, X_test, Y_test, truth = planted()
    model = partitioner().fit(X, Y, groups=images)
    return model, X_test, Y_test, model.partition(X_test, Y_test), truth


def _fraction_a(shares):
    """Share of band a in the variance attributed to a or b (negative shares count as 0)."""
    a, b = np.clip(shares["a"], 0, None), np.clip(shares["b"], 0, None)
    return a / (a + b)


def test_partitioner_is_exported_at_top_level():
    assert brainldm.BandedVariancePartitioner is BandedVariancePartitioner


@pytest.mark.parametrize("measure", ["split", "unique"])
def test_each_planted_voxel_gets_its_variance_attributed_to_the_bands_that_drive_it(
    fitted, measure
):
    *_, result, truth = fitted
    fraction_a = _fraction_a(result[measure])
    a_only, b_only, both = np.split(np.arange(3 * N_PER_CLASS), 3)
    # Measured over seeds 0-4: per voxel at least 0.944 (split) and 0.990 (unique).
    assert fraction_a[a_only].min() > 0.9
    assert (1 - fraction_a[b_only]).min() > 0.9
    # Voxels driven by both: the planted shares (0.12-0.84 of A here) within 0.1 of the
    # explained variance, every voxel (measured at most 0.082 over seeds 0-4).
    assert np.abs(fraction_a[both] - truth[measure][both]).max() < 0.1
    assert result.r2_joint.min() > 0.5


def test_the_band_that_drives_a_voxel_gets_the_larger_weight(fitted):
    model, *_ = fitted
    log_ratio = model.deltas_[0] - model.deltas_[1]  # log of band a's scaling over band b's
    # Measured: 2.3 for every A-only voxel, -1.1 for every B-only voxel (5 weightings tried).
    assert log_ratio[:N_PER_CLASS].min() > 0.5
    assert log_ratio[N_PER_CLASS : 2 * N_PER_CLASS].max() < -0.5


def test_split_sums_to_the_joint_r2_of_the_centred_predictions(fitted):
    model, X_test, Y_test, result, _ = fitted
    np.testing.assert_allclose(result.split["a"] + result.split["b"], result.r2_joint, atol=1e-12)
    y, predicted = _centred(Y_test), _centred(model.predict(X_test))
    r2 = 1 - ((y - predicted) ** 2).sum(0) / (y**2).sum(0)
    np.testing.assert_allclose(result.r2_joint, r2, atol=1e-10)
    r = (y * predicted).sum(0) / np.sqrt((y**2).sum(0) * (predicted**2).sum(0))
    np.testing.assert_allclose(result.r_joint, r, atol=1e-12)


def test_unique_is_the_joint_r2_minus_the_other_band_alone(fitted):
    model, X_test, Y_test, result, _ = fitted
    y = _centred(Y_test)
    for band, other in (("a", "b"), ("b", "a")):  # unique to one band: joint - the other alone
        alone = _centred(model.predict(X_test, bands=band))
        r2 = 1 - ((y - alone) ** 2).sum(0) / (y**2).sum(0)
        np.testing.assert_allclose(result.r2_alone[band], r2, atol=1e-10)
        np.testing.assert_allclose(result.unique[other], result.r2_joint - r2)


def test_a_band_alone_is_himalaya_ridge_with_the_same_alphas_and_folds():
    X, Y, images, X_test, _, _ = planted(n_images=120, n_test=10)
    model = partitioner().fit(X, Y, groups=images)
    band_a, mean, scale = standardize_columns(X[:, :WIDTH])
    folds = cv_splits(5, len(X), images)
    reference = RidgeCV(alphas=ALPHAS, fit_intercept=True, cv=folds).fit(band_a, Y)
    np.testing.assert_allclose(model.models_[("a",)].coef, reference.coef_.T, rtol=1e-8)
    np.testing.assert_allclose(model.models_[("a",)].best_alphas, reference.best_alphas_)
    expected = reference.predict((X_test[:, :WIDTH] - mean) / scale)
    np.testing.assert_allclose(model.predict(X_test, bands="a"), expected, atol=1e-10)


def test_significance_is_that_of_the_joint_r(fitted):
    *_, result, _ = fitted
    assert result.significant.all()
    assert result.q.max() < 1e-10
    noise = np.random.default_rng(5).standard_normal((200, 3 * N_PER_CLASS))
    assert fitted[0].partition(fitted[1], noise).significant.mean() < 0.2


def test_each_band_is_reduced_by_a_pca_on_one_row_per_training_image():
    X, Y, images, X_test, Y_test, _ = planted(n_images=120, n_test=20)
    model = partitioner(n_components=3).fit(X, Y, groups=images)
    assert model.n_components_ == {"a": 3, "b": 3}
    assert [model.reducers_[band].pca_.n_samples_ for band in "ab"] == [120, 120]
    assert model.coef_.shape == (3 * N_PER_CLASS, 6)
    np.testing.assert_allclose(model.reducers_["a"].mean_, X[:, :WIDTH].mean(0))
    assert model.partition(X_test, Y_test).r2_joint.shape == (3 * N_PER_CLASS,)


def test_three_bands_take_unique_variance_from_the_joint_model_without_each():
    X, Y, images, X_test, Y_test, _ = planted(n_images=100, n_test=20)
    X, X_test = np.hstack([X, X[:, :2] ** 2]), np.hstack([X_test, X_test[:, :2] ** 2])
    model = partitioner(bands=[("a", WIDTH), ("b", WIDTH), ("c", None)]).fit(X, Y, images)
    assert model.band_columns_["c"] == slice(2 * WIDTH, 2 * WIDTH + 2)
    assert set(model.models_) == {
        ("a", "b", "c"),
        ("a",),
        ("b",),
        ("c",),
        ("b", "c"),
        ("a", "c"),
        ("a", "b"),
    }
    result = model.partition(X_test, Y_test)
    y, without_a = _centred(Y_test), _centred(model.predict(X_test, bands=["b", "c"]))
    r2 = 1 - ((y - without_a) ** 2).sum(0) / (y**2).sum(0)
    np.testing.assert_allclose(result.unique["a"], result.r2_joint - r2, atol=1e-10)


def test_joint_model_only_leaves_unique_variance_out():
    X, Y, images, X_test, Y_test, _ = planted(n_images=100, n_test=20)
    model = partitioner(reduced_models=False).fit(X, Y, groups=images)
    assert list(model.models_) == [("a", "b")]
    result = model.partition(X_test, Y_test)
    assert result.unique is None and result.r2_alone is None
    with pytest.raises(ValueError, match=r"no model was fitted on the bands \['a'\]"):
        model.predict(X_test, bands="a")


def test_one_voxel_as_1d_y():
    X, Y, images, X_test, Y_test, _ = planted(n_images=100, n_test=20)
    model = partitioner().fit(X, Y[:, 0], groups=images)
    assert model.predict(X_test).shape == (20,)
    assert model.coef_.shape == (2 * WIDTH,)
    assert isinstance(model.intercept_, float)
    assert model.partition(X_test, Y_test[:, 0]).split["a"].shape == (1,)


def test_constant_test_voxels_give_nan_with_a_warning(fitted):
    model, X_test, Y_test, _, _ = fitted
    Y_test = Y_test.copy()
    Y_test[:, 0] = 3.0
    with pytest.warns(UserWarning, match="1 of 30 voxels"):
        result = model.partition(X_test, Y_test)
    assert np.isnan([result.r_joint[0], result.split["a"][0], result.unique["b"][0]]).all()
    assert not np.isnan(result.r2_joint[1:]).any()


def test_works_in_a_pipeline_and_under_grid_search():
    X, Y, images, X_test, Y_test, _ = planted(n_images=100, n_test=40)
    pipeline = make_pipeline(FunctionTransformer(), partitioner(n_iter=2))
    search = GridSearchCV(
        pipeline, {"bandedvariancepartitioner__n_components": [2, None]}, cv=GroupKFold(2)
    )
    search.fit(X, Y, groups=images)
    assert search.best_params_ == {"bandedvariancepartitioner__n_components": None}
    assert 0.5 < search.score(X_test, Y_test) < 1


@pytest.mark.parametrize("device", [None, "cpu"])
def test_the_himalaya_backend_is_restored_after_fit_and_partition(device):
    X, Y, images, X_test, Y_test, _ = planted(n_images=60, n_test=10)
    previous = get_backend().name
    set_backend("torch")
    try:
        model = partitioner(device=device).fit(X, Y, groups=images)
        assert get_backend().name == "torch"
        model.partition(X_test, Y_test)
        assert get_backend().name == "torch"
        reference = partitioner().fit(X, Y, groups=images)
        np.testing.assert_allclose(model.coef_, reference.coef_, rtol=1e-6, atol=1e-9)
    finally:
        set_backend(previous)


def test_the_backend_is_restored_when_the_fit_fails(monkeypatch):
    from himalaya.ridge import GroupRidgeCV

    X, Y, images, *_ = planted(n_images=60, n_test=10)

    def failing(*args, **kwargs):
        raise RuntimeError("solver failed")

    monkeypatch.setattr(GroupRidgeCV, "fit", failing)
    previous = get_backend().name
    set_backend("torch")
    try:
        with pytest.raises(RuntimeError, match="solver failed"):
            partitioner().fit(X, Y, groups=images)
        assert get_backend().name == "torch"
    finally:
        set_backend(previous)


def test_device_none_and_cpu_are_the_same_computation():
    # As everywhere in brainldm, device=None is the CPU: the same fit as device="cpu".
    X, Y, images, X_test, Y_test, _ = planted(n_images=60, n_test=10)
    default = partitioner().fit(X, Y, groups=images)
    cpu = partitioner(device="cpu").fit(X, Y, groups=images)
    np.testing.assert_array_equal(cpu.coef_, default.coef_)
    np.testing.assert_array_equal(
        cpu.partition(X_test, Y_test).split["a"], default.partition(X_test, Y_test).split["a"]
    )


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="a GPU is present")
def test_cuda_without_a_gpu_says_so_before_any_work():
    X, Y, images, _, _, _ = planted()
    with pytest.raises(RuntimeError, match="torch sees no CUDA device"):
        partitioner(device="cuda").fit(X, Y, groups=images)


@pytest.mark.gpu
def test_cuda_fits_match_numpy():
    X, Y, images, X_test, Y_test, _ = planted()
    gpu = partitioner(device="cuda").fit(X, Y, groups=images).partition(X_test, Y_test)
    cpu = partitioner().fit(X, Y, groups=images).partition(X_test, Y_test)
    np.testing.assert_allclose(gpu.split["a"], cpu.split["a"], atol=1e-6)
    assert get_backend().name == "numpy"


BAD = [
    ({"bands": {"a": WIDTH, "b": WIDTH + 1}}, None, r"take 17 columns, but X has 16 feature"),
    ({"bands": {"a": WIDTH}}, None, "at least two distinct bands"),
    ({"bands": [("a", 4), ("a", 12)]}, None, "at least two distinct bands"),
    ({"bands": [("a", None), ("b", None)]}, None, "at most one band"),
    ({"bands": [("a", 16), ("b", None)]}, None, "none left for the band given as None"),
    ({"bands": [("a", 0), ("b", 16)]}, None, r"bands\['a'\]"),
    ({"bands": ["a", "b"]}, None, "bands must map band names"),
    ({"solver_params": {"Y_in_cpu": True}}, None, r"Y_in_cpu \(set Y_in_cpu= instead\)"),
    ({"solver_params": {"n_iter": 3}}, None, r"n_iter \(set n_iter= instead\)"),
    ({"solver_params": {"n_targets": 3}}, None, "does not take"),
    ({"device": "gpu"}, None, "'device' parameter of BandedVariancePartitioner must be one of"),
    ({"alphas": [-1.0]}, None, "alphas must be positive"),
    ({"n_iter": 0}, None, "n_iter"),
    ({"solver": "svd"}, None, "'solver' parameter of BandedVariancePartitioner must be a str"),
    ({"solver": "dual", "device": "cuda"}, None, r"solver='dual' runs on the CPU only"),
    (
        {"solver": "auto", "solver_params": {"diagonalize_method": "svd"}},
        None,
        r"\['diagonalize_method'\] apply to the primal solver only",
    ),
    (
        {"solver_params": {"conservative": True, "local_alpha": False}},
        None,
        "conservative=True needs local_alpha=True",
    ),
    ({}, "nan_in_b", r"band 'b' of X contains 1 NaN"),
]


@pytest.mark.parametrize(("params", "data", "match"), BAD, ids=[m for *_, m in BAD])
def test_bad_input_is_refused_before_any_work(monkeypatch, params, data, match):
    X, Y, images, *_ = planted(n_images=60, n_test=10)
    if data == "nan_in_b":
        X = X.copy()
        X[3, WIDTH + 1] = np.nan
    monkeypatch.setattr(FeatureReducer, "fit_transform", None)  # any work would fail
    with pytest.raises(ValueError, match=match):
        partitioner(**params).fit(X, Y, groups=images)


def test_unknown_band_in_a_query_is_refused(fitted):
    model, X_test, *_ = fitted
    with pytest.raises(ValueError, match=r"unknown band 'c': the bands are \['a', 'b'\]"):
        model.predict(X_test, bands=["a", "c"])


def test_partition_refuses_y_of_the_wrong_shape(fitted):
    model, X_test, Y_test, *_ = fitted
    with pytest.raises(ValueError, match=r"Y must have shape \(200, 30\)"):
        model.partition(X_test, Y_test[:, :5])


def wide(seed=0, n_images=60, widths=(80, 60), n_voxels=12, dtype=np.float64):
    """Two trials per image of two bands wider together than the rows; voxels driven by each."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_images + 20, sum(widths))).astype(dtype)
    weights = rng.standard_normal((sum(widths), n_voxels)) / np.sqrt(sum(widths))
    weights[widths[0] :, : n_voxels // 3] = 0  # the first third: band a only
    weights[: widths[0], n_voxels // 3 : 2 * (n_voxels // 3)] = 0  # the second: band b only
    signal = X @ weights
    images = np.repeat(np.arange(n_images), 2)
    Y = signal[images] + rng.standard_normal((len(images), n_voxels))
    bands = {"a": widths[0], "b": widths[1]}
    return X[images], Y.astype(dtype), images, X[n_images:], signal[n_images:], bands


def _fit_both(X, Y, images, bands, **params):
    settings = {"bands": bands, "n_components": None, "n_iter": 4, **params}
    return [
        partitioner(solver=solver, **settings).fit(X, Y, groups=images)
        for solver in ("primal", "dual")
    ]


def _assert_same_models(primal, dual, atol):
    assert list(primal.models_) == list(dual.models_)
    for key, reference in primal.models_.items():
        model = dual.models_[key]
        # The same band weighting and alpha chosen for every voxel: deltas equal to rounding.
        np.testing.assert_allclose(model.deltas, reference.deltas, rtol=1e-5, err_msg=str(key))
        np.testing.assert_allclose(model.best_alphas, reference.best_alphas, rtol=1e-5)
        np.testing.assert_allclose(model.cv_scores, reference.cv_scores, rtol=1e-4)
        scale = np.abs(reference.coef).max()
        np.testing.assert_allclose(model.coef, reference.coef, atol=atol * scale, rtol=0)
        np.testing.assert_allclose(model.intercept, reference.intercept, atol=atol * scale)


# Relative tolerance of the coefficients: himalaya's primal solver in float32 is itself off
# by 1.0e-5 of the largest coefficient here (against float64), the dual (float32 products) by 2e-6.
@pytest.mark.parametrize(("dtype", "atol"), [(np.float64, 1e-10), (np.float32, 1e-4)])
def test_the_dual_solver_fits_the_primal_models_with_more_features_than_rows(dtype, atol):
    X, Y, images, X_test, Y_test, bands = wide(dtype=dtype)
    primal, dual = _fit_both(X, Y, images, bands)
    assert len(X) < 140 and primal.coef_.dtype == dual.coef_.dtype == dtype
    # The search matters here: the voxels do not all pick the same weighting and alpha.
    assert len(np.unique(primal.deltas_[0] - primal.deltas_[1])) > 1
    assert len(np.unique(primal.best_alphas_.round(3))) > 1
    _assert_same_models(primal, dual, atol=atol)
    np.testing.assert_allclose(
        dual.predict(X_test), primal.predict(X_test), atol=atol * np.abs(Y_test).max()
    )
    expected, result = primal.partition(X_test, Y_test), dual.partition(X_test, Y_test)
    np.testing.assert_allclose(result.r2_joint, expected.r2_joint, atol=atol)
    for band in bands:
        np.testing.assert_allclose(result.split[band], expected.split[band], atol=atol)
        np.testing.assert_allclose(result.unique[band], expected.unique[band], atol=atol)
    np.testing.assert_array_equal(result.significant, expected.significant)


def test_the_dual_solver_fits_the_primal_models_with_more_rows_than_features():
    X, Y, images, X_test, _, _ = planted(n_images=100, n_test=20)
    # Not z-scored, off zero: the intercept must undo the bands' means.
    X, X_test = X + np.arange(2 * WIDTH), X_test + np.arange(2 * WIDTH)
    bands = {"a": WIDTH, "b": WIDTH}
    primal, dual = _fit_both(X, Y, images, bands, standardize=False)
    assert np.abs(primal.intercept_ - Y.mean(0)).min() > 0.1
    _assert_same_models(primal, dual, atol=1e-9)
    np.testing.assert_allclose(dual.predict(X_test), primal.predict(X_test), atol=1e-8)


SEARCH_SETTINGS = [
    {"local_alpha": False},
    {"conservative": True},
    {"jitter_alphas": True},
    {"concentration": 1.0, "n_alphas_batch": 3, "n_targets_batch_refit": 5},
]


@pytest.mark.parametrize("settings", SEARCH_SETTINGS, ids=[str(s) for s in SEARCH_SETTINGS])
def test_the_dual_solver_honours_the_random_search_settings(settings):
    X, Y, images, *_, bands = wide(seed=1, n_images=50)
    primal, dual = _fit_both(X, Y, images, bands, solver_params=settings, n_targets_batch=5)
    _assert_same_models(primal, dual, atol=1e-10)
    default = partitioner(bands=bands, n_components=None, n_iter=4, solver="dual")
    default.fit(X, Y, groups=images)
    # Each setting changes the search: it is not ignored.
    assert not np.allclose(default.coef_, dual.coef_, atol=1e-6)


def test_auto_solves_in_the_dual_the_models_with_more_features_than_rows():
    X, Y, images, *_, bands = wide(n_images=50)  # 100 rows: a + b 140 features, a 80, b 60
    primal, dual = _fit_both(X, Y, images, bands)
    auto = partitioner(bands=bands, n_components=None, n_iter=4, solver="auto")
    auto.fit(X, Y, groups=images)
    np.testing.assert_array_equal(auto.models_[("a", "b")].coef, dual.models_[("a", "b")].coef)
    for key in [("a",), ("b",)]:
        np.testing.assert_array_equal(auto.models_[key].coef, primal.models_[key].coef)
    X, Y, images, *_ = planted(n_images=60, n_test=10)  # 120 rows, 16 features
    primal, _ = _fit_both(X, Y, images, {"a": WIDTH, "b": WIDTH})
    auto = partitioner(n_iter=4, solver="auto").fit(X, Y, groups=images)
    np.testing.assert_array_equal(auto.coef_, primal.coef_)


def test_the_dual_solver_drops_the_kernel_null_space_whatever_the_alpha():
    # Repeated rows and centring leave the kernel a null space whose eigenvalues are rounding
    # noise, far above an alpha of 1e-9 at this scale: exact arithmetic drops those directions,
    # so the fit is the minimum-norm least-squares one, and the held-out scores stay sane.
    X, Y, images, *_, bands = wide()
    X = 1e4 * X
    model = partitioner(bands=bands, n_components=None, standardize=False, alphas=[1e-9], n_iter=2)
    model.set_params(solver="dual", reduced_models=False).fit(X, Y, groups=images)
    assert model.cv_scores_.min() > -3  # held-out MSE of unit-noise voxels
    X, Y = X - X.mean(0), Y - Y.mean(0)
    for voxel in range(Y.shape[1]):
        scales = np.sqrt(np.repeat(np.exp(model.deltas_[:, voxel]), [80, 60]))
        expected = scales * (np.linalg.pinv(X * scales) @ Y[:, voxel])
        np.testing.assert_allclose(
            model.coef_[voxel], expected, rtol=0, atol=1e-9 * np.abs(expected).max()
        )


def _all_arrays(model):
    return {
        (key, field): value for key, fit in model.models_.items() for field, value in fit.items()
    }


def test_a_band_shared_by_two_partitions_is_computed_once_and_gives_the_same_fits(tmp_path):
    # Two [a, b] partitions that share band a (as the noise-level analysis shares z): with
    # memory, the second reads a's kernel and a-alone model saved by the first, and every
    # fitted array is bit-identical to a fit without memory.
    X, Y, images, *_, bands = wide(n_voxels=6)
    other_b = np.random.default_rng(5).standard_normal((len(X), bands["b"]))
    settings = {"bands": bands, "n_components": None, "n_iter": 3, "solver": "dual"}
    for step, data in enumerate([X, np.hstack([X[:, : bands["a"]], other_b])]):
        cached = partitioner(memory=tmp_path, **settings).fit(data, Y, groups=images)
        plain = partitioner(**settings).fit(data, Y, groups=images)
        expected, result = _all_arrays(plain), _all_arrays(cached)
        assert list(result) == list(expected)
        for key, value in expected.items():
            assert np.array_equal(result[key], value), key
        saved = sorted(path.name.split("-")[0] for path in tmp_path.rglob("*.npz"))
        # One kernel and one one-band model per distinct band: a, b, then the other b.
        assert saved == ["band"] * (2 + step) + ["kernel"] * (2 + step)


@pytest.mark.parametrize("solver", ["primal", "dual"])
def test_bfloat16_tensors_are_fitted_as_their_exact_float32_values(solver):
    # numpy has no bfloat16: such tensors are upcast to float32, which holds them exactly.
    X, Y, images, X_test, Y_test, bands = wide(n_voxels=6, dtype=np.float32)
    X, Y, X_test, Y_test = (torch.from_numpy(a).bfloat16() for a in (X, Y, X_test, Y_test))
    settings = {"bands": bands, "n_components": None, "n_iter": 2, "solver": solver}
    narrow = partitioner(**settings).fit(X, Y, groups=images)
    wide_model = partitioner(**settings).fit(X.float().numpy(), Y.float().numpy(), groups=images)
    assert np.array_equal(narrow.coef_, wide_model.coef_)
    assert np.array_equal(narrow.predict(X_test), wide_model.predict(X_test.float().numpy()))
    result = narrow.partition(X_test, Y_test)
    expected = wide_model.partition(X_test.float().numpy(), Y_test.float().numpy())
    assert np.array_equal(result.r_joint, expected.r_joint)
    assert narrow.score(X_test, Y_test) == wide_model.score(
        X_test.float().numpy(), Y_test.float().numpy()
    )
