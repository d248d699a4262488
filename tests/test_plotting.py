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


# Brain maps: a small ellipsoidal "brain" on a 1.8 mm grid shifted from the origin.
SHAPE = (10, 12, 8)
AFFINE = np.array([[1.8, 0, 0, -9.0], [0, 1.8, 0, -11.0], [0, 0, 1.8, -7.0], [0, 0, 0, 1]])


@pytest.fixture(scope="module")
def masker():
    from brainldm.datasets.nsd import VolumeMasker

    i, j, k = np.indices(SHAPE)
    mask = ((i - 4.5) / 4.5) ** 2 + ((j - 5.5) / 5.5) ** 2 + ((k - 3.5) / 3.5) ** 2 < 1
    return VolumeMasker(mask, AFFINE).fit()


@pytest.fixture(scope="module")
def r(masker):
    return np.random.default_rng(0).uniform(0.2, 0.6, masker.n_voxels)


def pixels(display):
    figure = display.frame_axes.figure
    figure.canvas.draw()
    return np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()


def render(values, masker, **kwargs):
    from brainldm.plotting import plot_brain_map

    kwargs.setdefault("vmax", 0.6)
    return pixels(plot_brain_map(values, masker, cut_coords=3, **kwargs))


def test_maps_round_trip_through_nifti_files_on_the_maskers_grid(masker, r, tmp_path):
    import nibabel as nib

    from brainldm.maps import save_maps, to_nifti

    values = r.copy()
    values[[0, 5]] = np.nan  # e.g. constant voxels: kept as NaN, not written as 0
    paths = save_maps({"r": values, "significant": r > 0.4}, masker, tmp_path / "maps")
    assert [p.name for p in paths.values()] == ["r.nii.gz", "significant.nii.gz"]
    img = nib.load(paths["r"])
    assert img.shape == SHAPE and img.get_data_dtype() == np.float32
    np.testing.assert_allclose(img.affine, AFFINE, rtol=1e-6)  # NIfTI stores float32
    np.testing.assert_array_equal(masker.transform(img)[0], values.astype(np.float32))
    assert np.all(img.get_fdata()[~masker.mask_] == 0)
    np.testing.assert_array_equal(masker.transform(nib.load(paths["significant"]))[0], r > 0.4)
    # Equal maps give equal files (no time stamp in the gzip stream).
    again = to_nifti(values, masker, path=tmp_path / "again" / "r.nii.gz")
    assert (tmp_path / "again" / "r.nii.gz").read_bytes() == paths["r"].read_bytes()
    np.testing.assert_array_equal(masker.transform(again)[0], values.astype(np.float32))
    assert not [p for p in tmp_path.rglob(".*")]  # no temporary file left behind


@pytest.mark.parametrize(
    ("maps", "message"),
    [
        ({"r": np.zeros(7)}, r"map 'r' has 7 voxels \(shape \(7,\)\), but the masker has \d+"),
        ({"r": "high"}, "must be numbers or booleans"),
        ({"r": np.full(352, np.inf)}, "map 'r' has 352 infinite entries"),
        ({"../r": 0.0}, "map names become file names"),
    ],
)
def test_save_maps_checks_every_map_before_writing_any(masker, r, tmp_path, maps, message):
    from brainldm.maps import save_maps

    with pytest.raises(ValueError, match=message):
        save_maps({"good": r, **maps}, masker, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_to_nifti_names_both_lengths_and_refuses_infinities(masker, r):
    from brainldm.maps import to_nifti

    with pytest.raises(
        ValueError, match=f"values has {masker.n_voxels - 1} voxels .* has {masker.n_voxels}"
    ):
        to_nifti(r[1:], masker)
    with pytest.raises(ValueError, match="1 infinite entries"):
        to_nifti(np.where(np.arange(masker.n_voxels) == 3, np.inf, r), masker)


def test_brain_map_saves_a_png_of_its_figure(masker, r, tmp_path):
    from brainldm.plotting import plot_brain_map

    display = plot_brain_map(r, masker, cut_coords=4, title="r", path=tmp_path / "r.png", dpi=100)
    assert len(display.cut_coords) == 4
    width, height = display.frame_axes.figure.get_size_inches() * 100
    saved = Image.open(tmp_path / "r.png")
    assert saved.format == "PNG" and saved.size == (round(width), round(height))
    assert np.asarray(saved.convert("RGB")).std() > 10  # not a blank canvas


def test_brain_map_draws_only_the_significant_voxels(masker, r):
    background = render(np.zeros_like(r), masker)  # zeros are never drawn: background only
    none = render(r, masker, significant=np.zeros_like(r, dtype=bool))
    np.testing.assert_array_equal(none, background)
    everything = render(r, masker, significant=np.ones_like(r, dtype=bool))
    assert (everything != background).any(axis=-1).mean() > 0.05
    # The hidden voxels' values leave no trace: only the significant ones are drawn.
    half = masker.voxel_ijk[:, 0] < 5
    other = np.where(half, r, -r)
    np.testing.assert_array_equal(
        render(r, masker, significant=half), render(other, masker, significant=half)
    )
    assert not np.array_equal(render(r, masker), render(other, masker))
    # NaN voxels are not drawn either.
    np.testing.assert_array_equal(render(np.full_like(r, np.nan), masker), background)


def test_brain_map_background_from_betas_is_their_mean_through_the_masker(masker, r):
    from brainldm.maps import to_nifti

    betas = np.random.default_rng(1).normal(5.0, 2.0, (6, masker.n_voxels))
    from_betas = render(r, masker, bg_img=betas, significant=r > 0.5)
    from_mean = render(r, masker, bg_img=to_nifti(betas.mean(0), masker), significant=r > 0.5)
    np.testing.assert_array_equal(from_betas, from_mean)
    assert not np.array_equal(from_betas, render(r, masker, significant=r > 0.5))


def test_brain_map_takes_a_background_file_in_the_subjects_space_only(masker, r, tmp_path):
    import nibabel as nib

    anatomy = np.random.default_rng(2).uniform(0, 100, SHAPE).astype(np.float32)
    nib.save(nib.Nifti1Image(anatomy, AFFINE), tmp_path / "T1_to_func1pt8mm.nii.gz")
    from_file = render(r, masker, bg_img=tmp_path / "T1_to_func1pt8mm.nii.gz")
    from_array = render(r, masker, bg_img=anatomy)
    np.testing.assert_array_equal(from_file, from_array)
    template = nib.Nifti1Image(np.ones((91, 109, 91), np.float32), np.diag([2.0, 2, 2, 1]))
    with pytest.raises(ValueError, match="bg_img is not on the map's grid.*not a template"):
        render(r, masker, bg_img=template)


def test_brain_map_outlines_each_roi_in_a_legend(masker, r):
    from matplotlib.colors import to_rgb

    from brainldm.plotting import plot_brain_map

    early = masker.voxel_ijk[:, 1] < 5
    ventral = np.zeros(SHAPE, bool)
    ventral[3:7, 7:11, 2:6] = True
    contours = {"early": early, "ventral": ventral}
    display = plot_brain_map(r, masker, significant=r > 0.5, cut_coords=3, contours=contours)
    (legend,) = display.frame_axes.figure.legends
    assert [t.get_text() for t in legend.get_texts()] == ["early", "ventral"]
    colours = [h.get_color() for h in legend.legend_handles]
    outlined = pixels(display)
    slices = outlined[: int(0.85 * len(outlined))]  # above the legend, which has these colours too
    for colour in colours:
        rgb = np.round(np.array(to_rgb(colour)) * 255)
        assert (slices == rgb).all(axis=-1).sum() > 20, colour
    with pytest.raises(ValueError, match=r"contours\['early'\] must be a boolean mask"):
        plot_brain_map(r, masker, contours={"early": early * 2.0})


def sweep(labels, means, se=0.01):
    """A noise_levels-like result: label -> ROI -> z_c's mean unique variance and its SE."""
    from sklearn.utils import Bunch

    summary = {
        label: {roi: {"mean": {"unique_zc": v[k]}, "unique_zc_se": se} for roi, v in means.items()}
        for k, label in enumerate(labels)
    }
    return Bunch(labels=tuple(labels), summary=summary)


def test_unique_variance_draws_one_line_per_roi_at_the_means_in_the_rois_order(tmp_path):
    from brainldm.plotting import plot_unique_variance

    means = {"ventral": [0.05, 0.1, 0.2], "early": [0.01, 0.02, 0.0], "V9": [0.3, 0.3, 0.3]}
    result = sweep(["0.20", "0.50", "0.80"], means, se=0.02)
    figure = plot_unique_variance(result, title="subj01", path=tmp_path / "fig7.png")
    (ax,) = figure.axes
    lines = [line for line in ax.get_lines() if line.get_marker() == "o"]
    # The ROIs plotted are the known ones (not V9), early first; x is the label's position.
    assert [text.get_text() for text in ax.get_legend().get_texts()] == ["early", "ventral"]
    np.testing.assert_allclose(np.asarray(lines[1].get_ydata(), float), means["ventral"])
    np.testing.assert_allclose(np.asarray(lines[0].get_xdata(), float), [0, 1, 2])
    assert [tick.get_text() for tick in ax.get_xticklabels()] == ["0.20", "0.50", "0.80"]
    assert ax.get_xlabel() == "img2img strength" and ax.get_title() == "subj01"
    assert Image.open(tmp_path / "fig7.png").size == (900, 540)  # 6 x 3.6 inches at 150 dpi


def test_best_layers_stack_each_layers_share_per_roi_and_step():
    from sklearn.utils import Bunch

    from brainldm.plotting import plot_best_layers

    shares = {"early": {"a": 0.6, "b": 0.4}, "ventral": {"a": 0.25, "b": float("nan")}}
    steps = ("early", "late")
    result = Bunch(
        steps=steps,
        layers=("a", "b"),
        summary={step: {roi: {"best_fraction": f} for roi, f in shares.items()} for step in steps},
    )
    figure = plot_best_layers(result)
    assert [ax.get_title() for ax in figure.axes] == ["early step", "late step"]
    for ax in figure.axes:
        a, b = bar_groups(ax)
        assert [p.get_height() for p in a] == [0.6, 0.25]
        # b sits on a; a NaN share (no significant voxel) draws no bar.
        assert [p.get_height() for p in b] == [0.4, 0.0]
        assert [p.get_y() for p in b] == [0.6, 0.25]


def test_encoding_maps_draw_one_file_per_map_of_each_analysis(masker, r, tmp_path):
    from sklearn.utils import Bunch

    from brainldm.plotting import plot_encoding_maps

    n = masker.n_voxels
    analyses = {
        "representations": Bunch(
            spaces=("z", "zc"), r=np.stack([r, -r]), significant=[r > 0.4] * 2
        ),
        "denoising_stages": Bunch(
            labels=("early", "late"),
            unique={"zc": np.stack([r / 10, r / 20])},
            significant=np.ones((2, n), bool),
        ),
        "unet_layers": Bunch(
            steps=("late",), layers=("a", "b"), best_layer=np.where(r > 0.4, 1, -1)[None]
        ),
    }
    paths = plot_encoding_maps(analyses, masker, tmp_path, subject="subj01")
    names = ["fig6_r_z.png", "fig6_r_zc.png", "fig8_unique_zc_early.png"]
    names += ["fig8_unique_zc_late.png", "fig9_best_layer_late.png"]
    assert paths == [tmp_path / name for name in names]
    assert all(Image.open(path).size[0] > 300 for path in paths)
    assert not list(tmp_path.glob("fig7*"))


def test_importing_the_plotting_module_loads_neither_matplotlib_nor_nilearn():
    import subprocess
    import sys

    code = (
        "import sys, brainldm.plotting, brainldm.maps\n"
        "print(sorted(m for m in ('matplotlib', 'nilearn', 'torch') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.split() == ["[]"], result.stderr
