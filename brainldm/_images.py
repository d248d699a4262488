"""Images as the library passes them: uint8 RGB arrays, and tensors in [-1, 1].

Images enter as one uint8 array of shape (n, height, width, 3) or a sequence
of such arrays or PIL images; networks take float tensors (n, 3, h, w) scaled
to [-1, 1]. Every resize is LANCZOS, as NSD's 425 px images are resized to the
paper's 320 px. torch is imported inside the functions that need it.
"""

import numpy as np
from PIL import Image

from brainldm._validation import check_options

__all__ = [
    "INTERPOLATIONS",
    "check_images",
    "check_uint8",
    "from_tensor",
    "resample_filter",
    "resize",
    "to_tensor",
]

INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "lanczos")
"""Names of PIL's resizing filters that the preprocessing of the metrics offers."""


def resample_filter(interpolation, caller):
    """PIL's resizing filter named by ``interpolation``, one of :data:`INTERPOLATIONS`.

    Examples
    --------
    >>> resample_filter("bicubic", "prepare_images")
    <Resampling.BICUBIC: 3>
    """
    check_options(interpolation, "interpolation", caller, INTERPOLATIONS)
    return getattr(Image.Resampling, interpolation.upper())


def check_uint8(array, name, image=None):
    """Raise the one error of images that are not uint8, with how to convert them.

    Parameters
    ----------
    array : ndarray
        Images, or one image.
    name : str
        Name of the argument, for the message.
    image : int, default=None
        Index of the image in the argument, when ``array`` is one of them.

    Examples
    --------
    >>> import numpy as np
    >>> check_uint8(np.zeros((1, 2, 2, 3), np.uint8), "images")
    >>> check_uint8(np.zeros((1, 2, 2, 3)), "originals")
    Traceback (most recent call last):
    ...
    ValueError: originals must be uint8 in [0, 255], got float64; convert with (images * 255).round().astype(np.uint8) for images in [0, 1]
    """
    if array.dtype != np.uint8:
        where = "" if image is None else f" for image {image}"
        raise ValueError(
            f"{name} must be uint8 in [0, 255], got {array.dtype}{where}; convert with "
            "(images * 255).round().astype(np.uint8) for images in [0, 1]"
        )


def check_images(images, name="images"):
    """A list of uint8 (height, width, 3) arrays from an array or a sequence of images.

    Parameters
    ----------
    images : array-like of shape (n_images, height, width, 3) or sequence
        uint8 RGB images, as one array or a sequence of arrays or PIL images
        of any size.
    name : str, default="images"
        Name of the argument, for messages.

    Returns
    -------
    images : list of ndarray of shape (height, width, 3), uint8

    Examples
    --------
    >>> import numpy as np
    >>> [image.shape for image in check_images(np.zeros((2, 8, 6, 3), np.uint8))]
    [(8, 6, 3), (8, 6, 3)]
    >>> check_images(np.zeros((8, 8, 3), np.uint8))
    Traceback (most recent call last):
    ...
    ValueError: images must have shape (n_images, height, width, 3), got (8, 8, 3); add a leading axis for a single image (images[None])
    """
    if isinstance(images, Image.Image) or (
        hasattr(images, "ndim") and hasattr(images, "shape") and images.ndim != 4
    ):
        shape = getattr(images, "shape", getattr(images, "size", None))
        raise ValueError(
            f"{name} must have shape (n_images, height, width, 3), got {shape}; add a leading "
            f"axis for a single image ({name}[None])"
        )
    result = []
    for j, image in enumerate(images):
        array = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image)
        check_uint8(array, name, image=j)
        if array.ndim != 3 or array.shape[2] != 3:
            raise ValueError(
                f"image {j} of {name} must have shape (height, width, 3) RGB, got {array.shape}"
            )
        result.append(array)
    if not result:
        raise ValueError(f"{name} is empty; pass at least one image")
    return result


def resize(images, size):
    """Resize uint8 RGB images to ``size`` x ``size`` with LANCZOS, into one array.

    Parameters
    ----------
    images : array-like of shape (n_images, height, width, 3) or sequence
        As :func:`check_images` takes them.
    size : int
        Side of the output images in pixels.

    Returns
    -------
    resized : ndarray of shape (n_images, size, size, 3), uint8
        ``images`` itself when it is already such an array.

    Examples
    --------
    >>> import numpy as np
    >>> resize(np.zeros((2, 85, 85, 3), np.uint8), 64).shape
    (2, 64, 64, 3)
    """
    if (
        isinstance(images, np.ndarray)
        and images.dtype == np.uint8
        and images.shape[1:] == (size, size, 3)
    ):
        return images
    images = check_images(images)
    out = np.empty((len(images), size, size, 3), np.uint8)
    for j, image in enumerate(images):
        if image.shape[:2] == (size, size):
            out[j] = image
        else:
            out[j] = np.asarray(
                Image.fromarray(image).resize((size, size), Image.Resampling.LANCZOS)
            )
    return out


def to_tensor(images, device=None, dtype=None):
    """uint8 images (n, h, w, 3) -> float tensor (n, 3, h, w) in [-1, 1].

    Examples
    --------
    >>> import numpy as np
    >>> x = to_tensor(np.full((1, 2, 2, 3), 255, np.uint8))
    >>> tuple(x.shape), float(x.max())
    ((1, 3, 2, 2), 1.0)
    """
    import torch

    array = np.ascontiguousarray(images)
    check_uint8(array, "images")
    if array.ndim != 4 or array.shape[-1] != 3:
        raise ValueError(
            f"images must have shape (n_images, height, width, 3), got {array.shape}; add a "
            "leading axis for a single image (images[None])"
        )
    x = torch.from_numpy(array).to(device=device).permute(0, 3, 1, 2)
    return (x.to(dtype or torch.float32) / 127.5) - 1.0


def from_tensor(pixels):
    """Float tensor (n, 3, h, w) in [-1, 1] -> uint8 images (n, h, w, 3), rounded.

    Examples
    --------
    >>> import numpy as np
    >>> images = np.arange(12, dtype=np.uint8).reshape(1, 2, 2, 3)
    >>> bool((from_tensor(to_tensor(images)) == images).all())
    True
    """
    import torch

    pixels = ((pixels.float().clamp(-1, 1) + 1) * 127.5).round()
    return pixels.to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
