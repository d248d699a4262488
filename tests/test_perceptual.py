"""Perceptual networks: loading weights from local files, preprocessing, layer taps, the toy net.

Every network runs through the loader that real weights go through, from
random weights saved to a temporary file in the layout of the real file
(torchvision state dicts, SwAV's prefixed checkpoint, a transformers
``save_pretrained`` folder for CLIP). Features are checked against an
independent reference: torchvision's ``create_feature_extractor`` (what
Takagi & Nishimoto and MindEye call) on the same weights, fed by
torchvision's own transforms.
"""

import pickle
import time

import numpy as np
import pytest
import torch
import torchvision
from torchvision import transforms
from torchvision.models.feature_extraction import create_feature_extractor
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

from brainldm.datasets.scenes import make_stimuli
from brainldm.features.base import MODEL_CACHE
from brainldm.features.perceptual import (
    NETWORKS,
    OFFLINE_VARIABLE,
    WEIGHTS_DIR_VARIABLE,
    AlexNetFeatures,
    CLIPVisionFeatures,
    EfficientNetFeatures,
    InceptionFeatures,
    Network,
    SwAVFeatures,
    ToyPerceptualFeatures,
    check_weights,
    find_weights,
    load_perceptual_network,
    prepare_images,
)
from brainldm.metrics import two_way_identification

_BUILD = {
    "alexnet": lambda: torchvision.models.alexnet(weights=None),
    "inception": lambda: torchvision.models.inception_v3(weights=None, init_weights=True),
    "efficientnet": lambda: torchvision.models.efficientnet_b1(weights=None),
    "swav": lambda: torchvision.models.resnet50(weights=None),
}


def _swav_checkpoint(state):
    """SwAV's file: DataParallel prefixes, a projection head and prototypes, no classifier."""
    checkpoint = {f"module.{k}": v for k, v in state.items() if not k.startswith("fc.")}
    checkpoint["module.projection_head.0.weight"] = torch.zeros(2048, 2048, dtype=torch.half)
    checkpoint["module.prototypes.weight"] = torch.zeros(3000, 128, dtype=torch.half)
    return checkpoint


def _calibrated(model):
    """A random network whose batch norms keep activations near unit scale.

    With fresh running statistics (mean 0, variance 1) the activations of a
    random EfficientNet or Inception shrink layer by layer into float32's
    denormal range, where CPUs compute a hundred times slower and every
    image's features look alike; one pass in training mode over scenes
    like the tests' sets the statistics as training would.
    """
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # a plain average over the passes
    # Inception's auxiliary head (unused in evaluation) needs 299 px: leave it out of the pass.
    aux_head = getattr(model, "AuxLogits", None)
    if aux_head is not None:
        model.AuxLogits = None
    with torch.no_grad():
        model.train()(_torchvision_pixels(make_stimuli(8, seed=99).images, 80, False))
    if aux_head is not None:
        model.AuxLogits = aux_head
    return model.eval()


@pytest.fixture(scope="session")
def weights_dir(tmp_path_factory):
    """A folder of random weights under the standard file names."""
    folder = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    for network, build in _BUILD.items():
        model = _calibrated(build())
        # AlexNet, the largest file, in half precision (the loader casts to float32);
        # the others keep batch-norm variances beyond half precision's range.
        state = (model.half() if network == "alexnet" else model).state_dict()
        if network == "swav":
            state = _swav_checkpoint(state)
        torch.save(state, folder / NETWORKS[network].file)
    return folder


@pytest.fixture(scope="session")
def clip_folder(tmp_path_factory):
    """A tiny CLIP vision model with 12 layers at CLIP's 224 px, saved as transformers saves it."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    config = CLIPVisionConfig(
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=12,
        num_attention_heads=2,
        image_size=224,
        patch_size=32,
        projection_dim=8,
    )
    folder = tmp_path_factory.mktemp("clip") / NETWORKS["clip"].file
    CLIPVisionModelWithProjection(config).eval().save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def images():
    return make_stimuli(4, seed=7).images


def _reference(network, path, layer, pixels):
    """The layer's output by create_feature_extractor on a model built as the peers build it."""
    state = torch.load(path, weights_only=True)
    if network == "swav":
        model = torchvision.models.resnet50(weights=None)
        state = {k.replace("module.", ""): v for k, v in state.items()}
        model.load_state_dict(state, strict=False)
    elif network == "inception":
        model = torchvision.models.inception_v3(
            weights=None, init_weights=False, transform_input=True
        )
        model.load_state_dict(state)
    else:
        model = _BUILD[network]()
        model.load_state_dict(state)
    model = create_feature_extractor(model.eval().float(), [layer])
    with torch.no_grad():
        return model(pixels)[layer].numpy()


def _torchvision_pixels(images, size, crop):
    resize = transforms.Resize(size) if crop else transforms.Resize((size, size))
    steps = [resize, transforms.CenterCrop(size)] if crop else [resize]
    pipeline = transforms.Compose(
        [
            *steps,
            transforms.ToTensor(),
            transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
        ]
    )
    from PIL import Image

    return torch.stack([pipeline(Image.fromarray(image)) for image in images])


@pytest.mark.filterwarnings("ignore:NOTE. The nodes obtained by tracing:UserWarning")
@pytest.mark.parametrize(
    ("cls", "network", "layer", "reference_layer", "size", "crop"),
    [
        (AlexNetFeatures, "alexnet", "features.4", "features.4", 64, False),
        (AlexNetFeatures, "alexnet", "classifier.5", "classifier.5", 64, True),
        (InceptionFeatures, "inception", "flatten", "flatten", 80, True),
        (EfficientNetFeatures, "efficientnet", "avgpool", "avgpool", 40, False),
        (SwAVFeatures, "swav", "avgpool", "avgpool", 40, False),
    ],
)
def test_torchvision_networks_match_the_peers_feature_extraction(
    cls, network, layer, reference_layer, size, crop, weights_dir, images
):
    extractor = cls(layer=layer, size=size, crop=crop, weights=weights_dir).fit(images)
    got = extractor.transform(images)
    path = weights_dir / NETWORKS[network].file
    expected = _reference(network, path, reference_layer, _torchvision_pixels(images, size, crop))
    expected = expected.reshape(len(images), -1)
    assert got.shape == expected.shape
    # Random networks shrink or grow activations by orders of magnitude: compare
    # relative to their scale, and make sure that the images' features differ.
    scale = np.abs(expected).max()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5 * scale)
    assert np.abs(expected[0] - expected[1]).max() > 1e-3 * scale


@pytest.mark.slow
def test_inception_without_the_auxiliary_classifier_loads_as_well(tmp_path, images):
    model = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=True)
    torch.save(_calibrated(model).state_dict(), tmp_path / "no_aux.pth")
    features = InceptionFeatures(size=80, weights=tmp_path / "no_aux.pth").fit_transform(images)
    assert features.shape == (4, 2048) and np.isfinite(features).all()


def test_a_checkpoint_lacking_the_backbone_is_refused(tmp_path):
    torch.save({"module.conv1.weight": torch.zeros(64, 3, 7, 7)}, tmp_path / "bad.pth.tar")
    with pytest.raises(ValueError, match="no SwAV ResNet-50 checkpoint"):
        load_perceptual_network("swav", weights=tmp_path / "bad.pth.tar")


def test_clip_taps_equal_the_models_own_outputs(clip_folder, images):
    from transformers import CLIPVisionModelWithProjection

    model = CLIPVisionModelWithProjection.from_pretrained(clip_folder).eval()
    extractor = CLIPVisionFeatures(weights=clip_folder)
    layers = ["image_embeds", "hidden_states.0", "hidden_states.6", "hidden_states.12"]
    got = extractor.extract_layers(images, layers)
    assert got["hidden_states.6"].shape == (4, 50, 16)
    pixels = prepare_images(images, 224, crop=True, interpolation="bicubic") / 255.0
    mean, std = np.array(OPENAI_CLIP_MEAN), np.array(OPENAI_CLIP_STD)
    pixels = torch.from_numpy(((pixels - mean) / std).transpose(0, 3, 1, 2)).float()
    with torch.no_grad():
        output = model(pixel_values=pixels, output_hidden_states=True)
    np.testing.assert_allclose(
        got["image_embeds"], output.image_embeds.numpy(), rtol=1e-4, atol=1e-5
    )
    for k in (0, 6, 12):
        expected = output.hidden_states[k].numpy()
        np.testing.assert_allclose(got[f"hidden_states.{k}"], expected, rtol=1e-4, atol=1e-5)


def test_clip_loads_from_a_full_clip_model_folder(tmp_path, images):
    # The real checkpoint is a CLIPModel (text and vision); the vision tower and
    # its projection load from it and give the model's image features.
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(1)
    config = CLIPConfig(
        text_config=dict(
            hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2
        ),
        vision_config=dict(
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=32,
            patch_size=8,
        ),
        projection_dim=8,
    )
    full = CLIPModel(config).eval()
    full.save_pretrained(tmp_path)
    got = CLIPVisionFeatures(size=32, weights=tmp_path).fit_transform(images)
    pixels = prepare_images(images, 32, crop=True, interpolation="bicubic") / 255.0
    pixels = (pixels - np.array(OPENAI_CLIP_MEAN)) / np.array(OPENAI_CLIP_STD)
    pixels = torch.from_numpy(pixels.transpose(0, 3, 1, 2)).float()
    with torch.no_grad():
        expected = full.visual_projection(full.vision_model(pixel_values=pixels).pooler_output)
    np.testing.assert_allclose(got, expected.numpy(), rtol=1e-4, atol=1e-5)


def test_each_network_is_loaded_once_per_weights_and_device(weights_dir, images):
    first = load_perceptual_network("efficientnet", weights=weights_dir)
    assert load_perceptual_network("efficientnet", weights=weights_dir, device="cpu") is first
    loaded = set(MODEL_CACHE.keys())
    EfficientNetFeatures(weights=weights_dir, size=32).fit_transform(images)
    assert set(MODEL_CACHE.keys()) == loaded  # the extractor found the network loaded above
    assert load_perceptual_network("efficientnet", weights=weights_dir) is first
    half = load_perceptual_network("efficientnet", weights=weights_dir, dtype="bfloat16")
    assert half is not first and next(half.parameters()).dtype == torch.bfloat16
    assert not first.training and not any(p.requires_grad for p in first.parameters())
    key = ("perceptual", "efficientnet", str(weights_dir / NETWORKS["efficientnet"].file))
    assert key + ("cpu", "torch.float32") in MODEL_CACHE.keys()


def test_the_weights_folder_variable_is_read(weights_dir, monkeypatch, images):
    monkeypatch.setenv(WEIGHTS_DIR_VARIABLE, str(weights_dir))
    assert find_weights("alexnet") == (str(weights_dir / "alexnet-owt-7be5be79.pth"), True)
    assert AlexNetFeatures(size=64).fit_transform(images).shape == (4, 192 * 7 * 7)


@pytest.mark.parametrize("network", sorted(NETWORKS))
def test_missing_weights_name_the_file_its_source_and_where_to_put_it(
    network, tmp_path, monkeypatch
):
    monkeypatch.setenv(WEIGHTS_DIR_VARIABLE, str(tmp_path))
    spec = NETWORKS[network]
    with pytest.raises(FileNotFoundError) as caught:
        load_perceptual_network(network)
    message = str(caught.value)
    assert spec.file in message and spec.url in message
    assert WEIGHTS_DIR_VARIABLE in message and str(tmp_path) in message and "weights=" in message
    with pytest.raises(FileNotFoundError, match=spec.url):
        find_weights(network, weights=tmp_path / "elsewhere")


def test_without_any_weights_setting_the_network_is_downloaded_from_its_url(monkeypatch, tmp_path):
    for variable in (WEIGHTS_DIR_VARIABLE, "HF_HUB_CACHE", *_OFFLINE):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # no CLIP cached there
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    assert find_weights("swav") == (NETWORKS["swav"].url, False)
    assert find_weights("clip") == ("openai/clip-vit-large-patch14", False)
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / NETWORKS["swav"].file).write_bytes(b"")
    assert find_weights("swav") == (str(tmp_path / "checkpoints" / NETWORKS["swav"].file), True)


@pytest.fixture
def empty_caches(tmp_path, monkeypatch):
    """Torch's and Hugging Face's caches in an empty folder, no weights folder, no offline flag."""
    for variable in (WEIGHTS_DIR_VARIABLE, "HF_HUB_CACHE", *_OFFLINE):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    return tmp_path


_OFFLINE = (OFFLINE_VARIABLE, "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


@pytest.mark.parametrize("network", ["alexnet", "clip"])
@pytest.mark.parametrize("variable", _OFFLINE)
def test_offline_loading_fails_at_once_and_quietly(
    network, variable, empty_caches, monkeypatch, capfd
):
    monkeypatch.setenv(variable, "1")
    start = time.perf_counter()
    with pytest.raises(FileNotFoundError) as caught:
        load_perceptual_network(network)
    assert time.perf_counter() - start < 5
    assert capfd.readouterr() == ("", "")  # neither "Retrying in Ns" nor "Downloading ..."
    message = str(caught.value)
    assert f"{variable}=1 declares this machine offline" in message
    assert str(empty_caches) in message and NETWORKS[network].url in message
    assert WEIGHTS_DIR_VARIABLE in message and "weights=" in message
    with pytest.raises(FileNotFoundError, match="declares this machine offline"):
        find_weights(network)


def test_weights_in_the_hugging_face_cache_are_found_offline(empty_caches, monkeypatch, images):
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    config = CLIPVisionConfig(
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=32,
        patch_size=8,
        projection_dim=8,
    )
    # The hub cache's layout: refs/main names the snapshot that holds the files.
    repo = empty_caches / "hf" / "hub" / "models--openai--clip-vit-large-patch14"
    snapshot = repo / "snapshots" / "0123abc"
    CLIPVisionModelWithProjection(config).save_pretrained(snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abc")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert find_weights("clip") == (str(snapshot), True)
    assert CLIPVisionFeatures(size=32).fit_transform(images).shape == (len(images), 8)


def test_an_unreachable_server_fails_in_one_quiet_attempt(
    empty_caches, unreachable_hub, monkeypatch, capfd
):
    import huggingface_hub

    # The hub's port, which refuses connections, serves the torchvision weights too.
    nowhere = unreachable_hub
    spec = NETWORKS["alexnet"]
    monkeypatch.setitem(
        NETWORKS, "alexnet", Network("alexnet", spec.file, f"{nowhere}/{spec.file}", spec.origin)
    )
    assert huggingface_hub.hf_hub_url("a/b", "config.json").startswith(nowhere)
    for network in ("alexnet", "clip"):
        assert find_weights(network) == (NETWORKS[network].url, False)
        start = time.perf_counter()
        with pytest.raises(FileNotFoundError, match="downloading it failed") as loading:
            load_perceptual_network(network)
        assert time.perf_counter() - start < 5, network
        with pytest.raises(FileNotFoundError) as checking:
            check_weights(network)
        assert str(checking.value) == str(loading.value)
    assert capfd.readouterr() == ("", "")
    assert not (empty_caches / "torch" / "hub" / "checkpoints" / spec.file).exists()


def test_prepare_images_resizes_as_torchvision_does_on_pil_images():
    from PIL import Image

    rng = np.random.default_rng(0)
    wide = rng.integers(0, 256, (2, 30, 47, 3), dtype=np.uint8)
    for crop, pipeline in (
        (True, transforms.Compose([transforms.Resize(20), transforms.CenterCrop(20)])),
        (False, transforms.Resize((20, 20))),
    ):
        expected = np.stack([np.asarray(pipeline(Image.fromarray(x))) for x in wide])
        np.testing.assert_array_equal(prepare_images(wide, 20, crop=crop), expected)
    bicubic = transforms.Resize(20, interpolation=transforms.InterpolationMode.BICUBIC)
    expected = np.asarray(transforms.CenterCrop(20)(bicubic(Image.fromarray(wide[0]))))
    np.testing.assert_array_equal(
        prepare_images(wide[:1], 20, interpolation="bicubic")[0], expected
    )


def test_an_unknown_layer_names_the_aliases(clip_folder, images):
    with pytest.raises(ValueError, match="no layer 'features.99'.*image_embeds"):
        CLIPVisionFeatures("features.99", weights=clip_folder).fit(images)


def test_pickling_drops_the_network_and_keeps_the_parameters(weights_dir, images):
    extractor = EfficientNetFeatures(size=32, weights=weights_dir).fit(images)
    features = extractor.transform(images)
    blob = pickle.dumps(extractor)
    assert len(blob) < 10_000
    np.testing.assert_array_equal(pickle.loads(blob).transform(images), features)


def test_toy_features_are_the_toy_nets_layers_and_heads(images):
    from brainldm.toy import load_perceptual_net

    net = load_perceptual_net()
    expected = net.features(images)
    extractor = ToyPerceptualFeatures("late").fit(images)
    np.testing.assert_allclose(extractor.transform(images), expected["late"], rtol=1e-5)
    layers = extractor.extract_layers(images, ["early", "middle", "late", "embedding"])
    assert {k: v.shape[1] for k, v in layers.items()} == {
        k: v.shape[1] for k, v in expected.items()
    }
    predicted = extractor.predict_heads(images)
    for head, labels in net.predict(images).items():
        np.testing.assert_array_equal(predicted[head], labels)
    with pytest.raises(ValueError, match="layer"):
        ToyPerceptualFeatures("fc7").fit(images)


def test_the_scorer_runs_the_networks_it_names(weights_dir, clip_folder):
    from brainldm.metrics import IdentificationScorer

    originals, others = make_stimuli(3, seed=8).images, make_stimuli(3, seed=9).images
    weights = {"alexnet": weights_dir, "efficientnet": weights_dir, "clip": clip_folder}
    scorer = IdentificationScorer(["alexnet2", "effnet", "clip"], weights=weights)
    assert scorer.score(originals, originals) == pytest.approx(
        {"alexnet2": 1.0, "effnet": 0.0, "clip": 1.0}, abs=1e-5
    )
    distance = scorer.score(originals, others)["effnet"]
    assert 0 < distance < 2


@pytest.mark.slow
@pytest.mark.parametrize("suite", ["braindiffuser", "mindeye", "takagi2023"])
def test_every_suite_runs_through_its_networks(suite, weights_dir, clip_folder):
    from brainldm.metrics import IdentificationScorer
    from brainldm.metrics.scoring import SUITES

    originals = make_stimuli(3, seed=8).images
    others = make_stimuli(3, seed=9).images
    samples = np.stack([originals, others], axis=1)  # sample 0 is the original itself
    weights = {network: weights_dir for network in _BUILD} | {"clip": clip_folder}
    protocol = "takagi2023" if suite == "takagi2023" else "pairwise"
    scorer = IdentificationScorer(suite=suite, protocol=protocol, weights=weights)
    scores = scorer.score(originals, samples[:, :1])
    assert list(scores) == list(SUITES[suite]["metrics"])
    for metric, value in scores.items():
        expected = 0.0 if metric in ("effnet", "swav") else 1.0
        assert value == pytest.approx(expected, abs=1e-5), metric
    per_image = scorer.score(originals, samples, per_image=True)
    if protocol == "pairwise":  # sample 0
        assert per_image["swav"] == pytest.approx(np.zeros(3), abs=1e-5)
    else:  # both samples, as the protocol computes it on the same features
        extractor = AlexNetFeatures("features.5", size=299, crop=True, weights=weights_dir)
        true = extractor.extract_layers(originals)["features.5"].reshape(3, -1)
        pred = extractor.extract_layers(samples.reshape(6, 85, 85, 3))["features.5"]
        expected = two_way_identification(
            true, pred.reshape(3, 2, -1), protocol="takagi2023", per_image=True
        )
        np.testing.assert_allclose(per_image["alexnet2"], expected)
