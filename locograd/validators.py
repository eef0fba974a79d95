r"""Argument validators with one wording, shared by the library, the command line and the studies.

Each validator returns the value in its canonical form (an ``int``, a
``float``, a lower-case name, the array) or raises with a one-line message
``"<name>: expected <what>, got <value>"``, so that every bad input is refused
before any work starts and the message names the argument.

* :func:`integer`: an integer (``bool`` refused) within bounds.
* :func:`number`: a finite real number within bounds (open or closed).
* :func:`choice`: a name from a fixed set, normalised (case and ``_``/``-``) in ONE place.
* :func:`finite`: every value of an array or a tree of arrays is finite
  (:class:`~locograd.errors.NonFiniteError` otherwise, so NaN never passes in silence).
* :func:`float_array`: a floating NumPy/CuPy array of a given shape and dtype.

>>> integer("steps", 3, minimum=1)
3
>>> number("beta", 0.9, low=0, high=1, high_open=True)
0.9
>>> number("lr", -1.0, low=0, low_open=True)
Traceback (most recent call last):
...
ValueError: lr: expected a finite number > 0, got -1.0
>>> choice("dataset", "CURVES", ("curves", "mnist"))
'curves'
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from .backend import Array, is_cupy_array, to_numpy, tree_leaves
from .errors import NonFiniteError, StateMismatchError


def _bounds_text(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    """``"> 0"``, ``">= 1"``, ``"in [0, 1)"`` ... for a message."""
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {low:g}"
    if high is not None:
        return f"{'<' if high_open else '<='} {high:g}"
    return ""


def integer(
    name: str, value: Any, *, minimum: int | None = None, maximum: int | None = None, allow_none: bool = False
) -> Any:
    """``value`` as a Python int within ``[minimum, maximum]`` (``bool`` and floats are refused).

    Raises:
        ValueError: ``"<name>: expected an integer >= <minimum>, got <value>"``.
    """
    if value is None and allow_none:
        return None
    what = "an integer" + (
        f" {_bounds_text(minimum, maximum, False, False)}"
        if minimum is not None or maximum is not None
        else ""
    )
    if allow_none:
        what = f"None or {what}"
    if isinstance(value, bool) or isinstance(value, float | np.floating):
        raise ValueError(f"{name}: expected {what}, got {value!r}")
    try:
        number_ = operator.index(value)
    except TypeError:
        raise ValueError(f"{name}: expected {what}, got {type(value).__name__} {value!r}") from None
    if (minimum is not None and number_ < minimum) or (maximum is not None and number_ > maximum):
        raise ValueError(f"{name}: expected {what}, got {number_}")
    return int(number_)


def number(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    allow_none: bool = False,
) -> Any:
    """``value`` as a finite Python float within the given bounds.

    Args:
        name: the argument's name, for the message.
        value: a real number (``bool`` and strings are refused).
        low, high: the bounds, ``None`` for none.
        low_open, high_open: whether a bound itself is excluded.
        allow_none: ``None`` is passed through.

    Raises:
        ValueError: ``"<name>: expected a finite number > 0, got <value>"``.
    """
    if value is None and allow_none:
        return None
    bounds = _bounds_text(low, high, low_open, high_open)
    what = (
        f"a finite number {bounds}".rstrip()
        if not (low is not None and high is not None)
        else f"a number {bounds}"
    )
    if allow_none:
        what = f"None or {what}"
    if isinstance(value, bool | str) or not isinstance(value, int | float | np.integer | np.floating):
        raise ValueError(f"{name}: expected {what}, got {type(value).__name__} {value!r}")
    v = float(value)
    ok = math.isfinite(v)
    if ok and low is not None:
        ok = v > low if low_open else v >= low
    if ok and high is not None:
        ok = v < high if high_open else v <= high
    if not ok:
        raise ValueError(f"{name}: expected {what}, got {value!r}")
    return v


def normalize_name(value: str) -> str:
    """The canonical spelling of a name: stripped, lower case (``"CURVES"`` and ``" curves"`` are ``"curves"``)."""
    return value.strip().lower()


def choice(name: str, value: Any, choices: Iterable[str]) -> str:
    """``value`` normalised by :func:`normalize_name`, which must be one of ``choices``.

    Raises:
        ValueError: ``"<name>: unknown name 'x'; valid names are a, b"``.
    """
    valid = tuple(choices)
    if not isinstance(value, str):
        raise ValueError(f"{name}: expected one of {', '.join(valid)}, got {type(value).__name__} {value!r}")
    canonical = normalize_name(value)
    if canonical not in valid:
        raise ValueError(f"{name}: unknown name {value!r}; valid names are {', '.join(valid)}")
    return canonical


def count_nonfinite(x: Any) -> tuple[int, int, int]:
    """``(nan, inf, size)`` over the leaves of an array or a tree of arrays (scalars count too)."""
    nan = inf = size = 0
    for leaf in tree_leaves(x):
        if leaf is None or isinstance(leaf, str):
            continue
        a = to_numpy(leaf) if is_cupy_array(leaf) else np.asarray(leaf)
        if a.dtype.kind not in "fc":
            size += a.size
            continue
        nan += int(np.isnan(a).sum())
        inf += int(np.isinf(a).sum())
        size += a.size
    return nan, inf, size


def finite(name: str, x: Any) -> Any:
    """``x`` unchanged if every value in it (array, scalar or tree) is finite.

    Raises:
        NonFiniteError: ``"<name>: expected finite values, got 1 NaN and 0 infinities among 4 values"``.
    """
    nan, inf, size = count_nonfinite(x)
    if nan or inf:
        raise NonFiniteError(
            f"{name}: expected finite values, got {nan} NaN and {inf} infinities among {size} values"
        )
    return x


def float_array(name: str, x: Any, *, shape: Sequence[int] | None = None, dtype: Any = None) -> Array:
    """``x`` if it is a floating NumPy/CuPy array of ``shape`` and ``dtype`` (each when given).

    Raises:
        TypeError: not an array, not floating, or another dtype.
        ValueError: another shape.
    """
    if not (isinstance(x, np.ndarray) or is_cupy_array(x)):
        raise TypeError(f"{name}: expected a numpy.ndarray or cupy.ndarray, got {type(x).__name__}")
    if x.dtype.kind != "f":
        raise TypeError(f"{name}: expected a floating dtype (float32 or float64), got {x.dtype}")
    if dtype is not None and x.dtype != np.dtype(dtype):
        raise TypeError(f"{name}: expected dtype {np.dtype(dtype)}, got {x.dtype}")
    if shape is not None and tuple(x.shape) != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}, got {tuple(x.shape)}")
    return x


def _path(prefix: str, key: Any) -> str:
    return f"{prefix}[{key!r}]"


def same_tree(name: str, value: Any, template: Any) -> Any:
    """``value`` unchanged if it has the structure, shapes and dtypes of ``template``.

    Dicts must have the same keys, lists and tuples the same length, arrays the
    same shape and dtype (never broadcast, never upcast), and other leaves the
    same type (an ``int`` step count stays an ``int``).  Used to check an
    optimizer state, or a checkpoint's, against the one the optimizer would build
    for the parameters at hand.

    Raises:
        StateMismatchError: naming the first path that differs, e.g.
            ``"state['m'][3]['W']: expected shape (30, 250), got (1, 250)"``.

    >>> same_tree("state", {"step": 0}, {"step": 3})
    {'step': 0}
    >>> same_tree("state", {"step": 0}, {"step": 0, "m": [1.0]})
    Traceback (most recent call last):
    ...
    locograd.errors.StateMismatchError: state: expected the keys ['m', 'step'], got ['step']
    """
    _compare(name, value, template)
    return value


def _compare(path: str, value: Any, template: Any) -> None:
    if isinstance(template, dict):
        if not isinstance(value, dict):
            raise StateMismatchError(f"{path}: expected a dict, got {type(value).__name__}")
        if set(value) != set(template):
            raise StateMismatchError(
                f"{path}: expected the keys {sorted(map(str, template))}, got {sorted(map(str, value))}"
            )
        for key in template:
            _compare(_path(path, key), value[key], template[key])
        return
    if isinstance(template, list | tuple):
        if not isinstance(value, list | tuple):
            raise StateMismatchError(f"{path}: expected a sequence, got {type(value).__name__}")
        if len(value) != len(template):
            raise StateMismatchError(f"{path}: expected {len(template)} entries, got {len(value)}")
        for i, (v, t) in enumerate(zip(value, template, strict=True)):
            _compare(_path(path, i), v, t)
        return
    if isinstance(template, np.ndarray) or is_cupy_array(template):
        if not (isinstance(value, np.ndarray) or is_cupy_array(value)):
            raise StateMismatchError(f"{path}: expected an array, got {type(value).__name__}")
        if tuple(value.shape) != tuple(template.shape):
            raise StateMismatchError(
                f"{path}: expected shape {tuple(template.shape)}, got {tuple(value.shape)}"
            )
        if value.dtype != template.dtype:
            raise StateMismatchError(f"{path}: expected dtype {template.dtype}, got {value.dtype}")
        return
    if template is None:
        if value is not None:
            raise StateMismatchError(f"{path}: expected None, got {type(value).__name__}")
        return
    if isinstance(template, bool):
        kinds: tuple[type, ...] = (bool,)
    elif isinstance(template, int | np.integer):
        kinds = (int, np.integer)
    elif isinstance(template, float | np.floating):
        kinds = (float, int, np.floating, np.integer)
    else:
        kinds = (type(template),)
    if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
        raise StateMismatchError(f"{path}: expected {type(template).__name__}, got {type(value).__name__}")


__all__ = [
    "choice",
    "count_nonfinite",
    "finite",
    "float_array",
    "integer",
    "normalize_name",
    "number",
    "same_tree",
]
