"""The :class:`StableDiffusion` model: its components, sizes and U-Net layers."""

from brainldm.diffusion._chains import ChainsMixin
from brainldm.diffusion._codec import CodecMixin
from brainldm.diffusion._loading import DEFAULT_IMAGE_SIZE, LoadingMixin, ddim_scheduler
from brainldm.diffusion._probes import ProbesMixin

__all__ = ["StableDiffusion"]


class StableDiffusion(LoadingMixin, CodecMixin, ChainsMixin, ProbesMixin):
    """A latent diffusion model in the Stable Diffusion layout, ready for brain decoding.

    Load one with :meth:`from_pretrained`; the constructor wires components
    that are already loaded. Whatever scheduler the model folder ships, the
    denoising runs with a ``DDIMScheduler`` built from its configuration with
    ``clip_sample=False`` and ``set_alpha_to_one=False``, as the CompVis DDIM
    sampler that the paper used.

    Parameters
    ----------
    vae : diffusers.AutoencoderKL
        Image autoencoder.
    text_encoder : transformers.CLIPTextModel
        Text encoder; its last hidden state is ``c``.
    tokenizer : transformers.PreTrainedTokenizerBase
        Tokenizer of the text encoder; prompts are padded to its
        ``model_max_length`` positions (77 for SD).
    unet : diffusers.UNet2DConditionModel
        Noise-predicting U-Net.
    scheduler : diffusers.SchedulerMixin
        Any scheduler; only its configuration (betas, number of training
        steps, offset, spacing, prediction type) is used.
    image_size : int, default=None
        Size in pixels that images are resized to before they are encoded to
        ``z``. ``None`` uses 320, the paper's size for SD v1.4.
    generation_size : int, default=None
        Size in pixels of generated images. ``None`` uses the U-Net's
        ``sample_size`` times :attr:`vae_scale_factor` (512 for SD v1.4).
    config : dict, default=None
        brainldm's own settings of the model (the contents of its
        ``brainldm.json``), kept in :attr:`config`.

    Attributes
    ----------
    config : dict
        brainldm's settings of the model, e.g. ``toy_world_fingerprint`` for
        the toy model; empty for models without ``brainldm.json``.
    device : torch.device
        Where the components run.
    dtype : torch.dtype
        Precision of the components; inputs and outputs are always float32
        or uint8 NumPy arrays.

    Notes
    -----
    Random draws (the img2img noise, DDIM noise for ``eta > 0`` and VAE
    posterior samples) come from one CPU ``torch.Generator`` per sample
    (:func:`sample_generator`):
    sample ``i`` of image ``j`` uses a generator seeded from
    ``(random_state, start_index + j, i)`` (or ``image_ids[j]`` for ``start_index +
    j``), so results do not depend on the batch size or on how a set of images
    is split into calls.

    A model loaded with :meth:`from_pretrained` pickles as a reference to its
    source (name or folder, device, dtype), not as its weights, so that
    joblib caches and process pools stay light; :func:`sklearn.base.clone`
    shares the model instead of copying it.

    :meth:`img2img`, :meth:`text2img` and :meth:`denoise` run one sampling
    loop, which calls ``callback_on_step_end(sd, step, timestep,
    callback_kwargs)`` after every step, as diffusers' pipelines do, so that
    the inside of the loop can be read (see :meth:`img2img`).

    Examples
    --------
    >>> from brainldm.datasets.scenes import make_stimuli
    >>> from brainldm.diffusion import StableDiffusion
    >>> sd = StableDiffusion.from_pretrained("toy")
    >>> scenes = make_stimuli(2, seed=0)
    >>> z = sd.encode_images(scenes.images)
    >>> c = sd.encode_text(scenes.captions)
    >>> sd.img2img(z, c, steps=10, n_samples_per_image=2).shape
    (2, 2, 64, 64, 3)
    """

    def __init__(
        self,
        vae,
        text_encoder,
        tokenizer,
        unet,
        scheduler,
        *,
        image_size=None,
        generation_size=None,
        config=None,
    ):
        self.vae = vae.eval().requires_grad_(False)
        self.text_encoder = text_encoder.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.unet = unet.eval().requires_grad_(False)
        self.scheduler = ddim_scheduler(scheduler.config)
        self.config = dict(config or {})
        self.image_size = int(image_size or DEFAULT_IMAGE_SIZE)
        self.generation_size = int(
            generation_size or self.unet.config.sample_size * self.vae_scale_factor
        )
        for name, size in (
            ("image_size", self.image_size),
            ("generation_size", self.generation_size),
        ):
            if size % self.vae_scale_factor:
                raise ValueError(
                    f"{name} must be a multiple of the VAE's scale factor "
                    f"{self.vae_scale_factor}, got {size}"
                )
        self._source = None
        self._empty_prompt = None
        self._fingerprint = None

    @property
    def trained_on_toy_world(self):
        """bool: whether the model records the toy world it was trained on.

        The shipped toy LDM (and any model trained on the toy world with
        :mod:`brainldm.toy.training`) records the toy world's fingerprint in
        its ``brainldm.json``; the toy perceptual network is then the natural
        identification metric, as CLIP is for Stable Diffusion.

        Examples
        --------
        >>> from brainldm.diffusion import StableDiffusion
        >>> StableDiffusion.from_pretrained("toy").trained_on_toy_world
        True
        """
        return bool(self.config.get("toy_world_fingerprint"))

    @property
    def fingerprint(self):
        """str: digest of the components' configs and weights, computed when first asked.

        Caches of what a model computed (encoding features, decoded targets,
        generated images) are named by it as well as by :func:`repr`, so that a
        model retrained or updated in the same folder, or under the same name,
        is never served another model's results. Each parameter enters by its
        name, shape and the float64 sum of its values and of their squares, so
        every weight is read once, when the fingerprint is first asked for.
        The configs enter without the folder they were read from but with the
        library versions that saved them.

        Examples
        --------
        >>> from brainldm.diffusion import StableDiffusion
        >>> sd = StableDiffusion.from_pretrained("toy")
        >>> len(sd.fingerprint)
        64
        """
        if self._fingerprint is None:
            import hashlib
            import json

            import torch

            digest = hashlib.sha256()
            for name in ("vae", "text_encoder", "unet"):
                module = getattr(self, name)
                config = getattr(module, "config", {})
                config = config.to_dict() if hasattr(config, "to_dict") else dict(config)
                config.pop("_name_or_path", None)  # where it was read from, not what it is
                digest.update(json.dumps(config, sort_keys=True, default=str).encode())
                with torch.no_grad():
                    for key, value in module.state_dict().items():
                        wide = value.detach().to(torch.float64)
                        sums = f"{float(wide.sum()):.9e},{float((wide * wide).sum()):.9e}"
                        digest.update(f"{name}.{key}{tuple(value.shape)}{sums}".encode())
            self._fingerprint = digest.hexdigest()
        return self._fingerprint

    def __repr__(self):
        source = "components" if self._source is None else repr(self._source[0])
        return (
            f"StableDiffusion({source}, device={str(self.device)!r}, dtype={self.dtype}, "
            f"latent_shape={self.latent_shape}, text_shape={self.text_shape})"
        )

    @property
    def device(self):
        """torch.device: where the components run."""
        return self.unet.device

    @property
    def dtype(self):
        """torch.dtype: precision of the components."""
        return self.unet.dtype

    @property
    def vae_scale_factor(self):
        """int: image pixels per latent pixel along a side (8 for SD)."""
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def latent_shape(self):
        """tuple: shape of one image's ``z`` at :attr:`image_size` (4, 40, 40 for SD)."""
        side = self.image_size // self.vae_scale_factor
        return (self.vae.config.latent_channels, side, side)

    @property
    def generation_latent_shape(self):
        """tuple: shape of one image's latent at :attr:`generation_size` (4, 64, 64 for SD)."""
        side = self.generation_size // self.vae_scale_factor
        return (self.vae.config.latent_channels, side, side)

    @property
    def text_shape(self):
        """tuple: shape of one image's ``c``, (tokens, hidden size) (77, 768 for SD)."""
        return (self.tokenizer.model_max_length, self.text_encoder.config.hidden_size)

    @property
    def default_layers(self):
        """tuple of str: U-Net modules probed by default, as in the paper.

        The first two down blocks (the U-Net's first stage), the bottleneck
        and the last two up blocks (its second stage): ``down_blocks.0``,
        ``down_blocks.1``, ``mid_block``, ``up_blocks.2``, ``up_blocks.3``
        for SD's four-block U-Net, ``up_blocks.1`` and ``up_blocks.2`` for
        a three-block one.
        """
        n_down, n_up = len(self.unet.down_blocks), len(self.unet.up_blocks)
        down = [f"down_blocks.{i}" for i in range(min(2, n_down))]
        up = [f"up_blocks.{i}" for i in range(max(0, n_up - 2), n_up)]
        return tuple(down + ["mid_block"] + up)
