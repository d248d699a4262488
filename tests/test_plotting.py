import numpy as np
import pytest
from PIL import Image

from brainldm.plotting import identification_bars, image_grid

MEANS = {
    "z": {"clip": 0.62, "alexnet2": 0.7, "pixcorr": 0.21},
    "c": {"clip": 0.71, "alexnet2": 0.55, "pixcorr": 0.08},
    "zc": {"clip": 0.78, "alexnet2": 0.74, "pixcorr": 0.24},
}
ERRORS = {mode: {metric: 0.02 for metric in scores} for mode, scores in MEANS.items()}


def bar_groups(ax):
    from matplotlib.container import BarContainer

    return [c for c in ax.containers if isinstance(c, BarContainer)]


def solid(colour, n=2, size=8):
    return np.tile(np.array(colour, np.uint8), (n, size, size, 1))


def test_grid_places_each_column_under_its_name_at_a_common_size(tmp_path):
    red, blue = solid((255, 0, 0), size=8), solid((0, 0, 255), size=24)
    grid = image_grid([red, blue], ["seen", "zc"], path=tmp_path / "grid.png")
    # Tiles of the largest side (24 px), 4 px apart, under a 16 px header.
    assert grid.size == (2 * 28 + 4, 16 + 2 * 28)
    pixels = np.asarray(grid)
    for row in range(2):
        top = 16 + row * 28
        assert pixels[top + 12, 4 + 12].tolist() == [255, 0, 0]
        assert pixels[top + 12, 32 + 12].tolist() == [0, 0, 255]
    assert pixels[16 + 26, 4 + 12].tolist() == [255, 255, 255]  # the gap between rows
    assert np.asarray(grid)[:16].min() < 128  # the names are written
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "grid.png")), pixels)


def test_grid_size_sets_the_tile_side():
    assert image_grid([solid((9, 9, 9), n=3)], ["seen"], size=40).size == (48, 16 + 3 * 44)


@pytest.mark.parametrize(
    ("columns", "names", "message"),
    [
        ([solid((0, 0, 0)), solid((0, 0, 0), n=3)], ["a", "b"], "every column needs 2 rows"),
        ([solid((0, 0, 0))], ["a", "b"], "one name per column, got 1 columns and 2 names"),
        ([np.zeros((2, 8, 8, 3))], ["a"], "column 'a' must be uint8 images"),
    ],
)
def test_grid_rejects_ragged_or_unnamed_columns(columns, names, message):
    with pytest.raises(ValueError, match=message):
        image_grid(columns, names)


def test_bars_draw_one_bar_per_mode_and_metric_at_the_means():
    figure = identification_bars(MEANS, ERRORS, chance={"clip": 0.5, "alexnet2": 0.5})
    (ax,) = figure.axes
    heights = [patch.get_height() for patch in ax.patches]
    expected = [MEANS[mode][metric] for mode in MEANS for metric in MEANS["z"]]
    np.testing.assert_allclose(heights, expected)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["clip", "alexnet2", "pixcorr"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["z", "c", "zc"]
    # Dashed chance segments over the two identification metrics only, at 0.5.
    chance = [c for c in ax.collections if c.get_linestyle()[0][1] is not None]
    segments = np.concatenate([c.get_segments() for c in chance])
    assert len(segments) == 2 and np.all(segments[:, :, 1] == 0.5)
    assert segments[:, :, 0].max() < 1.5  # pixcorr, the third group, has none
    assert len(bar_groups(ax)) == 3 and all(c.errorbar is not None for c in bar_groups(ax))


def test_bars_stack_one_panel_per_entry_and_save_a_png(tmp_path):
    panels = {"pairwise protocol": MEANS, "takagi2023 protocol": MEANS}
    figure = identification_bars(panels, {k: ERRORS for k in panels}, path=tmp_path / "bars.png")
    assert [ax.get_title() for ax in figure.axes] == list(panels)
    assert figure.canvas.get_default_filetype() == "png"
    width, height = figure.get_size_inches() * 150
    saved = Image.open(tmp_path / "bars.png")
    assert saved.size == (round(width), round(height))
    assert np.asarray(saved.convert("L")).std() > 10  # something was drawn


def test_bars_without_errors_or_chance_draw_no_error_bars_or_lines():
    figure = identification_bars(MEANS, chance=None)
    (ax,) = figure.axes
    assert len(bar_groups(ax)) == 3 and all(c.errorbar is None for c in bar_groups(ax))
    assert not [c for c in ax.collections if c.get_linestyle()[0][1] is not None]
    low, high = ax.get_ylim()
    assert low <= 0 and high >= 1
