import numpy as np
import pytest

from brainldm.metrics import two_way_identification


def test_identification_is_at_chance_for_unrelated_predictions():
    rng = np.random.default_rng(0)
    scores = [
        two_way_identification(rng.normal(size=(60, 30)), rng.normal(size=(60, 30)))
        for _ in range(20)
    ]
    assert abs(np.mean(scores) - 0.5) < 0.02


def test_identification_is_perfect_for_noiseless_predictions():
    true = np.random.default_rng(1).normal(size=(30, 40))
    assert two_way_identification(2 * true + 3, true) == 1.0


def test_identification_counts_each_pair_against_the_diagonal():
    # r[0, 1] beats r[0, 0]; every other pair is won by the diagonal.
    true = np.array([[1.0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]])
    predicted = np.array([[0.2, 1, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]])
    assert two_way_identification(predicted, true) == pytest.approx((0.5 + 1 + 1) / 3)


@pytest.mark.parametrize("shapes", [((5, 3), (5, 4)), ((5,), (5,)), ((1, 3), (1, 3))])
def test_identification_rejects_bad_shapes(shapes):
    with pytest.raises(ValueError, match="shape|at least 2"):
        two_way_identification(np.ones(shapes[0]), np.ones(shapes[1]))
