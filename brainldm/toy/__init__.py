"""Models of the toy world, shipped with the package.

- ``ldm/``: a small latent diffusion model in Stable Diffusion's folder layout
  (``StableDiffusion.from_pretrained("toy")``, or diffusers' own pipelines on
  :data:`TOY_LDM_PATH`), trained by ``python -m brainldm.toy.training.ldm``.
- ``perceptual/``: a small CNN naming the main object's shape, colour and
  position, the number of objects and the background of toy scenes, the toy
  world's stand-in for AlexNet or CLIP in identification, trained by
  ``python -m brainldm.toy.training.perceptual`` and loaded by
  :func:`load_perceptual_net`.

The network itself is :mod:`brainldm.toy.perceptual`, the text encoder's
tokenizer :mod:`brainldm.toy.tokenizer`; the training scripts live in
:mod:`brainldm.toy.training`, the one place besides :mod:`brainldm.diffusion`
that imports diffusers. Importing this package loads no torch.

Both were trained on scenes from :func:`brainldm.datasets.scenes.make_stimuli`
with seed :data:`TRAINING_SEED`; their quality is measured on scenes with seed
:data:`HELD_OUT_SEED`. Each records the fingerprint of the scene generator it
was trained on (:func:`recorded_fingerprint`), so that a change of the
generator without retraining is detected.
"""

import json
from pathlib import Path

__all__ = [
    "HELD_OUT_SEED",
    "TOY_LDM_PATH",
    "TOY_PERCEPTUAL_PATH",
    "TRAINING_SEED",
    "load_perceptual_net",
    "recorded_fingerprint",
]

TOY_LDM_PATH = Path(__file__).parent / "ldm"
TOY_PERCEPTUAL_PATH = Path(__file__).parent / "perceptual"

# Seeds of make_stimuli for the training and held-out scenes; the simulated
# NSD draws its scenes from other seeds.
TRAINING_SEED = 1001
HELD_OUT_SEED = 1002


def recorded_fingerprint(path=TOY_LDM_PATH):
    """Fingerprint of the toy scenes a shipped model was trained on.

    Parameters
    ----------
    path : str or path-like, default=TOY_LDM_PATH
        A model folder: the LDM folder (read from ``brainldm.json``) or the
        perceptual network's folder (read from ``config.json``).

    Returns
    -------
    fingerprint : str
        The value of :func:`brainldm.datasets.scenes.stimulus_fingerprint`
        when the model was trained: of the scenes and their captions for the
        LDM, of the scenes alone (``captions=False``) for the perceptual
        network, which sees no captions.

    Examples
    --------
    >>> from brainldm.datasets.scenes import stimulus_fingerprint
    >>> from brainldm.toy import TOY_PERCEPTUAL_PATH, recorded_fingerprint
    >>> recorded_fingerprint() == stimulus_fingerprint()
    True
    >>> recorded_fingerprint(TOY_PERCEPTUAL_PATH) == stimulus_fingerprint(captions=False)
    True
    """
    path = Path(path)
    for name in ("brainldm.json", "config.json"):
        if (path / name).exists():
            return json.loads((path / name).read_text())["toy_world_fingerprint"]
    raise FileNotFoundError(
        f"path {str(path)!r} holds neither brainldm.json nor config.json; pass a toy model folder "
        f"such as {str(TOY_LDM_PATH)!r}"
    )


def load_perceptual_net(path=TOY_PERCEPTUAL_PATH, device="cpu"):
    """Load the toy perceptual network.

    Parameters
    ----------
    path : str or path-like, default=TOY_PERCEPTUAL_PATH
        Folder with ``config.json`` and ``model.safetensors``.
    device : str or torch.device, default="cpu"
        Device to put the network on.

    Returns
    -------
    net : brainldm.toy.perceptual.ToyPerceptualNet
        In evaluation mode; see its ``predict`` and ``features``.

    Examples
    --------
    >>> import numpy as np
    >>> from brainldm.toy import load_perceptual_net
    >>> net = load_perceptual_net()
    >>> sorted(net.predict(np.zeros((2, 64, 64, 3), dtype=np.uint8)))
    ['background_colour', 'background_kind', 'colour', 'n_objects', 'position', 'shape']
    """
    from brainldm.toy.perceptual import ToyPerceptualNet

    return ToyPerceptualNet.from_pretrained(path, device=device)
