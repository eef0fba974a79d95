"""What a run learns: reconstruct the input (:class:`Autoencoder`) or predict labels (:class:`Classifier`).

A task builds the model for a data set, checks the data before any training, gives the training
loop each batch's targets, and evaluates a split (the loss, and the accuracy of a classifier).
``--model`` chooses it (:data:`TASKS`); never the data set's name.

>>> import numpy as np
>>> from locograd.data import Dataset
>>> x = np.random.default_rng(0).random((6, 4)).astype(np.float32)
>>> data = Dataset("toy", x, np.array([0, 1, 2, 0, 1, 2]), x[:3], np.array([0, 1, 2]), "by hand", (4,))
>>> net = CLASSIFIER.model(data, widths=[5])
>>> net.sizes, CLASSIFIER.metrics
([4, 5, 3], ('accuracy',))
>>> sorted(CLASSIFIER.evaluate(net, net.init(seed=0, dtype=np.float32), x, data.y_train))
['accuracy', 'loss']
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..backend import Array
from ..data import DataError, Dataset, dataset_key
from ..losses import SigmoidCrossEntropy
from ..nn import Conv2D, Params, Sequential
from ..validators import integer
from .models import classifier, cnn, overridden_autoencoder


class Task:
    """The protocol of a task; :class:`Autoencoder` and :class:`Classifier` implement it."""

    name: str = ""
    metrics: tuple[str, ...] = ()
    """What :meth:`evaluate` reports beside the loss (each becomes ``train_<m>`` and ``test_<m>`` in a row)."""

    def model(self, data: Dataset, hidden: str | None = None, widths: list[int] | None = None) -> Sequential:
        """The network this task trains on ``data`` (``hidden``, ``widths``: the overrides of ``--hidden``, ``--widths``)."""
        raise NotImplementedError

    def check(self, data: Dataset, net: Sequential) -> None:
        """Refuse data this task cannot train on, in one line naming the array, before any work."""
        raise NotImplementedError

    def targets(self, x: Array, y: Array | None) -> Array:
        """The targets of a batch of inputs ``x`` and labels ``y``."""
        raise NotImplementedError

    def evaluate(
        self, net: Sequential, params: Params, x: Array, y: Array | None, chunk: int | None = None
    ) -> dict[str, float]:
        """``{"loss": L, ...metrics}`` over every row of ``x``, in chunks of ``chunk`` rows (default :func:`chunk_rows`)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


MAX_CHUNK_ROWS = 2000
"""The most rows one evaluation pass takes at once."""
ACTIVATION_BUDGET = 256 * 2**20
"""The most bytes of activations (and a convolution's patches) one evaluation pass holds: 256 MiB."""


def chunk_rows(net: Sequential, itemsize: int) -> int:
    """Rows per evaluation pass: :data:`MAX_CHUNK_ROWS`, or fewer where one row's activations would
    pass :data:`ACTIVATION_BUDGET`: counted as twice every layer's output (a weight layer's
    pre-activation and output, a pooling's windows) plus a convolution's patch rows (a CNN on 28x28
    images: about 0.66 MB a row in float32, so 408 rows).

    >>> from locograd.experiments.models import cnn, mnist_autoencoder
    >>> chunk_rows(mnist_autoencoder(), 4), chunk_rows(cnn((28, 28, 1), 10), 4)
    (2000, 408)
    """
    values = 0
    for layer, out_shape in zip(net.layers, net.shapes[1:], strict=True):
        values += 2 * math.prod(out_shape)
        if isinstance(layer, Conv2D):
            values += math.prod(out_shape[:-1]) * layer.fan_in
    return max(1, min(MAX_CHUNK_ROWS, ACTIVATION_BUDGET // (values * itemsize)))


def _check_rows(x: Any, chunk: int | None, net: Sequential) -> int:
    chunk = chunk_rows(net, x.dtype.itemsize) if chunk is None and hasattr(x, "dtype") else chunk
    chunk = integer("chunk", chunk, minimum=1)
    if getattr(x, "ndim", 0) < 1 or x.shape[0] == 0:
        raise ValueError(
            f"x: expected at least one row to average the loss over, got shape {tuple(getattr(x, 'shape', ()))}"
        )
    return chunk


class Autoencoder(Task):
    """Reconstruct the input: the target is ``x``.  The model is the data set's own autoencoder."""

    name = "autoencoder"

    def model(self, data: Dataset, hidden: str | None = None, widths: list[int] | None = None) -> Sequential:
        """A named set's own autoencoder (CURVES' for CURVES); the MNIST autoencoder's layers on the
        data's width for a file or a :class:`~locograd.data.Dataset` of another name."""
        try:
            name: str | None = dataset_key(data.name)
        except DataError:
            name = None  # a Dataset made by hand, under a name of its own
        return overridden_autoencoder(name, hidden, widths, n_in=data.n_features)

    def check(self, data: Dataset, net: Sequential) -> None:
        """With a sigmoid cross-entropy, every value of both splits must lie in ``[0, 1]`` (a target is a probability)."""
        if not isinstance(net.loss_fn, SigmoidCrossEntropy):
            return
        for part in ("x_train", "x_test"):
            x = getattr(data, part)
            low, high = float(x.min()), float(x.max())
            if low < 0 or high > 1:
                raise DataError(
                    f"{data.name}: {part}: the autoencoder's sigmoid cross-entropy needs values in [0, 1], "
                    f"got values in [{low:g}, {high:g}]; scale the data to [0, 1]"
                )

    def targets(self, x: Array, y: Array | None) -> Array:
        return x

    def evaluate(
        self, net: Sequential, params: Params, x: Array, y: Array | None, chunk: int | None = None
    ) -> dict[str, float]:
        """The batch-mean loss over all rows, weighted by chunk size (the reconstruction's)."""
        chunk = _check_rows(x, chunk, net)
        total = 0.0
        for start in range(0, x.shape[0], chunk):
            xb = x[start : start + chunk]
            total += net.loss(params, xb, xb) * xb.shape[0]
        return {"loss": total / x.shape[0]}


class Classifier(Task):
    """Predict integer labels with softmax cross-entropy; reports the accuracy."""

    name = "classifier"
    metrics = ("accuracy",)

    def n_classes(self, data: Dataset) -> int:
        """The number of classes: one more than the largest training label."""
        if data.y_train is None or data.y_test is None:
            raise DataError(
                f"{data.name}: has no labels; a classifier needs y_train and y_test (integer labels)"
            )
        return int(data.y_train.max()) + 1

    def model(self, data: Dataset, hidden: str | None = None, widths: list[int] | None = None) -> Sequential:
        """An MLP from the data's width to its classes (:func:`~.models.classifier`)."""
        return classifier(data.n_features, self.n_classes(data), hidden, widths)

    def check(self, data: Dataset, net: Sequential) -> None:
        """Integer labels of both splits in ``[0, C)``, ``C`` the classes of ``y_train`` (the model's outputs)."""
        n = self.n_classes(data)
        for part in ("y_train", "y_test"):
            y = getattr(data, part)
            if not isinstance(y, np.ndarray) or y.dtype.kind not in "iu":
                got = y.dtype if isinstance(y, np.ndarray) else type(y).__name__
                raise DataError(f"{data.name}: {part}: expected integer labels, got {got}")
            low, high = int(y.min()), int(y.max())
            if low < 0 or high >= n:
                raise DataError(
                    f"{data.name}: {part}: labels must lie in [0, {n}) (the classes of y_train), "
                    f"got labels in [{low}, {high}]"
                )
        if net.shapes[-1] != (n,):
            raise DataError(
                f"{data.name}: y_train has {n} classes, the model has {net.shapes[-1][0]} outputs"
            )

    def targets(self, x: Array, y: Array | None) -> Array:
        assert y is not None  # check() made sure
        return y

    def evaluate(
        self, net: Sequential, params: Params, x: Array, y: Array | None, chunk: int | None = None
    ) -> dict[str, float]:
        """The mean loss and the accuracy over all rows (one forward pass per chunk)."""
        chunk = _check_rows(x, chunk, net)
        assert y is not None
        loss, correct = 0.0, 0.0
        for start in range(0, x.shape[0], chunk):
            xb, yb = x[start : start + chunk], y[start : start + chunk]
            a = net.forward(params, xb).pre[-1]
            loss += float(net.loss_fn.per_example(a, yb).sum())
            correct += float(net.loss_fn.metrics(a, yb)["accuracy"]) * xb.shape[0]
        return {"loss": loss / x.shape[0], "accuracy": correct / x.shape[0]}


class CNNClassifier(Classifier):
    """The classifier task with a CNN (:func:`~.models.cnn`) on the data's images, NHWC."""

    name = "cnn"

    def image_shape(self, data: Dataset) -> tuple[int, int, int]:
        """``(H, W, C)`` of one example: ``(H, W)`` images get one channel.

        Raises:
            DataError: flat examples (a CNN needs their image shape).
        """
        shape = tuple(data.image_shape)
        if len(shape) == 2:
            return (shape[0], shape[1], 1)
        if len(shape) == 3:
            return (shape[0], shape[1], shape[2])
        raise DataError(
            f"{data.name}: examples of shape {shape} are not images; a cnn needs x_train of shape (N, H, W) or (N, H, W, C)"
        )

    def model(self, data: Dataset, hidden: str | None = None, widths: list[int] | None = None) -> Sequential:
        """The CNN from the data's image shape to its classes."""
        return cnn(self.image_shape(data), self.n_classes(data), hidden, widths)


AUTOENCODER = Autoencoder()
CLASSIFIER = Classifier()
CNN = CNNClassifier()
TASKS: dict[str, Task] = {"autoencoder": AUTOENCODER, "classifier": CLASSIFIER, "cnn": CNN}
"""The tasks by their ``--model`` name."""
