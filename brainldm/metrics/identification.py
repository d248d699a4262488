"""Two-way identification: does a reconstruction resemble its own image more than others?

Two protocols are in use, and their numbers are not comparable:

- ``"pairwise"`` (Brain-Diffuser, MindEye): one prediction per image; the
  score of prediction ``i`` is the fraction of the other ``n - 1`` targets
  ``j`` it correlates with less than with its own target ``i``.
- ``"takagi2023"`` (Takagi & Nishimoto's ``utils/identification.py``):
  several samples per image; for each seen image ``i``, the mean over the
  samples of image ``i`` of their correlation with image ``i`` is compared
  with the same mean over the samples of every other image ``j``.

Both are computed from one array of correlations, ``r[j, s, i]`` between
sample ``s`` of prediction ``j`` and target ``i``, which
:func:`identification_from_correlations` takes directly (e.g. accumulated in
batches, so that the predictions' features are never all held at once).
"""

import numpy as np

from brainldm._validation import check_options

__all__ = [
    "PROTOCOLS",
    "identification_from_correlations",
    "standardize_rows",
    "two_way_identification",
]

PROTOCOLS = ("pairwise", "takagi2023")
"""Names of the two-way identification protocols."""


def standardize_rows(features, dtype=np.float64):
    """Centre each row and scale it to unit norm, so that dot products are correlations.

    Parameters
    ----------
    features : array-like of shape (n_rows, n_features)
    dtype : numpy dtype, default=np.float64
        Precision of the result (float32 halves the memory of wide features).

    Returns
    -------
    standardized : ndarray of shape (n_rows, n_features)
        A constant row stays all zeros: its correlation with anything is 0.

    Examples
    --------
    >>> import numpy as np
    >>> from brainldm.metrics import standardize_rows
    >>> z = standardize_rows([[1.0, 2.0, 3.0], [3.0, 1.0, 2.0]])
    >>> float(round(z[0] @ z[1], 6)), float(np.corrcoef([1, 2, 3], [3, 1, 2])[0, 1])
    (-0.5, -0.5)
    """
    z = np.array(features, dtype=dtype)
    z -= z.mean(1, keepdims=True)
    norm = np.linalg.norm(z, axis=1, keepdims=True)
    np.divide(z, norm, out=z, where=norm > 0)
    return z


def identification_from_correlations(r, protocol="pairwise", per_image=False):
    """Two-way identification accuracy from the correlations of predictions with targets.

    Parameters
    ----------
    r : array-like of shape (n_images, n_samples, n_images) or (n_images, n_images)
        ``r[j, s, i]``: correlation of sample ``s`` of prediction ``j`` with
        target ``i``; a 2-D ``r[j, i]`` holds one sample per prediction.
    protocol : {"pairwise", "takagi2023"}, default="pairwise"
        ``"pairwise"`` uses one sample: prediction ``j`` beats target
        ``i != j`` when ``r[j, 0, i] < r[j, 0, j]``. ``"takagi2023"`` uses
        all samples: with ``m[i, j]`` the mean over ``s`` of ``r[j, s, i]``,
        image ``i`` beats distractor ``j != i`` when ``m[i, j] < m[i, i]``.
        Ties count as failures in both, as in the peers' code.
    per_image : bool, default=False
        Return each image's fraction of distractors beaten instead of their
        mean.

    Returns
    -------
    accuracy : float or ndarray of shape (n_images,)
        In [0, 1]; 0.5 is chance.

    See Also
    --------
    two_way_identification : the same, from feature arrays.

    Examples
    --------
    >>> import numpy as np
    >>> from brainldm.metrics import identification_from_correlations
    >>> r = np.array([[0.9, 0.95, 0.1], [0.2, 0.8, 0.3], [0.0, 0.1, 0.7]])
    >>> identification_from_correlations(r, per_image=True)
    array([0.5, 1. , 1. ])
    """
    check_options(protocol, "protocol", "identification_from_correlations", PROTOCOLS)
    r = np.asarray(r, dtype=np.float64)
    if r.ndim == 2:
        r = r[:, None, :]
    if r.ndim != 3 or r.shape[0] != r.shape[2]:
        raise ValueError(
            "r must have shape (n_images, n_samples, n_images) or (n_images, n_images), "
            f"got {r.shape}"
        )
    n = len(r)
    if n < 2:
        raise ValueError(f"two-way identification needs at least 2 images, got {n}")
    if protocol == "pairwise":
        own = r[:, 0, :]  # own[j, i]: prediction j against target i
    else:
        own = r.mean(1).T  # own[i, j]: target i against the samples of prediction j
    beaten = (own < np.diag(own)[:, None]).sum(1)
    scores = beaten / (n - 1)
    return scores if per_image else float(scores.mean())


def two_way_identification(y_true, y_pred, protocol="pairwise", per_image=False):
    """Two-way identification accuracy over all pairs (chance 0.5).

    With the ``"pairwise"`` protocol (Brain-Diffuser, MindEye; the default)
    and ``r[i, j]`` the Pearson correlation between prediction ``i`` and
    target ``j``, the score of prediction ``i`` is the fraction of the other
    ``n - 1`` targets ``j`` with ``r[i, j] < r[i, i]``: how often it
    resembles its own target more than another one. The accuracy is the mean
    over predictions. The score is not symmetric in its arguments: as
    scikit-learn's metrics, it takes the targets first.

    With the ``"takagi2023"`` protocol (the paper's code), ``y_pred`` holds
    several samples per image; for each seen image ``i``, the mean over its
    samples ``s`` of ``corr(true_i, pred_i,s)`` is compared with the mean of
    ``corr(true_i, pred_j,s)`` over the samples of every other image ``j``;
    the score of image ``i`` is the fraction of the ``n - 1`` distractors
    beaten, and the accuracy their mean.

    Parameters
    ----------
    y_true : array-like of shape (n_images, n_features)
        The targets, e.g. the true latents or features of the seen images.
    y_pred : array-like of shape (n_images, n_features) or (n_images, n_samples, n_features)
        The corresponding predictions, in the same order, e.g. decoded
        latents or features of reconstructions. ``"pairwise"`` takes one
        prediction per image (pass ``y_pred[:, 0]`` to score the first of
        several samples); ``"takagi2023"`` takes any number of samples, a
        2-D ``y_pred`` being one sample per image.
    protocol : {"pairwise", "takagi2023"}, default="pairwise"
        Which protocol.
    per_image : bool, default=False
        Return each image's fraction of distractors beaten instead of their
        mean.

    Returns
    -------
    accuracy : float or ndarray of shape (n_images,)
        In [0, 1]; 0.5 is chance.

    See Also
    --------
    identification_from_correlations : the same, from correlations.

    Examples
    --------
    >>> import numpy as np
    >>> from brainldm.metrics import two_way_identification
    >>> rng = np.random.default_rng(0)
    >>> true = rng.normal(size=(20, 50))
    >>> two_way_identification(true, true + 0.1 * rng.normal(size=true.shape))
    1.0
    >>> samples = true[:, None] + rng.normal(size=(20, 5, 50))
    >>> two_way_identification(true, samples, protocol="takagi2023")
    1.0
    """
    check_options(protocol, "protocol", "two_way_identification", PROTOCOLS)
    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    if protocol == "takagi2023" and p.ndim == 2:
        p = p[:, None, :]
    expected = (
        "(n_images, n_features)" if protocol == "pairwise" else "(n_images, n_samples, n_features)"
    )
    if t.ndim != 2 or p.ndim != (2 if protocol == "pairwise" else 3):
        hint = (
            "; pass y_pred[:, 0] to score the first sample, or protocol='takagi2023' for all"
            if protocol == "pairwise" and p.ndim == 3
            else ""
        )
        raise ValueError(
            f"y_true must be 2-D (n_images, n_features) and y_pred {expected} for protocol="
            f"{protocol!r}, got shapes {t.shape} and {p.shape}{hint}"
        )
    if len(p) != len(t) or p.shape[-1] != t.shape[-1]:
        raise ValueError(
            "y_true and y_pred must have the same number of images and of features, got shapes "
            f"{t.shape} and {p.shape}"
        )
    if len(t) < 2:
        raise ValueError(f"two-way identification needs at least 2 images, got {len(t)}")
    n, n_samples = p.shape[0], (1 if p.ndim == 2 else p.shape[1])
    z_pred = standardize_rows(p.reshape(n * n_samples, -1))
    r = (z_pred @ standardize_rows(t).T).reshape(n, n_samples, n)
    return identification_from_correlations(r, protocol=protocol, per_image=per_image)
