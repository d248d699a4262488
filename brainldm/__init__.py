"""brainldm: image reconstruction from fMRI with latent diffusion models.

Decoders map fMRI activity to the latent image representation ``z`` and the
text conditioning ``c`` of a latent diffusion model; the diffusion model turns
them into images; voxelwise encoding models explain brain activity from the
model's parts (Takagi & Nishimoto, CVPR 2023).
"""

__version__ = "0.1.0.dev0"
