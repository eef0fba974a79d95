"""Checkpoints: one ``.npz`` file, written atomically, read without pickle, with a format version.

A checkpoint holds nested lists/dicts of arrays and plain values (params,
optimizer state, the data-shuffling RNG's state, the epoch and the run's
settings).  The nesting is stored as a JSON skeleton in the ``__skeleton__``
member, ``{"format": FORMAT_VERSION, "tree": NODE}`` with each ``NODE`` one of
``{"dict": {key: NODE}}``, ``{"list": [NODE]}``, ``{"tuple": [NODE]}``, ``{"record": {"type": NAME, "fields": {field: NODE}}}``
(an optimizer state, a NamedTuple of :mod:`locograd.optim` rebuilt by its type's name from a
fixed table, never by importing or unpickling anything), ``{"array": MEMBER}`` or
``{"value": JSON_SCALAR}``; the arrays are npz members, so :func:`load` uses
``numpy.load(..., allow_pickle=False)``.  The file is written through
:func:`~.runfolder.open_atomic` (a temporary beside it whose name starts with
:data:`~.runfolder.TEMP_PREFIX`, flushed, renamed): an interrupted write never
leaves a torn checkpoint, and the temporary a ``kill -9`` leaves is removed by
:func:`~.runfolder.remove_stale_temporaries` when the next run starts.

:func:`load` is the one reader: a missing, truncated or foreign file, an
unknown format version, a malformed skeleton or a missing array member raises
:class:`CheckpointError` (a :class:`~locograd.errors.RunFolderError`) whose one
line names the file and what is wrong.

>>> import tempfile, os, numpy as np
>>> path = os.path.join(tempfile.mkdtemp(), "checkpoint.npz")
>>> save(path, {"params": [{"W": np.ones((2, 2))}], "epoch": 3})
>>> load(path)["epoch"]
3
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..backend import is_cupy_array, to_numpy
from ..errors import RunFolderError
from . import runfolder

SKELETON_KEY = "__skeleton__"
FORMAT_VERSION = 2
"""The layout :func:`save` writes and :func:`load` reads; bumped when the payload's layout changes.

Version 2 stores optimizer states as the NamedTuples of :mod:`locograd.optim` (``record`` nodes)."""

KINDS = ("dict", "list", "tuple", "record", "array", "value")


def record_types() -> dict[str, Any]:
    """The NamedTuple state types a checkpoint may hold, by name: every ``...State`` class of :mod:`locograd.optim`."""
    from ..optim import base, first_order, locoprop, second_order

    found: dict[str, Any] = {}
    for module in (base, first_order, locoprop, second_order):
        for name, value in vars(module).items():
            if isinstance(value, type) and issubclass(value, tuple) and hasattr(value, "_fields"):
                if name.endswith("State"):
                    found[name] = value
    return found


class CheckpointError(RunFolderError, ValueError):
    """A checkpoint that cannot be read or does not fit the run (one line naming the file).

    A :class:`~locograd.errors.RunFolderError`; also a ``ValueError``, as it was before run folders
    had their own error type.
    """


def _split(tree: Any, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):
        kind = type(tree).__name__
        if record_types().get(kind) is not type(tree):
            raise TypeError(f"checkpoint: cannot store a {kind} (not a state type of locograd.optim)")
        fields = {f: _split(getattr(tree, f), arrays) for f in tree._fields}
        return {"record": {"type": kind, "fields": fields}}
    if isinstance(tree, dict):
        return {"dict": {str(k): _split(v, arrays) for k, v in tree.items()}}
    if isinstance(tree, list | tuple):
        return {
            type(tree).__name__ if type(tree) in (list, tuple) else "list": [_split(v, arrays) for v in tree]
        }
    if isinstance(tree, np.ndarray) or is_cupy_array(tree):
        key = f"a{len(arrays)}"
        arrays[key] = to_numpy(tree)
        return {"array": key}
    if tree is None or isinstance(tree, bool | int | float | str):
        return {"value": tree}
    if isinstance(tree, np.generic):
        return {"value": tree.item()}
    raise TypeError(f"checkpoint: cannot store a {type(tree).__name__}")


def _join(path: str, where: str, node: Any, arrays: dict[str, np.ndarray]) -> Any:
    """Rebuild the tree of ``node``; ``where`` names the node for the message (``payload['params'][0]``)."""
    if not (isinstance(node, dict) and len(node) == 1 and next(iter(node)) in KINDS):
        raise CheckpointError(
            f"{path}: malformed skeleton at {where}: expected one of the nodes "
            f"{{{', '.join(repr(k) + ': ...' for k in KINDS)}}}, got {_short(node)}"
        )
    ((kind, body),) = node.items()
    if kind == "dict":
        if not isinstance(body, dict):
            raise CheckpointError(f"{path}: malformed skeleton at {where}: a dict node holds {_short(body)}")
        return {k: _join(path, f"{where}[{k!r}]", v, arrays) for k, v in body.items()}
    if kind == "record":
        types = record_types()
        if not (
            isinstance(body, dict) and set(body) == {"type", "fields"} and isinstance(body["fields"], dict)
        ):
            raise CheckpointError(
                f"{path}: malformed skeleton at {where}: a record node holds {_short(body)}, "
                "expected {'type': NAME, 'fields': {...}}"
            )
        cls = types.get(body["type"]) if isinstance(body["type"], str) else None
        if cls is None:
            raise CheckpointError(
                f"{path}: {where} is a {_short(body['type'])} record, not a state type of locograd.optim"
            )
        fields = body["fields"]
        if list(fields) != list(cls._fields):
            raise CheckpointError(
                f"{path}: {where}: a {body['type']} has the fields {list(cls._fields)}, the file holds {list(fields)}"
            )
        return cls(*(_join(path, f"{where}.{f}", fields[f], arrays) for f in cls._fields))
    if kind in ("list", "tuple"):
        if not isinstance(body, list):
            raise CheckpointError(
                f"{path}: malformed skeleton at {where}: a {kind} node holds {_short(body)}"
            )
        items = [_join(path, f"{where}[{i}]", v, arrays) for i, v in enumerate(body)]
        return items if kind == "list" else tuple(items)
    if kind == "array":
        if not isinstance(body, str):
            raise CheckpointError(
                f"{path}: malformed skeleton at {where}: an array node names {_short(body)}, expected a member name"
            )
        if body not in arrays:
            raise CheckpointError(f"{path}: the array member {body!r} of {where} is missing")
        return arrays[body]
    if body is not None and not isinstance(body, bool | int | float | str):
        raise CheckpointError(f"{path}: malformed skeleton at {where}: a value node holds {_short(body)}")
    return body


def _short(value: Any) -> str:
    text = (
        json.dumps(value) if isinstance(value, dict | list | str | int | float | bool | None) else repr(value)
    )
    return text if len(text) <= 60 else text[:57] + "..."


def save(path: str, payload: dict[str, Any]) -> None:
    """Write ``payload`` (nested dicts/lists of arrays and JSON values) atomically to ``path``."""
    arrays: dict[str, np.ndarray] = {}
    skeleton = {"format": FORMAT_VERSION, "tree": _split(payload, arrays)}
    members: dict[str, Any] = {SKELETON_KEY: np.array(json.dumps(skeleton)), **arrays}
    with runfolder.open_atomic(path) as handle:
        np.savez(handle, **members)


def _members(path: str) -> tuple[str, dict[str, np.ndarray]]:
    """The skeleton's text and the arrays of the npz file at ``path``."""
    if not os.path.isfile(path):
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        # the file is opened here, so that it is closed whatever np.load makes of it (before, a
        # truncated zip left NumPy's handle open: a ResourceWarning in the trial's record)
        with open(path, "rb") as handle:
            data = np.load(handle, allow_pickle=False)
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise CheckpointError(
                    f"{path} is not a readable locograd checkpoint (an .npy array, not an .npz)"
                )
            if SKELETON_KEY not in data.files:
                raise CheckpointError(
                    f"{path} is not a readable locograd checkpoint (no {SKELETON_KEY} member)"
                )
            arrays = {k: data[k] for k in data.files}
    except CheckpointError:
        raise
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise CheckpointError(f"{path} is not a readable locograd checkpoint ({_why(exc)})") from None
    skeleton = arrays.pop(SKELETON_KEY)
    if skeleton.shape != () or skeleton.dtype.kind != "U":
        raise CheckpointError(
            f"{path}: the {SKELETON_KEY} member is a {skeleton.dtype} array of shape {skeleton.shape}, "
            "expected one string"
        )
    return str(skeleton), arrays


def _why(exc: BaseException) -> str:
    """NumPy's reason, without its advice to unpickle (a checkpoint never holds pickles)."""
    text = " ".join(str(exc).split())
    if "Object arrays cannot be loaded" in text:
        return "a member holds Python objects; a checkpoint holds plain arrays and is never unpickled"
    if "pickle" in text:
        return "not an .npz archive; a checkpoint is never unpickled"
    return text


def _tree(path: str, text: str) -> Any:
    """The versioned skeleton's tree node, after checking the format version."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: the {SKELETON_KEY} member is not valid JSON ({exc.msg})") from None
    except RecursionError:
        raise CheckpointError(
            f"{path}: the {SKELETON_KEY} member is nested too deeply to be a checkpoint"
        ) from None
    if isinstance(doc, dict) and set(doc) == {"format", "tree"}:
        version = doc["format"]
        if version != FORMAT_VERSION or isinstance(version, bool):
            raise CheckpointError(
                f"{path}: checkpoint format version {version!r}; this locograd reads version {FORMAT_VERSION} only"
            )
        return doc["tree"]
    raise CheckpointError(
        f"{path}: malformed skeleton: expected {{'format': {FORMAT_VERSION}, 'tree': ...}}, got {_short(doc)}"
    )


def load(path: str, required: Sequence[str] = ()) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save` (no pickle); arrays come back as NumPy arrays.

    Args:
        path: the ``.npz`` file.
        required: top-level keys the payload must hold.

    Raises:
        CheckpointError: naming ``path``: missing, truncated or foreign file, another
            format version, a malformed skeleton, a missing array member or required key.
    """
    text, arrays = _members(path)
    try:
        result = _join(path, "payload", _tree(path, text), arrays)
    except RecursionError:
        raise CheckpointError(f"{path}: malformed skeleton: nested too deeply to be a checkpoint") from None
    if not isinstance(result, dict):
        raise CheckpointError(
            f"{path}: malformed skeleton: the payload is a {type(result).__name__}, expected a dict"
        )
    absent = [k for k in required if k not in result]
    if absent:
        raise CheckpointError(f"{path}: the checkpoint holds no {absent[0]!r}")
    return result


def read_epoch(path: str) -> int:
    """The epoch of the checkpoint at ``path``, reading its skeleton only (no arrays).

    Raises:
        CheckpointError: as :func:`load`, or a checkpoint without an integer ``epoch``.
    """
    if not os.path.isfile(path):
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        with open(path, "rb") as handle:
            data = np.load(handle, allow_pickle=False)
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise CheckpointError(
                    f"{path} is not a readable locograd checkpoint (an .npy array, not an .npz)"
                )
            text = str(data[SKELETON_KEY])
    except CheckpointError:
        raise
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise CheckpointError(f"{path} is not a readable locograd checkpoint ({_why(exc)})") from None
    tree = _tree(path, text)
    epoch = tree.get("dict", {}).get("epoch", {}) if isinstance(tree, dict) else {}
    value = epoch.get("value") if isinstance(epoch, dict) else None
    if isinstance(value, bool) or not isinstance(value, int):
        raise CheckpointError(f"{path}: the checkpoint holds no integer 'epoch'")
    return value


__all__ = ["FORMAT_VERSION", "CheckpointError", "load", "read_epoch", "save"]
