"""Your own data from one ``.npz`` (``read_dataset_npz``, ``load(PATH.npz)``): shapes, scaling, and
every kind of bad archive refused in one line naming the array, each beside a negative control."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from locograd.data import DataError, load, read_dataset_npz


def write(path: Path, **arrays: np.ndarray) -> str:
    np.savez(path, **arrays)
    return str(path)


@pytest.mark.parametrize(
    ("shape", "image_shape"), [((5, 4, 3, 2), (4, 3, 2)), ((5, 4, 3), (4, 3)), ((5, 7), (7,))]
)
def test_examples_of_every_rank_are_flattened_and_uint8_is_scaled(tmp_path: Path, shape, image_shape) -> None:
    x = np.arange(np.prod(shape), dtype=np.int64).reshape(shape) % 256
    path = write(tmp_path / "mine.npz", x_train=x.astype(np.uint8), x_test=x[:2].astype(np.uint8))
    ds = load(path, limit_train=3)
    assert ds.x_train.shape == (3, int(np.prod(image_shape))) and ds.image_shape == image_shape
    assert (
        ds.x_train.dtype == np.float32
        and (ds.x_train == x[:3].reshape(3, -1).astype(np.float32) / np.float32(255)).all()
    )
    assert ds.x_train[1].reshape(image_shape).shape == image_shape and not ds.has_labels


def test_floats_are_taken_as_they_are_and_labels_as_int64(tmp_path: Path) -> None:
    x = np.random.default_rng(0).normal(size=(6, 3)) * 10  # outside [0, 1]: not scaled, not clipped
    path = write(
        tmp_path / "f.npz", x_train=x, x_test=x[:2], y_train=np.arange(6) % 2, y_test=np.array([1, 0])
    )
    ds = read_dataset_npz(path)
    assert ds.x_train.dtype == np.float64 and (ds.x_train == x).all()
    assert (
        ds.y_train is not None and ds.y_train.dtype == np.int64 and ds.y_train.tolist() == [0, 1, 0, 1, 0, 1]
    )


BAD = [
    ({"x_train": np.zeros((3, 2))}, r"missing x_test \(has: x_train\)"),
    (
        {"x_train": np.zeros((3, 2)), "x_test": np.zeros((1, 2)), "y_train": np.zeros(3, int)},
        r"has y_train but no y_test",
    ),
    (
        {"x_train": np.array([[np.nan, 1.0]]), "x_test": np.zeros((1, 2))},
        r"x_train holds 1 NaN or infinite values",
    ),
    (
        {"x_train": np.zeros((2, 2)), "x_test": np.array([[np.inf, 0.0]])},
        r"x_test holds 1 NaN or infinite values",
    ),
    (
        {
            "x_train": np.zeros((3, 2)),
            "x_test": np.zeros((1, 2)),
            "y_train": np.zeros(2, int),
            "y_test": np.zeros(1, int),
        },
        r"y_train: expected one label per example of x_train, shape \(3,\), got \(2,\)",
    ),
    (
        {
            "x_train": np.zeros((3, 2)),
            "x_test": np.zeros((1, 2)),
            "y_train": np.zeros(3),
            "y_test": np.zeros(1, int),
        },
        r"y_train: expected integer labels, got float64",
    ),
    (
        {
            "x_train": np.zeros((3, 2)),
            "x_test": np.zeros((1, 2)),
            "y_train": np.array([1, None, 2], dtype=object),
            "y_test": np.zeros(1, int),
        },
        r"y_train holds Python objects, which would need unpickling; refused",
    ),
    (
        {"x_train": np.zeros((3, 2)), "x_test": np.zeros((1, 3))},
        r"x_test: expected examples of shape \(2,\) like x_train, got \(3,\)",
    ),
    ({"x_train": np.zeros((0, 2)), "x_test": np.zeros((1, 2))}, r"x_train holds no examples"),
    ({"x_train": np.zeros(3), "x_test": np.zeros(1)}, r"x_train: expected numbers of shape \(N, D\)"),
    (
        {"x_train": np.zeros((3, 2), np.int32), "x_test": np.zeros((1, 2), np.int32)},
        r"x_train: integer examples must be uint8",
    ),
]


@pytest.mark.parametrize(("arrays", "message"), BAD)
def test_a_bad_archive_is_refused_in_one_line_naming_the_array(tmp_path: Path, arrays, message: str) -> None:
    path = write(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError, match=message) as err:
        load(path)
    assert "\n" not in str(err.value) and str(err.value).startswith(path)


def test_the_negative_control_and_what_is_not_an_archive(tmp_path: Path) -> None:
    good = write(tmp_path / "good.npz", x_train=np.zeros((3, 2)), x_test=np.zeros((1, 2)))
    assert load(good).n_train == 3  # the same shapes, nothing wrong: read
    text = tmp_path / "text.npz"
    text.write_text("x_train = 1\n")
    with pytest.raises(DataError, match=r"not an .npz archive"):
        load(str(text))
    with pytest.raises(DataError, match=r"data_dir: .* is read from its own path"):
        load(good, data_dir=str(tmp_path))
