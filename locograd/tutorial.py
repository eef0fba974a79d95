"""What every tutorial shares: fast mode, where figures go, ``save`` and ``Checks``.

A tutorial imports it as ``from locograd.tutorial import FAST, Checks, save``: part of the
package, so a tutorial runs on its own wherever it is copied (a course site, Colab), as a script
or as a notebook, with no sibling module and no ``sys.path`` trick.

* ``FAST``: ``LOCOGRAD_TUTORIAL_FAST`` is set (not ``0``): smaller sizes, same code paths.
* ``OUT``: ``LOCOGRAD_TUTORIAL_OUT``, else ``figures/`` next to the script that runs (in a
  notebook, in the working folder); made when the first figure is saved.
* ``IN_NOTEBOOK``: running under Jupyter (figures are shown, not only saved); outside
  it the Agg backend is selected, so no display is needed.
* ``Checks``: a lesson's identity checks; each one is asserted where it is made, and
  ``checks.report()`` prints them all in ONE summary at the end of the lesson.

>>> checks = Checks()
>>> checks("first step", 1e-15, 1e-12)
1e-15
>>> checks.report()
1 checks passed: first step. Largest error: 1.0e-15 (first step) within the tolerance 1e-12.
"""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import matplotlib

IN_NOTEBOOK = "ipykernel" in sys.modules
if not IN_NOTEBOOK:
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 (after the backend is chosen)

FAST = os.environ.get("LOCOGRAD_TUTORIAL_FAST", "") not in ("", "0")


def _default_out() -> Path:
    script = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if not IN_NOTEBOOK and script is not None and script.suffix == ".py" and script.is_file():
        return script.resolve().parent / "figures"
    return Path.cwd() / "figures"


OUT = Path(os.environ.get("LOCOGRAD_TUTORIAL_OUT") or _default_out())


def save(fig: matplotlib.figure.Figure, name: str) -> None:
    """Save a figure into ``OUT`` (and show it when running as a notebook)."""
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / name
    fig.savefig(path, dpi=110)
    print(f"saved {path}")
    if IN_NOTEBOOK:
        plt.show()
    else:
        plt.close(fig)


class Checks:
    """A lesson's numerical checks: asserted one by one, summarised once.

    ``checks(name, error, tol)`` asserts ``error <= tol`` at once (so a lesson stops at the
    first claim that does not hold) and records it; ``checks.report()`` prints one summary:
    every check by name (repeats counted, e.g. one per layer) and the largest error for each
    tolerance used.
    """

    def __init__(self) -> None:
        self.items: list[tuple[str, float, float]] = []

    def __call__(self, name: str, error: float, tol: float) -> float:
        error = float(error)
        assert error <= tol, f"check failed: {name}: error {error:.2e} above the tolerance {tol:.0e}"
        self.items.append((name, error, tol))
        return error

    def report(self) -> None:
        counts: dict[str, int] = {}
        for name, _, _ in self.items:
            counts[name] = counts.get(name, 0) + 1
        names = "; ".join(name if n == 1 else f"{name} (x{n})" for name, n in counts.items())
        worst: dict[float, tuple[float, str]] = {}
        for name, error, tol in self.items:
            if tol == 0:  # a sign check (e.g. a divergence >= 0): passed means error 0
                continue
            if tol not in worst or error > worst[tol][0]:
                worst[tol] = (error, name)
        largest = ", ".join(
            f"{error:.1e} ({name}) within the tolerance {tol:.0e}"
            for tol, (error, name) in sorted(worst.items())
        )
        text = f"{len(self.items)} checks passed: {names}. Largest error: {largest}."
        print(textwrap.fill(text, width=110, subsequent_indent="  ", break_on_hyphens=False))


__all__ = ["FAST", "IN_NOTEBOOK", "OUT", "Checks", "save"]
