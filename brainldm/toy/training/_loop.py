"""What the training loops share: log lines, optimizer steps and resumable checkpoints.

A loop keeps its state in one :class:`Checkpoint` file: the ``state_dict`` of
each stateful part (model, moving average, optimizer), the states of torch's
global generator and of the loop's numpy generator, the number of steps done
and the seconds spent. A loop restarted from it draws the same batches and
ends with the same weights as one never interrupted.
"""

import time
from pathlib import Path

import numpy as np
import torch

from brainldm._io import atomic_write

__all__ = [
    "Checkpoint",
    "descend",
    "load_state",
    "log",
    "rng_state",
    "run_steps",
    "save_state",
    "set_rng_state",
]


def log(message):
    """Print ``message`` after the time of day, flushed at once."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def save_state(state, path):
    """``torch.save`` ``state`` to ``path`` with :func:`brainldm._io.atomic_write`."""
    return atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_state(path):
    """Load what :func:`save_state` wrote (any pickled object, so only trusted files)."""
    return torch.load(path, weights_only=False)


def rng_state(generator):
    """States of torch's global generator and of the numpy ``generator``."""
    return {"torch": torch.get_rng_state(), "numpy": generator.bit_generator.state}


def set_rng_state(generator, state):
    """Restore the states that :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"])
    generator.bit_generator.state = state["numpy"]


def descend(optimizer, loss, lr, clip_norm=None):
    """One optimizer step on ``loss`` at learning rate ``lr``; return the loss as a float.

    ``clip_norm`` clips the norm of the gradient of all the optimizer's
    parameters together before the step.
    """
    for group in optimizer.param_groups:
        group["lr"] = lr
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if clip_norm is not None:
        parameters = [p for group in optimizer.param_groups for p in group["params"]]
        torch.nn.utils.clip_grad_norm_(parameters, clip_norm)
    optimizer.step()
    return loss.item()


class Checkpoint:
    """The resumable state of one training loop, saved every few minutes.

    Parameters
    ----------
    folder : path-like
        The run folder; the file is ``folder / f"{name}_checkpoint.pt"``.
    name : str
        Name of the loop, in the file name and at the start of its log lines.
    parts : dict of str to object
        What has a ``state_dict`` to save and a ``load_state_dict`` to resume
        (model, moving average, optimizer), under its key in the file.
    generator : numpy.random.Generator
        The loop's generator; torch's global generator is saved beside it.
    every_minutes : float
        Minutes between the end of one save and the next save.

    Attributes
    ----------
    path : pathlib.Path
        The checkpoint file.
    step : int
        Steps done at the latest save or resume.
    elapsed : float
        Seconds of training at the latest save or resume, over all runs.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> import torch
    >>> from brainldm.toy.training._loop import Checkpoint
    >>> folder = tempfile.TemporaryDirectory()
    >>> def checkpoint(model):
    ...     parts = {"model": model}
    ...     return Checkpoint(folder.name, "demo", parts, np.random.default_rng(0), 5.0)
    >>> first = checkpoint(torch.nn.Linear(2, 1))
    >>> first.resume()
    0
    >>> first.start()
    >>> first.due(3, total=3)
    True
    >>> first.save(3)
    >>> model = torch.nn.Linear(2, 1)
    >>> checkpoint(model).resume()  # doctest: +ELLIPSIS
    [...] demo: resumed at step 3
    3
    >>> bool((model.weight == first.parts["model"].weight).all())
    True
    >>> folder.cleanup()
    """

    def __init__(self, folder, name, parts, generator, every_minutes):
        self.path = Path(folder) / f"{name}_checkpoint.pt"
        self.name = name
        self.parts = parts
        self.generator = generator
        self.every_minutes = every_minutes
        self.step, self.elapsed = 0, 0.0
        self._started_at = self._saved_at = None

    def resume(self):
        """Load the file if there is one, into the parts and generators; return the steps done."""
        if self.path.exists():
            state = load_state(self.path)
            for key, part in self.parts.items():
                part.load_state_dict(state[key])
            set_rng_state(self.generator, state["rng"])
            self.step, self.elapsed = state["step"], state["elapsed"]
            log(f"{self.name}: resumed at step {self.step}")
        return self.step

    def start(self):
        """Start the clocks, just before the first step of this run."""
        self._started_at = time.time() - self.elapsed
        self._saved_at = time.time()

    def due(self, step, total):
        """Whether to save after ``step`` steps of ``total``: at the last or when time is up."""
        return step == total or time.time() - self._saved_at > 60 * self.every_minutes

    def save(self, step):
        """Write the state after ``step`` steps, atomically."""
        self.step = step
        self.elapsed = time.time() - self._started_at
        state = {key: part.state_dict() for key, part in self.parts.items()}
        state.update(rng=rng_state(self.generator), step=step, elapsed=self.elapsed)
        save_state(state, self.path)
        self._saved_at = time.time()


def run_steps(checkpoint, total, train_step, report):
    """Run a training loop from the checkpoint's step to ``total``, saving when due.

    Parameters
    ----------
    checkpoint : Checkpoint
        Resumed (or new); it is saved at the last step and every
        ``checkpoint.every_minutes`` minutes.
    total : int
        Steps to have done at the end.
    train_step : callable
        ``train_step(step)`` does step number ``step`` (counted from 0) and
        returns its loss as a float.
    report : callable
        ``report(step, loss)`` returns the line logged after each save, with
        ``loss`` the mean loss since the previous one.

    Returns
    -------
    step : int
        Steps done: ``total``, or more if the checkpoint had more.
    """
    step, losses = checkpoint.step, []
    checkpoint.start()
    while step < total:
        losses.append(train_step(step))
        step += 1
        if checkpoint.due(step, total):
            checkpoint.save(step)
            log(report(step, np.mean(losses)))
            losses = []
    return step
