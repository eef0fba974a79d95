"""Data sets by name: ``load("curves")``, ``load("mnist")``, ``load("fashion-mnist")``.

CURVES is generated (:func:`locograd.data.curves`); MNIST and Fashion-MNIST
are read from files already on the machine and never downloaded.  For an
MNIST-format set the first match wins, in this order:

1. ``data_dir``, when given, and nothing else (a miss is an error);
2. the folder in the environment variable ``LOCOGRAD_DATA``;
3. the usual places (:data:`SEARCH_PATHS`), e.g. Debian's package
   ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``) and
   Keras' cache ``~/.keras/datasets``.

In a root folder (``data_dir`` or ``LOCOGRAD_DATA``) the subfolder named
after the set is tried first, then the torchvision layout, then the folder
itself: for Fashion-MNIST ``<root>/fashion-mnist``, ``<root>/FashionMNIST/raw``,
``<root>``; for MNIST ``<root>/mnist``, ``<root>/MNIST/raw``, ``<root>``.
A folder matches when it holds the four IDX files
(``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each raw or ``.gz``)
or, for MNIST, a keras-style ``mnist.npz``.  MNIST and Fashion-MNIST use the
same file names, so keep each set in its own subfolder.

>>> from locograd.data import load, DATASETS
>>> DATASETS
('curves', 'mnist', 'fashion-mnist')
>>> ds = load("curves", limit_train=8)
>>> ds.x_train.shape, ds.x_test.shape
((8, 784), (10000, 784))
"""

from __future__ import annotations

import os
from typing import Any, Literal, NamedTuple

import numpy as np

from ..validators import canonical_choice
from .curves import curves
from .dataset import Dataset
from .errors import DataError, check_int
from .idx import read_idx
from .npz import NPZ_KEYS, read_dataset_npz, read_mnist_npz

DATASETS: tuple[str, ...] = ("curves", "mnist", "fashion-mnist")
"""The names :func:`load` knows."""

ENV_VAR = "LOCOGRAD_DATA"
"""Environment variable naming a folder that holds data sets."""

IDX_NAMES: tuple[str, ...] = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
"""The four files of an MNIST-format set, in the order train images, train labels, test images, test labels."""

SUBFOLDERS: dict[str, tuple[str, ...]] = {
    "mnist": ("mnist", os.path.join("MNIST", "raw")),
    "fashion-mnist": ("fashion-mnist", os.path.join("FashionMNIST", "raw")),
}
"""Subfolders tried under a root folder (``data_dir``, ``LOCOGRAD_DATA``) before the root itself."""

SEARCH_PATHS: dict[str, list[str]] = {
    "mnist": [
        "~/.keras/datasets",  # keras: mnist.npz
        "~/data/MNIST/raw",  # torchvision with root "~/data"
        "~/.torchvision/MNIST/raw",
    ],
    "fashion-mnist": [
        "/usr/share/datasets/fashion-mnist",  # Debian/Ubuntu: apt-get install dataset-fashion-mnist
        "~/.keras/datasets/fashion-mnist",  # keras
        "~/data/FashionMNIST/raw",  # torchvision with root "~/data"
        "~/.torchvision/FashionMNIST/raw",
    ],
}
"""The usual places, tried after ``data_dir`` and ``LOCOGRAD_DATA``; ``~`` is expanded at look-up time."""

HOW_TO_GET: dict[str, str] = {
    "mnist": (
        "download the four MNIST IDX files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
        "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz) or keras' mnist.npz into a folder "
        f"and pass --data-dir FOLDER or set {ENV_VAR}=FOLDER"
    ),
    "fashion-mnist": (
        "install Debian's package (apt-get install dataset-fashion-mnist), or download the four "
        "Fashion-MNIST IDX files (train-images-idx3-ubyte.gz, ...) into a folder and pass "
        f"--data-dir FOLDER or set {ENV_VAR}=FOLDER"
    ),
}
"""What the not-found error tells the user to do, per data set."""

CURVES_TRAIN = 20000
"""Training images of CURVES when ``limit_train`` is not given (the test split always has 10,000)."""


class MnistFiles(NamedTuple):
    """Where an MNIST-format set was found.

    Attributes:
        kind: ``"idx"`` (four IDX files) or ``"npz"`` (one keras-style archive).
        paths: For ``"idx"`` the train images, train labels, test images and
            test labels files; for ``"npz"`` the one archive.
        source: The folder (``"idx"``) or the file (``"npz"``), for :attr:`Dataset.source`.
    """

    kind: Literal["idx", "npz"]
    paths: tuple[str, ...]
    source: str


def canonical_name(name: Any) -> str:
    """Return the registry name for ``name`` (case and ``_``/``-`` do not matter).

    Args:
        name: A data set name such as ``"Fashion_MNIST"``.

    Returns:
        One of :data:`DATASETS`.

    Raises:
        DataError: Listing the valid names, when ``name`` is not one of them.

    >>> canonical_name("Fashion_MNIST")
    'fashion-mnist'
    """
    try:
        return canonical_choice("dataset", name, DATASETS)
    except ValueError as exc:
        raise DataError(str(exc)) from None


def is_file_name(name: Any) -> bool:
    """Whether ``name`` names a data set file (a path ending in ``.npz``) rather than a known set.

    >>> is_file_name("my_data.npz"), is_file_name("fashion-mnist")
    (True, False)
    """
    return isinstance(name, str | os.PathLike) and os.fspath(name).lower().endswith(".npz")


def dataset_key(name: Any) -> str:
    """The name a run records for its data: a known set's canonical name, or a ``.npz`` file's path as given.

    Raises:
        DataError: neither a known name nor a ``.npz`` path (the message lists the valid names).
    """
    return os.fspath(name) if is_file_name(name) else canonical_name(name)


def _candidates(name: str, data_dir: str | os.PathLike[str] | None) -> list[str]:
    """Folders to try for ``name``, in order (see the module docstring)."""
    if data_dir is not None:
        roots = [os.fspath(data_dir)]
    else:
        env = os.environ.get(ENV_VAR, "")
        roots = [env] if env else []
    folders: list[str] = []
    for root in roots:
        root = os.path.expanduser(root)
        folders += [os.path.join(root, sub) for sub in SUBFOLDERS[name]] + [root]
    if data_dir is None:
        folders += [os.path.expanduser(p) for p in SEARCH_PATHS[name]]
    unique: list[str] = []
    for folder in folders:
        if folder not in unique:
            unique.append(folder)
    return unique


def _match(name: str, folder: str) -> tuple[MnistFiles | None, str]:
    """Look for the set in one folder.

    Returns:
        ``(files, note)``: the files found (or ``None``) and, when the folder
        exists but does not match, what it lacks (else ``""``).
    """
    if not os.path.isdir(folder):
        return None, ""
    found: list[str] = []
    for base in IDX_NAMES:
        for candidate in (base, base + ".gz"):
            if os.path.isfile(os.path.join(folder, candidate)):
                found.append(os.path.join(folder, candidate))
                break
    if len(found) == len(IDX_NAMES):
        return MnistFiles("idx", tuple(found), folder), ""
    if name == "mnist" and os.path.isfile(os.path.join(folder, "mnist.npz")):
        path = os.path.join(folder, "mnist.npz")
        return MnistFiles("npz", (path,), path), ""
    if found:
        have = {os.path.basename(p).removesuffix(".gz") for p in found}
        lacking = [f"{b}[.gz]" for b in IDX_NAMES if b not in have]
        return None, f"has {len(found)} of the 4 IDX files, lacks {', '.join(lacking)}"
    return None, ""


def find_mnist_files(name: str, data_dir: str | os.PathLike[str] | None = None) -> MnistFiles:
    """Find the files of an MNIST-format set on this machine (nothing is downloaded).

    Args:
        name: ``"mnist"`` or ``"fashion-mnist"`` (see :func:`canonical_name`).
        data_dir: When given, look only there (and in its subfolders named in
            :data:`SUBFOLDERS`); for MNIST it may also be the ``.npz`` file
            itself.  Else look in ``$LOCOGRAD_DATA`` and then :data:`SEARCH_PATHS`.

    Returns:
        The first match, as :class:`MnistFiles` ``(kind, paths, source)``.

    Raises:
        DataError: For an unknown name or ``"curves"`` (generated, no files),
            or when no folder matches: the message lists every place looked
            and how to get the files.
    """
    key = canonical_name(name)
    if key not in SUBFOLDERS:
        raise DataError(f"{key!r} is generated, not read from files; use load({key!r})")
    if data_dir is not None:
        given = os.path.expanduser(os.fspath(data_dir))
        if key == "mnist" and given.endswith(".npz") and os.path.isfile(given):
            return MnistFiles("npz", (given,), given)
        if not os.path.isdir(given):
            what = "is a file" if os.path.exists(given) else "does not exist"
            raise DataError(f"data_dir: {given!r} {what}; pass the folder that holds the {key} files")
    looked: list[str] = []
    for folder in _candidates(key, data_dir):
        files, note = _match(key, folder)
        if files is not None:
            return files
        looked.append(f"{folder} ({note})" if note else folder)
    where = (
        f"in data_dir {os.path.expanduser(os.fspath(data_dir))!r}"
        if data_dir is not None
        else "on this machine"
    )
    raise DataError(f"{key} not found {where}; looked in: {', '.join(looked)}; to get it: {HOW_TO_GET[key]}")


def _check_images(x: np.ndarray, place: str) -> None:
    """Raise DataError unless ``x`` is ``(N, 28, 28)`` uint8 images."""
    if x.ndim != 3 or x.shape[1:] != (28, 28):
        raise DataError(
            f"{place}: expected images of shape (N, 28, 28), got {x.shape}; is this an MNIST-format set?"
        )
    if x.dtype != np.uint8:
        raise DataError(f"{place}: expected uint8 pixels, got dtype {x.dtype}")


def _check_labels(y: np.ndarray, n: int, place: str) -> None:
    """Raise DataError unless ``y`` is ``n`` integer labels."""
    if y.shape != (n,) or y.dtype.kind not in "ui":
        raise DataError(
            f"{place}: expected {n} integer labels (one per image), got {y.dtype} of shape {y.shape}; "
            "the images and labels files do not belong together"
        )


def _read_mnist(key: str, files: MnistFiles, limit_train: int | None) -> Dataset:
    """Read, check and convert the files found by :func:`find_mnist_files`.

    Returns:
        The Dataset: images ``(N, 784)`` float32 ``pixel / 255``, labels ``(N,)`` int64.
    """
    if files.kind == "npz":
        x_train, y_train, x_test, y_test = read_mnist_npz(files.paths[0])
        places: tuple[str, ...] = tuple(f"{files.paths[0]}: {k}" for k in NPZ_KEYS)
    else:
        x_train, y_train, x_test, y_test = (read_idx(p) for p in files.paths)
        places = files.paths
    _check_images(x_train, places[0])
    _check_labels(y_train, x_train.shape[0], places[1])
    _check_images(x_test, places[2])
    _check_labels(y_test, x_test.shape[0], places[3])
    for x, place in ((x_train, places[0]), (x_test, places[2])):
        if x.shape[0] == 0:
            raise DataError(
                f"{place}: holds no images; the set needs at least one training and one test image"
            )
    if limit_train is not None:
        x_train, y_train = x_train[:limit_train], y_train[:limit_train]

    def flat(x: np.ndarray) -> np.ndarray:
        return x.reshape(x.shape[0], 28 * 28).astype(np.float32) / np.float32(255)

    return Dataset(
        key,
        flat(x_train),
        y_train.astype(np.int64),
        flat(x_test),
        y_test.astype(np.int64),
        source=files.source,
    )


def load(
    name: str,
    data_dir: str | os.PathLike[str] | None = None,
    limit_train: int | None = None,
    seed: int = 0,
) -> Dataset:
    """Load a data set by name.

    Args:
        name: One of :data:`DATASETS` (case and ``_``/``-`` do not matter), or the path of your
            own ``.npz`` archive (:func:`~locograd.data.npz.read_dataset_npz`).
        data_dir: For MNIST-format sets, the only folder to look in (see
            :func:`find_mnist_files`); refused for ``"curves"``, which reads no files.
        limit_train: ``None`` or an integer >= 1.  For a file set, keep the
            first ``limit_train`` training examples (a limit above the set's
            size keeps them all); for ``"curves"``, generate only the first
            ``limit_train`` of its 20,000 training images (a prefix: the same
            images), and all 20,000 for a larger limit, as for a file set (before,
            a larger limit generated more images than the set has, and a huge
            one ran out of memory).  The test split is never cut.
        seed: The CURVES seed (see :func:`locograd.data.curves`); ignored for
            file sets, which are returned in file order.

    Returns:
        The :class:`Dataset`: images ``(N, 784)`` float32 in [0, 1]; labels
        ``(N,)`` int64 for MNIST and Fashion-MNIST, ``None`` for CURVES.
        Nothing is cached on disk.

    Raises:
        DataError: For an unknown name, a bad ``limit_train`` or ``seed``,
            files not found (the message lists where it looked), or files
            that are damaged or of the wrong shape.
    """
    if limit_train is not None:
        limit_train = check_int("limit_train", limit_train, 1)
    if is_file_name(name):
        if data_dir is not None:
            raise DataError(f"data_dir: {os.fspath(name)} is read from its own path; drop data_dir")
        return read_dataset_npz(name, limit_train)
    key = canonical_name(name)
    if limit_train is not None:
        limit_train = check_int("limit_train", limit_train, 1)
    seed = check_int("seed", seed, 0)
    if key == "curves" and data_dir is not None:
        # before, data_dir was ignored here: a mistyped --dataset trained on CURVES with no word
        raise DataError(
            "data_dir: curves is generated, not read from files; drop data_dir or choose "
            f"{' or '.join(SUBFOLDERS)}"
        )
    if key == "curves":
        return curves(n_train=min(limit_train or CURVES_TRAIN, CURVES_TRAIN), n_test=10000, seed=seed)
    return _read_mnist(key, find_mnist_files(key, data_dir), limit_train)
