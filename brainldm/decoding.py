"""Decoders from fMRI activity to the latent diffusion model's ``z`` and ``c``.

:class:`LatentDecoder` predicts the image latent ``z`` (SD v1.4: 4 x 40 x 40 =
6,400 values) and :class:`TextDecoder` the text conditioning ``c`` (77 tokens x
768 = 59,136 values), each a ridge regression with an alpha per target chosen
by K-fold cross-validation (:func:`brainldm.ridge.solve_ridge_cv`). Targets are
flat, one column per value; :func:`reshape_targets` restores their shape.

Both take the whole betas matrix and select their own voxels (``voxels``), so
one matrix feeds both decoders in a scikit-learn ``Pipeline`` or
``GridSearchCV``.
"""

import numpy as np

from brainldm._docs import fill_doc
from brainldm.ridge import BaseRidgeCV

__all__ = ["LatentDecoder", "TextDecoder", "reshape_targets"]


def reshape_targets(Y, shape):
    """Reshape flat targets ``(n_samples, prod(shape))`` to ``(n_samples, *shape)``.

    Parameters
    ----------
    Y : array of shape (n_samples, n_targets)
        Flat decoder outputs, e.g. ``LatentDecoder().fit(...).predict(X)``.
    shape : tuple of int
        Shape of one sample, e.g. ``(4, 40, 40)`` for SD v1.4's ``z`` or
        ``(77, 768)`` for its ``c``; take it from the model, never assume it.

    Returns
    -------
    array of shape ``(n_samples, *shape)``
        A view of `Y` when possible.

    Raises
    ------
    ValueError
        If the number of targets is not the product of `shape`.

    Examples
    --------
    >>> import numpy as np
    >>> reshape_targets(np.zeros((2, 6400)), (4, 40, 40)).shape
    (2, 4, 40, 40)
    >>> reshape_targets(np.zeros((3, 59136)), (77, 768)).shape
    (3, 77, 768)
    """
    Y = np.asarray(Y)
    shape = tuple(int(size) for size in shape)
    if Y.ndim != 2 or Y.shape[1] != int(np.prod(shape)):
        raise ValueError(
            f"cannot reshape targets of shape {Y.shape} to (n_samples, *{shape}): "
            f"expected (n_samples, {int(np.prod(shape))})"
        )
    return Y.reshape(len(Y), *shape)


@fill_doc
class LatentDecoder(BaseRidgeCV):
    """Decode the image latent ``z`` from fMRI with per-target ridge regression.

    Targets are flat: SD v1.4's ``z`` (4 x 40 x 40) is 6,400 columns; any
    number of targets, or a 1-D y, works.

    Parameters
    ----------
    %(ridge_parameters)s

    Attributes
    ----------
    %(ridge_attributes)s

    %(ridge_notes)s

    Examples
    --------
    >>> import numpy as np
    >>> from brainldm.decoding import LatentDecoder, reshape_targets
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((120, 30))
    >>> z = X[:, :10] @ rng.standard_normal((10, 2 * 3 * 3))
    >>> z += 3 * rng.standard_normal(z.shape)
    >>> decoder = LatentDecoder(voxels=np.arange(10))
    >>> decoder = decoder.fit(X, z, groups=np.repeat(np.arange(40), 3))
    >>> reshape_targets(decoder.predict(X[:4]), (2, 3, 3)).shape
    (4, 2, 3, 3)
    >>> decoder.coef_.shape
    (18, 10)
    >>> decoder.best_alphas_[:3]
    array([10.,  1., 10.])
    """


@fill_doc
class TextDecoder(BaseRidgeCV):
    """Decode the text conditioning ``c`` from fMRI with per-target ridge regression.

    Targets are flat: SD v1.4's ``c`` (77 tokens x 768) is 59,136 columns.
    At NSD scale (24,980 trials x 7,000 voxels, float32) ``y`` is 5.5 GiB and
    ``coef_`` 1.5 GiB; neither is copied whole, and targets are solved in
    batches of `n_targets_batch`: the whole fit peaks at about 11 GiB (see
    ``benchmarks/ridge.py nsd``).

    Parameters
    ----------
    %(ridge_parameters)s

    Attributes
    ----------
    %(ridge_attributes)s

    %(ridge_notes)s

    Examples
    --------
    >>> import numpy as np
    >>> from brainldm.decoding import TextDecoder, reshape_targets
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((100, 20)).astype(np.float32)
    >>> c = X @ rng.standard_normal((20, 4 * 8)) + 3 * rng.standard_normal((100, 4 * 8))
    >>> decoder = TextDecoder(n_targets_batch=16).fit(X, c.astype(np.float32))
    >>> reshape_targets(decoder.predict(X[:2]), (4, 8)).shape
    (2, 4, 8)
    >>> decoder.coef_.dtype
    dtype('float32')
    """
