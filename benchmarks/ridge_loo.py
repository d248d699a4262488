"""Leave-one-out (``cv="loo"``) against 5-fold cross-validation in the ridge solver.

Two measurements, each run in one process so that the ratios compare like with like:

- ``speed``: ``solve_ridge_cv`` on random float32 data with a planted map (default
  2,000 rows x 1,600 features -> 2,000 targets, 11 alphas), with ``cv=5`` and
  ``cv="loo"``: wall time, the number of eigendecompositions, and how often the two
  choose the same alpha.
- ``toy``: ``VoxelwiseEncoder`` on a toy world's subj01 (training trials averaged per
  image, so one row per image, where leave-one-out is exact), from the world's
  ground-truth features, with ``cv=5`` and ``cv="loo"``: fit time, the fraction of
  voxels with the same alpha, and the median |delta r| on the held-out images.

``python benchmarks/ridge_loo.py speed`` and ``python benchmarks/ridge_loo.py toy
[--toy-root FOLDER]`` (a toy world is made in a temporary folder when none is given).
"""

import argparse
import tempfile
import time
import warnings

import numpy as np

from brainldm import ridge
from brainldm.datasets.nsd import load_nsd
from brainldm.datasets.toy import load_toy_ground_truth, make_toy_nsd
from brainldm.encoding import VoxelwiseEncoder


def count_decompositions(run):
    """Call ``run()`` and return its result, its wall time and its eigendecompositions."""
    original, calls = ridge._eigh, []

    def counting(matrix, dtype):
        calls.append(matrix.shape)
        return original(matrix, dtype)

    ridge._eigh = counting
    try:
        start = time.perf_counter()
        result = run()
        return result, time.perf_counter() - start, len(calls)
    finally:
        ridge._eigh = original


def speed(n_samples, n_features, n_targets, seed=0):
    """Time solve_ridge_cv with cv=5 and cv='loo' on one planted problem."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_samples, n_features), dtype=np.float32)
    weights = rng.standard_normal((n_features, n_targets), dtype=np.float32)
    weights *= rng.uniform(0.0, 0.1, n_targets).astype(np.float32)
    Y = X @ weights + rng.standard_normal((n_samples, n_targets), dtype=np.float32)
    results = {}
    for cv in (5, "loo"):
        results[cv] = count_decompositions(lambda cv=cv: ridge.solve_ridge_cv(X, Y, cv=cv))
        _, seconds, decompositions = results[cv]
        print(f"cv={cv!r:6} {seconds:7.2f} s, {decompositions} eigendecompositions")
    same = np.mean(results[5][0].best_alphas == results["loo"][0].best_alphas)
    print(
        f"{n_samples} x {n_features} -> {n_targets}, float32, 11 alphas: 5-fold / loo time "
        f"{results[5][1] / results['loo'][1]:.2f}x, decompositions {results[5][2]} / "
        f"{results['loo'][2]}; same alpha for {same:.1%} of the targets"
    )


def toy(root):
    """Fit the encoder on a toy subject with cv=5 and cv='loo' and compare."""
    if root is None:
        root = make_toy_nsd(tempfile.mkdtemp() + "/nsd", subjects=("subj01",), progress=False)
    data = load_nsd(root, 1, average_train=True)
    features = load_toy_ground_truth(root, 1).features.astype(np.float32)
    X, X_test = features[data.images_train], features[data.images_test]
    fits = {}
    for cv in (5, "loo"):
        encoder = VoxelwiseEncoder(cv=cv, n_components=None)
        start = time.perf_counter()
        encoder.fit(X, data.X_train)
        seconds = time.perf_counter() - start
        fits[cv] = (encoder, seconds, encoder.score_voxels(X_test, data.X_test))
        print(f"cv={cv!r:6} {seconds:7.2f} s, median held-out r {np.nanmedian(fits[cv][2]):.4f}")
    same = np.mean(fits[5][0].best_alphas_ == fits["loo"][0].best_alphas_)
    delta = np.abs(fits[5][2] - fits["loo"][2])
    print(
        f"toy subj01, {X.shape[0]} images x {X.shape[1]} features -> {data.X_train.shape[1]} "
        f"voxels: 5-fold / loo time {fits[5][1] / fits['loo'][1]:.2f}x; same alpha for "
        f"{same:.1%} of the voxels; |delta r| median {np.nanmedian(delta):.2e}, "
        f"99th percentile {np.nanpercentile(delta, 99):.2e}, max {np.nanmax(delta):.2e}"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["speed", "toy"])
    parser.add_argument("--size", default="2000,1600,2000", help="n_samples,n_features,n_targets")
    parser.add_argument("--toy-root", default=None, help="a toy world made by make_toy_nsd")
    args = parser.parse_args()
    # The edges of the default grid win for targets without signal; that is expected here.
    warnings.filterwarnings("ignore", "the (smallest|largest) alpha", UserWarning)
    if args.mode == "speed":
        speed(*(int(size) for size in args.size.split(",")))
    else:
        toy(args.toy_root)


if __name__ == "__main__":
    main()
