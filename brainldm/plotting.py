"""Figures of reconstructions, their scores and brain maps.

:func:`image_grid` tiles images column by column (the seen images beside
their reconstructions, as the paper's figures do) into one PIL image;
:func:`identification_bars` draws scores per metric and reconstruction mode,
with error bars and a chance line, as a matplotlib figure;
:func:`plot_brain_map` draws a per-voxel map (an encoding model's r, a unique
variance) with nilearn on slices of the subject's own volume, thresholded by
a significance mask, with optional ROI outlines; :func:`plot_surface_map` a
per-vertex fsaverage map on nilearn's fsaverage5, both hemispheres inflated
and flattened. The encoding analyses' figures (the paper's Figures 6-9) build
on them: :func:`plot_encoding_maps` draws every per-voxel map of the analyses
(:func:`plot_encoding_surfaces` the same maps projected to the surface),
:func:`plot_unique_variance` z_c's unique variance per ROI against noise level
or denoising step, and :func:`plot_best_layers` the U-Net layer that wins each
ROI's voxels. All save a PNG atomically when given a path. Figures are drawn on matplotlib's Agg canvas directly, so
nothing needs a display; matplotlib and nilearn are imported only when a
figure is drawn.
"""

import warnings
from itertools import cycle
from pathlib import Path

import numpy as np

from brainldm._fsaverage import HEMISPHERES, load_fsaverage5, to_fsaverage5
from brainldm._images import resize
from brainldm._io import atomic_write
from brainldm._validation import check_options
from brainldm.maps import to_nifti

__all__ = [
    "identification_bars",
    "image_grid",
    "plot_best_layers",
    "plot_brain_map",
    "plot_encoding_maps",
    "plot_encoding_surfaces",
    "plot_surface_map",
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

    For the cortical surface (inflated and flat), project the map to
    fsaverage and draw it with :func:`plot_surface_map`.

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
    paths = []
    for entry in _encoding_maps(analyses, subject):
        if entry.kind == "layers":
            values = np.where(entry.data >= 0, entry.data + 1.0, np.nan)
            title = f"{entry.title} (1-{len(entry.layers)}: {', '.join(entry.layers)})"
            settings = dict(cmap="tab10", vmin=0.5, vmax=10.5, threshold=0.5, title=title)
        else:
            values = entry.data
            settings = dict(significant=entry.significant, vmax=entry.vmax, title=entry.title)
        paths.append(folder / f"{entry.stem}.png")
        plot_brain_map(values, masker, bg_img=bg_img, contours=contours, path=paths[-1], **settings)
    return paths


def _encoding_maps(analyses, subject):
    """Every per-voxel map of the analyses, in order: its file stem, kind, values and scale.

    ``data`` is the map; the kind is ``"r"`` (an encoding model's r), ``"unique"`` (z_c's unique variance) or
    ``"layers"`` (the best layer per voxel: an index into ``layers``, -1 for none).
    """
    from sklearn.utils import Bunch

    maps = []
    if "representations" in analyses:
        result = analyses["representations"]
        vmax = float(np.nanmax(result.r))
        for k, space in enumerate(result.spaces):
            title = f"{subject}: r of {space} (FDR q < 0.05)"
            maps.append(
                Bunch(
                    stem=f"fig6_r_{space}",
                    kind="r",
                    data=np.asarray(result.r[k]),
                    significant=np.asarray(result.significant[k]),
                    vmax=vmax,
                    title=title,
                )
            )
    for name, number in (("noise_levels", 7), ("denoising_stages", 8)):
        if name in analyses:
            result = analyses[name]
            unique = result.unique["zc"]
            vmax = float(np.nanpercentile(np.abs(unique), 99)) or 1.0
            for k, label in enumerate(result.labels):
                maps.append(
                    Bunch(
                        stem=f"fig{number}_unique_zc_{label}",
                        kind="unique",
                        data=np.asarray(unique[k]),
                        significant=np.asarray(result.significant[k]),
                        vmax=vmax,
                        title=f"{subject}: unique variance of z_c, {label}",
                    )
                )
    if "unet_layers" in analyses:
        result = analyses["unet_layers"]
        for i, step in enumerate(result.steps):
            maps.append(
                Bunch(
                    stem=f"fig9_best_layer_{step}",
                    kind="layers",
                    data=np.asarray(result.best_layer[i]),
                    layers=tuple(result.layers),
                    title=f"{subject}: best layer, {step} step",
                )
            )
    return maps


# Views of a surface figure; the inflated panels in drawing order, the medial views in the
# middle (the paper's layout): above the flat maps, left hemisphere first.
_SURFACE_VIEWS = ("lateral", "medial", "flat")
_INFLATED_PANELS = (
    ("left", "lateral"),
    ("left", "medial"),
    ("right", "medial"),
    ("right", "lateral"),
)
# Camera (elevation, azimuth) of the flat maps: from above with x to the right, so that the
# two occipital poles face each other in the middle of the figure.
_FLAT_CAMERA = (90, -90)
# Zoom of the 3-D box: nilearn's 1.3 leaves wide margins around the flat maps.
_FLAT_ZOOM = 1.55
# Background greys (fractions of the grey map, 0 white): gyri light, sulci darker, as in
# pycortex's and Workbench's flat maps; within [0, 1] so nilearn keeps them as they are.
_GYRUS_GREY, _SULCUS_GREY = 0.2, 0.45
# Heights in inches: a row of inflated views, a row of flat maps, the title, the colour bar.
_INFLATED_HEIGHT, _FLAT_HEIGHT, _TITLE_HEIGHT, _KEY_HEIGHT = 2.2, 3.0, 0.4, 0.6


def _check_views(views, hemispheres):
    views = (views,) if isinstance(views, str) else tuple(views)
    hemispheres = (hemispheres,) if isinstance(hemispheres, str) else tuple(hemispheres)
    for view in views:
        check_options(view, "views", "plot_surface_map", _SURFACE_VIEWS)
    for hemi in hemispheres:
        check_options(hemi, "hemispheres", "plot_surface_map", HEMISPHERES)
    if not views or not hemispheres:
        raise ValueError(
            f"plot_surface_map needs at least one view (of {_SURFACE_VIEWS}) and one "
            f"hemisphere (of {HEMISPHERES}), got views={views} and hemispheres={hemispheres}."
        )
    return views, hemispheres


def _surface_mask(mask, shape):
    """A boolean whole-surface mask of 0/1 or booleans, at fsaverage5."""
    mask = np.asarray(mask)
    if mask.shape != shape:
        raise ValueError(
            f"significant has shape {mask.shape}, but values have {shape}: give one entry "
            f"per vertex of values, in the same order."
        )
    if mask.dtype != bool and not (
        np.issubdtype(mask.dtype, np.number) and np.isin(mask[np.isfinite(mask)], (0, 1)).all()
    ):
        raise ValueError(
            "significant must be a boolean mask (or 0 and 1); threshold it first "
            "(e.g. projected >= 0.5)."
        )
    return to_fsaverage5(mask == 1)


def _surface_values(values, significant, threshold, categories):
    """The fsaverage5 values drawn (both hemispheres), NaN where a vertex is not coloured."""
    values = np.asarray(values)
    if values.dtype != bool and not np.issubdtype(values.dtype, np.number):
        raise ValueError(f"values must be numbers or booleans, got dtype {values.dtype}.")
    if values.ndim != 1:
        raise ValueError(
            f"values must be one map of shape (2 * n,), the left hemisphere's n vertices "
            f"then the right's; got shape {values.shape}."
        )
    data = to_fsaverage5(values.astype(np.float64))
    shown = np.isfinite(data)
    if threshold is not None:
        shown &= np.abs(data) > threshold
    if significant is not None:
        shown &= _surface_mask(significant, values.shape)
    if categories is not None:
        shown &= data >= 0  # a negative label is no category (e.g. no significant layer)
        labels = data[shown]
        wrong = (labels != np.round(labels)) | (labels >= len(categories))
        if wrong.any():
            raise ValueError(
                f"with categories, values must be labels 0 to {len(categories) - 1} (an index "
                f"into categories; negative or NaN for none), got {labels[wrong][0]}."
            )
    return np.where(shown, data, np.nan)


def _surface_scale(drawn, cmap, vmin, vmax, symmetric, categories):
    """The colour map, its range and how a face's value comes from its three vertices."""
    from matplotlib import colormaps
    from matplotlib.colors import ListedColormap

    if categories is not None:
        palette = colormaps["tab10" if len(categories) <= 10 else "tab20"]
        colours = [palette(k % palette.N) for k in range(len(categories))]
        # Bins centred on the labels; a face takes the label most of its vertices have.
        return ListedColormap(colours), -0.5, len(categories) - 0.5, "median"
    finite = drawn[np.isfinite(drawn)]
    if symmetric:
        if vmin is not None:
            raise ValueError(
                f"a symmetric colour scale runs from -vmax to vmax: give vmax only, or "
                f"symmetric=False to set vmin (got vmin={vmin})."
            )
        vmax = vmax if vmax is not None else float(np.abs(finite).max()) if finite.size else 0.0
        vmax = vmax or 1.0
        vmin = -vmax
    else:
        vmin = vmin if vmin is not None else min(0.0, float(finite.min()) if finite.size else 0.0)
        if vmax is None:
            vmax = float(finite.max()) if finite.size else vmin + 1.0
            vmax = vmax if vmax > vmin else vmin + 1.0
    if not vmin < vmax:
        raise ValueError(f"the colour scale needs vmin < vmax, got vmin={vmin} and vmax={vmax}.")
    cmap = cmap if cmap is not None else "cold_hot" if symmetric else "hot"
    return (colormaps[cmap] if isinstance(cmap, str) else cmap), float(vmin), float(vmax), "mean"


def _surface_panels(figure, views, hemispheres):
    """3-D axes per (hemisphere, view), laid out in rows: inflated views above flat maps."""
    inflated = [(h, v) for h, v in _INFLATED_PANELS if h in hemispheres and v in views]
    flat = [(h, "flat") for h in HEMISPHERES if h in hemispheres and "flat" in views]
    rows = [(row, height) for row, height in ((inflated, _INFLATED_HEIGHT), (flat, _FLAT_HEIGHT))]
    rows = [(row, height) for row, height in rows if row]
    total = figure.get_figheight()
    top = 1.0 - _TITLE_HEIGHT / total
    panels = []
    for row, height in rows:
        width, top = 1.0 / len(row), top - height / total
        for column, (hemi, view) in enumerate(row):
            ax = figure.add_axes((column * width, top, width, height / total), projection="3d")
            ax.set_label(f"{hemi} {view}")
            panels.append((ax, hemi, view))
    return panels


def _surface_key(figure, cmap, vmin, vmax, categories):
    """A colour bar under the panels, or a legend naming each category's colour."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.patches import Patch

    height = 0.3 * _KEY_HEIGHT / figure.get_figheight()
    if categories is not None:
        handles = [Patch(color=cmap(k), label=str(name)) for k, name in enumerate(categories)]
        figure.legend(
            handles=handles, loc="lower center", ncols=min(len(handles), 6), frameon=False
        )
        return
    cax = figure.add_axes((0.35, 1.4 * height, 0.3, height))
    cax.set_label("colorbar")
    figure.colorbar(ScalarMappable(Normalize(vmin, vmax), cmap), cax=cax, orientation="horizontal")


def plot_surface_map(
    values,
    *,
    significant=None,
    threshold=None,
    cmap=None,
    vmin=None,
    vmax=None,
    symmetric=True,
    categories=None,
    title=None,
    colorbar=True,
    views=_SURFACE_VIEWS,
    hemispheres=HEMISPHERES,
    path=None,
    dpi=150,
):
    """Draw a map of both hemispheres on fsaverage5, inflated and flattened, with nilearn.

    The paper's surface figures (Figures 6-9): in one figure, the inflated
    hemispheres seen from the side and from the middle (left lateral, left
    medial, right medial, right lateral) above the two flat maps (nilearn's
    ``flat_left`` and ``flat_right``, occipital poles in the middle), on a
    background of sulcal depth (gyri light grey, sulci darker). Each panel is
    :func:`nilearn.plotting.plot_surf_stat_map` on matplotlib's 3-D axes; a
    triangle is coloured only when its three vertices are, in the colour of
    their mean (the label most of them have, for ``categories``).

    Parameters
    ----------
    values : array-like of shape (2 * n,)
        One value per fsaverage vertex, the left hemisphere's ``n`` then the
        right's, at any fsaverage order (``n = 10 * 4**k + 2``: NSD's 163,842,
        the toy world's 2,562), brought to fsaverage5 by
        :func:`brainldm.surface.to_fsaverage5`. NaN vertices are not coloured.
    significant : array-like of bool, shape (2 * n,), optional
        The vertices to colour (0 and 1 are taken too), in the order of
        ``values``; None colours every finite vertex.
    threshold : float, optional
        Vertices with ``|value| <= threshold`` are not coloured either.
    cmap : str or matplotlib colormap, optional
        None is ``"cold_hot"`` for a symmetric scale (e.g. a unique variance,
        either sign) and ``"hot"`` otherwise (e.g. an r map).
    vmin, vmax : float, optional
        The colour scale. None for ``vmax`` is the largest value coloured (in
        magnitude for a symmetric scale; 1 when nothing is coloured); None for
        ``vmin`` is ``-vmax`` for a symmetric scale, else 0 or the smallest
        value coloured if it is negative.
    symmetric : bool, default=True
        A scale from ``-vmax`` to ``vmax`` (0 in the middle of ``cmap``), so
        that a value's colour never depends on the other values; False for a
        sequential map of positive values (``symmetric=False, vmin=0``).
    categories : sequence of str, optional
        Draw ``values`` as labels: ``values`` holds indices into
        ``categories`` (e.g. the best U-Net layer per vertex; negative or NaN
        for none), each drawn in its own colour and named in a legend instead
        of a colour bar. ``cmap``, ``vmin``, ``vmax`` and ``symmetric`` are
        then not used.
    title : str, optional
    colorbar : bool, default=True
        A colour bar (or the categories' legend) under the panels.
    views : sequence of {"lateral", "medial", "flat"}, default=("lateral", "medial", "flat")
        The views drawn, in the layout above.
    hemispheres : sequence of {"left", "right"}, default=("left", "right")
        The hemispheres drawn.
    path : str or path-like, optional
        Where to save the figure as PNG (``dpi`` dots per inch), atomically.
    dpi : int, default=150

    Returns
    -------
    figure : matplotlib.figure.Figure
        One 3-D axes per panel, labelled ``"<hemisphere> <view>"`` (e.g.
        ``figure.axes[0].get_label() == "left lateral"``), then the colour
        bar's axes (labelled ``"colorbar"``). About 10 x 6 inches for all views.

    Raises
    ------
    ValueError
        Before anything is drawn: if a view or hemisphere does not exist,
        ``values`` is not one map of two icosahedral hemispheres (the message
        lists the valid vertex counts), ``significant`` differs from it in
        shape or is not boolean, labels are no indices into ``categories``,
        or the colour scale is empty.

    See Also
    --------
    plot_brain_map : a per-voxel map on slices of the subject's volume.
    brainldm.maps.save_surface_maps : surface maps as GIFTI files.

    Examples
    --------
    >>> import numpy as np
    >>> from brainldm.plotting import plot_surface_map
    >>> r = np.random.default_rng(0).uniform(0.0, 0.5, 2 * 2562)  # fsaverage4, both hemispheres
    >>> figure = plot_surface_map(r, significant=r > 0.3, symmetric=False, cmap="hot",
    ...                           vmin=0.0, title="r of z")
    >>> [ax.get_label() for ax in figure.axes]  # doctest: +NORMALIZE_WHITESPACE
    ['left lateral', 'left medial', 'right medial', 'right lateral', 'left flat',
     'right flat', 'colorbar']
    >>> best = np.where(r > 0.3, (r * 10).astype(int) % 3, -1)
    >>> figure = plot_surface_map(best, categories=["down_blocks.0", "mid_block", "up_blocks.3"],
    ...                           views=["flat"])
    >>> [text.get_text() for text in figure.legends[0].get_texts()]
    ['down_blocks.0', 'mid_block', 'up_blocks.3']
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from nilearn import plotting

    views, hemispheres = _check_views(views, hemispheres)
    drawn = _surface_values(values, significant, threshold, categories)
    cmap, vmin, vmax, avg_method = _surface_scale(drawn, cmap, vmin, vmax, symmetric, categories)
    fsaverage5 = load_fsaverage5()
    height = _TITLE_HEIGHT + (_KEY_HEIGHT if colorbar else 0.0)
    height += _INFLATED_HEIGHT if {"lateral", "medial"} & set(views) else 0.0
    height += _FLAT_HEIGHT if "flat" in views else 0.0
    figure = Figure(figsize=(10.0, height), facecolor="white")
    FigureCanvasAgg(figure)
    for ax, hemi, view in _surface_panels(figure, views, hemispheres):
        flat = view == "flat"
        coordinates, faces = (fsaverage5.flat if flat else fsaverage5.inflated)[hemi]
        part = drawn[: len(drawn) // 2] if hemi == "left" else drawn[len(drawn) // 2 :]
        with warnings.catch_warnings():
            # Nothing significant is a result, not a problem: nilearn warns of an all-NaN map.
            warnings.filterwarnings("ignore", "All-NaN slice", RuntimeWarning)
            plotting.plot_surf_stat_map(
                # nilearn centres the coordinates in place: a copy keeps the shared mesh intact.
                (coordinates.copy(), faces),
                part,
                bg_map=np.where(fsaverage5.sulc[hemi] > 0, _SULCUS_GREY, _GYRUS_GREY),
                hemi=hemi,
                view=_FLAT_CAMERA if flat else view,
                engine="matplotlib",
                cmap=cmap,
                colorbar=False,
                avg_method=avg_method,
                vmin=vmin,
                vmax=vmax,
                symmetric_cbar=False,
                axes=ax,
                figure=figure,
            )
        if flat:
            ax.set_box_aspect(None, zoom=_FLAT_ZOOM)
    if colorbar:
        _surface_key(figure, cmap, vmin, vmax, categories)
    if title:
        figure.suptitle(title)
    if path is not None:
        atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=dpi))
    return figure


def _project(to_surface, maps, interpolation):
    """``to_surface(maps, interpolation)``, checked to give one whole-surface map per map."""
    surface = np.asarray(to_surface(np.asarray(maps, dtype=np.float64), interpolation))
    if surface.ndim != 2 or len(surface) != len(maps):
        raise ValueError(
            f"to_surface must map an array of shape (n_maps, n_voxels) to (n_maps, 2 * n), "
            f"whole-surface maps; given shape {np.shape(maps)} with interpolation "
            f"{interpolation!r}, it returned shape {surface.shape}."
        )
    return surface


def _surface_labels(to_surface, labels, n_categories):
    """Labels per vertex (-1 for none), by :func:`brainldm.surface.vote_labels`."""
    from brainldm.surface import vote_labels

    return vote_labels(lambda maps, kind: _project(to_surface, maps, kind), labels, n_categories)


def plot_encoding_surfaces(analyses, to_surface, folder, *, subject=""):
    """Every map of :func:`plot_encoding_maps` on the cortical surface, one PNG each.

    The same maps, file stems (with ``_surface``: ``fig6_r_z_surface.png``,
    ``fig7_unique_zc_<strength>_surface.png``, ``fig8_unique_zc_<step>_surface.png``,
    ``fig9_best_layer_<step>_surface.png``), colour ranges and significance
    as :func:`plot_encoding_maps`, drawn by :func:`plot_surface_map`: r on a
    sequential scale from 0 (``"hot"``), z_c's unique variance on a scale
    symmetric around 0, the best layer per vertex in a colour per layer named
    in a legend.

    Parameters
    ----------
    analyses : mapping of str to Bunch
        As :func:`plot_encoding_maps`.
    to_surface : callable
        ``to_surface(values, interpolation)`` maps per-voxel values of shape
        (n_maps, n_voxels) to whole-surface values of shape (n_maps, 2 * n)
        at any fsaverage order, e.g. through NSD's transforms.
        ``interpolation`` is ``"cubic"`` for continuous maps and
        ``"nearest"`` for significance masks (given as 0 and 1, kept where
        the projection is >= 0.5) and for the best layers (each layer's 0/1
        indicator; a vertex takes the layer that projects highest). It is
        called at most three times, with all maps of one interpolation.
    folder : str or path-like
        Where the PNGs go.
    subject : str, default=""
        Named in the titles.

    Returns
    -------
    paths : list of Path
        The PNG files written, in :func:`plot_encoding_maps`' order.

    Raises
    ------
    ValueError
        If ``to_surface`` returns another number of maps than it was given,
        or maps of no fsaverage size.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from sklearn.utils import Bunch
    >>> from brainldm.plotting import plot_encoding_surfaces
    >>> r = np.random.default_rng(0).uniform(0, 0.5, (2, 300))
    >>> nearest_voxel = np.arange(2 * 642) % 300  # a vertex samples one voxel (fsaverage3)
    >>> def to_surface(values, interpolation):
    ...     return values[:, nearest_voxel]
    >>> representations = Bunch(spaces=("z", "c"), r=r, significant=r > 0.2)
    >>> paths = plot_encoding_surfaces({"representations": representations}, to_surface,
    ...                                tempfile.mkdtemp(), subject="subj01")
    >>> [path.name for path in paths]
    ['fig6_r_z_surface.png', 'fig6_r_c_surface.png']
    """
    folder = Path(folder)
    maps = _encoding_maps(analyses, subject)
    continuous = [entry for entry in maps if entry.kind != "layers"]
    if continuous:
        values = _project(to_surface, [entry.data for entry in continuous], "cubic")
        significant = _project(to_surface, [entry.significant for entry in continuous], "nearest")
        for entry, surface, mask in zip(continuous, values, significant >= 0.5, strict=True):
            entry.update(surface=surface, surface_significant=mask)
    layered = [entry for entry in maps if entry.kind == "layers"]
    if layered:
        n_layers = max(len(entry.layers) for entry in layered)
        labels = _surface_labels(to_surface, [entry.data for entry in layered], n_layers)
        for entry, surface in zip(layered, labels, strict=True):
            entry.update(surface=surface)
    paths = []
    for entry in maps:
        if entry.kind == "layers":
            settings = dict(categories=entry.layers)
        else:
            r_map = entry.kind == "r"
            settings = dict(
                significant=entry.surface_significant,
                symmetric=not r_map,
                vmin=0.0 if r_map else None,
                vmax=entry.vmax,
            )
        paths.append(folder / f"{entry.stem}_surface.png")
        plot_surface_map(entry.surface, title=entry.title, path=paths[-1], **settings)
    return paths
