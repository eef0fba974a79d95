"""IDX files, the format of MNIST and Fashion-MNIST: read (raw or gzip) and write (uint8).

An IDX file is a 4-byte magic number, the size of each dimension as a
big-endian uint32, then the elements, big-endian, in C order:

====== ============================================================
bytes  meaning
====== ============================================================
0-1    zero
2      type code: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
       0x0D float32, 0x0E float64
3      number of dimensions ``d`` (at least 1)
4..    ``d`` sizes, big-endian uint32 each
then   exactly ``prod(sizes)`` elements
====== ============================================================

Files are often gzip-compressed (``train-images-idx3-ubyte.gz``);
:func:`read_idx` recognises gzip by its magic bytes ``1f 8b``, not by the
name, so a raw file named ``.gz`` reads as well.

>>> import os, tempfile
>>> import numpy as np
>>> from locograd.data import read_idx, write_idx
>>> with tempfile.TemporaryDirectory() as folder:
...     path = os.path.join(folder, "toy-idx3-ubyte.gz")
...     write_idx(path, np.arange(24, dtype=np.uint8).reshape(2, 3, 4))
...     back = read_idx(path)
>>> back.shape, back.dtype, int(back[1, 2, 3])
((2, 3, 4), dtype('uint8'), 23)
"""

from __future__ import annotations

import contextlib
import gzip
import os
import tempfile
import zlib

import numpy as np

from .errors import DataError

GZIP_MAGIC = b"\x1f\x8b"
"""The first two bytes of every gzip stream."""

IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
"""IDX type code -> element type as stored (big-endian)."""


def _read_bytes(path: str) -> bytes:
    """Return the file's content, decompressed when it starts with the gzip magic bytes.

    Args:
        path: File to read.

    Returns:
        The (decompressed) bytes.

    Raises:
        DataError: When the file cannot be opened or its gzip stream is broken.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise DataError(f"{path}: cannot read the file ({exc.strerror or exc}); check the path") from None
    if data[:2] != GZIP_MAGIC:
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(
            f"{path}: broken gzip data ({exc}); the download is probably incomplete, get the file again"
        ) from None


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file, raw or gzip-compressed (detected by the magic bytes).

    Args:
        path: The file.

    Returns:
        The array, shape as in the header (e.g. ``(60000, 28, 28)`` for the
        MNIST training images), native byte order, writable.

    Raises:
        DataError: Naming the path, when the file cannot be read, the gzip
            stream is broken, the magic number is wrong, the type code is
            unknown, the header is truncated, or the payload is not exactly
            ``prod(sizes)`` elements (with the expected and found sizes).
    """
    name = os.fspath(path)
    data = _read_bytes(name)
    if len(data) < 4:
        raise DataError(
            f"{name}: truncated IDX header ({len(data)} bytes, need at least 4); the file is not an IDX "
            "file or is cut short, get it again"
        )
    if data[0] != 0 or data[1] != 0:
        raise DataError(
            f"{name}: not an IDX file (magic bytes {data[:4].hex(' ')}, expected 00 00 <type> <ndim>); "
            "check that this is an MNIST-format file"
        )
    code, ndim = data[2], data[3]
    if code not in IDX_TYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_TYPES)
        raise DataError(f"{name}: unsupported IDX type code 0x{code:02X} (supported: {known})")
    if ndim < 1:
        raise DataError(f"{name}: IDX header gives 0 dimensions; the file is corrupt, get it again")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(
            f"{name}: truncated IDX header ({len(data)} bytes, need {header} for {ndim} dimensions); "
            "the file is cut short, get it again"
        )
    shape = tuple(int(s) for s in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_TYPES[code]
    count = 1
    for s in shape:
        count *= s
    expected, found = count * dtype.itemsize, len(data) - header
    if found != expected:
        what = "truncated" if found < expected else f"{found - expected} trailing bytes"
        raise DataError(
            f"{name}: IDX payload is {found} bytes, expected {expected} ({count} x {dtype.name} for shape "
            f"{shape}): {what}; the file is damaged, get it again"
        )
    array = np.frombuffer(data, dtype=dtype, count=count, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="))  # a writable copy in native byte order


def write_idx(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Write a uint8 array as an IDX file (type 0x08), gzip-compressed when the name ends with ``.gz``.

    The file appears atomically: the bytes go to a temporary file in the same
    folder, which then replaces ``path`` (``os.replace``).  The gzip header
    stores no time stamp, so the same array gives the same bytes.

    Args:
        path: Destination file; its folder must exist.
        array: Array of dtype uint8, 1 to 255 dimensions, each below 2**32.

    Raises:
        DataError: When the array is not uint8 or its shape cannot be stored,
            or the file cannot be written.
    """
    name = os.fspath(path)
    if not isinstance(array, np.ndarray) or array.dtype != np.uint8:
        got = f"dtype {array.dtype}" if isinstance(array, np.ndarray) else type(array).__name__
        raise DataError(
            f"{name}: write_idx writes uint8 arrays only, got {got}; convert with .astype(np.uint8)"
        )
    if not 1 <= array.ndim <= 255 or any(s >= 2**32 for s in array.shape):
        raise DataError(f"{name}: IDX cannot store shape {array.shape} (1-255 dimensions, each < 2**32)")
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    payload = header + np.ascontiguousarray(array).tobytes()
    folder = os.path.dirname(os.path.abspath(name))
    base = os.path.basename(name)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise DataError(
            f"{name}: cannot write in {folder} ({exc.strerror or exc}); check the folder"
        ) from None
    try:
        with os.fdopen(fd, "wb") as f:
            if name.endswith(".gz"):
                with gzip.GzipFile(filename=base[:-3], mode="wb", fileobj=f, mtime=0) as gz:
                    gz.write(payload)
            else:
                f.write(payload)
        os.chmod(tmp, 0o644)
        os.replace(tmp, name)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise DataError(
                f"{name}: cannot write the file ({exc.strerror or exc}); check the path"
            ) from None
        raise
