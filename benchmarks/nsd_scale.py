"""The encoding analyses at NSD's sizes: what one subject costs on this machine, and where.

NSD per subject: 8,859 training images (one row per image once the trials are averaged),
982 test images, 6,400 PCA components per feature space, 15,724 nsdgeneral voxels
(about 250,000 for the whole brain). The set of analyses is (i) three
``VoxelwiseEncoder`` (z, c, z_c), (ii) four [z, z_c] ``BandedVariancePartitioner`` (one
per img2img strength), (iii) three more (one per denoising stage) and (iv) fifteen
layer encoders, all on 6,400 components.

Synthetic data of those shapes (float32, a planted rank-32 signal under noise, so that
alphas are chosen inside the grid; Y memory-mapped from a temporary ``.npy``) and three
kinds of measurement, each printed with what is measured and what is extrapolated:

- per-voxel work, at the full shapes: the real estimators and solver functions, run
  once on ``--voxels`` voxels; the time spent in the steps that work on a batch of
  voxels is the cost per voxel, the rest the fixed cost (each timed once). Every
  eigendecomposition in them is replaced by a stand-in of the same shapes (identity
  eigenvectors) and counted, because one of them at full size takes a minute here;
- decompositions: ``eigh`` (numpy float64, the dual partition; torch float32, the
  ridge) and Cholesky (the dual refit) timed once at ``--decomposition-size`` rows and
  scaled by n³ to the sizes counted above;
- a real run of both partition solvers, ``solver="dual"`` and ``"primal"`` (himalaya's
  ``GroupRidgeCV``), with the same weightings and folds, at ``--check-scale`` of NSD's
  rows and features: the measured primal/dual ratio and the number of (weighting,
  alpha) pairs the dual refit factorises, which the extrapolation uses.

Peak memory: ``tracemalloc`` (numpy's allocations; torch's are not traced) and the
process's ``ru_maxrss`` after each step (a running maximum).

    python benchmarks/nsd_scale.py            # full shapes, about 10-15 minutes on 2 cores
    python benchmarks/nsd_scale.py --quick    # a quarter of the rows and features, ~1-2 min

``--rows`` and ``--features`` scale NSD's rows and features, ``--voxels`` sets the voxel
subset. Targets: the whole set on nsdgeneral in under an hour, the partition at least 3x
faster than himalaya's, the per-voxel work at 50% or more of the GEMM rate.
"""

import argparse
import resource
import tempfile
import time
import tracemalloc
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from himalaya.ridge import RidgeCV as HimalayaRidgeCV
from sklearn.model_selection import KFold

from brainldm import ridge
from brainldm.encoding import BandedVariancePartitioner, VoxelwiseEncoder
from brainldm.encoding import _partition as partition_module
from brainldm.ridge import DEFAULT_ALPHAS, cv_splits

N_TRAIN, N_TEST, N_COMPONENTS = 8859, 982, 6400
NSDGENERAL, WHOLE_BRAIN = 15_724, 250_000
N_ITER, N_FOLDS, N_ALPHAS = 20, 5, len(DEFAULT_ALPHAS)
N_ENCODERS = 3 + 15  # (i) and (iv)
N_PARTITIONS = 4 + 3  # (ii) and (iii)


def seconds(function):
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


@contextmanager
def measured(label, log):
    """Time the block and record its tracemalloc peak and the process's maxrss after it."""
    tracemalloc.reset_peak()
    start = time.perf_counter()
    yield
    wall = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] / 2**30
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    log.append((label, wall, peak, rss))
    print(f"  [{label}: {wall:.1f} s, traced peak {peak:.2f} GiB, maxrss {rss:.2f} GiB]")


def gemm_rates(size=2048):
    """Float32 (torch) and float64 (numpy) matrix-product FLOP/s, best of three."""
    a32 = torch.randn(size, size)
    a64 = np.random.default_rng(0).standard_normal((size, size))
    rates = {}
    for name, product in (("float32", lambda: a32 @ a32), ("float64", lambda: a64 @ a64)):
        product()
        rates[name] = 2 * size**3 / min(seconds(product)[0] for _ in range(3))
    return rates


def decomposition_constants(n):
    """Seconds per n³ of numpy float64 eigh (the dual partition) and torch float32 eigh (the ridge)."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((n, n + 10))
    kernel = x @ x.T
    kernel32 = torch.from_numpy(kernel).float()
    runs = {
        "eigh64": lambda: np.linalg.eigh(kernel),
        "eigh32": lambda: torch.linalg.eigh(kernel32),
    }
    constants = {}
    for kind, run in runs.items():
        run()  # the first call starts thread pools: the best of two after it
        constants[kind] = min(seconds(run)[0] for _ in range(2)) / n**3
    return constants


def make_subject(n_rows, n_features, n_voxels, folder, seed=0, rank=32):
    """z, z_c (one row per image), and Y (train rows) memory-mapped from a .npy file."""
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n_rows, rank), dtype=np.float32)
    bands = []
    for _ in range(2):
        mixing = rng.standard_normal((rank, n_features), dtype=np.float32)
        band = latent @ mixing / np.float32(np.sqrt(rank))  # float32, as the analyses' scores
        band += rng.standard_normal(band.shape, dtype=np.float32)
        bands.append(band)
    weights = rng.standard_normal((rank, n_voxels), dtype=np.float32)
    weights *= np.logspace(-1.5, 0, n_voxels, dtype=np.float32)
    path = Path(folder) / "Y.npy"
    Y = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n_rows, n_voxels))
    Y[:] = latent @ weights + rng.standard_normal((n_rows, n_voxels), dtype=np.float32)
    Y.flush()
    del Y
    return bands[0], bands[1], np.load(path, mmap_mode="r")


@contextmanager
def stand_in_decompositions():
    """Replace the eigendecompositions of the ridge and the dual partition by identity
    eigenvectors (same shapes), and record each one's size."""
    sizes = []
    ridge_eigh, partition_eigh = ridge._eigh, partition_module._eigh

    def ridge_stand_in(matrix, dtype):
        sizes.append(("eigh32", matrix.shape[0]))
        values = matrix.diagonal().to(dtype).clamp(min=0)
        return values, torch.eye(matrix.shape[0], dtype=dtype)

    def partition_stand_in(kernel):
        sizes.append(("eigh64", kernel.shape[0]))
        return np.diag(kernel).copy(), np.eye(len(kernel))

    ridge._eigh, partition_module._eigh = ridge_stand_in, partition_stand_in
    try:
        yield sizes
    finally:
        ridge._eigh, partition_module._eigh = ridge_eigh, partition_eigh


@contextmanager
def timed_methods(owner, names, log):
    """Add the seconds spent in ``owner``'s methods ``names`` (the per-voxel work) to log[0]."""
    originals = {name: getattr(owner, name) for name in names}

    def wrap(method):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                log[0] += time.perf_counter() - start

        return timed

    for name, method in originals.items():
        setattr(owner, name, wrap(method))
    try:
        yield
    finally:
        for name, method in originals.items():
            setattr(owner, name, method)


@contextmanager
def timed_batches():
    """Time the body of every loop over batches of voxels in the partition solver.

    The solver's loops draw their batches from ``target_batches``; the time between a
    batch given and the next one asked for is that batch's work. Yields a one-item list
    holding the sum.
    """
    total = [0.0]
    original = partition_module.target_batches

    def timed(*args, **kwargs):
        for batch in original(*args, **kwargs):
            start = time.perf_counter()
            yield batch
            total[0] += time.perf_counter() - start

    partition_module.target_batches = timed
    try:
        yield total
    finally:
        partition_module.target_batches = original


# The ridge's work per batch of targets: everything else in a fit is fixed cost.
PER_TARGET_METHODS = ("load", "cross", "score", "score_leave_one_out", "refit")


def ridge_encoder(X, Y, cv, n_voxels, constants):
    """VoxelwiseEncoder on PCA-sized features: fixed, per-voxel and decomposition seconds.

    One fit: the time in the methods that work on a batch of targets is the per-voxel
    cost, the rest of the fit the fixed cost (timed once).
    """
    per_target = [0.0]
    with (
        stand_in_decompositions() as sizes,
        timed_methods(ridge._Problem, PER_TARGET_METHODS, per_target),
    ):
        total, _ = seconds(
            lambda: VoxelwiseEncoder(cv=cv, n_components=None, standardize=False).fit(X, Y)
        )
    fixed, per_voxel = total - per_target[0], per_target[0] / n_voxels
    decompositions = sum(constants[kind] * n**3 for kind, n in sizes)
    n, p = X.shape
    folds = 1 if cv == "loo" else cv
    n_test = n // folds
    # Per voxel: X'Y; per fold V'X'Y, the residual of every alpha; the refit's two products.
    flops = 2 * n * p + folds * (2 * p * p + 2 * N_ALPHAS * n_test * p) + 4 * p * p
    if cv == "loo":  # the primal leave-one-out residual: (X V) times the projection, per alpha
        flops = 2 * n * p + 2 * p * p + N_ALPHAS * 2 * n * p + 4 * p * p
    return dict(fixed=fixed, per_voxel=per_voxel, decompositions=decompositions, flops=flops)


def dual_partition_parts(z, zc, Y, n_voxels, constants):
    """The dual solver's parts at full shape: kernels, one fold and weighting, the refit.

    Each part runs once on ``n_voxels``: the time inside its loops over batches of voxels
    is the per-voxel cost, the rest (the fold's kernels and their product with the
    eigenvectors; the refit's Cholesky factorization) the fixed cost.
    """
    bands = [(b - b.mean(0)).astype(np.float64) for b in (z, zc)]
    t_kernel, kernels = seconds(lambda: [band @ band.T for band in bands])
    splits = cv_splits(N_FOLDS, len(z))
    train, test = splits[0]
    weighting = np.array([0.5, 0.5])
    kernel = partition_module._weighted_kernel(weighting, kernels)
    options = {
        "score_func": partition_module.l2_neg_loss,
        "n_targets_batch": 2048,
        "n_alphas_batch": None,
    }
    y = np.array(Y[:, :n_voxels])
    with stand_in_decompositions(), timed_batches() as fold_per_voxel:
        fold_total, _ = seconds(
            lambda: partition_module._dual_fold_scores(
                kernel, y, [(train, test)], np.asarray(DEFAULT_ALPHAS, float), options
            )
        )
    with timed_batches() as refit_per_voxel:
        refit_total, _ = seconds(
            lambda: partition_module._dual_refit(
                kernels,
                bands,
                y,
                weighting[None],
                np.zeros(n_voxels, int),
                np.full(n_voxels, 1e3),
                2048,
            )
        )
    fold_fixed = fold_total - fold_per_voxel[0]
    refit_fixed = refit_total - refit_per_voxel[0]
    n, n_train, n_test, k = len(z), len(train), len(test), z.shape[1]
    return dict(
        kernel=t_kernel / 2,  # one band's
        fold_fixed=fold_fixed,
        fold_per_voxel=fold_per_voxel[0] / n_voxels,
        fold_eigh=constants["eigh64"] * n_train**3,
        refit_fixed=refit_fixed,  # one Cholesky and its setup
        refit_per_voxel=refit_per_voxel[0] / n_voxels,
        fold_flops=2 * n_train * n_train + N_ALPHAS * 2 * n_test * n_train,
        refit_flops=2 * n * n + 2 * 2 * k * n,
    )


def partition_seconds(parts, n_voxels, pairs, reuse=False):
    """One [z, z_c] partition: joint model (N_ITER weightings), z alone, z_c alone."""
    per_fold = parts["fold_fixed"] + parts["fold_eigh"] + parts["fold_per_voxel"] * n_voxels
    refit = parts["refit_per_voxel"] * n_voxels
    joint = 2 * parts["kernel"] + N_ITER * N_FOLDS * per_fold + pairs * parts["refit_fixed"] + refit
    alone = parts["kernel"] + N_FOLDS * per_fold + parts["refit_fixed"] + refit
    if reuse:  # the joint model reuses both bands' kernels; z alone is shared by all partitions
        return joint, alone - parts["kernel"]
    return joint + 2 * alone, alone


def check_solvers(scale, n_voxels, n_iter, folder):
    """Both partition solvers, really run, on NSD's shape scaled by `scale`."""
    n, k = int(N_TRAIN * scale), int(N_COMPONENTS * scale)
    z, zc, Y = make_subject(n, k, n_voxels, folder, seed=2)
    X, Y = np.hstack([z, zc]), np.asarray(Y)
    fits, times = {}, {}
    for solver in ("dual", "primal"):
        model = BandedVariancePartitioner(
            bands={"z": k, "zc": k},
            n_components=None,
            standardize=False,
            n_iter=n_iter,
            solver=solver,
        )
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Solving banded ridge is slower")
            times[solver], fits[solver] = seconds(lambda model=model: model.fit(X, Y))
    # The encoder beside himalaya's RidgeCV (alpha per target, the same unshuffled 5 folds).
    folds = KFold(n_splits=N_FOLDS)
    encoders = {
        "brainldm": VoxelwiseEncoder(cv=folds, n_components=None, standardize=False),
        "himalaya": HimalayaRidgeCV(
            np.asarray(DEFAULT_ALPHAS),
            fit_intercept=True,
            cv=folds,
            solver_params=dict(n_targets_batch=2048, n_targets_batch_refit=2048),
        ),
    }
    encoder_fits = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for name, encoder in encoders.items():
            times[f"encoder {name}"], encoder_fits[name] = seconds(
                lambda encoder=encoder: encoder.fit(z, Y)
            )
    ours, theirs = encoder_fits["brainldm"], encoder_fits["himalaya"]
    encoder_same = np.mean(np.isclose(ours.best_alphas_, theirs.best_alphas_, rtol=1e-3))
    joint = fits["dual"].models_[("z", "zc")]
    pairs = len(
        {(tuple(np.round(d, 6)), a) for d, a in zip(joint.deltas.T, joint.best_alphas, strict=True)}
    )
    same = np.mean(np.isclose(fits["dual"].best_alphas_, fits["primal"].best_alphas_, rtol=1e-3))
    return dict(
        n=n,
        k=k,
        times=times,
        pairs=pairs,
        same=same,
        encoder_same=encoder_same,
        edge=np.mean(np.isin(fits["dual"].best_alphas_, np.asarray(DEFAULT_ALPHAS)[[0, -1]])),
    )


def rate(flops, per_voxel):
    return flops / per_voxel if per_voxel > 0 else float("nan")


def hours(value):
    return f"{value / 3600:8.2f} h" if value >= 360 else f"{value:8.0f} s"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a quarter of the rows/features")
    parser.add_argument("--rows", type=float, default=None, help="scale of NSD's rows")
    parser.add_argument("--features", type=float, default=None, help="scale of 6,400 features")
    parser.add_argument("--voxels", type=int, default=None, help="voxel subset (default 512)")
    parser.add_argument("--decomposition-size", type=int, default=None)
    parser.add_argument("--check-scale", type=float, default=None)
    args = parser.parse_args(argv)
    quick = args.quick
    rows = args.rows or (0.25 if quick else 1.0)
    features = args.features or (0.25 if quick else 1.0)
    n_voxels = args.voxels or (512 if quick else 1024)
    size = args.decomposition_size or (800 if quick else 2000)
    check_scale = args.check_scale or (0.06 if quick else 0.12)
    n_iter = 4 if quick else N_ITER
    n, k = int(N_TRAIN * rows), int(N_COMPONENTS * features)
    warnings.filterwarnings("ignore", message="the (smallest|largest) alpha")
    tracemalloc.start()
    log = []
    print(f"{n} rows x {k} features per band, {n_voxels} voxels, {torch.get_num_threads()} threads")
    with measured("GEMM rates", log):
        rates = gemm_rates()
    print(
        f"GEMM: float32 {rates['float32'] / 1e9:.1f} GFLOP/s (torch), "
        f"float64 {rates['float64'] / 1e9:.1f} GFLOP/s (numpy)"
    )
    with measured(f"decompositions at n={size}", log):
        constants = decomposition_constants(size)
    for kind, value in constants.items():
        print(
            f"  {kind}: {value * size**3:.2f} s at n={size} "
            f"-> {value * 8859**3:.0f} s at 8,859, {value * 7087**3:.0f} s at 7,087"
        )
    with tempfile.TemporaryDirectory() as folder:
        z, zc, Y = make_subject(n, k, n_voxels, folder)
        encoders = {}
        for cv in (5, "loo"):
            with measured(f"VoxelwiseEncoder cv={cv!r}", log):
                encoders[cv] = ridge_encoder(z, Y, cv, n_voxels, constants)
        with measured("dual partition parts", log):
            parts = dual_partition_parts(z, zc, Y, n_voxels, constants)
        del Y
        with measured(f"both solvers at {check_scale} of NSD", log):
            check = check_solvers(check_scale, n_voxels // 4, n_iter, folder)
    # The machine's rate, measured again after the work: the best of both runs, so that a
    # busy moment at the start does not flatter the ratios.
    again = gemm_rates()
    rates = {kind: max(rates[kind], again[kind]) for kind in rates}
    print(
        f"GEMM again: float32 {again['float32'] / 1e9:.1f}, float64 {again['float64'] / 1e9:.1f}"
        " GFLOP/s; the ratios below use the better of each"
    )
    report(rates, encoders, parts, check, n_voxels, n_iter, scaled=(rows, features) != (1, 1))
    memory_report(log, n, k, n_voxels)


def report(rates, encoders, parts, check, n_voxels, n_iter, scaled=False):
    print("\nMeasured (full shapes above; decompositions from n³ scaling):")
    for cv, e in encoders.items():
        achieved = rate(e["flops"], e["per_voxel"])
        print(
            f"  encoder cv={cv!r}: fixed {e['fixed']:.1f} s + decompositions "
            f"{e['decompositions']:.0f} s + {e['per_voxel'] * 1e3:.2f} ms/voxel "
            f"({achieved / 1e9:.1f} GFLOP/s = {achieved / rates['float32']:.0%} of float32 GEMM)"
        )
    fold_rate = rate(parts["fold_flops"], parts["fold_per_voxel"])
    refit_rate = rate(parts["refit_flops"], parts["refit_per_voxel"])
    print(
        f"  dual partition: one band's kernel {parts['kernel']:.1f} s; per fold and weighting "
        f"{parts['fold_fixed']:.1f} s + eigh {parts['fold_eigh']:.0f} s + "
        f"{parts['fold_per_voxel'] * 1e3:.2f} ms/voxel ({fold_rate / 1e9:.1f} GFLOP/s = "
        f"{fold_rate / rates['float32']:.0%} of float32 GEMM); refit "
        f"{parts['refit_fixed']:.1f} s per (weighting, alpha) + "
        f"{parts['refit_per_voxel'] * 1e3:.2f} ms/voxel ({refit_rate / 1e9:.1f} GFLOP/s = "
        f"{refit_rate / rates['float32']:.0%}; its solves run in float64)"
    )
    t = check["times"]
    ratio = t["primal"] / t["dual"]
    print(
        f"  both solvers really run at {check['n']} rows x 2 x {check['k']}, {n_voxels // 4} "
        f"voxels, {n_iter} weightings x {N_FOLDS} folds: dual {t['dual']:.1f} s, primal "
        f"{t['primal']:.1f} s, primal / dual {ratio:.2f}x; same alpha for {check['same']:.0%} "
        f"of voxels, at a grid edge {check['edge']:.0%}; {check['pairs']} (weighting, alpha) "
        "pairs refit"
    )
    encoder_ratio = t["encoder himalaya"] / t["encoder brainldm"]
    print(
        f"  encoder against himalaya's RidgeCV at {check['n']} rows x {check['k']}, same 5 "
        f"folds: brainldm {t['encoder brainldm']:.1f} s, himalaya {t['encoder himalaya']:.1f} s "
        f"({encoder_ratio:.2f}x); same alpha for {check['encoder_same']:.0%} of voxels"
    )
    pairs = max(check["pairs"], 1)
    print("\nExtrapolated (seconds = fixed + decompositions + voxels x per-voxel):")
    print(f"{'':34}{'nsdgeneral':>12}{'whole brain':>14}")
    rows = {}
    for voxels in (NSDGENERAL, WHOLE_BRAIN):
        for cv, e in encoders.items():
            rows.setdefault(f"encoder cv={cv!r}", []).append(
                e["fixed"] + e["decompositions"] + e["per_voxel"] * voxels
            )
        plain, _ = partition_seconds(parts, voxels, pairs)
        joint, alone = partition_seconds(parts, voxels, pairs, reuse=True)
        rows.setdefault("partition (dual)", []).append(plain)
        rows.setdefault("partition (dual, z shared)", []).append(joint + alone)
        rows.setdefault(f"partition (primal, {ratio:.2f}x at check)", []).append(plain * ratio)
        best = min(rows["encoder cv=5"][-1], rows["encoder cv='loo'"][-1])
        rows.setdefault("whole set, dual, as is", []).append(
            N_ENCODERS * rows["encoder cv=5"][-1] + N_PARTITIONS * plain
        )
        rows.setdefault("whole set, dual, z shared, best cv", []).append(
            N_ENCODERS * best + N_PARTITIONS * joint + alone
        )
    for label, values in rows.items():
        print(f"{label:34}" + "".join(f"{hours(v):>13}" for v in values))
    per_voxel_share = (
        parts["fold_per_voxel"]
        * NSDGENERAL
        / (parts["fold_per_voxel"] * NSDGENERAL + parts["fold_eigh"] + parts["fold_fixed"])
    )
    print(
        f"\nPer fold and weighting on nsdgeneral, per-voxel work is {per_voxel_share:.0%} "
        "of the time, the eigendecomposition the rest."
    )
    whole = rows["whole set, dual, z shared, best cv"][0]
    floor = lower_bound(rates, encoders, parts)
    print(
        "\nFloor of the whole set on nsdgeneral with these algorithms, every product at the "
        f"float32 GEMM rate and every eigendecomposition at the measured speed: "
        f"{hours(floor['total']).strip()} (partitions' eigendecompositions "
        f"{hours(floor['partition_eigh']).strip()}, partitions' per-voxel products "
        f"{hours(floor['partition_products']).strip()}, encoders "
        f"{hours(floor['encoders']).strip()})."
    )
    shapes = " (of the scaled shapes above, not NSD's)" if scaled else ""
    print(
        f"Targets{shapes}: whole set on nsdgeneral < 1 h: "
        f"{'met' if whole < 3600 else 'not met'} ({whole / 3600:.1f} h); partition >= 3x "
        f"faster than himalaya: {'met' if ratio >= 3 else 'not met'} ({ratio:.2f}x measured at "
        f"{check['n']} rows); per-voxel work >= 50% of float32 GEMM: dual scoring "
        f"{fold_rate / rates['float32']:.0%}, dual refit {refit_rate / rates['float32']:.0%}, "
        f"ridge 5-fold {rate(encoders[5]['flops'], encoders[5]['per_voxel']) / rates['float32']:.0%}"
        f", ridge leave-one-out "
        f"{rate(encoders['loo']['flops'], encoders['loo']['per_voxel']) / rates['float32']:.0%}"
    )


def memory_report(log, n, k, n_voxels, chunk=8192):
    """The measured peak, and what the analyses' chunks of voxels add to it (float32)."""
    peak = max(rss for *_, rss in log)
    # Per voxel of a chunk: Y's training rows; the joint and two one-band models'
    # coefficients; the float64 copy of one batch is in the peak already.
    per_voxel = 4 * (n + 2 * k + 2 * k)
    extra = per_voxel * (chunk - n_voxels) / 2**30
    print(
        f"\nPeak memory: {peak:.2f} GiB (maxrss) with {n_voxels} voxels; a chunk of {chunk:,} "
        f"voxels (the analyses' default) adds about {extra:.2f} GiB: {peak + extra:.2f} GiB "
        f"against the 8 GB target ({'met' if (peak + extra) * 2**30 < 8e9 else 'not met'})"
    )


def lower_bound(rates, encoders, parts):
    """Seconds the whole set needs at least on nsdgeneral: its counted flops at the GEMM rate
    and its eigendecompositions at their measured speed (no other overhead)."""
    gemm = rates["float32"]
    best = min(encoders.values(), key=lambda e: e["decompositions"] + e["flops"] * NSDGENERAL)
    encoders_floor = N_ENCODERS * (best["decompositions"] + best["flops"] * NSDGENERAL / gemm)
    # Per partition: the joint model's weightings x folds, and the z_c-alone model's folds
    # (z alone is shared by all partitions).
    fits = N_ITER * N_FOLDS + N_FOLDS
    partition_eigh = N_PARTITIONS * fits * parts["fold_eigh"]
    partition_products = N_PARTITIONS * fits * parts["fold_flops"] * NSDGENERAL / gemm
    return dict(
        encoders=encoders_floor,
        partition_eigh=partition_eigh,
        partition_products=partition_products,
        total=encoders_floor + partition_eigh + partition_products,
    )


if __name__ == "__main__":
    main()
