"""The toy world: a simulated Natural Scenes Dataset with known ground truth.

:func:`make_toy_nsd` writes, under one folder, everything the NSD reader reads
from the real dataset, in NSD's own layout and with NSD's quirks (1-based ids,
``(1, N)`` MATLAB arrays, ``-1`` outside the brain in ROI files, int16 betas in
percent signal change x 300, more than five captions for some images, both COCO
splits, sessions in the design that were not released, shared test images seen
fewer than three times in the released sessions). The images are procedural
scenes (:mod:`brainldm.datasets.scenes`); the brains are small volumes whose
voxels respond to known features of those scenes:

* early voxels (``streams`` code 1) have population receptive fields, a 2-D
  Gaussian over the image, pooling local luminance, red-green and blue-yellow
  contrast, and edge energy;
* ventral voxels (code 5) are linearly tuned to semantic attributes: which shape
  categories and colours are present, how many objects, the background kind;
* the other visual streams mix both more weakly, and the rest of the brain is
  noise.

Single-trial betas are ``session_offset + session_scale * (signal + noise)``,
and :func:`load_toy_ground_truth` returns every term of that sum, so the reader,
the decoders and the encoding models can all be checked against the truth.
Beside them lie NSD's ``ncsnr.nii.gz`` (each voxel's true signal sd over noise
sd), ``brainmask.nii.gz`` and an anatomical-looking ``T1_to_func1pt8mm.nii.gz``.

The cortex is nilearn's fsaverage5 surface placed inside each toy brain, in a vertex
order of the subject's own; NSD's transforms (``func1pt8-to-layerB1..3`` and
``white-to-fsaverage``) map the volume onto it, and the world's fsaverage, of
fsaverage4's 2,562 vertices per hemisphere, holds the surfaces, the ``streams`` and
``nsdgeneral`` labels, and betas and ``ncsnr`` mapped from the volume as
:class:`brainldm.surface.NSDSurfaceMapper` maps them (linear interpolation).
"""

import json
import os
import secrets
import shutil
import tempfile
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pandas as pd
import scipy.io
import scipy.ndimage
from scipy.special import ndtr
from sklearn.utils import Bunch
from tqdm.auto import tqdm

from brainldm import __version__
from brainldm._images import resize
from brainldm._surface_mapping import NSDSurfaceMapper
from brainldm._validation import check_int, subject_name
from brainldm.datasets import _toy_surface, scenes

__all__ = [
    "SUBJECTS",
    "STREAMS",
    "TOY_WORLD_VERSION",
    "make_toy_nsd",
    "load_toy_ground_truth",
]

#: Version of what :func:`make_toy_nsd` writes; a world made by another version
#: is not reused. Version 2 added ``brainmask``, ``T1_to_func1pt8mm`` and
#: ``ncsnr``; its stimuli and betas are those of version 1, bit for bit.
#: Version 3 changed the captions only: they name the background's kind, and its
#: colour in one caption in twenty
#: (:data:`~brainldm.datasets.scenes.BACKGROUND_COLOUR_MENTION`), where every
#: caption named both; images, betas, ROIs, design and ground truth are those of
#: version 2, bit for bit. Version 4 added the cortical surfaces: each subject's
#: surfaces and NSD's transforms from its volume to them, and fsaverage surfaces,
#: labels, betas and ``ncsnr``; everything version 3 wrote is as it was, bit for bit.
TOY_WORLD_VERSION = 4

#: The subjects of the toy world: NSD's four that saw all 40 sessions.
SUBJECTS = ("subj01", "subj02", "subj05", "subj07")

#: Names of the ``streams`` ROI codes, as in NSD's ``streams.mgz.ctab``.
STREAMS = (
    "Unknown",
    "early",
    "midventral",
    "midlateral",
    "midparietal",
    "ventral",
    "lateral",
    "parietal",
)

_MARKER = "toy_world.json"
_TRUTH_DIR = "toy_ground_truth"
_N_DESIGN_SUBJECTS = 8
_REPETITIONS = 3
_RUNS_PER_SESSION = 12
_VOXEL_MM = 1.8
_WORKING_SIZE = 64
_PRF_GRID = 8
_CHANNELS = ("luminance", "red_green", "blue_yellow", "edges")
# Channels differ in how strongly voxels weight them: colour opponency is
# weaker than luminance in early visual cortex.
_CHANNEL_SCALE = np.array([1.0, 0.8, 0.8, 0.6])
_VAL_FRACTION = 0.15
_N_BAD_VOXELS = 4
_BETA_UNITS = 300

# Noise is multiplied by this per subject; NSD's subj07 has the lowest SNR.
_NOISE_FACTOR = {"subj01": 1.0, "subj05": 1.1, "subj02": 1.2, "subj07": 1.5}
# Volumes differ between subjects as NSD's do (81x104x83 for subj01, 82x106x84,
# 79x97x78, 78x95x81), scaled to a toy volume; readers must take sizes from files.
_SHAPE_DELTA = {
    "subj01": (0, 0, 0),
    "subj02": (1, 1, 0),
    "subj05": (-1, -2, -2),
    "subj07": (-1, -3, -1),
}
# Stream code -> (signal standard deviation in percent signal change, share of
# the signal variance from low-level features; the rest is semantic).
_STREAM_TUNING = {
    0: (0.3, 0.5),
    1: (1.0, 1.0),
    2: (0.8, 0.6),
    3: (0.5, 0.5),
    4: (0.4, 0.8),
    5: (1.0, 0.0),
    6: (0.6, 0.3),
    7: (0.4, 0.7),
}
_NOISE_SD = 2.0


def make_toy_nsd(
    root,
    seed=0,
    *,
    n_sessions=12,
    n_released_sessions=10,
    trials_per_session=300,
    n_shared=250,
    volume_shape=(24, 30, 25),
    subjects=SUBJECTS,
    overwrite=False,
    progress=True,
):
    """Write a simulated NSD, in NSD's file layout, under ``root``.

    The design has ``n_sessions`` sessions, of which the first
    ``n_released_sessions`` have betas files (NSD designed 40 sessions and
    released 37). Every subject sees ``n_sessions * trials_per_session / 3``
    images three times each; the first ``n_shared`` of them are the same for
    all subjects (NSD's ``shared1000``, the test set). The image brick holds
    the images of eight design subjects, as NSD's 73k images cover eight, but
    betas are written only for ``subjects``.

    The world is written into a temporary sibling folder and renamed into place
    when complete, so an interrupted run never leaves a world that looks
    complete. Calling again with the same arguments returns at once.

    Parameters
    ----------
    root : str or path-like
        Folder of the world (NSD's root: it will hold ``nsddata``,
        ``nsddata_betas`` and ``nsddata_stimuli``). It must not exist, be empty,
        or hold a toy world.
    seed : int, default=0
        Seed of every random draw; the same seed and arguments give the same
        world.
    n_sessions : int, default=12
        Sessions in the experimental design.
    n_released_sessions : int, default=10
        Sessions whose betas are written, at most ``n_sessions``.
    trials_per_session : int, default=300
        Trials per session; ``n_sessions * trials_per_session`` must be a
        multiple of 3.
    n_shared : int, default=250
        Images shown to every subject.
    volume_shape : tuple of 3 int, default=(24, 30, 25)
        Volume of subj01 in voxels (1.8 mm); the other subjects' volumes differ
        by a voxel or a few. Each side must be at least 12.
    subjects : sequence of str, default=SUBJECTS
        Subjects whose brains are simulated, among :data:`SUBJECTS`.
    overwrite : bool, default=False
        Replace a toy world made with other arguments. A folder that does not
        hold a toy world is never replaced.
    progress : bool, default=True
        Show a progress bar.

    Returns
    -------
    root : pathlib.Path
        The folder of the world.

    See Also
    --------
    load_toy_ground_truth : The generating features, weights and noise.
    brainldm.datasets.nsd.load_nsd : Reads the world as it reads NSD.

    Examples
    --------
    >>> import tempfile
    >>> from brainldm.datasets.toy import make_toy_nsd, load_toy_ground_truth
    >>> root = make_toy_nsd(
    ...     tempfile.mkdtemp() + "/nsd", n_sessions=4, n_released_sessions=3,
    ...     trials_per_session=15, n_shared=4, volume_shape=(12, 14, 12),
    ...     subjects=["subj01"], progress=False)
    >>> sorted(p.name for p in root.iterdir())
    ['nsddata', 'nsddata_betas', 'nsddata_stimuli', 'toy_ground_truth', 'toy_world.json']
    >>> truth = load_toy_ground_truth(root, "subj01")
    >>> truth.trial_images.shape
    (45,)
    """
    root = Path(root).expanduser()
    arguments = _check_arguments(
        seed=seed,
        n_sessions=n_sessions,
        n_released_sessions=n_released_sessions,
        trials_per_session=trials_per_session,
        n_shared=n_shared,
        volume_shape=volume_shape,
        subjects=subjects,
    )
    existing = _read_marker(root)
    if existing is not None:
        if _same_world(existing, arguments):
            return root
        if not overwrite:
            differing = {
                k: (existing["arguments"].get(k), v)
                for k, v in arguments.items()
                if existing["arguments"].get(k) != v
            }
            if not differing:
                differing = {
                    "toy_world_version": (existing.get("toy_world_version"), TOY_WORLD_VERSION)
                }
            raise ValueError(
                f"root={str(root)!r} holds a toy world made with other arguments "
                f"(there, here: {differing}); "
                "pass overwrite=True to replace it (or delete the folder), or choose another root"
            )
    elif root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise ValueError(
            f"root={str(root)!r} exists and does not hold a toy world; choose a new or empty folder"
        )
    root.parent.mkdir(parents=True, exist_ok=True)
    # Not tempfile.mkdtemp: its folders are private (0700), and the world is renamed as is.
    staging = root.parent / f".{root.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    staging.mkdir()
    try:
        _write_world(staging, arguments, progress)
        _publish(staging, root, arguments)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return root


def load_toy_ground_truth(root, subject):
    """Load what generated a toy-world subject's betas.

    A trial's betas in percent signal change (the int16 values / 300) are
    ``session_offset[s] + session_scale[s] * (features[image] @ weights.T +
    noise_sd * e)`` with ``e`` standard normal, ``s`` the trial's session, and
    ``image`` its 0-based 73k index; the voxels of ``bad_voxel_ijk`` instead
    hold ``session_offset`` alone throughout session ``bad_voxel_session``.

    Parameters
    ----------
    root : str or path-like
        Folder written by :func:`make_toy_nsd`.
    subject : str or int
        ``"subj01"`` or ``1``, among the world's subjects.

    Returns
    -------
    truth : Bunch
        Per trial of the released sessions, in session order:
        ``trial_images`` (0-based 73k index), ``trial_sessions`` (1-based).
        Per brain voxel (``n_vox``): ``voxel_ijk`` (n_vox, 3) indices into the
        volume, ``stream`` (``streams`` code, see :data:`STREAMS`),
        ``nsdgeneral`` (bool), ``noise_sd`` and ``signal_sd`` (percent signal
        change), ``weights`` (n_vox, n_features), ``prf_x``, ``prf_y``,
        ``prf_size`` (receptive field centre, right and down, and standard
        deviation, as fractions of the image side; NaN without one).
        ``session_offset`` and ``session_scale`` (n_released_sessions, n_vox).
        ``bad_voxel_ijk`` (n_bad, 3) and ``bad_voxel_session`` (1-based).
        Per image of the brick: ``features`` (n_images, n_features), each
        column standardised over the brick, named by ``feature_names`` and
        grouped by ``feature_groups`` (``"low_level"`` or ``"semantic"``), and
        ``attributes``, the scene attributes of
        :func:`brainldm.datasets.scenes.make_stimuli`. Also ``affine`` and
        ``volume_shape`` of the subject's volume, and ``subject``. The surface
        chain: ``fsaverage_native_vertex`` (2, n_fsaverage), each fsaverage vertex's
        0-based native vertex, and ``native_fsaverage5_vertex`` (2, n_native), the
        fsaverage5 vertex that each native vertex is, per hemisphere (left, right).

    Examples
    --------
    >>> import tempfile
    >>> from brainldm.datasets.toy import make_toy_nsd, load_toy_ground_truth
    >>> root = make_toy_nsd(
    ...     tempfile.mkdtemp() + "/nsd", n_sessions=4, n_released_sessions=3,
    ...     trials_per_session=15, n_shared=4, volume_shape=(12, 14, 12),
    ...     subjects=["subj01"], progress=False)
    >>> truth = load_toy_ground_truth(root, 1)
    >>> truth.weights.shape == (len(truth.voxel_ijk), len(truth.feature_names))
    True
    >>> int((truth.feature_groups == "semantic").sum())
    18
    """
    root = Path(root).expanduser()
    info = _read_marker(root)
    if info is None:
        raise FileNotFoundError(
            f"no toy world under root={str(root)!r} (no {_MARKER}); make one with make_toy_nsd(root)"
        )
    name = subject_name(subject)
    if name not in info["arguments"]["subjects"]:
        raise ValueError(
            f"subject={subject!r} is not in the toy world at {str(root)!r}; "
            f"it has {info['arguments']['subjects']}"
        )
    truth_dir = root / _TRUTH_DIR
    truth = Bunch(subject=name)
    for path in (
        truth_dir / f"{name}.npz",
        truth_dir / f"{name}_surface.npz",
        truth_dir / "stimuli.npz",
    ):
        with np.load(path) as arrays:
            truth.update({key: arrays[key] for key in arrays.files})
    with np.load(truth_dir / "attributes.npz") as arrays:
        truth.attributes = Bunch(**{key: arrays[key] for key in arrays.files})
    return truth


def _check_arguments(**arguments):
    arguments["seed"] = check_int(arguments["seed"], "seed", "make_toy_nsd")
    for name in ("n_sessions", "n_released_sessions", "trials_per_session", "n_shared"):
        arguments[name] = check_int(arguments[name], name, "make_toy_nsd", min_val=1)
    if arguments["n_released_sessions"] > arguments["n_sessions"]:
        raise ValueError(
            f"n_released_sessions={arguments['n_released_sessions']} exceeds "
            f"n_sessions={arguments['n_sessions']}; release at most the designed sessions"
        )
    n_trials = arguments["n_sessions"] * arguments["trials_per_session"]
    if n_trials % _REPETITIONS:
        raise ValueError(
            f"n_sessions * trials_per_session = {n_trials} is not a multiple of "
            f"{_REPETITIONS}: each image is shown {_REPETITIONS} times"
        )
    images_per_subject = n_trials // _REPETITIONS
    if arguments["n_shared"] >= images_per_subject:
        raise ValueError(
            f"n_shared={arguments['n_shared']} must be less than the "
            f"{images_per_subject} images each subject sees"
        )
    shape = np.ravel(arguments["volume_shape"])
    if shape.size != 3 or shape.min() < 12:
        raise ValueError(
            f"volume_shape must be 3 sides of at least 12 voxels, got {arguments['volume_shape']!r}"
        )
    arguments["volume_shape"] = [int(side) for side in shape]
    requested = arguments["subjects"]
    if isinstance(requested, (str, int, np.integer)):
        requested = [requested]
    try:
        subjects = [subject_name(subject) for subject in requested]
    except ValueError:
        subjects = None
    if not subjects or set(subjects) - set(SUBJECTS) or len(set(subjects)) != len(subjects):
        raise ValueError(
            f"subjects must be distinct names among {SUBJECTS}, got {arguments['subjects']!r}"
        )
    arguments["subjects"] = sorted(subjects)
    return arguments


def _read_marker(root):
    try:
        return json.loads((root / _MARKER).read_text())
    except (FileNotFoundError, NotADirectoryError):
        return None


def _same_world(info, arguments):
    return info.get("toy_world_version") == TOY_WORLD_VERSION and info.get("arguments") == arguments


def _publish(staging, root, arguments):
    """Rename the finished world into place, replacing an older toy world."""
    retired = None
    if _read_marker(root) is not None:
        retired = Path(tempfile.mkdtemp(prefix=f".{root.name}.old-", dir=root.parent))
        os.replace(root, retired / root.name)
    try:
        if root.exists():
            root.rmdir()
        os.replace(staging, root)
    except OSError:
        # Another process published the same world first.
        published = _read_marker(root)
        if published is None or not _same_world(published, arguments):
            raise
        shutil.rmtree(staging)
    if retired is not None:
        shutil.rmtree(retired)


def _write_world(folder, arguments, progress):
    subjects = arguments["subjects"]
    n_released = arguments["n_released_sessions"]
    with tqdm(
        total=2 + len(subjects) * (n_released + 1), desc="toy world", disable=not progress
    ) as bar:
        design = _make_design(arguments)
        stimuli = scenes.make_stimuli(design.n_images, seed=arguments["seed"])
        features, names, groups = _stimulus_features(stimuli)
        bar.update()
        _write_stimuli(folder, design, stimuli)
        truth_dir = folder / _TRUTH_DIR
        truth_dir.mkdir()
        np.savez_compressed(
            truth_dir / "stimuli.npz",
            features=features,
            feature_names=names,
            feature_groups=groups,
        )
        np.savez_compressed(truth_dir / "attributes.npz", **stimuli.attributes)
        _toy_surface.write_fsaverage_surfaces(folder)
        bar.update()
        for subject in subjects:
            _write_subject(folder, subject, arguments, design, features, groups, bar)
        info = dict(
            generator="brainldm.datasets.toy.make_toy_nsd",
            toy_world_version=TOY_WORLD_VERSION,
            brainldm_version=__version__,
            arguments=arguments,
            n_images=design.n_images,
            images_per_subject=design.images_per_subject,
            stimulus_fingerprint=scenes.stimulus_fingerprint(seed=arguments["seed"]),
            volume_shapes={s: _volume_shape(arguments, s) for s in subjects},
        )
        (folder / _MARKER).write_text(json.dumps(info, indent=2) + "\n")


def _make_design(arguments):
    """Draw NSD's design: which images each subject sees, in which order."""
    rng = np.random.default_rng([arguments["seed"], 0])
    tps = arguments["trials_per_session"]
    n_per = arguments["n_sessions"] * tps // _REPETITIONS
    n_shared = arguments["n_shared"]
    n_images = n_shared + _N_DESIGN_SUBJECTS * (n_per - n_shared)
    order = rng.permutation(n_images)
    shared = np.sort(order[:n_shared])
    own = order[n_shared:].reshape(_N_DESIGN_SUBJECTS, n_per - n_shared)
    subjectim = np.hstack([np.tile(shared, (_N_DESIGN_SUBJECTS, 1)), np.sort(own, axis=1)]) + 1
    masterordering = rng.permutation(np.repeat(np.arange(1, n_per + 1), _REPETITIONS))
    n_val = max(1, round(_VAL_FRACTION * n_images))
    split = np.full(n_images, "train2017", dtype=object)
    split[rng.choice(n_images, n_val, replace=False)] = "val2017"
    return Bunch(
        n_images=n_images,
        images_per_subject=n_per,
        masterordering=masterordering,
        subjectim=subjectim,
        sharedix=shared + 1,
        coco_id=rng.choice(np.arange(1, 600_000), n_images, replace=False),
        coco_split=split,
    )


def _stimulus_features(stimuli):
    """Standardised low-level (pooled channel maps) and semantic features per image."""
    images = resize(stimuli.images, _WORKING_SIZE).astype(np.float32)
    images /= 255.0
    red, green, blue = images[..., 0], images[..., 1], images[..., 2]
    luminance = 0.299 * red + 0.587 * green + 0.114 * blue
    d_row, d_col = np.gradient(luminance, axis=(1, 2))
    channels = np.stack(
        [luminance, red - green, blue - (red + green) / 2, np.hypot(d_row, d_col)], axis=1
    )
    cell = _WORKING_SIZE // _PRF_GRID
    n = len(images)
    pooled = channels.reshape(n, len(_CHANNELS), _PRF_GRID, cell, _PRF_GRID, cell).mean(axis=(3, 5))
    low = pooled.reshape(n, -1)
    low_names = [
        f"{c}_y{row}_x{col}"
        for c in _CHANNELS
        for row in range(_PRF_GRID)
        for col in range(_PRF_GRID)
    ]
    attrs = stimuli.attributes
    present = attrs.shape >= 0
    semantic = [
        [np.any((attrs.shape == k) & present, axis=1) for k in range(len(scenes.SHAPES))],
        [np.any((attrs.colour == k) & present, axis=1) for k in range(len(scenes.COLOURS))],
        [attrs.n_objects == k for k in (1, 2, 3)],
        [attrs.background_kind == k for k in range(len(scenes.BACKGROUND_KINDS))],
    ]
    semantic = np.stack([column for block in semantic for column in block], axis=1)
    semantic_names = (
        [f"shape_{s}" for s in scenes.SHAPES]
        + [f"colour_{c}" for c in scenes.COLOURS]
        + [f"n_objects_{k}" for k in (1, 2, 3)]
        + [f"background_{b}" for b in scenes.BACKGROUND_KINDS]
    )
    features = np.hstack([low, semantic]).astype(np.float64)
    features -= features.mean(axis=0)
    # A constant column (possible in tiny worlds) carries no signal; keep it at zero.
    sd = features.std(axis=0)
    features /= np.where(sd > 0, sd, 1.0)
    groups = ["low_level"] * low.shape[1] + ["semantic"] * semantic.shape[1]
    return features.astype(np.float32), np.array(low_names + semantic_names), np.array(groups)


def _write_stimuli(folder, design, stimuli):
    """Design file, stimulus info, image brick and COCO captions (shared by subjects)."""
    exp = folder / "nsddata" / "experiments" / "nsd"
    exp.mkdir(parents=True)
    scipy.io.savemat(
        exp / "nsd_expdesign.mat",
        dict(
            masterordering=design.masterordering[None, :].astype(np.int32),
            subjectim=design.subjectim.astype(np.int32),
            sharedix=design.sharedix[None, :].astype(np.int32),
        ),
    )
    columns = dict(
        cocoId=design.coco_id,
        cocoSplit=design.coco_split,
        cropBox=["(0, 0, 0, 0)"] * design.n_images,
        nsdId=np.arange(design.n_images),
        shared1000=np.isin(np.arange(design.n_images), design.sharedix - 1),
    )
    reps = {}
    for s in range(_N_DESIGN_SUBJECTS):
        images = design.subjectim[s, design.masterordering - 1] - 1
        seen = np.zeros(design.n_images, dtype=int)
        seen[images] = 1
        columns[f"subject{s + 1}"] = seen
        trial_of = np.zeros((design.n_images, _REPETITIONS), dtype=int)
        count = np.zeros(design.n_images, dtype=int)
        for trial, image in enumerate(images, start=1):
            trial_of[image, count[image]] = trial
            count[image] += 1
        for k in range(_REPETITIONS):
            reps[f"subject{s + 1}_rep{k}"] = trial_of[:, k]
    pd.DataFrame({**columns, **reps}).to_csv(exp / "nsd_stim_info_merged.csv")

    stim_dir = folder / "nsddata_stimuli" / "stimuli" / "nsd"
    (stim_dir / "annotations").mkdir(parents=True)
    with h5py.File(stim_dir / "nsd_stimuli.hdf5", "w") as f:
        f.create_dataset(
            "imgBrick",
            data=stimuli.images,
            chunks=(min(64, design.n_images), *stimuli.images.shape[1:]),
            compression="gzip",
            compression_opts=1,
            track_times=False,
        )
    size = stimuli.images.shape[1]
    for split in ("train2017", "val2017"):
        in_split = np.flatnonzero(design.coco_split == split)
        annotations = [
            dict(image_id=int(design.coco_id[i]), caption=caption)
            for i in in_split
            for caption in stimuli.captions[i]
        ]
        # COCO's files are not ordered by image; readers must match by id.
        order = np.random.default_rng(len(annotations)).permutation(len(annotations))
        coco = dict(
            info=dict(description="brainldm toy world captions, in COCO's format"),
            licenses=[],
            images=[
                dict(
                    id=int(design.coco_id[i]),
                    file_name=f"{int(design.coco_id[i]):012d}.jpg",
                    height=size,
                    width=size,
                )
                for i in in_split
            ],
            annotations=[dict(annotations[j], id=n + 1) for n, j in enumerate(order)],
        )
        (stim_dir / "annotations" / f"captions_{split}.json").write_text(json.dumps(coco))


def _volume_shape(arguments, subject):
    return [
        int(s + d) for s, d in zip(arguments["volume_shape"], _SHAPE_DELTA[subject], strict=True)
    ]


def _affine(shape):
    affine = np.diag([_VOXEL_MM, _VOXEL_MM, _VOXEL_MM, 1.0])
    affine[:3, 3] = -_VOXEL_MM * (np.asarray(shape) - 1) / 2
    return affine


def _save_nifti(data, affine, path):
    image = nib.Nifti1Image(data, affine)
    image.header.set_xyzt_units("mm", "sec")
    image.to_filename(path)


def _make_brain(shape):
    """Brain mask, ``nsdgeneral`` and ``streams`` volumes (-1 outside the brain)."""
    u, v, w = np.meshgrid(*[(np.arange(n) + 0.5) / n for n in shape], indexing="ij")
    # u: left to right, v: posterior to anterior, w: inferior to superior.
    brain = ((u - 0.5) / 0.47) ** 4 + ((v - 0.5) / 0.47) ** 4 + ((w - 0.5) / 0.45) ** 4 <= 1
    general = brain & (v < 0.42)
    mid = (v >= 0.15) & (v < 0.22)
    high = v >= 0.22
    lower, upper = w < 0.4, w > 0.6
    streams = np.zeros(shape, dtype=np.int16)
    streams[v < 0.15] = 1
    streams[mid & lower] = 2
    streams[mid & ~lower & ~upper] = 3
    streams[mid & upper] = 4
    streams[high & lower] = 5
    streams[high & ~lower & ~upper & (np.abs(u - 0.5) > 0.25)] = 6
    streams[high & upper] = 7
    streams[~general] = 0
    streams[~brain] = -1
    nsdgeneral = np.where(brain, general, -1).astype(np.int16)
    return brain, nsdgeneral, streams, np.stack([u, v, w], axis=-1)


def _write_anatomy(func_dir, brain, coords, affine):
    """NSD's ``brainmask`` and an anatomical-looking ``T1_to_func1pt8mm`` volume.

    The T1 is a smooth, deterministic image (no random draw, so the betas do not
    depend on it): white matter brighter than the cortex around it, dark
    ventricles near the centre, and a faint background outside the brain.
    """
    u, v, w = np.moveaxis(coords, -1, 0)
    depth = 1 - (((u - 0.5) / 0.47) ** 4 + ((v - 0.5) / 0.47) ** 4 + ((w - 0.5) / 0.45) ** 4)
    ventricles = np.exp(
        -(((u - 0.5) / 0.08) ** 2 + ((v - 0.55) / 0.2) ** 2 + ((w - 0.55) / 0.1) ** 2)
    )
    tissue = 500 + 400 * np.clip(depth / 0.5, 0, 1) ** 0.7 - 600 * ventricles
    t1 = scipy.ndimage.gaussian_filter(np.where(brain, tissue, 40.0), sigma=0.8)
    _save_nifti(brain.astype(np.uint8), affine, func_dir / "brainmask.nii.gz")
    _save_nifti(t1.astype(np.float32), affine, func_dir / "T1_to_func1pt8mm.nii.gz")


def _prf_weights(x, y, size):
    """Fraction of each Gaussian receptive field that falls in each grid cell."""
    edges = np.linspace(0.0, 1.0, _PRF_GRID + 1)

    def mass(centre):
        cdf = ndtr((edges[None, :] - centre[:, None]) / size[:, None])
        return np.diff(cdf, axis=1)

    cells = mass(y)[:, :, None] * mass(x)[:, None, :]
    cells[cells < 1e-4] = 0.0
    return cells.reshape(len(x), -1)


def _span(a):
    """Map values linearly onto [0.05, 0.95]."""
    return 0.05 + 0.9 * (a - a.min()) / max(np.ptp(a), 1e-9)


def _signal_sd(weights, covariance):
    """Standard deviation of ``features @ weights.T`` per voxel."""
    return np.sqrt(np.maximum(((weights @ covariance) * weights).sum(axis=1), 0.0))


def _safe_ratio(numerator, denominator):
    """``numerator / denominator``, and 0 where the denominator is 0."""
    return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1.0), 0.0)


def _make_tuning(stream, coords, features, groups, rng):
    """Per-voxel weights, signal sd and receptive fields, from the voxels' streams."""
    n_vox = len(stream)
    low = groups == "low_level"
    n_sem = int((~low).sum())
    amplitude = np.zeros(n_vox)
    low_share = np.zeros(n_vox)
    for code, (amp, share) in _STREAM_TUNING.items():
        amplitude[stream == code] = amp
        low_share[stream == code] = share
    in_general = stream >= 0
    amplitude *= np.exp(rng.normal(0.0, 0.15, n_vox))

    # Early cortex is retinotopic: receptive fields follow the voxel's place;
    # elsewhere they are large and scattered.
    prf_x = np.full(n_vox, np.nan)
    prf_y = np.full(n_vox, np.nan)
    prf_size = np.full(n_vox, np.nan)
    with_prf = in_general & (low_share > 0)
    prf_x[with_prf] = rng.uniform(0.1, 0.9, with_prf.sum())
    prf_y[with_prf] = rng.uniform(0.1, 0.9, with_prf.sum())
    prf_size[with_prf] = rng.uniform(0.12, 0.3, with_prf.sum())
    early = stream == 1
    if early.any():
        u, w = (_span(coords[early, axis]) for axis in (0, 2))
        # The left visual field maps to the right hemisphere.
        prf_x[early] = np.clip(1 - u + rng.normal(0, 0.04, early.sum()), 0.02, 0.98)
        prf_y[early] = np.clip(w + rng.normal(0, 0.04, early.sum()), 0.02, 0.98)
        eccentricity = np.hypot(prf_x[early] - 0.5, prf_y[early] - 0.5)
        prf_size[early] = 0.03 + 0.15 * eccentricity + rng.uniform(0, 0.02, early.sum())

    weights = np.zeros((n_vox, features.shape[1]))
    idx = np.flatnonzero(with_prf)
    channel = rng.normal(size=(len(idx), len(_CHANNELS))) * _CHANNEL_SCALE
    cells = _prf_weights(prf_x[idx], prf_y[idx], prf_size[idx])
    weights[np.ix_(idx, np.flatnonzero(low))] = (channel[:, :, None] * cells[:, None, :]).reshape(
        len(idx), -1
    )

    # Semantic tuning is patchy: neighbouring voxels share a prototype.
    with_sem = in_general & (low_share < 1)
    idx = np.flatnonzero(with_sem)
    if len(idx):
        n_patches = min(8, len(idx))
        prototypes = rng.normal(size=(n_patches, n_sem)) * (rng.random((n_patches, n_sem)) < 0.4)
        centres = coords[rng.choice(idx, n_patches, replace=False)]
        nearest = np.argmin(
            ((coords[idx, None, :] - centres[None, :, :]) ** 2).sum(axis=-1), axis=1
        )
        weights[np.ix_(idx, np.flatnonzero(~low))] = prototypes[nearest] + 0.5 * rng.normal(
            size=(len(idx), n_sem)
        )

    covariance = np.cov(features, rowvar=False)
    for group, share in ((low, low_share), (~low, 1 - low_share)):
        block = weights[:, group]
        sd = _signal_sd(block, covariance[np.ix_(group, group)])
        weights[:, group] = block * _safe_ratio(np.sqrt(share), sd)[:, None]
    weights *= _safe_ratio(amplitude, _signal_sd(weights, covariance))[:, None]
    signal_sd = _signal_sd(weights, covariance)
    return weights.astype(np.float32), signal_sd, prf_x, prf_y, prf_size


def _write_subject(folder, subject, arguments, design, features, groups, bar):
    number = int(subject[4:])
    rng = np.random.default_rng([arguments["seed"], 1, number])
    shape = _volume_shape(arguments, subject)
    affine = _affine(shape)
    brain, nsdgeneral, streams, coords = _make_brain(shape)
    ijk = np.argwhere(brain)
    index = tuple(ijk.T)
    stream = np.where(nsdgeneral[index] == 1, streams[index], -1)
    weights, signal_sd, prf_x, prf_y, prf_size = _make_tuning(
        stream, coords[index], features, groups, rng
    )
    n_vox = len(ijk)
    noise_sd = _NOISE_SD * _NOISE_FACTOR[subject] * np.exp(rng.normal(0.0, 0.15, n_vox))
    n_released = arguments["n_released_sessions"]
    baseline = rng.normal(1.0, 0.7, n_vox)
    session_offset = baseline + rng.normal(0.0, 0.5, (n_released, n_vox))
    session_scale = np.exp(rng.normal(0.0, 0.15, (n_released, n_vox)))
    noise_sd, session_offset, session_scale = (
        a.astype(np.float32) for a in (noise_sd, session_offset, session_scale)
    )
    candidates = np.flatnonzero(np.isin(stream, (1, 5)))
    bad = rng.choice(candidates, min(_N_BAD_VOXELS, len(candidates)), replace=False)
    bad_session = rng.integers(n_released, size=len(bad))

    roi_dir = folder / "nsddata" / "ppdata" / subject / "func1pt8mm" / "roi"
    roi_dir.mkdir(parents=True)
    _save_nifti(streams, affine, roi_dir / "streams.nii.gz")
    _save_nifti(nsdgeneral, affine, roi_dir / "nsdgeneral.nii.gz")
    _write_anatomy(roi_dir.parent, brain, coords, affine)
    to_surface = _write_surfaces(
        folder, subject, arguments, affine, dict(streams=streams, nsdgeneral=nsdgeneral)
    )

    # Trials are drawn with their own generator so that the brain of a subject
    # does not depend on how many sessions are released.
    trial_rng = np.random.default_rng([arguments["seed"], 2, number])
    tps = arguments["trials_per_session"]
    images_10k = design.masterordering[: n_released * tps] - 1
    signal = features[design.subjectim[number - 1] - 1] @ weights.T
    betas_dir = (
        folder / "nsddata_betas" / "ppdata" / subject / "func1pt8mm" / "betas_fithrf_GLMdenoise_RR"
    )
    betas_dir.mkdir(parents=True)
    # NSD's ncsnr: signal sd over noise sd of the betas. Session offsets and scales
    # cancel in it, as they do once betas are z-scored within each session.
    ncsnr = np.zeros(shape, dtype=np.float32)
    ncsnr[index] = signal_sd / noise_sd
    _save_nifti(ncsnr, affine, betas_dir / "ncsnr.nii.gz")
    to_surface(ncsnr[index], "ncsnr.mgh")
    flat = np.ravel_multi_index(index[::-1], shape[::-1])
    for s in range(n_released):
        trials = images_10k[s * tps : (s + 1) * tps]
        noise = trial_rng.standard_normal((tps, n_vox), dtype=np.float32) * noise_sd
        percent = session_offset[s] + session_scale[s] * (signal[trials] + noise)
        stuck = bad[bad_session == s]
        percent[:, stuck] = session_offset[s, stuck]
        volume = np.zeros((tps, *shape[::-1]), dtype=np.int16)
        volume.reshape(tps, -1)[:, flat] = np.clip(
            np.rint(percent * _BETA_UNITS), np.iinfo(np.int16).min, np.iinfo(np.int16).max
        )
        # (trial, z, y, x) in C order is NIfTI's (x, y, z, trial) in Fortran order.
        _save_nifti(
            volume.transpose(3, 2, 1, 0), affine, betas_dir / f"betas_session{s + 1:02d}.nii.gz"
        )
        to_surface(volume.reshape(tps, -1)[:, flat] / _BETA_UNITS, f"betas_session{s + 1:02d}.mgh")
        bar.update()

    _write_responses(folder, subject, design, n_released, tps, trial_rng)
    np.savez_compressed(
        folder / _TRUTH_DIR / f"{subject}.npz",
        trial_images=design.subjectim[number - 1, images_10k] - 1,
        trial_sessions=np.repeat(np.arange(1, n_released + 1), tps),
        voxel_ijk=ijk,
        stream=np.maximum(stream, 0).astype(np.int16),
        nsdgeneral=stream >= 0,
        noise_sd=noise_sd,
        signal_sd=signal_sd,
        weights=weights,
        prf_x=prf_x,
        prf_y=prf_y,
        prf_size=prf_size,
        session_offset=session_offset,
        session_scale=session_scale,
        bad_voxel_ijk=ijk[bad],
        bad_voxel_session=bad_session + 1,
        affine=affine,
        volume_shape=np.array(shape),
    )
    bar.update()


def _write_surfaces(folder, subject, arguments, affine, rois):
    """A subject's surfaces and transforms, and fsaverage labels for the world's first
    subject; returns ``to_surface(values, name)``, which writes per-voxel values (of the
    brain mask's voxels) mapped to fsaverage as ``{lh,rh}.<name>`` beside the betas."""
    number = int(subject[4:])
    # The surfaces draw from a generator of their own: what versions before 4 wrote stays.
    rng = np.random.default_rng([arguments["seed"], 3, number])
    shape = _volume_shape(arguments, subject)
    layers, fsaverage_native, native_fsaverage5 = _toy_surface.write_subject_surfaces(
        folder, subject, shape, affine, rng
    )
    if subject == arguments["subjects"][0]:
        _toy_surface.write_fsaverage_labels(folder, layers, fsaverage_native, rois)
    label_dir = folder / "nsddata" / "freesurfer" / "fsaverage" / "label"
    (label_dir / "streams.mgz.ctab").write_text(
        "".join(f"{code} {name}\n" for code, name in enumerate(STREAMS))
    )
    (label_dir / "nsdgeneral.mgz.ctab").write_text("0 Unknown\n1 nsdgeneral\n")
    np.savez_compressed(
        folder / _TRUTH_DIR / f"{subject}_surface.npz",
        fsaverage_native_vertex=fsaverage_native,
        native_fsaverage5_vertex=native_fsaverage5,
    )
    brain = nib.load(folder / "nsddata" / "ppdata" / subject / "func1pt8mm" / "brainmask.nii.gz")
    mapper = NSDSurfaceMapper(
        folder, subject, np.asarray(brain.dataobj) > 0, interpolation="linear"
    )
    mapper.fit()
    out = folder / "nsddata_betas" / "ppdata" / subject / "fsaverage" / "betas_fithrf_GLMdenoise_RR"
    out.mkdir(parents=True)

    def to_surface(values, name):
        mapped = mapper.transform(np.asarray(values, dtype=np.float64)).astype(np.float32)
        _toy_surface.write_fsaverage_series(
            lambda hemi: out / f"{hemi}.{name}", mapped, mapper.n_vertices_[0]
        )

    return to_surface


def _write_responses(folder, subject, design, n_released, tps, rng):
    """NSD's behavioural file: one row per trial of the released sessions."""
    number = int(subject[4:])
    n_trials = n_released * tps
    images_10k = design.masterordering[:n_trials]
    first = np.zeros(n_trials, dtype=bool)
    _, first_index = np.unique(design.masterordering, return_index=True)
    first[first_index[first_index < n_trials]] = True
    runs = np.concatenate(
        [
            np.full(len(chunk), r + 1)
            for r, chunk in enumerate(np.array_split(np.arange(tps), _RUNS_PER_SESSION))
        ]
    )
    trial_in_run = np.concatenate(
        [
            np.arange(1, len(chunk) + 1)
            for chunk in np.array_split(np.arange(tps), _RUNS_PER_SESSION)
        ]
    )
    missing = rng.random(n_trials) < 0.01
    correct = (rng.random(n_trials) < 0.85).astype(float)
    rt = np.exp(rng.normal(np.log(0.9), 0.3, n_trials))
    correct[missing] = np.nan
    rt[missing] = np.nan
    table = pd.DataFrame(
        {
            "SUBJECT": number,
            "SESSION": np.repeat(np.arange(1, n_released + 1), tps),
            "RUN": np.tile(runs, n_released),
            "TRIAL": np.tile(trial_in_run, n_released),
            "ISOLD": (~first).astype(int),
            "ISCORRECT": correct,
            "RT": rt,
            "MISSINGDATA": missing.astype(int),
            "73KID": design.subjectim[number - 1, images_10k - 1],
            "10KID": images_10k,
        }
    )
    behav = folder / "nsddata" / "ppdata" / subject / "behav"
    behav.mkdir(parents=True)
    table.to_csv(behav / "responses.tsv", sep="\t", index=False)
