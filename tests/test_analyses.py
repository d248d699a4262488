"""Specification of the paper's four encoding analyses: checks, summaries, resumption, and
what the default toy world shows (slow tests, reading the outputs of the CLI's default run)."""

import numpy as np
import pytest
from scipy import stats
from sklearn.utils import Bunch

from brainldm._cache import Cache
from brainldm.encoding import (
    ANALYSES,
    BandedVariancePartitioner,
    VoxelwiseEncoder,
    check_encoding_settings,
    choose_pool_size,
    denoising_stages,
    noise_levels,
    representations,
    run_encoding_analyses,
    unet_layers,
)
from brainldm.features import FeatureReducer
from brainldm.metrics import summarize_paired

pytestmark = [
    pytest.mark.filterwarnings("ignore:the (smallest|largest) alpha:UserWarning"),
    pytest.mark.filterwarnings("ignore:subj01. dropped .* voxels:UserWarning"),
]

# Small enough for seconds: 5 DDIM steps, 20 principal components, 3 random-search weightings.
FAST = dict(steps=5, n_components=20, n_iter=3, strengths=(0.4, 0.8), chunk_size=200)


@pytest.fixture(scope="module")
def tiny_world(tmp_path_factory):
    """A toy NSD of one subject with a 12 x 14 x 12 volume: ~530 voxels, 100 train images."""
    from brainldm.datasets.toy import make_toy_nsd

    return make_toy_nsd(
        tmp_path_factory.mktemp("tiny-world") / "nsd",
        n_sessions=6,
        n_released_sessions=6,
        trials_per_session=60,
        n_shared=20,
        volume_shape=(12, 14, 12),
        subjects=("subj01",),
        progress=False,
    )


@pytest.fixture(scope="module")
def tiny_data(tiny_world):
    from brainldm.datasets.nsd import load_nsd

    return load_nsd(tiny_world, 1, progress=False)


@pytest.fixture(scope="module")
def tiny_run(tiny_data, tmp_path_factory):
    cache = tmp_path_factory.mktemp("analyses-cache")
    results = run_encoding_analyses(tiny_data, memory=cache, **FAST)
    return results, cache


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"strengths": (0.4, 1.2)}, r"'strengths\[1\]' parameter .* range \(0.0, 1.0\]. Got 1.2"),
        ({"strengths": (0.0,)}, r"'strengths\[0\]' parameter .* range \(0.0, 1.0\]. Got 0.0"),
        ({"stage_strength": -0.5}, r"'stage_strength' parameter .* range \(0.0, 1.0\]. Got -0.5"),
        ({"layers": ["down_blocks.7"]}, r"down_blocks.7.*not modules.*'mid_block'"),
        ({"analyses": ["noise_level"]}, r"analyses must be among \['representations'"),
        ({"read_steps": ["early", 40]}, "outside the 4 steps run"),
        ({"cv": 1}, r"'cv' parameter .* range \[2, inf\) or a str among \{'loo'\}. Got 1"),
        ({"cv": "kfold"}, r"'cv' parameter .* or a str among \{'loo'\}. Got 'kfold'"),
        ({"solver": "svd"}, r"'solver' parameter .* among \{'primal', 'dual', 'auto'\}"),
        ({"solver": "dual", "device": "cuda"}, "solver='dual' runs on the CPU only"),
        # tiny_data holds single trials: leave-one-out would keep a row's repetitions.
        ({"cv": "loo"}, "cv='loo' leaves out one row at a time"),
    ],
)
def test_bad_settings_raise_before_any_work(tiny_data, tmp_path, monkeypatch, settings, message):
    def refuse(*args, **kwargs):
        raise AssertionError("work started before the settings were checked")

    monkeypatch.setattr("brainldm.diffusion.StableDiffusion.encode_images", refuse)
    monkeypatch.setattr("brainldm.diffusion.StableDiffusion.denoise", refuse)
    with pytest.raises(ValueError, match=message):
        run_encoding_analyses(tiny_data, memory=tmp_path, **{**FAST, **settings})
    assert list(tmp_path.iterdir()) == []


def test_check_returns_the_analyses_in_the_papers_order():
    assert check_encoding_settings("toy", ["unet_layers", "representations"]) == (
        "representations",
        "unet_layers",
    )
    assert check_encoding_settings("toy", ANALYSES) == ANALYSES


def test_pool_size_keeps_the_pca_size_for_the_narrowest_layer():
    toy = {"down_blocks.0": (32, 1, 1), "mid_block": (64, 1, 1)}
    assert choose_pool_size(toy, 950) == 6  # 32 * 36 = 1152 >= 950 > 32 * 25
    assert choose_pool_size(toy, 4) == 1
    sd = {"down_blocks.0": (320, 1, 1), "mid_block": (1280, 1, 1)}
    assert choose_pool_size(sd, 6400) == 5
    assert choose_pool_size(toy, 950, native_sizes={"down_blocks.0": 4, "mid_block": 4}) == 4


def test_summary_counts_wins_medians_and_holm_corrects_paired_tests():
    rng = np.random.default_rng(0)
    a = rng.normal(0.3, 0.1, 300)
    values = {"a": a, "b": a - 0.05 + rng.normal(0, 0.02, 300), "c": a + rng.normal(0, 0.02, 300)}
    masks = {"one": np.arange(300) < 150, "two": np.arange(300) >= 150}
    summary = summarize_paired(values, masks)
    ab = summary["one"]["comparisons"]["a-b"]
    d = (values["a"] - values["b"])[:150]
    assert ab["fraction_a_wins"] == pytest.approx(np.mean(d > 0))
    assert ab["median_difference"] == pytest.approx(np.median(d))
    assert ab["p"] == pytest.approx(stats.wilcoxon(d).pvalue)
    assert ab["significant"] and ab["p_holm"] >= ab["p"]
    # a and c do not differ: no family-wise significant difference.
    assert not summary["two"]["comparisons"]["a-c"]["significant"]
    assert summary["two"]["n_voxels"] == 150
    assert summary["two"]["median"]["a"] == pytest.approx(np.median(a[150:]))
    p = [summary[roi]["comparisons"][pair]["p"] for roi in masks for pair in ("a-b", "a-c", "b-c")]
    holm_max = max(summary[roi]["comparisons"]["a-b"]["p_holm"] for roi in masks)
    assert holm_max <= min(1.0, 6 * max(p[0], p[3]))


def test_roi_summaries_and_mode_comparisons_share_one_paired_test():
    from brainldm.metrics import compare_modes, paired_wilcoxon

    rng = np.random.default_rng(1)
    a = rng.normal(0.3, 0.1, 80)
    b = a - 0.02 + rng.normal(0, 0.05, 80)
    a[[3, 7]] = np.nan  # left out of both, in the same way
    summary = summarize_paired({"a": a, "b": b}, {"all": np.ones(80, bool)})
    table = compare_modes({"a": {"r": a}, "b": {"r": b}}, pairs=[("a", "b")])
    finite = np.isfinite(a)
    expected = stats.wilcoxon(a[finite] - b[finite]).pvalue
    assert summary["all"]["comparisons"]["a-b"]["p"] == table["p"][0] == expected
    assert table["n"][0] == 78
    # Equal values: no evidence of a difference; a summary's ROI needs two differing voxels.
    assert paired_wilcoxon([1.0, 2.0], [1.0, 2.0])[1] == 1.0
    single = summarize_paired({"a": np.array([1.0, 2.0]), "b": np.array([1.0, 0.0])}, {"r": [1, 1]})
    assert np.isnan(single["r"]["comparisons"]["a-b"]["p"])


def test_summary_compares_only_the_voxels_kept():
    values = {"a": np.array([1.0, 2.0, 3.0, np.nan]), "b": np.array([0.0, 3.0, 1.0, 0.0])}
    summary = summarize_paired(values, {"all": np.ones(4, bool)}, voxels=[True, True, False, True])
    comparison = summary["all"]["comparisons"]["a-b"]
    assert summary["all"]["n_voxels"] == 3
    assert comparison["fraction_a_wins"] == 0.5  # voxel 3 is NaN for a: left out
    assert comparison["median_difference"] == 0.0


def test_each_analysis_gives_per_voxel_arrays_maps_and_roi_summaries(tiny_run, tiny_data):
    results, _ = tiny_run
    n_voxels = tiny_data.X_test.shape[1]
    rep = results.representations
    assert rep.r.shape == rep.significant.shape == (3, n_voxels)
    assert rep.maps["r_z"].shape == tiny_data.masker.mask_.shape
    np.testing.assert_allclose(
        tiny_data.masker.transform(rep.maps["r_c"])[0], rep.r[1].astype(np.float32)
    )
    assert set(rep.summary) == set(tiny_data.roi_masks)
    noise = results.noise_levels
    assert noise.labels == ("0.40", "0.80")
    assert noise.unique["zc"].shape == noise.split["z"].shape == (2, n_voxels)
    # himalaya's split sums to the joint r².
    np.testing.assert_allclose(noise.split["z"] + noise.split["zc"], noise.r2_joint, atol=1e-5)
    assert "unique_zc_se" in noise.summary["0.80"]["ventral"]
    stages = results.denoising_stages
    assert stages.labels == ("early", "middle", "late")
    layers = results.unet_layers
    assert layers.layers == (
        "down_blocks.0",
        "down_blocks.1",
        "mid_block",
        "up_blocks.1",
        "up_blocks.2",
    )
    assert layers.r.shape == (3, 5, n_voxels)
    best = layers.best_layer
    assert set(np.unique(best)) <= set(range(-1, 5))
    np.testing.assert_array_equal(best == -1, ~layers.significant.any(1))
    fractions = layers.summary["late"]["nsdgeneral"]["best_fraction"]
    if (best[2] >= 0).any():
        assert sum(fractions.values()) == pytest.approx(1.0)


def test_stage_chain_ends_where_the_strength_sweep_does(tiny_run):
    results, _ = tiny_run
    features = results.features
    np.testing.assert_array_equal(features.stages["late"], features.zc[0.8])
    assert features.pool_size == choose_pool_size({"down_blocks.0": (32,)}, 20)


def _refuse(*args, **kwargs):
    raise AssertionError("recomputed")


def test_a_rerun_recomputes_nothing(tiny_run, tiny_data, monkeypatch):
    results, cache = tiny_run
    for target in (
        "brainldm.diffusion.StableDiffusion.denoise",
        "brainldm.diffusion.StableDiffusion.encode_images",
    ):
        monkeypatch.setattr(target, _refuse)
    monkeypatch.setattr(VoxelwiseEncoder, "fit", _refuse)
    monkeypatch.setattr(BandedVariancePartitioner, "fit", _refuse)
    again = run_encoding_analyses(tiny_data, memory=cache, **FAST)
    for name in ANALYSES:
        key = "r" if name in ("representations", "unet_layers") else "r2_joint"
        np.testing.assert_array_equal(again[name][key], results[name][key])


def test_an_interrupted_analysis_resumes_from_its_saved_voxel_chunks(
    tiny_run, tiny_data, tmp_path, monkeypatch
):
    _, cache = tiny_run
    # Reuse the features of the finished run; the analysis itself starts afresh.
    for entry in cache.iterdir():
        if entry.name.startswith(("features-", "pca")):
            (tmp_path / entry.name).symlink_to(entry)
    original = BandedVariancePartitioner.fit
    calls = []

    def interrupted(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(BandedVariancePartitioner, "fit", interrupted)
    settings = dict(FAST, analyses=["noise_levels"], memory=tmp_path)
    with pytest.raises(KeyboardInterrupt):
        run_encoding_analyses(tiny_data, **settings)
    n_chunks = -(-tiny_data.X_test.shape[1] // FAST["chunk_size"])
    calls.clear()
    monkeypatch.setattr(
        BandedVariancePartitioner,
        "fit",
        lambda self, *a, **k: (calls.append(1), original(self, *a, **k))[1],
    )
    run_encoding_analyses(tiny_data, **settings)
    # Two chunks were saved before the interruption; only the others are fitted.
    assert len(calls) == 2 * n_chunks - 2


def test_the_analyses_take_the_subjects_arrays_as_the_adapter_passes_them(tiny_run, tiny_data):
    # The same arrays given by hand give the same numbers as run_encoding_analyses.
    results, _ = tiny_run
    features = results.features
    arrays = dict(
        groups=tiny_data.images_train,
        rows_train=features.rows_train,
        rows_test=features.rows_test,
        roi_masks=tiny_data.roi_masks,
        n_components=FAST["n_components"],
        # Voxels fitted together change the float32 sums, at 1e-7.
        chunk_size=FAST["chunk_size"],
    )
    spaces = {"z": features.z, "c": features.c, "zc": features.zc[0.8]}
    rep = representations(tiny_data.X_train, tiny_data.X_test, spaces, **arrays)
    np.testing.assert_array_equal(rep.r, results.representations.r)
    assert rep.summary == results.representations.summary
    noise = noise_levels(
        tiny_data.X_train, tiny_data.X_test, features.z, features.zc, n_iter=3, **arrays
    )
    np.testing.assert_array_equal(noise.r2_joint, results.noise_levels.r2_joint)
    assert noise.labels == ("0.40", "0.80") and noise.maps == {}


def _planted_voxels(n_images=90, n_features=6, seed=0):
    """Voxels 0-3 driven by space a, 4-7 by space b; 3 trials per training image."""
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal((2, n_images, n_features))
    Y = np.hstack(
        [a @ rng.standard_normal((n_features, 4)), b @ rng.standard_normal((n_features, 4))]
    )
    train, test = np.arange(60), np.arange(60, n_images)
    trials = np.repeat(train, 3)
    X_train = Y[trials] + rng.standard_normal((len(trials), 8))
    X_test = Y[test] + 0.3 * rng.standard_normal((len(test), 8))
    return X_train, X_test, trials, a, b


def test_the_analyses_run_on_plain_arrays_without_a_dataset(tmp_path):
    X_train, X_test, trials, a, b = _planted_voxels()
    masks = {"a": np.arange(8) < 4, "b": np.arange(8) >= 4}
    # The feature arrays hold one row per image: the first 60 trained on, the last 30 tested.
    rows = dict(groups=trials, rows_train=trials, rows_test=np.arange(60, 90), roi_masks=masks)
    rep = representations(X_train, X_test, {"a": a, "b": b}, n_components=6, **rows)
    assert (rep.r[0, :4] > 0.8).all() and (rep.r[1, 4:] > 0.8).all()
    assert rep.summary["a"]["comparisons"]["a-b"]["fraction_a_wins"] == 1.0
    layers = unet_layers(
        X_train, X_test, {("a", "late"): a, ("b", "late"): b}, n_components=6, **rows
    )
    assert layers.best_layer.tolist() == [[0, 0, 0, 0, 1, 1, 1, 1]]
    noise = noise_levels(X_train, X_test, a, {0.5: b}, n_components=6, n_iter=2, **rows)
    assert (noise.unique["zc"][0, 4:] > 0.5).all() and (noise.unique["zc"][0, :4] < 0.05).all()
    # Feature rows default to the training rows then the test rows.
    trial_features = {"a": np.vstack([a[trials], a[60:]]), "b": np.vstack([b[trials], b[60:]])}
    again = representations(
        X_train, X_test, trial_features, groups=trials, n_components=6, memory=tmp_path
    )
    np.testing.assert_array_equal(again.r, rep.r)
    with pytest.raises(ValueError, match="rows_test must have one entry per row of X_test"):
        representations(X_train, X_test, {"a": a}, rows_train=trials, rows_test=[0, 1])


def test_a_finished_analysis_is_reused_whatever_the_chunk_size(tiny_run, tiny_data, monkeypatch):
    results, cache = tiny_run
    monkeypatch.setattr(VoxelwiseEncoder, "fit", _refuse)
    monkeypatch.setattr(BandedVariancePartitioner, "fit", _refuse)
    again = run_encoding_analyses(tiny_data, memory=cache, **{**FAST, "chunk_size": 1000})
    np.testing.assert_array_equal(again.noise_levels.split["zc"], results.noise_levels.split["zc"])
    np.testing.assert_array_equal(again.unet_layers.r, results.unet_layers.r)


def test_changed_settings_are_not_served_from_the_cache(tiny_run, tiny_data, monkeypatch):
    results, cache = tiny_run
    fits = []
    original = VoxelwiseEncoder.fit
    monkeypatch.setattr(
        VoxelwiseEncoder, "fit", lambda self, *a, **k: (fits.append(1), original(self, *a, **k))[1]
    )
    run_encoding_analyses(
        tiny_data, memory=cache, analyses=["representations"], **{**FAST, "n_components": 10}
    )
    assert len(fits) == 3 * -(-tiny_data.X_test.shape[1] // FAST["chunk_size"])


def test_a_model_changed_in_its_folder_is_not_served_from_the_cache(
    tiny_data, tiny_folder, tmp_path, retrain_in_place
):
    import shutil

    from brainldm.encoding import encoding_features
    from brainldm.features import clear_model_cache

    folder = shutil.copytree(tiny_folder, tmp_path / "model")
    settings = dict(strengths=(0.8,), steps=2, memory=tmp_path / "cache")
    first = encoding_features(tiny_data, folder, **settings)
    retrain_in_place(folder, "vae")  # the same folder, the same name, other VAE weights
    second = encoding_features(tiny_data, folder, **settings)
    assert second.key != first.key
    assert not np.allclose(second.z, first.z)
    # Unchanged weights are the same model: its cache is found again.
    clear_model_cache()
    assert encoding_features(tiny_data, folder, **settings).key == second.key


def test_another_split_of_the_same_images_refits_the_pca(tiny_run, tiny_data, monkeypatch):
    _, cache = tiny_run
    # Five training images move to the test set: the same images, so the same features.
    moved = np.unique(tiny_data.images_train)[:5]
    kept = ~np.isin(tiny_data.images_train, moved)
    extra = np.stack([tiny_data.X_train[tiny_data.images_train == i].mean(0) for i in moved])
    split = Bunch(**tiny_data)
    split.update(
        X_train=tiny_data.X_train[kept],
        images_train=tiny_data.images_train[kept],
        X_test=np.vstack([tiny_data.X_test, extra]),
        images_test=np.concatenate([tiny_data.images_test, moved]),
    )
    fitted = []
    original = FeatureReducer.fit
    monkeypatch.setattr(
        FeatureReducer,
        "fit",
        lambda self, X, *a, **k: (fitted.append(len(X)), original(self, X, *a, **k))[1],
    )
    for target in (
        "brainldm.diffusion.StableDiffusion.denoise",
        "brainldm.diffusion.StableDiffusion.encode_images",
    ):
        monkeypatch.setattr(target, _refuse)
    run_encoding_analyses(split, memory=cache, **FAST)
    # The features are reused; each space's PCA is fitted again, on the other training images
    # (z, c and z_c of the representations at least).
    assert len(fitted) >= 3
    assert set(fitted) == {len(np.unique(split.images_train))}


def test_the_random_search_iterations_reach_the_partitioner(tiny_data, tmp_path, monkeypatch):
    seen = []
    original = BandedVariancePartitioner.fit

    def record(self, *args, **kwargs):
        seen.append(self.n_iter)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(BandedVariancePartitioner, "fit", record)
    settings = dict(FAST, analyses=["denoising_stages"], n_iter=2, read_steps=["late"])
    run_encoding_analyses(tiny_data, memory=tmp_path, **settings)
    assert seen and set(seen) == {2}


def _wide_bands(n_images=90, n_features=50, seed=0):
    """Fewer training rows (60, one per image) than features (2 x 50): where the dual pays.

    Voxels 0-5 driven by band a, 6-11 by b, 12-15 by both; the last 30 images are tested.
    """
    rng = np.random.default_rng(seed)
    a, b, c = rng.standard_normal((3, n_images, n_features))
    Y = np.hstack(
        [
            a @ rng.standard_normal((n_features, 6)),
            b @ rng.standard_normal((n_features, 6)),
            (a + b) @ rng.standard_normal((n_features, 4)),
        ]
    )
    X_train = Y[:60] + 2 * rng.standard_normal((60, Y.shape[1]))
    X_test = Y[60:] + 0.5 * rng.standard_normal((30, Y.shape[1]))
    return X_train, X_test, a, b, c


WIDE = dict(n_components=50, n_iter=3)


@pytest.mark.parametrize("analysis", [noise_levels, denoising_stages])
def test_the_dual_solver_gives_the_primal_partition(analysis):
    X_train, X_test, a, b, _ = _wide_bands()
    primal, dual = (
        analysis(X_train, X_test, a, {0.5: b}, solver=solver, **WIDE)
        for solver in ("primal", "dual")
    )
    # Measured: at most 2e-7 apart in r_joint, 1e-6 in unique and split (float32 rounding).
    np.testing.assert_allclose(dual.r_joint, primal.r_joint, rtol=0, atol=1e-5)
    for field in ("unique", "split"):
        for band in ("z", "zc"):
            np.testing.assert_allclose(dual[field][band], primal[field][band], rtol=0, atol=1e-5)
    assert (primal.unique["zc"][0, 6:12] > 0.3).all()


def _counting_computes(monkeypatch):
    """Record the label of every cache entry computed (with or without a cache folder)."""
    computed, arrays = [], Cache.arrays

    def counted(self, label, parts, compute, log=None):
        return arrays(self, label, parts, lambda: (computed.append(label), compute())[1], log)

    monkeypatch.setattr(Cache, "arrays", counted)
    return computed


def test_dual_partitions_sharing_z_compute_its_kernel_and_model_alone_once(tmp_path, monkeypatch):
    X_train, X_test, a, b, c = _wide_bands()
    computed = _counting_computes(monkeypatch)
    settings = dict(WIDE, solver="dual")
    plain = denoising_stages(X_train, X_test, a, {"early": b, "late": c}, **settings)
    # Without a cache, each of the two [z, z_c] partitions computes two kernels and two
    # one-band models (beside its joint model).
    assert computed.count("partition/kernel") == computed.count("partition/band-model") == 4
    computed.clear()
    cached = denoising_stages(
        X_train, X_test, a, {"early": b, "late": c}, memory=tmp_path, **settings
    )
    # With one: z's kernel and model alone once, for both partitions.
    assert computed.count("partition/kernel") == computed.count("partition/band-model") == 3
    for field in ("r_joint", "r2_joint"):
        np.testing.assert_array_equal(cached[field], plain[field])
    np.testing.assert_array_equal(cached.unique["zc"], plain.unique["zc"])
    # Another analysis on the same z and z_c reads both bands' kernels and models alone.
    computed.clear()
    again = noise_levels(X_train, X_test, a, {0.5: b}, memory=tmp_path, **settings)
    assert computed == []  # only the joint model, which is not cached, is fitted
    np.testing.assert_array_equal(again.unique["zc"][0], plain.unique["zc"][0])


def _counting_fits(monkeypatch, estimator):
    """The estimators fitted from now on, in order."""
    fits, original = [], estimator.fit
    monkeypatch.setattr(
        estimator, "fit", lambda self, *a, **k: (fits.append(self), original(self, *a, **k))[1]
    )
    return fits


def test_leave_one_out_encoders_are_fitted_and_cached_apart_from_five_folds(tmp_path, monkeypatch):
    X_train, X_test, a, b, _ = _wide_bands()
    spaces = {"a": a, "b": b}
    fits = _counting_fits(monkeypatch, VoxelwiseEncoder)
    loo = representations(X_train, X_test, spaces, cv="loo", memory=tmp_path, n_components=50)
    assert len(fits) == 2
    # The default is not served the leave-one-out result, nor the other way round.
    folds = representations(X_train, X_test, spaces, memory=tmp_path, n_components=50)
    assert len(fits) == 4
    assert not np.array_equal(loo.r, folds.r)
    # Other alphas, nearly the same accuracy: measured 0.024 apart on average, 0.24 at most.
    assert np.abs(loo.r - folds.r).mean() < 0.1
    for cv, expected in (("loo", loo), (5, folds)):
        again = representations(X_train, X_test, spaces, cv=cv, memory=tmp_path, n_components=50)
        np.testing.assert_array_equal(again.r, expected.r)
    assert len(fits) == 4
    # An int other than 5 is a setting of its own too.
    representations(X_train, X_test, spaces, cv=3, memory=tmp_path, n_components=50)
    assert len(fits) == 6


def test_dual_and_primal_partitions_are_cached_apart(tmp_path, monkeypatch):
    X_train, X_test, a, b, _ = _wide_bands()
    fits = _counting_fits(monkeypatch, BandedVariancePartitioner)
    for solver in ("dual", "primal", "dual", "primal"):
        noise_levels(X_train, X_test, a, {0.5: b}, solver=solver, memory=tmp_path, **WIDE)
    assert len(fits) == 2
    # Leave-one-out is the encoders': the partitions keep (and share) their 5 folds.
    noise_levels(X_train, X_test, a, {0.5: b}, cv="loo", memory=tmp_path, **WIDE)
    assert len(fits) == 2
    noise_levels(X_train, X_test, a, {0.5: b}, cv="loo", **WIDE)
    assert [fit.cv for fit in fits] == [5, 5, 5]
    assert [fit.solver for fit in fits] == ["dual", "primal", "primal"]


def test_a_dual_solver_on_the_gpu_is_refused_before_any_work(monkeypatch):
    X_train, X_test, a, b, _ = _wide_bands()
    monkeypatch.setattr(FeatureReducer, "fit", _refuse)
    with pytest.raises(ValueError, match="solver='dual' runs on the CPU only"):
        noise_levels(X_train, X_test, a, {0.5: b}, solver="dual", device="cuda", **WIDE)
    with pytest.raises(ValueError, match="'cv' parameter of representations"):
        representations(X_train, X_test, {"a": a}, cv=True)


# --- What the default toy world shows: the CLI's default run, made once per test session. ---


@pytest.fixture(scope="session")
def default_run(toy_world, tmp_path_factory):
    """``brainldm encode`` with its defaults on the default toy world, and its arrays.

    The run is made once per test session, in one folder; the tests read the arrays back
    from its cache, recomputing nothing. (benchmarks/encoding.py --part encode times it.)
    """
    from brainldm.cli import (
        ENCODE_CHUNK_SIZE,
        ENCODE_N_ITER,
        ENCODE_STEPS,
        ENCODE_STRENGTHS,
        main,
    )
    from brainldm.datasets.nsd import load_nsd

    out = tmp_path_factory.getbasetemp() / "encode-default"
    if not (out / "summary.json").exists():
        assert main(["encode", "--nsd-root", str(toy_world), "--out", str(out)]) == 0
    data = load_nsd(toy_world, 1, average_train=True, progress=False, cache_dir=out / "cache")
    defaults = dict(
        strengths=ENCODE_STRENGTHS,
        steps=ENCODE_STEPS,
        n_iter=ENCODE_N_ITER,
        chunk_size=ENCODE_CHUNK_SIZE,
    )
    results = run_encoding_analyses(data, memory=out / "cache" / "subj01", **defaults)
    return data, results, out


def _paired(summary, roi, pair):
    return summary[roi]["comparisons"][pair]


def _mean_and_se(values, seed=0, n_boot=1000):
    """Mean over voxels and its bootstrap standard error."""
    rng = np.random.default_rng(seed)
    draws = values[rng.integers(len(values), size=(n_boot, len(values)))].mean(1)
    return values.mean(), draws.std(ddof=1)


# Measured on the default toy world (TOY_WORLD_VERSION 3, subj01) with the CLI's defaults;
# docs/encoding_analyses.md gives every figure and why the world shows what it shows.


@pytest.mark.slow
def test_c_beats_z_in_ventral_voxels_and_z_beats_zc_in_early_voxels(default_run):
    # Ventral voxels are linear in the scene's categories, colours and counts, which c
    # carries (R2 of the 18 semantic features from c 0.99, from z 0.05). Measured: z wins
    # 0.00 of ventral voxels, median r difference -0.50. Early voxels are local luminance,
    # colour and edges, which z keeps better than z_c denoised from strength 0.8 (R2 of
    # their noise-free signal 0.80 against 0.58). Measured: z beats z_c in 0.96 of them.
    data, results, *_ = default_run
    summary = results.representations.summary
    ventral = _paired(summary, "ventral", "z-c")
    assert ventral["fraction_a_wins"] < 0.05 and ventral["significant"]
    assert ventral["median_difference"] < -0.3
    early = _paired(summary, "early", "z-zc")
    assert early["fraction_a_wins"] > 0.7 and early["significant"]


@pytest.mark.slow
def test_z_beats_c_in_early_voxels(default_run):
    # Early voxels are local luminance, colour and edges, which z keeps and c, from captions
    # that seldom name the background's colour (toy world version 3), mostly does not (R2 of
    # their noise-free signal from z 0.80, from c 0.18). Measured: z beats c in 0.92 of
    # early voxels, median r difference +0.281. (Version 2's captions all named it: 0.56.)
    data, results, *_ = default_run
    early = _paired(results.representations.summary, "early", "z-c")
    assert early["fraction_a_wins"] > 0.8 and early["significant"]
    assert early["median_difference"] > 0.15


@pytest.mark.slow
def test_z_dominates_at_the_lowest_strength(default_run):
    # Measured at strength 0.2: z_c's split share beats z's in 0.20 of early voxels and
    # 0.45 of nsdgeneral's, both significant.
    data, results, *_ = default_run
    lowest = results.noise_levels.summary[results.noise_levels.labels[0]]
    for roi, most in (("early", 0.35), ("nsdgeneral", 0.5)):
        split = _paired(lowest, roi, "split_zc-split_z")
        assert split["fraction_a_wins"] < most and split["significant"], roi


@pytest.mark.slow
def test_zc_share_of_early_voxels_falls_with_strength(default_run):
    # The more noise, the further z_c from the seen image (R2 of the low-level generating
    # features from z_c: 0.79 at strength 0.2, 0.42 at 0.8), so its split share of early
    # voxels falls: measured means 0.048, 0.044, 0.034, 0.011.
    data, results, *_ = default_run
    noise = results.noise_levels
    early = data.roi_masks["early"]
    means = noise.split["zc"][:, early].mean(1)
    assert stats.spearmanr(noise.strengths, means).statistic <= -0.8
    loss, se = _mean_and_se(noise.split["zc"][0, early] - noise.split["zc"][-1, early])
    assert loss > 3 * se


@pytest.mark.slow
def test_zc_share_grows_along_the_denoising(default_run):
    # Early in the chain z_c is mostly the noise added; it becomes the image as the
    # denoising goes on. Measured split share of z_c (early, middle, late step): early
    # voxels -0.000, 0.004, 0.011; nsdgeneral -0.000, 0.005, 0.007.
    data, results, *_ = default_run
    stages = results.denoising_stages
    for roi in ("early", "nsdgeneral"):
        mask = data.roi_masks[roi]
        means = stages.split["zc"][:, mask].mean(1)
        assert np.all(np.diff(means) > 0), roi
        gain, se = _mean_and_se(stages.split["zc"][-1, mask] - stages.split["zc"][0, mask])
        assert gain > 3 * se, roi


@pytest.mark.slow
def test_the_layer_map_follows_how_the_toy_brain_was_made(default_run):
    # Ventral voxels are linear in semantic attributes, which reach the U-Net through c's
    # cross-attention in its coarse blocks: the first, full-resolution down block predicts
    # them worst (median r 0.01-0.14 against 0.27-0.29 for mid_block). Measured, at the
    # early, middle and late steps: down_blocks.0 best in 0.00 of significant ventral
    # voxels; mid_block and up_blocks.1 in 0.90, 0.87, 0.85. Early voxels are local
    # luminance, colour and edges: down_blocks.0, the first layer, gains as the latent
    # becomes the image (median r 0.39, 0.44, 0.45) and wins 0.18 of them at the late step.
    data, results, *_ = default_run
    layers = results.unet_layers
    index = {name: k for k, name in enumerate(layers.layers)}
    early = data.roi_masks["early"]
    for step in layers.steps:
        won = layers.summary[step]["ventral"]["best_fraction"]
        assert won["down_blocks.0"] < 0.05, step
        assert won["mid_block"] + won["up_blocks.1"] > 0.8, step
        deep = _paired(layers.summary[step], "ventral", "down_blocks.0-mid_block")
        assert deep["fraction_a_wins"] < 0.1 and deep["significant"], step
    first = layers.r[:, index["down_blocks.0"]][:, early]
    assert np.median(first[-1]) - np.median(first[0]) > 0.05
    late = layers.summary[layers.steps[-1]]["early"]["best_fraction"]["down_blocks.0"]
    assert late > 0.1
    assert late > 4 * layers.summary[layers.steps[-1]]["ventral"]["best_fraction"]["down_blocks.0"]


@pytest.fixture(scope="session")
def second_seed(default_run):
    """(i) and the strength-0.8 partition of (ii) again, with another seed of the img2img noise."""
    import torch
    from threadpoolctl import threadpool_limits

    from brainldm.cli import ENCODE_CHUNK_SIZE, ENCODE_N_ITER, ENCODE_STEPS

    data, results, out = default_run
    # One thread, as the CLI: on a shared 2-core machine two threads spin against each other.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1):
            other = run_encoding_analyses(
                data,
                analyses=["representations", "noise_levels"],
                strengths=(0.8,),
                steps=ENCODE_STEPS,
                n_iter=ENCODE_N_ITER,
                chunk_size=ENCODE_CHUNK_SIZE,
                random_state=43,
                memory=out / "cache" / "subj01",
            )
    finally:
        torch.set_num_threads(threads)
    return data, results, other


@pytest.mark.slow
def test_a_second_seed_gives_the_same_maps(second_seed):
    # Measured over nsdgeneral's 4,884 voxels, seeds 42 and 43: r of z_c 0.953, the joint
    # [z, z_c] model's r 0.985, z_c's split share 0.422 (its unique variance, within
    # +-0.001 of zero in half the voxels, 0.25: noise against noise). z_c's share is small
    # (nsdgeneral mean 0.007 at strength 0.8), so the noise of the fit weighs on its map;
    # on toy world version 2, where it was 0.020, the three were 0.980, 0.990 and 0.669.
    data, results, other = second_seed
    nsdgeneral = data.roi_masks["nsdgeneral"]
    first, second = results.representations.r, other.representations.r
    # z and c do not depend on the img2img noise (up to the BLAS's summation order).
    np.testing.assert_allclose(first[:2], second[:2], atol=1e-4)
    assert not np.array_equal(first[2], second[2])

    def agreement(a, b):
        return np.corrcoef(a[nsdgeneral], b[nsdgeneral])[0, 1]

    assert agreement(first[2], second[2]) > 0.92
    noise, again = results.noise_levels, other.noise_levels
    assert agreement(noise.r_joint[-1], again.r_joint[0]) > 0.96
    assert agreement(noise.split["zc"][-1], again.split["zc"][0]) > 0.3
