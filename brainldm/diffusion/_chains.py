"""The paper's generation chains: img2img from decoded ``(z, c)``, and text2img from ``c``."""

import numpy as np
from PIL import Image
from sklearn.utils import Bunch

from brainldm._images import resize
from brainldm._validation import check_int, check_options
from brainldm.diffusion._checks import check_conditioning, check_latents, check_sample_posterior
from brainldm.diffusion._codec import ROUNDINGS
from brainldm.diffusion._rng import generator_keys
from brainldm.diffusion._sampling import InitialLatents, run_denoising
from brainldm.diffusion._schedule import plan_schedule

__all__ = ["UPSAMPLE_FILTERS", "ChainsMixin", "upsample_coarse"]

UPSAMPLE_FILTERS = ("lanczos", "bicubic")
"""Filters that resize the coarse image to the generation size (see ``img2img``)."""


def upsample_coarse(images, size, upsample):
    """The coarse images at ``size``: LANCZOS, as every resize of the library, or PIL's bicubic.

    Examples
    --------
    >>> images = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    >>> upsample_coarse(images, 16, "bicubic").shape
    (2, 16, 16, 3)
    >>> bicubic, lanczos = (upsample_coarse(images, 16, name) for name in ("bicubic", "lanczos"))
    >>> bool((bicubic == lanczos).all())
    False
    """
    if upsample == "lanczos":
        return resize(images, size)
    return np.stack(
        [
            np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BICUBIC))
            for image in images
        ]
    )


class ChainsMixin:
    """img2img, text2img and the schedule they run, for :class:`StableDiffusion`."""

    def img2img(
        self,
        z,
        c=None,
        *,
        strength=0.8,
        steps=50,
        guidance=5.0,
        eta=0.0,
        n_samples_per_image=1,
        random_state=42,
        start_index=0,
        image_ids=None,
        noise_schedule="takagi2023",
        sample_posterior=False,
        rounding="round",
        upsample="lanczos",
        batch_size=8,
        progress=False,
        callback_on_step_end=None,
    ):
        """Generate images from ``z`` (and ``c``) by the paper's img2img chain.

        ``z`` is decoded to the coarse image ``X_z`` at :attr:`image_size`,
        resized to :attr:`generation_size`, encoded again, noised to
        ``strength`` and denoised by DDIM with classifier-free guidance
        against the empty prompt, conditioned on ``c``; the result is
        decoded.

        The defaults are brainldm's choices; the original code's differ in
        four places, each offered here: ``rounding="truncate"``,
        ``upsample="bicubic"``, ``sample_posterior="per-image"``, and the
        same noise for every image, ``image_ids=[0] * len(z)``.

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
        n_samples_per_image : int, default=1
            Images generated per latent.
        random_state : int, default=42
            Sample ``i`` of image ``j`` uses a generator seeded from
            ``(random_state, start_index + j, i)``.
        start_index : int, default=0
            Index of the first image, so that a set generated in several calls
            equals the set generated at once.
        image_ids : sequence of int, default=None
            One non-negative integer per image that replaces ``start_index +
            j`` in the seed of its generators. Images of the same id get the
            same noise: ``[0] * len(z)`` gives every image the noise of the
            first, as the original code, which seeds its global generator
            with 42 before every image.
        noise_schedule : {"takagi2023", "diffusers"}, default="takagi2023"
            ``"takagi2023"`` noises the initial latent to the DDIM timestep
            above the first one denoised, as the original CompVis sampler
            (SD v1.4, 50 steps, strength 0.8: noise ``alphas_cumprod[801]``,
            denoise 781, ..., 1), and starts from pure noise at strength 1.
            ``"diffusers"`` noises to the first timestep denoised (781), as
            diffusers' img2img pipeline.
        sample_posterior : bool or "per-image", default=False
            Sample the VAE posterior of the re-encoded image instead of taking
            its mode: ``True`` draws one sample for every sample generated,
            from its own generator; ``"per-image"`` draws one per image,
            shared by its ``n_samples_per_image`` samples, as the original code does
            (it is sample 0's draw, and every sample keeps the initial noise
            it has with ``True``).
        rounding : {"round", "truncate"}, default="round"
            How decoded pixels become uint8, in the coarse image and in the
            images returned: rounded to the nearest level, or truncated, as
            the original code's ``astype(np.uint8)`` does.
        upsample : {"lanczos", "bicubic"}, default="lanczos"
            Filter that resizes the coarse image to :attr:`generation_size`:
            LANCZOS, as every resize of brainldm, or bicubic, PIL's default
            filter, which the original code uses.
        batch_size : int, default=8
            Samples denoised at once.
        progress : bool, default=False
            Show a progress bar.
        callback_on_step_end : callable, default=None
            Called after every denoising step of every batch, as diffusers'
            pipelines call it: ``callback_on_step_end(sd, step, timestep,
            callback_kwargs)``, with ``step`` the index among the steps run,
            ``timestep`` the DDIM timestep (an int) and ``callback_kwargs`` a
            dict of ``latents`` (the batch's latents after the step, a
            float32 tensor on :attr:`device`), ``noise_pred`` (the guided
            noise prediction of the step), ``image_indices`` and
            ``sample_indices`` (the image and the sample of each row of the
            batch). It may return a dict: its ``"latents"``, if given,
            replace the latents the loop continues from.

        Returns
        -------
        images : ndarray of shape (n_images, n_samples_per_image, size, size, 3), uint8
            ``size`` is :attr:`generation_size`.

        See Also
        --------
        text2img : the c-only control.
        decode_latents : the coarse image ``X_z`` of the z-only control.
        denoise : ``z_c`` and U-Net activations along the same chain.

        Examples
        --------
        >>> from brainldm.datasets.scenes import make_stimuli
        >>> from brainldm.diffusion import StableDiffusion
        >>> sd = StableDiffusion.from_pretrained("toy")
        >>> scenes = make_stimuli(3, seed=0)
        >>> z, c = sd.encode_images(scenes.images), sd.encode_text(scenes.captions)
        >>> sd.img2img(z, c, steps=10, n_samples_per_image=2).shape
        (3, 2, 64, 64, 3)
        >>> sd.img2img(z, None, steps=10).shape  # the z-only control
        (3, 1, 64, 64, 3)

        Read the inside of the loop with a callback, e.g. the size of the
        latent's update at each step:

        >>> updates = []
        >>> def record(sd, step, timestep, callback_kwargs):
        ...     updates.append((timestep, float(callback_kwargs["noise_pred"].std())))
        >>> images = sd.img2img(z[:1], c[:1], steps=10, callback_on_step_end=record)
        >>> [timestep for timestep, _ in updates] == sd.schedule(steps=10).timesteps.tolist()
        True

        The original code's settings (the same settings, not its numbers:
        its noise comes from torch's global generator, drawn in another
        order):

        >>> original = dict(rounding="truncate", upsample="bicubic", sample_posterior="per-image")
        >>> sd.img2img(z, c, steps=10, n_samples_per_image=2, image_ids=[0] * len(z), **original).shape
        (3, 2, 64, 64, 3)
        """
        batch_size = check_int(batch_size, "batch_size", "img2img", min_val=1)
        check_sample_posterior(sample_posterior, "img2img")
        check_options(rounding, "rounding", "img2img", ROUNDINGS)
        check_options(upsample, "upsample", "img2img", UPSAMPLE_FILTERS)
        z = check_latents(z, "z", self.vae.config.latent_channels, self.latent_shape)
        c = check_conditioning(c, self.text_shape, len(z))
        schedule = plan_schedule(self.scheduler, steps, strength, noise_schedule, "img2img")
        image_ids = generator_keys(len(z), start_index, image_ids, "img2img")
        coarse = self.decode_latents(z, rounding=rounding, batch_size=batch_size)
        pixels = upsample_coarse(coarse, self.generation_size, upsample)
        mean, std = self._posterior(pixels, batch_size, False, "img2img")
        latents = run_denoising(
            self,
            InitialLatents(
                mean, std if sample_posterior else None, per_image=sample_posterior == "per-image"
            ),
            c,
            schedule,
            guidance=guidance,
            eta=eta,
            n_samples=n_samples_per_image,
            seed=random_state,
            image_ids=image_ids,
            batch_size=batch_size,
            progress=progress,
            callback_on_step_end=callback_on_step_end,
            caller="img2img",
        )
        return self._decode_samples(latents, rounding, batch_size, progress)

    def text2img(
        self,
        c,
        *,
        steps=50,
        guidance=5.0,
        eta=0.0,
        n_samples_per_image=1,
        random_state=42,
        start_index=0,
        image_ids=None,
        rounding="round",
        batch_size=8,
        progress=False,
        callback_on_step_end=None,
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
        n_samples_per_image : int, default=1
            Images generated per ``c``.
        random_state : int, default=42
            Sample ``i`` of image ``j`` uses a generator seeded from
            ``(random_state, start_index + j, i)``.
        start_index : int, default=0
            Index of the first image, for the generators.
        image_ids : sequence of int, default=None
            As in :meth:`img2img`: ``[0] * len(c)`` starts every image from
            the same noise.
        rounding : {"round", "truncate"}, default="round"
            As in :meth:`img2img`, for the images returned.
        batch_size : int, default=8
            Samples denoised at once.
        progress : bool, default=False
            Show a progress bar.
        callback_on_step_end : callable, default=None
            As in :meth:`img2img`.

        Returns
        -------
        images : ndarray of shape (n_images, n_samples_per_image, size, size, 3), uint8
            ``size`` is :attr:`generation_size`.

        Examples
        --------
        >>> from brainldm.diffusion import StableDiffusion
        >>> sd = StableDiffusion.from_pretrained("toy")
        >>> c = sd.encode_text([["a red circle on a plain blue background"]])
        >>> sd.text2img(c, steps=10, n_samples_per_image=2).shape
        (1, 2, 64, 64, 3)
        """
        if c is None:
            raise ValueError("c is None; text2img needs one c per image (see img2img for z only)")
        batch_size = check_int(batch_size, "batch_size", "text2img", min_val=1)
        check_options(rounding, "rounding", "text2img", ROUNDINGS)
        c = check_conditioning(c, self.text_shape)
        latents = run_denoising(
            self,
            None,
            c,
            plan_schedule(self.scheduler, steps, 1.0, "takagi2023", "text2img"),
            guidance=guidance,
            eta=eta,
            n_samples=n_samples_per_image,
            seed=random_state,
            image_ids=generator_keys(len(c), start_index, image_ids, "text2img"),
            batch_size=batch_size,
            progress=progress,
            callback_on_step_end=callback_on_step_end,
            caller="text2img",
        )
        return self._decode_samples(latents, rounding, batch_size, progress)

    def _decode_samples(self, latents, rounding, batch_size, progress):
        """Images of final latents (n_images, n_samples, ...), decoded in the loop's batches."""
        n_images, n_samples = latents.shape[:2]
        flat = latents.reshape((-1,) + latents.shape[2:])
        images = self.decode_latents(
            flat, rounding=rounding, batch_size=batch_size, progress=progress
        )
        return images.reshape((n_images, n_samples) + images.shape[1:])

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
        plan = plan_schedule(self.scheduler, steps, strength, noise_schedule, "schedule")
        return Bunch(timesteps=plan.timesteps.numpy(), noise_timestep=plan.noise_timestep)
