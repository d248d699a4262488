"""Train the toy perceptual network shipped in ``brainldm/toy/perceptual/``.

Run ``python -m brainldm.toy.training.perceptual`` (add ``--help`` for the
options). It trains :class:`~brainldm.toy.perceptual.ToyPerceptualNet` with
the sum of the heads' cross-entropies on the 64 px training scenes of
:mod:`brainldm.toy.training.ldm` (20,000 scenes, seed
:data:`~brainldm.toy.TRAINING_SEED`, rendered by its ``data`` stage when
absent), with small Gaussian pixel noise so that the network also names the
slightly soft images a diffusion model generates. No flips: the position head
must tell left from right. It resumes from its checkpoint in ``--run-dir``
when restarted with the same command, then measures the accuracy of every
head on 2,000 held-out scenes (seed :data:`~brainldm.toy.HELD_OUT_SEED`) and
writes ``config.json`` and ``model.safetensors``.

The shipped network was trained with the default settings below (seed 0,
1,500 steps of 128 images, AdamW at 2e-3 with cosine decay) in 28 minutes on
one shared CPU core; its ``config.json`` records them, the minutes, and the
held-out accuracies under ``held_out_accuracy``.
"""

import argparse
import dataclasses
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.utils import Bunch

from brainldm.datasets import scenes
from brainldm.toy import HELD_OUT_SEED, TOY_PERCEPTUAL_PATH
from brainldm.toy.perceptual import ToyPerceptualNet, scene_labels, toy_heads
from brainldm.toy.training._loop import Checkpoint, descend, log, run_steps
from brainldm.toy.training.ldm import Settings as LDMSettings
from brainldm.toy.training.ldm import load_data, stage_data

__all__ = ["Settings", "held_out_accuracy", "main", "train"]


@dataclasses.dataclass
class Settings:
    """Every setting of a training run; recorded in ``config.json``."""

    seed: int = 0
    steps: int = 1500
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 1e-4
    pixel_noise: float = 0.03
    n_held_out: int = 2000
    held_out_seed: int = HELD_OUT_SEED
    checkpoint_minutes: float = 5.0


def _training_labels(data):
    attributes = {k.removeprefix("attr_"): v for k, v in data.items() if k.startswith("attr_")}
    return {k: torch.from_numpy(v) for k, v in scene_labels(Bunch(**attributes)).items()}


@torch.no_grad()
def held_out_accuracy(net, n_images, seed):
    """Fraction of held-out scenes each head names correctly."""
    stim = scenes.make_stimuli(n_images, seed=seed)
    predicted = net.eval().predict(stim.images)
    truth = scene_labels(stim.attributes)
    return {k: float(np.mean(predicted[k] == truth[k])) for k in predicted}


def train(settings, run_dir, out):
    """Train the network on the scenes in ``run_dir`` (rendered when absent); save it to ``out``."""
    run_dir = Path(run_dir)
    stage_data(LDMSettings(), run_dir)
    data = load_data(run_dir)
    images, labels = data["images"], _training_labels(data)
    torch.manual_seed(settings.seed)
    generator = np.random.default_rng(settings.seed)
    net = ToyPerceptualNet(toy_heads())
    optimizer = torch.optim.AdamW(
        net.parameters(), lr=settings.lr, weight_decay=settings.weight_decay
    )
    parts = {"model": net, "optimizer": optimizer}
    checkpoint = Checkpoint(run_dir, "perceptual", parts, generator, settings.checkpoint_minutes)
    checkpoint.resume()
    log(f"perceptual: {sum(p.numel() for p in net.parameters()) / 1e3:.0f}k parameters")

    def train_step(step):
        idx = generator.integers(len(images), size=settings.batch_size)
        x = net.to_tensor(images[idx])
        x = x + settings.pixel_noise * torch.randn_like(x)
        logits = net(x)
        loss = sum(F.cross_entropy(logits[k], labels[k][idx]) for k in logits)
        lr = settings.lr * 0.5 * (1 + math.cos(math.pi * step / settings.steps))
        return descend(optimizer, loss, lr)

    net.train()
    run_steps(
        checkpoint,
        settings.steps,
        train_step,
        lambda step, loss: f"perceptual: step {step}/{settings.steps} loss {loss:.4f}",
    )
    accuracy = held_out_accuracy(net, settings.n_held_out, settings.held_out_seed)
    log(f"perceptual: held-out accuracy {accuracy}")
    net.save_pretrained(
        out,
        toy_world_fingerprint=scenes.stimulus_fingerprint(captions=False),
        held_out_accuracy={k: round(v, 4) for k, v in accuracy.items()},
        training={
            **dataclasses.asdict(settings),
            "minutes": round(checkpoint.elapsed / 60, 1),
            "machine": "1 CPU core, fp32",
            "torch": torch.__version__,
        },
    )
    return net


def main(argv=None):
    """Train and save the network; see ``--help``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", default="runs/toy_ldm", help="checkpoints and data")
    parser.add_argument("--out", default=str(TOY_PERCEPTUAL_PATH), help="output folder")
    parser.add_argument("--steps", type=int, default=Settings.steps)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    train(Settings(steps=args.steps), args.run_dir, args.out)


if __name__ == "__main__":
    main()
