"""Randomly initialised Stable Diffusion folders, for tests and benchmarks without weights.

As diffusers' own tests do, the components are built from configurations with random
weights and saved with ``StableDiffusionPipeline.save_pretrained``, so that loading them
goes through the same code as SD v1.4. The CLIP tokenizer is built locally from a
character-level ``vocab.json`` and ``merges.txt`` (diffusers' dummy components fetch
theirs from the hub, which fails offline).
"""

import json
import string
from pathlib import Path

__all__ = ["RANDOM_MODEL_SIZES", "save_random_model"]

RANDOM_MODEL_SIZES = ("tiny", "sd-v1-4")
"""``"tiny"``: a model of a few hundred thousand weights that runs in milliseconds;
``"sd-v1-4"``: SD v1.4's architecture and shapes (about a billion weights), for timings."""

# Characters of captions; each is a token, alone and at the end of a word.
_CHARACTERS = string.ascii_lowercase + string.digits + ",.!?'-"
_MERGES = ("r e", "re d</w>", "c i", "ci r", "cir c", "circ l", "circl e</w>")


def _clip_tokenizer(folder):
    """A small byte-pair ``CLIPTokenizer`` written to ``folder`` and loaded from it."""
    from transformers import CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    tokens = ["<|startoftext|>", "<|endoftext|>"]
    tokens += list(_CHARACTERS) + [f"{char}</w>" for char in _CHARACTERS]
    tokens += ["".join(merge.split()) for merge in _MERGES]
    (folder / "vocab.json").write_text(json.dumps({token: i for i, token in enumerate(tokens)}))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(_MERGES) + "\n")
    return CLIPTokenizer(
        vocab=str(folder / "vocab.json"), merges=str(folder / "merges.txt"), model_max_length=77
    )


def _tiny_components(vocab_size):
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

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
    # As SD's 0.18215, the scaling factor gives the latents unit variance, so that the
    # noise levels of the schedule mean what they mean for SD.
    with torch.no_grad():
        pixels = torch.rand(8, 3, 32, 32) * 2 - 1
        vae.register_to_config(scaling_factor=float(1 / vae.encode(pixels).latent_dist.mean.std()))
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
            hidden_size=32,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
            vocab_size=vocab_size,
            max_position_embeddings=77,
        )
    )
    return vae, text_encoder, unet


def _sd_v1_4_components(vocab_size):
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768)
    vae = AutoencoderKL(
        block_out_channels=(128, 256, 512, 512),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=2,
        latent_channels=4,
        sample_size=512,
        scaling_factor=0.18215,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            hidden_size=768,
            intermediate_size=3072,
            num_attention_heads=12,
            num_hidden_layers=12,
            max_position_embeddings=77,
            vocab_size=max(vocab_size, 49408),
            projection_dim=768,
        )
    )
    return vae, text_encoder, unet


def save_random_model(folder, size="tiny", *, image_size=None, generation_size=None, seed=0):
    """Save a randomly initialised Stable Diffusion model in SD's folder layout.

    The scheduler folder holds a ``PNDMScheduler`` configuration, as SD v1.4's
    does, and ``model_index.json`` names no safety checker. Load the folder
    with :meth:`StableDiffusion.from_pretrained`, as SD v1.4's.

    Parameters
    ----------
    folder : str or path-like
        Where to save the model; its tokenizer's source files go to a sibling
        folder named ``<folder>-tokenizer-source``.
    size : {"tiny", "sd-v1-4"}, default="tiny"
        ``"tiny"``: the VAE halves the image side once (scale factor 2), the
        U-Net has two blocks per stage and cross-attention of width 32, the
        CLIP text encoder has hidden size 32 and 77 positions, and the VAE's
        scaling factor gives latents of unit variance. ``"sd-v1-4"``: SD
        v1.4's shapes, for timing the method at its real cost.
    image_size, generation_size : int, default=None
        Recorded in ``brainldm.json`` unless both are None.
    seed : int, default=0
        Seed of the random weights.

    Returns
    -------
    pathlib.Path
        The folder.

    Examples
    --------
    >>> import tempfile
    >>> from brainldm.diffusion import StableDiffusion, save_random_model
    >>> folder = save_random_model(tempfile.mkdtemp() + "/tiny", image_size=16, generation_size=32)
    >>> StableDiffusion.from_pretrained(folder).latent_shape
    (4, 8, 8)
    """
    import torch
    from diffusers import PNDMScheduler, StableDiffusionPipeline

    if size not in RANDOM_MODEL_SIZES:
        raise ValueError(f"size must be one of {RANDOM_MODEL_SIZES}, got {size!r}")
    folder = Path(folder)
    torch.manual_seed(seed)
    tokenizer = _clip_tokenizer(folder.parent / f"{folder.name}-tokenizer-source")
    build = _tiny_components if size == "tiny" else _sd_v1_4_components
    vae, text_encoder, unet = build(len(tokenizer))
    scheduler = PNDMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        num_train_timesteps=1000,
        skip_prk_steps=True,
        steps_offset=1,
        set_alpha_to_one=False,
    )
    StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    ).save_pretrained(folder)
    if image_size is not None or generation_size is not None:
        settings = {"image_size": image_size, "generation_size": generation_size}
        (folder / "brainldm.json").write_text(json.dumps(settings))
    return folder
