"""Stable Diffusion as the method uses it: load, encode, decode, img2img, probes.

:class:`StableDiffusion` wires the parts of a latent diffusion model in the
standard Stable Diffusion folder layout (``vae/``, ``unet/``,
``text_encoder/``, ``tokenizer/``, ``scheduler/``) and offers what brain
decoding and encoding need of them: the image latent ``z``, the text
conditioning ``c``, images from decoded ``(z, c)`` by the img2img chain of
Takagi & Nishimoto (CVPR 2023), and the intermediate latents and U-Net
activations of that chain for voxelwise encoding models.

This is the only package of the library that imports diffusers. The
denoising loop is written here rather than delegated to a diffusers pipeline,
so that the encoding probes can read latents and U-Net activations inside it,
through the per-step callback the loop exposes as diffusers' pipelines do
(``callback_on_step_end``). SD's safety checker is never loaded or run: it
blacks out flagged images, which would corrupt identification scores.

The package holds one module per job: ``_model`` (the class, its sizes and
default layers, composed of one mixin per job), ``_loading`` (folders, the
hub, the toy model, ``brainldm.json``, pickling by reference), ``_codec``
(images <-> ``z``, captions -> ``c``), ``_schedule`` (the noise-schedule
policy), ``_sampling`` (the guided DDIM loop), ``_chains`` (img2img and
text2img), ``_probes`` (``z_c`` and pooled U-Net activations, built as step
callbacks), ``_rng`` (one generator per image and sample) and ``_random``
(randomly initialised models in SD's layout, for tests and benchmarks).
"""

from brainldm.diffusion._loading import COMPONENTS, DEFAULT_IMAGE_SIZE
from brainldm.diffusion._model import StableDiffusion
from brainldm.diffusion._random import RANDOM_MODEL_SIZES, save_random_model
from brainldm.diffusion._rng import sample_generator
from brainldm.diffusion._schedule import NOISE_SCHEDULES

__all__ = [
    "COMPONENTS",
    "DEFAULT_IMAGE_SIZE",
    "NOISE_SCHEDULES",
    "RANDOM_MODEL_SIZES",
    "StableDiffusion",
    "sample_generator",
    "save_random_model",
]

# Public names say where users import them from, not the private module that holds them.
for _name in ("StableDiffusion", "sample_generator"):
    globals()[_name].__module__ = __name__
del _name
