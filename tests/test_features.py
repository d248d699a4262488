"""Specification of brainldm.features, on a tiny random model saved in the SD layout."""

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline

from brainldm.diffusion import StableDiffusion
from brainldm.features import (
    DenoisedLatentFeatures,
    LatentFeatures,
    TextFeatures,
    UNetLayerFeatures,
    content_id,
    image_caption_pairs,
)

DENOISING = dict(steps=10, strength=0.8, batch_size=4)


@pytest.fixture(scope="module")
def sd(tiny_folder):
    return StableDiffusion.from_pretrained(tiny_folder)


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(1).integers(0, 256, (5, 20, 20, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def captions():
    return [["a red circle"], ["a star", "star"], ["a ring"], ["x", "y", "z"], ["a red star"]]


@pytest.fixture(scope="module")
def pairs(images, captions):
    return image_caption_pairs(images, captions)


def test_latent_features_are_z_flattened(sd, images):
    extractor = LatentFeatures(sd).fit(images)
    features = extractor.transform(images)
    assert features.shape == (5, 4 * 8 * 8)
    assert features.dtype == np.float32
    assert extractor.feature_shape_ == sd.latent_shape
    np.testing.assert_array_equal(
        features.reshape(-1, *extractor.feature_shape_), sd.encode_images(images)
    )


def test_text_features_are_c_flattened(sd, captions):
    extractor = TextFeatures(sd)
    features = extractor.fit_transform(captions)
    assert extractor.feature_shape_ == (77, 32)
    np.testing.assert_allclose(features.reshape(-1, 77, 32), sd.encode_text(captions), atol=1e-6)


def test_denoised_latent_features_are_z_c_at_the_read_steps(sd, pairs, images, captions):
    extractor = DenoisedLatentFeatures(sd, read_steps=["early", "late"], **DENOISING)
    features = extractor.fit_transform(pairs)
    assert extractor.feature_shape_ == (2, 4, 16, 16)
    # Encoded in the extractor's batches, so that the comparison is free of the
    # float rounding that a different batch composition brings.
    x0 = sd.encode_images(images, size=sd.generation_size, batch_size=DENOISING["batch_size"])
    expected = sd.denoise(
        x0,
        sd.encode_text(captions),
        read_steps=["early", "late"],
        image_ids=_ids(pairs),
        progress=False,
        **DENOISING,
    ).latents
    np.testing.assert_allclose(features.reshape(-1, 2, 4, 16, 16), expected, atol=1e-5)


def _ids(pairs):
    return [content_id(image, texts) for image, texts in pairs]


def test_a_single_read_step_gives_the_latent_shape(sd, pairs):
    extractor = DenoisedLatentFeatures(sd, read_steps="late", **DENOISING).fit(pairs)
    assert extractor.feature_shape_ == (4, 16, 16)


def test_denoised_features_of_an_image_do_not_depend_on_its_row(sd, pairs):
    extractor = DenoisedLatentFeatures(sd, **DENOISING).fit(pairs)
    whole = extractor.transform(pairs)
    np.testing.assert_allclose(extractor.transform(pairs[[3, 0]]), whole[[3, 0]], atol=1e-4)


def test_unet_layer_features_slices_name_each_layer_and_step(sd, pairs):
    extractor = UNetLayerFeatures(
        sd, layers=["down_blocks.1", "mid_block"], read_steps=["early", "late"], **DENOISING
    )
    features = extractor.fit_transform(pairs)
    assert extractor.layers_ == ("down_blocks.1", "mid_block")
    assert extractor.feature_shapes_ == {"down_blocks.1": (64, 2, 2), "mid_block": (64, 2, 2)}
    assert features.shape == (5, 2 * 2 * 64 * 4)
    direct = sd.denoise(
        sd.encode_images(
            [p[0] for p in pairs], size=sd.generation_size, batch_size=DENOISING["batch_size"]
        ),
        sd.encode_text([p[1] for p in pairs]),
        read_steps=["early", "late"],
        layers=["mid_block"],
        pool_size=2,
        image_ids=_ids(pairs),
        progress=False,
        **DENOISING,
    )
    late_mid = features[:, extractor.feature_slices_["mid_block", "late"]]
    np.testing.assert_allclose(
        late_mid, direct.activations["mid_block"][:, 1].reshape(5, -1), atol=1e-5
    )


def test_unet_layer_features_default_to_the_models_default_layers(sd, pairs):
    extractor = UNetLayerFeatures(sd, read_steps="late", pool_size=1, **DENOISING).fit(pairs)
    assert extractor.layers_ == sd.default_layers
    assert extractor.feature_shape_ == (32 + 64 + 64 + 64 + 32,)


def test_clone_shares_the_model_object(sd):
    extractor = UNetLayerFeatures(sd, layers=["mid_block"])
    assert clone(extractor).model is sd


def test_a_named_model_is_loaded_on_first_use_not_at_construction(tiny_folder, images, monkeypatch):
    from brainldm.features import clear_model_cache

    clear_model_cache()
    loaded = []
    original = StableDiffusion.from_pretrained.__func__
    monkeypatch.setattr(
        StableDiffusion,
        "from_pretrained",
        classmethod(lambda cls, *a, **k: (loaded.append(1), original(cls, *a, **k))[1]),
    )
    extractor = LatentFeatures(tiny_folder)
    assert loaded == []
    extractor.fit(images)
    assert loaded == [1]


def test_a_pickled_extractor_leaves_the_model_behind(tiny_folder, images):
    extractor = LatentFeatures(tiny_folder).fit(images)
    data = pickle.dumps(extractor)
    assert len(data) < 2_000
    np.testing.assert_array_equal(pickle.loads(data).transform(images), extractor.transform(images))


class CountingLatentFeatures(LatentFeatures):
    """LatentFeatures that count the images they encode."""

    encoded = []

    def _extract(self, X):
        self.encoded.append(len(X))
        return super()._extract(X)


def test_pipeline_memory_caches_the_features(sd, images, tmp_path):
    y = np.arange(len(images), dtype=float)
    for _ in range(2):
        model = Pipeline(
            [("z", CountingLatentFeatures(sd)), ("ridge", Ridge())], memory=str(tmp_path)
        )
        model.fit(images, y)
    assert CountingLatentFeatures.encoded == [len(images)]
    cached = sum(f.stat().st_size for f in tmp_path.rglob("*") if f.is_file())
    assert cached < 200_000  # the features and the extractor, not the model's weights


def test_pairs_of_images_and_captions_must_match_in_number(images):
    with pytest.raises(ValueError, match="5 images but captions has 2 lists"):
        image_caption_pairs(images, [["a"], ["b"]])


def test_pair_extractors_reject_other_inputs(sd, images):
    with pytest.raises(ValueError, match=r"X must be the \(n_images, 2\) object array"):
        DenoisedLatentFeatures(sd, **DENOISING).fit(images).transform(images)


def test_a_model_of_the_wrong_type_is_named(images):
    with pytest.raises(ValueError, match="model must be a StableDiffusion.*got int"):
        LatentFeatures(3).fit(images)


def test_read_steps_are_checked_at_fit(sd, pairs):
    with pytest.raises(ValueError, match="outside the 8 steps run"):
        UNetLayerFeatures(sd, read_steps=[9], **DENOISING).fit(pairs)
