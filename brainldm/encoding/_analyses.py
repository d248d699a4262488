"""The paper's four encoding analyses (Takagi & Nishimoto 2023, Figures 6-9), resumable.

Each analysis takes arrays: the betas (train rows, test rows), the feature spaces
(one row per image, with each beta row's position among them), the training
images as groups, the ROI masks and an optional masker for maps. It fits
voxelwise models one chunk of voxels at a time; with ``memory``, every PCA,
finished chunk and finished analysis is saved there (:mod:`brainldm._cache`) and
reused when found. :func:`run_encoding_analyses` builds those arrays from a
:func:`~brainldm.datasets.nsd.load_nsd` subject and the features of
:func:`encoding_features` (one denoising pass per img2img strength).
"""

import time
from numbers import Integral

import numpy as np
from sklearn.utils import Bunch
from tqdm.auto import tqdm

from brainldm._cache import Cache, check_cache, digest
from brainldm._docs import fill_doc
from brainldm._validation import (
    Interval,
    Options,
    check_int,
    check_number,
    check_options,
    check_parameter,
)
from brainldm.encoding._partition import BandedVariancePartitioner, check_dual_on_cpu
from brainldm.encoding._statistics import significance
from brainldm.encoding._voxelwise import VoxelwiseEncoder
from brainldm.features.reduction import FeatureReducer
from brainldm.maps import to_nifti
from brainldm.metrics.statistics import bootstrap_se, summarize_paired

__all__ = [
    "ANALYSES",
    "check_encoding_settings",
    "choose_pool_size",
    "denoising_stages",
    "encoding_features",
    "noise_levels",
    "representations",
    "run_encoding_analyses",
    "unet_layers",
]

#: The four analyses, in the order of the paper's Figures 6-9.
ANALYSES = ("representations", "noise_levels", "denoising_stages", "unet_layers")


def _strength_name(strength):
    return f"{float(strength):.2f}"


def _check_strengths(strengths, caller, name="strengths"):
    """Img2img strengths (noise levels), each in (0, 1], as a tuple of floats."""
    if np.ndim(strengths) == 0:
        return (check_number(strengths, name, caller, min_val=0, max_val=1, closed="right"),)
    if len(strengths) == 0:
        raise ValueError(f"{name} of {caller} must name at least one strength, got none")
    return tuple(
        check_number(s, f"{name}[{k}]", caller, min_val=0, max_val=1, closed="right")
        for k, s in enumerate(strengths)
    )


def check_analyses(analyses):
    """The analysis names, checked: a tuple in :data:`ANALYSES` order."""
    if isinstance(analyses, str):
        analyses = (analyses,)
    analyses = list(analyses)
    unknown = [name for name in analyses if name not in ANALYSES]
    if unknown or not analyses:
        raise ValueError(f"analyses must be among {list(ANALYSES)}, got {analyses}")
    return tuple(name for name in ANALYSES if name in analyses)


# The folds of the paper's fits; cv="loo" leaves the partitions at these.
DEFAULT_CV = 5
# How the partitions' banded ridge may be solved (BandedVariancePartitioner's solver).
SOLVERS = ("primal", "dual", "auto")


def _check_cv(cv, caller):
    """``cv``: an int of folds (at least 2) or ``"loo"``; an int comes back as a Python int."""
    cv = check_parameter(cv, "cv", caller, Interval(Integral, 2, None), Options(("loo",)))
    return cv if isinstance(cv, str) else int(cv)


def _check_solver(solver, device, caller):
    """``solver`` of the partitions, refusing ``"dual"`` on a GPU before any work."""
    solver = check_options(solver, "solver", caller, SOLVERS)
    check_dual_on_cpu(solver, device, caller)
    return solver


def _check_loo_groups(cv, groups, caller):
    """Refuse ``cv="loo"`` for encoders on repeated images before any work (the fit would)."""
    if cv == "loo" and groups is not None and len(np.unique(groups)) < len(groups):
        raise ValueError(
            f"{caller}: cv='loo' leaves out one row at a time, but the training rows repeat "
            "images (groups): average each image's trials into one row "
            "(load_nsd(..., average_train=True)) or use cv=5"
        )


def choose_pool_size(output_shapes, n_components, native_sizes=None):
    """The pooling grid of the U-Net layer analysis: the smallest keeping ``n_components`` values.

    Pooling each channel to ``p`` x ``p`` leaves ``channels * p**2`` values per
    layer; the grid is the smallest ``p`` that leaves at least
    ``n_components`` (the PCA size) for every layer, capped at the largest
    native side given (pooling above a layer's own resolution only repeats
    its values). 2 x 2 would keep four positions, too few for the
    retinotopy that early voxels carry (docs/encoding_analyses.md gives the
    measurement).

    Parameters
    ----------
    output_shapes : dict of str to tuple
        Layer -> (channels, ...), e.g. ``sd.unet_output_shapes(layers, 1)``.
    n_components : int
        Values wanted per layer: the PCA size actually kept (capped at the
        training images).
    native_sizes : dict of str to int, optional
        Layer -> side of its activation map, capping the grid.

    Returns
    -------
    pool_size : int

    Examples
    --------
    >>> from brainldm.encoding import choose_pool_size
    >>> shapes = {"down_blocks.0": (32, 1, 1), "mid_block": (64, 1, 1)}
    >>> choose_pool_size(shapes, 950)
    6
    >>> choose_pool_size(shapes, 950, native_sizes={"down_blocks.0": 8, "mid_block": 4})
    6
    >>> choose_pool_size({"down_blocks.0": (320, 1, 1), "mid_block": (1280, 1, 1)}, 6400)
    5
    """
    n_components = check_int(n_components, "n_components", "choose_pool_size", min_val=1)
    channels = min(int(shape[0]) for shape in output_shapes.values())
    pool = int(np.ceil(np.sqrt(n_components / channels)))
    if native_sizes:
        pool = min(pool, max(int(side) for side in native_sizes.values()))
    return max(pool, 1)


def _feature_settings(sd, strengths, steps, stage_strength, read_steps, layers, pool_size, **rest):
    """The checked settings of :func:`encoding_features`, before any work."""
    strengths = _check_strengths(strengths, "encoding_features")
    (stage_strength,) = _check_strengths(stage_strength, "encoding_features", "stage_strength")
    steps = check_int(steps, "steps", "encoding_features", min_val=1)
    layers = tuple(sd.default_layers if layers is None else layers)
    shapes = sd.unet_output_shapes(layers, 1) if layers else {}
    if read_steps is None or isinstance(read_steps, (str, int, np.integer)):
        read_steps = ("early", "middle", "late") if read_steps is None else (read_steps,)
    read_steps = tuple(read_steps)
    # Resolving the read steps now raises on steps outside the chain before any denoising.
    sd.read_step_indices(read_steps, steps, stage_strength)
    for strength in strengths:
        sd.read_step_indices("late", steps, strength)
    if pool_size != "auto":
        pool_size = check_int(pool_size, "pool_size", "encoding_features", min_val=1)
    return dict(
        rest,
        strengths=strengths,
        steps=steps,
        stage_strength=stage_strength,
        read_steps=read_steps,
        layers=layers,
        shapes=shapes,
        pool_size=pool_size,
    )


def encoding_features(
    data,
    model="toy",
    *,
    strengths=(0.2, 0.4, 0.6, 0.8),
    steps=25,
    stage_strength=0.8,
    read_steps=("early", "middle", "late"),
    layers=None,
    pool_size="auto",
    n_components=6400,
    guidance=5.0,
    random_state=42,
    batch_size=16,
    memory=None,
    progress=False,
):
    """The features of the four analyses for a subject's images, one denoising pass per strength.

    :func:`~brainldm.features.denoising_features` of every train and test
    image of ``data`` (each once, in 73k-id order): ``z``, ``c``, ``z_c`` at
    the end of the img2img chain from each of ``strengths`` and, along the
    chain from ``stage_strength``, ``z_c`` and the pooled activations of
    ``layers`` at each of ``read_steps``; with each data row's position among
    the images, which the analyses take as ``rows_train`` and ``rows_test``.

    Parameters
    ----------
    data : Bunch
        A subject from :func:`~brainldm.datasets.nsd.load_nsd`: ``images_train``,
        ``images_test``, ``stimuli`` and ``captions`` are used.
    model : str, path-like or StableDiffusion, default="toy"
        The latent diffusion model (:func:`brainldm.features.load_ldm`).
    strengths : sequence of float in (0, 1], default=(0.2, 0.4, 0.6, 0.8)
        img2img noise levels of the noise-level analysis.
    steps : int, default=25
        Steps of the full DDIM schedule (the paper: 50; 25 halves the time and,
        on the toy world, changes no conclusion).
    stage_strength : float in (0, 1], default=0.8
        The chain read at ``read_steps``.
    read_steps : sequence of str or int, default=("early", "middle", "late")
        As in :meth:`StableDiffusion.denoise <brainldm.diffusion.StableDiffusion.denoise>`.
    layers : sequence of str, default=None
        U-Net modules (paths of ``unet.named_modules()``); None is the model's
        :attr:`~brainldm.diffusion.StableDiffusion.default_layers`; ``()`` reads none.
    pool_size : int or "auto", default="auto"
        Side of the grid activations are pooled to; "auto" is
        :func:`choose_pool_size` for ``n_components`` (capped at the training images).
    n_components : int, default=6400
        The PCA size of the encoders, which "auto" pooling keeps per layer.
    guidance : float, default=5.0
        Classifier-free guidance scale.
    random_state : int, default=42
        Seed of the img2img noise; each image's generator is seeded from it
        and the image's 73k id.
    batch_size : int, default=16
        Images denoised at once.
    memory : None, str, path-like or joblib.Memory, default=None
        Cache location where each piece (``z`` and ``c``, each strength's
        pass) is saved atomically and reused.
    progress : bool, default=False
        Show progress bars.

    Returns
    -------
    features : Bunch
        ``images`` (sorted 73k ids), ``rows_train`` and ``rows_test`` (each
        data row's position among them), ``z``, ``c`` (n_images, n_features)
        float32, ``zc`` (strength -> array), ``stages`` (read step -> z_c of
        the ``stage_strength`` chain), ``layers`` ((layer, read step) ->
        pooled activations), ``read_steps``, ``layer_names``, ``pool_size``
        and ``strengths``.

    Raises
    ------
    ValueError
        Before any work: a strength outside (0, 1], a layer the U-Net does
        not have (the message lists its blocks), a read step outside the chain.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.utils import Bunch
    >>> from brainldm.datasets.scenes import make_stimuli
    >>> from brainldm.encoding import encoding_features
    >>> scenes = make_stimuli(6, seed=0)
    >>> data = Bunch(images_train=np.arange(4), images_test=np.arange(4, 6),
    ...              stimuli=scenes.images, captions=scenes.captions)
    >>> features = encoding_features(data, strengths=[0.5, 1.0], steps=4, layers=["mid_block"],
    ...                              pool_size=2)
    >>> features.z.shape, features.zc[0.5].shape, sorted(features.stages)
    ((6, 1024), (6, 1024), ['early', 'late', 'middle'])
    >>> features.layers["mid_block", "early"].shape
    (6, 256)
    >>> encoding_features(data, strengths=[1.5])
    Traceback (most recent call last):
    ...
    brainldm._validation.InvalidParameterError: The 'strengths[0]' parameter of encoding_features must be a float in the range (0.0, 1.0]. Got 1.5 instead.
    """
    from brainldm.features import denoising_features, load_ldm

    sd = load_ldm(model)
    settings = _feature_settings(
        sd,
        strengths,
        steps,
        stage_strength,
        read_steps,
        layers,
        pool_size,
        batch_size=check_int(batch_size, "batch_size", "encoding_features", min_val=1),
    )
    images = np.unique(np.concatenate([data.images_train, data.images_test]))
    rows_train = np.searchsorted(images, data.images_train)
    if settings["pool_size"] == "auto":
        n_keep = min(n_components, len(np.unique(rows_train)))
        settings["pool_size"] = (
            choose_pool_size(settings["shapes"], n_keep) if settings["shapes"] else 1
        )
    stimuli = (
        data.stimuli[images]
        if hasattr(data.stimuli, "shape")
        else [data.stimuli[i] for i in images]
    )
    features = denoising_features(
        stimuli,
        [data.captions[i] for i in images],
        sd,
        strengths=settings["strengths"],
        steps=settings["steps"],
        stage_strength=settings["stage_strength"],
        read_steps=settings["read_steps"],
        layers=settings["layers"],
        pool_size=settings["pool_size"],
        guidance=guidance,
        random_state=random_state,
        image_ids=images,
        batch_size=settings["batch_size"],
        memory=memory,
        progress=progress,
    )
    features.update(
        images=images,
        rows_train=rows_train,
        rows_test=np.searchsorted(images, data.images_test),
        strengths=settings["strengths"],
        layer_names=settings["layers"],
        pool_size=settings["pool_size"],
        stage_strength=settings["stage_strength"],
    )
    return features


def _check_inputs(X_train, X_test, groups, rows_train, rows_test, caller):
    """The row indices into the feature spaces, after checking the arrays agree."""
    if np.ndim(X_train) != 2 or np.ndim(X_test) != 2 or X_train.shape[1] != X_test.shape[1]:
        raise ValueError(
            f"{caller}: X_train and X_test must be 2-D with the same voxels, got shapes "
            f"{np.shape(X_train)} and {np.shape(X_test)}"
        )
    rows_train = np.arange(len(X_train)) if rows_train is None else np.asarray(rows_train)
    rows_test = (
        len(X_train) + np.arange(len(X_test)) if rows_test is None else np.asarray(rows_test)
    )
    for name, rows, X in (("rows_train", rows_train, X_train), ("groups", groups, X_train)):
        if rows is not None and len(rows) != len(X):
            raise ValueError(
                f"{caller}: {name} must have one entry per row of X_train ({len(X)}), "
                f"got {len(rows)}"
            )
    if len(rows_test) != len(X_test):
        raise ValueError(
            f"{caller}: rows_test must have one entry per row of X_test ({len(X_test)}), "
            f"got {len(rows_test)}"
        )
    return rows_train, rows_test


def _inputs(caller, X_train, X_test, groups, rows_train, rows_test, roi_masks, masker, **options):
    """The checked arrays and fitting options of an analysis, with its cache."""
    rows_train, rows_test = _check_inputs(X_train, X_test, groups, rows_train, rows_test, caller)
    cache = check_cache(options.pop("memory"))
    groups = None if groups is None else np.asarray(groups)
    first = rows_train if groups is None else rows_train[np.unique(groups, return_index=True)[1]]
    inputs = Bunch(
        **options,
        X_train=X_train,
        X_test=X_test,
        groups=groups,
        rows_train=rows_train,
        rows_test=rows_test,
        # The PCA is fitted on one row per training image.
        rows_fit=np.unique(first),
        masks={name: np.asarray(mask, bool) for name, mask in (roi_masks or {}).items()},
        masker=masker,
        cache=cache,
    )
    inputs.n_components = check_int(inputs.n_components, "n_components", caller, min_val=1)
    inputs.chunk_size = check_int(inputs.chunk_size, "chunk_size", caller, min_val=1)
    inputs.cv = _check_cv(inputs.cv, caller)
    if "n_iter" in inputs:
        inputs.n_iter = check_int(inputs.n_iter, "n_iter", caller, min_val=1)
        inputs.solver_params = dict(inputs.solver_params or {})
        inputs.solver = _check_solver(inputs.solver, inputs.device, caller)
        # The partitions' leave-one-out would not pay (scoring costs 2 n^2 per alpha and
        # voxel): they keep K folds, and share their cache entries with cv=5.
        inputs.cv = DEFAULT_CV if inputs.cv == "loo" else inputs.cv
    else:
        _check_loo_groups(inputs.cv, groups, caller)
    # What identifies the data in cache names: its shape, test betas and rows (the training
    # betas are not hashed: a whole brain's single trials would take long to read).
    inputs.data_key = digest(
        list(np.shape(X_train)),
        np.asarray(X_test, dtype=np.float32),
        rows_train,
        rows_test,
        groups,
    )
    return inputs


def _analysis_inputs(caller, arguments):
    """The inputs of an analysis from its arguments (its ``locals()``)."""
    names = ("X_train", "X_test", "groups", "rows_train", "rows_test", "roi_masks", "masker")
    options = ("n_iter", "solver_params", "n_components", "chunk_size", "device", "distributed")
    options += ("cv", "solver", "memory", "progress")
    return _inputs(
        caller,
        *(arguments[name] for name in names),
        **{name: arguments[name] for name in options if name in arguments},
    )


def _scores(inputs, array, key):
    """PCA scores (every row) of one feature space, fitted on the training images; cached.

    Named by what the scores depend on alone (the features, the rows the PCA is fitted
    on, its size), so that every analysis shares them.
    """

    def compute():
        reducer = FeatureReducer(inputs.n_components, progress=inputs.progress)
        reducer.fit(array[inputs.rows_fit])
        return {"scores": np.asarray(reducer.transform(array), dtype=np.float32)}

    return inputs.cache.arrays("pca", [inputs.n_components, key, inputs.rows_fit], compute)[
        "scores"
    ]


def _chunked(folder, inputs, fit_chunk, desc):
    """``fit_chunk(columns)`` over chunks of voxels, each saved under ``folder``; joined.

    Chunks are named by the voxels they hold, so a finished analysis is found again
    whatever ``chunk_size`` asks for it.
    """
    n_voxels = inputs.X_test.shape[1]
    starts = range(0, n_voxels, inputs.chunk_size)
    parts = []
    for start in tqdm(starts, desc=desc, disable=not inputs.progress, leave=False):
        columns = slice(start, min(start + inputs.chunk_size, n_voxels))
        path = None if folder is None else folder / f"voxels-{columns.start}-{columns.stop}.npz"
        parts.append(Cache.load_or_compute(path, lambda columns=columns: fit_chunk(columns)))
    return {key: np.concatenate([part[key] for part in parts], axis=-1) for key in parts[0]}


def _finish(inputs, name, parts, compute):
    """An analysis's arrays, saved whole once finished and reused on rerun.

    The key holds what the results depend on: not ``chunk_size``, ``device`` nor
    ``progress``, so runs that differ only in those share the entry. ``cv`` and
    ``solver`` join it only away from their defaults, so that the default fit keeps
    the entries it always had.
    """
    keep = {k: inputs.get(k) for k in ("n_components", "solver_params", "n_iter")}
    for name, default in (("cv", DEFAULT_CV), ("solver", "primal")):
        if inputs.get(name, default) != default:
            keep[name] = inputs[name]
    folder = inputs.cache.folder(name, [keep, inputs.data_key, *parts])
    path = None if folder is None else folder / "result.npz"
    return Cache.load_or_compute(path, lambda: compute(folder))


def _encoder_r(inputs, label, array, key, folder):
    """Held-out r per voxel of a VoxelwiseEncoder on one feature space, chunk by chunk."""
    scores = _scores(inputs, array, key)

    def fit_chunk(columns):
        # The features are PCA scores already: neither reduced nor z-scored again.
        encoder = VoxelwiseEncoder(
            cv=inputs.cv,
            n_components=None,
            standardize=False,
            device=inputs.device,
            distributed=inputs.distributed,
        )
        encoder.fit(scores[inputs.rows_train], inputs.X_train[:, columns], groups=inputs.groups)
        return {"r": encoder.score_voxels(scores[inputs.rows_test], inputs.X_test[:, columns])}

    sub = None if folder is None else folder / label
    return _chunked(sub, inputs, fit_chunk, f"encoder {label}")["r"]


def _maps(arrays, masker):
    """Name -> per-voxel array as NIfTI images through the masker (None: no images)."""
    if masker is None:
        return {}
    return {name: to_nifti(values, masker) for name, values in arrays.items()}


def _significant(r, n):
    return significance(np.clip(r, -1, 1), n).significant


@fill_doc
def representations(
    X_train,
    X_test,
    spaces,
    *,
    groups=None,
    rows_train=None,
    rows_test=None,
    roi_masks=None,
    masker=None,
    n_components=6400,
    cv=5,
    chunk_size=8192,
    device=None,
    distributed=False,
    memory=None,
    progress=False,
):
    """Analysis (i), the paper's Figure 6: a separate encoder from each feature space.

    A :class:`VoxelwiseEncoder` per feature space (the paper's ``z``, ``c``
    and ``z_c`` from the end of the ``stage_strength`` chain), its held-out
    Pearson r per voxel and the significance of r (one-sided t test,
    Benjamini-Hochberg over voxels).

    Parameters
    ----------
    %(analysis_arrays)s
    spaces : dict of str to array of shape (n_images, n_features)
        Name -> features, e.g. ``{"z": features.z, "c": features.c, "zc":
        features.zc[0.8]}`` of :func:`encoding_features`.
    %(analysis_rows)s
    %(analysis_fit)s

    Returns
    -------
    result : Bunch
        ``spaces`` (the names), ``r``, ``p``, ``q`` and ``significant`` of
        shape (n_spaces, n_voxels), ``map_values`` (``r_NAME``,
        ``significant_NAME`` per voxel) and ``maps`` (the same as NIfTI
        images through ``masker``) and ``summary``
        (:func:`~brainldm.metrics.summarize_paired` of the r per ROI, every
        pair of spaces).

    Examples
    --------
    >>> import numpy as np
    >>> from brainldm.encoding import representations
    >>> rng = np.random.default_rng(0)
    >>> z, c = rng.standard_normal((2, 60, 8))  # 60 images: the first 40 to train on
    >>> X = np.column_stack([z @ rng.standard_normal(8), c @ rng.standard_normal(8)])
    >>> X += 0.5 * rng.standard_normal(X.shape)  # voxel 0 sees z, voxel 1 c
    >>> result = representations(X[:40], X[40:], {"z": z, "c": c}, n_components=8)
    >>> result.spaces, result.r.diagonal().round(1).tolist()  # r of z at voxel 0, of c at 1
    (('z', 'c'), [1.0, 1.0])
    """
    inputs = _analysis_inputs("representations", locals())
    names = tuple(spaces)
    keys = {name: digest(array) for name, array in spaces.items()}

    def compute(folder):
        return {"r": np.stack([_encoder_r(inputs, n, spaces[n], keys[n], folder) for n in names])}

    r = _finish(inputs, "representations", [[keys[n] for n in names], list(names)], compute)["r"]
    tests = [significance(np.clip(row, -1, 1), len(X_test)) for row in r]
    significant = np.stack([t.significant for t in tests])
    arrays = {f"r_{n}": r[k] for k, n in enumerate(names)}
    arrays.update({f"significant_{n}": significant[k] for k, n in enumerate(names)})
    return Bunch(
        spaces=names,
        r=r,
        p=np.stack([t.p for t in tests]),
        q=np.stack([t.q for t in tests]),
        significant=significant,
        map_values=arrays,
        maps=_maps(arrays, masker),
        summary=summarize_paired(dict(zip(names, r, strict=True)), inputs.masks),
    )


_PARTITION_FIELDS = ("r_joint", "r2_joint")
_BAND_FIELDS = ("split", "r2_alone", "unique")


def _partition_memory(inputs):
    """Where the dual solver keeps each band's kernel and one-band models: the analysis cache.

    Entries are named by the band's values (and the voxels, folds and settings), so the
    partitions that share ``z``, in one analysis and across analyses, compute its kernel
    and its model alone once per chunk of voxels. The primal solver keeps nothing.
    """
    if inputs.solver == "primal" or inputs.cache.location is None:
        return None
    return inputs.cache.location


def _partition_r(inputs, z, zc, folder, desc):
    """The banded [z, z_c] partition of every voxel on PCA scores, chunk by chunk."""
    X = np.hstack([z, zc])

    def fit_chunk(columns):
        # The bands are PCA scores already: neither reduced nor z-scored again.
        partitioner = BandedVariancePartitioner(
            bands={"z": z.shape[1], "zc": zc.shape[1]},
            n_components=None,
            standardize=False,
            n_iter=inputs.n_iter,
            cv=inputs.cv,
            solver=inputs.solver,
            solver_params=inputs.solver_params or None,
            device=inputs.device,
            memory=_partition_memory(inputs),
        )
        partitioner.fit(X[inputs.rows_train], inputs.X_train[:, columns], groups=inputs.groups)
        result = partitioner.partition(X[inputs.rows_test], inputs.X_test[:, columns])
        arrays = {field: np.asarray(result[field], np.float64) for field in _PARTITION_FIELDS}
        for field in _BAND_FIELDS:
            arrays.update(
                {f"{field}/{band}": np.asarray(result[field][band]) for band in ("z", "zc")}
            )
        return arrays

    return _chunked(folder, inputs, fit_chunk, desc)


def _partition_series(inputs, z, series, name):
    """The [z, z_c] partition for each labelled z_c of ``series``, stacked along axis 0."""
    z_key = digest(z)
    keys = {label: digest(array) for label, array in series.items()}

    def compute(folder):
        z_scores = _scores(inputs, z, z_key)
        fits = []
        for label, array in series.items():
            sub = None if folder is None else folder / label
            zc_scores = _scores(inputs, array, keys[label])
            fits.append(_partition_r(inputs, z_scores, zc_scores, sub, f"{name} {label}"))
        return {key: np.stack([fit[key] for fit in fits]) for key in fits[0]}

    arrays = _finish(inputs, name, [z_key, keys], compute)
    labels = tuple(series)
    n_test = len(inputs.X_test)
    result = Bunch(
        labels=labels,
        r_joint=arrays["r_joint"],
        r2_joint=arrays["r2_joint"],
        significant=np.stack([_significant(r, n_test) for r in arrays["r_joint"]]),
        **{field: {b: arrays[f"{field}/{b}"] for b in ("z", "zc")} for field in _BAND_FIELDS},
    )
    maps = {}
    for k, label in enumerate(labels):
        maps.update(
            {f"{field}_zc_{label}": result[field]["zc"][k] for field in ("unique", "split")}
        )
        maps[f"r_joint_{label}"] = result.r_joint[k]
    result.map_values = maps
    result.maps = _maps(maps, inputs.masker)
    result.summary = _series_summary(result, inputs.masks)
    return result


def _series_summary(result, masks):
    """Per label: z vs z_c paired (split and unique) per ROI, and z_c's mean unique with its SE."""
    summary = {}
    for k, label in enumerate(result.labels):
        values = {
            f"{field}_{band}": result[field][band][k]
            for field in ("unique", "split")
            for band in ("zc", "z")
        }
        entry = summarize_paired(
            values, masks, pairs=[("unique_zc", "unique_z"), ("split_zc", "split_z")]
        )
        for roi, mask in masks.items():
            entry[roi]["unique_zc_se"] = bootstrap_se(result.unique["zc"][k][mask])
        summary[label] = entry
    return summary


@fill_doc
def noise_levels(
    X_train,
    X_test,
    z,
    zc,
    *,
    groups=None,
    rows_train=None,
    rows_test=None,
    roi_masks=None,
    masker=None,
    n_iter=20,
    solver="primal",
    solver_params=None,
    n_components=6400,
    cv=5,
    chunk_size=8192,
    device=None,
    distributed=False,
    memory=None,
    progress=False,
):
    """Analysis (ii), the paper's Figure 7: z_c's unique variance against the noise level.

    For each img2img strength, a banded ridge on ``[z, z_c]``
    (:class:`BandedVariancePartitioner`) splits each voxel's explained
    variance between ``z`` and ``z_c`` denoised from that strength. Labels
    are the strengths with two decimals (``"0.20"``).

    Parameters
    ----------
    %(analysis_arrays)s
    z : array of shape (n_images, n_features)
        The first band, e.g. ``features.z`` of :func:`encoding_features`.
    zc : dict of float to array of shape (n_images, n_features_zc)
        Strength -> the second band, e.g. ``features.zc``.
    %(analysis_rows)s
    %(analysis_partition)s

    Examples
    --------
    >>> import numpy as np
    >>> from brainldm.encoding import noise_levels
    >>> rng = np.random.default_rng(0)
    >>> z, zc = rng.standard_normal((2, 60, 8))  # 60 images: the first 40 to train on
    >>> X = np.column_stack([z @ rng.standard_normal(8), zc @ rng.standard_normal(8)])
    >>> X += 0.5 * rng.standard_normal(X.shape)  # voxel 0 sees z, voxel 1 z_c
    >>> result = noise_levels(X[:40], X[40:], z, {0.8: zc}, n_components=8, n_iter=5)
    >>> result.labels, round(float(result.unique["zc"][0, 1]), 1)  # z_c's own at voxel 1
    (('0.80',), 0.9)
    """
    inputs = _analysis_inputs("noise_levels", locals())
    series = {_strength_name(s): array for s, array in zc.items()}
    result = _partition_series(inputs, z, series, "noise_levels")
    result.strengths = np.asarray(list(zc), dtype=float)
    return result


@fill_doc
def denoising_stages(
    X_train,
    X_test,
    z,
    stages,
    *,
    groups=None,
    rows_train=None,
    rows_test=None,
    roi_masks=None,
    masker=None,
    n_iter=20,
    solver="primal",
    solver_params=None,
    n_components=6400,
    cv=5,
    chunk_size=8192,
    device=None,
    distributed=False,
    memory=None,
    progress=False,
):
    """Analysis (iii), the paper's Figure 8: z_c's unique variance along the denoising.

    A banded ridge on ``[z, z_c]`` with ``z_c`` the latent after each read
    step (early, middle, late) of one img2img chain; labels are the read
    steps' names.

    Parameters
    ----------
    %(analysis_arrays)s
    z : array of shape (n_images, n_features)
        The first band, e.g. ``features.z`` of :func:`encoding_features`.
    stages : dict of str to array of shape (n_images, n_features_zc)
        Read step -> z_c after it, e.g. ``features.stages``.
    %(analysis_rows)s
    %(analysis_partition)s

    Examples
    --------
    See :func:`noise_levels`, which takes the same arrays; ``stages`` is
    ``{"early": ..., "middle": ..., "late": ...}``.
    """
    inputs = _analysis_inputs("denoising_stages", locals())
    return _partition_series(inputs, z, dict(stages), "denoising_stages")


@fill_doc
def unet_layers(
    X_train,
    X_test,
    layers,
    *,
    groups=None,
    rows_train=None,
    rows_test=None,
    roi_masks=None,
    masker=None,
    n_components=6400,
    cv=5,
    chunk_size=8192,
    device=None,
    distributed=False,
    memory=None,
    progress=False,
):
    """Analysis (iv), the paper's Figure 9: which U-Net layer predicts each voxel best, per step.

    A :class:`VoxelwiseEncoder` per layer and read step on the layer's pooled
    activations (PCA to ``n_components``); per step, the best layer of each
    voxel significant (FDR) for at least one layer.

    Parameters
    ----------
    %(analysis_arrays)s
    layers : dict of (str, str) to array of shape (n_images, n_features)
        (layer, read step) -> pooled activations, e.g. ``features.layers`` of
        :func:`encoding_features`; layers and steps in the order first met.
    %(analysis_rows)s
    %(analysis_fit)s

    Returns
    -------
    result : Bunch
        ``layers``, ``steps``; ``r`` and ``significant`` of shape (n_steps,
        n_layers, n_voxels); ``best_layer`` (n_steps, n_voxels), the index
        into ``layers`` of the best layer, -1 where no layer is significant;
        ``map_values`` (``best_layer_STEP``, NaN where none is
        significant, and ``r_LAYER_STEP``) and ``maps`` (as NIfTI images) and
        ``summary``: per step and ROI, ``best_fraction`` (layer -> fraction of
        the significant voxels it wins) beside
        :func:`~brainldm.metrics.summarize_paired` of every pair of layers
        over those voxels.

    Examples
    --------
    >>> import numpy as np
    >>> from brainldm.encoding import unet_layers
    >>> rng = np.random.default_rng(0)
    >>> a, b = rng.standard_normal((2, 60, 8))  # 60 images: the first 40 to train on
    >>> X = np.column_stack([a @ rng.standard_normal(8), b @ rng.standard_normal(8)])
    >>> X += 0.5 * rng.standard_normal(X.shape)  # voxel 0 sees layer a, voxel 1 layer b
    >>> result = unet_layers(X[:40], X[40:], {("a", "late"): a, ("b", "late"): b},
    ...                      n_components=8)
    >>> result.layers, result.steps, result.best_layer.tolist()
    (('a', 'b'), ('late',), [[0, 1]])
    """
    if not layers:
        raise ValueError(
            "unet_layers: no U-Net layers were given; pass layers to encoding_features"
        )
    inputs = _analysis_inputs("unet_layers", locals())
    names = tuple(dict.fromkeys(layer for layer, _ in layers))
    steps = tuple(dict.fromkeys(step for _, step in layers))
    keys = {pair: digest(array) for pair, array in layers.items()}

    def compute(folder):
        r = np.empty((len(steps), len(names), X_test.shape[1]))
        for (i, step), (j, layer) in ((a, b) for a in enumerate(steps) for b in enumerate(names)):
            label = f"{layer}-{step}"
            array, key = layers[layer, step], keys[layer, step]
            r[i, j] = _encoder_r(inputs, label, array, key, folder)
        return {"r": r}

    parts = [[keys[layer, step] for step in steps for layer in names], list(names), list(steps)]
    r = _finish(inputs, "unet_layers", parts, compute)["r"]
    significant = np.stack([[_significant(row, len(X_test)) for row in step] for step in r])
    best = np.where(significant.any(1), np.nanargmax(np.nan_to_num(r, nan=-np.inf), axis=1), -1)
    maps, summary = {}, {}
    for i, step in enumerate(steps):
        maps[f"best_layer_{step}"] = np.where(best[i] >= 0, best[i], np.nan)
        maps.update({f"r_{layer}_{step}": r[i, j] for j, layer in enumerate(names)})
        voxels = best[i] >= 0
        summary[step] = summarize_paired(
            dict(zip(names, r[i], strict=True)), inputs.masks, voxels=voxels
        )
        for roi, mask in inputs.masks.items():
            won = best[i][mask & voxels]
            summary[step][roi]["best_fraction"] = {
                layer: float(np.mean(won == j)) if len(won) else float("nan")
                for j, layer in enumerate(names)
            }
    return Bunch(
        layers=names,
        steps=steps,
        r=r,
        significant=significant,
        best_layer=best,
        map_values=maps,
        maps=_maps(maps, masker),
        summary=summary,
    )


def check_encoding_settings(
    model,
    analyses=ANALYSES,
    *,
    strengths=(0.2, 0.4, 0.6, 0.8),
    steps=25,
    stage_strength=0.8,
    read_steps=("early", "middle", "late"),
    layers=None,
    pool_size="auto",
    cv=5,
    solver="primal",
    device=None,
    caller="run_encoding_analyses",
):
    """Check the settings of :func:`run_encoding_analyses` before any work.

    Parameters
    ----------
    model : str, path-like or StableDiffusion
        The model whose U-Net the layers must belong to (loaded when named).
    analyses, strengths, steps, stage_strength, read_steps, layers, pool_size, cv, solver, device
        As in :func:`run_encoding_analyses`.
    caller : str, default="run_encoding_analyses"
        The function the settings were given to, as the errors name it.

    Returns
    -------
    analyses : tuple of str
        The analyses, in :data:`ANALYSES` order.

    Raises
    ------
    ValueError
        On an unknown analysis (naming the valid ones), a strength outside
        (0, 1], a layer the U-Net does not have (listing its blocks), a read
        step outside the chain, a bad pool size, a ``cv`` other than an int
        >= 2 or ``"loo"``, a ``solver`` not among ``"primal"``, ``"dual"``, ``"auto"``, or
        ``solver="dual"`` with ``device="cuda"``.

    Examples
    --------
    >>> from brainldm.encoding import check_encoding_settings
    >>> check_encoding_settings("toy", ["unet_layers", "representations"])
    ('representations', 'unet_layers')
    >>> check_encoding_settings("toy", layers=["down_blocks.9"])
    Traceback (most recent call last):
    ...
    ValueError: layers ['down_blocks.9'] are not modules of this U-Net; use paths of unet.named_modules(), e.g. ['down_blocks.0', 'down_blocks.1', 'down_blocks.2', 'up_blocks.0', 'up_blocks.1', 'up_blocks.2', 'mid_block']
    >>> check_encoding_settings("toy", ["maps"])
    Traceback (most recent call last):
    ...
    ValueError: analyses must be among ['representations', 'noise_levels', 'denoising_stages', 'unet_layers'], got ['maps']
    >>> check_encoding_settings("toy", cv="lo")
    Traceback (most recent call last):
    ...
    brainldm._validation.InvalidParameterError: The 'cv' parameter of run_encoding_analyses must be an int in the range [2, inf) or a str among {'loo'}. Got 'lo' instead.
    """
    from brainldm.features import load_ldm

    analyses = check_analyses(analyses)
    _check_cv(cv, caller)
    _check_solver(solver, device, caller)
    _check_strengths(strengths, caller)
    _check_strengths(stage_strength, caller, "stage_strength")
    _feature_settings(
        load_ldm(model), strengths, steps, stage_strength, read_steps, layers, pool_size
    )
    return analyses


def run_encoding_analyses(
    data,
    model="toy",
    analyses=ANALYSES,
    *,
    strengths=(0.2, 0.4, 0.6, 0.8),
    steps=25,
    stage_strength=0.8,
    read_steps=("early", "middle", "late"),
    layers=None,
    pool_size="auto",
    n_components=6400,
    n_iter=20,
    solver="primal",
    solver_params=None,
    cv=5,
    chunk_size=8192,
    guidance=5.0,
    random_state=42,
    batch_size=16,
    device=None,
    distributed=False,
    memory=None,
    progress=False,
):
    """Run the paper's encoding analyses on one subject of :func:`~brainldm.datasets.nsd.load_nsd`.

    Checks every setting first (:func:`check_encoding_settings`), extracts
    the features with one denoising pass per strength
    (:func:`encoding_features`), then runs each of ``analyses`` on the
    subject's arrays: :func:`representations` (i, on ``z``, ``c`` and the
    ``z_c`` of ``stage_strength``), :func:`noise_levels` (ii),
    :func:`denoising_stages` (iii) and :func:`unet_layers` (iv). With
    ``memory``, every feature pass, PCA, voxel chunk and finished analysis is
    saved there atomically and reused, so an interrupted run resumes and a
    finished one recomputes nothing.

    Parameters
    ----------
    data : Bunch
        A subject from :func:`~brainldm.datasets.nsd.load_nsd`: ``X_train``,
        ``images_train`` (the groups), ``X_test``, ``images_test``,
        ``stimuli``, ``captions``, ``roi_masks`` and ``masker`` are used.
    model : str, path-like or StableDiffusion, default="toy"
        The latent diffusion model (a name is loaded on ``device``).
    analyses : sequence of str, default=ANALYSES
        Which of :data:`ANALYSES` to run.
    strengths, steps, stage_strength, read_steps, layers, pool_size, guidance, random_state, batch_size
        As in :func:`encoding_features`; only what the chosen analyses need
        is computed (no U-Net layers without ``unet_layers``, no sweep
        without ``noise_levels``).
    n_components : int, default=6400
        PCA size of every feature space, as the paper.
    n_iter, solver, solver_params
        Of the banded ridge, as in :func:`noise_levels`: ``solver="dual"``
        (or ``"auto"``) solves it in kernel form, with each band's kernel and
        model alone saved in ``memory``, so that ``z``'s are computed once for
        every partition of ``noise_levels`` and ``denoising_stages``.
    cv : int or "loo", default=5
        Folds of every model; ``"loo"``: leave-one-out for the encoders of
        :func:`representations` and :func:`unet_layers` (one row per
        image: ``data`` loaded with ``average_train=True``), 5 folds for the
        partitions, as in :func:`representations`.
    chunk_size, device, distributed, memory, progress
        As in :func:`representations`.

    Returns
    -------
    results : Bunch
        ``features`` (the :func:`encoding_features` Bunch), one Bunch per
        analysis run, and ``seconds``: wall time per analysis (and for
        ``features``), 0-ish when reused.

    Examples
    --------
    >>> import tempfile
    >>> from brainldm.datasets.nsd import load_nsd
    >>> from brainldm.datasets.toy import make_toy_nsd
    >>> from brainldm.encoding import run_encoding_analyses
    >>> root = make_toy_nsd(tempfile.mkdtemp() + "/nsd", n_sessions=6, n_released_sessions=6,
    ...                     trials_per_session=60, n_shared=20, volume_shape=(12, 14, 12),
    ...                     subjects=["subj01"], progress=False)
    >>> data = load_nsd(root, 1, progress=False)
    >>> results = run_encoding_analyses(
    ...     data, analyses=["representations", "unet_layers"], steps=5, n_components=20,
    ...     layers=["down_blocks.0", "mid_block"], read_steps=["late"])
    >>> results.representations.spaces, results.representations.r.shape == (3, data.X_test.shape[1])
    (('z', 'c', 'zc'), True)
    >>> results.unet_layers.best_layer.shape == (1, data.X_test.shape[1])
    True
    >>> sorted(results.representations.summary["early"]["comparisons"])
    ['c-zc', 'z-c', 'z-zc']
    """
    from brainldm.features import load_ldm

    analyses = check_encoding_settings(
        model,
        analyses,
        strengths=strengths,
        steps=steps,
        stage_strength=stage_strength,
        read_steps=read_steps,
        layers=layers,
        pool_size=pool_size,
        cv=cv,
        solver=solver,
        device=device,
    )
    if {"representations", "unet_layers"} & set(analyses):
        _check_loo_groups(cv, data.images_train, "run_encoding_analyses")
    sd = load_ldm(model, device=device)
    started = time.perf_counter()
    features = encoding_features(
        data,
        sd,
        strengths=strengths if "noise_levels" in analyses else (stage_strength,),
        steps=steps,
        stage_strength=stage_strength,
        read_steps=read_steps,
        layers=layers if "unet_layers" in analyses else (),
        pool_size=pool_size,
        n_components=n_components,
        guidance=guidance,
        random_state=random_state,
        batch_size=batch_size,
        memory=memory,
        progress=progress,
    )
    results = Bunch(features=features, seconds={"features": time.perf_counter() - started})
    common = dict(
        groups=data.images_train,
        rows_train=features.rows_train,
        rows_test=features.rows_test,
        roi_masks=data.roi_masks,
        masker=data.get("masker"),
        n_components=n_components,
        cv=cv,
        chunk_size=chunk_size,
        device=device,
        distributed=distributed,
        memory=memory,
        progress=progress,
    )
    banded = dict(common, n_iter=n_iter, solver=solver, solver_params=solver_params)
    X_train, X_test, z = data.X_train, data.X_test, features.z
    spaces = {"z": z, "c": features.c, "zc": features.zc[features.stage_strength]}
    calls = {
        "representations": lambda: representations(X_train, X_test, spaces, **common),
        "noise_levels": lambda: noise_levels(
            X_train, X_test, z, {s: features.zc[s] for s in features.strengths}, **banded
        ),
        "denoising_stages": lambda: denoising_stages(X_train, X_test, z, features.stages, **banded),
        "unet_layers": lambda: unet_layers(X_train, X_test, features.layers, **common),
    }
    for name in analyses:
        started = time.perf_counter()
        results[name] = calls[name]()
        results.seconds[name] = time.perf_counter() - started
    return results
