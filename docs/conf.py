"""Sphinx configuration of fastxent's documentation (``sphinx-build -W docs docs/_build``)."""

import os
import sys

# Documents the fastxent that Python imports: an installation, or the source
# tree (src/) with its extension built in place.
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "src")))

import fastxent  # noqa: E402

# fastxent.keras's loss classes import Keras, whose default backend
# (TensorFlow) the documentation's environment does not install.
os.environ.setdefault("KERAS_BACKEND", "torch")

project = "fastxent"
author = "The fastxent developers"
copyright = "the fastxent developers"  # noqa: A001 (Sphinx's name)
release = version = fastxent.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.doctest",
    "sphinx.ext.mathjax",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
myst_enable_extensions = ["dollarmath"]
myst_heading_anchors = 3
exclude_patterns = ["_build"]

# numpydoc-style docstrings, read by napoleon; the signatures show the
# annotations as written.
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
autodoc_member_order = "bysource"
# The signatures show fastxent's type names (fastxent._typing, described in
# conventions.md), not their expansions.
autodoc_type_aliases = {name: name for name in (
    "ArrayLike", "NDArray", "Float", "FloatArray", "FloatScalar", "Reduced", "Reduction", "Axes")}
autosummary_generate = False

html_theme = "alabaster"
html_static_path = []
