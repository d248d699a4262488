"""Time ``brainldm demo`` with its defaults, and how soon a missing network's weights are reported.

Run ``python benchmarks/demo_time.py [FOLDER]``. It prints:

1. ``demo``: the wall time of ``brainldm demo`` with its defaults (100 images, 25 steps,
   5 samples) in a fresh folder, the toy world's making included (the target, in
   docs/reconstruction.md, is under 3 minutes on 2 idle CPU cores; 10 at most on a busy one);
2. ``missing weights``: the seconds until ``brainldm reconstruct`` with a model not trained on
   the toy world (so Brain-Diffuser's suite, whose networks need weights) and no weights
   reports the error, on the demo's toy world: it must come before any fit (the target is
   under 30 seconds).
"""

import argparse
import contextlib
import io
import os
import tempfile
import time
from pathlib import Path


def _demo(folder):
    from brainldm.cli import main

    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        code = main(["demo", "--out", str(folder)])
    seconds = time.perf_counter() - start
    print(f"demo: exit code {code}, {seconds:.0f} s with the defaults (target: under 600 s)")


def _missing_weights(folder):
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from conftest import make_tiny_sd

    from brainldm.cli import main

    model = make_tiny_sd(folder / "tiny-sd")
    os.environ["BRAINLDM_WEIGHTS_DIR"] = str(folder / "no-weights")
    args = ["reconstruct", str(folder / "toy_nsd"), "--model", str(model)]
    start = time.perf_counter()
    with contextlib.redirect_stderr(io.StringIO()) as err:
        code = main([*args, "--out", str(folder / "missing-weights")])
    seconds = time.perf_counter() - start
    line = err.getvalue().strip().splitlines()[-1]
    print(f"missing weights: exit code {code} after {seconds:.1f} s (target: under 30 s): {line}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", default=None, help="where to run (default: a temp)")
    folder = parser.parse_args(argv).folder
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(folder or temporary)
        _demo(folder)
        _missing_weights(folder)


if __name__ == "__main__":
    main()
