"""I/O benchmark of the NSD reader on an NSD-sized fake subject.

Writes one subject in NSD's layout at NSD's scale (by default an 81 x 104 x 83 volume,
37 sessions of 750 trials, ~15,700 nsdgeneral voxels with signal inside a ~200,000-voxel
brain and zeros outside it, as in NSD's betas files; a few sessions are simulated and the
others are copies of them, which read exactly as slowly), then times
``brainldm.datasets.nsd.load_nsd``: a first load that reads the betas and writes the cache,
and a second load from the cache. Each load runs in a fresh process, so its peak
resident memory is its own.

Targets: peak memory under 4 GiB, cached load under 10 s.

    python benchmarks/nsd_io.py                 # full scale: ~9 GB under /tmp, deleted after
    python benchmarks/nsd_io.py --sessions 4    # a quicker run
"""

import argparse
import gzip
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pandas as pd
import scipy.io

N_IMAGES = 73_000
N_SUBJECTS = 8
IMAGES_PER_SUBJECT = 10_000
N_SHARED = 1_000
REPEATS = 3
SUBJECT = "subj01"
STREAMS = ("early", "midventral", "midlateral", "midparietal", "ventral", "lateral", "parietal")
GIB = 2**30


def _ellipsoid(shape, centre, radii):
    grid = np.indices(shape, dtype=float)
    distance = sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii, strict=True))
    return distance <= 1


def _write_design(root, rng):
    experiments = root / "nsddata/experiments/nsd"
    experiments.mkdir(parents=True)
    shared = rng.choice(N_IMAGES, N_SHARED, replace=False)
    others = np.setdiff1d(np.arange(N_IMAGES), shared)
    own = rng.permutation(others)[: (IMAGES_PER_SUBJECT - N_SHARED) * N_SUBJECTS]
    subjectim = np.column_stack(
        [np.tile(shared, (N_SUBJECTS, 1)), own.reshape(N_SUBJECTS, -1)]
    )  # NSD lists the shared images first
    masterordering = np.concatenate([rng.permutation(IMAGES_PER_SUBJECT) for _ in range(REPEATS)])
    scipy.io.savemat(
        experiments / "nsd_expdesign.mat",
        dict(
            masterordering=masterordering[np.newaxis] + 1.0,
            subjectim=subjectim + 1.0,
            sharedix=np.sort(shared)[np.newaxis] + 1.0,
        ),
    )
    pd.DataFrame(
        dict(
            cocoId=np.arange(N_IMAGES) + 100_000,
            cocoSplit=np.where(np.arange(N_IMAGES) % 10 == 0, "val2017", "train2017"),
            shared1000=np.isin(np.arange(N_IMAGES), shared),
        )
    ).to_csv(experiments / "nsd_stim_info_merged.csv")
    stimuli = root / "nsddata_stimuli/stimuli/nsd"
    stimuli.mkdir(parents=True)
    with h5py.File(stimuli / "nsd_stimuli.hdf5", "w") as f:
        # Chunked and never written: the file stays small, reads give zeros.
        f.create_dataset(
            "imgBrick", shape=(N_IMAGES, 425, 425, 3), dtype=np.uint8, chunks=(1, 425, 425, 3)
        )


def _write_rois(root, shape, affine, n_nsdgeneral, signal_only, rng):
    """Brain mask, nsdgeneral (~n_nsdgeneral voxels at the back) and streams; returns them."""
    centre = np.array(shape) / 2
    brain = _ellipsoid(shape, centre, np.array(shape) * 0.42)
    # nsdgeneral: the brain voxels closest to the occipital pole.
    ijk = np.argwhere(brain)
    order = np.argsort(ijk[:, 1] + 0.3 * np.abs(ijk[:, 0] - centre[0]))
    nsdgeneral = np.zeros(shape, dtype=bool)
    nsdgeneral[tuple(ijk[order[:n_nsdgeneral]].T)] = True
    if signal_only:
        brain = nsdgeneral
    roi_dir = root / f"nsddata/ppdata/{SUBJECT}/func1pt8mm/roi"
    roi_dir.mkdir(parents=True)
    general = np.where(brain, 0, -1).astype(np.int16)
    general[nsdgeneral] = 1
    nib.save(nib.Nifti1Image(general, affine), roi_dir / "nsdgeneral.nii.gz")
    streams = np.where(brain, 0, -1).astype(np.int16)
    streams[nsdgeneral] = rng.integers(1, len(STREAMS) + 1, size=n_nsdgeneral)
    nib.save(nib.Nifti1Image(streams, affine), roi_dir / "streams.nii.gz")
    labels = root / "nsddata/freesurfer/fsaverage/label"
    labels.mkdir(parents=True)
    (labels / "nsdgeneral.mgz.ctab").write_text("0 Unknown\n1 nsdgeneral\n")
    (labels / "streams.mgz.ctab").write_text(
        "0 Unknown\n" + "".join(f"{v} {name}\n" for v, name in enumerate(STREAMS, 1))
    )
    return brain, nsdgeneral


def _write_betas(path, shape, affine, brain, nsdgeneral, n_trials, rng, level, chunk=50):
    """A betas_sessionNN.nii.gz streamed to disk a few volumes at a time."""
    header = nib.Nifti1Header()
    header.set_data_shape((*shape, n_trials))
    header.set_data_dtype(np.int16)
    header.set_qform(affine, code=1)
    header.set_sform(affine, code=1)
    header["vox_offset"] = 352
    flat_brain = np.flatnonzero(brain.ravel(order="F"))
    signal = nsdgeneral.ravel(order="F")[flat_brain]
    gain = np.where(signal, 2.0, 0.7)
    with gzip.open(path, "wb", compresslevel=level) as f:
        f.write(header.binaryblock + b"\0" * 4)
        for start in range(0, n_trials, chunk):
            k = min(chunk, n_trials - start)
            # (k, Z, Y, X) in C order is (X, Y, Z, k) in the Fortran order NIfTI stores.
            block = np.zeros((k, shape[2], shape[1], shape[0]), dtype=np.int16)
            values = rng.standard_normal((k, flat_brain.size), dtype=np.float32) * gain
            block.reshape(k, -1)[:, flat_brain] = np.round(300 * values).astype(np.int16)
            f.write(block)


def write_subject(
    root, shape, n_sessions, n_trials, n_nsdgeneral, level, n_distinct, signal_only, seed=0
):
    """Write the fake subject; sessions after the first ``n_distinct`` copy earlier ones.

    Compressing noisy betas is what makes writing slow; a copied file costs the reader
    exactly what a freshly simulated one does, which is all this benchmark measures.
    """
    rng = np.random.default_rng(seed)
    affine = np.diag([1.8, 1.8, 1.8, 1.0])
    _write_design(root, rng)
    brain, nsdgeneral = _write_rois(root, shape, affine, n_nsdgeneral, signal_only, rng)
    betas = root / f"nsddata_betas/ppdata/{SUBJECT}/func1pt8mm/betas_fithrf_GLMdenoise_RR"
    betas.mkdir(parents=True)
    for session in range(1, n_sessions + 1):
        start = time.perf_counter()
        path = betas / f"betas_session{session:02d}.nii.gz"
        if session <= n_distinct:
            _write_betas(path, shape, affine, brain, nsdgeneral, n_trials, rng, level)
        else:
            source = (session - 1) % n_distinct + 1
            shutil.copyfile(betas / f"betas_session{source:02d}.nii.gz", path)
        print(f"  wrote session {session}/{n_sessions} in {time.perf_counter() - start:.1f} s")
    return int(brain.sum()), int(nsdgeneral.sum())


def _load(root, cache_dir):
    """Run in a fresh process: time one load_nsd call and report its peak memory."""
    from brainldm.datasets.nsd import load_nsd

    start, start_cpu = time.perf_counter(), time.process_time()
    data = load_nsd(root, SUBJECT, cache_dir=cache_dir, progress=False)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - start_cpu
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            dict(
                seconds=seconds,
                cpu_seconds=cpu_seconds,
                peak_gib=peak_kib * 1024 / GIB,
                X_train=list(data.X_train.shape),
                X_test=list(data.X_test.shape),
            )
        )
    )


def _timed_load(root, cache_dir):
    result = subprocess.run(
        [sys.executable, __file__, "--load", str(root), "--cache-dir", str(cache_dir)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=37)
    parser.add_argument("--trials", type=int, default=750)
    parser.add_argument("--shape", type=int, nargs=3, default=(81, 104, 83))
    parser.add_argument("--nsdgeneral", type=int, default=15_700)
    parser.add_argument("--gzip-level", type=int, default=1)
    parser.add_argument(
        "--distinct-sessions", type=int, default=3, help="simulated sessions; the rest are copies"
    )
    parser.add_argument(
        "--signal-only",
        action="store_true",
        help="zeros outside nsdgeneral: much faster to write and decompress than a whole brain",
    )
    parser.add_argument("--cached-repeats", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None, help="default: a new /tmp folder")
    parser.add_argument("--keep", action="store_true", help="keep the fake subject")
    parser.add_argument("--load", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--cache-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        _load(args.load, args.cache_dir)
        return

    workdir = Path(tempfile.mkdtemp(prefix="nsd_io_", dir=args.workdir))
    root, cache_dir = workdir / "nsd", workdir / "cache"
    try:
        print(f"Writing a fake {SUBJECT} under {root}")
        start = time.perf_counter()
        n_brain, n_general = write_subject(
            root,
            tuple(args.shape),
            args.sessions,
            args.trials,
            args.nsdgeneral,
            args.gzip_level,
            args.distinct_sessions,
            args.signal_only,
        )
        size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
        print(
            f"Wrote {args.sessions} sessions x {args.trials} trials "
            f"({args.distinct_sessions} simulated, the others copies of them), volume "
            f"{tuple(args.shape)}, {n_brain} brain voxels, {n_general} nsdgeneral voxels, "
            f"{size / GIB:.1f} GiB in {time.perf_counter() - start:.0f} s "
            f"(writer peak memory {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB)"
        )
        first = _timed_load(root, cache_dir)
        cached = min(
            (_timed_load(root, cache_dir) for _ in range(args.cached_repeats)),
            key=lambda result: result["seconds"],
        )
        print(f"X_train {first['X_train']}, X_test {first['X_test']}")
        for name, result in [("first load (reads betas, writes cache)", first),
                             (f"cached load (best of {args.cached_repeats})", cached)]:  # fmt: skip
            print(
                f"{name:40s} {result['seconds']:7.1f} s wall, {result['cpu_seconds']:6.1f} s CPU, "
                f"peak {result['peak_gib']:.2f} GiB"
            )
        passed = first["peak_gib"] < 4 and cached["peak_gib"] < 4 and cached["seconds"] < 10
        print(
            "targets (peak < 4 GiB, cached load < 10 s): "
            + ("met" if passed else "MISSED (wall times count waiting on a busy machine)")
        )
    finally:
        if args.keep:
            print(f"Kept {workdir}")
        else:
            shutil.rmtree(workdir)


if __name__ == "__main__":
    main()
