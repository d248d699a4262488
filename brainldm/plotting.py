"""Figures of reconstructions, their scores and brain maps.

:func:`image_grid` tiles images column by column (the seen images beside
their reconstructions, as the paper's figures do) into one PIL image;
:func:`identification_bars` draws scores per metric and reconstruction mode,
with error bars and a chance line, as a matplotlib figure;
:func:`plot_brain_map` draws a per-voxel map (an encoding model's r, a unique
variance) with nilearn on slices of the subject's own volume, thresholded by
a significance mask, with optional ROI outlines. The encoding analyses'
figures (the paper's Figures 6-9) build on them: :func:`plot_encoding_maps`
draws every per-voxel map of the analyses, :func:`plot_unique_variance` z_c's
unique variance per ROI against noise level or denoising step, and
:func:`plot_best_layers` the U-Net layer that wins each ROI's voxels. All save
a PNG atomically
when given a path. Figures are drawn on matplotlib's Agg canvas directly, so
nothing needs a display; matplotlib and nilearn are imported only when a
figure is drawn.
"""

import warnings
from itertools import cycle
from pathlib import Path

import numpy as np

from brainldm._images import resize
from brainldm._io import atomic_write
from brainldm.maps import to_nifti

__all__ = [
    "identification_bars",
    "image_grid",
    "plot_best_layers",
    "plot_brain_map",
    "plot_encoding_maps",
    "plot_unique_variance",
]

# Pixels between tiles and above the first row (for the column names).
_PAD, _HEADER = 4, 16
# ROIs drawn in the encoding analyses' line and bar plots, when the summary has them.
_PLOTTED = ("early", "midventral", "ventral", "lateral", "parietal", "nsdgeneral")


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


# Outline colours of ROI contours, visible on grey and on the default colour map.
_CONTOUR_COLOURS = ("lime", "magenta", "cyan", "yellow", "orange", "white")
# Slices drawn when cut_coords is None in the x, y and z display modes.
_N_CUTS = 7
# Voxel-to-world affines that differ by less than this (mm) describe the same grid.
_AFFINE_ATOL = 1e-3


def _load_image(img):
    import nibabel as nib

    return nib.load(img) if isinstance(img, (str, Path)) else img


def _check_space(img, reference, what):
    """Refuse an image on another grid than the map's (a template, another subject)."""
    if img.shape[:3] != reference.shape[:3] or not np.allclose(
        img.affine, reference.affine, atol=_AFFINE_ATOL
    ):
        raise ValueError(
            f"{what} is not on the map's grid: shape {img.shape[:3]} and affine "
            f"{np.round(img.affine, 3).tolist()}, against {reference.shape[:3]} and "
            f"{np.round(reference.affine, 3).tolist()}. Give an image in the subject's own "
            f"space (e.g. NSD's T1_to_func1pt8mm.nii.gz), not a template."
        )
    return img


def _volume(values, masker, reference, what):
    """A 3-D image from per-voxel values (through ``masker``), a 3-D array, an image or a path."""
    import nibabel as nib

    if isinstance(values, (str, Path)) or hasattr(values, "dataobj"):
        img = _load_image(values)
        if len(img.shape) == 4 and img.shape[3] == 1:
            img = img.slicer[..., 0]
    else:
        values = np.asarray(values)
        if values.ndim == 3:
            if reference is None:
                raise ValueError(f"{what} is a 3-D array: give it as a NIfTI image, or 1-D values.")
            img = nib.Nifti1Image(values.astype(np.float32), reference.affine)
        elif masker is None:
            raise ValueError(
                f"{what} has shape {values.shape}: per-voxel values need the masker "
                f"(masker=data.masker), or give a NIfTI image."
            )
        else:
            img = to_nifti(values, masker)
    if len(img.shape) != 3:
        raise ValueError(f"{what} must be one 3-D volume, got shape {img.shape}.")
    return img if reference is None else _check_space(img, reference, what)


def _mask_volume(mask, masker, reference, what):
    """A boolean volume from a per-voxel or volume mask of 0/1 or booleans."""
    data = np.asarray(_volume(mask, masker, reference, what).dataobj)
    if data.dtype != bool and not np.isin(data[np.isfinite(data)], (0, 1)).all():
        raise ValueError(
            f"{what} must be a boolean mask (or 0 and 1), got values from {np.nanmin(data)} "
            f"to {np.nanmax(data)}; threshold it first (e.g. nsdgeneral == 1)."
        )
    return data == 1


def _background(bg_img, masker, reference):
    """The background volume: the given image, the mean of given betas, or a plain image."""
    import nibabel as nib

    if bg_img is None:
        # The masker's voxels as a silhouette when known, else a uniform volume.
        plain = masker.mask_ if masker is not None else np.ones(reference.shape, bool)
        return nib.Nifti1Image(plain.astype(np.float32), reference.affine)
    if not isinstance(bg_img, (str, Path)) and not hasattr(bg_img, "dataobj"):
        betas = np.asarray(bg_img)
        if betas.ndim == 2:
            bg_img = np.mean(betas, axis=0, dtype=np.float64)
    img = _load_image(bg_img)
    if hasattr(img, "dataobj") and len(img.shape) == 4:
        img = nib.Nifti1Image(np.mean(img.get_fdata(), axis=3), img.affine)
    return _volume(img, masker, reference, "bg_img")


def _cut_coords(cut_coords, display_mode, region, affine):
    """World coordinates of the slices: evenly through ``region`` for a number of cuts."""
    if display_mode not in ("x", "y", "z"):
        if cut_coords is None:
            return tuple(affine[:3, :3] @ np.argwhere(region).mean(0) + affine[:3, 3])
        return cut_coords
    if cut_coords is None:
        cut_coords = _N_CUTS
    if np.ndim(cut_coords):
        return [float(c) for c in cut_coords]
    world = np.argwhere(region) @ affine[:3, :3].T + affine[:3, 3]
    axis = "xyz".index(display_mode)
    start, span = world[:, axis].min(), np.ptp(world[:, axis])
    fractions = (np.arange(int(cut_coords)) + 0.5) / int(cut_coords)
    return [float(start + f * span) for f in fractions]


def _draw_contours(display, contours, masker, reference, black_bg):
    """Outline each ROI in its own colour, named in a legend under the slices."""
    import nibabel as nib
    from matplotlib.lines import Line2D

    handles = []
    for (name, mask), colour in zip(contours.items(), cycle(_CONTOUR_COLOURS)):
        roi = _mask_volume(mask, masker, reference, f"contours[{name!r}]")
        if roi.any():
            roi_img = nib.Nifti1Image(roi.astype(np.uint8), reference.affine)
            display.add_contours(roi_img, levels=[0.5], colors=[colour], linewidths=1.2)
        handles.append(Line2D([], [], color=colour, label=str(name)))
    if handles:
        display.frame_axes.figure.legend(
            handles=handles,
            loc="lower left",
            ncols=len(handles),
            frameon=False,
            fontsize=8,
            labelcolor="white" if black_bg else "black",
        )


def plot_brain_map(
    stat_map,
    masker=None,
    *,
    bg_img=None,
    significant=None,
    threshold=0.0,
    contours=None,
    display_mode="z",
    cut_coords=None,
    cmap="cold_hot",
    vmax=None,
    vmin=None,
    colorbar=True,
    black_bg=True,
    title=None,
    figsize=None,
    path=None,
    dpi=150,
    **kwargs,
):
    """Draw a per-voxel map on slices of the subject's volume, with nilearn.

    A thin layer over :func:`nilearn.plotting.plot_stat_map` that keeps the
    map in the subject's own space: the background is always given to
    nilearn explicitly (never nilearn's default MNI template), and every
    image must lie on the map's grid. Voxels outside ``significant``, NaN
    voxels and voxels with ``|value| <= threshold`` are not drawn: the
    background shows through them.

    Surface projections (flat maps, inflated cortex) are out of scope: maps
    are drawn on volume slices only.

    Parameters
    ----------
    stat_map : array-like of shape (n_voxels,), nibabel image, str or path-like
        Per-voxel values in the masker's voxel order (e.g. an encoding
        model's r), or a 3-D NIfTI image (or its path), e.g. one written by
        :func:`brainldm.maps.to_nifti`.
    masker : brainldm.datasets.nsd.VolumeMasker, optional
        The subject's masker (``data.masker``); needed when any argument is
        given as per-voxel values.
    bg_img : nibabel image, str, path-like or array-like, optional
        The background, on the map's grid: an anatomical image in the
        subject's functional space (NSD's ``T1_to_func1pt8mm.nii.gz``), a
        volume (a 4-D image is averaged over its volumes), or betas of shape
        (n_samples, n_voxels) whose mean over samples is taken through the
        masker (pass betas that are not z-scored: z-scored betas average to
        about 0). None draws a plain background: the masker's voxels in
        uniform grey (a silhouette of the analysed region), or a uniform
        volume when there is no masker.
    significant : array-like of bool, shape (n_voxels,), or a 3-D mask image, optional
        The voxels to draw (e.g. ``significance(r, n).significant``); None
        draws every finite voxel.
    threshold : float, default=0.0
        Values with ``|value| <= threshold`` are not drawn either (so exact
        zeros never are, nilearn's convention); greyed out on the colour bar.
    contours : dict of str to mask, optional
        ROI name -> boolean mask (per-voxel through the masker, a 3-D array
        or an image on the map's grid), outlined in its own colour and named
        in a legend, e.g. ``{"early": streams == 1, "ventral": streams == 5}``.
    display_mode : str, default="z"
        nilearn's display mode: ``"x"``, ``"y"``, ``"z"`` (slices along one
        axis), ``"ortho"``, ``"xz"``, ``"yz"``, ``"yx"``, ``"tiled"``, ``"mosaic"``.
    cut_coords : int, sequence of float or None, default=None
        World coordinates (mm) of the slices, or for ``"x"``, ``"y"`` and
        ``"z"`` a number of slices spread evenly through the masker's voxels
        (the map's finite non-zero voxels without a masker); None is 7
        slices, or for the other modes the region's centre. The slices do
        not depend on the values, so maps of one subject are drawn alike.
    cmap : str or matplotlib colormap, default="cold_hot"
    vmax : float, optional
        Upper end of the colour scale; None is the largest absolute value
        drawn (1 when nothing is drawn), so the scale does not depend on the
        hidden voxels.
    vmin : float, optional
        Lower end of the colour scale; None is ``-vmax``, so that the colour
        of a value never depends on the other values drawn (0 is the middle
        of ``cmap``). For a map of positive values only, ``vmin=0`` with a
        sequential map (``cmap="hot"``) uses the whole colour range.
    colorbar : bool, default=True
    black_bg : bool, default=True
        Black figure and slice background (nilearn's ``black_bg``).
    title : str, optional
    figsize : tuple of float, optional
        Figure size in inches; None gives 1.8 inches per slice and 2.6 high.
    path : str or path-like, optional
        Where to save the figure as PNG (``dpi`` dots per inch), atomically.
    dpi : int, default=150
    **kwargs
        Passed on to :func:`nilearn.plotting.plot_stat_map` (e.g.
        ``annotate``, ``draw_cross``, ``dim``, ``symmetric_cbar``).

    Returns
    -------
    display : nilearn.plotting.displays.BaseSlicer
        nilearn's display (``display.add_contours(...)`` and the like work on
        it); its figure is ``display.frame_axes.figure``.

    Raises
    ------
    ValueError
        If an image is not on the map's grid (a template, another subject),
        a mask is not boolean, per-voxel values come without a masker or
        with the wrong length.

    See Also
    --------
    brainldm.maps.to_nifti : per-voxel values as a NIfTI image.

    Examples
    --------
    >>> import numpy as np
    >>> from brainldm.datasets.nsd import VolumeMasker
    >>> from brainldm.plotting import plot_brain_map
    >>> mask = np.zeros((12, 14, 10), dtype=bool)
    >>> mask[2:10, 2:12, 2:8] = True
    >>> masker = VolumeMasker(mask, np.diag([1.8, 1.8, 1.8, 1.0])).fit()
    >>> rng = np.random.default_rng(0)
    >>> r = rng.uniform(-0.1, 0.5, masker.n_voxels)
    >>> betas = rng.normal(1.0, 0.2, (20, masker.n_voxels))
    >>> display = plot_brain_map(
    ...     r, masker, bg_img=betas, significant=r > 0.3, cut_coords=4,
    ...     contours={"early": masker.voxel_ijk[:, 0] < 5}, title="r")
    >>> len(display.cut_coords)
    4
    """
    import nibabel as nib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from nilearn import plotting

    stat_img = _volume(stat_map, masker, None, "stat_map")
    data = np.asarray(stat_img.dataobj, dtype=np.float32)
    shown = np.isfinite(data) & (np.abs(data) > threshold)
    if significant is not None:
        shown &= _mask_volume(significant, masker, stat_img, "significant")
    drawn = nib.Nifti1Image(np.where(shown, data, 0).astype(np.float32), stat_img.affine)
    if vmax is None:
        vmax = float(np.abs(data[shown]).max()) if shown.any() else 0.0
        vmax = vmax or 1.0
    region = masker.mask_ if masker is not None else np.isfinite(data) & (data != 0)
    cut_coords = _cut_coords(
        cut_coords,
        display_mode,
        region if region.any() else np.ones(data.shape, bool),
        stat_img.affine,
    )
    if figsize is None:
        n_panels = len(cut_coords) if display_mode in ("x", "y", "z") else 3
        figsize = (1.8 * n_panels + (0.8 if colorbar else 0.0), 2.6)
    figure = Figure(figsize=figsize, facecolor="black" if black_bg else "white")
    FigureCanvasAgg(figure)
    with warnings.catch_warnings():
        # Nothing significant is a result, not a problem: nilearn warns of an empty map.
        warnings.filterwarnings("ignore", "empty mask", UserWarning)
        display = plotting.plot_stat_map(
            drawn,
            bg_img=_background(bg_img, masker, stat_img),
            cut_coords=cut_coords,
            display_mode=display_mode,
            colorbar=colorbar,
            figure=figure,
            title=title,
            # Room under the slices for the legend of the ROI outlines.
            axes=(0.0, 0.1, 1.0, 0.9) if contours else None,
            # Hidden voxels are 0; nilearn hides |value| <= threshold, and 0 would disable it.
            threshold=max(float(threshold), float(np.finfo(np.float32).tiny)),
            cmap=cmap,
            vmin=-vmax if vmin is None else vmin,
            vmax=vmax,
            black_bg=black_bg,
            # Nearest neighbours, so that a hidden voxel never takes a drawn neighbour's colour.
            resampling_interpolation="nearest",
            **kwargs,
        )
    if contours:
        _draw_contours(display, contours, masker, stat_img, black_bg)
    if path is not None:
        atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=dpi))
    return display


def _save(figure, path):
    figure.set_layout_engine("constrained")
    if path is not None:
        atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=150))
    return figure


def plot_unique_variance(result, *, xlabel="img2img strength", title=None, path=None):
    """z_c's mean unique variance per ROI against noise level or denoising step (Figures 7-8).

    Parameters
    ----------
    result : Bunch
        The ``noise_levels`` or ``denoising_stages`` analysis of
        :func:`brainldm.encoding.run_encoding_analyses`: its ``labels`` (the
        x axis) and its ``summary`` (label -> ROI -> ``mean`` of
        ``unique_zc`` and its bootstrap standard error ``unique_zc_se``).
    xlabel : str, default="img2img strength"
    title : str, optional
    path : str or path-like, optional
        Where to save the figure as PNG (150 dpi), atomically.

    Returns
    -------
    figure : matplotlib.figure.Figure
        One line per ROI found in the summary, with error bars.

    Examples
    --------
    >>> from sklearn.utils import Bunch
    >>> from brainldm.plotting import plot_unique_variance
    >>> summary = {label: {roi: {"mean": {"unique_zc": u}, "unique_zc_se": 0.01}
    ...                    for roi, u in (("early", 0.02), ("ventral", 0.1 * k))}
    ...            for k, label in enumerate(["0.40", "0.80"])}
    >>> figure = plot_unique_variance(Bunch(labels=("0.40", "0.80"), summary=summary))
    >>> [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
    ['early', 'ventral']
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    labels, summary = list(result.labels), result.summary
    figure = Figure(figsize=(6.0, 3.6))
    FigureCanvasAgg(figure)
    ax = figure.subplots()
    x = np.arange(len(labels))
    for roi in (r for r in _PLOTTED if r in summary[labels[0]]):
        mean = [summary[label][roi]["mean"]["unique_zc"] for label in labels]
        se = [summary[label][roi]["unique_zc_se"] for label in labels]
        ax.errorbar(x, mean, yerr=se, marker="o", capsize=3, label=roi)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xticks(x, labels)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("unique variance of z_c (r², mean)")
    if title:
        ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, ncol=2)
    return _save(figure, path)


def plot_best_layers(result, *, title=None, path=None):
    """Per read step, the fraction of each ROI's significant voxels each U-Net layer wins (Figure 9).

    Parameters
    ----------
    result : Bunch
        The ``unet_layers`` analysis of
        :func:`brainldm.encoding.run_encoding_analyses`: its ``steps``,
        ``layers`` and ``summary`` (step -> ROI -> ``best_fraction`` ->
        layer -> fraction).
    title : str, optional
    path : str or path-like, optional
        Where to save the figure as PNG (150 dpi), atomically.

    Returns
    -------
    figure : matplotlib.figure.Figure
        One panel per step, one stacked bar per ROI found in the summary.

    Examples
    --------
    >>> from sklearn.utils import Bunch
    >>> from brainldm.plotting import plot_best_layers
    >>> shares = {"early": {"down_blocks.0": 0.7, "mid_block": 0.3},
    ...           "ventral": {"down_blocks.0": 0.2, "mid_block": 0.8}}
    >>> result = Bunch(steps=("early", "late"), layers=("down_blocks.0", "mid_block"),
    ...                summary={step: {roi: {"best_fraction": f} for roi, f in shares.items()}
    ...                         for step in ("early", "late")})
    >>> figure = plot_best_layers(result, title="best layer per ROI")
    >>> [len(ax.patches) for ax in figure.axes]
    [4, 4]
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(3.2 * len(result.steps), 3.4))
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(result.steps), squeeze=False, sharey=True)[0]
    for ax, step in zip(axes, result.steps, strict=True):
        rois = [r for r in _PLOTTED if r in result.summary[step]]
        bottom = np.zeros(len(rois))
        for layer in result.layers:
            share = np.array(
                [result.summary[step][r]["best_fraction"][layer] for r in rois], dtype=float
            )
            ax.bar(rois, np.nan_to_num(share), bottom=bottom, label=layer)
            bottom += np.nan_to_num(share)
        ax.set_title(f"{step} step", fontsize=10)
        ax.tick_params(axis="x", rotation=60, labelsize=7)
    axes[0].set_ylabel("fraction of significant voxels best predicted")
    axes[-1].legend(fontsize=6)
    if title:
        figure.suptitle(title, fontsize=10)
    return _save(figure, path)


def plot_encoding_maps(analyses, masker, folder, *, bg_img=None, contours=None, subject=""):
    """Every per-voxel map of the encoding analyses (Figures 6-9), one PNG each, in ``folder``.

    ``fig6_r_<space>.png``: each feature space's r, significant voxels
    (FDR q < 0.05) only; ``fig7_unique_zc_<strength>.png`` and
    ``fig8_unique_zc_<step>.png``: z_c's unique variance at each noise level
    and denoising step, on one colour scale (the 99th percentile of its
    magnitude); ``fig9_best_layer_<step>.png``: the best U-Net layer per
    voxel (1 is the first layer). Each is :func:`plot_brain_map`'s.

    Parameters
    ----------
    analyses : mapping of str to Bunch
        Analysis name -> its result in
        :func:`brainldm.encoding.run_encoding_analyses` (``representations``,
        ``noise_levels``, ``denoising_stages``, ``unet_layers``); those absent
        are not drawn.
    masker : brainldm.datasets.nsd.VolumeMasker
        The subject's masker.
    folder : str or path-like
        Where the PNGs go.
    bg_img, contours
        As :func:`plot_brain_map`.
    subject : str, default=""
        Named in the titles.

    Returns
    -------
    paths : list of Path
        The PNG files written.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from sklearn.utils import Bunch
    >>> from brainldm.datasets.nsd import VolumeMasker
    >>> from brainldm.plotting import plot_encoding_maps
    >>> mask = np.zeros((8, 8, 6), dtype=bool)
    >>> mask[1:7, 1:7, 1:5] = True
    >>> masker = VolumeMasker(mask, np.diag([1.8, 1.8, 1.8, 1.0])).fit()
    >>> r = np.random.default_rng(0).uniform(0, 0.5, (2, masker.n_voxels))
    >>> representations = Bunch(spaces=("z", "c"), r=r, significant=r > 0.2)
    >>> paths = plot_encoding_maps({"representations": representations}, masker,
    ...                            tempfile.mkdtemp(), subject="subj01")
    >>> [path.name for path in paths]
    ['fig6_r_z.png', 'fig6_r_c.png']
    """
    folder = Path(folder)
    common = dict(masker=masker, bg_img=bg_img, contours=contours)
    maps = []  # (values, plot_brain_map's settings, file name)
    if "representations" in analyses:
        result = analyses["representations"]
        vmax = float(np.nanmax(result.r))
        for k, space in enumerate(result.spaces):
            title = f"{subject}: r of {space} (FDR q < 0.05)"
            settings = dict(significant=result.significant[k], vmax=vmax, title=title)
            maps.append((result.r[k], settings, f"fig6_r_{space}.png"))
    for name, number in (("noise_levels", 7), ("denoising_stages", 8)):
        if name in analyses:
            result = analyses[name]
            unique = result.unique["zc"]
            vmax = float(np.nanpercentile(np.abs(unique), 99)) or 1.0
            for k, label in enumerate(result.labels):
                title = f"{subject}: unique variance of z_c, {label}"
                settings = dict(significant=result.significant[k], vmax=vmax, title=title)
                maps.append((unique[k], settings, f"fig{number}_unique_zc_{label}.png"))
    if "unet_layers" in analyses:
        result = analyses["unet_layers"]
        for i, step in enumerate(result.steps):
            best = np.where(result.best_layer[i] >= 0, result.best_layer[i] + 1.0, np.nan)
            title = (
                f"{subject}: best layer, {step} step (1-{len(result.layers)}: "
                f"{', '.join(result.layers)})"
            )
            settings = dict(cmap="tab10", vmin=0.5, vmax=10.5, threshold=0.5, title=title)
            maps.append((best, settings, f"fig9_best_layer_{step}.png"))
    for values, settings, name in maps:
        plot_brain_map(values, path=folder / name, **settings, **common)
    return [folder / name for _, _, name in maps]
