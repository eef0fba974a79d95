"""The tutorials run: every ``tutorials/NN_*.py`` executes in fast mode and writes its figures.

Each tutorial runs in its own subprocess from the repository root, as a reader
would run it (``python tutorials/03_locoprop_s.py``), with
``LOCOGRAD_TUTORIAL_FAST=1`` (smaller sizes, same code paths),
``LOCOGRAD_TUTORIAL_OUT`` pointing at a temporary folder and the Agg backend.
A second test checks the jupytext "percent" structure every lesson promises, and that no
lesson re-implements the [X, 1] / [W; b] augmentation that ``locograd.layers`` provides.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = sorted((ROOT / "tutorials").glob("[0-9][0-9]_*.py"))
NAMES = [p.name for p in TUTORIALS]
WITH_FIGURES = ("01", "02", "03", "04", "05")
TIMEOUT_S = 120


def test_tutorials_exist() -> None:
    assert [n[:2] for n in NAMES] == ["00", "01", "02", "03", "04", "05", "06"], NAMES


@pytest.mark.parametrize("name", NAMES)
def test_tutorial_runs(name: str, tmp_path: Path) -> None:
    env = dict(os.environ)
    env.update(LOCOGRAD_TUTORIAL_FAST="1", LOCOGRAD_TUTORIAL_OUT=str(tmp_path), MPLBACKEND="Agg")
    try:
        proc = subprocess.run(
            [sys.executable, str(ROOT / "tutorials" / name)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(
            f"{name} ran longer than {TIMEOUT_S} s in fast mode; output so far:\n{exc.stdout}\n{exc.stderr}"
        )
    assert proc.returncode == 0, (
        f"{name} exited with status {proc.returncode}\n--- stderr ---\n{proc.stderr[-6000:]}\n"
        f"--- stdout (tail) ---\n{proc.stdout[-3000:]}"
    )
    if name[:2] in WITH_FIGURES:
        pngs = sorted(p.name for p in tmp_path.glob("*.png"))
        assert pngs, f"{name} wrote no PNG figure into LOCOGRAD_TUTORIAL_OUT ({tmp_path})"


def _cells(text: str) -> list[tuple[str, str]]:
    """Split a percent script into (kind, body) cells: kind 'markdown' or 'code'."""
    cells: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        marker = re.match(r"^# %%(.*)$", line)
        if marker:
            kind = "markdown" if "[markdown]" in marker.group(1) else "code"
            cells.append((kind, []))
        elif cells:
            cells[-1][1].append(line)
    return [(kind, "\n".join(body)) for kind, body in cells]


@pytest.mark.parametrize("name", NAMES)
def test_tutorial_structure(name: str) -> None:
    text = (ROOT / "tutorials" / name).read_text(encoding="utf-8")
    cells = _cells(text)
    kinds = [kind for kind, _ in cells]
    assert "code" in kinds, f"{name}: no '# %%' code cell"
    assert "markdown" in kinds, f"{name}: no '# %% [markdown]' cell"
    markdown = [body for kind, body in cells if kind == "markdown"]
    assert all(
        all(line.startswith("#") or not line.strip() for line in body.splitlines()) for body in markdown
    ), f"{name}: a markdown cell holds a line that is not a '#' comment"
    assert "What you will learn" in markdown[0], (
        f"{name}: the first markdown cell must say 'What you will learn'"
    )
    assert "## Exercises" in markdown[-1], f"{name}: the last markdown cell must be the 'Exercises'"
    assert kinds[-1] == "markdown", f"{name}: the 'Exercises' cell must be the last cell"
    exercises = re.findall(r"^# \d+\. ", markdown[-1], flags=re.MULTILINE)
    assert 3 <= len(exercises) <= 5, f"{name}: expected 3-5 numbered exercises, found {len(exercises)}"
    assert "sys.path" not in text, f"{name}: tutorials import locograd normally, without sys.path changes"
    for rebuilt in ("np.hstack(", "np.vstack(", "np.ones(("):
        assert rebuilt not in text, (
            f"{name}: builds [X, 1] or [W; b] with {rebuilt!r}; use locograd.nn.augment / stack / unstack"
        )
