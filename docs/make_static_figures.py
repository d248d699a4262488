"""Regenerate every figure in ``docs/_static`` from the runs the pages describe.

The figures of the guide come from full runs on the default toy world, too long for
the docs build (the gallery's examples run small worlds at build time instead):

* ``demo_reconstructions.png``: the first six rows of ``brainldm demo``'s grid;
* ``encode_fig*.png``: ``brainldm encode``'s figures with its default settings
  (``fig6_r_{z,c,zc}``, ``fig7_unique_zc_by_strength``, ``fig8_unique_zc_by_stage``,
  ``fig9_best_layer_by_roi``, ``fig9_best_layer_late``);
* ``encoding_{z,c}.png``: the voxelwise encoding example
  (``examples/encoding/plot_encode_voxels.py``).

Run from the repository root (about 15 minutes for the demo and 25 for encode on 2
cores; both resume from their caches in ``WORK``)::

    python docs/make_static_figures.py [WORK]
"""

import dataclasses
import runpy
import shutil
import sys
import tempfile
from pathlib import Path

from brainldm.workflows import demo, encode

STATIC = Path(__file__).resolve().parent / "_static"
ROOT = STATIC.parents[1]
ENCODE_FIGURES = (
    "fig6_r_z",
    "fig6_r_c",
    "fig6_r_zc",
    "fig7_unique_zc_by_strength",
    "fig8_unique_zc_by_stage",
    "fig9_best_layer_by_roi",
    "fig9_best_layer_late",
)


def main(work):
    work = Path(work)
    result = demo(work / "demo")
    first_rows = {column: images[:6] for column, images in result.shown.items()}
    dataclasses.replace(result, shown=first_rows).plot_reconstructions(
        STATIC / "demo_reconstructions.png"
    )
    encode(None, "subj01", "toy", work / "encode", log=print)
    for name in ENCODE_FIGURES:
        shutil.copyfile(
            work / "encode" / "subj01" / "figures" / f"{name}.png", STATIC / f"encode_{name}.png"
        )
    example = ROOT / "examples" / "encoding" / "plot_encode_voxels.py"
    sys.argv = [str(example), str(work / "encoding")]
    runpy.run_path(str(example), run_name="__main__")
    for space in ("z", "c"):
        shutil.copyfile(
            work / "encoding" / f"encoding_{space}.png", STATIC / f"encoding_{space}.png"
        )


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp())
