r"""Dense linear algebra on either backend: Cholesky solves and pseudo-inverse solves of PSD systems.

Never forms an explicit inverse.  NumPy arrays use ``scipy.linalg``'s
triangular solver, CuPy arrays ``cupyx.scipy.linalg``'s.

>>> import numpy as np
>>> from locograd.linalg import cholesky_solve
>>> A = np.array([[4.0, 1.0], [1.0, 3.0]])
>>> np.allclose(A @ cholesky_solve(A, np.eye(2)), np.eye(2))
True
"""

from __future__ import annotations

import numpy as np

from .backend import Array, array_namespace, is_cupy_array


def _solve_triangular(L: Array, B: Array, lower: bool) -> Array:
    if is_cupy_array(L):
        from cupyx.scipy.linalg import solve_triangular
    else:
        from scipy.linalg import solve_triangular
    return solve_triangular(L, B, lower=lower, check_finite=False)


def cholesky_factor(A: Array) -> Array:
    r"""Lower Cholesky factor :math:`L` of a symmetric positive-definite ``A``, :math:`A = L L^\top`.

    Raises:
        ValueError: ``A`` is not (numerically) positive definite; the message says so
            rather than returning NaN.
    """
    xp = array_namespace(A=A)
    try:
        L = xp.linalg.cholesky(A)
    except np.linalg.LinAlgError:
        L = None
    if L is None or not bool(xp.isfinite(L).all()):  # NumPy raises, CuPy returns NaN
        raise ValueError(
            "A: expected a symmetric positive-definite matrix, the Cholesky factorisation failed"
        )
    return L


def cholesky_apply(L: Array, B: Array) -> Array:
    r""":math:`(L L^\top)^{-1} B` from a Cholesky factor, by two triangular solves."""
    return _solve_triangular(L.T, _solve_triangular(L, B, lower=True), lower=False)


def cholesky_solve(A: Array, B: Array) -> Array:
    r"""Solve :math:`A X = B` for symmetric positive-definite ``A`` ``(n, n)``, ``B`` ``(n, k)``.

    :math:`A = L L^\top`, then two triangular solves.

    Raises:
        ValueError: ``A`` is not (numerically) positive definite.
    """
    array_namespace(A=A, B=B)
    return cholesky_apply(cholesky_factor(A), B)


def psd_pinv_solve(C: Array, B: Array, rcond: float | None = None) -> Array:
    r""":math:`C^+ B` for symmetric positive semi-definite ``C`` ``(n, n)``, via ``eigh``.

    Eigenvalues below ``rcond * lambda_max`` are treated as zero (default
    ``rcond = n * eps`` with the dtype's machine epsilon).
    """
    xp = array_namespace(C=C, B=B)
    lam, Q = xp.linalg.eigh(C)
    if rcond is None:
        rcond = C.shape[0] * float(xp.finfo(C.dtype).eps)
    cutoff = rcond * xp.maximum(lam.max(), 0)
    inv = xp.where(lam > cutoff, 1 / xp.where(lam > cutoff, lam, 1), 0).astype(C.dtype)
    return Q @ (inv[:, None] * (Q.T @ B))
