import json

import numpy as np
import pytest
from PIL import Image

from brainldm.cli import main, reconstruct


@pytest.fixture(scope="module")
def world(small_world, tiny_folder):
    return small_world, tiny_folder


def test_reconstruct_decodes_identifiable_latents_and_writes_images(world, tmp_path):
    root, model = world
    summary = reconstruct(root, 1, model, tmp_path, n_images=3, steps=3, log=lambda line: None)
    assert summary["n_test_images"] == 40
    # Early voxels see the image and ventral voxels its content, so decoded z
    # and c pick their own image out of two above chance (0.5 +- 0.03 for 40
    # images), even through random tiny models and 361 training trials.
    assert summary["identification_z"] > 0.58
    assert summary["identification_c"] > 0.75
    grid = np.asarray(Image.open(tmp_path / "reconstructions.png"))
    assert grid.shape[0] > 3 * 16 and grid.shape[1] > 5 * 16
    assert json.loads((tmp_path / "summary.json").read_text()) == summary


def test_reconstruct_resumes_from_finished_stages(world, tmp_path):
    root, model = world
    reconstruct(root, 1, model, tmp_path, n_images=2, steps=3, log=lambda line: None)
    lines = []
    reconstruct(root, 1, model, tmp_path, n_images=2, steps=3, log=lines.append)
    reused = [line for line in lines if line.startswith("reusing")]
    assert len(reused) == 3


def test_command_reports_a_missing_dataset_without_a_traceback(tmp_path, capsys):
    code = main(["reconstruct", str(tmp_path / "no-nsd"), "--out", str(tmp_path / "out")])
    assert code == 2
    assert "nsd_expdesign.mat" in capsys.readouterr().err
