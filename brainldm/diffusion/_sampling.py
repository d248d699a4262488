"""The guided DDIM loop, with a per-step callback.

:func:`run_denoising` noises initial latents, denoises them under
classifier-free guidance and returns the final latents; what the callers want
of the inside of the loop (``z_c`` at some steps, pooled U-Net activations)
they read through ``callback_on_step_end``, called after every step as
diffusers' pipelines call it: ``callback(model, step, timestep,
callback_kwargs)``, returning a dict whose ``"latents"``, if present, replace
the latents the loop continues from.
"""

from typing import NamedTuple

import numpy as np
import torch
from tqdm.auto import tqdm

from brainldm._validation import check_int, check_number
from brainldm.diffusion._rng import sample_generator

__all__ = ["InitialLatents", "chain_callbacks", "predict_noise", "run_denoising", "uses_guidance"]


class InitialLatents(NamedTuple):
    """The latents the samples of each image start from, before they are noised."""

    mean: torch.Tensor
    """Each image's latent, or the mean of its VAE posterior, (n_images, *latent_shape)."""
    std: torch.Tensor | None = None
    """The posterior's standard deviation, to sample it; None takes :attr:`mean`."""
    per_image: bool = False
    """Whether an image's samples share one posterior sample (sample 0's) instead of each
    drawing its own."""


def uses_guidance(c, guidance):
    """Whether the U-Net runs an unconditional and a conditional branch."""
    return c is not None and guidance != 1.0


def predict_noise(model, x, t, cond, guidance):
    """The U-Net's noise prediction for ``x`` at ``t``, guided against the empty prompt."""
    uncond = model.empty_prompt_embedding()
    if cond is None:
        context, model_input = uncond.expand(len(x), -1, -1), x
    elif not uses_guidance(cond, guidance):
        context, model_input = cond, x
    else:
        context = torch.cat([uncond.expand(len(x), -1, -1), cond])
        model_input = torch.cat([x, x])
    noise_pred = model.unet(model_input.to(model.dtype), t, encoder_hidden_states=context).sample
    noise_pred = noise_pred.float()
    if uses_guidance(cond, guidance):
        uncond_pred, cond_pred = noise_pred.chunk(2)
        noise_pred = uncond_pred + guidance * (cond_pred - uncond_pred)
    return noise_pred


def chain_callbacks(*callbacks):
    """One step callback that runs ``callbacks`` (None ones skipped) in order.

    Each sees the latents as the ones before it left them.

    Examples
    --------
    >>> seen = []
    >>> double = lambda model, step, t, kwargs: {"latents": kwargs["latents"] * 2}
    >>> record = lambda model, step, t, kwargs: seen.append(kwargs["latents"])
    >>> chain_callbacks(double, None, record)(None, 0, 1, {"latents": 3})
    {'latents': 6}
    >>> seen
    [6]
    """
    callbacks = [callback for callback in callbacks if callback is not None]

    def callback_on_step_end(model, step, timestep, callback_kwargs):
        for callback in callbacks:
            outputs = callback(model, step, timestep, callback_kwargs) or {}
            callback_kwargs = {**callback_kwargs, **outputs}
        return {"latents": callback_kwargs["latents"]}

    return callback_on_step_end


def _initial_latents(init, batch, generators, shape, schedule, seed, image_ids):
    draws = []
    for (j, i), generator in zip(batch, generators, strict=True):
        x0 = None
        if init is not None:
            x0 = init.mean[j]
            if init.std is not None:
                posterior_noise = torch.randn(shape, generator=generator)
                if init.per_image and i > 0:
                    # Sample 0's draw; the sample's own is still made, so that its initial
                    # noise is the one it gets when it samples the posterior itself.
                    first = sample_generator(seed, image_ids[j], 0)
                    posterior_noise = torch.randn(shape, generator=first)
                x0 = x0 + init.std[j] * posterior_noise
        draws.append(schedule.noise(x0, torch.randn(shape, generator=generator)))
    return torch.stack(draws)


@torch.inference_mode()
def run_denoising(
    model,
    init,
    c,
    schedule,
    *,
    guidance,
    eta,
    n_samples,
    seed,
    image_ids,
    batch_size,
    progress,
    callback_on_step_end,
    caller,
):
    """Denoise batches of (image, sample) jobs and return their final latents.

    Parameters
    ----------
    model : StableDiffusion
    init : InitialLatents or None
        What each image's samples start from; None starts every sample from
        pure noise.
    c : tensor of shape (n_images, tokens, hidden_size) or None
        Conditioning; None is the empty prompt.
    schedule : Schedule
    guidance, eta, n_samples, seed, batch_size, progress, callback_on_step_end
        As in :meth:`StableDiffusion.img2img`.
    image_ids : list of int
        Key of each image's generators (:func:`sample_generator`).
    caller : str
        Name of the public method, for messages.

    Returns
    -------
    latents : ndarray of shape (n_images, n_samples, *generation_latent_shape), float32
    """
    guidance = check_number(guidance, "guidance", caller, min_val=0)
    eta = check_number(eta, "eta", caller, min_val=0)
    n_samples = check_int(n_samples, "n_samples", caller, min_val=1)
    batch_size = check_int(batch_size, "batch_size", caller, min_val=1)
    n_images = len(c) if c is not None else len(init.mean)
    jobs = [(j, i) for j in range(n_images) for i in range(n_samples)]
    shape = model.generation_latent_shape
    final = np.zeros((n_images, n_samples) + shape, np.float32)
    with tqdm(total=len(jobs), desc="denoising", unit="sample", disable=not progress) as bar:
        for start in range(0, len(jobs), batch_size):
            batch = jobs[start : start + batch_size]
            rows, samples = [j for j, _ in batch], [i for _, i in batch]
            generators = [sample_generator(seed, image_ids[j], i) for j, i in batch]
            x = _initial_latents(init, batch, generators, shape, schedule, seed, image_ids)
            x = x.to(model.device)
            cond = None if c is None else c[rows].to(model.device, model.dtype)
            for step, t in enumerate(schedule.timesteps):
                noise_pred = predict_noise(model, x, t, cond, guidance)
                x = schedule.scheduler.step(noise_pred, int(t), x, eta=eta, generator=generators)
                x = x.prev_sample
                if callback_on_step_end is not None:
                    callback_kwargs = dict(
                        latents=x, noise_pred=noise_pred, image_indices=rows, sample_indices=samples
                    )
                    outputs = callback_on_step_end(model, step, int(t), callback_kwargs) or {}
                    x = outputs.get("latents", x)
            final[rows, samples] = x.cpu().numpy()
            bar.update(len(rows))
    return final
