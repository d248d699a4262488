"""Reconstruct seen images from simulated fMRI, step by step.

The method of Takagi & Nishimoto (CVPR 2023) on the toy world: a simulated NSD
in NSD's own layout, read by the same reader as the real dataset, and the toy
latent diffusion model shipped with brainldm. Swap the root for your NSD folder
and ``"toy"`` for ``"CompVis/stable-diffusion-v1-4"`` to run it on real data.

Run: ``python examples/reconstruct_toy_world.py [output-folder]``.
"""

import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.pipeline import make_pipeline

from brainldm.datasets.nsd import load_nsd
from brainldm.datasets.toy import make_toy_nsd
from brainldm.decoding import LatentDecoder, TextDecoder
from brainldm.diffusion import StableDiffusion
from brainldm.features import LatentFeatures, TextFeatures
from brainldm.metrics import two_way_identification

out = Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp())

# 1. Files -> arrays: single-trial betas, z-scored per session; the shared
#    images form the test set, each the mean of its repetitions.
root = make_toy_nsd(out / "toy_nsd", n_sessions=6, n_released_sessions=5, progress=False)
data = load_nsd(root, "subj01", progress=False)
print(
    f"{len(data.X_train)} train trials, {len(data.X_test)} test images, "
    f"{data.X_train.shape[1]} voxels"
)

# 2. Images and captions -> z and c, with the model's own feature extractors.
sd = StableDiffusion.from_pretrained("toy")
seen = np.unique(np.concatenate([data.images_train, data.images_test]))
z = LatentFeatures(sd).fit_transform(data.stimuli[seen])
c = TextFeatures(sd).fit_transform([data.captions[i] for i in seen])
rows = np.searchsorted(seen, data.images_train)
test_rows = np.searchsorted(seen, data.images_test)

# 3. fMRI -> z from early visual cortex, fMRI -> c from ventral cortex; folds
#    grouped by image, since each training image was shown three times.
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

# 4. Decoded z and c -> images: the paper's img2img chain, and its controls.
shown = slice(0, 6)
z_shown = z_test[shown].reshape(-1, *sd.latent_shape)
c_shown = c_test[shown].reshape(-1, *sd.text_shape)
rows_of_images = [
    data.stimuli[data.images_test[shown]],
    sd.decode_latents(z_shown),
    sd.img2img(z_shown, None, steps=25, progress=False)[:, 0],
    sd.text2img(c_shown, steps=25, progress=False)[:, 0],
    sd.img2img(z_shown, c_shown, steps=25, progress=False)[:, 0],
]
size = sd.generation_size
grid = np.concatenate(
    [
        np.concatenate([np.asarray(Image.fromarray(im).resize((size, size))) for im in row], 1)
        for row in rows_of_images
    ],
    0,
)
Image.fromarray(grid).save(out / "reconstructions.png")
print(f"rows: seen, X_z, z only, c only, z and c -> {out / 'reconstructions.png'}")
