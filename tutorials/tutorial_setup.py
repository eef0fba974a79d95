"""What every lesson shares: fast mode, the figure folder and ``save``.

The lessons import it as ``from tutorial_setup import FAST, OUT, save`` (a script
finds it next to itself; a notebook opened in this folder runs here).

* ``FAST``: ``LOCOGRAD_TUTORIAL_FAST`` is set (not ``0``): smaller sizes, same code paths.
* ``OUT``: ``LOCOGRAD_TUTORIAL_OUT``, else ``tutorials/figures/``; created if missing.
* ``IN_NOTEBOOK``: running under Jupyter (figures are shown, not only saved); outside
  it the Agg backend is selected, so no display is needed.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import matplotlib

IN_NOTEBOOK = "ipykernel" in sys.modules
if not IN_NOTEBOOK:
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 (after the backend is chosen)

FAST = os.environ.get("LOCOGRAD_TUTORIAL_FAST", "") not in ("", "0")
OUT = Path(os.environ.get("LOCOGRAD_TUTORIAL_OUT", Path(__file__).resolve().parent / "figures"))
OUT.mkdir(parents=True, exist_ok=True)


def save(fig: matplotlib.figure.Figure, name: str) -> None:
    """Save a figure into ``OUT`` (and show it when running as a notebook)."""
    path = OUT / name
    fig.savefig(path, dpi=110)
    print(f"saved {path}")
    if IN_NOTEBOOK:
        plt.show()
    else:
        plt.close(fig)
