"""Two-way identification: does a prediction resemble its own target more than others?"""

import numpy as np


def two_way_identification(predicted, true):
    """Two-way identification accuracy over all pairs (chance 0.5).

    With ``r[i, j]`` the Pearson correlation between prediction ``i`` and
    target ``j``, the score of sample ``i`` is the fraction of the other
    ``n - 1`` targets ``j`` with ``r[i, j] < r[i, i]``; the accuracy is the
    mean over samples.

    Parameters
    ----------
    predicted : array-like of shape (n_samples, n_features)
        Predictions, e.g. decoded latents or features of reconstructions.
    true : array-like of shape (n_samples, n_features)
        The corresponding targets, in the same order.

    Returns
    -------
    accuracy : float
        In [0, 1]; 0.5 is chance.

    Examples
    --------
    >>> import numpy as np
    >>> from brainldm.metrics import two_way_identification
    >>> rng = np.random.default_rng(0)
    >>> true = rng.normal(size=(20, 50))
    >>> two_way_identification(true + 0.1 * rng.normal(size=true.shape), true)
    1.0
    """
    p = np.asarray(predicted, dtype=np.float64)
    t = np.asarray(true, dtype=np.float64)
    if p.ndim != 2 or p.shape != t.shape:
        raise ValueError(
            f"predicted and true must be 2-D arrays of the same shape, got {p.shape} and {t.shape}"
        )
    if len(p) < 2:
        raise ValueError(f"two-way identification needs at least 2 samples, got {len(p)}")
    p = p - p.mean(1, keepdims=True)
    t = t - t.mean(1, keepdims=True)
    p /= np.linalg.norm(p, axis=1, keepdims=True)
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    r = p @ t.T
    beaten = (r < np.diag(r)[:, None]).sum(1)
    return float(np.mean(beaten / (len(r) - 1)))
