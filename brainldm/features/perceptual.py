"""Perceptual networks as feature extractors: the networks of the identification metrics.

- :class:`AlexNetFeatures`, :class:`InceptionFeatures`,
  :class:`EfficientNetFeatures` (B1), :class:`SwAVFeatures` (ResNet-50):
  torchvision networks with ImageNet normalisation;
- :class:`CLIPVisionFeatures`: CLIP ViT-L/14's vision tower through
  transformers' ``CLIPVisionModelWithProjection``, with CLIP's normalisation;
- :class:`ToyPerceptualFeatures`: the toy world's perceptual network.

Each taps one layer, named by its module path (``"features.4"``,
``"avgpool"``, ``"vision_model.encoder.layers.5"``) or an alias
(``"image_embeds"``, ``"hidden_states.6"``), with a forward hook, and
:meth:`PerceptualFeatures.extract_layers` taps several in one pass. Images
(uint8, any size) are resized with PIL as the peers' code does
(:func:`prepare_images`), so that the suites of
:class:`brainldm.metrics.IdentificationScorer` reproduce their inputs.

Weights are read from local files, never from a hub at import. Each network is
loaded once per (network, weights, device, precision) through
:data:`brainldm.features.MODEL_CACHE`, from, in this order: the ``weights``
parameter (a file, or a folder holding the standard file name); the folder
that the environment variable ``BRAINLDM_WEIGHTS_DIR`` names (nothing else is
tried when it is set); torch's hub cache, where torchvision keeps what it
downloads (CLIP: the Hugging Face cache, ``$HF_HUB_CACHE`` or ``$HF_HOME/hub``);
and last a download from the network's URL (CLIP: the Hugging Face hub id), one
quiet attempt without retries. When the environment declares the machine offline
(``BRAINLDM_OFFLINE``, ``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE`` set to
``1``), nothing is downloaded. A missing file raises at once a
``FileNotFoundError`` that names the file, its URL and where to put it
(:data:`NETWORKS`); :func:`check_weights` raises it before any work.
"""

import os
import types
from dataclasses import dataclass
from numbers import Integral
from pathlib import Path

import numpy as np
from PIL import Image

from brainldm._docs import fill_doc
from brainldm._images import INTERPOLATIONS, check_images, resample_filter
from brainldm._offline import OFFLINE_VARIABLES, PROBE_TIMEOUT, offline_declared, probe_hub
from brainldm._validation import (
    Interval,
    Options,
    check_int,
    check_options,
    resolve_device,
    resolve_dtype,
    validate_params,
)
from brainldm.features.base import MODEL_CACHE, FeatureExtractor

__all__ = [
    "NETWORKS",
    "OFFLINE_VARIABLE",
    "WEIGHTS_DIR_VARIABLE",
    "AlexNetFeatures",
    "CLIPVisionFeatures",
    "EfficientNetFeatures",
    "InceptionFeatures",
    "Network",
    "PerceptualFeatures",
    "SwAVFeatures",
    "ToyPerceptualFeatures",
    "check_weights",
    "find_weights",
    "load_perceptual_network",
    "prepare_images",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

WEIGHTS_DIR_VARIABLE = "BRAINLDM_WEIGHTS_DIR"
"""Environment variable naming a folder that holds the weights under their standard names."""

OFFLINE_VARIABLE = OFFLINE_VARIABLES[0]
"""Environment variable that, set to ``1``, forbids downloading weights (as ``HF_HUB_OFFLINE``
and ``TRANSFORMERS_OFFLINE`` do, which are honoured too)."""

_HUB_WEIGHT_FILES = (
    "model.safetensors",
    "pytorch_model.bin",
    "model.safetensors.index.json",
    "pytorch_model.bin.index.json",
)


@dataclass(frozen=True)
class Network:
    """Where a perceptual network's weights come from.

    Attributes
    ----------
    name : str
        Key in :data:`NETWORKS`.
    file : str
        Standard name of the weights file (a folder for CLIP), as looked for
        in a ``weights`` folder and in ``BRAINLDM_WEIGHTS_DIR``.
    url : str
        Where to fetch it (CLIP: a Hugging Face hub id).
    origin : str
        The call that the peers' code fetches it with.
    """

    name: str
    file: str
    url: str
    origin: str


NETWORKS = {
    network.name: network
    for network in (
        Network(
            "alexnet",
            "alexnet-owt-7be5be79.pth",
            "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
            "torchvision.models.alexnet(weights='IMAGENET1K_V1')",
        ),
        Network(
            "inception",
            "inception_v3_google-0cc3c7bd.pth",
            "https://download.pytorch.org/models/inception_v3_google-0cc3c7bd.pth",
            "torchvision.models.inception_v3(weights='IMAGENET1K_V1')",
        ),
        Network(
            "efficientnet",
            "efficientnet_b1-c27df63c.pth",
            "https://download.pytorch.org/models/efficientnet_b1-c27df63c.pth",
            "torchvision.models.efficientnet_b1(weights='IMAGENET1K_V2'), the DEFAULT",
        ),
        Network(
            "swav",
            "swav_800ep_pretrain.pth.tar",
            "https://dl.fbaipublicfiles.com/deepcluster/swav_800ep_pretrain.pth.tar",
            "torch.hub.load('facebookresearch/swav:main', 'resnet50')",
        ),
        Network(
            "clip",
            "clip-vit-large-patch14",
            "openai/clip-vit-large-patch14",
            "transformers' CLIPModel.from_pretrained('openai/clip-vit-large-patch14')",
        ),
    )
}
"""The perceptual networks and their weights: name -> :class:`Network`."""


def _fetch_hint(network):
    spec = NETWORKS[network]
    if network == "clip":
        how = (
            f"download the Hugging Face model {spec.url} (e.g. `hf download {spec.url} "
            f"--local-dir DIR/{spec.file}`)"
        )
    else:
        how = f"download {spec.url} (what {spec.origin} fetches)"
    return (
        f"{how} and put it in a folder named by the environment variable "
        f"{WEIGHTS_DIR_VARIABLE} (as DIR/{spec.file}), or pass weights='/path/to/{spec.file}'"
    )


def _hub_cache():
    """The Hugging Face cache folder as the environment names it now (None: the hub's default)."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    return None


def _hub_snapshot(repo_id):
    """The folder of ``repo_id``'s cached snapshot if it holds a config and weights, else None."""
    from huggingface_hub import try_to_load_from_cache

    try:
        config = try_to_load_from_cache(repo_id, "config.json", cache_dir=_hub_cache())
    except ValueError:  # not a valid repository id
        return None
    if not isinstance(config, str):
        return None
    folder = Path(config).parent
    return str(folder) if any((folder / f).is_file() for f in _HUB_WEIGHT_FILES) else None


def _searched(network, source):
    if network == "clip":
        from huggingface_hub import constants

        return (
            f"{source} is not in the Hugging Face cache ({_hub_cache() or constants.HF_HUB_CACHE})"
        )
    import torch

    return f"no {NETWORKS[network].file} in torch's hub cache ({torch.hub.get_dir()}/checkpoints)"


def _not_found(network, source, reason):
    """The error of weights that are on no disk: what was searched, why not downloaded, the fix."""
    return FileNotFoundError(
        f"{network} weights not found: {_searched(network, source)}, and {reason}; "
        f"{_fetch_hint(network)}"
    )


def _download_refused(network, source, download):
    """The error to raise instead of downloading, or None when downloading is allowed."""
    declared = offline_declared()
    if declared:
        return _not_found(network, source, f"{declared} declares this machine offline")
    if not download:
        return _not_found(network, source, "download=False forbids fetching it")
    return None


def _probe(network, source):
    """Ask once, without retries, whether ``source`` can be downloaded; raise if not."""
    try:
        if network == "clip":
            probe_hub(source, "config.json")
        else:
            from urllib.request import Request, urlopen

            urlopen(Request(source, method="HEAD"), timeout=PROBE_TIMEOUT).close()
    except Exception as error:  # no network: DNS, connection, HTTP and hub errors alike
        raise _not_found(network, source, f"downloading it failed ({error})") from error


def find_weights(network, weights=None, download=True):
    """Where a perceptual network's weights are, without loading them.

    Parameters
    ----------
    network : {"alexnet", "inception", "efficientnet", "swav", "clip"}
        Key in :data:`NETWORKS`.
    weights : str or path-like, optional
        A weights file, or a folder holding the standard file name (for CLIP,
        a ``save_pretrained`` folder, a folder holding
        ``clip-vit-large-patch14/``, or a Hugging Face hub id). Nothing else is
        tried when it is given.
    download : bool, default=True
        Whether weights on no disk may be downloaded: if so, their URL (CLIP:
        hub id) is returned; if not, they raise. The environment variables
        ``BRAINLDM_OFFLINE``, ``HF_HUB_OFFLINE`` and ``TRANSFORMERS_OFFLINE``
        set to ``1`` forbid downloads as well.

    Returns
    -------
    source : str
        A local file or folder (CLIP: possibly a snapshot in the Hugging Face
        cache), or the URL (CLIP: hub id) to download when neither ``weights``
        nor ``BRAINLDM_WEIGHTS_DIR`` is set and no cache holds the weights.
    local : bool
        Whether ``source`` is on disk.

    Raises
    ------
    FileNotFoundError
        If ``weights`` or ``BRAINLDM_WEIGHTS_DIR`` is given but holds no
        weights, or if the weights are on no disk and may not be downloaded;
        the message says what to fetch from where.

    See Also
    --------
    check_weights : also asks the server whether a download would succeed.

    Examples
    --------
    >>> from brainldm.features.perceptual import find_weights
    >>> find_weights("alexnet", weights="/nowhere")
    Traceback (most recent call last):
    ...
    FileNotFoundError: alexnet weights not found: '/nowhere' is neither alexnet-owt-7be5be79.pth nor a folder holding it; download https://download.pytorch.org/models/alexnet-owt-7be5be79.pth (what torchvision.models.alexnet(weights='IMAGENET1K_V1') fetches) and put it in a folder named by the environment variable BRAINLDM_WEIGHTS_DIR (as DIR/alexnet-owt-7be5be79.pth), or pass weights='/path/to/alexnet-owt-7be5be79.pth'
    """
    check_options(network, "network", "find_weights", tuple(NETWORKS))
    spec = NETWORKS[network]

    def local(path):
        path = Path(path).expanduser()
        if network == "clip":
            for folder in (path, path / spec.file):
                if (folder / "config.json").is_file():
                    return str(folder)
            return None
        if path.is_file():
            return str(path)
        return str(path / spec.file) if (path / spec.file).is_file() else None

    source = spec.url
    if weights is not None:
        found = local(weights)
        if found:
            return found, True
        if not (network == "clip" and str(weights).count("/") == 1 and not Path(weights).exists()):
            raise FileNotFoundError(
                f"{network} weights not found: {str(weights)!r} is neither {spec.file} nor a "
                f"folder holding it; {_fetch_hint(network)}"
            )
        source = str(weights)  # a hub id
    else:
        folder = os.environ.get(WEIGHTS_DIR_VARIABLE)
        if folder:
            found = local(folder)
            if found:
                return found, True
            raise FileNotFoundError(
                f"{network} weights not found: {WEIGHTS_DIR_VARIABLE}={folder!r} holds no "
                f"{spec.file}; {_fetch_hint(network)}"
            )
    if network == "clip":
        cached = _hub_snapshot(source)
    else:
        import torch

        cached = Path(torch.hub.get_dir()) / "checkpoints" / spec.file
        cached = str(cached) if cached.is_file() else None
    if cached:
        return cached, True
    refused = _download_refused(network, source, download)
    if refused:
        raise refused
    return source, False


def check_weights(network, weights=None):
    """Fail now if :func:`load_perceptual_network` could not get a network's weights.

    The weights must be on disk (found as :func:`find_weights` finds them),
    or downloads must be allowed and the server must answer: one request,
    without retries, which downloads nothing. Nothing is loaded.

    Parameters
    ----------
    network : {"alexnet", "inception", "efficientnet", "swav", "clip"}
        Key in :data:`NETWORKS`.
    weights : str or path-like, optional
        As :func:`find_weights` takes it.

    Returns
    -------
    source : str
        The local file or folder, or the URL (CLIP: hub id) to download.
    local : bool
        Whether ``source`` is on disk.

    Raises
    ------
    FileNotFoundError
        The error that loading the network would raise, naming what to fetch
        from where.

    Examples
    --------
    >>> import os, tempfile
    >>> from brainldm.features.perceptual import check_weights
    >>> folder = tempfile.mkdtemp()
    >>> open(os.path.join(folder, "alexnet-owt-7be5be79.pth"), "wb").close()
    >>> check_weights("alexnet", weights=folder)[1]
    True
    """
    source, local = find_weights(network, weights)
    if not local:
        _probe(network, source)
    return source, local


def _torchvision_state(network, source, local):
    import torch

    if not local:
        # As torch.hub.load_state_dict_from_url caches it, but quiet and in one attempt.
        checkpoints = Path(torch.hub.get_dir()) / "checkpoints"
        target = checkpoints / NETWORKS[network].file
        try:
            checkpoints.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(source, str(target), progress=False)
        except Exception as error:  # no network: URLError, OSError, HTTPError, ...
            raise _not_found(network, source, f"downloading it failed ({error})") from error
        source = str(target)
    return torch.load(source, map_location="cpu", weights_only=True)


def _build_clip(source, local):
    """CLIP's vision tower and projection, from a CLIPModel or a vision-only checkpoint."""
    from transformers import AutoConfig, CLIPVisionModelWithProjection
    from transformers.utils import logging

    if not local:
        # One quick request first: transformers would retry an unreachable hub for minutes.
        _probe("clip", source)
    try:
        config = AutoConfig.from_pretrained(source)
        if config.model_type == "clip":
            # The projection's width is the full model's; its vision part may not record it.
            vision = config.vision_config
            vision.projection_dim = config.projection_dim
            config = vision
        # The text tower's weights are left out on purpose: keep their report and the
        # loading bar quiet.
        verbosity, bars = logging.get_verbosity(), logging.is_progress_bar_enabled()
        logging.set_verbosity_error()
        logging.disable_progress_bar()
        try:
            model = CLIPVisionModelWithProjection.from_pretrained(source, config=config)
        finally:
            logging.set_verbosity(verbosity)
            if bars:
                logging.enable_progress_bar()
    except OSError as error:
        raise FileNotFoundError(
            f"clip weights not found: loading {source!r} failed ({error}); {_fetch_hint('clip')}"
        ) from error
    return model.eval()


def _build(network, source, local):
    """The network in evaluation mode on the CPU, its weights loaded strictly."""
    import torchvision

    if network == "clip":
        return _build_clip(source, local)
    state = _torchvision_state(network, source, local)
    if network == "alexnet":
        model = torchvision.models.alexnet(weights=None)
    elif network == "efficientnet":
        model = torchvision.models.efficientnet_b1(weights=None)
    elif network == "inception":
        # As torchvision builds it for Google's weights: the input transform on, the
        # auxiliary classifier kept when the file has it (it is unused in eval mode).
        aux = any(key.startswith("AuxLogits.") for key in state)
        model = torchvision.models.inception_v3(
            weights=None, aux_logits=aux, init_weights=False, transform_input=True
        )
    else:  # swav: a torchvision ResNet-50; the checkpoint has "module." prefixes, a
        # projection head and prototypes, and no classifier (fc stays random, unused).
        model = torchvision.models.resnet50(weights=None)
        state = state.get("state_dict", state)
        state = {key.replace("module.", "", 1): value for key, value in state.items()}
        expected = model.state_dict()
        missing = [key for key in expected if key not in state and not key.startswith("fc.")]
        if missing:
            raise ValueError(
                f"{source!r} is no SwAV ResNet-50 checkpoint: it lacks {len(missing)} of the "
                f"backbone's weights, e.g. {missing[:3]}; {_fetch_hint(network)}"
            )
        state = {**{k: v for k, v in expected.items() if k.startswith("fc.")}, **state}
        state = {key: value for key, value in state.items() if key in expected}
    model.load_state_dict(state)
    return model.eval()


def load_perceptual_network(network, weights=None, device=None, dtype=None):
    """Load a perceptual network once, through :data:`~brainldm.features.MODEL_CACHE`.

    Parameters
    ----------
    network : {"alexnet", "inception", "efficientnet", "swav", "clip"}
        Key in :data:`NETWORKS`.
    weights : str or path-like, optional
        As :func:`find_weights` takes it.
    device : str or torch.device, optional
        Where to run it; None is the CPU.
    dtype : {"float32", "float16", "bfloat16"} or torch.dtype, optional
        Its precision; None is float32.

    Returns
    -------
    model : torch.nn.Module
        In evaluation mode, without gradients; shared by every caller naming
        the same network, weights, device and precision.

    Examples
    --------
    >>> import os, tempfile, torch, torchvision
    >>> from brainldm.features.perceptual import load_perceptual_network
    >>> path = os.path.join(tempfile.mkdtemp(), "effnet.pth")
    >>> torch.save(torchvision.models.efficientnet_b1(weights=None).state_dict(), path)
    >>> model = load_perceptual_network("efficientnet", weights=path)
    >>> model is load_perceptual_network("efficientnet", weights=path), model.training
    (True, False)
    """
    check_options(network, "network", "load_perceptual_network", tuple(NETWORKS))
    source, local = find_weights(network, weights)
    device, dtype = resolve_device(device), resolve_dtype(dtype)

    def load():
        model = _build(network, source, local).to(device=device, dtype=dtype)
        return model.requires_grad_(False)

    return MODEL_CACHE.get(("perceptual", network, source, str(device), str(dtype)), load)


def prepare_images(images, size, crop=True, interpolation="bilinear"):
    """Resize uint8 images to ``size`` x ``size`` with PIL, as the peers' preprocessing does.

    Parameters
    ----------
    images : array-like of shape (n_images, height, width, 3) or sequence
        uint8 RGB images of any size.
    size : int
        Side of the output.
    crop : bool, default=True
        Resize the shorter side to ``size`` and take the centre square
        (torchvision's ``Resize(size)`` + ``CenterCrop(size)``); False
        squashes the image to ``size`` x ``size`` (``Resize((size, size))``).
        The two agree on square images.
    interpolation : {"bilinear", "bicubic", "lanczos", "nearest"}, default="bilinear"
        PIL's filter; torchvision's ``Resize`` on a PIL image is bilinear,
        CLIP's preprocessing bicubic.

    Returns
    -------
    images : ndarray of shape (n_images, size, size, 3), uint8

    Examples
    --------
    >>> import numpy as np
    >>> from brainldm.features.perceptual import prepare_images
    >>> wide = np.zeros((1, 40, 80, 3), np.uint8)
    >>> wide[:, :, 20:60] = 255  # a white centre square
    >>> round(prepare_images(wide, 20).mean()), round(prepare_images(wide, 20, crop=False).mean())
    (252, 128)
    """
    size = check_int(size, "size", "prepare_images", min_val=1)
    resample = resample_filter(interpolation, "prepare_images")
    images = check_images(images)
    out = np.empty((len(images), size, size, 3), np.uint8)
    for j, image in enumerate(images):
        height, width = image.shape[:2]
        if (height, width) == (size, size):
            out[j] = image
            continue
        pil = Image.fromarray(image)
        if not crop:
            out[j] = np.asarray(pil.resize((size, size), resample))
            continue
        # torchvision: the shorter side becomes size, the longer int(size * long / short).
        if height <= width:
            new = (int(size * width / height), size)
        else:
            new = (size, int(size * height / width))
        resized = np.asarray(pil.resize(new, resample))
        top = int(round((resized.shape[0] - size) / 2.0))
        left = int(round((resized.shape[1] - size) / 2.0))
        out[j] = resized[top : top + size, left : left + size]
    return out


class _Collected(Exception):
    """Raised by the last hook to skip the layers above the tapped ones."""


@fill_doc
class PerceptualFeatures(FeatureExtractor):
    """Base class of the extractors that tap a pretrained perceptual network.

    A subclass sets the class attributes ``network`` (a key of
    :data:`NETWORKS`), ``mean`` and ``std`` (the normalisation), ``aliases``
    (layer names -> module paths) and ``defaults`` (its defaults of
    ``layer``, ``size`` and ``interpolation``), and inherits the parameters
    below: its ``__init__`` is this class's with its own defaults, so that
    ``get_params`` and ``clone`` see an explicit signature. Images are
    resized by :func:`prepare_images`, scaled to [0, 1], normalised, and run
    through the network; the output of the module at ``layer`` is the
    feature. The network is loaded on first use by
    :func:`load_perceptual_network`.

    Parameters
    ----------
    layer : str
        Module path of the tapped layer, or one of the class's ``aliases``.
    size : int
        Side in pixels of the network's input.
    %(crop)s
    interpolation : {"bilinear", "bicubic", "lanczos", "nearest"}
        PIL's resizing filter.
    %(perceptual_weights)s
    %(device)s
    %(dtype)s
    %(batch_size_images)s
    %(progress)s

    Attributes
    ----------
    %(feature_shape_)s

    Examples
    --------
    >>> import os, tempfile, numpy as np, torch, torchvision
    >>> from brainldm.features.perceptual import AlexNetFeatures
    >>> path = os.path.join(tempfile.mkdtemp(), "alexnet-owt-7be5be79.pth")
    >>> torch.save(torchvision.models.alexnet(weights=None).half().state_dict(), path)
    >>> images = np.random.default_rng(0).integers(0, 256, (3, 85, 85, 3), dtype=np.uint8)
    >>> extractor = AlexNetFeatures(layer="features.4", size=64, weights=path).fit(images)
    >>> extractor.transform(images).shape, extractor.feature_shape_
    ((3, 9408), (192, 7, 7))
    >>> layers = extractor.extract_layers(images, ["features.4", "classifier.5"])
    >>> {name: features.shape for name, features in layers.items()}
    {'features.4': (3, 192, 7, 7), 'classifier.5': (3, 4096)}
    """

    network = None
    mean, std = IMAGENET_MEAN, IMAGENET_STD
    aliases = {}
    defaults = {}

    _parameter_constraints = {
        "layer": [str],
        "size": [Interval(Integral, 1, None)],
        "crop": ["boolean"],
        "interpolation": [Options(INTERPOLATIONS)],
        "weights": [str, os.PathLike, None],
        "batch_size": [Interval(Integral, 1, None)],
        "progress": ["boolean"],
    }

    def __init__(
        self,
        layer=None,
        size=224,
        crop=True,
        interpolation="bilinear",
        weights=None,
        device=None,
        dtype=None,
        batch_size=32,
        progress=False,
    ):
        self.layer, self.size, self.crop, self.interpolation = layer, size, crop, interpolation
        self.weights, self.device, self.dtype = weights, device, dtype
        self.batch_size, self.progress = batch_size, progress

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "__init__" in vars(cls):
            return
        # The base's __init__, with the subclass's defaults: one body, explicit signatures.
        base = PerceptualFeatures.__init__
        names = base.__code__.co_varnames[1 : base.__code__.co_argcount]
        defaults = tuple(
            cls.defaults.get(name, default)
            for name, default in zip(names, base.__defaults__, strict=True)
        )
        init = types.FunctionType(base.__code__, base.__globals__, "__init__", defaults)
        init.__qualname__ = f"{cls.__qualname__}.__init__"
        cls.__init__ = init

    def _get_model(self):
        key = (self.weights, self.device, self.dtype)
        if getattr(self, "_model_key", None) != key:
            self._model_loaded = load_perceptual_network(
                self.network, self.weights, self.device, self.dtype
            )
            self._model_key = key
        return self._model_loaded

    def _module_path(self, layer):
        return self.aliases.get(layer, layer)

    def _forward(self, model, pixels):
        model(pixels)

    def _pixels(self, images, device, dtype):
        import torch

        array = prepare_images(images, self.size, self.crop, self.interpolation)
        # NCHW in memory as torchvision's ToTensor makes it (a permuted view runs other kernels).
        x = torch.from_numpy(array).to(device).permute(0, 3, 1, 2).contiguous().float() / 255.0
        mean = torch.tensor(self.mean, device=device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=device).view(1, 3, 1, 1)
        return ((x - mean) / std).to(dtype)

    def extract_layers(self, X, layers=None):
        """Features of several layers in one pass through the network.

        Parameters
        ----------
        X : array-like of shape (n_images, height, width, 3) or sequence
            uint8 RGB images of any size.
        layers : sequence of str, optional
            Module paths or aliases; None is ``[self.layer]``.

        Returns
        -------
        features : dict of str to ndarray of shape (n_images, ...), float32
            Each layer's output, unflattened.
        """
        validate_params(self)
        layers = [self.layer] if layers is None else list(layers)
        batch_size = self.batch_size
        model = self._get_model()
        names = dict(model.named_modules())
        unknown = [layer for layer in layers if self._module_path(layer) not in names]
        if unknown:
            raise ValueError(
                f"{type(self).__name__} has no layer {unknown[0]!r}; give a module path of "
                f"{type(model).__name__} (e.g. {list(names)[1:4]}) or one of "
                f"{sorted(self.aliases)}"
            )
        parameter = next(model.parameters())
        images = check_images(X, "X")
        outputs = {layer: [] for layer in layers}
        batches = range(0, len(images), batch_size)
        if self.progress:
            from tqdm.auto import tqdm

            batches = tqdm(batches, desc=type(self).__name__, unit="batch")
        for start in batches:
            pixels = self._pixels(
                images[start : start + batch_size], parameter.device, parameter.dtype
            )
            for layer, tapped in self._tap(model, layers, pixels).items():
                outputs[layer].append(tapped.float().cpu().numpy())
        return {layer: np.concatenate(chunks) for layer, chunks in outputs.items()}

    def _tap(self, model, layers, pixels):
        import torch

        paths = {layer: self._module_path(layer) for layer in layers}
        caught = {}

        def hook(path):
            def store(module, inputs, output):
                caught[path] = output[0] if isinstance(output, tuple) else output
                if len(caught) == len(set(paths.values())):
                    raise _Collected

            return store

        handles = [
            model.get_submodule(path).register_forward_hook(hook(path))
            for path in set(paths.values())
        ]
        try:
            with torch.inference_mode():
                self._forward(model, pixels)
        except _Collected:
            pass
        finally:
            for handle in handles:
                handle.remove()
        return {layer: caught[path] for layer, path in paths.items()}

    def _feature_shape(self):
        grey = np.full((1, self.size, self.size, 3), 128, np.uint8)
        return self.extract_layers(grey)[self.layer].shape[1:]

    def _extract(self, X):
        return self.extract_layers(X)[self.layer]


@fill_doc
class AlexNetFeatures(PerceptualFeatures):
    """AlexNet (torchvision, ImageNet weights ``alexnet-owt-7be5be79.pth``) layer features.

    The peers tap ``features.4`` (AlexNet(2), after the second conv's ReLU)
    and ``features.11`` (AlexNet(5), after the fifth) at 224 px
    (Brain-Diffuser) or 256 px (MindEye); Takagi & Nishimoto tap
    ``features.5``, ``features.12`` (the max-pools after them) and
    ``classifier.5`` (fc7) at 299 px.

    Parameters
    ----------
    layer : str, default="features.4"
        Module path of the tapped layer.
    size : int, default=224
        Side in pixels of the network's input.
    %(perceptual_parameters)s

    Attributes
    ----------
    %(feature_shape_)s

    Examples
    --------
    With the ImageNet weights in ``$BRAINLDM_WEIGHTS_DIR`` (or torch's hub cache):

    >>> import numpy as np
    >>> from brainldm.features.perceptual import AlexNetFeatures
    >>> extractor = AlexNetFeatures(layer="features.11")
    >>> extractor.get_params()["size"]
    224
    >>> extractor.fit_transform(np.zeros((2, 425, 425, 3), np.uint8)).shape  # doctest: +SKIP
    (2, 43264)
    """

    network = "alexnet"
    defaults = dict(layer="features.4", size=224, interpolation="bilinear")


@fill_doc
class InceptionFeatures(PerceptualFeatures):
    """Inception V3 (torchvision, Google's weights ``inception_v3_google-0cc3c7bd.pth``) features.

    Built as torchvision builds it for these weights: ``transform_input=True``
    (the ImageNet-normalised input is mapped to the [-1, 1] scaling Google
    trained with), ``init_weights=False``, and the auxiliary classifier kept
    when the file holds it (it only runs in training mode). ``avgpool``
    (2048 values) is the layer the peers tap; Takagi & Nishimoto's
    ``flatten`` node is the same values once flattened (the dropout between
    them is off in evaluation mode), so ``"flatten"`` is an alias of it.

    Parameters
    ----------
    layer : str, default="avgpool"
        Module path of the tapped layer, or ``"flatten"`` (its alias).
    size : int, default=299
        Side in pixels of the network's input.
    %(perceptual_parameters)s

    Attributes
    ----------
    %(feature_shape_)s

    Examples
    --------
    Takagi & Nishimoto's input, 299 px, with the weights in a folder:

    >>> import numpy as np
    >>> from brainldm.features.perceptual import InceptionFeatures
    >>> extractor = InceptionFeatures(layer="flatten", weights="~/weights")
    >>> extractor.fit_transform(np.zeros((2, 425, 425, 3), np.uint8)).shape  # doctest: +SKIP
    (2, 2048)
    """

    network = "inception"
    aliases = {"flatten": "avgpool"}
    defaults = dict(layer="avgpool", size=299, interpolation="bilinear")


@fill_doc
class EfficientNetFeatures(PerceptualFeatures):
    """EfficientNet-B1 (torchvision, weights ``efficientnet_b1-c27df63c.pth``) features.

    The peers compare ``avgpool`` (1280 values) by correlation distance, at
    224 px (Brain-Diffuser) or 255 px (MindEye). The default weights are
    torchvision's ``DEFAULT`` for B1, ``IMAGENET1K_V2``, which MindEye names;
    pass ``efficientnet_b1_rwightman-bac287d4.pth`` (``IMAGENET1K_V1``) as
    ``weights`` for the other set.

    Parameters
    ----------
    layer : str, default="avgpool"
        Module path of the tapped layer.
    size : int, default=240
        Side in pixels of the network's input.
    %(perceptual_parameters)s

    Attributes
    ----------
    %(feature_shape_)s

    Examples
    --------
    MindEye's input, 255 px bilinear:

    >>> import numpy as np
    >>> from brainldm.features.perceptual import EfficientNetFeatures
    >>> extractor = EfficientNetFeatures(size=255, weights="~/weights")
    >>> extractor.fit_transform(np.zeros((2, 425, 425, 3), np.uint8)).shape  # doctest: +SKIP
    (2, 1280)
    """

    network = "efficientnet"
    defaults = dict(layer="avgpool", size=240, interpolation="bilinear")


@fill_doc
class SwAVFeatures(PerceptualFeatures):
    """SwAV ResNet-50 (self-supervised, ``swav_800ep_pretrain.pth.tar``) features.

    The weights are those that ``torch.hub.load('facebookresearch/swav:main',
    'resnet50')`` fetches, loaded into torchvision's ``resnet50`` as that hub
    entry does: the ``module.`` prefixes stripped, the projection head and
    prototypes dropped; the checkpoint has no classifier, so ``fc`` stays
    random and must not be tapped. The peers compare ``avgpool`` (2048
    values) by correlation distance at 224 px.

    Parameters
    ----------
    layer : str, default="avgpool"
        Module path of the tapped layer.
    size : int, default=224
        Side in pixels of the network's input.
    %(perceptual_parameters)s

    Attributes
    ----------
    %(feature_shape_)s

    Examples
    --------
    With the checkpoint that torch.hub fetched, passed as a file:

    >>> import numpy as np
    >>> from brainldm.features.perceptual import SwAVFeatures
    >>> extractor = SwAVFeatures(weights="~/weights/swav_800ep_pretrain.pth.tar")
    >>> extractor.fit_transform(np.zeros((2, 425, 425, 3), np.uint8)).shape  # doctest: +SKIP
    (2, 2048)
    """

    network = "swav"
    defaults = dict(layer="avgpool", size=224, interpolation="bilinear")


@fill_doc
class CLIPVisionFeatures(PerceptualFeatures):
    """CLIP ViT-L/14 vision features through transformers' ``CLIPVisionModelWithProjection``.

    ``"image_embeds"`` (the projected image embedding, 768 values; the
    output of ``visual_projection``) is what the peers identify with;
    Takagi & Nishimoto also use ``"hidden_states.6"`` and
    ``"hidden_states.12"``, the outputs of the vision encoder's 6th and 12th
    layers (``hidden_states[k]`` of ``output_hidden_states=True``, 257 x 1024
    values). Normalisation is CLIP's; the default resizing is CLIP's own,
    bicubic to 224 and a centre crop. ``weights`` may also be a Hugging Face
    hub id or a ``save_pretrained`` folder of a ``CLIPModel`` or a
    ``CLIPVisionModelWithProjection``.

    Parameters
    ----------
    layer : str, default="image_embeds"
        Module path of the tapped layer, or one of ``"image_embeds"``, ``"pooler_output"``, ``"hidden_states.K"``.
    size : int, default=224
        Side in pixels of the network's input.
    %(crop)s
    interpolation : {"bilinear", "bicubic", "lanczos", "nearest"}, default="bicubic"
        PIL's resizing filter.
    %(perceptual_network)s

    Attributes
    ----------
    %(feature_shape_)s

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection
    >>> from brainldm.features.perceptual import CLIPVisionFeatures
    >>> config = CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=2,
    ...     num_attention_heads=2, image_size=32, patch_size=8, projection_dim=8)
    >>> folder = tempfile.mkdtemp()
    >>> CLIPVisionModelWithProjection(config).save_pretrained(folder)
    >>> images = np.zeros((2, 85, 85, 3), np.uint8)
    >>> CLIPVisionFeatures(size=32, weights=folder).fit_transform(images).shape
    (2, 8)
    >>> CLIPVisionFeatures("hidden_states.1", size=32, weights=folder).fit(images).feature_shape_
    (17, 16)
    """

    network = "clip"
    mean, std = CLIP_MEAN, CLIP_STD
    aliases = {
        "image_embeds": "visual_projection",
        "pooler_output": "vision_model.post_layernorm",
        "hidden_states.K": "vision_model.encoder.layers.<K - 1>",
    }
    defaults = dict(layer="image_embeds", size=224, interpolation="bicubic")

    def _module_path(self, layer):
        prefix, _, index = layer.partition(".")
        if prefix == "hidden_states" and index.isdigit():
            k = int(index)
            # hidden_states[0] is the embedding after the pre-layer norm, [k] layer k's output.
            return "vision_model.pre_layrnorm" if k == 0 else f"vision_model.encoder.layers.{k - 1}"
        return super()._module_path(layer)

    def _forward(self, model, pixels):
        model(pixel_values=pixels)


class ToyPerceptualFeatures(FeatureExtractor):
    """Features of the toy world's perceptual network, the toy stand-in for AlexNet or CLIP.

    Parameters
    ----------
    layer : {"early", "middle", "late", "embedding"}, default="embedding"
        The first, second and last conv layers (each average-pooled to a 4x4
        grid, so that coarse layout survives) or the penultimate embedding;
        see :meth:`brainldm.toy.perceptual.ToyPerceptualNet.features`.
    weights : str or path-like, optional
        A folder written by ``ToyPerceptualNet.save_pretrained``; None is the
        shipped network (:data:`brainldm.toy.TOY_PERCEPTUAL_PATH`).
    device : str or torch.device, optional
        Where to run the network; None is the CPU.
    batch_size : int, default=256
        Images per forward pass.

    Attributes
    ----------
    feature_shape_ : tuple of int
        Shape of one image's features.

    Examples
    --------
    >>> from brainldm.datasets.scenes import make_stimuli
    >>> from brainldm.features.perceptual import ToyPerceptualFeatures
    >>> images = make_stimuli(4, seed=0).images
    >>> ToyPerceptualFeatures().fit_transform(images).shape
    (4, 128)
    >>> ToyPerceptualFeatures().predict_heads(images)["shape"].shape
    (4,)
    """

    layers = ("early", "middle", "late", "embedding")

    _parameter_constraints = {
        "layer": [Options(layers)],
        "weights": [str, os.PathLike, None],
        "batch_size": [Interval(Integral, 1, None)],
    }

    def __init__(self, layer="embedding", weights=None, device=None, batch_size=256):
        self.layer, self.weights, self.device, self.batch_size = layer, weights, device, batch_size

    def _get_model(self):
        from brainldm.toy import TOY_PERCEPTUAL_PATH, load_perceptual_net

        path = str(TOY_PERCEPTUAL_PATH if self.weights is None else self.weights)
        device = resolve_device(self.device)
        key = (path, str(device))
        if getattr(self, "_model_key", None) != key:
            self._model_loaded = MODEL_CACHE.get(
                ("ToyPerceptualNet", *key), lambda: load_perceptual_net(path, device=device)
            )
            self._model_key = key
        return self._model_loaded

    def _images(self, X):
        from brainldm._images import resize

        net = self._get_model()
        return resize(X, net.config["input_size"])

    def extract_layers(self, X, layers=None):
        """Features of several layers in one pass through the network.

        Parameters
        ----------
        X : array-like of shape (n_images, height, width, 3) or sequence
            uint8 RGB images of any size (resized to the network's 64 px with
            LANCZOS).
        layers : sequence of str, optional
            Among ``early``, ``middle``, ``late``, ``embedding``; None is
            ``[self.layer]``.

        Returns
        -------
        features : dict of str to ndarray of shape (n_images, n_features), float32
        """
        validate_params(self)
        layers = [self.layer] if layers is None else list(layers)
        for layer in layers:
            check_options(layer, "layers", "extract_layers", self.layers)
        features = self._get_model().features(self._images(X), batch_size=self.batch_size)
        return {layer: features[layer] for layer in layers}

    def predict_heads(self, X):
        """The network's class index per head (``shape``, ``colour``, ``background_colour``...).

        Parameters
        ----------
        X : array-like of shape (n_images, height, width, 3) or sequence
            uint8 RGB images of any size.

        Returns
        -------
        predictions : dict of str to ndarray of shape (n_images,), int
        """
        validate_params(self)
        return self._get_model().predict(self._images(X), batch_size=self.batch_size)

    def _feature_shape(self):
        grey = np.full((1, 8, 8, 3), 128, np.uint8)
        return self.extract_layers(grey)[self.layer].shape[1:]

    def _extract(self, X):
        return self.extract_layers(X)[self.layer]
