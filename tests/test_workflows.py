"""The workflows from Python: what they write, what they return, and one cache with the command."""

import json
import time

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from brainldm.cli import main
from brainldm.workflows import (
    EncodingResult,
    EvaluationResult,
    ReconstructionResult,
    demo,
    encode,
    evaluate,
    reconstruct,
)

pytestmark = [
    pytest.mark.filterwarnings("ignore:the (smallest|largest) alpha:UserWarning"),
    pytest.mark.filterwarnings("ignore:subj0[12]. dropped .* voxels:UserWarning"),
]

N_IMAGES, N_SAMPLES = 4, 2
TINY = dict(n_images=N_IMAGES, n_samples_per_image=N_SAMPLES, steps=3, suite="toy")
# The same settings as the command's arguments (its other defaults are the function's).
TINY_ARGS = ["--n-images", "4", "--n-samples", "2", "--steps", "3", "--suite", "toy"]
MODES = ("coarse", "z", "c", "zc")
TOY_METRICS = ("pixcorr", "ssim", "toy_early", "toy_middle", "toy_late", "toy_embedding")
TOY_METRICS += ("toy_colour", "toy_shape", "toy_background")


@pytest.fixture(scope="module")
def run(small_world, tiny_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("recon")
    result = reconstruct(small_world, "subj01", tiny_folder, out, **TINY)
    return small_world, tiny_folder, out, result


def forbid(monkeypatch, *targets):
    """Make each (object, name) raise when called: the run must not need it."""

    def fail(*args, **kwargs):
        raise AssertionError("recomputed a finished stage")

    for target, name in targets:
        monkeypatch.setattr(target, name, fail)


def forbid_reconstruction(monkeypatch):
    from brainldm.diffusion import StableDiffusion
    from brainldm.metrics import IdentificationScorer
    from brainldm.reconstruction import LDMReconstructor

    generation = ("img2img", "text2img", "decode_latents")
    forbid(monkeypatch, *[(StableDiffusion, name) for name in generation])
    forbid(monkeypatch, (LDMReconstructor, "fit"), (IdentificationScorer, "score"))


def without_seconds(summary):
    return {k: v for k, v in summary.items() if k != "seconds"}


def test_reconstruct_writes_figures_tables_and_the_reconstructions(run):
    _, _, out, result = run
    assert isinstance(result, ReconstructionResult)
    assert result.summary["files"] == [
        "reconstructions.png",
        "identification.png",
        "summary.json",
        "per_image.csv",
        "reconstructions-subj01.npz",
    ]
    assert result.files == [out / name for name in result.summary["files"]]
    assert all(path.is_file() for path in result.files)
    # Five columns (seen, X_z, z, c, zc) and a row per image, 32 px images tiled at 128 px.
    grid = Image.open(out / "reconstructions.png")
    assert grid.size == (5 * 132 + 4, 16 + N_IMAGES * 132)
    chart = Image.open(out / "identification.png")
    assert chart.width > 900 and chart.height > 800  # two panels at 150 dpi
    with np.load(out / "reconstructions-subj01.npz") as saved:
        assert saved["images"].tolist() == result.summary["images"]["subj01"]
        assert saved["coarse"].shape == (N_IMAGES, 1, 32, 32, 3)
        for mode in ("z", "c", "zc"):
            assert saved[mode].shape == (N_IMAGES, N_SAMPLES, 32, 32, 3)
            assert saved[mode].dtype == np.uint8
        assert str(saved["suite"]) == "toy"


def test_summary_holds_settings_means_and_the_tests_between_modes(run):
    _, _, out, result = run
    summary = result.summary
    assert json.loads((out / "summary.json").read_text()) == summary
    assert summary["settings"]["n_samples_per_image"] == N_SAMPLES
    assert summary["settings"]["protocols"] == ["pairwise", "takagi2023"]
    for protocol in ("pairwise", "takagi2023"):
        assert list(summary["scores"][protocol]) == list(MODES)
        for mode in MODES:
            stats = summary["scores"][protocol][mode]
            assert tuple(stats) == TOY_METRICS
            assert all(s["n"] == N_IMAGES and s["sem"] >= 0 for s in stats.values())
        tests = summary["comparisons"]["subj01"][protocol]
        assert [(t["metric"], t["mode"], t["other"]) for t in tests] == [
            (metric, "zc", other) for metric in TOY_METRICS for other in ("z", "c")
        ]
        assert all(t["p"] <= t["p_holm"] <= 1 for t in tests)
    identification = ("toy_early", "toy_middle", "toy_late", "toy_embedding")
    assert summary["chance"] == {metric: 0.5 for metric in identification}


def test_per_image_table_has_every_value_and_averages_to_the_summary(run):
    _, _, out, result = run
    table = pd.read_csv(out / "per_image.csv")
    assert list(table.columns) == ["subject", "image", "mode", "protocol", "metric", "value"]
    assert len(table) == N_IMAGES * len(MODES) * 2 * len(TOY_METRICS)
    assert set(table["image"]) == set(result.summary["images"]["subj01"])
    means = table.groupby(["protocol", "mode", "metric"])["value"].mean()
    for (protocol, mode, metric), mean in means.items():
        assert result.summary["scores"][protocol][mode][metric]["mean"] == pytest.approx(mean)
    # Identification is the fraction of the N - 1 distractors beaten.
    ident = table[table["metric"] == "toy_embedding"]["value"] * (N_IMAGES - 1)
    np.testing.assert_allclose(ident, np.round(ident), atol=1e-9)


def test_the_result_holds_the_tables_the_files_hold(run):
    _, _, out, result = run
    pd.testing.assert_frame_equal(result.scores, pd.read_csv(out / "per_image.csv"))
    assert list(result.means.columns) == ["protocol", "mode", "metric", "mean", "sem", "n"]
    assert len(result.means) == 2 * len(MODES) * len(TOY_METRICS)
    for row in result.means.itertuples():
        stats = result.summary["scores"][row.protocol][row.mode][row.metric]
        assert (row.mean, row.sem, row.n) == (stats["mean"], stats["sem"], stats["n"])
    table = result.mean_table("takagi2023")
    assert list(table.index) == list(MODES) and list(table.columns) == list(TOY_METRICS)
    assert (
        table.loc["c", "toy_late"]
        == result.summary["scores"]["takagi2023"]["c"]["toy_late"]["mean"]
    )
    assert result.report().splitlines()[0] == "pairwise protocol (mean):"
    comparisons = result.comparisons
    assert list(comparisons.columns[:5]) == ["subject", "protocol", "metric", "mode", "other"]
    for protocol, tests in result.summary["comparisons"]["subj01"].items():
        chosen = comparisons[comparisons["protocol"] == protocol].drop(
            columns=["subject", "protocol"]
        )
        pd.testing.assert_frame_equal(
            chosen.reset_index(drop=True), pd.DataFrame(tests), check_dtype=False
        )


def test_the_figures_are_drawn_again_from_the_result(run, tmp_path):
    _, _, out, result = run
    grid = result.plot_reconstructions(tmp_path / "grid.png")
    np.testing.assert_array_equal(
        np.asarray(grid), np.asarray(Image.open(out / "reconstructions.png"))
    )
    assert list(result.shown) == ["seen", *MODES]
    figure = result.plot_identification(tmp_path / "bars.png")
    assert [ax.get_title() for ax in figure.axes] == ["pairwise protocol", "takagi2023 protocol"]
    assert Image.open(tmp_path / "bars.png").size == Image.open(out / "identification.png").size


def test_a_second_run_recomputes_nothing(run, monkeypatch):
    root, model, out, first = run
    forbid_reconstruction(monkeypatch)
    lines = []
    again = reconstruct(root, "subj01", model, out, log=lines.append, **TINY)
    assert without_seconds(again.summary) == without_seconds(first.summary)
    assert sum(line.startswith("reusing") for line in lines) == 1 + len(MODES)


def test_a_cache_elsewhere_serves_a_run_that_writes_its_files_under_out(run, tmp_path, monkeypatch):
    root, model, out, first = run
    stamp = (out / "reconstructions-subj01.npz").stat().st_mtime_ns
    forbid_reconstruction(monkeypatch)
    again = reconstruct(root, "subj01", model, tmp_path, memory=out / "cache", **TINY)
    for name in ("reconstructions-subj01.npz", "summary.json", "per_image.csv"):
        assert (tmp_path / name).is_file()
    assert not (tmp_path / "cache").exists()
    assert (out / "reconstructions-subj01.npz").stat().st_mtime_ns == stamp
    pd.testing.assert_frame_equal(again.scores, first.scores)


def test_the_command_reuses_what_python_computed_and_gives_the_same_tables(
    run, monkeypatch, capsys
):
    root, model, out, result = run
    forbid_reconstruction(monkeypatch)
    args = ["reconstruct", str(root), "--model", str(model), "--out", str(out), *TINY_ARGS]
    assert main(args) == 0
    printed = capsys.readouterr().out
    # The fit and the scores of each mode, all found in the cache.
    assert printed.count("reusing") == 1 + len(MODES)
    assert result.report() in printed
    summary = json.loads((out / "summary.json").read_text())
    assert without_seconds(summary) == without_seconds(result.summary)
    pd.testing.assert_frame_equal(pd.read_csv(out / "per_image.csv"), result.scores)


def test_changed_generation_settings_reuse_the_fit(run, tmp_path, monkeypatch):
    from brainldm.reconstruction import LDMReconstructor

    root, model, out, _ = run
    # A copy of the finished run with its fit, so that the module's run stays as it was.
    (tmp_path / "cache").mkdir()
    for path in (out / "cache").glob("*"):
        if path.is_file():
            (tmp_path / "cache" / path.name).write_bytes(path.read_bytes())
    forbid(monkeypatch, (LDMReconstructor, "fit"))
    settings = dict(TINY, steps=2, n_images=3)
    summary = reconstruct(root, "subj01", model, tmp_path, **settings).summary
    assert summary["settings"]["steps"] == 2
    assert summary["scores"]["pairwise"]["zc"]["toy_embedding"]["n"] == 3


def test_a_model_changed_in_its_folder_is_fitted_again(run, tmp_path, retrain_in_place):
    import shutil

    root, model, out, _ = run
    folder = shutil.copytree(model, tmp_path / "model")
    first = reconstruct(root, "subj01", folder, tmp_path / "out", **TINY)
    retrain_in_place(folder, "unet")
    lines = []
    again = reconstruct(root, "subj01", folder, tmp_path / "out", log=lines.append, **TINY)
    assert not any(line.startswith("reusing") for line in lines), lines
    assert again.summary["scores"] != first.summary["scores"]


def test_evaluate_scores_saved_reconstructions_as_the_run_did(run, tmp_path):
    root, _, out, run_result = run
    result = evaluate(out / "reconstructions-subj01.npz", root, out=tmp_path)
    assert isinstance(result, EvaluationResult)
    assert result.summary["settings"]["suite"] == "toy"  # as the file records
    for protocol in ("pairwise", "takagi2023"):
        for mode in MODES:
            for metric, stats in result.summary["scores"][protocol][mode].items():
                expected = run_result.summary["scores"][protocol][mode][metric]["mean"]
                assert stats["mean"] == pytest.approx(expected), (protocol, mode, metric)
    json_path, csv_path = result.files
    assert json_path == tmp_path / "reconstructions-subj01-evaluation.json"
    assert json.loads(json_path.read_text()) == result.summary
    table = pd.read_csv(csv_path)
    assert len(table) == N_IMAGES * len(MODES) * 2 * len(TOY_METRICS)
    pd.testing.assert_frame_equal(table, result.scores)
    assert result.report() == run_result.report()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (dict(strength=1.5), "'strength' parameter of reconstruct must be a float in the range (0"),
        (dict(n_images=1), "'n_images' parameter of reconstruct must be an int in the range [2"),
        (
            dict(n_samples_per_image=0),
            "'n_samples_per_image' parameter of reconstruct must be an int",
        ),
        (dict(preset="original"), "'preset' parameter of reconstruct must be a str among"),
        (dict(suite="alexnet"), "'suite' parameter of reconstruct must be a str among"),
        (dict(subjects="sub-x"), "subject='sub-x' is not an NSD subject"),
    ],
)
def test_reconstruct_checks_its_settings_before_any_work(
    small_world, tiny_folder, tmp_path, monkeypatch, settings, message
):
    import brainldm.datasets.nsd

    forbid(monkeypatch, (brainldm.datasets.nsd, "load_nsd"))
    given = dict(TINY, subjects="subj01") | settings
    subjects = given.pop("subjects")
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[")):
        reconstruct(small_world, subjects, tiny_folder, tmp_path / "out", **given)
    assert not (tmp_path / "out").exists()


def test_more_images_than_the_test_set_is_an_error_before_any_fit(
    small_world, tiny_folder, tmp_path, monkeypatch
):
    from brainldm.reconstruction import LDMReconstructor

    forbid(monkeypatch, (LDMReconstructor, "fit"))
    with pytest.raises(ValueError, match="n_images=41 but subj01 has 40 test images"):
        reconstruct(small_world, "subj01", tiny_folder, tmp_path, **dict(TINY, n_images=41))


def test_evaluate_checks_the_protocols_before_reading(tmp_path):
    with pytest.raises(ValueError, match="'protocols' parameter of evaluate"):
        evaluate(tmp_path / "absent.npz", tmp_path, protocols=["pairwise", "three-way"])


# `encode` on a tiny world: 5 DDIM steps, 20 components, 3 random-search weightings.
ENCODE_TINY = dict(steps=5, n_components=20, n_iter=3, strengths=(0.4, 0.8), chunk_size=300)
ENCODE_TINY_ARGS = ["--steps", "5", "--n-components", "20", "--n-iter", "3"]
ENCODE_TINY_ARGS += ["--strengths", "0.4,0.8", "--chunk-size", "300"]
ANALYSES_ORDER = ("representations", "noise_levels", "denoising_stages", "unet_layers")


@pytest.fixture(scope="module")
def encode_run(encode_world, tmp_path_factory):
    out = tmp_path_factory.mktemp("encode")
    return encode_world, out, encode(encode_world, "subj01", "toy", out, **ENCODE_TINY)


def test_encode_writes_maps_figures_and_a_summary(encode_run):
    import nibabel as nib

    _, out, result = encode_run
    assert isinstance(result, EncodingResult)
    maps = out / "subj01" / "maps"
    for name in ("r_z", "r_c", "r_zc", "significant_zc"):
        assert nib.load(maps / "representations" / f"{name}.nii.gz").shape == (12, 14, 12)
    for name in ("unique_zc_0.40", "split_zc_0.80", "r_joint_0.80"):
        assert (maps / "noise_levels" / f"{name}.nii.gz").exists()
    assert (maps / "denoising_stages" / "unique_zc_middle.nii.gz").exists()
    assert (maps / "unet_layers" / "best_layer_late.nii.gz").exists()
    figures = out / "subj01" / "figures"
    expected = ["fig6_r_z", "fig6_r_c", "fig6_r_zc", "fig7_unique_zc_0.80"]
    expected += ["fig7_unique_zc_by_strength", "fig8_unique_zc_by_stage"]
    expected += ["fig9_best_layer_early", "fig9_best_layer_by_roi"]
    expected += [
        "fig6_r_z_surface",
        "fig8_unique_zc_middle_surface",
        "fig9_best_layer_late_surface",
    ]
    for name in expected:
        with Image.open(figures / f"{name}.png") as image:
            assert image.size[0] > 300
        assert figures / f"{name}.png" in result.files
    assert result.files[0] == out / "summary.json"
    assert all(path.is_file() for path in result.files)
    summary = json.loads((out / "summary.json").read_text())
    assert summary == result.summary
    subject = summary["subjects"]["subj01"]
    assert set(subject["seconds"]) == {"features", *ANALYSES_ORDER}
    assert subject["layers"][2] == "mid_block"
    early = subject["representations"]["early"]["comparisons"]["z-c"]
    assert set(early) == {"fraction_a_wins", "median_difference", "p", "p_holm", "significant"}
    ventral = subject["noise_levels"]["0.80"]["ventral"]
    assert {"unique_zc_se", "comparisons", "mean", "median"} <= set(ventral)
    assert summary["settings"]["strengths"] == [0.4, 0.8]
    assert summary["settings"]["average_train"] is True
    assert summary["settings"]["cv"] == 5 and summary["settings"]["solver"] == "primal"


def _on_fsaverage(folder, name):
    import nibabel as nib

    return np.concatenate(
        [nib.load(folder / f"{name}_hemi-{h}.func.gii").darrays[0].data for h in "LR"]
    )


def test_encode_maps_land_on_the_cortex_where_the_toy_world_planted_them(encode_run):
    """z wins in the toy's early label and c in its ventral one, on fsaverage as in the volume.

    Measured on this world (subj01, the tiny settings): r_z > r_c on 83% of the early
    label's vertices and r_c > r_z on 91% of the ventral label's; 19% of z's significant
    vertices lie in the early label (2.5% of all vertices) and 62% of c's in the ventral
    label (8.4%).
    """
    import nibabel as nib

    world, out, _ = encode_run
    maps = out / "subj01" / "maps" / "representations"
    labels = np.concatenate(
        [
            np.asarray(
                nib.load(world / f"nsddata/freesurfer/fsaverage/label/{h}.streams.mgz").dataobj
            ).ravel()
            for h in ("lh", "rh")
        ]
    )
    r_z, r_c = _on_fsaverage(maps, "r_z"), _on_fsaverage(maps, "r_c")
    early, ventral = labels == 1, labels == 5
    assert len(r_z) == len(labels) == 2 * 2562
    assert np.mean(r_z[early] > r_c[early]) > 0.65
    assert np.mean(r_c[ventral] > r_z[ventral]) > 0.75
    for space, label, enrichment in (("z", early, 3), ("c", ventral, 4)):
        significant = _on_fsaverage(maps, f"significant_{space}") == 1
        assert np.mean(label[significant]) > enrichment * np.mean(label)
    best = _on_fsaverage(out / "subj01" / "maps" / "unet_layers", "best_layer_late")
    assert set(np.unique(best)) <= set(range(-1, 5))


def test_encode_needs_the_transforms_for_its_surface_maps(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"transforms.*--no-surface"):
        encode(tmp_path / "nsd", "subj01", "toy", tmp_path / "out", **ENCODE_TINY)


def test_encode_figures_are_drawn_again_from_the_result(encode_run, tmp_path):
    _, out, result = encode_run
    assert list(result.subjects["subj01"].analyses) == list(ANALYSES_ORDER)
    paths = result.plot_figures("subj01", tmp_path)
    drawn = sorted(path.name for path in (out / "subj01" / "figures").glob("*.png"))
    assert sorted(path.name for path in paths) == drawn
    # Figures 6-9 on slices (14), and each map of them again on the cortex (3 + 2 + 3 + 3).
    assert len(drawn) == 3 + 2 + 1 + 3 + 1 + 3 + 1 + (3 + 2 + 3 + 3)
    assert sum(name.endswith("_surface.png") for name in drawn) == 3 + 2 + 3 + 3
    for path in paths:
        with Image.open(path) as again, Image.open(out / "subj01" / "figures" / path.name) as first:
            assert again.size == first.size


def test_the_encode_command_reuses_what_python_computed(encode_run, monkeypatch):
    from brainldm.diffusion import StableDiffusion
    from brainldm.encoding import BandedVariancePartitioner, VoxelwiseEncoder

    world, out, result = encode_run
    forbid(
        monkeypatch,
        (StableDiffusion, "denoise"),
        (StableDiffusion, "encode_images"),
        (VoxelwiseEncoder, "fit"),
        (BandedVariancePartitioner, "fit"),
    )
    assert main(["encode", "--nsd-root", str(world), "--out", str(out), *ENCODE_TINY_ARGS]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert without_seconds(summary["subjects"]["subj01"]) == without_seconds(
        result.summary["subjects"]["subj01"]
    )
    # The command shows progress bars, the function by default not: the one difference.
    assert summary["settings"] == dict(result.summary["settings"], progress=True)


def test_encode_fits_single_trials_on_request(encode_run, tmp_path):
    import nibabel as nib

    world, averaged, _ = encode_run
    args = ["encode", "--nsd-root", str(world), "--out", str(tmp_path), *ENCODE_TINY_ARGS]
    assert main([*args, "--analyses", "representations", "--single-trials"]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["settings"]["average_train"] is False
    maps = [
        out / "subj01" / "maps" / "representations" / "r_z.nii.gz" for out in (averaged, tmp_path)
    ]
    single, mean = (np.asarray(nib.load(path).dataobj) for path in maps)
    inside = np.isfinite(mean)
    assert np.array_equal(inside, np.isfinite(single))
    # Other rows, other fits: the maps differ, though both find the same early-voxel signal.
    assert not np.allclose(single[inside], mean[inside])
    assert np.corrcoef(single[inside], mean[inside])[0, 1] > 0.5


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (dict(layers=["down_blocks.0", "up_blocks.9"]), "['up_blocks.9'] are not modules"),
        (dict(strengths=[0.5, 1.5]), "'strengths[1]' parameter of encode must be a float"),
        (dict(analyses=["representations", "layers"]), "analyses must be among ['representations'"),
        (dict(guidance=-1.0), "'guidance' parameter of encode must be a float in the range [0.0"),
        (dict(threads=0), "'threads' parameter of encode must be an int in the range [1, inf) or"),
        (dict(average_train="yes"), "'average_train' parameter of encode must be"),
        (dict(dask="scheduler"), "dask must be a number of local workers or a scheduler's"),
        (dict(dask=0), "'dask' parameter of encode must be an int in the range [1, inf)"),
        (dict(device="mps"), "'device' parameter of encode must be a str among {'cpu', 'cuda'}"),
        (dict(cv=1), "'cv' parameter of encode must be an int in the range [2, inf) or a str"),
        (dict(solver="svd"), "'solver' parameter of encode must be a str among {'primal'"),
        (dict(solver="dual", device="cuda"), "encode: solver='dual' runs on the CPU only"),
        (dict(cv="loo", average_train=False), "cv='loo' leaves out one row at a time"),
    ],
)
def test_encode_checks_its_settings_before_any_work(tmp_path, monkeypatch, settings, message):
    import brainldm.datasets.nsd
    import brainldm.datasets.toy

    forbid(
        monkeypatch, (brainldm.datasets.nsd, "load_nsd"), (brainldm.datasets.toy, "make_toy_nsd")
    )
    with pytest.raises(ValueError) as error:
        encode(None, "subj01", "toy", tmp_path / "out", **settings)
    assert message in str(error.value)
    assert not (tmp_path / "out").exists()


def forbid_loading(monkeypatch):
    """Make loading data or a model, or writing the toy world, fail: the run must stop first."""
    import brainldm.datasets.nsd
    import brainldm.datasets.toy
    import brainldm.features
    import brainldm.features.ldm

    forbid(
        monkeypatch,
        # The package exports it lazily: patched there first, so that the value saved to
        # restore after the test is the real function, not the one patched below.
        (brainldm.features, "load_ldm"),
        (brainldm.datasets.nsd, "load_nsd"),
        (brainldm.datasets.toy, "make_toy_nsd"),
        (brainldm.features.ldm, "load_ldm"),
    )


WRITERS = {
    "reconstruct": lambda folders, base: reconstruct(base, "subj01", "toy", **folders),
    "demo": lambda folders, base: demo(**folders),
    "encode": lambda folders, base: encode(None, "subj01", "toy", **folders),
    "evaluate": lambda folders, base: evaluate(base / "recon.npz", base, **folders),
}


@pytest.mark.parametrize(
    ("workflow", "parameter"),
    [(name, "out") for name in WRITERS]
    + [(name, "memory") for name in ("reconstruct", "demo", "encode")],
)
def test_an_unwritable_folder_is_refused_before_any_work(
    tmp_path, monkeypatch, workflow, parameter
):
    forbid_loading(monkeypatch)
    np.savez(tmp_path / "recon.npz", images=np.arange(2), zc=np.zeros((2, 8, 8, 3), np.uint8))
    # A folder under a file: unwritable for every user, root included.
    (tmp_path / "afile").write_text("")
    unwritable = tmp_path / "afile" / "sub"
    folders = {"out": tmp_path / "out"} | {parameter: unwritable}
    before = sorted(tmp_path.rglob("*"))
    started = time.perf_counter()
    with pytest.raises(ValueError) as error:
        WRITERS[workflow](folders, tmp_path)
    assert time.perf_counter() - started < 1
    assert str(error.value).startswith(f"{parameter}={str(unwritable)!r} of {workflow} cannot be")
    assert f"{tmp_path / 'afile'} is a file, not a folder" in str(error.value)
    assert sorted(tmp_path.rglob("*")) == before


def test_a_writable_folder_is_checked_without_a_trace(tmp_path, monkeypatch):
    """The check creates nothing it leaves: a run refused later for a setting writes nothing."""
    forbid_loading(monkeypatch)
    out = tmp_path / "new" / "out"
    with pytest.raises(ValueError, match="'n_iter' parameter of encode"):
        encode(None, "subj01", "toy", out, memory=tmp_path / "cache", n_iter=0)
    assert list(tmp_path.iterdir()) == []
