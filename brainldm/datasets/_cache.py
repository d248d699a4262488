"""An on-disk cache of loaded arrays, written atomically and keyed by its sources.

A cache file's name holds a hash of the request (what was asked for) and a hash of the
sizes and modification times of the source files (what it was read from). Changing a
source changes the name, so an outdated file is never read; it is deleted when its
successor is written. Files are written to a temporary name in the same folder and moved
into place with :func:`os.replace`, so a run killed while writing leaves at most a
temporary file that no later run opens.

Large arrays can be written in place (:func:`write_cache_in_place`) and read back as
read-only memory maps (``read_cache(..., mmap=...)``): they are stored uncompressed and
contiguous, so their bytes lie at a fixed offset of the HDF5 file. An array filled in
place is stored flat with its shape in the attribute ``shape``, so that it may end up
smaller than it was allocated (voxels dropped after reading) without a copy.
"""

import errno
import json
import math
import os
import re
import shutil
from pathlib import Path

import h5py
import numpy as np

from brainldm._cache import digest
from brainldm._io import atomic_write
from brainldm._warnings import warn

__all__ = [
    "FORMAT_VERSION",
    "cache_path",
    "check_free_space",
    "format_bytes",
    "read_cache",
    "sources_digest",
    "write_cache",
    "write_cache_in_place",
]

# Part of every key: bump it when the layout of cached files changes.
FORMAT_VERSION = 2


def sources_digest(paths):
    """Hash of the names, sizes and modification times of ``paths``."""
    records = []
    for path in sorted(Path(p) for p in paths):
        stat = path.stat()
        records.append([str(path.resolve()), stat.st_size, stat.st_mtime_ns])
    return digest(records, size=8)


def cache_path(cache_dir, label, key, sources):
    """Path of the cache file for request ``key`` (a JSON-able dict) read from ``sources``.

    ``label`` is a readable prefix (letters, digits, ``-`` and ``_`` are kept).
    """
    key_digest = digest({"format": FORMAT_VERSION, **key}, size=8)
    label = re.sub(r"[^A-Za-z0-9_-]+", "-", label)[:60]
    return Path(cache_dir) / f"{label}-{key_digest}-{sources_digest(sources)}.h5"


def _siblings(path):
    """Cache files of the same request read from other versions of the sources."""
    stem_without_sources = path.stem.rsplit("-", 1)[0]
    return [p for p in path.parent.glob(f"{stem_without_sources}-*.h5") if p != path]


def _stored_shape(dataset):
    return tuple(int(n) for n in dataset.attrs.get("shape", dataset.shape))


def _mappable(dataset):
    """Offset of the dataset's bytes in the file, or None if they cannot be mapped."""
    if dataset.chunks is not None or not dataset.dtype.isnative or dataset.size == 0:
        return None
    return dataset.id.get_offset()


def _read_dataset(path, dataset, mmap):
    shape = _stored_shape(dataset)
    offset = _mappable(dataset) if mmap else None
    if offset is not None:
        return np.memmap(path, dtype=dataset.dtype, mode="r", offset=offset, shape=shape)
    if "shape" in dataset.attrs:
        return dataset[: math.prod(shape)].reshape(shape)
    return dataset[()]


def read_cache(path, mmap=(), max_bytes=0):
    """Arrays and attributes stored by :func:`write_cache`, or None if ``path`` is absent.

    The datasets named in ``mmap`` come back as read-only ``numpy.memmap`` views of the
    file, rather than read into memory, when together they hold more than
    ``max_bytes`` (0: always). A file that cannot be read is reported with a warning and
    treated as absent, so that the caller rebuilds it.
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        with h5py.File(path, "r") as f:
            named = [f[name] for name in mmap if name in f]
            stored = sum(math.prod(_stored_shape(d)) * d.dtype.itemsize for d in named)
            to_map = set(mmap) if stored > max_bytes else set()
            arrays = {name: _read_dataset(path, f[name], name in to_map) for name in f}
            attrs = json.loads(f.attrs["brainldm"])
    except (OSError, KeyError, ValueError) as exc:
        warn(f"Ignoring unreadable cache file {path} ({exc}); it will be rewritten.")
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


def write_cache_in_place(path, shapes, fill):
    """Write a cache file whose large arrays are filled in place, on disk.

    ``shapes`` maps the name of each large array to its shape (float32). The arrays
    are allocated in a temporary file and passed to ``fill`` as writable memory maps;
    ``fill(maps)`` returns ``(arrays, attrs)`` as :func:`write_cache` takes them,
    where each large array is its map or a leading, C-ordered part of it (such as
    :func:`numpy.ndarray.reshape` of its first elements gives). The file is moved into
    place only once ``fill`` has returned, so an interrupted run leaves nothing that
    :func:`read_cache` reads.
    """

    def write(tmp):
        with h5py.File(tmp, "x") as f:
            for name, shape in shapes.items():
                dataset = f.create_dataset(
                    name, shape=(math.prod(shape),), dtype=np.float32, fill_time="never"
                )
                if dataset.size:
                    dataset[-1] = 0  # allocates the contiguous storage, and fixes its offset
                dataset.attrs["shape"] = shape
            offsets = {name: _mappable(f[name]) for name in shapes}
        _reserve(tmp)
        maps = {
            name: np.zeros(shape, np.float32)
            if offsets[name] is None
            else np.memmap(tmp, dtype=np.float32, mode="r+", offset=offsets[name], shape=shape)
            for name, shape in shapes.items()
        }
        arrays, attrs = fill(maps)
        with h5py.File(tmp, "r+") as f:
            for name, array in arrays.items():
                if name not in shapes:
                    f.create_dataset(name, data=np.asarray(array))
                elif offsets[name] is None:
                    del f[name]
                    f.create_dataset(name, data=np.asarray(array))
                else:
                    _check_leading_part(array, maps[name], name)
                    array.flush()
                    f[name].attrs["shape"] = array.shape
            f.attrs["brainldm"] = json.dumps(attrs)

    path = atomic_write(path, write)
    for stale in _siblings(path):
        stale.unlink(missing_ok=True)
    return path


def _check_leading_part(array, mapped, name):
    if not (
        isinstance(array, np.memmap)
        and array.flags.c_contiguous
        and array.__array_interface__["data"][0] == mapped.__array_interface__["data"][0]
    ):
        raise ValueError(f"{name} must be its memory map or a leading part of it.")


def _reserve(path):
    """Give a sparse file its disk blocks now, so that a full disk fails here, not in a map."""
    if not hasattr(os, "posix_fallocate"):
        return
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, os.fstat(fd).st_size)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise
    finally:
        os.close(fd)


def format_bytes(n):
    """1.5e9 -> '1.5 GB' (decimal units)."""
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def check_free_space(cache_dir, needed):
    """Raise OSError (ENOSPC) unless ``cache_dir`` has ``needed`` bytes free."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(cache_dir).free
    if free >= needed:
        return
    leftovers = sorted(cache_dir.glob(".*.tmp"))
    hint = ""
    if leftovers:
        held = sum(p.stat().st_size for p in leftovers)
        hint = (
            f" {len(leftovers)} temporary file(s) of interrupted writes hold "
            f"{format_bytes(held)} there ({leftovers[0].name}, ...); delete them if no "
            f"other process is writing to this cache."
        )
    raise OSError(
        errno.ENOSPC,
        f"The cache needs {format_bytes(needed)} in {cache_dir}, but only {format_bytes(free)} "
        f"is free; free some space or choose another cache_dir.{hint}",
    )
