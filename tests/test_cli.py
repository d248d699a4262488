"""The ``brainldm`` command's plumbing: arguments mapped to the workflows, error lines, exit codes.

What the workflows compute is specified in test_workflows.py; the toy world's science in
test_toy_figure5.py.
"""

import json

import numpy as np
import pytest
from PIL import Image

from brainldm.cli import main

pytestmark = [
    pytest.mark.filterwarnings("ignore:the (smallest|largest) alpha:UserWarning"),
    pytest.mark.filterwarnings("ignore:subj0[12]. dropped .* voxels:UserWarning"),
]

# `brainldm encode` on a tiny world: 5 DDIM steps, 20 components, 3 random-search weightings.
ENCODE_TINY = ["--steps", "5", "--n-components", "20", "--n-iter", "3", "--strengths", "0.4,0.8"]
ENCODE_TINY += ["--chunk-size", "300"]


def forbid(monkeypatch, *targets):
    """Make each (object, name) raise when called: the run must not need it."""

    def fail(*args, **kwargs):
        raise AssertionError("called a stage that the command must not reach")

    for target, name in targets:
        monkeypatch.setattr(target, name, fail)


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    usage = capsys.readouterr().out
    assert "{demo,toy-world,reconstruct,evaluate,encode}" in usage


def test_evaluate_maps_its_options_to_the_workflow(small_world, tmp_path, capsys):
    from brainldm.datasets.nsd import NSDStimuli
    from brainldm.workflows import evaluate

    # "Reconstructions": the seen images with noise, 2 samples each, as <73k index>_<sample>.png.
    ids = [3, 5, 8, 13]
    brick = small_world / "nsddata_stimuli" / "stimuli" / "nsd" / "nsd_stimuli.hdf5"
    seen = NSDStimuli(brick)[np.array(ids)]
    rng = np.random.default_rng(0)
    folder = tmp_path / "zc"
    folder.mkdir()
    for image, picture in zip(ids, seen, strict=True):
        for s in range(2):
            noisy = np.clip(picture + rng.normal(0, 40, picture.shape), 0, 255).astype(np.uint8)
            Image.fromarray(noisy).save(folder / f"{image}_{s}.png")
    options = ["--suite", "toy", "--metrics", "toy_embedding,pixcorr", "--protocol", "takagi2023"]
    assert main(["evaluate", str(folder), "--nsd-root", str(small_world), *options]) == 0
    printed = capsys.readouterr().out
    result = json.loads((tmp_path / "zc-evaluation.json").read_text())
    expected = evaluate(
        folder,
        small_world,
        suite="toy",
        metrics=["toy_embedding", "pixcorr"],
        protocols=["takagi2023"],
        out=tmp_path / "python",
    )
    assert result == expected.summary
    assert list(result["scores"]) == ["takagi2023"]
    assert list(result["scores"]["takagi2023"]["zc"]) == ["toy_embedding", "pixcorr"]
    assert expected.report() in printed
    assert (
        f"wrote {tmp_path / 'zc-evaluation.json'} and {tmp_path / 'zc-evaluation.csv'}" in printed
    )


def test_demo_runs_the_toy_model_and_scores_it_with_the_toy_suite(
    small_world, tmp_path, monkeypatch, capsys
):
    import brainldm.datasets.toy

    monkeypatch.setattr(
        brainldm.datasets.toy, "make_toy_nsd", lambda root, seed, progress: small_world
    )
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
    assert main(args) == 2
    err = capsys.readouterr().err.splitlines()[-1]  # after the loader's progress bar
    assert err.startswith("brainldm: error: ") and "weights not found" in err
    assert "BRAINLDM_WEIGHTS_DIR" in err and "Traceback" not in err


def test_evaluate_rejects_a_file_without_image_indices(small_world, tmp_path, capsys):
    path = tmp_path / "recon.npz"
    np.savez(path, zc=np.zeros((2, 8, 8, 3), np.uint8))
    assert main(["evaluate", str(path), "--nsd-root", str(small_world)]) == 2
    assert "has no 'images' array" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--layers", "down_blocks.0,up_blocks.9"], "['up_blocks.9'] are not modules"),
        (
            ["--strengths", "0.5,1.5"],
            "'strengths[1]' parameter of encode must be a float in the range (0.0, 1.0]",
        ),
        (["--analyses", "representations,layers"], "analyses must be among ['representations'"),
    ],
)
def test_encode_rejects_bad_settings_before_loading_anything(
    encode_world, tmp_path, monkeypatch, capsys, args, message
):
    import brainldm.datasets.nsd

    forbid(monkeypatch, (brainldm.datasets.nsd, "load_nsd"))
    out = tmp_path / "out"
    assert main(["encode", "--nsd-root", str(encode_world), "--out", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("brainldm: error: ") and message in err
    assert not out.exists()


# Starts a local dask cluster of worker processes: about 50 s on 2 cores.
@pytest.mark.slow
def test_encode_runs_one_subject_per_dask_worker(encode_world, tmp_path):
    world = encode_world
    args = ["encode", "--nsd-root", str(world), "--out", str(tmp_path), *ENCODE_TINY]
    args += ["--subjects", "1,2", "--analyses", "representations", "--dask", "2"]
    assert main(args) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary["subjects"]) == {"subj01", "subj02"}
    assert (tmp_path / "subj02" / "maps" / "representations" / "r_c.nii.gz").exists()
