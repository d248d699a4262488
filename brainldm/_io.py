"""Atomic file writes: a file is either absent or complete, never half written."""

import json
import os
import secrets
import tempfile
import zipfile
from pathlib import Path

import numpy as np

__all__ = [
    "atomic_savez",
    "atomic_write",
    "check_writable",
    "write_csv",
    "write_json",
    "write_npz",
]


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


def check_writable(folder, name, caller):
    """Raise a ValueError naming ``name`` unless files can be written in ``folder``.

    The check a run makes before any work, so that an output or cache folder it
    cannot write stops it at once rather than after hours of computing. It
    creates the missing folders, writes and removes a hidden probe file, then
    removes the folders it created: it leaves the disk as it found it.

    Parameters
    ----------
    folder : str, path-like, object with a ``location`` (a joblib ``Memory``) or None
        The folder; None (or a ``location`` of None) is nothing to check.
    name : str
        The parameter (or the command's flag) that gave the folder, as the error names it.
    caller : str
        The function (or command) it was given to.

    Returns
    -------
    folder : Path or None

    Raises
    ------
    TypeError
        If ``folder`` is neither a path nor None.
    ValueError
        If the folder cannot be created (a file stands in its path, no
        permission) or no file can be written in it.

    Examples
    --------
    >>> import tempfile
    >>> base = Path(tempfile.mkdtemp())
    >>> check_writable(base / "out" / "cache", "memory", "encode") == base / "out" / "cache"
    True
    >>> sorted(base.iterdir())
    []
    >>> (base / "notes").write_text("a file, not a folder")
    20
    >>> check_writable(base / "notes" / "out", "out", "reconstruct")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: out='...out' of reconstruct cannot be written (...); give a folder in which ...
    """
    folder = getattr(folder, "location", folder)
    if folder is None:
        return None
    if not isinstance(folder, (str, os.PathLike)):
        raise TypeError(
            f"{name} of {caller} must be a folder (a str or path-like), got {type(folder).__name__}"
        )
    folder = Path(folder).expanduser()
    created, existing = [], folder
    while not existing.exists() and existing != existing.parent:
        created.append(existing)
        existing = existing.parent
    try:
        if existing.exists() and not existing.is_dir():
            raise NotADirectoryError(0, f"{existing} is a file, not a folder")
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".brainldm-probe-"):
            pass
    except OSError as error:
        raise ValueError(
            f"{name}={str(folder)!r} of {caller} cannot be written "
            f"({error.strerror or error}); give a folder in which you can create files"
        ) from error
    finally:
        for path in created:  # deepest first; a folder someone filled meanwhile stays
            try:
                path.rmdir()
            except OSError:
                break
    return folder


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
