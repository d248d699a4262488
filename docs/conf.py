"""Sphinx configuration for the brainldm documentation."""

import os
import sys
from pathlib import Path

from sphinx_gallery.sorting import ExplicitOrder

# The examples run in this process, on the CPU: one thread for torch and the BLAS, unless
# set otherwise. On 2 cores shared with other work, more threads spin against each other:
# with two other jobs running, the reconstruction example took 208 s with torch's default
# threads and 25 s with one.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import brainldm

project = "brainldm"
author = "brainldm developers"
release = brainldm.__version__
extensions = [
    "myst_parser",
    "numpydoc",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx_gallery.gen_gallery",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
# A link to a page or a heading that does not exist is an error, as every warning is in
# `nox -s docs` (sphinx-build -W): MyST reports "[text](page.md#heading)" that resolves
# to nothing, Sphinx a {ref}/{doc} target that does not exist.
# Anchors for headings, so pages can link to a section ("page.md#a-section").
myst_heading_anchors = 4
autosummary_generate = True
# Classes list their methods; their attributes are documented by their docstrings'
# Attributes sections (autosummary cannot import a dataclass field without a default).
templates_path = ["_templates"]
numpydoc_show_class_members = False
html_theme = "pydata_sphinx_theme"
intersphinx_mapping = {
    "python": ("https://docs.python.org/3", None),
    "numpy": ("https://numpy.org/doc/stable", None),
    "sklearn": ("https://scikit-learn.org/stable", None),
}
# Links into the Python, numpy and scikit-learn docs need their inventories
# from the network. BRAINLDM_DOCS_OFFLINE=1 builds without them: references
# to objects of those docs then stay unresolved (plain text, unreported), and
# the labels of scikit-learn's pages that inherited docstrings use
# (SKLEARN_LABELS) are shown as text. Any other missing label is an error.
SKLEARN_LABELS = {"r2_score"}  # RegressorMixin.score's summary
if os.environ.get("BRAINLDM_DOCS_OFFLINE"):
    intersphinx_mapping = {}
    # The examples run in this process: they download nothing either (the toy world and
    # the toy models need nothing from the network).
    os.environ.update(BRAINLDM_OFFLINE="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")

# The example gallery: every script in examples/ whose name starts with "plot_" runs at
# build time, on the toy world, and its page shows its output and figures from that run
# (sphinx-gallery), with the script and a notebook to download. Scripts without the prefix
# (those that need the real NSD) are shown but not run. An example that raises fails the
# build. Timings per example are written to sg_execution_times.rst.
sys.path.insert(0, str(Path(__file__).parent))
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    # brainldm's figures are its own (see _gallery_scraper.py), pyplot's are matplotlib's.
    "image_scrapers": ("matplotlib", "_gallery_scraper.scrape"),
    "within_subsection_order": "FileNameSortKey",
    "subsection_order": ExplicitOrder(
        [
            "../examples/workflows",
            "../examples/decoding",
            "../examples/encoding",
            "../examples/scaling",
        ]
    ),
    "doc_module": ("brainldm",),
    "backreferences_dir": None,
    "download_all_examples": False,
    "min_reported_time": 1,
}


def _sklearn_label_as_text(app, env, node, contnode):
    """Offline, a reference to a label of scikit-learn's pages becomes its text."""
    if (
        os.environ.get("BRAINLDM_DOCS_OFFLINE")
        and node.get("reftype") == "ref"
        and node.get("reftarget") in SKLEARN_LABELS
    ):
        return contnode
    return None


def setup(app):
    app.connect("missing-reference", _sklearn_label_as_text)
