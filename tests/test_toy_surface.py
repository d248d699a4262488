"""The toy world's surfaces, transforms and fsaverage files, in NSD's layout and chain."""

import nibabel as nib
import numpy as np
import pytest
from scipy.spatial import cKDTree

from brainldm.datasets.toy import load_toy_ground_truth
from brainldm.surface import NSDSurfaceMapper, read_nsd_transforms

N_NATIVE, N_FSAVERAGE = 10242, 2562
BETAS = "nsddata_betas/ppdata/subj01/{space}/betas_fithrf_GLMdenoise_RR"


def _data(path):
    return np.asarray(nib.load(path).dataobj)


@pytest.fixture(scope="module")
def brain(small_world):
    return _data(small_world / "nsddata/ppdata/subj01/func1pt8mm/brainmask.nii.gz") > 0


def test_the_surface_files_have_nsds_names_and_shapes(small_world):
    for hemi in ("lh", "rh"):
        for name in ("white", "pial", "layerB1", "layerB2", "layerB3"):
            coords, faces = nib.freesurfer.read_geometry(
                small_world / f"nsddata/freesurfer/subj01/surf/{hemi}.{name}"
            )
            assert coords.shape == (N_NATIVE, 3) and faces.shape == (2 * N_NATIVE - 4, 3)
        for name in ("white", "pial", "inflated", "sphere"):
            coords, faces = nib.freesurfer.read_geometry(
                small_world / f"nsddata/freesurfer/fsaverage/surf/{hemi}.{name}"
            )
            assert coords.shape == (N_FSAVERAGE, 3) and faces.shape == (2 * N_FSAVERAGE - 4, 3)
        transforms = small_world / "nsddata/ppdata/subj01/transforms"
        for layer in ("layerB1", "layerB2", "layerB3"):
            shape = nib.load(transforms / f"{hemi}.func1pt8-to-{layer}.mgz").shape
            assert shape == (N_NATIVE, 1, 1, 3)
        assert nib.load(transforms / f"{hemi}.white-to-fsaverage.mgz").shape == (N_FSAVERAGE, 1, 1)
        for name in ("streams", "nsdgeneral"):
            label = small_world / f"nsddata/freesurfer/fsaverage/label/{hemi}.{name}.mgz"
            assert nib.load(label).shape == (N_FSAVERAGE, 1, 1)
        fsaverage = small_world / BETAS.format(space="fsaverage")
        betas = nib.load(fsaverage / f"{hemi}.betas_session02.mgh")
        assert (
            betas.shape == (N_FSAVERAGE, 1, 1, 150)
            and betas.get_data_dtype().newbyteorder("=") == np.float32
        )
        assert nib.load(fsaverage / f"{hemi}.ncsnr.mgh").shape == (N_FSAVERAGE, 1, 1)


def test_the_fsaverage_sphere_is_an_even_outward_icosahedral_mesh(small_world):
    coords, faces = nib.freesurfer.read_geometry(
        small_world / "nsddata/freesurfer/fsaverage/surf/lh.sphere"
    )
    spacing = cKDTree(coords).query(coords, k=2)[0][:, 1]
    # Neighbours of fsaverage4 on a sphere of radius 100 lie 6.9 to 8.2 mm apart.
    assert spacing.std() / spacing.mean() < 0.1 and spacing.max() / spacing.min() < 1.3
    a, b, c = (coords[faces[:, k]] for k in range(3))
    assert (np.einsum("ij,ij->i", np.cross(b - a, c - a), a) > 0).all()


def test_the_white_to_fsaverage_index_follows_the_subjects_own_vertex_order(small_world):
    truth = load_toy_ground_truth(small_world, "subj01")
    transforms = read_nsd_transforms(small_world, "subj01")
    for h, hemi in enumerate(("lh", "rh")):
        native = transforms[hemi].fsaverage - 1
        np.testing.assert_array_equal(native, truth.fsaverage_native_vertex[h])
        np.testing.assert_array_equal(
            truth.native_fsaverage5_vertex[h][native], np.arange(N_FSAVERAGE)
        )
        assert (native != np.arange(N_FSAVERAGE)).mean() > 0.99


def test_a_planted_voxel_lands_on_the_fsaverage_vertices_whose_depths_round_to_it(
    small_world, brain
):
    transforms = read_nsd_transforms(small_world, "subj01")
    # The voxel of the first fsaverage vertex's native vertex at the middle depth.
    lh = transforms.lh.layers[:, transforms.lh.fsaverage - 1]
    voxel = np.floor(lh[1, 0] - 1 + 0.5)
    planted = (np.argwhere(brain) == voxel).all(axis=1) * 3.0
    mapper = NSDSurfaceMapper(small_world, "subj01", brain, interpolation="nearest").fit()
    mapped = mapper.transform(planted)
    hits = np.concatenate(
        [
            (np.floor(transforms[h].layers - 1 + 0.5) == voxel)
            .all(axis=-1)
            .sum(axis=0)[transforms[h].fsaverage - 1]
            for h in ("lh", "rh")
        ]
    )
    assert hits[0] >= 1 and planted.sum() == 3.0
    np.testing.assert_array_equal(mapped, hits)


def test_the_fsaverage_betas_are_the_volume_betas_mapped_linearly(small_world, brain):
    volume = _data(small_world / BETAS.format(space="func1pt8mm") / "betas_session03.nii.gz")
    percent = volume[brain].T / 300.0
    mapper = NSDSurfaceMapper(small_world, "subj01", brain, interpolation="linear").fit()
    expected = mapper.transform(percent)
    fsaverage = small_world / BETAS.format(space="fsaverage")
    written = np.hstack(
        [_data(fsaverage / f"{h}.betas_session03.mgh")[:, 0, 0, :].T for h in ("lh", "rh")]
    )
    assert np.abs(expected).max() > 1.0
    np.testing.assert_allclose(written, expected, rtol=1e-6, atol=1e-6)
    ncsnr = _data(small_world / BETAS.format(space="func1pt8mm") / "ncsnr.nii.gz")[brain]
    written = np.concatenate([_data(fsaverage / f"{h}.ncsnr.mgh").ravel() for h in ("lh", "rh")])
    np.testing.assert_allclose(written, mapper.transform(ncsnr), rtol=1e-6)


def test_early_labels_sit_at_the_occipital_pole_and_ventral_ones_below(small_world):
    fsaverage = small_world / "nsddata/freesurfer/fsaverage"
    for hemi in ("lh", "rh"):
        pial = nib.freesurfer.read_geometry(fsaverage / f"surf/{hemi}.pial")[0]
        white = nib.freesurfer.read_geometry(fsaverage / f"surf/{hemi}.white")[0]
        x, y, z = ((pial + white) / 2).T
        streams = _data(fsaverage / f"label/{hemi}.streams.mgz").ravel()
        early, ventral = streams == 1, streams == 5
        assert early.sum() >= 20 and ventral.sum() >= 20
        # Measured: early y up to -92 mm against -82 mm for the hemisphere's 5th
        # percentile; ventral z median -10 mm against +16 mm, |x| 37 against 30 mm.
        assert np.percentile(y[early], 95) < np.percentile(y, 5) - 5
        assert np.median(z[ventral]) < np.median(z) - 15
        assert np.percentile(z[ventral], 95) < 10
        assert np.median(np.abs(x[ventral])) > np.median(np.abs(x))
        general = _data(fsaverage / f"label/{hemi}.nsdgeneral.mgz").ravel()
        assert set(np.unique(general)) <= {-1, 0, 1}
        np.testing.assert_array_equal(general[streams > 0], 1)


def test_the_reader_loads_the_toy_worlds_fsaverage_betas_as_nsds(small_world):
    """load_nsd(space="fsaverage") on the toy world: its nsdgeneral vertices, its betas."""
    from nilearn.surface import SurfaceImage

    from brainldm.datasets.nsd import load_nsd

    data = load_nsd(small_world, 1, space="fsaverage", zscore=None, sessions=[1], progress=False)
    labels = [
        _data(small_world / f"nsddata/freesurfer/fsaverage/label/{h}.nsdgeneral.mgz").ravel()
        for h in ("lh", "rh")
    ]
    expected = [(h, v) for h in (0, 1) for v in np.flatnonzero(labels[h] == 1)]
    dropped = {tuple(pair) for pair in data.dropped_vertices}
    assert [tuple(p) for p in data.vertex_index] == [p for p in expected if p not in dropped]
    assert len(dropped) < 0.05 * len(expected)
    hemi, vertex = data.vertex_index.T
    session = {
        h: _data(small_world / BETAS.format(space="fsaverage") / f"{h}.betas_session01.mgh")
        for h in ("lh", "rh")
    }
    trial = int(data.trials_train[0])
    for h, name in enumerate(("lh", "rh")):
        np.testing.assert_allclose(
            data.X_train[0, hemi == h], session[name][vertex[hemi == h], 0, 0, trial], rtol=1e-6
        )
    assert isinstance(data.masker.inverse_transform(data.X_test[0]), SurfaceImage)
