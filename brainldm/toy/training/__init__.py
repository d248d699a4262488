"""Scripts that train the toy models shipped in ``brainldm/toy/``.

- :mod:`brainldm.toy.training.ldm`: the toy latent diffusion model
  (``python -m brainldm.toy.training.ldm``), written to ``brainldm/toy/ldm/``.
- :mod:`brainldm.toy.training.perceptual`: the toy perceptual network
  (``python -m brainldm.toy.training.perceptual``), written to
  ``brainldm/toy/perceptual/``.

Both keep their state in one checkpoint per loop, written atomically every
few minutes, and resume from it when the same command is run again.

This package is the one fenced exception to the rule that only
:mod:`brainldm.diffusion` imports diffusers: building and training the toy
VAE and U-Net needs diffusers' model classes and noise schedulers, which the
library's sampling code never does. The library never imports this package,
and its modules import diffusers inside the functions that need it.
"""

__all__ = []
