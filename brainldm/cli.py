"""The ``brainldm`` command: the paper's decoding half, from NSD-layout files to figures and scores.

``brainldm demo`` runs it on the embedded default: it writes the toy world (a
simulated NSD), loads a subject through the NSD reader, fits an
:class:`~brainldm.reconstruction.LDMReconstructor` (``z`` decoded from early,
``c`` from ventral visual cortex), reconstructs test images in the modes
``z``, ``c`` and ``zc`` (and ``X_z``), and scores them by identification.
``brainldm reconstruct`` does the same on any NSD-layout folder and model
(e.g. the real NSD with ``CompVis/stable-diffusion-v1-4``); ``brainldm
evaluate`` scores saved reconstructions; ``brainldm toy-world`` writes a toy
world.

Every stage (the loaded betas, the fitted reconstructor, the generated
images, the scores) is written atomically under ``--out`` and reused when
found there, so an interrupted run resumes where it stopped.
"""

import argparse
import contextlib
import hashlib
import json
import pickle
import re
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

from brainldm._io import atomic_savez, atomic_write
from brainldm._validation import check_int, subject_name

__all__ = ["encode", "evaluate", "main", "reconstruct"]

# Defaults of `brainldm demo`: under 3 minutes on 2 idle CPU cores (docs/reconstruction.md).
DEMO_N_IMAGES = 100
DEMO_STEPS = 25
DEMO_BATCH_SIZE = 16

# Modes in the order they are generated (cheapest first) and written.
_MODES = ("coarse", "z", "c", "zc")
_PROTOCOLS = ("pairwise", "takagi2023")
_FIGURE_ROWS = 12
_LABELS = {"coarse": "X_z"}
# Part of the fit's key: bump it when what LDMReconstructor.fit computes changes, so that a
# saved fit is not reused by a version that would fit otherwise. 2: the "train" rescaling
# statistics refit each fold at the decoder's chosen alphas.
_FIT_VERSION = 2
# Arrays of a reconstructions file that are not reconstructions.
_RECORDS = ("images", "subject", "model", "suite", "key")


def _digest(*parts):
    digest = hashlib.blake2b(digest_size=12)
    for part in parts:
        if isinstance(part, np.ndarray):
            part = np.ascontiguousarray(part).tobytes()
        digest.update(part if isinstance(part, bytes) else str(part).encode())
    return digest.hexdigest()


def _cached_npz(path, compute, log):
    """Load ``path`` if it exists, else compute a dict of arrays and save it."""
    path = Path(path)
    if path.exists():
        log(f"reusing {path}")
        with np.load(path) as saved:
            return {key: saved[key] for key in saved.files}
    arrays = compute()
    atomic_savez(path, arrays)
    return arrays


def _cached_fit(path, estimator, fit, log):
    """The fitted estimator pickled at ``path`` (the run's own output), else ``fit()``'s."""
    path = Path(path)
    if path.exists():
        log(f"reusing {path}")
        with open(path, "rb") as f:
            return pickle.load(f)
    fitted = fit(estimator)
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(pickle.dumps(fitted)))
    return fitted


def _write_npz(path, arrays):
    """Save ``name -> array (or a callable returning one)`` as ``.npz``, one array at a time."""

    def write(tmp):
        with zipfile.ZipFile(tmp, "w", allowZip64=True) as archive:
            for name, array in arrays.items():
                with archive.open(f"{name}.npy", "w", force_zip64=True) as f:
                    np.lib.format.write_array(f, np.asarray(array() if callable(array) else array))

    return atomic_write(path, write)


def _json(value):
    """``value`` with numpy scalars as Python numbers and NaN as None, for strict JSON."""
    if isinstance(value, dict):
        return {str(k): _json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json(v) for v in value]
    if isinstance(value, (np.integer, np.bool_)):
        return value.item()
    if isinstance(value, (float, np.floating)):
        return None if np.isnan(value) else float(value)
    return value


def _write_json(path, value):
    text = json.dumps(_json(value), indent=2, allow_nan=False)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text + "\n"))


def _write_csv(path, table):
    atomic_write(path, lambda tmp: table.to_csv(tmp, index=False))


def _chance_levels(metrics):
    """0.5 for the two-way identification metrics; none for the others."""
    from brainldm.metrics import METRICS

    return {m: 0.5 for m in metrics if METRICS[m].startswith("two-way identification")}


def _is_toy(model, device, dtype):
    from brainldm.features.ldm import load_ldm

    return str(model) == "toy" or bool(
        load_ldm(model, device=device, dtype=dtype).config.get("toy_world_fingerprint")
    )


def _scorer(settings, protocol):
    from brainldm.metrics import IdentificationScorer

    return IdentificationScorer(
        metrics=settings["metrics"],
        suite=settings["suite"],
        protocol=protocol,
        weights=settings["weights"],
        device=settings["device"],
        dtype=settings["dtype"],
        progress=settings["progress"],
    )


def _score(settings, seen, images):
    """Per-image scores of ``images`` by each protocol: ``"protocol__metric"`` -> array."""
    return {
        f"{protocol}__{metric}": np.asarray(values, np.float64)
        for protocol in _PROTOCOLS
        for metric, values in _scorer(settings, protocol).score(seen, images, True).items()
    }


def _reconstructor(data, settings):
    """An unfitted LDMReconstructor (z from early, c from ventral voxels) and its fit's key."""
    from brainldm.decoding import LatentDecoder, TextDecoder
    from brainldm.features.ldm import load_ldm
    from brainldm.reconstruction import LDMReconstructor
    from brainldm.ridge import TAKAGI2023

    early, ventral = data.roi_masks["early"], data.roi_masks["ventral"]
    common = dict(device=settings["device"], progress=settings["progress"])
    if settings["preset"] == "takagi2023":
        common |= TAKAGI2023  # the original's ridge: no intercept, its alphas, plain KFold
    reconstructor = LDMReconstructor(
        settings["model"],
        latent_decoder=LatentDecoder(voxels=early, **common),
        text_decoder=TextDecoder(voxels=ventral, **common),
        preset=settings["preset"],
        device=settings["device"],
        dtype=settings["dtype"],
    )
    model = load_ldm(settings["model"], device=settings["device"], dtype=settings["dtype"])
    key = _digest(
        _FIT_VERSION,
        settings["model"],
        model.fingerprint,
        settings["preset"],
        reconstructor.rescale,
        early,
        ventral,
        data.X_train,
        data.images_train,
    )
    return reconstructor, key


def _fit(reconstructor, data, path, settings, log):
    """Fit in mode zc, which fits both decoders (a mode needs a subset), or reuse the fit."""

    def fit(estimator):
        log(
            f"{data.subject}: fitting the z decoder on {int(data.roi_masks['early'].sum())} "
            f"early and the c decoder on {int(data.roi_masks['ventral'].sum())} ventral voxels "
            f"({len(data.X_train)} trials)"
        )
        # Each image once in memory: NSD shows a training image up to 3 times.
        unique, inverse = np.unique(data.images_train, return_inverse=True)
        pictures, texts = data.stimuli[unique], [data.captions[i] for i in unique]
        images, captions = [pictures[k] for k in inverse], [texts[k] for k in inverse]
        return estimator.fit(data.X_train, images, captions, groups=data.images_train)

    start = time.time()
    fitted = _cached_fit(path, reconstructor, fit, log)
    log(f"{data.subject}: fitted in {time.time() - start:.0f} s")
    # Generation settings do not change the fit, so a run that changes them reuses it.
    return fitted.set_params(
        steps=settings["steps"],
        strength=settings["strength"],
        guidance=settings["guidance"],
        n_samples=settings["n_samples"],
        batch_size=settings["batch_size"],
        device=settings["device"],
        dtype=settings["dtype"],
        cache_dir=path.parent / "images",
        progress=settings["progress"],
    )


def _run_subject(nsd_root, subject, settings, out, log, figure):
    """Fit, reconstruct in every mode and score one subject; write its reconstructions."""
    from brainldm.datasets.nsd import load_nsd
    from brainldm.reconstruction import select_samples

    cache = out / "cache"
    data = load_nsd(nsd_root, subject, progress=settings["progress"], cache_dir=cache)
    n = len(data.images_test) if settings["n_images"] is None else settings["n_images"]
    if n > len(data.images_test):
        raise ValueError(
            f"n_images={n} but {data.subject} has {len(data.images_test)} test images; "
            "give at most that many, or 'all'"
        )
    ids, X = data.images_test[:n], data.X_test[:n]
    log(
        f"{data.subject}: {len(data.X_train)} train trials, {len(data.images_test)} test images "
        f"({n} reconstructed), {data.X_train.shape[1]} voxels"
    )
    seen = data.stimuli[ids]
    reconstructor, fit_key = _reconstructor(data, settings)
    generation = {k: settings[k] for k in ("steps", "strength", "guidance", "n_samples", "preset")}
    key = _digest(
        fit_key,
        json.dumps(generation, sort_keys=True),
        settings["batch_size"],
        settings["suite"],
        settings["metrics"],
        ids,
    )
    score_paths = {mode: cache / f"scores-{data.subject}-{mode}-{key}.npz" for mode in _MODES}
    if not all(path.exists() for path in score_paths.values()):
        # Missing weights surface now, not after hours of generation.
        _score(settings, seen[:2], seen[:2, None])
    reconstructor = _fit(
        reconstructor, data, cache / f"fit-{data.subject}-{fit_key}.pkl", settings, log
    )
    scores, shown = {}, {}
    for mode in _MODES:
        start = time.time()
        images = reconstructor.set_params(mode=mode).predict(X)
        log(
            f"{data.subject}: mode {mode}, {images.shape[1]} per image, {time.time() - start:.0f} s"
        )
        scores[mode] = _cached_npz(
            score_paths[mode], lambda images=images: _score(settings, seen, images), log
        )
        if figure:
            rows = slice(0, min(_FIGURE_ROWS, n))
            shown[mode] = select_samples(images[rows], seen[rows], settings["selector"])[0]
    path = out / f"reconstructions-{data.subject}.npz"
    if _recorded_key(path) != key:

        def predict(mode):
            return lambda: reconstructor.set_params(mode=mode).predict(X)

        records = dict(images=ids, subject=data.subject, model=str(settings["model"]))
        records |= dict(suite=settings["suite"], key=key)
        _write_npz(path, records | {mode: predict(mode) for mode in _MODES})
        log(f"wrote {path}")
    if figure:
        shown["seen"] = seen[: len(shown["zc"])]
    return dict(images=ids, scores=scores, shown=shown)


def _recorded_key(path):
    if not Path(path).is_file():
        return None
    with np.load(path) as saved:
        return str(saved["key"]) if "key" in saved.files else None


def _summaries(results, settings):
    """Means (with SEM), per-subject means, per-image rows and the Wilcoxon tests."""
    import pandas as pd

    from brainldm.metrics import compare_modes, mean_and_sem

    rows, per_subject, comparisons = [], {}, {}
    for subject, result in results.items():
        per_subject[subject], comparisons[subject] = {}, {}
        for protocol in _PROTOCOLS:
            values = {
                mode: {
                    name.split("__", 1)[1]: array
                    for name, array in result["scores"][mode].items()
                    if name.startswith(f"{protocol}__")
                }
                for mode in _MODES
            }
            per_subject[subject][protocol] = {
                mode: {m: float(np.mean(v)) for m, v in metrics.items()}
                for mode, metrics in values.items()
            }
            table = compare_modes(values, pairs=(("zc", "z"), ("zc", "c")))
            comparisons[subject][protocol] = table.to_dict("records")
            for mode, metrics in values.items():
                for metric, array in metrics.items():
                    rows += [
                        (subject, int(image), mode, protocol, metric, float(value))
                        for image, value in zip(result["images"], array, strict=True)
                    ]
    table = pd.DataFrame(rows, columns=["subject", "image", "mode", "protocol", "metric", "value"])
    means = {}
    for protocol in _PROTOCOLS:
        means[protocol] = {}
        for mode in _MODES:
            if len(results) > 1:
                stats = mean_and_sem({s: per_subject[s][protocol][mode] for s in results})
            else:
                chosen = table[(table["protocol"] == protocol) & (table["mode"] == mode)]
                grouped = chosen.groupby("metric", sort=False)["value"]
                stats = pd.DataFrame(
                    {"mean": grouped.mean(), "sem": grouped.sem(), "n": grouped.size()}
                )
            means[protocol][mode] = stats.to_dict("index")
    return means, per_subject, comparisons, table


def _print_table(means, log):
    import pandas as pd

    for protocol, modes in means.items():
        frame = pd.DataFrame(
            {mode: {m: s["mean"] for m, s in v.items()} for mode, v in modes.items()}
        )
        log(f"{protocol} protocol (mean):\n{frame.T.round(3).to_string()}")


def _panels(means, field):
    """``{"<protocol> protocol": {mode label: {metric: means[...][field]}}}`` for the chart."""
    return {
        f"{protocol} protocol": {
            _LABELS.get(mode, mode): {metric: stats[field] for metric, stats in metrics.items()}
            for mode, metrics in modes.items()
        }
        for protocol, modes in means.items()
    }


def _write_figures(shown, means, chance, subjects, out):
    """The grid of the first subject's reconstructions and the identification chart."""
    from brainldm.plotting import identification_bars, image_grid

    columns = ["seen", *_MODES]
    # Toy images (64 px) are enlarged to be seen; SD's (512 px) shrunk to keep the file small.
    tile = int(np.clip(max(shown["zc"].shape[1:3]), 128, 256))
    names = [_LABELS.get(column, column) for column in columns]
    image_grid([shown[c] for c in columns], names, out / "reconstructions.png", tile)
    across = "subjects" if len(subjects) > 1 else "images"
    identification_bars(
        _panels(means, "mean"),
        _panels(means, "sem"),
        chance,
        title=f"{', '.join(subjects)}: mean and SEM across {across}; dashed: chance",
        path=out / "identification.png",
    )


def reconstruct(
    nsd_root,
    subjects,
    model,
    out,
    *,
    n_images=None,
    n_samples=5,
    steps=50,
    strength=0.8,
    guidance=5.0,
    batch_size=8,
    preset=None,
    suite=None,
    metrics=None,
    weights=None,
    device=None,
    dtype=None,
    progress=True,
    log=print,
):
    """Decode, reconstruct and score test images of NSD subjects; write figures and tables.

    For each subject: load the betas (:func:`~brainldm.datasets.nsd.load_nsd`),
    fit an :class:`~brainldm.reconstruction.LDMReconstructor` with ``z``
    decoded from early and ``c`` from ventral visual cortex, reconstruct the
    first ``n_images`` test images in modes ``coarse`` (``X_z``), ``z``,
    ``c`` and ``zc``, and score each mode with an
    :class:`~brainldm.metrics.IdentificationScorer` under both protocols:
    ``pairwise`` on each image's first sample, ``takagi2023`` on all of them.

    Writes under ``out``: ``reconstructions.png`` (the first subject's first
    12 images: seen, ``X_z``, ``z``, ``c``, ``zc``, of each mode the sample
    :func:`~brainldm.reconstruction.select_samples` picks),
    ``identification.png`` (the mean scores per protocol, mode and metric;
    error bars are standard errors across subjects when there are several,
    else across images), ``summary.json``, ``per_image.csv`` (subject,
    image, mode, protocol, metric, value) and ``reconstructions-SUBJ.npz``
    per subject (the 73k ``images`` and one array per mode, for
    :func:`evaluate`). Intermediate results live in ``out/cache`` and are
    reused, so a second call recomputes nothing.

    Parameters
    ----------
    nsd_root : str or path-like
        Folder in NSD's layout (the real NSD or a toy world).
    subjects : int, str or sequence of them
        Subjects, e.g. ``"subj01"`` or ``[1, 2, 5, 7]``.
    model : str or path-like
        ``"toy"``, a hub id or a local Stable Diffusion folder.
    out : str or path-like
        Output folder.
    n_images : int, default=None
        Test images reconstructed per subject (the first ones, in 73k order);
        None is all of them.
    n_samples, steps, strength, guidance, batch_size
        As :class:`~brainldm.reconstruction.LDMReconstructor`.
    preset : {"takagi2023"} or None, default=None
        ``"takagi2023"`` fits and generates as the original code: the
        decoders with :data:`brainldm.ridge.TAKAGI2023` and the
        reconstructor with ``preset="takagi2023"``.
    suite : str, default=None
        Metric suite of :data:`~brainldm.metrics.SUITES`; None is ``"toy"``
        for the toy model (and any trained on the toy world), else
        ``"braindiffuser"``, whose networks need their weights (see
        ``weights``).
    metrics : sequence of str, default=None
        Metrics of the suite; None is its list.
    weights : str, path-like or dict, default=None
        As :class:`~brainldm.metrics.IdentificationScorer`.
    device, dtype : str, default=None
        Where and in which precision the models run (e.g. ``"cuda"``,
        ``"float16"``); None is the CPU in float32.
    progress : bool, default=True
        Show progress bars.
    log : callable, default=print
        Where progress lines go.

    Returns
    -------
    summary : dict
        What ``summary.json`` holds: ``settings``, ``images`` (subject -> the
        73k index of each reconstructed image), ``scores`` (protocol ->
        mode -> metric -> ``mean``, ``sem``, ``n``), ``per_subject`` means,
        ``comparisons`` (subject -> protocol -> Wilcoxon tests of zc against z
        and c per metric, Holm corrected), ``chance`` and ``files``.
    """
    start = time.time()
    out = Path(out)
    subjects = [subject_name(s) for s in ([subjects] if np.ndim(subjects) == 0 else subjects)]
    if n_images is not None:
        check_int(n_images, "n_images", "reconstruct", min_val=2)
    if suite is None:
        suite = "toy" if _is_toy(model, device, dtype) else "braindiffuser"
    settings = dict(
        model=str(model),
        subjects=subjects,
        n_images=n_images,
        n_samples=n_samples,
        steps=steps,
        strength=strength,
        guidance=guidance,
        batch_size=batch_size,
        preset=preset,
        suite=suite,
        metrics=None if metrics is None else list(metrics),
        protocols=list(_PROTOCOLS),
        pairwise_sample=0,
        device=device,
        dtype=dtype,
    )
    hidden = dict(weights=weights, progress=progress, selector=_selector(suite, settings, weights))
    run = settings | hidden
    results = {}
    for k, subject in enumerate(subjects):
        results[subject] = _run_subject(nsd_root, subject, run, out, log, figure=k == 0)
    means, per_subject, comparisons, table = _summaries(results, settings)
    chance = _chance_levels(table["metric"].unique())
    _write_figures(results[subjects[0]]["shown"], means, chance, subjects, out)
    _write_csv(out / "per_image.csv", table)
    files = ["reconstructions.png", "identification.png", "summary.json", "per_image.csv"]
    files += [f"reconstructions-{s}.npz" for s in subjects]
    images = {subject: result["images"].tolist() for subject, result in results.items()}
    summary = dict(settings=settings, images=images, scores=means, per_subject=per_subject)
    summary |= dict(comparisons=comparisons, chance=chance, files=files)
    summary["seconds"] = round(time.time() - start, 1)
    _write_json(out / "summary.json", summary)
    _print_table(means, log)
    log(f"wrote {', '.join(str(out / f) for f in files[:4])} in {summary['seconds']:.0f} s")
    return _json(summary)


def _selector(suite, settings, weights):
    """The features in which the figure picks each image's closest sample."""
    if suite == "toy":
        return None  # select_samples' default, the toy perceptual network
    from brainldm.features.perceptual import CLIPVisionFeatures

    clip = weights.get("clip") if isinstance(weights, dict) else weights
    return CLIPVisionFeatures(weights=clip, device=settings["device"], dtype=settings["dtype"])


def _read_pngs(folder):
    """Images named ``<73k index>.png`` or ``<73k index>_<sample>.png``: ids and images."""
    from PIL import Image

    found = {}
    for path in sorted(Path(folder).glob("*.png")):
        match = re.fullmatch(r"(\d+)(?:_(\d+))?", path.stem)
        if match is None:
            raise ValueError(
                f"{path.name}: name reconstructions <73k index>.png or "
                "<73k index>_<sample>.png, e.g. 2950_0.png"
            )
        sample = int(match.group(2) or 0)
        found.setdefault(int(match.group(1)), {})[sample] = np.asarray(
            Image.open(path).convert("RGB")
        )
    if not found:
        raise FileNotFoundError(f"{folder} holds no .png reconstructions")
    counts = {len(samples) for samples in found.values()}
    if len(counts) != 1:
        raise ValueError(f"{folder}: every image needs as many samples, got {sorted(counts)}")
    ids = np.array(sorted(found))
    images = np.stack([np.stack([found[i][s] for s in sorted(found[i])]) for i in ids])
    return ids, {Path(folder).name: lambda: images}, {}


def _read_reconstructions(path):
    """73k ids, a loader per set of reconstructions by name, and what the file records."""
    path = Path(path)
    if path.is_dir():
        return _read_pngs(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is neither a reconstructions .npz nor a folder of PNGs")
    with np.load(path) as saved:
        if "images" not in saved.files:
            raise ValueError(
                f"{path} has no 'images' array (the 73k index of each reconstructed image); "
                f"it holds {saved.files}"
            )
        records = {k: saved[k].item() for k in ("subject", "model", "suite") if k in saved.files}
        ids, names = saved["images"].astype(np.int64), saved.files

    # One set in memory at a time: a subject's modes on real data are gigabytes each.
    def loader(name):
        def load():
            with np.load(path) as saved:
                return saved[name]

        return load

    return ids, {name: loader(name) for name in names if name not in _RECORDS}, records


def evaluate(
    reconstructions,
    nsd_root,
    *,
    subject=None,
    suite=None,
    metrics=None,
    protocols=_PROTOCOLS,
    weights=None,
    device=None,
    dtype=None,
    out=None,
    progress=True,
    log=print,
):
    """Score saved reconstructions against the seen images of an NSD-layout folder.

    Parameters
    ----------
    reconstructions : str or path-like
        A ``.npz`` with ``images`` (the 0-based 73k index of each image) and
        one array per set of reconstructions, of shape (n, n_samples, h, w, 3)
        or (n, h, w, 3), uint8 (as :func:`reconstruct` writes them); or a
        folder of PNGs named ``<73k index>.png`` or
        ``<73k index>_<sample>.png``, one set.
    nsd_root : str or path-like
        Folder in NSD's layout holding the seen images.
    subject : str, default=None
        Label of the scores; None is the one the file records.
    suite, metrics, weights, device, dtype
        As :class:`~brainldm.metrics.IdentificationScorer`; ``suite=None`` is
        the one the file records, else ``"braindiffuser"``.
    protocols : sequence of {"pairwise", "takagi2023"}, default=both
    out : str or path-like, default=None
        Output folder; None is the folder holding ``reconstructions``.
    progress : bool, default=True
    log : callable, default=print

    Returns
    -------
    summary : dict
        What ``<name>-evaluation.json`` holds: ``settings`` and ``scores``
        (protocol -> set -> metric -> ``mean``, ``sem`` across images, ``n``);
        ``<name>-evaluation.csv`` holds every image's value.
    """
    import pandas as pd

    from brainldm.datasets.nsd import NSDStimuli

    path = Path(reconstructions)
    ids, sets, records = _read_reconstructions(path)
    # NSD's layout (nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5, imgBrick).
    brick = Path(nsd_root) / "nsddata_stimuli" / "stimuli" / "nsd" / "nsd_stimuli.hdf5"
    if not brick.is_file():
        raise FileNotFoundError(
            f"{brick} not found: nsd_root must be an NSD-layout folder holding the seen images"
        )
    seen = NSDStimuli(brick)[ids]
    suite = suite or records.get("suite", "braindiffuser")
    subject = subject_name(subject) if subject is not None else records.get("subject")
    scoring = dict(suite=suite, metrics=None if metrics is None else list(metrics))
    scoring |= dict(weights=weights, device=device, dtype=dtype, progress=progress)
    rows = []
    for name, load in sets.items():
        images = load()
        for protocol in protocols:
            log(f"scoring {name} ({protocol} protocol)")
            for metric, values in _scorer(scoring, protocol).score(seen, images, True).items():
                rows += [
                    (subject, int(i), name, protocol, metric, float(v))
                    for i, v in zip(ids, values, strict=True)
                ]
    columns = ["subject", "image", "mode", "protocol", "metric", "value"]
    table = pd.DataFrame(rows, columns=columns)
    scores = {}
    for (protocol, name), group in table.groupby(["protocol", "mode"], sort=False):
        values = group.groupby("metric", sort=False)["value"]
        stats = pd.DataFrame({"mean": values.mean(), "sem": values.sem(), "n": values.size()})
        scores.setdefault(protocol, {})[name] = stats.to_dict("index")
    out = path.parent if out is None else Path(out)
    stem = path.name if path.is_dir() else path.stem
    settings = dict(reconstructions=str(path), subject=subject, suite=suite)
    settings |= dict(metrics=scoring["metrics"], protocols=list(protocols))
    settings |= dict(device=device, dtype=dtype)
    chance = _chance_levels(table["metric"].unique())
    summary = dict(settings=settings, scores=scores, chance=chance)
    _write_json(out / f"{stem}-evaluation.json", summary)
    _write_csv(out / f"{stem}-evaluation.csv", table)
    _print_table(scores, log)
    log(f"wrote {out / f'{stem}-evaluation.json'} and {out / f'{stem}-evaluation.csv'}")
    return _json(summary)


# Defaults of `brainldm encode`, measured on the toy world (docs/encoding_analyses.md).
ENCODE_STRENGTHS = (0.2, 0.4, 0.6, 0.8)
ENCODE_STEPS = 25
ENCODE_N_ITER = 20
# Voxels fitted together: the toy world's 4,884 in one chunk, NSD's ~15,700 nsdgeneral in two.
ENCODE_CHUNK_SIZE = 8192
# ROIs outlined on the brain maps and drawn in the line plots.
_OUTLINED = ("early", "ventral", "lateral", "parietal")
_PLOTTED = ("early", "midventral", "ventral", "lateral", "parietal", "nsdgeneral")


def _anatomy(nsd_root, subject):
    """NSD's anatomy in the functional space, if the folder has one (the toy world does)."""
    path = Path(nsd_root) / f"nsddata/ppdata/{subject}/func1pt8mm/T1_to_func1pt8mm.nii.gz"
    return path if path.exists() else None


def _line_figure(labels, summary, xlabel, title, path):
    """z_c's mean unique variance per ROI against strength or stage, with bootstrap SEs."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.0, 3.6))
    FigureCanvasAgg(figure)
    ax = figure.subplots()
    x = np.arange(len(labels))
    for roi in (r for r in _PLOTTED if r in summary[labels[0]]):
        mean = [summary[label][roi]["mean"]["unique_zc"] for label in labels]
        se = [summary[label][roi]["unique_zc_se"] for label in labels]
        ax.errorbar(x, mean, yerr=se, marker="o", capsize=3, label=roi)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xticks(x, labels)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("unique variance of z_c (r², mean)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, ncol=2)
    figure.set_layout_engine("constrained")
    atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=150))


def _layer_bars(result, title, path):
    """Per read step, the fraction of each ROI's significant voxels that each layer wins."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(3.2 * len(result.steps), 3.4))
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(result.steps), squeeze=False, sharey=True)[0]
    for ax, step in zip(axes, result.steps, strict=True):
        rois = [r for r in _PLOTTED if r in result.summary[step]]
        bottom = np.zeros(len(rois))
        for layer in result.layers:
            share = np.array(
                [result.summary[step][r]["best_fraction"][layer] for r in rois], dtype=float
            )
            ax.bar(rois, np.nan_to_num(share), bottom=bottom, label=layer)
            bottom += np.nan_to_num(share)
        ax.set_title(f"{step} step", fontsize=10)
        ax.tick_params(axis="x", rotation=60, labelsize=7)
    axes[0].set_ylabel("fraction of significant voxels best predicted")
    axes[-1].legend(fontsize=6)
    figure.suptitle(title, fontsize=10)
    figure.set_layout_engine("constrained")
    atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=150))


def _brain_figures(results, data, anatomy, folder):
    """The maps of Figures 6-9 on slices of the subject's volume, with the ROI outlines."""
    from brainldm.plotting import plot_brain_map

    contours = {roi: data.roi_masks[roi] for roi in _OUTLINED if roi in data.roi_masks}
    common = dict(masker=data.masker, bg_img=anatomy, contours=contours)
    if "representations" in results:
        result = results.representations
        for k, space in enumerate(result.spaces):
            plot_brain_map(
                result.r[k],
                significant=result.significant[k],
                vmax=float(np.nanmax(result.r)),
                title=f"{data.subject}: r of {space} (FDR q < 0.05)",
                path=folder / f"fig6_r_{space}.png",
                **common,
            )
    for name, number in (("noise_levels", 7), ("denoising_stages", 8)):
        if name in results:
            result = results[name]
            unique = result.unique["zc"]
            vmax = float(np.nanpercentile(np.abs(unique), 99)) or 1.0
            for k, label in enumerate(result.labels):
                plot_brain_map(
                    unique[k],
                    significant=result.significant[k],
                    vmax=vmax,
                    title=f"{data.subject}: unique variance of z_c, {label}",
                    path=folder / f"fig{number}_unique_zc_{label}.png",
                    **common,
                )
    if "unet_layers" in results:
        result = results.unet_layers
        for i, step in enumerate(result.steps):
            best = np.where(result.best_layer[i] >= 0, result.best_layer[i] + 1.0, np.nan)
            plot_brain_map(
                best,
                cmap="tab10",
                vmin=0.5,
                vmax=10.5,
                threshold=0.5,
                title=f"{data.subject}: best layer, {step} step (1-{len(result.layers)}: "
                f"{', '.join(result.layers)})",
                path=folder / f"fig9_best_layer_{step}.png",
                **common,
            )


@contextlib.contextmanager
def _torch_threads(n):
    """torch's intra-op threads set to ``n`` (None: unchanged) for the block."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(n or previous)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _encode_subject(nsd_root, subject, model, out, settings):
    """One subject's four analyses: maps, figures and its part of the summary."""
    from threadpoolctl import threadpool_limits

    from brainldm.datasets.nsd import load_nsd
    from brainldm.encoding import run_encoding_analyses
    from brainldm.maps import save_maps

    progress = settings["progress"]
    own = ("analyses", "threads", "average_train", "seed")
    analysis_settings = {k: v for k, v in settings.items() if k not in own}
    analysis_settings["random_state"] = settings["seed"]
    with threadpool_limits(settings["threads"]), _torch_threads(settings["threads"]):
        data = load_nsd(
            nsd_root,
            subject,
            average_train=settings["average_train"],
            progress=progress,
            cache_dir=out / "cache",
        )
        results = run_encoding_analyses(
            data,
            model,
            settings["analyses"],
            cache_dir=out / "cache" / data.subject,
            **analysis_settings,
        )
    folder = out / data.subject
    for name in settings["analyses"]:
        save_maps(results[name].map_values, data.masker, folder / "maps" / name)
    figures = folder / "figures"
    _brain_figures(results, data, _anatomy(nsd_root, data.subject), figures)
    if "noise_levels" in results:
        result = results.noise_levels
        _line_figure(
            list(result.labels),
            result.summary,
            "img2img strength",
            f"{data.subject}: z_c's unique variance against noise level",
            figures / "fig7_unique_zc_by_strength.png",
        )
    if "denoising_stages" in results:
        result = results.denoising_stages
        _line_figure(
            list(result.labels),
            result.summary,
            f"step of the strength-{results.features.stage_strength} chain",
            f"{data.subject}: z_c's unique variance along the denoising",
            figures / "fig8_unique_zc_by_stage.png",
        )
    if "unet_layers" in results:
        _layer_bars(
            results.unet_layers,
            f"{data.subject}: best U-Net layer per ROI",
            figures / "fig9_best_layer_by_roi.png",
        )
    summary = {name: results[name].summary for name in settings["analyses"]}
    summary["pool_size"] = results.features.pool_size
    summary["layers"] = list(results.features.layer_names)
    summary["seconds"] = results.seconds
    return data.subject, summary


def _dask_client(dask):
    """A dask.distributed client: ``dask`` local worker processes, or a scheduler's address."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError as error:
        raise RuntimeError(
            "--dask needs dask.distributed: pip install 'brainldm[distributed]'"
        ) from error
    if str(dask).isdigit():
        cluster = LocalCluster(n_workers=int(dask), threads_per_worker=1, processes=True)
        return Client(cluster)
    return Client(str(dask))


def encode(
    nsd_root,
    subjects,
    model,
    out,
    *,
    analyses=None,
    strengths=ENCODE_STRENGTHS,
    steps=ENCODE_STEPS,
    stage_strength=0.8,
    layers=None,
    pool_size="auto",
    n_components=6400,
    n_iter=ENCODE_N_ITER,
    chunk_size=ENCODE_CHUNK_SIZE,
    guidance=5.0,
    seed=42,
    batch_size=16,
    device=None,
    threads=1,
    average_train=True,
    dask=None,
    progress=True,
    log=print,
):
    """Run the paper's four encoding analyses on NSD subjects; write maps, figures and a summary.

    For each subject, :func:`brainldm.encoding.run_encoding_analyses`: (i)
    encoders from ``z``, ``c`` and ``z_c``; (ii) ``z_c``'s unique variance in a
    ``[z, z_c]`` banded ridge against img2img strength; (iii) the same along
    the steps of the ``stage_strength`` chain; (iv) the best U-Net layer per
    voxel at the early, middle and late steps. Every setting is checked
    before any work.

    Writes under ``out``: ``SUBJ/maps/ANALYSIS/*.nii.gz`` (every per-voxel
    map, float32 in the subject's functional space), ``SUBJ/figures/``
    (``fig6_r_*.png``, ``fig7_unique_zc_*.png``,
    ``fig7_unique_zc_by_strength.png``, ``fig8_*``, ``fig9_best_layer_*.png``
    and ``fig9_best_layer_by_roi.png``, mirroring the paper's Figures 6-9)
    and ``summary.json`` (settings, wall seconds per analysis, and per
    subject, analysis and ROI the paired comparisons of
    :func:`brainldm.encoding.summarize_paired`). Features, PCA scores, voxel
    chunks and finished analyses are cached under ``out/cache``, so an
    interrupted run resumes and a finished one recomputes nothing.

    Parameters
    ----------
    nsd_root : str, path-like or None
        Folder in NSD's layout (the real NSD or a toy world); None makes the
        default toy world under ``out/toy_nsd`` (after the settings are checked).
    subjects : int, str or sequence of them
        Subjects, e.g. ``["subj01", "subj02"]``.
    model : str, path-like or StableDiffusion
        ``"toy"``, a hub id such as ``CompVis/stable-diffusion-v1-4`` or a folder.
    out : str or path-like
        Output folder.
    analyses : sequence of str, default=None
        Among :data:`brainldm.encoding.ANALYSES`; None runs all four.
    strengths, steps, stage_strength, layers, pool_size, n_components, n_iter, chunk_size, guidance, seed, batch_size, device
        As in :func:`brainldm.encoding.run_encoding_analyses`; the defaults
        (4 strengths, 25 steps, ``n_iter=20``) were measured on the toy world.
    average_train : bool, default=True
        Fit on each training image's mean betas (one row per image) rather
        than on single trials: the banded ridge's cost grows with the rows,
        and on the toy world one [z, z_c] partition took over 5 minutes on
        the 2,359 single trials.
    threads : int or None, default=1
        Threads of torch and of the BLAS libraries during each subject's
        run (None: their defaults). One is the default because on a 2-core
        machine shared with other work, two threads spin against each other:
        measured with other jobs running, a toy denoising pass took 53 s with
        two torch threads and 3.1 s with one, and a banded ridge fit 34 s
        with two OpenBLAS threads and 0.9 s with one. On a machine of your
        own, give its cores.
    dask : int or str, default=None
        Run one subject per dask worker: a number of local worker processes,
        or the address of a running scheduler (e.g. a dask-jobqueue cluster's).
    progress : bool, default=True
        Show progress bars (not on dask workers).
    log : callable, default=print
        Receives progress messages.

    Returns
    -------
    summary : dict
        What ``summary.json`` holds.
    """
    from brainldm.encoding import ANALYSES, check_encoding_settings

    out = Path(out)
    subjects = [
        subject_name(s) for s in ([subjects] if isinstance(subjects, (str, int)) else subjects)
    ]
    settings = dict(
        analyses=check_encoding_settings(
            model,
            ANALYSES if analyses is None else analyses,
            strengths=strengths,
            steps=steps,
            stage_strength=stage_strength,
            layers=layers,
            pool_size=pool_size,
        ),
        strengths=tuple(strengths),
        steps=steps,
        stage_strength=stage_strength,
        layers=layers,
        pool_size=pool_size,
        n_components=n_components,
        n_iter=n_iter,
        chunk_size=chunk_size,
        guidance=guidance,
        seed=seed,
        batch_size=batch_size,
        device=device,
        threads=threads,
        average_train=average_train,
        progress=progress,
    )
    if nsd_root is None:
        from brainldm.datasets.toy import make_toy_nsd

        nsd_root = make_toy_nsd(out / "toy_nsd", progress=progress)
    started = time.time()
    if dask is None:
        results = [_encode_subject(nsd_root, s, model, out, settings) for s in subjects]
    else:
        with _dask_client(dask) as client:
            log(f"dask: {len(subjects)} subjects on {client}")
            remote = dict(settings, progress=False)
            futures = [
                client.submit(_encode_subject, nsd_root, s, model, out, remote, pure=False)
                for s in subjects
            ]
            results = client.gather(futures)
    summary = {
        "settings": dict(settings, model=str(model), nsd_root=str(nsd_root), dask=dask),
        "seconds": time.time() - started,
        "subjects": dict(results),
    }
    _write_json(out / "summary.json", summary)
    for subject, part in summary["subjects"].items():
        seconds = ", ".join(f"{k} {v:.0f} s" for k, v in part["seconds"].items())
        log(f"{subject}: {seconds}")
    log(f"wrote {out / 'summary.json'} and the maps and figures under {out}")
    return summary


def _count(value):
    """``--n-images``: a count of at least 2, or ``all`` (None)."""
    if value == "all":
        return None
    try:
        count = int(value)
    except ValueError:
        count = 0
    if count < 2:
        raise argparse.ArgumentTypeError(f"expected 'all' or an integer >= 2, got {value!r}")
    return count


def _subjects(value):
    """``--subjects``: ``all`` (the paper's four) or a comma-separated list."""
    from brainldm.datasets.toy import SUBJECTS

    if value == "all":
        return list(SUBJECTS)
    try:
        return [subject_name(s) for s in value.split(",")]
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def _names(value):
    return [name.strip() for name in value.split(",") if name.strip()]


def _encode_parser(commands):
    """The options of ``brainldm encode``."""
    enc = commands.add_parser("encode", help="the paper's four encoding analyses (Figures 6-9)")
    enc.add_argument(
        "--nsd-root", default=None, help="NSD folder (default: the toy world, made under --out)"
    )
    enc.add_argument("--model", default="toy", help='"toy", a hub id or a local SD folder')
    enc.add_argument("--out", default="brainldm-encode", help="output folder")
    enc.add_argument(
        "--subjects",
        "--subject",
        type=_subjects,
        default=["subj01"],
        help="e.g. subj01, 1,2 or all (subj01, subj02, subj05, subj07)",
    )
    enc.add_argument(
        "--analyses",
        type=_names,
        default=None,
        help="comma-separated among representations, noise_levels, denoising_stages, "
        "unet_layers (default: all four)",
    )
    enc.add_argument(
        "--strengths",
        type=lambda v: [float(x) for x in _names(v)],
        default=list(ENCODE_STRENGTHS),
        help="img2img strengths (default: 0.2,0.4,0.6,0.8)",
    )
    enc.add_argument(
        "--steps", type=int, default=ENCODE_STEPS, help="DDIM steps (default: %(default)s)"
    )
    enc.add_argument("--stage-strength", type=float, default=0.8, help="chain read at its steps")
    enc.add_argument(
        "--layers",
        type=_names,
        default=None,
        help="U-Net modules, e.g. down_blocks.0,mid_block (default: the model's five)",
    )
    enc.add_argument(
        "--pool-size",
        default="auto",
        type=lambda v: v if v == "auto" else int(v),
        help="pooling grid of the U-Net activations (default: auto, keeping n-components values)",
    )
    enc.add_argument("--n-components", type=int, default=6400, help="PCA size (default: 6400)")
    enc.add_argument(
        "--n-iter",
        type=int,
        default=ENCODE_N_ITER,
        help="banded ridge's random-search iterations (default: %(default)s)",
    )
    enc.add_argument(
        "--chunk-size",
        type=int,
        default=ENCODE_CHUNK_SIZE,
        help="voxels fitted (and saved) together (default: %(default)s)",
    )
    enc.add_argument("--seed", type=int, default=42, help="seed of the img2img noise")
    enc.add_argument("--batch-size", type=int, default=16, help="images denoised at once")
    enc.add_argument("--device", default=None, help="e.g. cuda; default: cpu")
    enc.add_argument(
        "--single-trials",
        action="store_true",
        help="fit on single trials, not on each training image's mean betas",
    )
    enc.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch and BLAS threads (default: 1, robust on a shared 2-core machine)",
    )
    enc.add_argument(
        "--dask",
        default=None,
        help="one subject per dask worker: a number of local workers or a scheduler address",
    )


def _parser():
    parser = argparse.ArgumentParser(prog="brainldm", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    def scoring_options(sub):
        sub.add_argument(
            "--suite",
            default=None,
            help="metric suite (default: toy for toy models, else braindiffuser)",
        )
        sub.add_argument(
            "--metrics", type=_names, default=None, help="comma-separated metrics of the suite"
        )
        sub.add_argument(
            "--weights", default=None, help="folder of the perceptual networks' weights"
        )
        sub.add_argument("--device", default=None, help="e.g. cuda; default: cpu")
        sub.add_argument("--dtype", default=None, help="e.g. float16; default: float32")

    def generation_options(sub, n_images, steps, batch_size):
        sub.add_argument(
            "--subjects",
            "--subject",
            type=_subjects,
            default=["subj01"],
            help="e.g. subj01, 1,2 or all (subj01, subj02, subj05, subj07)",
        )
        sub.add_argument(
            "--n-images",
            type=_count,
            default=n_images,
            help="test images per subject, or all (default: %(default)s)",
        )
        sub.add_argument(
            "--n-samples",
            type=int,
            default=5,
            help="samples per image (default: 5, as the paper)",
        )
        sub.add_argument(
            "--steps", type=int, default=steps, help="DDIM steps (default: %(default)s)"
        )
        sub.add_argument("--strength", type=float, default=0.8)
        sub.add_argument("--guidance", type=float, default=5.0)
        sub.add_argument(
            "--batch-size", type=int, default=batch_size, help="samples denoised at once"
        )
        sub.add_argument(
            "--preset",
            choices=("takagi2023",),
            default=None,
            help="fit and generate as the original code",
        )
        scoring_options(sub)

    demo = commands.add_parser("demo", help="the method end to end on the toy world")
    demo.add_argument("--out", default="brainldm-demo", help="output folder")
    demo.add_argument("--seed", type=int, default=0, help="toy world seed")
    generation_options(demo, DEMO_N_IMAGES, DEMO_STEPS, DEMO_BATCH_SIZE)

    world = commands.add_parser("toy-world", help="write a simulated NSD")
    world.add_argument("root")
    world.add_argument("--seed", type=int, default=0)

    rec = commands.add_parser(
        "reconstruct", help="decode, reconstruct and score from an NSD folder"
    )
    rec.add_argument("nsd_root")
    rec.add_argument("--model", default="toy", help='"toy", a hub id or a local SD folder')
    rec.add_argument("--out", required=True)
    generation_options(rec, None, 50, 8)

    ev = commands.add_parser("evaluate", help="score saved reconstructions")
    ev.add_argument("reconstructions", help="a reconstructions .npz or a folder of PNGs")
    ev.add_argument("--nsd-root", required=True)
    ev.add_argument("--subject", default=None, help="label of the scores")
    ev.add_argument("--protocol", choices=(*_PROTOCOLS, "both"), default="both")
    ev.add_argument("--out", default=None, help="output folder (default: next to the input)")
    scoring_options(ev)

    _encode_parser(commands)
    return parser


def main(argv=None):
    """Entry point of the ``brainldm`` command."""
    args = _parser().parse_args(argv)
    options = vars(args)
    scoring = {k: options.get(k) for k in ("suite", "metrics", "weights", "device", "dtype")}
    try:
        if args.command == "toy-world":
            from brainldm.datasets.toy import make_toy_nsd

            print(make_toy_nsd(args.root, seed=args.seed))
        elif args.command == "encode":
            encode(
                args.nsd_root,
                args.subjects,
                args.model,
                args.out,
                analyses=args.analyses,
                strengths=args.strengths,
                steps=args.steps,
                stage_strength=args.stage_strength,
                layers=args.layers,
                pool_size=args.pool_size,
                n_components=args.n_components,
                n_iter=args.n_iter,
                chunk_size=args.chunk_size,
                seed=args.seed,
                batch_size=args.batch_size,
                device=args.device,
                threads=args.threads,
                average_train=not args.single_trials,
                dask=args.dask,
            )
        elif args.command == "evaluate":
            protocols = _PROTOCOLS if args.protocol == "both" else (args.protocol,)
            evaluate(
                args.reconstructions,
                args.nsd_root,
                subject=args.subject,
                protocols=protocols,
                out=args.out,
                **scoring,
            )
        else:
            if args.command == "demo":
                from brainldm.datasets.toy import make_toy_nsd

                nsd_root = make_toy_nsd(Path(args.out) / "toy_nsd", seed=args.seed)
                model = "toy"
            else:
                nsd_root, model = args.nsd_root, args.model
            reconstruct(
                nsd_root,
                args.subjects,
                model,
                args.out,
                n_images=args.n_images,
                n_samples=args.n_samples,
                steps=args.steps,
                strength=args.strength,
                guidance=args.guidance,
                batch_size=args.batch_size,
                preset=args.preset,
                **scoring,
            )
    except (FileNotFoundError, ValueError, RuntimeError) as error:
        print(f"brainldm: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
