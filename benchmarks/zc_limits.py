"""Measure what limits the toy world's zc reconstructions, and what the sample choice gains.

Run ``python benchmarks/zc_limits.py [N_TEST STEPS]`` (default ``100 25``, the demo's). It
writes the default toy world under ``brainldm-bench/``, fits one reconstructor on subj01 as
``brainldm demo`` does, and prints, pairwise on the toy suite with 5 samples per image:

1. img2img from the true or the decoded ``z``, conditioned on the true or the decoded ``c``
   (four runs), scored on sample 0 and as the mean over the samples (the expectation of a
   sample drawn at random);
2. ``select="decoded"`` (per image, the sample whose latent correlates best with the decoded
   ``z``, a choice from the brain alone) against sample 0 and against a random sample, in
   modes z and zc, with a Wilcoxon signed-rank test of the chosen against the random sample
   per image;
3. where ``rescale="batch"``'s gain over ``"train"`` comes from: zc generated from the same
   decoded features rescaled with the statistics of the reconstructed rows themselves
   (``"batch"``), of the other test rows, with the other test rows' spread and the stored
   training mean, of cross-validated predictions by decoders that choose their alphas on
   each fold (``"train"`` before it refitted the folds at the decoder's alphas), of the same
   for repetition-averaged training betas, and with the stored statistics (``"train"``).

The numbers are saved as JSON beside the world.
"""

import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from scipy.stats import wilcoxon
from sklearn.base import clone

from brainldm import load_nsd, make_toy_nsd
from brainldm.decoding import LatentDecoder, TextDecoder
from brainldm.diffusion import StableDiffusion
from brainldm.metrics import IdentificationScorer
from brainldm.reconstruction import LDMReconstructor, rescale_features
from brainldm.ridge import cv_splits

OUT = Path("brainldm-bench")
METRICS = ["pixcorr", "ssim", "toy_early", "toy_late", "toy_embedding"]
METRICS += ["toy_colour", "toy_shape", "toy_background"]
N_SAMPLES = 5


def _by_sample(scorer, seen, images):
    """Per-image scores of each sample: metric -> array of shape (n_samples, n_images)."""
    each = [scorer.score(seen, images[:, k], True) for k in range(images.shape[1])]
    return {metric: np.array([s[metric] for s in each], np.float64) for metric in each[0]}


def _row(scores):
    return {m: (round(float(s[0].mean()), 3), round(float(s.mean()), 3)) for m, s in scores.items()}


def _fold_predictions(recon, data, sd):
    """Per part, cross-validated predictions by decoders that choose their alphas per fold.

    Returns ``(single, averaged)``: of each training trial, and of each held-out image's
    averaged betas.
    """
    ids = data.images_train
    unique, inverse = np.unique(ids, return_inverse=True)
    targets = dict(
        z=sd.encode_images(list(data.stimuli[unique])).reshape(len(unique), -1)[inverse],
        c=sd.encode_text([data.captions[i] for i in unique]).reshape(len(unique), -1)[inverse],
    )
    single, averaged = {}, {}
    for part, decoder in (("z", recon.latent_decoder_), ("c", recon.text_decoder_)):
        rows, trials = [], np.empty(targets[part].shape)
        for train, test in cv_splits(5, len(ids), ids):
            fold = clone(decoder).fit(data.X_train[train], targets[part][train], groups=ids[train])
            trials[test] = fold.predict(data.X_train[test])
            held_out = ids[test]
            means = [data.X_train[test][held_out == k].mean(0) for k in np.unique(held_out)]
            rows.append(np.asarray(fold.predict(np.stack(means)), np.float64))
        single[part] = trials
        averaged[part] = np.concatenate(rows).reshape(sum(map(len, rows)), -1)
    return single, averaged


def _statistics_sources(recon, data, sd, scorer, seen, n_test):
    decoders = dict(z=recon.latent_decoder_, c=recon.text_decoder_)
    raw = {part: np.asarray(d.predict(data.X_test), np.float64) for part, d in decoders.items()}
    raw = {part: values.reshape(len(data.X_test), -1) for part, values in raw.items()}
    single, averaged = _fold_predictions(recon, data, sd)
    own, other = slice(0, n_test), slice(n_test, len(data.X_test))
    sources = {
        "batch (the reconstructed rows)": lambda part, st: (
            raw[part][own].mean(0),
            raw[part][own].std(0),
        ),
        "the other test rows": lambda part, st: (raw[part][other].mean(0), raw[part][other].std(0)),
        "the other test rows' spread, the training mean": lambda part, st: (
            st.decoded_mean,
            raw[part][other].std(0),
        ),
        "cross-validated, alphas chosen per fold": lambda part, st: (
            single[part].mean(0),
            single[part].std(0),
        ),
        "cross-validated, alphas chosen per fold, repetition-averaged": lambda part, st: (
            averaged[part].mean(0),
            averaged[part].std(0),
        ),
        "train (stored at fit: folds at the decoder's alphas)": lambda part, st: (
            st.decoded_mean,
            st.decoded_std,
        ),
    }
    print("zc by the source of the decoded statistics (sample 0, mean over samples); the")
    print("spread of the other test rows over the source's, percentiles 5, 50, 95 over dimensions")
    table, spread = {}, {}
    for name, source in sources.items():
        features, spread[name] = {}, {}
        for part in ("z", "c"):
            stats = recon.rescale_[part]
            mean, std = source(part, stats)
            kept = stats.target_std > 1e-6
            ratio = raw[part][other].std(0)[kept] / std[kept]
            spread[name][part] = np.percentile(ratio, [5, 50, 95]).round(3).tolist()
            print(f"  {part}: {spread[name][part]}")
            features[part] = rescale_features(
                raw[part][own].astype(np.float32), mean, std, stats.target_mean, stats.target_std
            )
        images = sd.img2img(
            features["z"].reshape(n_test, *recon.latent_shape_),
            features["c"].reshape(n_test, *recon.text_shape_),
            strength=recon.strength,
            noise_schedule=recon.noise_schedule,
            steps=recon.steps,
            guidance=recon.guidance,
            n_samples_per_image=N_SAMPLES,
            random_state=recon.random_state,
            batch_size=16,
        )
        table[name] = _row(_by_sample(scorer, seen, images))
        print(f"{name}: {table[name]}", flush=True)
    return {"scores": table, "spread_ratio": spread}


def main(n_test=100, steps=25, out=OUT):
    """Run the three measurements; return their table (also saved as JSON in ``out``)."""
    warnings.simplefilter("ignore")
    out = Path(out)
    root = make_toy_nsd(out / "toy_nsd", progress=False)
    data = load_nsd(root, "subj01", progress=False, cache_dir=out / "cache")
    ids, X = data.images_test[:n_test], data.X_test[:n_test]
    seen = data.stimuli[ids]
    start = time.time()
    recon = LDMReconstructor(
        "toy",
        LatentDecoder(voxels=data.roi_masks["early"]),
        TextDecoder(voxels=data.roi_masks["ventral"]),
        steps=steps,
        n_samples_per_image=N_SAMPLES,
        batch_size=16,
        memory=out / "images-train",
    ).fit(
        data.X_train,
        data.stimuli[data.images_train],
        [data.captions[i] for i in data.images_train],
        groups=data.images_train,
    )
    print(f"fit: {time.time() - start:.0f} s", flush=True)
    scorer = IdentificationScorer(metrics=METRICS, protocol="pairwise")
    sd = StableDiffusion.from_pretrained("toy")
    decoded = recon.decode(X)
    true = dict(
        z=sd.encode_images(list(seen)).reshape(decoded.z.shape),
        c=sd.encode_text([data.captions[i] for i in ids]).reshape(decoded.c.shape),
    )
    table = {"inputs": {}, "selection": {}}
    print("img2img inputs, pairwise: metric (sample 0, mean over samples)")
    for z_name, z in (("true", true["z"]), ("decoded", decoded.z)):
        for c_name, c in (("true", true["c"]), ("decoded", decoded.c)):
            start = time.time()
            images = sd.img2img(
                z,
                c,
                strength=recon.strength,
                noise_schedule=recon.noise_schedule,
                steps=steps,
                guidance=recon.guidance,
                n_samples_per_image=N_SAMPLES,
                random_state=recon.random_state,
                batch_size=16,
            )
            row = _row(_by_sample(scorer, seen, images))
            table["inputs"][f"z {z_name}, c {c_name}"] = row
            print(f"z {z_name}, c {c_name} ({time.time() - start:.0f} s): {row}", flush=True)
    print("select='decoded' against sample 0 and the mean over samples (Wilcoxon p)")
    for mode in ("z", "zc"):
        every = recon.set_params(mode=mode, select=None).predict(X)
        by_sample = _by_sample(scorer, seen, every)
        picked = scorer.score(seen, recon.set_params(select="decoded").predict(X), True)
        row = {}
        for metric, values in picked.items():
            chosen, random = np.asarray(values, np.float64), by_sample[metric].mean(0)
            differs = np.any(chosen != random)
            p = float(wilcoxon(chosen - random).pvalue) if differs else 1.0
            row[metric] = dict(
                selected=round(float(chosen.mean()), 3),
                sample_0=round(float(by_sample[metric][0].mean()), 3),
                random=round(float(random.mean()), 3),
                p=float(f"{p:.2g}"),
            )
        table["selection"][mode] = row
        print(f"{mode}: {row}", flush=True)
    table["statistics"] = _statistics_sources(recon, data, sd, scorer, seen, n_test)
    path = out / f"zc_limits-{n_test}-{steps}.json"
    path.write_text(json.dumps(table, indent=1))
    print(f"wrote {path}")
    return table


if __name__ == "__main__":
    main(*(int(arg) for arg in sys.argv[1:3]))
