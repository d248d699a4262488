"""The package's one content-keyed cache: what a run computed, saved atomically and reused.

Every cached result (a fitted estimator, a feature pass, PCA scores, a chunk of voxels,
generated images) is stored under a name that holds a digest of everything it depends on:
the data (array contents), the model (its weights' fingerprint), the settings, and the
version of brainldm that computed it (:func:`method_version`: a release's version, or for a
development checkout its version and a digest of its source). Changing any of them changes the name, so a stale
entry is never read; an upgrade of the package recomputes rather than trusting results a
different version of the method produced.

Entries are written with :func:`brainldm._io.atomic_write` (complete or absent, never half
written), so a run killed at any point resumes from the entries it finished. An entry that
cannot be read (truncated, corrupted, written by an incompatible version of a library) is
reported with its path in a warning and recomputed; it never surfaces as a bare
``BadZipFile`` or ``UnpicklingError``.

Why not :class:`joblib.Memory` itself: it names an entry by hashing the call's arguments
(pickling them) and the function's source. Hashing arrays costs the same either way
(``benchmarks/cache.py``: 88 ms for a 46 MB betas matrix, both), but a model pickles by
reference, its name or folder, so joblib's hash would not change when a model is retrained
in the same folder; entries here are named by the weights' fingerprint instead. And a change
of the method must invalidate entries even when a function's source is unchanged (a helper
it calls changed), which the library's version in every name does. A ``joblib.Memory``
passed as a cache location is accepted: its ``location`` folder is used.
"""

import hashlib
import json
import pickle
import zipfile
from pathlib import Path

import numpy as np

from brainldm._io import atomic_savez, atomic_write
from brainldm._warnings import warn

__all__ = ["Cache", "check_cache", "digest", "method_version"]

# Errors that mean "this entry is unreadable", as opposed to a bug in the caller.
_UNREADABLE = (
    OSError,
    EOFError,
    ValueError,
    KeyError,
    zipfile.BadZipFile,
    pickle.UnpicklingError,
    AttributeError,
    ImportError,
    IndexError,
    TypeError,
)


def method_version():
    """The version of the method that every cache entry's name holds.

    A release's version; for a development version (``.dev`` in it), the
    version and a digest of the package's source files, so that a changed
    checkout never reuses what its previous code computed.

    Examples
    --------
    >>> import brainldm
    >>> method_version().startswith(brainldm.__version__)
    True
    """
    from brainldm import __version__

    if ".dev" not in __version__:
        return __version__
    global _SOURCE_DIGEST
    if _SOURCE_DIGEST is None:
        package = Path(__file__).resolve().parent
        sources = sorted(package.rglob("*.py"))
        _SOURCE_DIGEST = digest(*(str(p.relative_to(package)) for p in sources), size=8)
        _SOURCE_DIGEST = digest(_SOURCE_DIGEST, *(p.read_bytes() for p in sources), size=8)
    return f"{__version__}+{_SOURCE_DIGEST}"


_SOURCE_DIGEST = None


def _update(hasher, part):
    if isinstance(part, np.ndarray):
        hasher.update(f"ndarray{part.dtype.str}{part.shape}".encode())
        hasher.update(np.ascontiguousarray(part).tobytes())
    elif isinstance(part, bytes):
        hasher.update(part)
    elif isinstance(part, str):
        hasher.update(part.encode())
    else:
        hasher.update(json.dumps(part, sort_keys=True, default=str).encode())
    # A separator, so that ("ab", "c") and ("a", "bc") differ.
    hasher.update(b"\x1f")


def digest(*parts, size=12):
    """A hexadecimal digest of ``parts``: arrays by dtype, shape and contents, the rest as JSON.

    Parameters
    ----------
    *parts : ndarray, bytes, str or JSON-able value
    size : int, default=12
        Bytes of the blake2b digest (the name holds twice as many hex digits).

    Returns
    -------
    str

    Examples
    --------
    >>> import numpy as np
    >>> digest(np.arange(3), {"alpha": 1.0}) == digest(np.arange(3), {"alpha": 1.0})
    True
    >>> digest(np.arange(3)) == digest(np.arange(3.0))
    False
    """
    hasher = hashlib.blake2b(digest_size=size)
    for part in parts:
        _update(hasher, part)
    return hasher.hexdigest()


def check_cache(cache):
    """A :class:`Cache` from a folder, a joblib ``Memory``, a ``Cache`` or None (no caching)."""
    if isinstance(cache, Cache):
        return cache
    if cache is None:
        return Cache(None)
    location = getattr(cache, "location", cache)
    if location is not None and not isinstance(location, (str, Path)):
        raise ValueError(
            f"cache must be a folder, a joblib.Memory or None, got {type(cache).__name__}"
        )
    return Cache(location)


class Cache:
    """Entries under one folder, named by the digest of what they depend on.

    Parameters
    ----------
    location : str, path-like or None
        The folder; None caches nothing (every call computes).

    Examples
    --------
    >>> import tempfile
    >>> cache = Cache(tempfile.mkdtemp())
    >>> calls = []
    >>> def compute():
    ...     calls.append(1)
    ...     return {"x": np.arange(3)}
    >>> first = cache.arrays("demo", ["settings", np.ones(2)], compute)
    >>> second = cache.arrays("demo", ["settings", np.ones(2)], compute)
    >>> len(calls), second["x"].tolist()
    (1, [0, 1, 2])
    """

    def __init__(self, location):
        self.location = None if location is None else Path(location)

    def __repr__(self):
        return f"Cache({None if self.location is None else str(self.location)!r})"

    def path(self, label, parts, suffix=".npz"):
        """Where the entry ``label`` for ``parts`` lives (None without a folder).

        ``label`` may hold ``/`` to group entries in sub-folders; the version of
        brainldm is part of every digest.
        """
        if self.location is None:
            return None
        name = digest(method_version(), label, *parts)
        return self.location / f"{label}-{name}{suffix}"

    def folder(self, label, parts):
        """A sub-folder for the entries of one computation (e.g. its chunks), or None."""
        path = self.path(label, parts, suffix="")
        if path is not None:
            path.mkdir(parents=True, exist_ok=True)
        return path

    def arrays(self, label, parts, compute, log=None):
        """``compute()``'s dict of arrays, saved as ``.npz``; reused when the entry exists."""
        return self.load_or_compute(self.path(label, parts), compute, log=log)

    def object(self, label, parts, compute, log=None):
        """``compute()``'s result, pickled; reused when the entry exists."""
        return self.load_or_compute(self.path(label, parts, ".pkl"), compute, log=log)

    @staticmethod
    def load_or_compute(path, compute, log=None):
        """The entry at ``path`` (``.npz`` arrays or a ``.pkl`` object), else ``compute()``'s.

        An unreadable entry is named in a warning and recomputed.
        """
        if path is not None:
            found = _read(Path(path))
            if found is not None:
                if log is not None:
                    log(f"reusing {path}")
                return found
        value = compute()
        if path is not None:
            _write(Path(path), value)
        return value


def _read(path):
    if not path.is_file():
        return None
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as saved:
                return {key: saved[key] for key in saved.files}
        with open(path, "rb") as f:
            return pickle.load(f)
    except _UNREADABLE as error:
        warn(
            f"Recomputing the unreadable cache entry {path} "
            f"({type(error).__name__}: {error}); it will be overwritten."
        )
        return None


def _write(path, value):
    if path.suffix == ".npz":
        atomic_savez(path, value)
    else:
        atomic_write(path, lambda tmp: Path(tmp).write_bytes(pickle.dumps(value)))
