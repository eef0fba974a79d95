"""The suite's long subprocesses, started when collection ends and waited for by the tests that read them.

Two tests read the output of a process that runs for minutes: the documentation site's build (every
tutorial executed, :mod:`tests.docsite`) and the README's main job (``locograd compare``,
``tests/test_readme.py``).  The suite itself runs on one BLAS thread, so on a 2-core machine one core
is mostly idle while it runs: :func:`start` launches those processes as soon as pytest knows that a
selected test needs them (the ``background`` marker, or the ``site`` fixture), and they run alongside
the rest of the suite instead of after it.  A test reads a job with :func:`result`, which waits for it.
Nothing is shared but the finished process's output, so the order of the tests changes no result.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO


@dataclasses.dataclass
class Job:
    """One subprocess: ``args`` run in ``cwd`` (a fresh temporary folder when ``None``) with ``env``."""

    args: Sequence[str]
    cwd: Path | None = None
    env: dict[str, str] | None = None
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    seconds: float | None = None
    folder: Path | None = None
    outputs: tuple[IO[bytes], IO[bytes]] | None = None
    done: subprocess.CompletedProcess[str] | None = None

    def start(self) -> None:
        """Start the process (once); its output goes to temporary files, never to a pipe that fills."""
        if self.process is not None:
            return
        self.folder = self.cwd or Path(tempfile.mkdtemp(prefix="locograd_background_"))
        self.outputs = (tempfile.TemporaryFile(), tempfile.TemporaryFile())
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            list(self.args), cwd=self.folder, env=self.env, stdout=self.outputs[0], stderr=self.outputs[1]
        )

    def result(self) -> tuple[subprocess.CompletedProcess[str], float]:
        """Wait for the process (starting it if need be): the finished process, text output, and the
        seconds from its start to its end (it shared the machine with the tests meanwhile)."""
        self.start()
        assert self.process is not None and self.outputs is not None
        if self.done is None:
            returncode = self.process.wait()
            self.seconds = time.perf_counter() - self.started
            stdout, stderr = (_read(f) for f in self.outputs)
            self.done = subprocess.CompletedProcess(list(self.args), returncode, stdout, stderr)
        assert self.seconds is not None
        return self.done, self.seconds

    def stop(self) -> None:
        """End the process if it still runs (the session ended first), and remove its own folder."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for f in self.outputs or ():
            f.close()
        if self.cwd is None and self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)


def _read(f: IO[bytes]) -> str:
    f.seek(0)
    return f.read().decode("utf-8", errors="replace")


JOBS: dict[str, Callable[[], Job]] = {}
"""The jobs by name (``site``, ``main-job``): each entry makes its :class:`Job`, registered by the
module that knows the command (:mod:`tests.docsite`, ``tests/conftest.py``)."""
_running: dict[str, Job] = {}


def start(name: str) -> None:
    """Start job ``name`` in the background, once per session."""
    if name not in _running:
        _running[name] = JOBS[name]()
        _running[name].start()


def result(name: str) -> tuple[subprocess.CompletedProcess[str], float]:
    """Job ``name``'s finished process and seconds, waiting for it (and starting it if need be)."""
    return finished(name).result()


def finished(name: str) -> Job:
    """Job ``name``, finished (waited for, and started if need be): its output and its ``folder``."""
    start(name)
    _running[name].result()
    return _running[name]


def stop_all() -> None:
    """End every job still running and remove their folders (the end of the session)."""
    while _running:
        _running.popitem()[1].stop()


def python_env(root: Path, **extra: str) -> dict[str, str]:
    """This environment with ``root`` first on ``PYTHONPATH`` (the checkout under test) and ``extra``."""
    path = os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, **extra}
