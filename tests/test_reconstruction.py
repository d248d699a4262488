"""Specification of LDMReconstructor, on a small toy world and the tiny random SD model."""

import copy
import time
import warnings

import numpy as np
import pytest
import sklearn
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, GroupKFold

from brainldm.datasets.nsd import load_nsd
from brainldm.decoding import LatentDecoder, TextDecoder
from brainldm.diffusion import StableDiffusion
from brainldm.reconstruction import (
    LDMReconstructor,
    betas_ids,
    rescale_features,
    select_samples,
)
from brainldm.ridge import cv_splits

pytestmark = pytest.mark.filterwarnings("ignore:the (smallest|largest) alpha:UserWarning")
FAST = dict(steps=4, n_samples_per_image=2, batch_size=8, metric="toy_embedding")


@pytest.fixture(scope="module")
def data(small_world):
    data = load_nsd(small_world, "subj01", progress=False)
    data.images = data.stimuli[data.images_train]
    data.texts = [data.captions[i] for i in data.images_train]
    data.test_images = data.stimuli[data.images_test]
    return data


@pytest.fixture(scope="module")
def sd(tiny_folder):
    return StableDiffusion.from_pretrained(tiny_folder)


def reconstructor(data, sd, **params):
    return LDMReconstructor(
        sd,
        latent_decoder=LatentDecoder(voxels=data.roi_masks["early"]),
        text_decoder=TextDecoder(voxels=data.roi_masks["ventral"]),
        **{**FAST, **params},
    )


def variant(fitted, **params):
    """The fitted reconstructor with other prediction settings, sharing its fitted decoders."""
    return copy.copy(fitted).set_params(**params)


@pytest.fixture(scope="module")
def fitted(data, sd):
    return reconstructor(data, sd).fit(
        data.X_train, data.images, data.texts, groups=data.images_train
    )


@pytest.mark.parametrize(
    ("mode", "shape", "decoders"),
    [
        ("zc", (3, 2, 32, 32, 3), ("z", "c")),
        ("z", (3, 2, 32, 32, 3), ("z",)),
        ("c", (3, 2, 32, 32, 3), ("c",)),
        ("coarse", (3, 1, 32, 32, 3), ("z",)),
    ],
)
def test_each_mode_fits_its_decoders_and_generates_images(data, sd, mode, shape, decoders):
    recon = reconstructor(data, sd, mode=mode, rescale=None)
    recon.fit(data.X_train, data.images, data.texts)
    assert (recon.latent_decoder_ is not None, recon.text_decoder_ is not None) == (
        "z" in decoders,
        "c" in decoders,
    )
    images = recon.predict(data.X_test[:3])
    assert images.shape == shape and images.dtype == np.uint8
    decoded = recon.decode(data.X_test[:3])
    assert (decoded.z is not None, decoded.c is not None) == ("z" in decoders, "c" in decoders)


def test_decoded_z_identifies_the_test_images(fitted, sd, data):
    from brainldm.metrics import two_way_identification

    true_z = sd.encode_images(data.test_images).reshape(len(data.test_images), -1)
    decoded = fitted.decode(data.X_test).z.reshape(len(data.X_test), -1)
    # Measured 0.753 on these 40 test images (the tiny model's z is a random projection), with
    # a standard error of 0.042 over images; shuffled pairs give 0.5 with a standard deviation
    # of 0.035. Asserted two standard errors below the measure, five above chance.
    assert two_way_identification(true_z, decoded) > 0.67


def test_train_rescaling_maps_cross_validated_spread_to_the_targets(fitted, data):
    stats = fitted.rescale_["c"]
    # Ridge shrinks: the cross-validated decoded features spread less than the targets.
    assert np.median(stats.decoded_std / np.maximum(stats.target_std, 1e-12)) < 0.8
    raw = fitted.text_decoder_.predict(data.X_test).reshape(len(data.X_test), -1)
    expected = rescale_features(
        raw, stats.decoded_mean, stats.decoded_std, stats.target_mean, stats.target_std
    )
    np.testing.assert_allclose(
        fitted.decode(data.X_test).c.reshape(len(raw), -1), expected, rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("decoder_params", [{}, dict(standardize=False, fit_intercept=False)])
def test_train_statistics_refit_each_fold_as_the_decoder_fits(data, sd, decoder_params):
    # With one alpha the folds' own search and the decoder's choice agree, so refitting at
    # the chosen alphas must give what cloning and fitting the decoder per fold gives.
    decoder = LatentDecoder(alphas=[100.0], voxels=data.roi_masks["early"], **decoder_params)
    recon = LDMReconstructor(sd, latent_decoder=decoder, mode="z", **FAST)
    recon.fit(data.X_train, data.images, groups=data.images_train)
    Y = sd.encode_images(list(data.images)).reshape(len(data.images), -1)
    groups = data.images_train
    expected = np.empty(Y.shape)
    for train, test in cv_splits(5, len(Y), groups):
        fold = clone(decoder).fit(data.X_train[train], Y[train], groups=groups[train])
        expected[test] = fold.predict(data.X_train[test])
    stats = recon.rescale_["z"]
    np.testing.assert_allclose(stats.decoded_mean, expected.mean(0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(stats.decoded_std, expected.std(0), rtol=1e-4, atol=1e-6)


def test_train_statistics_use_the_alphas_the_decoder_chose(data, sd, monkeypatch):
    import brainldm.ridge as module

    seen = []
    solve = module.solve_ridge
    monkeypatch.setattr(
        module, "solve_ridge", lambda *a, **k: seen.append(np.copy(a[2])) or solve(*a, **k)
    )
    recon = reconstructor(data, sd, mode="z").fit(
        data.X_train, data.images, groups=data.images_train
    )
    decoder = recon.latent_decoder_
    # The search itself never calls solve_ridge: every call is a fold refitted for the statistics.
    assert len(seen) == 5 and len(np.unique(decoder.best_alphas_)) > 1
    for alphas in seen:
        np.testing.assert_array_equal(alphas, decoder.best_alphas_)


def test_batch_rescaling_gives_the_rows_the_targets_mean_and_spread(fitted, data):
    recon = clone(fitted).set_params(rescale="batch")
    recon.fit(data.X_train, data.images, data.texts)
    z = recon.decode(data.X_test).z.reshape(len(data.X_test), -1)
    stats = recon.rescale_["z"]
    np.testing.assert_allclose(z.mean(0), stats.target_mean, atol=1e-4)
    # Dimensions that the ridge made constant (an alpha of 1e8) stay at the mean.
    raw = recon.latent_decoder_.predict(data.X_test).astype(np.float64)
    varies = raw.std(0) > 1e-5 * np.abs(raw.mean(0))
    assert varies.mean() > 0.9
    np.testing.assert_allclose(z.std(0)[varies], stats.target_std[varies], rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(z.std(0)[~varies], 0, atol=1e-5)
    with pytest.raises(ValueError, match="at least 2"):
        recon.decode(data.X_test[:1])


def test_no_rescaling_and_the_takagi2023_preset_generate_from_the_decoded_features(fitted, data):
    # 16 rows: the block decode predicts at once, so both products round alike.
    raw = fitted.latent_decoder_.predict(data.X_test[:16]).reshape(16, -1)
    for params in (dict(rescale=None), dict(preset="takagi2023")):
        recon = variant(fitted, **params)
        decoded = recon.decode(data.X_test[:16]).z.reshape(16, -1)
        np.testing.assert_allclose(decoded, raw, rtol=1e-5)


def count_calls(monkeypatch, obj, name):
    calls = []
    original = getattr(obj, name)
    monkeypatch.setattr(obj, name, lambda *a, **k: calls.append(1) or original(*a, **k))
    return calls


def test_fits_with_a_memory_encode_each_training_set_once(data, sd, tmp_path, monkeypatch):
    recon = reconstructor(data, sd, mode="coarse", rescale=None, memory=tmp_path)
    calls = count_calls(monkeypatch, sd, "encode_images")
    first = recon.fit(data.X_train, data.images).decode(data.X_test).z
    np.testing.assert_array_equal(
        clone(recon).fit(data.X_train, data.images).decode(data.X_test).z, first
    )
    assert len(calls) == 1
    # A grid search over generation settings: each fold's training images are encoded once,
    # not once per grid point, and the refit on all rows reuses the first fit's targets.
    search = GridSearchCV(recon, {"batch_size": [4, 8], "strength": [0.6, 0.8]}, cv=2)
    search.fit(data.X_train, data.images)
    assert len(calls) == 1 + 2


def test_fits_without_a_memory_write_nothing_and_encode_each_time(data, sd, monkeypatch):
    recon = reconstructor(data, sd, mode="coarse", rescale=None)
    calls = count_calls(monkeypatch, sd, "encode_images")
    recon.fit(data.X_train, data.images)
    clone(recon).fit(data.X_train, data.images)
    assert len(calls) == 2


def test_a_model_changed_in_its_folder_has_its_targets_encoded_again(
    data, tiny_folder, tmp_path, retrain_in_place
):
    import shutil

    folder = shutil.copytree(tiny_folder, tmp_path / "model")

    def decoded_z():
        recon = LDMReconstructor(
            str(folder),
            latent_decoder=LatentDecoder(voxels=data.roi_masks["early"]),
            mode="coarse",
            rescale=None,
            memory=tmp_path / "cache",
            **FAST,
        )
        return recon.fit(data.X_train, data.images).decode(data.X_test[:2]).z

    first = decoded_z()
    retrain_in_place(folder, "vae")
    assert not np.allclose(decoded_z(), first)


def test_default_decoders_warn_and_name_the_roi(data, sd):
    with pytest.warns(UserWarning, match=r"voxels=data.roi_masks\['early'\]"):
        LDMReconstructor(sd, mode="coarse", rescale=None, **FAST).fit(data.X_train, data.images)


def test_predict_resumes_from_the_chunks_on_disk(fitted, data, sd, tmp_path, monkeypatch):
    X = data.X_test[:20]  # two chunks of 16 and 4 rows
    recon = variant(fitted, memory=tmp_path)
    first = recon.predict(X)
    chunks = {len(np.load(path)["images"]): path for path in tmp_path.glob("images-*.npz")}
    assert sorted(chunks) == [4, 16]
    chunks[4].unlink()  # as if interrupted before the last chunk was written
    calls = []
    original = sd.img2img
    monkeypatch.setattr(
        sd, "img2img", lambda z, *a, **k: calls.append(len(z)) or original(z, *a, **k)
    )
    np.testing.assert_array_equal(recon.predict(X), first)
    assert calls == [4]
    np.testing.assert_array_equal(recon.predict(X), first)
    assert calls == [4]


def test_chunked_generation_equals_one_call_keyed_by_the_betas(fitted, data, sd):
    X = data.X_test[:20]
    decoded = fitted.decode(X)
    whole = sd.img2img(
        decoded.z, decoded.c, steps=4, n_samples_per_image=2, strength=0.8, image_ids=betas_ids(X)
    )
    np.testing.assert_array_equal(fitted.predict(X), whole)


def test_a_rows_images_depend_on_its_betas_alone(fitted, data):
    # One sample per batch, so that every batch of the models holds the same work.
    recon = variant(fitted, batch_size=1)
    X = data.X_test[:5]
    together = recon.predict(X)
    for j in range(len(X)):
        np.testing.assert_array_equal(recon.predict(X[j : j + 1])[0], together[j])
    np.testing.assert_array_equal(recon.predict(X[::-1])[::-1], together)
    np.testing.assert_array_equal(recon.predict(X[[3, 1]]), together[[3, 1]])
    np.testing.assert_array_equal(recon.predict(X.astype(np.float32)), together)
    # Other rows' images differ: the noise follows the betas, not one seed for all.
    assert not np.array_equal(together[0], together[1])


def test_batch_sizes_change_a_rows_images_by_rounding_alone(fitted, data):
    X = data.X_test[:5]
    alone = np.concatenate([variant(fitted, batch_size=1).predict(X[j : j + 1]) for j in range(5)])
    batched = variant(fitted, batch_size=8).predict(X).astype(int)
    difference = np.abs(batched - alone)
    assert difference.max() <= 1
    assert (difference > 0).mean() < 0.01


def test_image_ids_key_the_noise_in_place_of_the_betas(fitted, data):
    X = data.X_test[:2]
    by_id = fitted.predict(X, image_ids=[5, 9])
    np.testing.assert_array_equal(fitted.predict(X[::-1], image_ids=[9, 5])[::-1], by_id)
    assert not np.array_equal(by_id, fitted.predict(X))
    # Two rows of one image share its noise: only their betas differ.
    same = fitted.predict(np.stack([X[0], X[0]]), image_ids=[5, 5])
    np.testing.assert_array_equal(same[0], same[1])
    with pytest.raises(ValueError, match="image_ids has 1 ids for 2 rows"):
        fitted.predict(X, image_ids=[5])
    with pytest.raises(ValueError, match="'image_ids' parameter of predict"):
        fitted.predict(X, image_ids=[5, -1])


def test_decoded_selection_returns_one_sample_closest_to_decoded_z(fitted, data, sd):
    recon = variant(fitted, select="decoded")
    every = fitted.predict(data.X_test[:3])
    chosen = recon.predict(data.X_test[:3])
    assert chosen.shape == every.shape[:1] + every.shape[2:]
    z = recon.decode(data.X_test[:3]).z.reshape(3, -1)
    for j in range(3):
        latents = sd.encode_images(every[j]).reshape(len(every[j]), -1)
        best = np.argmax([np.corrcoef(z[j], latent)[0, 1] for latent in latents])
        np.testing.assert_array_equal(chosen[j], every[j, best])


def test_select_samples_picks_the_sample_most_like_the_seen_image(data):
    seen = data.test_images[:4]
    candidates = np.stack([seen[[1, 2, 3, 0]], seen, seen[[2, 3, 0, 1]]], axis=1)
    selected, indices = select_samples(candidates, seen)
    assert indices.tolist() == [1, 1, 1, 1]
    np.testing.assert_array_equal(selected, seen)


def test_score_is_identification_of_averaged_repetitions(fitted, data):
    from brainldm.features.perceptual import ToyPerceptualFeatures
    from brainldm.metrics import two_way_identification

    counts = np.bincount(data.images_train)
    shown = np.flatnonzero(counts > 1)[:48]  # images seen several times
    rows = np.flatnonzero(np.isin(data.images_train, shown))
    X, images = data.X_train[rows], data.images[rows]
    owners = data.images_train[rows]

    # Images in the order the rows first show them: row k of the averaged betas draws its
    # noise from k.
    order = list(dict.fromkeys(owners))

    def by_hand(pick):
        X_image = np.stack([pick(X[owners == image]) for image in order])
        reconstructed = fitted.predict(X_image)[:, 0]
        features = ToyPerceptualFeatures()
        seen = data.stimuli[order]
        return two_way_identification(
            features.fit_transform(seen), features.fit_transform(reconstructed)
        )

    expected = by_hand(lambda trials: trials.mean(0))
    # Guards of the test's power: the tiny model is near chance (0.5004 measured, first trials
    # 0.5013), but the expected value is neither a constant 0.5 nor the first trials' score.
    assert expected != 0.5
    assert by_hand(lambda trials: trials[0]) != pytest.approx(expected)
    assert fitted.score(X, images) == pytest.approx(expected, abs=1e-12)


def test_groups_reach_the_decoders_through_metadata_routing(data, sd):
    # X_z alone, without the rescaling's extra fits, keeps the grid search quick.
    recon = reconstructor(data, sd, mode="coarse", n_samples_per_image=1, rescale=None)
    grouped = clone(recon).fit(data.X_train, data.images, groups=data.images_train)
    ungrouped = clone(recon).fit(data.X_train, data.images)
    # Repetitions of an image across folds reward weak regularisation: the folds matter.
    assert not np.array_equal(
        grouped.latent_decoder_.best_alphas_, ungrouped.latent_decoder_.best_alphas_
    )
    with sklearn.config_context(enable_metadata_routing=True):
        search = GridSearchCV(
            recon.set_fit_request(groups=True, captions=False),
            {"strength": [0.8]},
            cv=GroupKFold(2),
        )
        search.fit(data.X_train, data.images, groups=data.images_train)
    np.testing.assert_array_equal(
        search.best_estimator_.latent_decoder_.best_alphas_, grouped.latent_decoder_.best_alphas_
    )
    assert 0.0 <= search.best_score_ <= 1.0


@pytest.mark.parametrize(
    ("params", "fit_args", "message"),
    [
        (dict(mode="zz"), {}, "'mode' parameter"),
        (dict(n_samples_per_image=0), {}, "'n_samples_per_image' parameter"),
        (dict(random_state=-1), {}, "'random_state' parameter"),
        (dict(noise_schedule="ddpm"), {}, "'noise_schedule' parameter"),
        (dict(memory=3), {}, "'memory' parameter"),
        (dict(rescale="mean"), {}, "'rescale' parameter"),
        (dict(select="best"), {}, "'select' parameter"),
        (dict(mode="c", select="decoded"), {}, "mode='c' does not decode"),
        (dict(metric="clipp"), {}, "metric='clipp' is not an identification metric"),
        (dict(metric=3), {}, "'metric' parameter"),
        (dict(mode="zc"), dict(captions=None), "needs captions"),
        (dict(mode="z"), dict(images="float"), "uint8"),
        (dict(mode="z"), dict(images="few"), "rows but images has"),
    ],
)
def test_bad_input_is_rejected_before_any_work(data, sd, params, fit_args, message):
    images = {
        "float": data.images.astype(np.float32),
        "few": data.images[:5],
    }.get(fit_args.pop("images", None), data.images)
    captions = fit_args.get("captions", data.texts)
    with pytest.raises(ValueError, match=message), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reconstructor(data, sd, **params).fit(data.X_train, images, captions)


def test_nan_betas_are_located_by_row_and_column(data, sd, fitted):
    X = data.X_train.copy()
    X[3, 7] = np.nan
    with pytest.raises(ValueError, match=r"X contains 1 NaN .* \(3, 7\); drop those voxels"):
        reconstructor(data, sd, mode="z").fit(X, data.images)
    X_test = data.X_test[:4].copy()
    X_test[2, 5] = np.inf
    for method in (fitted.predict, fitted.decode):
        with pytest.raises(ValueError, match=r"1 infinite values, at \(row, column\) \(2, 5\)"):
            method(X_test)


def test_a_metric_without_weights_fails_fit_at_once_and_names_the_parameter(
    data, sd, tmp_path, monkeypatch
):
    for variable in ("TORCH_HOME", "HF_HOME", "HF_HUB_CACHE", "BRAINLDM_WEIGHTS_DIR"):
        monkeypatch.setenv(variable, str(tmp_path / variable))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    encoded = count_calls(monkeypatch, sd, "encode_images")
    start = time.perf_counter()
    # The tiny model is not the toy world's: its default metric is CLIP.
    with pytest.raises(FileNotFoundError, match=r"metric='clip', the default for this model,"):
        reconstructor(data, sd, mode="z", metric=None).fit(data.X_train, data.images)
    with pytest.raises(FileNotFoundError, match=r"metric='alexnet2' scores with a network"):
        reconstructor(data, sd, mode="z", metric="alexnet2").fit(data.X_train, data.images)
    assert time.perf_counter() - start < 5
    assert encoded == []


def test_a_feature_extractor_can_be_the_metric_of_score(fitted, data):
    from sklearn.preprocessing import FunctionTransformer

    from brainldm.metrics import IdentificationScorer

    pixels = ("pixels", FunctionTransformer(lambda images: images.reshape(len(images), -1)))
    recon = variant(fitted, metric=pixels)
    X, images = data.X_test[:6], data.test_images[:6]
    expected = IdentificationScorer([pixels]).score(images, recon.predict(X)[:, 0])["pixels"]
    assert recon.score(X, images) == pytest.approx(expected, abs=1e-12)


def test_predict_checks_fitting_and_the_number_of_voxels(data, sd, fitted):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        reconstructor(data, sd).predict(data.X_test)
    with pytest.raises(ValueError, match="features"):
        fitted.predict(data.X_test[:, :-1])
    with pytest.raises(ValueError, match="at least 2 distinct images"):
        fitted.score(data.X_test[:1], data.test_images[:1])


def test_the_takagi2023_preset_gives_every_image_the_same_noise(fitted, data):
    X = data.X_test[[0, 0]]  # one row twice, keyed as two images: the same decoded c
    ours = variant(fitted, mode="c", n_samples_per_image=1)
    original = variant(ours, preset="takagi2023")
    different, same = ours.predict(X, image_ids=[1, 2]), original.predict(X, image_ids=[1, 2])
    assert not np.array_equal(different[0], different[1])
    np.testing.assert_array_equal(same[0], same[1])


def test_the_takagi2023_preset_truncates_and_upsamples_x_z_bicubically(fitted, data, sd):
    from PIL import Image

    recon = variant(fitted, mode="coarse", preset="takagi2023")
    coarse = sd.decode_latents(recon.decode(data.X_test[:2]).z, rounding="truncate")
    size = sd.generation_size
    expected = [np.asarray(Image.fromarray(x).resize((size, size), Image.BICUBIC)) for x in coarse]
    np.testing.assert_array_equal(recon.predict(data.X_test[:2])[:, 0], np.stack(expected))
