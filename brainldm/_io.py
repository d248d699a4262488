"""Atomic file writes: a file is either absent or complete, never half written."""

import json
import os
import secrets
import zipfile
from pathlib import Path

import numpy as np

__all__ = ["atomic_savez", "atomic_write", "write_csv", "write_json", "write_npz"]


def atomic_write(path, write):
    """Call ``write(tmp)`` on a hidden sibling of ``path``, then move it into place.

    The temporary name is random, so concurrent writers never share it, and the
    file is created like any other (the umask sets who may read it). If ``write``
    fails or the process is interrupted before the move, ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_savez(path, arrays):
    """Save a dict of arrays to ``path`` as ``.npz`` with :func:`atomic_write`."""

    def write(tmp):
        # A file object, so that numpy does not append ".npz" to the temporary name.
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    return atomic_write(path, write)


def _jsonable(value):
    """``value`` with numpy scalars as Python numbers and NaN as None, for strict JSON."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer, np.bool_)):
        return value.item()
    if isinstance(value, (float, np.floating)):
        return None if np.isnan(value) else float(value)
    return value


def write_json(path, value):
    """Write ``value`` to ``path`` as strict, indented JSON, atomically; return it as written.

    numpy scalars become Python numbers, tuples lists, dictionary keys strings
    and NaN ``null``, so that any JSON reader reads the file.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "summary.json"
    >>> write_json(path, {"mean": np.float32(0.5), "sem": float("nan"), "n": np.int64(3)})
    {'mean': 0.5, 'sem': None, 'n': 3}
    >>> path.read_text().splitlines()[1]
    '  "mean": 0.5,'
    """
    value = _jsonable(value)
    text = json.dumps(value, indent=2, allow_nan=False)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text + "\n"))
    return value


def write_csv(path, table):
    """Write a pandas DataFrame to ``path`` as CSV without its index, atomically.

    Examples
    --------
    >>> import tempfile
    >>> import pandas as pd
    >>> path = Path(tempfile.mkdtemp()) / "scores.csv"
    >>> _ = write_csv(path, pd.DataFrame({"image": [3, 7], "value": [0.5, 0.25]}))
    >>> path.read_text().splitlines()
    ['image,value', '3,0.5', '7,0.25']
    """
    return atomic_write(path, lambda tmp: table.to_csv(tmp, index=False))


def write_npz(path, arrays):
    """Save ``name -> array`` as ``.npz``, atomically, holding one array in memory at a time.

    A value may be a callable returning the array, called only when its turn
    comes, so that arrays larger than memory together are written one after
    the other.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "records.npz"
    >>> _ = write_npz(path, {"images": np.arange(3), "zc": lambda: np.zeros((3, 2))})
    >>> with np.load(path) as saved:
    ...     sorted(saved.files), saved["zc"].shape
    (['images', 'zc'], (3, 2))
    """

    def write(tmp):
        with zipfile.ZipFile(tmp, "w", allowZip64=True) as archive:
            for name, array in arrays.items():
                with archive.open(f"{name}.npy", "w", force_zip64=True) as f:
                    np.lib.format.write_array(f, np.asarray(array() if callable(array) else array))

    return atomic_write(path, write)
