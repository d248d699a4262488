"""Specification of the voxelwise encoding models, their significance and noise ceilings."""

import tracemalloc
import warnings

import numpy as np
import pytest
from scipy import stats
from sklearn.decomposition import PCA
from sklearn.model_selection import GridSearchCV, GroupKFold

import brainldm
from brainldm.encoding import VoxelwiseEncoder, noise_ceiling, normalized_accuracy, significance
from brainldm.metrics import correlation_score

ALPHAS = np.logspace(-2, 5, 8)

# Small noisy fits often pick an edge of the grid, and the solver rightly says so.
pytestmark = pytest.mark.filterwarnings("ignore:the (smallest|largest) alpha:UserWarning")


def planted(seed=0, n_train=300, n_test=400, n_features=20, n_voxels=40, k=3, rank=None):
    """Voxels = planted linear map of image features (signal sd s) + trial noise (sd 1).

    Training rows are single trials, 3 per image, spread over the data as NSD
    spreads repetitions over sessions; test rows are averages of `k` trials.
    Returns the data and each voxel's attainable r* = s / sqrt(s² + 1/k).
    """
    rng = np.random.default_rng(seed)
    n_images = n_train + n_test
    if rank is None:
        features = rng.standard_normal((n_images, n_features))
    else:  # features of low rank: PCA to `rank` components keeps all of the signal
        features = rng.standard_normal((n_images, rank)) @ rng.standard_normal((rank, n_features))
    signal = features @ rng.standard_normal((n_features, n_voxels))
    # Features on their own scales, so that the z-scoring matters.
    features = 5.0 + features * rng.uniform(0.5, 3.0, n_features)
    s = np.linspace(0.3, 1.5, n_voxels)
    signal = (signal - signal.mean(0)) / signal.std(0) * s
    trials = np.tile(np.arange(n_train), 3)
    Y = signal[trials] + rng.standard_normal((len(trials), n_voxels))
    test = np.arange(n_train, n_images)
    Y_test = signal[test] + rng.standard_normal((k, n_test, n_voxels)).mean(0)
    return features[trials], Y, trials, features[test], Y_test, s / np.sqrt(s**2 + 1 / k)


# --- VoxelwiseEncoder ---------------------------------------------------------


def test_encoder_is_exported_at_top_level():
    assert brainldm.VoxelwiseEncoder is VoxelwiseEncoder


@pytest.mark.parametrize(
    ("rank", "n_components"), [(None, None), (None, 20), (8, 8)], ids=["no-pca", "pca", "low-rank"]
)
def test_encoder_approaches_the_r_that_signal_and_noise_allow(rank, n_components):
    X, Y, images, X_test, Y_test, r_star = planted(rank=rank, n_features=20 if rank is None else 40)
    encoder = VoxelwiseEncoder(ALPHAS, n_components=n_components).fit(X, Y, groups=images)
    r = encoder.score_voxels(X_test, Y_test)
    # Measured over 10 seeds: the mean of r - r* is -0.024 to -0.003 (the finite training
    # set shrinks r a little) and no voxel is off by more than 0.17 (400 test images).
    assert -0.05 < np.mean(r - r_star) < 0.01
    np.testing.assert_allclose(r, r_star, atol=0.25)
    assert encoder.coef_.shape == (40, encoder.n_components_)


def test_pca_is_fitted_on_one_row_per_training_image_only():
    X, Y, images, *_ = planted(rank=8, n_features=40)
    encoder = VoxelwiseEncoder(ALPHAS, n_components=8).fit(X, Y, groups=images)
    reducer = encoder.reducer_
    assert reducer.pca_.n_samples_ == 300  # 900 trials of 300 images
    first = np.sort(np.unique(images, return_index=True)[1])
    standardized = (X - reducer.mean_) / reducer.scale_
    expected = PCA(8, random_state=0).fit(standardized[first])
    np.testing.assert_allclose(reducer.pca_.mean_, expected.mean_, atol=1e-12)
    np.testing.assert_allclose(
        np.abs(reducer.pca_.components_ @ expected.components_.T), np.eye(8), atol=1e-6
    )
    # The z-scoring comes from the training rows, never from the rows predicted later.
    np.testing.assert_allclose(reducer.mean_, X.mean(0))


def test_n_components_is_capped_at_the_training_images_and_features_with_a_warning():
    X, Y, images, *_ = planted(n_train=12, n_test=0, n_features=20, n_voxels=3)
    with pytest.warns(UserWarning, match=r"n_components=6400 .* \(12 images, 20 features\)"):
        encoder = VoxelwiseEncoder(ALPHAS, cv=3).fit(X, Y, groups=images)
    assert encoder.n_components_ == 12
    assert encoder.coef_.shape == (3, 12)
    with pytest.warns(UserWarning, match=r"\(36 images, 20 features\): keeping 20"):
        assert VoxelwiseEncoder(ALPHAS, cv=3).fit(X, Y).n_components_ == 20


def test_no_pca_when_n_components_is_none():
    X, Y, images, *_ = planted(n_train=60, n_test=0, n_features=7, n_voxels=4)
    encoder = VoxelwiseEncoder(ALPHAS, n_components=None).fit(X, Y, groups=images)
    assert encoder.reducer_.pca_ is None
    assert encoder.n_components_ == 7
    standardized = (X - X.mean(0)) / X.std(0)
    np.testing.assert_allclose(
        encoder.predict(X), standardized @ encoder.coef_.T + encoder.intercept_, atol=1e-10
    )


def test_folds_are_grouped_by_image_so_repetitions_do_not_leak():
    # Each image has a reproducible response that its features cannot predict for a new
    # image; 40 features can memorise 40 images. Ungrouped folds see the held-out trials'
    # images in training and reward memorising (small alphas); grouped folds do not.
    rng = np.random.default_rng(0)
    images = np.tile(np.arange(40), 3)
    features = rng.standard_normal((40, 40))[images]
    Y = rng.standard_normal((40, 30))[images] + rng.standard_normal((120, 30))
    grouped = VoxelwiseEncoder(ALPHAS, n_components=None).fit(features, Y, groups=images)
    leaky = VoxelwiseEncoder(ALPHAS, n_components=None).fit(features, Y)
    # Measured over 5 seeds: median alpha 1e3-1e5 grouped, 1-10 ungrouped; mean CV
    # score (negative MSE) -1.9 to -2.1 grouped, -1.37 to -1.47 ungrouped.
    assert np.median(grouped.best_alphas_) >= 100 * np.median(leaky.best_alphas_)
    assert grouped.cv_scores_.mean() < leaky.cv_scores_.mean() - 0.3


@pytest.mark.parametrize("seed", [0, 1])
def test_leave_one_out_on_averaged_trials_predicts_as_five_folds_do(seed):
    # One row per image (trials averaged), where leave-one-out over rows is exact. Measured
    # over seeds 0-4: max |delta r| 0.0005-0.0024, mean delta r within 2e-4 of 0, r within
    # 0.009 of r* on average, 62-78% of voxels with the same alpha and 85-92% within a
    # decade (with 8 components and 300 images the scores are flat in alpha, so the rest
    # lie up to 3 decades apart at equal r).
    X, Y, _, X_test, Y_test, r_star = planted(seed=seed, n_features=40, rank=8)
    n_images = len(X) // 3
    X, Y = X[:n_images], Y.reshape(3, n_images, -1).mean(0)
    settings = dict(alphas=ALPHAS, n_components=8)
    five = VoxelwiseEncoder(**settings).fit(X, Y)
    loo = VoxelwiseEncoder(**settings, cv="loo").fit(X, Y)
    r_five, r_loo = five.score_voxels(X_test, Y_test), loo.score_voxels(X_test, Y_test)
    assert np.abs(r_loo - r_five).max() < 0.02
    assert abs(np.mean(r_loo - r_five)) < 0.002
    assert np.mean(r_star - r_loo) < 0.03
    decades = np.abs(np.log10(loo.best_alphas_ / five.best_alphas_))
    assert np.mean(decades == 0) >= 0.55
    assert np.mean(decades <= 1) >= 0.8


def test_leave_one_out_refuses_the_repeated_trials_of_an_image():
    X, Y, images, _, _, _ = planted(n_train=30, n_test=5, n_voxels=3)
    with pytest.raises(ValueError, match="cv='loo'.*groups has 30 distinct values for 90 rows"):
        VoxelwiseEncoder(cv="loo", n_components=4).fit(X, Y, groups=images)


def test_memmapped_float32_y_gives_the_in_memory_fit_and_is_never_copied_whole(tmp_path):
    X, Y, images, X_test, Y_test, _ = planted(n_train=100, n_test=50, n_voxels=3000)
    Y = Y.astype(np.float32)
    path = tmp_path / "Y.dat"
    Y.tofile(path)
    mapped = np.memmap(path, dtype=np.float32, mode="r", shape=Y.shape)
    settings = dict(alphas=ALPHAS, n_components=10, n_targets_batch=256)
    in_memory = VoxelwiseEncoder(**settings).fit(X, Y, groups=images)
    tracemalloc.start()
    from_disk = VoxelwiseEncoder(**settings).fit(X, mapped, groups=images)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < Y.nbytes / 4  # Y is 3.6 MB; numpy allocations stay a fraction of it
    for name in ("coef_", "intercept_", "best_alphas_", "cv_scores_"):
        np.testing.assert_array_equal(getattr(from_disk, name), getattr(in_memory, name))
    np.testing.assert_array_equal(
        from_disk.score_voxels(X_test, Y_test), in_memory.score_voxels(X_test, Y_test)
    )


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="a GPU is present")
def test_cuda_without_a_gpu_says_so_before_any_work():
    X, Y, images, _, _, _ = planted(n_train=30, n_test=5, n_voxels=3)
    with pytest.raises(RuntimeError, match="torch sees no CUDA device"):
        VoxelwiseEncoder(n_components=4, device="cuda").fit(X, Y, groups=images)


@pytest.mark.gpu
def test_cuda_fit_equals_the_cpu_fit():
    X, Y, images, X_test, _, _ = planted(n_voxels=50)
    cpu = VoxelwiseEncoder(alphas=ALPHAS, n_components=10).fit(X, Y, groups=images)
    gpu = VoxelwiseEncoder(alphas=ALPHAS, n_components=10, device="cuda").fit(X, Y, groups=images)
    np.testing.assert_array_equal(gpu.best_alphas_, cpu.best_alphas_)
    np.testing.assert_allclose(gpu.predict(X_test), cpu.predict(X_test), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_a_fit_on_a_local_dask_cluster_predicts_as_the_serial_fit(dask_client, dask_tasks):
    X, Y, images, X_test, _, _ = planted(n_train=150, n_test=50, n_voxels=600)
    X, Y, X_test = X.astype(np.float32), Y.astype(np.float32), X_test.astype(np.float32)
    settings = dict(alphas=ALPHAS, n_components=12, n_targets_batch=128)
    serial = VoxelwiseEncoder(**settings).fit(X, Y, groups=images)
    before = dask_tasks()
    with dask_client.as_current():
        spread = VoxelwiseEncoder(**settings, distributed=True).fit(X, Y, groups=images)
    assert dask_tasks() - before == len(range(0, 600, 128))  # one task per voxel batch
    np.testing.assert_array_equal(spread.best_alphas_, serial.best_alphas_)
    predicted, expected = spread.predict(X_test), serial.predict(X_test)
    scale = np.abs(expected).max()
    np.testing.assert_allclose(
        predicted, expected, rtol=0, atol=4 * np.finfo(np.float32).eps * scale
    )


def test_score_is_the_mean_voxel_r_of_the_predictions_computed_in_voxel_batches():
    X, Y, images, X_test, Y_test, _ = planted(n_train=100, n_test=60, n_voxels=50)
    encoder = VoxelwiseEncoder(ALPHAS, n_components=10, n_targets_batch=7).fit(X, Y, images)
    expected = correlation_score(Y_test, encoder.predict(X_test))
    np.testing.assert_allclose(encoder.score_voxels(X_test, Y_test), expected, atol=1e-12)
    assert isinstance(encoder.score(X_test, Y_test), float)
    assert encoder.score(X_test, Y_test) == pytest.approx(expected.mean(), abs=1e-12)


def test_constant_voxels_warn_and_score_nan_never_zero():
    X, Y, images, X_test, Y_test, _ = planted(n_train=100, n_test=60, n_voxels=6)
    Y[:, 2] = 7.0
    Y_test[:, 2] = 7.0
    with pytest.warns(UserWarning, match=r"1 of 6 voxels are constant over the training rows"):
        encoder = VoxelwiseEncoder(ALPHAS, n_components=10).fit(X, Y, images)
    with pytest.warns(UserWarning, match=r"1 of 6 voxels are constant .* \(first: \[2\]\)"):
        r = encoder.score_voxels(X_test, Y_test)
    assert np.isnan(r[2]) and np.isfinite(np.delete(r, 2)).all()
    with pytest.warns(UserWarning, match="constant"):
        assert encoder.score(X_test, Y_test) == pytest.approx(np.delete(r, 2).mean())


def test_grid_search_ranks_settings_by_the_encoders_score():
    X, Y, images, *_ = planted(n_train=90, n_test=0, n_features=15, n_voxels=10)
    search = GridSearchCV(
        VoxelwiseEncoder(ALPHAS), {"n_components": [2, 5, 15]}, cv=GroupKFold(3)
    ).fit(X, Y, groups=images)
    # The signal uses all 15 features: fewer components lose part of it.
    assert search.best_params_ == {"n_components": 15}
    scores = search.cv_results_["mean_test_score"]
    assert scores[0] < scores[1] < scores[2] < 1


def _no_work(*args, **kwargs):
    raise AssertionError("work started before the input was checked")


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ("nan_X", r"X contains 1 NaN and 0 infinite values, at \(row, column\) \(3, 2\)"),
        ("inf_Y", r"y contains 0 NaN and 2 infinite values, at \(row, column\) \(0, 1\), \(5, 0\)"),
        ("rows", "X and y must have the same number of rows, got 60 and 59"),
        (
            "n_components",
            "'n_components' parameter of VoxelwiseEncoder must be an int in the range",
        ),
        ("groups", "groups has 3 distinct values, fewer than cv=5 folds"),
    ],
)
def test_bad_input_raises_before_any_work(monkeypatch, change, match):
    X, Y, images, *_ = planted(n_train=20, n_test=0, n_voxels=4)
    encoder = VoxelwiseEncoder(ALPHAS, n_components=5)
    groups = images
    if change == "nan_X":
        X[3, 2] = np.nan
    elif change == "inf_Y":
        Y[0, 1] = Y[5, 0] = np.inf
    elif change == "rows":
        Y = Y[:-1]
    elif change == "n_components":
        encoder.set_params(n_components=0)
    else:
        groups = images % 3
    monkeypatch.setattr("brainldm.features.FeatureReducer.fit_transform", _no_work)
    monkeypatch.setattr("brainldm.ridge.solve_ridge_cv", _no_work)
    with pytest.raises(ValueError, match=match):
        encoder.fit(X, Y, groups=groups)


# --- correlation_score ---------------------------------------------------------


def test_correlation_score_is_pearson_r_per_column_read_in_blocks(tmp_path):
    rng = np.random.default_rng(0)
    y_true = rng.standard_normal((50, 30)).astype(np.float32)
    y_pred = (y_true + rng.standard_normal((50, 30)) * np.linspace(0.1, 5, 30)).astype(np.float32)
    path = tmp_path / "y.dat"
    y_true.tofile(path)
    mapped = np.memmap(path, dtype=np.float32, mode="r", shape=y_true.shape)
    expected = [stats.pearsonr(y_true[:, j], y_pred[:, j]).statistic for j in range(30)]
    np.testing.assert_allclose(correlation_score(mapped, y_pred, batch_size=7), expected, atol=1e-6)
    assert correlation_score(y_true[:, 0], y_pred[:, 0]).shape == (1,)


def test_correlation_score_is_nan_for_constant_columns_with_a_warning():
    rng = np.random.default_rng(0)
    y_true, y_pred = rng.standard_normal((20, 4)), rng.standard_normal((20, 4))
    y_true[:, 1] = 0.1  # sums of 0.1 are not exact: the centred column is round-off only
    y_pred[:, 3] = 5.0
    with pytest.warns(UserWarning, match=r"2 of 4 columns are constant .* \(first: \[1, 3\]\)"):
        r = correlation_score(y_true, y_pred)
    assert np.isnan(r[[1, 3]]).all() and np.isfinite(r[[0, 2]]).all()


def test_correlation_score_rejects_mismatched_or_non_finite_input():
    with pytest.raises(ValueError, match="same shape"):
        correlation_score(np.zeros((5, 2)), np.zeros((5, 3)))
    y = np.ones((5, 2))
    y[4, 1] = np.nan
    with pytest.raises(ValueError, match=r"y_pred contains 1 NaN .* \(4, 1\)"):
        correlation_score(np.ones((5, 2)), y)


# --- significance --------------------------------------------------------------


def test_p_values_equal_scipy_pearsonr_one_sided():
    rng = np.random.default_rng(0)
    n = 30
    x = rng.standard_normal((n, 12))
    y = x * np.linspace(-0.5, 1.0, 12) + rng.standard_normal((n, 12))
    tests = [stats.pearsonr(x[:, j], y[:, j], alternative="greater") for j in range(12)]
    result = significance([test.statistic for test in tests], n)
    np.testing.assert_allclose(result.p, [test.pvalue for test in tests], rtol=1e-9, atol=1e-15)
    assert significance([1.0, -1.0], n).p.tolist() == [0.0, 1.0]


def test_nan_r_get_nan_p_and_q_and_the_correction_runs_over_finite_p_only():
    r = np.array([0.5, np.nan, 0.1, 0.3, np.nan, -0.2])
    result = significance(r, 40, alpha=0.05)
    finite = ~np.isnan(r)
    assert np.isnan(result.p[~finite]).all() and np.isnan(result.q[~finite]).all()
    assert not result.significant[~finite].any()
    np.testing.assert_allclose(result.q[finite], stats.false_discovery_control(result.p[finite]))
    np.testing.assert_array_equal(result.significant, finite & (result.q < 0.05))


def test_benjamini_hochberg_controls_the_false_discovery_proportion():
    m, m1, n, q = 1000, 100, 100, 0.05
    proportions = []
    for seed in range(30):
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((n, m))
        y = rng.standard_normal((n, m))
        y[:, :m1] += 0.4 * x[:, :m1]  # m1 voxels with signal, m0 = m - m1 null
        r = correlation_score(x, y)
        declared = significance(r, n, alpha=q).significant
        proportions.append(declared[m1:].sum() / max(declared.sum(), 1))
    # BH's expected proportion is q * m0 / m = 0.045; measured 0.049 with SE 0.0034.
    bound = q * (m - m1) / m + 3 * np.std(proportions, ddof=1) / np.sqrt(len(proportions))
    assert np.mean(proportions) <= bound


@pytest.mark.parametrize(
    ("r", "n", "match"),
    [
        ([0.1], 2, "'n' parameter of significance must be an int in the range \\[3, inf\\)"),
        ([0.1, 1.5, -1.2], 10, r"r must lie in \[-1, 1\] .* 2 values outside, e.g. \[1.5, -1.2\]"),
        ([0.1], 10.5, "'n' parameter"),
    ],
)
def test_significance_rejects_bad_input(r, n, match):
    with pytest.raises(ValueError, match=match):
        significance(r, n)


# --- noise ceiling -------------------------------------------------------------


def simulated_trials(seed, n_images=500, n_voxels=100):
    """Trials = image signal (sd s) + noise (sd sigma): the true ncsnr is s / sigma."""
    rng = np.random.default_rng(seed)
    s, sigma = rng.uniform(0.5, 2.0, n_voxels), rng.uniform(0.5, 1.5, n_voxels)
    images = np.repeat(np.arange(n_images), 3)
    signal = rng.standard_normal((n_images, n_voxels)) * s
    trials = signal[images] + rng.standard_normal((len(images), n_voxels)) * sigma
    return trials, images, signal, s / sigma


def test_noise_ceiling_recovers_the_ncsnr_of_known_signal_and_noise():
    trials, images, _, ncsnr = simulated_trials(0)
    result = noise_ceiling(trials[::-1], images[::-1], batch_size=30)  # trials in any order
    error = result.ncsnr / ncsnr - 1
    # Measured over 20 seeds (500 images x 3 trials, ncsnr 0.33 to 4): relative error
    # sd 0.054, largest 0.28 of 2,000 voxels, mean over a set's 100 voxels within 0.01.
    assert abs(error.mean()) < 0.03
    assert np.abs(error).max() < 0.35


def test_ceiling_is_the_r2_of_the_test_averages_with_the_signal_for_nsds_mix_of_trials():
    trials, images, signal, _ = simulated_trials(1)
    counts = np.random.default_rng(1).choice([1, 2, 3], len(signal))  # 1, 2 or 3 trials kept
    keep = np.concatenate([np.flatnonzero(images == i)[:c] for i, c in enumerate(counts)])
    result = noise_ceiling(trials[keep], images[keep])
    averages = np.stack([trials[keep][images[keep] == i].mean(0) for i in range(len(signal))])
    r2 = correlation_score(averages, signal) ** 2
    # Measured over 20 seeds: ceiling / 100 - r² has mean within 0.008 and max 0.18.
    assert abs(np.mean(result.ceiling / 100 - r2)) < 0.025
    np.testing.assert_allclose(result.ceiling / 100, r2, atol=0.25)
    A, B, C = (np.sum(counts == k) for k in (3, 2, 1))
    nsd = 100 * result.ncsnr**2 / (result.ncsnr**2 + (A / 3 + B / 2 + C) / (A + B + C))
    np.testing.assert_allclose(result.ceiling, nsd)
    plain = noise_ceiling(trials[keep], images[keep], n_average=2).ceiling
    np.testing.assert_allclose(plain, 100 * result.ncsnr**2 / (result.ncsnr**2 + 1 / 2))


def test_noise_ceiling_flags_constant_voxels_and_rejects_bad_input():
    trials, images, _, _ = simulated_trials(0, n_images=20, n_voxels=3)
    trials[:, 1] = 4.0
    with pytest.warns(UserWarning, match=r"1 of 3 voxels are constant over the trials"):
        result = noise_ceiling(trials, images)
    assert np.isnan(result.ncsnr[1]) and np.isnan(result.ceiling[1])
    with pytest.raises(ValueError, match="at least 2 trials"):
        noise_ceiling(trials[:20], np.arange(20))
    with pytest.raises(ValueError, match="image of each trial"):
        noise_ceiling(trials, images[:-1])
    with pytest.raises(ValueError, match="n_average must be"):
        noise_ceiling(trials, images, n_average=0)


def test_normalized_accuracy_is_r2_over_the_ceiling_fraction():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_allclose(
            normalized_accuracy([0.5, -0.3, np.nan, 0.2], [50.0, 9.0, 40.0, 0.0]),
            [0.5, 1.0, np.nan, np.nan],
        )


@pytest.mark.parametrize("standardize", [True, False])
def test_fit_leaves_the_features_it_is_given_unchanged(standardize):
    X, Y, images, *_ = planted(n_train=60, n_test=0, n_features=7, n_voxels=4)
    X = np.asfortranarray(X)  # a layout the solver could have centred in place
    before = X.copy()
    VoxelwiseEncoder(ALPHAS, n_components=None, standardize=standardize).fit(X, Y, groups=images)
    np.testing.assert_array_equal(X, before)


@pytest.mark.parametrize("cv", [5, "loo"])
def test_bfloat16_tensors_are_encoded_as_their_exact_float32_values(cv):
    # numpy has no bfloat16: such tensors are upcast to float32, which holds them exactly.
    import torch

    rng = np.random.default_rng(0)
    X = torch.from_numpy(rng.standard_normal((80, 12), dtype=np.float32)).bfloat16()
    Y = X.float() @ torch.from_numpy(rng.standard_normal((12, 4), dtype=np.float32))
    Y = (Y + torch.randn(80, 4, generator=torch.Generator().manual_seed(0))).bfloat16()
    narrow = VoxelwiseEncoder(cv=cv, n_components=5).fit(X, Y)
    wide = VoxelwiseEncoder(cv=cv, n_components=5).fit(X.float().numpy(), Y.float().numpy())
    assert np.array_equal(narrow.coef_, wide.coef_)
    assert np.array_equal(narrow.predict(X), wide.predict(X.float().numpy()))
    assert np.array_equal(
        narrow.score_voxels(X, Y), wide.score_voxels(X.float().numpy(), Y.float().numpy())
    )
