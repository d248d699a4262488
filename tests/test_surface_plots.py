"""fsaverage5 geometry, surface figures of per-vertex maps, and surface maps as GIFTI files."""

import numpy as np
import pytest

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
