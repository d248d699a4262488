"""The NSD reader, checked on toy worlds written in NSD's layout against their ground truth."""

import os
import pickle
import shutil
import signal
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError

from brainldm.datasets import _cache, scenes
from brainldm.datasets._arrays import drop_columns_in_place
from brainldm.datasets.nsd import VolumeMasker, load_nsd
from brainldm.datasets.toy import load_toy_ground_truth, make_toy_nsd

# Dropped voxels are reported with a warning on every load; one test checks it.
pytestmark = pytest.mark.filterwarnings("ignore:subj0.*dropped:UserWarning")

SMALL_WORLD = dict(
    n_sessions=4,
    n_released_sessions=3,
    trials_per_session=60,
    n_shared=12,
    volume_shape=(12, 14, 12),
    subjects=["subj01", "subj02"],
    progress=False,
)
BETAS = "nsddata_betas/ppdata/{subject}/func1pt8mm/betas_fithrf_GLMdenoise_RR"
ROIS = "nsddata/ppdata/{subject}/func1pt8mm/roi"
BRAINMASK = "nsddata/ppdata/{subject}/func1pt8mm/brainmask.nii.gz"
LABELS = "nsddata/freesurfer/fsaverage/label"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return make_toy_nsd(tmp_path_factory.mktemp("toy") / "nsd", **SMALL_WORLD)


@pytest.fixture
def broken(world, tmp_path):
    """A copy of the world that a test may damage."""
    return Path(shutil.copytree(world, tmp_path / "nsd"))


def load(root, subject=1, **kwargs):
    return load_nsd(root, subject, progress=False, **kwargs)


def load_without_gap_warning(root, **kwargs):
    """A load, checking that it warns of no missing session."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = load(root, **kwargs)
    assert not [str(w.message) for w in caught if "missing" in str(w.message)]
    return data


def betas_file(root, session, subject="subj01"):
    return root / BETAS.format(subject=subject) / f"betas_session{session:02d}.nii.gz"


def raw_session(root, session, voxel_ijk):
    """Percent signal change of the voxels on every trial of a session, read by nibabel."""
    data = np.asarray(nib.load(betas_file(root, session)).dataobj)
    return data[tuple(voxel_ijk.T)].T / 300.0


def shared_images(root):
    info = pd.read_csv(root / "nsddata/experiments/nsd/nsd_stim_info_merged.csv", index_col=0)
    return np.flatnonzero(info["shared1000"].to_numpy())


def truth_index(truth, voxel_ijk):
    """Row of the ground truth for each loaded voxel."""
    rows = {tuple(ijk): n for n, ijk in enumerate(truth.voxel_ijk)}
    return np.array([rows[tuple(ijk)] for ijk in voxel_ijk])


@pytest.fixture(scope="module")
def subj01(world):
    return load(world)


@pytest.fixture(scope="module")
def truth(world):
    return load_toy_ground_truth(world, "subj01")


@pytest.fixture(scope="module")
def scenes_of_world(subj01):
    """The scenes and captions the toy world was drawn from, by 73k index."""
    return scenes.make_stimuli(len(subj01.stimuli), seed=0)


# Trials, images and the split


def test_training_trials_show_the_ground_truth_images_in_session_order(subj01, truth, world):
    is_test = np.isin(truth.trial_images, shared_images(world))
    np.testing.assert_array_equal(subj01.images_train, truth.trial_images[~is_test])
    np.testing.assert_array_equal(subj01.sessions_train, truth.trial_sessions[~is_test])
    trial_in_session = np.tile(np.arange(60), 3)
    np.testing.assert_array_equal(subj01.trials_train, trial_in_session[~is_test])


def test_test_set_is_the_shared_images_seen_with_their_repetition_counts(subj01, truth, world):
    shown = truth.trial_images[np.isin(truth.trial_images, shared_images(world))]
    images, counts = np.unique(shown, return_counts=True)
    np.testing.assert_array_equal(subj01.images_test, images)
    np.testing.assert_array_equal(subj01.n_repeats_test, counts)
    assert len(subj01.images_train) + subj01.n_repeats_test.sum() == 3 * 60
    assert subj01.X_train.shape == (len(subj01.images_train), len(subj01.voxel_ijk))
    assert subj01.X_test.shape == (len(images), len(subj01.voxel_ijk))
    assert subj01.X_train.dtype == subj01.X_test.dtype == np.float32


def test_some_test_images_have_fewer_than_three_repetitions(subj01):
    # The released sessions hold only part of each image's three showings, as in NSD.
    assert subj01.n_repeats_test.min() < 3 <= subj01.n_repeats_test.max()


def test_loading_some_sessions_keeps_only_their_trials(world, truth):
    data = load(world, sessions=[3, 1])
    in_sessions = np.isin(truth.trial_sessions, [1, 3])
    images = truth.trial_images[in_sessions]
    is_test = np.isin(images, shared_images(world))
    np.testing.assert_array_equal(data.sessions, [1, 3])
    np.testing.assert_array_equal(data.images_train, images[~is_test])
    np.testing.assert_array_equal(data.images_test, np.unique(images[is_test]))
    assert data.n_repeats_test.sum() == is_test.sum()


def test_averaged_training_rows_are_the_mean_of_each_images_trials(world, subj01):
    data = load(world, average_train=True)
    images, counts = np.unique(subj01.images_train, return_counts=True)
    np.testing.assert_array_equal(data.images_train, images)
    np.testing.assert_array_equal(data.n_repeats_train, counts)
    assert counts.max() == 3 and counts.min() < 3
    expected = np.stack([subj01.X_train[subj01.images_train == i].mean(axis=0) for i in images])
    np.testing.assert_allclose(data.X_train, expected, atol=1e-5)
    assert data.X_train.dtype == np.float32
    assert data.sessions_train is None and data.trials_train is None
    np.testing.assert_array_equal(data.X_test, subj01.X_test)
    np.testing.assert_array_equal(subj01.n_repeats_train, 1)


def test_test_trials_are_the_single_trials_whose_means_are_the_test_rows(subj01, truth, world):
    shown = truth.trial_images[np.isin(truth.trial_images, shared_images(world))]
    np.testing.assert_array_equal(subj01.images_test_trials, shown)
    assert subj01.X_test_trials.shape == (len(shown), len(subj01.voxel_ijk))
    means = np.stack(
        [
            subj01.X_test_trials[subj01.images_test_trials == i].mean(axis=0)
            for i in subj01.images_test
        ]
    )
    np.testing.assert_allclose(subj01.X_test, means, atol=1e-6)
    # Each trial is one row of its session's z-scored betas.
    raw = np.concatenate([raw_session(world, s, subj01.voxel_ijk) for s in (1, 2, 3)])
    z = np.concatenate([(r - r.mean(axis=0)) / r.std(axis=0) for r in np.split(raw, 3)])
    is_test = np.isin(truth.trial_images, shared_images(world))
    np.testing.assert_allclose(subj01.X_test_trials, z[is_test], atol=1e-4)


def test_ncsnr_is_read_for_the_loaded_voxels(world, truth):
    data = load(world, rois=["early", "ventral"])
    v = truth_index(truth, data.voxel_ijk)
    assert data.ncsnr.shape == (len(data.voxel_ijk),) and data.ncsnr.dtype == np.float32
    np.testing.assert_allclose(data.ncsnr, truth.signal_sd[v] / truth.noise_sd[v], rtol=1e-6)


def test_ncsnr_is_none_without_its_file(broken):
    (broken / BETAS.format(subject="subj01") / "ncsnr.nii.gz").unlink()
    assert load(broken, rois="early").ncsnr is None


def test_responses_tsv_gives_the_same_split_without_the_design_file(broken, subj01):
    (broken / "nsddata/experiments/nsd/nsd_expdesign.mat").unlink()
    data = load(broken)
    np.testing.assert_array_equal(data.images_train, subj01.images_train)
    np.testing.assert_array_equal(data.images_test, subj01.images_test)
    np.testing.assert_allclose(data.X_train, subj01.X_train)


@pytest.mark.parametrize("subject", [1, "1", "subj01", "SUBJ1", np.int64(1)])
def test_subject_is_accepted_as_number_or_name(world, subject):
    assert load(world, subject, rois="early").subject == "subj01"


# Values


def test_unscaled_betas_follow_the_generating_model_in_percent_signal_change(world, truth):
    data = load(world, zscore=None)
    v = truth_index(truth, data.voxel_ijk)
    s = data.sessions_train - 1
    signal = truth.features[data.images_train] @ truth.weights[v].T
    expected = truth.session_offset[s[:, None], v] + truth.session_scale[s[:, None], v] * signal
    noise = (data.X_train - expected) / (truth.session_scale[s[:, None], v] * truth.noise_sd[v])
    # What is left is the simulated unit-variance noise (and int16 rounding of 1/300).
    assert abs(np.median(noise.mean(axis=0))) < 0.05
    assert np.median(noise.std(axis=0)) == pytest.approx(1.0, abs=0.05)


def test_session_zscoring_standardises_each_voxel_over_all_trials_of_a_session(world, subj01):
    for session in (1, 2, 3):
        raw = raw_session(world, session, subj01.voxel_ijk)
        z = (raw - raw.mean(axis=0)) / raw.std(axis=0)
        rows = subj01.trials_train[subj01.sessions_train == session]
        np.testing.assert_allclose(
            subj01.X_train[subj01.sessions_train == session], z[rows], atol=1e-4
        )


def test_test_rows_average_the_repetitions(world, truth):
    data = load(world, zscore=None)
    raw = np.concatenate([raw_session(world, s, data.voxel_ijk) for s in (1, 2, 3)])
    for row, image in enumerate(data.images_test[:5]):
        trials = np.flatnonzero(truth.trial_images == image)
        np.testing.assert_allclose(data.X_test[row], raw[trials].mean(axis=0), atol=1e-5)


def test_voxels_without_variance_are_dropped_and_reported(world, truth):
    with pytest.warns(UserWarning, match=rf"subj01: dropped {len(truth.bad_voxel_ijk)} voxels"):
        data = load(world)
    as_set = lambda ijk: {tuple(x) for x in ijk}  # noqa: E731
    assert as_set(data.dropped_voxels) == as_set(truth.bad_voxel_ijk)
    assert not as_set(data.voxel_ijk) & as_set(truth.bad_voxel_ijk)
    assert np.isfinite(data.X_train).all() and np.isfinite(data.X_test).all()
    assert (data.X_train.std(axis=0) > 0.5).all()


def test_voxel_with_a_non_finite_beta_is_dropped(broken, subj01):
    path = betas_file(broken, 1)
    img = nib.load(path)
    betas = np.asarray(img.dataobj).astype(np.float32)
    betas[(*subj01.voxel_ijk[0], 5)] = np.nan
    nib.save(nib.Nifti1Image(betas, img.affine), path)
    n_dropped = len(subj01.dropped_voxels) + 1
    with pytest.warns(UserWarning, match=f"dropped {n_dropped} voxels"):
        data = load(broken)
    assert tuple(subj01.voxel_ijk[0]) in {tuple(x) for x in data.dropped_voxels}
    np.testing.assert_allclose(data.X_train, subj01.X_train[:, 1:], atol=1e-5)
    np.testing.assert_allclose(data.X_test, subj01.X_test[:, 1:], atol=1e-5)


# ROIs


def test_nsdgeneral_loads_the_ground_truth_nsdgeneral_voxels(subj01, truth):
    expected = {tuple(x) for x in truth.voxel_ijk[truth.nsdgeneral]}
    expected -= {tuple(x) for x in truth.bad_voxel_ijk}
    assert {tuple(x) for x in subj01.voxel_ijk} == expected
    assert subj01.roi_masks["nsdgeneral"].all()


@pytest.mark.parametrize("name, code", [("early", 1), ("midventral", 2), ("ventral", 5)])
def test_roi_masks_mark_the_ground_truth_streams(subj01, truth, name, code):
    stream = truth.stream[truth_index(truth, subj01.voxel_ijk)]
    np.testing.assert_array_equal(subj01.roi_masks[name], stream == code)
    assert subj01.roi_masks[name].sum() > 10


def test_several_rois_load_their_union(world, subj01):
    data = load(world, rois=["early", "streams:ventral"])
    in_union = subj01.roi_masks["early"] | subj01.roi_masks["ventral"]
    assert {tuple(x) for x in data.voxel_ijk} == {tuple(x) for x in subj01.voxel_ijk[in_union]}
    np.testing.assert_array_equal(data.roi_masks["early"] | data.roi_masks["streams:ventral"], True)
    np.testing.assert_allclose(data.X_train, subj01.X_train[:, in_union])


def test_whole_brain_loads_the_voxels_of_the_brainmask(world, subj01, truth):
    data = load(world, rois="brain")
    brain = np.asarray(nib.load(world / BRAINMASK.format(subject="subj01")).dataobj) == 1
    loaded = {tuple(x) for x in data.voxel_ijk} | {tuple(x) for x in data.dropped_voxels}
    assert loaded == {tuple(x) for x in np.argwhere(brain)}
    assert len(data.voxel_ijk) > 2 * len(subj01.voxel_ijk)
    assert data.roi_masks["brain"].all()
    # The atlases' labels come along over the whole brain.
    v = truth_index(truth, data.voxel_ijk)
    np.testing.assert_array_equal(data.roi_masks["nsdgeneral"], truth.nsdgeneral[v])
    np.testing.assert_array_equal(data.roi_masks["early"], truth.stream[v] == 1)
    in_general = data.roi_masks["nsdgeneral"]
    np.testing.assert_allclose(data.X_train[:, in_general], subj01.X_train, atol=1e-6)


def test_missing_brainmask_is_named_with_its_release_part(broken):
    (broken / BRAINMASK.format(subject="subj01")).unlink()
    with pytest.raises(FileNotFoundError, match=r"func1pt8mm/brainmask\.nii\.gz.*'nsddata'"):
        load(broken, rois="brain")
    assert len(load(broken, rois="early").voxel_ijk) > 0


def test_masker_puts_voxels_back_in_the_subjects_volume(subj01, truth):
    img = subj01.masker.inverse_transform(subj01.X_test)
    assert img.shape == (*truth.volume_shape, len(subj01.images_test))
    np.testing.assert_allclose(img.affine, truth.affine)
    data = img.get_fdata()
    np.testing.assert_allclose(data[tuple(subj01.voxel_ijk.T)], subj01.X_test.T, rtol=1e-6)
    assert np.count_nonzero(data.any(axis=3)) == len(subj01.voxel_ijk)
    np.testing.assert_array_equal(subj01.masker.transform(img), subj01.X_test)


def test_masker_learns_its_mask_in_fit():
    masker = VolumeMasker(np.ones((2, 2, 2), dtype=bool), np.eye(4))
    with pytest.raises(NotFittedError):
        masker.transform(np.zeros((2, 2, 2)))
    assert not hasattr(masker, "mask_")
    np.testing.assert_array_equal(masker.fit().transform(np.ones((2, 2, 2))), np.ones((1, 8)))
    with pytest.raises(ValueError, match=r"mask must be a 3-D volume, got shape \(8,\)"):
        VolumeMasker(np.ones(8, dtype=bool), np.eye(4)).fit()


def test_masker_rejects_arrays_of_another_width():
    masker = VolumeMasker(np.ones((2, 2, 2), dtype=bool), np.eye(4)).fit()
    with pytest.raises(ValueError, match=r"X has shape \(3, 5\), but the masker has 8 voxels"):
        masker.inverse_transform(np.zeros((3, 5)))


# Stimuli and captions


def test_stimuli_are_the_scenes_by_73k_index_in_any_order(subj01, scenes_of_world):
    expected = scenes_of_world.images
    index = [7, 2, 7, len(expected) - 1]
    np.testing.assert_array_equal(subj01.stimuli[index], expected[index])
    np.testing.assert_array_equal(subj01.stimuli[3], expected[3])


def test_stimuli_index_beyond_the_brick_raises_index_error(subj01):
    n_images = len(subj01.stimuli)
    with pytest.raises(IndexError, match=f"out of range for {n_images} images"):
        subj01.stimuli[[0, n_images]]


def test_stimuli_survive_pickling_after_use(subj01):
    first = subj01.stimuli[0]
    copy = pickle.loads(pickle.dumps(subj01.stimuli))
    np.testing.assert_array_equal(copy[0], first)


def test_captions_are_found_by_coco_id_in_both_splits(subj01, world, scenes_of_world):
    info = pd.read_csv(world / "nsddata/experiments/nsd/nsd_stim_info_merged.csv", index_col=0)
    expected = scenes_of_world.captions
    for split in ("train2017", "val2017"):
        index = np.flatnonzero(info["cocoSplit"] == split)[:3]
        # COCO's files list captions in no particular order.
        assert [sorted(c) for c in subj01.captions[index]] == [sorted(expected[i]) for i in index]
    lengths = [len(subj01.captions[i]) for i in range(len(info))]
    assert min(lengths) == 5 and max(lengths) > 5


# Cache


def test_cached_load_gives_the_same_arrays_without_reading_betas(broken, tmp_path):
    first = load(broken, cache_dir=tmp_path / "cache")
    # Same size and time stamp, unreadable contents: only a cache hit can succeed.
    path = betas_file(broken, 2)
    stat = path.stat()
    path.write_bytes(b"\0" * stat.st_size)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    second = load(broken, cache_dir=tmp_path / "cache")
    for name in ("X_train", "X_test", "images_train", "images_test", "voxel_ijk", "dropped_voxels"):
        np.testing.assert_array_equal(second[name], first[name])
    assert second.roi_masks.keys() == first.roi_masks.keys()
    np.testing.assert_array_equal(second.roi_masks["early"], first.roi_masks["early"])
    with pytest.raises(RuntimeError, match="betas_session02.nii.gz"):
        load(broken)


def test_cache_is_rebuilt_when_a_source_file_changes(broken, tmp_path):
    cache = tmp_path / "cache"
    load(broken, cache_dir=cache)
    (old,) = cache.glob("*.h5")
    os.utime(betas_file(broken, 1), ns=(0, 10**18))
    load(broken, cache_dir=cache)
    (new,) = cache.glob("*.h5")
    assert new != old


def test_each_request_has_its_own_cache_file(world, tmp_path):
    cache = tmp_path / "cache"
    load(world, cache_dir=cache)
    load(world, cache_dir=cache, sessions=[1])
    load(world, cache_dir=cache, zscore=None)
    load(world, cache_dir=cache, rois="early")
    assert len(list(cache.glob("*.h5"))) == 4


def test_killed_cache_write_leaves_nothing_a_later_run_reads(tmp_path):
    path = tmp_path / "cache" / "x.h5"
    script = textwrap.dedent(
        f"""
        import time, numpy as np
        from brainldm.datasets import _cache

        class Stalls:
            def __array__(self, dtype=None, copy=None):
                print("writing", flush=True)
                time.sleep(60)

        _cache.write_cache({str(path)!r}, {{"a": np.ones(1000), "b": Stalls()}}, {{}})
        """
    )
    writer = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "writing"
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    assert not path.exists()
    assert _cache.read_cache(path) is None
    assert [p.name.endswith(".tmp") for p in path.parent.iterdir()] == [True]


def test_unreadable_cache_file_is_rebuilt(world, tmp_path):
    cache = tmp_path / "cache"
    expected = load(world, cache_dir=cache)
    (path,) = cache.glob("*.h5")
    path.write_bytes(b"not hdf5")
    with pytest.warns(UserWarning, match="unreadable cache file"):
        again = load(world, cache_dir=cache)
    np.testing.assert_array_equal(again.X_train, expected.X_train)
    assert _cache.read_cache(path) is not None


# Out of core


LARGE = ("X_train", "X_test", "X_test_trials")


@pytest.mark.parametrize(
    "options", [dict(mmap=True), dict(max_memory=10_000), dict(mmap=True, average_train=True)]
)
def test_memory_mapped_load_equals_the_load_in_memory(world, tmp_path, options):
    expected = load(world, average_train=options.get("average_train", False))
    data = load(world, cache_dir=tmp_path / "cache", **options)
    for name in LARGE:
        assert isinstance(data[name], np.memmap), name
        assert not data[name].flags.writeable
        np.testing.assert_allclose(data[name], expected[name], atol=1e-6, err_msg=name)
    for name in ("images_train", "images_test", "voxel_ijk", "dropped_voxels", "ncsnr"):
        np.testing.assert_array_equal(data[name], expected[name])
    assert len(data.dropped_voxels) > 0  # the map was compacted in place
    (path,) = (tmp_path / "cache").glob("*.h5")
    assert not list((tmp_path / "cache").glob(".*"))
    # Read again, from the file: mapped, or in memory when it fits.
    again = load(world, cache_dir=tmp_path / "cache", **options)
    np.testing.assert_array_equal(again.X_train, data.X_train)
    in_memory = load(world, cache_dir=tmp_path / "cache", **options | dict(mmap=False))
    assert not isinstance(in_memory.X_train, np.memmap)
    np.testing.assert_array_equal(in_memory.X_test_trials, data.X_test_trials)


def test_cache_written_in_memory_is_mapped_when_asked(world, tmp_path, subj01):
    load(world, cache_dir=tmp_path)
    data = load(world, cache_dir=tmp_path, mmap=True)
    assert isinstance(data.X_train, np.memmap)
    np.testing.assert_array_equal(data.X_train, subj01.X_train)


def test_load_over_the_memory_budget_needs_a_cache_dir(world):
    with pytest.raises(ValueError, match=r"betas take .* more than max_memory=10000.*cache_dir"):
        load(world, max_memory=10_000)
    with pytest.raises(ValueError, match=r"mmap=True .* cache_dir is None"):
        load(world, mmap=True)
    assert load(world, rois="early", max_memory="1 GiB").X_train.shape[0] > 0


def test_cache_too_large_for_the_free_disk_space_is_refused_before_reading(
    world, tmp_path, monkeypatch
):
    from brainldm.datasets import nsd

    free = shutil.disk_usage(tmp_path)._replace(free=500)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: free)
    monkeypatch.setattr(nsd, "_read_session", lambda *args: pytest.fail("betas were read"))
    for mmap in (True, False):
        with pytest.raises(OSError, match=r"cache needs \d+\.\d kB in .*only 500 B is free"):
            load(world, cache_dir=tmp_path / "cache", mmap=mmap)
    assert not list((tmp_path / "cache").iterdir())


def test_interrupted_load_in_place_leaves_no_cache_file(world, tmp_path, monkeypatch):
    from brainldm.datasets import nsd

    def interrupted(paths, flat_index, n_jobs):
        yield nsd._read_session(paths[0], flat_index)
        raise KeyboardInterrupt

    monkeypatch.setattr(nsd, "_read_sessions", interrupted)
    with pytest.raises(KeyboardInterrupt):
        load(world, cache_dir=tmp_path, mmap=True)
    assert not list(tmp_path.iterdir())
    monkeypatch.undo()
    assert isinstance(load(world, cache_dir=tmp_path, mmap=True).X_train, np.memmap)


def test_killed_write_in_place_leaves_nothing_a_later_run_reads(tmp_path):
    path = tmp_path / "cache" / "x.h5"
    script = textwrap.dedent(
        f"""
        import time, numpy as np
        from brainldm.datasets import _cache

        def fill(maps):
            maps["a"][:] = 1
            print("writing", flush=True)
            time.sleep(60)

        _cache.write_cache_in_place({str(path)!r}, {{"a": (100, 10)}}, fill)
        """
    )
    writer = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "writing"
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    assert not path.exists()
    assert _cache.read_cache(path, mmap=["a"]) is None
    assert [p.name.endswith(".tmp") for p in path.parent.iterdir()] == [True]


def test_write_in_place_keeps_a_leading_part_of_each_map_and_refuses_a_copy(tmp_path):
    def compact(maps):
        maps["a"][:] = np.arange(12).reshape(4, 3)
        return {"a": maps["a"].reshape(-1)[:8].reshape(4, 2), "b": np.ones(2)}, {"k": 1}

    path = _cache.write_cache_in_place(tmp_path / "x.h5", {"a": (4, 3)}, compact)
    arrays, attrs = _cache.read_cache(path, mmap=["a"])
    assert isinstance(arrays["a"], np.memmap) and attrs == {"k": 1}
    np.testing.assert_array_equal(arrays["a"], np.arange(8).reshape(4, 2))
    np.testing.assert_array_equal(_cache.read_cache(path)[0]["a"], np.arange(8).reshape(4, 2))
    with pytest.raises(ValueError, match="a must be its memory map or a leading part of it"):
        _cache.write_cache_in_place(
            tmp_path / "y.h5", {"a": (4, 3)}, lambda maps: ({"a": np.zeros((4, 3))}, {})
        )
    assert [p.name for p in tmp_path.iterdir()] == ["x.h5"]


def test_reading_in_parallel_gives_the_same_arrays(world, subj01):
    data = load(world, n_jobs=2)
    np.testing.assert_array_equal(data.X_train, subj01.X_train)
    np.testing.assert_array_equal(data.X_test, subj01.X_test)


def test_dropping_columns_in_place_equals_fancy_indexing():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((37, 11)).astype(np.float32)
    keep = rng.random(11) > 0.3
    expected = X[:, keep]
    np.testing.assert_array_equal(drop_columns_in_place(X, keep, block_bytes=5 * 4 * 11), expected)


# Bad input


def test_unknown_subject_lists_the_design_subjects(world):
    with pytest.raises(ValueError, match=r"subject=9 is not an NSD subject.*subj01 to subj08"):
        load(world, 9)
    with pytest.raises(ValueError, match=r"subject='sub-01' is not an NSD subject"):
        load(world, "sub-01")


def test_subject_without_betas_names_the_folder_and_release_part(world):
    with pytest.raises(FileNotFoundError, match=r"subj03.*'nsddata_betas' part"):
        load(world, 3)


def test_unreleased_session_lists_the_sessions_present(world):
    with pytest.raises(ValueError, match=r"session\(s\) 4 of subj01.*Sessions present: 1-3"):
        load(world, sessions=[1, 4])


def test_session_missing_between_those_on_disk_is_refused_by_name(broken):
    betas_file(broken, 2).unlink()
    folder = BETAS.format(subject="subj01")
    with pytest.raises(
        ValueError,
        match=rf"subj01: session\(s\) 2 missing between sessions 1 and 3 \(no "
        rf"betas_session02\.nii\.gz in \S*{folder}\).*'nsddata_betas' part of the NSD "
        rf"release \(s3://natural-scenes-dataset/{folder}/betas_session02\.nii\.gz\).*"
        r"allow_missing_sessions=True",
    ):
        load(broken)
    with pytest.raises(ValueError, match=r"Sessions present: 1, 3"):
        load(broken, sessions=2)


def test_allowed_missing_session_is_warned_of_and_the_others_load(broken):
    betas_file(broken, 2).unlink()
    with pytest.warns(
        UserWarning, match=r"session\(s\) 2 missing .* loading the 2 sessions present \(1, 3\)"
    ) as record:
        data = load(broken, allow_missing_sessions=True)
    (warned,) = [w for w in record if "missing" in str(w.message)]
    assert warned.filename == __file__  # points at the call of load_nsd
    np.testing.assert_array_equal(data.sessions, [1, 3])
    np.testing.assert_array_equal(np.unique(data.sessions_train), [1, 3])
    assert len(data.images_train) + data.n_repeats_test.sum() == 2 * 60
    named = load_without_gap_warning(broken, sessions=[1, 3])
    np.testing.assert_array_equal(data.X_train, named.X_train)


def test_several_missing_sessions_are_listed_compactly(tmp_path):
    root = make_toy_nsd(
        tmp_path / "nsd",
        **SMALL_WORLD | dict(n_sessions=6, n_released_sessions=6, subjects=["subj01"]),
    )
    for session in (2, 3, 5):
        betas_file(root, session).unlink()
    folder = BETAS.format(subject="subj01")
    with pytest.raises(
        ValueError,
        match=r"no betas_session02\.nii\.gz, betas_session03\.nii\.gz, "
        rf"betas_session05\.nii\.gz in .*s3://natural-scenes-dataset/{folder}\)",
    ):
        load(root, rois="early")
    with pytest.warns(UserWarning, match=r"session\(s\) 2-3, 5 missing between sessions 1 and 6"):
        data = load(root, rois="early", allow_missing_sessions=True)
    np.testing.assert_array_equal(data.sessions, [1, 4, 6])


def test_sessions_withheld_after_the_last_on_disk_are_no_gap(broken):
    betas_file(broken, 3).unlink()
    data = load_without_gap_warning(broken)
    np.testing.assert_array_equal(data.sessions, [1, 2])
    assert len(data.images_train) + data.n_repeats_test.sum() == 2 * 60


def test_named_sessions_around_a_missing_one_load_without_warning(broken):
    betas_file(broken, 2).unlink()
    data = load_without_gap_warning(broken, sessions=[3, 1])
    np.testing.assert_array_equal(data.sessions, [1, 3])


def test_load_with_a_missing_session_shares_the_cache_of_the_sessions_it_read(
    broken, world, tmp_path
):
    cache = tmp_path / "cache"
    betas_file(broken, 2).unlink()
    with pytest.warns(UserWarning, match="session.*2 missing"):
        first = load(broken, cache_dir=cache, allow_missing_sessions=True)
    (path,) = cache.glob("*.h5")
    load_without_gap_warning(broken, cache_dir=cache, sessions=[1, 3])
    assert list(cache.glob("*.h5")) == [path]
    # A cached load still reports the missing session.
    with pytest.warns(UserWarning, match="session.*2 missing"):
        again = load(broken, cache_dir=cache, allow_missing_sessions=True)
    np.testing.assert_array_equal(again.X_train, first.X_train)
    # Once downloaded, the session is loaded: another request, another file.
    shutil.copy2(betas_file(world, 2), betas_file(broken, 2))
    full = load_without_gap_warning(broken, cache_dir=cache)
    np.testing.assert_array_equal(full.sessions, [1, 2, 3])
    assert len(list(cache.glob("*.h5"))) == 2


def test_truncated_betas_file_is_named(broken):
    path = betas_file(broken, 2)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(RuntimeError, match=r"betas_session02\.nii\.gz.*truncated or corrupt"):
        load(broken)


def test_truncated_stimuli_file_is_named(broken):
    path = broken / "nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(RuntimeError, match=r"nsd_stimuli\.hdf5.*'nsddata_stimuli'"):
        load(broken)


def test_missing_design_files_are_named_with_their_release_part(broken):
    (broken / "nsddata/experiments/nsd/nsd_expdesign.mat").unlink()
    (broken / "nsddata/ppdata/subj01/behav/responses.tsv").unlink()
    with pytest.raises(FileNotFoundError, match=r"nsd_expdesign\.mat.*'nsddata' part"):
        load(broken)


def test_missing_stimuli_file_is_named_with_its_release_part(broken):
    (broken / "nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5").unlink()
    with pytest.raises(FileNotFoundError, match=r"nsd_stimuli\.hdf5.*'nsddata_stimuli' part"):
        load(broken)


@pytest.mark.parametrize(
    "relative",
    [f"{ROIS}/streams.nii.gz", f"{ROIS}/nsdgeneral.nii.gz", f"{LABELS}/streams.mgz.ctab"],
    ids=["streams", "nsdgeneral", "streams-ctab"],
)
@pytest.mark.parametrize("rois", ["nsdgeneral", "early"])
def test_missing_roi_file_is_named_before_any_betas_are_read(broken, world, relative, rois):
    relative = relative.format(subject="subj01")
    (broken / relative).unlink()
    # An unreadable betas file: reading it would raise a RuntimeError.
    betas_file(broken, 1).write_bytes(b"not gzip")
    escaped = relative.replace(".", r"\.")
    with pytest.raises(
        FileNotFoundError,
        match=rf"{escaped} does not exist.*'nsddata' part of the NSD release "
        rf"\(s3://natural-scenes-dataset/{escaped}\)",
    ):
        load(broken, rois=rois)
    shutil.copy2(world / relative, broken / relative)
    with pytest.raises(RuntimeError, match=r"betas_session01\.nii\.gz"):
        load(broken, rois=rois)


def test_unknown_roi_mask_lists_the_loaded_rois(subj01):
    with pytest.raises(
        KeyError, match=r"no ROI 'V1v' in roi_masks; loaded ROIs: nsdgeneral, .*early.*rois="
    ):
        subj01.roi_masks["V1v"]
    assert subj01.roi_masks.get("V1v") is None and "V1v" not in subj01.roi_masks
    copy = pickle.loads(pickle.dumps(subj01.roi_masks))
    assert isinstance(copy, dict) and copy.keys() == subj01.roi_masks.keys()
    np.testing.assert_array_equal(copy["early"], subj01.roi_masks["early"])
    with pytest.raises(KeyError, match="loaded ROIs: nsdgeneral"):
        copy["V1v"]


def test_unknown_roi_lists_the_valid_names(world):
    with pytest.raises(ValueError, match=r"unknown ROI 'V1'.*nsdgeneral, streams.*early"):
        load(world, rois="V1")


def test_roi_volume_of_another_shape_is_refused(broken):
    path = broken / ROIS.format(subject="subj01") / "nsdgeneral.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((5, 5, 5), dtype=np.int16), np.eye(4)), path)
    with pytest.raises(
        ValueError, match=r"nsdgeneral\.nii\.gz has shape \(5, 5, 5\).*\(12, 14, 12\)"
    ):
        load(broken)


@pytest.mark.parametrize(
    "arguments, message",
    [
        (
            dict(zscore="run"),
            r"The 'zscore' parameter of load_nsd must be a str among \{'session'\} or None\. "
            "Got 'run' instead",
        ),
        (
            dict(n_jobs=0),
            r"'n_jobs' parameter of load_nsd must be an int in the range \[1, inf\), one of "
            r"\{-1\} or None\. Got 0 instead",
        ),
        (dict(sessions=[0]), r"sessions must be None or session numbers"),
        (dict(rois=[]), "rois must be a ROI name or a list of names"),
        (dict(average_train="yes"), "'average_train' parameter of load_nsd must be a bool"),
        (
            dict(allow_missing_sessions=1),
            "'allow_missing_sessions' parameter of load_nsd must be a bool",
        ),
        (dict(mmap="auto"), "'mmap' parameter of load_nsd must be a bool or None. Got 'auto'"),
        (dict(max_memory="4 gigs"), r"max_memory must be None, a number of bytes or a size"),
        (dict(max_memory=-1), r"max_memory must be None, a number of bytes or a size"),
    ],
)
def test_invalid_arguments_are_named(world, arguments, message):
    with pytest.raises(ValueError, match=message):
        load(world, **arguments)


def test_roi_masks_keep_the_reprs_of_estimators_that_take_them_short(subj01):
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline

    from brainldm.decoding import LatentDecoder, TextDecoder
    from brainldm.reconstruction import LDMReconstructor

    early, ventral = subj01.roi_masks["early"], subj01.roi_masks["ventral"]
    n = len(early)
    assert repr(early) == f"<{int(early.sum())} of {n} voxels>"
    reconstructor = LDMReconstructor(
        latent_decoder=LatentDecoder(voxels=early), text_decoder=TextDecoder(voxels=ventral)
    )
    for estimator in (
        reconstructor,
        make_pipeline(LatentDecoder(voxels=early)),
        GridSearchCV(reconstructor, {"strength": [0.8]}),
    ):
        text = repr(estimator)
        assert f"voxels=<{int(early.sum())} of {n} voxels>" in text
        assert "True" not in text and len(text) < 400
    # Still a boolean array everywhere else.
    assert early.dtype == bool and np.array_equal(np.asarray(early) | ventral, early | ventral)
    assert type(np.asarray(early)) is np.ndarray
