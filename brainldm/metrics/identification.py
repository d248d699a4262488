"""Two-way identification: does a prediction resemble its own target more than others?"""

import numpy as np

__all__ = ["two_way_identification"]


def two_way_identification(y_true, y_pred):
    """Two-way identification accuracy over all pairs (chance 0.5).

    With ``r[i, j]`` the Pearson correlation between prediction ``i`` and
    target ``j``, the score of prediction ``i`` is the fraction of the other
    ``n - 1`` targets ``j`` with ``r[i, j] < r[i, i]``: how often it resembles
    its own target more than another one. The accuracy is the mean over
    predictions. This is the pairwise protocol of Brain-Diffuser and MindEye.
    The score is not symmetric in its arguments: as scikit-learn's metrics,
    it takes the targets first.

    Parameters
    ----------
    y_true : array-like of shape (n_samples, n_features)
        The targets, e.g. the true latents or features of the seen images.
    y_pred : array-like of shape (n_samples, n_features)
        The corresponding predictions, in the same order, e.g. decoded
        latents or features of reconstructions.

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
    >>> two_way_identification(true, true + 0.1 * rng.normal(size=true.shape))
    1.0
    """
    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    if p.ndim != 2 or p.shape != t.shape:
        raise ValueError(
            f"y_true and y_pred must be 2-D arrays of the same shape, got {t.shape} and {p.shape}"
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
