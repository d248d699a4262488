"""Atomic file writes: a file is either absent or complete, never half written."""

import os
import secrets
from pathlib import Path

import numpy as np

__all__ = ["atomic_savez", "atomic_write"]


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
