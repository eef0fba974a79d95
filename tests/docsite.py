"""The documentation site as the tests build it: once per session, every tutorial executed afresh.

``build()`` runs ``python -m sphinx -W --keep-going -E -b html docs docs/_build/html`` with
myst-nb's execution forced (no cached notebook: every tutorial runs against the library as it is
now) in the tutorials' fast mode.  The executed notebooks land in ``docs/_build/jupyter_execute``,
where the tutorial tests read them instead of running the scripts a second time.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "docs" / "_build" / "html"
EXECUTED = ROOT / "docs" / "_build" / "jupyter_execute" / "tutorials"
"""Where myst-nb writes each executed tutorial, ``<name>.ipynb``."""
TOOLS = ("sphinx", "myst_nb", "jupytext", "nbclient", "ipykernel", "furo")
"""What building the site needs (the ``docs`` extra)."""


def missing_tools() -> list[str]:
    """The site's build tools that are not installed (empty with the ``docs`` extra)."""
    return [module for module in TOOLS if importlib.util.find_spec(module) is None]


def build() -> tuple[subprocess.CompletedProcess[str], float]:
    """Build the site in fast mode, every tutorial executed; the finished process and its seconds."""
    env = dict(os.environ, LOCOGRAD_TUTORIAL_FAST="1")
    env.pop("LOCOGRAD_TUTORIAL_OUT", None)  # docs/conf.py points it into docs/_build
    start = time.perf_counter()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-E",
            "-q",
            "-D",
            "nb_execution_mode=force",
            "-b",
            "html",
            "docs",
            str(HTML),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    return done, time.perf_counter() - start
