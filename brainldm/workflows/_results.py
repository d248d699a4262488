"""What the workflows return: the tables, the summary written as JSON, the files written."""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["EncodingResult", "EvaluationResult", "ReconstructionResult"]

# Column labels of the figures: the coarse image is the paper's X_z.
_LABELS = {"coarse": "X_z"}


@dataclass
class _ScoresResult:
    summary: dict
    scores: pd.DataFrame
    means: pd.DataFrame
    files: list = field(default_factory=list)

    def mean_table(self, protocol):
        """The mean score of each mode (rows) and metric (columns) under ``protocol``."""
        chosen = self.means[self.means["protocol"] == protocol]
        table = chosen.pivot(index="mode", columns="metric", values="mean")
        table = table.loc[chosen["mode"].unique(), chosen["metric"].unique()]
        return table.rename_axis(index=None, columns=None)

    def report(self):
        """The mean tables as text, one per protocol, as the ``brainldm`` command prints them."""
        return "\n".join(
            f"{protocol} protocol (mean):\n{self.mean_table(protocol).round(3).to_string()}"
            for protocol in self.means["protocol"].unique()
        )


@dataclass
class ReconstructionResult(_ScoresResult):
    """What :func:`~brainldm.workflows.reconstruct` computed and wrote.

    Attributes
    ----------
    summary : dict
        What ``summary.json`` holds: ``settings``, ``images`` (subject -> the
        73k index of each reconstructed image), ``scores`` (protocol -> mode
        -> metric -> ``mean``, ``sem``, ``n``), ``per_subject`` means,
        ``comparisons``, ``chance``, ``files`` and ``seconds``.
    scores : pandas.DataFrame
        Every image's score (``per_image.csv``): ``subject``, ``image``,
        ``mode``, ``protocol``, ``metric``, ``value``.
    means : pandas.DataFrame
        ``protocol``, ``mode``, ``metric``, ``mean``, ``sem``, ``n``: the means
        across subjects when there are several, else across images.
    files : list of Path
        The files written, as ``summary["files"]`` names them.
    comparisons : pandas.DataFrame
        Per subject and protocol, the Wilcoxon tests of zc against z and c
        (:func:`~brainldm.metrics.compare_modes`).
    shown : dict of str to ndarray
        The figure's columns: ``seen`` and, per mode, the first subject's
        sample of each of its first 12 images that
        :func:`~brainldm.reconstruction.select_samples` picks.
    """

    comparisons: pd.DataFrame = None
    shown: dict = field(default_factory=dict)

    def plot_reconstructions(self, path=None):
        """The grid of seen images and reconstructions (``reconstructions.png``).

        Returns
        -------
        grid : PIL.Image.Image
        """
        from brainldm.plotting import image_grid

        columns = list(self.shown)
        # Toy images (64 px) are enlarged to be seen; SD's (512 px) shrunk to keep the file small.
        tile = int(np.clip(max(self.shown["zc"].shape[1:3]), 128, 256))
        names = [_LABELS.get(column, column) for column in columns]
        return image_grid([self.shown[c] for c in columns], names, path, tile)

    def plot_identification(self, path=None):
        """The mean scores per protocol, mode and metric (``identification.png``).

        Error bars are standard errors across subjects when there are
        several, else across images; dashed lines mark chance.

        Returns
        -------
        figure : matplotlib.figure.Figure
        """
        from brainldm.plotting import identification_bars

        subjects = self.summary["settings"]["subjects"]
        across = "subjects" if len(subjects) > 1 else "images"
        return identification_bars(
            self._panels("mean"),
            self._panels("sem"),
            self.summary["chance"],
            title=f"{', '.join(subjects)}: mean and SEM across {across}; dashed: chance",
            path=path,
        )

    def _panels(self, field):
        return {
            f"{protocol} protocol": {
                _LABELS.get(mode, mode): {metric: stats[field] for metric, stats in metrics.items()}
                for mode, metrics in modes.items()
            }
            for protocol, modes in self.summary["scores"].items()
        }


@dataclass
class EvaluationResult(_ScoresResult):
    """What :func:`~brainldm.workflows.evaluate` computed and wrote.

    Attributes
    ----------
    summary : dict
        What ``<name>-evaluation.json`` holds: ``settings``, ``scores``
        (protocol -> set -> metric -> ``mean``, ``sem`` across images, ``n``)
        and ``chance``.
    scores : pandas.DataFrame
        Every image's score (``<name>-evaluation.csv``).
    means : pandas.DataFrame
        ``protocol``, ``mode`` (the set of reconstructions), ``metric``,
        ``mean``, ``sem``, ``n``.
    files : list of Path
        The JSON and CSV files written.
    """


@dataclass
class EncodingResult:
    """What :func:`~brainldm.workflows.encode` computed and wrote.

    Attributes
    ----------
    summary : dict
        What ``summary.json`` holds: ``settings``, ``seconds`` and per subject
        the summaries of its analyses.
    subjects : dict of str to Bunch
        Per subject, what its figures are drawn from: ``analyses`` (name ->
        the analysis' Bunch of :func:`brainldm.encoding.run_encoding_analyses`),
        ``masker``, ``contours`` (ROI name -> voxel mask), ``anatomy`` (the
        background image's path, or None), ``stage_strength`` and ``surface``
        (the fitted :class:`~brainldm.surface.NSDSurfaceMapper` per
        interpolation, ``"cubic"`` and ``"nearest"``; None without surface).
    files : list of Path
        ``summary.json``, then each subject's maps (NIfTI, and GIFTI on
        fsaverage) and figures (PNG).
    """

    summary: dict
    subjects: dict
    files: list = field(default_factory=list)

    def plot_figures(self, subject, folder):
        """Draw ``subject``'s Figures 6-9 into ``folder``, as ``brainldm encode`` does.

        Returns
        -------
        paths : list of Path
            The PNG files written.
        """
        from brainldm.workflows._encode import draw_figures

        return draw_figures(self.subjects[subject], subject, Path(folder))
