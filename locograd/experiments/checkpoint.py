"""Checkpoints: one ``.npz`` file, written atomically, read without pickle.

A checkpoint holds nested lists/dicts of arrays and plain values (params,
optimizer state, the data-shuffling RNG's state, the epoch and the run's
settings).  The nesting is stored as a JSON skeleton, the arrays as npz
members, so :func:`load` uses ``numpy.load(..., allow_pickle=False)``.  The
file is written to a temporary name in the same folder, flushed to disk, then
renamed over the old one: an interrupted write never leaves a torn checkpoint.

>>> import tempfile, os, numpy as np
>>> path = os.path.join(tempfile.mkdtemp(), "checkpoint.npz")
>>> save(path, {"params": [{"W": np.ones((2, 2))}], "epoch": 3})
>>> load(path)["epoch"]
3
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from typing import Any

import numpy as np

from ..backend import is_cupy_array, to_numpy

SKELETON_KEY = "__skeleton__"


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit the run."""


def _split(tree: Any, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(tree, dict):
        return {"dict": {str(k): _split(v, arrays) for k, v in tree.items()}}
    if isinstance(tree, list | tuple):
        return {"list": [_split(v, arrays) for v in tree]}
    if isinstance(tree, np.ndarray) or is_cupy_array(tree):
        key = f"a{len(arrays)}"
        arrays[key] = to_numpy(tree)
        return {"array": key}
    if tree is None or isinstance(tree, bool | int | float | str):
        return {"value": tree}
    if isinstance(tree, np.generic):
        return {"value": tree.item()}
    raise TypeError(f"checkpoint: cannot store a {type(tree).__name__}")


def _join(skeleton: Any, arrays: Any) -> Any:
    ((kind, body),) = skeleton.items()
    if kind == "dict":
        return {k: _join(v, arrays) for k, v in body.items()}
    if kind == "list":
        return [_join(v, arrays) for v in body]
    if kind == "array":
        return arrays[body]
    return body


def save(path: str, payload: dict[str, Any]) -> None:
    """Write ``payload`` (nested dicts/lists of arrays and JSON values) atomically to ``path``."""
    arrays: dict[str, np.ndarray] = {}
    skeleton = _split(payload, arrays)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".checkpoint-", suffix=".npz.tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as handle:
            members: dict[str, Any] = {SKELETON_KEY: np.array(json.dumps(skeleton)), **arrays}
            np.savez(handle, **members)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load(path: str) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save` (no pickle); arrays come back as NumPy arrays.

    Raises:
        CheckpointError: missing, truncated or foreign file.
    """
    if not os.path.isfile(path):
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            skeleton = json.loads(str(data[SKELETON_KEY]))
            arrays = {k: data[k] for k in data.files if k != SKELETON_KEY}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path} is not a readable locograd checkpoint ({exc})") from None
    result = _join(skeleton, arrays)
    if not isinstance(result, dict):
        raise CheckpointError(f"{path} is not a locograd checkpoint")
    return result
