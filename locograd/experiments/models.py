"""The classic deep autoencoders (Hinton & Salakhutdinov 2006), as :class:`~locograd.MLP` s.

* MNIST (and Fashion-MNIST): 784-1000-500-250-30-250-500-1000-784, tanh
  everywhere except the linear 30-unit code layer and the sigmoid output,
  sigmoid cross-entropy summed over pixels (the released LocoProp notebook's model).
* CURVES: 784-400-200-100-50-25-6 and its mirror, logistic hidden units, a
  linear code layer, sigmoid output with sigmoid cross-entropy.
* Your own data (a ``.npz`` file): the MNIST autoencoder's layers on its ``D`` inputs.

And the classifier :func:`classifier`: the MNIST autoencoder's encoder, tanh 1000-500-250, then
a softmax over the classes, with softmax cross-entropy.

>>> net = autoencoder("curves")
>>> net.sizes[:7], [t.name for t in net.transfers][5:7]
([784, 400, 200, 100, 50, 25, 6], ['identity', 'sigmoid'])
"""

from __future__ import annotations

from typing import NamedTuple

from ..data.registry import canonical_name, is_file_name
from ..nn import MLP, Conv2D, Dense, Flatten, MaxPool2D, Sequential
from ..optim.presets import OFFICIAL_RUN

MNIST_SIZES = [784, 1000, 500, 250, 30, 250, 500, 1000, 784]
CURVES_SIZES = [784, 400, 200, 100, 50, 25, 6, 25, 50, 100, 200, 400, 784]


class Layout(NamedTuple):
    """An autoencoder's widths ``[d_0, ..., d_M]`` and its ``M`` transfer names (output sigmoid), built by no MLP."""

    sizes: list[int]
    activations: list[str]


def mnist_layout(width_multiplier: int = 1, n_in: int = 784) -> Layout:
    """The released deep autoencoder's layout on ``n_in`` inputs; ``width_multiplier`` scales the hidden widths (not the code layer)."""
    sizes = [n_in] + [d * width_multiplier for d in OFFICIAL_RUN.widths] + [OFFICIAL_RUN.code]
    return Layout(sizes + sizes[-2::-1], ["tanh"] * 3 + ["identity"] + ["tanh"] * 3 + ["sigmoid"])


CURVES_LAYOUT = Layout(CURVES_SIZES, ["sigmoid"] * 5 + ["identity"] + ["sigmoid"] * 6)
"""The CURVES deep autoencoder: logistic hidden units, linear 6-unit code, sigmoid output."""


def mnist_autoencoder(width_multiplier: int = 1, n_in: int = 784) -> MLP:
    """The released deep autoencoder on ``n_in`` inputs; ``width_multiplier`` scales the hidden widths (not the code layer)."""
    return MLP(*mnist_layout(width_multiplier, n_in), "sigmoid_cross_entropy")


def curves_autoencoder() -> MLP:
    """The CURVES deep autoencoder: logistic hidden units, linear 6-unit code, sigmoid output."""
    return MLP(*CURVES_LAYOUT, "sigmoid_cross_entropy")


def _base_layout(dataset: str | None, n_in: int) -> Layout:
    if dataset is None or is_file_name(dataset):
        return mnist_layout(n_in=n_in)
    return CURVES_LAYOUT if canonical_name(dataset) == "curves" else mnist_layout()


def autoencoder(dataset: str | None, n_in: int = 784) -> MLP:
    """The autoencoder used for ``dataset`` (CURVES' own, the MNIST one for any MNIST-format set or file).

    ``dataset`` ``None`` (data of your own, not a named set) or a ``.npz`` path: the MNIST
    autoencoder's layers on ``n_in`` inputs (the named sets have 784).  A name is put in its
    canonical spelling first (:func:`locograd.data.registry.canonical_name`), so ``"CURVES"``
    gets the CURVES network.

    Raises:
        DataError: an unknown data set name (a ``ValueError``; the message lists the valid ones).
    """
    return MLP(*_base_layout(dataset, n_in), "sigmoid_cross_entropy")


HIDDEN_TRANSFERS = ("sigmoid", "tanh", "relu", "identity")
"""Hidden transfers a model override may choose (the code layer stays linear, the output sigmoid)."""


def autoencoder_layout(
    dataset: str | None, hidden: str | None = None, widths: list[int] | None = None, n_in: int = 784
) -> Layout:
    """The layout of ``dataset``'s autoencoder with its hidden transfer and/or encoder widths replaced.

    Args:
        dataset: the data set (picks the base model: :func:`autoencoder`).
        hidden: the transfer of every hidden layer except the code layer (``None``: the base's).
        widths: the encoder's widths after the input, the last one the linear code layer; the
            decoder mirrors them (``[32, 8]`` gives 784-32-8-32-784).  ``None``: the base's.
        n_in: the input width of a ``.npz`` file's examples.

    >>> autoencoder_layout("curves", hidden="relu", widths=[32, 8])
    Layout(sizes=[784, 32, 8, 32, 784], activations=['relu', 'identity', 'relu', 'sigmoid'])
    """
    base = _base_layout(dataset, n_in)
    if hidden is None and widths is None:
        return base
    code = len(base.sizes) // 2  # index of the code layer in sizes
    enc = list(base.sizes[1 : code + 1]) if widths is None else [int(w) for w in widths]
    if not enc or any(w < 1 for w in enc):
        raise ValueError(f"widths: expected a non-empty list of integers >= 1, got {widths!r}")
    if hidden is not None and hidden not in HIDDEN_TRANSFERS:
        raise ValueError(f"hidden: unknown name {hidden!r}; valid names are {', '.join(HIDDEN_TRANSFERS)}")
    act = base.activations[0] if hidden is None else hidden
    n_in = base.sizes[0]
    sizes = [n_in, *enc, *enc[-2::-1], n_in]
    return Layout(sizes, [act] * (len(enc) - 1) + ["identity"] + [act] * (len(enc) - 1) + ["sigmoid"])


def overridden_autoencoder(
    dataset: str | None, hidden: str | None = None, widths: list[int] | None = None, n_in: int = 784
) -> MLP:
    """The autoencoder of :func:`autoencoder_layout` (the same arguments), built.

    >>> net = overridden_autoencoder("curves", hidden="relu", widths=[32, 8])
    >>> net.sizes, [t.name for t in net.transfers]
    ([784, 32, 8, 32, 784], ['relu', 'identity', 'relu', 'sigmoid'])
    """
    return MLP(*autoencoder_layout(dataset, hidden, widths, n_in), "sigmoid_cross_entropy")


CLASSIFIER_WIDTHS = (1000, 500, 250)
"""The classifier's hidden widths: the MNIST autoencoder's encoder."""


def classifier_layout(
    n_in: int, n_classes: int, hidden: str | None = None, widths: list[int] | None = None
) -> Layout:
    """The layout of :func:`classifier` (the same arguments), checked, built by no MLP.

    Raises:
        ValueError: widths not >= 1, an unknown hidden transfer, or fewer than 2 classes.
    """
    hidden_widths = list(CLASSIFIER_WIDTHS) if widths is None else [int(w) for w in widths]
    if any(w < 1 for w in hidden_widths):
        raise ValueError(f"widths: expected a list of integers >= 1, got {widths!r}")
    if hidden is not None and hidden not in HIDDEN_TRANSFERS:
        raise ValueError(f"hidden: unknown name {hidden!r}; valid names are {', '.join(HIDDEN_TRANSFERS)}")
    if n_classes < 2:
        raise ValueError(f"n_classes: a classifier needs at least 2 classes, got {n_classes}")
    act = hidden or "tanh"
    return Layout([n_in, *hidden_widths, n_classes], [act] * len(hidden_widths) + ["softmax"])


def classifier(n_in: int, n_classes: int, hidden: str | None = None, widths: list[int] | None = None) -> MLP:
    """An MLP classifier: ``n_in`` inputs, hidden layers of ``widths`` (default 1000-500-250) with the
    transfer ``hidden`` (default tanh), and a softmax over ``n_classes`` with softmax cross-entropy.

    >>> net = classifier(784, 10)
    >>> net.sizes, [t.name for t in net.transfers], net.loss_fn.name
    ([784, 1000, 500, 250, 10], ['tanh', 'tanh', 'tanh', 'softmax'], 'softmax_cross_entropy')
    """
    return MLP(*classifier_layout(n_in, n_classes, hidden, widths), "softmax_cross_entropy")


CNN_WIDTHS = (32, 64, 128)
"""The CNN's widths: two convolutions' channels, then its dense hidden layer."""


def check_cnn_overrides(hidden: str | None, widths: list[int] | None) -> tuple[int, int, int]:
    """The CNN's three widths (``widths`` or :data:`CNN_WIDTHS`), with ``hidden`` checked; builds nothing.

    Raises:
        ValueError: not three widths >= 1, or an unknown hidden transfer.
    """
    if widths is not None and (len(widths) != 3 or any(int(w) < 1 for w in widths)):
        raise ValueError(f"widths: expected three integers >= 1 (conv, conv, dense), got {widths!r}")
    if hidden is not None and hidden not in HIDDEN_TRANSFERS:
        raise ValueError(f"hidden: unknown name {hidden!r}; valid names are {', '.join(HIDDEN_TRANSFERS)}")
    c1, c2, d = CNN_WIDTHS if widths is None else [int(w) for w in widths]
    return c1, c2, d


def cnn(
    image_shape: tuple[int, int, int],
    n_classes: int,
    hidden: str | None = None,
    widths: list[int] | None = None,
) -> Sequential:
    """A small CNN classifier for NHWC images ``(H, W, C)``: conv 3x3 (``widths[0]`` channels, "same")
    -> max-pool 2 -> conv 3x3 (``widths[1]``, "same") -> max-pool 2 -> dense ``widths[2]`` -> a softmax over
    ``n_classes``, with softmax cross-entropy; hidden transfer ``hidden`` (default relu).

    >>> net = cnn((28, 28, 1), 10)
    >>> net.shapes[1:5], net.shapes[-1]
    ([(28, 28, 32), (14, 14, 32), (14, 14, 64), (7, 7, 64)], (10,))

    Raises:
        ValueError: not three widths >= 1, an unknown hidden transfer, fewer than 2 classes, or images
            too small for two poolings.
    """
    c1, c2, d = check_cnn_overrides(hidden, widths)
    if n_classes < 2:
        raise ValueError(f"n_classes: a classifier needs at least 2 classes, got {n_classes}")
    act = hidden or "relu"
    H, W, C = image_shape
    if H < 4 or W < 4:
        raise ValueError(
            f"image_shape: the CNN pools twice by 2; expected images of at least 4 x 4, got {image_shape}"
        )
    flat = (H // 2 // 2) * (W // 2 // 2) * c2
    layers = [
        Conv2D(C, c1, 3, padding="same", transfer=act),
        MaxPool2D(2),
        Conv2D(c1, c2, 3, padding="same", transfer=act),
        MaxPool2D(2),
        Flatten(),
        Dense(flat, d, act),
        Dense(d, n_classes, "softmax"),
    ]
    return Sequential(layers, "softmax_cross_entropy", in_shape=image_shape)
