r"""Argument validators with one wording, shared by the library, the command line and the studies.

Each validator returns the value in its canonical form (an ``int``, a
``float``, a lower-case name, the array) or raises with a one-line message
``"<name>: expected <what>, got <value>"``, so that every bad input is refused
before any work starts and the message names the argument.

* :func:`integer`: an integer (``bool`` refused) within bounds.
* :func:`number`: a finite real number within bounds (open or closed).
* :func:`canonical_choice`: a name from a fixed set, matched ignoring case, spaces and ``_`` vs ``-``, returned
  in the set's own spelling (``"LocoProp_M"`` -> ``"locoprop-m"``): the normaliser of every
  name a user types (data sets, optimizers, solvers, presets, devices, dtypes, step kinds).
* :func:`integer_list`: ``"1,2,4"`` as integers within bounds.
* :func:`output_folder`, :func:`output_file`, :func:`existing_path`: paths checked before any
  work (a folder that is a file, a file under a file, a path that does not exist).
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
>>> canonical_choice("dataset", "CURVES", ("curves", "mnist"))
'curves'
"""

from __future__ import annotations

import argparse
import math
import operator
import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NoReturn

import numpy as np

from .backend import Array, array_namespace, is_cupy_array, to_numpy, tree_leaves
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


def _loose(value: str) -> str:
    """The key two spellings of one name share: :func:`normalize_name`, and ``_`` read as ``-``."""
    return normalize_name(value).replace("_", "-")


def canonical_choice(name: str, value: Any, choices: Iterable[str]) -> str:
    """``value`` as it is spelled in ``choices``, matched ignoring case, surrounding spaces and ``_`` vs ``-``.

    The one normaliser of the names a user types (data sets, optimizers, inner
    optimizers, solvers, presets, devices, dtypes, step kinds): ``" CURVES"``
    is ``"curves"``, ``"locoprop_m"`` is ``"locoprop-m"``, ``"RMSProp-TF1"`` is
    ``"rmsprop_tf1"``, each returned in the spelling of ``choices``, so that every
    later comparison sees one canonical string.  Two choices that differ only in
    those respects are a programming error.

    Raises:
        ValueError: ``"<name>: unknown name 'x'; valid names are a, b"``.

    >>> canonical_choice("optimizer", " LocoProp_M", ("sgd", "locoprop-m"))
    'locoprop-m'
    """
    valid = tuple(choices)
    if not isinstance(value, str):
        raise ValueError(f"{name}: expected one of {', '.join(valid)}, got {type(value).__name__} {value!r}")
    by_key = {_loose(c): c for c in valid}
    if len(by_key) != len(valid):
        raise AssertionError(f"{name}: the choices {valid} are not distinct up to case and _/-")
    canonical = by_key.get(_loose(value))
    if canonical is None:
        raise ValueError(f"{name}: unknown name {value!r}; valid names are {', '.join(valid)}")
    return canonical


def integer_list(name: str, text: Any, *, minimum: int | None = None) -> list[int]:
    """``"1,2,4"`` (or a sequence of integers) as ``[1, 2, 4]``, each checked by :func:`integer`.

    Raises:
        ValueError: ``"<name>: expected comma-separated integers >= 1, got '1,x'"``, or an empty list.

    >>> integer_list("scaling-batches", "4, 8,16", minimum=1)
    [4, 8, 16]
    """
    what = "comma-separated integers" + (f" >= {minimum}" if minimum is not None else "")
    if isinstance(text, str):
        parts = [p.strip() for p in text.split(",")]
        if not text.strip() or any(not p for p in parts):
            raise ValueError(f"{name}: expected {what}, got {text!r}")
        try:
            values: list[Any] = [int(p) for p in parts]
        except ValueError:
            raise ValueError(f"{name}: expected {what}, got {text!r}") from None
    elif isinstance(text, list | tuple) and text:
        values = list(text)
    else:
        raise ValueError(f"{name}: expected {what}, got {text!r}")
    out = []
    for v in values:
        bad_type = isinstance(v, bool) or not isinstance(v, int | np.integer)
        if bad_type or (minimum is not None and v < minimum):
            raise ValueError(f"{name}: expected {what}, got {text!r}")
        out.append(int(v))
    return out


def _first_existing(path: str) -> str:
    """The longest prefix of ``path`` (itself included) that exists."""
    current = os.path.abspath(path)
    while not os.path.exists(current):
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    return current


def output_folder(name: str, path: Any) -> str:
    """``path`` (``~`` expanded) if it is a folder, or one can be made there (nothing is created).

    Raises:
        ValueError: ``"<name>: x is a file, expected a folder"``, or a part of the path
            is a file, or the nearest existing folder cannot be written.
    """
    if not isinstance(path, str | os.PathLike) or not os.fspath(path):
        raise ValueError(f"{name}: expected a folder path, got {path!r}")
    given = os.path.expanduser(os.fspath(path))
    if os.path.exists(given) and not os.path.isdir(given):
        raise ValueError(f"{name}: {given} is a file, expected a folder")
    base = _first_existing(given)
    if not os.path.isdir(base):
        raise ValueError(f"{name}: {base} is a file, so the folder {given} cannot be made there")
    if not os.access(base, os.W_OK | os.X_OK):
        raise ValueError(f"{name}: {base} is not writable, so {given} cannot be written")
    return given


def output_file(name: str, path: Any) -> str:
    """``path`` (``~`` expanded) if a file can be written there: not a folder, its folder makable.

    Raises:
        ValueError: ``"<name>: x is a folder, expected a file name"``, or its folder cannot be made.
    """
    if not isinstance(path, str | os.PathLike) or not os.fspath(path):
        raise ValueError(f"{name}: expected a file path, got {path!r}")
    given = os.path.expanduser(os.fspath(path))
    if os.path.isdir(given) or given.endswith(os.sep):
        raise ValueError(f"{name}: {given} is a folder, expected a file name")
    folder = os.path.dirname(os.path.abspath(given))
    base = _first_existing(folder)
    if not os.path.isdir(base):
        raise ValueError(f"{name}: {base} is a file, so {given} cannot be written")
    if os.path.exists(given) and not os.access(given, os.W_OK):
        raise ValueError(f"{name}: {given} is not writable")
    if not os.access(base, os.W_OK | os.X_OK):
        raise ValueError(f"{name}: {base} is not writable, so {given} cannot be written")
    return given


def existing_path(name: str, path: Any) -> str:
    """``path`` (``~`` expanded) if it exists (a file or a folder).

    Raises:
        ValueError: ``"<name>: x does not exist"``.
    """
    if not isinstance(path, str | os.PathLike) or not os.fspath(path):
        raise ValueError(f"{name}: expected a path, got {path!r}")
    given = os.path.expanduser(os.fspath(path))
    if not os.path.exists(given):
        raise ValueError(f"{name}: {given} does not exist")
    return given


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


def finite_parameters(
    who: str,
    params: Sequence[dict[str, Any]],
    why: str,
    advice: str,
    is_finite: Callable[[Any], bool] | None = None,
) -> None:
    """Check the parameters after a step: one error naming the first layer and array that is not finite.

    ``params``: per layer a dict of arrays (``"W"`` and ``"b"``; ``{}`` for a layer without weights).  ``is_finite`` tests one
    array (default: every entry finite, on the array's own backend); the fast paths pass their
    one-sum test (:func:`locograd.optim.all_finite`).

    Raises:
        NonFiniteError: ``"<who>: layer <m> <W or b> became non-finite (<why>); <advice>"``.
    """
    test = is_finite if is_finite is not None else (lambda a: bool(array_namespace(a).isfinite(a).all()))
    for m, layer in enumerate(params):
        for key in layer:
            if not test(layer[key]):
                raise NonFiniteError(f"{who}: layer {m} {key} became non-finite ({why}); {advice}")


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


def _is_record(x: Any) -> bool:
    """Whether ``x`` is a NamedTuple (an optimizer state): a node whose fields are named."""
    return isinstance(x, tuple) and hasattr(x, "_fields")


def _compare(path: str, value: Any, template: Any) -> None:
    if _is_record(template):
        if type(value) is not type(template):
            raise StateMismatchError(
                f"{path}: expected {type(template).__name__}, got {type(value).__name__}"
            )
        for field in template._fields:
            _compare(f"{path}.{field}", getattr(value, field), getattr(template, field))
        return
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
        if not isinstance(value, list | tuple) or _is_record(value):
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


def _is_array(x: Any) -> bool:
    return isinstance(x, np.ndarray) or is_cupy_array(x)


def _fits(value: Any, template: Any) -> bool:
    """Whether :func:`same_tree` accepts ``value``, decided without formatting a message.

    ``True`` implies that :func:`same_tree` accepts; on ``False`` it decides (and names the path).
    """
    if isinstance(template, np.ndarray) or is_cupy_array(template):
        return (
            (isinstance(value, np.ndarray) or is_cupy_array(value))
            and value.shape == template.shape
            and value.dtype == template.dtype
        )
    if _is_record(template):
        if type(value) is not type(template):
            return False
        for v, t in zip(value, template, strict=True):
            if not _fits(v, t):
                return False
        return True
    if isinstance(template, dict):
        if not isinstance(value, dict) or value.keys() != template.keys():
            return False
        for key, t in template.items():  # a loop, not all(...): this runs at every inner step
            if not _fits(value[key], t):
                return False
        return True
    if isinstance(template, list | tuple):
        if not isinstance(value, list | tuple) or _is_record(value) or len(value) != len(template):
            return False
        for v, t in zip(value, template, strict=True):
            if not _fits(v, t):
                return False
        return True
    if template is None:
        return value is None
    if isinstance(template, int | np.integer) and not isinstance(template, bool):
        return isinstance(value, int | np.integer) and not isinstance(value, bool)
    return False


def same_layout(name: str, value: Any, template: Any) -> Any:
    """:func:`same_tree`, cheap when the trees agree: no path or message is formatted then.

    For checks that run at every step (an optimizer's state and gradients against
    its parameters, at every inner step of LocoProp's local solver): only keys,
    lengths, shapes and dtypes are compared, with no array copied or read.

    Raises:
        StateMismatchError: as :func:`same_tree`, naming the first path that differs.

    >>> import numpy as np
    >>> same_layout("grads", {"W": np.zeros((2, 3))}, {"W": np.ones((2, 1))})
    Traceback (most recent call last):
    ...
    locograd.errors.StateMismatchError: grads['W']: expected shape (2, 1), got (2, 3)
    """
    if not _fits(value, template):
        same_tree(name, value, template)
    return value


def template_array(shape: Sequence[int], dtype: Any) -> np.ndarray:
    """A read-only array of ``shape`` and ``dtype`` that takes no memory: a template for :func:`same_tree`.

    >>> template_array((1000, 1000), "float32").strides
    (0, 0)
    """
    return np.broadcast_to(np.empty((), dtype=dtype), tuple(shape))


def float_tree(name: str, tree: Any) -> Any:
    """``tree`` unchanged if every leaf of its dicts, lists and tuples is a floating NumPy/CuPy array.

    Raises:
        TypeError: naming the first leaf that is not, e.g.
            ``"params['W']: expected a floating numpy.ndarray or cupy.ndarray, got list"``.
    """
    if _all_float(tree):
        return tree
    _first_nonfloat(name, tree)
    return tree


def _all_float(tree: Any) -> bool:
    if isinstance(tree, np.ndarray):
        return tree.dtype.kind == "f"
    if isinstance(tree, dict):
        for value in tree.values():
            if not _all_float(value):
                return False
        return True
    if isinstance(tree, list | tuple) and not hasattr(tree, "_fields"):
        for value in tree:
            if not _all_float(value):
                return False
        return True
    return is_cupy_array(tree) and tree.dtype.kind == "f"


def _first_nonfloat(path: str, tree: Any) -> None:
    if isinstance(tree, dict):
        for key, value in tree.items():
            _first_nonfloat(_path(path, key), value)
    elif isinstance(tree, list | tuple) and not hasattr(tree, "_fields"):
        for i, value in enumerate(tree):
            _first_nonfloat(_path(path, i), value)
    elif not _is_array(tree):
        raise TypeError(
            f"{path}: expected a floating numpy.ndarray or cupy.ndarray, got {type(tree).__name__}"
        )
    elif tree.dtype.kind != "f":
        raise TypeError(f"{path}: expected a floating dtype (float32 or float64), got {tree.dtype}")


def real(name: str, value: Any, what: str) -> float:
    """``value`` as a Python float if it is a real number (``bool``, strings and arrays are refused).

    The type check of the library's own range checks (``lr``, ``gamma``, ``eta``, ``beta`` ...),
    which then test the range and keep their wording: ``float("0.1")`` and ``float(True)``
    would otherwise pass a string or a flag as a number.  The range is not checked here.

    Raises:
        ValueError: ``"<name>: expected <what>, got str '0.1'"``.
    """
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | float | np.integer | np.floating):
        raise ValueError(f"{name}: expected {what}, got {type(value).__name__} {value!r}")
    return float(value)


def same_structure(
    name: str, value: Any, template: Any, *, check_shapes: bool = True
) -> list[tuple[Any, Any]]:
    """The leaves of ``value`` and ``template`` paired BY KEY, if the trees have one structure and shapes.

    For checkers that compare two trees (dtypes may differ): dicts must have the same keys
    (paired by key, never by insertion order), lists and tuples the same length, and
    paired leaves the same shape (never broadcast; with ``check_shapes=False`` the caller
    compares the shapes of the pairs itself).

    Returns:
        ``[(value_leaf, template_leaf), ...]`` in the order of ``template``'s leaves.

    Raises:
        ValueError: naming the first path that differs, e.g. ``"b['W']: expected shape (2,), got (3,)"``.
    """
    pairs: list[tuple[Any, Any]] = []
    _pair(name, value, template, pairs, check_shapes)
    return pairs


def _pair(path: str, value: Any, template: Any, pairs: list[tuple[Any, Any]], shapes: bool) -> None:
    if _is_record(template):
        if type(value) is not type(template):
            raise ValueError(f"{path}: expected {type(template).__name__}, got {type(value).__name__}")
        for field in template._fields:
            _pair(f"{path}.{field}", getattr(value, field), getattr(template, field), pairs, shapes)
        return
    if isinstance(template, dict):
        if not isinstance(value, dict):
            raise ValueError(f"{path}: expected a dict, got {type(value).__name__}")
        if set(value) != set(template):
            raise ValueError(
                f"{path}: expected the keys {sorted(map(str, template))}, got {sorted(map(str, value))}"
            )
        for key in template:
            _pair(_path(path, key), value[key], template[key], pairs, shapes)
        return
    if isinstance(template, list | tuple) and not hasattr(template, "_fields"):
        if not isinstance(value, list | tuple) or hasattr(value, "_fields"):
            raise ValueError(f"{path}: expected a list or tuple, got {type(value).__name__}")
        if len(value) != len(template):
            raise ValueError(f"{path}: expected {len(template)} entries, got {len(value)}")
        for i, (v, t) in enumerate(zip(value, template, strict=True)):
            _pair(_path(path, i), v, t, pairs, shapes)
        return
    if isinstance(value, dict | list | tuple) and not hasattr(value, "_fields"):
        raise ValueError(f"{path}: expected an array, got {type(value).__name__}")
    if shapes and np.shape(value) != np.shape(template):
        raise ValueError(f"{path}: expected shape {np.shape(template)}, got {np.shape(value)}")
    pairs.append((value, template))


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are ONE line, ``"<prog>: error: <message> (see <prog> --help)"``.

    argparse prints the whole usage text before the error; the project's rule is
    one line per bad input, naming the argument (argparse's own message does).
    Subparsers are made of this class too.
    """

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")


__all__ = [
    "OneLineParser",
    "canonical_choice",
    "count_nonfinite",
    "existing_path",
    "finite",
    "float_array",
    "float_tree",
    "integer",
    "integer_list",
    "normalize_name",
    "number",
    "output_file",
    "output_folder",
    "real",
    "same_layout",
    "same_structure",
    "same_tree",
    "template_array",
]
