"""Statistics of scores as the paper reports them: paired tests, means and their errors.

Takagi & Nishimoto compare the reconstruction modes (z only, c only, z and
c) per metric with Wilcoxon signed-rank tests over the test images, Holm
corrected, and report means across subjects with their standard errors. The
encoding analyses compare models per ROI the same way, paired voxel by voxel.
One paired test serves both (:func:`paired_wilcoxon`), with one treatment of
missing values: pairs with a non-finite value are left out.
"""

import numpy as np

__all__ = [
    "bootstrap_se",
    "compare_modes",
    "holm",
    "mean_and_sem",
    "paired_wilcoxon",
    "summarize_paired",
]


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


def paired_wilcoxon(a, b, alternative="two-sided"):
    """Wilcoxon signed-rank test of the paired differences ``a - b``.

    Pairs where either value is NaN or infinite are left out. Zero
    differences are treated as :func:`scipy.stats.wilcoxon` treats them by
    default (``zero_method="wilcox"``: dropped from the ranks).

    Parameters
    ----------
    a, b : array-like of shape (n,)
        Paired values, e.g. the scores of two modes on the same images, or the
        accuracies of two models on the same voxels.
    alternative : {"two-sided", "greater", "less"}, default="two-sided"
        As :func:`scipy.stats.wilcoxon`; ``"greater"`` tests ``a > b``.

    Returns
    -------
    statistic, p : float
        When no pair differs, ``statistic`` is NaN and ``p`` is 1 (no evidence
        of a difference).
    n : int
        Pairs with finite values.

    Examples
    --------
    >>> from brainldm.metrics import paired_wilcoxon
    >>> statistic, p, n = paired_wilcoxon([1.0, 2.0, 3.0, 4.0, 5.0], [0.0, 0.0, 0.0, 0.0, 0.0])
    >>> float(statistic), float(p), n
    (0.0, 0.0625, 5)
    >>> paired_wilcoxon([1.0, 2.0, float("nan")], [1.0, 2.0, 3.0])
    (nan, 1.0, 2)
    """
    from scipy.stats import wilcoxon

    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    finite = np.isfinite(a) & np.isfinite(b)
    difference = a[finite] - b[finite]
    if not np.any(difference):
        return float("nan"), 1.0, len(difference)
    result = wilcoxon(difference, alternative=alternative)
    return float(result.statistic), float(result.pvalue), len(difference)


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
        ``p_holm``, from :func:`paired_wilcoxon`: images with equal scores
        in both modes are dropped by the test (scipy's
        ``zero_method="wilcox"``), images with a non-finite score in either
        mode are left out (``n`` counts the others); when all are equal,
        ``statistic`` is NaN and p is 1.

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
            statistic, p, n = paired_wilcoxon(a, b, alternative)
            rows.append(
                dict(metric=metric, mode=mode, other=other, mean=a.mean(), other_mean=b.mean())
                | dict(n=n, statistic=statistic, p=p)
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


def summarize_paired(values, masks, pairs=None, voxels=None, alpha=0.05):
    """Per ROI, compare per-voxel values of named models paired voxel by voxel.

    For each ROI and pair (a, b), over the same voxels (the ROI's, within
    ``voxels``, where both values are finite): the fraction of voxels where a
    beats b, the median of the paired differences a - b, and a two-sided
    Wilcoxon signed-rank p (:func:`paired_wilcoxon` of the voxels where they
    differ; NaN when fewer than two do, and then not counted by Holm's
    correction), Holm-corrected over every ROI and pair of the call.

    Parameters
    ----------
    values : dict of str to array of shape (n_voxels,)
        Per-voxel values (r, unique variance...) of each model.
    masks : dict of str to bool array of shape (n_voxels,)
        ROI name -> voxels, e.g. ``data.roi_masks``.
    pairs : sequence of (str, str), default=None
        Pairs to compare; None is every pair, in the order of ``values``.
    voxels : bool array of shape (n_voxels,), default=None
        Voxels to keep (e.g. significant for either model); None keeps all.
    alpha : float, default=0.05
        Family-wise level of ``significant``.

    Returns
    -------
    summary : dict
        ROI -> ``{"n_voxels", "median": {name: float}, "mean": {name: float},
        "comparisons": {"a-b": {"fraction_a_wins", "median_difference", "p",
        "p_holm", "significant"}}}``.

    Examples
    --------
    >>> import numpy as np
    >>> from brainldm.metrics import summarize_paired
    >>> rng = np.random.default_rng(0)
    >>> z = rng.normal(0.5, 0.1, 200)
    >>> values = {"z": z, "c": z - 0.1 + rng.normal(0, 0.05, 200)}
    >>> summary = summarize_paired(values, {"early": np.arange(200) < 100})
    >>> comparison = summary["early"]["comparisons"]["z-c"]
    >>> comparison["fraction_a_wins"], round(comparison["median_difference"], 2)
    (0.95, 0.12)
    >>> bool(comparison["significant"])
    True
    """
    names = list(values)
    pairs = (
        [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]] if pairs is None else pairs
    )
    keep = (
        np.ones(len(values[names[0]]), dtype=bool) if voxels is None else np.asarray(voxels, bool)
    )
    summary, tests = {}, []
    for roi, mask in masks.items():
        chosen = np.asarray(mask, bool) & keep
        entry = {
            "n_voxels": int(chosen.sum()),
            "median": {n: _finite_stat(np.nanmedian, values[n][chosen]) for n in names},
            "mean": {n: _finite_stat(np.nanmean, values[n][chosen]) for n in names},
            "comparisons": {},
        }
        for a, b in pairs:
            x, y = values[a][chosen], values[b][chosen]
            finite = np.isfinite(x) & np.isfinite(y)
            difference = x[finite] - y[finite]
            differ = difference != 0
            comparison = {
                "fraction_a_wins": float(np.mean(difference > 0))
                if len(difference)
                else float("nan"),
                "median_difference": _finite_stat(np.median, difference),
                "p": paired_wilcoxon(x[finite][differ], y[finite][differ])[1]
                if differ.sum() >= 2
                else float("nan"),
            }
            entry["comparisons"][f"{a}-{b}"] = comparison
            tests.append(comparison)
        summary[roi] = entry
    for comparison, p_holm in zip(tests, holm([t["p"] for t in tests]), strict=True):
        comparison["p_holm"] = float(p_holm)
        comparison["significant"] = bool(p_holm < alpha)
    return summary


def _finite_stat(function, values):
    values = values[np.isfinite(values)]
    return float(function(values)) if len(values) else float("nan")


def bootstrap_se(values, n_boot=1000, random_state=0):
    """Bootstrap standard error of the mean of the finite values.

    Parameters
    ----------
    values : array-like of float
        E.g. one value per voxel of an ROI; NaN and infinite values are left out.
    n_boot : int, default=1000
        Resamples (with replacement, of the same size).
    random_state : int, default=0
        Seed of the resamples, so that the error repeats.

    Returns
    -------
    float
        The standard deviation (``ddof=1``) of the resampled means; NaN for
        fewer than two finite values.

    Examples
    --------
    >>> import numpy as np
    >>> from brainldm.metrics import bootstrap_se
    >>> values = np.random.default_rng(0).normal(size=400)
    >>> round(bootstrap_se(values), 2), round(float(values.std()) / 20, 2)
    (0.05, 0.05)
    """
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if len(values) < 2:
        return float("nan")
    rng = np.random.default_rng(random_state)
    means = values[rng.integers(len(values), size=(n_boot, len(values)))].mean(axis=1)
    return float(means.std(ddof=1))
