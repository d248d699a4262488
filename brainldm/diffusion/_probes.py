"""The encoding probes: ``z_c`` and pooled U-Net activations read along the denoising.

Both are step callbacks of the sampling loop (:func:`run_denoising`):
:class:`LatentReader` keeps the latent after each read step;
:class:`ActivationReader` registers forward hooks on U-Net modules, arms them
for the steps to read and keeps their pooled outputs. Full activations are
never kept.
"""

import re

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.utils import Bunch

from brainldm._validation import check_int
from brainldm.diffusion._checks import check_conditioning, check_latents
from brainldm.diffusion._rng import generator_keys
from brainldm.diffusion._sampling import (
    InitialLatents,
    chain_callbacks,
    run_denoising,
    uses_guidance,
)
from brainldm.diffusion._schedule import NOISE_SCHEDULES, plan_schedule

__all__ = [
    "ActivationReader",
    "LatentReader",
    "ProbesMixin",
    "StepReader",
    "check_layers",
    "resolve_read_steps",
]


def resolve_read_steps(read_steps, n_run):
    """Indices among the ``n_run`` steps run that ``read_steps`` names.

    Examples
    --------
    >>> resolve_read_steps(["early", "middle", "late", -2], 40)
    [0, 20, 39, 38]
    """
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


def check_layers(unet, layers):
    """The layer names, checked against the U-Net's modules."""
    if isinstance(layers, str):
        layers = (layers,)
    modules = dict(unet.named_modules())
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


class StepReader:
    """A step callback's store: per name, (n_images, n_read, ...) float32 values at the read steps.

    ``read_at`` lists the steps to read, as indices among the steps run (a
    step may be listed twice); ``values[name][j, p]`` is the value for image
    ``j`` at step ``read_at[p]``.
    """

    def __init__(self, n_images, read_at):
        self.n_images, self.read_at, self.values = n_images, list(read_at), {}

    def keep(self, name, rows, step, value):
        """Store ``value`` (one row per image in ``rows``) if ``step`` is read."""
        for position in (p for p, read in enumerate(self.read_at) if read == step):
            if name not in self.values:
                shape = (self.n_images, len(self.read_at)) + value.shape[1:]
                self.values[name] = np.zeros(shape, np.float32)
            self.values[name][rows, position] = value


class LatentReader(StepReader):
    """Step callback that keeps ``z_c``, the latent after each read step, in ``values["latents"]``.

    Examples
    --------
    >>> reader = LatentReader(n_images=2, read_at=[1])
    >>> for step in range(3):
    ...     _ = reader(None, step, 0, {"latents": torch.full((2, 1), step), "image_indices": [0, 1]})
    >>> reader.values["latents"].tolist()
    [[[1.0]], [[1.0]]]
    """

    def __call__(self, model, step, timestep, callback_kwargs):
        latents = callback_kwargs["latents"].float().cpu().numpy()
        self.keep("latents", callback_kwargs["image_indices"], step, latents)


class ActivationReader(StepReader):
    """Forward hooks that keep U-Net modules' pooled outputs at the read steps.

    A context manager, so that the hooks are removed even when denoising
    fails. The hooks pool only while :attr:`armed`: the callback arms them
    for the next step when that step is read, and the first step's arming is
    set here. Each output is pooled by adaptive averaging of each channel to
    a ``pool_size`` x ``pool_size`` grid, for the conditional half of the
    batch when the U-Net runs both branches of guidance.

    Parameters
    ----------
    unet : diffusers.UNet2DConditionModel
    layers : sequence of str
        Paths of ``unet.named_modules()``.
    pool_size : int
    conditional_half : bool
        Keep the second half of the batch, the conditional branch.
    n_images : int
    read_at : list of int
        The steps to read, as indices among the ``n_run`` steps run.
    n_run : int
    """

    def __init__(self, unet, layers, pool_size, conditional_half, n_images, read_at, n_run):
        super().__init__(n_images, read_at)
        self.layers, self.pool_size, self.conditional_half = (
            list(layers),
            pool_size,
            conditional_half,
        )
        self.n_run, self.latest = n_run, {}
        self.armed = 0 in self.read_at
        modules = dict(unet.named_modules())
        self.handles = [modules[name].register_forward_hook(self._hook(name)) for name in layers]

    def _hook(self, name):
        def hook(module, inputs, output):
            if not self.armed:
                return
            value = output[0] if isinstance(output, tuple) else output
            if self.conditional_half:
                # The batch is [unconditional, conditional]; the conditional half is c's.
                value = value.chunk(2)[1]
            self.latest[name] = F.adaptive_avg_pool2d(value.float(), self.pool_size).cpu().numpy()

        return hook

    def __call__(self, model, step, timestep, callback_kwargs):
        for name in self.layers:
            if self.armed:
                self.keep(name, callback_kwargs["image_indices"], step, self.latest[name])
        # After the last step comes the first step of the next batch.
        self.armed = (step + 1) % self.n_run in self.read_at

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        for handle in self.handles:
            handle.remove()


class ProbesMixin:
    """The encoding probes of :class:`StableDiffusion`: ``z_c`` and U-Net activations."""

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
        random_state=42,
        start_index=0,
        image_ids=None,
        noise_schedule="takagi2023",
        batch_size=8,
        progress=False,
        callback_on_step_end=None,
    ):
        """Read ``z_c`` and U-Net activations along the img2img denoising.

        The latents are noised to ``strength`` and denoised under ``c`` as in
        :meth:`img2img` (one sample per image, the same generator as its
        sample 0). At the chosen steps the latent after the step (``z_c``)
        is kept, and the output of the chosen U-Net modules during the step
        is captured by forward hooks, for the conditional branch of guidance
        only, and pooled: adaptive average pooling of each channel to a
        ``pool_size`` x ``pool_size`` grid (1 is the spatial mean). Full
        activations are never kept. Both are read by callbacks of the
        sampling loop, after ``callback_on_step_end``.

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
        guidance, eta, random_state, start_index, noise_schedule, batch_size, progress
            As in :meth:`img2img`.
        image_ids : sequence of int, default=None
            One non-negative integer per image that replaces ``start_index +
            j`` in the seed of its generator, e.g. the 73k ids or a hash of
            each image, so that an image's result does not depend on its
            position.
        callback_on_step_end : callable, default=None
            As in :meth:`img2img`; the latents it returns are the ones read.

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
        >>> out = sd.denoise(x0, c, steps=10, read_steps=("early", "late"), layers=None)
        >>> out.latents.shape, out.activations["mid_block"].shape
        ((3, 2, 4, 16, 16), (3, 2, 64, 2, 2))
        >>> out.steps.tolist(), out.timesteps.tolist()
        ([0, 7], [701, 1])
        """
        latents = check_latents(
            latents, "latents", self.vae.config.latent_channels, self.generation_latent_shape
        )
        c = check_conditioning(c, self.text_shape, len(latents))
        layers = self.default_layers if layers is None else check_layers(self.unet, layers)
        pool_size = check_int(pool_size, "pool_size", "denoise", min_val=1)
        image_ids = generator_keys(len(latents), start_index, image_ids, "denoise")
        schedule = plan_schedule(self.scheduler, steps, strength, noise_schedule, "denoise")
        n_run = len(schedule.timesteps)
        read_at = resolve_read_steps(read_steps, n_run)
        z_c = LatentReader(len(latents), read_at)
        half = uses_guidance(c, guidance)
        with ActivationReader(
            self.unet, layers, pool_size, half, len(latents), read_at, n_run
        ) as activations:
            run_denoising(
                self,
                InitialLatents(torch.from_numpy(latents)),
                c,
                schedule,
                guidance=guidance,
                eta=eta,
                n_samples=1,
                seed=random_state,
                image_ids=image_ids,
                batch_size=batch_size,
                progress=progress,
                callback_on_step_end=chain_callbacks(callback_on_step_end, z_c, activations),
                caller="denoise",
            )
        return Bunch(
            latents=z_c.values["latents"],
            activations={name: activations.values[name] for name in layers},
            steps=np.asarray(read_at),
            timesteps=np.asarray([int(schedule.timesteps[k]) for k in read_at]),
        )

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
        schedule = plan_schedule(
            self.scheduler, steps, strength, NOISE_SCHEDULES[0], "read_step_indices"
        )
        return resolve_read_steps(read_steps, len(schedule.timesteps))

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
        layers = self.default_layers if layers is None else check_layers(self.unet, layers)
        pool_size = check_int(pool_size, "pool_size", "unet_output_shapes", min_val=1)
        # The channels do not depend on the spatial size: the smallest the U-Net takes will do.
        side = 2 ** (len(self.unet.config.block_out_channels) - 1)
        x = torch.zeros((1, self.unet.config.in_channels, side, side), device=self.device)
        with ActivationReader(self.unet, layers, pool_size, False, 1, [0], 1) as reader:
            self.unet(x.to(self.dtype), 999, encoder_hidden_states=self.empty_prompt_embedding())
        return {name: tuple(reader.latest[name].shape[1:]) for name in layers}
