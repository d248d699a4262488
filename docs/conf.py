"""Sphinx configuration for the brainldm documentation."""

import os

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
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
# Anchors for headings, so pages can link to a section ("page.md#a-section").
myst_heading_anchors = 3
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
# into those docs (such as scikit-learn's, in inherited docstrings) then stay
# unresolved, and are not reported.
if os.environ.get("BRAINLDM_DOCS_OFFLINE"):
    intersphinx_mapping = {}
    suppress_warnings = ["ref.ref"]
