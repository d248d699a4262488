"""The cost model: its formulas scale with the shapes, it warns of long runs (timed accuracy: benchmarks/cost_model.py)."""

import warnings

import pytest

from brainldm.workflows import LongRunWarning, estimate_encode
from brainldm.workflows._cost import announce, partition_cost, ridge_cv_cost

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
