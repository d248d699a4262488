"""Shared fixtures: a tiny random Stable Diffusion model saved in the standard folder layout.

The components are built from configurations with random weights, as
diffusers' own tests do, and saved with ``StableDiffusionPipeline.save_pretrained``
so that loading them exercises the same code path as SD v1.4. The CLIP
tokenizer is built locally from a character-level ``vocab.json`` and
``merges.txt`` (diffusers' dummy components fetch theirs from the hub).
"""

import json
import string
from pathlib import Path

import pytest
import torch

# Characters of test captions; each is a token, alone and at the end of a word.
_CHARACTERS = string.ascii_lowercase + string.digits + ",.!?'-"
_MERGES = ("r e", "re d</w>", "c i", "ci r", "cir c", "circ l", "circl e</w>")


def build_clip_tokenizer(folder):
    """Write a small byte-pair ``CLIPTokenizer`` to ``folder`` and return it loaded."""
    from transformers import CLIPTokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokens = ["<|startoftext|>", "<|endoftext|>"]
    tokens += list(_CHARACTERS) + [f"{char}</w>" for char in _CHARACTERS]
    tokens += ["".join(merge.split()) for merge in _MERGES]
    (folder / "vocab.json").write_text(json.dumps({token: i for i, token in enumerate(tokens)}))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(_MERGES) + "\n")
    return CLIPTokenizer(
        vocab=str(folder / "vocab.json"), merges=str(folder / "merges.txt"), model_max_length=77
    )


def make_tiny_sd(folder, *, image_size=16, generation_size=32, seed=0):
    """Save a tiny random SD model to ``folder`` and return the folder.

    The VAE halves the image side once (scale factor 2), the U-Net has two
    blocks per stage and cross-attention of width 32, the CLIP text encoder
    has hidden size 32 and 77 positions, the VAE's scaling factor gives
    latents of unit variance, and the scheduler folder holds a
    ``PNDMScheduler`` configuration as SD v1.4's does. ``brainldm.json``
    records ``image_size`` and ``generation_size`` unless both are None.
    """
    from diffusers import (
        AutoencoderKL,
        PNDMScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel

    folder = Path(folder)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=16,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        norm_num_groups=16,
    )
    vae = AutoencoderKL(
        block_out_channels=(16, 32),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        latent_channels=4,
        norm_num_groups=16,
        sample_size=32,
    )
    # As SD's 0.18215, the scaling factor gives the latents unit variance, so
    # that the noise levels of the schedule mean what they mean for SD.
    with torch.no_grad():
        pixels = torch.rand(8, 3, 32, 32) * 2 - 1
        vae.register_to_config(scaling_factor=float(1 / vae.encode(pixels).latent_dist.mean.std()))
    tokenizer_folder = folder.parent / f"{folder.name}-tokenizer-source"
    tokenizer = build_clip_tokenizer(tokenizer_folder)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
            hidden_size=32,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
            vocab_size=len(tokenizer),
            max_position_embeddings=77,
        )
    )
    scheduler = PNDMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        num_train_timesteps=1000,
        skip_prk_steps=True,
        steps_offset=1,
        set_alpha_to_one=False,
    )
    pipeline = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipeline.save_pretrained(folder)
    if image_size is not None or generation_size is not None:
        settings = {"image_size": image_size, "generation_size": generation_size}
        (folder / "brainldm.json").write_text(json.dumps(settings))
    return folder


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory):
    """The tiny SD folder, built once per test session (16 px images, 32 px generation)."""
    return make_tiny_sd(tmp_path_factory.mktemp("sd") / "tiny", image_size=16, generation_size=32)


@pytest.fixture
def retrain_in_place():
    """``retrain(folder, component)``: scale one component's weights in an SD folder by 1.1.

    The folder keeps its path and its configs, as after retraining a model in place; the
    model cache is emptied, as in a new session.
    """
    from safetensors.torch import load_file, save_file

    from brainldm.features import clear_model_cache

    def retrain(folder, component):
        (weights,) = Path(folder, component).glob("*.safetensors")
        save_file({k: v * 1.1 for k, v in load_file(weights).items()}, weights)
        clear_model_cache()

    return retrain


@pytest.fixture(scope="session")
def small_world(tmp_path_factory):
    """A toy NSD of one subject: 3 released sessions of 150 trials, 40 shared test images."""
    from brainldm.datasets.toy import make_toy_nsd

    return make_toy_nsd(
        tmp_path_factory.mktemp("world") / "nsd",
        n_sessions=4,
        n_released_sessions=3,
        trials_per_session=150,
        n_shared=40,
        subjects=("subj01",),
        progress=False,
    )


@pytest.fixture(scope="session")
def encode_world(tmp_path_factory):
    """Two subjects with 12 x 14 x 12 volumes (~530 voxels) and 100 training images each."""
    from brainldm.datasets.toy import make_toy_nsd

    return make_toy_nsd(
        tmp_path_factory.mktemp("encode-world") / "nsd",
        n_sessions=6,
        n_released_sessions=6,
        trials_per_session=60,
        n_shared=20,
        volume_shape=(12, 14, 12),
        subjects=("subj01", "subj02"),
        progress=False,
    )


@pytest.fixture(scope="session")
def toy_world(tmp_path_factory):
    """The default toy NSD (10 released sessions of 300 trials, 250 shared images), subj01 only."""
    from brainldm.datasets.toy import make_toy_nsd

    return make_toy_nsd(
        tmp_path_factory.mktemp("default-world") / "nsd", subjects=("subj01",), progress=False
    )


@pytest.fixture(scope="session")
def dask_client():
    """A local dask cluster of 2 worker processes with 1 thread each.

    Its client is current only where a test asks (``client.as_current()``),
    so that other tests see a process without a client.
    """
    import distributed

    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster, set_as_default=False) as client,
    ):
        yield client


def _chunk_tasks_run(dask_worker):
    """Ridge chunk tasks a dask worker has started (passed to ``Client.run``)."""
    return sum(
        1
        for entry in dask_worker.state.log
        if "target_chunk" in str(entry[0]) and entry[1:3] == ("ready", "executing")
    )


@pytest.fixture
def dask_tasks(dask_client):
    """A function returning how many ridge chunk tasks the cluster's workers have run."""
    return lambda: sum(dask_client.run(_chunk_tasks_run).values())
