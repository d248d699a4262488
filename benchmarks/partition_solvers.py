"""Time BandedVariancePartitioner's two solvers where the bands have more features than rows.

Fits :class:`~brainldm.encoding.BandedVariancePartitioner` twice on the same random float32
data (two bands, a planted map, noise), once with ``solver="primal"`` (himalaya's random
search) and once with ``solver="dual"`` (the kernel form), with the same folds, alphas and
band weightings, and prints in one run each fit's seconds, their ratio, and how far apart
the two fits are: the largest absolute difference of ``coef_`` and of ``cv_scores_``
(relative to the largest value), and whether every voxel chose the same band weighting and
alpha. The joint model and, with ``--reduced``, each band alone are fitted.

    python benchmarks/partition_solvers.py [ROWS FEATURES_PER_BAND VOXELS N_ITER] [--reduced]

Defaults: 1,000 rows, two bands of 1,600 features, 256 voxels, 4 band weightings (NSD's
shape is 8,859 rows, 2 x 6,400 components, about 15,700 voxels and 100 weightings).
"""

import argparse
import time
import warnings

import numpy as np

from brainldm.encoding import BandedVariancePartitioner
from brainldm.ridge import DEFAULT_ALPHAS


def make_data(n_rows, width, n_voxels, seed=0):
    """Two float32 bands side by side; a third of the voxels see each band, a third both."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_rows, 2 * width), dtype=np.float32)
    weights = rng.standard_normal((2 * width, n_voxels), dtype=np.float32) / np.sqrt(width)
    third = n_voxels // 3
    weights[width:, :third] = 0
    weights[:width, third : 2 * third] = 0
    noise = np.logspace(-0.5, 0.5, n_voxels, dtype=np.float32)
    Y = X @ weights + noise * rng.standard_normal((n_rows, n_voxels), dtype=np.float32)
    return X, Y


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", type=int, nargs="*", default=[1000, 1600, 256, 4])
    parser.add_argument("--reduced", action="store_true", help="also fit each band alone")
    args = parser.parse_args(argv)
    n_rows, width, n_voxels, n_iter = (args.sizes + [1000, 1600, 256, 4][len(args.sizes) :])[:4]
    X, Y = make_data(n_rows, width, n_voxels)
    print(
        f"{n_rows} rows x 2 bands of {width} features (float32), {n_voxels} voxels, "
        f"{n_iter} band weightings, {len(DEFAULT_ALPHAS)} alphas, KFold(5), "
        f"reduced models: {args.reduced}"
    )
    fits, seconds = {}, {}
    for solver in ("primal", "dual"):
        model = BandedVariancePartitioner(
            bands={"a": width, "b": width},
            n_components=None,
            n_iter=n_iter,
            reduced_models=args.reduced,
            solver=solver,
        )
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Solving banded ridge is slower")
            fits[solver] = model.fit(X, Y)
        seconds[solver] = time.perf_counter() - start
    primal, dual = fits["primal"], fits["dual"]
    print(f"{'solver':<8}{'fit (s)':>10}")
    for solver, value in seconds.items():
        print(f"{solver:<8}{value:>10.1f}")
    print(f"primal / dual: {seconds['primal'] / seconds['dual']:.1f}x")
    coef = np.abs(dual.coef_ - primal.coef_).max()
    scores = np.abs(dual.cv_scores_ - primal.cv_scores_).max()
    print(
        f"max |coef_ dual - primal| = {coef:.2e} "
        f"({coef / np.abs(primal.coef_).max():.1e} of the largest)"
    )
    print(
        f"max |cv_scores_ dual - primal| = {scores:.2e} "
        f"({scores / np.abs(primal.cv_scores_).max():.1e} of the largest)"
    )
    same = np.allclose(dual.deltas_, primal.deltas_, rtol=1e-5)
    print(f"same band weighting and alpha for every voxel: {same}")


if __name__ == "__main__":
    main()
