"""The paper's four encoding analyses (Takagi & Nishimoto 2023, Figures 6-9), resumable.

One denoising pass per img2img strength serves them all (:func:`encoding_features`);
each analysis fits voxelwise models on those features, one chunk of voxels at a
time, and every finished chunk and analysis is saved atomically under a cache
folder and reused when found.
"""

import hashlib
import json
from pathlib import Path

import numpy as np
from scipy import stats
from sklearn.decomposition import IncrementalPCA
from sklearn.utils import Bunch
from tqdm.auto import tqdm

from brainldm._io import atomic_savez
from brainldm._validation import check_int
from brainldm.encoding._statistics import significance
from brainldm.encoding._voxelwise import VoxelwiseEncoder, apply_reduction, fit_reduction
from brainldm.maps import to_nifti
from brainldm.metrics.statistics import holm

__all__ = [
    "ANALYSES",
    "check_encoding_settings",
    "choose_pool_size",
    "denoising_stages",
    "encoding_features",
    "noise_levels",
    "representations",
    "run_encoding_analyses",
    "summarize_paired",
    "unet_layers",
]

#: The four analyses, in the order of the paper's Figures 6-9.
ANALYSES = ("representations", "noise_levels", "denoising_stages", "unet_layers")

# Features larger than this (bytes, float32) are reduced by IncrementalPCA in row batches.
_PCA_IN_MEMORY = 2 * 1024**3
_BOOTSTRAP_SEED = 0
_N_BOOTSTRAP = 1000


def _digest(*parts):
    """A short hash of settings and arrays, naming a cache entry."""
    digest = hashlib.blake2b(digest_size=10)
    for part in parts:
        if isinstance(part, np.ndarray):
            digest.update(np.ascontiguousarray(part).tobytes())
        else:
            digest.update(json.dumps(part, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def _cached(path, compute):
    """The arrays saved at ``path``, else ``compute()``'s, saved there atomically."""
    if path is not None and Path(path).exists():
        with np.load(path) as saved:
            return {key: saved[key] for key in saved.files}
    arrays = compute()
    if path is not None:
        atomic_savez(path, arrays)
    return arrays


def _step_name(step):
    return step if isinstance(step, str) else f"step{int(step)}"


def _strength_name(strength):
    return f"{float(strength):.2f}"


def _check_strengths(strengths, caller):
    strengths = np.atleast_1d(np.asarray(strengths, dtype=float))
    if strengths.ndim != 1 or strengths.size == 0:
        raise ValueError(f"{caller}: strengths must be a non-empty sequence, got {strengths}")
    bad = strengths[~((strengths > 0) & (strengths <= 1))]
    if bad.size:
        raise ValueError(
            f"{caller}: strengths must lie in (0, 1] (the img2img noise level), got {bad.tolist()}"
        )
    return tuple(float(s) for s in strengths)


def check_analyses(analyses):
    """The analysis names, checked: a tuple in :data:`ANALYSES` order."""
    if isinstance(analyses, str):
        analyses = (analyses,)
    analyses = list(analyses)
    unknown = [name for name in analyses if name not in ANALYSES]
    if unknown or not analyses:
        raise ValueError(f"analyses must be among {list(ANALYSES)}, got {analyses}")
    return tuple(name for name in ANALYSES if name in analyses)


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


def _image_index(data):
    """Sorted 73k ids of the train and test images, and each row's position among them."""
    images = np.unique(np.concatenate([data.images_train, data.images_test]))
    return (
        images,
        np.searchsorted(images, data.images_train),
        np.searchsorted(images, data.images_test),
    )


def _denoise_strength(sd, x0, c, images, strength, read_steps, layers, settings):
    """One denoising pass: z_c at each read step, pooled activations of ``layers``."""
    out = sd.denoise(
        x0,
        c,
        strength=strength,
        steps=settings["steps"],
        read_steps=list(read_steps),
        layers=list(layers),
        pool_size=settings["pool_size"],
        guidance=settings["guidance"],
        seed=settings["seed"],
        image_ids=images,
        batch_size=settings["batch_size"],
        progress=settings["progress"],
    )
    arrays = {
        f"zc/{_step_name(s)}": out.latents[:, k].reshape(len(x0), -1)
        for k, s in enumerate(read_steps)
    }
    for layer in layers:
        for k, step in enumerate(read_steps):
            arrays[f"{layer}/{_step_name(step)}"] = out.activations[layer][:, k].reshape(
                len(x0), -1
            )
    return arrays


def _feature_settings(sd, strengths, steps, stage_strength, read_steps, layers, pool_size, **rest):
    """The checked settings of :func:`encoding_features`, before any work."""
    strengths = _check_strengths(strengths, "encoding_features")
    (stage_strength,) = _check_strengths([stage_strength], "encoding_features (stage_strength)")
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
    seed=42,
    batch_size=16,
    cache_dir=None,
    progress=True,
):
    """The features of the four analyses, from one denoising pass per strength.

    ``z`` (the VAE latent at the model's image size) and ``c`` (the mean text
    encoding of each image's captions) of every train and test image; ``z_c``
    at the end of the img2img chain from each of ``strengths``; and, during
    the chain from ``stage_strength``, ``z_c`` (the scheduler's
    ``prev_sample``) and the pooled activations of ``layers`` at each of
    ``read_steps``. The chain from ``stage_strength`` is run once and serves
    the noise-level, stage and layer analyses.

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
    seed : int, default=42
        Seed of the img2img noise; each image's generator is seeded from it
        and the image's 73k id.
    batch_size : int, default=16
        Images denoised at once.
    cache_dir : str or path-like, optional
        Folder where each piece (``z`` and ``c``, each strength's pass) is
        saved atomically and reused.
    progress : bool, default=True
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
    ...                              pool_size=2, progress=False)
    >>> features.z.shape, features.zc[0.5].shape, sorted(features.stages)
    ((6, 1024), (6, 1024), ['early', 'late', 'middle'])
    >>> features.layers["mid_block", "early"].shape
    (6, 256)
    >>> encoding_features(data, strengths=[1.5], progress=False)
    Traceback (most recent call last):
    ...
    ValueError: encoding_features: strengths must lie in (0, 1] (the img2img noise level), got [1.5]
    """
    from brainldm.features import load_ldm

    sd = load_ldm(model)
    settings = _feature_settings(
        sd,
        strengths,
        steps,
        stage_strength,
        read_steps,
        layers,
        pool_size,
        guidance=float(guidance),
        seed=int(seed),
        batch_size=check_int(batch_size, "batch_size", "encoding_features", min_val=1),
        progress=progress,
    )
    images, rows_train, rows_test = _image_index(data)
    if settings["pool_size"] == "auto":
        n_keep = min(n_components, len(np.unique(rows_train)))
        settings["pool_size"] = (
            choose_pool_size(settings["shapes"], n_keep) if settings["shapes"] else 1
        )
    settings_key = {k: v for k, v in settings.items() if k != "progress"}
    key = _digest(repr(sd), sd.fingerprint, images, settings_key)
    folder = None if cache_dir is None else Path(cache_dir) / f"features-{key}"
    path = (lambda name: None) if folder is None else (lambda name: folder / f"{name}.npz")
    stimuli = (
        data.stimuli[images]
        if hasattr(data.stimuli, "shape")
        else [data.stimuli[i] for i in images]
    )
    captions = [data.captions[i] for i in images]
    base = _cached(
        path("z_c"),
        lambda: {
            "z": sd.encode_images(stimuli, batch_size=settings["batch_size"], progress=progress),
            "c": sd.encode_text(captions, progress=progress),
        },
    )
    x0 = None
    result = Bunch(
        images=images,
        rows_train=rows_train,
        rows_test=rows_test,
        z=base["z"].reshape(len(images), -1),
        c=base["c"].reshape(len(images), -1),
        zc={},
        stages={},
        layers={},
        strengths=settings["strengths"],
        read_steps=tuple(_step_name(s) for s in settings["read_steps"]),
        layer_names=settings["layers"],
        pool_size=settings["pool_size"],
        stage_strength=settings["stage_strength"],
        key=key,
    )
    passes = sorted(set(settings["strengths"]) | {settings["stage_strength"]})
    for strength in passes:
        staged = strength == settings["stage_strength"]
        read = tuple(dict.fromkeys(settings["read_steps"] + ("late",))) if staged else ("late",)

        def compute(strength=strength, staged=staged, read=read):
            nonlocal x0
            if x0 is None:
                # z is the generation-size latent already when the two sizes agree (the toy's).
                x0 = (
                    base["z"]
                    if sd.image_size == sd.generation_size
                    else sd.encode_images(
                        stimuli, size=sd.generation_size, batch_size=settings["batch_size"]
                    )
                )
            layers_read = settings["layers"] if staged else ()
            return _denoise_strength(
                sd, x0, base["c"], images, strength, read, layers_read, settings
            )

        arrays = _cached(path(f"strength-{_strength_name(strength)}"), compute)
        result.zc[strength] = arrays["zc/late"]
        if staged:
            for step in result.read_steps:
                result.stages[step] = arrays[f"zc/{step}"]
                for layer in settings["layers"]:
                    result.layers[layer, step] = arrays[f"{layer}/{step}"]
    return result


def _reduce(features, rows_fit, n_components, progress=False):
    """Z-score on ``rows_fit`` (one per training image), PCA fitted on them; every row's scores.

    :func:`fit_reduction`, the encoders' own reduction, when the features fit
    in memory; an IncrementalPCA over row batches when they pass
    ``_PCA_IN_MEMORY`` bytes in float32 (e.g. SD's U-Net layers at a fine grid).
    """
    fit = features[rows_fit]
    if fit.size * 4 <= _PCA_IN_MEMORY:
        _, reduction = fit_reduction(fit, n_components=n_components, name="features")
        return np.asarray(apply_reduction(features, reduction), dtype=np.float32)
    mean = fit.mean(0, dtype=np.float64)
    scale = fit.std(0, dtype=np.float64)
    scale[scale == 0] = 1.0
    pca = IncrementalPCA(min(n_components, len(fit), fit.shape[1]))
    pca.batch_size = max(pca.n_components, 2048)
    for start in tqdm(range(0, len(fit), pca.batch_size), disable=not progress, desc="PCA"):
        pca.partial_fit((fit[start : start + pca.batch_size] - mean) / scale)
    scores = np.empty((len(features), pca.n_components), dtype=np.float32)
    for start in range(0, len(features), pca.batch_size):
        block = features[start : start + pca.batch_size]
        scores[start : start + len(block)] = pca.transform((block - mean) / scale)
    return scores


def _chunked(folder, n_voxels, chunk_size, fit_chunk, desc, progress):
    """``fit_chunk(columns)`` over chunks of voxels, each saved under ``folder``; joined."""
    starts = range(0, n_voxels, chunk_size)
    parts = []
    for i, start in enumerate(tqdm(starts, desc=desc, disable=not progress, leave=False)):
        columns = slice(start, min(start + chunk_size, n_voxels))
        path = None if folder is None else Path(folder) / f"chunk-{i:04d}.npz"
        parts.append(_cached(path, lambda columns=columns: fit_chunk(columns)))
    return {key: np.concatenate([part[key] for part in parts], axis=-1) for key in parts[0]}


def _check_fit_settings(settings):
    settings = dict(settings)
    settings["n_components"] = check_int(
        settings["n_components"], "n_components", "analysis", min_val=1
    )
    settings["chunk_size"] = check_int(settings["chunk_size"], "chunk_size", "analysis", min_val=1)
    return settings


def _encoder_r(data, reduced, settings):
    """Held-out r per voxel of a VoxelwiseEncoder on (already PCA-reduced) features."""
    features, rows_train, rows_test = reduced

    def fit_chunk(columns):
        encoder = VoxelwiseEncoder(
            n_components=None,
            standardize=False,
            device=settings["device"],
            distributed=settings["distributed"],
        )
        encoder.fit(features[rows_train], data.X_train[:, columns], groups=data.images_train)
        return {"r": encoder.score_voxels(features[rows_test], data.X_test[:, columns])}

    return fit_chunk


def _cache_folder(settings, name, *parts):
    """``cache_dir/name/<hash of parts>``, or None without a cache."""
    if settings["cache_dir"] is None:
        return None
    return Path(settings["cache_dir"]) / name / _digest(*parts)


def _analysis_folder(settings, name, *parts):
    keep = {k: settings.get(k) for k in ("n_components", "chunk_size", "solver_params", "n_iter")}
    return _cache_folder(settings, name, keep, settings["data_key"], *parts)


def _reduced(features, space, settings, array=None):
    """PCA scores of one feature space, cached, with the train and test rows."""
    array = getattr(features, space) if array is None else array
    rows_fit = np.unique(features.rows_train)
    # Named by what the scores depend on alone (the features, the training images the PCA
    # is fitted on, its size), so every analysis shares them.
    folder = _cache_folder(settings, "pca", settings["n_components"], features.key, space, rows_fit)
    path = None if folder is None else folder / "scores.npz"
    scores = _cached(
        path,
        lambda: {
            "scores": _reduce(array, rows_fit, settings["n_components"], settings["progress"])
        },
    )["scores"]
    return scores, features.rows_train, features.rows_test


def _wilcoxon(difference):
    """Two-sided Wilcoxon signed-rank p of paired differences; NaN when undefined."""
    difference = difference[difference != 0]
    if len(difference) < 2:
        return float("nan")
    return float(stats.wilcoxon(difference).pvalue)


def summarize_paired(values, masks, pairs=None, voxels=None, alpha=0.05):
    """Per ROI, compare per-voxel values of named models paired voxel by voxel.

    For each ROI and pair (a, b), over the same voxels (the ROI's, within
    ``voxels``, where both values are finite): the fraction of voxels where a
    beats b, the median of the paired differences a - b, and a two-sided
    Wilcoxon signed-rank p, Holm-corrected over every ROI and pair of the call.

    Parameters
    ----------
    values : dict of str to array of shape (n_voxels,)
        Per-voxel values (r, unique variance...) of each model.
    masks : dict of str to bool array of shape (n_voxels,)
        ROI name -> voxels, e.g. ``data.roi_masks``.
    pairs : sequence of (str, str), default=None
        Pairs to compare; None is every pair, in the order of ``values``.
    voxels : bool array of shape (n_voxels,), default=None
        Voxels to keep (e.g. significant for either model); None keeps all.
    alpha : float, default=0.05
        Family-wise level of ``significant``.

    Returns
    -------
    summary : dict
        ROI -> ``{"n_voxels", "median": {name: float}, "mean": {name: float},
        "comparisons": {"a-b": {"fraction_a_wins", "median_difference", "p",
        "p_holm", "significant"}}}``.

    Examples
    --------
    >>> import numpy as np
    >>> from brainldm.encoding import summarize_paired
    >>> rng = np.random.default_rng(0)
    >>> z = rng.normal(0.5, 0.1, 200)
    >>> values = {"z": z, "c": z - 0.1 + rng.normal(0, 0.05, 200)}
    >>> summary = summarize_paired(values, {"early": np.arange(200) < 100})
    >>> comparison = summary["early"]["comparisons"]["z-c"]
    >>> comparison["fraction_a_wins"], round(comparison["median_difference"], 2)
    (0.95, 0.12)
    >>> bool(comparison["significant"])
    True
    """
    names = list(values)
    pairs = (
        [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]] if pairs is None else pairs
    )
    keep = (
        np.ones(len(values[names[0]]), dtype=bool) if voxels is None else np.asarray(voxels, bool)
    )
    summary, tests = {}, []
    for roi, mask in masks.items():
        chosen = np.asarray(mask, bool) & keep
        entry = {
            "n_voxels": int(chosen.sum()),
            "median": {n: _nan_stat(np.nanmedian, values[n][chosen]) for n in names},
            "mean": {n: _nan_stat(np.nanmean, values[n][chosen]) for n in names},
            "comparisons": {},
        }
        for a, b in pairs:
            x, y = values[a][chosen], values[b][chosen]
            finite = np.isfinite(x) & np.isfinite(y)
            difference = x[finite] - y[finite]
            comparison = {
                "fraction_a_wins": float(np.mean(difference > 0))
                if len(difference)
                else float("nan"),
                "median_difference": _nan_stat(np.median, difference),
                "p": _wilcoxon(difference),
            }
            entry["comparisons"][f"{a}-{b}"] = comparison
            tests.append(comparison)
        summary[roi] = entry
    for comparison, p_holm in zip(tests, holm([t["p"] for t in tests]), strict=True):
        comparison["p_holm"] = float(p_holm)
        comparison["significant"] = bool(p_holm < alpha)
    return summary


def _nan_stat(function, values):
    values = values[np.isfinite(values)]
    return float(function(values)) if len(values) else float("nan")


def _bootstrap_se(values, n_boot=_N_BOOTSTRAP, seed=_BOOTSTRAP_SEED):
    """Bootstrap standard error of the mean over voxels (finite values)."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if len(values) < 2:
        return float("nan")
    rng = np.random.default_rng(seed)
    means = values[rng.integers(len(values), size=(n_boot, len(values)))].mean(axis=1)
    return float(means.std(ddof=1))


def _masks(data):
    return {name: np.asarray(mask, bool) for name, mask in data.roi_masks.items()}


def _maps(arrays, masker):
    """Name -> per-voxel array as NIfTI images through the masker (None: no images)."""
    if masker is None:
        return {}
    return {name: to_nifti(values, masker) for name, values in arrays.items()}


def _data_key(data):
    """What identifies a subject's data in cache names: its images, voxels and test betas."""
    return _digest(
        str(data.get("subject", "")),
        np.asarray(data.images_train),
        np.asarray(data.images_test),
        list(np.shape(data.X_train)),
        np.asarray(data.X_test, dtype=np.float32),
    )


_OPTIONS = ("n_iter", "solver_params", "n_components", "chunk_size", "device", "distributed")
_OPTIONS += ("cache_dir", "progress")


def _options(arguments):
    """The fitting options among an analysis's arguments."""
    return {name: arguments[name] for name in _OPTIONS if name in arguments}


def _settings(data, features, **options):
    settings = _check_fit_settings(options)
    settings["data_key"] = _data_key(data)
    settings["solver_params"] = dict(settings.get("solver_params") or {})
    settings.setdefault("n_iter", None)
    return settings


def _finish(settings, name, compute):
    """An analysis's arrays, saved whole once finished and reused on rerun."""
    folder = _analysis_folder(settings, name, *settings["parts"])
    return _cached(None if folder is None else folder / "result.npz", lambda: compute(folder))


_FIT_DOC = """
    n_components : int, default=6400
        PCA size of each feature space (fitted on the training images), capped
        at what the data allow.
    chunk_size : int, default=2048
        Voxels fitted together; each finished chunk is saved under ``cache_dir``.
    device : str, default=None
        Where the ridge solvers run (``"cuda"``); None is the CPU.
    distributed : bool, default=False
        Fit each encoder's voxel batches on the current dask client
        (:class:`VoxelwiseEncoder` ``distributed=True``).
    cache_dir : str or path-like, optional
        Folder of the saved chunks and results; a rerun with the same data
        and settings recomputes nothing.
    progress : bool, default=True
        Show progress bars.
"""


def representations(
    data,
    features,
    *,
    n_components=6400,
    chunk_size=2048,
    device=None,
    distributed=False,
    cache_dir=None,
    progress=True,
):
    """Analysis (i), the paper's Figure 6: separate encoders from ``z``, ``c`` and ``z_c``.

    A :class:`VoxelwiseEncoder` per feature space (``z_c`` from the end of the
    ``stage_strength`` chain), its held-out Pearson r per voxel and the
    significance of r (one-sided t test, Benjamini-Hochberg over voxels).

    Parameters
    ----------
    data : Bunch
        From :func:`~brainldm.datasets.nsd.load_nsd`: ``X_train``,
        ``images_train``, ``X_test``, ``roi_masks`` and ``masker`` (None
        skips the images) are used.
    features : Bunch
        From :func:`encoding_features` for the same data.
    {fit}
    Returns
    -------
    result : Bunch
        ``spaces`` (``("z", "c", "zc")``), ``r``, ``p``, ``q`` and
        ``significant`` of shape (3, n_voxels), ``map_values`` (``r_z``, ``r_c``,
        ``r_zc``, ``significant_z``... per voxel) and ``maps`` (the same as
        NIfTI images through ``data.masker``) and ``summary``
        (:func:`summarize_paired` of the r per ROI: z-c, z-zc, c-zc).

    Examples
    --------
    See :func:`run_encoding_analyses`, which runs the four analyses.
    """
    settings = _settings(data, features, **_options(locals()))
    spaces = {"z": features.z, "c": features.c, "zc": features.zc[features.stage_strength]}
    settings["parts"] = (features.key,)

    def compute(folder):
        r = []
        for space, array in spaces.items():
            reduced = _reduced(features, space, settings, array)
            sub = None if folder is None else folder / space
            fit = _encoder_r(data, reduced, settings)
            r.append(
                _chunked(sub, data.X_test.shape[1], chunk_size, fit, f"encoder {space}", progress)[
                    "r"
                ]
            )
        return {"r": np.stack(r)}

    r = _finish(settings, "representations", compute)["r"]
    tests = [significance(np.clip(row, -1, 1), len(data.X_test)) for row in r]
    names = tuple(spaces)
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
        maps=_maps(arrays, data.get("masker")),
        summary=summarize_paired(dict(zip(names, r, strict=True)), _masks(data)),
    )


representations.__doc__ = representations.__doc__.format(fit=_FIT_DOC.strip("\n").lstrip())


_PARTITION_FIELDS = ("r_joint", "r2_joint")
_BAND_FIELDS = ("split", "r2_alone", "unique")


def _partition_fit(data, reduced_z, reduced_zc, settings):
    """A chunk fitter of the banded [z, z_c] partition on PCA scores."""
    from brainldm.encoding._partition import BandedVariancePartitioner

    (z, rows_train, rows_test), (zc, _, _) = reduced_z, reduced_zc
    X = np.hstack([z, zc])

    def fit_chunk(columns):
        # The bands are PCA scores already: neither reduced nor z-scored again.
        partitioner = BandedVariancePartitioner(
            bands={"z": z.shape[1], "zc": zc.shape[1]},
            n_components=None,
            standardize=False,
            **({} if settings["n_iter"] is None else {"n_iter": settings["n_iter"]}),
            solver_params=settings["solver_params"] or None,
            device=settings["device"],
        )
        partitioner.fit(X[rows_train], data.X_train[:, columns], groups=data.images_train)
        result = partitioner.partition(X[rows_test], data.X_test[:, columns])
        arrays = {field: np.asarray(result[field], np.float64) for field in _PARTITION_FIELDS}
        for field in _BAND_FIELDS:
            arrays.update(
                {f"{field}/{band}": np.asarray(result[field][band]) for band in ("z", "zc")}
            )
        return arrays

    return fit_chunk


def _partition_series(data, features, series, name, settings):
    """The [z, z_c] partition for each labelled z_c of ``series``, stacked along axis 0."""
    settings["parts"] = (features.key, list(series))
    reduced_z = _reduced(features, "z", settings)

    def compute(folder):
        fits = []
        for label, (space, array) in series.items():
            reduced_zc = _reduced(features, space, settings, array)
            fit = _partition_fit(data, reduced_z, reduced_zc, settings)
            sub = None if folder is None else folder / label
            desc = f"{name} {label}"
            fits.append(
                _chunked(
                    sub,
                    data.X_test.shape[1],
                    settings["chunk_size"],
                    fit,
                    desc,
                    settings["progress"],
                )
            )
        return {key: np.stack([fit[key] for fit in fits]) for key in fits[0]}

    arrays = _finish(settings, name, compute)
    labels = list(series)
    significant = np.stack(
        [significance(np.clip(r, -1, 1), len(data.X_test)).significant for r in arrays["r_joint"]]
    )
    result = Bunch(
        labels=tuple(labels),
        r_joint=arrays["r_joint"],
        r2_joint=arrays["r2_joint"],
        significant=significant,
        **{field: {b: arrays[f"{field}/{b}"] for b in ("z", "zc")} for field in _BAND_FIELDS},
    )
    maps = {}
    for k, label in enumerate(labels):
        maps.update(
            {f"{field}_zc_{label}": result[field]["zc"][k] for field in ("unique", "split")}
        )
        maps[f"r_joint_{label}"] = result.r_joint[k]
    result.map_values = maps
    result.maps = _maps(maps, data.get("masker"))
    result.summary = _series_summary(result, _masks(data))
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
            entry[roi]["unique_zc_se"] = _bootstrap_se(result.unique["zc"][k][mask])
        summary[label] = entry
    return summary


_PARTITION_DOC = """
    n_iter : int, default=None
        Band weightings tried by the banded ridge's random search; None is
        :class:`BandedVariancePartitioner`'s default (100).
    solver_params : dict, default=None
        Passed to :class:`BandedVariancePartitioner` (himalaya's random search:
        ``n_iter``, ``alphas``, ``n_targets_batch``...).
    {fit}
    Returns
    -------
    result : Bunch
        ``labels``; per label (axis 0) and voxel: ``r_joint``, ``r2_joint``,
        ``significant`` (the joint model's r, FDR over voxels), and per band
        (``"z"``, ``"zc"``): ``split`` (himalaya's split r², the paper's
        view), ``r2_alone`` and ``unique`` (r² of the joint model less that of
        the other band alone); ``map_values`` (``unique_zc_LABEL``,
        ``split_zc_LABEL``, ``r_joint_LABEL``) and ``maps`` (as NIfTI images) and
        ``summary``: per label and ROI, :func:`summarize_paired` of z_c
        against z for ``unique`` and ``split`` (Holm over the ROIs and both
        measures of a label) and ``unique_zc_se``, the bootstrap standard
        error over voxels of z_c's mean unique variance.
"""


def noise_levels(
    data,
    features,
    *,
    n_iter=None,
    solver_params=None,
    n_components=6400,
    chunk_size=2048,
    device=None,
    distributed=False,
    cache_dir=None,
    progress=True,
):
    """Analysis (ii), the paper's Figure 7: z_c's unique variance against the noise level.

    For each img2img strength of ``features``, a banded ridge on ``[z, z_c]``
    (:class:`BandedVariancePartitioner`) splits each voxel's explained
    variance between ``z`` and ``z_c`` denoised from that strength. Labels
    are the strengths with two decimals (``"0.20"``).

    Parameters
    ----------
    data : Bunch
        As in :func:`representations`.
    features : Bunch
        From :func:`encoding_features`.
    {partition}
    Examples
    --------
    See :func:`run_encoding_analyses`.
    """
    series = {
        _strength_name(s): (f"zc-{_strength_name(s)}", features.zc[s]) for s in features.strengths
    }
    settings = _settings(data, features, **_options(locals()))
    result = _partition_series(data, features, series, "noise_levels", settings)
    result.strengths = np.asarray(features.strengths)
    return result


def denoising_stages(
    data,
    features,
    *,
    n_iter=None,
    solver_params=None,
    n_components=6400,
    chunk_size=2048,
    device=None,
    distributed=False,
    cache_dir=None,
    progress=True,
):
    """Analysis (iii), the paper's Figure 8: z_c's unique variance along the denoising.

    A banded ridge on ``[z, z_c]`` with ``z_c`` the latent after each read
    step (early, middle, late) of the chain from ``stage_strength``; labels
    are the read steps' names.

    Parameters
    ----------
    data : Bunch
        As in :func:`representations`.
    features : Bunch
        From :func:`encoding_features`.
    {partition}
    Examples
    --------
    See :func:`run_encoding_analyses`.
    """
    series = {step: (f"stage-{step}", features.stages[step]) for step in features.read_steps}
    settings = _settings(data, features, **_options(locals()))
    return _partition_series(data, features, series, "denoising_stages", settings)


_PARTITION_TEXT = _PARTITION_DOC.format(fit=_FIT_DOC.strip("\n").lstrip()).strip("\n").lstrip()
noise_levels.__doc__ = noise_levels.__doc__.format(partition=_PARTITION_TEXT)
denoising_stages.__doc__ = denoising_stages.__doc__.format(partition=_PARTITION_TEXT)


def unet_layers(
    data,
    features,
    *,
    n_components=6400,
    chunk_size=2048,
    device=None,
    distributed=False,
    cache_dir=None,
    progress=True,
):
    """Analysis (iv), the paper's Figure 9: which U-Net layer predicts each voxel best, per step.

    A :class:`VoxelwiseEncoder` per layer and read step on the layer's pooled
    activations (PCA to ``n_components``); per step, the best layer of each
    voxel significant (FDR) for at least one layer.

    Parameters
    ----------
    data : Bunch
        As in :func:`representations`.
    features : Bunch
        From :func:`encoding_features`, with layers read.
    {fit}
    Returns
    -------
    result : Bunch
        ``layers``, ``steps``; ``r`` and ``significant`` of shape (n_steps,
        n_layers, n_voxels); ``best_layer`` (n_steps, n_voxels), the index
        into ``layers`` of the best layer, -1 where no layer is significant;
        ``map_values`` (``best_layer_STEP``, NaN where none is
        significant, and ``r_LAYER_STEP``) and ``maps`` (as NIfTI images) and ``summary``: per step and ROI,
        ``best_fraction`` (layer -> fraction of the significant voxels it
        wins) beside :func:`summarize_paired` of every pair of layers over
        those voxels.

    Examples
    --------
    See :func:`run_encoding_analyses`.
    """
    if not features.layer_names:
        raise ValueError(
            "unet_layers: features has no U-Net layers; pass layers to encoding_features"
        )
    settings = _settings(data, features, **_options(locals()))
    layers, steps = features.layer_names, features.read_steps
    settings["parts"] = (features.key, list(layers), list(steps))

    def compute(folder):
        r = np.empty((len(steps), len(layers), data.X_test.shape[1]))
        for (i, step), (j, layer) in ((a, b) for a in enumerate(steps) for b in enumerate(layers)):
            space = f"{layer}-{step}"
            reduced = _reduced(features, space, settings, features.layers[layer, step])
            sub = None if folder is None else folder / space
            fit = _encoder_r(data, reduced, settings)
            r[i, j] = _chunked(
                sub, data.X_test.shape[1], chunk_size, fit, f"encoder {space}", progress
            )["r"]
        return {"r": r}

    r = _finish(settings, "unet_layers", compute)["r"]
    significant = np.stack(
        [
            [significance(np.clip(row, -1, 1), len(data.X_test)).significant for row in step]
            for step in r
        ]
    )
    best = np.where(significant.any(1), np.nanargmax(np.nan_to_num(r, nan=-np.inf), axis=1), -1)
    masks = _masks(data)
    maps, summary = {}, {}
    for i, step in enumerate(steps):
        maps[f"best_layer_{step}"] = np.where(best[i] >= 0, best[i], np.nan)
        maps.update({f"r_{layer}_{step}": r[i, j] for j, layer in enumerate(layers)})
        voxels = best[i] >= 0
        summary[step] = summarize_paired(dict(zip(layers, r[i], strict=True)), masks, voxels=voxels)
        for roi, mask in masks.items():
            won = best[i][mask & voxels]
            summary[step][roi]["best_fraction"] = {
                layer: float(np.mean(won == j)) if len(won) else float("nan")
                for j, layer in enumerate(layers)
            }
    return Bunch(
        layers=layers,
        steps=steps,
        r=r,
        significant=significant,
        best_layer=best,
        map_values=maps,
        maps=_maps(maps, data.get("masker")),
        summary=summary,
    )


unet_layers.__doc__ = unet_layers.__doc__.format(fit=_FIT_DOC.strip("\n").lstrip())


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
):
    """Check the settings of :func:`run_encoding_analyses` before any work.

    Parameters
    ----------
    model : str, path-like or StableDiffusion
        The model whose U-Net the layers must belong to (loaded when named).
    analyses, strengths, steps, stage_strength, read_steps, layers, pool_size
        As in :func:`run_encoding_analyses`.

    Returns
    -------
    analyses : tuple of str
        The analyses, in :data:`ANALYSES` order.

    Raises
    ------
    ValueError
        On an unknown analysis (naming the valid ones), a strength outside
        (0, 1], a layer the U-Net does not have (listing its blocks), a read
        step outside the chain or a bad pool size.

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
    """
    from brainldm.features import load_ldm

    analyses = check_analyses(analyses)
    _check_strengths(strengths, "run_encoding_analyses")
    _check_strengths([stage_strength], "run_encoding_analyses (stage_strength)")
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
    n_iter=None,
    solver_params=None,
    chunk_size=2048,
    guidance=5.0,
    seed=42,
    batch_size=16,
    device=None,
    distributed=False,
    cache_dir=None,
    progress=True,
):
    """Run the paper's encoding analyses on one subject, resumably.

    Checks every setting first (:func:`check_encoding_settings`), extracts
    the features with one denoising pass per strength
    (:func:`encoding_features`), then runs each of ``analyses``:
    :func:`representations` (i), :func:`noise_levels` (ii),
    :func:`denoising_stages` (iii) and :func:`unet_layers` (iv). With
    ``cache_dir``, every feature pass, PCA, voxel chunk and finished analysis
    is saved there atomically and reused, so an interrupted run resumes and
    a finished one recomputes nothing.

    Parameters
    ----------
    data : Bunch
        A subject from :func:`~brainldm.datasets.nsd.load_nsd`.
    model : str, path-like or StableDiffusion, default="toy"
        The latent diffusion model (a name is loaded on ``device``).
    analyses : sequence of str, default=ANALYSES
        Which of :data:`ANALYSES` to run.
    strengths, steps, stage_strength, read_steps, layers, pool_size, guidance, seed, batch_size
        As in :func:`encoding_features`; only what the chosen analyses need
        is computed (no U-Net layers without ``unet_layers``, no sweep
        without ``noise_levels``).
    n_components : int, default=6400
        PCA size of every feature space, as the paper.
    n_iter, solver_params
        Of the banded ridge, as in :func:`noise_levels`.
    chunk_size, device, distributed, cache_dir, progress
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
    ...     layers=["down_blocks.0", "mid_block"], read_steps=["late"], progress=False)
    >>> results.representations.spaces, results.representations.r.shape == (3, data.X_test.shape[1])
    (('z', 'c', 'zc'), True)
    >>> results.unet_layers.best_layer.shape == (1, data.X_test.shape[1])
    True
    >>> sorted(results.representations.summary["early"]["comparisons"])
    ['c-zc', 'z-c', 'z-zc']
    """
    import time

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
    )
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
        seed=seed,
        batch_size=batch_size,
        cache_dir=cache_dir,
        progress=progress,
    )
    results = Bunch(features=features, seconds={"features": time.perf_counter() - started})
    common = dict(
        n_components=n_components,
        chunk_size=chunk_size,
        device=device,
        distributed=distributed,
        cache_dir=cache_dir,
        progress=progress,
    )
    functions = {
        "representations": representations,
        "noise_levels": noise_levels,
        "denoising_stages": denoising_stages,
        "unet_layers": unet_layers,
    }
    for name in analyses:
        started = time.perf_counter()
        extra = (
            {"n_iter": n_iter, "solver_params": solver_params}
            if name in ("noise_levels", "denoising_stages")
            else {}
        )
        results[name] = functions[name](data, features, **common, **extra)
        results.seconds[name] = time.perf_counter() - started
    return results
