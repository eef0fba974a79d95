"""Shared fixtures: array backends (NumPy always, CuPy under the ``gpu`` marker), dtypes, hypothesis profiles.

* ``--require-gpu`` (or ``LOCOGRAD_REQUIRE_GPU=1``) turns the skip of ``gpu``
  tests into a failure, so a machine with a GPU proves they ran.
* ``LOCOGRAD_HYPOTHESIS_PROFILE`` picks ``ci`` (derandomized, the default when
  ``CI`` is set), ``dev`` (the local default) or ``thorough``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
import pytest

# One BLAS thread: the suite runs many small products, which BLAS threading slows down on the
# 2-core CI machine (it changes no result that a test checks: every tolerance covers summation order).
# SciPy's own BLAS is loaded first, so that the limit reaches it too (a BLAS loaded later by a test
# starts with its default threads: the fixture below limits it).
import scipy.linalg  # noqa: F401
from hypothesis import HealthCheck, settings
from threadpoolctl import threadpool_limits

from locograd import backend

from . import background, docsite

threadpool_limits(limits=1, user_api="blas")

settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=25,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=40, deadline=None, print_blob=True)
settings.register_profile("thorough", max_examples=500, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("LOCOGRAD_HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--require-gpu",
        action="store_true",
        default=os.environ.get("LOCOGRAD_REQUIRE_GPU", "") not in ("", "0"),
        help="fail (instead of skip) the gpu-marked tests when no GPU is usable",
    )
    parser.addoption(
        "--require-browser",
        action="store_true",
        default=os.environ.get("LOCOGRAD_REQUIRE_BROWSER", "") not in ("", "0"),
        help="fail (instead of skip) the documentation site's build and browser tests when Chromium, its "
        "driver, selenium or the docs extra is missing (.ci/run sets LOCOGRAD_REQUIRE_BROWSER=1)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if backend.has_gpu() or config.getoption("--require-gpu"):
        return
    skip = pytest.mark.skip(reason="no usable GPU (CuPy + CUDA device); --require-gpu makes this a failure")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start the background jobs (:mod:`tests.background`) that the selected tests need: those named by
    their ``background`` markers, and the site's build for a test using the ``site`` fixture."""
    if session.config.option.collectonly:
        return
    names = {m.args[0] for item in session.items for m in item.iter_markers("background")}
    if any("site" in getattr(item, "fixturenames", ()) for item in session.items):
        names.add("site")
    if "site" in names and docsite.missing_tools():
        names.discard("site")  # the site fixture skips (or fails under --require-browser), saying why
    for name in sorted(names):
        background.start(name)


def pytest_sessionfinish(session: pytest.Session) -> None:
    background.stop_all()


_REPORTED = pytest.StashKey[list[str]]()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Lines the fixtures asked to show (the site's build time and page count), after the results, as
    CI logs them: during a test its output is captured."""
    for line in config.stash.get(_REPORTED, []):
        terminalreporter.write_line(line)


@pytest.fixture(autouse=True)
def _global_settings_restored() -> Any:
    """Every test starts with the suite's global settings and leaves them so: one BLAS thread, one
    elementwise thread, the fast path's default block size.  A test that changed one of them for good
    (a ``threadpool_limits`` call outside a ``with``, ``backend.set_threads``) used to change the
    numbers of whatever test ran after it: a float32 sum over row blocks is not bit for bit the sum
    over all rows.  The fixture restores them, and names the test that left them changed."""
    from threadpoolctl import threadpool_info

    from locograd._fast import parallel

    def libraries() -> list[dict[str, Any]]:
        return [i for i in threadpool_info() if i.get("user_api") == "blas"]

    def state() -> tuple[Any, ...]:
        blas = tuple(sorted((i.get("filepath", ""), i.get("num_threads", 0)) for i in libraries()))
        return blas, backend.compute_threads(), parallel.MIN_ELEMENTS

    before = state()
    yield
    loaded = {path for path, _ in before[0]}
    if any(i.get("filepath", "") not in loaded for i in libraries()):  # a BLAS the test loaded: not a change
        threadpool_limits(limits=1, user_api="blas")
        before = (tuple(sorted((path, 1) for path, _ in state()[0])), *before[1:])
    after = state()
    if after != before:
        threadpool_limits(limits=1, user_api="blas")
        backend.set_threads(1, elementwise=1)
        parallel.MIN_ELEMENTS = before[2]
        pytest.fail(
            f"the test left the global settings changed (BLAS threads, elementwise threads, block size): {before} -> {after}"
        )


@pytest.fixture(autouse=True)
def _gpu_required(request: pytest.FixtureRequest) -> None:
    """Under --require-gpu a gpu test without a usable GPU fails instead of skipping."""
    if "gpu" in request.node.keywords and not backend.has_gpu():
        pytest.fail("--require-gpu: this gpu test needs a usable GPU (CuPy + CUDA device); none was found")


@dataclass(frozen=True)
class Backend:
    """A test backend: its name, array module, and a converter from NumPy."""

    name: str
    xp: ModuleType

    def asarray(self, x: Any, dtype: Any = None) -> Any:
        return self.xp.asarray(x, dtype=dtype)

    def numpy(self, x: Any) -> np.ndarray:
        return backend.to_numpy(x)


BACKEND_PARAMS = ["numpy", pytest.param("cupy", marks=pytest.mark.gpu)]


@pytest.fixture(scope="session", params=BACKEND_PARAMS)
def bk(request: pytest.FixtureRequest) -> Backend:
    """Runs the test on NumPy, and on CuPy when a GPU is usable."""
    if request.param == "cupy":
        if not backend.has_gpu():
            pytest.fail("--require-gpu: the cupy backend needs a usable GPU; none was found")
        return Backend("cupy", backend.cupy_module())
    return Backend("numpy", np)


@pytest.fixture(scope="session", params=[np.float32, np.float64], ids=["float32", "float64"])
def dtype(request: pytest.FixtureRequest) -> Any:
    return request.param


@pytest.fixture(scope="session")
def site(request: pytest.FixtureRequest) -> Any:
    """The documentation site, built once per session in the background (:func:`tests.docsite.build`,
    started when collection ended): the browser tests open its pages and the tutorial tests read its
    executed notebooks.  Skips, naming what is missing, without the ``docs`` extra (a failure under
    ``--require-browser``)."""
    missing = docsite.missing_tools()
    if missing:
        reason = f"building the site needs {', '.join(missing)} (pip install -e '.[docs]')"
        if request.config.getoption("--require-browser"):
            pytest.fail(f"--require-browser: {reason}")
        pytest.skip(reason)
    done, seconds = docsite.build()
    assert done.returncode == 0, f"the site did not build:\n{done.stderr[-8000:]}"
    pages = len(list(docsite.HTML.rglob("*.html")))
    line = f"site built in {seconds:.1f} s (alongside the other tests): {pages} pages"
    request.config.stash.setdefault(_REPORTED, []).append(line)
    return docsite.HTML
