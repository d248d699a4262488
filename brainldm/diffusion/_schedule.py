"""The noise-schedule policy: the DDIM timesteps a run denoises, and the one it noises to.

img2img at ``strength`` runs the last ``int(strength * steps)`` timesteps of
a ``steps``-step DDIM schedule. Where the initial latent is noised to is a
policy: ``"takagi2023"``, the original CompVis sampler, noises to the DDIM
timestep above the first one denoised (and starts from pure noise at strength
1); ``"diffusers"`` noises to the first timestep denoised, as diffusers'
img2img pipeline does.
"""

from typing import Any, NamedTuple

import torch

from brainldm._validation import check_int, check_number, check_options

__all__ = ["NOISE_SCHEDULES", "Schedule", "plan_schedule"]

NOISE_SCHEDULES = ("takagi2023", "diffusers")
"""How img2img noises its initial latent (see :meth:`StableDiffusion.img2img`)."""


class Schedule(NamedTuple):
    """One run's scheduler, the timesteps it denoises, and the timestep it noises to."""

    scheduler: Any
    """A fresh copy of the model's DDIM scheduler, its timesteps set for this run."""
    timesteps: torch.Tensor
    """The timesteps denoised, in order."""
    noise_timestep: int | None
    """The timestep whose ``alphas_cumprod`` noises the initial latent; None: pure noise."""

    def noise(self, x0, noise):
        """The initial latent: ``x0`` noised to :attr:`noise_timestep`, or pure noise.

        Examples
        --------
        >>> from diffusers import DDIMScheduler
        >>> plan = plan_schedule(DDIMScheduler(), 10, 1.0, "takagi2023", "img2img")
        >>> plan.noise_timestep is None, float(plan.noise(torch.ones(1), torch.zeros(1))[0])
        (True, 0.0)
        """
        if x0 is None or self.noise_timestep is None:
            return noise * self.scheduler.init_noise_sigma
        alpha = self.scheduler.alphas_cumprod[self.noise_timestep]
        return alpha.sqrt() * x0 + (1 - alpha).sqrt() * noise


def plan_schedule(scheduler, steps, strength, noise_schedule, caller):
    """The :class:`Schedule` of a run of ``strength`` over a ``steps``-step DDIM schedule.

    Parameters
    ----------
    scheduler : diffusers.DDIMScheduler
        The model's scheduler; it is copied, never changed, so that runs do
        not share the timesteps they set.
    steps, strength, noise_schedule
        As in :meth:`StableDiffusion.img2img`.
    caller : str
        Name of the public method, for messages.

    Examples
    --------
    >>> from diffusers import DDIMScheduler
    >>> ddim = DDIMScheduler(steps_offset=1)
    >>> plan = plan_schedule(ddim, 50, 0.8, "takagi2023", "img2img")
    >>> plan.noise_timestep, plan.timesteps[[0, -1]].tolist()
    (801, [781, 1])
    >>> plan_schedule(ddim, 50, 0.8, "diffusers", "img2img").noise_timestep
    781
    """
    steps = check_int(steps, "steps", caller, min_val=1)
    strength = check_number(strength, "strength", caller, min_val=0, max_val=1, closed="right")
    check_options(noise_schedule, "noise_schedule", caller, NOISE_SCHEDULES)
    n_run = int(steps * strength)
    if n_run < 1:
        raise ValueError(
            f"strength={strength} with steps={steps} runs int(strength * steps) = 0 denoising "
            "steps; raise strength or steps"
        )
    run = type(scheduler).from_config(scheduler.config)
    run.set_timesteps(steps)
    first = steps - n_run
    if noise_schedule == "diffusers":
        noise_timestep = int(run.timesteps[first])
    else:
        noise_timestep = None if first == 0 else int(run.timesteps[first - 1])
    return Schedule(run, run.timesteps[first:], noise_timestep)
