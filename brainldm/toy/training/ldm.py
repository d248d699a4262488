"""Train the toy latent diffusion model shipped in ``brainldm/toy/ldm/``.

Run ``python -m brainldm.toy.training.ldm`` (add ``--help`` for the options).
The stages run in order, each skipped when its output exists, and each resumes
from its latest checkpoint in ``--run-dir`` when restarted with the same
command:

1. ``data``: render the training scenes with
   :func:`brainldm.datasets.scenes.make_stimuli` (seed :data:`~brainldm.toy.TRAINING_SEED`,
   distinct from the toy world's seeds) and resize them 85 -> 64 px with
   LANCZOS, as NSD's 425 px images are resized to 320 px.
2. ``vae``: an ``AutoencoderKL`` (``block_out_channels`` (32, 64, 64), one
   layer per block, 4 latent channels; 64x64 images -> 4x16x16 latents),
   trained on pixel MSE plus a small KL term, first on random 32 px crops at a
   high learning rate, then on whole images.
3. ``latents``: the VAE's scaling factor is set to 1 / (standard deviation of
   the latents' posterior modes), as SD's 0.18215 was chosen, and the scaled
   modes of all training images are stored.
4. ``unet``: a ``UNet2DConditionModel`` on the 4x16x16 latents with
   cross-attention to a ``CLIPTextModel`` (hidden size 128, 3 layers) reading
   the word-level tokenizer of :mod:`brainldm.toy.tokenizer`, trained jointly
   on DDPM's epsilon objective with SD's scaled-linear betas. One caption of
   the image's five to seven is drawn per step; 10% are replaced by the empty
   prompt so that classifier-free guidance works. The noise carries a
   per-image, per-channel offset (:func:`training_noise`), without which the
   model takes each image's background and colours from the noise it starts
   from rather than from the caption. No horizontal flips: captions name left
   and right. An exponential moving average of the weights is kept beside
   them.
5. ``export``: the SD folder layout (``model_index.json``, ``vae/``,
   ``unet/``, ``text_encoder/``, ``tokenizer/``, ``scheduler/`` with a
   ``DDIMScheduler``), safetensors weights, and ``brainldm.json`` with the
   working sizes, the toy world's fingerprint and these settings.

With ``--init-from FOLDER`` (a trained toy model) the ``vae`` stage copies
that model's VAE and the ``unet`` stage starts from its U-Net and text
encoder weights (a fresh optimizer and moving average), as when the captions
change and the images do not; ``brainldm.json`` then records the earlier
model's own record under ``training["initialised_from"]``.

The shipped model was trained in two runs on 2 shared CPU cores (fp32, torch
2.14, diffusers 0.42). For toy world version 2: the VAE for 1,200 crop steps
and 400 whole-image steps (46 minutes; held-out PSNR 30.5 dB), the U-Net and
text encoder for 16,248 steps (231 minutes, 0.7 to 0.9 s per step), the first
9,917 without offset noise (``--unet-steps 16248 --offset-noise-from-step
9917``). For version 3, whose captions seldom name the background's colour,
the U-Net and text encoder went on from that model's moving average for 3,000
steps (39 minutes) with the offset confined to timesteps t >= 900
(``--init-from <version-2 model> --unet-steps 3000 --offset-noise-min-t
900``), so that img2img from a real latent at the method's strengths (noised
to t = 801 for strength 0.8) reads the background from that latent. Both export the moving
average of the weights; ``brainldm.json`` records the same under
``training``.
"""

import argparse
import dataclasses
import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from brainldm._images import resize, to_tensor
from brainldm._io import atomic_savez
from brainldm.datasets import scenes
from brainldm.datasets.toy import TOY_WORLD_VERSION
from brainldm.toy import HELD_OUT_SEED, TOY_LDM_PATH, TRAINING_SEED
from brainldm.toy.tokenizer import build_tokenizer, save_tokenizer
from brainldm.toy.training._loop import (
    Checkpoint,
    descend,
    load_state,
    log,
    run_steps,
    save_state,
)

__all__ = [
    "STAGES",
    "Settings",
    "load_data",
    "main",
    "psnr",
    "stage_data",
    "stage_export",
    "stage_latents",
    "stage_unet",
    "stage_vae",
    "training_noise",
]

STAGES = ("data", "vae", "latents", "unet", "export")


@dataclasses.dataclass
class Settings:
    """Every setting of a training run; recorded in ``brainldm.json``."""

    seed: int = 0
    n_train: int = 20_000
    training_seed: int = TRAINING_SEED
    held_out_seed: int = HELD_OUT_SEED
    n_held_out: int = 256
    image_size: int = 64
    vae_block_out_channels: tuple = (32, 64, 64)
    vae_batch_size: int = 32
    vae_crop_size: int = 32
    vae_crop_steps: int = 1200
    vae_crop_lr: float = 2e-3
    vae_full_steps: int = 400
    vae_full_lr: float = 5e-4
    vae_kl_weight: float = 1e-6
    text_hidden_size: int = 128
    text_layers: int = 3
    text_heads: int = 4
    unet_block_out_channels: tuple = (32, 64, 64)
    unet_batch_size: int = 64
    unet_steps: int = 12000
    unet_lr: float = 5e-4
    unet_warmup_steps: int = 300
    unet_weight_decay: float = 1e-2
    caption_dropout: float = 0.1
    offset_noise: float = 0.2
    offset_noise_from_step: int = 0
    offset_noise_min_t: int = 0
    ema_decay: float = 0.999
    num_train_timesteps: int = 1000
    beta_start: float = 0.00085
    beta_end: float = 0.012
    checkpoint_minutes: float = 5.0
    init_from: str = None


# Data


def _scenes(n_images, seed, size):
    stim = scenes.make_stimuli(n_images, seed=seed)
    return resize(stim.images, size), stim


def stage_data(settings, run_dir):
    """Render the training and held-out scenes to ``run_dir / "data.npz"``, unless there."""
    path = run_dir / "data.npz"
    if path.exists():
        return
    t0 = time.time()
    images, stim = _scenes(settings.n_train, settings.training_seed, settings.image_size)
    held_out, _ = _scenes(settings.n_held_out, settings.held_out_seed, settings.image_size)
    captions = json.dumps(stim.captions)
    attributes = {f"attr_{k}": v for k, v in stim.attributes.items()}
    atomic_savez(path, dict(images=images, held_out=held_out, captions=captions, **attributes))
    log(f"data: {len(images)} training scenes in {time.time() - t0:.0f} s")


def load_data(run_dir):
    """Training scenes written by the ``data`` stage, as a dict of arrays."""
    with np.load(run_dir / "data.npz") as data:
        out = {k: data[k] for k in data.files}
    out["captions"] = json.loads(str(out["captions"]))
    return out


# VAE


def _make_vae(settings):
    from diffusers import AutoencoderKL

    n_blocks = len(settings.vae_block_out_channels)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * n_blocks,
        up_block_types=("UpDecoderBlock2D",) * n_blocks,
        block_out_channels=settings.vae_block_out_channels,
        layers_per_block=1,
        latent_channels=4,
        sample_size=settings.image_size,
    )


def psnr(reference, reconstruction):
    """Mean PSNR in dB of uint8-range images given as floats in [-1, 1]."""
    ref = (reference.clamp(-1, 1) + 1) * 127.5
    rec = ((reconstruction.clamp(-1, 1) + 1) * 127.5).round()
    mse = ((ref - rec) ** 2).flatten(1).mean(1).clamp_min(1e-10)
    return float((10 * torch.log10(255.0**2 / mse)).mean())


@torch.no_grad()
def _vae_psnr(vae, images, batch_size=64):
    vae.eval()
    values = []
    for start in range(0, len(images), batch_size):
        x = to_tensor(images[start : start + batch_size])
        z = vae.encode(x).latent_dist.mode()
        values.append(psnr(x, vae.decode(z).sample) * len(x))
    vae.train()
    return sum(values) / len(images)


def _vae_batch(images, generator, settings, cropping):
    """A batch of training images; during the crop steps, one random crop of them all."""
    batch = images[generator.integers(len(images), size=settings.vae_batch_size)]
    if cropping:
        c = settings.vae_crop_size
        top, left = generator.integers(settings.image_size - c + 1, size=2)
        batch = batch[:, top : top + c, left : left + c]
    return batch


def _copy_vae(settings, run_dir):
    """Take the VAE of the model ``settings.init_from`` instead of training one."""
    source = Path(settings.init_from)
    record = json.loads((source / "brainldm.json").read_text())
    shutil.copytree(source / "vae", run_dir / "vae_copied")
    (run_dir / "init_brainldm.json").write_text(json.dumps(record, indent=2) + "\n")
    vae_record = {
        "minutes": record["training"]["vae_minutes"],
        "held_out_psnr": record["training"]["vae_held_out_psnr"],
    }
    (run_dir / "vae_training.json").write_text(json.dumps(vae_record) + "\n")
    (run_dir / "vae_copied").rename(run_dir / "vae_trained")
    log(f"vae: copied from {source}")


def stage_vae(settings, run_dir):
    """Train the VAE, first on crops, then on whole images; write ``vae_trained/``.

    With ``settings.init_from``, copy that model's VAE instead.
    """
    final = run_dir / "vae_trained"
    if final.exists():
        return
    if settings.init_from is not None:
        return _copy_vae(settings, run_dir)
    data = load_data(run_dir)
    images, held_out = data["images"], data["held_out"]
    # Seeded before the weights are drawn, so that a stage run on its own
    # starts from the same weights as one run after the previous stages.
    torch.manual_seed(settings.seed)
    generator = np.random.default_rng(settings.seed)
    vae = _make_vae(settings)
    optimizer = torch.optim.AdamW(vae.parameters(), lr=settings.vae_crop_lr, weight_decay=0.0)
    parts = {"model": vae, "optimizer": optimizer}
    checkpoint = Checkpoint(run_dir, "vae", parts, generator, settings.checkpoint_minutes)
    checkpoint.resume()
    total = settings.vae_crop_steps + settings.vae_full_steps
    log(f"vae: {sum(p.numel() for p in vae.parameters()) / 1e6:.2f}M parameters")
    held_out_psnr = []

    def train_step(step):
        cropping = step < settings.vae_crop_steps
        x = to_tensor(_vae_batch(images, generator, settings, cropping))
        posterior = vae.encode(x).latent_dist
        reconstruction = vae.decode(posterior.sample()).sample
        loss = F.mse_loss(reconstruction, x) + settings.vae_kl_weight * posterior.kl().mean()
        return descend(optimizer, loss, settings.vae_crop_lr if cropping else settings.vae_full_lr)

    def report(step, loss):
        held_out_psnr.append(_vae_psnr(vae, held_out))
        return (
            f"vae: step {step}/{total} loss {loss:.5f} held-out PSNR {held_out_psnr[-1]:.2f} "
            f"dB, {checkpoint.elapsed / 60:.1f} min"
        )

    vae.train()
    step = run_steps(checkpoint, total, train_step, report)
    vae.save_pretrained(final)
    minutes = round(checkpoint.elapsed / 60, 1)
    record = {"steps": step, "minutes": minutes, "held_out_psnr": held_out_psnr[-1]}
    (run_dir / "vae_training.json").write_text(json.dumps(record) + "\n")


@torch.no_grad()
def stage_latents(settings, run_dir, batch_size=256):
    """Set the VAE's scaling factor and store the scaled latents of the training images."""
    from diffusers import AutoencoderKL

    path = run_dir / "latents.pt"
    if path.exists():
        return
    vae = AutoencoderKL.from_pretrained(run_dir / "vae_trained").eval()
    images = load_data(run_dir)["images"]
    modes = torch.cat(
        [
            vae.encode(to_tensor(images[s : s + batch_size])).latent_dist.mode()
            for s in range(0, len(images), batch_size)
        ]
    )
    scaling_factor = float(1.0 / modes.std())
    vae.register_to_config(scaling_factor=scaling_factor)
    vae.save_pretrained(run_dir / "vae_trained")
    save_state({"latents": modes * scaling_factor, "scaling_factor": scaling_factor}, path)
    log(f"latents: {tuple(modes.shape)}, scaling factor {scaling_factor:.4f}")


# U-Net and text encoder


def _make_text_encoder(settings, tokenizer):
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=settings.text_hidden_size,
        intermediate_size=4 * settings.text_hidden_size,
        projection_dim=settings.text_hidden_size,
        num_hidden_layers=settings.text_layers,
        num_attention_heads=settings.text_heads,
        max_position_embeddings=tokenizer.model_max_length,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return CLIPTextModel(config)


def _make_unet(settings):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=settings.image_size // 4,
        in_channels=4,
        out_channels=4,
        block_out_channels=settings.unet_block_out_channels,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        layers_per_block=1,
        cross_attention_dim=settings.text_hidden_size,
    )


def _make_models(settings, tokenizer):
    """The U-Net and the text encoder, trained and saved together; the U-Net is drawn first."""
    return torch.nn.ModuleDict(
        {"unet": _make_unet(settings), "text_encoder": _make_text_encoder(settings, tokenizer)}
    )


def _load_initial_weights(models, folder):
    """Load the U-Net and text encoder weights of the SD folder ``folder`` into ``models``."""
    from safetensors.torch import load_file

    for name, module in models.items():
        module.load_state_dict(load_file(Path(folder) / name / _WEIGHT_FILES[name]))


def _moving_average(models, decay):
    # A running mean until 1 / n falls below 1 - decay, then an exponential
    # moving average: the random initial weights do not linger in it.
    return torch.optim.swa_utils.AveragedModel(
        models,
        avg_fn=lambda averaged, current, n: (
            averaged + (current - averaged) * max(1 - decay, 1 / (int(n) + 1))
        ),
    )


_WEIGHT_FILES = {"unet": "diffusion_pytorch_model.safetensors", "text_encoder": "model.safetensors"}


def _noise_scheduler_config(settings):
    return dict(
        num_train_timesteps=settings.num_train_timesteps,
        beta_start=settings.beta_start,
        beta_end=settings.beta_end,
        beta_schedule="scaled_linear",
        prediction_type="epsilon",
        clip_sample=False,
    )


def _token_ids(tokenizer, texts):
    return tokenizer(
        texts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True
    ).input_ids


class _Captions:
    """Every caption tokenized once; draws one per image, some dropped for the empty prompt."""

    def __init__(self, tokenizer, captions, dropout):
        # An image's captions are rows first[i] .. first[i] + count[i] - 1 of the table.
        self.ids = torch.tensor(_token_ids(tokenizer, [c for cs in captions for c in cs]))
        self.count = np.array([len(cs) for cs in captions])
        self.first = np.concatenate([[0], np.cumsum(self.count)[:-1]])
        self.empty = torch.tensor(_token_ids(tokenizer, [""]))
        self.dropout = dropout

    def draw(self, idx, generator):
        """Token ids of one caption of each image ``idx``, drawn with ``generator``."""
        n = len(idx)
        rows = self.first[idx] + np.floor(generator.random(n) * self.count[idx]).astype(int)
        input_ids = self.ids[rows]
        input_ids[torch.from_numpy(generator.random(n) < self.dropout)] = self.empty
        return input_ids


def training_noise(z0, step, settings, timesteps=None):
    """Gaussian noise for the U-Net's training step ``step``, with offset noise.

    From step ``settings.offset_noise_from_step`` on, a constant drawn per
    image and channel with standard deviation ``settings.offset_noise`` is
    added to the standard normal noise. Without it, a model trained on
    SD's noise schedule reads each image's mean latent from the noisiest
    training inputs: on 16x16 latents the mean over a channel keeps a
    signal-to-noise ratio near 1 at the first sampling step (t = 961), so
    at sampling time, from pure noise, the model takes the background and
    colours from the noise and not from the caption. The offset drowns
    that leak; sampling is unchanged. With ``settings.offset_noise_min_t``
    the offset is added only at timesteps from that one up, where text to
    image starts from pure noise; below it the model learns, as SD does, to
    read a channel's mean from its input, which is what img2img hands it.

    Parameters
    ----------
    z0 : Tensor of shape (n, channels, h, w)
        Clean latents of the batch.
    step : int
        Number of U-Net steps done before this one.
    settings : Settings
        The run's settings.
    timesteps : Tensor of shape (n,), default=None
        The batch's timesteps; None adds the offset to every image.

    Returns
    -------
    noise : Tensor of the shape of ``z0``
        Drawn from torch's global generator.
    """
    noise, offset = _noise_parts(z0, step, settings)
    return noise + offset * _offset_mask(timesteps, settings)


def _noise_parts(z0, step, settings):
    """Standard normal noise and the per-channel offset (zero before its first step)."""
    noise = torch.randn_like(z0)
    if step < settings.offset_noise_from_step:
        return noise, torch.zeros_like(noise[:, :, :1, :1])
    offset = torch.randn(z0.shape[0], z0.shape[1], 1, 1, dtype=z0.dtype, device=z0.device)
    return noise, settings.offset_noise * offset


def _offset_mask(timesteps, settings):
    if timesteps is None or settings.offset_noise_min_t <= 0:
        return 1.0
    keep = torch.as_tensor(timesteps) >= settings.offset_noise_min_t
    return keep.to(torch.float32).view(-1, 1, 1, 1)


def _denoising_loss(models, z0, input_ids, step, alphas_cumprod, settings):
    """DDPM's epsilon loss on clean latents ``z0`` at random timesteps."""
    # Drawn in this order (noise, offset, timesteps) since the first runs.
    noise, offset = _noise_parts(z0, step, settings)
    t = torch.randint(0, settings.num_train_timesteps, (len(z0),))
    noise = noise + offset * _offset_mask(t, settings)
    a = alphas_cumprod[t].view(-1, 1, 1, 1)
    zt = a.sqrt() * z0 + (1 - a).sqrt() * noise
    context = models["text_encoder"](input_ids).last_hidden_state
    return F.mse_loss(models["unet"](zt, t, encoder_hidden_states=context).sample, noise)


def stage_unet(settings, run_dir):
    """Train the U-Net and the text encoder together, to ``settings.unet_steps`` steps."""
    from diffusers import DDPMScheduler

    tokenizer = build_tokenizer()
    torch.manual_seed(settings.seed + 1)
    generator = np.random.default_rng(settings.seed + 1)
    models = _make_models(settings, tokenizer)
    if settings.init_from is not None:
        _load_initial_weights(models, settings.init_from)
    ema = _moving_average(models, settings.ema_decay)
    optimizer = torch.optim.AdamW(
        models.parameters(), lr=settings.unet_lr, weight_decay=settings.unet_weight_decay
    )
    parts = {"model": models, "ema": ema, "optimizer": optimizer}
    checkpoint = Checkpoint(run_dir, "unet", parts, generator, settings.checkpoint_minutes)
    step = checkpoint.resume()
    if step >= settings.unet_steps:
        return
    latents = load_state(run_dir / "latents.pt")["latents"]
    captions = _Captions(tokenizer, load_data(run_dir)["captions"], settings.caption_dropout)
    alphas_cumprod = DDPMScheduler(**_noise_scheduler_config(settings)).alphas_cumprod
    n_params = sum(p.numel() for p in models["unet"].parameters()) / 1e6
    n_text = sum(p.numel() for p in models["text_encoder"].parameters()) / 1e6
    log(f"unet: {n_params:.2f}M parameters, text encoder {n_text:.2f}M")

    def train_step(step):
        idx = generator.integers(len(latents), size=settings.unet_batch_size)
        input_ids = captions.draw(idx, generator)
        loss = _denoising_loss(models, latents[idx], input_ids, step, alphas_cumprod, settings)
        lr = settings.unet_lr * min(1.0, (step + 1) / settings.unet_warmup_steps)
        loss = descend(optimizer, loss, lr, clip_norm=1.0)
        ema.update_parameters(models)
        return loss

    def report(step, loss):
        minutes = checkpoint.elapsed / 60
        return f"unet: step {step}/{settings.unet_steps} loss {loss:.4f}, {minutes:.1f} min"

    models.train()
    run_steps(checkpoint, settings.unet_steps, train_step, report)


# Export


def _exported_models(settings, tokenizer, state, weights):
    models = _make_models(settings, tokenizer)
    if weights == "ema":
        averaged = state["ema"].items()
        models.load_state_dict(
            {k.removeprefix("module."): v for k, v in averaged if k != "n_averaged"}
        )
    else:
        models.load_state_dict(state["model"])
    return models.eval()


def _tidy_configs(out):
    """Drop the run folder that saved configs name, and name the fast tokenizer's class."""
    for config_path in out.glob("*/config.json"):
        config = json.loads(config_path.read_text())
        if config.pop("_name_or_path", None) is not None:
            config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    index_path = out / "model_index.json"
    index = json.loads(index_path.read_text())
    index["tokenizer"] = ["transformers", "PreTrainedTokenizerFast"]
    index_path.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")


def _training_record(settings, run_dir, vae, state, weights):
    vae_record = json.loads((run_dir / "vae_training.json").read_text())
    initial = run_dir / "init_brainldm.json"
    recorded = dataclasses.asdict(settings)
    extra = {}
    if settings.init_from is not None and initial.exists():
        # The previous model's own record, not the local folder it was read from.
        previous = json.loads(initial.read_text())
        del recorded["init_from"]
        extra["initialised_from"] = {
            "toy_world_version": previous.get("toy_world_version", 2),
            "toy_world_fingerprint": previous["toy_world_fingerprint"],
            "training": previous["training"],
        }
    return {
        "image_size": settings.image_size,
        "generation_size": settings.image_size,
        "toy_world_version": TOY_WORLD_VERSION,
        "toy_world_fingerprint": scenes.stimulus_fingerprint(),
        "training": {
            **recorded,
            "vae_scaling_factor": vae.config.scaling_factor,
            "vae_minutes": vae_record["minutes"],
            "vae_held_out_psnr": round(vae_record["held_out_psnr"], 2),
            "unet_steps_done": state["step"],
            "unet_weights_shipped": weights,
            "unet_minutes": round(state["elapsed"] / 60, 1),
            "machine": "2 CPU cores, fp32",
            "torch": torch.__version__,
            **extra,
        },
    }


def stage_export(settings, run_dir, out, weights="ema"):
    """Write the SD folder from the latest U-Net checkpoint.

    ``weights`` is ``"ema"`` for the moving average of the weights or
    ``"model"`` for the weights of the last step.
    """
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline

    tokenizer = build_tokenizer()
    state = load_state(run_dir / "unet_checkpoint.pt")
    models = _exported_models(settings, tokenizer, state, weights)
    vae = AutoencoderKL.from_pretrained(run_dir / "vae_trained")
    scheduler = DDIMScheduler(
        **_noise_scheduler_config(settings), set_alpha_to_one=False, steps_offset=1
    )
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=models["text_encoder"],
        tokenizer=tokenizer,
        unet=models["unet"],
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    out = Path(out)
    pipe.save_pretrained(out, safe_serialization=True)
    save_tokenizer(tokenizer, out / "tokenizer")
    _tidy_configs(out)
    record = _training_record(settings, run_dir, vae, state, weights)
    (out / "brainldm.json").write_text(json.dumps(record, indent=2) + "\n")
    log(f"export: {out} from U-Net step {state['step']}")


# Command line


def _parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", default="runs/toy_ldm", help="checkpoints and data")
    parser.add_argument("--out", default=str(TOY_LDM_PATH), help="folder written by export")
    parser.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES))
    parser.add_argument("--vae-crop-steps", type=int, default=Settings.vae_crop_steps)
    parser.add_argument("--vae-full-steps", type=int, default=Settings.vae_full_steps)
    parser.add_argument("--unet-steps", type=int, default=Settings.unet_steps)
    parser.add_argument(
        "--offset-noise-from-step",
        type=int,
        default=Settings.offset_noise_from_step,
        help="first U-Net step whose noise has a per-channel offset",
    )
    parser.add_argument(
        "--offset-noise",
        type=float,
        default=Settings.offset_noise,
        help="standard deviation of the per-channel offset of the noise",
    )
    parser.add_argument(
        "--offset-noise-min-t",
        type=int,
        default=Settings.offset_noise_min_t,
        help="lowest timestep whose noise has the offset",
    )
    parser.add_argument(
        "--export-weights",
        choices=("ema", "model"),
        default="ema",
        help="U-Net and text encoder weights to export: moving average or last step",
    )
    parser.add_argument(
        "--init-from",
        default=None,
        help="SD folder of a trained toy model whose VAE is kept and whose U-Net and text "
        "encoder are trained on from their weights (e.g. after the captions changed)",
    )
    parser.add_argument("--threads", type=int, default=2)
    return parser


_STAGE_FUNCTIONS = dict(data=stage_data, vae=stage_vae, latents=stage_latents, unet=stage_unet)


def main(argv=None):
    """Run the stages named by ``--stages`` (all by default) in order; see ``--help``."""
    args = _parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    settings = Settings(
        vae_crop_steps=args.vae_crop_steps,
        vae_full_steps=args.vae_full_steps,
        unet_steps=args.unet_steps,
        offset_noise_from_step=args.offset_noise_from_step,
        offset_noise=args.offset_noise,
        offset_noise_min_t=args.offset_noise_min_t,
        init_from=args.init_from,
    )
    run_dir = Path(args.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    for stage in STAGES:
        if stage not in args.stages:
            continue
        t0 = time.time()
        if stage == "export":
            stage_export(settings, run_dir, args.out, weights=args.export_weights)
        else:
            _STAGE_FUNCTIONS[stage](settings, run_dir)
        log(f"{stage}: done in {(time.time() - t0) / 60:.1f} min")


if __name__ == "__main__":
    main()
