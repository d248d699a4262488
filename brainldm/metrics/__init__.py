"""Scores of decoded features and reconstructed images.

- :mod:`brainldm.metrics.correlation`: Pearson r per column (voxel), the
  accuracy of encoding models, read in blocks of columns.
- :mod:`brainldm.metrics.identification`: two-way identification on
  features, by the pairwise protocol of Brain-Diffuser and MindEye or by
  Takagi & Nishimoto's.
- :mod:`brainldm.metrics.images`: pixel correlation and SSIM (the correct
  2-D one and the peers' variant).
- :mod:`brainldm.metrics.scoring`: :class:`IdentificationScorer`, every
  metric of a suite (the peers' or the toy world's), and custom ones on any
  feature extractor, from originals and reconstructions;
  :func:`check_metrics`, which checks metrics and their networks' weights
  before any work.
- :mod:`brainldm.metrics.statistics`: paired Wilcoxon tests with Holm's
  correction, between reconstruction modes (per image) and between encoding
  models (per voxel and ROI), means and standard errors.

Names are imported on first use, so ``import brainldm.metrics`` loads no torch.
"""

from brainldm._lazy import lazy_exports

_CORRELATION = "brainldm.metrics.correlation"
_IDENTIFICATION = "brainldm.metrics.identification"
_IMAGES = "brainldm.metrics.images"
_SCORING = "brainldm.metrics.scoring"
_STATISTICS = "brainldm.metrics.statistics"
__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "correlation_score": _CORRELATION,
        "PROTOCOLS": _IDENTIFICATION,
        "identification_from_correlations": _IDENTIFICATION,
        "standardize_rows": _IDENTIFICATION,
        "two_way_identification": _IDENTIFICATION,
        "pixel_correlation": _IMAGES,
        "ssim": _IMAGES,
        "ssim_braindiffuser": _IMAGES,
        "METRICS": _SCORING,
        "SUITES": _SCORING,
        "IdentificationScorer": _SCORING,
        "check_metrics": _SCORING,
        "bootstrap_se": _STATISTICS,
        "compare_modes": _STATISTICS,
        "holm": _STATISTICS,
        "mean_and_sem": _STATISTICS,
        "paired_wilcoxon": _STATISTICS,
        "summarize_paired": _STATISTICS,
    },
)
