"""Specification of the fMRI decoders."""

import warnings

import numpy as np
import pytest
import sklearn
import torch
from himalaya.backend import set_backend
from himalaya.ridge import RidgeCV as HimalayaRidgeCV
from sklearn.model_selection import GridSearchCV, GroupKFold, KFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from brainldm.decoding import LatentDecoder, TextDecoder, reshape_targets
from brainldm.ridge import TAKAGI2023, RepeatedRowsWarning

ALPHAS = np.logspace(-2, 5, 8)


def betas(n_trials=150, n_voxels=40, n_roi=10, n_targets=6, noise=0.5, seed=0):
    """Trials x voxels where only the first `n_roi` voxels carry the targets."""
    weights = np.random.default_rng(42).standard_normal((n_roi, n_targets))
    rng = np.random.default_rng(seed)
    X = 5.0 + 3.0 * rng.standard_normal((n_trials, n_voxels))
    roi = X[:, :n_roi]
    Y = (roi - 5.0) / 3.0 @ weights + noise * rng.standard_normal((n_trials, n_targets))
    mask = np.zeros(n_voxels, dtype=bool)
    mask[:n_roi] = True
    return X, Y, mask


@pytest.mark.parametrize("Decoder", [LatentDecoder, TextDecoder])
def test_decoder_recovers_planted_map_from_its_roi(Decoder):
    X, Y, mask = betas()
    X_test, Y_test, _ = betas(seed=1)
    decoder = Decoder(ALPHAS, voxels=mask).fit(X, Y)
    residual = Y_test - decoder.predict(X_test)
    assert np.mean(residual**2) < 1.2 * 0.5**2
    assert decoder.score(X_test, Y_test) > 0.9
    # The betas are 5 + 3 * N(0, 1): the planted weights apply to (X - 5) / 3.
    true_weights = np.random.default_rng(42).standard_normal((10, 6))
    # Standard error of a weight: 0.5 / (sqrt(150) * 3) ~ 0.014; allow 5 of them.
    np.testing.assert_allclose(decoder.coef_, true_weights.T / 3.0, atol=0.07)


def test_mask_and_indices_select_the_same_voxels():
    X, Y, mask = betas()
    by_mask = LatentDecoder(ALPHAS, voxels=mask).fit(X, Y)
    by_index = LatentDecoder(ALPHAS, voxels=np.flatnonzero(mask)).fit(X, Y)
    np.testing.assert_allclose(by_mask.coef_, by_index.coef_)
    np.testing.assert_array_equal(by_mask.voxel_indices_, np.arange(10))


def test_standardized_fit_matches_a_standard_scaler_pipeline_and_coef_applies_to_raw_betas():
    X, Y, _ = betas()
    decoder = LatentDecoder(ALPHAS).fit(X, Y)
    pipeline = make_pipeline(StandardScaler(), LatentDecoder(ALPHAS, standardize=False)).fit(X, Y)
    np.testing.assert_allclose(decoder.predict(X), pipeline.predict(X), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(decoder.predict(X), X @ decoder.coef_.T + decoder.intercept_)
    np.testing.assert_array_equal(decoder.best_alphas_, pipeline[-1].best_alphas_)


def test_grouped_folds_stop_repeated_images_from_rewarding_memorisation():
    rng = np.random.default_rng(0)
    n_images, n_voxels = 60, 100
    image_patterns = rng.standard_normal((n_images, n_voxels))
    image_targets = rng.standard_normal((n_images, 4))  # unrelated to the patterns
    trials = rng.permutation(np.repeat(np.arange(n_images), 3))
    X = image_patterns[trials] + 0.3 * rng.standard_normal((len(trials), n_voxels))
    Y = image_targets[trials]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        leaky = LatentDecoder(ALPHAS).fit(X, Y)
        grouped = LatentDecoder(ALPHAS).fit(X, Y, groups=trials)
    # Ungrouped folds score a memorised image as a prediction; grouped folds see that
    # nothing generalises to a new image (no better than the mean: MSE ~ var(y) = 1).
    assert np.all(leaky.best_alphas_ <= 10.0)
    assert np.all(grouped.best_alphas_ >= 1000.0)
    assert np.all(leaky.cv_scores_ > -0.4)
    assert np.all(grouped.cv_scores_ < -0.95)


def repeated_images(n_images=40, repetitions=3, n_voxels=30, seed=0):
    """Trials of images shown several times: one target row per image, noisy betas."""
    rng = np.random.default_rng(seed)
    trials = rng.permutation(np.repeat(np.arange(n_images), repetitions))
    patterns = rng.standard_normal((n_images, n_voxels))
    X = patterns[trials] + 0.3 * rng.standard_normal((len(trials), n_voxels))
    return X, rng.standard_normal((n_images, 5))[trials], trials


def fit_recording(estimator, *args, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        estimator.fit(*args, **kwargs)
    return [w for w in caught if issubclass(w.category, RepeatedRowsWarning)]


def test_fit_on_repeated_images_without_groups_warns_once_at_the_users_call():
    X, Y, trials = repeated_images()
    (warning,) = fit_recording(LatentDecoder(ALPHAS), X, Y)
    assert warning.filename == __file__
    message = str(warning.message)
    assert "LatentDecoder.fit" in message and "groups=" in message
    assert "set_fit_request(groups=True)" in message
    # Repetitions reached through groups, or folds given explicitly, are the user's choice.
    assert fit_recording(LatentDecoder(ALPHAS), X, Y, groups=trials) == []
    folds = list(GroupKFold(3).split(X, Y, trials))
    assert fit_recording(LatentDecoder(ALPHAS, cv=folds), X, Y) == []
    # Rows that never repeat are no leak.
    assert fit_recording(LatentDecoder(ALPHAS), *betas()[:2]) == []
    # An encoder's repeated rows are its features.
    from brainldm.encoding import VoxelwiseEncoder

    (warning,) = fit_recording(VoxelwiseEncoder(ALPHAS), Y, X)
    assert "VoxelwiseEncoder.fit" in str(warning.message) and warning.filename == __file__


def test_an_alpha_at_the_grids_edge_is_warned_of_once_at_the_users_call():
    X, Y, _ = betas(noise=5.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        LatentDecoder((1e-3, 1e-2)).fit(X, Y)
    (warning,) = [w for w in caught if "alpha" in str(w.message)]
    assert warning.filename == __file__
    assert "largest alpha (0.01)" in str(warning.message) and "add larger alphas" in str(
        warning.message
    )


def test_repeated_images_without_groups_can_be_refused():
    X, Y, _ = repeated_images()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RepeatedRowsWarning)
        with pytest.raises(RepeatedRowsWarning, match="rows .* are equal"):
            LatentDecoder(ALPHAS).fit(X, Y)


def test_groups_given_to_a_grid_search_without_routing_are_warned_of():
    X, Y, trials = repeated_images()
    search = GridSearchCV(LatentDecoder(ALPHAS), {"standardize": [True]}, cv=GroupKFold(3))
    # Without metadata routing, groups go to the outer splitter only: the decoder's
    # inner folds split the repetitions, and say so.
    assert fit_recording(search, X, Y, groups=trials) != []
    with sklearn.config_context(enable_metadata_routing=True):
        routed = GridSearchCV(
            LatentDecoder(ALPHAS).set_fit_request(groups=True),
            {"standardize": [True]},
            cv=GroupKFold(3),
        )
        assert fit_recording(routed, X, Y, groups=trials) == []


def test_grid_search_over_a_pipeline_picks_the_informative_roi():
    X, Y, mask = betas()
    pipeline = Pipeline([("decoder", LatentDecoder(ALPHAS))])
    search = GridSearchCV(pipeline, {"decoder__voxels": [~mask, mask]}, cv=3).fit(X, Y)
    np.testing.assert_array_equal(search.best_params_["decoder__voxels"], mask)
    assert search.best_score_ > 0.9


def test_groups_reach_the_decoder_through_metadata_routing():
    X, Y, _ = betas()
    groups = np.repeat(np.arange(50), 3)
    direct = LatentDecoder(ALPHAS).fit(X, Y, groups=groups)
    with sklearn.config_context(enable_metadata_routing=True):
        decoder = LatentDecoder(ALPHAS).set_fit_request(groups=True)
        routed = make_pipeline(decoder).fit(X, Y, groups=groups)
    np.testing.assert_allclose(routed[-1].coef_, direct.coef_)
    ungrouped = LatentDecoder(ALPHAS).fit(X, Y)
    assert not np.allclose(ungrouped.cv_scores_, direct.cv_scores_)


def test_one_dimensional_y_gives_one_dimensional_predictions_and_scalar_attributes():
    X, Y, mask = betas()
    decoder = LatentDecoder(ALPHAS, voxels=mask).fit(X, Y[:, 0])
    assert decoder.predict(X).shape == (len(X),)
    assert decoder.coef_.shape == (10,)
    assert isinstance(decoder.intercept_, float)
    assert isinstance(decoder.best_alphas_, float)
    assert isinstance(decoder.cv_scores_, float)


def test_float32_betas_give_float32_weights_and_predictions():
    X, Y, _ = betas()
    decoder = TextDecoder(ALPHAS).fit(X.astype(np.float32), Y.astype(np.float32))
    assert decoder.coef_.dtype == np.float32
    assert decoder.predict(X.astype(np.float32)).dtype == np.float32


def test_fit_scans_x_and_y_for_nan_once(monkeypatch):
    # At NSD scale y is 5.5 GiB: the solver must not scan it again.
    from brainldm import ridge

    scanned, original = [], ridge.check_finite

    def recording_check_finite(array, name):
        scanned.append(name)
        return original(array, name)

    monkeypatch.setattr(ridge, "check_finite", recording_check_finite)
    X, Y, _ = betas()
    TextDecoder(ALPHAS).fit(X, Y)
    assert sorted(scanned) == ["X", "y"]


def test_takagi2023_settings_reproduce_the_original_pipeline():
    X, Y, _ = betas(n_voxels=30)
    set_backend("numpy")
    original = make_pipeline(
        StandardScaler(), HimalayaRidgeCV(alphas=np.asarray(TAKAGI2023["alphas"]))
    ).fit(X, Y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ours = LatentDecoder(**TAKAGI2023).fit(X, Y, groups=np.repeat(np.arange(50), 3))
    np.testing.assert_allclose(ours.predict(X), original.predict(X), rtol=1e-7, atol=1e-9)


def test_reshape_targets_restores_latent_and_text_shapes():
    flat = np.arange(2 * 4 * 3 * 3).reshape(2, -1)
    latents = reshape_targets(flat, (4, 3, 3))
    assert latents.shape == (2, 4, 3, 3)
    assert latents[1, 2, 0, 1] == flat[1, 2 * 9 + 1]
    with pytest.raises(ValueError, match=r"cannot reshape targets of shape \(2, 36\)"):
        reshape_targets(flat, (77, 768))


@pytest.mark.skipif(torch.cuda.is_available(), reason="the error path needs a machine without CUDA")
def test_cuda_device_without_a_gpu_raises_runtime_error():
    X, Y, _ = betas()
    with pytest.raises(RuntimeError, match="device='cuda' was requested"):
        LatentDecoder(ALPHAS, device="cuda").fit(X, Y)


X_GOOD, Y_GOOD, MASK = betas(n_trials=40, n_voxels=8, n_roi=3)


def with_value(array, row, column, value):
    array = array.copy()
    array[row, column] = value
    return array


@pytest.mark.parametrize(
    ("X", "y", "params", "groups", "message"),
    [
        (
            with_value(X_GOOD, 2, 5, np.nan),
            Y_GOOD,
            {},
            None,
            r"X contains 1 NaN and 0 infinite values, at \(row, column\) \(2, 5\)",
        ),
        (
            X_GOOD,
            with_value(Y_GOOD, 9, 1, np.inf),
            {},
            None,
            r"y contains 0 NaN and 1 infinite values, at \(row, column\) \(9, 1\)",
        ),
        (X_GOOD, Y_GOOD[:-2], {}, None, "X and y must have the same number of rows, got 40 and 38"),
        (X_GOOD[:, 0], Y_GOOD, {}, None, "Expected 2D array, got 1D array"),
        (X_GOOD[:0], Y_GOOD[:0], {}, None, r"Found array with 0 sample\(s\)"),
        (
            X_GOOD,
            Y_GOOD,
            {"voxels": MASK[:-1]},
            None,
            r"voxels is a boolean mask of shape \(7,\) but X has 8 columns",
        ),
        (X_GOOD, Y_GOOD, {"voxels": [0, 8]}, None, r"voxels holds indices outside \[0, 8\)"),
        (X_GOOD, Y_GOOD, {"alphas": [1.0, -2.0]}, None, "alphas must be positive and finite"),
        (
            X_GOOD,
            Y_GOOD,
            {},
            np.arange(39),
            r"groups must have one label per sample: got shape \(39,\) for n_samples=40",
        ),
        (
            X_GOOD,
            Y_GOOD,
            {},
            np.repeat([0, 1], 20),
            "groups has 2 distinct values, fewer than cv=5 folds",
        ),
    ],
    ids=[
        "nan-in-X",
        "inf-in-y",
        "rows-mismatch",
        "1d-X",
        "empty-X",
        "mask-length",
        "index-range",
        "negative-alpha",
        "groups-length",
        "too-few-groups",
    ],
)
def test_bad_fit_input_raises_a_value_error_that_names_the_problem(X, y, params, groups, message):
    with pytest.raises(ValueError, match=message):
        LatentDecoder(**params).fit(X, y, groups=groups)


@pytest.mark.parametrize("Decoder", [LatentDecoder, TextDecoder])
@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"standardize": "yes"}, "The 'standardize' parameter of {} must be a bool. Got 'yes'"),
        ({"fit_intercept": 1}, "The 'fit_intercept' parameter of {} must be a bool. Got 1"),
        (
            {"n_targets_batch": 0},
            r"The 'n_targets_batch' parameter of {} must be an int in the range \[1, inf\) or "
            r"None\. Got 0 instead",
        ),
        ({"progress": None}, "The 'progress' parameter of {} must be a bool. Got None"),
    ],
)
def test_decoders_check_the_constraints_they_inherit_before_any_work(Decoder, params, message):
    with pytest.raises(ValueError, match=message.format(Decoder.__name__)):
        Decoder(**params).fit(X_GOOD, Y_GOOD)


def test_predict_with_another_number_of_voxels_raises():
    decoder = LatentDecoder(ALPHAS).fit(X_GOOD, Y_GOOD)
    with pytest.raises(ValueError, match="X has 7 features, but LatentDecoder is expecting 8"):
        decoder.predict(X_GOOD[:, :7])


def test_predict_with_nan_names_where():
    decoder = LatentDecoder(ALPHAS).fit(X_GOOD, Y_GOOD)
    with pytest.raises(ValueError, match=r"X contains 1 NaN .* \(0, 3\)"):
        decoder.predict(with_value(X_GOOD, 0, 3, np.nan))


def test_kfold_splitter_ignores_groups_as_the_original_code_did():
    X, Y, _ = betas()
    plain = LatentDecoder(ALPHAS, cv=KFold(5)).fit(X, Y)
    with_groups = LatentDecoder(ALPHAS, cv=KFold(5)).fit(X, Y, groups=np.repeat(np.arange(50), 3))
    np.testing.assert_array_equal(plain.coef_, with_groups.coef_)
