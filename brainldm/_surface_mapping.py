"""Per-voxel maps of the func1pt8mm volume onto cortical surfaces, through NSD's transforms.

NSD ships, per subject, the decimal voxel coordinates of every vertex of three cortical
depth surfaces (``layerB1``-``layerB3``) in the func1pt8mm volume, and for every fsaverage
vertex the nearest vertex of the subject's white surface. nsdcode's ``NSDmapdata`` maps a
volume through them: it interpolates the volume at each depth, averages the depths and
indexes the result to fsaverage. :class:`NSDSurfaceMapper` follows that chain value for
value, with the sampling worked out once at ``fit``: a sparse matrix for linear and nearest
interpolation, the valid coordinates for cubic splines.

This module sits below :mod:`brainldm.datasets` (the toy world writes its fsaverage files
with it), so it reads the files with nibabel and imports nothing from the readers.
"""

from numbers import Real
from pathlib import Path

import nibabel as nib
import numpy as np
import scipy.ndimage
import scipy.sparse
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import Bunch
from sklearn.utils.validation import check_is_fitted

from brainldm._validation import Interval, Options, subject_name, validate_params

__all__ = ["HEMISPHERES", "LAYERS", "NSDSurfaceMapper", "read_nsd_transforms"]

#: FreeSurfer's names of the hemispheres, in the order of every whole-surface array.
HEMISPHERES = ("lh", "rh")
#: NSD's three cortical depth surfaces, from the pial surface towards white matter.
LAYERS = ("layerB1", "layerB2", "layerB3")

_INVALID = 9999
_ORDERS = {"nearest": 0, "linear": 1, "cubic": 3}
_TARGETS = ("fsaverage", "white")


def _transforms_dir(subject):
    return Path("nsddata") / "ppdata" / subject / "transforms"


def _require_transform(root, relative):
    path = root / relative
    if not path.is_file():
        folder = relative.parent.as_posix()
        raise FileNotFoundError(
            f"NSD transform file not found: {path} does not exist. It is part of NSD's "
            f"'nsddata' release ({folder}/); download the subject's transforms with "
            f"`aws s3 sync --no-sign-request s3://natural-scenes-dataset/{folder}/ "
            f"{root / folder}/`, or check that nsd_root={str(root)!r} is the folder "
            f"holding nsddata/."
        )
    return path


def _read_coordinates(path):
    """A ``func1pt8-to-layerB*`` file as (n_vertices, 3) 1-based voxel coordinates."""
    data = np.asarray(nib.load(path).get_fdata(), dtype=np.float64)
    coords = data.reshape(data.shape[0], -1, order="F")
    if coords.shape[1] != 3:
        raise ValueError(
            f"{path} has shape {data.shape}; an NSD volume-to-surface transform holds "
            f"3 voxel coordinates per vertex, shape (n_vertices, 1, 1, 3). The file is "
            f"corrupt: download it again."
        )
    return coords


def _read_index(path, n_native):
    """A ``white-to-fsaverage`` file as a 1-based index into the native vertices."""
    data = np.asarray(nib.load(path).get_fdata(), dtype=np.float64).reshape(-1)
    if not (np.all(data == np.round(data)) and data.min() >= 1 and data.max() <= n_native):
        raise ValueError(
            f"{path} must hold 1-based indices of the subject's {n_native} white-surface "
            f"vertices, got values in [{data.min()}, {data.max()}]. The file does not "
            f"belong with the subject's layer transforms, or is corrupt: download it again."
        )
    return data.astype(np.int64)


def read_nsd_transforms(nsd_root, subject, *, fsaverage=True):
    """Read a subject's NSD transforms from the func1pt8mm volume to the cortical surfaces.

    Parameters
    ----------
    nsd_root : str or path-like
        NSD's root folder, the one holding ``nsddata/``.
    subject : str or int
        ``"subj01"`` or ``1``.
    fsaverage : bool, default=True
        Also read the ``white-to-fsaverage`` index.

    Returns
    -------
    transforms : Bunch
        One Bunch per hemisphere, ``lh`` and ``rh``, holding ``layers``: the 1-based
        decimal voxel coordinates of every native vertex at each depth of :data:`LAYERS`,
        ndarray of shape (3, n_native, 3), 9999 where a vertex is invalid; and, with
        ``fsaverage=True``, ``fsaverage``: for each fsaverage vertex, the 1-based index
        of its native white-surface vertex, int64 ndarray of shape (n_fsaverage,).

    Raises
    ------
    FileNotFoundError
        If a transform file is missing; the message says where NSD has it.
    ValueError
        If a file's shape or values do not fit the others'.

    Examples
    --------
    >>> import tempfile
    >>> from brainldm.datasets.toy import make_toy_nsd
    >>> from brainldm.surface import read_nsd_transforms
    >>> root = make_toy_nsd(
    ...     tempfile.mkdtemp() + "/nsd", n_sessions=4, n_released_sessions=3,
    ...     trials_per_session=15, n_shared=4, volume_shape=(12, 14, 12),
    ...     subjects=["subj01"], progress=False)
    >>> transforms = read_nsd_transforms(root, "subj01")
    >>> transforms.lh.layers.shape, transforms.lh.fsaverage.shape
    ((3, 10242, 3), (2562,))
    """
    root = Path(nsd_root).expanduser()
    folder = _transforms_dir(subject_name(subject))
    transforms = Bunch()
    for hemi in HEMISPHERES:
        paths = [
            _require_transform(root, folder / f"{hemi}.func1pt8-to-{layer}.mgz") for layer in LAYERS
        ]
        layers = [_read_coordinates(path) for path in paths]
        if len({len(coords) for coords in layers}) != 1:
            raise ValueError(
                f"the {hemi} layer transforms {[p.name for p in paths]} have "
                f"{[len(c) for c in layers]} vertices; the three depths of a hemisphere "
                f"must have the same vertices. Download them again."
            )
        transforms[hemi] = Bunch(layers=np.stack(layers))
        if fsaverage:
            path = _require_transform(root, folder / f"{hemi}.white-to-fsaverage.mgz")
            transforms[hemi].fsaverage = _read_index(path, len(layers[0]))
    if fsaverage and len(transforms.lh.fsaverage) != len(transforms.rh.fsaverage):
        raise ValueError(
            f"lh.white-to-fsaverage.mgz has {len(transforms.lh.fsaverage)} vertices and "
            f"rh.white-to-fsaverage.mgz {len(transforms.rh.fsaverage)}; both hemispheres "
            f"of fsaverage have the same. Download them again."
        )
    return transforms


def _func_volume_shape(root, subject):
    """Shape of the subject's func1pt8mm volume, from the header of one of its files."""
    folder = root / "nsddata" / "ppdata" / subject / "func1pt8mm"
    candidates = [folder / "brainmask.nii.gz", *sorted(folder.rglob("*.nii.gz"))]
    for path in candidates:
        if path.is_file():
            return tuple(int(n) for n in nib.load(path).shape[:3])
    raise FileNotFoundError(
        f"no func1pt8mm volume of {subject} under {folder}: the size of the volume that "
        f"the transforms index is read from {folder / 'brainmask.nii.gz'}, part of NSD's "
        f"'nsddata' release; download it, or check that nsd_root={str(root)!r} is the "
        f"folder holding nsddata/."
    )


def _valid(coords, shape):
    """Which 0-based coordinates nsdcode interpolates: finite and inside the volume."""
    inside = np.isfinite(coords).all(axis=-1)
    for axis, n in enumerate(shape):
        with np.errstate(invalid="ignore"):
            inside &= (coords[..., axis] >= 0) & (coords[..., axis] <= n - 1)
    return inside


def _sampling_matrix(coords, shape, column_of, n_columns, order):
    """Sparse (n_points, n_columns) weights of nearest or trilinear interpolation.

    ``coords`` are valid 0-based coordinates; ``column_of`` maps a flat voxel index to
    its column, -1 for voxels outside the mask (zeros of the volume). Indices are
    clamped to the volume, as ``map_coordinates(mode="nearest")`` does.
    """
    n = len(coords)
    if order == 0:
        corners = np.floor(coords + 0.5)[:, None, :]
        weights = np.ones((n, 1))
    else:
        base = np.floor(coords)
        frac = coords - base
        offsets = np.array([[a, b, c] for a in (0, 1) for b in (0, 1) for c in (0, 1)])
        corners = base[:, None, :] + offsets[None]
        weights = np.prod(np.where(offsets[None] == 1, frac[:, None, :], 1 - frac[:, None, :]), -1)
    corners = np.clip(corners.astype(np.int64), 0, np.asarray(shape) - 1)
    flat = np.ravel_multi_index(tuple(np.moveaxis(corners, -1, 0)), shape)
    columns = column_of[flat]
    rows = np.broadcast_to(np.arange(n)[:, None], columns.shape)
    keep = columns >= 0
    return scipy.sparse.csr_matrix(
        (weights[keep], (rows[keep], columns[keep])), shape=(n, n_columns)
    )


class NSDSurfaceMapper(TransformerMixin, BaseEstimator):
    """Map per-voxel maps of a subject's func1pt8mm volume onto fsaverage or its white surface.

    The chain is nsdcode's (``NSDmapdata.fit`` from ``func1pt8`` to ``layerB1``-``layerB3``,
    then ``white`` to ``fsaverage``): the volume, zero outside the mask, is interpolated
    at each of the three cortical depths (``scipy.ndimage.map_coordinates`` in float64,
    ``mode="nearest"``); a vertex whose coordinates are invalid (9999, non-finite, or
    outside the volume) takes ``badval`` at that depth; the three depths are averaged;
    and each fsaverage vertex takes the value of its nearest native white-surface vertex.
    NaN input counts as 0, as nsdcode's ``nan_to_num`` makes it.

    Parameters
    ----------
    nsd_root : str or path-like
        NSD's root folder, the one holding ``nsddata/``.
    subject : str or int
        ``"subj01"`` or ``1``.
    mask : array-like of bool, shape (X, Y, Z), or VolumeMasker
        The subject's func1pt8mm voxels that the input's columns hold, ordered as
        ``numpy.argwhere(mask)`` lists them (the order of
        :class:`~brainldm.datasets.nsd.VolumeMasker`, which is accepted too).
    target : {"fsaverage", "white"}, default="fsaverage"
        fsaverage, or the subject's native white surface.
    interpolation : {"cubic", "linear", "nearest"}, default="cubic"
        nsdcode's interpolation types; use ``"nearest"`` for labels.
    badval : float, default=0.0
        Value at a depth where a vertex's coordinates are invalid (nsdcode's default).

    Attributes
    ----------
    n_vertices_ : tuple of int
        Vertices of the left and the right hemisphere on the target surface; the output's
        columns are the left's, then the right's.
    n_features_in_ : int
        Voxels of the mask.
    mask_ : ndarray of bool, shape (X, Y, Z)
    volume_shape_ : tuple of int
        Shape of the subject's func1pt8mm volume, which the transforms index.

    See Also
    --------
    read_nsd_transforms : The transform files, as arrays.
    brainldm.datasets.nsd.VolumeMasker : The voxel order of the input.

    Examples
    --------
    >>> import tempfile
    >>> from brainldm.datasets.toy import make_toy_nsd
    >>> from brainldm.datasets.nsd import load_nsd
    >>> from brainldm.surface import NSDSurfaceMapper
    >>> root = make_toy_nsd(
    ...     tempfile.mkdtemp() + "/nsd", n_sessions=4, n_released_sessions=3,
    ...     trials_per_session=15, n_shared=4, volume_shape=(12, 14, 12),
    ...     subjects=["subj01"], progress=False)
    >>> data = load_nsd(root, "subj01", progress=False)
    >>> mapper = NSDSurfaceMapper(root, "subj01", data.masker).fit()
    >>> mapper.n_vertices_
    (2562, 2562)
    >>> mapper.transform(data.X_test[:2]).shape
    (2, 5124)
    """

    _parameter_constraints = {
        "target": [Options(_TARGETS)],
        "interpolation": [Options(tuple(_ORDERS))],
        "badval": [Interval(Real, None, None)],
    }

    def __init__(
        self, nsd_root, subject, mask, *, target="fsaverage", interpolation="cubic", badval=0.0
    ):
        self.nsd_root = nsd_root
        self.subject = subject
        self.mask = mask
        self.target = target
        self.interpolation = interpolation
        self.badval = badval

    def fit(self, X=None, y=None):
        """Read and check the subject's transforms and work out the sampling.

        Parameters
        ----------
        X, y : ignored
            Present for the scikit-learn API: the transforms define the mapping.

        Returns
        -------
        self : NSDSurfaceMapper
        """
        validate_params(self)
        root = Path(self.nsd_root).expanduser()
        subject = subject_name(self.subject)
        mask = self._mask_volume()
        shape = _func_volume_shape(root, subject)
        if mask.shape != shape:
            raise ValueError(
                f"mask has shape {mask.shape}, but {subject}'s func1pt8mm volume, which "
                f"the transforms index, has shape {shape}: give the mask of that "
                f"subject's func1pt8mm voxels."
            )
        transforms = read_nsd_transforms(root, subject, fsaverage=self.target == "fsaverage")
        # Only the native vertices that the target reads are sampled.
        needed, rows, offset = [], [], 0
        for hemi in HEMISPHERES:
            n_native = transforms[hemi].layers.shape[1]
            if self.target == "fsaverage":
                vertices, inverse = np.unique(transforms[hemi].fsaverage - 1, return_inverse=True)
            else:
                vertices = inverse = np.arange(n_native)
            needed.append(transforms[hemi].layers[:, vertices])
            rows.append(inverse + offset)
            offset += len(vertices)
        coords = np.concatenate(needed, axis=1)
        coords[coords == _INVALID] = np.nan
        coords -= 1
        self.mask_, self.volume_shape_ = mask, shape
        self.n_features_in_ = int(mask.sum())
        self.n_vertices_ = tuple(len(r) for r in rows)
        self._rows = np.concatenate(rows)
        self._valid = _valid(coords, shape)
        self._coords = coords[self._valid]
        self._matrix = None
        if self.interpolation != "cubic":
            self._matrix = self._depth_average_matrix()
        return self

    def _mask_volume(self):
        mask = getattr(self.mask, "mask_", None)
        if mask is None and not isinstance(self.mask, np.ndarray):
            mask = getattr(self.mask, "mask", self.mask)
        mask = np.asarray(self.mask if mask is None else mask)
        if mask.ndim != 3 or not np.isin(mask, (0, 1)).all():
            raise ValueError(
                f"mask must be a 3-D volume of booleans (or a VolumeMasker), got an array "
                f"of dtype {mask.dtype} and shape {mask.shape}."
            )
        return mask.astype(bool)

    def _depth_average_matrix(self):
        """Sparse (n_out, n_voxels) matrix of the chain; ``badval`` enters in ``transform``."""
        column_of = np.full(int(np.prod(self.volume_shape_)), -1, dtype=np.int64)
        column_of[np.ravel_multi_index(np.nonzero(self.mask_), self.volume_shape_)] = np.arange(
            self.n_features_in_
        )
        sampled = _sampling_matrix(
            self._coords,
            self.volume_shape_,
            column_of,
            self.n_features_in_,
            _ORDERS[self.interpolation],
        )
        n_depths, n_needed = self._valid.shape
        depth_rows = np.nonzero(self._valid)[1]
        average = scipy.sparse.csr_matrix(
            (np.full(len(depth_rows), 1 / n_depths), (depth_rows, np.arange(len(depth_rows)))),
            shape=(n_needed, len(depth_rows)),
        )
        return (average @ sampled).tocsr()

    def transform(self, X):
        """Map per-voxel values onto the target surface.

        Parameters
        ----------
        X : array-like of shape (n_maps, n_voxels) or (n_voxels,)
            Values of the mask's voxels, in the mask's order.

        Returns
        -------
        ndarray of shape (n_maps, n_left + n_right), or (n_left + n_right,) for 1-D ``X``
            Left hemisphere's vertices, then the right's; float32 for float32 input,
            float64 otherwise (the arithmetic is in float64 throughout).
        """
        check_is_fitted(self)
        X = np.asarray(X)
        if X.ndim not in (1, 2) or X.shape[-1] != self.n_features_in_:
            raise ValueError(
                f"X has shape {X.shape}, but the mask has {self.n_features_in_} voxels: "
                f"give (n_voxels,) or (n_maps, n_voxels) in the mask's voxel order."
            )
        dtype = np.float32 if X.dtype == np.float32 else np.float64
        maps = np.nan_to_num(np.atleast_2d(X).astype(np.float64))
        # A vertex whose coordinates are invalid at k of the depths adds k * badval / 3.
        n_depths = len(self._valid)
        invalid = (n_depths - self._valid.sum(axis=0)) * (float(self.badval) / n_depths)
        if self._matrix is not None:
            values = (self._matrix @ maps.T).T + invalid
        else:
            values = np.stack([self._cubic(row) for row in maps]) + invalid
        mapped = values[:, self._rows].astype(dtype)
        return mapped[0] if X.ndim == 1 else mapped

    def _cubic(self, values):
        """Depth average of one map's cubic-spline samples, without the invalid depths."""
        volume = np.zeros(self.volume_shape_)
        volume[self.mask_] = values
        samples = scipy.ndimage.map_coordinates(
            volume, self._coords.T, order=3, mode="nearest", output=np.float64
        )
        depths = np.zeros(self._valid.shape)
        depths[self._valid] = samples
        return depths.mean(axis=0)


def vote_labels(to_surface, labels, n_labels):
    """Integer labels per voxel to labels per vertex, by a vote: never an average of labels.

    Each label (and "none") goes to the surface as a 0/1 indicator map through
    ``to_surface(maps, "nearest")``; a vertex takes the label whose indicator
    projects the highest, so it takes a label its voxels have even where the
    projection averages several samples (NSD's three cortical depths).

    Parameters
    ----------
    to_surface : callable
        ``to_surface(maps, interpolation)`` maps an array of shape
        (n_maps, n_voxels) to whole-surface maps (n_maps, n_vertices), e.g.
        ``lambda maps, interpolation: mapper.transform(maps)`` with an
        :class:`NSDSurfaceMapper` of ``interpolation="nearest"``.
    labels : array-like of shape (n_maps, n_voxels)
        Labels 0 to ``n_labels - 1``; -1 or NaN where a voxel has none.
    n_labels : int
        Number of labels.

    Returns
    -------
    ndarray of int, shape (n_maps, n_vertices)
        The label of each vertex, -1 where none wins.

    Examples
    --------
    >>> import numpy as np
    >>> from brainldm.surface import vote_labels
    >>> samples = np.array([[0, 0, 1], [1, 2, 2]])  # 2 vertices, 3 voxel samples each
    >>> def to_surface(maps, interpolation):
    ...     return maps[:, samples].mean(axis=2)
    >>> vote_labels(to_surface, [[0.0, 3.0, np.nan]], n_labels=4)
    array([[ 0, -1]])
    """
    labels = np.nan_to_num(np.asarray(labels, dtype=np.float64), nan=-1.0)
    if labels.ndim != 2:
        raise ValueError(f"labels must have shape (n_maps, n_voxels), got {labels.shape}")
    choices = np.arange(-1, n_labels)
    indicators = (labels[:, None, :] == choices[None, :, None]).reshape(-1, labels.shape[-1])
    votes = np.asarray(to_surface(indicators.astype(np.float64), "nearest"))
    if votes.ndim != 2 or len(votes) != len(indicators):
        raise ValueError(
            f"to_surface must map an array of shape (n_maps, n_voxels) to (n_maps, n_vertices); "
            f"given shape {indicators.shape}, it returned shape {votes.shape}"
        )
    votes = votes.reshape(len(labels), len(choices), -1)
    return choices[np.argmax(np.nan_to_num(votes, nan=-1.0), axis=1)]
