"""The cost model: its formulas scale with the shapes, it warns of long runs (timed accuracy: benchmarks/cost_model.py)."""

import warnings

import pytest

from brainldm.workflows import LongRunWarning, estimate_encode
from brainldm.workflows._cost import (
    DECOMPOSITION_WEIGHT,
    announce,
    encode_alternatives,
    partition_cost,
    ridge_cv_cost,
)

pytestmark = pytest.mark.filterwarnings("ignore:the (smallest|largest) alpha:UserWarning")

NSD = dict(n_train=8859, n_test=982, n_voxels=15724)


def test_the_per_voxel_work_grows_with_the_voxels_and_the_decompositions_with_the_chunks():
    gemm = [ridge_cv_cost(500, 400, t)[0] for t in (1000, 2000, 4000)]
    assert gemm[2] - gemm[1] == pytest.approx(2 * (gemm[1] - gemm[0]), rel=1e-9)
    one, two = ridge_cv_cost(500, 400, 4000), ridge_cv_cost(500, 400, 4000, n_chunks=2)
    assert two[1] == pytest.approx(2 * one[1], rel=1e-9)
    # Primal (features <= training rows): eigendecompositions of p x p, so p**3.
    assert ridge_cv_cost(5000, 800, 10)[1] == pytest.approx(8 * ridge_cv_cost(5000, 400, 10)[1])
    # The joint model's decompositions grow by one set per band weighting.
    decomposition = [partition_cost(300, 100, 1000, n_iter=k)[1] for k in (5, 10, 15)]
    assert decomposition[2] - decomposition[1] == pytest.approx(
        decomposition[1] - decomposition[0], rel=1e-9
    )


def _announced(**shapes):
    plan = estimate_encode(**shapes)
    lines = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        total = announce(plan, lines.append, "encode")
    return plan, total, lines, [w for w in caught if issubclass(w.category, LongRunWarning)]


def test_nsd_shapes_warn_with_the_gpu_estimate_and_the_toy_worlds_do_not():
    plan, total, lines, warned = _announced(**NSD, n_components=6400, n_iter=20)
    assert total > 3 * 3600
    assert len(warned) == 1
    message = str(warned[0].message)
    assert "device='cuda'" in message and "TFLOP/s" in message
    assert lines[0].startswith("encode will run") and lines[-1].startswith("  total: ~")
    # The partitions dominate: their n_iter band weightings each decompose every fold.
    by_stage = plan.set_index("stage")["seconds"]
    assert by_stage["noise_levels"] > by_stage["representations"]
    # The default toy world (945 training, 249 test images, 4,884 voxels).
    _, total, _, warned = _announced(n_train=945, n_test=249, n_voxels=4884)
    assert total < 3 * 3600 and warned == []


def test_the_gpu_estimate_is_the_work_at_the_assumed_rate():
    plan = estimate_encode(**NSD, analyses=["representations"])
    # The same counted work at GPU_RATE instead of this CPU's rate, plus the same fixed costs.
    assert (plan["gpu_seconds"] < plan["seconds"]).all()
    assert plan["gpu_seconds"].sum() < plan["seconds"].sum() / 10


def _weighted(cost):
    return cost[0] + DECOMPOSITION_WEIGHT * cost[1]


def test_at_nsd_shapes_the_dual_partition_and_leave_one_out_encoders_cost_less():
    # NSD's 8,859 training images (7,087 per fold) against 2 x 6,400 components; two chunks.
    n, t, k = NSD["n_train"], NSD["n_voxels"], 6400
    primal = partition_cost(n, k, t, n_chunks=2)
    dual = partition_cost(n, k, t, n_chunks=2, solver="dual")
    # Measured: 21 h against 5 h on this machine's rate, a quarter of the work.
    assert _weighted(dual) < _weighted(primal) / 2
    assert _weighted(partition_cost(n, k, t, n_chunks=2, solver="dual", shared=True)) < _weighted(
        dual
    )
    five, loo = (ridge_cv_cost(n, k, t, folds=folds, n_chunks=2) for folds in (5, "loo"))
    # One decomposition of all rows instead of one per fold and one for the refit.
    assert loo[1] == pytest.approx(five[1] / 6)
    assert _weighted(loo) < _weighted(five) / 2


def test_the_estimate_counts_the_folds_of_the_encoders_and_the_solver_of_the_partitions():
    shapes = dict(n_train=900, n_test=250, n_voxels=20000)
    plans = {
        name: estimate_encode(**shapes, **settings).set_index("stage")
        for name, settings in (
            ("default", {}),
            ("loo", {"cv": "loo"}),
            ("dual", {"solver": "dual"}),
        )
    }
    default, loo, dual = plans["default"], plans["loo"], plans["dual"]
    for stage in ("representations", "unet_layers"):
        assert loo.loc[stage, "seconds"] < default.loc[stage, "seconds"]
        assert dual.loc[stage, "seconds"] == default.loc[stage, "seconds"]
    # Leave-one-out is the encoders': the partitions keep their 5 folds.
    for stage in ("noise_levels", "denoising_stages"):
        assert loo.loc[stage, "seconds"] == default.loc[stage, "seconds"]
        assert "partitions (dual)" in dual.loc[stage, "work"]
    # Here 900 rows against 2 x 900 components: the dual pays.
    assert dual.loc["noise_levels", "seconds"] < default.loc["noise_levels", "seconds"]
    assert "leave-one-out" in loo.loc["representations", "work"]
    with pytest.raises(ValueError, match="solver='dual' runs on the CPU only"):
        estimate_encode(**shapes, solver="dual", device="cuda")


def _encode_settings(**changes):
    settings = dict(
        analyses=("representations", "noise_levels", "denoising_stages", "unet_layers"),
        strengths=(0.2, 0.4, 0.6, 0.8),
        steps=25,
        stage_strength=0.8,
        layers=None,
        n_components=6400,
        n_iter=20,
        chunk_size=8192,
        guidance=5.0,
        solver="primal",
        cv=5,
        device=None,
        average_train=True,
    )
    return settings | changes


def test_the_long_run_warning_offers_the_dual_solver_and_leave_one_out_where_cheaper():
    # 900 training images against the toy model's 1,024 latent values: the dual pays.
    found = encode_alternatives((900, 250, 200000), "toy", _encode_settings())
    assert "solver='dual': ~" in found and "cv='loo': ~" in found
    # NSD's 8,859 images against 1,024 components: more rows than features, the primal pays.
    found = encode_alternatives((8859, 982, 15724), "toy", _encode_settings())
    assert "solver='dual'" not in found and "cv='loo': ~" in found
    # Not offered where they cannot run, or are what runs already.
    found = encode_alternatives(
        (900, 250, 200000), "toy", _encode_settings(device="cuda", average_train=False)
    )
    assert "solver='dual'" not in found and "cv='loo'" not in found
    found = encode_alternatives((900, 250, 200000), "toy", _encode_settings(solver="dual"))
    assert "solver='dual'" not in found
