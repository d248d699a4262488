"""Loading and provenance: model folders, the hub, the toy model, pickling by reference.

A model folder is in the standard Stable Diffusion layout (:data:`COMPONENTS`),
with an optional ``brainldm.json`` of brainldm's own settings. A model loaded
by :meth:`LoadingMixin.from_pretrained` remembers its source, so that it
pickles as that reference rather than as its weights.
"""

import contextlib
import inspect
import json
import re
from pathlib import Path

import torch

from brainldm._offline import offline_declared, probe_hub
from brainldm._validation import resolve_device, resolve_dtype
from brainldm.toy import TOY_LDM_PATH

__all__ = [
    "COMPONENTS",
    "DEFAULT_IMAGE_SIZE",
    "LoadingMixin",
    "ddim_scheduler",
    "load_components",
    "resolve_folder",
]

COMPONENTS = ("vae", "unet", "text_encoder", "tokenizer", "scheduler")
"""Sub-folders a model folder must have (the standard Stable Diffusion layout)."""

DEFAULT_IMAGE_SIZE = 320
"""Working size of ``z`` for models without ``brainldm.json`` (the paper's 320 px)."""

_HUB_FILES = ("model_index.json", "brainldm.json") + tuple(
    f"{component}/*.{ext}"
    for component in COMPONENTS
    for ext in ("json", "txt", "safetensors", "model")
)
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
_CASTS = {torch.float32: "float", torch.float16: "half", torch.bfloat16: "bfloat16"}


def resolve_folder(name_or_path):
    """The local folder of ``"toy"``, a folder, or a hub id (downloaded once into the cache)."""
    if str(name_or_path) == "toy":
        if not (TOY_LDM_PATH / "model_index.json").is_file():
            raise FileNotFoundError(
                f"the toy model is missing from {TOY_LDM_PATH}; reinstall brainldm or train it "
                "with `python -m brainldm.toy.training.ldm`"
            )
        return TOY_LDM_PATH
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    if isinstance(name_or_path, Path) or not _HUB_ID.match(str(name_or_path)):
        raise FileNotFoundError(
            f"name_or_path={str(name_or_path)!r} is not a folder; pass a folder in the Stable "
            "Diffusion layout, a hub id such as 'CompVis/stable-diffusion-v1-4', or 'toy'"
        )
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError

    def not_found(reason):
        return FileNotFoundError(
            f"{str(name_or_path)!r} is not a local folder and could not be fetched from the "
            f"Hugging Face hub ({reason}). Download the model folder where the hub is "
            f"reachable (`hf download {name_or_path} --local-dir DIR`) and pass DIR instead"
        )

    name, patterns = str(name_or_path), list(_HUB_FILES)
    try:  # a snapshot already in the Hugging Face cache, without asking the hub
        return Path(snapshot_download(name, allow_patterns=patterns, local_files_only=True))
    except (OSError, HFValidationError, ValueError):
        pass
    declared = offline_declared()
    if declared:
        raise not_found(
            f"it is not in the Hugging Face cache, and {declared} declares this machine offline"
        )
    try:
        # One request first: the hub client retries an unreachable server for a minute.
        probe_hub(name, "model_index.json")
        return Path(snapshot_download(name, allow_patterns=patterns))
    except Exception as error:  # no network: DNS, connection, HTTP and hub errors alike
        raise not_found(error) from error


def ddim_scheduler(config):
    """A ``DDIMScheduler`` from any scheduler's configuration, as the CompVis sampler runs.

    Keys DDIM does not take (PNDM's ``skip_prk_steps``, ...) are dropped, as
    diffusers would warn about them.
    """
    from diffusers import DDIMScheduler

    accepted = inspect.signature(DDIMScheduler.__init__).parameters
    config = {key: value for key, value in dict(config).items() if key in accepted}
    return DDIMScheduler.from_config(config, clip_sample=False, set_alpha_to_one=False)


@contextlib.contextmanager
def _no_weight_loading_bars():
    """Hide transformers' "Loading weights" bar, which versions 5 and later show on every load."""
    from transformers.utils import logging

    set_hook = getattr(logging, "set_tqdm_hook", None)
    if set_hook is None:
        yield
        return

    def quiet(factory, args, kwargs):
        return factory(*args, **{**kwargs, "disable": True})

    previous = set_hook(quiet)
    try:
        yield
    finally:
        set_hook(previous)


def load_components(folder, dtype):
    """The five components of a model folder, and its ``brainldm.json`` settings."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from diffusers.utils import is_accelerate_available
    from transformers import AutoTokenizer, CLIPTextModel

    missing = [c for c in COMPONENTS if not (folder / c).is_dir()]
    if missing:
        raise FileNotFoundError(
            f"the model folder {str(folder)!r} has no {', '.join(missing)} folder; a Stable "
            f"Diffusion folder needs {', '.join(COMPONENTS)} (pass the folder that holds "
            "model_index.json)"
        )
    settings_path = folder / "brainldm.json"
    settings = json.loads(settings_path.read_text()) if settings_path.is_file() else {}
    # Without accelerate, diffusers' default low-memory load falls back to a plain load and
    # advises installing accelerate; asking for the plain load gives the same weights quietly.
    diffusers_options = dict(dtype=dtype, low_cpu_mem_usage=is_accelerate_available())
    with _no_weight_loading_bars():
        text_encoder = CLIPTextModel.from_pretrained(folder / "text_encoder", dtype=dtype)
    components = dict(
        vae=AutoencoderKL.from_pretrained(folder / "vae", **diffusers_options),
        text_encoder=text_encoder,
        tokenizer=AutoTokenizer.from_pretrained(folder / "tokenizer"),
        unet=UNet2DConditionModel.from_pretrained(folder / "unet", **diffusers_options),
        scheduler=ddim_scheduler(DDIMScheduler.load_config(folder / "scheduler")),
    )
    return components, settings


def move(module, device, dtype):
    """Move a component to ``device`` and cast its floating-point weights to ``dtype``.

    diffusers' ``to(dtype=...)`` warns about modules to keep in float32 even
    when a model has none; the casting methods do the same cast without it.
    """
    module.to(device)
    if module.dtype != dtype:
        getattr(module, _CASTS[dtype])()
    return module


class LoadingMixin:
    """Loading, moving and pickling of :class:`StableDiffusion`."""

    @classmethod
    def from_pretrained(cls, name_or_path, device=None, dtype=None):
        """Load a model from a folder, the Hugging Face hub, or ``"toy"``.

        Parameters
        ----------
        name_or_path : str or path-like
            ``"toy"`` for the toy model shipped with brainldm, a local folder
            in the Stable Diffusion layout, or a hub id such as
            ``"CompVis/stable-diffusion-v1-4"`` (downloaded once into the
            Hugging Face cache: the configurations, tokenizer files and
            safetensors weights of the five components). A
            ``brainldm.json`` in the folder sets ``image_size`` and
            ``generation_size``.
        device : str or torch.device, default=None
            ``None`` runs on the CPU; pass ``"cuda"`` for a GPU.
        dtype : {"float32", "float16", "bfloat16"} or torch.dtype, default=None
            Precision of the components; ``None`` is float32. Half precision
            is meant for GPUs.

        Returns
        -------
        model : StableDiffusion

        Raises
        ------
        FileNotFoundError
            If the folder does not exist, lacks a component, or the hub cannot
            be reached.
        RuntimeError
            If ``device`` asks for a GPU that torch cannot use.

        Examples
        --------
        >>> from brainldm.diffusion import StableDiffusion
        >>> sd = StableDiffusion.from_pretrained("toy")
        >>> sd.latent_shape, sd.generation_latent_shape, sd.text_shape
        ((4, 16, 16), (4, 16, 16), (77, 128))
        """
        device = resolve_device(device)
        dtype = resolve_dtype(dtype)
        folder = resolve_folder(name_or_path)
        components, settings = load_components(folder, dtype)
        model = cls(
            **components,
            image_size=settings.get("image_size"),
            generation_size=settings.get("generation_size"),
            config=settings,
        ).to(device)
        # Hub ids stay ids, so that a pickle resolves them through the cache where it is loaded.
        local = str(name_or_path) != "toy" and Path(name_or_path).expanduser().is_dir()
        model._source = (str(folder.resolve()) if local else str(name_or_path), device, dtype)
        return model

    def to(self, device=None, dtype=None):
        """Move the components to ``device`` and cast them to ``dtype``, in place.

        Parameters
        ----------
        device : str or torch.device, default=None
            ``None`` keeps the current device.
        dtype : str or torch.dtype, default=None
            ``None`` keeps the current precision.

        Returns
        -------
        self : StableDiffusion

        Examples
        --------
        >>> from brainldm.diffusion import StableDiffusion
        >>> StableDiffusion.from_pretrained("toy").to(dtype="bfloat16").dtype
        torch.bfloat16
        """
        device = self.device if device is None else resolve_device(device)
        dtype = self.dtype if dtype is None else resolve_dtype(dtype)
        for module in (self.vae, self.text_encoder, self.unet):
            move(module, device, dtype)
        self._empty_prompt = None
        if self._source is not None:
            self._source = (self._source[0], device, dtype)
        return self

    def __reduce__(self):
        if self._source is None:
            return super().__reduce__()
        return (type(self).from_pretrained, self._source)

    def __sklearn_clone__(self):
        return self
