"""The :class:`Dataset` record: train and test images as flat float32 rows in [0, 1].

>>> import numpy as np
>>> from locograd.data import Dataset
>>> x = np.zeros((3, 784), dtype=np.float32)
>>> ds = Dataset("toy", x, None, x[:2], None, source="made by hand")
>>> ds
Dataset(name='toy', x_train=(3, 784), x_test=(2, 784), labels=no, image_shape=(28, 28), source='made by hand')
>>> ds.n_train, ds.n_test, ds.n_features
(3, 2, 784)
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .errors import DataError


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """A data set split into train and test parts, images flattened row-major.

    Autoencoders reconstruct ``x``, so the labels are optional (``None`` for
    generated sets such as :func:`locograd.data.curves`).

    Attributes:
        name: The data set's name, e.g. ``"curves"`` or ``"fashion-mnist"``.
        x_train: Training examples flattened, shape ``(N, prod(image_shape))`` (``(N, 784)`` for
            28x28), float32 (images in [0, 1]) or, for a user's own float64 data, float64.
        y_train: Training labels, shape ``(N,)``, int64; or ``None``.
        x_test: Test examples, shape ``(M, prod(image_shape))``, of the dtype of ``x_train``.
        y_test: Test labels, shape ``(M,)``, int64; or ``None``.
        source: Where the data came from: a folder, a file, or ``"generated (seed 0)"``.
        image_shape: the shape of one example, ``(28, 28)`` by default (``(H, W)``, ``(H, W, C)``,
            or ``(D,)`` for flat rows); ``x_train[i].reshape(image_shape)`` is the i-th example.

    Raises:
        DataError: When the arrays do not fit together (wrong rank, dtype,
            width, or a label count that differs from the image count), or a
            split is empty (before, an empty test split went through and every
            evaluation divided by zero).
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray | None
    x_test: np.ndarray
    y_test: np.ndarray | None
    source: str
    image_shape: tuple[int, ...] = (28, 28)

    def __post_init__(self) -> None:
        width = int(np.prod(self.image_shape))
        for part in ("train", "test"):
            x = getattr(self, f"x_{part}")
            y = getattr(self, f"y_{part}")
            if (
                not isinstance(x, np.ndarray)
                or x.dtype not in (np.float32, np.float64)
                or x.ndim != 2
                or x.shape[1] != width
                or x.dtype != self.x_train.dtype
            ):
                got = f"{x.dtype} array of shape {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
                raise DataError(
                    f"{self.name}: x_{part} must be a float32 (or float64, like x_train) array of shape "
                    f"(N, {width}) for examples of shape {self.image_shape}, got a {got}; convert with "
                    "x.reshape(len(x), -1).astype(np.float32)"
                )
            if x.shape[0] == 0:
                raise DataError(
                    f"{self.name}: x_{part} has no rows; a data set needs at least one training and one "
                    "test example (the loss is a mean over the rows)"
                )
            if y is not None and (not isinstance(y, np.ndarray) or y.shape != (x.shape[0],)):
                got = str(y.shape) if isinstance(y, np.ndarray) else type(y).__name__
                raise DataError(
                    f"{self.name}: y_{part} must be None or an array of shape ({x.shape[0]},) "
                    f"(one label per image in x_{part}), got {got}"
                )

    @property
    def n_train(self) -> int:
        """Number of training examples ``N``."""
        return int(self.x_train.shape[0])

    @property
    def n_test(self) -> int:
        """Number of test examples ``M``."""
        return int(self.x_test.shape[0])

    @property
    def n_features(self) -> int:
        """Values per example, ``prod(image_shape)`` (784 for 28x28)."""
        return int(self.x_train.shape[1])

    @property
    def has_labels(self) -> bool:
        """Whether both splits carry labels."""
        return self.y_train is not None and self.y_test is not None

    def __repr__(self) -> str:
        labels = "yes" if self.has_labels else "no"
        return (
            f"Dataset(name={self.name!r}, x_train={self.x_train.shape}, x_test={self.x_test.shape}, "
            f"labels={labels}, image_shape={self.image_shape}, source={self.source!r})"
        )
