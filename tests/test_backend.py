"""The array backend: the namespace follows the data, scoped device choice, clear errors on mixing."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import pytest

import locograd as lg
from locograd import backend


def test_namespace_follows_numpy_data() -> None:
    assert backend.array_namespace(np.zeros(2), 1.0, None) is np
    assert backend.array_namespace() is np


def test_non_array_is_a_clear_error() -> None:
    with pytest.raises(TypeError, match=r"x: expected a numpy\.ndarray or cupy\.ndarray, got list"):
        backend.array_namespace(x=[1.0, 2.0])


def test_default_device_is_scoped_and_float64() -> None:
    assert backend.current_device() == "cpu"
    with backend.default_device("cpu") as xp:
        assert xp is np
        z = backend.zeros((2, 2))
    assert z.dtype == np.float64 and isinstance(z, np.ndarray)
    with pytest.raises(ValueError, match=r"device: expected one of \('cpu', 'gpu'\), got 'tpu'"):
        with backend.default_device("tpu"):
            pass


def test_gpu_request_without_gpu_is_a_clear_error() -> None:
    if backend.has_gpu():
        pytest.skip("a GPU is usable here; the error path is for machines without one")
    with pytest.raises(RuntimeError, match="device='gpu' needs CuPy and a usable CUDA device"):
        with backend.default_device("gpu"):
            pass


def test_has_gpu_is_false_when_cupy_cannot_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """An importable CuPy with no device is not a GPU."""

    class Runtime:
        @staticmethod
        def getDeviceCount() -> int:
            raise RuntimeError("cudaErrorNoDevice")

    class FakeCupy:
        cuda = type("cuda", (), {"runtime": Runtime})

    monkeypatch.setattr(backend, "_cupy", lambda: FakeCupy)
    backend.has_gpu.cache_clear()
    try:
        assert backend.has_gpu() is False
    finally:
        backend.has_gpu.cache_clear()


def test_to_numpy_and_tree_helpers() -> None:
    x = np.arange(3.0)
    assert backend.to_numpy(x) is x
    tree = [{"W": np.ones(2), "b": np.zeros(1)}]
    doubled = backend.tree_map(lambda a: 2 * a, tree)
    assert doubled[0]["W"].tolist() == [2.0, 2.0]
    assert len(backend.tree_leaves(tree)) == 2


class AdamLike(NamedTuple):
    step: int
    m: Any
    v: Any


def test_tree_map_treats_a_namedtuple_as_a_node() -> None:
    """A NamedTuple inside a list is mapped field by field and rebuilt as the same type (as in JAX)."""
    state = [AdamLike(3, {"W": np.ones(2)}, {"W": np.full(2, 2.0)})]
    out = backend.tree_map(lambda a: a * 10, state)
    assert type(out) is list and type(out[0]) is AdamLike
    assert out[0].step == 30  # a non-array leaf goes to fn like any other
    assert out[0].m["W"].tolist() == [10.0, 10.0] and out[0].v["W"].tolist() == [20.0, 20.0]
    assert backend.tree_leaves(state) == [3, state[0].m["W"], state[0].v["W"]]
    summed = backend.tree_map(lambda a, b: a + b, state, out)
    assert type(summed[0]) is AdamLike and summed[0].v["W"].tolist() == [22.0, 22.0]


def test_tree_map_nested_namedtuples_and_plain_tuples() -> None:
    inner = AdamLike(1, (np.zeros(1), np.ones(1)), [AdamLike(2, np.ones(3), None)])
    out = backend.tree_map(lambda a: a if a is None else a + 1, {"outer": inner})
    got = out["outer"]
    assert type(got) is AdamLike and type(got.m) is tuple and type(got.v[0]) is AdamLike
    assert got.step == 2 and got.m[1].tolist() == [2.0] and got.v[0].m.tolist() == [2.0] * 3
    assert got.v[0].v is None
    assert len(backend.tree_leaves({"outer": inner})) == 6  # 1, zeros, ones, 2, ones(3), None


def test_tree_map_mismatched_structure_is_a_clear_error() -> None:
    a = [AdamLike(1, {"W": np.ones(2)}, [np.ones(1)])]
    with pytest.raises(ValueError, match=r"tree_map: tree\[0\]\[2\]: expected a list of 1, got a list of 2"):
        backend.tree_map(lambda x, y: x, a, [AdamLike(1, {"W": np.ones(2)}, [np.ones(1), np.ones(1)])])
    with pytest.raises(
        ValueError, match=r"tree\[0\]\[1\]: expected a dict with keys \['W'\], got a dict with keys \['b'\]"
    ):
        backend.tree_map(lambda x, y: x, a, [AdamLike(1, {"b": np.ones(2)}, [np.ones(1)])])
    with pytest.raises(
        ValueError, match=r"tree\[0\]: expected a NamedTuple AdamLike\('step', 'm', 'v'\), got a tuple of 3"
    ):
        backend.tree_map(lambda x, y: x, a, [(1, {"W": np.ones(2)}, [np.ones(1)])])
    with pytest.raises(ValueError, match=r"tree: expected a list of 1, got a leaf \(ndarray\)"):
        backend.tree_map(lambda x, y: x, a, np.ones(1))


def test_asarray_takes_dtype_second_as_numpy_does() -> None:
    """Before: asarray(x, np.float32) passed the dtype as the device: "device: expected ...", got <class>."""
    z = backend.asarray([1, 2], np.float32)
    assert isinstance(z, np.ndarray) and z.dtype == np.float32
    assert backend.asarray(np.arange(2.0), dtype=np.float64, device="cpu").dtype == np.float64
    with pytest.raises(TypeError):
        backend.asarray(np.ones(2), np.float32, "cpu")  # type: ignore[misc]  # device is keyword-only
    with pytest.raises(
        ValueError,
        match=r"device: expected one of \('cpu', 'gpu'\) or None, got dtype float32 \(pass dtype=\.\.\.\)",
    ):
        backend.to_device(np.ones(2), np.float32)  # type: ignore[arg-type]  # to_device(x, device, dtype)


@pytest.mark.gpu
def test_cupy_round_trip_and_namespace() -> None:
    cp = backend.cupy_module()
    with backend.default_device("gpu") as xp:
        assert xp is cp
        z = backend.asarray(np.arange(4.0))
    assert backend.array_namespace(z=z) is cp and backend.device_of(z) == "gpu"
    np.testing.assert_array_equal(backend.to_numpy(z), np.arange(4.0))


@pytest.mark.gpu
def test_mixing_numpy_and_cupy_is_a_clear_error() -> None:
    cp = backend.cupy_module()
    with pytest.raises(TypeError, match=r"NumPy and CuPy arrays mixed in one call \(x is numpy, W is cupy\)"):
        backend.array_namespace(x=np.zeros(2), W=cp.zeros(2))
    net = lg.MLP([2, 2], ["identity"], "squared_error")
    with backend.default_device("gpu"):
        params = net.init()
    with pytest.raises(TypeError, match="mixed"):
        net.forward(params, np.zeros((1, 2)))
    with pytest.raises(TypeError, match="mixed"):
        lg.bregman.divergence("tanh", np.zeros((1, 2)), cp.zeros((1, 2)))


@pytest.mark.gpu
def test_gpu_init_matches_cpu_init() -> None:
    net = lg.MLP([5, 3, 2], ["tanh", "identity"], "squared_error")
    cpu = net.init(seed=4, bias="glorot")
    gpu = net.init(seed=4, bias="glorot", device="gpu")
    for a, b in zip(cpu, gpu, strict=True):
        np.testing.assert_array_equal(a["W"], backend.to_numpy(b["W"]))
