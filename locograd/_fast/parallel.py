r"""Row blocks on a thread pool: how the fast paths spread NumPy's elementwise work over threads.

NumPy's ufuncs and reductions run on one thread but release the GIL, so blocks of rows of one
array can be computed at once on several threads.  :func:`run` calls ``fn(block)`` for every
block (the calling thread takes the first), each in a copy of the caller's context (NumPy's
``errstate`` and :func:`locograd.backend.threads` included), and re-raises the first error.

The blocks split only what is computed element by element, or reductions along whole rows
or whole columns, so the result is bit for bit that of one call on the whole array.

>>> blocks(10, 3), blocks(10, 1)
([slice(0, 4, None), slice(4, 7, None), slice(7, 10, None)], [slice(0, 10, None)])
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from ..backend import compute_threads

MIN_ELEMENTS = 1 << 16
"""Below this many elements per block a thread costs more than it saves (about 64K floats)."""

_LOCK = threading.Lock()
_POOL: ThreadPoolExecutor | None = None
_POOL_SIZE = 0


def _pool(workers: int) -> ThreadPoolExecutor:
    """The shared pool, grown to ``workers`` threads when asked for more."""
    global _POOL, _POOL_SIZE
    with _LOCK:
        if _POOL is None or _POOL_SIZE < workers:
            old = _POOL
            _POOL, _POOL_SIZE = (
                ThreadPoolExecutor(max_workers=workers, thread_name_prefix="locograd"),
                workers,
            )
            if old is not None:
                old.shutdown(wait=False)
        return _POOL


def blocks(n: int, parts: int) -> list[slice]:
    """``n`` indices in ``parts`` contiguous slices of sizes differing by at most one."""
    parts = max(1, min(parts, n))
    base, extra = divmod(n, parts)
    out, start = [], 0
    for i in range(parts):
        stop = start + base + (1 if i < extra else 0)
        out.append(slice(start, stop))
        start = stop
    return out


def parts_for(rows: int, row_size: int) -> int:
    """How many blocks to split ``rows`` rows of ``row_size`` elements into, at the threads in force."""
    threads = compute_threads()
    if threads <= 1 or rows < 2:
        return 1
    return max(1, min(threads, rows, (rows * row_size) // MIN_ELEMENTS))


def run(fn: Callable[[slice], object], parts: list[slice]) -> None:
    """``fn(part)`` for every part: the first in this thread, the others on the pool, all awaited."""
    if len(parts) == 1:
        fn(parts[0])
        return
    pool = _pool(len(parts) - 1)
    futures: list[Future[object]] = [pool.submit(contextvars.copy_context().run, fn, p) for p in parts[1:]]
    try:
        fn(parts[0])
    finally:
        errors = []
        for future in futures:
            try:
                future.result()
            except BaseException as exc:
                errors.append(exc)
    if errors:
        raise errors[0]


def rows(fn: Callable[[slice], object], n_rows: int, row_size: int) -> None:
    """:func:`run` over row blocks of an ``(n_rows, row_size)`` array (one block for small arrays)."""
    run(fn, blocks(n_rows, parts_for(n_rows, row_size)))
