"""Regenerate the validation page's tables and the figures in ``docs/_static``.

Every table of ``docs/validation.md`` (and the timing table of
``docs/encoding_analyses.md``) sits between two markers,
``<!-- validation: NAME -->`` and ``<!-- /validation: NAME -->``, and is written
by this script from the results of its sections, kept as JSON in
``docs/validation/`` (one file per section, with the toy world's version and the
seconds it took). The figures of the guide come from the same runs.

Run from the repository root::

    python docs/make_validation.py [--work WORK] [--only SECTION ...]
    python docs/make_validation.py --render   # the page from the stored results
    python docs/make_validation.py --check    # exit 1 if the page and results differ

All the sections take about 80 minutes on 2 CPU cores; each resumes from its
caches in ``WORK`` (default ``brainldm-validation``), so an interrupted run is
continued by running the same command again. A table whose numbers change is
named on the output: read the prose around it again.
"""

import argparse
import functools
import json
import os
import re
import runpy
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from brainldm.metrics.correlation import column_correlations

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
# The pages with marked tables: the validation page, and the timing of encode.
PAGES = (DOCS / "validation.md", DOCS / "encoding_analyses.md")
RESULTS = DOCS / "validation"
STATIC = DOCS / "_static"
BENCHMARKS = ROOT / "benchmarks"

# The toy suite's metrics in the order of the tables; the attribute fractions get 2 decimals.
METRICS = ["pixcorr", "ssim", "toy_early", "toy_middle", "toy_late", "toy_embedding"]
METRICS += ["toy_colour", "toy_shape", "toy_background"]
FRACTIONS = {"toy_colour", "toy_shape", "toy_background"}
ROIS = ["early", "midventral", "ventral", "lateral", "parietal", "nsdgeneral"]
ENCODE_FIGURES = (
    "fig6_r_z",
    "fig6_r_c",
    "fig6_r_zc",
    "fig7_unique_zc_by_strength",
    "fig8_unique_zc_by_stage",
    "fig9_best_layer_by_roi",
    "fig9_best_layer_late",
)


def _world(work):
    from brainldm.datasets.toy import make_toy_nsd

    return make_toy_nsd(Path(work) / "toy_nsd", progress=False)


def _benchmark(name):
    """A module of ``benchmarks/``, imported as the benchmarks import each other."""
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    return __import__(name)


def _quiet_load(root, subject, **kwargs):
    from brainldm.datasets.nsd import load_nsd

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the planted bad voxels are dropped
        return load_nsd(root, subject, progress=False, **kwargs)


# Sections: each computes from scratch (or from its caches in ``work``) and returns JSON.


def decoders(work):
    """The library's decoder reads the planted features back from the ROIs that carry them."""
    from brainldm.datasets.toy import load_toy_ground_truth
    from brainldm.decoding import LatentDecoder

    root = _world(work)
    table = {}
    for subject in ("subj01", "subj07"):
        data = _quiet_load(root, subject)
        truth = load_toy_ground_truth(root, subject)
        low = truth.feature_groups == "low_level"
        table[subject] = {}
        for roi in ("early", "ventral"):
            table[subject][roi] = {}
            for group, columns in (("low_level", low), ("semantic", ~low)):
                decoder = LatentDecoder(voxels=data.roi_masks[roi])
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)
                    decoder.fit(
                        data.X_train,
                        truth.features[data.images_train][:, columns],
                        groups=data.images_train,
                    )
                r = column_correlations(
                    decoder.predict(data.X_test), truth.features[data.images_test][:, columns]
                )
                table[subject][roi][group] = float(np.mean(r))
    return {"features": {"low_level": int(low.sum()), "semantic": int((~low).sum())}, **table}


def demo(work):
    """``brainldm demo`` with its defaults; its first six rows are the guide's figure."""
    import dataclasses

    from brainldm.workflows import demo as run_demo

    result = run_demo(Path(work) / "demo")
    first_rows = {column: images[:6] for column, images in result.shown.items()}
    dataclasses.replace(result, shown=first_rows).plot_reconstructions(
        STATIC / "demo_reconstructions.png"
    )
    summary = result.summary
    return {
        "settings": {
            k: summary["settings"][k] for k in ("n_images", "n_samples_per_image", "steps")
        },
        "scores": summary["scores"],
        "comparisons": summary["comparisons"]["subj01"],
    }


def background(work):
    """How well each scene attribute is read from early and ventral voxels (logistic)."""
    from brainldm.datasets.toy import load_toy_ground_truth

    root = _world(work)
    data = _quiet_load(root, "subj01")
    attributes = load_toy_ground_truth(root, 1).attributes
    return _benchmark("toy_background").decodability(data, attributes)


def _saved_or_run(path, benchmark, *args):
    """A benchmark's table: the one it saved in the work folder, else from a run of it.

    A reused table says so (``reused``): its section's seconds are then not the run's.
    """
    if path.exists():
        return {"reused": path.name, **json.loads(path.read_text())}
    return _benchmark(benchmark).main(*args, out=path.parent)


def rescale(work):
    """The demo's reconstructor with each ``rescale``: benchmarks/rescale_modes.py."""
    return _saved_or_run(Path(work) / "rescale_modes-100-25-5.json", "rescale_modes", 100, 25, 5)


def zc_limits(work):
    """What limits zc, the sample choice, the rescaling statistics: benchmarks/zc_limits.py."""
    return _saved_or_run(Path(work) / "zc_limits-100-25.json", "zc_limits", 100, 25)


def encoder_truth(work):
    """The voxelwise encoder against the r that the toy brain's signal and noise allow."""
    from brainldm.datasets.toy import load_toy_ground_truth
    from brainldm.encoding import (
        VoxelwiseEncoder,
        noise_ceiling,
        normalized_accuracy,
        significance,
    )
    from brainldm.features import LatentFeatures, TextFeatures

    root = _world(work)
    data = _quiet_load(root, "subj01")
    truth = load_toy_ground_truth(root, "subj01")
    index = {tuple(ijk): row for row, ijk in enumerate(truth.voxel_ijk)}
    rows = np.array([index[tuple(ijk)] for ijk in data.voxel_ijk])
    signal, noise = truth.signal_sd[rows], truth.noise_sd[rows]
    attainable = signal / np.sqrt(signal**2 + noise**2 * np.mean(1 / data.n_repeats_test))
    encoder = VoxelwiseEncoder(n_components=None)
    encoder.fit(truth.features[data.images_train], data.X_train, groups=data.images_train)
    r = encoder.score_voxels(truth.features[data.images_test], data.X_test)
    gap = r - attainable
    trials = np.concatenate([data.X_train, data.X_test_trials])
    images = np.concatenate([data.images_train, data.images_test_trials])
    ceiling = noise_ceiling(trials, images, n_average=data.n_repeats_test)
    ratio = ceiling.ncsnr / (signal / noise)
    strong = signal / noise >= 0.4
    seen = np.unique(np.concatenate([data.images_train, data.images_test]))
    train, test = np.searchsorted(seen, data.images_train), np.searchsorted(seen, data.images_test)
    spaces = {
        "z": LatentFeatures("toy").fit_transform(data.stimuli[seen]),
        "c": TextFeatures("toy").fit_transform([data.captions[i] for i in seen]),
    }
    median = {}
    for name, features in spaces.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # n_components capped at 945 images
            fitted = VoxelwiseEncoder(n_components=300).fit(
                features[train], data.X_train, groups=data.images_train
            )
        r_space = fitted.score_voxels(features[test], data.X_test)
        median[name] = {
            roi: float(np.median(r_space[data.roi_masks[roi]])) for roi in ("early", "ventral")
        }
    return {
        "n_train": len(data.X_train),
        "n_test": len(data.X_test),
        "n_voxels": int(data.X_train.shape[1]),
        "gap": [float(gap.mean()), *np.percentile(gap, [5, 95]).tolist()],
        "significant": float(significance(r, len(data.X_test)).significant.mean()),
        "ncsnr_ratio": np.percentile(ratio[strong], [50, 5, 95]).tolist(),
        "n_strong": int(strong.sum()),
        "ceiling_ratio": float(np.median(ceiling.ceiling / (100 * attainable**2))),
        "normalized_accuracy": float(np.nanmedian(normalized_accuracy(r, ceiling.ceiling)[strong])),
        "median_r": median,
    }


def encoding_figures(work):
    """The voxelwise encoding example on the default world: ``encoding_{z,c}.png``."""
    example = ROOT / "examples" / "encoding" / "plot_encode_voxels.py"
    folder = Path(work) / "encoding"
    argv = sys.argv
    sys.argv = [str(example), str(folder)]
    try:
        runpy.run_path(str(example), run_name="__main__")
    finally:
        sys.argv = argv
    for space in ("z", "c"):
        shutil.copyfile(folder / f"encoding_{space}.png", STATIC / f"encoding_{space}.png")
    return {"figures": [f"encoding_{space}.png" for space in ("z", "c")]}


def _encode_run(work):
    """``brainldm encode`` with its defaults on the default world, once: (world, its --out)."""
    from brainldm.cli import main as cli

    root, out = _world(work), Path(work) / "encode"
    if not (out / "summary.json").exists() and cli(
        ["encode", "--nsd-root", str(root), "--out", str(out)]
    ):
        raise RuntimeError(f"brainldm encode failed on {root}: its output is above")
    return root, out


@functools.cache
def _default_run(work):
    """The encode run's data and analyses, read back from its cache once per process:
    (data, results, out, settings)."""
    from brainldm.cli import ENCODE_CHUNK_SIZE, ENCODE_N_ITER, ENCODE_STEPS, ENCODE_STRENGTHS
    from brainldm.encoding import run_encoding_analyses

    root, out = _encode_run(work)
    data = _quiet_load(root, 1, average_train=True, cache_dir=out / "cache")
    settings = dict(
        strengths=ENCODE_STRENGTHS,
        steps=ENCODE_STEPS,
        n_iter=ENCODE_N_ITER,
        chunk_size=ENCODE_CHUNK_SIZE,
    )
    results = run_encoding_analyses(data, memory=out / "cache" / "subj01", **settings)
    return data, results, out, settings


def _significant_share(analysis, masks):
    return {
        roi: {s: float(analysis.significant[k][mask].mean()) for k, s in enumerate(analysis.spaces)}
        for roi, mask in masks.items()
    }


def analyses(work):
    """The paper's Figures 6-9 by ROI: ``brainldm encode``'s defaults on the default world."""
    import nibabel as nib

    data, results, out, _ = _default_run(work)
    for name in ENCODE_FIGURES:
        shutil.copyfile(out / "subj01" / "figures" / f"{name}.png", STATIC / f"encode_{name}.png")
    run_summary = json.loads((out / "summary.json").read_text())
    summary = run_summary["subjects"]["subj01"]
    masks = {roi: data.roi_masks[roi] for roi in ROIS}
    labels = np.concatenate(
        [
            np.asarray(
                nib.load(
                    out.parent / "toy_nsd" / f"nsddata/freesurfer/fsaverage/label/{h}.streams.mgz"
                ).dataobj
            ).ravel()
            for h in ("lh", "rh")
        ]
    )
    maps = out / "subj01" / "maps" / "representations"

    def on_fsaverage(name):
        return np.concatenate(
            [nib.load(maps / f"{name}_hemi-{h}.func.gii").darrays[0].data for h in "LR"]
        )

    r_z, r_c = on_fsaverage("r_z"), on_fsaverage("r_c")
    early, ventral = labels == 1, labels == 5
    return {
        "n_train": len(np.unique(data.images_train)),
        "n_test": len(data.images_test),
        "representations": summary["representations"],
        "significant": _significant_share(results.representations, masks),
        "noise_levels": summary["noise_levels"],
        "denoising_stages": summary["denoising_stages"],
        "unet_layers": summary["unet_layers"],
        "cortex": {
            "z_beats_c_early": float(np.mean(r_z[early] > r_c[early])),
            "c_beats_z_ventral": float(np.mean(r_c[ventral] > r_z[ventral])),
        },
        "encode_seconds": {
            "total": run_summary["seconds"],
            **summary["seconds"],
        },
    }


def second_seed(work):
    """Representations and the strength-0.8 partition again with seed 43 (Appendix C)."""
    import torch
    from threadpoolctl import threadpool_limits

    from brainldm.encoding import run_encoding_analyses

    data, results, out, settings = _default_run(work)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1):
            other = run_encoding_analyses(
                data,
                analyses=["representations", "noise_levels"],
                **dict(settings, strengths=(0.8,)),
                random_state=43,
                memory=out / "cache" / "subj01",
            )
    finally:
        torch.set_num_threads(threads)
    nsdgeneral = data.roi_masks["nsdgeneral"]

    def agreement(a, b):
        return float(np.corrcoef(a[nsdgeneral], b[nsdgeneral])[0, 1])

    first, again = results.noise_levels, other.noise_levels
    return {
        "n_voxels": int(nsdgeneral.sum()),
        "r_z_c_identical": bool(
            np.allclose(results.representations.r[:2], other.representations.r[:2], atol=1e-4)
        ),
        "r_zc": agreement(results.representations.r[2], other.representations.r[2]),
        "r_joint": agreement(first.r_joint[-1], again.r_joint[0]),
        "split_zc": agreement(first.split["zc"][-1], again.split["zc"][0]),
        "unique_zc": agreement(first.unique["zc"][-1], again.unique["zc"][0]),
    }


def feature_spaces(work):
    """What each feature space carries of the toy brain: benchmarks/encoding_truth.py."""
    return _benchmark("encoding_truth").measure(*_encode_run(work))


def pooling(work):
    """The U-Net activations pooled to coarser grids: benchmarks/pool_size.py."""
    rows = _benchmark("pool_size").measure(*_encode_run(work), steps=["late"])
    return {"rows": rows}


def metrics(work):
    """The toy suite on altered copies of held-out scenes, under both protocols."""
    from PIL import Image

    from brainldm.datasets.scenes import make_stimuli
    from brainldm.metrics import IdentificationScorer, compare_modes
    from brainldm.toy import HELD_OUT_SEED

    seen = make_stimuli(128, seed=HELD_OUT_SEED).images
    rng = np.random.default_rng(0)
    # Each scene paired with another, drawn at random: one cycle through a random order.
    order = rng.permutation(len(seen))
    other = np.empty_like(order)
    other[order] = np.roll(order, 1)

    def noisy(sd, size=()):
        noise = rng.normal(0.0, sd, (len(seen), *size, *seen.shape[1:]))
        return np.clip(np.expand_dims(seen, tuple(range(1, 1 + len(size)))) + noise, 0, 255).astype(
            np.uint8
        )

    def blurred(image):
        small = Image.fromarray(image).resize((21, 21), Image.BILINEAR)
        return np.asarray(small.resize(image.shape[:2][::-1], Image.BILINEAR))

    altered = {
        "the originals": seen,
        "re-rendered at 64 px": make_stimuli(128, seed=HELD_OUT_SEED, size=64).images,
        "Gaussian noise, sd 10": noisy(10),
        "Gaussian noise, sd 30": noisy(30),
        "blurred (21 px and back)": np.stack([blurred(image) for image in seen]),
        "shuffled (other scenes)": seen[other],
    }
    pairwise = IdentificationScorer(METRICS, suite="toy", protocol="pairwise")
    takagi = IdentificationScorer(METRICS, suite="toy", protocol="takagi2023")
    copies = {name: pairwise.score(seen, images) for name, images in altered.items()}
    samples = {sd: noisy(sd, (5,)) for sd in (30, 60)}
    protocols = {
        f"sd {sd}": {
            "pairwise (sample 0)": pairwise.score(seen, images[:, 0]),
            "takagi2023 (5 samples)": takagi.score(seen, images),
        }
        for sd, images in samples.items()
    }
    per_image = {
        f"sd {sd}": pairwise.score(seen, images[:, 0], True) for sd, images in samples.items()
    }
    per_image["shuffled"] = pairwise.score(seen, altered["shuffled (other scenes)"], True)
    tests = compare_modes(
        per_image,
        pairs=[("sd 30", "sd 60"), ("sd 60", "shuffled")],
        metrics=["pixcorr", "toy_early", "toy_embedding", "toy_shape"],
    )
    return {
        "copies": copies,
        "protocols": protocols,
        "comparisons": tests[["metric", "mode", "other", "p_holm"]].to_dict("records"),
    }


def toy_subjects(work):
    """How noisy each toy subject is: early voxels' single-trial r with their signal."""
    from brainldm.datasets.toy import load_toy_ground_truth

    root = _world(work)
    table = {}
    for subject in ("subj01", "subj05", "subj02", "subj07"):
        data = _quiet_load(root, subject)
        truth = load_toy_ground_truth(root, subject)
        index = {tuple(ijk): row for row, ijk in enumerate(truth.voxel_ijk)}
        rows = np.array([index[tuple(ijk)] for ijk in data.voxel_ijk])
        early = data.roi_masks["early"]
        signal = truth.features[data.images_train] @ truth.weights[rows[early]].T
        r = column_correlations(np.asarray(data.X_train[:, early], np.float64), signal)
        table[subject] = {
            "noise_sd": float(np.median(truth.noise_sd[rows[early]])),
            "r": np.percentile(r, [50, 10, 90]).tolist(),
        }
    return table


def toy_models(work):
    """The shipped toy LDM and perceptual network on held-out scenes."""
    import torch
    from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionPipeline
    from PIL import Image

    from brainldm.datasets.scenes import make_stimuli
    from brainldm.toy import HELD_OUT_SEED, TOY_LDM_PATH, load_perceptual_net
    from brainldm.toy.perceptual import resize_images, scene_labels

    def uint8(images):
        return np.round(np.clip(images, 0, 1) * 255).astype(np.uint8)

    net = load_perceptual_net()
    pipe = StableDiffusionPipeline.from_pretrained(TOY_LDM_PATH, safety_checker=None)
    pipe.set_progress_bar_config(disable=True)
    img2img = StableDiffusionImg2ImgPipeline(**pipe.components)
    img2img.set_progress_bar_config(disable=True)
    generation = dict(guidance_scale=5.0, num_inference_steps=25, output_type="np")

    def psnr(images):
        x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1
        with torch.no_grad():
            decoded = pipe.vae.decode(pipe.vae.encode(x).latent_dist.mode()).sample
        decoded = uint8((decoded.numpy() + 1) / 2).astype(float)
        mse = ((images.transpose(0, 3, 1, 2) - decoded) ** 2).reshape(len(images), -1).mean(1)
        return float(np.mean(10 * np.log10(255**2 / mse)))

    held_out = make_stimuli(64, seed=HELD_OUT_SEED)
    images64 = resize_images(held_out.images, 64)
    captioned = make_stimuli(256, seed=HELD_OUT_SEED)
    generated = pipe(
        prompt=[captions[0] for captions in captioned.captions],
        generator=torch.Generator().manual_seed(0),
        **generation,
    ).images
    named = net.predict(uint8(generated))
    truth = scene_labels(captioned.attributes)
    text2img = {head: float(np.mean(named[head] == truth[head])) for head in truth}
    low = img2img(
        prompt=[captions[0] for captions in held_out.captions],
        image=[Image.fromarray(image) for image in images64],
        strength=0.3,
        generator=torch.Generator().manual_seed(0),
        **generation,
    ).images
    r = column_correlations(  # per image, over its pixels
        images64.reshape(len(images64), -1).T.astype(float),
        uint8(low).reshape(len(low), -1).T.astype(float),
    )
    colour = scene_labels(held_out.attributes)["colour"]
    other = np.roll(np.arange(len(colour)), 1)
    pairs = np.flatnonzero(colour != colour[other])
    high = img2img(
        prompt=[held_out.captions[j][0] for j in other[pairs]],
        image=[Image.fromarray(image) for image in images64[pairs]],
        strength=0.9,
        generator=torch.Generator().manual_seed(0),
        **generation,
    ).images
    taken = net.predict(uint8(high))["colour"]
    perceptual = make_stimuli(400, seed=HELD_OUT_SEED + 1)
    predicted = net.predict(perceptual.images)
    labels = scene_labels(perceptual.attributes)
    return {
        "psnr": [psnr(images64), psnr(resize_images(captioned.images, 64))],
        "text2img": text2img,
        "img2img_low_r": float(np.mean(r)),
        "img2img_high": {
            "follows_caption": float(np.mean(taken == colour[other[pairs]])),
            "keeps_input": float(np.mean(taken == colour[pairs])),
        },
        "perceptual": {head: float(np.mean(predicted[head] == labels[head])) for head in labels},
    }


SECTIONS = {
    "decoders": decoders,
    "demo": demo,
    "background": background,
    "rescale": rescale,
    "zc_limits": zc_limits,
    "encoder_truth": encoder_truth,
    "encoding_figures": encoding_figures,
    "analyses": analyses,
    "second_seed": second_seed,
    "feature_spaces": feature_spaces,
    "pooling": pooling,
    "metrics": metrics,
    "toy_subjects": toy_subjects,
    "toy_models": toy_models,
}


# Tables: each renders the markdown between its markers from the stored results.


def _number(value, digits=3):
    return f"{value:.{digits}f}"


def _metric(metric, value):
    return _number(value, 2 if metric in FRACTIONS else 3)


def _p(value):
    if value == 0:
        return "< 1e-300"
    return f"{value:.0e}".replace("e-0", "e-") if value < 0.01 else f"{value:.2g}"


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _mode(mode):
    """A mode as the tables show it (``"coarse"`` is the paper's X_z)."""
    return f"`{'X_z' if mode == 'coarse' else mode}`"


def table_decoders(results):
    r = results["decoders"]
    n = r["features"]
    header = ["subject", "voxels"]
    header += [f"low-level features ({n['low_level']})", f"semantic features ({n['semantic']})"]
    rows = [
        [
            subject,
            roi,
            _number(r[subject][roi]["low_level"], 2),
            _number(r[subject][roi]["semantic"], 2),
        ]
        for subject in ("subj01", "subj07")
        for roi in ("early", "ventral")
    ]
    return _table(header, rows)


def table_demo(results):
    scores = results["demo"]["scores"]
    rows = [
        [protocol, _mode(mode)] + [_metric(m, scores[protocol][mode][m]["mean"]) for m in METRICS]
        for protocol in ("pairwise", "takagi2023")
        for mode in ("coarse", "z", "c", "zc")
    ]
    return _table(["protocol", "mode", *METRICS], rows)


def table_demo_tests(results):
    demo = results["demo"]
    scores = demo["scores"]["pairwise"]
    tests = {(t["metric"], t["other"]): t["p_holm"] for t in demo["comparisons"]["pairwise"]}
    rows = [
        [
            metric,
            _metric(metric, scores["zc"][metric]["mean"]),
            f"{_metric(metric, scores['z'][metric]['mean'])} ({_p(tests[metric, 'z'])})",
            f"{_metric(metric, scores['c'][metric]['mean'])} ({_p(tests[metric, 'c'])})",
            f"{min(scores[m][metric]['sem'] for m in ('z', 'c', 'zc')):.3f}-"
            f"{max(scores[m][metric]['sem'] for m in ('z', 'c', 'zc')):.3f}",
        ]
        for metric in METRICS
    ]
    return _table(["metric", "`zc`", "`z` (Holm p)", "`c` (Holm p)", "standard errors"], rows)


def table_background(results):
    names = {
        "background_colour": "the background's colour",
        "background_kind": "the kind of background",
        "colour": "the main object's colour",
        "shape": "the main object's shape",
    }
    rows = [
        [label]
        + [_number(results["background"][name][k], 2) for k in ("majority", "early", "ventral")]
        for name, label in names.items()
    ]
    return _table(["attribute", "majority class", "early voxels", "ventral voxels"], rows)


def table_rescale(results):
    table = results["rescale"]
    rows = [
        [{"None": "None", "batch": '`"batch"`'}[rescale], protocol, _mode(mode)]
        + [_metric(m, table[f"{rescale}|{mode}|{protocol}"][m]) for m in METRICS]
        for rescale in ("None", "batch")
        for protocol in ("pairwise", "takagi2023")
        for mode in ("z", "c", "zc")
    ]
    demo = results["demo"]["scores"]
    largest = max(
        abs(table[f"train|{mode}|{protocol}"][m] - demo[protocol][mode][m]["mean"])
        for protocol in ("pairwise", "takagi2023")
        for mode in ("z", "c", "zc")
        for m in METRICS
    )
    return _table(["rescale", "protocol", "mode", *METRICS], rows) + (
        f'\n\nIts `"train"` rows differ from the demo\'s table by at most {largest:.3f}.'
    )


_STATISTICS = {
    "batch (the reconstructed rows)": 'the reconstructed rows (`"batch"`)',
    "the other test rows": "the other test rows",
    "the other test rows' spread, the training mean": "the other test rows' spread, the stored mean",
    "cross-validated, alphas chosen per fold": "folds choosing their own alphas",
    "cross-validated, alphas chosen per fold, repetition-averaged": "the same, on repetition-averaged betas",
    "train (stored at fit: folds at the decoder's alphas)": 'folds at the decoder\'s alphas (`"train"`)',
}
_LIMIT_METRICS = ["pixcorr", "ssim", "toy_late", "toy_embedding", "toy_colour", "toy_shape"]


def _pair(metric, values):
    return f"{_metric(metric, values[0])} ({_metric(metric, values[1])})"


def table_zc_statistics(results):
    statistics = results["zc_limits"]["statistics"]
    rows = [
        [label]
        + [_pair(m, statistics["scores"][name][m]) for m in _LIMIT_METRICS]
        + [_number(statistics["spread_ratio"][name]["c"][0], 2)]
        for name, label in _STATISTICS.items()
    ]
    header = ["statistics of", *_LIMIT_METRICS, "spread ratio of `c`, 5th percentile"]
    return _table(header, rows)


def table_zc_inputs(results):
    inputs = results["zc_limits"]["inputs"]
    metrics = ["pixcorr", "toy_early", "toy_embedding", "toy_colour", "toy_background"]
    rows = [
        [z, c] + [_pair(m, inputs[f"z {z}, c {c}"][m]) for m in metrics]
        for z in ("true", "decoded")
        for c in ("true", "decoded")
    ]
    return _table(["`z`", "`c`", *metrics], rows)


def table_zc_selection(results):
    selection = results["zc_limits"]["selection"]
    rows = [
        [_mode(mode), metric]
        + [_metric(metric, selection[mode][metric][k]) for k in ("selected", "sample_0", "random")]
        + [_p(selection[mode][metric]["p"])]
        for mode in ("z", "zc")
        for metric in ("pixcorr", "toy_early", "toy_embedding", "toy_background")
    ]
    return _table(["mode", "metric", "chosen", "sample 0", "random", "p"], rows)


def table_encoder_truth(results):
    t = results["encoder_truth"]
    m = t["median_r"]
    rows = [
        [
            "encoder on the generating features: r - r*, mean (5th, 95th percentile)",
            "{:.3f} ({:.3f}, {:.3f})".format(*t["gap"]),
            "mean in (-0.07, 0); 90% of voxels in (-0.2, 0.1)",
        ],
        [
            "voxels significant at q < 0.05 with the generating features",
            f"{100 * t['significant']:.0f}%",
            "> 90%",
        ],
        [
            "`noise_ceiling` ncsnr / the world's ncsnr, voxels with ncsnr >= 0.4: median (5th, 95th)",
            "{:.3f} ({:.2f}, {:.2f})".format(*t["ncsnr_ratio"]),
            "median within 5%; 90% within 20%",
        ],
        ["ceiling / (100 r*²), median", f"{t['ceiling_ratio']:.3f}", "within 5%"],
        [
            "normalised accuracy of the generating features, ncsnr >= 0.4, median",
            f"{t['normalized_accuracy']:.2f}",
            "> 0.8",
        ],
        [
            "median r of `z` (toy VAE latent): early, ventral",
            f"{m['z']['early']:.2f}, {m['z']['ventral']:.2f}",
            "early - ventral > 0.3",
        ],
        [
            "median r of `c` (toy text encoder): early, ventral",
            f"{m['c']['early']:.2f}, {m['c']['ventral']:.2f}",
            "ventral - early > 0.2; z - c in early > 0.15",
        ],
    ]
    return _table(["check", "measured", "asserted"], rows)


def table_representations(results):
    a = results["analyses"]
    rows = []
    for roi in ROIS:
        entry, share = a["representations"][roi], a["significant"][roi]
        z_c = entry["comparisons"]["z-c"]
        rows.append(
            [
                roi,
                f"{entry['n_voxels']:,}",
                *(_number(entry["median"][s]) for s in ("z", "c", "zc")),
                " / ".join(f"{100 * share[s]:.0f}" for s in ("z", "c", "zc")),
                f"{z_c['fraction_a_wins']:.2f}, {z_c['median_difference']:+.3f}, {_p(z_c['p_holm'])}",
                f"{entry['comparisons']['z-zc']['fraction_a_wins']:.2f}",
            ]
        )
    header = ["ROI", "voxels", "median r: z", "c", "z_c", "significant (%): z / c / z_c"]
    header += ["z beats c (fraction, median r difference, Holm p)", "z beats z_c"]
    return _table(header, rows)


def _partition_cell(entry):
    comparison = entry["comparisons"]["split_zc-split_z"]
    star = "*" if comparison["significant"] else ""
    return (
        f"{entry['mean']['split_zc']:.3f} / {entry['mean']['split_z']:.3f}, "
        f"{comparison['fraction_a_wins']:.2f}{star}"
    )


def _partition_table(summary, first, labels):
    rows = [[roi] + [_partition_cell(summary[label][roi]) for label in summary] for roi in ROIS]
    return _table([first, *labels(list(summary))], rows)


def table_noise_levels(results):
    return _partition_table(
        results["analyses"]["noise_levels"], "ROI", lambda labels: [f"{float(s):g}" for s in labels]
    )


def table_unique_zc(results):
    summary = results["analyses"]["noise_levels"]

    def series(roi):
        return ", ".join(
            f"{summary[label][roi]['mean']['unique_zc']:.4f} ({summary[label][roi]['unique_zc_se']:.4f})"
            for label in summary
        )

    return (
        "z_c's mean unique variance (bootstrap SE) by strength, in ventral voxels: "
        f"{series('ventral')}; in early voxels {series('early')}."
    )


def table_denoising_stages(results):
    return _partition_table(
        results["analyses"]["denoising_stages"], "ROI", lambda labels: [f"{s} step" for s in labels]
    )


def table_unet_layers(results):
    layers_summary = results["analyses"]["unet_layers"]
    layers = None
    rows = []
    for step, by_roi in layers_summary.items():
        for roi in ("early", "ventral", "nsdgeneral"):
            entry = by_roi[roi]
            layers = list(entry["best_fraction"])
            cells = []
            for k, layer in enumerate(layers):
                cell = f"{entry['best_fraction'][layer]:.2f}"
                if roi != "nsdgeneral":
                    r = _number(entry["median"][layer])
                    cell += f" (r {r})" if k == 0 and not rows else f" ({r})"
                cells.append(cell)
            rows.append([step, roi, f"{entry['n_voxels']:,}", *cells])
    return _table(["step", "ROI", "significant", *layers], rows)


def table_cortex(results):
    cortex = results["analyses"]["cortex"]
    return (
        f"On the fsaverage maps of section `analyses`, r_z > r_c on "
        f"{100 * cortex['z_beats_c_early']:.0f}% of the vertices of the toy's early label and "
        f"r_c > r_z on {100 * cortex['c_beats_z_ventral']:.0f}% of its ventral label's."
    )


def table_second_seed(results):
    s = results["second_seed"]
    rows = [
        [
            "r of z, r of c",
            "identical (they do not depend on the noise)" if s["r_z_c_identical"] else "differ",
        ],
        ["r of z_c", f"{s['r_zc']:.3f}"],
        ["r of the joint `[z, z_c]` model", f"{s['r_joint']:.3f}"],
        ["z_c's split share", f"{s['split_zc']:.3f}"],
        ["z_c's unique variance", f"{s['unique_zc']:.3f}"],
    ]
    return _table(["map", "correlation between seeds"], rows)


def table_feature_spaces(results):
    r2 = results["feature_spaces"]["r2"]
    targets = list(next(iter(r2.values())))
    rows = []
    for space, values in r2.items():
        if space.startswith("z_c "):
            strength = space.split()[1]
            space = f"z_c, strength {strength}" if space == list(r2)[2] else f"z_c, {strength}"
        rows.append([space, *(_number(values[t]) for t in targets)])
    return _table(["from", *(t.replace("_", "-") for t in targets)], rows)


def table_pooling(results):
    rows = results["pooling"]["rows"]
    layers = list(dict.fromkeys(row["layer"] for row in rows))
    grids = list(dict.fromkeys(row["grid"] for row in rows))
    cells = {(row["layer"], row["grid"]): row["median_r"] for row in rows}
    grid_names = " / ".join(str(g) for g in grids)
    body = [
        [f"`{layer}`"]
        + [" / ".join(_number(cells[layer, g][roi]) for g in grids) for roi in ("early", "ventral")]
        for layer in layers
    ]
    return _table(["layer", f"early, p = {grid_names}", f"ventral, p = {grid_names}"], body)


def table_toy_subjects(results):
    rows = [
        [
            subject,
            _number(values["noise_sd"], 2),
            "{:.2f} ({:.2f}, {:.2f})".format(*values["r"]),
        ]
        for subject, values in results["toy_subjects"].items()
        if subject.startswith("subj")
    ]
    header = [
        "subject",
        "noise sd (% signal change), median",
        "single-trial r (10th, 90th percentile)",
    ]
    return _table(header, rows)


def table_toy_models(results):
    m = results["toy_models"]
    chance = "(chance 0.17)"
    rows = [
        [
            "VAE reconstruction PSNR (posterior mode), 64 scenes (256 scenes)",
            "{:.1f} dB ({:.1f} dB)".format(*m["psnr"]),
            ">= 29 dB",
            ">= 28 dB",
        ],
        [
            "text2img: main colour named by the perceptual net",
            f"{m['text2img']['colour']:.2f} {chance}",
            ">= 0.8",
            ">= 0.8",
        ],
        [
            "text2img: main shape named",
            f"{m['text2img']['shape']:.2f} {chance}",
            ">= 0.7",
            ">= 0.7",
        ],
        [
            "text2img: background's kind / colour named",
            f"{m['text2img']['background_kind']:.2f} / {m['text2img']['background_colour']:.2f}",
            "",
            "",
        ],
        [
            "img2img, strength 0.3: pixel correlation with the input",
            f"{m['img2img_low_r']:.2f}",
            ">= 0.9",
            ">= 0.8",
        ],
        [
            "img2img, strength 0.9, another scene's caption: output takes the caption's main colour / keeps the input's",
            f"{m['img2img_high']['follows_caption']:.2f} / {m['img2img_high']['keeps_input']:.2f}",
            ">= 0.6, and 0.1 above keeping",
            "follows the caption",
        ],
        [
            "perceptual network on 400 other held-out scenes: shape, colour, position, count",
            ", ".join(
                f"{m['perceptual'][head]:.2f}"
                for head in ("shape", "colour", "position", "n_objects")
            ),
            ">= 0.78, 0.87, 0.8, 0.93",
            "",
        ],
    ]
    return _table(["measure", "shipped model", "test asserts", "target"], rows)


def table_metrics_copies(results):
    copies = results["metrics"]["copies"]
    rows = [[name] + [_number(scores[m]) for m in METRICS] for name, scores in copies.items()]
    return _table(["reconstructions", *METRICS], rows)


def table_metrics_protocols(results):
    metrics = ["toy_early", "toy_embedding", "toy_shape", "pixcorr"]
    rows = [
        [noise, protocol] + [_number(scores[m]) for m in metrics]
        for noise, by_protocol in results["metrics"]["protocols"].items()
        for protocol, scores in by_protocol.items()
    ]
    return _table(["noise", "protocol", *metrics], rows)


def table_metrics_tests(results):
    rows = [
        [t["metric"], f"{t['mode']} - {t['other']}", _p(t["p_holm"])]
        for t in results["metrics"]["comparisons"]
    ]
    return _table(["metric", "single samples", "Holm p"], rows)


def table_encode_seconds(results):
    seconds = results["analyses"]["encode_seconds"]
    stages = {
        "features": "features: z and c of 1,194 images, four img2img passes (strengths 0.2-0.8, "
        "25 steps, guidance 5), the 0.8 pass reading 5 layers at 3 steps",
        "representations": "(i) representations: 3 encoders",
        "noise_levels": "(ii) noise levels: 4 `[z, z_c]` partitions, `n_iter=20`",
        "denoising_stages": "(iii) denoising stages: 3 partitions",
        "unet_layers": "(iv) U-Net layers: 15 encoders",
    }
    rows = [[label, f"{seconds[name]:.0f}"] for name, label in stages.items()]
    total = seconds["total"]
    rows.append(
        [
            "**all, with loading, maps and figures**",
            f"**{total:.0f} ({int(total // 60)} min {total % 60:.0f} s)**",
        ]
    )
    return _table(["stage", "seconds"], rows)


# Table -> (its function, the sections whose results it reads).
TABLES = {
    "decoders": (table_decoders, ("decoders",)),
    "demo": (table_demo, ("demo",)),
    "demo_tests": (table_demo_tests, ("demo",)),
    "background": (table_background, ("background",)),
    "rescale": (table_rescale, ("rescale", "demo")),
    "zc_statistics": (table_zc_statistics, ("zc_limits",)),
    "zc_inputs": (table_zc_inputs, ("zc_limits",)),
    "zc_selection": (table_zc_selection, ("zc_limits",)),
    "encoder_truth": (table_encoder_truth, ("encoder_truth",)),
    "representations": (table_representations, ("analyses",)),
    "noise_levels": (table_noise_levels, ("analyses",)),
    "unique_zc": (table_unique_zc, ("analyses",)),
    "denoising_stages": (table_denoising_stages, ("analyses",)),
    "unet_layers": (table_unet_layers, ("analyses",)),
    "cortex": (table_cortex, ("analyses",)),
    "encode_seconds": (table_encode_seconds, ("analyses",)),
    "feature_spaces": (table_feature_spaces, ("feature_spaces",)),
    "pooling": (table_pooling, ("pooling",)),
    "second_seed": (table_second_seed, ("second_seed",)),
    "toy_subjects": (table_toy_subjects, ("toy_subjects",)),
    "toy_models": (table_toy_models, ("toy_models",)),
    "metrics_copies": (table_metrics_copies, ("metrics",)),
    "metrics_protocols": (table_metrics_protocols, ("metrics",)),
    "metrics_tests": (table_metrics_tests, ("metrics",)),
}
_MARKED = re.compile(r"<!-- validation: (\w+) -->\n(?:(.*?)\n)?<!-- /validation: \1 -->", re.S)


def load_results(folder=RESULTS):
    """Every stored section's results: section name -> its JSON."""
    return {path.stem: json.loads(path.read_text()) for path in sorted(Path(folder).glob("*.json"))}


def render(results, texts=None):
    """The pages with every marked table written from ``results``.

    Parameters
    ----------
    results : dict
        Section name -> its results (:func:`load_results`).
    texts : dict of Path to str, optional
        The pages' texts; None reads :data:`PAGES`.

    Returns
    -------
    texts : dict of Path to str
        The new texts.
    changed : list of str
        The tables whose text changed.
    unrendered : list of str
        The tables left as they were because a section they read has no results.
    """
    texts = {page: page.read_text() for page in PAGES} if texts is None else texts
    changed, unrendered, seen = [], [], set()

    def fill(match, page):
        name, current = match.group(1), match.group(2) or ""
        if name not in TABLES:
            raise KeyError(f"{page.name} marks a table {name!r} that this script does not know")
        seen.add(name)
        function, sections = TABLES[name]
        if not all(section in results for section in sections):
            unrendered.append(name)
            return match.group(0)
        table = function(results)
        if table != current:
            changed.append(name)
        return f"<!-- validation: {name} -->\n{table}\n<!-- /validation: {name} -->"

    texts = {
        page: _MARKED.sub(lambda match, page=page: fill(match, page), text)
        for page, text in texts.items()
    }
    missing = sorted(set(TABLES) - seen)
    if missing:
        raise KeyError(f"no page has markers for the tables {missing}")
    return texts, changed, unrendered


def _write_json(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(handle, "w") as file:
        json.dump(value, file, indent=1, sort_keys=False)
        file.write("\n")
    os.replace(temporary, path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="brainldm-validation", help="caches and worlds")
    parser.add_argument("--only", nargs="+", choices=list(SECTIONS), help="sections to run")
    parser.add_argument(
        "--render", action="store_true", help="only write the page from the results"
    )
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if the page is not the results'"
    )
    args = parser.parse_args(argv)
    if not (args.render or args.check):
        from brainldm.datasets.toy import TOY_WORLD_VERSION

        work = Path(args.work)
        for name in args.only or SECTIONS:
            print(f"{name}: {SECTIONS[name].__doc__.splitlines()[0]}", flush=True)
            start = time.perf_counter()
            result = SECTIONS[name](work)
            seconds = round(time.perf_counter() - start)
            stored = {"toy_world_version": TOY_WORLD_VERSION, "seconds": seconds, **result}
            _write_json(RESULTS / f"{name}.json", stored)
            print(f"{name}: {seconds} s", flush=True)
    texts, changed, unrendered = render(load_results())
    if args.check:
        if changed or unrendered:
            print(
                f"the pages are not what docs/validation/*.json gives: tables {changed} differ, "
                f"tables {unrendered} have no results"
            )
            return 1
        return 0
    for page, text in texts.items():
        page.write_text(text)
    for name in changed:
        print(f"table {name!r} changed: read the prose around it again")
    for name in unrendered:
        print(f"table {name!r} left as it was: run the sections {TABLES[name][1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
