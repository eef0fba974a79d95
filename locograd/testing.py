r"""Gradient checkers, shipped as library code.

* :func:`numerical_grad`: central differences of a scalar function,
  :math:`\partial f/\partial x_i \approx (f(x + \epsilon e_i) - f(x - \epsilon e_i)) / 2\epsilon`,
  one pair of evaluations per coordinate (small inputs only).
* :func:`check_vjp`: the dot-product test.  For random directions ``v`` (input)
  and ``u`` (output), a correct vector-Jacobian product satisfies

  .. math:: \langle u, J v\rangle = \langle J^\top u, v\rangle,
     \qquad J v \approx \frac{f(x + \epsilon v) - f(x - \epsilon v)}{2\epsilon},

  which costs two forward passes whatever the size.  Use float64: the central
  difference has error :math:`O(\epsilon^2)` from truncation plus
  :math:`O(\varepsilon_{\mathrm{mach}}/\epsilon)` from rounding, about
  :math:`10^{-10}` relative at :math:`\epsilon = 10^{-6}` in float64, but only
  :math:`10^{-2}` in float32.

* :func:`gauss_newton_block`: one weight layer's exact Gauss-Newton block of a squared-error
  network that is linear in that layer's weights, by central differences.

Inputs may be arrays or nested lists/dicts of arrays (e.g. an MLP's params).

Non-finite values never pass: a NaN or infinity in a point or a compared value is a
:class:`~locograd.errors.NonFiniteError` (a meaningless input, refused before any
work), and a function or VJP that gives NaN or infinity makes :func:`check_vjp` fail
with an ``AssertionError`` (a failed check, like a wrong gradient), so that NaN never
compares as "no error" (every comparison with NaN is false).

>>> import numpy as np
>>> from locograd.testing import check_vjp
>>> x = np.linspace(-1.0, 1.0, 5)
>>> err = check_vjp(np.tanh, lambda x, u: u * (1 - np.tanh(x) ** 2), x)
>>> err < 1e-8
True
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from .backend import Array, array_namespace, to_numpy, tree_leaves, tree_map
from .errors import NonFiniteError
from .validators import count_nonfinite, finite, float_tree, integer, number, same_structure


def _vdot(pairs: list[tuple[Any, Any]]) -> float:
    """Sum of elementwise products over leaves paired by :func:`~locograd.validators.same_structure`."""
    return float(sum(float((x * y).sum()) for x, y in pairs))


def _scalar(value: Any, where: str) -> float:
    """``fn``'s value as a float: a real Python number or a 0-d/one-element floating array."""
    size = getattr(value, "size", None)
    kind = getattr(getattr(value, "dtype", None), "kind", None)
    if isinstance(value, bool) or not (
        isinstance(value, int | float) or (size == 1 and kind in ("f", "i", "u"))
    ):
        shape, dtype = getattr(value, "shape", None), getattr(value, "dtype", None)
        shown = f"shape {tuple(shape)} dtype {dtype}" if shape is not None else repr(value)
        raise TypeError(
            f"fn: expected a real scalar (float or 0-d array) at {where}, got {type(value).__name__} {shown}"
        )
    return float(value)


def _float_output(value: Any, what: str) -> Any:
    """``fn``'s output if it is a floating array (or NumPy floating scalar); a plain error otherwise."""
    if not isinstance(value, np.generic) and not hasattr(value, "__array_namespace__"):
        raise TypeError(
            f"check_vjp: {what} must be a floating numpy.ndarray or cupy.ndarray, got {type(value).__name__}"
        )
    if value.dtype.kind != "f":
        raise TypeError(f"check_vjp: {what} must be floating, got dtype {value.dtype}")
    return value


def numerical_grad(fn: Callable[[Any], Any], x: Any, eps: float = 1e-6) -> Any:
    r"""Central-difference gradient of a scalar ``fn`` at ``x`` (array or tree).

    Args:
        fn: maps ``x`` to a scalar (float or 0-d array).
        x: floating array(s); not modified.
        eps: step > 0; ``1e-6`` suits float64 inputs of order one.

    Returns:
        The gradient, same structure, shapes and dtypes as ``x``.

    Raises:
        NonFiniteError: ``x`` holds NaN or infinity, or ``fn`` is not finite at some
            ``x +- eps e_i`` (the message names the leaf and the index): a difference of
            non-finite values is no derivative.
        TypeError: a leaf of ``x`` is not floating.
    """
    eps = number("eps", eps, low=0, low_open=True)
    float_tree("x", x)
    finite("x", x)

    def evaluate(leaves: list[Array], index: int, i: int, sign: str) -> float:
        value = _scalar(fn(_rebuild(x, leaves)), f"x {sign} eps e_i")
        if not math.isfinite(value):
            raise NonFiniteError(
                f"fn: expected a finite value at x {sign} eps e_i (leaf {index}, flat index {i}), got {value!r}"
            )
        return value

    def grad_leaf_at(index: int) -> Array:
        leaves = [leaf.copy() for leaf in tree_leaves(x)]
        leaf = leaves[index]
        if leaf.dtype.kind != "f":
            raise TypeError(f"x: expected floating arrays, got dtype {leaf.dtype}")
        flat = leaf.reshape(-1)
        out = np.zeros(flat.shape[0])
        for i in range(flat.shape[0]):
            orig = flat[i].copy()
            flat[i] = orig + eps
            plus = evaluate(leaves, index, i, "+")
            flat[i] = orig - eps
            minus = evaluate(leaves, index, i, "-")
            flat[i] = orig
            out[i] = (plus - minus) / (2 * eps)
        xp = array_namespace(leaf)
        return xp.asarray(out.reshape(leaf.shape), dtype=leaf.dtype)

    grads = [grad_leaf_at(i) for i in range(len(tree_leaves(x)))]
    return _rebuild(x, grads)


def _rebuild(template: Any, leaves: list[Array]) -> Any:
    it = iter(leaves)
    return tree_map(lambda _: next(it), template)


def check_vjp(
    fn: Callable[[Any], Array],
    vjp: Callable[[Any, Array], Any],
    x: Any,
    *,
    num_directions: int = 3,
    eps: float = 1e-6,
    rtol: float = 1e-6,
    seed: int = 0,
) -> float:
    r"""Dot-product test of a vector-Jacobian product along random directions.

    Args:
        fn: maps ``x`` (array or tree) to an array of any shape.
        vjp: ``vjp(x, u)`` returns :math:`J^\top u`, same structure as ``x``.
        x: the point, floating (use float64).
        num_directions: how many random ``(u, v)`` pairs to test.
        eps: central-difference step along ``v`` (``v`` has unit RMS entries).
        rtol: allowed relative error between :math:`\langle u, Jv\rangle` and
            :math:`\langle J^\top u, v\rangle`, on top of the rounding noise of
            the central difference, :math:`8\varepsilon_{\mathrm{mach}}
            \sum|u \odot f(x)| / 2\epsilon` (which matters only when the
            directional derivative is tiny next to the function's values).
        seed: seed for the directions.

    Returns:
        The largest relative error seen (always finite).

    Raises:
        NonFiniteError: ``x`` holds NaN or infinity (there is nothing to check at such a point).
        AssertionError: ``fn`` (at ``x`` or ``x +- eps v``) or ``vjp`` gives a non-finite
            value, ``vjp`` returns leaves of other shapes than ``x``, or some direction's
            relative error exceeds ``rtol``.
        ValueError: a bad ``num_directions``, ``eps``, ``rtol`` or ``seed``, or an ``x`` with no
            values (nothing would be checked).
        TypeError: ``x`` is not a tree of floating arrays, or ``fn`` does not return one.
    """
    num_directions = integer("num_directions", num_directions, minimum=1)
    eps = number("eps", eps, low=0, low_open=True)
    rtol = number("rtol", rtol, low=0)
    seed = integer("seed", seed, minimum=0)
    float_tree("x", x)
    finite("x", x)
    if sum(int(np.prod(np.shape(leaf))) for leaf in tree_leaves(x)) == 0:
        raise ValueError(
            "x: expected at least one value to perturb, got no values (nothing would be checked)"
        )
    rng = np.random.default_rng(seed)
    y0 = _finite_value(_float_output(fn(x), "fn(x)"), "fn(x)")
    if int(np.prod(np.shape(y0))) == 0:
        raise AssertionError("check_vjp: fn(x) has no values, so nothing was checked")
    worst = 0.0
    for _ in range(num_directions):
        v = tree_map(
            lambda leaf: array_namespace(leaf).asarray(rng.standard_normal(leaf.shape), dtype=leaf.dtype), x
        )
        u = array_namespace(y0).asarray(rng.standard_normal(np.shape(y0)), dtype=y0.dtype)
        plus = _finite_value(fn(tree_map(lambda a, d: a + eps * d, x, v)), "fn(x + eps v)")
        minus = _finite_value(fn(tree_map(lambda a, d: a - eps * d, x, v)), "fn(x - eps v)")
        if np.shape(plus) != np.shape(y0) or np.shape(minus) != np.shape(y0):
            raise AssertionError(
                f"check_vjp: fn(x +- eps v) has shape {np.shape(plus)}, {np.shape(minus)}, "
                f"fn(x) {np.shape(y0)}"
            )
        forward = float((u * (plus - minus)).sum()) / (2 * eps)
        pulled = vjp(x, u)
        pairs = _check_like_x(pulled, v)
        _finite_value(pulled, "vjp(x, u)")
        backward = _vdot(pairs)
        noise = 8 * float(np.finfo(y0.dtype).eps) * float(abs(u * y0).sum()) / (2 * eps)
        if not (math.isfinite(forward) and math.isfinite(backward) and math.isfinite(noise)):
            raise AssertionError(
                f"check_vjp: <u, Jv> = {forward!r} and <J^T u, v> = {backward!r}: an inner product "
                "overflowed, so nothing was checked"
            )
        err = abs(forward - backward) / max(abs(forward), abs(backward), 1e-300)
        worst = max(worst, err)
        if abs(forward - backward) > rtol * max(abs(forward), abs(backward)) + noise:
            raise AssertionError(
                f"check_vjp: <u, Jv> = {forward!r} by central differences but "
                f"<J^T u, v> = {backward!r} (relative error {err:.3e} > rtol {rtol:.1e}, "
                f"rounding noise {noise:.1e})"
            )
    return worst


def _finite_value(value: Any, what: str) -> Any:
    """``value`` unchanged if finite; else the check fails (AssertionError naming ``what``)."""
    nan, inf, size = count_nonfinite(value)
    if nan or inf:
        raise AssertionError(
            f"check_vjp: {what} holds {nan} NaN and {inf} infinities among {size} values; "
            "a non-finite value is never a correct derivative"
        )
    return value


def _check_like_x(pulled: Any, like_x: Any) -> list[tuple[Any, Any]]:
    """The VJP's leaves paired with those of ``like_x`` (``x``'s structure) BY KEY.

    The VJP must have ``x``'s structure: its dict keys (paired by key, not by insertion
    order, so ``{"b": .., "a": ..}`` is not read as ``{"a": .., "b": ..}``), list lengths
    and shapes (never broadcast into the inner product); otherwise the check fails.
    """
    got, want = tree_leaves(pulled), tree_leaves(like_x)
    if len(got) != len(want):
        raise AssertionError(f"check_vjp: vjp(x, u) has {len(got)} arrays, x has {len(want)}")
    try:
        pairs = same_structure("vjp(x, u)", pulled, like_x, check_shapes=False)
    except ValueError as error:
        raise AssertionError(f"check_vjp: {error} (the structure of x)") from None
    for i, (g, w) in enumerate(pairs):
        if np.shape(g) != np.shape(w):
            raise AssertionError(
                f"check_vjp: vjp(x, u) leaf {i} has shape {np.shape(g)}, expected {np.shape(w)} like x"
            )
    return pairs


def relative_error(a: Any, b: Any, floor: float = 1e-300) -> float:
    r"""Max-norm relative error over trees of arrays (NumPy or CuPy).

    .. math:: \|a - b\|_\infty / \max(\|a\|_\infty, \|b\|_\infty, \mathrm{floor})

    ``floor`` turns it into an absolute error for tiny values, e.g. a central
    difference (absolute rounding error ~1e-10) of a gradient that is ~0.

    Raises:
        NonFiniteError: ``a`` or ``b`` holds NaN or infinity (a NaN would otherwise
            compare as error 0, since ``max`` skips it).
        ValueError: the trees have different numbers of arrays, other dict keys (leaves are
            paired by key, never by insertion order) or list lengths, or two arrays have
            different shapes (never broadcast), or ``floor`` is not > 0.
        TypeError: a leaf that is not a real or complex number or array (``None``, a string, bool).
    """
    floor = number("floor", floor, low=0, low_open=True)
    leaves_a, leaves_b = tree_leaves(a), tree_leaves(b)
    for name, leaves in (("a", leaves_a), ("b", leaves_b)):
        for i, leaf in enumerate(leaves):
            kind = getattr(getattr(leaf, "dtype", None), "kind", None)
            if kind is None and isinstance(leaf, int | float | complex) and not isinstance(leaf, bool):
                continue
            if kind not in ("f", "i", "u", "c"):
                shown = f"dtype {leaf.dtype}" if kind is not None else type(leaf).__name__
                raise TypeError(f"{name}: expected numbers or numeric arrays, got {shown} at leaf {i}")
    finite("a", a)
    finite("b", b)
    if len(leaves_a) != len(leaves_b):
        raise ValueError(f"b: expected {len(leaves_a)} arrays like a, got {len(leaves_b)}")
    pairs = same_structure("b", b, a, check_shapes=False)  # (b leaf, a leaf), paired by key
    for i, (y, x) in enumerate(pairs):
        if np.shape(x) != np.shape(y):
            raise ValueError(f"b: expected shape {np.shape(x)} like a at leaf {i}, got {np.shape(y)}")
    num, den = 0.0, floor
    for y, x in pairs:
        x, y = (
            to_numpy(np.asarray(x) if np.isscalar(x) else x),
            to_numpy(np.asarray(y) if np.isscalar(y) else y),
        )
        den = max(den, float(np.max(np.abs(x), initial=0.0)), float(np.max(np.abs(y), initial=0.0)))
    for y, x in pairs:
        x, y = (
            to_numpy(np.asarray(x) if np.isscalar(x) else x),
            to_numpy(np.asarray(y) if np.isscalar(y) else y),
        )
        # scaled by the common denominator first: |x - y| of finite values near the dtype's
        # largest would overflow (with a NumPy warning), |x/den - y/den| <= 2 never does
        num = max(num, float(np.max(np.abs(x / den - y / den), initial=0.0)))
    return num


def gauss_newton_block(net: Any, params: Any, x: Any, layer: int) -> np.ndarray:
    r""":math:`\frac1B\sum_n J_n^\top J_n` for weight layer ``layer``'s :math:`\tilde W` (row-major ``vec``), with
    :math:`J_n` the Jacobian of example ``n``'s output pre-activation w.r.t. :math:`\tilde W`.

    Each column comes from a central difference with step 1, exact up to rounding when the network
    is linear in that layer's weights (identity transfers after it, e.g. a deep linear network):
    then, with squared error, this is the layer's block of the Gauss-Newton matrix (and of the
    Fisher).  Costs two forward passes per weight: for tiny layers.

    Args:
        net: a :class:`~locograd.nn.Sequential`.
        params: its parameters.
        x: a batch ``(B, *in_shape)``.
        layer: the index into ``net.layers`` of a weight layer.

    Returns:
        The ``(n, n)`` NumPy matrix, ``n`` the number of entries of :math:`\tilde W`.

    Raises:
        ValueError: ``layer`` not the index of a weight layer.
    """
    m = integer("layer", layer, minimum=0, maximum=len(net.layers) - 1)
    view = net.layers[m]
    if not getattr(view, "has_weights", False):
        raise ValueError(f"layer: {view.describe(m)} has no weights")
    w = to_numpy(view.stack(params[m]))
    columns = []
    for i in range(w.size):
        e = np.zeros(w.size)
        e[i] = 1.0
        plus, minus = list(params), list(params)
        plus[m] = view.unstack(w + e.reshape(w.shape))
        minus[m] = view.unstack(w - e.reshape(w.shape))
        columns.append(to_numpy(net.forward(plus, x).pre[-1] - net.forward(minus, x).pre[-1]) / 2)
    J = np.stack(columns, axis=-1)  # (B, d_out, n)
    return np.einsum("bdi,bdj->ij", J, J) / J.shape[0]
