"""The NSD reader on the fsaverage surface, checked against values computed here by hand."""

import shutil
import tracemalloc
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from nilearn.surface import SurfaceImage

from brainldm.datasets.nsd import load_nsd
from brainldm.datasets.toy import make_toy_nsd
from brainldm.surface import SurfaceMasker

pytestmark = pytest.mark.filterwarnings("ignore:subj0.*dropped:UserWarning")

N_VERTICES = 642  # fsaverage3: the first 642 vertices of fsaverage's order
N_TRIALS = 30
SESSIONS = (1, 2, 3)
FSAVERAGE_BETAS = "nsddata_betas/ppdata/subj01/fsaverage/betas_fithrf_GLMdenoise_RR"
LABELS = "nsddata/freesurfer/fsaverage/label"
SURF = "nsddata/freesurfer/fsaverage/surf"
# nsdgeneral: vertices 10-59 of the left hemisphere and 100-139 of the right.
NSDGENERAL = {"lh": range(10, 60), "rh": range(100, 140)}
# streams: early (1) on left 20-29 and right 100-109, ventral (5) on left 50-69.
STREAMS = {"lh": {1: range(20, 30), 5: range(50, 70)}, "rh": {1: range(100, 110)}}
# Left vertex 15 is constant in session 2: it is dropped.
CONSTANT = ("lh", 15, 2)


def write_mgh(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.asarray(data)
    shape = (data.shape[0], 1, 1) if data.ndim == 1 else (data.shape[0], 1, 1, data.shape[1])
    nib.save(nib.MGHImage(data.reshape(shape), np.eye(4)), path)


def labels(spec):
    values = np.zeros(N_VERTICES, dtype=np.int32)
    for value, vertices in spec.items():
        values[list(vertices)] = value
    return values


def raw_betas(root, hemi, session):
    path = root / FSAVERAGE_BETAS / f"{hemi}.betas_session{session:02d}.mgh"
    return np.asarray(nib.load(path).dataobj).reshape(N_VERTICES, -1).T.astype(np.float64)


def add_fsaverage(root, seed=0):
    """NSD's fsaverage files for subj01, in place of the toy world's own (fsaverage4-sized).

    The toy world's fsaverage meshes go: the files written here are fsaverage3-sized, and a
    test adds meshes of that size where it needs them.
    """
    shutil.rmtree(root / SURF)
    rng = np.random.default_rng(seed)
    for session in SESSIONS:
        for hemi in ("lh", "rh"):
            offset = rng.normal(size=(N_VERTICES, 1)) * 3
            betas = (offset + rng.normal(size=(N_VERTICES, N_TRIALS)) * 2).astype(np.float32)
            if (hemi, session) == CONSTANT[::2]:
                betas[CONSTANT[1]] = 1.5
            write_mgh(root / FSAVERAGE_BETAS / f"{hemi}.betas_session{session:02d}.mgh", betas)
    for hemi in ("lh", "rh"):
        ncsnr = np.arange(N_VERTICES, dtype=np.float32) / 100 + (hemi == "rh")
        write_mgh(root / FSAVERAGE_BETAS / f"{hemi}.ncsnr.mgh", ncsnr)
        write_mgh(root / LABELS / f"{hemi}.nsdgeneral.mgz", labels({1: NSDGENERAL[hemi]}))
        write_mgh(root / LABELS / f"{hemi}.streams.mgz", labels(STREAMS[hemi]))
    return root


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = make_toy_nsd(
        tmp_path_factory.mktemp("toy") / "nsd",
        n_sessions=4,
        n_released_sessions=3,
        trials_per_session=N_TRIALS,
        n_shared=8,
        volume_shape=(12, 14, 12),
        subjects=["subj01"],
        progress=False,
    )
    return add_fsaverage(root)


@pytest.fixture
def broken(world, tmp_path):
    return Path(shutil.copytree(world, tmp_path / "nsd"))


def load(root, **kwargs):
    return load_nsd(root, 1, space="fsaverage", progress=False, **kwargs)


@pytest.fixture(scope="module")
def general(world):
    return load(world)


def trial_images(root):
    responses = pd.read_csv(root / "nsddata/ppdata/subj01/behav/responses.tsv", sep="\t")
    return {s: responses.loc[responses["SESSION"] == s, "73KID"].to_numpy() - 1 for s in SESSIONS}


def shared(root):
    info = pd.read_csv(root / "nsddata/experiments/nsd/nsd_stim_info_merged.csv", index_col=0)
    return np.flatnonzero(info["shared1000"].to_numpy())


def expected_columns(spec, dropped=()):
    """(hemisphere, vertex) of the loaded columns: left's ascending, then right's."""
    return np.array(
        [
            (number, vertex)
            for number, hemi in enumerate(("lh", "rh"))
            for vertex in sorted(spec[hemi])
            if (hemi, vertex) not in dropped
        ]
    )


def zscored_by_hand(root, columns):
    """Every trial's betas at ``columns``, z-scored within each session (float64)."""
    sessions = []
    for session in SESSIONS:
        hemis = [raw_betas(root, hemi, session) for hemi in ("lh", "rh")]
        betas = np.stack([hemis[h][:, v] for h, v in columns], axis=1)
        sessions.append((betas - betas.mean(0)) / betas.std(0))
    return sessions


# Columns, ROIs and values


def test_nsdgeneral_loads_its_vertices_left_then_right_less_the_constant_one(general):
    dropped = {CONSTANT[:2]}
    np.testing.assert_array_equal(general.vertex_index, expected_columns(NSDGENERAL, dropped))
    np.testing.assert_array_equal(general.dropped_vertices, [[0, CONSTANT[1]]])
    assert general.space == "fsaverage"
    assert general.X_train.shape[1] == len(general.vertex_index) == 89


def test_training_rows_are_the_session_zscored_betas_computed_by_hand(world, general):
    expected = zscored_by_hand(world, general.vertex_index)
    images, test_images = trial_images(world), shared(world)
    train = np.concatenate(
        [z[~np.isin(images[s], test_images)] for z, s in zip(expected, SESSIONS, strict=True)]
    )
    np.testing.assert_allclose(general.X_train, train, atol=2e-5)
    assert general.X_train.dtype == np.float32


def test_test_rows_average_each_images_zscored_repetitions(world, general):
    expected = np.concatenate(zscored_by_hand(world, general.vertex_index))
    images = np.concatenate([trial_images(world)[s] for s in SESSIONS])
    test_images = np.unique(images[np.isin(images, shared(world))])
    np.testing.assert_array_equal(general.images_test, test_images)
    means = np.stack([expected[images == image].mean(0) for image in test_images])
    np.testing.assert_allclose(general.X_test, means, atol=2e-5)
    counts = [np.sum(images == image) for image in test_images]
    np.testing.assert_array_equal(general.n_repeats_test, counts)
    assert max(counts) > 1


def test_unscaled_betas_are_the_files_percent_signal_change(world):
    data = load(world, rois="rh.streams:early", zscore=None, sessions=[2])
    np.testing.assert_array_equal(
        data.vertex_index, expected_columns({"lh": [], "rh": range(100, 110)})
    )
    images = trial_images(world)[2]
    train = raw_betas(world, "rh", 2)[:, 100:110][~np.isin(images, shared(world))]
    np.testing.assert_allclose(data.X_train, train, rtol=1e-6)


def test_label_names_select_vertices_of_both_hemispheres(world, general):
    early = load(world, rois="early")
    np.testing.assert_array_equal(
        early.vertex_index, expected_columns({"lh": range(20, 30), "rh": range(100, 110)})
    )
    # The atlases' labels come with every load, over its own vertices.
    lh_ventral = np.isin(general.vertex_index[:, 1], range(50, 70)) & (
        general.vertex_index[:, 0] == 0
    )
    np.testing.assert_array_equal(general.roi_masks["ventral"], lh_ventral)
    assert general.roi_masks["nsdgeneral"].all()


def test_brain_loads_every_vertex_with_a_signal(world):
    data = load(world, rois="brain", sessions=[1])
    assert len(data.vertex_index) == 2 * N_VERTICES
    assert data.roi_masks["nsdgeneral"].sum() == 90


def test_ncsnr_is_read_for_the_loaded_vertices(general):
    hemi, vertex = general.vertex_index.T
    np.testing.assert_allclose(general.ncsnr, vertex / 100 + hemi, rtol=1e-6)


def test_masker_maps_columns_back_to_their_vertices(general):
    assert isinstance(general.masker, SurfaceMasker)
    values = general.masker.inverse_transform(general.X_test[0])
    assert values["left"].shape == values["right"].shape == (N_VERTICES,)
    hemi, vertex = general.vertex_index.T
    np.testing.assert_array_equal(values["left"][vertex[hemi == 0]], general.X_test[0][hemi == 0])
    np.testing.assert_array_equal(general.masker.transform(values), general.X_test[:1])


def test_masker_carries_the_fsaverage_mesh_when_its_files_are_there(broken):
    rng = np.random.default_rng(1)
    for hemi in ("lh", "rh"):
        (broken / SURF).mkdir(parents=True, exist_ok=True)
        coordinates = rng.normal(size=(N_VERTICES, 3))
        faces = np.stack([np.arange(N_VERTICES - 2) + k for k in range(3)], axis=1)
        nib.freesurfer.write_geometry(broken / SURF / f"{hemi}.pial", coordinates, faces)
    data = load(broken, sessions=[1])
    image = data.masker.inverse_transform(data.X_test[:2])
    assert isinstance(image, SurfaceImage)
    assert image.data.parts["left"].shape == (N_VERTICES, 2)


def test_cached_load_equals_the_load_and_differs_from_the_volume(world, general, tmp_path):
    first = load(world, cache_dir=tmp_path)
    again = load(world, cache_dir=tmp_path)
    for name in ("X_train", "X_test", "X_test_trials", "vertex_index", "ncsnr"):
        np.testing.assert_array_equal(again[name], general[name])
    volume = load_nsd(world, 1, cache_dir=tmp_path, progress=False)
    assert len(list(tmp_path.iterdir())) == 2
    assert "voxel_ijk" in volume and "vertex_index" in first


def test_memory_mapped_load_equals_the_load_in_memory(world, general, tmp_path):
    mapped = load(world, cache_dir=tmp_path, mmap=True, average_train=True)
    assert isinstance(mapped.X_train, np.memmap)
    averaged = load(world, average_train=True, n_jobs=2)
    np.testing.assert_allclose(mapped.X_train, averaged.X_train, atol=1e-6)


def test_reading_a_session_holds_only_its_selected_vertices(tmp_path):
    """One ROI of 20 vertices out of a 10,242-vertex, 8 MB per hemisphere session."""
    root = make_toy_nsd(
        tmp_path / "nsd",
        n_sessions=1,
        n_released_sessions=1,
        trials_per_session=210,
        n_shared=8,
        volume_shape=(12, 12, 12),
        subjects=["subj01"],
        progress=False,
    )
    n_vertices = 10242
    rng = np.random.default_rng(0)
    shutil.rmtree(root / SURF)  # the toy world's fsaverage4-sized meshes and ncsnr
    for hemi in ("lh", "rh"):
        (root / FSAVERAGE_BETAS / f"{hemi}.ncsnr.mgh").unlink()
        betas = rng.normal(size=(n_vertices, 210)).astype(np.float32)
        write_mgh(root / FSAVERAGE_BETAS / f"{hemi}.betas_session01.mgh", betas)
        roi = np.zeros(n_vertices, dtype=np.int32)
        roi[5000:5010] = 1
        write_mgh(root / LABELS / f"{hemi}.nsdgeneral.mgz", roi)
        write_mgh(root / LABELS / f"{hemi}.streams.mgz", roi)
    file_bytes = n_vertices * 210 * 4
    tracemalloc.start()
    try:
        data = load(root)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert data.X_train.shape[1] == 20
    assert peak < file_bytes / 4, (peak, file_bytes)


# Bad input, refused before any betas are read


def test_unknown_space_is_named(world):
    with pytest.raises(ValueError, match="'space' parameter of load_nsd must be .*fsaverage"):
        load_nsd(world, 1, space="fsaverage5", progress=False)


@pytest.mark.parametrize(
    "relative, message",
    [
        (f"{FSAVERAGE_BETAS}/rh.betas_session02.mgh", "Betas of subj01, session 2"),
        (f"{LABELS}/rh.streams.mgz", "Right-hemisphere labels of the fsaverage atlas 'streams'"),
        (f"{LABELS}/lh.nsdgeneral.mgz", "ROI atlas 'nsdgeneral'"),
        (f"{FSAVERAGE_BETAS}/lh.ncsnr.mgh", "ncsnr file of subj01"),
    ],
)
def test_missing_file_is_named_with_its_release_part(broken, relative, message):
    (broken / relative).unlink()
    with pytest.raises(FileNotFoundError, match=message) as error:
        load(broken)
    assert relative in str(error.value)
    assert f"the '{relative.split('/')[0]}' part of the NSD release" in str(error.value)


def test_without_fsaverage_betas_the_folder_is_named(broken):
    shutil.rmtree(broken / FSAVERAGE_BETAS)
    with pytest.raises(FileNotFoundError, match="betas folder of subj01.*'nsddata_betas' part"):
        load(broken)


def test_ncsnr_is_none_without_its_files(broken):
    for hemi in ("lh", "rh"):
        (broken / FSAVERAGE_BETAS / f"{hemi}.ncsnr.mgh").unlink()
    assert load(broken, sessions=[1]).ncsnr is None


def test_hemisphere_files_of_different_lengths_are_refused(broken):
    write_mgh(
        broken / FSAVERAGE_BETAS / "rh.betas_session01.mgh", np.ones((162, N_TRIALS), np.float32)
    )
    with pytest.raises(ValueError, match=r"rh\.betas_session01\.mgh 162 x 30.*differ|differ.*162"):
        load(broken)


def test_labels_of_another_length_are_refused(broken):
    write_mgh(broken / LABELS / "rh.streams.mgz", np.ones(162, np.int32))
    with pytest.raises(ValueError, match=r"rh\.streams\.mgz has 162 vertices.*642 per hemisphere"):
        load(broken)
