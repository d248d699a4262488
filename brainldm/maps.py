"""Per-voxel results as NIfTI images, through the subject's masker.

Every per-voxel result of an analysis (a correlation, a p-value, a unique
variance, a best layer) is a 1-D array in the masker's voxel order; it leaves
the library as a NIfTI image of the subject's own volume, the way nilearn's
maskers hand results back: :func:`to_nifti` builds (and optionally saves) one
image, :func:`save_maps` a folder of them. Images are float32 on the masker's
grid and affine, zeros outside its mask; NaN stays NaN (see :func:`to_nifti`).
Files are written atomically, so a reader never finds half of one.

Maps stay in the subject's functional space (NSD's ``func1pt8mm``): no
resampling to a template. Maps on fsaverage (per vertex, both hemispheres, e.g.
projected through NSD's transforms) leave as GIFTI files, one per hemisphere,
through :func:`save_surface_maps`.
"""

import gzip
from pathlib import Path

import numpy as np

from brainldm._fsaverage import HEMISPHERES, split_hemispheres
from brainldm._io import atomic_write

__all__ = ["save_maps", "save_surface_maps", "to_nifti"]

# nibabel's own default for .nii.gz: fast, and per-voxel maps compress well anyway.
_COMPRESSLEVEL = 1
_SUFFIXES = (".nii", ".nii.gz")


def _check_numbers(values, name):
    values = np.asarray(values)
    if values.dtype != bool and not np.issubdtype(values.dtype, np.number):
        raise ValueError(f"{name} must be numbers or booleans, got dtype {values.dtype}.")
    return values


def _check_finite(values, name, what):
    """float32 ``values``, or a ValueError locating an infinity, which ``what`` cannot hold."""
    values = values.astype(np.float32)
    infinite = np.flatnonzero(np.isinf(values))
    if infinite.size:
        raise ValueError(
            f"{name} has {infinite.size} infinite entries (the first at flat index "
            f"{infinite[0]}): {what} cannot scale them; clip them or set them to NaN."
        )
    return values


def _check_values(values, masker, name="values"):
    """``values`` as float32 of shape (n_voxels,) or (n_maps, n_voxels), checked."""
    values = _check_numbers(values, name)
    n_voxels = masker.n_voxels
    if values.ndim not in (1, 2) or values.shape[-1] != n_voxels:
        got = values.shape[-1] if values.ndim else "no"
        raise ValueError(
            f"{name} has {got} voxels (shape {values.shape}), but the masker has "
            f"{n_voxels}: give one value per voxel of the masker, shape ({n_voxels},) "
            f"or (n_maps, {n_voxels})."
        )
    return _check_finite(values, name, "NIfTI viewers")


def _write_nifti(img, path):
    """Save ``img`` to ``path`` (``.nii`` or ``.nii.gz``) atomically, byte for byte reproducible."""
    path = Path(path)
    if not path.name.endswith(_SUFFIXES):
        raise ValueError(f"path must end in .nii or .nii.gz, got {str(path)!r}.")

    def write(tmp):
        with open(tmp, "wb") as raw:
            if path.name.endswith(".gz"):
                # mtime=0 and the final name (not the temporary one) keep the bytes reproducible.
                with gzip.GzipFile(
                    filename=path.name[:-3],
                    mode="wb",
                    fileobj=raw,
                    compresslevel=_COMPRESSLEVEL,
                    mtime=0,
                ) as stream:
                    img.to_stream(stream)
            else:
                img.to_stream(raw)

    return atomic_write(path, write)


def to_nifti(values, masker, path=None):
    """Put per-voxel values back in the subject's volume as a float32 NIfTI image.

    Parameters
    ----------
    values : array-like of shape (n_voxels,) or (n_maps, n_voxels)
        One value per voxel of ``masker``, in its voxel order (e.g. the
        per-voxel r of an encoding model); booleans (a significance mask)
        become 0 and 1. NaN (e.g. the r of a constant voxel) is kept as NaN,
        not written as 0, so that "not computed" stays distinct from a
        computed zero; nilearn and most viewers draw NaN as empty. Infinite
        values are refused.
    masker : brainldm.datasets.nsd.VolumeMasker
        The subject's masker, ``data.masker`` from :func:`~brainldm.datasets.nsd.load_nsd`
        (any object with ``n_voxels`` and ``inverse_transform``).
    path : str or path-like, optional
        Where to save the image, ending in ``.nii`` or ``.nii.gz``; written
        atomically, the gzip stream without a time stamp so that equal maps
        give equal files.

    Returns
    -------
    img : nibabel.Nifti1Image
        float32, 3-D for 1-D ``values`` and 4-D (one volume per map)
        otherwise, on the masker's grid and affine, 0 outside its mask.

    Raises
    ------
    ValueError
        If ``values`` does not have one value per voxel of the masker (the
        message names both counts), is not numeric, or holds infinities.

    See Also
    --------
    save_maps : several named maps into a folder.
    brainldm.plotting.plot_brain_map : draw a map on slices of the subject's volume.

    Examples
    --------
    >>> import numpy as np
    >>> from brainldm.datasets.nsd import VolumeMasker
    >>> from brainldm.maps import to_nifti
    >>> mask = np.zeros((4, 5, 6), dtype=bool)
    >>> mask[1:3, 2:4, 3] = True
    >>> masker = VolumeMasker(mask, np.diag([1.8, 1.8, 1.8, 1.0])).fit()
    >>> img = to_nifti([0.1, 0.4, np.nan, -0.2], masker)
    >>> img.shape, img.get_data_dtype()
    ((4, 5, 6), dtype('<f4'))
    >>> masker.transform(img)
    array([[ 0.1,  0.4,  nan, -0.2]], dtype=float32)
    >>> to_nifti(np.zeros(3), masker)
    Traceback (most recent call last):
    ...
    ValueError: values has 3 voxels (shape (3,)), but the masker has 4: ...
    """
    img = masker.inverse_transform(_check_values(values, masker))
    img.header.set_data_dtype(np.float32)
    img.header.set_xyzt_units("mm")
    if path is not None:
        _write_nifti(img, path)
    return img


def _check_name(name):
    name = str(name)
    if not name or name.startswith(".") or Path(name).name != name or "\\" in name:
        raise ValueError(
            f"map names become file names: got {name!r}; use a non-empty name "
            f"without path separators or a leading dot."
        )
    return name


def save_maps(maps, masker, folder, *, compress=True):
    """Save named per-voxel maps as NIfTI files ``<folder>/<name>.nii.gz``.

    Every map is checked before the first file is written, so a bad map
    leaves the folder as it was; each file is written atomically.

    Parameters
    ----------
    maps : dict of str to array-like of shape (n_voxels,) or (n_maps, n_voxels)
        Name -> values, as :func:`to_nifti` takes them (NaN kept as NaN);
        e.g. ``{"r": r, "q": q, "significant": significant}``.
    masker : brainldm.datasets.nsd.VolumeMasker
        The subject's masker.
    folder : str or path-like
        Created if missing; existing files of the same names are replaced.
    compress : bool, default=True
        Write ``.nii.gz`` (True) or ``.nii`` (False).

    Returns
    -------
    paths : dict of str to pathlib.Path
        Name -> the file written, in the order of ``maps``.

    Raises
    ------
    ValueError
        If a name cannot be a file name, or a map fails :func:`to_nifti`'s
        checks (the message names the map).

    See Also
    --------
    to_nifti : one map as an in-memory image.

    Examples
    --------
    >>> import tempfile
    >>> import nibabel as nib
    >>> import numpy as np
    >>> from brainldm.datasets.nsd import VolumeMasker
    >>> from brainldm.maps import save_maps
    >>> mask = np.ones((3, 3, 2), dtype=bool)
    >>> masker = VolumeMasker(mask, np.eye(4)).fit()
    >>> r = np.linspace(-0.2, 0.6, masker.n_voxels)
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     paths = save_maps({"r": r, "significant": r > 0.3}, masker, folder)
    ...     print(sorted(p.name for p in paths.values()))
    ...     print(nib.load(paths["significant"]).get_fdata().sum())
    ['r.nii.gz', 'significant.nii.gz']
    7.0
    """
    suffix = ".nii.gz" if compress else ".nii"
    checked = {}
    for name, values in maps.items():
        name = _check_name(name)
        checked[name] = _check_values(values, masker, name=f"map {name!r}")
    folder = Path(folder)
    return {
        name: _write_nifti(to_nifti(values, masker), folder / f"{name}{suffix}")
        for name, values in checked.items()
    }


# GIFTI's name of each hemisphere's structure (Connectome Workbench reads it).
_STRUCTURES = {"left": "CortexLeft", "right": "CortexRight"}
_HEMI_TAGS = {"left": "L", "right": "R"}


def _gifti_bytes(values, hemi):
    """One hemisphere's maps (n_maps, n) as the bytes of a GIFTI file, a data array per map."""
    import nibabel as nib

    arrays = [
        nib.gifti.GiftiDataArray(row, intent="NIFTI_INTENT_NONE", datatype="NIFTI_TYPE_FLOAT32")
        for row in np.atleast_2d(values)
    ]
    meta = nib.gifti.GiftiMetaData({"AnatomicalStructurePrimary": _STRUCTURES[hemi]})
    return nib.gifti.GiftiImage(darrays=arrays, meta=meta).to_bytes()


def save_surface_maps(maps, folder):
    """Save named fsaverage maps as GIFTI files, ``<name>_hemi-L.func.gii`` and ``_hemi-R``.

    Every map is checked before the first file is written, so a bad map
    leaves the folder as it was; each file is written atomically. A file
    holds one float32 data array per map, NaN kept as NaN.

    Parameters
    ----------
    maps : dict of str to array-like of shape (2 * n,) or (n_maps, 2 * n)
        Name -> values per vertex, the left hemisphere's ``n`` then the
        right's, at any fsaverage order (``n = 10 * 4**k + 2``; 163,842 for
        NSD's fsaverage), which the files keep; booleans become 0 and 1.
    folder : str or path-like
        Created if missing; existing files of the same names are replaced.

    Returns
    -------
    paths : dict of str to tuple of pathlib.Path
        Name -> (left file, right file), in the order of ``maps``.

    Raises
    ------
    ValueError
        If a name cannot be a file name, or a map is not numeric, holds
        infinities or has no fsaverage size (the message names the map and
        lists the valid sizes).

    See Also
    --------
    save_maps : per-voxel maps as NIfTI files.
    brainldm.plotting.plot_surface_map : draw a surface map.

    Examples
    --------
    >>> import tempfile
    >>> import nibabel as nib
    >>> import numpy as np
    >>> from brainldm.maps import save_surface_maps
    >>> r = np.linspace(-0.2, 0.6, 2 * 642)  # fsaverage3, both hemispheres
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     paths = save_surface_maps({"r": r}, folder)
    ...     left, right = paths["r"]
    ...     print(left.name, right.name)
    ...     print(nib.load(right).darrays[0].data.shape)
    r_hemi-L.func.gii r_hemi-R.func.gii
    (642,)
    """
    checked = {}
    for name, values in maps.items():
        name = _check_name(name)
        what = f"map {name!r}"
        values = _check_finite(_check_numbers(values, what), what, "GIFTI viewers")
        checked[name] = split_hemispheres(values, what)
    folder = Path(folder)
    paths = {}
    for name, parts in checked.items():
        paths[name] = tuple(
            atomic_write(
                folder / f"{name}_hemi-{_HEMI_TAGS[hemi]}.func.gii",
                lambda tmp, part=part, hemi=hemi: Path(tmp).write_bytes(_gifti_bytes(part, hemi)),
            )
            for part, hemi in zip(parts, HEMISPHERES, strict=True)
        )
    return paths
