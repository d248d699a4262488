"""nilearn's bundled fsaverage5 meshes, and maps of any fsaverage order brought to fsaverage5.

FreeSurfer's fsaverage meshes are icosahedral: the first ``10 * 4**k + 2`` vertices
of a finer fsaverage are those of fsaverage order ``k`` (12 for the icosahedron,
10,242 for fsaverage5, 163,842 for fsaverage7, NSD's "fsaverage"), and each vertex
that order ``k + 1`` adds lies midway between two vertices of order ``k``. A map
at a finer order therefore comes to fsaverage5 by keeping its first 10,242 values
per hemisphere; a map at a coarser order by giving each fsaverage5 vertex the
value of its nearest vertex of that order on the sphere (exact on the vertices
both share, never averaging, so labels stay labels).

nilearn ships fsaverage5 inside its package (``nilearn/datasets/data/fsaverage5``):
the meshes and the sulcal depth are read from there, without a network, once per
process.
"""

import functools

import numpy as np
from sklearn.utils import Bunch

__all__ = [
    "HEMISPHERES",
    "N_FSAVERAGE5",
    "icosahedral_order",
    "load_fsaverage5",
    "split_hemispheres",
    "to_fsaverage5",
]

#: Hemisphere names, in the order of a whole-surface array: [left vertices, right vertices].
HEMISPHERES = ("left", "right")
#: Vertices per hemisphere of fsaverage5.
N_FSAVERAGE5 = 10 * 4**5 + 2
# nilearn's mesh names, as load_fsaverage5 hands them back.
_MESHES = ("inflated", "flat", "pial", "white_matter", "sphere")
# Orders named in messages: the icosahedron (0) up to NSD's fsaverage (7).
_NAMED_ORDERS = range(8)


def _n_vertices(order):
    return 10 * 4**order + 2


def icosahedral_order(n_vertices, what="values"):
    """The order ``k`` of an fsaverage hemisphere of ``n_vertices = 10 * 4**k + 2``.

    Parameters
    ----------
    n_vertices : int
        Vertices per hemisphere.
    what : str, default="values"
        What had that many vertices, for the message.

    Returns
    -------
    order : int
        5 for fsaverage5 (10,242), 7 for NSD's fsaverage (163,842).

    Raises
    ------
    ValueError
        If ``n_vertices`` is no icosahedral count; the message lists the valid ones.

    Examples
    --------
    >>> from brainldm.surface import icosahedral_order
    >>> icosahedral_order(163842), icosahedral_order(2562)
    (7, 4)
    >>> icosahedral_order(10000)
    Traceback (most recent call last):
    ...
    ValueError: values have 10000 vertices per hemisphere, which no fsaverage mesh has: ...
    """
    n = int(n_vertices)
    order = 0
    while _n_vertices(order) < n:
        order += 1
    if n != _n_vertices(order):
        valid = ", ".join(f"{_n_vertices(k):,} (fsaverage{k})" for k in _NAMED_ORDERS)
        raise ValueError(
            f"{what} have {n} vertices per hemisphere, which no fsaverage mesh has: "
            f"an fsaverage hemisphere has 10 * 4**k + 2 vertices, e.g. {valid}. Give "
            f"the left and the right hemisphere's values concatenated, left first."
        )
    return order


@functools.cache
def load_fsaverage5():
    """nilearn's bundled fsaverage5: meshes, sulcal depth and curvature per hemisphere.

    Read from nilearn's package, never downloaded, once per process; the arrays
    are shared between calls and read-only.

    Returns
    -------
    fsaverage5 : sklearn.utils.Bunch
        ``inflated``, ``flat``, ``pial``, ``white_matter`` and ``sphere``: each a
        dict of hemisphere (``"left"``, ``"right"``) to ``(coordinates, faces)``,
        float32 of shape (10242, 3) (mm; the sphere's radius is 100) and int32 of
        shape (n_faces, 3) (the flat meshes leave out the medial wall's faces);
        ``sulc`` and ``curv``: dict of hemisphere to float32 of shape (10242,),
        sulcal depth (positive in sulci) and curvature.

    Examples
    --------
    >>> from brainldm.surface import load_fsaverage5
    >>> fsaverage5 = load_fsaverage5()
    >>> coordinates, faces = fsaverage5.inflated["left"]
    >>> coordinates.shape, faces.shape, fsaverage5.sulc["right"].shape
    ((10242, 3), (20480, 3), (10242,))
    """
    from nilearn.datasets import load_fsaverage, load_fsaverage_data

    def frozen(array, dtype):
        array = np.asarray(array, dtype=dtype)
        array.flags.writeable = False
        return array

    meshes = load_fsaverage("fsaverage5")
    loaded = {
        name: {
            hemi: (
                frozen(meshes[name].parts[hemi].coordinates, np.float32),
                frozen(meshes[name].parts[hemi].faces, np.int32),
            )
            for hemi in HEMISPHERES
        }
        for name in _MESHES
    }
    for key, data_type in (("sulc", "sulcal"), ("curv", "curvature")):
        img = load_fsaverage_data("fsaverage5", mesh_type="inflated", data_type=data_type)
        loaded[key] = {hemi: frozen(img.data.parts[hemi], np.float32) for hemi in HEMISPHERES}
    return Bunch(**loaded)


@functools.cache
def _nearest_of_order(order):
    """Per hemisphere, the index of each fsaverage5 vertex's nearest vertex of ``order``."""
    from scipy.spatial import cKDTree

    nearest = {}
    for hemi in HEMISPHERES:
        sphere = np.asarray(load_fsaverage5().sphere[hemi][0], dtype=np.float64)
        _, index = cKDTree(sphere[: _n_vertices(order)]).query(sphere)
        nearest[hemi] = index
    return nearest


def _hemisphere_to_fsaverage5(values, hemi):
    order = icosahedral_order(values.shape[-1])
    if order >= 5:
        return values[..., :N_FSAVERAGE5]
    return values[..., _nearest_of_order(order)[hemi]]


def to_fsaverage5(values):
    """Bring values on any fsaverage order to fsaverage5 (10,242 vertices per hemisphere).

    A finer order keeps its first 10,242 vertices per hemisphere (fsaverage's
    vertex order is nested, so they are fsaverage5's). A coarser order (the toy
    world's fsaverage4) gives each fsaverage5 vertex the value of its nearest
    vertex of that order on the sphere: the vertices both meshes share keep
    their own value, and no values are averaged, so labels (a best layer per
    vertex) stay labels and the dtype is kept.

    Parameters
    ----------
    values : array-like of shape (2 * n,) or (n_maps, 2 * n), or a tuple (left, right)
        The left hemisphere's ``n`` vertices then the right's, with
        ``n = 10 * 4**k + 2``; or a tuple of the two hemispheres' arrays, each
        of shape (n,) or (n_maps, n).

    Returns
    -------
    fsaverage5 : ndarray of shape (20484,) or (n_maps, 20484), or a tuple (left, right)
        As ``values`` came: concatenated, or a tuple of two arrays with 10,242
        vertices each.

    Raises
    ------
    ValueError
        If the vertex count is not twice an icosahedral count (the message
        lists the valid ones), or the two hemispheres differ in shape.

    Examples
    --------
    >>> import numpy as np
    >>> from brainldm.surface import to_fsaverage5
    >>> fsaverage7 = np.arange(2 * 163842)
    >>> to_fsaverage5(fsaverage7).shape
    (20484,)
    >>> left, right = to_fsaverage5((np.zeros((3, 2562)), np.ones((3, 2562))))
    >>> left.shape, float(right.min())
    ((3, 10242), 1.0)
    """
    if isinstance(values, tuple):
        if len(values) != 2:
            raise ValueError(
                f"a tuple of values must be (left, right), two hemispheres; got {len(values)} items."
            )
        left, right = (np.asarray(part) for part in values)
        if left.shape != right.shape:
            raise ValueError(
                f"the left and right hemispheres differ in shape: {left.shape} and {right.shape}."
            )
        if left.ndim not in (1, 2):
            raise ValueError(
                f"each hemisphere's values must be of shape (n,) or (n_maps, n), got {left.shape}."
            )
        icosahedral_order(left.shape[-1])
        return tuple(
            _hemisphere_to_fsaverage5(part, hemi)
            for part, hemi in zip((left, right), HEMISPHERES, strict=True)
        )
    left, right = split_hemispheres(values)
    return np.concatenate(
        [_hemisphere_to_fsaverage5(left, "left"), _hemisphere_to_fsaverage5(right, "right")],
        axis=-1,
    )


def split_hemispheres(values, what="values"):
    """``(left, right)`` views of a concatenated (..., 2 * n) array, ``n`` checked icosahedral."""
    values = np.asarray(values)
    if values.ndim not in (1, 2) or values.shape[-1] % 2:
        raise ValueError(
            f"{what} must be of shape (2 * n,) or (n_maps, 2 * n), the left hemisphere's n "
            f"vertices then the right's; got shape {values.shape}."
        )
    n = values.shape[-1] // 2
    icosahedral_order(n, what)
    return values[..., :n], values[..., n:]
