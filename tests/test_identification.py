"""Identification protocols, image metrics, the scorer's suites and the statistics between modes."""

import numpy as np
import pytest
from PIL import Image

from brainldm.datasets.scenes import make_stimuli
from brainldm.metrics import (
    IdentificationScorer,
    check_metrics,
    compare_modes,
    holm,
    identification_from_correlations,
    mean_and_sem,
    pixel_correlation,
    ssim,
    ssim_braindiffuser,
    two_way_identification,
)
from brainldm.metrics.scoring import SUITES

# -- protocols -------------------------------------------------------------------------------


def _pairwise_by_hand(y_true, y_pred):
    """Brain-Diffuser's loop: prediction i beats target j when r(pred_i, true_j) < r(pred_i, true_i)."""
    n = len(y_true)
    scores = []
    for i in range(n):
        own = np.corrcoef(y_pred[i], y_true[i])[0, 1]
        others = [np.corrcoef(y_pred[i], y_true[j])[0, 1] for j in range(n) if j != i]
        scores.append(np.mean([r < own for r in others]))
    return np.array(scores)


def _takagi_by_hand(y_true, y_pred):
    """The paper's utils/identification.py: per original, mean over its samples vs each distractor's."""
    n = len(y_true)
    scores = []
    for i in range(n):
        r_true = np.corrcoef(y_true[i], y_pred[i])[0, 1:]
        wins = []
        for j in range(n):
            if j != i:
                r_fake = np.corrcoef(y_true[i], y_pred[j])[0, 1:]
                wins.append(r_true.mean() > r_fake.mean())
        scores.append(sum(wins) / len(wins))
    return np.array(scores)


def test_pairwise_protocol_matches_the_peers_loop():
    rng = np.random.default_rng(0)
    y_true = rng.normal(size=(15, 20))
    y_pred = y_true + 4 * rng.normal(size=y_true.shape)
    expected = _pairwise_by_hand(y_true, y_pred)
    assert 0.6 < expected.mean() < 0.95  # neither chance nor perfect: the test can fail
    np.testing.assert_allclose(two_way_identification(y_true, y_pred, per_image=True), expected)
    assert two_way_identification(y_true, y_pred) == pytest.approx(expected.mean())
    assert two_way_identification(y_true, y_pred, protocol="pairwise") == pytest.approx(
        expected.mean()
    )


def test_takagi2023_protocol_matches_the_papers_loop():
    rng = np.random.default_rng(1)
    y_true = rng.normal(size=(12, 30))
    y_pred = y_true[:, None] + 7 * rng.normal(size=(12, 5, 30))
    expected = _takagi_by_hand(y_true, y_pred)
    assert 0.6 < expected.mean() < 0.95
    got = two_way_identification(y_true, y_pred, protocol="takagi2023", per_image=True)
    np.testing.assert_allclose(got, expected)
    assert two_way_identification(y_true, y_pred, protocol="takagi2023") == pytest.approx(
        expected.mean()
    )


def test_takagi2023_averages_correlations_over_samples_before_comparing():
    # r[j, s, i]: sample s of image j against target i. Image 0's samples
    # correlate 1 and -1 with it (mean 0): they lose against image 1's (0.2 and
    # 0.2) and beat image 2's (-0.5 and -0.5), although one of them is perfect.
    r = np.zeros((3, 2, 3))
    r[:, :, 0] = [[1.0, -1.0], [0.2, 0.2], [-0.5, -0.5]]
    r[:, :, 1] = [[0.1, 0.1], [0.9, 0.7], [0.0, 0.2]]
    r[:, :, 2] = [[0.25, 0.25], [0.25, 0.75], [0.5, 0.0]]
    scores = identification_from_correlations(r, "takagi2023", per_image=True)
    np.testing.assert_allclose(scores, [0.5, 1.0, 0.0])  # target 2: 0.25 ties 0.25, loses to 0.5


def test_the_two_protocols_count_in_different_directions():
    # r[j, i]: prediction j against target i. pairwise fixes the prediction and
    # varies the target (rows), takagi2023 fixes the target and varies the
    # prediction (columns).
    r = np.array([[0.9, 0.95, 0.1], [0.2, 0.8, 0.3], [0.0, 0.1, 0.7]])
    pairwise = identification_from_correlations(r, "pairwise", per_image=True)
    takagi = identification_from_correlations(r, "takagi2023", per_image=True)
    np.testing.assert_allclose(pairwise, [0.5, 1.0, 1.0])
    np.testing.assert_allclose(takagi, [1.0, 0.5, 1.0])


def test_both_protocols_are_at_chance_for_unrelated_predictions():
    rng = np.random.default_rng(2)
    pairwise = [
        two_way_identification(rng.normal(size=(40, 20)), rng.normal(size=(40, 20)))
        for _ in range(10)
    ]
    takagi = [
        two_way_identification(
            rng.normal(size=(40, 20)), rng.normal(size=(40, 5, 20)), protocol="takagi2023"
        )
        for _ in range(10)
    ]
    assert abs(np.mean(pairwise) - 0.5) < 0.03
    assert abs(np.mean(takagi) - 0.5) < 0.03


def test_identification_from_correlations_agrees_with_features():
    rng = np.random.default_rng(3)
    y_true = rng.normal(size=(8, 10))
    y_pred = y_true[:, None] + rng.normal(size=(8, 3, 10))
    r = np.array(
        [
            [[np.corrcoef(y_pred[j, s], y_true[i])[0, 1] for i in range(8)] for s in range(3)]
            for j in range(8)
        ]
    )
    for protocol, pred in (("pairwise", y_pred[:, 0]), ("takagi2023", y_pred)):
        assert identification_from_correlations(r, protocol) == pytest.approx(
            two_way_identification(y_true, pred, protocol=protocol)
        )


@pytest.mark.parametrize(
    ("y_true", "y_pred", "protocol", "match"),
    [
        ((1, 4), (1, 4), "pairwise", "at least 2 images"),
        ((1, 4), (1, 5, 4), "takagi2023", "at least 2 images"),
        ((5, 4), (5, 3), "pairwise", "same number of images and of features"),
        ((5, 4), (6, 4), "pairwise", "same number of images and of features"),
        ((5, 4), (6, 2, 4), "takagi2023", "same number of images and of features"),
        ((5, 4), (5, 2, 4), "pairwise", r"y_pred\[:, 0\]"),
        ((5,), (5,), "pairwise", "2-D"),
        ((5, 4), (5, 4), "pairwise_", "protocol"),
    ],
)
def test_identification_rejects_bad_input(y_true, y_pred, protocol, match):
    with pytest.raises(ValueError, match=match):
        two_way_identification(np.ones(y_true), np.ones(y_pred), protocol=protocol)


def test_identification_from_correlations_rejects_non_square_correlations():
    with pytest.raises(ValueError, match="shape"):
        identification_from_correlations(np.ones((3, 2, 4)))


# -- image metrics ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scenes():
    stimuli = make_stimuli(24, seed=11)
    rng = np.random.default_rng(0)
    noisy = np.clip(stimuli.images + rng.normal(0, 25, stimuli.images.shape), 0, 255)
    return stimuli.images, noisy.astype(np.uint8)


def test_pixel_correlation_resizes_the_reconstruction_to_the_original(scenes):
    originals, noisy = scenes
    big = np.stack([np.asarray(Image.fromarray(x).resize((100, 100))) for x in noisy[:3]])
    got = pixel_correlation(originals[:3], big, interpolation="bicubic")
    back = [np.asarray(Image.fromarray(x).resize((85, 85), Image.Resampling.BICUBIC)) for x in big]
    expected = [
        np.corrcoef(o.ravel() / 255, b.ravel() / 255)[0, 1]
        for o, b in zip(originals[:3], back, strict=True)
    ]
    np.testing.assert_allclose(got, expected)


def test_the_two_ssims_are_the_2d_one_and_the_mean_of_column_ssims(scenes):
    from skimage.color import rgb2gray
    from skimage.metrics import structural_similarity

    originals, noisy = scenes
    settings = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0)
    a, b = rgb2gray(originals[0] / 255.0), rgb2gray(noisy[0] / 255.0)
    columns = [structural_similarity(b[:, k], a[:, k], **settings) for k in range(a.shape[1])]
    assert ssim_braindiffuser(originals[:1], noisy[:1])[0] == pytest.approx(np.mean(columns))
    assert ssim(originals[:1], noisy[:1])[0] == pytest.approx(
        structural_similarity(b, a, **settings)
    )
    # They differ, by far on some images.
    assert np.abs(ssim(originals, noisy) - ssim_braindiffuser(originals, noisy)).max() > 0.3


def test_image_metrics_reject_different_counts(scenes):
    originals, noisy = scenes
    with pytest.raises(ValueError, match="one reconstruction per original"):
        ssim(originals[:3], noisy[:2])


# -- the scorer ------------------------------------------------------------------------------

TOY = ("toy_early", "toy_middle", "toy_late", "toy_embedding", "toy_colour", "toy_shape")
TOY = (*TOY, "toy_background")


def test_toy_suite_is_perfect_on_the_originals_and_at_chance_when_shuffled(scenes):
    originals, _ = scenes
    scorer = IdentificationScorer(suite="toy")
    assert list(scorer.score(originals, originals)) == ["pixcorr", "ssim", *TOY]
    assert all(v == pytest.approx(1.0) for v in scorer.score(originals, originals).values())
    shuffled = originals[np.random.default_rng(0).permutation(len(originals))]
    scores = scorer.score(originals, shuffled)
    for metric in ("toy_early", "toy_middle", "toy_late", "toy_embedding"):
        assert 0.3 < scores[metric] < 0.7, (metric, scores[metric])
    assert scores["pixcorr"] < 0.3
    assert scores["toy_shape"] < 0.5


def test_per_image_scores_average_to_the_scores(scenes):
    originals, noisy = scenes
    scorer = IdentificationScorer(["toy_embedding", "toy_shape", "ssim"], suite="toy")
    scores = scorer.score(originals, noisy)
    per_image = scorer.score(originals, noisy, per_image=True)
    assert {k: v.shape for k, v in per_image.items()} == {k: (24,) for k in scores}
    assert {k: np.mean(v) for k, v in per_image.items()} == pytest.approx(scores)
    assert 0.5 < scores["toy_embedding"] < 1.0  # the noise does cost something


def test_scorer_identification_equals_the_protocols_on_the_networks_features(scenes):
    from brainldm.features.perceptual import ToyPerceptualFeatures

    originals, noisy = scenes
    samples = np.stack([noisy, originals[::-1], noisy[::-1]], axis=1)  # (24, 3, 85, 85, 3)
    extractor = ToyPerceptualFeatures("late")
    true = extractor.extract_layers(originals)["late"]
    pred = extractor.extract_layers(samples.reshape(-1, 85, 85, 3))["late"].reshape(24, 3, -1)
    for protocol, sample in (("pairwise", 0), ("pairwise", 2), ("takagi2023", 0)):
        scorer = IdentificationScorer(
            ["toy_late"], suite="toy", protocol=protocol, sample_index=sample
        )
        got = scorer.score(originals, samples, per_image=True)["toy_late"]
        y_pred = pred if protocol == "takagi2023" else pred[:, sample]
        expected = two_way_identification(true, y_pred, protocol=protocol, per_image=True)
        np.testing.assert_allclose(got, expected, atol=1e-6)
    # pairwise scores one sample per image: the first, the noisy one, by default.
    pairwise = IdentificationScorer(["toy_late"], suite="toy").score(originals, samples)
    assert pairwise["toy_late"] == pytest.approx(two_way_identification(true, pred[:, 0]))


def test_takagi2023_averages_per_image_metrics_over_samples(scenes):
    originals, noisy = scenes
    samples = np.stack([originals, noisy], axis=1)
    scorer = IdentificationScorer(["pixcorr", "toy_colour"], suite="toy", protocol="takagi2023")
    got = scorer.score(originals, samples, per_image=True)
    np.testing.assert_allclose(got["pixcorr"], (1 + pixel_correlation(originals, noisy)) / 2)
    assert set(np.unique(got["toy_colour"])) <= {0.5, 1.0}


def test_suites_offer_the_peers_layers_and_sizes():
    bd, me, tn = (SUITES[name]["taps"] for name in ("braindiffuser", "mindeye", "takagi2023"))
    assert (bd["alexnet2"]["layer"], bd["alexnet5"]["layer"], bd["alexnet2"]["size"]) == (
        "features.4",
        "features.11",
        224,
    )
    assert (me["alexnet2"]["size"], me["inception"]["size"], me["effnet"]["size"]) == (
        256,
        342,
        255,
    )
    assert [tn[m]["layer"] for m in ("alexnet2", "alexnet5", "alexnet7", "inception")] == [
        "features.5",
        "features.12",
        "classifier.5",
        "flatten",
    ]
    assert (tn["alexnet2"]["size"], tn["alexnet2"]["crop"], tn["clip"]["interpolation"]) == (
        299,
        True,
        "bicubic",
    )
    assert SUITES["toy"]["metrics"] == ("pixcorr", "ssim", *TOY)


_NOWHERE = {network: "/nonexistent/weights" for network in ("alexnet", "clip", "toy")}


@pytest.mark.parametrize(
    ("params", "originals", "reconstructions", "match"),
    [
        (dict(suite="mine"), (4, 32, 32, 3), (4, 32, 32, 3), "suite"),
        (dict(protocol="threeway"), (4, 32, 32, 3), (4, 32, 32, 3), "protocol"),
        (dict(metrics=["alexnet2", "lpips"]), (4, 32, 32, 3), (4, 32, 32, 3), r"\['lpips'\]"),
        (dict(suite="toy", metrics=["clip_h6"]), (4, 32, 32, 3), (4, 32, 32, 3), "clip_h6"),
        (dict(metrics=[]), (4, 32, 32, 3), (4, 32, 32, 3), "choose among"),
        (dict(weights={"vgg": "x"}), (4, 32, 32, 3), (4, 32, 32, 3), "vgg"),
        (dict(batch_size=0), (4, 32, 32, 3), (4, 32, 32, 3), "batch_size"),
        (
            dict(sample_index=-1),
            (4, 32, 32, 3),
            (4, 32, 32, 3),
            r"'sample_index' parameter of IdentificationScorer must be an int in the range \[0",
        ),
        ({}, (1, 32, 32, 3), (1, 32, 32, 3), "at least 2 images"),
        ({}, (4, 32, 32, 3), (3, 32, 32, 3), "4 images but reconstructions has 3"),
        ({}, (4, 32, 32), (4, 32, 32, 3), "originals must have shape"),
        ({}, (4, 32, 32, 3), (4, 2, 2, 32, 32, 3), "reconstructions must have shape"),
        (dict(sample_index=2), (4, 32, 32, 3), (4, 2, 32, 32, 3), "sample_index=2"),
        (dict(metrics=["ssim"]), (4, 8, 8, 3), (4, 8, 8, 3), "at least 11 px"),
    ],
)
def test_scorer_rejects_bad_input_before_loading_anything(
    params, originals, reconstructions, match
):
    # The weights point nowhere: any loading would raise FileNotFoundError instead.
    scorer = IdentificationScorer(**{"weights": _NOWHERE, **params})
    with pytest.raises(ValueError, match=match):
        scorer.score(np.zeros(originals, np.uint8), np.zeros(reconstructions, np.uint8))


def test_scorer_rejects_float_images():
    scorer = IdentificationScorer(suite="toy", weights=_NOWHERE)
    images = np.zeros((4, 32, 32, 3))
    with pytest.raises(ValueError, match="originals must be uint8"):
        scorer.score(images, images.astype(np.uint8))
    with pytest.raises(ValueError, match="reconstructions must be uint8"):
        scorer.score(images.astype(np.uint8), images)


def test_scorer_stores_its_parameters_unchanged():
    from sklearn.base import clone

    scorer = IdentificationScorer(metrics=("clip",), suite="takagi2023", weights={"clip": "x"})
    assert clone(scorer).get_params() == scorer.get_params()
    assert scorer.get_params()["metrics"] == ("clip",)


# -- custom metrics --------------------------------------------------------------------------


def _pixels(images):
    return images.reshape(len(images), -1)


def _pixcorr_correlations(originals, samples):
    """r[j, s, i]: the named PixCorr of sample s of reconstruction j with original i."""
    n, n_samples = samples.shape[:2]
    r = np.empty((n, n_samples, n))
    for shift in range(n):  # reconstruction j against original (j + shift) % n
        targets = np.roll(originals, -shift, axis=0)
        for s in range(n_samples):
            r[np.arange(n), s, (np.arange(n) + shift) % n] = pixel_correlation(
                targets, samples[:, s]
            )
    return r


def test_a_custom_pixel_metric_identifies_on_the_named_pixcorr(scenes):
    from sklearn.preprocessing import FunctionTransformer

    originals, noisy = scenes
    # Both at the originals' size: the toy suite's PixCorr then resizes nothing.
    samples = np.stack([noisy, originals[::-1], noisy[::-1]], axis=1)
    r = _pixcorr_correlations(originals, samples)
    pixels = ("pixels", FunctionTransformer(_pixels))
    for protocol, sample in (("pairwise", 0), ("pairwise", 2), ("takagi2023", 0)):
        scorer = IdentificationScorer(
            [pixels, "pixcorr"], suite="toy", protocol=protocol, sample_index=sample
        )
        got = scorer.score(originals, samples, per_image=True)
        r_scored = r if protocol == "takagi2023" else r[:, sample : sample + 1]
        expected = identification_from_correlations(r_scored, protocol=protocol, per_image=True)
        np.testing.assert_array_equal(got["pixels"], expected)
        own = np.einsum("isi->is", r_scored).mean(1)  # the named metric: each image's own r
        np.testing.assert_allclose(got["pixcorr"], own, rtol=1e-12)
    assert 0.5 < got["pixels"].mean() < 1.0  # noisy and flipped samples: neither chance nor all


def test_a_custom_feature_extractor_scores_as_the_named_metric_of_its_layer(scenes):
    from brainldm.features.perceptual import ToyPerceptualFeatures

    originals, noisy = scenes
    samples = np.stack([noisy, originals[::-1]], axis=1)
    extractor = ToyPerceptualFeatures("late")  # unfitted: the scorer fits a clone
    for protocol in ("pairwise", "takagi2023"):
        scorer = IdentificationScorer(["toy_late", extractor], suite="toy", protocol=protocol)
        got = scorer.score(originals, samples, per_image=True)
        assert list(got) == ["toy_late", "toyperceptualfeatures"]
        np.testing.assert_array_equal(got["toyperceptualfeatures"], got["toy_late"])
    assert not hasattr(extractor, "feature_shape_")  # the parameter is left as it was


def test_custom_metrics_keep_the_scorers_parameters_cloneable(scenes):
    from sklearn.base import clone
    from sklearn.preprocessing import FunctionTransformer

    originals, noisy = scenes
    metrics = [("pixels", FunctionTransformer(_pixels)), "toy_embedding"]
    scorer = IdentificationScorer(metrics, suite="toy")
    copy = clone(scorer)
    assert scorer.get_params()["metrics"] is metrics
    assert copy.get_params()["metrics"][0][0] == "pixels"
    assert copy.score(originals, noisy) == scorer.score(originals, noisy)


class _Constant:
    """A stateless extractor that is no scikit-learn estimator."""

    def transform(self, X):
        return np.ones((len(X) + 1, 3))


@pytest.mark.parametrize(
    ("metrics", "error", "match"),
    [
        ([object()], TypeError, r"metrics\[0\] is <object"),
        (["pixcorr", ("mine", "pixcorr")], TypeError, r"metrics\[1\].*no transform method"),
        ([_Constant], TypeError, r"metrics\[0\] is <class"),
        (5, TypeError, "metrics must be a metric name"),
        ([_Constant(), _Constant()], ValueError, "two custom metrics '_constant'.*own name"),
        ([("ssim", _Constant())], ValueError, "'ssim', which is the name of a built-in"),
        ([("", _Constant())], ValueError, "which is empty"),
        (["clipp", _Constant()], ValueError, r"metrics \['clipp'\] are not metrics"),
    ],
)
def test_bad_custom_metrics_are_refused_before_loading_anything(metrics, error, match):
    scorer = IdentificationScorer(metrics, suite="toy", weights=_NOWHERE)
    images = np.zeros((4, 32, 32, 3), np.uint8)
    with pytest.raises(error, match=match):
        scorer.score(images, images)


def test_features_of_the_wrong_number_of_images_name_the_metric(scenes):
    originals, noisy = scenes
    scorer = IdentificationScorer(["pixcorr", ("constant", _Constant())], suite="toy")
    with pytest.raises(ValueError, match=r"metric 'constant'.*shape \(25, 3\) for 24 images"):
        scorer.score(originals, noisy)


# -- checking metrics before work ------------------------------------------------------------


def test_check_metrics_resolves_names_and_extractors_in_order():
    custom = _Constant()
    resolved = check_metrics(["toy_late", custom, ("mine", custom), "toy_late"], suite="toy")
    assert resolved == {"toy_late": "toy_late", "_constant": custom, "mine": custom}
    assert list(check_metrics(suite="toy")) == list(SUITES["toy"]["metrics"])


def test_check_metrics_speaks_in_the_callers_parameter():
    with pytest.raises(ValueError, match=r"^metric='clipp' is not a metric.*'toy_embedding'"):
        check_metrics("clipp", param="metric")
    with pytest.raises(TypeError, match=r"each entry of metric must be"):
        check_metrics([object()], param="metric")


@pytest.fixture
def no_weights_anywhere(tmp_path, monkeypatch):
    """An offline machine whose caches hold no weights."""
    for variable in (
        "BRAINLDM_WEIGHTS_DIR",
        "HF_HUB_CACHE",
        "BRAINLDM_OFFLINE",
        "TRANSFORMERS_OFFLINE",
    ):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.mark.parametrize(("metric", "network"), [("alexnet5", "alexnet"), ("clip", "clip")])
def test_check_metrics_raises_the_loaders_error_at_once(no_weights_anywhere, metric, network):
    import time

    from brainldm.features.perceptual import load_perceptual_network

    start = time.perf_counter()
    with pytest.raises(FileNotFoundError) as checked:
        check_metrics(["pixcorr", metric])
    assert time.perf_counter() - start < 5
    with pytest.raises(FileNotFoundError) as loading:
        load_perceptual_network(network)
    assert str(checked.value) == str(loading.value)
    assert "HF_HUB_OFFLINE=1 declares this machine offline" in str(checked.value)
    assert check_metrics(["pixcorr", metric], load=False) == {"pixcorr": "pixcorr", metric: metric}


def test_check_metrics_finds_weights_on_disk_without_loading_them(no_weights_anywhere, tmp_path):
    from brainldm.features import MODEL_CACHE

    (tmp_path / "alexnet-owt-7be5be79.pth").write_bytes(b"not even a checkpoint")
    before = MODEL_CACHE.keys()
    metrics = check_metrics(["alexnet2", "alexnet7", "ssim"], weights={"alexnet": tmp_path})
    assert list(metrics) == ["alexnet2", "alexnet7", "ssim"]
    assert MODEL_CACHE.keys() == before
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        check_metrics(["toy_late"], weights={"toy": tmp_path})


# -- statistics ------------------------------------------------------------------------------


def test_holm_matches_the_step_down_definition():
    p = np.array([0.01, 0.04, 0.03, 0.005, np.nan])
    # sorted: 0.005*4, 0.01*3, 0.03*2, 0.04*1 -> running max 0.02, 0.03, 0.06, 0.06
    np.testing.assert_allclose(holm(p), [0.03, 0.06, 0.06, 0.02, np.nan])
    assert holm([0.5, 0.6]).tolist() == [1.0, 1.0]


def test_compare_modes_finds_the_planted_difference_only():
    rng = np.random.default_rng(0)
    n = 200
    base = {"clip": rng.uniform(0.3, 0.9, n), "alexnet2": rng.uniform(0.3, 0.9, n)}
    scores = {
        "zc": {m: v + 0.05 + 0.05 * rng.normal(size=n) for m, v in base.items()},
        "z": dict(base),
        "c": {m: v + 0.05 + 0.05 * rng.normal(size=n) for m, v in base.items()},
    }
    table = compare_modes(scores)
    assert table[["metric", "mode", "other"]].values.tolist() == [
        ["clip", "zc", "z"],
        ["clip", "zc", "c"],
        ["alexnet2", "zc", "z"],
        ["alexnet2", "zc", "c"],
    ]
    planted = table["other"] == "z"
    assert (table.loc[planted, "p_holm"] < 1e-10).all()
    assert (table.loc[~planted, "p_holm"] > 0.05).all()
    assert table["mean"].values[0] == pytest.approx(scores["zc"]["clip"].mean())
    np.testing.assert_allclose(table["p_holm"], holm(table["p"]))
    per_metric = compare_modes(scores, family="metric")
    np.testing.assert_allclose(per_metric["p_holm"][:2], holm(table["p"][:2]))
    greater = compare_modes(scores, pairs=[("z", "zc")], alternative="greater")
    assert (greater["p"] > 0.99).all()  # z is worse, not better


def test_compare_modes_rejects_unknown_modes_and_mismatched_images():
    scores = {"zc": {"clip": np.ones(5)}, "z": {"clip": np.ones(4)}}
    with pytest.raises(ValueError, match=r"\['c'\]"):
        compare_modes(scores)
    with pytest.raises(ValueError, match="5 images"):
        compare_modes(scores, pairs=[("zc", "z")])


def test_mean_and_sem_across_subjects():
    scores = {
        "subj01": {"clip": 0.77, "alexnet2": 0.83},
        "subj02": {"clip": 0.70, "alexnet2": 0.80},
        "subj05": {"clip": 0.72, "alexnet2": 0.78},
    }
    table = mean_and_sem(scores)
    clip = np.array([0.77, 0.70, 0.72])
    assert table.loc["clip", "mean"] == pytest.approx(clip.mean())
    assert table.loc["clip", "sem"] == pytest.approx(clip.std(ddof=1) / np.sqrt(3))
    assert table.loc["alexnet2", "n"] == 3
