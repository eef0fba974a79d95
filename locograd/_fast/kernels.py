r"""Fused elementwise kernels, in place and in row blocks on the threads in force.

Each kernel computes what the reference modules (:mod:`locograd.layers`, :mod:`locograd.transfer`,
:mod:`locograd.losses`) compute, with the same operations in the same order, so the numbers are
bit for bit theirs (``tests/test_fast.py``); it writes into buffers it is given and touches each
block of rows once while it is in cache (the bias add and the transfer in one pass, the
transfer's derivative and the product with the upstream gradient in one pass).  Transfers and
losses without a fused form here fall back to the reference calls.

NumPy arrays are split into row blocks on :func:`locograd.backend.threads`' threads
(:mod:`locograd._fast.parallel`); CuPy arrays run as one block (their kernels are asynchronous).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backend import Array, array_namespace
from ..losses import Loss, SigmoidCrossEntropy
from ..transfer import Transfer, identity, relu, sigmoid, tanh
from . import parallel


def _rows(fn: Any, a: Array) -> None:
    """``fn(block)`` over row blocks of the 2-D ``a`` (one block on CuPy)."""
    if isinstance(a, np.ndarray):
        parallel.rows(fn, a.shape[0], a.shape[1] if a.ndim > 1 else 1)
    else:
        fn(slice(None))


def _logistic_into(a: Array, out: Array, scratch: Array) -> None:
    """:func:`locograd.transfer.logistic` of ``a`` written into ``out`` (may be ``a``): the same operations."""
    xp = array_namespace(a)
    xp.abs(a, out=scratch)
    xp.negative(scratch, out=scratch)
    xp.exp(scratch, out=scratch)
    scratch += 1
    xp.minimum(a, 0, out=out)
    xp.exp(out, out=out)
    out /= scratch


def fusable(t: Transfer) -> bool:
    """Whether :func:`bias_transfer` computes ``t`` in place (identity, tanh, relu, sigmoid)."""
    return t is identity or t is tanh or t is relu or t is sigmoid


def bias_transfer(
    a: Array, b: Array, t: Transfer, post: Array | None = None, scratch: Array | None = None
) -> Array:
    r""":math:`A \leftarrow A + b`, then :math:`Y = f(A)`: one pass per row block.

    Args:
        a: the product :math:`XW` ``(B, d)``; receives :math:`A = XW + b`.
        b: the bias ``(d,)`` of ``a``'s dtype.
        t: the transfer.
        post: where :math:`Y` goes (``(B, d)``); ``None`` writes it over ``a`` (the pre-activation
            is then lost).  For a transfer without a fused form, ``Y`` is a fresh array.
        scratch: a ``(B, d)`` buffer the sigmoid may use (``None``: one per block).

    Returns:
        :math:`Y`: ``post``, ``a``, or a fresh array; bit for bit ``t.f(affine(layer, x))``.
    """
    xp = array_namespace(a)
    if not fusable(t) or b.dtype != a.dtype:
        a += b
        return t.f(a)
    target = a if post is None else post

    def block(s: slice) -> None:
        ab, yb = a[s], target[s]
        ab += b
        if t is tanh:
            xp.tanh(ab, out=yb)
        elif t is relu:
            xp.maximum(ab, 0, out=yb)
        elif t is sigmoid:
            _logistic_into(ab, yb, xp.empty_like(ab) if scratch is None else scratch[s])
        elif yb is not ab:
            yb[...] = ab

    _rows(block, a)
    return target


def transfer_vjp(g: Array, t: Transfer, pre: Array | None, post: Array) -> Array:
    r""":math:`G \leftarrow G \odot f'(A)` in place (the VJP of an elementwise transfer), one pass per block.

    Args:
        g: :math:`\partial L/\partial Y` ``(B, d)``; receives :math:`\partial L/\partial A`.
        t: the transfer.
        pre: :math:`A` (needed by sigmoid and relu; ``None`` for tanh and identity).
        post: :math:`Y = f(A)` (tanh's derivative is written through it, :math:`1 - Y^2`).

    Returns:
        ``g``, or for a transfer without a fused form the reference ``t.vjp``'s fresh array;
        bit for bit the reference's numbers.
    """
    xp = array_namespace(g)
    if t is identity:  # g * 1: the same numbers
        return g
    if t is tanh:

        def block(s: slice) -> None:
            d = xp.multiply(post[s], post[s])
            xp.subtract(1, d, out=d)
            g[s] *= d

    elif t is sigmoid and pre is not None:

        def block(s: slice) -> None:
            a = pre[s]
            scratch = xp.empty_like(a)
            s1, s2 = xp.empty_like(a), xp.empty_like(a)
            _logistic_into(a, s1, scratch)
            xp.negative(a, out=s2)
            _logistic_into(s2, s2, scratch)
            s1 *= s2
            g[s] *= s1

    elif t is relu and pre is not None:

        def block(s: slice) -> None:
            g[s] *= (pre[s] > 0).astype(g.dtype)

    else:
        return t.vjp(pre, g, post)
    _rows(block, g)
    return g


def column_sums(g: Array, out: Array | None = None) -> Array:
    r""":math:`\sum_n G_n` ``(d,)`` (the bias gradient), bit for bit ``g.sum(axis=0)``, into ``out``.

    On one thread: a column block of a row-major array is strided, and NumPy's sum over it is
    several times slower than the contiguous sum (measured: 0.8 ms on two threads against 0.2 ms
    on one, for ``(1000, 1000)`` float32).
    """
    return g.sum(axis=0) if out is None else array_namespace(g).sum(g, axis=0, out=out)


def all_finite(arrays: list[Array]) -> bool:
    """Whether every element of every array is finite, in one pass in the common case.

    A sum is finite when every term is, and NaN or an infinity makes it non-finite; so a finite
    sum (over flat chunks, on the threads in force) answers yes at once.  A non-finite sum can
    also come from finite values overflowing it, so then the exact test decides: the largest
    and the smallest element, each finite exactly when every element is.
    """
    for a in arrays:
        if a.size == 0:
            continue
        xp = array_namespace(a)
        flat = a.reshape(-1)
        if isinstance(a, np.ndarray) and a.flags.c_contiguous:
            parts = parallel.blocks(flat.size, parallel.parts_for(flat.size, 1))
            sums = np.empty(len(parts), dtype=a.dtype)

            def block(s: slice, flat: Array = flat, sums: Array = sums, parts: list[slice] = parts) -> None:
                sums[parts.index(s)] = flat[s].sum()

            with np.errstate(over="ignore", invalid="ignore"):
                parallel.run(block, parts)
                total = sums.sum()
        else:
            with np.errstate(over="ignore", invalid="ignore"):
                total = xp.sum(flat)
        if not bool(xp.isfinite(total)) and not (
            bool(xp.isfinite(xp.max(flat))) and bool(xp.isfinite(xp.min(flat)))
        ):
            return False
    return True


def loss_value_and_grad(loss: Loss, a: Array, y: Array, grad: Array | None = None) -> tuple[Array, Array]:
    r"""The batch-mean loss and :math:`\partial L/\partial A = (f(A) - Y)/B`, per row block.

    Sigmoid cross-entropy is fused (its per-example sums and gradient block by block, the mean
    at the end); the other losses are the reference :meth:`~locograd.losses.Loss.mean_value_and_grad`.
    ``grad`` is where the gradient goes (may be ``a`` itself, which is then lost).

    Returns:
        ``(loss, grad)``: a 0-d array and ``(B, d)``; bit for bit the reference's.
    """
    if not isinstance(loss, SigmoidCrossEntropy) or not isinstance(a, np.ndarray) or a.shape[0] == 0:
        return loss.mean_value_and_grad(a, y)
    y = loss.prepare_targets(a, y)
    B = a.shape[0]
    per_example = np.empty(B, dtype=a.dtype)
    out = np.empty_like(a) if grad is None else grad

    def block(s: slice) -> None:
        ab, yb = a[s], y[s]
        e = np.abs(ab)  # e^{-|a|}: shared by softplus(a) = log1p(e) + max(a, 0) and logistic(a)
        np.negative(e, out=e)
        np.exp(e, out=e)
        sp = np.log1p(e)
        sp += np.maximum(ab, 0)
        sp -= yb * ab
        np.sum(sp, axis=-1, out=per_example[s])
        e += 1  # logistic(a) = e^{min(a, 0)} / (1 + e^{-|a|})
        gb = out[s]
        np.minimum(ab, 0, out=gb)
        np.exp(gb, out=gb)
        gb /= e
        gb -= yb
        gb /= B

    _rows(block, a)
    return per_example.mean(), out


def chunked_update(kernel: Any, grads: list[Array], state: Any, params: list[Array], eta: float) -> Any:
    """Run a fused first-order ``kernel`` (:mod:`locograd._fast.updates`) on flat chunks of every leaf.

    ``grads`` and ``params`` are lists of contiguous arrays, ``state`` the optimizer's NamedTuple
    whose slots are lists like ``params``.  Each chunk is an elementwise update on its own, so the
    numbers are bit for bit one kernel call on the whole arrays.

    Returns:
        The state the kernel returns (its slots' arrays updated in place).
    """
    sizes = [p.size for p in params]
    total = sum(sizes)
    slots = state._fields[1:]
    leaves = [*grads, *params, *(a for f in slots for a in getattr(state, f))]
    contiguous = all(isinstance(a, np.ndarray) and a.flags.c_contiguous for a in leaves)
    parts = parallel.parts_for(total, 1) if contiguous else 1
    if parts == 1:
        return kernel(grads, state, params, eta)
    flat = {
        "g": [g.reshape(-1) for g in grads],
        "p": [p.reshape(-1) for p in params],
        **{f: [a.reshape(-1) for a in getattr(state, f)] for f in slots},
    }
    results: list[Any] = [None] * parts
    spans = parallel.blocks(total, parts)

    def block(span: slice) -> None:
        index = spans.index(span)
        pieces: dict[str, list[Array]] = {k: [] for k in flat}
        offset = 0
        for i, n in enumerate(sizes):
            lo, hi = max(span.start - offset, 0), min(span.stop - offset, n)
            if lo < hi:
                for k in flat:
                    pieces[k].append(flat[k][i][lo:hi])
            offset += n
        sub = state._replace(**{f: pieces[f] for f in slots})
        results[index] = kernel(pieces["g"], sub, pieces["p"], eta)

    parallel.run(block, spans)
    return state._replace(step=results[0].step)
