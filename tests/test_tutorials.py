"""The tutorials run: every ``tutorials/NN_*.py`` executes in fast mode and shows its figures.

With the ``docs`` extra installed (as in CI) the tutorials are executed once, by the documentation
site's build (the ``site`` fixture: myst-nb, execution forced, fast mode), and each test reads its
executed notebook from ``docs/_build/jupyter_execute``: no cell raised, and a lesson with figures
shows them inline.  Without the extra, each tutorial runs in its own subprocess from the repository
root, as a reader would run it (``python tutorials/03_locoprop_s.py``), with
``LOCOGRAD_TUTORIAL_FAST=1`` (smaller sizes, same code paths), ``LOCOGRAD_TUTORIAL_OUT`` pointing
at a temporary folder and the Agg backend, and must write its figures there.
A second test checks the jupytext "percent" structure every lesson promises as a course lesson:
under the title the prerequisites, the time and what the reader will be able to do; "What you
will learn"; an "Exercises" cell with three numbered exercises, then one worked solution per
exercise in a code cell folded on the site (tag ``hide-input``) that asserts its answer, then a
last cell that asserts the lesson's identity as the named test of the suite does.  It also checks
that no lesson re-implements the [X, 1] / [W; b] augmentation that ``locograd.nn`` provides.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from . import docsite

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = sorted((ROOT / "tutorials").glob("[0-9][0-9]_*.py"))
NAMES = [p.name for p in TUTORIALS]
WITH_FIGURES = ("01", "02", "03", "04", "05", "07", "08", "09")
TIMEOUT_S = 120


def test_tutorials_exist() -> None:
    assert [n[:2] for n in NAMES] == ["00", "01", "02", "03", "04", "05", "06", "07", "08", "09"], NAMES


@pytest.mark.background("site")
@pytest.mark.parametrize("name", NAMES)
def test_tutorial_runs(name: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    if not docsite.missing_tools():
        request.getfixturevalue("site")  # the build executed every tutorial (and fails on a raising cell)
        _check_executed_notebook(name)
    else:
        _run_as_a_script(name, tmp_path)


def _check_executed_notebook(name: str) -> None:
    executed = docsite.EXECUTED / f"{name.removesuffix('.py')}.ipynb"
    assert executed.is_file(), f"the site's build left no executed notebook for {name} ({executed})"
    cells = [c for c in json.loads(executed.read_text(encoding="utf-8"))["cells"] if c["cell_type"] == "code"]
    outputs = [o for cell in cells for o in cell.get("outputs", [])]
    errors = [o for o in outputs if o.get("output_type") == "error"]
    assert not errors, f"{name}: a cell raised: {errors[0].get('ename')}: {errors[0].get('evalue')}"
    unexecuted = [i for i, cell in enumerate(cells) if cell.get("execution_count") is None]
    assert not unexecuted, f"{name}: code cells {unexecuted} did not run"
    if name[:2] in WITH_FIGURES:
        assert any("image/png" in o.get("data", {}) for o in outputs), f"{name} shows no figure inline"


def _run_as_a_script(name: str, tmp_path: Path) -> None:
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


EXTERNAL_DATA = re.compile(r"""data\.load\(\s*["'](fashion-mnist|mnist)["']""")
"""A data set the package reads from disk rather than generates (``data.load("curves")`` is generated)."""


@pytest.mark.parametrize("name", NAMES)
def test_a_tutorial_that_needs_a_data_set_says_so_at_the_top(name: str) -> None:
    text = (ROOT / "tutorials" / name).read_text(encoding="utf-8")
    if not EXTERNAL_DATA.search(text):
        return
    intro = _cells(text)[0][2]
    assert re.search(r"^# \*\*Data:\*\* .*", intro, flags=re.MULTILINE), (
        f"{name} loads a data set the package does not generate: its first cell must say so in a "
        "'**Data:**' line, with what it falls back to"
    )
    assert "falls back" in intro, f"{name}: the '**Data:**' line must say what the lesson falls back to"


def test_the_classifier_lesson_falls_back_to_generated_data(tmp_path: Path) -> None:
    """Lesson 07 with an empty data folder (``LOCOGRAD_DATA``, the only folder the loader then reads)
    runs on its generated stand-in and says so; CI, which has Fashion-MNIST, runs the other path."""
    empty = tmp_path / "no-data"
    empty.mkdir()
    env = dict(os.environ, LOCOGRAD_TUTORIAL_FAST="1", LOCOGRAD_TUTORIAL_OUT=str(tmp_path), MPLBACKEND="Agg")
    env["LOCOGRAD_DATA"] = str(empty)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tutorials" / "07_classifier.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-6000:]
    assert "using the generated stand-in" in proc.stdout, proc.stdout[-3000:]


def _cells(text: str) -> list[tuple[str, str, str]]:
    """Split a percent script into (kind, options, body) cells: kind 'markdown' or 'code', and the
    marker's text after ``# %%`` (e.g. ``tags=["hide-input"]``)."""
    cells: list[tuple[str, str, list[str]]] = []
    for line in text.splitlines():
        marker = re.match(r"^# %%(.*)$", line)
        if marker:
            options = marker.group(1).strip()
            kind = "markdown" if options.startswith("[markdown]") else "code"
            cells.append((kind, options, []))
        elif cells:
            cells[-1][2].append(line)
    return [(kind, options, "\n".join(body).strip("\n")) for kind, options, body in cells]


def _asserts(body: str) -> bool:
    """Whether a code cell holds an ``assert`` statement (not only the word in a comment)."""
    return re.search(r"^\s*assert\b", body, flags=re.MULTILINE) is not None


HEADER = (
    r"# \*\*Prerequisites:\*\* \S",
    r"# \*\*Time:\*\* about \d+ minutes$",
    r"# \*\*You will be able to:\*\* \S",
)
"""The three lines under a lesson's title, in this order (blank comment lines between them)."""
IDENTITY = re.compile(
    r"^# The identity this lesson taught, checked as the test suite checks it \((tests/[\w/]+\.py)::(\w+)\)$"
)


@pytest.mark.parametrize("name", NAMES)
def test_tutorial_structure(name: str) -> None:
    text = (ROOT / "tutorials" / name).read_text(encoding="utf-8")
    cells = _cells(text)
    kinds = [kind for kind, _, _ in cells]
    assert "code" in kinds, f"{name}: no '# %%' code cell"
    assert "markdown" in kinds, f"{name}: no '# %% [markdown]' cell"
    markdown = [body for kind, _, body in cells if kind == "markdown"]
    assert all(
        all(line.startswith("#") or not line.strip() for line in body.splitlines()) for body in markdown
    ), f"{name}: a markdown cell holds a line that is not a '#' comment"

    first = [line for line in markdown[0].splitlines() if line.strip("# ")]
    assert len(first) >= 5 and first[0].startswith("# # "), (
        f"{name}: the first markdown cell must open with the title and the three header lines"
    )
    for line, pattern in zip(first[1:4], HEADER, strict=True):
        assert re.match(pattern, line), f"{name}: under the title expected {pattern!r}, got {line!r}"
    assert first[4] == "# ## What you will learn", (
        f"{name}: 'What you will learn' must follow the three header lines, got {first[4]!r}"
    )

    exercises_at = [
        i for i, (kind, _, body) in enumerate(cells) if kind == "markdown" and "## Exercises" in body
    ]
    assert len(exercises_at) == 1, f"{name}: expected one '## Exercises' markdown cell"
    assert "## Exercises" in markdown[-1], f"{name}: the 'Exercises' cell must be the last markdown cell"
    numbers = re.findall(r"^# (\d+)\. ", markdown[-1], flags=re.MULTILINE)
    assert numbers == ["1", "2", "3"], f"{name}: expected exercises numbered 1.-3., found {numbers}"

    after = cells[exercises_at[0] + 1 :]
    assert len(after) == 4, f"{name}: expected 3 solution cells and the identity cell after the exercises"
    for n, (kind, options, body) in enumerate(after[:3], start=1):
        assert kind == "code" and options == 'tags=["hide-input"]', (
            f"{name}: solution {n} must be a code cell marked '# %% tags=[\"hide-input\"]', got {options!r}"
        )
        assert body.startswith(f"# Solution to exercise {n}"), (
            f"{name}: solution cell {n} must start with '# Solution to exercise {n}'"
        )
        assert _asserts(body), f"{name}: the solution to exercise {n} checks nothing with assert"

    kind, options, body = after[3]
    assert kind == "code" and options == "", f"{name}: the last cell must be a plain (shown) code cell"
    named = IDENTITY.match((body.splitlines() or [""])[0])
    assert named, (
        f"{name}: the last cell must start with '# The identity this lesson taught, ... (tests/<file>.py::<test>)'"
    )
    test_file = ROOT / named.group(1)
    assert test_file.is_file() and f"def {named.group(2)}(" in test_file.read_text(encoding="utf-8"), (
        f"{name}: the last cell names {named.group(1)}::{named.group(2)}, which is not a test of the suite"
    )
    assert _asserts(body), f"{name}: the identity cell checks nothing with assert"

    assert "sys.path" not in text, f"{name}: tutorials import locograd normally, without sys.path changes"
    for rebuilt in ("np.hstack(", "np.vstack(", "np.ones(("):
        assert rebuilt not in text, (
            f"{name}: builds [X, 1] or [W; b] with {rebuilt!r}; use locograd.nn.augment / stack / unstack"
        )
