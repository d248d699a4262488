import json
import time

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from brainldm.cli import evaluate, main, reconstruct

pytestmark = [
    pytest.mark.filterwarnings("ignore:the (smallest|largest) alpha:UserWarning"),
    pytest.mark.filterwarnings("ignore:subj01. dropped .* voxels:UserWarning"),
]

N_IMAGES, N_SAMPLES = 4, 2
TINY = dict(n_images=N_IMAGES, n_samples=N_SAMPLES, steps=3, suite="toy", progress=False)
MODES = ("coarse", "z", "c", "zc")
TOY_METRICS = ("pixcorr", "ssim", "toy_early", "toy_middle", "toy_late", "toy_embedding")
TOY_METRICS += ("toy_colour", "toy_shape", "toy_background")


def quiet(line):
    pass


@pytest.fixture(scope="module")
def run(small_world, tiny_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("recon")
    summary = reconstruct(small_world, "subj01", tiny_folder, out, log=quiet, **TINY)
    return small_world, tiny_folder, out, summary


def forbid(monkeypatch, *targets):
    """Make each (object, name) raise when called: the run must not need it."""

    def fail(*args, **kwargs):
        raise AssertionError("recomputed a finished stage")

    for target, name in targets:
        monkeypatch.setattr(target, name, fail)


def forbid_generation(monkeypatch):
    from brainldm.diffusion import StableDiffusion

    forbid(
        monkeypatch,
        *[(StableDiffusion, name) for name in ("img2img", "text2img", "decode_latents")],
    )


def test_reconstruct_writes_figures_tables_and_the_reconstructions(run):
    _, _, out, summary = run
    assert summary["files"] == [
        "reconstructions.png",
        "identification.png",
        "summary.json",
        "per_image.csv",
        "reconstructions-subj01.npz",
    ]
    assert all((out / name).is_file() for name in summary["files"])
    # Five columns (seen, X_z, z, c, zc) and a row per image, 32 px images tiled at 128 px.
    grid = Image.open(out / "reconstructions.png")
    assert grid.size == (5 * 132 + 4, 16 + N_IMAGES * 132)
    chart = Image.open(out / "identification.png")
    assert chart.width > 900 and chart.height > 800  # two panels at 150 dpi
    with np.load(out / "reconstructions-subj01.npz") as saved:
        assert saved["images"].tolist() == summary["images"]["subj01"]
        assert saved["coarse"].shape == (N_IMAGES, 1, 32, 32, 3)
        for mode in ("z", "c", "zc"):
            assert saved[mode].shape == (N_IMAGES, N_SAMPLES, 32, 32, 3)
            assert saved[mode].dtype == np.uint8
        assert str(saved["suite"]) == "toy"


def test_summary_holds_settings_means_and_the_tests_between_modes(run):
    _, _, out, summary = run
    assert json.loads((out / "summary.json").read_text()) == summary
    assert summary["settings"]["n_samples"] == N_SAMPLES
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
    _, _, out, summary = run
    table = pd.read_csv(out / "per_image.csv")
    assert list(table.columns) == ["subject", "image", "mode", "protocol", "metric", "value"]
    assert len(table) == N_IMAGES * len(MODES) * 2 * len(TOY_METRICS)
    assert set(table["image"]) == set(summary["images"]["subj01"])
    means = table.groupby(["protocol", "mode", "metric"])["value"].mean()
    for (protocol, mode, metric), mean in means.items():
        assert summary["scores"][protocol][mode][metric]["mean"] == pytest.approx(mean)
    # Identification is the fraction of the N - 1 distractors beaten.
    ident = table[table["metric"] == "toy_embedding"]["value"] * (N_IMAGES - 1)
    np.testing.assert_allclose(ident, np.round(ident), atol=1e-9)


def test_a_second_run_recomputes_nothing(run, monkeypatch):
    from brainldm.metrics import IdentificationScorer
    from brainldm.reconstruction import LDMReconstructor

    root, model, out, first = run
    forbid_generation(monkeypatch)
    forbid(monkeypatch, (LDMReconstructor, "fit"), (IdentificationScorer, "score"))
    lines = []
    again = reconstruct(root, "subj01", model, out, log=lines.append, **TINY)
    assert {k: v for k, v in again.items() if k != "seconds"} == {
        k: v for k, v in first.items() if k != "seconds"
    }
    assert sum(line.startswith("reusing") for line in lines) == 1 + len(MODES)


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
    summary = reconstruct(root, "subj01", model, tmp_path, log=quiet, **settings)
    assert summary["settings"]["steps"] == 2
    assert summary["scores"]["pairwise"]["zc"]["toy_embedding"]["n"] == 3


def test_evaluate_scores_saved_reconstructions_as_the_run_did(run, tmp_path):
    root, _, out, summary = run
    result = evaluate(
        out / "reconstructions-subj01.npz", root, out=tmp_path, progress=False, log=quiet
    )
    assert result["settings"]["suite"] == "toy"  # as the file records
    for protocol in ("pairwise", "takagi2023"):
        for mode in MODES:
            for metric, stats in result["scores"][protocol][mode].items():
                expected = summary["scores"][protocol][mode][metric]["mean"]
                assert stats["mean"] == pytest.approx(expected), (protocol, mode, metric)
    saved = json.loads((tmp_path / "reconstructions-subj01-evaluation.json").read_text())
    assert saved == result
    table = pd.read_csv(tmp_path / "reconstructions-subj01-evaluation.csv")
    assert len(table) == N_IMAGES * len(MODES) * 2 * len(TOY_METRICS)


def test_evaluate_reads_a_folder_of_pngs_named_by_73k_index(run, tmp_path):
    root, _, out, summary = run
    folder = tmp_path / "zc"
    folder.mkdir()
    with np.load(out / "reconstructions-subj01.npz") as saved:
        for image, samples in zip(saved["images"], saved["zc"], strict=True):
            for s, sample in enumerate(samples):
                Image.fromarray(sample).save(folder / f"{image}_{s}.png")
    code = main(
        [
            "evaluate",
            str(folder),
            "--nsd-root",
            str(root),
            "--suite",
            "toy",
            "--metrics",
            "toy_embedding,pixcorr",
            "--protocol",
            "takagi2023",
        ]
    )
    assert code == 0
    result = json.loads((tmp_path / "zc-evaluation.json").read_text())
    assert list(result["scores"]) == ["takagi2023"]
    for metric in ("toy_embedding", "pixcorr"):
        expected = summary["scores"]["takagi2023"]["zc"][metric]["mean"]
        assert result["scores"]["takagi2023"]["zc"][metric]["mean"] == pytest.approx(expected)


def test_demo_runs_the_toy_model_and_scores_it_with_the_toy_suite(
    small_world, tmp_path, monkeypatch, capsys
):
    import brainldm.datasets.toy

    monkeypatch.setattr(brainldm.datasets.toy, "make_toy_nsd", lambda root, seed: small_world)
    args = ["demo", "--out", str(tmp_path), "--n-images", "3", "--steps", "2", "--n-samples", "1"]
    assert main(args) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["settings"]["model"] == "toy"
    assert summary["settings"]["suite"] == "toy"
    assert summary["settings"]["batch_size"] == 16
    assert "takagi2023 protocol (mean):" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--n-images", "1"], "expected 'all' or an integer >= 2, got '1'"),
        (["--n-images", "some"], "expected 'all' or an integer >= 2, got 'some'"),
        (["--subjects", "sub-x"], "subject='sub-x' is not an NSD subject"),
    ],
)
def test_bad_arguments_are_rejected_by_the_parser(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        main(["reconstruct", str(tmp_path), "--out", str(tmp_path / "out"), *args])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_command_reports_a_missing_dataset_without_a_traceback(tmp_path, capsys):
    code = main(["reconstruct", str(tmp_path / "no-nsd"), "--out", str(tmp_path / "out")])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("brainldm: error: ") and "nsd_expdesign.mat" in err


def test_more_images_than_the_test_set_is_an_error(small_world, tiny_folder, tmp_path, capsys):
    args = ["reconstruct", str(small_world), "--model", str(tiny_folder), "--suite", "toy"]
    assert main([*args, "--out", str(tmp_path), "--n-images", "41"]) == 2
    assert "n_images=41 but subj01 has 40 test images" in capsys.readouterr().err


def test_missing_metric_weights_are_reported_before_any_fit(
    small_world, tiny_folder, tmp_path, monkeypatch, capsys
):
    from brainldm.reconstruction import LDMReconstructor

    # A model not trained on the toy world defaults to Brain-Diffuser's suite.
    monkeypatch.setenv("BRAINLDM_WEIGHTS_DIR", str(tmp_path / "no-weights"))
    forbid(monkeypatch, (LDMReconstructor, "fit"))
    args = ["reconstruct", str(small_world), "--model", str(tiny_folder), "--out", str(tmp_path)]
    start = time.time()
    assert main(args) == 2
    err = capsys.readouterr().err.splitlines()[-1]  # after the loader's progress bar
    assert err.startswith("brainldm: error: ") and "weights not found" in err
    assert "BRAINLDM_WEIGHTS_DIR" in err and "Traceback" not in err
    assert time.time() - start < 30


def test_evaluate_rejects_a_file_without_image_indices(small_world, tmp_path, capsys):
    path = tmp_path / "recon.npz"
    np.savez(path, zc=np.zeros((2, 8, 8, 3), np.uint8))
    assert main(["evaluate", str(path), "--nsd-root", str(small_world)]) == 2
    assert "has no 'images' array" in capsys.readouterr().err


@pytest.mark.slow
def test_the_demo_defaults_finish_in_under_ten_minutes(tmp_path):
    start = time.time()
    assert main(["demo", "--out", str(tmp_path)]) == 0
    seconds = time.time() - start
    summary = json.loads((tmp_path / "summary.json").read_text())
    table = {
        protocol: {
            mode: {m: round(s["mean"], 3) for m, s in metrics.items()}
            for mode, metrics in modes.items()
        }
        for protocol, modes in summary["scores"].items()
    }
    report = f"{seconds:.0f} s; means: {json.dumps(table)}"
    assert seconds < 600, report
    for protocol in ("pairwise", "takagi2023"):
        scores = summary["scores"][protocol]
        # Over 100 images identification at chance is 0.5 +- 0.03 (one standard deviation).
        assert scores["zc"]["toy_embedding"]["mean"] > 0.6, report
        assert scores["z"]["toy_early"]["mean"] > 0.75, report
