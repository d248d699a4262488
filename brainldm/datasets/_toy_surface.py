"""The toy world's cortical surfaces, NSD's surface transforms, and its fsaverage files.

Each toy subject's native surfaces are nilearn's bundled fsaverage5 meshes (10,242
vertices per hemisphere), placed into the subject's volume by an affine map that fits
both hemispheres' pial surfaces inside the toy brain, their vertices in an order of the
subject's own (so that the white-to-fsaverage index is no identity). The toy's
"fsaverage" is fsaverage4-sized: the first 2,562 vertices of fsaverage5, which are
fsaverage4's (the icosahedral order). The cortical depths ``layerB1``-``layerB3`` lie at
:data:`LAYER_DEPTHS` of the way from the pial surface to the white surface, NSD's
``layerB`` surfaces sitting at 25, 50 and 75 percent of the cortical thickness with
``layerB1`` the outermost.
"""

import functools

import nibabel as nib
import numpy as np
from scipy.spatial import ConvexHull

from brainldm._surface_mapping import HEMISPHERES, LAYERS

__all__ = [
    "LAYER_DEPTHS",
    "N_FSAVERAGE",
    "write_fsaverage_labels",
    "write_fsaverage_series",
    "write_fsaverage_surfaces",
    "write_subject_surfaces",
]

#: Fraction of the way from the pial to the white surface of each of :data:`LAYERS`.
LAYER_DEPTHS = (0.25, 0.5, 0.75)
#: Vertices per hemisphere of the toy's fsaverage (fsaverage4's 10 * 4**4 + 2).
N_FSAVERAGE = 2562
# Space left between the cortex and the volume's sides, as a fraction of each side,
# so that the cortex lies inside the toy brain's rounded corners.
_MARGIN = 0.07
_NILEARN_MESHES = {
    "white": "white_matter",
    "pial": "pial",
    "inflated": "inflated",
    "sphere": "sphere",
}
_NILEARN_HEMIS = {"lh": "left", "rh": "right"}


@functools.cache
def _fsaverage5():
    """nilearn's fsaverage5 meshes: ``{hemi: {surface: (coordinates, faces)}}``."""
    from nilearn.datasets import load_fsaverage

    meshes = load_fsaverage("fsaverage5")
    return {
        hemi: {
            surface: (
                np.asarray(meshes[name].parts[part].coordinates, dtype=np.float64),
                np.asarray(meshes[name].parts[part].faces, dtype=np.int64),
            )
            for surface, name in _NILEARN_MESHES.items()
        }
        for hemi, part in _NILEARN_HEMIS.items()
    }


def _outward_hull_faces(points):
    """Triangles of the convex hull of points on a sphere, ordered counter-clockwise
    seen from outside (FreeSurfer's orientation)."""
    faces = ConvexHull(points).simplices
    a, b, c = (points[faces[:, k]] for k in range(3))
    inward = np.einsum("ij,ij->i", np.cross(b - a, c - a), a + b + c) < 0
    faces[inward] = faces[inward][:, ::-1]
    return faces.astype(np.int32)


def write_fsaverage_surfaces(folder):
    """Write ``nsddata/freesurfer/fsaverage/surf/{lh,rh}.{white,pial,inflated,sphere}``."""
    surf = folder / "nsddata" / "freesurfer" / "fsaverage" / "surf"
    surf.mkdir(parents=True, exist_ok=True)
    for hemi, surfaces in _fsaverage5().items():
        faces = _outward_hull_faces(surfaces["sphere"][0][:N_FSAVERAGE])
        for surface, (coordinates, _) in surfaces.items():
            nib.freesurfer.write_geometry(
                surf / f"{hemi}.{surface}", coordinates[:N_FSAVERAGE], faces
            )


def _to_voxels(shape):
    """Affine map of fsaverage5's millimetres to 0-based voxel coordinates of ``shape``:
    the box around both pial surfaces onto the volume, less a margin on every side."""
    pial = np.vstack([surfaces["pial"][0] for surfaces in _fsaverage5().values()])
    low, high = pial.min(axis=0), pial.max(axis=0)
    sides = np.asarray(shape, dtype=np.float64)

    def transform(points):
        fraction = _MARGIN + (1 - 2 * _MARGIN) * (points - low) / (high - low)
        # Voxel i spans fractions [i, i + 1) / n: its centre is at (i + 0.5) / n.
        return fraction * sides - 0.5

    return transform


def write_subject_surfaces(folder, subject, shape, affine, rng):
    """Write a subject's native surfaces and NSD's transforms to func1pt8mm and fsaverage.

    The surfaces are in the millimetres of the volume's ``affine``; the transforms hold
    1-based voxel coordinates. Returns, per hemisphere, the 1-based voxel coordinates of
    every native vertex at the three depths, (3, n_native, 3), and for each fsaverage
    vertex its 0-based native vertex, and each native vertex's fsaverage5 vertex.
    """
    to_voxels = _to_voxels(shape)
    surf = folder / "nsddata" / "freesurfer" / subject / "surf"
    transforms = folder / "nsddata" / "ppdata" / subject / "transforms"
    surf.mkdir(parents=True)
    transforms.mkdir(parents=True)
    layers, fsaverage_native, native_fsaverage5 = {}, [], []
    for hemi in HEMISPHERES:
        surfaces = _fsaverage5()[hemi]
        faces = surfaces["white"][1]
        # Native vertex n is fsaverage5's vertex order[n].
        order = rng.permutation(len(surfaces["white"][0]))
        position = np.argsort(order)
        pial, white = (to_voxels(surfaces[name][0][order]) for name in ("pial", "white"))
        depths = [pial + depth * (white - pial) for depth in LAYER_DEPTHS]
        named = {"white": white, "pial": pial, **dict(zip(LAYERS, depths, strict=True))}
        for name, voxels in named.items():
            millimetres = voxels @ affine[:3, :3].T + affine[:3, 3]
            nib.freesurfer.write_geometry(surf / f"{hemi}.{name}", millimetres, position[faces])
        layers[hemi] = np.stack(depths) + 1
        for layer, coords in zip(LAYERS, layers[hemi], strict=True):
            _save_mgh(coords[:, None, None, :], transforms / f"{hemi}.func1pt8-to-{layer}.mgz")
        native = position[:N_FSAVERAGE]
        _save_mgh(native[:, None, None] + 1, transforms / f"{hemi}.white-to-fsaverage.mgz")
        fsaverage_native.append(native)
        native_fsaverage5.append(order)
    return layers, np.stack(fsaverage_native), np.stack(native_fsaverage5)


def _save_mgh(data, path):
    nib.MGHImage(np.asarray(data, dtype=np.float32), np.eye(4)).to_filename(path)


def write_fsaverage_labels(folder, layers, fsaverage_native, volumes):
    """Write ``{lh,rh}.<name>.mgz`` fsaverage labels from ROI volumes.

    Each fsaverage vertex takes the value of the voxel nearest to its native vertex at
    the middle depth (``layerB2``). NSD's fsaverage labels are of fsaverage itself, one
    set for all subjects: the toy world writes its first subject's.
    """
    label = folder / "nsddata" / "freesurfer" / "fsaverage" / "label"
    label.mkdir(parents=True, exist_ok=True)
    for name, volume in volumes.items():
        for hemi, native in zip(HEMISPHERES, fsaverage_native, strict=True):
            middle = layers[hemi][1][native] - 1
            voxel = np.clip(np.floor(middle + 0.5).astype(int), 0, np.array(volume.shape) - 1)
            values = volume[tuple(voxel.T)].astype(np.int32)
            nib.MGHImage(values[:, None, None], np.eye(4)).to_filename(label / f"{hemi}.{name}.mgz")


def write_fsaverage_series(path_of, mapped, n_vertices):
    """Write (n, n_left + n_right) surface values as ``{lh,rh}`` MGH files, float32 of
    shape (n_vertices, 1, 1, n); ``path_of(hemi)`` names each hemisphere's file."""
    for hemi, values in zip(HEMISPHERES, np.split(mapped, [n_vertices], axis=-1), strict=True):
        _save_mgh(values.T[:, None, None, ...], path_of(hemi))
