"""Significance of held-out correlations, and NSD's noise ceiling."""

import numbers

import numpy as np
from scipy import stats
from sklearn.utils import Bunch

from brainldm._validation import check_finite, check_int, check_number
from brainldm.metrics.correlation import warn_constant_columns
from brainldm.ridge import target_batches

__all__ = ["noise_ceiling", "normalized_accuracy", "significance"]


def significance(r, n, alpha=0.05):
    """One-sided p values of correlations, and their Benjamini-Hochberg q values.

    Each r is tested against the correlation of two independent Gaussian
    vectors of length n: ``t = r * sqrt(n - 2) / sqrt(1 - r**2)`` follows
    Student's t with n - 2 degrees of freedom (exact), and ``p = P(T >= t)``.
    The false discovery rate is controlled over the voxels by
    Benjamini-Hochberg (:func:`scipy.stats.false_discovery_control`), over the
    finite p only.

    Parameters
    ----------
    r : array-like of float
        Correlations, e.g. held-out r per voxel; NaN (constant voxels) allowed.
    n : int
        Length of the vectors correlated, e.g. 982 test images for subj01.
    alpha : float, default=0.05
        FDR level: ``significant`` is ``q < alpha``.

    Returns
    -------
    Bunch
        - ``p``: array of r's shape, one-sided p values (NaN where r is NaN);
        - ``q``: array of r's shape, Benjamini-Hochberg q values (NaN where r is NaN);
        - ``significant``: boolean array of r's shape, ``q < alpha`` (never
          where r is NaN).

    Raises
    ------
    ValueError
        If n < 3, alpha is not in (0, 1), or some r lies outside [-1, 1].

    Examples
    --------
    >>> import numpy as np
    >>> result = significance(np.array([0.3, 0.05, np.nan, -0.2]), n=100)
    >>> result.p.round(4)
    array([0.0012, 0.3106,    nan, 0.977 ])
    >>> result.q.round(4)
    array([0.0036, 0.466 ,    nan, 0.977 ])
    >>> result.significant
    array([ True, False, False, False])
    """
    n = check_int(n, "n", "significance", min_val=3)
    alpha = check_number(alpha, "alpha", "significance", min_val=0, max_val=1, closed="neither")
    r = np.asarray(r, dtype=np.float64)
    valid = ~np.isnan(r)
    outside = valid & ~((r >= -1) & (r <= 1))
    if outside.any():
        raise ValueError(
            f"r must lie in [-1, 1] (NaN for constant voxels), got {int(outside.sum())} values "
            f"outside, e.g. {r[outside][:5].tolist()}"
        )
    with np.errstate(divide="ignore"):
        t = r[valid] * np.sqrt(n - 2) / np.sqrt(1 - r[valid] ** 2)
    p = np.full(r.shape, np.nan)
    q = np.full(r.shape, np.nan)
    p[valid] = stats.t.sf(t, n - 2)
    if valid.any():
        q[valid] = stats.false_discovery_control(p[valid], method="bh")
    significant = np.zeros(r.shape, dtype=bool)
    significant[valid] = q[valid] < alpha
    return Bunch(p=p, q=q, significant=significant)


def _averaging_factor(n_average, counts):
    """Mean of 1/k over the test images, where k is the number of trials averaged."""
    if n_average is None:
        n_average = counts
    elif isinstance(n_average, numbers.Integral) and not isinstance(n_average, bool):
        n_average = [n_average]
    trials = np.asarray(n_average)
    if trials.ndim != 1 or trials.size == 0 or trials.dtype.kind not in "iu" or trials.min() < 1:
        raise ValueError(
            "n_average must be None (the mix of trials per image in `images`), an int >= 1 "
            f"(a plain average of that many trials) or trial counts per test image, got {n_average!r}"
        )
    return float(np.mean(1.0 / trials))


def noise_ceiling(Y_trials, images, *, n_average=None, batch_size=2048):
    """NSD's noise ceiling: the % of each voxel's variance that a model can explain.

    From single trials, the NSD data manual's way (as THINGS-data's
    ``kknc``): each voxel's betas are z-scored across trials;
    ``noise_sd = sqrt(mean over images of the variance over its trials)``
    (ddof 1, images with at least 2 trials); the noise-ceiling SNR is
    ``ncsnr = sqrt(max(1 - noise_sd**2, 0)) / noise_sd``, and the ceiling on
    test responses averaged over k trials is
    ``100 * ncsnr**2 / (ncsnr**2 + mean(1 / k))``, which for A, B and C test
    images seen 3, 2 and 1 times is NSD's
    ``100 * ncsnr**2 / (ncsnr**2 + (A/3 + B/2 + C/1) / (A + B + C))``.

    Parameters
    ----------
    Y_trials : array of shape (n_trials, n_voxels)
        Single-trial betas (e.g. of the test images), read in batches of
        voxels (a ``np.memmap`` works).
    images : array of shape (n_trials,)
        The image each trial showed.
    n_average : None, int or array of int, default=None
        The trials averaged in the responses the ceiling is for: None, the mix
        in `images` (each image's trials averaged, as NSD's test set); an
        int n, a plain average of n trials; or the trial count of each test
        image.
    batch_size : int, default=2048
        Voxels computed together.

    Returns
    -------
    Bunch
        - ``ncsnr``: array of shape (n_voxels,), signal sd over noise sd;
        - ``ceiling``: array of shape (n_voxels,), in % of variance;
        - ``noise_sd``: array of shape (n_voxels,), in units of the voxel's sd.

        NaN, with a warning, for voxels constant over the trials.

    Raises
    ------
    ValueError
        On NaN or infinite betas, `images` of the wrong length, no image with
        2 or more trials, or a bad `n_average`.

    See Also
    --------
    normalized_accuracy : r² as a fraction of the ceiling.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> images = np.repeat(np.arange(1000), 3)
    >>> signal = rng.standard_normal((1000, 2)) * [1.0, 0.5]  # signal sd 1 and 0.5
    >>> Y_trials = signal[images] + rng.standard_normal((3000, 2))  # noise sd 1
    >>> result = noise_ceiling(Y_trials, images)
    >>> result.ncsnr.round(2), result.ceiling.round(1)
    (array([1.02, 0.51]), array([75.6, 44.3]))
    >>> noise_ceiling(Y_trials, images, n_average=1).ceiling.round(1)
    array([50.8, 20.9])
    """
    matrix = _as_trials(Y_trials)
    images = np.asarray(images)
    if images.shape != (len(matrix),):
        raise ValueError(
            f"images must give the image of each trial, shape ({len(matrix)},), got {images.shape}"
        )
    check_finite(matrix, "Y_trials")
    _, inverse, counts = np.unique(images, return_inverse=True, return_counts=True)
    factor = _averaging_factor(n_average, counts)
    if counts.max() < 2:
        raise ValueError(
            "noise_ceiling needs images with at least 2 trials to measure the noise; every "
            f"one of the {len(counts)} images in `images` has 1"
        )
    order = np.argsort(inverse, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    repeated = counts >= 2
    noise_sd = np.empty(matrix.shape[1])
    for batch in target_batches(matrix.shape[1], batch_size):
        block = np.asarray(matrix[:, batch], dtype=np.float64)[order]
        sd = block.std(0)
        sd[sd <= 10 * np.finfo(np.float64).eps * np.maximum(1.0, np.abs(block.mean(0)))] = np.nan
        block = (block - block.mean(0)) / sd
        image_means = np.add.reduceat(block, starts) / counts[:, None]
        squares = np.add.reduceat((block - np.repeat(image_means, counts, axis=0)) ** 2, starts)
        variances = squares[repeated] / (counts[repeated, None] - 1)
        noise_sd[batch] = np.sqrt(variances.mean(0))
    with np.errstate(divide="ignore", invalid="ignore"):
        ncsnr = np.sqrt(np.maximum(1 - noise_sd**2, 0)) / noise_sd
        ceiling = 100 * ncsnr**2 / (ncsnr**2 + factor)
    ceiling[np.isinf(ncsnr)] = 100.0
    warn_constant_columns(ncsnr, "voxels", quantity="ncsnr and ceiling", source="over the trials")
    return Bunch(ncsnr=ncsnr, ceiling=ceiling, noise_sd=noise_sd)


def _as_trials(Y_trials):
    shape = np.shape(Y_trials)
    if len(shape) != 2:
        raise ValueError(f"Y_trials must be 2-D (n_trials, n_voxels), got shape {shape}")
    matrix = np.asarray(Y_trials)
    if any(stride < 0 for stride in matrix.strides):
        matrix = np.ascontiguousarray(matrix)  # for the finite check, which cannot read them
    return matrix


def normalized_accuracy(r, ceiling):
    """Explained variance as a fraction of the noise ceiling: ``r**2 / (ceiling / 100)``.

    Parameters
    ----------
    r : array-like
        Held-out correlation per voxel.
    ceiling : array-like
        Noise ceiling per voxel, in % of variance (:func:`noise_ceiling`).

    Returns
    -------
    array
        1 where a model explains all the explainable variance; NaN where the
        ceiling is 0 (or NaN) or r is NaN.

    Examples
    --------
    >>> normalized_accuracy([0.5, 0.3, 0.2], [50.0, 36.0, 0.0])
    array([0.5 , 0.25,  nan])
    """
    r = np.asarray(r, dtype=np.float64)
    ceiling = np.asarray(ceiling, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(ceiling > 0, r**2 / (ceiling / 100), np.nan)
