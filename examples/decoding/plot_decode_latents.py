"""Decode z and c from fMRI, and reconstruct images from them
=============================================================

The method of Takagi & Nishimoto (CVPR 2023) step by step, on the toy world: a
simulated NSD in NSD's own layout, read by the same reader as the real dataset, and the
toy latent diffusion model shipped with brainldm. Two ridge regressions, each a
scikit-learn :class:`~sklearn.pipeline.Pipeline`, map the betas to the image latent
``z`` (from early visual cortex) and to the text embedding ``c`` (from ventral visual
cortex); the model then turns the decoded ``z`` and ``c`` into images.

Swap the root for your NSD folder and ``"toy"`` for ``"CompVis/stable-diffusion-v1-4"``
to run it on real data (:doc:`../scaling/run_on_nsd`).

Run: ``python examples/decoding/plot_decode_latents.py [output-folder]``.
"""

# %%
# Files -> arrays
# ---------------
# A small toy world: one subject, 3 sessions of 150 trials, 40 shared test images.
# Single-trial betas, z-scored per session; the shared images form the test set, each the
# mean of its repetitions.
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
from sklearn.pipeline import make_pipeline

from brainldm.datasets.nsd import load_nsd
from brainldm.datasets.toy import make_toy_nsd
from brainldm.decoding import LatentDecoder, TextDecoder
from brainldm.diffusion import StableDiffusion
from brainldm.features import LatentFeatures, TextFeatures
from brainldm.metrics import two_way_identification
from brainldm.plotting import image_grid

# A few simulated voxels are constant in some session; the reader drops them, and says so.
warnings.filterwarnings("ignore", "subj01: dropped", UserWarning)
out = Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp())
root = make_toy_nsd(
    out / "toy_nsd",
    n_sessions=4,
    n_released_sessions=3,
    trials_per_session=150,
    n_shared=40,
    subjects=("subj01",),
    progress=False,
)
data = load_nsd(root, "subj01", progress=False)
print(
    f"{len(data.X_train)} train trials, {len(data.X_test)} test images, "
    f"{data.X_train.shape[1]} voxels"
)

# %%
# Images and captions -> z and c
# ------------------------------
# The model's own feature extractors give the targets, one row per seen image.
sd = StableDiffusion.from_pretrained("toy")
seen = np.unique(np.concatenate([data.images_train, data.images_test]))
z = LatentFeatures(sd).fit_transform(data.stimuli[seen])
c = TextFeatures(sd).fit_transform([data.captions[i] for i in seen])
rows = np.searchsorted(seen, data.images_train)
test_rows = np.searchsorted(seen, data.images_test)
print(f"z: {z.shape[1]} columns ({sd.latent_shape}), c: {c.shape[1]} columns ({sd.text_shape})")

# %%
# fMRI -> z and c
# ---------------
# ``z`` from early visual cortex, ``c`` from ventral cortex. Each training image was shown
# three times, so the folds that choose each column's alpha are grouped by image: the
# repetitions of an image never sit on both sides of a fold.
z_decoder = make_pipeline(LatentDecoder(voxels=data.roi_masks["early"]))
c_decoder = make_pipeline(TextDecoder(voxels=data.roi_masks["ventral"]))
z_decoder.fit(data.X_train, z[rows], latentdecoder__groups=data.images_train)
c_decoder.fit(data.X_train, c[rows], textdecoder__groups=data.images_train)
z_test = z_decoder.predict(data.X_test)
c_test = c_decoder.predict(data.X_test)
print(
    f"identification of decoded z: {two_way_identification(z[test_rows], z_test):.2f}, "
    f"of decoded c: {two_way_identification(c[test_rows], c_test):.2f} (chance 0.50)"
)

# %%
# Decoded z and c -> images
# -------------------------
# The paper's img2img chain and its controls (Figure 3): the decoded ``z`` decoded by the
# VAE (``X_z``), img2img from ``z`` alone, text2img from ``c`` alone, and img2img from
# ``z`` guided by ``c``.
shown = slice(0, 6)
z_shown = z_test[shown].reshape(-1, *sd.latent_shape)
c_shown = c_test[shown].reshape(-1, *sd.text_shape)
columns = {
    "seen": data.stimuli[data.images_test[shown]],
    "X_z": sd.decode_latents(z_shown),
    "z": sd.img2img(z_shown, None, steps=25, progress=False)[:, 0],
    "c": sd.text2img(c_shown, steps=25, progress=False)[:, 0],
    "zc": sd.img2img(z_shown, c_shown, steps=25, progress=False)[:, 0],
}
grid = image_grid(list(columns.values()), list(columns), path=out / "reconstructions.png")
print(f"columns: {', '.join(columns)} -> {out / 'reconstructions.png'}")
