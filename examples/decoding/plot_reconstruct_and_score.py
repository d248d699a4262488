"""Reconstruct test images with one estimator, and score them under both protocols
=================================================================================

:class:`~brainldm.reconstruction.LDMReconstructor` holds the whole chain as one
scikit-learn estimator: ``fit`` encodes the seen images to ``z`` and their captions to
``c`` and fits the two decoders, ``predict`` decodes betas and generates images. Here it
reconstructs 12 test images of a small toy world in each mode of the paper: ``coarse``
(``X_z``, the decoded ``z`` through the VAE alone), ``z``, ``c`` and ``zc``. The
reconstructions are shown as in the paper's Figure 3, and scored as in its Figure 5 by
:class:`~brainldm.metrics.IdentificationScorer` on the toy perceptual network, under both
identification protocols: ``"pairwise"`` (one sample per image against every other test
image) and ``"takagi2023"`` (the paper's: every sample).

:func:`brainldm.workflows.reconstruct` (``brainldm reconstruct`` on the command line) runs
the same steps on every test image of every subject, with the paired tests between modes,
and writes the tables and both figures.

Run: ``python examples/decoding/plot_reconstruct_and_score.py [output-folder]``.
"""

# %%
# A small toy world
# -----------------
# One subject, 3 sessions of 150 trials, 40 shared test images.
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

from brainldm.datasets.nsd import load_nsd
from brainldm.datasets.toy import make_toy_nsd
from brainldm.decoding import LatentDecoder, TextDecoder
from brainldm.metrics import PROTOCOLS, IdentificationScorer
from brainldm.plotting import identification_bars, image_grid
from brainldm.reconstruction import LDMReconstructor

# Some columns' best alpha at the grid's end, a few constant simulated voxels dropped.
warnings.filterwarnings("ignore", "the (smallest|largest) alpha", UserWarning)
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
images = data.stimuli[data.images_train]
captions = [data.captions[i] for i in data.images_train]

# %%
# Fit and reconstruct, mode by mode
# ---------------------------------
# ``z`` is decoded from early visual cortex, ``c`` from ventral cortex, with folds grouped
# by image. The cache (``memory``) keeps the encoded training targets, so the four fits
# encode the images once.
test = slice(0, 12)
reconstructions = {}
for mode in ("coarse", "z", "c", "zc"):
    reconstructor = LDMReconstructor(
        "toy",
        latent_decoder=LatentDecoder(voxels=data.roi_masks["early"]),
        text_decoder=TextDecoder(voxels=data.roi_masks["ventral"]),
        mode=mode,
        steps=10,
        n_samples_per_image=2,
        memory=out / "cache",
    )
    reconstructor.fit(data.X_train, images, captions, groups=data.images_train)
    reconstructions[mode] = reconstructor.predict(data.X_test[test])
    print(f"{mode}: {reconstructions[mode].shape}")

# %%
# Figure 3: the seen images and their reconstructions
# ---------------------------------------------------
# The first sample of each image in each mode (``coarse`` gives one image per row).
seen = data.stimuli[data.images_test[test]]
columns = [seen] + [images[:, 0] for images in reconstructions.values()]
names = ["seen", "X_z", "z", "c", "zc"]
grid = image_grid(columns, names, path=out / "reconstructions.png")

# %%
# Figure 5: identification under both protocols
# ---------------------------------------------
# Two-way identification on the toy perceptual network's layers (0.5 is chance), and
# PixCorr and SSIM, with the standard error across the test images. ``"pairwise"`` scores
# the first sample of each image; ``"takagi2023"`` every sample.
metrics = ["pixcorr", "ssim", "toy_early", "toy_late", "toy_embedding"]
means, errors = {}, {}
for protocol in PROTOCOLS:
    scorer = IdentificationScorer(metrics, suite="toy", protocol=protocol)
    means[protocol], errors[protocol] = {}, {}
    for mode, images_of_mode in reconstructions.items():
        per_image = scorer.score(seen, images_of_mode, per_image=True)
        means[protocol][mode] = {name: float(np.mean(v)) for name, v in per_image.items()}
        errors[protocol][mode] = {
            name: float(np.std(v, ddof=1) / np.sqrt(len(v))) for name, v in per_image.items()
        }
    print(
        f"{protocol}: toy_embedding",
        {mode: round(scores["toy_embedding"], 2) for mode, scores in means[protocol].items()},
    )

chance = {name: 0.5 for name in metrics if name.startswith("toy_")}
figure = identification_bars(
    means, errors, chance=chance, title="subj01, 12 test images", path=out / "identification.png"
)
