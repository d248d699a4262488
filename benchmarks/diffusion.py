"""Benchmark the img2img chain: per-image cost at batch 1 and 16, and a toy test set.

Run ``python benchmarks/diffusion.py`` (``--help`` for the options). It prints

1. toy img2img images per second at batch 1 and batch 16 (25 DDIM steps,
   the paper's strength 0.8 and guidance 5.0) and the speed-up per image from
   batching;
2. the time to reconstruct a toy test set of 200 images x 5 samples with the
   paper's settings (50 steps), from ``z`` and ``c`` of toy scenes;
3. on a CUDA machine, SD v1.4 in fp16 at batch 1 and 8, if its weights are
   in the Hugging Face cache or ``--sd-path`` names a local folder.
"""

import argparse
import time

import torch

from brainldm.datasets.scenes import make_stimuli
from brainldm.diffusion import StableDiffusion


def _time_img2img(sd, z, c, batch_size, steps):
    """Wall and CPU seconds per image; CPU time is the fairer clock on shared cores."""
    wall, cpu = time.perf_counter(), time.process_time()
    sd.img2img(z, c, steps=steps, batch_size=batch_size)
    if sd.device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - wall) / len(z), (time.process_time() - cpu) / len(z)


def _batching(sd, z, c, batches, steps):
    # Warm up every batch size: the first pass of a new input shape sets up its kernels,
    # which took seconds per image at batch 1 on the CPU.
    for batch in batches:
        sd.img2img(z[:batch], c[:batch], steps=2, batch_size=batch)
    per_image = {batch: _time_img2img(sd, z, c, batch, steps) for batch in batches}
    for batch, (wall, cpu) in per_image.items():
        print(
            f"  batch {batch:>2}: {wall:.3f} s per image ({1 / wall:.2f} images/s), "
            f"CPU {cpu:.3f} s per image"
        )
    first, last = batches[0], batches[-1]
    print(
        f"  speed-up per image from batch {first} to {last}: "
        f"{per_image[first][0] / per_image[last][0]:.1f}x wall, "
        f"{per_image[first][1] / per_image[last][1]:.1f}x CPU"
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="toy", help="model name or folder (default: toy)")
    parser.add_argument("--device", default=None, help="torch device (default: CPU)")
    parser.add_argument("--n-images", type=int, default=32, help="images timed per batch size")
    parser.add_argument("--test-images", type=int, default=200, help="images of the test set")
    parser.add_argument("--samples", type=int, default=5, help="samples per test image")
    parser.add_argument(
        "--sd-path", default="CompVis/stable-diffusion-v1-4", help="SD v1.4 folder or hub id"
    )
    args = parser.parse_args(argv)

    sd = StableDiffusion.from_pretrained(args.model, device=args.device)
    print(f"{sd}, torch threads {torch.get_num_threads()}")
    scenes = make_stimuli(max(args.n_images, args.test_images), seed=2024)
    z = sd.encode_images(scenes.images)
    c = sd.encode_text(scenes.captions)

    print(f"img2img, 25 steps, strength 0.8, {args.n_images} images:")
    _batching(sd, z[: args.n_images], c[: args.n_images], (1, 16), steps=25)

    n = args.test_images
    wall, cpu = time.perf_counter(), time.process_time()
    sd.img2img(z[:n], c[:n], n_samples_per_image=args.samples, steps=50, batch_size=16)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(
        f"test set of {n} images x {args.samples} samples, 50 steps, batch 16: {wall:.1f} s "
        f"({wall / (n * args.samples):.3f} s per sample), CPU {cpu:.1f} s"
    )

    if not torch.cuda.is_available():
        print("SD v1.4 fp16: skipped, no CUDA device")
        return
    try:
        big = StableDiffusion.from_pretrained(args.sd_path, device="cuda", dtype="float16")
    except FileNotFoundError as error:
        print(f"SD v1.4 fp16: skipped, weights not present ({error})")
        return
    z_big = big.encode_images(scenes.images[:16])
    c_big = big.encode_text(scenes.captions[:16])
    print("SD v1.4 fp16 img2img, 50 steps, strength 0.8, 16 images:")
    _batching(big, z_big, c_big, (1, 8), steps=50)


if __name__ == "__main__":
    main()
