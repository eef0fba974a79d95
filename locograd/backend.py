r"""Array backend: NumPy on the CPU, CuPy on a GPU.

The array namespace always follows the data (the idea of the array API
standard): a function that receives NumPy arrays computes with NumPy, one that
receives CuPy arrays computes with CuPy, and a call that mixes both raises a
:class:`TypeError` naming the arguments.  There is no global GPU flag; the
device on which *new* arrays are created is chosen by the scoped context
manager :func:`default_device`.

>>> import numpy as np
>>> from locograd import backend
>>> backend.array_namespace(x=np.zeros(3)) is np
True
>>> with backend.default_device("cpu"):
...     z = backend.zeros((2, 3))
>>> z.dtype, z.shape
(dtype('float64'), (2, 3))
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import types
from collections.abc import Iterator
from typing import Any, Literal

import numpy as np

Array = Any
"""An ``numpy.ndarray`` or a ``cupy.ndarray``."""

Device = Literal["cpu", "gpu"]
DEVICES: tuple[str, ...] = ("cpu", "gpu")
DEFAULT_DTYPE = np.float64
"""Default floating dtype: float64, so identities can be checked exactly."""

_default_device: contextvars.ContextVar[str] = contextvars.ContextVar(
    "locograd_default_device", default="cpu"
)


@functools.lru_cache(maxsize=1)
def _cupy() -> types.ModuleType | None:
    try:
        import cupy
    except Exception:  # ImportError, or a broken CUDA install
        return None
    return cupy


@functools.lru_cache(maxsize=1)
def has_gpu() -> bool:
    """Whether a GPU is usable: CuPy imports AND a device runs a kernel.

    An importable CuPy without a device (or without a driver) is not a GPU.
    """
    cp = _cupy()
    if cp is None:
        return False
    try:
        if cp.cuda.runtime.getDeviceCount() < 1:
            return False
        return float((cp.arange(3, dtype=cp.float64) ** 2).sum()) == 5.0
    except Exception:
        return False


def cupy_module() -> types.ModuleType:
    """Return the ``cupy`` module, or raise a clear error when no GPU is usable."""
    if not has_gpu():
        raise RuntimeError(
            "device='gpu' needs CuPy and a usable CUDA device; none was found "
            "(install the extra locograd[cuda12x] or locograd[cuda13x])"
        )
    cp = _cupy()
    assert cp is not None
    return cp


def is_cupy_array(x: Any) -> bool:
    """Whether ``x`` is a CuPy array (False when CuPy is not importable)."""
    cp = _cupy()
    return cp is not None and isinstance(x, cp.ndarray)


def _backend_name(x: Any) -> str:
    if isinstance(x, np.ndarray | np.generic):
        return "numpy"
    if is_cupy_array(x):
        return "cupy"
    return type(x).__name__


def array_namespace(*arrays: Any, **named: Any) -> types.ModuleType:
    """The array module (``numpy`` or ``cupy``) of the given arrays.

    Python scalars and ``None`` are ignored.  Keyword arguments name the
    arrays so that an error can say which argument was on which backend.

    Args:
        *arrays: arrays (or scalars) whose backend to find.
        **named: the same, with argument names used in error messages.

    Returns:
        ``numpy`` when there are no arrays, else the module of the arrays.

    Raises:
        TypeError: if NumPy and CuPy arrays are mixed, or an argument is
            neither a NumPy nor a CuPy array (lists must be converted first).
    """
    found: dict[str, str] = {}
    items = [(f"argument {i}", a) for i, a in enumerate(arrays)] + list(named.items())
    for name, a in items:
        if a is None or isinstance(a, bool | int | float):
            continue
        kind = _backend_name(a)
        if kind not in ("numpy", "cupy"):
            raise TypeError(f"{name}: expected a numpy.ndarray or cupy.ndarray, got {type(a).__name__}")
        found[name] = kind
    kinds = set(found.values())
    if len(kinds) > 1:
        desc = ", ".join(f"{n} is {k}" for n, k in found.items())
        raise TypeError(
            f"NumPy and CuPy arrays mixed in one call ({desc}); move them to one "
            "device first with locograd.backend.to_device or to_numpy"
        )
    if kinds == {"cupy"}:
        return cupy_module()
    return np


def device_of(x: Array) -> Device:
    """``"gpu"`` for a CuPy array, ``"cpu"`` otherwise."""
    return "gpu" if is_cupy_array(x) else "cpu"


def _as_dtype(value: Any) -> np.dtype | None:
    """``value`` as a NumPy dtype if it names one (``np.float32``, ``"float32"``), else ``None``."""
    if value is None or isinstance(value, bool | int | float):
        return None
    try:
        return np.dtype(value)
    except (TypeError, ValueError):
        return None


def _check_device(device: str) -> str:
    if device not in DEVICES:
        dtype = _as_dtype(device)
        if dtype is not None:  # a dtype passed where the device goes, e.g. to_device(x, np.float32)
            raise ValueError(f"device: expected one of {DEVICES} or None, got dtype {dtype} (pass dtype=...)")
        raise ValueError(f"device: expected one of {DEVICES}, got {device!r}")
    return device


def namespace_for(device: str | None = None) -> types.ModuleType:
    """The array module for ``device`` (``None``: the scoped default)."""
    device = _check_device(_default_device.get() if device is None else device)
    return cupy_module() if device == "gpu" else np


@contextlib.contextmanager
def default_device(device: str) -> Iterator[types.ModuleType]:
    """Scope in which new arrays (``zeros``, ``asarray``, ``MLP.init``) go to ``device``.

    The setting is a context variable: it is restored on exit and is local to
    the thread or task.  Arrays passed to functions are never moved.

    Yields:
        The array module of that device.
    """
    xp = namespace_for(_check_device(device))
    token = _default_device.set(device)
    try:
        yield xp
    finally:
        _default_device.reset(token)


def current_device() -> Device:
    """The scoped default device (``"cpu"`` outside any :func:`default_device`)."""
    return _default_device.get()  # type: ignore[return-value]


def to_numpy(x: Array) -> np.ndarray:
    """Copy a CuPy array to the host; a NumPy array is returned as is."""
    if is_cupy_array(x):
        return x.get()
    return np.asarray(x)


def to_device(x: Any, device: str | None = None, dtype: Any = None) -> Array:
    """Move (or convert) ``x`` to ``device``, optionally casting to ``dtype``.

    This is the one explicit host/device copy; nothing else in locograd moves
    data between devices.
    """
    xp = namespace_for(device)
    if xp is np:
        return np.asarray(to_numpy(x), dtype=dtype)
    return xp.asarray(x, dtype=dtype)


def asarray(x: Any, dtype: Any = None, *, device: str | None = None) -> Array:
    """:func:`to_device` in NumPy's argument order: ``asarray(x, dtype=None, *, device=None)``.

    The dtype is the second argument, as in ``numpy.asarray``; the device is keyword-only
    (default: the scoped default device).

    >>> asarray([1, 2], np.float32).dtype
    dtype('float32')
    >>> asarray([1.0], device="cpu").tolist()
    [1.0]
    """
    return to_device(x, device, dtype)


def zeros(shape: int | tuple[int, ...], dtype: Any = DEFAULT_DTYPE, device: str | None = None) -> Array:
    """Zeros on ``device`` (default: the scoped default device), float64 by default."""
    return namespace_for(device).zeros(shape, dtype=dtype)


def _is_namedtuple(x: Any) -> bool:
    return isinstance(x, tuple) and hasattr(x, "_fields")


def _where(path: tuple[Any, ...]) -> str:
    return "tree" + "".join(f"[{k!r}]" for k in path)


def _kind(x: Any) -> str:
    if isinstance(x, dict):
        return f"a dict with keys {sorted(map(str, x))}"
    if _is_namedtuple(x):
        return f"a NamedTuple {type(x).__name__}{tuple(x._fields)}"
    if isinstance(x, list | tuple):
        return f"a {type(x).__name__} of {len(x)}"
    return f"a leaf ({type(x).__name__})"


def _map(fn: Any, tree: Any, rest: tuple[Any, ...], path: tuple[Any, ...]) -> Any:
    if isinstance(tree, dict):
        for r in rest:
            if not isinstance(r, dict) or r.keys() != tree.keys():
                raise ValueError(f"tree_map: {_where(path)}: expected {_kind(tree)}, got {_kind(r)}")
        return {k: _map(fn, tree[k], tuple(r[k] for r in rest), (*path, k)) for k in tree}
    if isinstance(tree, list | tuple):
        named = _is_namedtuple(tree)
        for r in rest:
            same = type(r) is type(tree) if named else isinstance(r, list | tuple) and not _is_namedtuple(r)
            if not same or len(r) != len(tree):
                raise ValueError(f"tree_map: {_where(path)}: expected {_kind(tree)}, got {_kind(r)}")
        mapped = [_map(fn, item, tuple(r[i] for r in rest), (*path, i)) for i, item in enumerate(tree)]
        return type(tree)(*mapped) if named else type(tree)(mapped)
    return fn(tree, *rest)


def tree_map(fn: Any, tree: Any, *rest: Any) -> Any:
    """Apply ``fn`` to the leaves of nested dicts, lists, tuples and NamedTuples of arrays.

    A NamedTuple is a node, as in JAX: its fields are mapped and the same NamedTuple type is
    rebuilt.  Anything else (an array, a number, ``None``) is a leaf and goes to ``fn``, with
    the matching parts of ``rest``; those must have ``tree``'s structure down to its leaves
    (dicts the same keys, lists and tuples the same length, NamedTuples the same type).

    >>> from typing import NamedTuple
    >>> class State(NamedTuple):
    ...     step: int
    ...     m: list
    >>> tree_map(lambda a: a * 2, [State(1, [np.ones(2)])])
    [State(step=2, m=[array([2., 2.])])]

    Raises:
        ValueError: a part of ``rest`` has another structure, naming where,
            e.g. ``"tree_map: tree[0]['m']: expected a list of 1, got a list of 2"``.
    """
    return _map(fn, tree, rest, ())


def tree_leaves(tree: Any) -> list[Array]:
    """The leaves of nested dicts, lists, tuples and NamedTuples, in a fixed order (a NamedTuple's field order)."""
    if isinstance(tree, dict):
        return [leaf for k in tree for leaf in tree_leaves(tree[k])]
    if isinstance(tree, list | tuple):
        return [leaf for item in tree for leaf in tree_leaves(item)]
    return [tree]


def check_float_array(x: Any, name: str, ndim: int | None = None) -> Array:
    """Check that ``x`` is a floating NumPy/CuPy array (of ``ndim`` dims).

    Raises:
        TypeError: not an array, or an integer/bool/complex/object dtype.
        ValueError: wrong number of dimensions.
    """
    if not (isinstance(x, np.ndarray) or is_cupy_array(x)):
        raise TypeError(f"{name}: expected a numpy.ndarray or cupy.ndarray, got {type(x).__name__}")
    if x.dtype.kind != "f":
        raise TypeError(f"{name}: expected a floating dtype (float32 or float64), got {x.dtype}")
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array, got shape {tuple(x.shape)}")
    return x


def blas_info() -> str:
    """A one-line description of the BLAS NumPy uses (via threadpoolctl when present)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        threadpool_info = None
    if threadpool_info is not None:
        pools = [p for p in threadpool_info() if p.get("user_api") == "blas"]
        if pools:
            p = pools[0]
            return (
                f"{p.get('internal_api')} {p.get('version')} "
                f"({p.get('architecture')}, {p.get('num_threads')} threads)"
            )
    config = np.show_config(mode="dicts")
    blas = config.get("Build Dependencies", {}).get("blas", {})
    return f"{blas.get('name', 'unknown')} {blas.get('version', '')}".strip()


_THREADS: contextvars.ContextVar[int] = contextvars.ContextVar("locograd_elementwise_threads", default=1)


def compute_threads() -> int:
    """The threads locograd's own elementwise work may use (1 unless set by :func:`threads`)."""
    return _THREADS.get()


def _count(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return int(value)


def set_threads(n: int, elementwise: int = 1) -> None:
    """:func:`threads` without an end: ``n >= 1`` BLAS threads and ``elementwise`` threads from now on.

    For worker processes that run one job with one setting (the benchmark's, the study's).
    """
    from threadpoolctl import threadpool_limits

    n, elementwise = _count("threads", n, 1), _count("elementwise", elementwise, 1)
    threadpool_limits(limits=n, user_api="blas")
    _THREADS.set(elementwise)


@contextlib.contextmanager
def threads(n: int, elementwise: int = 1) -> Iterator[int]:
    """Use ``n`` threads for the BLAS (threadpoolctl) and ``elementwise`` for locograd's elementwise work.

    NumPy's ufuncs run on one thread.  With ``elementwise > 1`` the fast paths of the optimizers
    (:mod:`locograd._fast`) split their elementwise work (bias and transfer, the loss, the
    updates) into row blocks on that many Python threads, as PyTorch's kernels use every
    thread; the results are bit for bit those of one thread (each element is computed alone,
    and each reduction keeps its order).  It is 1 by default because it measured slower where
    the BLAS uses the same cores: on the 2-core AMD EPYC virtual machine of
    ``benchmarks/RESULTS.md``, with 2 BLAS threads, a BackProp step took 96.8 ms with 2
    elementwise threads against 92.9 ms with 1, LocoProp-M 813 ms against 760 ms (OpenBLAS's
    threads spin-wait on the cores after each product, and waking a pool thread costs about
    60 us per block against a few hundred us of work).  ``n = 0`` leaves the BLAS as it is.

    >>> with threads(1) as n:
    ...     n, compute_threads()
    (1, 1)
    """
    from threadpoolctl import threadpool_limits

    n, elementwise = _count("threads", n, 0), _count("elementwise", elementwise, 1)
    limits: contextlib.AbstractContextManager[Any] = (
        threadpool_limits(limits=n, user_api="blas") if n > 0 else contextlib.nullcontext()
    )
    with limits:
        token = _THREADS.set(elementwise)
        try:
            yield n
        finally:
            _THREADS.reset(token)
