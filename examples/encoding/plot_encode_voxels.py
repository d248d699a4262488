"""Map where the model's z and c are represented, voxel by voxel
===============================================================

Voxelwise encoding models (Takagi & Nishimoto, CVPR 2023, §3.4) on the toy
world, the whole brain read memory-mapped from the on-disk cache as a
whole-brain NSD load would be: features of the seen images (``z`` from the
toy model's VAE, ``c`` from its text encoder) predict every voxel; held-out
Pearson r is tested against the null of two independent Gaussian vectors with
Benjamini-Hochberg FDR; maps are written as NIfTI through the subject's masker
and drawn over the subject's own anatomy with the ROI outlines. Swap the root
for your NSD folder and ``"toy"`` for ``"CompVis/stable-diffusion-v1-4"`` to
run it on real data.

Run: ``python examples/encoding/plot_encode_voxels.py [output-folder]``.
"""

# %%
# The whole brain, memory-mapped
# ------------------------------
# NSD's brainmask, read from the on-disk cache: ``X_train`` never sits in RAM.
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

from brainldm.datasets.nsd import load_nsd
from brainldm.datasets.toy import make_toy_nsd
from brainldm.encoding import VoxelwiseEncoder, noise_ceiling, significance
from brainldm.features import LatentFeatures, TextFeatures
from brainldm.maps import save_maps
from brainldm.plotting import plot_brain_map

out = Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp())

root = make_toy_nsd(out / "toy_nsd", subjects=("subj01",), progress=False)
data = load_nsd(root, "subj01", rois="brain", mmap=True, cache_dir=out / "cache", progress=False)
print(
    f"{len(data.X_train)} train trials, {len(data.X_test)} test images, {data.X_train.shape[1]} voxels"
)

# %%
# The feature spaces
# ------------------
# One row per seen image: ``z`` from the toy model's VAE, ``c`` from its text encoder.
seen = np.unique(np.concatenate([data.images_train, data.images_test]))
train, test = np.searchsorted(seen, data.images_train), np.searchsorted(seen, data.images_test)
spaces = {
    "z": LatentFeatures("toy").fit_transform(data.stimuli[seen]),
    "c": TextFeatures("toy").fit_transform([data.captions[i] for i in seen]),
}

# %%
# One encoder per space
# ---------------------
# PCA fitted on the training images, an alpha per voxel, folds grouped by image; r on
# the averaged test images, FDR-corrected. The noise ceiling, from the repetitions of
# each image, bounds the r a voxel could reach.
ceiling = noise_ceiling(
    np.concatenate([data.X_train, data.X_test_trials]),
    np.concatenate([data.images_train, data.images_test_trials]),
    n_average=data.n_repeats_test,
)
maps = {"noise_ceiling": ceiling.ceiling}
displays = {}
for name, features in spaces.items():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # n_components capped at the images
        encoder = VoxelwiseEncoder(n_components=300)
        encoder.fit(features[train], data.X_train, groups=data.images_train)
    r = encoder.score_voxels(features[test], data.X_test)
    test_result = significance(r, len(data.X_test))
    maps[f"r_{name}"], maps[f"q_{name}"] = r, test_result.q
    summary = ", ".join(
        f"{roi} {np.nanmedian(r[data.roi_masks[roi]]):.2f}"
        for roi in ("early", "midventral", "ventral", "lateral", "parietal")
    )
    print(
        f"{name}: {test_result.significant.mean():.0%} of voxels significant (q < 0.05); "
        f"median r: {summary}"
    )
    displays[name] = plot_brain_map(
        r,
        data.masker,
        bg_img=root / "nsddata/ppdata/subj01/func1pt8mm/T1_to_func1pt8mm.nii.gz",
        significant=test_result.significant,
        contours={roi: data.roi_masks[roi] for roi in ("early", "ventral")},
        vmax=1.0,
        title=f"encoding from {name}: r, q < 0.05",
        path=out / f"encoding_{name}.png",
    )

# %%
# Every map as a NIfTI image
# --------------------------
# In the subject's functional space, through its masker.
paths = save_maps(maps, data.masker, out / "maps")
print("wrote", ", ".join(sorted(path.name for path in paths.values())))
