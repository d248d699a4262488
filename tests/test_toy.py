"""The toy world: NSD's layout and quirks, its planted signal, and how it is written."""

import json
import os
import signal
import subprocess
import sys
import time
import warnings

import h5py
import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import scipy.io

from brainldm.datasets import toy

SMALL_WORLD = dict(
    n_sessions=6,
    n_released_sessions=5,
    trials_per_session=60,
    n_shared=20,
    volume_shape=(14, 16, 14),
    progress=False,
)
TINY_WORLD = dict(
    n_sessions=3,
    n_released_sessions=2,
    trials_per_session=30,
    n_shared=6,
    volume_shape=(12, 12, 12),
    subjects=["subj01"],
    progress=False,
)
EXPERIMENT = "nsddata/experiments/nsd"
STIMULI = "nsddata_stimuli/stimuli/nsd"
BETAS = "nsddata_betas/ppdata/{}/func1pt8mm/betas_fithrf_GLMdenoise_RR"
FUNC = "nsddata/ppdata/{}/func1pt8mm"
ROIS = FUNC + "/roi"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return toy.make_toy_nsd(tmp_path_factory.mktemp("toy") / "nsd", **SMALL_WORLD)


@pytest.fixture(scope="module")
def design(world):
    return scipy.io.loadmat(world / EXPERIMENT / "nsd_expdesign.mat")


@pytest.fixture(scope="module")
def stim_info(world):
    return pd.read_csv(world / EXPERIMENT / "nsd_stim_info_merged.csv", index_col=0)


@pytest.fixture(scope="module")
def captions(world):
    return {
        split: json.loads((world / STIMULI / "annotations" / f"captions_{split}.json").read_text())
        for split in ("train2017", "val2017")
    }


def betas(root, subject, session):
    return nib.load(root / BETAS.format(subject) / f"betas_session{session:02d}.nii.gz")


def roi(root, subject, name):
    return np.asarray(nib.load(root / ROIS.format(subject) / f"{name}.nii.gz").dataobj)


def trial_images(root, subject, n_trials):
    """0-based 73k index of each trial, from the design file as NSD's manual gives it."""
    expdesign = scipy.io.loadmat(root / EXPERIMENT / "nsd_expdesign.mat")
    number = int(subject[4:])
    return expdesign["subjectim"][number - 1, expdesign["masterordering"][0, :n_trials] - 1] - 1


def early_repeat_reliability(root, subject):
    """Mean over early voxels of the correlation between two presentations of an image.

    Betas are z-scored per voxel within each session, as the NSD manual advises.
    """
    streams = roi(root, subject, "streams")
    early = np.argwhere(streams == 1)
    sessions = SMALL_WORLD["n_released_sessions"]
    tps = SMALL_WORLD["trials_per_session"]
    responses = []
    for session in range(1, sessions + 1):
        data = np.asarray(betas(root, subject, session).dataobj)[tuple(early.T)].astype(float)
        sd = data.std(axis=1, keepdims=True)
        responses.append((data - data.mean(axis=1, keepdims=True)) / np.where(sd > 0, sd, np.nan))
    responses = np.hstack(responses).T
    images = trial_images(root, subject, sessions * tps)
    first, second = [], []
    for image in np.unique(images):
        trials = np.flatnonzero(images == image)
        if len(trials) >= 2:
            first.append(trials[0])
            second.append(trials[1])
    a, b = responses[first], responses[second]
    a, b = a - a.mean(axis=0), b - b.mean(axis=0)
    r = (a * b).sum(axis=0) / np.sqrt((a * a).sum(axis=0) * (b * b).sum(axis=0))
    return np.nanmean(r)


def world_contents(root):
    """Every array and table of a world, keyed by file, for comparing two worlds."""
    contents = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        key = str(path.relative_to(root))
        if path.name.endswith((".nii.gz", ".mgh", ".mgz")):
            contents[key] = np.asarray(nib.load(path).dataobj)
        elif path.parent.name == "surf":
            # FreeSurfer geometry files carry the time they were written.
            coords, faces = nib.freesurfer.read_geometry(path)
            contents[key] = {"coords": coords, "faces": faces}
        elif path.suffix == ".mat":
            mat = scipy.io.loadmat(path)
            contents[key] = {k: v for k, v in mat.items() if not k.startswith("__")}
        elif path.suffix == ".hdf5":
            with h5py.File(path) as f:
                contents[key] = f["imgBrick"][:]
        elif path.suffix == ".npz":
            with np.load(path) as f:
                contents[key] = {k: f[k] for k in f.files}
        else:
            contents[key] = path.read_text()
    return contents


def assert_same_contents(a, b):
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], dict):
            assert a[key].keys() == b[key].keys(), key
            for name in a[key]:
                np.testing.assert_array_equal(a[key][name], b[key][name], err_msg=key)
        elif isinstance(a[key], np.ndarray):
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
        else:
            assert a[key] == b[key], key


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return toy.make_toy_nsd(tmp_path_factory.mktemp("tiny") / "nsd", seed=3, **TINY_WORLD)


def test_same_seed_writes_the_same_world(tiny, tmp_path):
    again = toy.make_toy_nsd(tmp_path / "nsd", seed=3, **TINY_WORLD)
    assert_same_contents(world_contents(tiny), world_contents(again))


def test_other_seed_writes_other_betas_and_images(tiny, tmp_path):
    other = toy.make_toy_nsd(tmp_path / "nsd", seed=4, **TINY_WORLD)
    brain = roi(tiny, "subj01", "nsdgeneral") >= 0
    difference = np.asarray(betas(tiny, "subj01", 1).dataobj) - np.asarray(
        betas(other, "subj01", 1).dataobj
    )
    assert np.abs(difference[brain]).mean() > 300  # more than 1% signal change
    with (
        h5py.File(tiny / STIMULI / "nsd_stimuli.hdf5") as a,
        h5py.File(other / STIMULI / "nsd_stimuli.hdf5") as b,
    ):
        assert np.abs(a["imgBrick"][:].astype(int) - b["imgBrick"][:]).mean() > 10


def test_world_has_every_file_of_the_nsd_release_it_simulates(world):
    expected = [
        f"{EXPERIMENT}/nsd_expdesign.mat",
        f"{EXPERIMENT}/nsd_stim_info_merged.csv",
        f"{STIMULI}/nsd_stimuli.hdf5",
        f"{STIMULI}/annotations/captions_train2017.json",
        f"{STIMULI}/annotations/captions_val2017.json",
        "nsddata/freesurfer/fsaverage/label/streams.mgz.ctab",
        "nsddata/freesurfer/fsaverage/label/nsdgeneral.mgz.ctab",
        "toy_world.json",
        "toy_ground_truth/stimuli.npz",
        "toy_ground_truth/attributes.npz",
    ]
    fsaverage = "nsddata/freesurfer/fsaverage"
    for hemi in ("lh", "rh"):
        expected += [f"{fsaverage}/label/{hemi}.{name}.mgz" for name in ("streams", "nsdgeneral")]
        expected += [
            f"{fsaverage}/surf/{hemi}.{name}" for name in ("white", "pial", "inflated", "sphere")
        ]
    for subject in toy.SUBJECTS:
        expected += [
            f"nsddata/ppdata/{subject}/behav/responses.tsv",
            f"{ROIS.format(subject)}/streams.nii.gz",
            f"{ROIS.format(subject)}/nsdgeneral.nii.gz",
            f"{FUNC.format(subject)}/brainmask.nii.gz",
            f"{FUNC.format(subject)}/T1_to_func1pt8mm.nii.gz",
            f"{BETAS.format(subject)}/ncsnr.nii.gz",
            f"toy_ground_truth/{subject}.npz",
            f"toy_ground_truth/{subject}_surface.npz",
        ]
        surface_betas = f"nsddata_betas/ppdata/{subject}/fsaverage/betas_fithrf_GLMdenoise_RR"
        for hemi in ("lh", "rh"):
            expected += [
                f"nsddata/freesurfer/{subject}/surf/{hemi}.{name}"
                for name in ("white", "pial", "layerB1", "layerB2", "layerB3")
            ]
            expected += [
                f"nsddata/ppdata/{subject}/transforms/{hemi}.{name}.mgz"
                for name in (
                    "func1pt8-to-layerB1",
                    "func1pt8-to-layerB2",
                    "func1pt8-to-layerB3",
                    "white-to-fsaverage",
                )
            ]
            expected += [f"{surface_betas}/{hemi}.ncsnr.mgh"]
            expected += [
                f"{surface_betas}/{hemi}.betas_session{s:02d}.mgh"
                for s in range(1, SMALL_WORLD["n_released_sessions"] + 1)
            ]
        expected += [
            f"{BETAS.format(subject)}/betas_session{s:02d}.nii.gz"
            for s in range(1, SMALL_WORLD["n_released_sessions"] + 1)
        ]
    written = {str(p.relative_to(world)) for p in world.rglob("*") if p.is_file()}
    assert written == set(expected)


def test_design_arrays_are_matlab_rows_of_1_based_ids(design):
    n_trials = SMALL_WORLD["n_sessions"] * SMALL_WORLD["trials_per_session"]
    n_per_subject = n_trials // 3
    n_shared = SMALL_WORLD["n_shared"]
    assert design["masterordering"].shape == (1, n_trials)
    assert design["sharedix"].shape == (1, n_shared)
    assert design["subjectim"].shape == (8, n_per_subject)
    # Every 10k id is shown exactly three times.
    np.testing.assert_array_equal(
        np.bincount(design["masterordering"][0]), [0] + [3] * n_per_subject
    )
    # The first n_shared 10k ids of every subject are the shared images.
    for row in design["subjectim"]:
        np.testing.assert_array_equal(row[:n_shared], design["sharedix"][0])
    n_images = n_shared + 8 * (n_per_subject - n_shared)
    np.testing.assert_array_equal(np.unique(design["subjectim"]), np.arange(1, n_images + 1))


def test_stim_info_rows_are_73k_indices_with_1_based_trial_numbers(stim_info, design):
    n_images = design["subjectim"].max()
    np.testing.assert_array_equal(stim_info.index, np.arange(n_images))
    np.testing.assert_array_equal(stim_info["nsdId"], np.arange(n_images))
    np.testing.assert_array_equal(
        np.flatnonzero(stim_info["shared1000"]), design["sharedix"][0] - 1
    )
    assert set(stim_info["cocoSplit"]) == {"train2017", "val2017"}
    assert stim_info["cocoId"].is_unique
    # subject2_rep1 is the 1-based trial number of subject 2's second presentation.
    seen = np.flatnonzero(stim_info["subject2"] == 1)
    trials = stim_info.loc[seen, "subject2_rep1"].to_numpy()
    np.testing.assert_array_equal(
        design["subjectim"][1, design["masterordering"][0, trials - 1] - 1] - 1, seen
    )
    assert (stim_info.loc[stim_info["subject2"] == 0, "subject2_rep0"] == 0).all()


def test_responses_list_the_released_trials_with_1_based_ids(world):
    responses = pd.read_csv(world / "nsddata/ppdata/subj05/behav/responses.tsv", sep="\t")
    n_trials = SMALL_WORLD["n_released_sessions"] * SMALL_WORLD["trials_per_session"]
    assert len(responses) == n_trials
    np.testing.assert_array_equal(responses["73KID"] - 1, trial_images(world, "subj05", n_trials))
    assert responses["SESSION"].min() == 1
    assert responses["SESSION"].max() == SMALL_WORLD["n_released_sessions"]
    assert responses["RUN"].min() == 1 and responses["TRIAL"].min() == 1
    # ISOLD is 0 exactly on the first presentation of each image.
    first = ~responses["73KID"].duplicated()
    np.testing.assert_array_equal(responses["ISOLD"], (~first).astype(int))


def test_design_has_sessions_that_were_not_released(world, design):
    files = sorted(p.name for p in (world / BETAS.format("subj01")).glob("betas_session*"))
    n_released = SMALL_WORLD["n_released_sessions"]
    assert files == [f"betas_session{s:02d}.nii.gz" for s in range(1, n_released + 1)]
    tps = SMALL_WORLD["trials_per_session"]
    assert design["masterordering"].shape[1] > n_released * tps


def test_some_shared_images_have_fewer_than_three_repetitions_in_released_sessions(world, design):
    n_trials = SMALL_WORLD["n_released_sessions"] * SMALL_WORLD["trials_per_session"]
    shown = trial_images(world, "subj01", n_trials)
    counts = np.array([(shown == image).sum() for image in design["sharedix"][0] - 1])
    assert counts.max() == 3
    assert ((counts > 0) & (counts < 3)).any()


def test_roi_files_mark_outside_the_brain_with_minus_one_and_betas_are_zero_there(world):
    for subject in toy.SUBJECTS:
        nsdgeneral = roi(world, subject, "nsdgeneral")
        streams = roi(world, subject, "streams")
        data = np.asarray(betas(world, subject, 1).dataobj)
        outside = nsdgeneral == -1
        np.testing.assert_array_equal(streams == -1, outside)
        assert not data[outside].any()
        assert (data[~outside].std(axis=1) > 0).mean() > 0.99
        assert set(np.unique(nsdgeneral)) == {-1, 0, 1}
        assert set(np.unique(streams)) == set(range(-1, 8))
        # Every stream lies within nsdgeneral.
        assert (nsdgeneral[streams > 0] == 1).all()


def test_brainmask_and_t1_lie_in_the_functional_space_of_the_betas(world):
    for subject in toy.SUBJECTS:
        reference = betas(world, subject, 1)
        mask = nib.load(world / FUNC.format(subject) / "brainmask.nii.gz")
        t1 = nib.load(world / FUNC.format(subject) / "T1_to_func1pt8mm.nii.gz")
        for image in (mask, t1):
            assert image.shape == reference.shape[:3]
            np.testing.assert_array_equal(image.affine, reference.affine)
        inside = np.asarray(mask.dataobj)
        assert set(np.unique(inside)) == {0, 1}
        np.testing.assert_array_equal(inside == 1, roi(world, subject, "nsdgeneral") >= 0)
        anatomy = np.asarray(t1.dataobj)
        assert anatomy.dtype == np.float32
        assert np.median(anatomy[inside == 1]) > 4 * np.median(anatomy[inside == 0])


def ncsnr_volume(root, subject):
    return np.asarray(nib.load(root / BETAS.format(subject) / "ncsnr.nii.gz").dataobj)


def test_ncsnr_file_is_the_signal_over_the_noise_sd_of_each_brain_voxel(world):
    early = {}
    for subject in ("subj01", "subj07"):
        truth = toy.load_toy_ground_truth(world, subject)
        ncsnr = ncsnr_volume(world, subject)
        assert ncsnr.dtype == np.float32
        expected = np.zeros(ncsnr.shape, dtype=np.float32)
        expected[tuple(truth.voxel_ijk.T)] = truth.signal_sd / truth.noise_sd
        np.testing.assert_allclose(ncsnr, expected, rtol=1e-6)
        assert (ncsnr[roi(world, subject, "nsdgeneral") == -1] == 0).all()
        assert (ncsnr[tuple(truth.voxel_ijk[~truth.nsdgeneral].T)] == 0).all()
        early[subject] = np.median(ncsnr[tuple(truth.voxel_ijk[truth.stream == 1].T)])
    # Early voxels of subj01: signal sd 1 against noise sd 2; subj07 is noisier.
    assert 0.4 < early["subj01"] < 0.6
    assert early["subj07"] < 0.8 * early["subj01"]


def test_ncsnr_file_matches_nsds_estimate_from_repeated_trials(world):
    # NSD's estimate: z-score each voxel within each session; the noise sd is the root mean
    # over images of the variance over their repetitions; ncsnr = sqrt(1 - noise^2) / noise.
    truth = toy.load_toy_ground_truth(world, "subj01")
    bad = (truth.voxel_ijk[:, None] == truth.bad_voxel_ijk).all(-1).any(-1)
    early = truth.voxel_ijk[(truth.stream == 1) & ~bad]
    z = []
    for session in range(1, SMALL_WORLD["n_released_sessions"] + 1):
        data = np.asarray(betas(world, "subj01", session).dataobj)[tuple(early.T)].T.astype(float)
        z.append((data - data.mean(axis=0)) / data.std(axis=0))
    z = np.concatenate(z)
    _, inverse, counts = np.unique(truth.trial_images, return_inverse=True, return_counts=True)
    variances = [z[inverse == i].var(axis=0, ddof=1) for i in np.flatnonzero(counts >= 2)]
    noise = np.sqrt(np.mean(variances, axis=0))
    estimate = np.sqrt(np.maximum(1 - noise**2, 0)) / noise
    ncsnr = ncsnr_volume(world, "subj01")[tuple(early.T)]
    # About 100 images of 2-3 trials: each voxel's estimate is noisy, their median is not.
    # (0.97 here; defining ncsnr as signal / sqrt(signal^2 + noise^2) would give 1.09.)
    assert np.median(estimate / ncsnr) == pytest.approx(1.0, abs=0.06)
    assert np.corrcoef(estimate, ncsnr)[0, 1] > 0.3


def test_colour_tables_name_the_roi_codes(world):
    labels = world / "nsddata/freesurfer/fsaverage/label"
    streams = dict(line.split() for line in (labels / "streams.mgz.ctab").read_text().splitlines())
    assert streams["1"] == "early" and streams["5"] == "ventral"
    assert len(streams) == 8
    assert (labels / "nsdgeneral.mgz.ctab").read_text().splitlines()[1] == "1 nsdgeneral"


def test_betas_are_int16_percent_signal_change_times_300_on_a_1_8_mm_grid(world):
    image = betas(world, "subj01", 2)
    assert image.get_data_dtype() == np.int16
    assert np.asarray(image.dataobj).dtype == np.int16
    assert image.shape == (*SMALL_WORLD["volume_shape"], SMALL_WORLD["trials_per_session"])
    np.testing.assert_allclose(image.header.get_zooms()[:3], 1.8)
    data = np.asarray(image.dataobj)[roi(world, "subj01", "nsdgeneral") == 1] / 300
    # Single-trial betas of a few percent signal change, as NSD's.
    assert 1.0 < data.std() < 5.0


def test_subjects_have_volumes_of_different_shapes(world):
    shapes = {subject: betas(world, subject, 1).shape[:3] for subject in toy.SUBJECTS}
    assert len(set(shapes.values())) == len(toy.SUBJECTS)
    for subject, shape in shapes.items():
        assert roi(world, subject, "streams").shape == shape
        np.testing.assert_array_equal(toy.load_toy_ground_truth(world, subject).volume_shape, shape)


def test_some_images_have_more_than_five_captions_in_either_coco_split(stim_info, captions):
    counts = {}
    for split, coco in captions.items():
        for annotation in coco["annotations"]:
            counts[(split, annotation["image_id"])] = (
                counts.get((split, annotation["image_id"]), 0) + 1
            )
    per_image = np.array(
        [
            counts.get((split, coco_id), 0)
            for split, coco_id in zip(stim_info["cocoSplit"], stim_info["cocoId"], strict=True)
        ]
    )
    assert per_image.min() == 5
    assert (per_image > 5).any()
    assert len(counts) == len(stim_info)
    ids = [{image["id"] for image in coco["images"]} for coco in captions.values()]
    assert not ids[0] & ids[1]


def test_bad_voxels_are_constant_in_one_session_only(world):
    truth = toy.load_toy_ground_truth(world, "subj02")
    assert len(truth.bad_voxel_ijk) == 4
    for ijk, bad_session in zip(truth.bad_voxel_ijk, truth.bad_voxel_session, strict=True):
        for session in range(1, SMALL_WORLD["n_released_sessions"] + 1):
            values = np.asarray(betas(world, "subj02", session).dataobj)[tuple(ijk)]
            assert (values.std() == 0) == (session == bad_session)


def test_early_voxels_are_retinotopic_and_tuned_to_low_level_features_only(world):
    truth = toy.load_toy_ground_truth(world, "subj01")
    early = truth.stream == 1
    low = truth.feature_groups == "low_level"
    assert not truth.weights[np.ix_(early, ~low)].any()
    assert np.abs(truth.weights[np.ix_(early, low)]).sum(axis=1).min() > 0
    # Receptive fields move across the visual field with the voxel's place in the brain.
    r = np.corrcoef(truth.prf_x[early], truth.voxel_ijk[early, 0])[0, 1]
    assert r < -0.8


def test_ventral_voxels_are_tuned_to_semantic_features_only(world):
    truth = toy.load_toy_ground_truth(world, "subj01")
    ventral = truth.stream == 5
    semantic = truth.feature_groups == "semantic"
    assert not truth.weights[np.ix_(ventral, ~semantic)].any()
    assert np.abs(truth.weights[np.ix_(ventral, semantic)]).sum(axis=1).min() > 0
    assert np.isnan(truth.prf_x[ventral]).all()


def test_voxels_outside_nsdgeneral_carry_no_signal(world):
    truth = toy.load_toy_ground_truth(world, "subj01")
    assert not truth.weights[~truth.nsdgeneral].any()
    assert (truth.signal_sd[~truth.nsdgeneral] == 0).all()


def test_signal_sd_is_the_sd_of_the_planted_signal_over_the_image_brick(world):
    truth = toy.load_toy_ground_truth(world, "subj01")
    signal = truth.features @ truth.weights[truth.nsdgeneral].T
    np.testing.assert_allclose(
        signal.std(axis=0, ddof=1), truth.signal_sd[truth.nsdgeneral], rtol=1e-3
    )


def test_betas_files_follow_the_generating_model_of_the_ground_truth(world):
    truth = toy.load_toy_ground_truth(world, "subj01")
    session = 2
    trials = truth.trial_sessions == session
    v = truth.nsdgeneral & ~(truth.voxel_ijk[:, None] == truth.bad_voxel_ijk).all(-1).any(-1)
    data = np.asarray(betas(world, "subj01", session).dataobj)[tuple(truth.voxel_ijk[v].T)].T
    offset = truth.session_offset[session - 1, v]
    scale = truth.session_scale[session - 1, v]
    signal = truth.features[truth.trial_images[trials]] @ truth.weights[v].T
    noise = (data / 300 - offset - scale * signal) / (scale * truth.noise_sd[v])
    # Standard normal, up to the int16 rounding (1/300 % against a noise sd of ~2 %).
    assert abs(noise.mean()) < 0.02
    assert noise.std() == pytest.approx(1.0, abs=0.02)
    assert abs(np.corrcoef(noise.ravel(), signal.ravel())[0, 1]) < 0.02


def test_single_trial_signal_to_noise_of_subj01_early_voxels_is_moderate(world):
    truth = toy.load_toy_ground_truth(world, "subj01")
    early = truth.stream == 1
    r = truth.signal_sd[early] / np.hypot(truth.signal_sd[early], truth.noise_sd[early])
    assert 0.4 < np.median(r) < 0.5
    assert 0.3 < np.quantile(r, 0.1) and np.quantile(r, 0.9) < 0.6


def test_subj01_is_the_most_and_subj07_the_least_reliable_subject(world):
    reliability = {subject: early_repeat_reliability(world, subject) for subject in toy.SUBJECTS}
    # Expected: signal variance / total variance = 0.2 (subj01) down to 0.1 (subj07).
    assert max(reliability, key=reliability.get) == "subj01"
    assert min(reliability, key=reliability.get) == "subj07"
    assert 0.12 < reliability["subj01"] < 0.28
    assert reliability["subj07"] < 0.75 * reliability["subj01"]


def test_ground_truth_records_the_trials_of_the_released_sessions(world):
    truth = toy.load_toy_ground_truth(world, "subj07")
    n_trials = SMALL_WORLD["n_released_sessions"] * SMALL_WORLD["trials_per_session"]
    np.testing.assert_array_equal(truth.trial_images, trial_images(world, "subj07", n_trials))
    np.testing.assert_array_equal(
        np.bincount(truth.trial_sessions)[1:],
        [SMALL_WORLD["trials_per_session"]] * SMALL_WORLD["n_released_sessions"],
    )
    n_images = len(truth.features)
    assert truth.attributes.shape.shape == (n_images, 3)


def test_world_records_how_it_was_made(world):
    info = json.loads((world / "toy_world.json").read_text())
    assert info["toy_world_version"] == toy.TOY_WORLD_VERSION
    assert info["arguments"]["n_sessions"] == SMALL_WORLD["n_sessions"]
    assert info["arguments"]["subjects"] == sorted(toy.SUBJECTS)
    assert len(info["stimulus_fingerprint"]) == 64


def test_existing_world_with_the_same_arguments_is_returned_untouched(world):
    def stamps():
        return {path: path.stat().st_mtime_ns for path in world.rglob("*") if path.is_file()}

    before = stamps()
    assert toy.make_toy_nsd(world, **SMALL_WORLD) == world
    assert stamps() == before


def test_world_of_an_older_version_is_refused_unless_overwritten(tmp_path):
    root = toy.make_toy_nsd(tmp_path / "nsd", **TINY_WORLD)
    marker = root / "toy_world.json"
    info = json.loads(marker.read_text())
    marker.write_text(json.dumps({**info, "toy_world_version": toy.TOY_WORLD_VERSION - 1}))
    (root / BETAS.format("subj01") / "ncsnr.nii.gz").unlink()
    with pytest.raises(ValueError, match=r"toy_world_version.*overwrite=True"):
        toy.make_toy_nsd(root, **TINY_WORLD)
    toy.make_toy_nsd(root, overwrite=True, **TINY_WORLD)
    assert (root / BETAS.format("subj01") / "ncsnr.nii.gz").exists()


def test_existing_world_with_other_arguments_is_refused_unless_overwritten(tmp_path):
    root = toy.make_toy_nsd(tmp_path / "nsd", **TINY_WORLD)
    with pytest.raises(ValueError, match=r"other arguments.*n_shared.*overwrite=True"):
        toy.make_toy_nsd(root, **{**TINY_WORLD, "n_shared": 5})
    toy.make_toy_nsd(root, overwrite=True, **{**TINY_WORLD, "n_shared": 5})
    info = json.loads((root / "toy_world.json").read_text())
    assert info["arguments"]["n_shared"] == 5
    assert scipy.io.loadmat(root / EXPERIMENT / "nsd_expdesign.mat")["sharedix"].shape == (1, 5)
    assert [p.name for p in tmp_path.iterdir()] == ["nsd"]


@pytest.mark.parametrize("overwrite", [False, True])
def test_folder_that_is_not_a_toy_world_is_never_replaced(tmp_path, overwrite):
    (tmp_path / "nsd").mkdir()
    (tmp_path / "nsd" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="does not hold a toy world"):
        toy.make_toy_nsd(tmp_path / "nsd", overwrite=overwrite, **TINY_WORLD)
    assert (tmp_path / "nsd" / "notes.txt").read_text() == "mine"


def test_empty_folder_receives_the_world(tmp_path):
    (tmp_path / "nsd").mkdir()
    root = toy.make_toy_nsd(tmp_path / "nsd", **TINY_WORLD)
    assert (root / "toy_world.json").exists()


@pytest.mark.slow
def test_killed_run_leaves_no_world_that_looks_complete(tmp_path):
    root = tmp_path / "nsd"
    # Betas of 20 sessions follow the first, so the kill lands mid-write.
    medium = dict(SMALL_WORLD, trials_per_session=150, n_shared=50, volume_shape=(20, 24, 20))
    script = (
        f"from brainldm.datasets.toy import make_toy_nsd; make_toy_nsd({str(root)!r}, **{medium!r})"
    )
    child = subprocess.Popen([sys.executable, "-c", script])
    try:
        while not list(tmp_path.glob(".nsd.tmp-*/nsddata_betas")):
            assert child.poll() is None, "the world was written before it could be killed"
            time.sleep(0.02)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    assert not root.exists()
    with pytest.raises(FileNotFoundError, match="no toy world"):
        toy.load_toy_ground_truth(root, "subj01")
    toy.make_toy_nsd(root, **TINY_WORLD)
    assert toy.load_toy_ground_truth(root, "subj01").trial_images.shape == (60,)


def test_world_is_as_readable_as_any_new_folder(tiny):
    umask = os.umask(0)
    os.umask(umask)
    assert tiny.stat().st_mode & 0o777 == 0o777 & ~umask


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (dict(n_sessions=4, trials_per_session=10), "multiple of 3"),
        (dict(n_released_sessions=4), "n_released_sessions=4 exceeds n_sessions=3"),
        (dict(n_shared=30), "n_shared=30 must be less than the 30 images"),
        (dict(volume_shape=(12, 8, 12)), "volume_shape must be 3 sides of at least 12"),
        (dict(subjects=["subj03"]), "subjects must be distinct names among"),
        (
            dict(trials_per_session=0),
            r"The 'trials_per_session' parameter of make_toy_nsd must be an int in the range "
            r"\[1, inf\). Got 0 instead",
        ),
        (dict(seed=1.5), "The 'seed' parameter of make_toy_nsd must be an int.* Got 1.5 instead"),
    ],
)
def test_invalid_arguments_are_named(tmp_path, arguments, message):
    with pytest.raises(ValueError, match=message):
        toy.make_toy_nsd(tmp_path / "nsd", **{**TINY_WORLD, **arguments})
    assert not (tmp_path / "nsd").exists()


def test_ground_truth_of_a_folder_without_a_world_is_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no toy world.*make_toy_nsd"):
        toy.load_toy_ground_truth(tmp_path, "subj01")


def test_ground_truth_of_a_subject_not_simulated_lists_the_subjects(tiny):
    with pytest.raises(ValueError, match=r"subject='subj02' is not in the toy world.*subj01"):
        toy.load_toy_ground_truth(tiny, "subj02")


def test_subject_is_accepted_as_number_or_name(world):
    by_number = toy.load_toy_ground_truth(world, 5)
    by_name = toy.load_toy_ground_truth(world, "subj05")
    np.testing.assert_array_equal(by_number.weights, by_name.weights)
    assert by_number.subject == "subj05"


def _column_correlations(a, b):
    a, b = a - a.mean(axis=0), b - b.mean(axis=0)
    return (a * b).sum(axis=0) / np.sqrt((a * a).sum(axis=0) * (b * b).sum(axis=0))


@pytest.fixture(scope="module")
def default_world(tmp_path_factory):
    return toy.make_toy_nsd(tmp_path_factory.mktemp("toy_default") / "nsd", progress=False)


@pytest.mark.slow
def test_decoders_recover_planted_low_level_features_from_early_and_semantic_from_ventral(
    default_world,
):
    from brainldm.datasets.nsd import load_nsd
    from brainldm.decoding import LatentDecoder

    with warnings.catch_warnings():
        # The planted bad voxels are dropped with a warning, as they should be.
        warnings.simplefilter("ignore", UserWarning)
        data = load_nsd(default_world, "subj01", progress=False)
    truth = toy.load_toy_ground_truth(default_world, "subj01")
    low = truth.feature_groups == "low_level"
    scores = {}
    for roi_name in ("early", "ventral"):
        for group, columns in (("low_level", low), ("semantic", ~low)):
            decoder = LatentDecoder(voxels=data.roi_masks[roi_name])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                decoder.fit(
                    data.X_train,
                    truth.features[data.images_train][:, columns],
                    groups=data.images_train,
                )
            predicted = decoder.predict(data.X_test)
            r = _column_correlations(predicted, truth.features[data.images_test][:, columns])
            scores[roi_name, group] = np.mean(r)
    # Measured: 0.88 and 0.98 on the diagonal, 0.21 off it.
    assert scores["early", "low_level"] > 0.8
    assert scores["ventral", "semantic"] > 0.9
    assert scores["early", "semantic"] < 0.4
    assert scores["ventral", "low_level"] < 0.4
