"""The array backend: the namespace follows the data, scoped device choice, clear errors on mixing."""

from __future__ import annotations

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
