import numpy as np
import pytest

from brainldm._io import atomic_savez, atomic_write


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "result.txt"
    path.write_text("old")

    def fail(tmp):
        tmp.write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, fail)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["result.txt"]


def test_savez_writes_exactly_the_named_file(tmp_path):
    atomic_savez(tmp_path / "a.npz", {"x": np.arange(3)})
    assert [p.name for p in tmp_path.iterdir()] == ["a.npz"]
    with np.load(tmp_path / "a.npz") as saved:
        np.testing.assert_array_equal(saved["x"], np.arange(3))
