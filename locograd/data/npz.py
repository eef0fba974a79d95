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

from .errors import DataError

NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
"""The arrays a keras-style MNIST archive must hold."""

ZIP_MAGIC = b"PK\x03\x04"
"""The first bytes of a zip archive, hence of every ``.npz`` file."""

NPY_MAGIC = b"\x93NUMPY"
"""The first bytes of a single ``.npy`` array."""


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
    try:
        with open(name, "rb") as handle:
            magic = handle.read(len(NPY_MAGIC))
    except OSError as exc:
        raise DataError(f"{name}: cannot read the file ({exc.strerror or exc}); check the path") from None
    # Decide by the first bytes, before NumPy sees the file: for anything that is neither a zip
    # archive nor an .npy array, np.load falls back to pickle and its error suggests loading the
    # file "unsafely"; a data file is never unpickled, so that advice is never passed on.
    if magic.startswith(NPY_MAGIC):
        raise DataError(
            f"{name}: expected an .npz archive with keys {', '.join(NPZ_KEYS)}, got a single .npy array"
        )
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
        raise DataError(f"{name}: expected an .npz archive with keys {', '.join(NPZ_KEYS)}")
    with archive:
        missing = [k for k in NPZ_KEYS if k not in archive.files]
        if missing:
            raise DataError(
                f"{name}: missing {', '.join(missing)} (has: {', '.join(archive.files) or 'nothing'}); "
                f"a keras-style MNIST archive holds {', '.join(NPZ_KEYS)}"
            )
        arrays: dict[str, np.ndarray] = {}
        for key in NPZ_KEYS:
            try:
                arrays[key] = archive[key]
            except ValueError:  # object arrays need pickle, which is refused (NumPy's text is not shown)
                raise DataError(
                    f"{name}: {key} holds Python objects, which would need unpickling; refused, "
                    "a keras-style MNIST archive holds integer arrays"
                ) from None
            except (OSError, EOFError, zipfile.BadZipFile):
                raise DataError(
                    f"{name}: {key} is damaged (cannot be decompressed); get the file again"
                ) from None
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
