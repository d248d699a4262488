"""Scores as tables: per-image rows, their means per protocol, mode and metric, chance levels."""

import numpy as np

from brainldm.metrics.identification import PROTOCOLS

__all__ = ["COLUMNS", "chance_levels", "image_means", "means_frame", "rows", "score", "scorer"]

# Columns of the per-image table (per_image.csv and <name>-evaluation.csv).
COLUMNS = ["subject", "image", "mode", "protocol", "metric", "value"]


def chance_levels(metrics):
    """0.5 for the two-way identification metrics; none for the others."""
    from brainldm.metrics import METRICS

    return {m: 0.5 for m in metrics if METRICS[m].startswith("two-way identification")}


def scorer(scoring, protocol):
    """An IdentificationScorer of ``protocol`` with the run's suite, metrics and weights."""
    from brainldm.metrics import IdentificationScorer

    return IdentificationScorer(
        metrics=scoring["metrics"],
        suite=scoring["suite"],
        protocol=protocol,
        weights=scoring["weights"],
        device=scoring["device"],
        dtype=scoring["dtype"],
        progress=scoring["progress"],
    )


def score(scoring, seen, images, protocols=PROTOCOLS):
    """Per-image scores of ``images`` by each protocol: ``{protocol: {metric: array}}``."""
    return {
        protocol: {
            metric: np.asarray(values, np.float64)
            for metric, values in scorer(scoring, protocol).score(seen, images, True).items()
        }
        for protocol in protocols
    }


def rows(subject, images, mode, scores):
    """Rows of the per-image table from ``{protocol: {metric: per-image values}}``."""
    return [
        (subject, int(image), mode, protocol, metric, float(value))
        for protocol, metrics in scores.items()
        for metric, values in metrics.items()
        for image, value in zip(images, values, strict=True)
    ]


def image_means(table):
    """``protocol -> mode -> metric -> {mean, sem, n}`` across the images of ``table``.

    In the order the table first holds each protocol, mode and metric.
    """
    import pandas as pd

    grouped = table.groupby(["protocol", "mode", "metric"], sort=False)["value"]
    stats = pd.DataFrame({"mean": grouped.mean(), "sem": grouped.sem(), "n": grouped.size()})
    means = {}
    for (protocol, mode, metric), values in stats.to_dict("index").items():
        means.setdefault(protocol, {}).setdefault(mode, {})[metric] = values
    return means


def means_frame(means):
    """The nested means as a table: protocol, mode, metric, mean, sem, n."""
    import pandas as pd

    return pd.DataFrame(
        [
            dict(protocol=protocol, mode=mode, metric=metric, **stats)
            for protocol, modes in means.items()
            for mode, metrics in modes.items()
            for metric, stats in metrics.items()
        ],
        columns=["protocol", "mode", "metric", "mean", "sem", "n"],
    )
