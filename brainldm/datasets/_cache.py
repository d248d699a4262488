"""An on-disk cache of loaded arrays, written atomically and keyed by its sources.

A cache file's name holds a hash of the request (what was asked for) and a hash of the
sizes and modification times of the source files (what it was read from). Changing a
source changes the name, so an outdated file is never read; it is deleted when its
successor is written. Files are written to a temporary name in the same folder and moved
into place with :func:`os.replace`, so a run killed while writing leaves at most a
temporary file that no later run opens.
"""

import hashlib
import json
import re
import warnings
from pathlib import Path

import h5py
import numpy as np

from brainldm._io import atomic_write

__all__ = ["FORMAT_VERSION", "cache_path", "read_cache", "sources_digest", "write_cache"]

# Part of every key: bump it when the layout of cached files changes.
FORMAT_VERSION = 1


def _digest(text):
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def sources_digest(paths):
    """Hash of the names, sizes and modification times of ``paths``."""
    records = []
    for path in sorted(Path(p) for p in paths):
        stat = path.stat()
        records.append([str(path.resolve()), stat.st_size, stat.st_mtime_ns])
    return _digest(json.dumps(records))


def cache_path(cache_dir, label, key, sources):
    """Path of the cache file for request ``key`` (a JSON-able dict) read from ``sources``.

    ``label`` is a readable prefix (letters, digits, ``-`` and ``_`` are kept).
    """
    key_digest = _digest(json.dumps({"format": FORMAT_VERSION, **key}, sort_keys=True))
    label = re.sub(r"[^A-Za-z0-9_-]+", "-", label)[:60]
    return Path(cache_dir) / f"{label}-{key_digest}-{sources_digest(sources)}.h5"


def _siblings(path):
    """Cache files of the same request read from other versions of the sources."""
    stem_without_sources = path.stem.rsplit("-", 1)[0]
    return [p for p in path.parent.glob(f"{stem_without_sources}-*.h5") if p != path]


def read_cache(path):
    """Arrays and attributes stored by :func:`write_cache`, or None if ``path`` is absent.

    A file that cannot be read is reported with a warning and treated as absent, so
    that the caller rebuilds it.
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        with h5py.File(path, "r") as f:
            arrays = {name: f[name][()] for name in f}
            attrs = json.loads(f.attrs["brainldm"])
    except (OSError, KeyError, ValueError) as exc:
        warnings.warn(
            f"Ignoring unreadable cache file {path} ({exc}); it will be rewritten.", stacklevel=3
        )
        return None
    return arrays, attrs


def write_cache(path, arrays, attrs):
    """Write ``arrays`` (name -> ndarray) and JSON-able ``attrs`` to ``path`` atomically."""

    def write(tmp):
        with h5py.File(tmp, "x") as f:
            for name, array in arrays.items():
                f.create_dataset(name, data=np.asarray(array))
            f.attrs["brainldm"] = json.dumps(attrs)

    path = atomic_write(path, write)
    for stale in _siblings(path):
        stale.unlink(missing_ok=True)
