"""The ``brainldm`` command's plumbing: arguments mapped to the workflows, error lines, exit codes.

What the workflows compute is specified in test_workflows.py; the toy world's science in
test_toy_figure5.py.
"""

import json
import warnings

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


class Reached(Exception):
    """Raised by a stand-in workflow: the arguments got through the parser."""


def stand_in(monkeypatch, name):
    """Replace ``brainldm.workflows.<name>`` by a function that records its arguments."""
    import brainldm.workflows

    calls = []

    def record(*args, **kwargs):
        calls.append((args, kwargs))
        raise Reached

    monkeypatch.setattr(brainldm.workflows, name, record)
    return calls


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    usage = capsys.readouterr().out
    assert "{demo,toy-world,reconstruct,evaluate,encode}" in usage


@pytest.mark.parametrize("command", ["demo", "toy-world", "reconstruct", "evaluate", "encode"])
def test_help_of_each_command_renders(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: brainldm {command} ")


def test_encode_help_names_every_analysis(capsys):
    from brainldm.encoding import ANALYSES

    with pytest.raises(SystemExit):
        main(["encode", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert all(name in text for name in ANALYSES)


# Each numeric option: the first value out of its range, the library's parameter it feeds with
# that value, and the value at the edge of the range (accepted).
RANGES = [
    ("reconstruct", "--n-images", "1", "n_images", 1, "2", 2),
    ("reconstruct", "--n-samples", "0", "n_samples_per_image", 0, "1", 1),
    ("reconstruct", "--steps", "0", "steps", 0, "1", 1),
    ("reconstruct", "--strength", "0", "strength", 0.0, "1", 1.0),
    ("reconstruct", "--guidance", "-0.5", "guidance", -0.5, "0", 0.0),
    ("reconstruct", "--batch-size", "0", "batch_size", 0, "1", 1),
    ("encode", "--steps", "0", "steps", 0, "1", 1),
    ("encode", "--strengths", "0.5,1.5", "strengths", [0.5, 1.5], "1", [1.0]),
    ("encode", "--stage-strength", "0", "stage_strength", 0.0, "1", 1.0),
    ("encode", "--pool-size", "0", "pool_size", 0, "1", 1),
    ("encode", "--n-components", "0", "n_components", 0, "1", 1),
    ("encode", "--n-iter", "0", "n_iter", 0, "1", 1),
    ("encode", "--cv", "1", "cv", 1, "2", 2),
    ("encode", "--chunk-size", "0", "chunk_size", 0, "1", 1),
    ("encode", "--seed", "-1", "random_state", -1, "0", 0),
    ("encode", "--batch-size", "0", "batch_size", 0, "1", 1),
    ("encode", "--threads", "0", "threads", 0, "1", 1),
    ("encode", "--dask", "0", "dask", 0, "1", 1),
]


def command_line(command, tmp_path, *args):
    first = {"reconstruct": [str(tmp_path / "nsd")], "encode": []}[command]
    return [command, *first, "--out", str(tmp_path / "out"), *args]


def range_ids(case):
    return f"{case[0]} {case[1]}"


@pytest.mark.parametrize("case", RANGES, ids=range_ids)
def test_an_option_out_of_its_range_stops_the_parser_naming_the_flag(
    tmp_path, monkeypatch, capsys, case
):
    command, flag, bad = case[:3]
    calls = stand_in(monkeypatch, command)
    with pytest.raises(SystemExit) as exit_info:
        main(command_line(command, tmp_path, flag, bad))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"brainldm {command}: error: argument {flag}: must be ")
    assert err[-1].endswith(f"got {bad!r}")
    assert calls == [] and not (tmp_path / "out").exists()


@pytest.mark.parametrize("case", RANGES, ids=range_ids)
def test_the_edge_of_an_options_range_reaches_the_workflow(tmp_path, monkeypatch, case):
    command, flag, _, parameter, _, edge, value = case
    calls = stand_in(monkeypatch, command)
    with pytest.raises(Reached):
        main(command_line(command, tmp_path, flag, edge))
    assert calls[0][1][parameter] == value


@pytest.mark.parametrize("case", RANGES, ids=range_ids)
def test_the_parsers_ranges_are_the_workflows(tmp_path, monkeypatch, case):
    """What the parser refuses, the workflow refuses too, naming the parameter, before work."""
    import brainldm.datasets.nsd
    import brainldm.datasets.toy
    from brainldm import workflows

    command, _, _, parameter, bad = case[:5]
    forbid(
        monkeypatch, (brainldm.datasets.nsd, "load_nsd"), (brainldm.datasets.toy, "make_toy_nsd")
    )
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=parameter):
        if command == "encode":
            workflows.encode(None, "subj01", "toy", out, **{parameter: bad})
        else:
            workflows.reconstruct(tmp_path, "subj01", "toy", out, suite="toy", **{parameter: bad})
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--device", "gpu"], "argument --device: must be 'cpu', 'cuda', 'cuda:<index>' or 'mps'"),
        (["--dtype", "half"], "argument --dtype: invalid choice: 'half'"),
        (["--suite", "alexnet"], "argument --suite: invalid choice: 'alexnet'"),
        (["--metrics", "clip,sharpness"], "argument --metrics: must be comma-separated metrics"),
        (["--suite", "toy", "--metrics", "clip"], "argument --metrics: clip not in suite toy"),
        (["--guidance", "nan"], "argument --guidance: must be a float in the range [0.0, inf)"),
        (["--steps", "2.5"], "argument --steps: must be an int in the range [1, inf)"),
    ],
)
def test_choices_and_names_are_checked_by_the_parser(tmp_path, monkeypatch, capsys, args, message):
    calls = stand_in(monkeypatch, "reconstruct")
    with pytest.raises(SystemExit) as exit_info:
        main(command_line("reconstruct", tmp_path, *args))
    assert exit_info.value.code == 2 and calls == []
    assert f"brainldm reconstruct: error: {message}" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--analyses", "representations,maps"], "argument --analyses: must be comma-separated"),
        (["--strengths", ","], "argument --strengths: must be comma-separated numbers"),
        (["--pool-size", "big"], "argument --pool-size: must be 'auto' or an int"),
        (["--dask", "scheduler"], "argument --dask: must be a number of local workers"),
        (["--cv", "kfold"], "argument --cv: must be an int in the range [2, inf) or 'loo'"),
        (["--solver", "svd"], "argument --solver: invalid choice: 'svd'"),
    ],
)
def test_encode_lists_are_checked_by_the_parser(tmp_path, monkeypatch, capsys, args, message):
    calls = stand_in(monkeypatch, "encode")
    with pytest.raises(SystemExit) as exit_info:
        main(command_line("encode", tmp_path, *args))
    assert exit_info.value.code == 2 and calls == []
    assert f"brainldm encode: error: {message}" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "cv", "solver"),
    [([], 5, "primal"), (["--cv", "loo", "--solver", "dual"], "loo", "dual")],
)
def test_encode_passes_the_folds_and_the_solver_to_the_workflow(
    tmp_path, monkeypatch, args, cv, solver
):
    calls = stand_in(monkeypatch, "encode")
    with pytest.raises(Reached):
        main(command_line("encode", tmp_path, *args))
    assert calls[0][1]["cv"] == cv and calls[0][1]["solver"] == solver


def test_an_unwritable_out_is_refused_naming_the_flag_before_any_work(
    tmp_path, monkeypatch, capsys
):
    # Under a file: unwritable for every user, root included.
    (tmp_path / "afile").write_text("")
    calls = stand_in(monkeypatch, "encode")
    out = tmp_path / "afile" / "out"
    assert main(["encode", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"brainldm: error: --out={str(out)!r} of brainldm encode cannot be")
    assert "is a file, not a folder" in err and "\n" not in err
    assert calls == [] and sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


@pytest.mark.parametrize(
    ("raised", "reported"),
    [
        (TypeError("weights must be a folder"), True),
        (FileNotFoundError("no such file: betas"), True),
        (RuntimeError("torch sees no CUDA device"), True),
        (KeyError("a bug"), False),
        (ZeroDivisionError("a bug"), False),
    ],
)
def test_library_errors_are_one_line_and_bugs_keep_their_traceback(
    tmp_path, monkeypatch, capsys, raised, reported
):
    import brainldm.workflows

    def fail(*args, **kwargs):
        raise raised

    monkeypatch.setattr(brainldm.workflows, "encode", fail)
    if reported:
        assert main(command_line("encode", tmp_path)) == 2
        assert capsys.readouterr().err == f"brainldm: error: {raised}\n"
    else:
        with pytest.raises(type(raised)):
            main(command_line("encode", tmp_path))


def test_an_interrupted_run_says_how_to_resume(tmp_path, monkeypatch, capsys):
    import brainldm.workflows

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(brainldm.workflows, "encode", interrupted)
    try:
        code = main(command_line("encode", tmp_path))
    except KeyboardInterrupt:
        pytest.fail("the interrupt escaped the command")  # not stopping the whole test run
    assert code == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("brainldm: interrupted; run the same command again to resume")


def test_warnings_print_as_one_note_each_and_the_settings_come_back(tmp_path, monkeypatch, capsys):
    import brainldm.workflows

    def warn(*args, **kwargs):
        for _ in range(3):
            warnings.warn("subj01: dropped 4 voxels\nwithout variance", UserWarning, stacklevel=1)
        warnings.warn("an old argument", FutureWarning, stacklevel=1)
        raise ValueError("stop here")

    monkeypatch.setattr(brainldm.workflows, "encode", warn)
    before = warnings.showwarning, list(warnings.filters)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        assert main(command_line("encode", tmp_path)) == 2
        assert warnings.showwarning is before[0]
    assert (warnings.showwarning, warnings.filters) == before
    assert capsys.readouterr().err.splitlines() == [
        "brainldm: note: subj01: dropped 4 voxels without variance",
        "brainldm: note: an old argument (FutureWarning)",
        "brainldm: error: stop here",
    ]


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
    with warnings.catch_warnings():
        # Shown, despite the module's filter, to see how the command prints it.
        warnings.filterwarnings("default", "subj01: dropped")
        assert main(args) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["settings"]["model"] == "toy"
    assert summary["settings"]["suite"] == "toy"
    assert summary["settings"]["batch_size"] == 16
    printed = capsys.readouterr()
    assert "takagi2023 protocol (mean):" in printed.out
    # The loader's warning about voxels without variance: one line, no source echo.
    notes = [line for line in printed.err.splitlines() if "dropped" in line]
    assert len(notes) == 1 and notes[0].startswith("brainldm: note: subj01: dropped ")
    assert "UserWarning" not in printed.err and ".py:" not in printed.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--n-images", "1"], "must be 'all' or an int in the range [2, inf), got '1'"),
        (["--n-images", "some"], "must be 'all' or an int in the range [2, inf), got 'some'"),
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
        # The banded ridge of the default analyses runs on the CPU or CUDA only.
        (["--device", "mps"], "'device' parameter of encode must be a str among"),
        (["--solver", "dual", "--device", "cuda"], "solver='dual' runs on the CPU only"),
        (["--cv", "loo", "--single-trials"], "cv='loo' leaves out one row at a time"),
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


def test_encode_prints_its_plan_before_any_fit(encode_world, tmp_path, monkeypatch, capsys):
    import brainldm.encoding

    def reached(*args, **kwargs):
        raise Reached

    monkeypatch.setattr(brainldm.encoding, "run_encoding_analyses", reached)
    args = [
        "encode",
        "--nsd-root",
        str(encode_world),
        "--subjects",
        "subj01",
        "--out",
        str(tmp_path),
    ]
    with pytest.raises(Reached):
        main([*args, "--analyses", "representations", *ENCODE_TINY])
    printed = capsys.readouterr().out
    assert "encode will run (one subject; cpu at " in printed
    assert "  representations: 3 ridge encoders, " in printed
    assert "  total: ~" in printed
