"""Checks of the latents and the conditioning a model is given, against its own shapes."""

import numpy as np
import torch

from brainldm._validation import Options, check_finite, check_parameter

__all__ = ["check_conditioning", "check_latents", "check_sample_posterior"]


def check_latents(z, name, channels, shape=None):
    """``z`` as a contiguous float32 array of (n_images, channels, h, w), finite.

    Examples
    --------
    >>> check_latents(np.zeros((2, 4, 8, 8)), "z", 4).dtype
    dtype('float32')
    >>> check_latents(np.zeros((2, 4, 8, 8)), "z", 4, shape=(4, 16, 16))
    Traceback (most recent call last):
    ...
    ValueError: z must have shape (n_images, 4, 16, 16) for this model, got (2, 4, 8, 8)
    """
    z = np.ascontiguousarray(z, dtype=np.float32)
    expected = (
        f"(n_images, {', '.join(map(str, shape))})" if shape else f"(n_images, {channels}, h, w)"
    )
    if z.ndim != 4 or z.shape[1] != channels or (shape is not None and z.shape[1:] != tuple(shape)):
        raise ValueError(f"{name} must have shape {expected} for this model, got {z.shape}")
    check_finite(z, name, remedy="decode it from finite data")
    return z


def check_conditioning(c, text_shape, n_images=None):
    """``c`` as a float32 tensor of (n_images, *text_shape), or None.

    Examples
    --------
    >>> tuple(check_conditioning(np.zeros((2, 77, 32)), (77, 32)).shape)
    (2, 77, 32)
    """
    if c is None:
        return None
    c = np.asarray(c, dtype=np.float32)
    if c.ndim != 3 or c.shape[1:] != text_shape:
        raise ValueError(
            f"c must have shape (n_images, {text_shape[0]}, {text_shape[1]}) "
            f"(tokens x hidden size of this model's text encoder), got {c.shape}; encode "
            "captions with this model's encode_text"
        )
    if n_images is not None and len(c) != n_images:
        raise ValueError(
            f"c has {len(c)} rows but there are {n_images} images; pass one c per image"
        )
    return torch.from_numpy(c)


def check_sample_posterior(value, caller):
    """``value`` if it is a bool or ``"per-image"``, as ``sample_posterior`` takes.

    Examples
    --------
    >>> check_sample_posterior("per-image", "img2img")
    'per-image'
    >>> check_sample_posterior("per-sample", "img2img")
    Traceback (most recent call last):
    ...
    brainldm._validation.InvalidParameterError: The 'sample_posterior' parameter of img2img must be a bool or a str among {'per-image'}. Got 'per-sample' instead.
    """
    return check_parameter(value, "sample_posterior", caller, "boolean", Options(["per-image"]))
