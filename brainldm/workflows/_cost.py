"""What a workflow will run and roughly how long it takes, from the shapes alone.

Each heavy step is counted in floating-point operations from its shapes (the
formulas follow the code: :func:`brainldm.ridge.solve_ridge_cv`, himalaya's
random search behind :class:`~brainldm.encoding.BandedVariancePartitioner`,
scikit-learn's PCA behind :class:`~brainldm.features.FeatureReducer`, one
U-Net forward counted by torch on a weightless copy of the model). The count
becomes seconds through a float32 matrix-product rate timed once per process
and device (:func:`gemm_rate`) and a slowdown per step, measured against a
timed run of that step (:data:`SLOWDOWNS`): the step's real seconds over its
count at the product rate. Memory is the largest set of arrays a step holds.
"""

import math
import time
from functools import cache

import numpy as np
import pandas as pd

from brainldm._warnings import warn

__all__ = [
    "GPU_RATE",
    "LONG_RUN_SECONDS",
    "SLOWDOWNS",
    "LongRunWarning",
    "announce",
    "estimate_encode",
    "gemm_rate",
    "partition_cost",
    "pca_cost",
    "reconstruct_plan",
    "ridge_cv_cost",
    "unet_flops",
]

#: Above this many seconds on the CPU a workflow warns (:class:`LongRunWarning`).
LONG_RUN_SECONDS = 3 * 3600
#: Assumed, not measured: float32 matrix products on a data-centre GPU (an A100 or
#: H100 without TF32 reaches 15-50 TFLOP/s); the steps' slowdowns are assumed the same.
GPU_RATE = 20e12
# An eigendecomposition or SVD flop costs this many matrix-product flops: measured
# as 9 n^3 flops of torch.linalg.eigh on n = 400 against gemm_rate(), one thread
# (3.49 and 3.56 in two runs of ``python -m brainldm.workflows._cost``).
DECOMPOSITION_WEIGHT = 3.5
#: Real seconds over (counted flops / gemm_rate()) per step, one thread on a 2-core
#: machine shared with other work. Small runs are slower per flop than large ones, so
#: each is the geometric mean of two measurements: (a) small runs, the mean of two runs
#: of ``PYTHONPATH=. python -W ignore -m brainldm.workflows._cost``: ridge, solve_ridge_cv
#: of 500 rows x 400 features x 2,000 targets: 3.01, 2.37; partition,
#: BandedVariancePartitioner of 300 rows, bands 2 x 100, 1,000 voxels, n_iter=3: 2.12,
#: 1.65; pca, FeatureReducer(100) of 600 x 3,000: 1.75, 1.26; unet, the toy model's
#: features of 8 images, 10 guided steps: 3.72, 7.57; (b) the default toy world's full
#: encode (945 training and 249 test images, 4,884 voxels; its stage times in
#: docs/encoding_analyses.md) against ``estimate_encode(945, 249, 4884)`` with (a)'s
#: factors: ridge 0.87 (36 s measured in the encoders, 112 s estimated), partition 0.47
#: (466 s, 1,869 s), unet 1.67 (374 s, 1,257 s); the PCAs are timed within the
#: analyses there, so pca keeps (a)'s value.
SLOWDOWNS = {"ridge": 1.5, "partition": 0.95, "pca": 1.5, "unet": 3.1}
# A pass over one array element (scaling, residuals, norms: memory-bound) costs this
# many matrix-product flops: about gemm_rate() over the elements per second that such
# passes run at on this machine (~100 GFLOP/s against ~2 G elements/s).
ELEMENTWISE_WEIGHT = 50
# Seconds of each fit or PCA beyond its flops (checks, splits, scores, Python loops):
# one VoxelwiseEncoder of 300 rows x 100 components x 3,000 voxels took 0.32 s against
# 0.08 s counted; one FeatureReducer(100) of 300 x 9,856, 0.63 s against 0.2 s.
CALL_SECONDS = {"ridge": 0.2, "partition": 0.2, "pca": 0.3, "unet": 0.0}
# Bytes per float32 and float64 value.
_F32, _F64 = 4, 8


class LongRunWarning(UserWarning):
    """A workflow's settings would run for hours on this machine; the warning says what helps."""


@cache
def gemm_rate(device="cpu"):
    """Float32 matrix-product FLOP/s on ``device``, timed once per process (well under a second).

    Parameters
    ----------
    device : str, default="cpu"
        ``"cpu"`` or ``"cuda"`` (torch's current threads on the CPU).

    Returns
    -------
    rate : float

    Examples
    --------
    >>> from brainldm.workflows._cost import gemm_rate
    >>> gemm_rate() > 1e8
    True
    """
    import torch

    size = 4096 if str(device).startswith("cuda") else 384
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    # The best of several products: on a machine shared with other work, one product
    # can wait for the CPU far longer than it computes.
    best, budget = math.inf, time.perf_counter() + 0.3
    for repeat in range(30):
        start = time.perf_counter()
        (a @ b).sum().item()  # .item() waits for the GPU
        best = min(best, time.perf_counter() - start)
        if repeat >= 5 and time.perf_counter() > budget:
            break
    return 2 * size**3 / best


def _svd(rows, columns):
    """Flops of a thin SVD with both factors (Golub and Van Loan's R-SVD count)."""
    big, small = max(rows, columns), min(rows, columns)
    return 6 * big * small**2 + 20 * small**3


def ridge_cv_cost(n, p, t, *, folds=5, n_alphas=11, n_chunks=1):
    """Flops and peak bytes of :func:`~brainldm.ridge.solve_ridge_cv` (and an encoder's test).

    Parameters
    ----------
    n, p, t : int
        Rows, features and targets (all chunks together).
    folds : int or "loo", default=5
        Cross-validation folds; ``"loo"``: exact leave-one-out, from the one
        decomposition of all rows that the refit needs anyway.
    n_alphas, n_chunks : int
        Alphas tried, and chunks of targets fitted separately (each
        decomposes the folds again).

    Returns
    -------
    gemm, decomposition, memory : float
        Matrix-product flops, eigendecomposition flops and peak bytes.

    Examples
    --------
    >>> from brainldm.workflows._cost import ridge_cv_cost
    >>> one, two = ridge_cv_cost(500, 400, 1000), ridge_cv_cost(500, 400, 2000)
    >>> two[1] == one[1], two[0] > one[0]
    (True, True)
    >>> ridge_cv_cost(500, 400, 1000, folds="loo")[1] < one[1]
    True
    """
    if folds == "loo":
        return _ridge_loo_cost(n, p, t, n_alphas, n_chunks)
    n_test = n / folds
    n_train = n - n_test
    t_chunk = math.ceil(t / n_chunks)
    if p <= n_train:  # primal: p x p Gram matrices in float64 (a float64 flop as two)
        setup = 2 * (2 * n * p**2) + folds * (2 * 2 * n_test * p**2 + 2 * n_test * p**2)
        decomposition = (folds + 1) * 9 * p**3
        per_target = 2 * n * p + folds * (2 * n_test * p + 2 * p**2) + 4 * p**2
        per_target += folds * n_alphas * (2 * n_test * p + ELEMENTWISE_WEIGHT * (p + 3 * n_test))
        side = p
    else:  # dual: n x n kernels
        setup = 2 * (2 * n**2 * p) + folds * 2 * n_test * n_train**2
        decomposition = folds * 9 * n_train**3 + 9 * n**3
        per_target = folds * (2 * n_train**2 + n_alphas * 2 * n_test * n_train)
        per_target += 4 * n**2 + 2 * n * p
        per_target += folds * n_alphas * ELEMENTWISE_WEIGHT * (n_train + 3 * n_test)
        side = n
    memory = _F32 * (n * p + 3 * side**2 + 2 * (n + p) * t_chunk) + _F64 * side**2
    return n_chunks * setup + t * per_target, n_chunks * decomposition, memory


def _ridge_loo_cost(n, p, t, n_alphas, n_chunks):
    """:func:`ridge_cv_cost` with ``cv="loo"``: one decomposition of all rows, no folds.

    The leave-one-out residuals of every alpha come from the refit's decomposition:
    per target and alpha 2 n p (primal: the rows in the eigenbasis times the weights)
    or 2 n^2 (dual), then a division by the hat matrix's diagonal, computed once.
    """
    t_chunk = math.ceil(t / n_chunks)
    if p <= n:  # primal, as the folds' (float64 Gram matrix, a float64 flop as two)
        setup = 2 * (2 * n * p**2) + 2 * n * p**2 + 2 * (2 * n * p * n_alphas)
        decomposition = 9 * p**3
        per_target = 2 * n * p + 2 * p**2 + 4 * p**2
        per_target += n_alphas * (2 * n * p + ELEMENTWISE_WEIGHT * (p + 3 * n))
        side = p
    else:  # dual
        setup = 2 * (2 * n**2 * p) + 2 * (2 * n**2 * n_alphas)
        decomposition = 9 * n**3
        per_target = 2 * n**2 + 4 * n**2 + 2 * n * p
        per_target += n_alphas * (2 * n**2 + ELEMENTWISE_WEIGHT * 3 * n)
        side = n
    memory = _F32 * (n * p + 3 * side**2 + 2 * (n + p) * t_chunk) + _F64 * side**2
    return n_chunks * setup + t * per_target, n_chunks * decomposition, memory


def _partition_model(n, p, t, n_weightings, folds, n_alphas):
    """Flops (gemm, decomposition) of himalaya's primal random search on one set of bands."""
    n_test = n / folds
    n_train = n - n_test
    rank = min(n_train, p)
    per_fold = n_alphas * (2 * p * rank * n_train + 2 * n_test * p * n_train)
    per_target = n_alphas * (2 * n_test * n_train + ELEMENTWISE_WEIGHT * 3 * n_test)
    gemm = n_weightings * folds * (per_fold + per_target * t)
    # The refit after each weighting: one SVD of all rows, every alpha's matrix, and the
    # weights of the voxels it improved (about 1 / (i + 1) of them at weighting i).
    improved = sum(1 / (i + 1) for i in range(n_weightings))
    gemm += n_weightings * n_alphas * 2 * p * min(n, p) * n + improved * n_alphas * 2 * p * n * t
    decomposition = n_weightings * (folds * _svd(n_train, p) + _svd(n, p))
    return gemm, decomposition


def _partition_model_dual(n, p, t, n_weightings, folds, n_alphas, n_bands):
    """Flops (gemm, decomposition) of the dual random search on one set of bands, kernels given.

    Per weighting: the weighted kernel, then per fold an eigendecomposition of the
    n_train x n_train kernel, the test kernel in its eigenbasis, and per voxel its
    projection (2 n_train^2) and each alpha's predictions (2 n_test n_train). The refit:
    one Cholesky (n^3 / 3, at matrix-product speed) per chosen (weighting, alpha), a
    weighting seldom being chosen with more than a few alphas, and per voxel a solve
    (2 n^2) and the weights of the bands (2 n p). The kernels, decompositions and solves
    run in float64 (a flop as two), the products with the voxels in float32.
    """
    n_test = n / folds
    n_train = n - n_test
    batches = math.ceil(t / 2048)  # the voxels scored together, each batch scaling by alpha
    per_fold = 2 * (2 * n_test * n_train**2)
    per_fold += ELEMENTWISE_WEIGHT * (n_train**2 + n_alphas * n_test * n_train * batches)
    per_target = 2 * n_train**2
    per_target += n_alphas * (2 * n_test * n_train + ELEMENTWISE_WEIGHT * 3 * n_test)
    gemm = n_weightings * (
        2 * ELEMENTWISE_WEIGHT * n_bands * n**2 + folds * (per_fold + per_target * t)
    )
    chosen = min(t, n_weightings * min(n_alphas, 3))
    gemm += 2 * chosen * (n**3 / 3 + ELEMENTWISE_WEIGHT * n**2) + t * (2 * 2 * n**2 + 2 * p * n)
    return gemm, n_weightings * folds * 9 * n_train**3


def partition_cost(
    n, k, t, *, n_iter=20, folds=5, n_alphas=11, n_chunks=1, solver="primal", shared=False
):
    """Flops and peak bytes of one [z, z_c] partition: the joint model and each band alone.

    Parameters
    ----------
    n, k, t : int
        Rows, components per band (two bands) and voxels (all chunks together).
    n_iter, folds, n_alphas, n_chunks : int
        Band weightings of the joint model's random search, folds, alphas,
        and chunks of voxels fitted separately.
    solver : {"primal", "dual"}, default="primal"
        Himalaya's primal random search (an SVD per fold and weighting), or
        the dual one: each band's kernel (2 n^2 k) once for all chunks, then
        per weighting and fold an eigendecomposition of the training rows'
        kernel (9 n_train^3) shared by every alpha and voxel.
    shared : bool, default=False
        With the dual solver, the first band's kernel and model alone are
        read from the cache (another partition on the same ``z`` made them):
        not counted.

    Returns
    -------
    gemm, decomposition, memory : float

    Examples
    --------
    >>> from brainldm.workflows._cost import partition_cost
    >>> partition_cost(300, 100, 1000, n_iter=6)[1] > partition_cost(300, 100, 1000, n_iter=3)[1]
    True
    >>> dual = partition_cost(300, 400, 1000, solver="dual")
    >>> dual[1] < partition_cost(300, 400, 1000)[1]
    True
    >>> partition_cost(300, 400, 1000, solver="dual", shared=True)[0] < dual[0]
    True
    """
    if solver == "dual":
        return _partition_dual_cost(n, k, t, n_iter, folds, n_alphas, n_chunks, shared)
    t_chunk = math.ceil(t / n_chunks)
    gemm = decomposition = 0.0
    for p, weightings in ((2 * k, n_iter), (k, 1), (k, 1)):
        chunk = _partition_model(n, p, t_chunk, weightings, folds, n_alphas)
        gemm, decomposition = gemm + n_chunks * chunk[0], decomposition + n_chunks * chunk[1]
    n_train = n - n / folds
    memory = _F32 * (2 * n_alphas * 2 * k * n_train + n * (2 * k + 2 * t_chunk))
    return gemm, decomposition, memory


def _partition_dual_cost(n, k, t, n_iter, folds, n_alphas, n_chunks, shared):
    """:func:`partition_cost` with the dual solver."""
    t_chunk = math.ceil(t / n_chunks)
    models = [(2 * k, n_iter, 2), (k, 1, 1)] + ([] if shared else [(k, 1, 1)])
    gemm = 2 * (2 * n**2 * k) * (1 if shared else 2)  # the kernels, float64, once per band
    decomposition = 0.0
    for p, weightings, n_bands in models:
        chunk = _partition_model_dual(n, p, t_chunk, weightings, folds, n_alphas, n_bands)
        gemm, decomposition = gemm + n_chunks * chunk[0], decomposition + n_chunks * chunk[1]
    # Both bands' kernels, the weighted one, a fold's and its eigenvectors (float64).
    memory = _F64 * 5 * n**2 + _F32 * n * (2 * k + 2 * t_chunk)
    return gemm, decomposition, memory


def pca_cost(n_fit, n_rows, d, k):
    """Flops and peak bytes of a FeatureReducer: scikit-learn's PCA to ``k``, then the transform.

    Examples
    --------
    >>> from brainldm.workflows._cost import pca_cost
    >>> pca_cost(600, 700, 3000, 100)[0] < pca_cost(600, 700, 6000, 100)[0]
    True
    """
    small = min(n_fit, d)
    if max(n_fit, d) <= 500 or k >= 0.8 * small:
        gemm, decomposition = 0.0, _svd(n_fit, d)
    else:  # randomized: power iterations on k + 10 columns, then a small SVD
        width, power = k + 10, 7 if k < 0.1 * small else 4
        gemm = (2 * power + 2) * 2 * n_fit * d * width
        decomposition = (power + 1) * 4 * max(n_fit, d) * width**2 + _svd(width, d)
    gemm += 2 * n_rows * d * k
    return gemm, decomposition, _F32 * (3 * n_fit * d + n_rows * k)


@cache
def _unet_flops(unet_type, config, latent_shape, text_shape):
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        unet = unet_type.from_config(dict(config))
        x, c = torch.zeros((1, *latent_shape)), torch.zeros((1, *text_shape))
        with FlopCounterMode(display=False) as counter:
            unet(x, torch.zeros(1), encoder_hidden_states=c)
    return float(counter.get_total_flops())


def unet_flops(sd, latent_shape=None):
    """Flops of one U-Net forward on one latent, counted on a weightless (meta) copy.

    Examples
    --------
    >>> from brainldm.features import load_ldm
    >>> from brainldm.workflows._cost import unet_flops
    >>> sd = load_ldm("toy")
    >>> unet_flops(sd, (4, 32, 32)) > 3 * unet_flops(sd, (4, 16, 16))
    True
    """
    shape = tuple(sd.latent_shape if latent_shape is None else latent_shape)
    config = tuple(sorted((k, _hashable(v)) for k, v in sd.unet.config.items()))
    return _unet_flops(type(sd.unet), config, shape, tuple(sd.text_shape))


def _hashable(value):
    return tuple(value) if isinstance(value, list) else value


def _row(stage, work, kind, cost, rate, calls=1):
    """One row of a plan: the flops of ``cost`` (``calls`` fits) in seconds, here and on a GPU."""
    gemm, decomposition, memory = cost
    weighted = (gemm + DECOMPOSITION_WEIGHT * decomposition) * SLOWDOWNS[kind]
    fixed = calls * CALL_SECONDS[kind]
    return dict(
        stage=stage,
        work=work,
        gflop=(gemm + decomposition) / 1e9,
        memory_gib=memory / 2**30,
        seconds=weighted / rate + fixed,
        gpu_seconds=weighted / GPU_RATE + fixed,
    )


def _feature_sizes(sd, analyses, n_components, n_train, layers, read_steps):
    """Name -> columns of every feature space the analyses reduce, and the encoders' PCA size."""
    from brainldm.encoding import choose_pool_size

    d_z, d_c = math.prod(sd.latent_shape), math.prod(sd.text_shape)
    sizes = {"z": d_z}
    if "representations" in analyses:
        sizes.update(c=d_c, zc=d_z)
    if "unet_layers" in analyses:
        layers = tuple(sd.default_layers if layers is None else layers)
        pool = choose_pool_size(sd.unet_output_shapes(layers, 1), min(n_components, n_train))
        for layer, shape in sd.unet_output_shapes(layers, pool).items():
            sizes.update({f"{layer}-{step}": math.prod(shape) for step in read_steps})
    return sizes


def _encode_rows(shapes, settings, sd, rate):
    """The rows of :func:`estimate_encode`'s plan."""
    n_train, n_test, t = shapes
    analyses, n_iter = settings["analyses"], settings["n_iter"]
    n_chunks = math.ceil(t / settings["chunk_size"])
    strengths = set(settings["strengths"]) if "noise_levels" in analyses else set()
    strengths.add(settings["stage_strength"])
    per_image = sum(int(settings["steps"] * s) for s in strengths)
    per_image *= 2 if settings["guidance"] != 1 else 1
    n_images = n_train + n_test
    read_steps = ("early", "middle", "late")
    sizes = _feature_sizes(
        sd, analyses, settings["n_components"], n_train, settings["layers"], read_steps
    )
    sizes.update({f"zc {s:.2f}": sizes["z"] for s in strengths if "noise_levels" in analyses})
    if "denoising_stages" in analyses:
        sizes.update({f"zc {step}": sizes["z"] for step in read_steps})
    work = f"{len(strengths)} denoising passes: {per_image} U-Net forwards x {n_images} images"
    held = _F32 * n_images * sum(sizes.values())  # the features, kept for the PCAs
    rows = [
        _row("features", work, "unet", (n_images * per_image * unet_flops(sd), 0.0, held), rate)
    ]
    k = {name: min(settings["n_components"], n_train, d) for name, d in sizes.items()}
    pca = [pca_cost(n_train, n_images, d, k[name]) for name, d in sizes.items()]
    rows.append(
        _row(
            "pca",
            f"{len(sizes)} PCAs to {max(k.values())} components",
            "pca",
            (sum(c[0] for c in pca), sum(c[1] for c in pca), max(c[2] for c in pca)),
            rate,
            calls=len(sizes),
        )
    )

    cv = settings["cv"]
    # The partitions keep 5 folds under leave-one-out (it would not pay for them).
    folds = 5 if cv == "loo" else cv
    solver = settings["solver"]
    if solver == "auto":  # dual where the training rows are fewer than [z, z_c]'s components
        dual = n_train < 2 * k["z"] and not str(settings["device"]).startswith("cuda")
        solver = "dual" if dual else "primal"
    z_shared = False  # with the dual solver, z's kernel and model alone, once through the cache

    def encoders(names):
        costs = [ridge_cv_cost(n_train, k[name], t, folds=cv, n_chunks=n_chunks) for name in names]
        tests = sum(2 * n_test * k[name] * t for name in names)
        return sum(c[0] for c in costs) + tests, sum(c[1] for c in costs), max(c[2] for c in costs)

    k_z = k["z"]
    partitions = {"noise_levels": len(strengths & set(settings["strengths"]))}
    partitions["denoising_stages"] = len(read_steps)
    for name in analyses:
        if name == "representations":
            rows.append(
                _row(
                    name,
                    f"3 ridge encoders{' (leave-one-out)' if cv == 'loo' else ''}, {t} voxels",
                    "ridge",
                    encoders("z c zc".split()),
                    rate,
                    calls=3 * n_chunks,
                )
            )
        elif name == "unet_layers":
            names = [n for n in sizes if "-" in n]
            rows.append(
                _row(
                    name,
                    f"{len(names)} ridge encoders, {t} voxels",
                    "ridge",
                    encoders(names),
                    rate,
                    calls=len(names) * n_chunks,
                )
            )
        else:
            count = partitions[name]
            options = dict(n_iter=n_iter, folds=folds, n_chunks=n_chunks, solver=solver)
            costs = [
                partition_cost(n_train, k_z, t, shared=z_shared or i > 0, **options)
                for i in range(count)
            ]
            z_shared = solver == "dual"
            kind = "" if solver == "primal" else f" ({solver})"
            work = f"{count} banded ridge partitions{kind}, n_iter={n_iter}, {t} voxels"
            rows.append(
                _row(
                    name,
                    work,
                    "partition",
                    (sum(c[0] for c in costs), sum(c[1] for c in costs), costs[0][2]),
                    rate,
                    calls=3 * count * n_chunks,
                )
            )
    return rows


def estimate_encode(
    n_train,
    n_test,
    n_voxels,
    *,
    model="toy",
    analyses=None,
    strengths=(0.2, 0.4, 0.6, 0.8),
    steps=25,
    stage_strength=0.8,
    layers=None,
    n_components=6400,
    n_iter=20,
    solver="primal",
    cv=5,
    chunk_size=8192,
    guidance=5.0,
    device="cpu",
):
    """What :func:`encode` runs for one subject of these shapes, and roughly how long it takes.

    Counts the floating-point operations of each step from the shapes (one
    denoising pass per strength, the PCAs, each analysis's ridge encoders or
    banded ridge partitions, chunk by chunk), and converts them to seconds
    with a float32 matrix-product rate timed on ``device`` (once per process,
    under a second) and a slowdown per step measured against a timed run of
    that step. On small runs the estimate was within a factor of 2 of the
    measured time (docs/workflows.md); it leaves out loading the data, the
    VAE and text encoders, and writing maps and figures.

    Parameters
    ----------
    n_train, n_test : int
        Training rows (images, when the trials are averaged) and test images.
    n_voxels : int
        Voxels fitted.
    model : str, path-like or StableDiffusion, default="toy"
        The model whose U-Net is counted (on a weightless copy).
    analyses, strengths, steps, stage_strength, layers, n_components, n_iter, chunk_size, guidance
        As in :func:`encode`.
    solver : {"primal", "dual", "auto"}, default="primal"
        The partitions' solver, as in :func:`encode`: ``"dual"`` is counted
        with each band's kernel once and ``z``'s kernel and model alone once
        for all partitions (encode always has a cache), ``"auto"`` as dual
        where the training rows are fewer than the two bands' components.
    cv : int or "loo", default=5
        As in :func:`encode`: ``"loo"`` counts the encoders' one
        decomposition of all rows instead of one per fold, and 5 folds for
        the partitions.
    device : {"cpu", "cuda"}, default="cpu"
        Where the rate is timed.

    Returns
    -------
    plan : pandas.DataFrame
        One row per step (``features``, ``pca``, then each analysis):
        ``stage``, ``work`` (what runs), ``gflop``, ``memory_gib`` (the
        largest arrays held at once), ``seconds`` (on ``device``) and
        ``gpu_seconds`` (at an assumed :data:`GPU_RATE`); ``plan.attrs``
        holds the ``rate`` timed and the ``device``.

    Examples
    --------
    >>> from brainldm.workflows import estimate_encode
    >>> plan = estimate_encode(400, 100, 5000, analyses=["representations"], n_components=100)
    >>> plan["stage"].tolist()
    ['features', 'pca', 'representations']
    >>> bool((plan["seconds"] > 0).all())
    True
    """
    from brainldm.encoding import ANALYSES, check_encoding_settings
    from brainldm.features import load_ldm

    analyses = check_encoding_settings(
        model,
        ANALYSES if analyses is None else analyses,
        strengths=strengths,
        steps=steps,
        stage_strength=stage_strength,
        layers=layers,
        cv=cv,
        solver=solver,
        device=device,
        caller="estimate_encode",
    )
    settings = dict(
        analyses=analyses,
        strengths=tuple(float(s) for s in np.atleast_1d(strengths)),
        steps=steps,
        stage_strength=float(stage_strength),
        layers=layers,
        n_components=n_components,
        n_iter=n_iter,
        solver=solver,
        cv=cv,
        chunk_size=chunk_size,
        guidance=guidance,
        device=device,
    )
    rate = gemm_rate(str(device or "cpu"))
    rows = _encode_rows((n_train, n_test, n_voxels), settings, load_ldm(model), rate)
    plan = pd.DataFrame(rows)
    plan.attrs.update(rate=rate, device=str(device or "cpu"))
    return plan


def _duration(seconds):
    """A duration as people say it: 40 s, 12 min, 3.5 h, 2.1 days."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def announce(plan, log, caller, n_subjects=1, alternatives=""):
    """Log a plan's lines and total; warn (:class:`LongRunWarning`) if it runs for hours.

    ``alternatives`` is appended to the warning: what cheaper settings would give.
    Returns the total seconds on the plan's device.
    """
    rate = plan.attrs["rate"]
    scope = f"per subject, x {n_subjects} subjects" if n_subjects > 1 else "one subject"
    log(f"{caller} will run ({scope}; {plan.attrs['device']} at {rate / 1e9:.0f} GFLOP/s):")
    for row in plan.itertuples():
        log(
            f"  {row.stage}: {row.work}; {row.gflop:,.0f} GFLOP, "
            f"{row.memory_gib:.1f} GiB, ~{_duration(row.seconds)}"
        )
    total = n_subjects * float(plan["seconds"].sum())
    gpu = n_subjects * float(plan["gpu_seconds"].sum())
    log(f"  total: ~{_duration(total)} on this machine (estimate, within a factor of 2-3)")
    if total > LONG_RUN_SECONDS:
        warn(
            f"{caller} is estimated to run for ~{_duration(total)} on this machine "
            f"({rate / 1e9:.0f} GFLOP/s); on a GPU (device='cuda'), assuming "
            f"{GPU_RATE / 1e12:.0f} TFLOP/s, about {_duration(gpu)}{alternatives}",
            LongRunWarning,
        )
    return total


def encode_alternatives(shapes, model, settings):
    """What fewer iterations or voxels, or a cheaper solver or cv, would take, for the warning.

    ``solver="dual"`` and ``cv="loo"`` are offered where they are cheaper than the
    settings given (and possible: the dual solver on the CPU, leave-one-out on averaged
    training betas), each with its estimate.
    """
    n_train, n_test, n_voxels = shapes
    keep = ("strengths", "steps", "stage_strength", "layers", "n_components", "chunk_size")
    keep += ("solver", "cv", "n_iter", "analyses", "guidance")
    options = {k: settings[k] for k in keep}
    fewer = max(1, options["n_iter"] // 4)
    dims = (n_train, n_test, n_voxels)
    cheaper = {
        f"n_iter={fewer}": (dims, dict(options, n_iter=fewer)),
        f"{n_voxels // 4} voxels": ((n_train, n_test, max(1, n_voxels // 4)), options),
    }
    if options["solver"] != "dual" and not str(settings["device"]).startswith("cuda"):
        cheaper["solver='dual'"] = (dims, dict(options, solver="dual"))
    if options["cv"] != "loo" and settings["average_train"]:
        cheaper["cv='loo'"] = (dims, dict(options, cv="loo"))
    seconds = {
        label: float(estimate_encode(*shape, model=model, **opts)["seconds"].sum())
        for label, (shape, opts) in cheaper.items()
    }
    given = float(estimate_encode(*dims, model=model, **options)["seconds"].sum())
    found = [
        f"{label}: ~{_duration(value)}"
        for label, value in seconds.items()
        if value < given or label not in ("solver='dual'", "cv='loo'")
    ]
    return "; here, " + ", ".join(found) + " per subject"


def announce_encode(nsd_root, subjects, model, settings, log, cache_dir):
    """Load the first subject (cached for the run) and announce :func:`encode`'s plan."""
    from brainldm.datasets.nsd import load_nsd

    data = load_nsd(
        nsd_root,
        subjects[0],
        average_train=settings["average_train"],
        progress=settings["progress"],
        cache_dir=cache_dir,
    )
    shapes = (len(np.unique(data.images_train)), len(data.images_test), data.X_train.shape[1])
    options = {k: settings[k] for k in ("analyses", "strengths", "steps", "stage_strength")}
    options |= {k: settings[k] for k in ("layers", "n_components", "n_iter", "chunk_size")}
    options |= {k: settings[k] for k in ("solver", "cv")}
    plan = estimate_encode(
        *shapes, model=model, guidance=settings["guidance"], device=settings["device"], **options
    )
    total = plan["seconds"].sum() * len(subjects)
    extra = encode_alternatives(shapes, model, settings) if total > LONG_RUN_SECONDS else ""
    announce(plan, log, "encode", len(subjects), extra)
    return plan


def reconstruct_plan(data, settings):
    """What :func:`reconstruct` runs for one loaded subject: the decoders' fits and the sampling."""
    from brainldm.features import load_ldm

    sd = load_ldm(settings["model"])
    rate = gemm_rate(str(settings["device"] or "cpu"))
    n, n_alphas = len(data.X_train), 7 if settings["preset"] == "takagi2023" else 11
    rows = []
    for target, roi, d in (("z", "early", sd.latent_shape), ("c", "ventral", sd.text_shape)):
        p = int(data.roi_masks[roi].sum())
        cost = ridge_cv_cost(n, p, math.prod(d), n_alphas=n_alphas)
        work = f"ridge from {p} {roi} voxels to {math.prod(d)} values of {target}, {n} trials"
        rows.append(_row(f"decoder {target}", work, "ridge", cost, rate))
    n_images = len(data.images_test) if settings["n_images"] is None else settings["n_images"]
    guided = 2 if settings["guidance"] != 1 else 1
    short = int(settings["steps"] * settings["strength"])
    forwards = short + settings["steps"] * guided + short * guided  # modes z, c and zc
    samples = n_images * settings["n_samples_per_image"]
    flops = samples * forwards * unet_flops(sd, sd.generation_latent_shape)
    work = f"{forwards} U-Net forwards (modes z, c, zc) x {samples} samples"
    rows.append(_row("sampling", work, "unet", (flops, 0.0, 0.0), rate))
    plan = pd.DataFrame(rows)
    plan.attrs.update(rate=rate, device=str(settings["device"] or "cpu"))
    return plan


def announce_reconstruct(loaded, settings, log):
    """Announce :func:`reconstruct`'s plan for its loaded subjects (the first one's shapes)."""
    plan = reconstruct_plan(loaded[0], settings)
    hint = "; fewer n_images, n_samples_per_image or steps shorten the sampling"
    announce(plan, log, "reconstruct", len(loaded), hint)
    return plan


def _timed(function):
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def _weighted(cost):
    return cost[0] + DECOMPOSITION_WEIGHT * cost[1]


def measure_slowdowns():
    """Time each step on a small problem, one thread; return real over counted seconds per step.

    The values :data:`SLOWDOWNS` and the eigendecomposition weight record; run by
    ``python -m brainldm.workflows._cost`` (about half a minute).
    """
    import torch
    from threadpoolctl import threadpool_limits

    from brainldm.encoding import BandedVariancePartitioner
    from brainldm.features import FeatureReducer, load_ldm
    from brainldm.features.ldm import denoising_features
    from brainldm.ridge import solve_ridge_cv

    rng = np.random.default_rng(0)
    found = {}
    with threadpool_limits(1):
        torch.set_num_threads(1)
        rate = gemm_rate("cpu")
        matrix = torch.randn(400, 400, dtype=torch.float64)
        matrix = matrix @ matrix.T
        found["decomposition_weight"] = (
            _timed(lambda: torch.linalg.eigh(matrix)) * rate / 9 / 400**3
        )
        X, Y = rng.standard_normal((500, 400)), rng.standard_normal((500, 2000))
        seconds = _timed(lambda: solve_ridge_cv(X, Y))
        found["ridge"] = seconds * rate / _weighted(ridge_cv_cost(500, 400, 2000))
        X, Y = rng.standard_normal((300, 200)), rng.standard_normal((300, 1000))
        partitioner = BandedVariancePartitioner(
            bands={"z": 100, "zc": 100}, n_components=None, standardize=False, n_iter=3
        )
        seconds = _timed(lambda: partitioner.fit(X, Y))
        found["partition"] = seconds * rate / _weighted(partition_cost(300, 100, 1000, n_iter=3))
        X = rng.standard_normal((600, 3000)).astype(np.float32)
        seconds = _timed(lambda: FeatureReducer(100).fit(X).transform(X))
        found["pca"] = seconds * rate / _weighted(pca_cost(600, 600, 3000, 100))
        sd = load_ldm("toy")
        images = rng.integers(0, 255, (8, sd.image_size, sd.image_size, 3), dtype=np.uint8)
        seconds = _timed(
            lambda: denoising_features(
                images, ["a"] * 8, sd, strengths=(1.0,), stage_strength=1.0, steps=10
            )
        )
        found["unet"] = seconds * rate / (8 * 10 * 2 * unet_flops(sd))
    return found


if __name__ == "__main__":
    print(measure_slowdowns())
