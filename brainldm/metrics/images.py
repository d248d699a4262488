"""Low-level similarity of reconstructions to the seen images: pixel correlation and SSIM.

Each function takes the originals and their reconstructions (uint8 RGB,
one reconstruction per original), resizes each reconstruction to its
original's size (or both to ``size``), and returns one value per image; the
peers report the mean.

Two SSIMs are offered. :func:`ssim` is the 2-D SSIM of the grey images
(Gaussian window, sigma 1.5, as Wang et al. 2004). :func:`ssim_braindiffuser`
is what Brain-Diffuser and MindEye compute: scikit-image 0.17's
``structural_similarity(..., multichannel=True)`` on a 2-D grey image takes
its columns as channels, so their SSIM is the mean of 1-D SSIMs down each
column; current scikit-image spells that ``channel_axis=-1``.
"""

import numpy as np
from PIL import Image

from brainldm._images import check_images, resample_filter
from brainldm._validation import check_int

__all__ = ["pixel_correlation", "ssim", "ssim_braindiffuser"]


def _pairs(originals, reconstructions, size, interpolation, caller):
    """Yield (original, reconstruction) as float arrays in [0, 1] of one size."""
    resample = resample_filter(interpolation, caller)
    if size is not None:
        size = check_int(size, "size", caller, min_val=1)
    originals = check_images(originals, "originals")
    reconstructions = check_images(reconstructions, "reconstructions")
    if len(originals) != len(reconstructions):
        raise ValueError(
            f"originals has {len(originals)} images but reconstructions has "
            f"{len(reconstructions)}; pass one reconstruction per original"
        )

    def fit(image, shape):
        if image.shape[:2] == shape:
            return image
        return np.asarray(Image.fromarray(image).resize(shape[::-1], resample))

    for original, reconstruction in zip(originals, reconstructions, strict=True):
        shape = original.shape[:2] if size is None else (size, size)
        yield fit(original, shape) / 255.0, fit(reconstruction, shape) / 255.0


def pixel_correlation(originals, reconstructions, size=None, interpolation="lanczos"):
    """Pearson correlation of the RGB pixel values of each reconstruction with its original.

    Parameters
    ----------
    originals : array-like of shape (n_images, height, width, 3) or sequence
        uint8 RGB images that were seen.
    reconstructions : array-like of shape (n_images, h, w, 3) or sequence
        One uint8 RGB reconstruction per original, of any size.
    size : int, optional
        Resize both to ``size`` x ``size`` (MindEye: 425); None resizes each
        reconstruction to its original's size (Brain-Diffuser: 512 -> 425).
    interpolation : {"lanczos", "bicubic", "bilinear", "nearest"}, default="lanczos"
        PIL's resizing filter (Brain-Diffuser's is PIL's default, bicubic;
        MindEye's bilinear).

    Returns
    -------
    r : ndarray of shape (n_images,)
        NaN for a constant image.

    Examples
    --------
    >>> import numpy as np
    >>> from brainldm.metrics import pixel_correlation
    >>> rng = np.random.default_rng(0)
    >>> images = rng.integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    >>> pixel_correlation(images, 255 - images)
    array([-1., -1.])
    """
    r = [
        np.corrcoef(a.ravel(), b.ravel())[0, 1]
        for a, b in _pairs(originals, reconstructions, size, interpolation, "pixel_correlation")
    ]
    return np.asarray(r)


def _ssim(originals, reconstructions, size, interpolation, caller, channel_axis):
    from skimage.color import rgb2gray
    from skimage.metrics import structural_similarity

    values = []
    for a, b in _pairs(originals, reconstructions, size, interpolation, caller):
        values.append(
            structural_similarity(
                rgb2gray(b),
                rgb2gray(a),
                channel_axis=channel_axis,
                gaussian_weights=True,
                sigma=1.5,
                use_sample_covariance=False,
                data_range=1.0,
            )
        )
    return np.asarray(values)


def ssim(originals, reconstructions, size=None, interpolation="lanczos"):
    """Structural similarity (2-D, grey, Gaussian window of sigma 1.5) of each reconstruction.

    scikit-image's ``structural_similarity`` on ``rgb2gray`` images in
    [0, 1], with ``gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=1.0``: the peers' settings,
    computed over the image's two dimensions.

    Parameters
    ----------
    originals : array-like of shape (n_images, height, width, 3) or sequence
        uint8 RGB images that were seen (at least 11 px a side).
    reconstructions : array-like of shape (n_images, h, w, 3) or sequence
        One uint8 RGB reconstruction per original.
    size : int, optional
        Resize both to ``size`` x ``size``; None resizes each reconstruction
        to its original's size.
    interpolation : {"lanczos", "bicubic", "bilinear", "nearest"}, default="lanczos"
        PIL's resizing filter.

    Returns
    -------
    ssim : ndarray of shape (n_images,)

    See Also
    --------
    ssim_braindiffuser : the peers' column-wise variant.

    Examples
    --------
    >>> import numpy as np
    >>> from brainldm.metrics import ssim
    >>> images = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    >>> ssim(images, images)
    array([1., 1.])
    """
    return _ssim(originals, reconstructions, size, interpolation, "ssim", None)


def ssim_braindiffuser(originals, reconstructions, size=None, interpolation="lanczos"):
    """SSIM as Brain-Diffuser and MindEye compute it: the mean of 1-D SSIMs down each column.

    Their ``structural_similarity(gen, gt, multichannel=True, ...)`` on a
    2-D grey image (scikit-image 0.17) took its last axis, the columns, as
    channels; this is the same computation in current scikit-image
    (``channel_axis=-1``), with the same settings as :func:`ssim`. Use it to
    compare with their published numbers, and :func:`ssim` otherwise.

    Parameters
    ----------
    originals : array-like of shape (n_images, height, width, 3) or sequence
        uint8 RGB images that were seen (at least 11 px high).
    reconstructions : array-like of shape (n_images, h, w, 3) or sequence
        One uint8 RGB reconstruction per original.
    size : int, optional
        Resize both to ``size`` x ``size``; None resizes each reconstruction
        to its original's size.
    interpolation : {"lanczos", "bicubic", "bilinear", "nearest"}, default="lanczos"
        PIL's resizing filter.

    Returns
    -------
    ssim : ndarray of shape (n_images,)

    Examples
    --------
    The two SSIMs differ:

    >>> import numpy as np
    >>> from brainldm.datasets.scenes import make_stimuli
    >>> from brainldm.metrics import ssim, ssim_braindiffuser
    >>> images = make_stimuli(2, seed=0).images
    >>> noise = np.random.default_rng(0).normal(0, 40, images.shape)
    >>> noisy = np.clip(images + noise, 0, 255).astype(np.uint8)
    >>> ssim(images, noisy).round(3), ssim_braindiffuser(images, noisy).round(3)
    (array([0.649, 0.301]), array([0.296, 0.227]))
    """
    return _ssim(originals, reconstructions, size, interpolation, "ssim_braindiffuser", -1)
