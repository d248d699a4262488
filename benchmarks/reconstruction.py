"""Benchmark reconstruction: the batched chain against a batch-1 loop, and the scorer.

Run ``python benchmarks/reconstruction.py`` (``--help`` for the options). It prints,
in one run:

1. toy-model zc images per second of the batched chain (every image and sample
   of a test set through ``StableDiffusion.img2img`` at ``--batch-size``)
   against a loop that runs one image and one sample at a time, as the
   original code does, and the ratio of the two (the target is >= 3x);
2. the identification scorer's images per second per network (AlexNet,
   Inception V3, EfficientNet-B1, SwAV ResNet-50, CLIP ViT-L/14 and the toy
   net), with random weights in the standard file layout, since none can be
   fetched offline (speed does not depend on the weights' values; subnormal
   floats, which random batch norms produce and which CPUs compute slowly,
   are flushed to zero);
3. with ``--sd-shaped``, seconds per zc image of a model with SD v1.4's
   shapes (random components built from configurations, saved and loaded
   back through ``StableDiffusion.from_pretrained``) at ``--sd-batch``, in
   fp16 on a CUDA device, else in float32 on the CPU.

The clock is wall time; CPU time is printed beside it because it is the
fairer clock on shared cores.
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from brainldm.datasets.scenes import make_stimuli
from brainldm.diffusion import StableDiffusion, save_random_model
from brainldm.features.perceptual import NETWORKS
from brainldm.metrics import IdentificationScorer

# One metric per network, so that each forward pass is timed once.
_SCORED = {
    "alexnet": "alexnet5",
    "inception": "inception",
    "efficientnet": "effnet",
    "swav": "swav",
    "clip": "clip",
    "toy": "toy_embedding",
}


def _clock(run):
    """Run ``run()`` and return (wall seconds, CPU seconds)."""
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - wall, time.process_time() - cpu


def _chain(sd, z, c, n_samples, steps, batch_size):
    def batched():
        sd.img2img(z, c, n_samples_per_image=n_samples, steps=steps, batch_size=batch_size)

    def one_at_a_time():
        for image in range(len(z)):
            for sample in range(n_samples):
                sd.img2img(
                    z[image : image + 1],
                    c[image : image + 1],
                    n_samples_per_image=1,
                    steps=steps,
                    batch_size=1,
                    image_ids=[image * n_samples + sample],
                )

    # The first pass of an input shape sets up its kernels: warm both shapes up.
    sd.img2img(z[:batch_size], c[:batch_size], steps=2, batch_size=batch_size)
    sd.img2img(z[:1], c[:1], steps=2, batch_size=1)
    n = len(z) * n_samples
    times = {"batch-1 loop": _clock(one_at_a_time), f"batch {batch_size}": _clock(batched)}
    for name, (wall, cpu) in times.items():
        print(f"  {name:>12}: {n / wall:.2f} images/s ({wall:.1f} s wall, {cpu:.1f} s CPU)")
    (loop_wall, loop_cpu), (wall, cpu) = times.values()
    print(f"  batched / loop: {loop_wall / wall:.1f}x wall, {loop_cpu / cpu:.1f}x CPU")


def _random_weights(folder, networks):
    """Random networks saved under the file names the loaders look for."""
    import torchvision
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    build = {
        "alexnet": lambda: torchvision.models.alexnet(weights=None),
        "inception": lambda: torchvision.models.inception_v3(weights=None, init_weights=False),
        "efficientnet": lambda: torchvision.models.efficientnet_b1(weights=None),
        "swav": lambda: torchvision.models.resnet50(weights=None),
    }
    for network in networks:
        if network in build:
            torch.save(build[network]().state_dict(), folder / NETWORKS[network].file)
        elif network == "clip":
            # ViT-L/14 at 224 px, as openai/clip-vit-large-patch14's vision tower.
            config = CLIPVisionConfig(
                hidden_size=1024,
                intermediate_size=4096,
                num_hidden_layers=24,
                num_attention_heads=16,
                patch_size=14,
                image_size=224,
                projection_dim=768,
            )
            CLIPVisionModelWithProjection(config).save_pretrained(folder / NETWORKS["clip"].file)


def _scorer(networks, n_images, batch_size):
    torch.set_flush_denormal(True)
    originals = make_stimuli(n_images, seed=5).images
    rng = np.random.default_rng(0)
    noisy = np.clip(originals + rng.normal(0, 20, originals.shape), 0, 255).astype(np.uint8)
    with tempfile.TemporaryDirectory() as folder:
        _random_weights(Path(folder), networks)
        for network in networks:
            metric = _SCORED[network]
            scorer = IdentificationScorer(
                [metric],
                suite="toy" if network == "toy" else "braindiffuser",
                weights=folder if network != "toy" else None,
                batch_size=batch_size,
            )
            scorer.score(originals[:2], noisy[:2])  # loads the network, warms it up
            wall, cpu = _clock(lambda s=scorer: s.score(originals, noisy))
            # Both the originals and the reconstructions pass through the network.
            print(
                f"  {network:>12} ({metric}): {2 * n_images / wall:.1f} images/s "
                f"({wall:.1f} s wall, {cpu:.1f} s CPU for {2 * n_images} images)"
            )


def _sd_shaped(batch_size, steps):
    cuda = torch.cuda.is_available()
    device, dtype = ("cuda", "float16") if cuda else ("cpu", None)
    with tempfile.TemporaryDirectory() as folder:
        sd = StableDiffusion.from_pretrained(
            save_random_model(Path(folder) / "sd", "sd-v1-4"), device=device, dtype=dtype
        )
    scenes = make_stimuli(batch_size, seed=7)
    z = sd.encode_images(scenes.images)
    c = sd.encode_text(scenes.captions)
    sd.img2img(z, c, steps=2, batch_size=batch_size)
    wall, cpu = _clock(lambda: sd.img2img(z, c, steps=steps, batch_size=batch_size))
    print(
        f"  {device} {dtype or 'float32'}, batch {batch_size}, {steps} steps: "
        f"{wall / batch_size:.2f} s per zc image ({wall:.1f} s wall, {cpu:.1f} s CPU)"
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-images", type=int, default=8, help="test images of the chain")
    parser.add_argument("--samples", type=int, default=5, help="samples per test image")
    parser.add_argument("--steps", type=int, default=25, help="DDIM steps of the chain")
    parser.add_argument("--batch-size", type=int, default=16, help="batch of the chain")
    parser.add_argument("--score-images", type=int, default=16, help="images scored per network")
    parser.add_argument(
        "--networks", default=",".join(_SCORED), help="comma-separated networks to score"
    )
    parser.add_argument("--sd-shaped", action="store_true", help="time an SD v1.4-shaped model")
    parser.add_argument("--sd-batch", type=int, default=8, help="batch of the SD-shaped chain")
    parser.add_argument("--sd-steps", type=int, default=50, help="steps of the SD-shaped chain")
    args = parser.parse_args(argv)
    networks = [name for name in args.networks.split(",") if name]
    unknown = sorted(set(networks) - set(_SCORED))
    if unknown:
        parser.error(f"unknown networks {unknown}; choose from {sorted(_SCORED)}")

    sd = StableDiffusion.from_pretrained("toy")
    print(f"{sd}, torch threads {torch.get_num_threads()}")
    scenes = make_stimuli(args.n_images, seed=2024)
    z, c = sd.encode_images(scenes.images), sd.encode_text(scenes.captions)
    print(
        f"toy zc chain, {args.n_images} images x {args.samples} samples, {args.steps} steps, "
        "strength 0.8:"
    )
    _chain(sd, z, c, args.samples, args.steps, args.batch_size)

    print(f"scorer, {args.score_images} originals and as many reconstructions, random weights:")
    _scorer(networks, args.score_images, batch_size=32)

    if args.sd_shaped:
        print("SD v1.4-shaped random components, zc img2img, strength 0.8:")
        _sd_shaped(args.sd_batch, args.sd_steps)


if __name__ == "__main__":
    main()
