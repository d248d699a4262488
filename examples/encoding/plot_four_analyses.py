"""The paper's four encoding analyses, on the volume and on the cortical surface
===============================================================================

:func:`brainldm.workflows.encode` (``brainldm encode`` on the command line) runs the four
analyses of Takagi & Nishimoto's §3.4 for a subject and draws Figures 6-9:

1. encoding models from ``z``, ``c`` and ``z_c`` (Figure 6);
2. ``z_c``'s unique variance against ``z`` as img2img adds more noise (Figure 7);
3. the same along the denoising steps (Figure 8);
4. the U-Net layer that predicts each voxel best, early, midway and late in the
   denoising (Figure 9).

Every map is written as NIfTI in the subject's space and, through NSD's transforms, as
GIFTI on fsaverage; every figure is drawn on slices of the volume and on the inflated and
flattened cortex. Here on a tiny toy world with tiny settings (5 denoising steps, 20
principal components, 2 noise levels), so that it runs in about a minute; the defaults are
the ones measured on the toy world, and on NSD the same call takes a folder and
``"CompVis/stable-diffusion-v1-4"``.

Run: ``python examples/encoding/plot_four_analyses.py [output-folder]``.
"""

# %%
# A tiny toy world
# ----------------
# One subject, 12 x 14 x 12 voxels, 100 training images.
import sys
import tempfile
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image

from brainldm.datasets.toy import make_toy_nsd
from brainldm.plotting import plot_surface_map
from brainldm.workflows import encode

# Some voxels' best alpha at the grid's end, a few constant simulated voxels dropped.
warnings.filterwarnings("ignore", "the (smallest|largest) alpha", UserWarning)
warnings.filterwarnings("ignore", "subj01: dropped", UserWarning)
warnings.filterwarnings("ignore", "n_components", UserWarning)
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

# %%
# The four analyses
# -----------------
# The result holds the summary written to ``summary.json`` (per analysis and ROI, the
# paired comparisons), what each figure is drawn from, and the paths written.
result = encode(
    root,
    "subj01",
    "toy",
    out / "encoding",
    steps=5,
    n_components=20,
    n_iter=3,
    strengths=(0.4, 0.8),
    chunk_size=300,
)
representations = result.summary["subjects"]["subj01"]["representations"]
for roi in ("early", "ventral"):
    medians = {space: round(representations[roi]["median"][space], 2) for space in ("z", "c", "zc")}
    print(f"median r in {roi} cortex: {medians}")

# %%
# Figure 6 on the volume and on the cortex
# ----------------------------------------
# r of the ``z``, ``c`` and ``z_c`` encoders where q < 0.05, on slices of the subject's
# anatomy; then ``z``'s on fsaverage, inflated (seen from the side and from the middle)
# and flattened.
folder = out / "encoding" / "subj01" / "figures"
fig6 = [
    Image.open(folder / name)
    for name in ("fig6_r_z.png", "fig6_r_c.png", "fig6_r_zc.png", "fig6_r_z_surface.png")
]

# %%
# Figures 7 and 8: z_c's unique variance
# --------------------------------------
# Against the img2img noise level, and along the denoising steps, per ROI.
fig7_8 = [
    Image.open(folder / name)
    for name in ("fig7_unique_zc_by_strength.png", "fig8_unique_zc_by_stage.png")
]

# %%
# Figure 9: the best U-Net layer per voxel
# ----------------------------------------
# Per ROI, and per voxel late in the denoising, on the volume and on the cortex.
fig9 = [
    Image.open(folder / name)
    for name in (
        "fig9_best_layer_by_roi.png",
        "fig9_best_layer_late.png",
        "fig9_best_layer_late_surface.png",
    )
]

# %%
# Every figure written
# --------------------
print("\n".join(sorted(path.name for path in folder.glob("*.png"))))

# %%
# The surface maps as files
# -------------------------
# Each map is also a pair of GIFTI files on fsaverage, left and right hemisphere, to open
# in any surface viewer; read back, a map is drawn again with
# :func:`~brainldm.plotting.plot_surface_map`.
maps = out / "encoding" / "subj01" / "maps" / "representations"
r_z = np.concatenate(
    [nib.load(maps / f"r_z_hemi-{hemi}.func.gii").darrays[0].data for hemi in ("L", "R")]
)
print(f"r_z: {r_z.size} vertices")
surface = plot_surface_map(r_z, symmetric=False, vmin=0, title="r of z, every vertex")
