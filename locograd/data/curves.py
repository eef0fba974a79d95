r"""CURVES: a deterministic re-creation, in spirit, of the benchmark of Hinton & Salakhutdinov (2006).

The deep-autoencoder benchmark "CURVES" (Hinton & Salakhutdinov, *Reducing
the dimensionality of data with neural networks*, Science 2006) holds 28x28
grey images of smooth random curves, each made from three random points, with
20,000 training and 10,000 test images.  The original file is not shipped with
this package and nothing is downloaded: :func:`curves` **generates a data set
of the same kind, not the original file**, so numbers obtained on it are
comparable in spirit only.

Construction of one image (sizes for ``size = 28``):

1. Three points are drawn uniformly in the square :math:`[2, 25]^2` of pixel
   coordinates (the centre of pixel ``(row, col)`` is the point
   ``(x, y) = (col, row)``).  The point facing the longest side of their
   triangle becomes the middle point :math:`M`, the other two the ends
   :math:`A` and :math:`B`, so the curve turns by at most 120 degrees.
2. The curve is the parabola through :math:`A`, :math:`M`, :math:`B`, reached
   at parameters 0, :math:`\tau`, 1 with the chord-length parameter
   :math:`\tau = |M - A| / (|M - A| + |B - M|)`; written as the quadratic
   Bezier :math:`B(t) = (1-t)^2 A + 2t(1-t) C + t^2 B`, :math:`t \in [0, 1]`,
   with :math:`C = (M - (1-\tau)^2 A - \tau^2 B) / (2\tau(1-\tau))`
   (:func:`control_points`).  Curves are 20 px long in the median, 6 px or
   less for 1% of them; about 1 in 2,000 bulges past the image border, where
   it is cut off.
3. It is sampled at points evenly spaced *along its length*, at most
   ``SPACING`` = 0.4 px apart (a curve of length ``L`` gets
   ``ceil(L / 0.4) + 1`` points; arc length from a 64-segment polyline).
4. Each pixel gets the soft-pen intensity :math:`\exp(-d^2 / (2\sigma^2))`,
   :math:`\sigma` = ``PEN_SIGMA`` = 0.8 px, of the distance :math:`d` from its
   centre to the nearest sample point (so 1 on the curve, about 0.5 at one
   pixel away); intensities below :math:`e^{-8}` (:math:`d > 4\sigma`) are set
   to exactly 0.  Point sampling makes :math:`d` at most 0.2 px too large, so
   pixels on the curve keep at least 97% of the full intensity.

Every image has a pixel of intensity above 0.67 (the end point :math:`A` is a
sample point within :math:`\sqrt{2}/2` px of a pixel centre).  Train and test come from two
independent random streams spawned from ``numpy.random.SeedSequence(seed)``,
and image ``i`` depends only on the seed and ``i``: asking for fewer images
gives a prefix of the larger set, and the same seed gives the same bytes.

Rendering is vectorized over chunks of images (a few MB at a time), so
20,000 + 10,000 images take about a second or two on one core.

>>> from locograd.data import curves
>>> ds = curves(n_train=5, n_test=3, seed=0)
>>> ds.x_train.shape, ds.x_test.shape, ds.x_train.dtype, ds.y_train is None
((5, 784), (3, 784), dtype('float32'), True)
>>> bool(ds.x_train.min() >= 0.0 and ds.x_train.max() <= 1.0)
True
>>> ds.source
'generated (seed 0)'
"""

from __future__ import annotations

import numpy as np

from .dataset import Dataset
from .errors import DataError, check_int

PEN_SIGMA = 0.8
"""Width of the soft pen, in pixels: intensity ``exp(-d**2 / (2 * PEN_SIGMA**2))``."""

SPACING = 0.4
"""Largest distance, in pixels, between consecutive sample points along a curve."""

MARGIN = 2.0
"""Control points lie in ``[MARGIN, size - 1 - MARGIN]`` (pixel-centre coordinates)."""

CUTOFF_SIGMAS = 4.0
"""Pixels farther than ``CUTOFF_SIGMAS * PEN_SIGMA`` from the curve are exactly 0."""

_ARC_SEGMENTS = 64  # polyline used to measure and invert the arc length
_CHUNK_PIXELS = 200_000  # images per chunk = this // (size * size): a few MB of work arrays


def _bezier(points: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Evaluate quadratic Bezier curves.

    Args:
        points: Control points, shape ``(n, 3, 2)``.
        t: Parameters in [0, 1], shape ``(n, T)``.

    Returns:
        The curve points ``B(t)``, shape ``(n, T, 2)``.
    """
    p0, p1, p2 = points[:, None, 0, :], points[:, None, 1, :], points[:, None, 2, :]
    tt = t[..., None]
    return p0 + tt * (2.0 * (p1 - p0) + tt * (p0 - 2.0 * p1 + p2))  # Horner form of the Bernstein sum


def _arc_lengths(points: np.ndarray) -> np.ndarray:
    """Cumulative arc length along each curve's 64-segment polyline.

    Args:
        points: Control points, shape ``(n, 3, 2)``.

    Returns:
        ``cum``, shape ``(n, 65)``: ``cum[i, k]`` is the length up to ``t = k / 64``.
    """
    n = points.shape[0]
    t = np.broadcast_to(np.linspace(0.0, 1.0, _ARC_SEGMENTS + 1), (n, _ARC_SEGMENTS + 1))
    polyline = _bezier(points, t)
    steps = np.sqrt((np.diff(polyline, axis=1) ** 2).sum(axis=2))
    cum = np.zeros((n, _ARC_SEGMENTS + 1))
    np.cumsum(steps, axis=1, out=cum[:, 1:])
    return cum


def _render_chunk(points: np.ndarray, counts: np.ndarray, cum: np.ndarray, size: int) -> np.ndarray:
    """Render curves whose sample counts are given.

    Args:
        points: Control points, shape ``(n, 3, 2)``, float64.
        counts: Sample points per curve, shape ``(n,)``, each >= 2.
        cum: Cumulative arc lengths from :func:`_arc_lengths`, shape ``(n, 65)``.
        size: Image side in pixels.

    Returns:
        Intensities, shape ``(n, size, size)``, float32 in [0, 1].
    """
    n = points.shape[0]
    width = int(counts.max())
    # Arc-length fraction of each sample; a curve with fewer samples than the
    # chunk's widest repeats its end point, which leaves the minimum unchanged.
    j = np.minimum(np.arange(width)[None, :], (counts - 1)[:, None])
    targets = j / (counts - 1)[:, None] * cum[:, -1:]
    grid_t = np.linspace(0.0, 1.0, _ARC_SEGMENTS + 1)
    t = np.empty((n, width))
    for i in range(n):  # per-row inversion keeps every image independent of its chunk
        t[i] = np.interp(targets[i], cum[i], grid_t)
    samples = _bezier(points, t).astype(np.float32)  # (n, width, 2) as (x, y)
    pixel = np.arange(size, dtype=np.float32)
    dx2 = (pixel[None, None, :] - samples[:, :, 0:1]) ** 2  # (n, width, size) columns
    dy2 = (pixel[None, None, :] - samples[:, :, 1:2]) ** 2  # (n, width, size) rows
    cutoff2 = np.float32((CUTOFF_SIGMAS * PEN_SIGMA) ** 2)
    nearest = np.full((n, size, size), cutoff2, dtype=np.float32)  # squared distance, capped
    scratch = np.empty_like(nearest)
    for k in range(width):
        np.add(dy2[:, k, :, None], dx2[:, k, None, :], out=scratch)
        np.minimum(nearest, scratch, out=nearest)
    far = nearest >= cutoff2
    np.multiply(nearest, np.float32(-0.5 / PEN_SIGMA**2), out=nearest)
    np.exp(nearest, out=nearest)
    nearest[far] = 0.0
    return nearest


def render(points: np.ndarray, size: int = 28) -> np.ndarray:
    """Draw quadratic Bezier curves with the soft pen (the CURVES construction above).

    Args:
        points: Control points ``(P0, P1, P2)`` as ``(x, y)`` = ``(col, row)``
            pixel-centre coordinates, shape ``(n, 3, 2)``.
        size: Image side in pixels.

    Returns:
        Images, shape ``(n, size * size)``, float32 in [0, 1], row-major.

    >>> import numpy as np
    >>> line = np.array([[[2.0, 10.0], [12.0, 10.0], [22.0, 10.0]]])  # a horizontal segment on row 10
    >>> img = render(line).reshape(28, 28)
    >>> float(img[10, 12]), round(float(img[11, 12]), 3), float(img[20, 12])
    (1.0, 0.458, 0.0)
    """
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 3 or points.shape[1:] != (3, 2):
        raise DataError(f"points: expected shape (n, 3, 2), got {points.shape}")
    n = points.shape[0]
    out = np.empty((n, size, size), dtype=np.float32)
    if n == 0:
        return out.reshape(0, size * size)
    cum = _arc_lengths(points)
    counts = np.maximum(np.ceil(cum[:, -1] / SPACING).astype(np.int64) + 1, 2)
    order = np.argsort(counts, kind="stable")  # similar lengths share a chunk: little padding
    chunk = max(1, _CHUNK_PIXELS // (size * size))
    for start in range(0, n, chunk):
        idx = order[start : start + chunk]
        out[idx] = _render_chunk(points[idx], counts[idx], cum[idx], size)
    return out.reshape(n, size * size)


def control_points(rng: np.random.Generator, n: int, size: int = 28) -> np.ndarray:
    """Draw ``n`` curves: three random points each, turned into Bezier control points.

    The three points are uniform in ``[MARGIN, size - 1 - MARGIN]^2``.  The one
    facing the longest side of their triangle becomes the middle point ``M``
    (so the curve bends by at most 120 degrees), the other two the ends ``A``
    and ``B`` (in the order drawn).  The curve is the parabola through ``A``,
    ``M``, ``B`` at parameters ``0``, ``tau``, ``1`` with the chord-length
    parameter ``tau = |M - A| / (|M - A| + |B - M|)`` (clipped to [0.1, 0.9]),
    written as a quadratic Bezier with middle control point
    ``(M - (1 - tau)**2 A - tau**2 B) / (2 tau (1 - tau))``.

    Args:
        rng: The random stream; row ``i`` of the result depends only on the
            stream and ``i`` (a longer draw extends a shorter one).
        n: Number of curves.
        size: Image side in pixels.

    Returns:
        Bezier control points ``(A, C, B)``, shape ``(n, 3, 2)``, float64, as ``(x, y)``.

    >>> import numpy as np
    >>> pts = control_points(np.random.default_rng(0), 2)
    >>> t = 0.5 * np.ones((2, 1))
    >>> pts.shape, _bezier(pts, t).shape
    ((2, 3, 2), (2, 1, 2))
    """
    raw = rng.uniform(MARGIN, size - 1 - MARGIN, size=(n, 3, 2))
    # side facing vertex k: |raw[k+1] - raw[k+2]|
    facing = np.sqrt(((np.roll(raw, -1, axis=1) - np.roll(raw, -2, axis=1)) ** 2).sum(axis=2))
    middle = np.argmax(facing, axis=1)
    rows = np.arange(n)
    first = np.minimum((middle + 1) % 3, (middle + 2) % 3)  # the ends, in the order drawn
    last = np.maximum((middle + 1) % 3, (middle + 2) % 3)
    a, m, b = raw[rows, first], raw[rows, middle], raw[rows, last]
    la = np.sqrt(((m - a) ** 2).sum(axis=1))
    lb = np.sqrt(((b - m) ** 2).sum(axis=1))
    tau = np.clip(np.divide(la, la + lb, out=np.full(n, 0.5), where=la + lb > 0), 0.1, 0.9)[:, None]
    c = (m - (1 - tau) ** 2 * a - tau**2 * b) / (2 * tau * (1 - tau))
    return np.stack([a, c, b], axis=1)


def curves(n_train: int = 20000, n_test: int = 10000, seed: int = 0, size: int = 28) -> Dataset:
    """Generate the CURVES re-creation (see the module docstring): smooth random curves, no labels.

    Args:
        n_train: Number of training images, an integer >= 1 (the original has 20,000).
        n_test: Number of test images, an integer >= 1 (the original has 10,000).
        seed: Non-negative integer; train and test use the two streams
            spawned from ``numpy.random.SeedSequence(seed)``.  The same seed
            gives the same bytes; ``curves(n_train=k)`` is a prefix of
            ``curves(n_train=K)`` for ``k <= K``.
        size: Image side in pixels, an integer >= 8 (28 like the original).

    Returns:
        A :class:`Dataset` named ``"curves"``: ``x_train`` of shape
        ``(n_train, size*size)`` and ``x_test`` of shape ``(n_test, size*size)``,
        float32 in [0, 1]; ``y_train`` and ``y_test`` are ``None``;
        ``source`` is ``"generated (seed <seed>)"``.

    Raises:
        DataError: When an argument is not an integer in range.

    >>> a = curves(n_train=4, n_test=2, seed=1)
    >>> b = curves(n_train=2, n_test=2, seed=1)
    >>> bool((a.x_train[:2] == b.x_train).all())
    True
    """
    n_train = check_int("n_train", n_train, 1)
    n_test = check_int("n_test", n_test, 1)
    seed = check_int("seed", seed, 0)
    size = check_int("size", size, 8)
    train_seq, test_seq = np.random.SeedSequence(seed).spawn(2)
    x_train = render(control_points(np.random.default_rng(train_seq), n_train, size), size)
    x_test = render(control_points(np.random.default_rng(test_seq), n_test, size), size)
    return Dataset(
        name="curves",
        x_train=x_train,
        y_train=None,
        x_test=x_test,
        y_test=None,
        source=f"generated (seed {seed})",
        image_shape=(size, size),
    )
