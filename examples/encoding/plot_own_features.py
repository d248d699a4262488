"""Plug in your own feature extractor: to score reconstructions, and to encode voxels
===================================================================================

A feature extractor is a scikit-learn transformer from stimuli to a 2-D float32 array.
Subclass :class:`~brainldm.features.FeatureExtractor` with two methods, the shape of one
image's features and the features of a batch, and the same object serves

* as an identification metric, beside the built-in ones: two-way identification on the
  Pearson correlation of its features, in
  :class:`~brainldm.metrics.IdentificationScorer` and in
  :class:`~brainldm.reconstruction.LDMReconstructor`'s ``score`` (``metric=``);
* as a feature space of a voxelwise encoding model,
  :class:`~brainldm.encoding.VoxelwiseEncoder`, beside the model's ``z``.

The extractor here is deliberately simple: the mean colour of each cell of a 4 x 4 grid.

Run: ``python examples/encoding/plot_own_features.py [output-folder]``.
"""

# %%
# The extractor
# -------------
# ``__init__`` stores its parameters (scikit-learn's rule); the base class checks the
# shape of what ``_extract`` returns and flattens it.
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

from brainldm.datasets.nsd import load_nsd
from brainldm.datasets.toy import make_toy_nsd
from brainldm.decoding import LatentDecoder
from brainldm.encoding import VoxelwiseEncoder, significance
from brainldm.features import FeatureExtractor, LatentFeatures
from brainldm.metrics import IdentificationScorer
from brainldm.plotting import plot_brain_map
from brainldm.reconstruction import LDMReconstructor


class ColourGrid(FeatureExtractor):
    """Mean colour of each cell of a ``grid`` x ``grid`` partition of an image."""

    def __init__(self, grid=4):
        self.grid = grid

    def _feature_shape(self):
        return (self.grid, self.grid, 3)

    def _extract(self, X):
        X = np.asarray(X, dtype=np.float32)
        n, height, width, _ = X.shape
        cell_height, cell_width = height // self.grid, width // self.grid
        # The pixels past the last whole cell (when the side is no multiple of the grid) are left out.
        X = X[:, : cell_height * self.grid, : cell_width * self.grid]
        cells = X.reshape(n, self.grid, cell_height, self.grid, cell_width, 3)
        return cells.mean(axis=(2, 4))


# %%
# A tiny toy world
# ----------------
# One subject, 12 x 14 x 12 voxels, 6 sessions of 60 trials, 20 shared test images.
# Some voxels' best alpha at the grid's end, a few constant simulated voxels dropped.
warnings.filterwarnings("ignore", "the (smallest|largest) alpha", UserWarning)
warnings.filterwarnings("ignore", "subj01: dropped", UserWarning)
out = Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp())
root = make_toy_nsd(
    out / "toy_nsd",
    n_sessions=6,
    n_released_sessions=6,
    trials_per_session=60,
    n_shared=20,
    volume_shape=(12, 14, 12),
    subjects=("subj01",),
    progress=False,
)
data = load_nsd(root, "subj01", rois="brain", progress=False)
test_images = data.stimuli[data.images_test]
print(f"{len(data.X_train)} train trials, {data.X_train.shape[1]} voxels")

# %%
# As an identification metric
# ---------------------------
# ``X_z``, the decoded ``z`` through the VAE (mode ``"coarse"``), scored among the test
# images on the toy perceptual network's embedding and on the colour grid. A metric named
# by a tuple keeps its name; an unfitted extractor is fitted on the seen images.
reconstructor = LDMReconstructor(
    "toy",
    latent_decoder=LatentDecoder(voxels=data.roi_masks["early"]),
    mode="coarse",
    metric=("colour grid", ColourGrid()),
)
reconstructor.fit(data.X_train, data.stimuli[data.images_train], groups=data.images_train)
print(f"score (colour grid): {reconstructor.score(data.X_test, test_images):.2f}")

reconstructions = reconstructor.predict(data.X_test)
scorer = IdentificationScorer(["toy_embedding", ("colour grid", ColourGrid())], suite="toy")
scores = scorer.score(test_images, reconstructions)
print({name: round(value, 2) for name, value in scores.items()})

# %%
# As an encoding model's features
# -------------------------------
# The colour grid of every seen image predicts every voxel, as the model's ``z`` does;
# r on the test images, tested with FDR.
seen = np.unique(np.concatenate([data.images_train, data.images_test]))
train, test = np.searchsorted(seen, data.images_train), np.searchsorted(seen, data.images_test)
spaces = {
    "colour grid": ColourGrid().fit_transform(data.stimuli[seen]),
    "z": LatentFeatures("toy").fit_transform(data.stimuli[seen]),
}
r = {}
for name, features in spaces.items():
    encoder = VoxelwiseEncoder(n_components=40)
    encoder.fit(features[train], data.X_train, groups=data.images_train)
    r[name] = encoder.score_voxels(features[test], data.X_test)
    medians = {
        roi: float(np.nanmedian(r[name][data.roi_masks[roi]])) for roi in ("early", "ventral")
    }
    print(f"{name}: median r", {roi: round(value, 2) for roi, value in medians.items()})

display = plot_brain_map(
    r["colour grid"],
    data.masker,
    bg_img=root / "nsddata/ppdata/subj01/func1pt8mm/T1_to_func1pt8mm.nii.gz",
    significant=significance(r["colour grid"], len(data.X_test)).significant,
    contours={roi: data.roi_masks[roi] for roi in ("early", "ventral")},
    vmax=1.0,
    title="encoding from the colour grid: r, q < 0.05",
)
