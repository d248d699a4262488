"""The toy perceptual network: a small CNN that names what toy scenes show.

It stands in for AlexNet or CLIP in the toy world: its heads name the main
(largest) object's shape category, colour and position, the number of
objects and the background, and its conv layers and penultimate embedding give
early, middle and late features for identification.
"""

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from brainldm._images import check_uint8, resize, to_tensor
from brainldm._validation import resolve_device

__all__ = [
    "ToyPerceptualNet",
    "resize_images",
    "scene_labels",
    "toy_heads",
]

_CELL_BORDERS = (0.4, 0.6)
_POSITION_CELLS = (
    "top left",
    "top",
    "top right",
    "left",
    "middle",
    "right",
    "bottom left",
    "bottom",
    "bottom right",
)


def resize_images(images, size):
    """Resize a batch of uint8 RGB images to ``size`` x ``size`` with LANCZOS.

    The LANCZOS resize that the rest of brainldm uses, for one uint8 array
    only.

    Parameters
    ----------
    images : ndarray of shape (n_images, height, width, 3), dtype uint8
        Images to resize.
    size : int
        Side of the output images in pixels.

    Returns
    -------
    resized : ndarray of shape (n_images, size, size, 3), dtype uint8
        ``images`` itself when it already has that size.

    Examples
    --------
    >>> import numpy as np
    >>> from brainldm.toy.perceptual import resize_images
    >>> resize_images(np.zeros((2, 85, 85, 3), dtype=np.uint8), 64).shape
    (2, 64, 64, 3)
    """
    images = np.asarray(images)
    check_uint8(images, "images")
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(
            f"images must be one array of shape (n_images, height, width, 3), got {images.shape}"
        )
    return resize(images, size)


def _position_cell(x, y):
    """Index of the 3 x 3 grid cell holding the point (x, y) of the unit square.

    The cell borders sit at 0.4 and 0.6, where the captions switch from
    *left* to *middle* to *right* (and *top* to *middle* to *bottom*), so a
    cell is what a caption's position phrase names; see :data:`_POSITION_CELLS`.

    Parameters
    ----------
    x, y : array-like of float
        Coordinates in [0, 1], x to the right and y down.

    Returns
    -------
    cell : ndarray of int
        ``3 * row + column``.

    Examples
    --------
    >>> from brainldm.toy.perceptual import _POSITION_CELLS, _position_cell
    >>> [_POSITION_CELLS[i] for i in _position_cell([0.1, 0.5, 0.9], [0.1, 0.5, 0.5])]
    ['top left', 'middle', 'right']
    """
    return 3 * np.digitize(y, _CELL_BORDERS) + np.digitize(x, _CELL_BORDERS)


def toy_heads():
    """Class names of each head of the toy perceptual network.

    Returns
    -------
    heads : dict of str to tuple of str
        ``shape``, ``colour`` and ``position`` of the main object, ``n_objects``,
        ``background_kind`` and ``background_colour``.

    Examples
    --------
    >>> from brainldm.toy.perceptual import toy_heads
    >>> toy_heads()["n_objects"]
    ('one', 'two', 'three')
    """
    from brainldm.datasets import scenes

    return dict(
        shape=scenes.SHAPES,
        colour=scenes.COLOURS,
        position=_POSITION_CELLS,
        n_objects=("one", "two", "three"),
        background_kind=scenes.BACKGROUND_KINDS,
        background_colour=scenes.BACKGROUND_COLOURS,
    )


def scene_labels(attributes):
    """True class index of every head for scenes of :func:`~brainldm.datasets.scenes.make_stimuli`.

    Parameters
    ----------
    attributes : Bunch
        ``make_stimuli(...).attributes``.

    Returns
    -------
    labels : dict of str to ndarray of shape (n_images,), dtype int
        Keys as in :func:`toy_heads`.

    Examples
    --------
    >>> from brainldm.datasets.scenes import make_stimuli
    >>> from brainldm.toy.perceptual import scene_labels
    >>> sorted(scene_labels(make_stimuli(3).attributes))
    ['background_colour', 'background_kind', 'colour', 'n_objects', 'position', 'shape']
    """
    return dict(
        shape=np.asarray(attributes.shape)[:, 0],
        colour=np.asarray(attributes.colour)[:, 0],
        position=_position_cell(np.asarray(attributes.x)[:, 0], np.asarray(attributes.y)[:, 0]),
        n_objects=np.asarray(attributes.n_objects) - 1,
        background_kind=np.asarray(attributes.background_kind),
        background_colour=np.asarray(attributes.background_colour),
    )


class ToyPerceptualNet(nn.Module):
    """A small CNN that names the content of toy scenes.

    Four 3x3 conv layers (each followed by batch norm and ReLU; the first
    three by 2x2 max pooling) turn a 64 px image into a 8x8 map, pooled to a
    3x3 grid (so that position survives) and projected to an embedding; one
    linear head per attribute names it.

    Parameters
    ----------
    heads : dict of str to sequence of str
        Class names of each head, e.g. ``{"shape": ("circle", ...)}``.
    channels : sequence of int, default=(32, 64, 96, 96)
        Output channels of the four conv layers.
    embedding_dim : int, default=128
        Size of the penultimate embedding.
    input_size : int, default=64
        Side in pixels that images are resized to.

    Attributes
    ----------
    config : dict
        Everything needed to rebuild the network, saved in ``config.json``.

    See Also
    --------
    brainldm.toy.load_perceptual_net : load the trained network.

    Examples
    --------
    >>> import numpy as np
    >>> from brainldm.toy.perceptual import ToyPerceptualNet
    >>> net = ToyPerceptualNet({"shape": ("circle", "square")}).eval()
    >>> images = np.zeros((3, 85, 85, 3), dtype=np.uint8)
    >>> net.predict(images)["shape"].shape
    (3,)
    >>> {name: f.shape for name, f in net.features(images).items()}
    {'early': (3, 512), 'middle': (3, 1024), 'late': (3, 1536), 'embedding': (3, 128)}
    """

    #: Conv layer whose output each feature layer pools.
    FEATURE_LAYERS = {"early": 0, "middle": 1, "late": 3}

    def __init__(self, heads, channels=(32, 64, 96, 96), embedding_dim=128, input_size=64):
        super().__init__()
        self.config = dict(
            heads={name: list(classes) for name, classes in heads.items()},
            channels=list(channels),
            embedding_dim=embedding_dim,
            input_size=input_size,
        )
        layers, previous = [], 3
        for i, width in enumerate(channels):
            block = [nn.Conv2d(previous, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
            if i < len(channels) - 1:
                block.append(nn.MaxPool2d(2))
            layers.append(nn.Sequential(*block))
            previous = width
        self.convs = nn.ModuleList(layers)
        self.embed = nn.Sequential(
            nn.AdaptiveAvgPool2d(3), nn.Flatten(), nn.Linear(9 * previous, embedding_dim), nn.ReLU()
        )
        self.heads = nn.ModuleDict(
            {name: nn.Linear(embedding_dim, len(classes)) for name, classes in heads.items()}
        )

    def _run(self, x):
        maps = []
        for conv in self.convs:
            x = conv(x)
            maps.append(x)
        return maps, self.embed(x)

    def forward(self, x):
        """Logits of every head for images given as a float tensor.

        Parameters
        ----------
        x : torch.Tensor of shape (n, 3, input_size, input_size)
            Images scaled to [-1, 1] (see :meth:`to_tensor`).

        Returns
        -------
        logits : dict of str to torch.Tensor of shape (n, n_classes)
        """
        embedding = self._run(x)[1]
        return {name: head(embedding) for name, head in self.heads.items()}

    def to_tensor(self, images):
        """uint8 images (n, h, w, 3) -> float tensor (n, 3, s, s) in [-1, 1] at the input size."""
        images = resize_images(images, self.config["input_size"])
        return to_tensor(images, device=next(self.parameters()).device)

    @torch.no_grad()
    def _batches(self, images, batch_size, fn):
        images = np.asarray(images)
        if images.ndim == 3:
            raise ValueError(
                f"images must be a batch of shape (n_images, height, width, 3), got shape "
                f"{images.shape}; wrap a single image as images[None]"
            )
        outputs = [
            fn(self.to_tensor(images[s : s + batch_size]))
            for s in range(0, len(images), batch_size)
        ]
        return {k: np.concatenate([o[k] for o in outputs]) for k in outputs[0]}

    def predict(self, images, batch_size=256):
        """Name the main object's attributes, the object count and the background.

        Parameters
        ----------
        images : ndarray of shape (n_images, height, width, 3), dtype uint8
            RGB images of any size (resized to the input size with LANCZOS).
        batch_size : int, default=256
            Images per forward pass.

        Returns
        -------
        predictions : dict of str to ndarray of shape (n_images,), dtype int
            Class index per head; ``config["heads"][head]`` names the classes.

        Examples
        --------
        >>> from brainldm.datasets.scenes import SHAPES, make_stimuli
        >>> from brainldm.toy import load_perceptual_net
        >>> stim = make_stimuli(8, seed=5)
        >>> predicted = load_perceptual_net().predict(stim.images)["shape"]
        >>> bool((predicted == stim.attributes.shape[:, 0]).mean() >= 0.75)
        True
        """
        return self._batches(
            images,
            batch_size,
            lambda x: {k: v.argmax(1).cpu().numpy() for k, v in self.forward(x).items()},
        )

    def features(self, images, batch_size=256):
        """Early, middle and late conv features and the embedding of each image.

        Conv maps are average-pooled to a 4x4 grid and flattened, so that
        features keep coarse layout; ``embedding`` is the penultimate layer.

        Parameters
        ----------
        images : ndarray of shape (n_images, height, width, 3), dtype uint8
            RGB images of any size (resized to the input size with LANCZOS).
        batch_size : int, default=256
            Images per forward pass.

        Returns
        -------
        features : dict of str to ndarray of shape (n_images, n_features), float32
            Keys ``early``, ``middle``, ``late`` and ``embedding``.

        Examples
        --------
        >>> from brainldm.datasets.scenes import make_stimuli
        >>> from brainldm.toy import load_perceptual_net
        >>> features = load_perceptual_net().features(make_stimuli(2).images)
        >>> features["late"].shape
        (2, 1536)
        """

        def run(x):
            maps, embedding = self._run(x)
            out = {
                name: nn.functional.adaptive_avg_pool2d(maps[i], 4).flatten(1)
                for name, i in self.FEATURE_LAYERS.items()
            }
            out["embedding"] = embedding
            return {k: v.cpu().numpy().astype(np.float32) for k, v in out.items()}

        return self._batches(images, batch_size, run)

    def save_pretrained(self, folder, **record):
        """Write ``config.json`` (the config plus ``record``) and ``model.safetensors``."""
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        save_file(state, folder / "model.safetensors")
        config = {**self.config, **record}
        (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")

    @classmethod
    def from_pretrained(cls, folder, device="cpu"):
        """Load a network saved by :meth:`save_pretrained`, in evaluation mode.

        Parameters
        ----------
        folder : str or path-like
            Folder with ``config.json`` and ``model.safetensors``.
        device : str, torch.device or None, default="cpu"
            Device to put the network on; None is the CPU.

        Returns
        -------
        net : ToyPerceptualNet
        """
        from safetensors.torch import load_file

        folder = Path(folder)
        if not (folder / "model.safetensors").exists():
            raise FileNotFoundError(
                f"folder {str(folder)!r} has no model.safetensors; pass a folder written by "
                "ToyPerceptualNet.save_pretrained, such as brainldm.toy.TOY_PERCEPTUAL_PATH"
            )
        device = resolve_device(device)
        config = json.loads((folder / "config.json").read_text())
        keys = ("heads", "channels", "embedding_dim", "input_size")
        net = cls(**{k: config[k] for k in keys})
        net.load_state_dict(load_file(folder / "model.safetensors"))
        return net.to(device).eval()
