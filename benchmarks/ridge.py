"""Benchmark brainldm's ridge solver.

Two modes:

``speed``
    Fit time of :class:`brainldm.decoding.LatentDecoder` against himalaya's
    ``RidgeCV(cv=5)`` (numpy backend) and scikit-learn's ``RidgeCV`` on the same
    standardised float32 data, alphas and folds, after checking that the
    predictions agree. Each timing is repeated, interleaved, and the best kept.

``nsd``
    :class:`brainldm.decoding.TextDecoder` on random data of NSD's size (24,980
    trials x 7,000 voxels -> 59,136 targets, float32): wall time and peak
    memory. ``--max-target-batches`` solves only the first batches of targets
    and extrapolates the full time by flop count, and says so.

Run from the repository root::

    nice -n 10 python benchmarks/ridge.py speed      # the default mode
    python benchmarks/ridge.py nsd                   # about 22 minutes on 2 cores
    python benchmarks/ridge.py nsd --max-target-batches 2

``--sizes`` picks the problem sizes of ``speed`` and ``--against himalaya`` leaves
scikit-learn out; ``--scale`` shrinks every dimension of ``nsd``, whose output
compares the measured peak memory with a model of the arrays the fit holds.
"""

import argparse
import resource
import time
import warnings

import numpy as np
from himalaya.backend import set_backend
from himalaya.ridge import RidgeCV as HimalayaRidgeCV
from sklearn.base import clone
from sklearn.linear_model import RidgeCV as SklearnRidgeCV
from sklearn.model_selection import KFold

from brainldm.decoding import LatentDecoder, TextDecoder
from brainldm.ridge import DEFAULT_ALPHAS

NSD_SHAPE = (24_980, 7_000, 59_136)


def make_data(n_samples, n_features, n_targets, seed=0):
    """Standardised float32 X and targets with a planted map and per-target noise."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_samples, n_features), dtype=np.float32)
    X -= X.mean(0)
    X /= X.std(0)
    weights = rng.standard_normal((n_features, n_targets), dtype=np.float32) / np.sqrt(n_features)
    noise = np.logspace(-1, 1, n_targets, dtype=np.float32)
    Y = X @ weights + noise * rng.standard_normal((n_samples, n_targets), dtype=np.float32)
    return X, Y


def relative_error(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def speed(repeats, sizes, against):
    set_backend("numpy")
    alphas = np.asarray(DEFAULT_ALPHAS)
    print(f"alphas: {len(alphas)} values, {alphas[0]:g} .. {alphas[-1]:g}; folds: KFold(5)")
    for n_samples, n_features, n_targets in sizes:
        X, Y = make_data(n_samples, n_features, n_targets)
        X_test, _ = make_data(500, n_features, n_targets, seed=1)
        folds = KFold(n_splits=5)
        batch = 2048
        estimators = {
            "brainldm LatentDecoder, alpha per target, 5-fold": LatentDecoder(
                alphas, cv=folds, n_targets_batch=batch
            ),
            "himalaya RidgeCV, alpha per target, 5-fold": HimalayaRidgeCV(
                alphas,
                fit_intercept=True,
                cv=folds,
                solver_params=dict(n_targets_batch=batch, n_targets_batch_refit=batch),
            ),
            "brainldm LatentDecoder, shared alpha, 5-fold": LatentDecoder(
                alphas, cv=folds, alpha_per_target=False, n_targets_batch=batch
            ),
            "scikit-learn RidgeCV, shared alpha, 5-fold (neg MSE)": SklearnRidgeCV(
                alphas, cv=folds, scoring="neg_mean_squared_error"
            ),
            "scikit-learn RidgeCV, alpha per target, leave-one-out (GCV)": SklearnRidgeCV(
                alphas, alpha_per_target=True
            ),
        }
        if "sklearn" not in against:
            estimators = dict(list(estimators.items())[:2])
        timings = {name: np.inf for name in estimators}
        cpu_times = {name: np.inf for name in estimators}
        models = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            for _ in range(repeats):
                for name, estimator in estimators.items():
                    start, cpu_start = time.perf_counter(), time.process_time()
                    models[name] = clone(estimator).fit(X, Y)
                    timings[name] = min(timings[name], time.perf_counter() - start)
                    cpu_times[name] = min(cpu_times[name], time.process_time() - cpu_start)
        names = list(estimators)
        ours, himalaya = models[names[0]], models[names[1]]
        error = relative_error(ours.predict(X_test), X_test @ himalaya.coef_ + himalaya.intercept_)
        agree = np.mean(ours.best_alphas_ == himalaya.best_alphas_)
        print(f"\nn={n_samples}, p={n_features}, t={n_targets} (best of {repeats})")
        print(
            f"  predictions vs himalaya: relative error {error:.2e}; same alpha for {agree:.1%} of targets"
        )
        if error > 1e-3:
            raise RuntimeError("predictions disagree: the timings compare different models")
        if len(names) > 2:
            error_shared = relative_error(
                models[names[2]].predict(X_test), models[names[3]].predict(X_test)
            )
            print(f"  predictions vs scikit-learn shared alpha: relative error {error_shared:.2e}")
            if error_shared > 1e-3:
                raise RuntimeError("predictions disagree: the timings compare different models")
        print("     wall      CPU")
        for name in names:
            print(f"  {timings[name]:7.2f} s {cpu_times[name]:7.2f} s  {name}")
        # CPU time is the fairer clock when other jobs share the cores; wall time when not.
        ratios = [("himalaya / brainldm (alpha per target, 5-fold)", 1, 0)]
        if len(names) > 2:
            ratios += [
                ("scikit-learn / brainldm (shared alpha, 5-fold)", 3, 2),
                (
                    "scikit-learn leave-one-out (GCV) / brainldm 5-fold, alpha per target "
                    "(different CV schemes)",
                    4,
                    0,
                ),
            ]
        for label, other, ours_index in ratios:
            wall = timings[names[other]] / timings[names[ours_index]]
            cpu = cpu_times[names[other]] / cpu_times[names[ours_index]]
            print(f"  {label}: {wall:.2f}x wall, {cpu:.2f}x CPU")


def fill_standard_normal(array, rng, rows=1024):
    """Fill a float32 array with N(0, 1) in place, a block of rows at a time."""
    for start in range(0, len(array), rows):
        rng.standard_normal(out=array[start : start + rows], dtype=np.float32)


def peak_rss_gib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def memory_model_gib(n_samples, n_voxels, n_targets, n_targets_batch, n_folds=5):
    """Steady-state bytes of a TextDecoder fit, from the arrays the solver holds."""
    n_test = n_samples / n_folds
    arrays = {
        "Y": n_samples * n_targets,
        "X (caller) + X standardised": 2 * n_samples * n_voxels,
        "coef_ (X'Y until the refit)": n_voxels * n_targets,
        "Gram matrix (float64)": 2 * n_voxels**2,
        "one fold's eigenvectors": n_voxels**2,
        "while a fold is decomposed: held-out Gram (float64), float32 copy": 3 * n_voxels**2,
        "one fold's held-out rows and projections": 2 * n_test * n_voxels,
        "one target batch": (n_samples + 3 * n_voxels + 3 * n_test) * n_targets_batch,
    }
    return {name: 4 * size / 2**30 for name, size in arrays.items()}


def fit_flops(n_samples, n_voxels, n_targets, n_alphas, n_folds=5):
    """Multiply-adds x 2 of a fit: the target-independent part and the part per target."""
    n_test = n_samples / n_folds
    fixed = (
        2 * (2 * n_samples * n_voxels**2 + n_samples * n_voxels**2)
        + (n_folds + 1) * 9 * n_voxels**3
    )
    per_target = 2 * (
        n_samples * n_voxels
        + n_folds * (n_test * n_voxels + n_voxels**2 + n_alphas * n_test * n_voxels)
        + 2 * n_voxels**2
    )
    return fixed, per_target


def nsd(max_target_batches, n_targets_batch, scale):
    n_samples, n_voxels, n_targets = (round(size * scale) for size in NSD_SHAPE)
    rng = np.random.default_rng(0)
    X = np.empty((n_samples, n_voxels), dtype=np.float32)
    Y = np.empty((n_samples, n_targets), dtype=np.float32)
    fill_standard_normal(X, rng)
    fill_standard_normal(Y, rng)
    # Image labels as in NSD's train set: each image shown in 3 trials.
    groups = rng.permutation(np.repeat(np.arange(n_samples // 3 + 1), 3)[:n_samples])
    print(
        f"X {X.shape} float32 ({X.nbytes / 2**30:.2f} GiB), Y {Y.shape} float32 "
        f"({Y.nbytes / 2**30:.2f} GiB); peak RSS after creating them: {peak_rss_gib():.2f} GiB"
    )
    n_batches = -(-n_targets // n_targets_batch)
    solved = n_batches if max_target_batches is None else min(max_target_batches, n_batches)
    n_solved = min(n_targets, solved * n_targets_batch)
    decoder = TextDecoder(n_targets_batch=n_targets_batch, progress=True)
    start, cpu_start = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        # Random targets carry no signal: the largest alpha rightly wins.
        warnings.simplefilter("ignore", UserWarning)
        decoder.fit(X, Y[:, :n_solved], groups=groups)
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    peak = peak_rss_gib()
    model = memory_model_gib(n_samples, n_voxels, n_targets, n_targets_batch)
    print("memory model at this size (GiB): " + ", ".join(f"{k} {v:.2f}" for k, v in model.items()))
    print(f"memory model total: {sum(model.values()):.2f} GiB")
    if solved == n_batches:
        print(
            f"TextDecoder fit, all {n_batches} target batches: {elapsed:.0f} s "
            f"({elapsed / 60:.1f} min) wall, {cpu:.0f} s CPU; peak RSS {peak:.2f} GiB (measured)"
        )
        return
    fixed, per_target = fit_flops(n_samples, n_voxels, n_targets, len(decoder.alphas))
    done = fixed + per_target * n_solved
    full = elapsed * (fixed + per_target * n_targets) / done
    missing_coef = (n_targets - n_solved) * n_voxels * 4 / 2**30
    print(
        f"fit on {solved} of {n_batches} target batches ({n_solved} targets): {elapsed:.0f} s "
        f"({done / elapsed / 1e9:.0f} GFLOP/s)"
    )
    print(
        f"EXTRAPOLATED full fit ({n_targets} targets), by flop count at the measured rate: "
        f"{full:.0f} s ({full / 60:.1f} min)"
    )
    print(
        f"peak RSS measured: {peak:.2f} GiB; EXTRAPOLATED full-fit peak adds the coef_ of the "
        f"{n_targets - n_solved} unsolved targets ({missing_coef:.2f} GiB): "
        f"{peak + missing_coef:.2f} GiB"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode")
    speed_parser = sub.add_parser("speed", help="LatentDecoder vs himalaya and scikit-learn")
    speed_parser.add_argument("--repeats", type=int, default=3)
    speed_parser.add_argument(
        "--sizes", default="3000,1500,1500;5000,2000,2000", help="n,p,t triples separated by ';'"
    )
    speed_parser.add_argument(
        "--against", default="himalaya,sklearn", help="'himalaya' or 'himalaya,sklearn'"
    )
    nsd_parser = sub.add_parser("nsd", help="TextDecoder at NSD scale: time and peak memory")
    nsd_parser.add_argument(
        "--max-target-batches",
        type=int,
        default=None,
        help="solve only this many target batches and extrapolate",
    )
    nsd_parser.add_argument("--n-targets-batch", type=int, default=2048)
    nsd_parser.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="shrink every dimension of NSD's size by this factor",
    )
    args = parser.parse_args()
    if args.mode is None:
        args = speed_parser.parse_args([])
    if args.mode != "nsd":
        sizes = [tuple(int(v) for v in size.split(",")) for size in args.sizes.split(";")]
        speed(args.repeats, sizes, args.against.split(","))
    else:
        nsd(args.max_target_batches, args.n_targets_batch, args.scale)


if __name__ == "__main__":
    main()
