"""From the toy world to NSD: the same code, with a folder and a model id
=======================================================================

Every other example runs on the toy world, which :func:`~brainldm.datasets.toy.make_toy_nsd`
writes in NSD's own layout, and with the toy model. On the Natural Scenes Dataset the
code is the same: the NSD folder replaces the toy world's and
``"CompVis/stable-diffusion-v1-4"`` replaces ``"toy"``. This example is shown, not run
when the documentation is built: it needs NSD on disk (see the datasets page), Stable
Diffusion v1.4's weights (downloaded from the Hugging Face hub on first use, about 4 GB)
and, to finish in hours rather than days, a CUDA GPU.

Run: ``python examples/scaling/run_on_nsd.py NSD_FOLDER [output-folder]``.
"""

# %%
# The data and the model
# ----------------------
# The same reader as the toy world's; whole-session betas are cached as arrays in
# ``cache_dir`` on the first read and memory-mapped afterwards.
import sys
from pathlib import Path

import numpy as np

from brainldm.datasets.nsd import load_nsd
from brainldm.decoding import LatentDecoder, TextDecoder
from brainldm.metrics import IdentificationScorer
from brainldm.reconstruction import LDMReconstructor
from brainldm.workflows import encode, reconstruct

nsd_root = Path(sys.argv[1] if len(sys.argv) > 1 else "/data/nsd")
out = Path(sys.argv[2] if len(sys.argv) > 2 else "nsd-out")
model = "CompVis/stable-diffusion-v1-4"
data = load_nsd(nsd_root, "subj01", cache_dir=out / "nsd_cache", mmap=True)

# %%
# Reconstruct and score, as on the toy world
# ------------------------------------------
# As :doc:`../decoding/plot_reconstruct_and_score`, on the GPU: the decoders solve their
# ridge regressions there, the model generates there, and the paper's own metrics
# (Inception, CLIP and AlexNet layers, with its preprocessing) score the images.
reconstructor = LDMReconstructor(
    model,
    latent_decoder=LatentDecoder(voxels=data.roi_masks["early"], device="cuda"),
    text_decoder=TextDecoder(voxels=data.roi_masks["ventral"], device="cuda"),
    device="cuda",
    memory=out / "cache",
)
# Each training image once in memory (NSD shows one up to 3 times), one view per trial.
unique, inverse = np.unique(data.images_train, return_inverse=True)
pictures, texts = data.stimuli[unique], [data.captions[i] for i in unique]
images, captions = [pictures[k] for k in inverse], [texts[k] for k in inverse]
reconstructor.fit(data.X_train, images, captions, groups=data.images_train)
reconstructions = reconstructor.predict(data.X_test[:100])
scorer = IdentificationScorer(suite="takagi2023", protocol="takagi2023", device="cuda")
scores = scorer.score(data.stimuli[data.images_test[:100]], reconstructions)
print({name: round(float(np.mean(value)), 3) for name, value in scores.items()})

# %%
# Or the whole runs, as the command line
# --------------------------------------
# ``brainldm reconstruct`` and ``brainldm encode``: every subject, every test image, the
# tables, the summaries and the figures (:doc:`../encoding/plot_four_analyses`), with
# the default settings.
subjects = ["subj01", "subj02", "subj05", "subj07"]
decoding = reconstruct(nsd_root, subjects, model, out / "reconstruct", device="cuda")
print(decoding.report())
encoding = encode(nsd_root, subjects, model, out / "encode", device="cuda", dask=4)
print(encoding.summary["subjects"]["subj01"]["representations"]["early"]["median"])
