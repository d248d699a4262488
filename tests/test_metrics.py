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
    assert two_way_identification(true, 2 * true + 3) == 1.0


def test_identification_counts_each_pair_against_the_diagonal():
    # r[0, 1] beats r[0, 0]; every other pair is won by the diagonal.
    true = np.array([[1.0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]])
    predicted = np.array([[0.2, 1, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]])
    assert two_way_identification(true, predicted) == pytest.approx((0.5 + 1 + 1) / 3)


def test_identification_takes_targets_first_and_scores_each_prediction():
    # Each prediction is compared with every target: prediction i wins against
    # target j when it correlates more with its own target i. The score is not
    # symmetric, so swapping the arguments changes it.
    rng = np.random.default_rng(2)
    y_true = rng.normal(size=(12, 6))
    y_pred = y_true[[0] * 6 + list(range(6, 12))] + 0.3 * rng.normal(size=(12, 6))
    r = np.corrcoef(y_pred, y_true)[:12, 12:]  # r[i, j] = corr(prediction i, target j)
    wins = [np.mean([r[i, j] < r[i, i] for j in range(12) if j != i]) for i in range(12)]
    assert two_way_identification(y_true, y_pred) == pytest.approx(np.mean(wins))
    assert two_way_identification(y_pred, y_true) != pytest.approx(np.mean(wins))


@pytest.mark.parametrize("shapes", [((5, 3), (5, 4)), ((5,), (5,)), ((1, 3), (1, 3))])
def test_identification_rejects_bad_shapes(shapes):
    with pytest.raises(ValueError, match="shape|at least 2"):
        two_way_identification(np.ones(shapes[0]), np.ones(shapes[1]))
