"""Time and peak memory of mapping NSD-sized volume maps onto fsaverage.

An NSD-sized subject is written in NSD's transform layout: an 81 x 104 x 83 func1pt8mm
volume with about 250,000 brain voxels, native surfaces of 130,000 vertices per
hemisphere at three depths (synthetic coordinates inside the brain), and fsaverage's
163,842 vertices per hemisphere. Run: ``python benchmarks/surface_mapping.py``.
"""

import functools
import tempfile
import time
import tracemalloc
from pathlib import Path

import nibabel as nib
import numpy as np

from brainldm.surface import NSDSurfaceMapper

SHAPE = (81, 104, 83)
N_NATIVE = 130_000
N_FSAVERAGE = 163_842


def _write_subject(root, rng):
    func = Path(root, "nsddata/ppdata/subj01/func1pt8mm")
    func.mkdir(parents=True)
    grid = np.meshgrid(*[(np.arange(n) + 0.5) / n - 0.5 for n in SHAPE], indexing="ij")
    brain = sum((g / 0.44) ** 2 for g in grid) <= 1.0
    nib.Nifti1Image(brain.astype(np.uint8), np.eye(4)).to_filename(func / "brainmask.nii.gz")
    transforms = func.parent / "transforms"
    transforms.mkdir()
    inside = np.argwhere(brain)
    for hemi in ("lh", "rh"):
        base = inside[rng.integers(len(inside), size=N_NATIVE)] + 1.0
        for depth in (1, 2, 3):
            coords = base + rng.uniform(-0.5, 0.5, base.shape)
            coords[rng.random(N_NATIVE) < 0.001] = 9999
            nib.MGHImage(coords[:, None, None, :].astype(np.float32), np.eye(4)).to_filename(
                transforms / f"{hemi}.func1pt8-to-layerB{depth}.mgz"
            )
        index = rng.integers(1, N_NATIVE + 1, N_FSAVERAGE)
        nib.MGHImage(index[:, None, None].astype(np.float32), np.eye(4)).to_filename(
            transforms / f"{hemi}.white-to-fsaverage.mgz"
        )
    return brain


def _measure(step):
    tracemalloc.start()
    start = time.perf_counter()
    result = step()
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return result, seconds, peak / 2**20


def main():
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as root:
        brain = _write_subject(root, rng)
        print(
            f"volume {SHAPE}, {brain.sum():,} brain voxels, {N_NATIVE:,} native and "
            f"{N_FSAVERAGE:,} fsaverage vertices per hemisphere"
        )
        for interpolation, n_maps in (("linear", 100), ("cubic", 20)):
            mapper = NSDSurfaceMapper(root, 1, brain, interpolation=interpolation)
            _, seconds, peak = _measure(mapper.fit)
            print(f"{interpolation:>7} fit: {seconds:6.2f} s, peak {peak:7.0f} MiB")
            for n in (1, n_maps):
                maps = rng.normal(size=(n, brain.sum())).astype(np.float32)
                out, seconds, peak = _measure(functools.partial(mapper.transform, maps))
                print(
                    f"{interpolation:>7} {n:3d} map(s) -> {out.shape}: {seconds:6.2f} s "
                    f"({seconds / n:.3f} s a map), peak {peak:7.0f} MiB"
                )


if __name__ == "__main__":
    main()
