"""Toy-world identification by mode and rescaling: the table behind LDMReconstructor's default.

Run ``python benchmarks/rescale_modes.py [N_TEST STEPS N_SAMPLES]`` (default ``48 25 2``). It
writes the default toy world under ``brainldm-bench/``, fits one reconstructor on subj01
(its decoders are shared by every setting), and prints, for ``rescale="train"``, ``"batch"`` and ``None``
and the modes z, c and zc, the toy suite under both identification protocols, with the
seconds each generation took. The table is also saved as JSON beside the world.
"""

import copy
import json
import sys
import time
import warnings
from pathlib import Path

from brainldm import load_nsd, make_toy_nsd
from brainldm.decoding import LatentDecoder, TextDecoder
from brainldm.metrics import IdentificationScorer
from brainldm.reconstruction import LDMReconstructor

OUT = Path("brainldm-bench")
METRICS = [
    "pixcorr",
    "ssim",
    "toy_early",
    "toy_middle",
    "toy_late",
    "toy_embedding",
    "toy_colour",
    "toy_shape",
    "toy_background",
]


def main(n_test=48, steps=25, n_samples=2, out=OUT):
    """Fit, reconstruct and score; return the table (also saved as JSON in ``out``)."""
    warnings.simplefilter("ignore")
    out = Path(out)
    root = make_toy_nsd(out / "toy_nsd", progress=False)
    data = load_nsd(root, "subj01", progress=False, cache_dir=out / "cache")
    seen = data.stimuli[data.images_test[:n_test]]
    start = time.time()
    base = LDMReconstructor(
        "toy",
        LatentDecoder(voxels=data.roi_masks["early"]),
        TextDecoder(voxels=data.roi_masks["ventral"]),
        steps=steps,
        n_samples_per_image=n_samples,
        batch_size=16,
    )
    base.fit(
        data.X_train,
        data.stimuli[data.images_train],
        [data.captions[i] for i in data.images_train],
        groups=data.images_train,
    )
    print(f"fit: {time.time() - start:.0f} s", flush=True)
    table = {}
    for rescale in ("train", "batch", None):
        for mode in ("z", "c", "zc"):
            start = time.time()
            recon = copy.copy(base).set_params(
                mode=mode, rescale=rescale, memory=out / f"images-{rescale}"
            )
            images = recon.predict(data.X_test[:n_test])
            seconds = time.time() - start
            for protocol in ("pairwise", "takagi2023"):
                scores = IdentificationScorer(metrics=METRICS, protocol=protocol).score(
                    seen, images
                )
                table[f"{rescale}|{mode}|{protocol}"] = scores
                rounded = {name: round(value, 3) for name, value in scores.items()}
                print(
                    f"rescale={rescale} {mode} {protocol} ({seconds:.0f} s): {rounded}", flush=True
                )
    path = out / f"rescale_modes-{n_test}-{steps}-{n_samples}.json"
    path.write_text(json.dumps(table, indent=1))
    print(f"wrote {path}")
    return table


if __name__ == "__main__":
    main(*(int(arg) for arg in sys.argv[1:4]))
