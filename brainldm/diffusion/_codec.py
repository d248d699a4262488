"""Images <-> ``z`` through the VAE, and captions -> ``c`` through the text encoder."""

import numpy as np
import torch
from tqdm.auto import tqdm

from brainldm._images import from_tensor, resize, to_tensor
from brainldm._validation import check_captions, check_int, check_options
from brainldm.diffusion._checks import check_latents
from brainldm.diffusion._rng import generator_keys, sample_generator

__all__ = ["ROUNDINGS", "CodecMixin"]

ROUNDINGS = ("round", "truncate")
"""How decoded pixels become uint8 (see :meth:`StableDiffusion.decode_latents`)."""


def _to_uint8(pixels, rounding):
    """uint8 images (n, h, w, 3) of decoded pixels (n, 3, h, w) in [-1, 1], rounded or truncated."""
    if rounding == "round":
        return from_tensor(pixels)
    # As the original code: 255 * clamp((x + 1) / 2, 0, 1), then astype(np.uint8), which truncates.
    levels = (((pixels.float() + 1) / 2).clamp(0, 1) * 255).trunc()
    return levels.to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


class CodecMixin:
    """The encoders and the decoder of :class:`StableDiffusion`."""

    def encode_images(
        self,
        images,
        *,
        size=None,
        sample_posterior=False,
        random_state=0,
        start_index=0,
        batch_size=16,
        progress=False,
    ):
        """Encode images to ``z``, the scaled VAE latent.

        Each image is resized to ``size`` with LANCZOS, scaled to [-1, 1] and
        encoded; the posterior's mode (its mean) is taken, or a sample of it
        on request, and multiplied by the VAE's scaling factor.

        Parameters
        ----------
        images : array-like of shape (n_images, height, width, 3) or sequence
            uint8 RGB images, as one array or a sequence of arrays or PIL
            images of any size.
        size : int, default=None
            Side in pixels images are resized to; ``None`` is
            :attr:`image_size`.
        sample_posterior : bool, default=False
            Draw from the posterior instead of taking its mode (the original
            code samples).
        random_state : int, default=0
            Seed of the posterior samples; image ``j`` uses a generator seeded
            from ``(random_state, start_index + j, 0)``.
        start_index : int, default=0
            Index of the first image, for the generators.
        batch_size : int, default=16
            Images encoded at once.
        progress : bool, default=False
            Show a progress bar.

        Returns
        -------
        z : ndarray of shape (n_images, channels, size / f, size / f), float32
            ``f`` is :attr:`vae_scale_factor`.

        Examples
        --------
        >>> import numpy as np
        >>> from brainldm.diffusion import StableDiffusion
        >>> sd = StableDiffusion.from_pretrained("toy")
        >>> images = np.zeros((3, 85, 85, 3), np.uint8)
        >>> sd.encode_images(images).shape
        (3, 4, 16, 16)
        >>> sd.encode_images(images, sample_posterior=True, random_state=1).shape
        (3, 4, 16, 16)
        """
        if size is None:
            size = self.image_size
        size = check_int(size, "size", "encode_images", min_val=1)
        pixels = resize(images, size)
        mean, std = self._posterior(pixels, batch_size, progress, "encode_images")
        if sample_posterior:
            keys = generator_keys(len(mean), start_index, None, "encode_images")
            noise = torch.stack(
                [
                    torch.randn(mean.shape[1:], generator=sample_generator(random_state, key, 0))
                    for key in keys
                ]
            )
            mean = mean + std * noise
        return mean.numpy()

    @torch.inference_mode()
    def _posterior(self, pixels, batch_size, progress, caller):
        """Scaled mean and standard deviation of the VAE posterior of uint8 images, on the CPU."""
        batch_size = check_int(batch_size, "batch_size", caller, min_val=1)
        scaling = self.vae.config.scaling_factor
        shift = self.vae.config.get("shift_factor") or 0.0
        means, stds = [], []
        for start in tqdm(
            range(0, len(pixels), batch_size), desc="encoding images", disable=not progress
        ):
            x = to_tensor(pixels[start : start + batch_size], self.device, self.dtype)
            posterior = self.vae.encode(x).latent_dist
            means.append(((posterior.mean.float() - shift) * scaling).cpu())
            stds.append((posterior.std.float() * scaling).cpu())
        return torch.cat(means), torch.cat(stds)

    @torch.inference_mode()
    def decode_latents(self, z, *, rounding="round", batch_size=16, progress=False):
        """Decode scaled latents to uint8 images.

        Parameters
        ----------
        z : array-like of shape (n_images, channels, h, w)
            Scaled latents, e.g. from :meth:`encode_images` or a decoder.
        rounding : {"round", "truncate"}, default="round"
            How the decoded pixels, in [0, 255], become uint8: rounded to the
            nearest level, or truncated, as the original code's
            ``astype(np.uint8)`` does (half a level darker on average).
        batch_size : int, default=16
            Latents decoded at once.
        progress : bool, default=False
            Show a progress bar.

        Returns
        -------
        images : ndarray of shape (n_images, h * f, w * f, 3), uint8
            ``f`` is :attr:`vae_scale_factor`.

        Examples
        --------
        >>> import numpy as np
        >>> from brainldm.diffusion import StableDiffusion
        >>> sd = StableDiffusion.from_pretrained("toy")
        >>> z = np.zeros((3,) + sd.latent_shape, np.float32)
        >>> sd.decode_latents(z).shape
        (3, 64, 64, 3)
        >>> truncated = sd.decode_latents(z, rounding="truncate")
        >>> sorted(np.unique(sd.decode_latents(z).astype(int) - truncated).tolist())
        [0, 1]
        """
        z = check_latents(z, "z", self.vae.config.latent_channels)
        check_options(rounding, "rounding", "decode_latents", ROUNDINGS)
        batch_size = check_int(batch_size, "batch_size", "decode_latents", min_val=1)
        shift = self.vae.config.get("shift_factor") or 0.0
        images = []
        for start in tqdm(range(0, len(z), batch_size), desc="decoding", disable=not progress):
            latents = torch.from_numpy(z[start : start + batch_size]).to(self.device, self.dtype)
            latents = latents / self.vae.config.scaling_factor + shift
            images.append(_to_uint8(self.vae.decode(latents).sample, rounding))
        return np.concatenate(images)

    @torch.inference_mode()
    def encode_text(self, captions, *, batch_size=64, progress=False):
        """Encode each image's captions to ``c``, the mean of their last hidden states.

        Parameters
        ----------
        captions : sequence of sequences of str
            One list of captions per image (a single string counts as one
            caption). Each caption is tokenized, padded or truncated to the
            tokenizer's ``model_max_length`` positions, and encoded.
        batch_size : int, default=64
            Captions encoded at once.
        progress : bool, default=False
            Show a progress bar.

        Returns
        -------
        c : ndarray of shape (n_images, tokens, hidden_size), float32
            The mean over each image's captions (77 x 768 for SD).

        Examples
        --------
        >>> from brainldm.diffusion import StableDiffusion
        >>> sd = StableDiffusion.from_pretrained("toy")
        >>> sd.encode_text([["a red circle", "a circle, red"], ["a star"]]).shape
        (2, 77, 128)
        """
        captions = check_captions(captions)
        batch_size = check_int(batch_size, "batch_size", "encode_text", min_val=1)
        flat = [text for texts in captions for text in texts]
        owner = torch.tensor([j for j, texts in enumerate(captions) for _ in texts])
        c = torch.zeros((len(captions),) + self.text_shape)
        for start in tqdm(
            range(0, len(flat), batch_size), desc="encoding text", disable=not progress
        ):
            hidden = self._encode_prompts(flat[start : start + batch_size])
            c.index_add_(0, owner[start : start + batch_size], hidden.float().cpu())
        counts = torch.tensor([len(texts) for texts in captions], dtype=torch.float32)
        return (c / counts[:, None, None]).numpy()

    def _encode_prompts(self, prompts):
        tokens = self.tokenizer(
            list(prompts),
            padding="max_length",
            max_length=self.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        )
        return self.text_encoder(tokens.input_ids.to(self.device))[0]

    def empty_prompt_embedding(self):
        """``c`` of the empty prompt, the unconditional branch of guidance, encoded once.

        Returns
        -------
        torch.Tensor of shape (1, *text_shape)
            On the model's device and in its precision.

        Examples
        --------
        >>> from brainldm.diffusion import StableDiffusion
        >>> sd = StableDiffusion.from_pretrained("toy")
        >>> tuple(sd.empty_prompt_embedding().shape[1:]) == sd.text_shape
        True
        """
        if self._empty_prompt is None:
            with torch.inference_mode():
                self._empty_prompt = self._encode_prompts([""]).to(self.dtype)
        return self._empty_prompt
