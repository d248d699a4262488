"""Stable Diffusion as the method uses it: load, encode, decode, img2img, probes.

:class:`StableDiffusion` wires the parts of a latent diffusion model in the
standard Stable Diffusion folder layout (``vae/``, ``unet/``,
``text_encoder/``, ``tokenizer/``, ``scheduler/``) and offers what brain
decoding and encoding need of them: the image latent ``z``, the text
conditioning ``c``, images from decoded ``(z, c)`` by the img2img chain of
Takagi & Nishimoto (CVPR 2023), and the intermediate latents and U-Net
activations of that chain for voxelwise encoding models.

This is the only module of the library that imports diffusers. The denoising
loop is written here rather than delegated to a diffusers pipeline, because the
encoding analysis reads latents and U-Net activations inside the loop. SD's
safety checker is never loaded or run: it blacks out flagged images, which
would corrupt identification scores.
"""

import inspect
import json
import re
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from sklearn.utils import Bunch
from tqdm.auto import tqdm

from brainldm.toy import TOY_LDM_PATH

COMPONENTS = ("vae", "unet", "text_encoder", "tokenizer", "scheduler")
"""Sub-folders a model folder must have (the standard Stable Diffusion layout)."""

NOISE_SCHEDULES = ("takagi2023", "diffusers")
"""How img2img noises its initial latent (see :meth:`StableDiffusion.img2img`)."""

DEFAULT_IMAGE_SIZE = 320
"""Working size of ``z`` for models without ``brainldm.json`` (the paper's 320 px)."""

_HUB_FILES = ("model_index.json", "brainldm.json") + tuple(
    f"{component}/*.{ext}"
    for component in COMPONENTS
    for ext in ("json", "txt", "safetensors", "model")
)
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class StableDiffusion:
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
    ``(seed, start_index + j, i)``, so results do not depend on the batch size
    or on how a set of images is split into calls.

    A model loaded with :meth:`from_pretrained` pickles as a reference to its
    source (name or folder, device, dtype), not as its weights, so that
    joblib caches and process pools stay light; :func:`sklearn.base.clone`
    shares the model instead of copying it.

    Examples
    --------
    >>> from brainldm.datasets.scenes import make_stimuli
    >>> from brainldm.diffusion import StableDiffusion
    >>> sd = StableDiffusion.from_pretrained("toy")
    >>> scenes = make_stimuli(2, seed=0)
    >>> z = sd.encode_images(scenes.images)
    >>> c = sd.encode_text(scenes.captions)
    >>> sd.img2img(z, c, steps=10, n_samples=2, progress=False).shape
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
        from diffusers import DDIMScheduler

        self.vae = vae.eval().requires_grad_(False)
        self.text_encoder = text_encoder.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.unet = unet.eval().requires_grad_(False)
        self.scheduler = DDIMScheduler.from_config(
            _ddim_config(scheduler.config), clip_sample=False, set_alpha_to_one=False
        )
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
        from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
        from transformers import AutoTokenizer, CLIPTextModel

        device = _resolve_device(device)
        dtype = _resolve_dtype(dtype)
        folder = _resolve_folder(name_or_path)
        missing = [c for c in COMPONENTS if not (folder / c).is_dir()]
        if missing:
            raise FileNotFoundError(
                f"the model folder {str(folder)!r} has no {', '.join(missing)} folder; a Stable "
                f"Diffusion folder needs {', '.join(COMPONENTS)} (pass the folder that holds "
                "model_index.json)"
            )
        settings_path = folder / "brainldm.json"
        settings = json.loads(settings_path.read_text()) if settings_path.is_file() else {}
        model = cls(
            vae=AutoencoderKL.from_pretrained(folder / "vae", dtype=dtype),
            text_encoder=CLIPTextModel.from_pretrained(folder / "text_encoder", dtype=dtype),
            tokenizer=AutoTokenizer.from_pretrained(folder / "tokenizer"),
            unet=UNet2DConditionModel.from_pretrained(folder / "unet", dtype=dtype),
            scheduler=DDIMScheduler.from_config(
                _ddim_config(DDIMScheduler.load_config(folder / "scheduler"))
            ),
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
        """
        device = self.device if device is None else _resolve_device(device)
        dtype = self.dtype if dtype is None else _resolve_dtype(dtype)
        for module in (self.vae, self.text_encoder, self.unet):
            # Casting to the current dtype makes diffusers warn about float32 modules.
            module.to(device) if dtype == module.dtype else module.to(device=device, dtype=dtype)
        self._empty_prompt = None
        if self._source is not None:
            self._source = (self._source[0], device, dtype)
        return self

    def __reduce__(self):
        if self._source is None:
            return super().__reduce__()
        return (_load_by_reference, self._source)

    def __sklearn_clone__(self):
        return self

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

    @torch.inference_mode()
    def encode_images(
        self,
        images,
        *,
        size=None,
        sample=False,
        seed=0,
        start_index=0,
        batch_size=16,
        progress=False,
    ):
        """Encode images to ``z``, the scaled VAE latent.

        Each image is resized to ``size`` with LANCZOS, scaled to [-1, 1] and
        encoded; the posterior's mode (its mean) is taken, or a sample of it
        on request, and multiplied by the VAE's scaling factor.

        Parameters
        ----------
        images : array-like of shape (n_images, height, width, 3) or sequence
            uint8 RGB images, as one array or a sequence of arrays or PIL
            images of any size.
        size : int, default=None
            Side in pixels images are resized to; ``None`` is
            :attr:`image_size`.
        sample : bool, default=False
            Draw from the posterior instead of taking its mode (the original
            code samples).
        seed : int, default=0
            Seed of the posterior samples; image ``j`` uses a generator seeded
            from ``(seed, start_index + j, 0)``.
        start_index : int, default=0
            Index of the first image, for the generators.
        batch_size : int, default=16
            Images encoded at once.
        progress : bool, default=False
            Show a progress bar.

        Returns
        -------
        z : ndarray of shape (n_images, channels, size / f, size / f), float32
            ``f`` is :attr:`vae_scale_factor`.

        Examples
        --------
        >>> import numpy as np
        >>> from brainldm.diffusion import StableDiffusion
        >>> sd = StableDiffusion.from_pretrained("toy")
        >>> images = np.zeros((3, 85, 85, 3), np.uint8)
        >>> sd.encode_images(images).shape
        (3, 4, 16, 16)
        >>> sd.encode_images(images, sample=True, seed=1).shape
        (3, 4, 16, 16)
        """
        size = self.image_size if size is None else _check_int(size, "size", minimum=1)
        pixels = _resize(_as_images(images), size)
        mean, std = self._posterior(pixels, batch_size, progress)
        if sample:
            noise = torch.stack(
                [
                    torch.randn(mean.shape[1:], generator=sample_generator(seed, key, 0))
                    for key in _image_ids(start_index, len(mean))
                ]
            )
            mean = mean + std * noise
        return mean.numpy()

    def _posterior(self, pixels, batch_size, progress):
        """Scaled mean and standard deviation of the VAE posterior of uint8 images, on the CPU."""
        batch_size = _check_int(batch_size, "batch_size", minimum=1)
        means, stds = [], []
        for start in tqdm(
            range(0, len(pixels), batch_size), desc="encoding images", disable=not progress
        ):
            x = torch.from_numpy(pixels[start : start + batch_size]).to(self.device)
            x = (x.permute(0, 3, 1, 2).to(self.dtype) / 127.5) - 1.0
            posterior = self.vae.encode(x).latent_dist
            means.append(self._scale(posterior.mean.float()).cpu())
            stds.append((posterior.std.float() * self.vae.config.scaling_factor).cpu())
        return torch.cat(means), torch.cat(stds)

    def _scale(self, latents):
        shift = self.vae.config.get("shift_factor") or 0.0
        return (latents - shift) * self.vae.config.scaling_factor

    @torch.inference_mode()
    def decode_latents(self, z, *, batch_size=16, progress=False):
        """Decode scaled latents to uint8 images.

        Parameters
        ----------
        z : array-like of shape (n_images, channels, h, w)
            Scaled latents, e.g. from :meth:`encode_images` or a decoder.
        batch_size : int, default=16
            Latents decoded at once.
        progress : bool, default=False
            Show a progress bar.

        Returns
        -------
        images : ndarray of shape (n_images, h * f, w * f, 3), uint8
            ``f`` is :attr:`vae_scale_factor`.

        Examples
        --------
        >>> import numpy as np
        >>> from brainldm.diffusion import StableDiffusion
        >>> sd = StableDiffusion.from_pretrained("toy")
        >>> images = np.zeros((3, 85, 85, 3), np.uint8)
        >>> sd.decode_latents(sd.encode_images(images)).shape
        (3, 64, 64, 3)
        """
        z = _check_latents(z, "z", self.vae.config.latent_channels)
        batch_size = _check_int(batch_size, "batch_size", minimum=1)
        shift = self.vae.config.get("shift_factor") or 0.0
        images = []
        for start in tqdm(range(0, len(z), batch_size), desc="decoding", disable=not progress):
            latents = torch.from_numpy(z[start : start + batch_size]).to(self.device, self.dtype)
            latents = latents / self.vae.config.scaling_factor + shift
            images.append(_to_uint8(self.vae.decode(latents).sample))
        return np.concatenate(images)

    @torch.inference_mode()
    def encode_text(self, captions, *, batch_size=64, progress=False):
        """Encode each image's captions to ``c``, the mean of their last hidden states.

        Parameters
        ----------
        captions : sequence of sequences of str
            One list of captions per image (a single string counts as one
            caption). Each caption is tokenized, padded or truncated to the
            tokenizer's ``model_max_length`` positions, and encoded.
        batch_size : int, default=64
            Captions encoded at once.
        progress : bool, default=False
            Show a progress bar.

        Returns
        -------
        c : ndarray of shape (n_images, tokens, hidden_size), float32
            The mean over each image's captions (77 x 768 for SD).

        Examples
        --------
        >>> from brainldm.diffusion import StableDiffusion
        >>> sd = StableDiffusion.from_pretrained("toy")
        >>> sd.encode_text([["a red circle", "a circle, red"], ["a star"]]).shape
        (2, 77, 128)
        """
        captions = _check_captions(captions)
        batch_size = _check_int(batch_size, "batch_size", minimum=1)
        flat = [text for texts in captions for text in texts]
        owner = torch.tensor([j for j, texts in enumerate(captions) for _ in texts])
        c = torch.zeros((len(captions),) + self.text_shape)
        for start in tqdm(
            range(0, len(flat), batch_size), desc="encoding text", disable=not progress
        ):
            hidden = self._encode_prompts(flat[start : start + batch_size])
            c.index_add_(0, owner[start : start + batch_size], hidden.float().cpu())
        counts = torch.tensor([len(texts) for texts in captions], dtype=torch.float32)
        return (c / counts[:, None, None]).numpy()

    def _encode_prompts(self, prompts):
        tokens = self.tokenizer(
            list(prompts),
            padding="max_length",
            max_length=self.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        )
        return self.text_encoder(tokens.input_ids.to(self.device))[0]

    def _unconditional(self):
        """``c`` of the empty prompt, the unconditional branch of guidance."""
        if self._empty_prompt is None:
            with torch.inference_mode():
                self._empty_prompt = self._encode_prompts([""]).to(self.dtype)
        return self._empty_prompt

    def img2img(
        self,
        z,
        c=None,
        *,
        strength=0.8,
        steps=50,
        guidance=5.0,
        eta=0.0,
        n_samples=1,
        seed=42,
        start_index=0,
        noise_schedule="takagi2023",
        sample_posterior=False,
        batch_size=8,
        progress=True,
    ):
        """Generate images from ``z`` (and ``c``) by the paper's img2img chain.

        ``z`` is decoded to an image at :attr:`image_size`, resized (LANCZOS)
        to :attr:`generation_size`, encoded again, noised to ``strength`` and
        denoised by DDIM with classifier-free guidance against the empty
        prompt, conditioned on ``c``; the result is decoded.

        Parameters
        ----------
        z : array-like of shape (n_images, *latent_shape)
            Image latents at the working size, e.g. decoded from the brain.
        c : array-like of shape (n_images, *text_shape), default=None
            Text conditioning, e.g. decoded from the brain. ``None``
            conditions on the empty prompt: the paper's z-only control.
        strength : float in (0, 1], default=0.8
            How much noise is added: ``int(strength * steps)`` DDIM steps are
            run. Must leave at least one step.
        steps : int, default=50
            Steps of the full DDIM schedule.
        guidance : float, default=5.0
            Classifier-free guidance scale; 1 runs the conditional branch only.
        eta : float, default=0.0
            DDIM noise (0 is deterministic DDIM, 1 is DDPM-like).
        n_samples : int, default=1
            Images generated per latent.
        seed : int, default=42
            Sample ``i`` of image ``j`` uses a generator seeded from
            ``(seed, start_index + j, i)``.
        start_index : int, default=0
            Index of the first image, so that a set generated in several calls
            equals the set generated at once.
        noise_schedule : {"takagi2023", "diffusers"}, default="takagi2023"
            ``"takagi2023"`` noises the initial latent to the DDIM timestep
            above the first one denoised, as the original CompVis sampler
            (SD v1.4, 50 steps, strength 0.8: noise ``alphas_cumprod[801]``,
            denoise 781, ..., 1), and starts from pure noise at strength 1.
            ``"diffusers"`` noises to the first timestep denoised (781), as
            diffusers' img2img pipeline.
        sample_posterior : bool, default=False
            Sample the VAE posterior of the re-encoded image instead of taking
            its mode (the original code samples).
        batch_size : int, default=8
            Samples denoised at once.
        progress : bool, default=True
            Show a progress bar.

        Returns
        -------
        images : ndarray of shape (n_images, n_samples, size, size, 3), uint8
            ``size`` is :attr:`generation_size`.

        See Also
        --------
        text2img : the c-only control.
        decode_latents : the coarse image ``X_z`` of the z-only control.

        Examples
        --------
        >>> from brainldm.datasets.scenes import make_stimuli
        >>> from brainldm.diffusion import StableDiffusion
        >>> sd = StableDiffusion.from_pretrained("toy")
        >>> scenes = make_stimuli(3, seed=0)
        >>> z, c = sd.encode_images(scenes.images), sd.encode_text(scenes.captions)
        >>> sd.img2img(z, c, steps=10, n_samples=2, progress=False).shape
        (3, 2, 64, 64, 3)
        >>> sd.img2img(z, None, steps=10, progress=False).shape  # the z-only control
        (3, 1, 64, 64, 3)
        """
        z = _check_latents(z, "z", self.vae.config.latent_channels, self.latent_shape)
        c = self._check_conditioning(c, len(z))
        pixels = _resize(self.decode_latents(z, batch_size=batch_size), self.generation_size)
        mean, std = self._posterior(pixels, batch_size, progress=False)
        return self._generate(
            Bunch(mean=mean, std=std if sample_posterior else None),
            c,
            strength=strength,
            steps=steps,
            guidance=guidance,
            eta=eta,
            n_samples=n_samples,
            seed=seed,
            image_ids=_image_ids(start_index, len(z)),
            noise_schedule=noise_schedule,
            batch_size=batch_size,
            progress=progress,
        )

    def text2img(
        self,
        c,
        *,
        steps=50,
        guidance=5.0,
        eta=0.0,
        n_samples=1,
        seed=42,
        start_index=0,
        batch_size=8,
        progress=True,
    ):
        """Generate images from ``c`` alone, from pure noise: the paper's c-only control.

        Parameters
        ----------
        c : array-like of shape (n_images, *text_shape)
            Text conditioning, e.g. decoded from the brain.
        steps : int, default=50
            DDIM steps.
        guidance : float, default=5.0
            Classifier-free guidance scale against the empty prompt.
        eta : float, default=0.0
            DDIM noise.
        n_samples : int, default=1
            Images generated per ``c``.
        seed : int, default=42
            Sample ``i`` of image ``j`` uses a generator seeded from
            ``(seed, start_index + j, i)``.
        start_index : int, default=0
            Index of the first image, for the generators.
        batch_size : int, default=8
            Samples denoised at once.
        progress : bool, default=True
            Show a progress bar.

        Returns
        -------
        images : ndarray of shape (n_images, n_samples, size, size, 3), uint8
            ``size`` is :attr:`generation_size`.

        Examples
        --------
        >>> from brainldm.diffusion import StableDiffusion
        >>> sd = StableDiffusion.from_pretrained("toy")
        >>> c = sd.encode_text([["a red circle on a plain blue background"]])
        >>> sd.text2img(c, steps=10, n_samples=2, progress=False).shape
        (1, 2, 64, 64, 3)
        """
        if c is None:
            raise ValueError("c is None; text2img needs one c per image (see img2img for z only)")
        c = self._check_conditioning(c)
        return self._generate(
            None,
            c,
            strength=1.0,
            steps=steps,
            guidance=guidance,
            eta=eta,
            n_samples=n_samples,
            seed=seed,
            image_ids=_image_ids(start_index, len(c)),
            noise_schedule="takagi2023",
            batch_size=batch_size,
            progress=progress,
        )

    def denoise(
        self,
        latents,
        c=None,
        *,
        strength=0.8,
        steps=50,
        read_steps=("late",),
        layers=(),
        pool_size=2,
        guidance=5.0,
        eta=0.0,
        seed=42,
        start_index=0,
        image_ids=None,
        noise_schedule="takagi2023",
        batch_size=8,
        progress=True,
    ):
        """Read ``z_c`` and U-Net activations along the img2img denoising.

        The latents are noised to ``strength`` and denoised under ``c`` as in
        :meth:`img2img` (one sample per image, the same generator as its
        sample 0). At the chosen steps the latent after the step (``z_c``)
        is kept, and the output of the chosen U-Net modules during the step
        is captured by forward hooks, for the conditional branch of guidance
        only, and pooled: adaptive average pooling of each channel to a
        ``pool_size`` x ``pool_size`` grid (1 is the spatial mean). Full
        activations are never kept.

        Parameters
        ----------
        latents : array-like of shape (n_images, *generation_latent_shape)
            Initial latents at the generation size, e.g.
            ``encode_images(images, size=sd.generation_size)``.
        c : array-like of shape (n_images, *text_shape), default=None
            Conditioning; ``None`` is the empty prompt.
        strength : float in (0, 1], default=0.8
            Noise level; ``int(strength * steps)`` steps are run.
        steps : int, default=50
            Steps of the full DDIM schedule.
        read_steps : int, str or sequence of them, default=("late",)
            Steps at which to read, indexing the steps run (0 is the first,
            -1 the last), or ``"early"`` (the first), ``"middle"`` (index
            ``n_run // 2``) and ``"late"`` (the last).
        layers : sequence of str or None, default=()
            U-Net modules to capture, as paths of ``unet.named_modules()``
            (e.g. ``"down_blocks.1"``, ``"mid_block"``); ``None`` is
            :attr:`default_layers`, ``()`` captures nothing.
        pool_size : int, default=2
            Side of the grid activations are pooled to.
        guidance, eta, seed, start_index, noise_schedule, batch_size, progress
            As in :meth:`img2img`.
        image_ids : sequence of int, default=None
            One non-negative integer per image that replaces ``start_index +
            j`` in the seed of its generator, e.g. the 73k ids or a hash of
            each image, so that an image's result does not depend on its
            position.

        Returns
        -------
        result : sklearn.utils.Bunch
            ``latents``, (n_images, n_read, *generation_latent_shape) float32:
            ``z_c`` at each read step; ``activations``, a dict from layer name
            to a (n_images, n_read, channels, pool_size, pool_size) float32
            array; ``steps``, the indices of the read steps among those run;
            ``timesteps``, their DDIM timesteps.

        Examples
        --------
        >>> from brainldm.datasets.scenes import make_stimuli
        >>> from brainldm.diffusion import StableDiffusion
        >>> sd = StableDiffusion.from_pretrained("toy")
        >>> scenes = make_stimuli(3, seed=0)
        >>> x0 = sd.encode_images(scenes.images, size=sd.generation_size)
        >>> c = sd.encode_text(scenes.captions)
        >>> out = sd.denoise(
        ...     x0, c, steps=10, read_steps=("early", "late"), layers=None, progress=False
        ... )
        >>> out.latents.shape, out.activations["mid_block"].shape
        ((3, 2, 4, 16, 16), (3, 2, 64, 2, 2))
        >>> out.steps.tolist(), out.timesteps.tolist()
        ([0, 7], [701, 1])
        """
        latents = _check_latents(
            latents, "latents", self.vae.config.latent_channels, self.generation_latent_shape
        )
        c = self._check_conditioning(c, len(latents))
        layers = self.default_layers if layers is None else self._check_layers(layers)
        pool_size = _check_int(pool_size, "pool_size", minimum=1)
        return self._generate(
            Bunch(mean=torch.from_numpy(latents), std=None),
            c,
            strength=strength,
            steps=steps,
            guidance=guidance,
            eta=eta,
            n_samples=1,
            seed=seed,
            image_ids=_image_ids(start_index, len(latents), image_ids),
            noise_schedule=noise_schedule,
            batch_size=batch_size,
            progress=progress,
            probe=Bunch(read_steps=read_steps, layers=layers, pool_size=pool_size),
        )

    @torch.inference_mode()
    def _generate(
        self,
        init,
        c,
        *,
        strength,
        steps,
        guidance,
        eta,
        n_samples,
        seed,
        image_ids,
        noise_schedule,
        batch_size,
        progress,
        probe=None,
    ):
        """Run batches of (image, sample) jobs through the denoising loop.

        ``init`` holds the posterior ``mean`` (and ``std`` to sample it) of
        the initial latents, or is None to start from pure noise. Without
        ``probe`` the final latents are decoded to images; with it, the
        latents and pooled activations at the read steps are returned.
        """
        scheduler, timesteps, noise_level = self._schedule(steps, strength, noise_schedule)
        guidance = _check_number(guidance, "guidance", minimum=0.0)
        eta = _check_number(eta, "eta", minimum=0.0)
        n_samples = _check_int(n_samples, "n_samples", minimum=1)
        batch_size = _check_int(batch_size, "batch_size", minimum=1)
        n_images = len(c) if c is not None else len(init.mean)
        jobs = [(j, i) for j in range(n_images) for i in range(n_samples)]
        shape = self.generation_latent_shape
        want_images = probe is None
        probe = probe or Bunch(read_steps=None, layers=(), pool_size=1)
        read_at = [] if want_images else _resolve_steps(probe.read_steps, len(timesteps))
        latents_out = np.zeros((n_images, len(read_at)) + shape, np.float32)
        activations_out = {}
        size = self.generation_size
        images_out = (
            np.zeros((n_images, n_samples, size, size, 3), np.uint8) if want_images else None
        )
        recorder = _Recorder(self.unet, probe.layers, probe.pool_size, self._uses_cfg(c, guidance))
        with (
            recorder,
            tqdm(total=len(jobs), desc="denoising", unit="sample", disable=not progress) as bar,
        ):
            for start in range(0, len(jobs), batch_size):
                batch = jobs[start : start + batch_size]
                rows = [j for j, _ in batch]
                generators = [sample_generator(seed, image_ids[j], i) for j, i in batch]
                x = self._initial_latents(init, rows, generators, shape, scheduler, noise_level)
                cond = None if c is None else c[rows].to(self.device, self.dtype)
                for k, t in enumerate(timesteps):
                    recorder.recording = k in read_at
                    noise_pred = self._predict_noise(x, t, cond, guidance)
                    x = scheduler.step(noise_pred, int(t), x, eta=eta, generator=generators)
                    x = x.prev_sample
                    for pos in (p for p, step in enumerate(read_at) if step == k):
                        latents_out[rows, pos] = x.cpu().numpy()
                        for name, value in recorder.values.items():
                            if name not in activations_out:
                                activations_out[name] = np.zeros(
                                    (n_images, len(read_at)) + value.shape[1:], np.float32
                                )
                            activations_out[name][rows, pos] = value
                if images_out is not None:
                    decoded = self.decode_latents(x.cpu().numpy(), batch_size=len(batch))
                    images_out[rows, [i for _, i in batch]] = decoded
                bar.update(len(batch))
        if images_out is not None:
            return images_out
        return Bunch(
            latents=latents_out,
            activations={name: activations_out[name] for name in probe.layers},
            steps=np.asarray(read_at),
            timesteps=np.asarray([int(timesteps[k]) for k in read_at]),
        )

    def schedule(self, steps=50, strength=0.8, noise_schedule="takagi2023"):
        """The DDIM timesteps that img2img runs, and the timestep it noises to.

        Parameters
        ----------
        steps, strength, noise_schedule
            As in :meth:`img2img`.

        Returns
        -------
        schedule : sklearn.utils.Bunch
            ``timesteps``, the timesteps denoised, in order; ``noise_timestep``,
            the timestep whose ``alphas_cumprod`` noises the initial latent
            (None: pure noise).

        Examples
        --------
        >>> from brainldm.diffusion import StableDiffusion
        >>> sd = StableDiffusion.from_pretrained("toy")
        >>> plan = sd.schedule(steps=50, strength=0.8)
        >>> plan.noise_timestep, plan.timesteps[[0, -1]].tolist(), len(plan.timesteps)
        (801, [781, 1], 40)
        >>> sd.schedule(steps=50, strength=0.8, noise_schedule="diffusers").noise_timestep
        781
        """
        _, timesteps, noise_level = self._schedule(steps, strength, noise_schedule)
        return Bunch(timesteps=timesteps.numpy(), noise_timestep=noise_level)

    def read_step_indices(self, read_steps, steps=50, strength=0.8):
        """Indices among the steps run that ``read_steps`` names.

        Parameters
        ----------
        read_steps : int, str or sequence of them
            As in :meth:`denoise`.
        steps, strength
            As in :meth:`img2img`.

        Returns
        -------
        indices : list of int

        Examples
        --------
        >>> from brainldm.diffusion import StableDiffusion
        >>> sd = StableDiffusion.from_pretrained("toy")
        >>> sd.read_step_indices(["early", "middle", "late", -2], steps=50, strength=0.8)
        [0, 20, 39, 38]
        """
        _, timesteps, _ = self._schedule(steps, strength, NOISE_SCHEDULES[0])
        return _resolve_steps(read_steps, len(timesteps))

    @torch.inference_mode()
    def unet_output_shapes(self, layers=None, pool_size=2):
        """Shape of each layer's pooled activations, found by one small U-Net pass.

        Parameters
        ----------
        layers : sequence of str, default=None
            As in :meth:`denoise`; ``None`` is :attr:`default_layers`.
        pool_size : int, default=2
            As in :meth:`denoise`.

        Returns
        -------
        shapes : dict
            Layer name -> (channels, pool_size, pool_size), in the order given.

        Examples
        --------
        >>> from brainldm.diffusion import StableDiffusion
        >>> sd = StableDiffusion.from_pretrained("toy")
        >>> sd.unet_output_shapes(["down_blocks.0", "mid_block"], pool_size=1)
        {'down_blocks.0': (32, 1, 1), 'mid_block': (64, 1, 1)}
        """
        layers = self.default_layers if layers is None else self._check_layers(layers)
        pool_size = _check_int(pool_size, "pool_size", minimum=1)
        # The channels do not depend on the spatial size: the smallest the U-Net takes will do.
        side = 2 ** (len(self.unet.config.block_out_channels) - 1)
        x = torch.zeros((1, self.unet.config.in_channels, side, side), device=self.device)
        with _Recorder(self.unet, layers, pool_size, cfg=False) as recorder:
            recorder.recording = True
            self.unet(x.to(self.dtype), 999, encoder_hidden_states=self._unconditional())
        return {name: tuple(recorder.values[name].shape[1:]) for name in layers}

    def _schedule(self, steps, strength, noise_schedule):
        """DDIM scheduler, the timesteps to run, and the timestep to noise to (None: pure noise)."""
        from diffusers import DDIMScheduler

        steps = _check_int(steps, "steps", minimum=1)
        strength = _check_number(strength, "strength")
        if not 0.0 < strength <= 1.0:
            raise ValueError(f"strength must be in (0, 1], got {strength}")
        if noise_schedule not in NOISE_SCHEDULES:
            raise ValueError(
                f"noise_schedule must be one of {NOISE_SCHEDULES}, got {noise_schedule!r}"
            )
        n_run = int(steps * strength)
        if n_run < 1:
            raise ValueError(
                f"strength={strength} with steps={steps} runs int(strength * steps) = 0 denoising "
                "steps; raise strength or steps"
            )
        scheduler = DDIMScheduler.from_config(self.scheduler.config)
        scheduler.set_timesteps(steps)
        timesteps = scheduler.timesteps
        first = steps - n_run
        if noise_schedule == "diffusers":
            noise_level = int(timesteps[first])
        else:
            noise_level = None if first == 0 else int(timesteps[first - 1])
        return scheduler, timesteps[first:], noise_level

    def _initial_latents(self, init, rows, generators, shape, scheduler, noise_level):
        draws = []
        for j, generator in zip(rows, generators, strict=True):
            x0 = None
            if init is not None:
                x0 = init.mean[j]
                if init.std is not None:
                    x0 = x0 + init.std[j] * torch.randn(shape, generator=generator)
            noise = torch.randn(shape, generator=generator)
            if x0 is None or noise_level is None:
                draws.append(noise * scheduler.init_noise_sigma)
            else:
                alpha = scheduler.alphas_cumprod[noise_level]
                draws.append(alpha.sqrt() * x0 + (1 - alpha).sqrt() * noise)
        return torch.stack(draws).to(self.device)

    def _uses_cfg(self, c, guidance):
        return c is not None and guidance != 1.0

    def _predict_noise(self, x, t, cond, guidance):
        uncond = self._unconditional()
        if cond is None:
            context, model_input = uncond.expand(len(x), -1, -1), x
        elif not self._uses_cfg(cond, guidance):
            context, model_input = cond, x
        else:
            context = torch.cat([uncond.expand(len(x), -1, -1), cond])
            model_input = torch.cat([x, x])
        noise_pred = self.unet(model_input.to(self.dtype), t, encoder_hidden_states=context).sample
        noise_pred = noise_pred.float()
        if cond is not None and self._uses_cfg(cond, guidance):
            uncond_pred, cond_pred = noise_pred.chunk(2)
            noise_pred = uncond_pred + guidance * (cond_pred - uncond_pred)
        return noise_pred

    def _check_conditioning(self, c, n_images=None):
        if c is None:
            return None
        c = np.asarray(c, dtype=np.float32)
        if c.ndim != 3 or c.shape[1:] != self.text_shape:
            raise ValueError(
                f"c must have shape (n_images, {self.text_shape[0]}, {self.text_shape[1]}) "
                f"(tokens x hidden size of this model's text encoder), got {c.shape}; encode "
                "captions with this model's encode_text"
            )
        if n_images is not None and len(c) != n_images:
            raise ValueError(
                f"c has {len(c)} rows but there are {n_images} images; pass one c per image"
            )
        return torch.from_numpy(c)

    def _check_layers(self, layers):
        """The layer names, checked against the U-Net's modules."""
        if isinstance(layers, str):
            layers = (layers,)
        modules = dict(self.unet.named_modules())
        unknown = [name for name in layers if name not in modules or not name]
        if unknown:
            blocks = [
                name
                for name in modules
                if re.fullmatch(r"(down_blocks|up_blocks)\.\d+|mid_block", name)
            ]
            raise ValueError(
                f"layers {unknown} are not modules of this U-Net; use paths of "
                f"unet.named_modules(), e.g. {blocks}"
            )
        return tuple(layers)


class _Recorder:
    """Forward hooks on U-Net modules that keep their pooled outputs while ``recording``.

    Used as a context manager, so the hooks are removed even when denoising fails.
    """

    def __init__(self, unet, layers, pool_size, cfg):
        self.pool_size, self.cfg, self.values, self.recording = pool_size, cfg, {}, False
        modules = dict(unet.named_modules())
        self.handles = [modules[name].register_forward_hook(self._hook(name)) for name in layers]

    def _hook(self, name):
        def hook(module, inputs, output):
            if not self.recording:
                return
            value = output[0] if isinstance(output, tuple) else output
            if self.cfg:
                # The batch is [unconditional, conditional]; the conditional half is c's.
                value = value.chunk(2)[1]
            self.values[name] = F.adaptive_avg_pool2d(value.float(), self.pool_size).cpu().numpy()

        return hook

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        for handle in self.handles:
            handle.remove()


def _load_by_reference(name_or_path, device, dtype):
    return StableDiffusion.from_pretrained(name_or_path, device=device, dtype=dtype)


def _ddim_config(config):
    """The DDIM settings of any scheduler's configuration (others would be warned about)."""
    from diffusers import DDIMScheduler

    accepted = inspect.signature(DDIMScheduler.__init__).parameters
    return {key: value for key, value in dict(config).items() if key in accepted}


def _resolve_folder(name_or_path):
    if str(name_or_path) == "toy":
        if not (TOY_LDM_PATH / "model_index.json").is_file():
            raise FileNotFoundError(
                f"the toy model is missing from {TOY_LDM_PATH}; reinstall brainldm or train it "
                "with `python -m brainldm.toy.train_ldm`"
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

    try:
        return Path(snapshot_download(str(name_or_path), allow_patterns=list(_HUB_FILES)))
    except (OSError, HFValidationError, ValueError) as error:
        raise FileNotFoundError(
            f"{str(name_or_path)!r} is not a local folder and could not be fetched from the "
            f"Hugging Face hub ({error}). Download the model folder where the hub is reachable "
            "(huggingface_hub.snapshot_download) and pass its local path instead"
        ) from error


def _resolve_device(device):
    device = torch.device("cpu" if device is None else device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"device={str(device)!r} was requested but torch cannot use a CUDA GPU here "
            f"(torch {torch.__version__}, CUDA build {torch.version.cuda}); pass device='cpu' "
            "or device=None, or run on a machine with a GPU and a CUDA build of torch"
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise RuntimeError(
            f"device={str(device)!r} was requested but torch cannot use Apple's MPS here; pass "
            "device='cpu' or device=None"
        )
    return device


def _resolve_dtype(dtype):
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype) and dtype in _DTYPES.values():
        return dtype
    if isinstance(dtype, str) and dtype in _DTYPES:
        return _DTYPES[dtype]
    raise ValueError(f"dtype must be one of {sorted(_DTYPES)} or None, got {dtype!r}")


def _image_ids(start_index, n_images, image_ids=None):
    """Per-image keys of the generators: ``image_ids`` if given, else consecutive from ``start_index``."""
    if image_ids is None:
        start_index = _check_int(start_index, "start_index", minimum=0)
        return list(range(start_index, start_index + n_images))
    image_ids = [_check_int(key, "image_ids", minimum=0) for key in image_ids]
    if len(image_ids) != n_images:
        raise ValueError(
            f"image_ids has {len(image_ids)} ids for {n_images} images; pass one per image"
        )
    return image_ids


def sample_generator(seed, image, sample):
    """The CPU random generator of one sample of one image.

    All the noise of sample ``sample`` of image ``image`` (posterior samples,
    initial noise, DDIM noise) is drawn from this generator, in that order,
    as diffusers' pipelines draw from a per-sample generator.

    Parameters
    ----------
    seed : int
        The run's seed.
    image : int
        Index (or id) of the image.
    sample : int
        Index of the sample.

    Returns
    -------
    generator : torch.Generator
        Seeded from the three numbers through :class:`numpy.random.SeedSequence`.

    Examples
    --------
    >>> import torch
    >>> from brainldm.diffusion import sample_generator
    >>> a = torch.randn(3, generator=sample_generator(42, 0, 1))
    >>> torch.equal(a, torch.randn(3, generator=sample_generator(42, 0, 1)))
    True
    >>> torch.equal(a, torch.randn(3, generator=sample_generator(42, 1, 0)))
    False
    """
    state = np.random.SeedSequence([int(seed), int(image), int(sample)]).generate_state(2)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def _resolve_steps(read_steps, n_run):
    if isinstance(read_steps, (str, int, np.integer)):
        read_steps = (read_steps,)
    named = {"early": 0, "middle": n_run // 2, "late": n_run - 1}
    resolved = []
    for step in read_steps:
        if isinstance(step, str):
            if step not in named:
                raise ValueError(
                    f"read_steps names {step!r}; use 'early', 'middle', 'late' or step indices"
                )
            resolved.append(named[step])
        elif isinstance(step, (int, np.integer)) and -n_run <= step < n_run:
            resolved.append(int(step) % n_run)
        else:
            raise ValueError(
                f"read_steps has {step!r}, outside the {n_run} steps run (indices -{n_run} to "
                f"{n_run - 1}); choose steps among those run, or raise strength or steps"
            )
    if not resolved:
        raise ValueError("read_steps is empty; name at least one step")
    return resolved


def _check_int(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_number(value, name, minimum=None):
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.number))
        or not np.isfinite(value)
    ):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return float(value)


def _check_latents(z, name, channels, shape=None):
    z = np.ascontiguousarray(z, dtype=np.float32)
    expected = (
        f"(n_images, {', '.join(map(str, shape))})" if shape else f"(n_images, {channels}, h, w)"
    )
    if z.ndim != 4 or z.shape[1] != channels or (shape is not None and z.shape[1:] != tuple(shape)):
        raise ValueError(f"{name} must have shape {expected} for this model, got {z.shape}")
    if not np.isfinite(z).all():
        raise ValueError(f"{name} has non-finite values; decode it from finite data")
    return z


def _check_captions(captions):
    if isinstance(captions, str):
        raise ValueError(
            f"captions must be one list of captions per image, got the string {captions[:40]!r}; "
            "wrap it as [[caption]]"
        )
    captions = [[texts] if isinstance(texts, str) else list(texts) for texts in captions]
    if not captions:
        raise ValueError("captions is empty; pass one list of captions per image")
    for j, texts in enumerate(captions):
        if not texts:
            raise ValueError(
                f"image {j} has no captions; every image needs at least one (use [''] for none)"
            )
        if not all(isinstance(text, str) for text in texts):
            raise ValueError(f"captions of image {j} must be strings, got {texts!r}")
    return captions


def _as_images(images):
    """uint8 (H, W, 3) arrays from an array or a sequence of arrays or PIL images."""
    if isinstance(images, np.ndarray) and images.ndim != 4:
        raise ValueError(
            f"images must have shape (n_images, height, width, 3), got {images.shape}; add a "
            "leading axis for a single image"
        )
    result = []
    for j, image in enumerate(images):
        array = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image)
        if array.dtype != np.uint8:
            raise ValueError(
                f"images must be uint8 in [0, 255], got {array.dtype} for image {j}; convert with "
                "(image * 255).round().astype(np.uint8) for images in [0, 1]"
            )
        if array.ndim != 3 or array.shape[2] != 3:
            raise ValueError(f"image {j} must have shape (height, width, 3) RGB, got {array.shape}")
        result.append(array)
    if not result:
        raise ValueError("images is empty; pass at least one image")
    return result


def _resize(images, size):
    """Resize uint8 images to (size, size) with LANCZOS, into one array."""
    out = np.empty((len(images), size, size, 3), np.uint8)
    for j, image in enumerate(images):
        if image.shape[:2] == (size, size):
            out[j] = image
        else:
            out[j] = np.asarray(
                Image.fromarray(image).resize((size, size), Image.Resampling.LANCZOS)
            )
    return out


def _to_uint8(pixels):
    pixels = ((pixels.float().clamp(-1, 1) + 1) * 127.5).round()
    return pixels.to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
