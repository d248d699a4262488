"""The encoding half: the paper's four analyses per subject, their maps, figures and summary."""

import contextlib
import time
from numbers import Integral
from pathlib import Path

from sklearn.utils import Bunch

from brainldm._cache import check_cache
from brainldm._docs import fill_doc
from brainldm._io import check_writable, write_json
from brainldm._validation import (
    Interval,
    check_int,
    check_number,
    check_options,
    check_parameter,
    subject_name,
)
from brainldm.workflows._cost import announce_encode
from brainldm.workflows._results import EncodingResult

__all__ = ["ENCODE_CHUNK_SIZE", "ENCODE_N_ITER", "ENCODE_STEPS", "ENCODE_STRENGTHS", "encode"]

# Defaults measured on the toy world (docs/encoding_analyses.md).
ENCODE_STRENGTHS = (0.2, 0.4, 0.6, 0.8)
ENCODE_STEPS = 25
ENCODE_N_ITER = 20
# Voxels fitted together: the toy world's 4,884 in one chunk, NSD's ~15,700 nsdgeneral in two.
ENCODE_CHUNK_SIZE = 8192
# ROIs outlined on the brain maps.
_OUTLINED = ("early", "ventral", "lateral", "parietal")


def _anatomy(nsd_root, subject):
    """NSD's anatomy in the functional space, if the folder has one (the toy world does)."""
    path = Path(nsd_root) / f"nsddata/ppdata/{subject}/func1pt8mm/T1_to_func1pt8mm.nii.gz"
    return path if path.exists() else None


def _check_surface_files(nsd_root, subject):
    """Raise before any work where the subject's transforms to fsaverage are missing."""
    from brainldm.surface import read_nsd_transforms

    try:
        read_nsd_transforms(nsd_root, subject)
    except FileNotFoundError as error:
        raise FileNotFoundError(
            f"{error}; or pass surface=False (brainldm encode --no-surface) to write the "
            "maps and figures in the volume only"
        ) from error


def _surface_mappers(nsd_root, subject, masker):
    """The subject's volume-to-fsaverage mappers: cubic for values, nearest for masks and labels."""
    from brainldm.surface import NSDSurfaceMapper

    return {
        kind: NSDSurfaceMapper(nsd_root, subject, masker, interpolation=kind).fit()
        for kind in ("cubic", "nearest")
    }


def _to_surface(mappers):
    """``to_surface(maps, interpolation)`` of :func:`brainldm.plotting.plot_encoding_surfaces`."""
    return lambda maps, interpolation: mappers[interpolation].transform(maps)


def _save_surface_maps(map_values, mappers, folder):
    """An analysis' per-voxel maps on fsaverage, as GIFTI: the projection each kind needs.

    Values (r, unique variance) by nsdcode's cubic chain; significance masks by
    nearest neighbours, kept (1) where the three depths' mean is >= 0.5; the
    best layer by a vote of its layers' indicators (-1 where none wins).
    """
    import numpy as np

    from brainldm.maps import save_surface_maps as save
    from brainldm.surface import vote_labels

    to_surface = _to_surface(mappers)
    surface = {}
    for name, values in map_values.items():
        values = np.asarray(values, dtype=np.float64)[np.newaxis]
        if name.startswith("best_layer_"):
            n_labels = int(np.nanmax(values, initial=-1)) + 1
            surface[name] = vote_labels(to_surface, values, n_labels)[0].astype(np.float32)
        elif name.startswith("significant_"):
            surface[name] = (to_surface(values, "nearest")[0] >= 0.5).astype(np.float32)
        else:
            surface[name] = to_surface(values, "cubic")[0].astype(np.float32)
    return [path for pair in save(surface, folder).values() for path in pair]


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


def draw_figures(maps, subject, folder):
    """A subject's Figures 6-9 from what :func:`encode` keeps of its analyses."""
    from brainldm.plotting import plot_best_layers, plot_encoding_maps, plot_unique_variance

    analyses = maps.analyses
    paths = plot_encoding_maps(
        analyses, maps.masker, folder, bg_img=maps.anatomy, contours=maps.contours, subject=subject
    )
    if maps.get("surface") is not None:
        from brainldm.plotting import plot_encoding_surfaces

        to_surface = _to_surface(maps.surface)
        paths += plot_encoding_surfaces(analyses, to_surface, folder, subject=subject)
    lines = (
        ("noise_levels", "img2img strength", "against noise level", "by_strength"),
        (
            "denoising_stages",
            f"step of the strength-{maps.stage_strength} chain",
            "along the denoising",
            "by_stage",
        ),
    )
    for number, (name, xlabel, title, stem) in enumerate(lines, start=7):
        if name in analyses:
            paths.append(folder / f"fig{number}_unique_zc_{stem}.png")
            title = f"{subject}: z_c's unique variance {title}"
            plot_unique_variance(analyses[name], xlabel=xlabel, title=title, path=paths[-1])
    if "unet_layers" in analyses:
        paths.append(folder / "fig9_best_layer_by_roi.png")
        title = f"{subject}: best U-Net layer per ROI"
        plot_best_layers(analyses["unet_layers"], title=title, path=paths[-1])
    return paths


def _encode_subject(nsd_root, subject, model, memory, out, settings):
    """One subject's four analyses: maps, figures, its part of the summary and its maps."""
    from threadpoolctl import threadpool_limits

    from brainldm.datasets.nsd import load_nsd
    from brainldm.encoding import run_encoding_analyses
    from brainldm.maps import save_maps

    own = ("analyses", "threads", "average_train", "surface")
    analysis_settings = {k: v for k, v in settings.items() if k not in own}
    with threadpool_limits(settings["threads"]), _torch_threads(settings["threads"]):
        data = load_nsd(
            nsd_root,
            subject,
            average_train=settings["average_train"],
            progress=settings["progress"],
            cache_dir=memory,
        )
        results = run_encoding_analyses(
            data, model, settings["analyses"], memory=memory / data.subject, **analysis_settings
        )
    folder = out / data.subject
    files = [
        path
        for name in settings["analyses"]
        for path in save_maps(
            results[name].map_values, data.masker, folder / "maps" / name
        ).values()
    ]
    mappers = None
    if settings["surface"]:
        mappers = _surface_mappers(nsd_root, data.subject, data.masker)
        for name in settings["analyses"]:
            maps_folder = folder / "maps" / name
            files += _save_surface_maps(results[name].map_values, mappers, maps_folder)
    maps = Bunch(
        analyses={name: results[name] for name in settings["analyses"]},
        masker=data.masker,
        contours={roi: data.roi_masks[roi] for roi in _OUTLINED if roi in data.roi_masks},
        anatomy=_anatomy(nsd_root, data.subject),
        stage_strength=results.features.stage_strength,
        surface=mappers,
    )
    files += draw_figures(maps, data.subject, folder / "figures")
    summary = {name: results[name].summary for name in settings["analyses"]}
    summary["pool_size"] = results.features.pool_size
    summary["layers"] = list(results.features.layer_names)
    summary["seconds"] = results.seconds
    return data.subject, summary, maps, files


def _check_dask(dask):
    """``dask``: None, a number of local workers (at least one) or a scheduler's address."""
    if dask is None:
        return None
    if isinstance(dask, str) and not dask.isdigit():
        if ":" not in dask:
            raise ValueError(
                f"dask must be a number of local workers or a scheduler's address such as "
                f"'tcp://host:8786', got {dask!r}"
            )
        return dask
    return check_int(int(dask) if isinstance(dask, str) else dask, "dask", "encode", min_val=1)


def _check_run(given):
    """The settings of :func:`encode` that its analyses check only when they reach them."""
    caller = "encode"
    for name in ("n_components", "threads"):
        check_parameter(given[name], name, caller, Interval(Integral, 1, None), None)
    for name in ("n_iter", "chunk_size", "batch_size"):
        check_int(given[name], name, caller, min_val=1)
    check_int(given["random_state"], "random_state", caller, min_val=0)
    check_number(given["guidance"], "guidance", caller, min_val=0)
    check_parameter(given["average_train"], "average_train", caller, "boolean")
    check_parameter(given["surface"], "surface", caller, "boolean")
    _check_dask(given["dask"])


def _dask_client(dask):
    """A dask.distributed client: ``dask`` local worker processes, or a scheduler's address."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError as error:
        raise RuntimeError(
            "dask needs dask.distributed: pip install 'brainldm[distributed]'"
        ) from error
    if str(dask).isdigit():
        cluster = LocalCluster(n_workers=int(dask), threads_per_worker=1, processes=True)
        return Client(cluster)
    return Client(str(dask))


@fill_doc
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
    solver="primal",
    cv=5,
    chunk_size=ENCODE_CHUNK_SIZE,
    guidance=5.0,
    random_state=42,
    batch_size=16,
    device=None,
    threads=1,
    average_train=True,
    surface=True,
    dask=None,
    memory=None,
    progress=False,
    log=None,
):
    """Run the paper's four encoding analyses on NSD subjects; write maps, figures and a summary.

    For each subject, :func:`brainldm.encoding.run_encoding_analyses`: (i)
    encoders from ``z``, ``c`` and ``z_c``; (ii) ``z_c``'s unique variance in a
    ``[z, z_c]`` banded ridge against img2img strength; (iii) the same along
    the steps of the ``stage_strength`` chain; (iv) the best U-Net layer per
    voxel at the early, middle and late steps. Every setting is checked
    before any work, ``out`` and ``memory`` first: a folder that cannot be
    written raises a ValueError naming it before any model is loaded.

    Writes under ``out``: ``SUBJ/maps/ANALYSIS/*.nii.gz`` (every per-voxel
    map, float32 in the subject's functional space) and, with ``surface``,
    the same maps on fsaverage as ``*_hemi-L.func.gii`` and
    ``*_hemi-R.func.gii``, ``SUBJ/figures/``
    (``fig6_r_*.png``, ``fig7_unique_zc_*.png``,
    ``fig7_unique_zc_by_strength.png``, ``fig8_*``, ``fig9_best_layer_*.png``
    and ``fig9_best_layer_by_roi.png``, mirroring the paper's Figures 6-9,
    and with ``surface`` each map on the cortex, ``*_surface.png``;
    see :meth:`EncodingResult.plot_figures`) and ``summary.json`` (settings,
    wall seconds per analysis, and per subject, analysis and ROI the paired
    comparisons of :func:`brainldm.metrics.summarize_paired`). Features, PCA
    scores, voxel chunks and finished analyses are cached (in ``out/cache``
    by default), so an interrupted run resumes and a finished one, from
    Python or from the ``brainldm`` command, recomputes nothing.

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
    strengths, steps, stage_strength, layers, pool_size, n_components, n_iter, chunk_size, guidance, random_state, batch_size, device
        As in :func:`brainldm.encoding.run_encoding_analyses`; the defaults
        (4 strengths, 25 steps, ``n_iter=20``, ``chunk_size=8192``) were
        measured on the toy world.
    solver : {"primal", "dual", "auto"}, default="primal"
        How the banded ridge of ``noise_levels`` and ``denoising_stages`` is
        solved, as in :func:`brainldm.encoding.noise_levels`: ``"dual"`` (CPU
        only) gives the same partitions to float32 rounding, much cheaper
        when the training images are fewer than the two bands' components
        (NSD: 8,859 against 2 x 6,400), and computes ``z``'s kernel and model
        alone once for every partition through the cache.
    cv : int or "loo", default=5
        Folds of every model; ``"loo"``: exact leave-one-out for the encoders
        of ``representations`` and ``unet_layers`` (needs ``average_train``),
        5 folds for the partitions, as in
        :func:`brainldm.encoding.representations`. The defaults are the
        paper's 5-fold primal fits; both settings are written to
        ``summary.json`` and key the cache.
    threads : int or None, default=1
        Threads of torch and of the BLAS libraries during each subject's
        run (None: their defaults). One is the default because on a 2-core
        machine shared with other work, two threads spin against each other:
        measured with other jobs running, a toy denoising pass took 53 s with
        two torch threads and 3.1 s with one, and a banded ridge fit 34 s
        with two OpenBLAS threads and 0.9 s with one. On a machine of your
        own, give its cores.
    average_train : bool, default=True
        Fit on each training image's mean betas (one row per image) rather
        than on single trials: the banded ridge's cost grows with the rows,
        and on the toy world one [z, z_c] partition took over 5 minutes on
        the 2,359 single trials.
    surface : bool, default=True
        Also map every map onto fsaverage through NSD's transforms
        (:class:`brainldm.surface.NSDSurfaceMapper`), written as GIFTI beside
        the NIfTI volumes (``NAME_hemi-L.func.gii``, ``NAME_hemi-R.func.gii``),
        and draw each map on the inflated and flattened cortex
        (``*_surface.png``, :func:`brainldm.plotting.plot_encoding_surfaces`).
        The subject's ``nsddata/ppdata/subjXX/transforms/`` files are then
        needed: a missing one raises a FileNotFoundError before any work.
    dask : int or str, default=None
        Run one subject per dask worker: a number of local worker processes
        (at least one), or the address of a running scheduler, such as
        ``"tcp://host:8786"`` (e.g. a dask-jobqueue cluster's).
    %(workflow_memory)s
    progress : bool, default=False
        Show progress bars (not on dask workers).
    log : callable, default=None
        Receives progress lines (e.g. ``print``); None discards them.

    Returns
    -------
    result : EncodingResult
        The summary written to ``summary.json``, per subject what its
        figures are drawn from, and the paths written.

    Examples
    --------
    >>> from brainldm.workflows import encode
    >>> result = encode(None, "subj01", "toy", "out", analyses=["representations"])  # doctest: +SKIP
    >>> result.plot_figures("subj01", "figures")  # doctest: +SKIP
    """
    for folder, name in ((out, "out"), (memory, "memory")):
        check_writable(folder, name, "encode")
    _check_run(locals())
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
            cv=cv,
            solver=solver,
            device=device,
            caller="encode",
        ),
        strengths=tuple(strengths),
        steps=steps,
        stage_strength=stage_strength,
        layers=layers,
        pool_size=pool_size,
        n_components=n_components,
        n_iter=n_iter,
        solver=solver,
        cv=cv,
        chunk_size=chunk_size,
        guidance=guidance,
        random_state=random_state,
        batch_size=batch_size,
        device=device,
        threads=threads,
        average_train=average_train,
        surface=surface,
        progress=progress,
    )
    if {"noise_levels", "denoising_stages"} & set(settings["analyses"]):
        # Their banded ridge runs on these backends only.
        check_options(device, "device", "encode", ("cpu", "cuda", None))
    encoders = {"representations", "unet_layers"} & set(settings["analyses"])
    if cv == "loo" and encoders and not average_train:
        raise ValueError(
            "encode: cv='loo' leaves out one row at a time, which needs one row per training "
            "image: keep average_train=True (no --single-trials), or use cv=5"
        )
    cache = check_cache(out / "cache" if memory is None else memory)
    if cache.location is None:
        raise ValueError("memory must be a folder or a joblib.Memory with a location, got None")
    log = log or (lambda line: None)
    if nsd_root is None:
        from brainldm.datasets.toy import make_toy_nsd

        nsd_root = make_toy_nsd(out / "toy_nsd", progress=progress)
    if surface:
        for subject in subjects:
            _check_surface_files(nsd_root, subject)
    announce_encode(nsd_root, subjects, model, settings, log, cache.location)
    started = time.time()
    job = (model, cache.location, out)
    if dask is None:
        results = [_encode_subject(nsd_root, s, *job, settings) for s in subjects]
    else:
        with _dask_client(dask) as client:
            log(f"dask: {len(subjects)} subjects on {client}")
            remote = dict(settings, progress=False)
            futures = [
                client.submit(_encode_subject, nsd_root, s, *job, remote, pure=False)
                for s in subjects
            ]
            results = client.gather(futures)
    summary = {
        "settings": dict(settings, model=str(model), nsd_root=str(nsd_root), dask=dask),
        "seconds": time.time() - started,
        "subjects": {subject: part for subject, part, _, _ in results},
    }
    summary = write_json(out / "summary.json", summary)
    maps = {subject: subject_maps for subject, _, subject_maps, _ in results}
    files = [out / "summary.json"] + [path for *_, paths in results for path in paths]
    return EncodingResult(summary=summary, subjects=maps, files=files)
