"""Statistics of scores as the paper reports them: tests between modes, means across subjects.

Takagi & Nishimoto compare the reconstruction modes (z only, c only, z and
c) per metric with Wilcoxon signed-rank tests over the test images, Holm
corrected, and report means across subjects with their standard errors.
"""

import numpy as np

__all__ = ["compare_modes", "holm", "mean_and_sem"]


def holm(pvalues):
    """Holm's step-down correction of p-values for multiple comparisons.

    With the ``m`` p-values sorted increasingly, the ``k``-th (from 1) is
    multiplied by ``m - k + 1``; each adjusted value is the running maximum
    of those products, capped at 1. Rejecting where the adjusted value is
    below alpha controls the family-wise error rate at alpha (Holm 1979).
    scipy has no Holm correction (``scipy.stats.false_discovery_control``
    controls the false discovery rate), so it is computed here.

    Parameters
    ----------
    pvalues : array-like of float
        NaN values are left NaN and do not count in ``m``.

    Returns
    -------
    adjusted : ndarray of the shape of ``pvalues``

    Examples
    --------
    >>> from brainldm.metrics import holm
    >>> holm([0.01, 0.04, 0.03, 0.005])
    array([0.03, 0.06, 0.06, 0.02])
    """
    p = np.asarray(pvalues, dtype=np.float64)
    flat = p.ravel()
    adjusted = np.full_like(flat, np.nan)
    valid = np.flatnonzero(~np.isnan(flat))
    order = valid[np.argsort(flat[valid], kind="stable")]
    m = len(order)
    scaled = flat[order] * (m - np.arange(m))
    adjusted[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return adjusted.reshape(p.shape)


def compare_modes(
    per_image_scores,
    pairs=(("zc", "z"), ("zc", "c")),
    metrics=None,
    alternative="two-sided",
    family="all",
):
    """Wilcoxon signed-rank tests between reconstruction modes, per metric, Holm corrected.

    Parameters
    ----------
    per_image_scores : dict of str to dict of str to array-like
        Mode (e.g. ``"z"``, ``"c"``, ``"zc"``) -> metric -> one value per
        test image, in the same image order for every mode, e.g.
        ``IdentificationScorer.score(..., per_image=True)`` of each mode.
    pairs : sequence of (str, str), default=(("zc", "z"), ("zc", "c"))
        The modes to compare; each pair ``(a, b)`` tests ``a - b``.
    metrics : sequence of str, optional
        Metrics to test; None is those that every mode named in ``pairs``
        has, in the first mode's order.
    alternative : {"two-sided", "greater", "less"}, default="two-sided"
        As :func:`scipy.stats.wilcoxon`; ``"greater"`` tests ``a > b``.
    family : {"all", "metric"}, default="all"
        The tests that Holm's correction treats as one family: all that this
        call makes, or those of each metric (one per pair).

    Returns
    -------
    table : pandas.DataFrame
        One row per (metric, pair): ``metric``, ``mode``, ``other``,
        ``mean``, ``other_mean``, ``n`` (images), ``statistic``, ``p`` and
        ``p_holm``. Images with equal scores in both modes are dropped by
        the test (scipy's ``zero_method="wilcox"``); when all are equal, p
        is 1.

    Examples
    --------
    >>> import numpy as np
    >>> from brainldm.metrics import compare_modes
    >>> rng = np.random.default_rng(0)
    >>> base = rng.uniform(size=50)
    >>> scores = {"zc": {"clip": base + 0.1}, "z": {"clip": base}, "c": {"clip": base + 0.1}}
    >>> table = compare_modes(scores)
    >>> table[["mode", "other", "p_holm"]].round(6).to_numpy().tolist()
    [['zc', 'z', 0.0], ['zc', 'c', 1.0]]
    """
    import pandas as pd
    from scipy.stats import wilcoxon

    from brainldm._validation import check_options

    check_options(alternative, "alternative", "compare_modes", ("two-sided", "greater", "less"))
    check_options(family, "family", "compare_modes", ("all", "metric"))
    pairs = [tuple(pair) for pair in pairs]
    if not pairs or any(len(pair) != 2 for pair in pairs):
        raise ValueError(f"pairs must be a non-empty sequence of (mode, other) pairs, got {pairs}")
    modes = list(dict.fromkeys(mode for pair in pairs for mode in pair))
    missing = [mode for mode in modes if mode not in per_image_scores]
    if missing:
        raise ValueError(
            f"pairs name modes {missing} that per_image_scores lacks; it has "
            f"{sorted(per_image_scores)}"
        )
    if metrics is None:
        metrics = [
            m for m in per_image_scores[modes[0]] if all(m in per_image_scores[o] for o in modes)
        ]
    rows = []
    for metric in metrics:
        for mode, other in pairs:
            a = np.asarray(per_image_scores[mode][metric], dtype=np.float64).ravel()
            b = np.asarray(per_image_scores[other][metric], dtype=np.float64).ravel()
            if len(a) != len(b):
                raise ValueError(
                    f"{metric}: mode {mode!r} has {len(a)} images and {other!r} {len(b)}; pass "
                    "per-image scores of the same images"
                )
            if np.all(a == b):
                statistic, p = np.nan, 1.0
            else:
                result = wilcoxon(a, b, alternative=alternative)
                statistic, p = float(result.statistic), float(result.pvalue)
            rows.append(
                dict(metric=metric, mode=mode, other=other, mean=a.mean(), other_mean=b.mean())
                | dict(n=len(a), statistic=statistic, p=p)
            )
    table = pd.DataFrame(rows)
    if family == "all":
        table["p_holm"] = holm(table["p"])
    else:
        table["p_holm"] = table.groupby("metric", sort=False)["p"].transform(holm)
    return table


def mean_and_sem(scores):
    """Mean and standard error of the mean of each metric across subjects.

    Parameters
    ----------
    scores : dict of str to dict of str to float, or pandas.DataFrame
        Subject -> metric -> score (e.g. ``IdentificationScorer.score`` of
        each subject), or a table with one row per subject and one column
        per metric.

    Returns
    -------
    table : pandas.DataFrame
        Indexed by metric, with columns ``mean``, ``sem`` (the standard
        deviation with ``ddof=1`` over the square root of ``n``; NaN for one
        subject) and ``n``, the subjects with a value.

    Examples
    --------
    >>> from brainldm.metrics import mean_and_sem
    >>> table = mean_and_sem({"subj01": {"clip": 0.8}, "subj02": {"clip": 0.7}})
    >>> table.round(3).to_dict("index")
    {'clip': {'mean': 0.75, 'sem': 0.05, 'n': 2}}
    """
    import pandas as pd

    table = scores if isinstance(scores, pd.DataFrame) else pd.DataFrame.from_dict(scores, "index")
    table = table.astype(np.float64)
    n = table.notna().sum()
    return pd.DataFrame({"mean": table.mean(), "sem": table.std(ddof=1) / np.sqrt(n), "n": n})
