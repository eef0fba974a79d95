"""The documentation site builds, and its pages work in a real browser with the network blocked.

The site is built once per session (``python -m sphinx -W -b html docs docs/_build/html``, the
tutorials executed by myst-nb in fast mode; a cell that raises, a broken reference or a missing
figure fails the build).  Headless Chromium (Debian's ``chromium`` and ``chromium-driver``, driven
by selenium with the driver's path given) then opens the index and two tutorial pages from disk,
with every host name resolving nowhere, so a page that reaches for a CDN fails.  Each page must
show no console error, have its maths typeset by MathJax (served by the site itself) and every
figure loaded; screenshots go to ``docs/_build/screenshots/``.  A deliberately broken page (a
missing figure, a script from a CDN) is the negative control.

Without Chromium, its driver, selenium or Sphinx the browser tests skip, naming what is missing;
``--require-browser`` (``.ci/run`` passes it) turns that skip into a failure.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "docs" / "_build" / "html"
SCREENSHOTS = ROOT / "docs" / "_build" / "screenshots"
PAGES = ("index.html", "tutorials/02_bregman.html", "tutorials/04_locoprop_m.html")
"""The pages opened: the index and two tutorials with maths and figures."""


def _missing() -> list[str]:
    missing = [
        m for m in ("sphinx", "myst_nb", "jupytext", "selenium") if importlib.util.find_spec(m) is None
    ]
    missing += [
        f"{tool} (Debian: chromium, chromium-driver)"
        for tool in ("chromium", "chromedriver")
        if not shutil.which(tool)
    ]
    return missing


@pytest.fixture(scope="session")
def site(request: pytest.FixtureRequest) -> Path:
    """The built site (built once per session)."""
    missing = _missing()
    if missing:
        reason = f"the site check needs {', '.join(missing)}"
        if request.config.getoption("--require-browser"):
            pytest.fail(f"--require-browser: {reason}")
        pytest.skip(reason)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", "docs", str(HTML)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, f"the site did not build:\n{done.stderr[-6000:]}"
    print(f"site built in {time.perf_counter() - start:.1f} s: {len(list(HTML.rglob('*.html')))} pages")
    return HTML


@pytest.fixture(scope="session")
def browser(site: Path) -> Any:
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
