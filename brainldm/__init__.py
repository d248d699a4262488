"""brainldm: image reconstruction from fMRI with latent diffusion models.

Decoders map fMRI activity to the latent image representation ``z`` and the
text conditioning ``c`` of a latent diffusion model; the diffusion model turns
them into images; voxelwise encoding models explain brain activity from the
model's parts (Takagi & Nishimoto, CVPR 2023).

The public estimators, loaders, the scorer and the workflows (what the
``brainldm`` command runs) are importable from here; each is imported on first
use, so ``import brainldm`` is instant and ``import brainldm.datasets`` does
not load torch:

>>> from brainldm import LatentDecoder, TextDecoder, StableDiffusion, load_nsd, make_toy_nsd
>>> from brainldm import IdentificationScorer, demo, encode, evaluate, reconstruct
"""

from brainldm._lazy import lazy_exports

__version__ = "0.1.0"

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "LatentDecoder": "brainldm.decoding",
        "TextDecoder": "brainldm.decoding",
        "StableDiffusion": "brainldm.diffusion",
        "LDMReconstructor": "brainldm.reconstruction",
        "VoxelwiseEncoder": "brainldm.encoding",
        "BandedVariancePartitioner": "brainldm.encoding",
        "load_nsd": "brainldm.datasets.nsd",
        "make_toy_nsd": "brainldm.datasets.toy",
        "load_toy_ground_truth": "brainldm.datasets.toy",
        "two_way_identification": "brainldm.metrics.identification",
        "IdentificationScorer": "brainldm.metrics",
        "reconstruct": "brainldm.workflows",
        "evaluate": "brainldm.workflows",
        "encode": "brainldm.workflows",
        "demo": "brainldm.workflows",
    },
)
