"""Random-number policy: one CPU generator per (seed, image, sample).

Every draw of a sample (the VAE posterior sample, the initial noise, DDIM's
noise for ``eta > 0``, in that order) comes from its own generator, so that
results do not depend on the batch size or on how a set of images is split
into calls. (With ``sample_posterior="per-image"`` the samples of an image
share sample 0's posterior draw; each still makes its own, so that its later
draws stay where they are.)
"""

import numpy as np
import torch

from brainldm._validation import check_int

__all__ = ["generator_keys", "sample_generator"]


def sample_generator(seed, image, sample):
    """The CPU random generator of one sample of one image.

    All the noise of sample ``sample`` of image ``image`` (posterior samples,
    initial noise, DDIM noise) is drawn from this generator, in that order,
    as diffusers' pipelines draw from a per-sample generator.

    Parameters
    ----------
    seed : int
        The run's seed.
    image : int
        Index (or id) of the image.
    sample : int
        Index of the sample.

    Returns
    -------
    generator : torch.Generator
        Seeded from the three numbers through :class:`numpy.random.SeedSequence`.

    Examples
    --------
    >>> import torch
    >>> from brainldm.diffusion import sample_generator
    >>> a = torch.randn(3, generator=sample_generator(42, 0, 1))
    >>> torch.equal(a, torch.randn(3, generator=sample_generator(42, 0, 1)))
    True
    >>> torch.equal(a, torch.randn(3, generator=sample_generator(42, 1, 0)))
    False
    """
    state = np.random.SeedSequence([int(seed), int(image), int(sample)]).generate_state(2)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def generator_keys(n_images, start_index, image_ids, caller):
    """Per-image keys of the generators: ``image_ids`` if given, else consecutive from ``start_index``.

    Examples
    --------
    >>> generator_keys(3, 10, None, "img2img"), generator_keys(2, 0, [7, 3], "denoise")
    ([10, 11, 12], [7, 3])
    """
    if image_ids is None:
        start_index = check_int(start_index, "start_index", caller, min_val=0)
        return list(range(start_index, start_index + n_images))
    image_ids = [check_int(key, "image_ids", caller, min_val=0) for key in image_ids]
    if len(image_ids) != n_images:
        raise ValueError(
            f"image_ids has {len(image_ids)} ids for {n_images} images; pass one per image"
        )
    return image_ids
