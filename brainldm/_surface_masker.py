"""Map per-vertex values on a two-hemisphere cortical surface to the vertices of a mask.

nilearn is imported inside the functions that build or read its surface objects, so
that :mod:`brainldm.datasets` can use this module without loading it.
"""

from pathlib import Path

import nibabel as nib
import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

__all__ = ["HEMISPHERES", "SurfaceMasker", "read_surface_values"]

# Hemisphere names, in the order of every concatenation: left, then right.
HEMISPHERES = ("left", "right")


def _is_surface_image(obj):
    return hasattr(obj, "mesh") and hasattr(getattr(obj, "data", None), "parts")


def _by_hemisphere(value, name):
    """``{"left": ..., "right": ...}`` from a dict with exactly those keys."""
    if not isinstance(value, dict):
        raise TypeError(
            f"{name} must be a dict {{'left': ..., 'right': ...}}, got {type(value).__name__}."
        )
    unknown = sorted(set(map(str, value)) - set(HEMISPHERES))
    missing = [hemi for hemi in HEMISPHERES if hemi not in value]
    if unknown or missing:
        raise ValueError(
            f"{name} has hemispheres {sorted(map(str, value))}; it needs exactly 'left' and "
            f"'right'" + (f" (unknown: {', '.join(map(repr, unknown))})." if unknown else ".")
        )
    return {hemi: value[hemi] for hemi in HEMISPHERES}


def read_surface_values(path):
    """Per-vertex values of a GIFTI (``.gii``) or FreeSurfer (``.mgh``/``.mgz``) file.

    Returns an array of shape (n_vertices,) for one value per vertex, otherwise
    (n_vertices, n_samples): a GIFTI file's data arrays are its samples, an MGH file's
    dimensions after the first are flattened into samples.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Surface file not found: {path} does not exist.")
    name = path.name.lower()
    if name.endswith(".gii"):
        arrays = [np.asarray(darray.data) for darray in nib.load(path).darrays]
        if not arrays:
            raise ValueError(f"GIFTI file {path} holds no data array.")
        return arrays[0] if len(arrays) == 1 else np.column_stack(arrays)
    if name.endswith((".mgh", ".mgz")):
        data = np.asarray(nib.load(path).dataobj)
        data = data.reshape(data.shape[0], -1)
        return data[:, 0] if data.shape[1] == 1 else data
    raise ValueError(
        f"Cannot read surface values from {path}: give a GIFTI (.gii) or FreeSurfer "
        f"(.mgh, .mgz) file."
    )


def _as_poly_mesh(mesh):
    from nilearn.surface import PolyMesh

    if mesh is None or isinstance(mesh, PolyMesh):
        return mesh
    return PolyMesh(**_by_hemisphere(mesh, "mesh"))


class SurfaceMasker(TransformerMixin, BaseEstimator):
    """Map surface data to the vertices of a mask and back, like nilearn's maskers.

    The surface has two hemispheres, ``"left"`` and ``"right"``; the mask keeps some
    vertices of each. Vertices are ordered as the left hemisphere's kept vertices,
    ascending, then the right's: the order of :attr:`vertex_index`. `fit` checks the
    mask (and the mesh) and learns them as ``mask_`` and ``mesh_``;
    :func:`brainldm.datasets.nsd.load_nsd` with ``space="fsaverage"`` returns a
    fitted one.

    Parameters
    ----------
    mask : dict or nilearn.surface.SurfaceImage
        The vertices to keep: ``{"left": bool array (n_left,), "right": bool array
        (n_right,)}``, or a surface image of one value per vertex (non-zero = kept),
        whose mesh is used when ``mesh`` is None.
    mesh : nilearn.surface.PolyMesh, dict or None, default=None
        The surface of both hemispheres, or ``{"left": ..., "right": ...}`` of what
        ``PolyMesh`` accepts for each (a mesh or a surface file). With a mesh,
        :meth:`inverse_transform` returns a ``SurfaceImage``; without, a dict of arrays.

    Attributes
    ----------
    mask_ : dict of str to ndarray of bool
        The mask of each hemisphere.
    mesh_ : nilearn.surface.PolyMesh or None
        The surface, if any.
    n_vertices_ : int
        Number of vertices kept, the width of the arrays :meth:`transform` returns.

    See Also
    --------
    brainldm.datasets.nsd.VolumeMasker : the same for the voxels of a volume.

    Examples
    --------
    >>> import numpy as np
    >>> from brainldm.surface import SurfaceMasker
    >>> masker = SurfaceMasker({"left": np.array([True, False, True]),
    ...                         "right": np.array([False, True, False])}).fit()
    >>> masker.n_vertices_, masker.vertex_index.tolist()
    (3, [[0, 0], [0, 2], [1, 1]])
    >>> values = masker.inverse_transform(np.array([1.5, -2.0, 4.0]))
    >>> values["left"].tolist(), values["right"].tolist()
    ([1.5, 0.0, -2.0], [0.0, 4.0, 0.0])
    >>> masker.transform(values)
    array([[ 1.5, -2. ,  4. ]], dtype=float32)
    """

    def __init__(self, mask, mesh=None):
        self.mask = mask
        self.mesh = mesh

    def fit(self, imgs=None, y=None):
        """Check the mask and the mesh and learn them.

        Parameters
        ----------
        imgs, y : ignored
            Present for the scikit-learn API: the mask defines the vertices.

        Returns
        -------
        self : SurfaceMasker
        """
        mesh = self.mesh
        if _is_surface_image(self.mask):
            masks = dict(self.mask.data.parts)
            mesh = self.mask.mesh if mesh is None else mesh
        else:
            masks = _by_hemisphere(self.mask, "mask")
        mask = {}
        for hemi in HEMISPHERES:
            values = np.asarray(masks[hemi])
            if values.ndim != 1:
                raise ValueError(
                    f"mask['{hemi}'] must be 1-D, one value per vertex, got shape {values.shape}."
                )
            mask[hemi] = values.astype(bool)
        mesh = _as_poly_mesh(mesh)
        if mesh is not None:
            for hemi in HEMISPHERES:
                n_mesh = mesh.parts[hemi].n_vertices
                if n_mesh != mask[hemi].size:
                    raise ValueError(
                        f"The {hemi} mesh has {n_mesh} vertices, but mask['{hemi}'] has "
                        f"{mask[hemi].size}: give a mask of the mesh's vertices."
                    )
        self.mask_, self.mesh_ = mask, mesh
        self.n_vertices_ = int(sum(np.count_nonzero(m) for m in mask.values()))
        return self

    @property
    def vertex_index(self):
        """(n_vertices_, 2) hemisphere (0 left, 1 right) and vertex of each column."""
        check_is_fitted(self)
        return np.concatenate(
            [
                np.column_stack([np.full(np.count_nonzero(m), n), np.flatnonzero(m)])
                for n, m in enumerate(self.mask_.values())
            ]
        ).astype(np.int64)

    @property
    def mask_img_(self):
        """The mask (uint8, 1 = kept) as :meth:`inverse_transform` returns values."""
        check_is_fitted(self)
        return self._wrap({hemi: m.astype(np.uint8) for hemi, m in self.mask_.items()})

    def _wrap(self, parts):
        if self.mesh_ is None:
            return parts
        from nilearn.surface import SurfaceImage

        return SurfaceImage(self.mesh_, parts)

    def _hemisphere_values(self, imgs):
        """Each hemisphere's values, (n_vertices,) or (n_vertices, n_samples)."""
        if _is_surface_image(imgs):
            return _by_hemisphere(dict(imgs.data.parts), "imgs.data.parts")
        if isinstance(imgs, dict):
            return _by_hemisphere(imgs, "imgs")
        if isinstance(imgs, (list, tuple)) and len(imgs) == 2:
            if all(isinstance(path, (str, Path)) for path in imgs):
                return dict(zip(HEMISPHERES, map(read_surface_values, imgs), strict=True))
        raise TypeError(
            f"imgs must be a nilearn SurfaceImage, a dict {{'left': array, 'right': array}} "
            f"or a pair of files (left, right), got {type(imgs).__name__}."
        )

    def transform(self, imgs):
        """Extract the masked vertices of surface data.

        Parameters
        ----------
        imgs : nilearn.surface.SurfaceImage, dict or pair of paths
            A surface image; ``{"left": array, "right": array}`` of per-vertex values,
            each (n_vertices,) or (n_vertices, n_samples); or the left and right files
            (GIFTI ``.gii``, FreeSurfer ``.mgh``/``.mgz``).

        Returns
        -------
        ndarray of shape (n_samples, n_vertices_), float32
            One row per sample (one row for 1-D values).
        """
        check_is_fitted(self)
        values = self._hemisphere_values(imgs)
        n_samples = set()
        for hemi in HEMISPHERES:
            data = np.asarray(values[hemi])
            expected = self.mask_[hemi].size
            if data.ndim not in (1, 2) or data.shape[0] != expected:
                raise ValueError(
                    f"The {hemi} hemisphere's data have shape {data.shape}, but the mask's "
                    f"{hemi} hemisphere has {expected} vertices: give ({expected},) or "
                    f"({expected}, n_samples)."
                )
            values[hemi] = data.reshape(expected, -1)
            n_samples.add(values[hemi].shape[1])
        if len(n_samples) != 1:
            raise ValueError(
                f"The hemispheres have different numbers of samples "
                f"({values['left'].shape[1]} left, {values['right'].shape[1]} right)."
            )
        return np.concatenate(
            [values[hemi][self.mask_[hemi]].T for hemi in HEMISPHERES], axis=1
        ).astype(np.float32)

    def inverse_transform(self, X):
        """Put per-vertex values back on the surface, with zeros outside the mask.

        Parameters
        ----------
        X : array-like of shape (n_vertices_,) or (n_samples, n_vertices_)

        Returns
        -------
        nilearn.surface.SurfaceImage or dict of str to ndarray
            With a mesh, a surface image; without, ``{"left": ..., "right": ...}``.
            Each hemisphere is (n_vertices,) for a 1-D ``X``, (n_vertices, n_samples)
            otherwise; float32.
        """
        check_is_fitted(self)
        X = np.asarray(X, dtype=np.float32)
        if X.ndim not in (1, 2) or X.shape[-1] != self.n_vertices_:
            raise ValueError(
                f"X has shape {X.shape}, but the masker has {self.n_vertices_} vertices: "
                f"give (n_vertices,) or (n_samples, n_vertices)."
            )
        parts, start = {}, 0
        for hemi in HEMISPHERES:
            mask = self.mask_[hemi]
            stop = start + np.count_nonzero(mask)
            parts[hemi] = np.zeros((mask.size, *X.shape[:-1]), dtype=np.float32)
            parts[hemi][mask] = X[..., start:stop].T
            start = stop
        return self._wrap(parts)

    def __repr__(self):
        if not hasattr(self, "mask_"):
            return "SurfaceMasker(unfitted)"
        sizes = ", ".join(f"{hemi}={m.size}" for hemi, m in self.mask_.items())
        return f"SurfaceMasker({sizes}, n_vertices={self.n_vertices_})"
