"""Sphinx configuration of fastconv's documentation site.

Build it from the repository root (after ``pip install -e ".[docs]"``)::

    sphinx-build -W -b html docs docs/_build/html       # the site
    sphinx-build -W -b doctest docs docs/_build/doctest # every example on every page

The API pages are generated from the numpydoc docstrings of the installed package, and the
doctest build runs their examples too.
"""

import fastconv

project = "fastconv"
author = "fastconv developers"
copyright = "fastconv developers"
release = fastconv.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.doctest",
    "numpydoc",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
# bench/ and study/ hold the generated artefacts that pages include; _build is the output.
exclude_patterns = ["_build", "bench/*.md", "study/*"]

# API pages: one page per public function or class, from the docstrings.
autosummary_generate = True
autodoc_default_options = {"members": False}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# Doctests: the pages' ``>>>`` blocks and the docstrings' examples run in one namespace per
# page, with numpy and fastconv imported.
doctest_global_setup = """
import numpy as np
import fastconv
"""
doctest_test_doctest_blocks = "default"

myst_heading_anchors = 3

html_theme = "pydata_sphinx_theme"
html_title = f"fastconv {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
}
html_static_path = []
