"""NSDSurfaceMapper follows nsdcode's volume -> layerB1-3 -> fsaverage chain value for value."""

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy.ndimage import map_coordinates

from brainldm.datasets.nsd import VolumeMasker
from brainldm.surface import NSDSurfaceMapper, read_nsd_transforms

SHAPE = (6, 7, 5)
SUBJECT = "subj03"


def _write_mgz(data, path):
    nib.MGHImage(np.asarray(data, dtype=np.float32), np.eye(4)).to_filename(path)


def _write_root(root, layers, fsaverage, shape=SHAPE):
    """An NSD root holding a subject's func1pt8mm brain mask and surface transforms.

    ``layers[hemi]`` is (3, n_native, 3) 1-based voxel coordinates, ``fsaverage[hemi]``
    the 1-based native vertex of each fsaverage vertex.
    """
    func = Path(root, "nsddata", "ppdata", SUBJECT, "func1pt8mm")
    func.mkdir(parents=True)
    nib.Nifti1Image(np.ones(shape, dtype=np.uint8), np.eye(4)).to_filename(
        func / "brainmask.nii.gz"
    )
    transforms = func.parent / "transforms"
    transforms.mkdir()
    for hemi in ("lh", "rh"):
        for depth in range(3):
            coords = np.asarray(layers[hemi][depth], dtype=float)
            _write_mgz(
                coords[:, None, None, :], transforms / f"{hemi}.func1pt8-to-layerB{depth + 1}.mgz"
            )
        _write_mgz(
            np.asarray(fsaverage[hemi])[:, None, None],
            transforms / f"{hemi}.white-to-fsaverage.mgz",
        )
    return Path(root)


def _same_depths(coords):
    """The same coordinates at the three depths."""
    return np.repeat(np.asarray(coords, dtype=float)[None], 3, axis=0)


@pytest.fixture
def random_root(tmp_path):
    """Vertices at random coordinates (multiples of 1/16: exact in float32, no rounding
    ties), some of them invalid (9999) or outside the volume at some depth."""
    rng = np.random.default_rng(0)
    layers, fsaverage = {}, {}
    for hemi, n_native in (("lh", 40), ("rh", 30)):
        coords = np.floor(rng.uniform(0.5, np.array(SHAPE) + 0.5, (3, n_native, 3)) * 16) / 16
        coords += (np.round(coords * 2) == coords * 2) / 16
        coords[0, 3] = 9999
        coords[1, 5, 2] = 0.75
        coords[2, 6, 0] = SHAPE[0] + 0.25
        layers[hemi] = coords
        fsaverage[hemi] = rng.integers(1, n_native + 1, 12)
    return _write_root(tmp_path / "nsd", layers, fsaverage), layers, fsaverage


def _random_mask():
    mask = np.random.default_rng(1).random(SHAPE) < 0.7
    return mask


def _nsdcode_depth(volume, coords, order, badval):
    """nsdcode's volume-to-nativesurface step (transform_data case 2 and interp_wrapper)."""
    coords = np.array(coords, dtype=float).T
    coords[coords == 9999] = np.nan
    coords = coords - 1
    bad = np.any(~np.isfinite(coords), axis=0)
    coords[:, bad] = -1
    for axis in range(3):
        bad |= (coords[axis] < 0) | (coords[axis] > volume.shape[axis] - 1)
    values = map_coordinates(
        np.nan_to_num(volume).astype(np.float64), coords, order=order, mode="nearest"
    )
    values[bad] = np.nan
    values[np.isnan(values)] = badval
    return values


@pytest.mark.parametrize("interpolation, order", [("cubic", 3), ("linear", 1), ("nearest", 0)])
@pytest.mark.parametrize("target", ["fsaverage", "white"])
def test_the_mapping_equals_nsdcodes_chain(random_root, interpolation, order, target):
    root, layers, fsaverage = random_root
    mask = _random_mask()
    rng = np.random.default_rng(2)
    maps = rng.normal(size=(3, mask.sum()))
    maps[1, 4] = np.nan
    mapper = NSDSurfaceMapper(
        root, SUBJECT, mask, target=target, interpolation=interpolation, badval=-2.5
    ).fit()
    mapped = mapper.transform(maps)
    for row, values in zip(mapped, maps, strict=True):
        volume = np.zeros(SHAPE)
        volume[mask] = values
        expected = []
        for hemi in ("lh", "rh"):
            native = np.mean(
                [_nsdcode_depth(volume, layers[hemi][d], order, -2.5) for d in range(3)], axis=0
            )
            expected.append(native[fsaverage[hemi] - 1] if target == "fsaverage" else native)
        np.testing.assert_allclose(row, np.concatenate(expected), rtol=1e-12, atol=1e-12)
    n = (12, 12) if target == "fsaverage" else (40, 30)
    assert mapper.n_vertices_ == n and mapped.shape == (3, sum(n))


def test_nearest_puts_a_planted_voxel_on_the_vertices_whose_rounded_coordinates_hit_it(
    random_root,
):
    root, layers, _ = random_root
    mask = _random_mask()
    inside = {
        hemi: ((coords >= 1) & (coords <= np.array(SHAPE))).all(axis=-1)
        for hemi, coords in layers.items()
    }
    # The voxel of an lh vertex at the middle depth, inside the volume.
    voxel = tuple(np.floor(layers["lh"][1][inside["lh"][1]][0] - 1 + 0.5).astype(int))
    mask[voxel] = True
    planted = np.zeros(mask.sum())
    planted[np.flatnonzero((np.argwhere(mask) == voxel).all(axis=1))] = 6.0
    mapper = NSDSurfaceMapper(root, SUBJECT, mask, target="white", interpolation="nearest")
    mapped = mapper.fit().transform(planted)
    hits = np.concatenate(
        [
            ((np.floor(layers[hemi] - 1 + 0.5) == voxel).all(axis=-1) & inside[hemi]).sum(axis=0)
            for hemi in ("lh", "rh")
        ]
    )
    assert hits.sum() > 0
    np.testing.assert_array_equal(mapped, 6.0 * hits / 3)


def test_linear_interpolation_takes_trilinear_weights(tmp_path):
    # lh vertex 0 at 0-based (1.25, 2.5, 0.75): its lower corner (1, 2, 0) weighs
    # 0.75 * 0.5 * 0.25 and its upper corner (2, 3, 1) 0.25 * 0.5 * 0.75;
    # vertex 1 at 0-based (3, 1.125, 2) lies on the voxel (3, 1, 2) with weight 7/8.
    layers = {
        "lh": _same_depths([[2.25, 3.5, 1.75], [4, 2.125, 3]]),
        "rh": _same_depths([[1, 1, 1]]),
    }
    root = _write_root(tmp_path, layers, {"lh": [1, 2], "rh": [1, 1]})
    mask = np.ones(SHAPE, dtype=bool)
    volume = np.zeros(SHAPE)
    volume[1, 2, 0], volume[2, 3, 1], volume[3, 1, 2] = 10.0, 100.0, 8.0
    mapper = NSDSurfaceMapper(root, SUBJECT, mask, target="white", interpolation="linear").fit()
    mapped = mapper.transform(volume[mask])
    expected = [10 * 0.75 * 0.5 * 0.25 + 100 * 0.25 * 0.5 * 0.75, 8 * 7 / 8, 0.0]
    np.testing.assert_allclose(mapped, expected, rtol=1e-14)


def test_invalid_or_outside_coordinates_give_badval_at_their_depth_and_depths_are_averaged(
    tmp_path,
):
    inside = [3, 4, 2]
    lh = np.array(
        [
            [inside, [9999, 9999, 9999], [0.5, 2, 2], inside],
            [[2, 4, 2], inside, [2, 2, SHAPE[2] + 0.5], inside],
            [[1, 4, 2], inside, [2, 2, 2], inside],
        ],
        dtype=float,
    )
    root = _write_root(tmp_path, {"lh": lh, "rh": _same_depths([inside])}, {"lh": [1], "rh": [1]})
    volume = np.zeros(SHAPE)
    volume[2, 3, 1], volume[1, 3, 1], volume[0, 3, 1], volume[1, 1, 1] = 9.0, 3.0, 6.0, 1.0
    mask = volume != 0
    mapper = NSDSurfaceMapper(
        root, SUBJECT, mask, target="white", interpolation="nearest", badval=-30.0
    ).fit()
    mapped = mapper.transform(volume[mask])
    # Vertex 0: three valid depths; 1: 9999 at the first; 2: outside at the first two.
    expected = [(9 + 3 + 6) / 3, (-30 + 9 + 9) / 3, (-30 - 30 + 1) / 3, 9.0, 9.0]
    np.testing.assert_allclose(mapped, expected, rtol=1e-14)


def test_fsaverage_vertices_take_their_native_vertex_by_a_one_based_index(tmp_path):
    lh = _same_depths([[1, 1, 1], [2, 1, 1], [3, 1, 1]])
    rh = _same_depths([[1, 2, 1], [1, 3, 1]])
    root = _write_root(tmp_path, {"lh": lh, "rh": rh}, {"lh": [3, 1, 1, 2], "rh": [2, 2, 1, 1]})
    volume = np.zeros(SHAPE)
    volume[0, 0, 0], volume[1, 0, 0], volume[2, 0, 0] = 1.0, 2.0, 3.0
    volume[0, 1, 0], volume[0, 2, 0] = 4.0, 5.0
    mask = volume != 0
    mapper = NSDSurfaceMapper(root, SUBJECT, mask, interpolation="linear").fit()
    np.testing.assert_allclose(mapper.transform(volume[mask]), [3, 1, 1, 2, 5, 5, 4, 4])
    assert mapper.n_vertices_ == (4, 4)


def test_a_volume_masker_gives_the_mapping_of_its_mask_and_dtype_follows_the_input(random_root):
    root, _, _ = random_root
    mask = _random_mask()
    maps = np.random.default_rng(3).normal(size=(2, mask.sum())).astype(np.float32)
    from_array = NSDSurfaceMapper(root, SUBJECT, mask).fit().transform(maps)
    masker = VolumeMasker(mask, np.eye(4)).fit()
    from_masker = NSDSurfaceMapper(root, SUBJECT, masker).fit()
    assert from_array.dtype == np.float32
    np.testing.assert_array_equal(from_masker.transform(maps), from_array)
    np.testing.assert_array_equal(from_masker.transform(maps[1]), from_array[1])
    assert from_masker.transform(maps.astype(np.float64)).dtype == np.float64


def test_read_nsd_transforms_returns_the_files_coordinates_and_index(random_root):
    root, layers, fsaverage = random_root
    transforms = read_nsd_transforms(root, 3)
    np.testing.assert_array_equal(transforms.rh.layers, layers["rh"])
    np.testing.assert_array_equal(transforms.lh.fsaverage, fsaverage["lh"])


def test_a_missing_transform_file_says_where_nsd_has_it(random_root):
    root, _, _ = random_root
    missing = root / "nsddata/ppdata" / SUBJECT / "transforms/rh.white-to-fsaverage.mgz"
    missing.unlink()
    with pytest.raises(FileNotFoundError, match="rh.white-to-fsaverage.mgz") as error:
        NSDSurfaceMapper(root, SUBJECT, _random_mask()).fit()
    assert "'nsddata' release" in str(error.value)
    assert (
        f"aws s3 sync --no-sign-request s3://natural-scenes-dataset/nsddata/ppdata/{SUBJECT}/transforms/"
        in str(error.value)
    )
    # The native surface needs no fsaverage index.
    NSDSurfaceMapper(root, SUBJECT, _random_mask(), target="white").fit()


def test_a_mask_of_another_volume_is_refused_naming_both_shapes(random_root):
    root, _, _ = random_root
    with pytest.raises(ValueError, match=r"mask has shape \(6, 7, 4\).*shape \(6, 7, 5\)"):
        NSDSurfaceMapper(root, SUBJECT, np.ones((6, 7, 4), dtype=bool)).fit()


@pytest.mark.parametrize(
    "params, message",
    [
        (dict(target="pial"), "'target' parameter"),
        (dict(interpolation="spline"), "'interpolation' parameter"),
        (dict(badval="zero"), "'badval' parameter"),
    ],
)
def test_unknown_options_are_refused(random_root, params, message):
    root, _, _ = random_root
    with pytest.raises(ValueError, match=message):
        NSDSurfaceMapper(root, SUBJECT, _random_mask(), **params).fit()


def test_input_of_another_length_is_refused(random_root):
    root, _, _ = random_root
    mask = _random_mask()
    mapper = NSDSurfaceMapper(root, SUBJECT, mask).fit()
    with pytest.raises(ValueError, match=f"mask has {mask.sum()} voxels"):
        mapper.transform(np.zeros((2, mask.sum() + 1)))
