"""The decoding half: fit, reconstruct, score and draw, per subject, resumably."""

import time
from pathlib import Path

import numpy as np

from brainldm._cache import check_cache, digest
from brainldm._docs import fill_doc
from brainldm._io import check_writable, write_csv, write_json, write_npz
from brainldm._validation import check_int, check_number, check_options, subject_name
from brainldm.metrics.identification import PROTOCOLS
from brainldm.workflows import _summaries
from brainldm.workflows._cost import announce_reconstruct
from brainldm.workflows._results import ReconstructionResult

__all__ = ["DEMO_BATCH_SIZE", "DEMO_N_IMAGES", "DEMO_STEPS", "demo", "reconstruct"]

# Defaults of the demo: under 3 minutes on 2 idle CPU cores (docs/reconstruction.md).
DEMO_N_IMAGES = 100
DEMO_STEPS = 25
DEMO_BATCH_SIZE = 16

# Modes in the order they are generated (cheapest first) and written.
_MODES = ("coarse", "z", "c", "zc")
_FIGURE_ROWS = 12
# Arrays of a reconstructions file that are not reconstructions.
RECORDS = ("images", "subject", "model", "suite", "key")


def _subjects(subjects):
    return [subject_name(s) for s in ([subjects] if np.ndim(subjects) == 0 else subjects)]


def _settings(given, caller):
    """The settings ``summary.json`` records, from a workflow's arguments, every one checked."""
    from brainldm.features.ldm import load_ldm
    from brainldm.metrics import SUITES

    subjects = _subjects(given["subjects"])
    if given["n_images"] is not None:
        check_int(given["n_images"], "n_images", caller, min_val=2)
    for name in ("n_samples_per_image", "steps", "batch_size"):
        check_int(given[name], name, caller, min_val=1)
    check_number(given["strength"], "strength", caller, min_val=0, max_val=1, closed="right")
    check_number(given["guidance"], "guidance", caller, min_val=0)
    check_options(given["preset"], "preset", caller, ("takagi2023", None))
    suite = given["suite"]
    if suite is None:
        sd = load_ldm(given["model"], device=given["device"], dtype=given["dtype"])
        suite = "toy" if sd.trained_on_toy_world else "braindiffuser"
    check_options(suite, "suite", caller, tuple(SUITES))
    metrics = given["metrics"]
    return dict(
        model=str(given["model"]),
        subjects=subjects,
        n_images=given["n_images"],
        n_samples_per_image=given["n_samples_per_image"],
        steps=given["steps"],
        strength=given["strength"],
        guidance=given["guidance"],
        batch_size=given["batch_size"],
        preset=given["preset"],
        suite=suite,
        metrics=None if metrics is None else list(metrics),
        protocols=list(PROTOCOLS),
        pairwise_sample=0,
        device=given["device"],
        dtype=given["dtype"],
    )


def _reconstructor(data, settings):
    """An unfitted LDMReconstructor: z decoded from early, c from ventral voxels."""
    from brainldm.decoding import LatentDecoder, TextDecoder
    from brainldm.reconstruction import LDMReconstructor
    from brainldm.ridge import TAKAGI2023

    common = dict(device=settings["device"], progress=settings["progress"])
    if settings["preset"] == "takagi2023":
        common |= TAKAGI2023  # the original's ridge: no intercept, its alphas, plain KFold
    return LDMReconstructor(
        settings["model"],
        latent_decoder=LatentDecoder(voxels=data.roi_masks["early"], **common),
        text_decoder=TextDecoder(voxels=data.roi_masks["ventral"], **common),
        preset=settings["preset"],
        metric=_own_metric(settings),
        device=settings["device"],
        dtype=settings["dtype"],
    )


def _own_metric(settings):
    """The fitted reconstructor's ``metric``: an identification metric that the run scores.

    The reconstructor's ``score`` (for a later grid search on the saved fit) then uses
    one of the run's own metrics, so that fitting needs no network weights that the run
    does not.
    """
    metrics = settings["metrics"]
    if not metrics:  # the toy suite's identification metric, else the model's default
        return "toy_embedding" if settings["suite"] == "toy" else None
    pixels = ("pixcorr", "ssim", "ssim_braindiffuser")
    return next((m for m in metrics if isinstance(m, str) and m not in pixels), metrics[0])


def _generation(settings, images):
    """The reconstructor's generation parameters: changing them does not change its fit."""
    return dict(
        steps=settings["steps"],
        strength=settings["strength"],
        guidance=settings["guidance"],
        n_samples_per_image=settings["n_samples_per_image"],
        batch_size=settings["batch_size"],
        device=settings["device"],
        dtype=settings["dtype"],
        memory=images,
        progress=settings["progress"],
    )


def _fit_key(reconstructor, data, settings):
    """What the fit depends on: data, model weights, settings (the cache adds the version)."""
    from brainldm.features.ldm import load_ldm

    model = load_ldm(settings["model"], device=settings["device"], dtype=settings["dtype"])
    return digest(
        settings["model"],
        model.fingerprint,
        settings["preset"],
        reconstructor.rescale,
        data.roi_masks["early"],
        data.roi_masks["ventral"],
        data.X_train,
        data.images_train,
    )


def _fit(reconstructor, data, key, cache, settings, log):
    """Fit in mode zc, which fits both decoders (a mode needs a subset), or reuse the fit."""

    def fit():
        log(
            f"{data.subject}: fitting the z decoder on {int(data.roi_masks['early'].sum())} "
            f"early and the c decoder on {int(data.roi_masks['ventral'].sum())} ventral voxels "
            f"({len(data.X_train)} trials)"
        )
        # Each image once in memory: NSD shows a training image up to 3 times.
        unique, inverse = np.unique(data.images_train, return_inverse=True)
        pictures, texts = data.stimuli[unique], [data.captions[i] for i in unique]
        images, captions = [pictures[k] for k in inverse], [texts[k] for k in inverse]
        return reconstructor.fit(data.X_train, images, captions, groups=data.images_train)

    start = time.time()
    fitted = cache.object(f"fit-{data.subject}", [key], fit, log)
    log(f"{data.subject}: fitted in {time.time() - start:.0f} s")
    return fitted.set_params(**_generation(settings, cache.location / "images"))


def _load(nsd_root, subject, settings, cache):
    """A subject's data, checking that it has the test images asked for."""
    from brainldm.datasets.nsd import load_nsd

    data = load_nsd(nsd_root, subject, progress=settings["progress"], cache_dir=cache.location)
    n = settings["n_images"]
    if n is not None and n > len(data.images_test):
        raise ValueError(
            f"n_images={n} but {data.subject} has {len(data.images_test)} test images; "
            "give at most that many, or 'all'"
        )
    return data


def _run_subject(data, settings, cache, log, figure):
    """Fit, reconstruct in every mode and score one subject; write its reconstructions."""
    from brainldm.reconstruction import select_samples

    n = len(data.images_test) if settings["n_images"] is None else settings["n_images"]
    ids, X = data.images_test[:n], data.X_test[:n]
    log(
        f"{data.subject}: {len(data.X_train)} train trials, {len(data.images_test)} test images "
        f"({n} reconstructed), {data.X_train.shape[1]} voxels"
    )
    seen = data.stimuli[ids]
    reconstructor = _reconstructor(data, settings)
    fit_key = _fit_key(reconstructor, data, settings)
    generation = {
        k: settings[k] for k in ("steps", "strength", "guidance", "n_samples_per_image", "preset")
    }
    scoring = (settings["batch_size"], settings["suite"], settings["metrics"], ids)
    key = digest(fit_key, generation, *scoring)
    labels = {mode: f"scores-{data.subject}-{mode}" for mode in _MODES}
    if not all(cache.path(labels[mode], [key]).exists() for mode in _MODES):
        # Missing weights surface now, not after hours of generation.
        _summaries.score(settings, seen[:2], seen[:2, None])
    reconstructor = _fit(reconstructor, data, fit_key, cache, settings, log)
    scores, shown = {}, {}
    for mode in _MODES:
        start = time.time()
        images = reconstructor.set_params(mode=mode).predict(X)
        log(
            f"{data.subject}: mode {mode}, {images.shape[1]} per image, {time.time() - start:.0f} s"
        )

        def compute(images=images):
            found = _summaries.score(settings, seen, images)
            return {f"{p}__{m}": v for p, metrics in found.items() for m, v in metrics.items()}

        flat = cache.arrays(labels[mode], [key], compute, log)
        scores[mode] = {p: {} for p in PROTOCOLS}
        for name, values in flat.items():
            protocol, metric = name.split("__", 1)
            scores[mode][protocol][metric] = values
        if figure:
            rows = slice(0, min(_FIGURE_ROWS, n))
            shown[mode] = select_samples(images[rows], seen[rows], settings["selector"])[0]
    path = Path(settings["out"]) / f"reconstructions-{data.subject}.npz"
    if _recorded_key(path) != key:

        def predict(mode):
            return lambda: reconstructor.set_params(mode=mode).predict(X)

        records = dict(images=ids, subject=data.subject, model=str(settings["model"]))
        records |= dict(suite=settings["suite"], key=key)
        write_npz(path, records | {mode: predict(mode) for mode in _MODES})
        log(f"wrote {path}")
    if figure:
        shown = {"seen": seen[: len(shown["zc"])]} | shown
    return dict(images=ids, scores=scores, shown=shown)


def _recorded_key(path):
    if not Path(path).is_file():
        return None
    with np.load(path) as saved:
        return str(saved["key"]) if "key" in saved.files else None


def _summaries_of(results):
    """Per-image table, means (across subjects when several), per-subject means, comparisons."""
    import pandas as pd

    from brainldm.metrics import compare_modes, mean_and_sem

    rows, per_subject, comparisons, tables = [], {}, {}, []
    for subject, result in results.items():
        per_subject[subject], comparisons[subject] = {}, {}
        for protocol in PROTOCOLS:
            values = {mode: result["scores"][mode][protocol] for mode in _MODES}
            per_subject[subject][protocol] = {
                mode: {m: float(np.mean(v)) for m, v in metrics.items()}
                for mode, metrics in values.items()
            }
            table = compare_modes(values, pairs=(("zc", "z"), ("zc", "c")))
            comparisons[subject][protocol] = table.to_dict("records")
            tables.append(table.assign(subject=subject, protocol=protocol))
            for mode, metrics in values.items():
                rows += _summaries.rows(subject, result["images"], mode, {protocol: metrics})
    table = pd.DataFrame(rows, columns=_summaries.COLUMNS)
    if len(results) > 1:
        means = {
            protocol: {
                mode: mean_and_sem({s: per_subject[s][protocol][mode] for s in results}).to_dict(
                    "index"
                )
                for mode in _MODES
            }
            for protocol in PROTOCOLS
        }
    else:
        means = _summaries.image_means(table)
    tested = pd.concat(tables, ignore_index=True)
    front = ["subject", "protocol"]
    tested = tested[front + [c for c in tested.columns if c not in front]]
    return means, per_subject, comparisons, table, tested


def _selector(settings):
    """The features in which the figure picks each image's closest sample."""
    if settings["suite"] == "toy":
        return None  # select_samples' default, the toy perceptual network
    from brainldm.features.perceptual import CLIPVisionFeatures

    weights = settings["weights"]
    clip = weights.get("clip") if isinstance(weights, dict) else weights
    return CLIPVisionFeatures(weights=clip, device=settings["device"], dtype=settings["dtype"])


def _run(nsd_root, settings, given):
    """Reconstruct and score every subject of checked ``settings``; write figures and tables.

    ``given`` holds the workflow's other arguments: ``out``, ``memory``, ``weights``,
    ``progress`` and ``log``.
    """
    start = time.time()
    out = Path(given["out"])
    cache = check_cache(out / "cache" if given["memory"] is None else given["memory"])
    if cache.location is None:
        raise ValueError("memory must be a folder or a joblib.Memory with a location, got None")
    log = given["log"] or (lambda line: None)
    run = settings | dict(weights=given["weights"], progress=given["progress"], out=out)
    run["selector"] = _selector(run)
    subjects = settings["subjects"]
    # Every subject is loaded, and its test set checked, before any subject is fitted.
    loaded = [_load(nsd_root, subject, run, cache) for subject in subjects]
    announce_reconstruct(loaded, run, log)
    results = {}
    for k, (subject, data) in enumerate(zip(subjects, loaded, strict=True)):
        results[subject] = _run_subject(data, run, cache, log, figure=k == 0)
    means, per_subject, comparisons, table, tested = _summaries_of(results)
    chance = _summaries.chance_levels(table["metric"].unique())
    files = ["reconstructions.png", "identification.png", "summary.json", "per_image.csv"]
    files += [f"reconstructions-{s}.npz" for s in subjects]
    images = {subject: result["images"].tolist() for subject, result in results.items()}
    summary = dict(settings=settings, images=images, scores=means, per_subject=per_subject)
    summary |= dict(comparisons=comparisons, chance=chance, files=files)
    result = ReconstructionResult(
        summary=summary,
        scores=table,
        means=_summaries.means_frame(means),
        files=[out / name for name in files],
        comparisons=tested,
        shown=results[subjects[0]]["shown"],
    )
    result.plot_reconstructions(out / "reconstructions.png")
    result.plot_identification(out / "identification.png")
    write_csv(out / "per_image.csv", table)
    summary["seconds"] = round(time.time() - start, 1)
    result.summary = write_json(out / "summary.json", summary)
    return result


@fill_doc
def reconstruct(
    nsd_root,
    subjects,
    model,
    out,
    *,
    n_images=None,
    n_samples_per_image=5,
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
    memory=None,
    progress=False,
    log=None,
):
    """Decode, reconstruct and score test images of NSD subjects; write figures and tables.

    For each subject: load the betas (:func:`~brainldm.datasets.nsd.load_nsd`),
    fit an :class:`~brainldm.reconstruction.LDMReconstructor` with ``z``
    decoded from early and ``c`` from ventral visual cortex, reconstruct the
    first ``n_images`` test images in modes ``coarse`` (``X_z``), ``z``,
    ``c`` and ``zc``, and score each mode with an
    :class:`~brainldm.metrics.IdentificationScorer` under both protocols:
    ``pairwise`` on each image's first sample, ``takagi2023`` on all of them.
    Every setting is checked before any work (``out`` and ``memory`` too:
    a folder that cannot be written raises a ValueError naming it), and
    every subject's test set before any fit.

    Writes under ``out``: ``reconstructions.png`` (the first subject's first
    12 images: seen, ``X_z``, ``z``, ``c``, ``zc``, of each mode the sample
    :func:`~brainldm.reconstruction.select_samples` picks),
    ``identification.png`` (the mean scores per protocol, mode and metric;
    error bars are standard errors across subjects when there are several,
    else across images), ``summary.json``, ``per_image.csv`` (subject,
    image, mode, protocol, metric, value) and ``reconstructions-SUBJ.npz``
    per subject (the 73k ``images`` and one array per mode, for
    :func:`evaluate`). The fit, the generated images and the scores are
    cached (in ``out/cache`` by default), so a second call, from Python or
    from the ``brainldm`` command, recomputes nothing.

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
    n_samples_per_image, steps, strength, guidance, batch_size
        As :class:`~brainldm.reconstruction.LDMReconstructor`.
    preset : {"takagi2023"} or None, default=None
        ``"takagi2023"`` fits and generates as the original code: the
        decoders with :data:`brainldm.ridge.TAKAGI2023` and the
        reconstructor with ``preset="takagi2023"``.
    suite : str, default=None
        Metric suite of :data:`~brainldm.metrics.SUITES`; None is ``"toy"``
        for a model trained on the toy world
        (:attr:`~brainldm.diffusion.StableDiffusion.trained_on_toy_world`),
        else ``"braindiffuser"``, whose networks need their weights (see
        ``weights``).
    metrics : sequence of str, default=None
        Metrics of the suite; None is its list.
    weights : str, path-like or dict, default=None
        As :class:`~brainldm.metrics.IdentificationScorer`.
    device, dtype : str, default=None
        Where and in which precision the models run (e.g. ``"cuda"``,
        ``"float16"``); None is the CPU in float32.
    %(workflow_memory)s
    %(workflow_log)s

    Returns
    -------
    result : ReconstructionResult
        The per-image scores, the means, the tests between modes, the
        summary written to ``summary.json`` and the paths written.

    Examples
    --------
    >>> from brainldm.workflows import reconstruct
    >>> result = reconstruct("toy_nsd", "subj01", "toy", "out", n_images=10)  # doctest: +SKIP
    >>> print(result.report())  # doctest: +SKIP
    """
    given = locals()
    for folder in ("out", "memory"):
        check_writable(given[folder], folder, "reconstruct")
    return _run(nsd_root, _settings(given, "reconstruct"), given)


def demo(
    out="brainldm-demo",
    *,
    seed=0,
    subjects="subj01",
    n_images=DEMO_N_IMAGES,
    n_samples_per_image=5,
    steps=DEMO_STEPS,
    strength=0.8,
    guidance=5.0,
    batch_size=DEMO_BATCH_SIZE,
    preset=None,
    suite=None,
    metrics=None,
    weights=None,
    device=None,
    dtype=None,
    memory=None,
    progress=False,
    log=None,
):
    """The method end to end on the toy world: what ``brainldm demo`` runs.

    Writes the toy world (:func:`~brainldm.datasets.toy.make_toy_nsd`) under
    ``out/toy_nsd`` and runs :func:`reconstruct` on it with the shipped toy
    model. The defaults (100 images, 25 steps) take under 3 minutes on 2 CPU
    cores; docs/reconstruction.md shows the table they give.

    Parameters
    ----------
    out : str or path-like, default="brainldm-demo"
        Output folder.
    seed : int, default=0
        Seed of the toy world.
    subjects, n_images, n_samples_per_image, steps, strength, guidance, batch_size, preset, suite, metrics, weights, device, dtype, memory, progress, log
        As :func:`reconstruct`.

    Returns
    -------
    result : ReconstructionResult

    Examples
    --------
    >>> from brainldm.workflows import demo
    >>> result = demo("brainldm-demo")  # doctest: +SKIP
    >>> result.mean_table("pairwise").loc["zc", "toy_embedding"]  # doctest: +SKIP
    0.769
    """
    given = dict(locals(), model="toy")
    for folder in ("out", "memory"):
        check_writable(given[folder], folder, "demo")
    settings = _settings(given, "demo")
    from brainldm.datasets.toy import make_toy_nsd

    nsd_root = make_toy_nsd(Path(out) / "toy_nsd", seed=seed, progress=progress)
    return _run(nsd_root, settings, given)
