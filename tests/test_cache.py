"""The one cache: content keys, atomic entries, unreadable entries recomputed."""

import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import joblib
import numpy as np
import pytest

import brainldm
from brainldm._cache import Cache, check_cache, digest, method_version


def counting(value):
    calls = []

    def compute():
        calls.append(1)
        return value

    return compute, calls


def test_digest_tells_arrays_apart_by_dtype_shape_and_contents():
    a = np.arange(6, dtype=np.float32)
    assert digest(a) == digest(a.copy())
    assert digest(a) != digest(a.astype(np.float64))
    assert digest(a) != digest(a.reshape(2, 3))
    assert digest(a) != digest(a + 1)
    assert digest("ab", "c") != digest("a", "bc")


def test_entry_reused_for_same_parts_and_recomputed_for_others(tmp_path):
    cache = Cache(tmp_path)
    compute, calls = counting({"x": np.arange(4.0)})
    cache.arrays("scores", [np.ones(3), {"k": 1}], compute)
    again = cache.arrays("scores", [np.ones(3), {"k": 1}], compute)
    assert len(calls) == 1
    np.testing.assert_array_equal(again["x"], np.arange(4.0))
    cache.arrays("scores", [np.ones(3), {"k": 2}], compute)
    cache.arrays("scores", [np.zeros(3), {"k": 1}], compute)
    assert len(calls) == 3


def test_library_version_is_part_of_every_key(tmp_path, monkeypatch):
    cache = Cache(tmp_path)
    before = cache.path("fit", ["same"], ".pkl")
    monkeypatch.setattr(brainldm, "__version__", brainldm.__version__ + ".post1")
    assert cache.path("fit", ["same"], ".pkl") != before


@pytest.mark.parametrize("kind", ["arrays", "object"])
def test_truncated_entry_is_named_and_recomputed(tmp_path, kind):
    cache = Cache(tmp_path)
    value = {"x": np.arange(1000.0)}
    compute, calls = counting(value)
    getattr(cache, kind)("entry", ["a"], compute)
    (path,) = tmp_path.glob("entry-*")
    path.write_bytes(path.read_bytes()[:50])
    with pytest.warns(UserWarning, match=str(path.name)):
        again = getattr(cache, kind)("entry", ["a"], compute)
    assert len(calls) == 2
    np.testing.assert_array_equal(again["x"], value["x"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        getattr(cache, kind)("entry", ["a"], compute)  # rewritten, readable again
    assert len(calls) == 2


def test_no_location_computes_every_time():
    cache = check_cache(None)
    compute, calls = counting({"x": np.zeros(1)})
    cache.arrays("e", [], compute)
    cache.arrays("e", [], compute)
    assert len(calls) == 2 and cache.path("e", []) is None


def test_joblib_memory_and_folders_are_accepted(tmp_path):
    assert check_cache(joblib.Memory(tmp_path, verbose=0)).location == tmp_path
    assert check_cache(str(tmp_path)).location == tmp_path
    with pytest.raises(ValueError, match="cache must be a folder, a joblib.Memory or None"):
        check_cache(3)


def test_failed_computation_leaves_no_entry(tmp_path):
    cache = Cache(tmp_path)

    def fail():
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        cache.arrays("e", [], fail)
    assert list(tmp_path.iterdir()) == []


def test_a_release_keys_by_its_version_alone(monkeypatch):
    monkeypatch.setattr(brainldm, "__version__", "0.1.0")
    assert method_version() == "0.1.0"


def test_a_development_checkout_keys_by_its_source(tmp_path):
    """Changing any source file of a development version changes every entry's name."""
    package = Path(brainldm.__file__).parent
    shutil.copytree(package, tmp_path / "brainldm", ignore=shutil.ignore_patterns("toy"))
    init = tmp_path / "brainldm" / "__init__.py"
    init.write_text(
        re.sub(r'__version__ = ".*"', '__version__ = "0.2.0.dev0"', init.read_text(), count=1)
    )

    def version():
        code = "from brainldm._cache import method_version; print(method_version())"
        done = subprocess.run(
            [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
        )
        return done.stdout.strip()

    before = version()
    assert before.startswith("0.2.0.dev0+")
    assert version() == before
    with open(tmp_path / "brainldm" / "ridge.py", "a") as f:
        f.write("\n# changed\n")
    assert version() != before
