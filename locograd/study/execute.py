r"""Running trials: the task a worker runs, a local process pool that survives dead workers, and Dask.

:func:`run_trial` is the one task.  In a worker it

1. checks whether the study folder is shared: the client writes ``OUT/.study-token``
   with a random token, and the task compares it with the one it was sent;
2. with the shared folder, trains in ``OUT/trials/KEY/`` through
   :func:`~locograd.experiments.training.train`: continuing from the trial's
   checkpoint where there is one, from scratch otherwise (a committed folder
   without checkpoints is cleared first); a corrupt trial folder (a torn
   ``metrics.jsonl``, a truncated checkpoint) is reported by its path and re-run
   from scratch;
3. without it, trains in a temporary folder and returns the trial's metrics and
   config, which the client writes into the trial folder;
4. returns the trial's record: ``finished`` or ``diverged`` (a non-finite loss:
   recorded, never retried), its final losses and seconds, and whether it continued
   from a checkpoint (``resumed``).  Without the shared folder there is no checkpoint
   to continue from: a successive-halving rung then trains its points again from
   epoch 0 (the same numbers, at the cost of the earlier rungs' epochs again).

:class:`LocalRunner` runs trials on a :class:`~concurrent.futures.ProcessPoolExecutor`
of ``jobs`` processes with ``threads`` BLAS threads each.  A pool breaks as a whole
when one of its workers dies (kill -9, out of memory); the runner then builds a new
pool and resubmits every trial that was in flight (each at most :data:`RETRIES`
times; a trial resumes from its checkpoint).

:class:`DaskRunner` runs them on a Dask distributed cluster: an existing one
(``--scheduler tcp://HOST:8786``) or a :class:`distributed.LocalCluster` started for
the study (``--cluster local:N``).  A worker that dies mid-trial has its task
rescheduled by Dask; a task lost more often than Dask allows (``KilledWorker``) is
resubmitted by the runner, at most :data:`RETRIES` times.

Test hook (for the test suite only): the environment variable
``LOCOGRAD_STUDY_TEST_KILL`` of the client holds comma-separated pieces of trial
names; the first attempt of a matching trial trains one epoch, then its worker
kills itself with SIGKILL (a marker ``OUT/.test-killed-KEY`` makes later attempts
run normally).  It acts only where the study folder is shared.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import contextlib
import dataclasses
import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from ..errors import RunFolderError
from ..experiments.runfolder import read_json, read_jsonl
from .trials import Trial, clear_folder

SPLITS = ("train", "test", "validation")
"""The splits a metrics row scores (``validation`` where the run holds images out)."""

RETRIES = 3
"""How often a trial lost with its worker is resubmitted before it counts as failed."""

TOKEN_NAME = ".study-token"
TEST_KILL_ENV = "LOCOGRAD_STUDY_TEST_KILL"
CONNECT_TIMEOUT_S = 5
MALLOC_VARIABLE = "MALLOC_TRIM_THRESHOLD_"


class StudyError(RuntimeError):
    """A study that cannot run (an unreachable scheduler, no GPU); one line for the command line."""


_DATA_CACHE: dict[tuple[Any, ...], Any] = {}


def _load_data(data: dict[str, Any]) -> Any:
    """The data of a trial (cached per worker process): the first N training and test images."""
    from ..data import Dataset
    from ..data import load as load_dataset

    key = (data["name"], data["data_dir"], data["limit_train"], data["limit_test"], data["data_seed"])
    if key not in _DATA_CACHE:
        ds = load_dataset(
            data["name"], data_dir=data["data_dir"], limit_train=data["limit_train"], seed=data["data_seed"]
        )
        if data["limit_test"] is not None and data["limit_test"] < ds.x_test.shape[0]:
            ds = Dataset(
                ds.name,
                ds.x_train,
                ds.y_train,
                ds.x_test[: data["limit_test"]],
                None if ds.y_test is None else ds.y_test[: data["limit_test"]],
                ds.source,
                ds.image_shape,
            )
        _DATA_CACHE.clear()  # one data set at a time: a worker's memory stays bounded
        _DATA_CACHE[key] = ds
    return _DATA_CACHE[key]


def _shared(out: str, token: str | None) -> bool:
    if token is None:
        return False
    try:
        with open(os.path.join(out, TOKEN_NAME), encoding="utf-8") as handle:
            return handle.read().strip() == token
    except OSError:
        return False


def _attempt(run: Any, resume: bool, data: Any) -> tuple[str, str, list[dict[str, Any]] | None]:
    """Train once; ``(status, message, rows)`` with status ``finished`` (and the run's metrics rows,
    as the loop returns them) or ``diverged`` (rows ``None``: they are on disk, up to the last good epoch)."""
    from ..experiments.training import TrainingDiverged, train

    try:
        rows = train(run, resume=resume, data=data)
    except TrainingDiverged as exc:
        return "diverged", str(exc), None
    return "finished", "", rows


def _test_hook(pattern: str, name: str, key: str, out: str, config: Any, data: Any, shared: bool) -> None:
    """The test-only kill hook (see the module docstring)."""
    pieces = [p for p in pattern.split(",") if p]
    if not shared or not any(p in name for p in pieces):
        return
    marker = os.path.join(out, f".test-killed-{key}")
    if os.path.exists(marker):
        return
    with open(marker, "w", encoding="utf-8") as handle:
        handle.write("killed once by the test hook\n")
    if config.epochs > 1:
        _attempt(config.with_epochs(1), False, data)
    os.kill(os.getpid(), signal.SIGKILL)


@contextlib.contextmanager
def _counted_warnings(caught: dict[str, Any]) -> Any:
    """Count the warnings of a trial by category, keeping the first message of each, instead of
    printing them from the worker (a LocoProp run can warn at every step); they go into the record."""

    def show(message: Any, category: type[Warning], *args: Any, **kwargs: Any) -> None:
        entry = caught.setdefault(category.__name__, {"count": 0, "first": " ".join(str(message).split())})
        entry["count"] += 1

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = show
        yield


def run_trial(payload: dict[str, Any], out: str, token: str | None, threads: int) -> dict[str, Any]:
    """Run one trial in a worker; see the module docstring.

    Args:
        payload: :meth:`Trial.payload`.
        out: the study folder, an absolute path (as the client sees it).
        token: the study's token (``None``: the folder is never shared, e.g. a remote cluster).
        threads: BLAS threads for this trial.

    Returns:
        ``{"record": ..., "metrics": rows or None, "config": dict or None, "notes": [...]}``;
        ``metrics`` and ``config`` only when the folder is not shared.
    """
    from threadpoolctl import threadpool_limits

    key, name = payload["key"], payload["name"]
    if multiprocessing.parent_process() is not None:  # a worker process, never the client itself
        _process_local_tqdm_lock()
    shared = _shared(out, token)
    data = _load_data(payload["data"])
    notes: list[str] = []
    folder = os.path.join(out, "trials", key) if shared else tempfile.mkdtemp(prefix=f"locograd-trial-{key}-")
    cfg = dataclasses.replace(
        payload["run"], out=folder, progress=False, summary=False
    )  # resolved when planned
    caught: dict[str, Any] = {}
    start = time.perf_counter()
    try:
        with threadpool_limits(limits=threads, user_api="blas"), _counted_warnings(caught):
            _test_hook(payload.get("test_kill", ""), name, key, out, cfg, data, shared)
            resume = os.path.isfile(os.path.join(folder, "checkpoint.npz"))
            if not resume:
                clear_folder(
                    folder
                )  # nothing to continue from (a committed folder, a fresh one): start clean
            resumed = resume  # continued from a checkpoint (a rung's continuation, a killed trial)
            try:
                status, message, rows = _attempt(cfg, resume, data)
            except (RunFolderError, ValueError, RuntimeError) as exc:
                if not resume:
                    raise
                notes.append(f"{folder} is corrupt ({exc}); re-running the trial from scratch")
                clear_folder(folder)
                resumed = False
                status, message, rows = _attempt(cfg, False, data)
        if rows is None:  # a diverged run's rows up to its last good epoch: on disk only
            rows = read_jsonl(os.path.join(folder, "metrics.jsonl"), required=("epoch", "train_loss"))
        config = read_json(os.path.join(folder, "config.json"), "trial config")
    finally:
        if not shared:
            shutil.rmtree(folder, ignore_errors=True)
    last = rows[-1] if rows else {}
    record = {
        "key": key,
        "name": name,
        "status": status,
        "message": message,
        "epochs": last.get("epoch", 0),
        "final_train_loss": last.get("train_loss"),
        "final_test_loss": last.get("test_loss"),
        **{f"final_{k}": last[k] for k in last if k.split("_", 1)[0] in SPLITS and k.endswith("_accuracy")},
        **{
            f"final_{k}": last[k] for k in last if k.startswith("validation_") and not k.endswith("_accuracy")
        },
        "seconds": last.get("seconds", 0.0),
        "wall_seconds": last.get("wall_seconds", 0.0),
        "task_seconds": time.perf_counter() - start,
        "resumed": resumed,
        "host": socket.gethostname(),
        "malloc_trim_threshold": os.environ.get(MALLOC_VARIABLE),
        "warnings": caught,
        "threads": threads,
    }
    return {
        "record": record,
        "metrics": None if shared else rows,
        "config": None if shared else config,
        "notes": notes,
    }


def _payload(trial: Trial) -> dict[str, Any]:
    """What a worker gets: the trial, and the test hook's pattern read here, in the client (so that
    the workers of an existing cluster see it too)."""
    return {**trial.payload(), "test_kill": os.environ.get(TEST_KILL_ENV, "")}


OnDone = Callable[[Trial, dict[str, Any]], None]
OnFailed = Callable[[Trial, str], None]


def _process_local_tqdm_lock() -> None:
    """Give tqdm a plain thread lock in a worker process.

    tqdm creates a ``multiprocessing`` lock (a named semaphore, registered with the
    resource tracker) the first time a bar is made, even a disabled one.  A worker
    killed with SIGKILL (Ctrl-C of the study, a dead worker) never unregisters it,
    and the resource tracker then warns about "leaked semaphore objects" when the
    study exits.  A worker's bars are disabled and never shared between processes,
    so a thread lock is all it needs.
    """
    import threading

    from tqdm import std

    if not isinstance(getattr(std.tqdm, "_lock", None), type(threading.RLock())):
        std.tqdm.set_lock(threading.RLock())


def _init_worker(threads: int, gpus: Any) -> None:
    """Local pool initializer: BLAS threads for the process, and one GPU when there are GPUs."""
    from threadpoolctl import threadpool_limits

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the client's: it stops the workers
    _process_local_tqdm_lock()
    if gpus is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpus.get())
    global _LIMITS
    _LIMITS = threadpool_limits(limits=threads, user_api="blas")  # kept for the process's life


_LIMITS: Any = None


def gpu_count() -> int:
    """The number of usable GPUs (0 without CuPy or a device)."""
    from .. import backend

    if not backend.has_gpu():
        return 0
    return int(backend.cupy_module().cuda.runtime.getDeviceCount())


def cores() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover (not Linux)
        return os.cpu_count() or 1


class LocalRunner:
    """Trials on a local process pool that is rebuilt when a worker dies (see the module docstring)."""

    kind = "local pool"

    def __init__(self, out: str, jobs: int, threads: int, device: str = "cpu") -> None:
        self.out = out
        self.jobs = jobs
        self.threads = threads
        self.device = device
        self.token: str | None = None
        self._ctx = multiprocessing.get_context("spawn")
        self._pool: cf.ProcessPoolExecutor | None = None
        self.rebuilds = 0

    def describe(self) -> str:
        """For the report."""
        return f"local process pool, {self.jobs} jobs x {self.threads} BLAS threads"

    def start(self, token: str) -> None:
        """Remember the study token (the pool starts with the first trial)."""
        self.token = token

    def _new_pool(self) -> cf.ProcessPoolExecutor:
        gpus = None
        if self.device == "gpu":
            gpus = self._ctx.Queue()
            for i in range(self.jobs):
                gpus.put(i)
        return cf.ProcessPoolExecutor(
            max_workers=self.jobs,
            mp_context=self._ctx,
            initializer=_init_worker,
            initargs=(self.threads, gpus),
        )

    def run(self, trials: Iterable[Trial], on_done: OnDone, on_failed: OnFailed) -> None:
        """Run ``trials``, at most ``jobs`` at once; ``on_done``/``on_failed`` for each, as they end."""
        pending = collections.deque(trials)
        lost_count: collections.Counter[str] = collections.Counter()
        running: dict[cf.Future[dict[str, Any]], Trial] = {}
        if self._pool is None and pending:
            self._pool = self._new_pool()
        while pending or running:
            while pending and len(running) < self.jobs:
                trial = pending.popleft()
                assert self._pool is not None
                future = self._pool.submit(run_trial, _payload(trial), self.out, self.token, self.threads)
                running[future] = trial
            done, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
            lost: list[Trial] = []
            for future in done:
                trial = running.pop(future)
                self._collect(future, trial, on_done, on_failed, lost)
            if lost:  # a worker died: the pool is broken, every trial in flight is lost with it
                for future, trial in list(running.items()):
                    with contextlib.suppress(Exception):
                        future.exception(timeout=30)
                    self._collect(future, trial, on_done, on_failed, lost)
                running.clear()
                assert self._pool is not None
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = self._new_pool()
                self.rebuilds += 1
                for trial in reversed(lost):
                    lost_count[trial.key] += 1
                    if lost_count[trial.key] > RETRIES:
                        on_failed(trial, f"its worker died {lost_count[trial.key]} times")
                    else:
                        pending.appendleft(trial)

    @staticmethod
    def _collect(
        future: cf.Future[dict[str, Any]],
        trial: Trial,
        on_done: OnDone,
        on_failed: OnFailed,
        lost: list[Trial],
    ) -> None:
        try:
            result = future.result(timeout=0)
        except BrokenProcessPool:
            lost.append(trial)
        except cf.TimeoutError:  # pragma: no cover (a broken pool ends every future)
            lost.append(trial)
        except Exception as exc:
            on_failed(trial, f"{type(exc).__name__}: {exc}")
        else:
            on_done(trial, result)

    def close(self, abort: bool = False) -> None:
        """Stop the pool; ``abort`` (Ctrl-C, an error) kills the workers first: their trials keep
        their last checkpoints and continue from them when the study runs again."""
        if self._pool is not None:
            if abort:
                # the executor offers no way to stop running calls: kill its processes (private attribute)
                for process in list(getattr(self._pool, "_processes", {}).values()):
                    with contextlib.suppress(Exception):
                        process.kill()
            self._pool.shutdown(wait=True, cancel_futures=True)  # quick once the workers are dead
            self._pool = None


@contextlib.contextmanager
def _dask_warnings() -> Any:
    """Dask's own warnings, handled here rather than turned into errors by a caller's filter.

    ``distributed`` warns when it cannot set up what a study does not use (the
    dashboard's optional dependencies, a port already taken by another cluster,
    slow scratch directories); those warnings are informational for a study, so
    they are ignored inside the cluster code, and nowhere else.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module=r"distributed(\..*)?")
        warnings.filterwarnings("ignore", module=r"dask(\..*)?")
        warnings.filterwarnings("ignore", message=r".*[Pp]ort .* is already in use.*")
        warnings.filterwarnings("ignore", category=ResourceWarning)
        yield


class DaskRunner:
    """Trials on a Dask distributed cluster (see the module docstring).

    Args:
        out: the study folder (absolute).
        scheduler: ``tcp://HOST:PORT`` of an existing scheduler, or ``None``.
        local_workers: start a :class:`distributed.LocalCluster` of this many
            single-threaded worker processes (``scheduler`` is then ``None``).
        threads: BLAS threads per trial.
        device: ``"gpu"``: every task asks for the resource ``GPU=1``.
    """

    kind = "dask"

    def __init__(
        self, out: str, scheduler: str | None, local_workers: int | None, threads: int, device: str = "cpu"
    ) -> None:
        self.out = out
        self.scheduler = scheduler
        self.local_workers = local_workers
        self.threads = threads
        self.device = device
        self.client: Any = None
        self.cluster: Any = None
        self.token: str | None = None
        self.jobs = 0

    def describe(self) -> str:
        """For the report."""
        where = self.scheduler or f"a LocalCluster of {self.local_workers} worker processes"
        return f"Dask ({where}), {self.jobs} trials at once x {self.threads} BLAS threads"

    def start(self, token: str) -> None:
        """Connect to (or start) the cluster; an unreachable scheduler fails within seconds."""
        try:
            import dask
            import distributed
        except ImportError:
            raise StudyError(
                "scheduler/cluster: Dask is not installed; pip install 'locograd[distributed]'"
            ) from None
        self.token = token
        with _dask_warnings():
            if self.scheduler is not None:
                try:
                    self.client = distributed.Client(self.scheduler, timeout=f"{CONNECT_TIMEOUT_S}s")
                except (OSError, TimeoutError, ValueError) as exc:
                    raise StudyError(
                        f"scheduler: cannot reach the Dask scheduler at {self.scheduler} within "
                        f"{CONNECT_TIMEOUT_S} s ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})"
                    ) from None
            else:
                resources = {"GPU": 1} if self.device == "gpu" else None
                # Dask's nannies set MALLOC_TRIM_THRESHOLD_ in their workers, which turns off glibc's
                # adaptive mmap threshold: every large NumPy temporary is then a fresh mmap with page
                # faults, and a trial trains about 2.5x slower (measured: 0.35 s against 0.9 s for 2 epochs
                # of adam on 1,000 CURVES images).  Keep Dask's single-thread settings, drop that one.
                environ = {
                    k: v
                    for k, v in dask.config.get("distributed.nanny.pre-spawn-environ", {}).items()
                    if k != MALLOC_VARIABLE
                }
                with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
                    self.cluster = distributed.LocalCluster(
                        n_workers=self.local_workers,
                        threads_per_worker=1,
                        processes=True,
                        dashboard_address=None,
                        resources=resources,
                        silence_logs=50,
                    )
                self.client = distributed.Client(self.cluster)
            self.jobs = sum(self.client.nthreads().values())
            if self.device == "gpu":
                workers = self.client.scheduler_info().get("workers", {})
                gpus = sum(1 for w in workers.values() if (w.get("resources") or {}).get("GPU", 0) >= 1)
                if gpus == 0:
                    self.close()
                    raise StudyError(
                        f"device: gpu asked for, but no worker of the Dask cluster at "
                        f"{self.scheduler or 'local'} offers the resource GPU=1 "
                        "(start the workers with --resources GPU=1)"
                    )
                self.jobs = gpus

    def run(self, trials: Iterable[Trial], on_done: OnDone, on_failed: OnFailed) -> None:
        """Submit every trial; collect them as they finish, resubmitting those lost with their worker."""
        import distributed

        resources = {"GPU": 1} if self.device == "gpu" else None
        attempts: collections.Counter[str] = collections.Counter()
        with _dask_warnings():
            futures: dict[Any, Trial] = {}

            def submit(trial: Trial) -> Any:
                future = self.client.submit(
                    run_trial,
                    _payload(trial),
                    self.out,
                    self.token,
                    self.threads,
                    key=f"trial-{trial.key}-{trial.run.epochs}-{attempts[trial.key]}",  # a rung's own task
                    pure=False,
                    resources=resources,
                )
                futures[future] = trial
                return future

            queue = distributed.as_completed([submit(t) for t in trials])
            for future in queue:
                trial = futures.pop(future)
                try:
                    result = future.result()
                except distributed.KilledWorker:
                    attempts[trial.key] += 1
                    if attempts[trial.key] > RETRIES:
                        on_failed(trial, "its workers died too often")
                    else:
                        queue.add(submit(trial))
                except Exception as exc:
                    on_failed(trial, f"{type(exc).__name__}: {exc}")
                else:
                    on_done(trial, result)
                finally:
                    future.release()

    def close(self, abort: bool = False) -> None:
        """Disconnect (and stop a LocalCluster started for the study); ``abort`` changes nothing here."""
        with _dask_warnings():
            if self.client is not None:
                self.client.close()
            if self.cluster is not None:
                self.cluster.close()
        self.client = self.cluster = None


def parse_cluster(value: str) -> int:
    """``"local:N"`` -> ``N`` (``N >= 1``)."""
    kind, _, n = value.partition(":")
    if kind.strip().lower() != "local" or not n.strip().isdigit() or int(n) < 1:
        raise StudyError(
            f"cluster: expected local:N with N >= 1 (a LocalCluster of N workers), got {value!r}"
        )
    return int(n)


__all__ = [
    "RETRIES",
    "DaskRunner",
    "LocalRunner",
    "StudyError",
    "cores",
    "gpu_count",
    "parse_cluster",
    "run_trial",
]
