"""Read the Natural Scenes Dataset (NSD) from the files of its public release.

The reader knows NSD's folder layout (Allen et al., 2022) and nothing else: every size
(images, trials per session, sessions, volume shape) is read from the files, so the
simulated NSD written by :func:`brainldm.datasets.toy.make_toy_nsd` goes through the same
code as the real dataset.
"""

import functools
import json
import math
import os
import re
import zlib
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from numbers import Integral
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pandas as pd
import scipy.io
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import Bunch
from sklearn.utils.validation import check_is_fitted
from tqdm.auto import tqdm

from brainldm._surface_masker import SurfaceMasker
from brainldm._validation import (
    Interval,
    Options,
    check_options,
    check_parameter,
    parse_subject,
    subject_name,
)
from brainldm._warnings import warn
from brainldm.datasets import _cache
from brainldm.datasets._arrays import drop_columns_in_place
from brainldm.datasets._surface_files import (
    HEMISPHERES,
    read_mesh,
    read_session_pair,
    read_vertex_values,
    surface_shape,
)

__all__ = [
    "BETAS_SCALE",
    "NSDCaptions",
    "NSDStimuli",
    "SPACES",
    "VolumeMasker",
    "VoxelMask",
    "ZSCORE_OPTIONS",
    "load_nsd",
]

# NSD stores single-trial betas as int16 percent signal change times 300.
BETAS_SCALE = 300.0
ZSCORE_OPTIONS = ("session", None)
# The spaces of NSD's betas that load_nsd reads: the subject's 1.8 mm volume, and
# FreeSurfer's fsaverage surface (both hemispheres).
SPACES = ("func1pt8mm", "fsaverage")

_BETAS_NAME = "betas_fithrf_GLMdenoise_RR"
# The ROI name of the whole brain, read from NSD's brainmask.nii.gz.
_BRAIN = "brain"
# Atlases whose labels every load reports over its voxels.
_REPORTED_ATLASES = ("nsdgeneral", "streams")
_SESSION_FILE = re.compile(r"^betas_session(\d+)\.nii\.gz$")
_SURFACE_SESSION_FILE = re.compile(r"^[lr]h\.betas_session(\d+)\.mgh$")
# The fsaverage surface given with the masker of a surface load, when NSD's is there.
_SURFACE_MESH = "pial"
# Bounds the memory of one read: betas are decompressed this many bytes at a time.
_READ_CHUNK_BYTES = 64 * 2**20


def _release_part(relative):
    """The part of the NSD release (its top-level folder) that holds ``relative``."""
    return Path(relative).parts[0]


def _where_to_download(relative):
    """Where the file at ``relative`` (to the NSD root) comes from, for messages."""
    return (
        f"the '{_release_part(relative)}' part of the NSD release "
        f"(s3://natural-scenes-dataset/{Path(relative).as_posix()})"
    )


def _require(root, relative, what):
    path = root / relative
    if not path.exists():
        raise FileNotFoundError(
            f"{what} not found: {path} does not exist. It belongs to "
            f"{_where_to_download(relative)}; download it there, or check that "
            f"root={str(root)!r} is the folder holding nsddata/, nsddata_betas/ and "
            f"nsddata_stimuli/."
        )
    return path


def _format_sessions(sessions):
    """[1, 2, 3, 5] -> '1-3, 5'."""
    runs = []
    for session in sorted(sessions):
        if runs and session == runs[-1][1] + 1:
            runs[-1][1] = session
        else:
            runs.append([session, session])
    return ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in runs) or "none"


class _Layout:
    """Paths of one subject's files in an NSD root, relative to the root."""

    space = "func1pt8mm"
    unit = "voxel"
    session_pattern = _SESSION_FILE
    session_names = "betas_sessionNN.nii.gz"

    def __init__(self, root, subject):
        self.root = Path(root)
        self.subject = subject_name(subject)
        self.expdesign = Path("nsddata/experiments/nsd/nsd_expdesign.mat")
        self.stim_info = Path("nsddata/experiments/nsd/nsd_stim_info_merged.csv")
        self.responses = Path(f"nsddata/ppdata/{self.subject}/behav/responses.tsv")
        self.stimuli = Path("nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5")
        self.annotations = Path("nsddata_stimuli/stimuli/nsd/annotations")
        self.betas = Path(f"nsddata_betas/ppdata/{self.subject}/func1pt8mm/{_BETAS_NAME}")
        self.rois = Path(f"nsddata/ppdata/{self.subject}/func1pt8mm/roi")
        self.brainmask = Path(f"nsddata/ppdata/{self.subject}/func1pt8mm/brainmask.nii.gz")
        self.ncsnr = self.betas / "ncsnr.nii.gz"
        self.labels = Path("nsddata/freesurfer/fsaverage/label")

    def session_file(self, session):
        return self.betas / f"betas_session{session:02d}.nii.gz"

    def session_files(self, session):
        """Every file of a session's betas."""
        return (self.session_file(session),)

    def atlas_file(self, atlas):
        return self.rois / f"{atlas}.nii.gz"

    def ncsnr_files(self):
        """The ncsnr files of the betas, or () when there are none (some missing: an error)."""
        files = [self.ncsnr] if isinstance(self.ncsnr, Path) else list(self.ncsnr)
        present = [(self.root / path).exists() for path in files]
        if not any(present):
            return ()
        for path in files:
            self.require(path, f"ncsnr file of {self.subject} (its other hemisphere is there)")
        return tuple(files)

    def require(self, relative, what):
        return _require(self.root, relative, what)


class _SurfaceLayout(_Layout):
    """Paths of one subject's files on NSD's fsaverage surface: one file per hemisphere."""

    space = "fsaverage"
    unit = "vertex"
    session_pattern = _SURFACE_SESSION_FILE
    session_names = "{lh,rh}.betas_sessionNN.mgh"

    def __init__(self, root, subject):
        super().__init__(root, subject)
        self.betas = Path(f"nsddata_betas/ppdata/{self.subject}/fsaverage/{_BETAS_NAME}")
        self.rois = self.labels
        self.ncsnr = tuple(self.betas / f"{hemi}.ncsnr.mgh" for hemi in HEMISPHERES)
        self.surf = Path("nsddata/freesurfer/fsaverage/surf")

    def session_file(self, session):
        return self.betas / f"lh.betas_session{session:02d}.mgh"

    def session_files(self, session):
        return tuple(self.betas / f"{hemi}.betas_session{session:02d}.mgh" for hemi in HEMISPHERES)

    def atlas_file(self, atlas):
        return self.labels / f"lh.{atlas}.mgz"


class VolumeMasker(TransformerMixin, BaseEstimator):
    """Map brain volumes to the voxels of a mask and back, like nilearn's ``NiftiMasker``.

    Built from a boolean volume mask and the affine of the volume, which `fit`
    checks and learns as ``mask_`` and ``affine_`` (as nilearn's maskers learn
    theirs); :func:`load_nsd` returns a fitted one. Voxels are ordered as
    ``numpy.argwhere(mask)`` lists them (C order of their ``(i, j, k)``
    indices), the order of :attr:`voxel_ijk`.

    Parameters
    ----------
    mask : array-like of bool, shape (X, Y, Z)
        The voxels to keep.
    affine : array-like of shape (4, 4)
        Voxel-to-world transform of the volume.

    Attributes
    ----------
    mask_ : ndarray of bool, shape (X, Y, Z)
    affine_ : ndarray of shape (4, 4)

    See Also
    --------
    load_nsd : returns the masker of the voxels it loaded.

    Examples
    --------
    >>> import numpy as np
    >>> from brainldm.datasets.nsd import VolumeMasker
    >>> mask = np.zeros((3, 4, 5), dtype=bool)
    >>> mask[1, 2, 3] = mask[2, 0, 1] = True
    >>> masker = VolumeMasker(mask, np.eye(4)).fit()
    >>> img = masker.inverse_transform(np.array([[1.5, -2.0]]))
    >>> img.shape
    (3, 4, 5, 1)
    >>> masker.transform(img)
    array([[ 1.5, -2. ]], dtype=float32)
    """

    def __init__(self, mask, affine):
        self.mask = mask
        self.affine = affine

    def fit(self, imgs=None, y=None):
        """Check the mask and the affine and learn them.

        Parameters
        ----------
        imgs, y : ignored
            Present for the scikit-learn API: the mask defines the voxels.

        Returns
        -------
        self : VolumeMasker
        """
        mask = np.asarray(self.mask, dtype=bool)
        affine = np.asarray(self.affine, dtype=float)
        if mask.ndim != 3:
            raise ValueError(f"mask must be a 3-D volume, got shape {mask.shape}.")
        if affine.shape != (4, 4):
            raise ValueError(f"affine must have shape (4, 4), got {affine.shape}.")
        self.mask_, self.affine_ = mask, affine
        return self

    @property
    def n_voxels(self):
        """Number of voxels in the mask."""
        return int(self.mask_.sum())

    @property
    def voxel_ijk(self):
        """(n_voxels, 3) volume indices of the voxels, in column order."""
        return np.argwhere(self.mask_)

    @property
    def mask_img_(self):
        """The mask as a ``nibabel.Nifti1Image`` (uint8, 1 = in)."""
        return nib.Nifti1Image(self.mask_.astype(np.uint8), self.affine_)

    def transform(self, imgs):
        """Extract the masked voxels of a 3-D or 4-D image.

        Parameters
        ----------
        imgs : nibabel image, path, or ndarray of shape (X, Y, Z) or (X, Y, Z, n)

        Returns
        -------
        ndarray of shape (n, n_voxels), float32
            One row per volume (one row for a 3-D image).
        """
        check_is_fitted(self)
        if isinstance(imgs, (str, Path)):
            imgs = nib.load(imgs)
        data = np.asarray(imgs.dataobj if hasattr(imgs, "dataobj") else imgs)
        if data.shape[:3] != self.mask_.shape or data.ndim not in (3, 4):
            raise ValueError(
                f"imgs has shape {data.shape}, but the mask's volume is "
                f"{self.mask_.shape}: give a 3-D volume or a 4-D series of that shape."
            )
        if data.ndim == 3:
            return data[self.mask_][np.newaxis].astype(np.float32)
        return data[self.mask_].T.astype(np.float32)

    def inverse_transform(self, X):
        """Put per-voxel values back in the volume, with zeros outside the mask.

        Parameters
        ----------
        X : array-like of shape (n_voxels,) or (n, n_voxels)

        Returns
        -------
        nibabel.Nifti1Image
            3-D for a 1-D ``X``, 4-D with ``n`` volumes otherwise; float32.
        """
        check_is_fitted(self)
        X = np.asarray(X, dtype=np.float32)
        if X.ndim not in (1, 2) or X.shape[-1] != self.n_voxels:
            raise ValueError(
                f"X has shape {X.shape}, but the masker has {self.n_voxels} voxels: "
                f"give (n_voxels,) or (n_samples, n_voxels)."
            )
        data = np.zeros((*self.mask_.shape, *X.shape[:-1]), dtype=np.float32)
        data[self.mask_] = X.T
        return nib.Nifti1Image(data, self.affine_)

    def __repr__(self):
        if not hasattr(self, "mask_"):
            return f"VolumeMasker(shape={np.shape(self.mask)}, unfitted)"
        return f"VolumeMasker(shape={self.mask_.shape}, n_voxels={self.n_voxels})"


class NSDStimuli:
    """NSD's stimulus images, read lazily from ``nsd_stimuli.hdf5``.

    The file is opened on first access, never read whole (it holds 36 GB), and the object
    pickles without its file handle, so it can be sent to worker processes.

    Parameters
    ----------
    path : str or Path
        The ``nsd_stimuli.hdf5`` file.
    dataset : str, default="imgBrick"
        The HDF5 dataset of images, shape (n_images, height, width, 3), uint8.

    Examples
    --------
    >>> import tempfile, h5py, numpy as np
    >>> from brainldm.datasets.nsd import NSDStimuli
    >>> path = tempfile.mkdtemp() + "/nsd_stimuli.hdf5"
    >>> with h5py.File(path, "w") as f:
    ...     f["imgBrick"] = np.arange(4 * 2 * 2 * 3, dtype=np.uint8).reshape(4, 2, 2, 3)
    >>> stimuli = NSDStimuli(path)
    >>> len(stimuli), stimuli[3].shape, stimuli[[2, 0, 2]].shape
    (4, (2, 2, 3), (3, 2, 2, 3))
    """

    def __init__(self, path, dataset="imgBrick"):
        self.path = Path(path)
        self.dataset = dataset
        self._file = None

    def _images(self):
        if self._file is None:
            try:
                self._file = h5py.File(self.path, "r")
                images = self._file[self.dataset]
            except (OSError, KeyError) as exc:
                self.close()
                raise RuntimeError(
                    f"Cannot read dataset '{self.dataset}' of {self.path} ({exc}). The "
                    f"file is truncated or corrupt: download it again from the "
                    f"'nsddata_stimuli' part of the NSD release."
                ) from exc
            return images
        return self._file[self.dataset]

    @property
    def shape(self):
        """(n_images, height, width, channels)."""
        return self._images().shape

    @property
    def dtype(self):
        return self._images().dtype

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, key):
        images = self._images()
        if isinstance(key, slice):
            return images[key]
        index = np.asarray(key)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        if not np.issubdtype(index.dtype, np.integer):
            raise IndexError(f"stimuli are indexed by 73k index, got {key!r}.")
        n_images = images.shape[0]
        if index.size and (index.min() < -n_images or index.max() >= n_images):
            raise IndexError(f"stimulus index out of range for {n_images} images: {key!r}.")
        index = np.where(index < 0, index + n_images, index)
        if index.ndim == 0:
            return images[int(index)]
        # h5py reads only increasing, unique indices.
        unique, inverse = np.unique(index, return_inverse=True)
        return images[unique][inverse.reshape(index.shape)]

    def close(self):
        """Close the HDF5 file; the next access opens it again."""
        if self._file is not None:
            self._file.close()
        self._file = None

    def __getstate__(self):
        return {**self.__dict__, "_file": None}

    def __repr__(self):
        return f"NSDStimuli({str(self.path)!r})"


class NSDCaptions:
    """All COCO captions of each NSD image, by 0-based 73k index.

    ``captions[i]`` is the list of captions (usually five, sometimes more) of image ``i``;
    a list or array of indices gives a list of such lists. The captions of image ``i``
    are those of COCO image ``cocoId`` in the split ``cocoSplit`` named by row ``i`` of
    ``nsd_stim_info_merged.csv``. Files are read on first access, once.

    Parameters
    ----------
    stim_info : str or Path
        ``nsd_stim_info_merged.csv``.
    annotations : str or Path
        Folder holding COCO's ``captions_<split>.json`` files.

    Examples
    --------
    >>> import json, tempfile, pathlib, pandas as pd
    >>> from brainldm.datasets.nsd import NSDCaptions
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> pd.DataFrame({"cocoId": [7, 3], "cocoSplit": ["val2017", "train2017"]}).to_csv(
    ...     folder / "nsd_stim_info_merged.csv")
    >>> for split, image, text in [("val2017", 7, "a cat"), ("train2017", 3, "a dog")]:
    ...     annotations = [{"image_id": image, "id": 1, "caption": text + " "}]
    ...     _ = (folder / f"captions_{split}.json").write_text(
    ...         json.dumps({"annotations": annotations}))
    >>> captions = NSDCaptions(folder / "nsd_stim_info_merged.csv", folder)
    >>> captions[0], captions[[1, 0]]
    (['a cat'], [['a dog'], ['a cat']])
    """

    def __init__(self, stim_info, annotations):
        self.stim_info = Path(stim_info)
        self.annotations = Path(annotations)
        self._by_image = None

    def _load(self):
        if self._by_image is None:
            info = pd.read_csv(self.stim_info, index_col=0)
            by_split = {}
            for split in info["cocoSplit"].unique():
                path = self.annotations / f"captions_{split}.json"
                if not path.exists():
                    raise FileNotFoundError(
                        f"COCO captions not found: {path} does not exist. It belongs to "
                        f"the 'nsddata_stimuli' part of the NSD release "
                        f"(nsddata_stimuli/stimuli/nsd/annotations/); download it there."
                    )
                with open(path, encoding="utf-8") as f:
                    annotations = json.load(f)["annotations"]
                by_id = {}
                for annotation in annotations:
                    by_id.setdefault(annotation["image_id"], []).append(
                        annotation["caption"].strip()
                    )
                by_split[split] = by_id
            self._by_image = [
                by_split[split].get(coco_id, [])
                for coco_id, split in zip(info["cocoId"], info["cocoSplit"], strict=True)
            ]
        return self._by_image

    def __len__(self):
        return len(self._load())

    def __getitem__(self, key):
        by_image = self._load()
        index = np.asarray(key)
        if index.ndim == 0:
            return list(by_image[int(index)])
        return [list(by_image[int(i)]) for i in index.ravel()]

    def __getstate__(self):
        return {**self.__dict__, "_by_image": None}

    def __repr__(self):
        return f"NSDCaptions({str(self.stim_info)!r})"


def _read_ctab(path):
    """Label name -> value of a FreeSurfer colour table (``value name ...`` per line)."""
    labels = {}
    for line in path.read_text().splitlines():
        fields = line.split()
        if len(fields) >= 2 and re.fullmatch(r"-?\d+", fields[0]) and int(fields[0]) > 0:
            labels[fields[1]] = int(fields[0])
    return labels


def _find_atlases(layout):
    """Atlas name -> Bunch(path, ctab, labels {name: value}, bare) of the subject's ROI files.

    Hemisphere files (``lh.streams``) share the colour table of their bilateral atlas;
    their labels are reached only as ``"lh.streams:early"`` (``bare`` is False), so that
    ``"early"`` names the bilateral ROI. ``"brain"`` is the subject's brain mask, when
    present.
    """
    if layout.space == "fsaverage":
        return _find_surface_atlases(layout)
    roi_dir = layout.require(layout.rois, f"ROI folder of {layout.subject}")
    atlases = {}
    for path in sorted(roi_dir.glob("*.nii.gz")):
        name = path.name[: -len(".nii.gz")]
        table = re.sub(r"^[lr]h\.", "", name)
        ctab = layout.labels / f"{table}.mgz.ctab"
        has_ctab = (layout.root / ctab).exists()
        atlases[name] = Bunch(
            path=layout.rois / path.name,
            files=(layout.rois / path.name,),
            ctab=ctab if has_ctab else None,
            labels=_read_ctab(layout.root / ctab) if has_ctab else {},
            bare=table == name,
        )
    # The whole brain; the brain mask lies beside the roi/ folder, not in it.
    if (layout.root / layout.brainmask).exists():
        atlases[_BRAIN] = Bunch(
            path=layout.brainmask, files=(layout.brainmask,), ctab=None, labels={}, bare=True
        )
    return atlases


def _find_surface_atlases(layout):
    """Atlas name -> Bunch as :func:`_find_atlases` gives, from the fsaverage labels.

    Each ``lh.<atlas>.mgz`` and its ``rh.`` twin form the bilateral atlas; ``"lh.<atlas>"``
    and ``"rh.<atlas>"`` are its hemispheres (reached as ``"lh.streams:early"``), and
    ``"brain"`` is every vertex of the surface.
    """
    label_dir = layout.require(layout.labels, "fsaverage label folder")
    atlases = {}
    for left in sorted(label_dir.glob("lh.*.mgz")):
        name = left.name[len("lh.") : -len(".mgz")]
        files = (layout.labels / left.name, layout.labels / f"rh.{name}.mgz")
        layout.require(files[1], f"Right-hemisphere labels of the fsaverage atlas '{name}'")
        ctab = layout.labels / f"{name}.mgz.ctab"
        has_ctab = (layout.root / ctab).exists()
        labels = _read_ctab(layout.root / ctab) if has_ctab else {}
        common = dict(files=files, ctab=ctab if has_ctab else None, labels=labels)
        atlases[name] = Bunch(path=files[0], hemisphere=None, bare=True, **common)
        for number, hemi in enumerate(HEMISPHERES):
            atlases[f"{hemi}.{name}"] = Bunch(
                path=files[number], hemisphere=number, bare=False, **common
            )
    atlases[_BRAIN] = Bunch(path=None, files=(), hemisphere=None, ctab=None, labels={}, bare=True)
    return atlases


def _require_reported_atlases(layout, atlases):
    """Raise FileNotFoundError for a missing file of the atlases every load reports."""
    for atlas in _REPORTED_ATLASES:
        what = f"ROI atlas '{atlas}' of {layout.subject} (its ROIs are in every load's roi_masks)"
        if atlas not in atlases:
            layout.require(layout.atlas_file(atlas), what)
        if atlases[atlas].ctab is None:
            layout.require(layout.labels / f"{atlas}.mgz.ctab", f"Colour table of the {what}")


def _resolve_rois(rois, atlases, layout):
    """ROI name -> (atlas, label value or None for the whole atlas)."""
    names = [rois] if isinstance(rois, str) else list(rois)
    if not names or not all(isinstance(name, str) for name in names):
        raise ValueError(
            f"rois must be a ROI name or a list of names, got {rois!r}; for example "
            f"'nsdgeneral' or ['early', 'ventral']."
        )
    resolved = {}
    for name in names:
        atlas, _, label = name.partition(":")
        if name == _BRAIN and name not in atlases:
            layout.require(layout.brainmask, f"Brain mask of {layout.subject} (rois='brain')")
        if name in atlases:
            resolved[name] = (name, None)
        elif label and atlas in atlases and label in atlases[atlas].labels:
            resolved[name] = (atlas, atlases[atlas].labels[label])
        else:
            matches = [
                (atlas, info.labels[name])
                for atlas, info in atlases.items()
                if info.bare and name in info.labels
            ]
            if len(matches) > 1:
                options = ", ".join(f"'{atlas}:{name}'" for atlas, _ in matches)
                raise ValueError(
                    f"rois: {name!r} is a label of several atlases; name one of {options}."
                )
            if not matches:
                labels = sorted(
                    {label for info in atlases.values() if info.bare for label in info.labels}
                )
                raise ValueError(
                    f"rois: unknown ROI {name!r} for {layout.subject}. Valid names are the "
                    f"atlases in {layout.root / layout.rois} ({', '.join(atlases) or 'none'}), "
                    f"their labels ({', '.join(labels) or 'none'}), or 'atlas:label'."
                )
            resolved[name] = matches[0]
    return resolved


def _read_volume(root, relative, what, dtype=np.int64):
    """A 3-D volume (a ROI file: integers) as an array of ``dtype``."""
    try:
        return np.asarray(nib.load(root / relative).dataobj).astype(dtype)
    except (OSError, EOFError, zlib.error, ValueError, nib.filebasedimages.ImageFileError) as exc:
        raise RuntimeError(
            f"Cannot read {what} {root / relative} ({exc}). The file is truncated or "
            f"corrupt: download it again from the '{_release_part(relative)}' part of "
            f"the NSD release."
        ) from exc


def _read_design(layout, subject):
    """How trials map to images: Bunch(sources, shared, session_images(session, n_trials)).

    ``nsd_expdesign.mat`` is used when present; otherwise the subject's
    ``responses.tsv``, with the shared images from ``nsd_stim_info_merged.csv``.
    """
    expdesign = layout.root / layout.expdesign
    if expdesign.exists():
        try:
            design = scipy.io.loadmat(expdesign)
            masterordering = np.ravel(design["masterordering"]).astype(np.int64)
            subjectim = np.atleast_2d(design["subjectim"]).astype(np.int64)
            shared = np.ravel(design["sharedix"]).astype(np.int64) - 1
        except (OSError, ValueError, KeyError) as exc:
            raise RuntimeError(
                f"Cannot read {expdesign} ({exc}). It must hold 'masterordering', "
                f"'subjectim' and 'sharedix': download it again from the 'nsddata' part "
                f"of the NSD release."
            ) from exc
        if subject > subjectim.shape[0]:
            raise ValueError(
                f"subject={subject} is not an NSD subject: {expdesign.name} lists subjects "
                f"1 to {subjectim.shape[0]} (subj01 to subj{subjectim.shape[0]:02d})."
            )

        def session_images(session, n_trials):
            trials = np.arange((session - 1) * n_trials, session * n_trials)
            if trials[-1] >= masterordering.size:
                raise ValueError(
                    f"session {session} has {n_trials} trials, beyond the "
                    f"{masterordering.size} trials of 'masterordering' in {expdesign}."
                )
            return subjectim[subject - 1, masterordering[trials] - 1] - 1

        return Bunch(sources=[layout.expdesign], shared=shared, session_images=session_images)

    if not (layout.root / layout.responses).exists():
        layout.require(
            layout.expdesign, f"NSD experimental design (or {layout.responses.name} of the subject)"
        )
    responses = pd.read_csv(layout.root / layout.responses, sep="\t")
    stim_info = pd.read_csv(layout.require(layout.stim_info, "NSD stimulus table"), index_col=0)
    shared = np.flatnonzero(stim_info["shared1000"].astype(bool).to_numpy())

    def session_images(session, n_trials):
        images = responses.loc[responses["SESSION"] == session, "73KID"].to_numpy() - 1
        if images.size != n_trials:
            raise ValueError(
                f"session {session} has {n_trials} betas but {images.size} trials in "
                f"{layout.root / layout.responses}; the two files do not match."
            )
        return images

    return Bunch(
        sources=[layout.responses, layout.stim_info], shared=shared, session_images=session_images
    )


def _find_sessions(layout, sessions, allow_missing_sessions):
    """The requested sessions (all present ones for None), checked against the files.

    With ``sessions=None``, sessions missing between the first and the last present one
    are an incomplete download: a ValueError, or with ``allow_missing_sessions`` a
    warning. Sessions after the last present one are those NSD withholds, never a gap.
    """
    betas_dir = layout.require(layout.betas, f"betas folder of {layout.subject}")
    present = sorted(
        {
            int(match.group(1))
            for match in (layout.session_pattern.match(path.name) for path in betas_dir.iterdir())
            if match
        }
    )
    if not present:
        raise FileNotFoundError(
            f"No {layout.session_names} files in {betas_dir}; download them from "
            f"{_where_to_download(layout.betas)}."
        )
    if sessions is None:
        gaps = sorted(set(range(present[0], present[-1] + 1)) - set(present))
        if gaps:
            _report_gaps(layout, betas_dir, present, gaps, allow_missing_sessions)
        return _require_session_files(layout, present)
    requested = [sessions] if np.ndim(sessions) == 0 else list(sessions)
    if not requested or not all(
        isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s >= 1 for s in requested
    ):
        raise ValueError(f"sessions must be None or session numbers (1, 2, ...), got {sessions!r}.")
    missing = sorted(set(requested) - set(present))
    if missing:
        raise ValueError(
            f"sessions={sessions!r}: session(s) {_format_sessions(missing)} of "
            f"{layout.subject} are not on disk (no {layout.session_file(missing[0]).name} in "
            f"{betas_dir}); NSD withholds some sessions from its release. Sessions present: "
            f"{_format_sessions(present)}."
        )
    return _require_session_files(layout, sorted({int(s) for s in requested}))


def _require_session_files(layout, sessions):
    """``sessions``, once every file of each is known to exist (both hemispheres)."""
    for session in sessions:
        for path in layout.session_files(session):
            layout.require(path, f"Betas of {layout.subject}, session {session}")
    return sessions


def _report_gaps(layout, betas_dir, present, gaps, allow_missing_sessions):
    """Refuse (or with ``allow_missing_sessions`` warn of) sessions missing on disk."""
    names = [layout.session_file(session).name for session in gaps]
    files = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    missing = (
        f"{layout.subject}: session(s) {_format_sessions(gaps)} missing between sessions "
        f"{present[0]} and {present[-1]} (no {files} in {betas_dir})"
    )
    if allow_missing_sessions:
        warn(
            f"{missing}; loading the {len(present)} sessions present ({_format_sessions(present)})."
        )
        return
    source = layout.session_file(gaps[0]) if len(gaps) == 1 else layout.betas
    raise ValueError(
        f"{missing}: the download is incomplete. The betas files belong to "
        f"{_where_to_download(source)}; download them there, "
        f"pass allow_missing_sessions=True to load the {len(present)} sessions present "
        f"with a warning, or choose the sessions with sessions=[...]."
    )


def _betas_error(path, exc):
    return RuntimeError(
        f"Cannot read betas file {path} ({exc}). The file is truncated or corrupt: "
        f"download it again from the 'nsddata_betas' part of the NSD release."
    )


def _read_header(path):
    try:
        header = nib.load(path).header
    except (OSError, EOFError, zlib.error, ValueError, nib.filebasedimages.ImageFileError) as exc:
        raise _betas_error(path, exc) from exc
    if len(header.get_data_shape()) != 4:
        raise ValueError(
            f"Betas file {path} has shape {header.get_data_shape()}; NSD betas are 4-D "
            f"(X, Y, Z, trials)."
        )
    return header


def _read_session(path, flat_index):
    """(n_trials, n_voxels) float32 betas of the voxels at ``flat_index`` (Fortran order).

    The file is decompressed a few volumes at a time and masked as int16, so memory
    holds one session of the selected voxels, never the whole volume series. On the
    fsaverage surface, ``path`` is the pair of hemisphere files and ``flat_index`` the
    pair of their vertices, whose betas are percent signal change already.
    """
    if isinstance(path, tuple):
        return read_session_pair(path, flat_index)
    try:
        img = nib.load(path, keep_file_open=True)
        n_trials = img.shape[3]
        volume_bytes = int(np.prod(img.shape[:3])) * img.get_data_dtype().itemsize
        step = max(1, _READ_CHUNK_BYTES // volume_bytes)
        betas = np.empty((n_trials, flat_index.size), dtype=np.float32)
        for start in range(0, n_trials, step):
            block = np.asarray(img.dataobj[..., start : start + step])
            stop = start + block.shape[3]
            betas[start:stop] = block.reshape(-1, stop - start, order="F")[flat_index].T
    except (OSError, EOFError, zlib.error, ValueError, nib.filebasedimages.ImageFileError) as exc:
        raise _betas_error(path, exc) from exc
    betas /= BETAS_SCALE
    return betas


def _read_sessions(paths, flat_index, n_jobs):
    """Yield each session's betas in order, reading up to ``n_jobs`` files at once.

    Decompression releases the GIL, so threads read files in parallel; at most
    ``n_jobs`` sessions wait in memory.
    """
    with ThreadPoolExecutor(n_jobs) as pool:
        pending = deque()
        for path in paths:
            pending.append(pool.submit(_read_session, path, flat_index))
            if len(pending) >= n_jobs:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _standardise(betas, zscore):
    """Z-score each voxel in place (if asked); return the voxels that cannot be used.

    A voxel cannot be used when it has a non-finite value or the same value on every
    trial; its values are set to 0 here and the voxel is dropped once all sessions are
    read.
    """
    bad = ~np.isfinite(betas).all(axis=0)
    betas[:, bad] = 0
    bad |= np.ptp(betas, axis=0) == 0
    if zscore == "session":
        mean = betas.mean(axis=0, dtype=np.float64)
        std = betas.std(axis=0, dtype=np.float64)
        std[bad] = 1
        betas -= mean.astype(np.float32)
        betas /= std.astype(np.float32)
    betas[:, bad] = 0
    return bad


def _volume(layout, relative, what, shape, betas_path, dtype=np.int64):
    """A 3-D volume of the subject, checked against the shape of the betas."""
    volume = _read_volume(layout.root, relative, what, dtype)
    if volume.shape != shape:
        raise ValueError(
            f"{what} {layout.root / relative} has shape {volume.shape}, but the betas "
            f"({betas_path}) have volumes of shape {shape}. Both must come from the same "
            f"space (func1pt8mm) of the same subject."
        )
    return volume


def _roi_mask_names(resolved, atlases, used):
    """Requested ROIs first, then every label of the atlases read (bare when unique)."""
    names = dict(resolved)
    for atlas in used:
        for label, value in atlases[atlas].labels.items():
            names.setdefault(label if atlases[atlas].bare else f"{atlas}:{label}", (atlas, value))
    return names


def _in_roi(volume, value):
    return volume > 0 if value is None else volume == value


def _select(layout, values, atlases, resolved, used):
    """The mask of the requested ROIs and the ROI masks over it, from each atlas's values."""
    mask = np.zeros(next(iter(values.values())).shape, dtype=bool)
    for atlas, value in resolved.values():
        mask |= _in_roi(values[atlas], value)
    if not mask.any():
        raise ValueError(f"rois={list(resolved)} hold no {layout.unit} of {layout.subject}.")
    roi_names = _roi_mask_names(resolved, atlases, used)
    roi_masks = np.stack(
        [_in_roi(values[atlas], value)[mask] for atlas, value in roi_names.values()]
    )
    return mask, list(roi_names), roi_masks


def _select_voxels(layout, sessions, atlases, resolved, used):
    """The voxels a volume load reads, and how to read them."""
    paths = [layout.root / layout.session_file(session) for session in sessions]
    headers = [_read_header(path) for path in paths]
    shape = headers[0].get_data_shape()[:3]
    for path, header in zip(paths, headers, strict=True):
        if header.get_data_shape()[:3] != shape:
            raise ValueError(
                f"Betas file {path} has volumes of shape {header.get_data_shape()[:3]}, "
                f"but {paths[0]} has {shape}; one of them is not from this subject's "
                f"func1pt8mm space."
            )
    volumes = {
        atlas: _volume(layout, atlases[atlas].path, "ROI file", shape, paths[0]) for atlas in used
    }
    mask, roi_names, roi_masks = _select(layout, volumes, atlases, resolved, used)
    ncsnr = None
    if layout.ncsnr_files():
        ncsnr = _volume(layout, layout.ncsnr, "ncsnr file", shape, paths[0], np.float32)[mask]
    voxel_ijk = np.argwhere(mask)
    return Bunch(
        paths=paths,
        n_trials=[header.get_data_shape()[3] for header in headers],
        columns=voxel_ijk,
        column_names=("voxel_ijk", "dropped_voxels"),
        flat_index=np.ravel_multi_index(tuple(voxel_ijk.T), shape, order="F"),
        roi_names=roi_names,
        roi_masks=roi_masks,
        ncsnr=ncsnr,
        space_arrays=dict(volume_shape=np.array(shape), affine=headers[0].get_best_affine()),
    )


def _plan(layout, sessions, design, atlases, resolved, used):
    """What a load reads: its voxels (or vertices) and ROI masks, and the image of every trial."""
    select = _select_vertices if layout.space == "fsaverage" else _select_voxels
    selection = select(layout, sessions, atlases, resolved, used)
    images = [
        design.session_images(session, n_trials)
        for session, n_trials in zip(sessions, selection.n_trials, strict=True)
    ]
    is_test = [np.isin(session_images, design.shared) for session_images in images]
    images_test_trials = np.concatenate([im[t] for im, t in zip(images, is_test, strict=True)])
    images_test, n_repeats_test = np.unique(images_test_trials, return_counts=True)
    return Bunch(
        subject=layout.subject,
        unit=layout.unit,
        sessions=sessions,
        **selection,
        images=images,
        is_test=is_test,
        images_train_trials=np.concatenate([im[~t] for im, t in zip(images, is_test, strict=True)]),
        images_test=images_test,
        n_repeats_test=n_repeats_test,
        images_test_trials=images_test_trials,
    )


def _surface_values(layout, files, n_vertices, betas_path, dtype=np.int64, hemisphere=None):
    """Per-vertex values of both hemispheres' files, (2 * n_vertices,).

    With ``hemisphere`` (0 or 1), the other hemisphere is zero; without files, every
    vertex is 1 (the whole surface).
    """
    if not files:
        return np.ones(2 * n_vertices, dtype=dtype)
    values = []
    for number, relative in enumerate(files):
        labels = read_vertex_values(layout.root / relative, dtype)
        if labels.size != n_vertices:
            raise ValueError(
                f"File {layout.root / relative} has {labels.size} vertices, but the "
                f"betas ({betas_path}) have {n_vertices} per hemisphere. Both must be on the "
                f"same fsaverage surface: download it again from "
                f"{_where_to_download(relative)}."
            )
        values.append(labels if hemisphere in (None, number) else np.zeros_like(labels))
    return np.concatenate(values)


def _check_hemisphere_sizes(paths):
    """(n_vertices, n_trials) of each session's files, the same for both hemispheres."""
    sizes = []
    for pair in paths:
        (n_left, t_left), (n_right, t_right) = (surface_shape(path) for path in pair)
        if (n_left, t_left) != (n_right, t_right):
            raise ValueError(
                f"The hemisphere files of a session differ: {pair[0]} holds {n_left} "
                f"vertices x {t_left} trials, {pair[1]} {n_right} x {t_right}. fsaverage's "
                f"hemispheres have the same number of vertices and a session the same "
                f"trials: download them again from the 'nsddata_betas' part of the NSD release."
            )
        if sizes and n_left != sizes[0][0]:
            raise ValueError(
                f"{pair[0]} has {n_left} vertices, but {paths[0][0]} has {sizes[0][0]}; "
                f"one of them is not on NSD's fsaverage surface."
            )
        sizes.append((n_left, t_left))
    return sizes


def _select_vertices(layout, sessions, atlases, resolved, used):
    """The vertices an fsaverage load reads, and how to read them."""
    paths = [
        tuple(layout.root / path for path in layout.session_files(session)) for session in sessions
    ]
    sizes = _check_hemisphere_sizes(paths)
    n_vertices = sizes[0][0]
    labels = {
        atlas: _surface_values(
            layout,
            atlases[atlas].files,
            n_vertices,
            paths[0][0],
            hemisphere=atlases[atlas].hemisphere,
        )
        for atlas in used
    }
    mask, roi_names, roi_masks = _select(layout, labels, atlases, resolved, used)
    ncsnr = None
    if layout.ncsnr_files():
        ncsnr = _surface_values(layout, layout.ncsnr, n_vertices, paths[0][0], np.float32)[mask]
    vertex_index = np.column_stack(np.divmod(np.flatnonzero(mask), n_vertices))
    return Bunch(
        paths=paths,
        n_trials=[n_trials for _, n_trials in sizes],
        columns=vertex_index,
        column_names=("vertex_index", "dropped_vertices"),
        flat_index=tuple(np.flatnonzero(half) for half in np.split(mask, 2)),
        roi_names=roi_names,
        roi_masks=roi_masks,
        ncsnr=ncsnr,
        space_arrays=dict(hemisphere_sizes=np.array([n_vertices, n_vertices])),
    )


# The arrays of a load that grow with its voxels and trials: held in memory or mapped.
_LARGE = ("X_train", "X_test", "X_test_trials")


def _output_shapes(plan, average_train):
    """Shape of each large array of a load, before voxels without variance are dropped."""
    train = plan.images_train_trials
    n_train = np.unique(train).size if average_train else train.size
    n_voxels = len(plan.columns)
    rows = (n_train, plan.images_test.size, plan.images_test_trials.size)
    return {name: (int(n), n_voxels) for name, n in zip(_LARGE, rows, strict=True)}


def _read_betas(plan, out, zscore, average_train, n_jobs, progress):
    """Fill ``out`` with the standardised betas: (arrays, attrs) as stored in the cache.

    ``out`` holds the arrays of :data:`_LARGE`, of :func:`_output_shapes`, allocated by
    the caller in memory or mapped from a file. Averages (the test images, and the
    training images with ``average_train``) are accumulated in place, so memory holds
    ``out`` and one session of the selected voxels.
    """
    X_train, X_test, X_test_trials = (out[name] for name in _LARGE)
    if average_train:
        images_train, n_repeats_train = np.unique(plan.images_train_trials, return_counts=True)
        X_train[:] = 0
    else:
        images_train = plan.images_train_trials
        n_repeats_train = np.ones(images_train.size, dtype=np.int64)
    X_test[:] = 0
    bad = np.zeros(len(plan.columns), dtype=bool)
    row = trial = 0
    sessions_read = tqdm(
        _read_sessions(plan.paths, plan.flat_index, n_jobs),
        total=len(plan.paths),
        desc=f"{plan.subject} betas",
        unit="session",
        disable=not progress,
    )
    for betas, session_images, test in zip(sessions_read, plan.images, plan.is_test, strict=True):
        bad |= _standardise(betas, zscore)
        train = betas[~test]
        if average_train:
            at = np.searchsorted(images_train, session_images[~test])
            train /= n_repeats_train[at, np.newaxis]
            np.add.at(X_train, at, train)
        else:
            X_train[row : row + len(train)] = train
            row += len(train)
        del train
        tests = betas[test]
        del betas
        X_test_trials[trial : trial + len(tests)] = tests
        trial += len(tests)
        at = np.searchsorted(plan.images_test, session_images[test])
        tests /= plan.n_repeats_test[at, np.newaxis]
        np.add.at(X_test, at, tests)
        del tests

    keep = ~bad
    if not keep.any():
        raise ValueError(
            f"Every {plan.unit} of the requested ROIs has no variance or non-finite values in "
            f"some session of {plan.subject}: the betas files hold no usable data."
        )
    arrays = {name: drop_columns_in_place(out[name], keep, _READ_CHUNK_BYTES) for name in _LARGE}
    arrays.update(
        images_train=images_train,
        n_repeats_train=n_repeats_train,
        images_test=plan.images_test,
        n_repeats_test=plan.n_repeats_test,
        images_test_trials=plan.images_test_trials,
        **dict(zip(plan.column_names, (plan.columns[keep], plan.columns[bad]), strict=True)),
        roi_masks=plan.roi_masks[:, keep],
        **plan.space_arrays,
    )
    if not average_train:
        arrays.update(
            sessions_train=np.concatenate(
                [
                    np.full(int((~t).sum()), s)
                    for s, t in zip(plan.sessions, plan.is_test, strict=True)
                ]
            ),
            trials_train=np.concatenate([np.flatnonzero(~t) for t in plan.is_test]),
        )
    if plan.ncsnr is not None:
        arrays["ncsnr"] = plan.ncsnr[keep]
    return arrays, dict(roi_names=plan.roi_names)


class VoxelMask(np.ndarray):
    """A boolean mask over a load's voxels that shows how many it selects.

    ``load_nsd(...).roi_masks`` holds these. They are NumPy boolean arrays in
    every way but their repr, ``<836 of 4884 voxels>``, so that an estimator
    given one (``LatentDecoder(voxels=data.roi_masks["early"])``) keeps a
    readable repr, in a notebook as inside a ``Pipeline`` or a grid search.

    Examples
    --------
    >>> import numpy as np
    >>> from brainldm.datasets.nsd import VoxelMask
    >>> mask = np.array([True, False, True]).view(VoxelMask)
    >>> mask
    <2 of 3 voxels>
    >>> int(mask.sum()), np.asarray(mask).tolist()
    (2, [True, False, True])
    """

    def __repr__(self):
        if self.ndim != 1 or self.dtype != bool:
            return repr(np.asarray(self))
        return f"<{int(np.count_nonzero(self))} of {len(self)} voxels>"


class _ROIMasks(dict):
    """ROI name -> mask over the loaded voxels; an unknown name lists the loaded ones."""

    def __missing__(self, name):
        raise KeyError(
            f"no ROI {name!r} in roi_masks; loaded ROIs: {', '.join(self) or 'none'}. "
            f"Pass it in rois= to load_nsd to load it."
        )


def _volume_masker(arrays):
    mask = np.zeros(tuple(arrays["volume_shape"]), dtype=bool)
    mask[tuple(arrays["voxel_ijk"].T)] = True
    return VolumeMasker(mask, arrays["affine"]).fit()


def _surface_masker(arrays, mesh):
    hemisphere, vertex = arrays["vertex_index"].T
    masks = [np.zeros(n, dtype=bool) for n in arrays["hemisphere_sizes"]]
    for number, mask in enumerate(masks):
        mask[vertex[hemisphere == number]] = True
    return SurfaceMasker(dict(zip(("left", "right"), masks, strict=True)), mesh).fit()


# Per space: the names of the kept and dropped columns' identities, and what they hold.
_COLUMNS = {
    "func1pt8mm": ("voxel", "voxel_ijk", "dropped_voxels", "(i, j, k) indices"),
    "fsaverage": ("vertex", "vertex_index", "dropped_vertices", "(hemisphere, vertex) indices"),
}


def _make_bunch(
    arrays,
    attrs,
    subject,
    sessions,
    rois,
    zscore,
    average_train,
    stimuli,
    captions,
    space="func1pt8mm",
    mesh=None,
):
    unit, kept, dropped, what = _COLUMNS[space]
    if len(arrays[dropped]):
        warn(
            f"{subject}: dropped {len(arrays[dropped])} {unit}s with no variance or "
            f"non-finite values in some loaded session; their {what} are in `{dropped}`."
        )
    masker = _surface_masker(arrays, mesh) if space == "fsaverage" else _volume_masker(arrays)
    return Bunch(
        X_train=arrays["X_train"],
        X_test=arrays["X_test"],
        X_test_trials=arrays["X_test_trials"],
        images_train=arrays["images_train"],
        images_test=arrays["images_test"],
        images_test_trials=arrays["images_test_trials"],
        sessions_train=arrays.get("sessions_train"),
        trials_train=arrays.get("trials_train"),
        n_repeats_train=arrays["n_repeats_train"],
        n_repeats_test=arrays["n_repeats_test"],
        ncsnr=arrays.get("ncsnr"),
        roi_masks=_ROIMasks(
            (name, mask.astype(bool).view(VoxelMask))
            for name, mask in zip(attrs["roi_names"], arrays["roi_masks"], strict=True)
        ),
        masker=masker,
        **{kept: arrays[kept], dropped: arrays[dropped]},
        stimuli=stimuli,
        captions=captions,
        subject=subject,
        sessions=np.array(sessions),
        rois=list(rois),
        zscore=zscore,
        average_train=average_train,
        space=space,
    )


def load_nsd(
    root,
    subject,
    rois="nsdgeneral",
    sessions=None,
    allow_missing_sessions=False,
    zscore="session",
    average_train=False,
    cache_dir=None,
    mmap=None,
    max_memory="4GB",
    n_jobs=None,
    progress=True,
    space="func1pt8mm",
):
    """Load one subject's single-trial betas from the Natural Scenes Dataset.

    Reads the files of NSD's public release under ``root``: the 1.8 mm single-trial
    betas (``betas_fithrf_GLMdenoise_RR``), the ROI files, the experimental design, the
    stimuli and the COCO captions. Trials of the shared images (``sharedix``) form the
    test set, each image the mean of its repetitions in the loaded sessions (the single
    trials come too, for noise ceilings); every other trial is a training sample on its
    own, or with ``average_train`` the mean of its image's trials.

    Parameters
    ----------
    root : str or Path
        The NSD root, holding ``nsddata/``, ``nsddata_betas/`` and ``nsddata_stimuli/``.
    subject : int or str
        1, ``"1"`` or ``"subj01"``.
    rois : str or list of str, default="nsdgeneral"
        ROIs whose union is loaded. A name is either an atlas file of the subject's
        ``roi/`` folder (``"nsdgeneral"``, ``"streams"``: its voxels with a positive
        value), a label of an atlas's colour table (``"early"``, ``"ventral"``), or
        ``"atlas:label"`` where a label belongs to several atlases. ``"brain"`` is the
        whole brain, read from ``brainmask.nii.gz`` beside the ``roi/`` folder.
    sessions : int, list of int or None, default=None
        Sessions to load (1-based, as NSD numbers them); None loads every session whose
        betas file is present. NSD withholds the last three sessions each subject
        completed from its release (38-40 of subj01, subj02, subj05 and subj07; 30-32
        of subj03 and subj06; 28-30 of subj04 and subj08), so the sessions on disk run
        from 1 to the last one released. With None, a session missing between the
        first and the last betas file on disk is an incomplete download and raises a
        ValueError naming its file; a list loads exactly the sessions it names.
    allow_missing_sessions : bool, default=False
        With ``sessions=None``, load the sessions present despite missing ones between
        them, with a warning that lists those missing. Ignored for a list of sessions.
    zscore : {"session", None}, default="session"
        ``"session"`` z-scores each voxel within each session, as the NSD manual
        advises; None keeps percent signal change.
    average_train : bool, default=False
        If True, each row of ``X_train`` is the mean of a training image's trials in the
        loaded sessions (after z-scoring): one row per image, ``images_train`` unique and
        increasing, ``n_repeats_train`` the number of trials averaged. Cross-validation
        then needs no grouping; single trials give the ridge more (noisier) rows.
    cache_dir : str or Path, default=None
        Folder for a cache of the loaded arrays; a later call with the same arguments and
        unchanged files reads it instead of the betas. None: no cache. Required when
        the arrays are memory-mapped.
    mmap : bool or None, default=None
        True: stream the sessions into the cache file and return ``X_train``,
        ``X_test`` and ``X_test_trials`` as read-only ``numpy.memmap`` arrays of it;
        False: hold them in memory whatever their size; None: memory-map them when
        together they exceed ``max_memory``.
    max_memory : int, float, str or None, default="4GB"
        With ``mmap=None``, the largest size of the arrays held in memory, in bytes or as
        a string such as ``"4GB"`` (decimal units) or ``"16GiB"`` (binary). None: no
        limit. A load above it needs ``cache_dir``.
    n_jobs : int, default=None
        Number of betas files decompressed at once (None: 1; -1: one per CPU). Each
        adds one session of the selected voxels to the memory held.
    progress : bool, default=True
        Show progress over sessions.
    space : {"func1pt8mm", "fsaverage"}, default="func1pt8mm"
        The betas to read: the subject's 1.8 mm volume, or FreeSurfer's fsaverage
        surface (``{lh,rh}.betas_sessionNN.mgh``, percent signal change, one file per
        hemisphere). On the surface, ROIs come from the fsaverage labels
        (``nsddata/freesurfer/fsaverage/label/{lh,rh}.<atlas>.mgz``) named as in the
        volume, ``"lh.<atlas>"`` and ``"rh.<atlas>"`` are one hemisphere of an atlas,
        ``"brain"`` is every vertex, ncsnr comes from ``{lh,rh}.ncsnr.mgh``, and the
        columns are vertices: the left hemisphere's, ascending, then the right's.
        The returned Bunch then holds ``vertex_index`` and ``dropped_vertices``
        ((n, 2) hemisphere, 0 left or 1 right, and vertex) in place of ``voxel_ijk`` and
        ``dropped_voxels``, and ``masker`` is a :class:`brainldm.surface.SurfaceMasker`
        carrying NSD's fsaverage pial surface when ``nsddata/freesurfer/fsaverage/surf/``
        holds it (its ``inverse_transform`` then gives a nilearn ``SurfaceImage``;
        otherwise a dict of per-hemisphere arrays).

    Returns
    -------
    data : sklearn.utils.Bunch
        X_train : ndarray of shape (n_train, n_voxels), float32
            Single-trial betas of the training trials, in the order they were shown
            (``n_train`` trials), or with ``average_train`` the mean betas of each
            training image (``n_train`` images).
        X_test : ndarray of shape (n_test_images, n_voxels), float32
            Betas of each test image, averaged over its repetitions.
        X_test_trials : ndarray of shape (n_test_trials, n_voxels), float32
            The single trials of the test images, in the order they were shown: what
            a noise ceiling is estimated from. Their mean per image is ``X_test``.
        images_train : ndarray of shape (n_train,)
            0-based 73k index of the image of each row of ``X_train``; for single
            trials, the groups for cross-validation, so that repetitions of an image
            stay in one fold.
        images_test : ndarray of shape (n_test_images,)
            0-based 73k index of each test image, increasing.
        images_test_trials : ndarray of shape (n_test_trials,)
            0-based 73k index of the image of each row of ``X_test_trials``.
        sessions_train, trials_train : ndarray of shape (n_train,) or None
            Session (1-based) of each training trial and its 0-based position in the
            session's betas file; None with ``average_train``.
        n_repeats_train : ndarray of shape (n_train,)
            Number of trials averaged into each row of ``X_train`` (all 1 for single
            trials).
        n_repeats_test : ndarray of shape (n_test_images,)
            Number of trials averaged into each row of ``X_test``.
        ncsnr : ndarray of shape (n_voxels,), float32, or None
            NSD's noise-ceiling signal-to-noise ratio of each voxel, from
            ``ncsnr.nii.gz`` beside the betas; None if the file is absent.
        roi_masks : dict of str to ndarray of bool, shape (n_voxels,)
            Each requested ROI, then every label of the atlases read (those requested,
            ``nsdgeneral`` and ``streams``, the ROIs of Takagi & Nishimoto), over the
            loaded voxels. A name not loaded raises a KeyError listing those loaded.
        masker : VolumeMasker
            Turns (n, n_voxels) arrays back into images of the subject's volume.
        voxel_ijk : ndarray of shape (n_voxels, 3)
            Volume indices of the columns of X.
        dropped_voxels : ndarray of shape (n_dropped, 3)
            Volume indices of the ROI voxels left out because they had no variance or
            non-finite values in some loaded session (reported with a warning).
        stimuli : NSDStimuli
            The images, read lazily, by 73k index: ``stimuli[images_test]``.
        captions : NSDCaptions
            The COCO captions of each image, by 73k index.
        subject, sessions, rois, zscore, average_train, space
            What was loaded.

    Raises
    ------
    FileNotFoundError
        A file of the release is missing (the message names it and its release part),
        among them the ``nsdgeneral`` and ``streams`` ROI files and colour tables, which
        every load needs; checked before any betas are read.
    ValueError
        Unknown subject or ROI, a session that is not on disk, a session missing
        between those on disk (without ``allow_missing_sessions``), mismatched volumes,
        or arrays over ``max_memory`` (or ``mmap=True``) without ``cache_dir``.
    OSError
        The cache needs more disk space than is free (checked before any betas are read;
        the message gives both).
    RuntimeError
        A file is truncated or unreadable.

    Notes
    -----
    Betas are read one session at a time, a few volumes at a time, and masked as int16
    before conversion, so memory holds the output and one session of the selected
    voxels; memory-mapped, it holds one session only (the whole brain of subj01 is some
    25 GB of float32 for ``X_train`` alone, written to the cache once). Cache files are named by a hash of the
    request and of the sizes and modification times of the files read, written to a
    temporary file and moved into place, so that neither an interrupted run nor a
    changed file is ever read back; an interrupted load starts again. An in-memory
    load and a memory-mapped one share the same cache file.

    Examples
    --------
    A small simulated NSD, in NSD's layout:

    >>> import tempfile, warnings
    >>> from brainldm.datasets.toy import make_toy_nsd
    >>> from brainldm.datasets.nsd import load_nsd
    >>> root = make_toy_nsd(
    ...     tempfile.mkdtemp() + "/nsd", n_sessions=4, n_released_sessions=3,
    ...     trials_per_session=30, n_shared=8, volume_shape=(12, 14, 12),
    ...     subjects=["subj01"], progress=False)
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     data = load_nsd(root, "subj01", rois=["early", "ventral"], progress=False)
    >>> print(caught[0].message)  # doctest: +ELLIPSIS
    subj01: dropped ... voxels with no variance or non-finite values in some loaded session; ...
    >>> int(data.X_train.shape[0] + data.n_repeats_test.sum())  # 3 sessions of 30 trials
    90
    >>> data.X_train.shape[1] == data.X_test.shape[1] == len(data.voxel_ijk)
    True
    >>> bool(data.roi_masks["early"].any() and data.roi_masks["ventral"].any())
    True
    >>> data.stimuli[data.images_test].shape[1:]
    (85, 85, 3)
    >>> data.masker.inverse_transform(data.X_test[0]).shape
    (12, 14, 12)
    >>> bool((data.X_test_trials[data.images_test_trials == data.images_test[0]].mean(0)
    ...       - data.X_test[0]).max() < 1e-5)
    True

    The whole brain, averaged over repetitions and memory-mapped from a cache:

    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     brain = load_nsd(root, "subj01", rois="brain", average_train=True, mmap=True,
    ...                      cache_dir=tempfile.mkdtemp(), progress=False)
    >>> type(brain.X_train).__name__, bool(brain.roi_masks["nsdgeneral"].any())
    ('memmap', True)
    >>> len(brain.images_train) == len(set(brain.images_train))
    True
    >>> brain.ncsnr.shape == brain.X_train.shape[1:]
    True
    """
    number = parse_subject(subject)
    check_options(space, "space", "load_nsd", SPACES)
    layout = (_SurfaceLayout if space == "fsaverage" else _Layout)(root, number)
    check_options(zscore, "zscore", "load_nsd", ZSCORE_OPTIONS)
    check_parameter(n_jobs, "n_jobs", "load_nsd", Interval(Integral, 1, None), Options([-1]), None)
    check_parameter(allow_missing_sessions, "allow_missing_sessions", "load_nsd", "boolean")
    check_parameter(average_train, "average_train", "load_nsd", "boolean")
    check_parameter(mmap, "mmap", "load_nsd", "boolean", None)
    check_parameter(progress, "progress", "load_nsd", "boolean")
    if mmap is True and cache_dir is None:
        raise ValueError(
            "mmap=True memory-maps the betas from the on-disk cache, but cache_dir is None: "
            "pass cache_dir, a folder with room for them."
        )
    budget = _parse_bytes(max_memory, "max_memory")
    n_jobs = os.cpu_count() if n_jobs == -1 else n_jobs or 1
    design = _read_design(layout, number)
    sessions = _find_sessions(layout, sessions, allow_missing_sessions)
    atlases = _find_atlases(layout)
    _require_reported_atlases(layout, atlases)
    resolved = _resolve_rois(rois, atlases, layout)
    used = sorted({atlas for atlas, _ in resolved.values()} | set(_REPORTED_ATLASES))

    stimuli = NSDStimuli(layout.require(layout.stimuli, "NSD stimuli"))
    # Reading the shape fails now, not at first use, if the file is unreadable.
    if len(stimuli) == 0:
        raise ValueError(f"{stimuli.path} holds no images; download it again.")
    stimuli.close()
    captions = NSDCaptions(
        layout.require(layout.stim_info, "NSD stimulus table"), layout.root / layout.annotations
    )

    mesh = _fsaverage_mesh(layout, sessions) if space == "fsaverage" else None

    sources = [path for session in sessions for path in layout.session_files(session)]
    sources += design.sources
    sources += [path for atlas in used for path in atlases[atlas].files]
    sources += [atlases[atlas].ctab for atlas in used if atlases[atlas].ctab is not None]
    sources += list(layout.ncsnr_files())
    # The key holds the sessions resolved, not the arguments that chose them: loading
    # the sessions on disk (gaps allowed or not) and naming them share one cache file.
    described = dict(
        subject=layout.subject,
        sessions=sessions,
        rois=list(resolved),
        zscore=zscore,
        average_train=bool(average_train),
    )
    # The volume's key is unchanged from before spaces existed, so its caches stay valid.
    label = f"nsd-{layout.subject}-{'+'.join(resolved)}"
    if space != "func1pt8mm":
        described["space"] = space
        label = f"nsd-{layout.subject}-{space}-{'+'.join(resolved)}"
    # Bytes of the large arrays above which they are memory-mapped rather than held.
    map_above = {True: 0, False: math.inf, None: math.inf if budget is None else budget}[mmap]
    if cache_dir is not None:
        path = _cache.cache_path(
            cache_dir,
            label,
            described,
            [layout.root / source for source in sources],
        )
        cached = _cache.read_cache(path, mmap=_LARGE, max_bytes=map_above)
        if cached is not None:
            return _make_bunch(*cached, **described, stimuli=stimuli, captions=captions, mesh=mesh)
    plan = _plan(layout, sessions, design, atlases, resolved, used)
    shapes = _output_shapes(plan, average_train)
    needed = 4 * sum(math.prod(shape) for shape in shapes.values())
    in_place = needed > map_above
    if in_place and cache_dir is None:
        raise ValueError(
            f"{layout.subject}, rois={list(resolved)}: the betas take "
            f"{_cache.format_bytes(needed)} ({len(plan.columns)} {plan.unit}s), more than "
            f"max_memory={max_memory!r}. Pass cache_dir to stream them into an on-disk "
            f"cache and memory-map it, or raise max_memory (None: no limit)."
        )
    if cache_dir is not None:
        _cache.check_free_space(cache_dir, needed)
    read = functools.partial(
        _read_betas,
        plan,
        zscore=zscore,
        average_train=average_train,
        n_jobs=n_jobs,
        progress=progress,
    )
    if in_place:
        _cache.write_cache_in_place(path, shapes, read)
        arrays, attrs = _cache.read_cache(path, mmap=_LARGE)
    else:
        arrays, attrs = read({name: np.empty(shape, np.float32) for name, shape in shapes.items()})
        if cache_dir is not None:
            _cache.write_cache(path, arrays, attrs)
    return _make_bunch(arrays, attrs, **described, stimuli=stimuli, captions=captions, mesh=mesh)


def _fsaverage_mesh(layout, sessions):
    """NSD's fsaverage surface for the masker of a surface load; None without its files."""
    paths = [layout.root / layout.surf / f"{hemi}.{_SURFACE_MESH}" for hemi in HEMISPHERES]
    if not all(path.exists() for path in paths):
        return None
    mesh = read_mesh(paths)
    betas = layout.root / layout.session_file(sessions[0])
    n_vertices = surface_shape(betas)[0]
    for path, part in zip(paths, mesh.parts.values(), strict=True):
        if part.n_vertices != n_vertices:
            raise ValueError(
                f"The fsaverage surface {path} has {part.n_vertices} vertices, but the betas "
                f"({betas}) have {n_vertices}: download it again from "
                f"{_where_to_download(layout.surf / path.name)}."
            )
    return mesh


def _parse_bytes(value, name):
    """A memory size: None, a number of bytes, or a string such as "4GB" or "512 MiB"."""
    units = {"": 1, "b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12}
    units.update(kib=2**10, mib=2**20, gib=2**30, tib=2**40)
    if value is None:
        return None
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        if value >= 0:
            return float(value)
    elif isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-zA-Z]*)\s*", value)
        if match and match.group(2).lower() in units:
            return float(match.group(1)) * units[match.group(2).lower()]
    raise ValueError(
        f"{name} must be None, a number of bytes or a size such as '4GB' or '512MiB', "
        f"got {value!r}."
    )
