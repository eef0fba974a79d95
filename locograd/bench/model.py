r"""What is benchmarked: the model, the step kinds, their settings and matmul FLOP counts.

The model is the released MNIST deep autoencoder, built by the function the
experiments use (:func:`locograd.experiments.models.mnist_autoencoder`),
784-1000-500-250-30 and mirror, tanh / identity code / sigmoid output, sigmoid
cross-entropy; ``--width`` is its ``width_multiplier`` (the hidden widths, not the
code layer).  ``--quick`` swaps in a tiny network of the same shape
(:data:`QUICK_SIZES`) so that the test suite can run the whole pipeline in
seconds; its transfers and loss are the ones
:func:`locograd.experiments.models.overridden_autoencoder` gives the MNIST model
with those widths (:func:`network`).

The two CNN kinds (:data:`CNN_KINDS`) step the example CNN instead
(:func:`cnn_network`, batch :data:`CNN_BATCH`): BackProp with SGD, and LocoProp-M as on the
autoencoder, its conv layers' local problems on their patch matrices (formed once per step).

Every optimizer is built as ``locograd train`` builds it:
:func:`locograd.experiments.optimizers.build` of
:func:`locograd.experiments.optimizers.settings` with the settings of
:func:`optimizer_settings` (BackProp: SGD at :data:`BACKPROP_LR`; LocoProp S and M:
``K`` = :data:`INNER_STEPS` steps of inner SGD at :data:`INNER_LR`, gamma
:data:`GAMMA`, scaled within the batch by the released factor
:math:`\max(1 - k/K, 0.25)` that ``build`` always applies; LocoProp-S exact with
eta :data:`EXACT_ETA`; K-FAC and Shampoo with their MNIST defaults).

FLOPs count the matrix products only (elementwise work is left out): a product
of ``(m, k)`` by ``(k, n)`` is :math:`2mkn`.  With :math:`S = \sum_m d_m d_{m+1}`
and :math:`S_1` the same sum without the first layer (whose input gradient no
step needs), per step of batch ``B``:

* BackProp: forward :math:`2BS`, backward :math:`2BS` (weight gradients) +
  :math:`2BS_1` (input gradients).
* LocoProp with ``K`` gradient steps per layer (S or M): forward :math:`2BS`,
  backward :math:`2BS_1` (only :math:`\partial L/\partial A`), then per inner step
  :math:`A = XW + b` and :math:`X^\top R` (:math:`4BS`); locograd's first inner
  step reuses the forward pass's :math:`A`, so it does :math:`(4K - 2)BS`, the
  PyTorch version :math:`4KBS`.  (The within-batch factor of the inner step size is a
  scalar: it changes no product.)
* LocoProp-S exact: forward, backward as above, per layer :math:`X^\top R`,
  the Gram matrix :math:`Bn^2` (:math:`n = d_{in} + 1`), a Cholesky
  factorisation :math:`n^3/3` and two triangular solves :math:`2n^2 d_{out}`.
* K-FAC (adaptive, as ``locograd train`` builds it): forward, full backward, a
  second (sampled-target) backward for :math:`\partial L/\partial A`; per layer
  the two factor products :math:`Bn^2 + Bd_{out}^2`, every step two triangular
  solves with each damped factor's Cholesky factor (:math:`2n^2 d_{out} +
  2d_{out}^2 n`); the quadratic model's two forward-mode passes (the new direction
  and the previous update, :math:`2BS + 2BS_1` each); and every ``update_every``
  steps the factorisations (:math:`n^3/3 + d_{out}^3/3`) and the forward pass of the
  damping rule's loss, amortised.
* Shampoo: forward, full backward; per layer :math:`GG^\top`, :math:`G^\top G`
  (:math:`d_{in}^2 d_{out} + d_{in} d_{out}^2`), :math:`L^{-1/4} G R^{-1/4}`
  (:math:`2d_{in}^2 d_{out} + 2 d_{in} d_{out}^2`) and, every ``update_every``
  steps, two symmetric eigendecompositions counted as :math:`9n^3` each (Golub &
  Van Loan's estimate for the symmetric QR algorithm with vectors) plus
  :math:`2n^3` to rebuild each root, amortised over the period.

A product of a matrix with its own transpose (:math:`X^\top X`, :math:`GG^\top`)
is counted at half price, :math:`mk^2` for :math:`(k, m) @ (m, k)`: NumPy and
PyTorch compute only one triangle (BLAS ``syrk``).  The factorisation counts
are the textbook leading terms, so the "fraction of the matmul rate" of K-FAC,
Shampoo and LocoProp-S exact is an estimate; for those kinds, and for every
kind whose cost repeats over a period (K-FAC, Shampoo), the benchmark reports
the mean over whole periods rather than the median.

>>> flops("backprop", [784, 1000, 500, 250, 30, 250, 500, 1000, 784], 1000) / 1e9
15.43
"""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from locograd.nn import MLP, Sequential

KINDS: tuple[str, ...] = (
    "backprop",
    "locoprop_s",
    "locoprop_s_exact",
    "locoprop_m",
    "kfac",
    "shampoo",
    "cnn_backprop",
    "cnn_locoprop_m",
)
"""Every step kind, in table order."""

CNN_KINDS: tuple[str, ...] = ("cnn_backprop", "cnn_locoprop_m")
"""The step kinds on the benchmark CNN (:func:`cnn_network`) instead of the autoencoder."""

TORCH_KINDS: tuple[str, ...] = ("backprop", "locoprop_m", *CNN_KINDS)
"""The step kinds that also have a PyTorch implementation."""

CNN_BATCH = 128
"""The CNN kinds' batch size (``--quick``: :data:`CNN_QUICK_BATCH`)."""

CNN_QUICK_BATCH = 8

CNN_CLASSES = 10

LAYER_PARALLEL: tuple[str, ...] = ("locoprop_s", "locoprop_s_exact", "locoprop_m", "cnn_locoprop_m")
"""Kinds whose per-layer solves ``--layer-workers`` runs on threads (``LocoProp(workers=...)``)."""


def blas_threads(kind: str, threads: int, layer_workers: int) -> int:
    """BLAS threads of a locograd step: ``threads`` shared by the layer workers of a LocoProp kind.

    The elementwise threads of ``--elementwise-threads`` are divided the same way.

    >>> blas_threads("locoprop_m", 2, 2), blas_threads("backprop", 2, 2)
    (1, 2)
    """
    return max(1, threads // layer_workers) if kind in LAYER_PARALLEL else threads


LABELS: dict[str, str] = {
    "backprop": "BackProp (SGD)",
    "locoprop_s": "LocoProp-S K=10 GD",
    "locoprop_s_exact": "LocoProp-S exact",
    "locoprop_m": "LocoProp-M K=10 SGD",
    "kfac": "K-FAC (every 5)",
    "shampoo": "Shampoo (every 10)",
    "cnn_backprop": "CNN BackProp (SGD)",
    "cnn_locoprop_m": "CNN LocoProp-M K=10 SGD",
}

QUICK_SIZES: list[int] = [48, 40, 20, 10, 4, 10, 20, 40, 48]
"""The tiny stand-in of ``--quick``: the autoencoder's shape at about 1/25 of its widths."""

GAMMA = 10.0
"""Target step of every LocoProp kind (the released value)."""

INNER_STEPS = 10
"""``K``, the inner steps of the LocoProp gradient kinds (the released value)."""

INNER_LR = 1e-4
"""Base inner SGD step size of the LocoProp gradient kinds, before the within-batch factor
(small: the data are random, only time matters)."""

EXACT_ETA = 1.0
"""Proximal weight of LocoProp-S exact."""

BACKPROP_LR = 1e-2
"""SGD learning rate of the BackProp step."""

UPDATE_EVERY: dict[str, int] = {"kfac": 5, "shampoo": 10}
"""K-FAC's and Shampoo's refresh periods (``locograd train``'s)."""

PERIODIC: tuple[str, ...] = tuple(UPDATE_EVERY)
"""Kinds whose cost repeats over ``UPDATE_EVERY[kind]`` steps: their time is the mean over whole periods."""


class Setup(NamedTuple):
    """One benchmark configuration.

    Attributes:
        sizes: layer widths ``[d_0, ..., d_M]``.
        batch: ``B``.
        width: the width multiplier the sizes came from (:func:`network`).
    """

    sizes: list[int]
    batch: int
    width: int


def mnist_sizes(width: int) -> list[int]:
    """The released autoencoder's widths with the hidden layers scaled by ``width``."""
    return list(network(width).sizes)


def quick_sizes(width: int = 1) -> list[int]:
    """``--quick``'s widths: :data:`QUICK_SIZES` with the hidden layers (not the code layer) scaled by ``width``.

    >>> quick_sizes(2)
    [48, 80, 40, 20, 4, 20, 40, 80, 48]
    """
    code = len(QUICK_SIZES) // 2
    return [d if m in (0, code, len(QUICK_SIZES) - 1) else d * width for m, d in enumerate(QUICK_SIZES)]


def network(width: int = 1, quick: bool = False) -> MLP:
    """The benchmarked network: the released autoencoder with ``width_multiplier=width``, or ``--quick``'s.

    Not quick: :func:`locograd.experiments.models.mnist_autoencoder` itself.  Quick: an
    :class:`~locograd.MLP` of :func:`quick_sizes`, its transfers and loss those that
    :func:`locograd.experiments.models.overridden_autoencoder` gives the MNIST model with the same
    encoder widths (tanh hidden units, a linear code layer, sigmoid output and sigmoid
    cross-entropy), so that the rule lives in one place; only the input width differs.

    >>> net = network(quick=True)
    >>> net.sizes == QUICK_SIZES, [t.name for t in net.transfers][2:5], net.loss_fn.name
    (True, ['tanh', 'identity', 'tanh'], 'sigmoid_cross_entropy')
    """
    from locograd.experiments import models
    from locograd.nn import MLP

    if not quick:
        return models.mnist_autoencoder(width)
    sizes = quick_sizes(width)
    shaped = models.overridden_autoencoder("mnist", widths=sizes[1 : len(sizes) // 2 + 1])
    return MLP(sizes, [t.name for t in shaped.transfers], shaped.loss_fn.name)


def cnn_network(quick: bool = False) -> Sequential:
    """The benchmarked CNN: :func:`locograd.experiments.models.cnn` on 28x28x1 images and 10 classes
    (relu; conv 3x3x32, pool, conv 3x3x64, pool, dense 128, softmax); ``--quick``: 8x8 images and
    widths 4, 4, 8.

    >>> [type(layer).__name__ for layer in cnn_network().layers]
    ['Conv2D', 'MaxPool2D', 'Conv2D', 'MaxPool2D', 'Flatten', 'Dense', 'Dense']
    """
    from locograd.experiments import models

    if quick:
        return models.cnn((8, 8, 1), CNN_CLASSES, widths=[4, 4, 8])
    return models.cnn((28, 28, 1), CNN_CLASSES)


def batch_of(kind: str, batch: int, quick: bool = False) -> int:
    """The batch size a step kind runs at: ``batch`` (the autoencoder's), or the CNN's own."""
    if kind in CNN_KINDS:
        return CNN_QUICK_BATCH if quick else CNN_BATCH
    return batch


def cnn_products(batch: int, quick: bool = False) -> list[tuple[str, int, int, int]]:
    r"""Every ``(product, rows, d_in, d_out)`` of one CNN forward/backward pass on its linear view.

    A weight layer's design has ``rows`` = ``B`` times its output positions (``B`` for a dense
    layer) and ``d_in`` = ``kh*kw*c_in`` (a patch row) or the input width; its products are a
    dense layer's (:data:`PRODUCTS`), each :math:`2 \cdot rows \cdot d_{in} d_{out}`.  The first
    layer's input gradient is not needed.

    >>> cnn_products(2)[:3]
    [('X @ W', 1568, 9, 32), ('X.T @ G', 1568, 9, 32), ('X @ W', 392, 288, 64)]
    """
    net = cnn_network(quick)
    out = []
    for k, m in enumerate(net.weight_layers):
        d_in, d_out = net.layers[m].matrix_shape  # type: ignore[attr-defined]
        rows = batch * math.prod(net.shapes[m + 1][:-1])
        out += [(p, rows, d_in, d_out) for p in PRODUCTS if k > 0 or p != "G @ W.T"]
    return out


def optimizer_settings(kind: str) -> dict[str, Any]:
    """The resolved settings of ``kind``'s optimizer: :func:`locograd.experiments.optimizers.settings` on MNIST.

    :func:`locograd.experiments.optimizers.build` turns them into the optimizer (see the module
    docstring for what each kind sets; everything else is ``locograd train``'s default).

    >>> s = optimizer_settings("locoprop_m")
    >>> s["optimizer"], s["inner"], s["lr"], s["gamma"], s["steps"], s["solver"]
    ('locoprop-m', 'sgd', 0.0001, 10.0, 10, 'gd')
    """
    from locograd.experiments.optimizers import settings

    if kind in ("backprop", "cnn_backprop"):
        return settings("sgd", "mnist", lr=BACKPROP_LR)
    if kind in ("locoprop_s", "locoprop_m", "cnn_locoprop_m"):
        return settings(
            f"locoprop-{kind[-1]}", "mnist", lr=INNER_LR, gamma=GAMMA, steps=INNER_STEPS, inner="sgd"
        )
    if kind == "locoprop_s_exact":
        return settings("locoprop-s", "mnist", gamma=GAMMA, eta=EXACT_ETA, solver="exact")
    if kind in PERIODIC:
        return settings(kind, "mnist")
    raise ValueError(f"kind: expected one of {KINDS}, got {kind!r}")


def _layers(sizes: list[int]) -> list[tuple[int, int]]:
    return list(itertools.pairwise(sizes))


def flops(kind: str, sizes: list[int], batch: int, lib: str = "locograd", quick: bool = False) -> float:
    """Matmul FLOPs of one step of ``kind`` (see the module docstring); ``lib`` is ``"locograd"`` or ``"torch"``.

    A CNN kind counts the products of :func:`cnn_products` at ``batch`` (``sizes`` unused) as the
    dense kinds count theirs: BackProp all of them, LocoProp-M the forward products, the input
    gradients and ``4K - 2`` (PyTorch: ``4K``) products per weight layer.
    """
    if kind in CNN_KINDS:
        products = cnn_products(batch, quick)
        every = sum(2.0 * r * i * o for _, r, i, o in products)
        if kind == "cnn_backprop":
            return every
        forward = sum(2.0 * r * i * o for p, r, i, o in products if p == "X @ W")
        input_grads = sum(2.0 * r * i * o for p, r, i, o in products if p == "G @ W.T")
        return forward + input_grads + (2 * INNER_STEPS - (0 if lib == "torch" else 1)) * forward
    B, layers = batch, _layers(sizes)
    S = sum(i * o for i, o in layers)
    S1 = S - layers[0][0] * layers[0][1]
    forward, input_grads, weight_grads = 2.0 * B * S, 2.0 * B * S1, 2.0 * B * S
    if kind == "backprop":
        return forward + weight_grads + input_grads
    if kind in ("locoprop_s", "locoprop_m"):
        inner = 4.0 * INNER_STEPS * B * S - (0.0 if lib == "torch" else 2.0 * B * S)
        return forward + input_grads + inner
    if kind == "locoprop_s_exact":
        total = forward + input_grads
        for d_in, d_out in layers:
            n = d_in + 1
            total += 2.0 * B * d_in * d_out + B * n * n + n**3 / 3 + 2.0 * n * n * d_out
        return total
    if kind == "kfac":
        period = UPDATE_EVERY["kfac"]
        total = forward + weight_grads + 2 * input_grads + 2 * (forward + input_grads) + forward / period
        for d_in, d_out in layers:
            n = d_in + 1
            total += B * (n * n + d_out * d_out)
            total += 2.0 * n * n * d_out + 2.0 * d_out * d_out * n + (n**3 + d_out**3) / 3 / period
        return total
    if kind == "shampoo":
        total = forward + weight_grads + input_grads
        for d_in, d_out in layers:
            total += 3.0 * d_in * d_in * d_out + 3.0 * d_in * d_out * d_out
            total += sum(11.0 * n**3 for n in (d_in, d_out)) / UPDATE_EVERY["shampoo"]
        return total
    raise ValueError(f"kind: expected one of {KINDS}, got {kind!r}")


PRODUCTS: tuple[str, ...] = ("X @ W", "X.T @ G", "G @ W.T")
"""The three products of a dense layer in a forward/backward pass, with the layouts a step uses
(``X`` ``(B, d_in)``, ``W`` ``(d_in, d_out)``, ``G`` ``(B, d_out)``, all row-major)."""


def matmul_shapes(sizes: list[int]) -> list[tuple[str, int, int]]:
    """Every ``(product, d_in, d_out)`` of the network; each costs :math:`2 B d_{in} d_{out}`."""
    return [(product, d_in, d_out) for d_in, d_out in _layers(sizes) for product in PRODUCTS]
