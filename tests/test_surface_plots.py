"""fsaverage5 geometry, surface figures of per-vertex maps, and surface maps as GIFTI files."""

import numpy as np
import pytest
from PIL import Image

from brainldm.surface import icosahedral_order, load_fsaverage5, to_fsaverage5

N5 = 10242
N4 = 2562
HEMIS = ("left", "right")


def unit_sphere(hemi):
    sphere = np.asarray(load_fsaverage5().sphere[hemi][0], dtype=np.float64)
    return sphere / np.linalg.norm(sphere, axis=1, keepdims=True)


def nearest(points, targets):
    """Index of each target's nearest point, by brute force (no KD-tree)."""
    return np.array([np.argmin(((points - t) ** 2).sum(1)) for t in targets])


def test_bundled_fsaverage5_loads_without_a_network(monkeypatch, tmp_path):
    import socket

    def refuse(*args, **kwargs):
        raise OSError("no network on this machine")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("NILEARN_DATA", str(tmp_path))
    load_fsaverage5.cache_clear()
    try:
        fsaverage5 = load_fsaverage5()
    finally:
        load_fsaverage5.cache_clear()
    for hemi in HEMIS:
        for mesh in ("inflated", "flat", "pial", "white_matter", "sphere"):
            coordinates, faces = getattr(fsaverage5, mesh)[hemi]
            assert coordinates.shape == (N5, 3) and faces.max() == N5 - 1, (mesh, hemi)
        assert fsaverage5.inflated[hemi][1].shape == (20 * 4**5, 3)
        assert fsaverage5.sulc[hemi].shape == (N5,) and fsaverage5.sulc[hemi].std() > 0.1
    assert list(tmp_path.iterdir()) == []  # nothing downloaded into nilearn's data folder
    assert not load_fsaverage5().inflated["left"][0].flags.writeable


@pytest.mark.parametrize("hemi", HEMIS)
def test_fsaverage5_sphere_nests_the_evenly_spaced_icosahedral_orders(hemi):
    from scipy.spatial import cKDTree

    sphere = unit_sphere(hemi)
    # Order 0: a regular icosahedron, every vertex 5 edges of the same length from others.
    edge = 4 / np.sqrt(10 + 2 * np.sqrt(5))
    distances = np.linalg.norm(sphere[:12, None] - sphere[None, :12], axis=-1)
    np.testing.assert_allclose(np.sort(distances, axis=1)[:, 1:6], edge, rtol=1e-3)
    for order in range(5):
        n, n_next = 10 * 4**order + 2, 10 * 4 ** (order + 1) + 2
        tree = cKDTree(sphere[:n])
        # Each vertex order + 1 adds is the midpoint of two vertices of order (an edge),
        # pushed out to the sphere: the subdivision that makes the orders nest.
        ends, two = tree.query(sphere[n:n_next], k=2)
        np.testing.assert_allclose(ends[:, 0], ends[:, 1], rtol=0.02)
        midpoint = sphere[two].sum(1)
        midpoint /= np.linalg.norm(midpoint, axis=1, keepdims=True)
        assert np.abs(midpoint - sphere[n:n_next]).max() < 1e-3, order
        # Evenly spaced: nearest-neighbour distances within 25% of one another.
        spacing = tree.query(sphere[:n], k=2)[0][:, 1]
        assert spacing.max() / spacing.min() < 1.25, order


def test_finer_orders_keep_their_first_fsaverage5_vertices():
    n6 = 10 * 4**6 + 2
    values = np.arange(2 * n6).reshape(1, -1) * np.array([[1], [-1]])  # two maps
    both = to_fsaverage5(values)
    assert both.shape == (2, 2 * N5) and both.dtype == values.dtype
    np.testing.assert_array_equal(both[:, :N5], values[:, :N5])
    np.testing.assert_array_equal(both[:, N5:], values[:, n6 : n6 + N5])
    left, right = to_fsaverage5((values[0, :n6], values[0, n6:]))
    np.testing.assert_array_equal(np.concatenate([left, right]), both[0])
    np.testing.assert_array_equal(to_fsaverage5(both), both)  # fsaverage5 stays as it is


def test_coarser_orders_give_each_vertex_its_nearest_parents_label():
    labels = np.concatenate([np.arange(N4), 10_000 + np.arange(N4)]).astype(np.int16)
    upsampled = to_fsaverage5(labels)
    assert upsampled.shape == (2 * N5,) and upsampled.dtype == np.int16
    for h, hemi in enumerate(HEMIS):
        part = upsampled[h * N5 : (h + 1) * N5]
        np.testing.assert_array_equal(part[:N4], labels[h * N4 : (h + 1) * N4])  # shared: own
        sphere = unit_sphere(hemi)
        checked = np.random.default_rng(h).choice(np.arange(N4, N5), 300, replace=False)
        expected = nearest(sphere[:N4], sphere[checked]) + 10_000 * h
        # Added vertices lie midway between two parents: either is nearest up to rounding.
        chosen = sphere[part[checked] - 10_000 * h]
        best = sphere[expected - 10_000 * h]
        np.testing.assert_allclose(
            np.linalg.norm(chosen - sphere[checked], axis=1),
            np.linalg.norm(best - sphere[checked], axis=1),
            rtol=1e-3,
        )


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (np.zeros(2 * 10000), r"10000 vertices per hemisphere.*10,242 \(fsaverage5\).*163,842"),
        (np.zeros(2 * N5 + 1), r"shape \(2 \* n,\) or \(n_maps, 2 \* n\)"),
        ((np.zeros(N4), np.zeros(N5)), "differ in shape"),
        (np.zeros((2, 3, 2 * N4)), r"got shape \(2, 3, 5124\)"),
    ],
)
def test_lengths_of_no_fsaverage_are_refused_with_the_valid_ones(values, message):
    with pytest.raises(ValueError, match=message):
        to_fsaverage5(values)


def test_icosahedral_order_names_the_order():
    assert [icosahedral_order(10 * 4**k + 2) for k in range(8)] == list(range(8))
    with pytest.raises(ValueError, match="12 \\(fsaverage0\\)"):
        icosahedral_order(13)


# --- figures -------------------------------------------------------------------------------

PANELS = ["left lateral", "left medial", "right medial", "right lateral", "left flat", "right flat"]


def posterior():
    """Whole-surface mask of the occipital vertices: 15% most posterior of each hemisphere."""
    y = np.concatenate([load_fsaverage5().inflated[h][0][:, 1] for h in HEMIS])
    return np.concatenate([part < np.percentile(part, 15) for part in (y[:N5], y[N5:])])


def face_colours(figure):
    """Panel label -> the RGBA colour of each face drawn (in matplotlib's depth order)."""
    figure.canvas.draw()
    return {
        ax.get_label(): ax.collections[0].get_facecolor().copy()
        for ax in figure.axes
        if ax.get_label() in PANELS
    }


def faces_inside(mask, label):
    hemi, view = label.split()
    faces = (load_fsaverage5().flat if view == "flat" else load_fsaverage5().inflated)[hemi][1]
    part = mask[:N5] if hemi == "left" else mask[N5:]
    return int(part[faces].all(axis=1).sum())


def test_surface_map_lays_out_both_hemispheres_inflated_and_flat(tmp_path):
    from brainldm.plotting import plot_surface_map

    r = np.random.default_rng(0).uniform(0, 0.5, 2 * N4)
    figure = plot_surface_map(r, symmetric=False, title="r of z", path=tmp_path / "r.png", dpi=50)
    assert [ax.get_label() for ax in figure.axes] == [*PANELS, "colorbar"]
    assert figure.get_suptitle() == "r of z"
    assert all(ax.name == "3d" for ax in figure.axes[:6])
    # Inflated views in a row above the flat maps, left hemisphere on the left.
    boxes = {ax.get_label(): ax.get_position() for ax in figure.axes}
    assert [boxes[p].x0 for p in PANELS[:4]] == sorted(boxes[p].x0 for p in PANELS[:4])
    assert boxes["left flat"].y1 <= boxes["left lateral"].y0 + 1e-9
    assert boxes["left flat"].x0 < boxes["right flat"].x0
    width, height = figure.get_size_inches() * 50
    assert Image.open(tmp_path / "r.png").size == (round(width), round(height))
    figure = plot_surface_map(r, views="flat", hemispheres=["right"], colorbar=False)
    assert [ax.get_label() for ax in figure.axes] == ["right flat"]


def test_surface_map_colours_exactly_the_significant_vertices():
    from matplotlib import colormaps

    from brainldm.plotting import plot_surface_map

    planted = posterior()
    background = face_colours(plot_surface_map(np.full(2 * N5, np.nan)))
    noise = np.random.default_rng(1).uniform(-1, 1, (2, 2 * N5))
    drawn = []
    for hidden in noise:
        values = np.where(planted, 0.4, hidden)
        settings = dict(significant=planted, symmetric=False, vmin=0.0, vmax=0.5)
        drawn.append(face_colours(plot_surface_map(values, **settings)))
    hot = np.array(colormaps["hot"](0.8))
    for label in PANELS:
        coloured = (drawn[0][label] != background[label]).any(axis=1)
        # A face is coloured when its three vertices are, in the planted value's colour.
        assert coloured.sum() == faces_inside(planted, label) > 100, label
        np.testing.assert_allclose(drawn[0][label][coloured] - hot, 0, atol=2e-3)
        # The hidden vertices' values leave no trace.
        np.testing.assert_array_equal(drawn[0][label], drawn[1][label])


def test_occipital_vertices_face_each_other_in_the_middle_of_the_flat_maps():
    from brainldm.plotting import plot_surface_map

    planted = posterior()
    figure = plot_surface_map(np.where(planted, 1.0, np.nan), views=["flat"])
    background = face_colours(plot_surface_map(np.full(2 * N5, np.nan), views=["flat"]))
    for label, inward in (("left flat", 1), ("right flat", -1)):
        ax = next(a for a in figure.axes if a.get_label() == label)
        colours = face_colours(figure)[label]
        coloured = (colours != background[label]).any(axis=1)
        x = np.array([path.vertices[:, 0].mean() for path in ax.collections[0].get_paths()])
        # In the projection's coordinates, the occipital faces lie towards the other map.
        assert inward * (np.median(x[coloured]) - np.median(x[~coloured])) > 0, label


def test_a_coarser_order_is_drawn_as_its_fsaverage5_upsampling():
    from brainldm.plotting import plot_surface_map

    values = np.random.default_rng(2).normal(0, 0.1, 2 * N4)
    coarse = face_colours(plot_surface_map(values, significant=values > 0, views=["lateral"]))
    fine = plot_surface_map(
        to_fsaverage5(values), significant=to_fsaverage5(values > 0), views=["lateral"]
    )
    for label, colours in face_colours(fine).items():
        np.testing.assert_array_equal(coarse[label], colours)


def test_best_layers_are_drawn_in_one_colour_per_layer_named_in_a_legend():
    from matplotlib import colormaps

    from brainldm.plotting import plot_surface_map

    planted = posterior()
    left = np.arange(2 * N5) < N5
    labels = np.where(planted, np.where(left, 2, 0), -1)
    layers = ["down_blocks.0", "mid_block", "up_blocks.3"]
    figure = plot_surface_map(labels, categories=layers, views=["medial"])
    (legend,) = figure.legends
    assert [text.get_text() for text in legend.get_texts()] == layers
    tab10 = colormaps["tab10"]
    for patch, k in zip(legend.get_patches(), range(3), strict=True):
        np.testing.assert_allclose(patch.get_facecolor(), tab10(k))
    background = face_colours(plot_surface_map(np.full(2 * N5, -1), categories=layers))
    for label, colours in face_colours(figure).items():
        coloured = (colours != background[label]).any(axis=1)
        assert coloured.sum() == faces_inside(planted, label), label
        expected = tab10(2 if label.startswith("left") else 0)
        np.testing.assert_allclose(colours[coloured] - np.array(expected), 0, atol=1e-6)


@pytest.mark.parametrize(
    ("values", "settings", "message"),
    [
        (np.zeros(2 * N4), dict(views=("lateral", "ventral")), "'views' parameter"),
        (np.zeros(2 * N4), dict(hemispheres=("both",)), "'hemispheres' parameter"),
        (np.zeros(2 * N4), dict(views=()), "at least one view"),
        (np.zeros(2 * 10000), {}, r"10000 vertices per hemisphere.*10,242 \(fsaverage5\)"),
        (np.zeros((2, 2 * N4)), {}, "one map of shape"),
        (np.zeros(2 * N4), dict(significant=np.ones(2 * N5, bool)), "significant has shape"),
        (np.zeros(2 * N4), dict(significant=np.full(2 * N4, 0.7)), "must be a boolean mask"),
        (np.full(2 * N4, 0.5), dict(categories=["a", "b"]), "labels 0 to 1"),
        (np.full(2 * N4, 2), dict(categories=["a", "b"]), "labels 0 to 1"),
        (np.zeros(2 * N4), dict(vmin=-1.0), "give vmax only"),
    ],
)
def test_surface_map_refuses_bad_arguments_before_drawing(values, settings, message, tmp_path):
    from brainldm.plotting import plot_surface_map

    with pytest.raises(ValueError, match=message):
        plot_surface_map(values, path=tmp_path / "map.png", **settings)
    assert list(tmp_path.iterdir()) == []


def test_encoding_surfaces_draw_the_volume_maps_through_to_surface(tmp_path):
    from sklearn.utils import Bunch

    from brainldm.plotting import plot_encoding_maps, plot_encoding_surfaces, plot_surface_map

    n = 400
    rng = np.random.default_rng(3)
    r = rng.uniform(0.0, 0.6, (1, n))
    unique = rng.normal(0, 0.02, (1, n))
    best = np.where(r[0] > 0.3, rng.integers(0, 3, n), -1)[None]
    # Each vertex samples two voxels, one twice, and averages them: three "depths".
    near, far = rng.integers(0, n, 2 * N4), rng.integers(0, n, 2 * N4)
    calls = []

    def to_surface(values, interpolation):
        calls.append((values.shape, interpolation))
        return (2 * values[:, near] + values[:, far]) / 3

    analyses = {
        "representations": Bunch(spaces=("z",), r=r[:1], significant=r[:1] > 0.3),
        "denoising_stages": Bunch(
            labels=("late",), unique={"zc": unique}, significant=np.abs(unique) > 0.02
        ),
        "unet_layers": Bunch(steps=("late",), layers=("a", "b", "c"), best_layer=best),
    }
    paths = plot_encoding_surfaces(analyses, to_surface, tmp_path / "surface", subject="s1")
    stems = ["fig6_r_z", "fig8_unique_zc_late", "fig9_best_layer_late"]
    assert paths == [tmp_path / "surface" / f"{stem}_surface.png" for stem in stems]
    assert calls == [((2, n), "cubic"), ((2, n), "nearest"), ((4, n), "nearest")]

    def mean(values):
        return (2 * values[near] + values[far]) / 3

    expected = [
        (
            mean(r[0]),
            dict(
                significant=mean(r[0] > 0.3) >= 0.5,
                symmetric=False,
                vmin=0.0,
                vmax=r.max(),
                title="s1: r of z (FDR q < 0.05)",
            ),
        ),
        (
            mean(unique[0]),
            dict(
                significant=mean(np.abs(unique[0]) > 0.02) >= 0.5,
                vmax=np.percentile(np.abs(unique), 99),
                title="s1: unique variance of z_c, late",
            ),
        ),
        # Labels vote: the voxel sampled twice wins (an average of labels would not).
        (best[0][near], dict(categories=("a", "b", "c"), title="s1: best layer, late step")),
    ]
    for path, (values, settings) in zip(paths, expected, strict=True):
        plot_surface_map(values, path=tmp_path / "expected.png", **settings)
        np.testing.assert_array_equal(
            np.asarray(Image.open(path)), np.asarray(Image.open(tmp_path / "expected.png"))
        )
    volume = plot_encoding_maps(analyses, _voxels_masker(n), tmp_path / "volume")
    assert [p.name.replace(".png", "_surface.png") for p in volume] == [p.name for p in paths]


def _voxels_masker(n):
    from brainldm.datasets.nsd import VolumeMasker

    mask = np.zeros((10, 10, 6), dtype=bool)
    mask.flat[:n] = True
    return VolumeMasker(mask, np.diag([1.8, 1.8, 1.8, 1.0])).fit()


def test_encoding_surfaces_refuse_a_projection_of_another_number_of_maps(tmp_path):
    from sklearn.utils import Bunch

    from brainldm.plotting import plot_encoding_surfaces

    r = np.full((1, 10), 0.5)
    analyses = {"representations": Bunch(spaces=("z",), r=r, significant=r > 0)}
    with pytest.raises(ValueError, match=r"to_surface must map .* returned shape \(5124,\)"):
        plot_encoding_surfaces(analyses, lambda v, i: np.zeros(2 * N4), tmp_path)


# --- GIFTI ---------------------------------------------------------------------------------


def test_surface_maps_round_trip_through_gifti_files_per_hemisphere(tmp_path):
    import nibabel as nib

    from brainldm.maps import save_surface_maps

    r = np.random.default_rng(4).uniform(-0.2, 0.6, 2 * N4)
    r[[3, N4 + 7]] = np.nan  # kept as NaN, not written as 0
    maps = {"r": r, "significant": r > 0.3, "unique": np.stack([r / 10, r / 20])}
    paths = save_surface_maps(maps, tmp_path / "maps")
    assert list(paths) == list(maps)
    assert [p.name for p in paths["r"]] == ["r_hemi-L.func.gii", "r_hemi-R.func.gii"]
    for name, values in maps.items():
        values = np.atleast_2d(values).astype(np.float32)
        for h, path in enumerate(paths[name]):
            img = nib.load(path)
            structure = img.meta["AnatomicalStructurePrimary"]
            assert structure == ("CortexLeft", "CortexRight")[h]
            loaded = np.stack([array.data for array in img.darrays])
            assert loaded.dtype == np.float32
            np.testing.assert_array_equal(loaded, values[:, h * N4 : (h + 1) * N4])
    assert not [p for p in tmp_path.rglob(".*")]  # no temporary file left behind


@pytest.mark.parametrize(
    ("maps", "message"),
    [
        ({"r": np.zeros(2 * 10000)}, r"map 'r' have 10000 vertices per hemisphere"),
        ({"r": np.full(2 * N4, np.inf)}, "map 'r' has 5124 infinite entries"),
        ({"r": np.array(["high"] * 2 * N4)}, "must be numbers or booleans"),
        ({"../r": np.zeros(2 * N4)}, "map names become file names"),
    ],
)
def test_save_surface_maps_checks_every_map_before_writing_any(tmp_path, maps, message):
    from brainldm.maps import save_surface_maps

    with pytest.raises(ValueError, match=message):
        save_surface_maps({"good": np.zeros(2 * N4), **maps}, tmp_path)
    assert list(tmp_path.iterdir()) == []
