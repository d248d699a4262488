"""Show the figures an example keeps in its variables on its gallery page.

brainldm draws on matplotlib figures of its own (``matplotlib.figure.Figure``, not
pyplot's, whose figures sphinx-gallery's own scraper shows), nilearn displays and PIL
images (``brainldm.plotting.image_grid``), so that a library call never opens a window or
leaves a figure in pyplot. After each cell, every such object newly bound to a name of
the example's globals, or held in a list, tuple or dict bound to one, is saved next to the
page and shown under the cell.
"""

from pathlib import Path

from sphinx_gallery.scrapers import figure_rst

# Per example, the objects already shown (kept alive, so that their ids stay theirs).
_shown = {}


def _figure_of(value):
    """The savable figure a value holds, or None."""
    from matplotlib.figure import Figure
    from PIL import Image

    if isinstance(value, (Figure, Image.Image)):
        return value
    frame = getattr(value, "frame_axes", None)  # a nilearn display
    if frame is not None and isinstance(frame.figure, Figure):
        return frame.figure
    return None


def _save(figure, path):
    from matplotlib.figure import Figure

    if isinstance(figure, Figure):
        figure.savefig(path, dpi=100, facecolor=figure.get_facecolor())
    else:
        figure.convert("RGB").save(path)


def scrape(block, block_vars, gallery_conf, **kwargs):
    """sphinx-gallery image scraper: the reST that shows this cell's new figures."""
    shown = _shown.setdefault(block_vars["src_file"], {})
    new = []
    for value in list(block_vars["example_globals"].values()):
        if isinstance(value, dict):
            values = list(value.values())
        elif isinstance(value, (list, tuple)):
            values = list(value)
        else:
            values = [value]
        for figure in map(_figure_of, values):
            if figure is not None and id(figure) not in shown:
                shown[id(figure)] = figure
                new.append(figure)
    paths = []
    for figure in new:
        paths.append(Path(next(block_vars["image_path_iterator"])))
        _save(figure, paths[-1])
    return figure_rst(paths, gallery_conf["src_dir"]) if paths else ""
