"""The documentation site as the tests build it: once per session, every tutorial executed afresh.

``build()`` runs ``python -m sphinx -W --keep-going -E -b html docs docs/_build/html`` with
myst-nb's execution forced (no cached notebook: every tutorial runs against the library as it is
now) in the tutorials' fast mode, as a background job (:mod:`tests.background`) that starts when
collection ends.  The executed notebooks land in ``docs/_build/jupyter_execute``, where the tutorial
tests read them instead of running the scripts a second time.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

from . import background

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "docs" / "_build" / "html"
EXECUTED = ROOT / "docs" / "_build" / "jupyter_execute" / "tutorials"
"""Where myst-nb writes each executed tutorial, ``<name>.ipynb``."""
TOOLS = ("sphinx", "myst_nb", "jupytext", "nbclient", "ipykernel", "furo")
"""What building the site needs (the ``docs`` extra)."""


def missing_tools() -> list[str]:
    """The site's build tools that are not installed (empty with the ``docs`` extra)."""
    return [module for module in TOOLS if importlib.util.find_spec(module) is None]


def job() -> background.Job:
    """The build as a background job (:mod:`tests.background`): fast mode, every tutorial executed."""
    env = dict(os.environ, LOCOGRAD_TUTORIAL_FAST="1")
    env.pop("LOCOGRAD_TUTORIAL_OUT", None)  # docs/conf.py points it into docs/_build
    args = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-E", "-q", "-D", "nb_execution_mode=force"]
    return background.Job([*args, "-b", "html", "docs", str(HTML)], cwd=ROOT, env=env)


background.JOBS["site"] = job


def build() -> tuple[subprocess.CompletedProcess[str], float]:
    """The finished build (started in the background when collection ended, or now) and its seconds."""
    return background.result("site")
