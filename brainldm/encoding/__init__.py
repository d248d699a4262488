"""Voxelwise encoding models: predict every voxel from a feature space, and judge it.

The paper's second half (Takagi & Nishimoto 2023, §3.4) explains brain
activity with the latent diffusion model's parts: for a feature space (``z``,
``c``, ``z_c``, U-Net layers), a ridge regression predicts each voxel's
response to the seen images, and the Pearson r of the predictions on held-out
images maps where that feature space is represented.

- :class:`VoxelwiseEncoder`: features -> every voxel. Features are z-scored and
  reduced by PCA (6,400 components, as the paper) fitted on the training
  images only, then the decoders' ridge solver picks an alpha per voxel by
  K-fold cross-validation, folds grouped by image. Voxels are solved in
  batches, so that ``Y`` (a whole brain, possibly a ``np.memmap``) is never
  copied or upcast whole.
- :class:`BandedVariancePartitioner`: the variance partition, on himalaya's
  banded ridge: bands (column blocks of X, e.g. ``[z, z_c]``) fitted
  together, and each voxel's held-out accuracy split between them (himalaya's
  product measure, the paper's maps), beside the classic unique variance
  from the models fitted without each band.
- Both reduce features by :class:`brainldm.features.FeatureReducer`: z-scoring
  and PCA fitted on the training images.
- :func:`significance`: one-sided p of each r against the correlation of two
  independent Gaussian vectors, and Benjamini-Hochberg q values.
- The paper's four analyses (Figures 6-9), on arrays, resumable:
  :func:`representations` (z, c and z_c encoders), :func:`noise_levels` and
  :func:`denoising_stages` (z_c's unique variance against img2img strength and
  denoising step, by banded ridge) and :func:`unet_layers` (the best U-Net
  layer per voxel); :func:`run_encoding_analyses` runs them on a
  :func:`~brainldm.datasets.nsd.load_nsd` subject and the features of
  :func:`encoding_features`. :func:`brainldm.metrics.summarize_paired`
  compares their models per ROI.
- :func:`noise_ceiling`: NSD's noise ceiling from single-trial betas, and
  :func:`normalized_accuracy`, r² as a fraction of it.

Single trials or averages: train on the single trials with ``groups`` set to
the image of each trial (folds then never split an image's repetitions, and
the PCA sees each image once), or on repetition-averaged betas, one row per
image (fewer rows, less noise per row; the same alphas need not win).
"""

from brainldm.encoding._analyses import (
    ANALYSES,
    check_encoding_settings,
    choose_pool_size,
    denoising_stages,
    encoding_features,
    noise_levels,
    representations,
    run_encoding_analyses,
    unet_layers,
)
from brainldm.encoding._partition import BandedVariancePartitioner
from brainldm.encoding._statistics import noise_ceiling, normalized_accuracy, significance
from brainldm.encoding._voxelwise import VoxelwiseEncoder

__all__ = [
    "ANALYSES",
    "BandedVariancePartitioner",
    "VoxelwiseEncoder",
    "check_encoding_settings",
    "choose_pool_size",
    "denoising_stages",
    "encoding_features",
    "noise_ceiling",
    "noise_levels",
    "normalized_accuracy",
    "representations",
    "run_encoding_analyses",
    "significance",
    "unet_layers",
]

# Public names say where users import them from, not the private module that holds them.
for _name in __all__:
    if callable(globals()[_name]):
        globals()[_name].__module__ = __name__
del _name
