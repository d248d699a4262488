"""The paper's two halves from Python: reconstruct, evaluate and encode
=====================================================================

What the ``brainldm`` command runs, called as functions of :mod:`brainldm.workflows` on a
small toy world with small settings (a few minutes on 2 CPU cores): the decoding half
(:func:`~brainldm.workflows.reconstruct`, then :func:`~brainldm.workflows.evaluate` on
what it saved) and the encoding half (:func:`~brainldm.workflows.encode`). Each returns a
result object holding its tables as pandas DataFrames, the summary it wrote as JSON and the
paths it wrote; every figure the command draws is drawn again here from those objects. The
cache lives in each output folder, so running this again recomputes nothing, and
``brainldm reconstruct`` or ``brainldm encode`` with the same settings on the same folders
reuse it.

Run: ``python examples/workflows/plot_both_halves.py [output-folder]``.
"""

# %%
# A small toy world
# -----------------
# One subject, 3 sessions of 150 trials, 40 shared test images. ``demo(out)`` makes the
# default toy world and reconstructs 100 images as ``brainldm demo``; a smaller one keeps
# this example quick.
import sys
import tempfile
import warnings
from pathlib import Path

from PIL import Image

from brainldm import encode, evaluate, make_toy_nsd, reconstruct
from brainldm.plotting import plot_best_layers, plot_encoding_maps, plot_unique_variance

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

# %%
# The decoding half
# -----------------
# Fit z (early voxels) and c (ventral voxels), reconstruct 12 test images in the modes
# X_z, z, c and zc, and score them under both identification protocols.
decoding = reconstruct(
    root, "subj01", "toy", out / "decoding", n_images=12, n_samples_per_image=2, steps=10
)
print(decoding.report())

# %%
# The tables: every image's score, the means, the Wilcoxon tests of zc against z and c.
print(decoding.scores.head())
pairwise = decoding.means[decoding.means["protocol"] == "pairwise"]
print(pairwise.pivot(index="mode", columns="metric", values="mean").round(3))
print(decoding.comparisons[["protocol", "metric", "other", "mean", "other_mean", "p_holm"]])

# %%
# The two figures ``brainldm reconstruct`` draws, from the result.
grid = decoding.plot_reconstructions(out / "reconstructions.png")
bars = decoding.plot_identification(out / "identification.png")

# %%
# Scores of the saved reconstructions, as ``brainldm evaluate`` computes them.
scored = evaluate(out / "decoding" / "reconstructions-subj01.npz", root)
print("evaluate gives the run's scores:", scored.report() == decoding.report())

# %%
# The encoding half
# -----------------
# The four analyses (z, c, z_c encoders; z_c's unique variance against noise level and
# along the denoising; the best U-Net layer per voxel), with small settings.
encoding = encode(
    root,
    "subj01",
    "toy",
    out / "encoding",
    strengths=(0.4, 0.8),
    steps=5,
    n_components=20,
    n_iter=3,
)
representations = encoding.summary["subjects"]["subj01"]["representations"]
print(
    "median r in early cortex:",
    {space: round(representations["early"]["median"][space], 3) for space in ("z", "c", "zc")},
)

# %%
# Every figure ``brainldm encode`` draws (Figures 6-9), from the result, in one call; two
# of them shown here, r of z on the cortex and z_c's unique variance by strength ...
paths = encoding.plot_figures("subj01", out / "figures")
print(f"{len(paths)} figures:", ", ".join(path.name for path in paths))
shown = [
    Image.open(out / "figures" / name)
    for name in ("fig6_r_z_surface.png", "fig7_unique_zc_by_strength.png")
]

# %%
# ... or one by one, from what the result keeps of each analysis.
maps = encoding.subjects["subj01"]
analyses = maps.analyses
plot_encoding_maps(
    {"representations": analyses["representations"]},
    maps.masker,
    out / "one-by-one",
    bg_img=maps.anatomy,
    contours=maps.contours,
    subject="subj01",
)
plot_unique_variance(analyses["noise_levels"], path=out / "one-by-one" / "by_strength.png")
plot_unique_variance(
    analyses["denoising_stages"], xlabel="denoising step", path=out / "one-by-one" / "by_stage.png"
)
best = plot_best_layers(analyses["unet_layers"], path=out / "one-by-one" / "best_layers.png")
print(f"wrote the figures under {out}")
