"""The documentation site builds, and its pages work in a real browser with the network blocked.

The site is built once per session (the ``site`` fixture of ``conftest.py``: ``python -m sphinx -W
-b html docs docs/_build/html``, the tutorials executed by myst-nb in fast mode; a cell that raises,
a broken reference or a missing figure fails the build, and a raising cell is named with its
tutorial: the negative control builds a one-lesson site with ``docs/conf.py``'s settings).  Headless Chromium (Debian's ``chromium`` and ``chromium-driver``, driven
by selenium with the driver's path given) then opens the index and three tutorial pages from disk,
with every host name resolving nowhere, so a page that reaches for a CDN fails.  Each page must
show no console error, have its maths typeset by MathJax (served by the site itself) and every
figure loaded; screenshots go to ``docs/_build/screenshots/``.  A deliberately broken page (a
missing figure, a script from a CDN) is the negative control.

Without Chromium, its driver, selenium or the ``docs`` extra the browser tests skip, naming what is missing;
``--require-browser`` (``.ci/run`` passes it) turns that skip into a failure.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from . import docsite

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "docs" / "_build" / "screenshots"
PAGES = (
    "index.html",
    "tutorials/02_bregman.html",
    "tutorials/04_locoprop_m.html",
    "tutorials/08_convolutions.html",
)
"""The pages opened: the index and three tutorials with maths and figures."""


def _browser_missing() -> list[str]:
    missing = [m for m in ("selenium",) if importlib.util.find_spec(m) is None]
    missing += [
        f"{tool} (Debian: chromium, chromium-driver)"
        for tool in ("chromium", "chromedriver")
        if not shutil.which(tool)
    ]
    return missing


@pytest.fixture(scope="session")
def browser(site: Path, request: pytest.FixtureRequest) -> Any:
    missing = _browser_missing()
    if missing:
        reason = f"the browser check needs {', '.join(missing)}"
        if request.config.getoption("--require-browser"):
            pytest.fail(f"--require-browser: {reason}")
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or ""
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,1600",
        "--host-resolver-rules=MAP * ~NOTFOUND",  # no host name resolves: the network is blocked
        "--allow-file-access-from-files",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=shutil.which("chromedriver")), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def problems(driver: Any, page: Path, screenshot: Path | None = None) -> list[str]:
    """What is wrong with ``page`` in the browser: console errors, figures that did not load, maths
    left untypeset; empty when nothing is."""
    driver.get_log("browser")  # drop what earlier pages logged
    driver.get(page.as_uri())
    found = []
    typeset = driver.execute_async_script(
        """const done = arguments[arguments.length - 1];
        if (!window.MathJax) { done({mathjax: false}); return; }
        (MathJax.startup && MathJax.startup.promise ? MathJax.startup.promise : Promise.resolve())
          .then(() => done({mathjax: true,
                            typeset: document.querySelectorAll('mjx-container').length,
                            errors: document.querySelectorAll('mjx-merror').length}))
          .catch((e) => done({mathjax: true, failed: String(e)}));"""
    )
    source = page.read_text(encoding="utf-8")
    has_maths = 'class="math' in source
    if has_maths and not typeset.get("mathjax"):
        found.append("maths on the page, but MathJax did not load")
    elif has_maths and (typeset.get("failed") or not typeset.get("typeset") or typeset.get("errors")):
        found.append(f"MathJax did not typeset the maths: {typeset}")
    images = driver.execute_script(
        "return Array.from(document.images).map(i => [i.getAttribute('src'), i.complete && i.naturalWidth > 0]);"
    )
    found += [f"figure not loaded: {src}" for src, loaded in images if not loaded]
    found += [
        f"console {entry['level']}: {entry['message'][:300]}"
        for entry in driver.get_log("browser")
        if entry["level"] == "SEVERE"
    ]
    if screenshot is not None:
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(screenshot))
    return found


@pytest.mark.parametrize("name", PAGES)
def test_a_page_works_in_a_browser_without_network(browser: Any, site: Path, name: str) -> None:
    page = site / name
    assert page.is_file(), f"{name} was not built"
    shot = SCREENSHOTS / (name.replace("/", "-").removesuffix(".html") + ".png")
    assert problems(browser, page, shot) == []
    if name != "index.html":  # a tutorial page carries its executed figures and typeset maths
        assert browser.execute_script("return document.images.length;") > 0
        assert browser.execute_script("return document.querySelectorAll('mjx-container').length;") > 0


def test_a_broken_page_is_caught(browser: Any, site: Path, tmp_path: Path) -> None:
    """Negative control: a copy of a tutorial page with a missing figure and a script from a CDN."""
    source = (site / PAGES[1]).read_text(encoding="utf-8")
    broken = site / "tutorials" / "_broken-control.html"
    try:
        broken.write_text(
            source.replace(
                "</body>",
                '<img src="no-such-figure.png" alt="missing">'
                '<script src="https://cdn.jsdelivr.net/npm/no-such-package/x.js"></script></body>',
            ),
            encoding="utf-8",
        )
        found = problems(browser, broken)
    finally:
        broken.unlink(missing_ok=True)
    assert any(p.startswith("figure not loaded: no-such-figure.png") for p in found), found
    assert any("cdn.jsdelivr.net" in p for p in found), found


@pytest.mark.parametrize("name", ["03_locoprop_s.py", "04_locoprop_m.py"])
def test_a_tutorial_copied_out_runs_as_a_notebook(tmp_path: Path, name: str) -> None:
    """A tutorial copied on its own into an empty folder (a course site, Colab) and opened as a
    notebook runs: no sibling module, no ``sys.path`` trick, figures next to the notebook."""
    missing = [m for m in ("jupytext", "nbclient", "ipykernel") if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"running a tutorial as a notebook needs {', '.join(missing)} (the docs extra)")
    import jupytext
    from nbclient import NotebookClient

    copy = tmp_path / name
    shutil.copyfile(ROOT / "tutorials" / name, copy)
    notebook = jupytext.read(copy)
    client = NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    import os

    before = os.environ.get("LOCOGRAD_TUTORIAL_FAST")
    os.environ["LOCOGRAD_TUTORIAL_FAST"] = "1"  # the kernel inherits it: the fast sizes
    try:
        client.execute()
    finally:
        if before is None:
            os.environ.pop("LOCOGRAD_TUTORIAL_FAST")
        else:
            os.environ["LOCOGRAD_TUTORIAL_FAST"] = before
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), "no figure shown inline"
    assert sorted(p.name for p in (tmp_path / "figures").glob("*.png")), "no figure saved next to it"


def test_a_tutorial_with_a_sibling_import_fails_copied_out(tmp_path: Path) -> None:
    """Negative control: the old form, a sibling helper module, fails on its own."""
    if importlib.util.find_spec("nbclient") is None or importlib.util.find_spec("jupytext") is None:
        pytest.skip("running a tutorial as a notebook needs jupytext and nbclient (the docs extra)")
    import jupytext
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    text = (ROOT / "tutorials" / "00_backend.py").read_text(encoding="utf-8")
    copy = tmp_path / "00_backend.py"
    copy.write_text(text.replace("# %%\n", "# %%\nfrom tutorial_setup import FAST\n", 1), encoding="utf-8")
    client = NotebookClient(jupytext.read(copy), timeout=600, resources={"metadata": {"path": str(tmp_path)}})
    with pytest.raises(CellExecutionError, match="No module named 'tutorial_setup'"):
        client.execute()


CONF = """\
import runpy
_site = runpy.run_path({conf!r})
for _name in ("extensions", "nb_custom_formats", "nb_execution_raise_on_error", "nb_execution_show_tb",
              "nb_execution_timeout", "source_suffix", "myst_enable_extensions", "setup"):
    globals()[_name] = _site[_name]
nb_execution_mode = "force"
exclude_patterns = ["_build"]
"""
LESSON = "# %% [markdown]\n# # A lesson\n\n# %%\nanswer = 6 * 7\n\n# %%\n{last}\n"


def test_a_raising_cell_fails_the_build_naming_the_tutorial_and_the_cell(tmp_path: Path) -> None:
    """A one-lesson site with docs/conf.py's execution settings builds; once a cell of the lesson
    raises, the build fails, even without -W, and its log names the lesson and shows the cell."""
    missing = docsite.missing_tools()
    if missing:
        pytest.skip(f"building a site needs {', '.join(missing)} (the docs extra)")
    (tmp_path / "conf.py").write_text(CONF.format(conf=str(ROOT / "docs" / "conf.py")), encoding="utf-8")
    (tmp_path / "index.md").write_text("# Site\n\n```{toctree}\nlesson_07\n```\n", encoding="utf-8")
    lesson = tmp_path / "lesson_07.py"

    def build() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "sphinx",
                "-E",
                "-q",
                "-b",
                "html",
                str(tmp_path),
                str(tmp_path / "_build"),
            ],
            capture_output=True,
            text=True,
            check=False,
        )

    lesson.write_text(LESSON.format(last="assert answer == 42"), encoding="utf-8")
    good = build()
    assert good.returncode == 0, good.stderr[-4000:]
    lesson.write_text(
        LESSON.format(last="assert answer == 41, 'the cell raised on purpose'"), encoding="utf-8"
    )
    bad = build()
    assert bad.returncode != 0, "a raising cell did not fail the build"
    assert "lesson_07" in bad.stderr and "the cell raised on purpose" in bad.stderr, bad.stderr[-4000:]
    assert "assert answer == 41" in bad.stderr, f"the failing cell is not shown:\n{bad.stderr[-4000:]}"
