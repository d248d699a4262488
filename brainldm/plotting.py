"""Figures of reconstructions and their scores: image grids and identification bar charts.

:func:`image_grid` tiles images column by column (the seen images beside
their reconstructions, as the paper's figures do) into one PIL image;
:func:`identification_bars` draws scores per metric and reconstruction mode,
with error bars and a chance line, as a matplotlib figure. Both save a PNG
atomically when given a path. Figures are drawn on matplotlib's Agg canvas
directly, so nothing needs a display and pyplot's global state is untouched;
matplotlib is imported only when a chart is drawn.
"""

import numpy as np

from brainldm._images import resize
from brainldm._io import atomic_write

__all__ = ["identification_bars", "image_grid"]

# Pixels between tiles and above the first row (for the column names).
_PAD, _HEADER = 4, 16


def image_grid(columns, names, path=None, size=None):
    """Tile images into a grid: one column per set, one row per image.

    Parameters
    ----------
    columns : sequence of array-like of shape (n_rows, height, width, 3), uint8
        The images of each column, all with the same number of rows; each
        column may have its own image size.
    names : sequence of str
        A name per column, written above it.
    path : str or path-like, optional
        Where to save the grid as PNG, atomically.
    size : int, optional
        Side of every tile in pixels (images are resized with LANCZOS); None
        is the largest side among the images.

    Returns
    -------
    grid : PIL.Image.Image
        RGB, ``len(columns) * (size + 4) + 4`` pixels wide and
        ``16 + n_rows * (size + 4)`` high.

    Examples
    --------
    >>> import numpy as np
    >>> from brainldm.plotting import image_grid
    >>> seen = np.zeros((3, 32, 32, 3), np.uint8)
    >>> reconstructed = np.full((3, 64, 64, 3), 255, np.uint8)
    >>> image_grid([seen, reconstructed], ["seen", "zc"]).size
    (140, 220)
    """
    from PIL import Image, ImageDraw

    columns = [np.asarray(column) for column in columns]
    names = list(names)
    if not columns or len(names) != len(columns):
        raise ValueError(
            f"image_grid needs one name per column, got {len(columns)} columns and "
            f"{len(names)} names"
        )
    n_rows = len(columns[0])
    for name, column in zip(names, columns, strict=True):
        if column.ndim != 4 or column.shape[-1] != 3 or column.dtype != np.uint8:
            raise ValueError(
                f"column {name!r} must be uint8 images of shape (n_rows, height, width, 3), "
                f"got dtype {column.dtype} and shape {column.shape}"
            )
        if len(column) != n_rows:
            raise ValueError(
                f"every column needs {n_rows} rows (as {names[0]!r}), got {len(column)} in {name!r}"
            )
    size = int(size or max(max(column.shape[1:3]) for column in columns))
    canvas = Image.new(
        "RGB",
        (len(columns) * (size + _PAD) + _PAD, _HEADER + n_rows * (size + _PAD)),
        "white",
    )
    draw = ImageDraw.Draw(canvas)
    for col, (column, name) in enumerate(zip(columns, names, strict=True)):
        x = _PAD + col * (size + _PAD)
        draw.text((x, 2), name, fill="black")
        for row, tile in enumerate(resize(column, size) if len(column) else []):
            canvas.paste(Image.fromarray(tile), (x, _HEADER + row * (size + _PAD)))
    if path is not None:
        atomic_write(path, lambda tmp: canvas.save(tmp, format="PNG"))
    return canvas


def _panels(means):
    """``{title: {mode: {metric: value}}}`` from either nesting of ``means``."""
    first = next(iter(means.values()), None)
    if isinstance(first, dict) and isinstance(next(iter(first.values()), None), dict):
        return {str(title): panel for title, panel in means.items()}
    return {"": means}


def identification_bars(means, errors=None, chance=0.5, *, ylabel="score", title=None, path=None):
    """A bar chart of scores per metric and mode, with error bars and chance lines.

    Parameters
    ----------
    means : dict of str to dict of str to float
        Mode -> metric -> score. One level more, panel title -> mode ->
        metric -> score (e.g. one panel per identification protocol), draws
        one panel per entry, stacked.
    errors : dict, optional
        Nested as ``means`` (missing entries or NaN draw no error bar), e.g.
        standard errors across subjects.
    chance : float, dict of str to float, or None, default=0.5
        Chance level drawn as a dashed line across each metric's bars: one
        level for every metric, or metric -> level (metrics left out, or
        None, get no line, e.g. PixCorr and SSIM); None draws none.
    ylabel : str, default="score"
    title : str, optional
        Title above the figure.
    path : str or path-like, optional
        Where to save the figure as PNG (150 dpi), atomically.

    Returns
    -------
    figure : matplotlib.figure.Figure
        One axes per panel, metrics along x in the order first seen, one
        bar colour per mode.

    Examples
    --------
    >>> from brainldm.plotting import identification_bars
    >>> means = {"z": {"clip": 0.62, "pixcorr": 0.21}, "zc": {"clip": 0.78, "pixcorr": 0.24}}
    >>> errors = {"z": {"clip": 0.02, "pixcorr": 0.01}, "zc": {"clip": 0.02, "pixcorr": 0.01}}
    >>> figure = identification_bars(means, errors, chance={"clip": 0.5})
    >>> [len(ax.patches) for ax in figure.axes]
    [4]
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = _panels(means)
    error_panels = _panels(errors) if errors else {}
    n_metrics = max(
        len(dict.fromkeys(m for scores in panel.values() for m in scores))
        for panel in panels.values()
    )
    figure = Figure(figsize=(max(6.0, 0.9 * n_metrics + 2.0), 3.2 * len(panels)))
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(panels), 1, squeeze=False)[:, 0]
    for ax, (panel_title, panel) in zip(axes, panels.items(), strict=True):
        panel_errors = error_panels.get(panel_title, {})
        _draw_panel(ax, panel, panel_errors, chance)
        ax.set_ylabel(ylabel)
        if panel_title:
            ax.set_title(panel_title, fontsize=10)
    if title:
        figure.suptitle(title)
    figure.set_layout_engine("constrained")
    if path is not None:
        atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=150))
    return figure


def _draw_panel(ax, panel, panel_errors, chance):
    """Grouped bars of one panel: a group per metric, a bar per mode."""
    modes = list(panel)
    metrics = list(dict.fromkeys(m for scores in panel.values() for m in scores))
    width = 0.8 / max(len(modes), 1)
    x = np.arange(len(metrics))
    for k, mode in enumerate(modes):
        values = [panel[mode].get(m, np.nan) for m in metrics]
        spread = [panel_errors.get(mode, {}).get(m, np.nan) for m in metrics]
        spread = np.nan_to_num(np.asarray(spread, dtype=float), nan=0.0)
        ax.bar(
            x - 0.4 + (k + 0.5) * width,
            values,
            width,
            yerr=spread if spread.any() else None,
            capsize=2,
            label=mode,
        )
    for j, metric in enumerate(metrics):
        level = chance.get(metric) if isinstance(chance, dict) else chance
        if level is not None:
            ax.hlines(level, j - 0.45, j + 0.45, colors="0.3", linestyles="--", linewidth=1)
    ax.set_xticks(x, metrics, rotation=30, ha="right", fontsize=8)
    ax.set_xlim(-0.6, len(metrics) - 0.4)
    # Scores in [0, 1] on a common scale across panels; room above for the bars' errors.
    low, high = ax.get_ylim()
    ax.set_ylim(min(low, 0.0), max(high, 1.02))
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    ax.grid(axis="y", alpha=0.3)
