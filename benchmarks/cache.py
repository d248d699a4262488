"""What naming a cache entry costs: brainldm's digest against joblib.Memory's argument hash.

``joblib.Memory`` names an entry by ``joblib.hash`` of the call's arguments, which pickles
them; ``brainldm._cache.digest`` hashes the arrays' bytes and the settings, and a model
enters by its weights' fingerprint (computed once per loaded model). This prints, for
arrays of the size of a subject's training betas, the seconds each takes and their ratio,
then the cost of hashing the toy LDM as joblib would (it pickles by reference: its name,
not its weights, so joblib's hash misses a model retrained in place) against computing its
weights' fingerprint.

    python benchmarks/cache.py [n_rows n_voxels]
"""

import sys
import time

import joblib
import numpy as np

from brainldm._cache import digest
from brainldm.diffusion import StableDiffusion


def _best_of(function, repeats=3):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def main(n_rows=2359, n_voxels=4884):
    X = np.random.default_rng(0).normal(size=(n_rows, n_voxels)).astype(np.float32)
    settings = {"alphas": list(np.logspace(-1, 5, 13)), "cv": 5}
    ours = _best_of(lambda: digest(X, settings))
    theirs = _best_of(lambda: joblib.hash((X, settings)))
    print(f"X of {n_rows} x {n_voxels} float32 ({X.nbytes / 1e6:.0f} MB):")
    print(f"  brainldm digest {ours * 1e3:.1f} ms, joblib.hash {theirs * 1e3:.1f} ms")
    print(f"  ratio joblib / brainldm: {theirs / ours:.2f}")
    sd = StableDiffusion.from_pretrained("toy")
    first = _best_of(lambda: StableDiffusion.from_pretrained("toy").fingerprint, repeats=1)
    cached = _best_of(lambda: sd.fingerprint)
    pickled = _best_of(lambda: joblib.hash(sd), repeats=1)
    print("toy LDM:")
    print(
        f"  fingerprint {first * 1e3:.1f} ms once (then {cached * 1e6:.1f} us), "
        f"joblib.hash of the model {pickled * 1e3:.1f} ms on every call"
    )


if __name__ == "__main__":
    main(*map(int, sys.argv[1:3]))
