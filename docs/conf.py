"""Sphinx configuration of locograd's documentation site.

Build (from the repository root, with ``pip install -e '.[docs]'``)::

    python -m sphinx -W -b html docs docs/_build/html          # tutorials in fast mode (as CI)
    LOCOGRAD_TUTORIAL_FAST=0 python -m sphinx -W -b html docs docs/_build/html   # full mode

The tutorials' source stays ``tutorials/*.py`` (jupytext percent format): the build copies them
into ``docs/tutorials/`` (not tracked) and myst-nb executes them there; a cell that raises fails
the build.  MathJax is served from the site itself (sphinx-mathjax-offline): pages render with no
network.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import locograd

ROOT = Path(__file__).resolve().parent.parent

project = "locograd"
author = "the locograd developers"
release = locograd.__version__
copyright = "2026, the locograd developers"

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",  # the package's module name has hyphens
]

# the tutorials in fast mode unless asked otherwise (CI builds them so)
os.environ.setdefault("LOCOGRAD_TUTORIAL_FAST", "1")
os.environ.setdefault("LOCOGRAD_TUTORIAL_OUT", str(ROOT / "docs" / "_build" / "tutorial-figures"))

TUTORIALS = ROOT / "docs" / "tutorials"
TUTORIALS.mkdir(exist_ok=True)
for source in sorted((ROOT / "tutorials").glob("[0-9][0-9]_*.py")):
    target = TUTORIALS / source.name
    if not target.exists() or target.read_bytes() != source.read_bytes():
        shutil.copyfile(source, target)

nb_custom_formats = {".py": ["jupytext.reads", {"fmt": "py:percent"}]}
nb_execution_mode = "cache"
# A cell that raises: myst-nb logs the tutorial and the failing cell with its traceback (a warning,
# an error under -W), and the build ends with an error naming every failed tutorial (below), with or
# without -W.  (raise_on_error=True would stop at once, naming the file but not the cell.)
nb_execution_raise_on_error = False
nb_execution_show_tb = True
nb_execution_timeout = 600
nb_execution_cache_path = str(ROOT / "docs" / "_build" / ".jupyter_cache")
myst_enable_extensions = ["dollarmath", "amsmath"]

source_suffix = {".md": "myst-nb", ".py": "myst-nb"}
exclude_patterns = [
    "conf.py",
    "_build",
    "results/*/trials",
    "results/*/trials.jsonl",
    "results/*/study.jsonl",
    "results/*/summary.json",
    "results/*/spec.toml",
    "results/__pycache__",
    "**/.ipynb_checkpoints",
]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
napoleon_google_docstring = True
napoleon_use_ivar = True  # a NamedTuple's Attributes as fields: autodoc documents the members once

html_theme = "furo"
html_title = f"locograd {release}"


def _fail_on_a_failed_notebook(app: object, exception: Exception | None) -> None:
    """End the build with an error when a tutorial's execution failed (the cell was logged above)."""
    from myst_nb.sphinx_ import NbMetadataCollector
    from sphinx.errors import ExtensionError

    if exception is not None:
        return
    env = app.env  # type: ignore[attr-defined]
    failed = sorted(
        docname
        for docname in env.found_docs
        if (NbMetadataCollector.get_exec_data(env, docname) or {}).get("succeeded") is False
    )
    if failed:
        raise ExtensionError(
            f"a cell raised in {', '.join(failed)} (its cell and traceback are logged above)"
        )


def setup(app: object) -> None:
    app.connect("build-finished", _fail_on_a_failed_notebook)  # type: ignore[attr-defined]
