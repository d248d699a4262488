"""Scores of decoded features and reconstructed images.

- :mod:`brainldm.metrics.identification`: two-way identification on
  features, by the pairwise protocol of Brain-Diffuser and MindEye or by
  Takagi & Nishimoto's.

Names are imported on first use, so ``import brainldm.metrics`` loads no torch.
"""

from brainldm._lazy import lazy_exports

_IDENTIFICATION = "brainldm.metrics.identification"
__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "identification_from_correlations": _IDENTIFICATION,
        "standardize_rows": _IDENTIFICATION,
        "two_way_identification": _IDENTIFICATION,
    },
)
