"""Memory and time of reading NSD's fsaverage betas at NSD's size.

Writes one session in NSD's fsaverage layout at NSD's scale (163,842 vertices x 750
trials of float32 per hemisphere: two files of 492 MB), labels with an nsdgeneral-sized
ROI (~15,000 vertices over both hemispheres, in a few contiguous runs per hemisphere),
and the design files ``load_nsd`` needs; then loads it with
``load_nsd(space="fsaverage")`` in a fresh process and prints the wall time, the peak of
Python allocations (tracemalloc), and the peak resident memory over that of the process
before the load (ru_maxrss, and psutil's RSS), against the size of one session's files.
Everything is written to a temporary folder and deleted after.

    python benchmarks/nsd_surface_io.py
"""

import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pandas as pd

N_VERTICES = 163_842
N_TRIALS = 750
N_IMAGES = 1_000
N_SHARED = 100
BETAS = "nsddata_betas/ppdata/subj01/fsaverage/betas_fithrf_GLMdenoise_RR"
LABELS = "nsddata/freesurfer/fsaverage/label"
# nsdgeneral: runs of vertices (start, length) per hemisphere, ~15,000 in all.
ROI_RUNS = {
    "lh": [(2_000, 3_000), (40_000, 2_500), (120_000, 2_000)],
    "rh": [(5_000, 2_500), (60_000, 3_000), (150_000, 2_000)],
}


def write_betas(path, rng):
    """A float32 MGH file of shape (N_VERTICES, 1, 1, N_TRIALS), written in blocks."""
    header = nib.freesurfer.mghformat.MGHHeader()
    header.set_data_shape((N_VERTICES, 1, 1, N_TRIALS))
    header.set_data_dtype(np.float32)
    offset = header.get_data_offset()
    with open(path, "wb") as f:
        f.write(header.binaryblock.ljust(offset, b"\0"))
        for start in range(0, N_TRIALS, 50):
            block = rng.standard_normal((min(50, N_TRIALS - start), N_VERTICES), np.float32)
            f.write((block * 2 + 1).astype(">f4").tobytes())


def write_world(root):
    rng = np.random.default_rng(0)
    (root / BETAS).mkdir(parents=True)
    (root / LABELS).mkdir(parents=True)
    for hemi in ("lh", "rh"):
        write_betas(root / BETAS / f"{hemi}.betas_session01.mgh", rng)
        roi = np.zeros((N_VERTICES, 1, 1), dtype=np.int32)
        for start, length in ROI_RUNS[hemi]:
            roi[start : start + length] = 1
        nib.save(nib.MGHImage(roi, np.eye(4)), root / LABELS / f"{hemi}.nsdgeneral.mgz")
        nib.save(nib.MGHImage(roi * 5, np.eye(4)), root / LABELS / f"{hemi}.streams.mgz")
    (root / LABELS / "nsdgeneral.mgz.ctab").write_text("0 Unknown\n1 nsdgeneral\n")
    (root / LABELS / "streams.mgz.ctab").write_text("0 Unknown\n1 early\n5 ventral\n")
    behav = root / "nsddata/ppdata/subj01/behav"
    behav.mkdir(parents=True)
    images = rng.permutation(np.tile(np.arange(1, N_IMAGES + 1), 1))[:N_TRIALS]
    images = np.concatenate([images[:650], rng.integers(1, N_SHARED + 1, 100)])
    pd.DataFrame({"SESSION": 1, "73KID": images}).to_csv(behav / "responses.tsv", sep="\t")
    experiments = root / "nsddata/experiments/nsd"
    experiments.mkdir(parents=True)
    info = pd.DataFrame(
        {
            "cocoId": np.arange(N_IMAGES),
            "cocoSplit": "train2017",
            "shared1000": np.arange(N_IMAGES) < N_SHARED,
        }
    )
    info.to_csv(experiments / "nsd_stim_info_merged.csv")
    stimuli = root / "nsddata_stimuli/stimuli/nsd"
    stimuli.mkdir(parents=True)
    with h5py.File(stimuli / "nsd_stimuli.hdf5", "w") as f:
        f["imgBrick"] = np.zeros((N_IMAGES, 2, 2, 3), dtype=np.uint8)


LOAD = textwrap.dedent(
    """
    import resource, sys, time, tracemalloc, psutil
    from brainldm.datasets.nsd import load_nsd
    process = psutil.Process()
    rss_before = process.memory_info().rss
    maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    tracemalloc.start()
    start = time.perf_counter()
    data = load_nsd(sys.argv[1], 1, space="fsaverage", progress=False)
    seconds = time.perf_counter() - start
    peak_python = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(seconds, peak_python, maxrss - maxrss_before, process.memory_info().rss - rss_before,
          data.X_train.shape[1], data.X_train.nbytes + data.X_test.nbytes
          + data.X_test_trials.nbytes)
    """
)


def main():
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "nsd"
        write_world(root)
        session_bytes = sum(p.stat().st_size for p in (root / BETAS).glob("*.betas_session01.mgh"))
        # Drop nothing from the page cache: the load is timed warm, as a second read is.
        result = subprocess.run(
            [sys.executable, "-c", LOAD, str(root)], capture_output=True, text=True, check=True
        )
        seconds, python, maxrss, rss, n_vertices, output = map(float, result.stdout.split())
    mb = 1e6
    print(f"one session's files (both hemispheres): {session_bytes / mb:,.0f} MB")
    print(f"vertices loaded: {n_vertices:,.0f}; arrays returned: {output / mb:,.1f} MB")
    print(f"load_nsd(space='fsaverage'): {seconds:.2f} s")
    print(f"peak Python allocations (tracemalloc): {python / mb:,.1f} MB")
    print(f"peak RSS increase (ru_maxrss): {maxrss / mb:,.1f} MB")
    print(f"RSS increase after the load (psutil): {rss / mb:,.1f} MB")
    print(f"peak RSS increase / one session's files: {maxrss / session_bytes:.1%}")


if __name__ == "__main__":
    main()
