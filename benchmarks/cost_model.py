"""How close the run-time estimate of ``brainldm.workflows.estimate_encode`` comes to timed runs.

Times two small real runs on one thread (the representation encoders: 300 x 3,000
voxels, 100 components; one [z, z_c] partition: 300 x 1,000 voxels, ``n_iter=4``)
against the seconds the plan gives for the same shapes, and prints each ratio.
The documented accuracy (docs/workflows.md) is "within 3x on small runs, 1.4-2x high
on the toy world's full run". Timings on a machine shared with other work vary by
up to 2x between runs, so this is a benchmark and not a test.

    python benchmarks/cost_model.py
"""

import time
import warnings

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from brainldm.encoding import noise_levels, representations
from brainldm.workflows import estimate_encode
from brainldm.workflows._cost import gemm_rate


def timed_against_plan(run, rows, **shapes):
    """Seconds of ``run()`` and the plan's seconds for ``rows``, one thread each."""
    with threadpool_limits(1):
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            gemm_rate.cache_clear()
            plan = estimate_encode(**shapes)
            start = time.perf_counter()
            run()
            measured = time.perf_counter() - start
        finally:
            torch.set_num_threads(threads)
            gemm_rate.cache_clear()
    return measured, float(plan.set_index("stage").loc[list(rows), "seconds"].sum())


def world(n_train, n_test, n_voxels, dims, seed=0):
    rng = np.random.default_rng(seed)
    spaces = [rng.standard_normal((n_train + n_test, d)).astype(np.float32) for d in dims]
    X = rng.standard_normal((n_train + n_test, n_voxels)).astype(np.float32)
    return X[:n_train], X[n_train:], spaces


def main():
    warnings.filterwarnings("ignore", message="the (smallest|largest) alpha")
    # The toy model's z has 4 x 16 x 16 values and c 77 x 128.
    X_train, X_test, (z, c, zc) = world(300, 60, 3000, (1024, 9856, 1024))
    encoders = timed_against_plan(
        lambda: representations(X_train, X_test, {"z": z, "c": c, "zc": zc}, n_components=100),
        ("pca", "representations"),
        analyses=["representations"],
        n_train=300,
        n_test=60,
        n_voxels=3000,
        n_components=100,
    )
    X_train, X_test, (z, zc) = world(300, 60, 1000, (1024, 1024), seed=1)
    partition = timed_against_plan(
        lambda: noise_levels(X_train, X_test, z, {0.8: zc}, n_components=60, n_iter=4),
        ("pca", "noise_levels"),
        analyses=["noise_levels"],
        strengths=[0.8],
        n_train=300,
        n_test=60,
        n_voxels=1000,
        n_components=60,
        n_iter=4,
    )
    print(f"{'run':<34}{'measured s':>12}{'estimated s':>13}{'estimate/measured':>19}")
    for name, (measured, estimated) in (
        ("representation encoders", encoders),
        ("one [z, z_c] partition, n_iter=4", partition),
    ):
        print(f"{name:<34}{measured:>12.2f}{estimated:>13.2f}{estimated / measured:>19.2f}")


if __name__ == "__main__":
    main()
