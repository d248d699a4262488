"""Reading NSD's files on the fsaverage surface: one file per hemisphere.

NSD's fsaverage betas are uncompressed float32 MGH files of shape
(n_vertices, 1, 1, n_trials), one per hemisphere and session. Their values lie
vertex-fastest on disk (the MGH format is column-major), so a block of trials is one
contiguous range of the file: it is memory-mapped a block at a time and only the
selected vertices are copied out, so memory holds the selected vertices of one session
and one block of the file, never a whole session.
"""

import zlib
from pathlib import Path

import nibabel as nib
import numpy as np

__all__ = [
    "FILE_ERRORS",
    "HEMISPHERES",
    "read_mesh",
    "read_session_pair",
    "read_vertex_values",
    "surface_shape",
]

# NSD's hemisphere prefixes, in the order of every concatenation: left, then right.
HEMISPHERES = ("lh", "rh")
# Bounds the memory of one read: this many bytes of a betas file are mapped at a time.
_BLOCK_BYTES = 64 * 2**20
FILE_ERRORS = (OSError, EOFError, zlib.error, ValueError, nib.filebasedimages.ImageFileError)


def _unreadable(path, exc):
    return RuntimeError(
        f"Cannot read {path} ({exc}). The file is truncated or corrupt: download it again "
        f"from the NSD release."
    )


def surface_shape(path):
    """(n_vertices, n_values) of a per-vertex MGH file, from its header alone."""
    try:
        shape = nib.load(path).header.get_data_shape()
    except FILE_ERRORS as exc:
        raise _unreadable(path, exc) from exc
    if len(shape) not in (3, 4) or any(n != 1 for n in shape[1:3]):
        raise ValueError(
            f"{path} has shape {shape}; NSD's fsaverage files hold one row per vertex, "
            f"(n_vertices, 1, 1) or (n_vertices, 1, 1, n_values)."
        )
    return int(shape[0]), int(shape[3]) if len(shape) == 4 else 1


def read_vertex_values(path, dtype):
    """The single value per vertex of a small MGH file (labels, ncsnr), (n_vertices,)."""
    try:
        data = np.asarray(nib.load(path).dataobj)
    except FILE_ERRORS as exc:
        raise _unreadable(path, exc) from exc
    return data.reshape(data.shape[0], -1)[:, 0].astype(dtype)


def _read_hemisphere(path, vertices):
    """(n_trials, vertices.size) float32 of one hemisphere's betas file."""
    img = nib.load(path)
    header = img.header
    n_vertices, n_trials = surface_shape(path)
    dtype = header.get_data_dtype()
    offset = header.get_data_offset()
    out = np.empty((n_trials, vertices.size), dtype=np.float32)
    step = max(1, _BLOCK_BYTES // (n_vertices * dtype.itemsize))
    for start in range(0, n_trials, step):
        stop = min(n_trials, start + step)
        # Trials start..stop are one contiguous range: map it, copy the vertices, unmap.
        block = np.memmap(
            path,
            dtype=dtype,
            mode="r",
            offset=offset + start * n_vertices * dtype.itemsize,
            shape=(stop - start, n_vertices),
        )
        out[start:stop] = block[:, vertices]
        del block
    return out


def read_session_pair(paths, vertices):
    """(n_trials, n_left + n_right) float32 betas of the selected vertices of a session.

    ``paths`` are the left and right files, ``vertices`` the increasing vertex indices
    to read from each.
    """
    parts = []
    for path, selected in zip(paths, vertices, strict=True):
        try:
            parts.append(_read_hemisphere(path, selected))
        except FILE_ERRORS as exc:
            raise _unreadable(path, exc) from exc
    return np.concatenate(parts, axis=1)


def read_mesh(paths):
    """A nilearn ``PolyMesh`` of FreeSurfer surface files (left, right)."""
    from nilearn.surface import InMemoryMesh, PolyMesh

    meshes = []
    for path in paths:
        try:
            coordinates, faces = nib.freesurfer.read_geometry(Path(path))
        except FILE_ERRORS as exc:
            raise _unreadable(path, exc) from exc
        meshes.append(InMemoryMesh(coordinates, faces))
    return PolyMesh(left=meshes[0], right=meshes[1])
