"""Keras-style ``mnist.npz``: one NumPy archive with the four arrays of an MNIST-format set.

Keras keeps MNIST as ``~/.keras/datasets/mnist.npz`` holding ``x_train``
(60000, 28, 28) uint8, ``y_train`` (60000,) uint8, ``x_test`` (10000, 28, 28)
and ``y_test`` (10000,).  The archive is read with ``allow_pickle=False``:
an archive holding Python objects is refused, never unpickled.

>>> import os, tempfile
>>> import numpy as np
>>> from locograd.data import read_mnist_npz
>>> x, y = np.zeros((3, 28, 28), np.uint8), np.arange(3, dtype=np.uint8)
>>> with tempfile.TemporaryDirectory() as folder:
...     path = os.path.join(folder, "mnist.npz")
...     np.savez(path, x_train=x, y_train=y, x_test=x[:1], y_test=y[:1])
...     x_train, y_train, x_test, y_test = read_mnist_npz(path)
>>> x_train.shape, y_train.shape, x_test.shape, y_test.shape
((3, 28, 28), (3,), (1, 28, 28), (1,))
"""

from __future__ import annotations

import os
import zipfile

import numpy as np

from .dataset import Dataset
from .errors import DataError

NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
"""The arrays a keras-style MNIST archive must hold."""

ZIP_MAGIC = b"PK\x03\x04"
"""The first bytes of a zip archive, hence of every ``.npz`` file."""

NPY_MAGIC = b"\x93NUMPY"
"""The first bytes of a single ``.npy`` array."""


def _open_archive(name: str, expected: str) -> np.lib.npyio.NpzFile:
    """``np.load(name, allow_pickle=False)`` of a file that must be an ``.npz`` archive.

    Decides by the first bytes, before NumPy sees the file: for anything that is neither a zip
    archive nor an ``.npy`` array, ``np.load`` falls back to pickle and its error suggests loading
    the file "unsafely"; a data file is never unpickled, so that advice is never passed on.
    """
    try:
        with open(name, "rb") as handle:
            magic = handle.read(len(NPY_MAGIC))
    except OSError as exc:
        raise DataError(f"{name}: cannot read the file ({exc.strerror or exc}); check the path") from None
    if magic.startswith(NPY_MAGIC):
        raise DataError(f"{name}: expected an .npz archive with {expected}, got a single .npy array")
    if not magic.startswith(ZIP_MAGIC):
        raise DataError(
            f"{name}: not an .npz archive (it does not start with the zip signature PK\\x03\\x04); "
            "get the file again"
        )
    try:
        archive = np.load(name, allow_pickle=False)
    except OSError as exc:
        raise DataError(f"{name}: cannot read the file ({exc.strerror or exc}); check the path") from None
    except (ValueError, zipfile.BadZipFile, EOFError):
        raise DataError(
            f"{name}: a damaged .npz archive (the zip data cannot be read); get the file again"
        ) from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataError(f"{name}: expected an .npz archive with {expected}")
    return archive


def _member(archive: np.lib.npyio.NpzFile, name: str, key: str, holds: str) -> np.ndarray:
    """One array of an open archive; object arrays (which need pickle) and damaged members refused."""
    try:
        return np.asarray(archive[key])
    except ValueError:  # object arrays need pickle, which is refused (NumPy's text is not shown)
        raise DataError(
            f"{name}: {key} holds Python objects, which would need unpickling; refused, expected {holds}"
        ) from None
    except (OSError, EOFError, zipfile.BadZipFile):
        raise DataError(f"{name}: {key} is damaged (cannot be decompressed); get the file again") from None


def read_mnist_npz(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Read a keras-style MNIST archive (``np.load(path, allow_pickle=False)``).

    Args:
        path: The ``.npz`` file.

    Returns:
        ``(x_train, y_train, x_test, y_test)`` as stored: images of shape
        ``(N, H, W)`` and ``(M, H, W)`` with an integer dtype, labels of shape
        ``(N,)`` and ``(M,)`` with an integer dtype.

    Raises:
        DataError: Naming the path, when the file cannot be read or is not an
            ``.npz`` archive, a key is missing, an entry holds Python objects
            (pickles are never loaded), or the shapes or dtypes are wrong.
    """
    name = os.fspath(path)
    with _open_archive(name, f"keys {', '.join(NPZ_KEYS)}") as archive:
        missing = [k for k in NPZ_KEYS if k not in archive.files]
        if missing:
            raise DataError(
                f"{name}: missing {', '.join(missing)} (has: {', '.join(archive.files) or 'nothing'}); "
                f"a keras-style MNIST archive holds {', '.join(NPZ_KEYS)}"
            )
        arrays = {
            key: _member(archive, name, key, "integer arrays as a keras-style MNIST archive holds")
            for key in NPZ_KEYS
        }
    for part in ("train", "test"):
        x, y = arrays[f"x_{part}"], arrays[f"y_{part}"]
        if x.ndim != 3 or y.ndim != 1 or x.shape[0] != y.shape[0]:
            raise DataError(
                f"{name}: x_{part} must have shape (N, H, W) and y_{part} shape (N,), "
                f"got {x.shape} and {y.shape}"
            )
        for key, a in ((f"x_{part}", x), (f"y_{part}", y)):
            if a.dtype.kind not in "ui":
                raise DataError(
                    f"{name}: {key} must hold integers (uint8 pixels or labels), got dtype {a.dtype}"
                )
    return arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"]


DATASET_KEYS = ("x_train", "x_test")
"""The arrays every data set archive holds; ``y_train`` and ``y_test`` (both or neither) add labels."""


def read_dataset_npz(path: str | os.PathLike[str], limit_train: int | None = None) -> Dataset:
    """Read your own data set from one ``.npz`` archive (``np.load(path, allow_pickle=False)``).

    The archive holds ``x_train`` and ``x_test``, and for classification also ``y_train`` and
    ``y_test`` (integer labels, one per example).  Examples may be images ``(N, H, W, C)``,
    ``(N, H, W)`` (one channel: Keras' ``mnist.npz`` has these same four keys) or flat rows
    ``(N, D)``; they are flattened row-major (``Dataset.image_shape`` keeps the shape of one).
    ``uint8`` pixels are scaled to ``[0, 1]``; floating values are taken as they are (float32 stays
    float32, float64 stays float64; the run casts to its dtype).

    Args:
        path: the ``.npz`` file.
        limit_train: keep the first ``limit_train`` training examples (``None``: all).

    Returns:
        The :class:`Dataset`, named by the file's path.

    Raises:
        DataError: one line naming the file and the array: a missing array, an object array
            (never unpickled), a label array without its partner, non-integer labels, a NaN or an
            infinity, examples of another shape in the two splits, a label count that differs
            from the example count, or an empty split.

    >>> import os, tempfile
    >>> import numpy as np
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = os.path.join(folder, "mine.npz")
    ...     np.savez(path, x_train=np.full((4, 2, 3), 255, np.uint8), x_test=np.zeros((1, 2, 3), np.uint8))
    ...     ds = read_dataset_npz(path)
    >>> ds.x_train.shape, ds.image_shape, float(ds.x_train.max()), ds.has_labels
    ((4, 6), (2, 3), 1.0, False)
    """
    name = os.fspath(path)
    keys = ("x_train", "x_test", "y_train", "y_test")
    with _open_archive(name, "x_train and x_test (and y_train, y_test for labels)") as archive:
        missing = [k for k in DATASET_KEYS if k not in archive.files]
        if missing:
            raise DataError(
                f"{name}: missing {', '.join(missing)} (has: {', '.join(archive.files) or 'nothing'}); "
                "a data set archive holds x_train and x_test, and y_train and y_test for classification"
            )
        labels = [k for k in ("y_train", "y_test") if k in archive.files]
        if len(labels) == 1:
            other = "y_test" if labels[0] == "y_train" else "y_train"
            raise DataError(f"{name}: has {labels[0]} but no {other}; give labels for both splits or neither")
        arrays = {k: _member(archive, name, k, "numeric arrays") for k in keys if k in archive.files}
    x_train, x_test = arrays["x_train"], arrays["x_test"]
    for key in ("x_train", "x_test"):
        x = arrays[key]
        if x.ndim not in (2, 3, 4) or x.dtype.kind not in "uif" or x.dtype == np.float16:
            raise DataError(
                f"{name}: {key}: expected numbers of shape (N, D), (N, H, W) or (N, H, W, C) "
                f"(uint8 pixels or float32/float64 values), got {x.dtype} of shape {x.shape}"
            )
        if x.shape[0] == 0:
            raise DataError(f"{name}: {key} holds no examples; a data set needs at least one in each split")
        if x.dtype.kind == "f" and not np.isfinite(x).all():
            bad = int((~np.isfinite(x)).sum())
            raise DataError(f"{name}: {key} holds {bad} NaN or infinite values; clean the data first")
        if x.dtype.kind in "ui" and x.dtype != np.uint8:
            raise DataError(
                f"{name}: {key}: integer examples must be uint8 pixels (scaled to [0, 1]), got {x.dtype}"
            )
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DataError(
            f"{name}: x_test: expected examples of shape {x_train.shape[1:]} like x_train, got {x_test.shape[1:]}"
        )
    for part in ("train", "test"):
        key = f"y_{part}"
        if key not in arrays:
            continue
        y, n = arrays[key], arrays[f"x_{part}"].shape[0]
        if y.dtype.kind not in "ui":
            raise DataError(f"{name}: {key}: expected integer labels, got {y.dtype}")
        if y.shape != (n,):
            raise DataError(
                f"{name}: {key}: expected one label per example of x_{part}, shape ({n},), got {y.shape}"
            )
    if limit_train is not None:
        x_train = x_train[:limit_train]

    def flat(x: np.ndarray) -> np.ndarray:
        rows = x.reshape(x.shape[0], -1)
        return rows.astype(np.float32) / np.float32(255) if x.dtype == np.uint8 else rows

    y_train = arrays.get("y_train")
    y_test = arrays.get("y_test")
    return Dataset(
        name,
        flat(x_train),
        None if y_train is None else y_train[: x_train.shape[0]].astype(np.int64),
        flat(x_test),
        None if y_test is None else y_test.astype(np.int64),
        source=name,
        image_shape=tuple(int(d) for d in x_train.shape[1:]),
    )
