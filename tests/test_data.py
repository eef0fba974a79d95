"""locograd.data: the CURVES re-creation, IDX and npz readers, the registry's look-up order, real Fashion-MNIST."""

from __future__ import annotations

import gzip
import hashlib
import importlib
import os
from pathlib import Path

import numpy as np
import pytest

from locograd import data
from locograd.data import (
    DATASETS,
    DataError,
    Dataset,
    curves,
    find_mnist_files,
    load,
    read_idx,
    read_mnist_npz,
    registry,
    write_idx,
)

# the function locograd.data.curves shadows its module's name in the package
curves_module = importlib.import_module("locograd.data.curves")

FASHION_DIR = "/usr/share/datasets/fashion-mnist"


def sha256(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(a.tobytes())
    return h.hexdigest()


def assert_one_line_naming(err: pytest.ExceptionInfo[DataError], *needles: str) -> None:
    message = str(err.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"


# ---------------------------------------------------------------- CURVES


@pytest.fixture(scope="module")
def small_curves() -> Dataset:
    return curves(n_train=300, n_test=100, seed=0)


def test_curves_shapes_dtype_range(small_curves: Dataset) -> None:
    ds = small_curves
    assert ds.name == "curves" and ds.source == "generated (seed 0)" and ds.image_shape == (28, 28)
    assert ds.x_train.shape == (300, 784) and ds.x_test.shape == (100, 784)
    assert ds.x_train.dtype == np.float32 and ds.x_test.dtype == np.float32
    assert ds.y_train is None and ds.y_test is None
    for x in (ds.x_train, ds.x_test):
        assert np.isfinite(x).all() and x.min() >= 0.0 and x.max() <= 1.0


def test_curves_same_seed_same_bytes_other_seed_differs(small_curves: Dataset) -> None:
    again = curves(n_train=300, n_test=100, seed=0)
    assert sha256(again.x_train, again.x_test) == sha256(small_curves.x_train, small_curves.x_test)
    other = curves(n_train=300, n_test=100, seed=1)
    assert sha256(other.x_train) != sha256(small_curves.x_train)
    assert sha256(other.x_test) != sha256(small_curves.x_test)


def test_curves_fewer_images_are_a_prefix(small_curves: Dataset) -> None:
    few = curves(n_train=37, n_test=5, seed=0)  # other chunk boundaries, same images
    assert few.x_train.tobytes() == small_curves.x_train[:37].tobytes()
    assert few.x_test.tobytes() == small_curves.x_test[:5].tobytes()


def test_curves_are_not_trivial(small_curves: Dataset) -> None:
    for x in (small_curves.x_train, small_curves.x_test):
        assert (x.max(axis=1) > 0.67).all()  # every image has a bright pixel
        assert ((x > 0.5).sum(axis=1) >= 3).all()  # ... and a stroke, not a dot
        assert ((x == 0).mean(axis=1) > 0.5).all()  # background is exactly 0
        assert len(np.unique(x, axis=0)) == len(x)  # all images differ
    train, test = small_curves.x_train, small_curves.x_test
    assert not (train[:, None, :] == test[None, :, :]).all(axis=2).any()  # no test image is a train image


def exact_distance(ctrl: np.ndarray, p: np.ndarray) -> float:
    """Distance from point ``p`` (2,) to the quadratic Bezier ``ctrl`` (3, 2): roots of d|B(t) - p|^2/dt."""
    c, b, a = (
        ctrl[0] - p,
        2 * (ctrl[1] - ctrl[0]),
        ctrl[0] - 2 * ctrl[1] + ctrl[2],
    )  # B(t) - p = c + t b + t^2 a
    coeffs = [2 * a @ a, 3 * a @ b, b @ b + 2 * c @ a, c @ b]
    roots = np.roots(np.trim_zeros(np.array(coeffs), "f")) if np.any(coeffs) else np.array([])
    ts = np.concatenate([[0.0, 1.0], np.clip(roots[np.abs(roots.imag) < 1e-9].real, 0.0, 1.0)])
    return float(np.sqrt(((c + ts[:, None] * b + ts[:, None] ** 2 * a) ** 2).sum(axis=1)).min())


def test_curve_pen_matches_the_exact_distance() -> None:
    points = curves_module.control_points(np.random.default_rng(5), 4)
    drawn = curves_module.render(points)
    pixels = [np.array([x, y], dtype=np.float64) for y in range(28) for x in range(28)]  # row-major (x, y)
    d = np.array([[exact_distance(ctrl, p) for p in pixels] for ctrl in points])
    exact = np.exp(-(d**2) / (2 * curves_module.PEN_SIGMA**2))
    # sample points lie on the curve, so the drawn distance is never smaller than the true one ...
    assert (drawn <= exact + 1e-5).all()
    # ... and at most 0.2 px larger (samples 0.4 px apart), plus the cut at 4 sigma
    assert np.abs(drawn - exact).max() < 0.035
    assert (drawn[d > 4 * curves_module.PEN_SIGMA + 0.2] == 0).all()


def test_curve_goes_through_the_three_drawn_points() -> None:
    raw = np.random.default_rng(3).uniform(
        curves_module.MARGIN, 28 - 1 - curves_module.MARGIN, size=(50, 3, 2)
    )
    ctrl = curves_module.control_points(np.random.default_rng(3), 50)
    gaps = [exact_distance(ctrl[i], raw[i, k]) for i in range(50) for k in range(3)]
    assert max(gaps) < 1e-6


def test_render_a_straight_line() -> None:
    line = np.array([[[2.0, 10.0], [12.0, 10.0], [22.0, 10.0]]])  # (x, y): row 10, columns 2..22
    img = curves_module.render(line).reshape(28, 28)
    assert (img[10, 2:23] > 0.968).all()  # samples 0.4 px apart: at most 0.2 px off
    one_px_away = img[9, 5:20]  # d = 1 exactly, or up to sqrt(1 + 0.2**2) between samples
    assert (one_px_away <= np.exp(-1 / (2 * 0.8**2)) + 1e-6).all()
    assert (one_px_away >= np.exp(-(1 + 0.2**2) / (2 * 0.8**2)) - 1e-6).all()
    assert (img[15:, :] == 0).all() and (img[:, 26:] == 0).all()


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"n_train": 0}, "n_train: expected an integer >= 1, got 0"),
        ({"n_train": -3}, "n_train"),
        ({"n_train": 2.5}, "n_train: expected an integer >= 1, got float 2.5"),
        ({"n_train": True}, "n_train"),
        ({"n_train": "10"}, "n_train"),
        ({"n_test": 0}, "n_test"),
        ({"seed": -1}, "seed: expected an integer >= 0, got -1"),
        ({"size": 4}, "size"),
    ],
)
def test_curves_bad_arguments(kwargs: dict[str, object], needle: str) -> None:
    with pytest.raises(DataError) as err:
        curves(**kwargs)  # type: ignore[arg-type]
    assert_one_line_naming(err, needle)


def test_curves_accepts_numpy_integers() -> None:
    ds = curves(n_train=np.int64(3), n_test=np.int32(2), seed=np.uint8(4))
    assert ds.x_train.shape == (3, 784) and ds.source == "generated (seed 4)"


# ---------------------------------------------------------------- IDX


@pytest.mark.parametrize("name", ["a-idx3-ubyte", "a-idx3-ubyte.gz"])
@pytest.mark.parametrize("shape", [(5,), (3, 28, 28), (2, 3, 4, 5), (0, 28, 28)])
def test_idx_round_trip(tmp_path: Path, name: str, shape: tuple[int, ...]) -> None:
    array = np.random.default_rng(0).integers(0, 256, size=shape, dtype=np.uint8)
    path = tmp_path / name
    write_idx(path, array)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == name.endswith(".gz")
    back = read_idx(path)
    assert back.dtype == np.uint8 and back.shape == shape and (back == array).all()
    assert back.flags.writeable
    assert os.listdir(tmp_path) == [name]  # no temporary file left behind


def test_idx_gz_is_detected_by_content_not_name(tmp_path: Path) -> None:
    array = np.arange(12, dtype=np.uint8).reshape(3, 4)
    write_idx(tmp_path / "raw.idx", array)
    os.replace(tmp_path / "raw.idx", tmp_path / "raw-but-named.gz")
    assert (read_idx(tmp_path / "raw-but-named.gz") == array).all()
    write_idx(tmp_path / "packed.gz", array)
    os.replace(tmp_path / "packed.gz", tmp_path / "packed-no-suffix")
    assert (read_idx(str(tmp_path / "packed-no-suffix")) == array).all()


def test_write_idx_is_reproducible_and_replaces(tmp_path: Path) -> None:
    a = np.arange(6, dtype=np.uint8)
    write_idx(tmp_path / "x.gz", a)
    first = (tmp_path / "x.gz").read_bytes()
    write_idx(tmp_path / "x.gz", a[::-1].copy())
    write_idx(tmp_path / "x.gz", a)
    assert (tmp_path / "x.gz").read_bytes() == first  # no time stamp in the gzip header


@pytest.mark.parametrize(
    ("code", "dtype"), [(0x09, ">i1"), (0x0B, ">i2"), (0x0C, ">i4"), (0x0D, ">f4"), (0x0E, ">f8")]
)
def test_read_idx_other_type_codes(tmp_path: Path, code: int, dtype: str) -> None:
    values = np.array([[-2, 0, 3], [7, -1, 5]], dtype=dtype)
    path = tmp_path / "typed.idx"
    path.write_bytes(bytes([0, 0, code, 2]) + np.array([2, 3], ">u4").tobytes() + values.tobytes())
    back = read_idx(path)
    assert back.dtype.isnative and back.dtype == np.dtype(dtype).newbyteorder("=")
    np.testing.assert_array_equal(back, values)


def idx_bytes(shape: tuple[int, ...], payload: int | None = None, code: int = 0x08) -> bytes:
    """A uint8 IDX file for ``shape`` with ``payload`` bytes of data (default: the right number)."""
    n = int(np.prod(shape)) if payload is None else payload
    return bytes([0, 0, code, len(shape)]) + np.array(shape, ">u4").tobytes() + bytes(n)


CORRUPT: dict[str, tuple[bytes, tuple[str, ...]]] = {
    "empty file": (b"", ("truncated IDX header", "0 bytes")),
    "truncated header": (b"\x00\x00\x08", ("truncated IDX header",)),
    "truncated dims": (
        bytes([0, 0, 8, 3]) + np.array([2, 2], ">u4").tobytes(),
        ("need 16 for 3 dimensions",),
    ),
    "bad magic": (b"\x01\x02" + idx_bytes((2, 2))[2:], ("not an IDX file", "01 02 08 02")),
    "PNG instead": (b"\x89PNG\r\n\x1a\n" + bytes(20), ("not an IDX file",)),
    "unsupported type": (idx_bytes((2, 2), code=0x07), ("unsupported IDX type code 0x07",)),
    "zero dims": (bytes([0, 0, 8, 0]), ("0 dimensions",)),
    "truncated payload": (idx_bytes((3, 28, 28), payload=2000), ("2000 bytes, expected 2352", "truncated")),
    "trailing bytes": (idx_bytes((2, 3), payload=9), ("9 bytes, expected 6", "3 trailing bytes")),
    "huge dims": (idx_bytes((2**32 - 1, 2**32 - 1), payload=4), ("4 bytes, expected",)),
    "truncated gzip": (gzip.compress(idx_bytes((50, 50)), mtime=0)[:-30], ("broken gzip data",)),
    "gzip magic, garbage": (b"\x1f\x8b" + bytes(30), ("broken gzip data",)),
}


@pytest.mark.parametrize("case", list(CORRUPT))
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_read_idx_corrupt_files(tmp_path: Path, case: str, suffix: str) -> None:
    content, needles = CORRUPT[case]
    path = tmp_path / f"bad{suffix}"
    path.write_bytes(content)
    with pytest.raises(DataError) as err:
        read_idx(path)
    assert_one_line_naming(err, str(path), *needles)


def test_read_idx_corrupt_inside_gzip(tmp_path: Path) -> None:
    path = tmp_path / "trunc-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes((10, 28, 28), payload=7000)))
    with pytest.raises(DataError) as err:
        read_idx(path)
    assert_one_line_naming(err, str(path), "7000 bytes, expected 7840")


def test_read_idx_missing_file_and_folder(tmp_path: Path) -> None:
    for path in (tmp_path / "nope.gz", tmp_path):
        with pytest.raises(DataError) as err:
            read_idx(path)
        assert_one_line_naming(err, str(path), "cannot read")


def test_write_idx_refuses_non_uint8_and_bad_folders(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        write_idx(tmp_path / "f.idx", np.zeros(3, dtype=np.float32))
    assert_one_line_naming(err, "uint8", "float32")
    with pytest.raises(DataError):
        write_idx(tmp_path / "s.idx", np.zeros((), dtype=np.uint8))
    with pytest.raises(DataError) as err:
        write_idx(tmp_path / "missing" / "f.idx", np.zeros(3, dtype=np.uint8))
    assert_one_line_naming(err, "missing")
    assert sorted(os.listdir(tmp_path)) == []


# ---------------------------------------------------------------- npz


def save_npz(path: Path, **arrays: np.ndarray) -> None:
    np.savez(path, **arrays)  # type: ignore[arg-type]


def mnist_arrays(n_train: int = 6, n_test: int = 4, marker: int = 0) -> dict[str, np.ndarray]:
    """Tiny MNIST-format arrays; every pixel equals ``marker`` + image index (mod 256)."""
    x_train = ((marker + np.arange(n_train)) % 256).astype(np.uint8)[:, None, None] * np.ones(
        (1, 28, 28), np.uint8
    )
    x_test = ((marker + 100 + np.arange(n_test)) % 256).astype(np.uint8)[:, None, None] * np.ones(
        (1, 28, 28), np.uint8
    )
    return {
        "x_train": x_train,
        "y_train": (np.arange(n_train) % 10).astype(np.uint8),
        "x_test": x_test,
        "y_test": (np.arange(n_test) % 10).astype(np.uint8),
    }


def test_npz_round_trip(tmp_path: Path) -> None:
    arrays = mnist_arrays()
    save_npz(tmp_path / "mnist.npz", **arrays)
    for got, key in zip(
        read_mnist_npz(tmp_path / "mnist.npz"), ("x_train", "y_train", "x_test", "y_test"), strict=True
    ):
        np.testing.assert_array_equal(got, arrays[key])


def test_npz_missing_key(tmp_path: Path) -> None:
    arrays = mnist_arrays()
    del arrays["y_test"]
    save_npz(tmp_path / "m.npz", **arrays)
    with pytest.raises(DataError) as err:
        read_mnist_npz(tmp_path / "m.npz")
    assert_one_line_naming(err, str(tmp_path / "m.npz"), "missing y_test")


UNPICKLED: list[str] = []


def _record_unpickle() -> str:
    UNPICKLED.append("ran")
    return "payload"


class Trap:
    """Unpickling a Trap runs code: it must never happen."""

    def __reduce__(self) -> tuple[object, tuple[()]]:
        return (_record_unpickle, ())


def test_npz_object_array_is_refused_not_unpickled(tmp_path: Path) -> None:
    arrays: dict[str, np.ndarray] = dict(mnist_arrays())
    arrays["y_train"] = np.array([Trap()] * 6, dtype=object)
    save_npz(tmp_path / "evil.npz", **arrays)
    with pytest.raises(DataError) as err:
        read_mnist_npz(tmp_path / "evil.npz")
    assert_one_line_naming(err, str(tmp_path / "evil.npz"), "y_train", "unpickling")
    assert UNPICKLED == []


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"x_train": np.zeros((6, 784), np.uint8)}, "x_train must have shape (N, H, W)"),
        ({"y_test": np.zeros(3, np.uint8)}, "y_test shape (N,)"),
        ({"x_test": np.zeros((4, 28, 28), np.float32)}, "x_test must hold integers"),
    ],
)
def test_npz_wrong_shapes_and_dtypes(tmp_path: Path, change: dict[str, np.ndarray], needle: str) -> None:
    save_npz(tmp_path / "m.npz", **{**mnist_arrays(), **change})
    with pytest.raises(DataError) as err:
        read_mnist_npz(tmp_path / "m.npz")
    assert_one_line_naming(err, str(tmp_path / "m.npz"), needle)


def test_npz_not_an_archive(tmp_path: Path) -> None:
    (tmp_path / "junk.npz").write_bytes(b"this is not a zip file")
    np.save(tmp_path / "single.npy", np.zeros(3))
    for path in (tmp_path / "junk.npz", tmp_path / "single.npy", tmp_path / "absent.npz"):
        with pytest.raises(DataError) as err:
            read_mnist_npz(path)
        assert_one_line_naming(err, str(path))


# ---------------------------------------------------------------- registry


def write_mnist_folder(folder: Path, marker: int, gz: bool = True, n_train: int = 6, n_test: int = 4) -> Path:
    """Write the four IDX files of a tiny MNIST-format set whose pixels start at ``marker``."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays = mnist_arrays(n_train, n_test, marker)
    keys = ("x_train", "y_train", "x_test", "y_test")
    for base, key in zip(registry.IDX_NAMES, keys, strict=True):
        write_idx(folder / (base + (".gz" if gz else "")), arrays[key])
    return folder


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No LOCOGRAD_DATA, HOME in tmp_path, and system places that are tmp_path/system/<name>."""
    monkeypatch.delenv(registry.ENV_VAR, raising=False)
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(
        registry,
        "SEARCH_PATHS",
        {name: [str(tmp_path / "system" / name)] for name in ("mnist", "fashion-mnist")},
    )
    return tmp_path


def marker_of(ds: Dataset) -> int:
    return round(float(ds.x_train[0, 0]) * 255)


def test_unknown_name_lists_the_valid_ones() -> None:
    with pytest.raises(DataError) as err:
        load("cifar10")
    assert_one_line_naming(
        err, "dataset: unknown name 'cifar10'; valid names are curves, mnist, fashion-mnist"
    )
    assert DATASETS == ("curves", "mnist", "fashion-mnist")
    with pytest.raises(DataError):
        load(None)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["fashion-mnist", "mnist"])
def test_lookup_order(isolated: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    given = write_mnist_folder(isolated / "given", marker=10)
    env = write_mnist_folder(isolated / "env", marker=20)
    system = write_mnist_folder(isolated / "system" / name, marker=30)
    monkeypatch.setenv(registry.ENV_VAR, str(env))
    ds = load(name, data_dir=given)
    assert (marker_of(ds), ds.source, ds.name) == (10, str(given), name)
    ds = load(name)
    assert (marker_of(ds), ds.source) == (20, str(env))
    monkeypatch.delenv(registry.ENV_VAR)
    ds = load(name)
    assert (marker_of(ds), ds.source) == (30, str(system))


def test_data_dir_is_the_only_place_when_given(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = write_mnist_folder(isolated / "env", marker=20)
    write_mnist_folder(isolated / "system" / "fashion-mnist", marker=30)
    monkeypatch.setenv(registry.ENV_VAR, str(env))
    (isolated / "empty").mkdir()
    with pytest.raises(DataError) as err:
        load("fashion-mnist", data_dir=isolated / "empty")
    assert_one_line_naming(err, str(isolated / "empty"), "fashion-mnist not found in data_dir")
    assert str(env) not in str(err.value) and "system" not in str(err.value)


def test_subfolders_of_a_root(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = isolated / "root"
    write_mnist_folder(root / "FashionMNIST" / "raw", marker=40, gz=False)  # torchvision layout, raw files
    write_mnist_folder(root / "mnist", marker=50)
    monkeypatch.setenv(registry.ENV_VAR, str(root))
    assert marker_of(load("fashion-mnist")) == 40
    assert marker_of(load("Fashion_MNIST")) == 40
    assert marker_of(load("mnist")) == 50
    write_mnist_folder(root / "fashion-mnist", marker=60)  # the set's own name beats torchvision's
    assert marker_of(load("fashion-mnist", data_dir=root)) == 60


def test_keras_npz_in_home(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "SEARCH_PATHS", {**registry.SEARCH_PATHS, "mnist": ["~/.keras/datasets"]})
    keras = isolated / "home" / ".keras" / "datasets"
    keras.mkdir(parents=True)
    save_npz(keras / "mnist.npz", **mnist_arrays(marker=70))
    files = find_mnist_files("mnist")
    assert files.kind == "npz" and files.paths == (str(keras / "mnist.npz"),)
    ds = load("mnist")
    assert marker_of(ds) == 70 and ds.source == str(keras / "mnist.npz")
    assert find_mnist_files("mnist", data_dir=keras / "mnist.npz").paths == (str(keras / "mnist.npz"),)
    with pytest.raises(DataError):  # mnist.npz is not Fashion-MNIST
        find_mnist_files("fashion-mnist", data_dir=keras)


def test_data_dir_must_be_a_folder(isolated: Path) -> None:
    with pytest.raises(DataError) as err:
        load("fashion-mnist", data_dir=isolated / "absent")
    assert_one_line_naming(err, str(isolated / "absent"), "does not exist")
    (isolated / "file").write_bytes(b"")
    with pytest.raises(DataError) as err:
        load("mnist", data_dir=isolated / "file")
    assert_one_line_naming(err, str(isolated / "file"), "is a file")


def test_default_search_paths_expand_home_at_lookup(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "SEARCH_PATHS", {"mnist": ["~/data/MNIST/raw"], "fashion-mnist": []})
    folder = write_mnist_folder(isolated / "home" / "data" / "MNIST" / "raw", marker=80)
    files = find_mnist_files("mnist")
    assert files.kind == "idx" and files.source == str(folder)
    assert [os.path.basename(p) for p in files.paths] == [b + ".gz" for b in registry.IDX_NAMES]


@pytest.mark.parametrize(
    ("name", "hint"), [("fashion-mnist", "apt-get install dataset-fashion-mnist"), ("mnist", "mnist.npz")]
)
def test_nothing_found_lists_the_places(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, name: str, hint: str
) -> None:
    monkeypatch.setenv(registry.ENV_VAR, str(isolated / "env"))
    with pytest.raises(DataError) as err:
        load(name)
    places = [str(isolated / "env" / sub) for sub in registry.SUBFOLDERS[name]]
    places += [str(isolated / "env"), str(isolated / "system" / name)]
    assert_one_line_naming(err, f"{name} not found", *places, hint, "LOCOGRAD_DATA", "--data-dir")


def test_partial_folder_says_what_is_missing(isolated: Path) -> None:
    folder = write_mnist_folder(isolated / "partial", marker=1)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError) as err:
        load("mnist", data_dir=folder)
    assert_one_line_naming(err, str(folder), "has 3 of the 4 IDX files, lacks t10k-labels-idx1-ubyte[.gz]")


def test_loaded_arrays_are_converted(isolated: Path) -> None:
    folder = write_mnist_folder(isolated / "d", marker=250, n_train=9, n_test=3)
    ds = load("mnist", data_dir=folder)
    assert ds.x_train.shape == (9, 784) and ds.x_test.shape == (3, 784)
    assert ds.x_train.dtype == np.float32 and ds.y_train is not None and ds.y_train.dtype == np.int64
    raw = mnist_arrays(9, 3, 250)
    np.testing.assert_array_equal(
        ds.x_train, raw["x_train"].reshape(9, 784).astype(np.float32) / np.float32(255)
    )
    np.testing.assert_array_equal(ds.y_train, raw["y_train"])
    assert ds.x_train.max() <= 1.0 and ds.x_train.min() >= 0.0


def test_limit_train(isolated: Path) -> None:
    folder = write_mnist_folder(isolated / "d", marker=5, n_train=8, n_test=3)
    ds = load("fashion-mnist", data_dir=folder, limit_train=3)
    assert ds.x_train.shape == (3, 784) and ds.y_train is not None and ds.y_train.shape == (3,)
    assert marker_of(ds) == 5 and ds.x_test.shape == (3, 784)
    assert load("fashion-mnist", data_dir=folder, limit_train=1000).n_train == 8  # above the size: keeps all
    assert load("curves", limit_train=7).x_train.shape == (7, 784)
    for bad in (0, -1, 2.5, True, "3"):
        with pytest.raises(DataError) as err:
            load("fashion-mnist", data_dir=folder, limit_train=bad)  # type: ignore[arg-type]
        assert_one_line_naming(err, "limit_train")


def test_curves_through_load_uses_the_seed() -> None:
    a, b = load("curves", limit_train=5, seed=3), curves(n_train=5, seed=3)
    assert a.x_train.tobytes() == b.x_train.tobytes() and a.source == "generated (seed 3)"
    with pytest.raises(DataError):
        find_mnist_files("curves")


@pytest.mark.parametrize(
    ("broken", "needle"),
    [
        ("t10k-images-idx3-ubyte.gz", "expected images of shape (N, 28, 28), got (4, 27, 27)"),
        ("train-labels-idx1-ubyte.gz", "expected 6 integer labels"),
    ],
)
def test_wrong_dims_and_label_counts(isolated: Path, broken: str, needle: str) -> None:
    folder = write_mnist_folder(isolated / "d", marker=0)
    replacement = np.zeros((4, 27, 27), np.uint8) if "images" in broken else np.zeros(5, np.uint8)
    write_idx(folder / broken, replacement)
    with pytest.raises(DataError) as err:
        load("mnist", data_dir=folder, limit_train=2)  # checked before the cut
    assert_one_line_naming(err, str(folder / broken), needle)


def test_dataset_checks_its_arrays() -> None:
    x = np.zeros((2, 784), np.float32)
    with pytest.raises(
        DataError, match=r"x_train must be a float32 \(or float64, like x_train\) array of shape"
    ):
        Dataset("bad", x.astype(np.float16), None, x, None, source="test")
    with pytest.raises(
        DataError, match=r"x_test must be a float32 \(or float64, like x_train\) array .* got a float32"
    ):
        Dataset("bad", x.astype(np.float64), None, x, None, source="test")  # one dtype for both splits
    assert Dataset("ok", x.astype(np.float64), None, x.astype(np.float64), None, source="test").n_train == 2
    with pytest.raises(DataError, match=r"y_test must be None or an array of shape \(2,\)"):
        Dataset("bad", x, None, x, np.zeros(3), source="test")
    assert "x_train=(2, 784)" in repr(Dataset("ok", x, None, x, None, source="test"))


def test_public_api() -> None:
    for name in ("Dataset", "load", "DATASETS", "DataError", "curves", "read_idx", "write_idx"):
        assert name in data.__all__
    assert {"read_mnist_npz", "find_mnist_files"} <= set(data.__all__)
    assert issubclass(DataError, ValueError)


# ---------------------------------------------------------------- real data


def test_real_fashion_mnist(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    if not os.path.isdir(FASHION_DIR):
        pytest.skip(f"{FASHION_DIR} is absent (apt-get install dataset-fashion-mnist)")
    monkeypatch.delenv(registry.ENV_VAR, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # the Debian package is found without any hint
    ds = load("fashion-mnist")
    assert ds.source == FASHION_DIR and ds.name == "fashion-mnist"
    assert ds.x_train.shape == (60000, 784) and ds.x_test.shape == (10000, 784)
    assert ds.x_train.dtype == np.float32 and ds.x_train.min() == 0.0 and ds.x_train.max() == 1.0
    assert ds.y_train is not None and ds.y_test is not None
    assert (np.bincount(ds.y_train) == 6000).all() and (np.bincount(ds.y_test) == 1000).all()
    small = load("fashion-mnist", limit_train=100)
    np.testing.assert_array_equal(small.x_train, ds.x_train[:100])
