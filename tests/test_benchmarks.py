"""The benchmark harness: ``python -m benchmarks --quick`` runs end to end and reports every step kind.

No timing is asserted anywhere: the machine is shared and noisy.  When PyTorch
is installed, its steps are checked to compute what locograd's compute (so the
ratios compare like with like); without it that check skips.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from locograd.bench import model, steps

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("command", "where"),
    [(["-m", "benchmarks"], "checkout"), (["-m", "locograd", "bench"], "elsewhere")],
    ids=["python -m benchmarks", "locograd bench"],
)
def test_quick_run_reports_every_step_kind(tmp_path: Path, command: list[str], where: str) -> None:
    """Both entry points run end to end; ``locograd bench`` also from outside the source checkout."""
    out = tmp_path / "bench.json"
    # an installed locograd, or this checkout's when it runs uninstalled (PYTHONPATH=.)
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, *command, "--quick", "--out", str(out)],
        cwd=ROOT if where == "checkout" else tmp_path,
        env={**os.environ, "PYTHONPATH": path},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    report = json.loads(out.read_text())
    rows = {row["kind"]: row for row in report["steps"] if row["lib"] == "locograd"}
    assert set(rows) == set(model.KINDS)
    for kind, row in rows.items():
        assert row["ms_median"] > 0 and row["flops"] > 0, kind
        assert row["samples"] >= 1 and all(t > 0 for t in row["times_ms"]), kind
    assert report["matmul"]["locograd"]["gflops"] > 0
    assert report["settings"]["locograd_openblas_env"] == "as set"
    assert "| LocoProp-M K=10 SGD | locograd |" in done.stdout


def test_unknown_kind_is_an_error() -> None:
    from benchmarks import main

    assert main(["--quick", "--kinds", "backprop,frobnicate"]) == 2


def test_flop_counts_follow_the_layer_products() -> None:
    sizes, B = [3, 5, 2], 7
    S, S1 = 3 * 5 + 5 * 2, 5 * 2
    assert model.flops("backprop", sizes, B) == 2 * B * S + 2 * B * S + 2 * B * S1
    K = model.INNER_STEPS
    assert model.flops("locoprop_m", sizes, B, "torch") == 2 * B * S + 2 * B * S1 + 4 * K * B * S
    assert model.flops("locoprop_m", sizes, B) == model.flops("locoprop_m", sizes, B, "torch") - 2 * B * S
    for kind in set(model.KINDS) - set(model.CNN_KINDS):
        assert model.flops(kind, sizes, B) > model.flops("backprop", sizes, B) * (kind != "backprop")


def test_cnn_flop_counts_follow_the_patch_products() -> None:
    """The CNN's products, written out: conv 3x3x1->32 on 28x28 positions, conv 3x3x32->64 on 14x14,
    dense 3136->128 and 128->10; each 2 rows d_in d_out, three per layer but the first layer's input gradient."""
    B, K = 5, model.INNER_STEPS
    layers = [(B * 28 * 28, 9, 32), (B * 14 * 14, 288, 64), (B, 7 * 7 * 64, 128), (B, 128, 10)]
    one = [2 * r * i * o for r, i, o in layers]
    assert model.flops("cnn_backprop", [], B) == 3 * sum(one) - one[0]
    forward_and_inputs = 2 * sum(one) - one[0]
    assert model.flops("cnn_locoprop_m", [], B, "torch") == forward_and_inputs + 2 * K * sum(one)
    assert model.flops("cnn_locoprop_m", [], B) == forward_and_inputs + (2 * K - 1) * sum(one)


@pytest.mark.filterwarnings(
    "ignore::locograd.locoprop.LocoPropWarning"
)  # random data: a few targets leave tanh's range
@pytest.mark.parametrize("kind", sorted(set(model.TORCH_KINDS) - set(model.CNN_KINDS)))
def test_torch_steps_compute_what_locograd_computes(kind: str) -> None:
    torch = pytest.importorskip("torch")
    net, batch = model.network(quick=True), 6
    params, x = steps.host_data(net, batch, seed=3)
    params64 = [{k: v.astype(np.float64) for k, v in layer.items()} for layer in params]
    opt = steps.locograd_optimizer(kind, net)
    state = opt.init(params64)
    x64 = x.astype(np.float64)
    for _ in range(2):
        params64, state, _ = opt.step(params64, x64, x64, state)
    stepper = steps.torch_stepper(kind, net, batch, "cpu", seed=3, dtype=torch.float64)
    for _ in range(2):
        stepper.step()
    for ours, theirs in zip(params64, stepper.params(), strict=True):
        for key in ("W", "b"):
            np.testing.assert_allclose(theirs[key], ours[key], rtol=1e-10, atol=1e-12)


@pytest.mark.filterwarnings("ignore::locograd.locoprop.LocoPropWarning")  # relu targets below 0
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
@pytest.mark.parametrize("kind", model.CNN_KINDS)
def test_torch_cnn_steps_compute_what_locograd_computes(kind: str, layout: str) -> None:
    """Two steps of the CNN twin (conv2d, max_pool2d; LocoProp-M on unfold's patches) in float64 equal
    locograd's to 1e-10: the same products summed in another order."""
    torch = pytest.importorskip("torch")
    net, batch = model.cnn_network(quick=True), 4
    params, x, y = steps.cnn_host_data(net, batch, seed=3)
    params64 = [{k: v.astype(np.float64) for k, v in layer.items()} for layer in params]
    opt = steps.locograd_optimizer(kind, net)
    state = opt.init(params64)
    for _ in range(2):
        params64, state, _ = opt.step(params64, x.astype(np.float64), y, state)
    stepper = steps.torch_cnn_stepper(kind, net, batch, "cpu", seed=3, dtype=torch.float64, layout=layout)
    for _ in range(2):
        stepper.step()
    for ours, theirs in zip(params64, stepper.params(), strict=True):
        assert ours.keys() == theirs.keys()
        for key in ours:
            np.testing.assert_allclose(theirs[key], ours[key], rtol=1e-10, atol=1e-12)


# The optimisations the benchmark measures change no number: the fast paths equal the plain ones bit for bit.


def _tree_equal(a: object, b: object) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_tree_equal(a[k], b[k]) for k in a)
    if isinstance(a, tuple) and isinstance(b, tuple):  # NamedTuple states, tuples of them
        return type(a) is type(b) and len(a) == len(b) and all(map(_tree_equal, a, b))
    return bool(np.array_equal(np.asarray(a), np.asarray(b)))


INNERS = ["gd", "sgd", "momentum", "nesterov", "adam", "adagrad", "rmsprop", "rmsprop_tf1"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("variant", ["S", "M"])
@pytest.mark.parametrize("eta", [None, 0.5])
@pytest.mark.parametrize("inner_name", INNERS)
def test_inner_loop_in_buffers_equals_the_plain_loop_bit_for_bit(
    dtype: type, variant: str, eta: float | None, inner_name: str
) -> None:
    from locograd import locoprop, optim
    from locograd._fast.local import solve_gd_inplace
    from locograd.locoprop.objectives import _gradient as displacement_gradient
    from locograd.optim.schedules import released_inner_factor

    rng = np.random.default_rng(7)
    X = rng.standard_normal((9, 5)).astype(dtype)
    anchor = {"W": rng.standard_normal((5, 4)).astype(dtype), "b": rng.standard_normal(4).astype(dtype)}
    pre = X @ anchor["W"] + anchor["b"]
    target = (np.tanh(pre) if variant == "M" else pre) - 0.3 * rng.standard_normal((9, 4)).astype(dtype)
    problem = locoprop.LocalProblem.build(X, target, "tanh", variant, anchor, eta=eta)
    inner = None if inner_name == "gd" else optim.get(inner_name, lr=0.01)
    solver = locoprop.GD(
        steps=5, lr=0.01 if inner is None else None, inner=inner, lr_factor=released_inner_factor
    )
    state = None if inner is None else inner.init(anchor)
    before = None if state is None else copy.deepcopy(state)

    got, got_state = solve_gd_inplace(problem, solver, state)

    # the plain loop, written out on the displacement D from the anchor (D = 0 first)
    D, ref_state = {key: np.zeros_like(v) for key, v in anchor.items()}, state
    for k in range(5):
        g = displacement_gradient(problem, D)
        factor = released_inner_factor(k, 5)
        if inner is None:
            D = {key: D[key] - 0.01 * factor * g[key] for key in D}
        else:
            updates, ref_state = inner.update(g, ref_state, D, lr=inner.lr * factor)
            D = optim.apply_updates(D, updates)
    params = {key: anchor[key] + D[key] for key in D}
    for key in ("W", "b"):
        assert got[key].dtype == dtype and np.array_equal(got[key], params[key]), key
    if inner is not None:
        assert _tree_equal(got_state, ref_state)
        assert _tree_equal(state, before)  # the caller's state was not written into
    assert not np.shares_memory(got["W"], anchor["W"])


def test_sigmoid_without_where_and_tanh_vjp_through_its_output_are_bit_for_bit() -> None:
    from locograd import transfer

    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        a = (rng.standard_normal((50, 40)) * 20).astype(dtype)
        a[0, :4] = [0.0, -0.0, np.inf, -np.inf]
        e = np.exp(-np.abs(a))
        assert np.array_equal(transfer.logistic(a), np.where(a >= 0, 1 / (1 + e), e / (1 + e)))
        g = rng.standard_normal(a.shape).astype(dtype)
        t = transfer.get("tanh")
        assert np.array_equal(t.vjp(a, g, t.f(a)), g * (1 - np.tanh(a) ** 2))


def test_layer_workers_share_the_threads(tmp_path: Path) -> None:
    """--layer-workers 2 --threads 2: LocoProp runs 2 layer threads of 1 BLAS thread each; BackProp keeps 2."""
    from locograd.bench import main

    out = tmp_path / "bench.json"
    options = ["--threads", "2", "--layer-workers", "2", "--kinds", "backprop,locoprop_m"]
    code = main(["--quick", "--no-torch", *options, "--out", str(out)])
    assert code == 0
    report = json.loads(out.read_text())
    assert report["settings"]["layer_workers"] == 2
    assert model.blas_threads("locoprop_m", 2, 2) == 1 and model.blas_threads("backprop", 2, 2) == 2
    assert main(["--quick", "--layer-workers", "0"]) == 2


@pytest.mark.parametrize("bad", ["0", "1.5", "two"])
def test_elementwise_threads_must_be_an_integer_of_at_least_one(
    bad: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from locograd.bench import main

    try:
        code = main(["--quick", "--no-torch", "--elementwise-threads", bad], prog="locograd bench")
    except SystemExit as exc:  # argparse refuses a non-integer
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert (
        err.count("\n") == 1 and err.startswith("locograd bench: error: ") and "elementwise-threads" in err
    ), err


def test_quick_run_with_elementwise_threads_reports_the_time_outside_the_products(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "locograd",
            "bench",
            "--quick",
            "--elementwise-threads",
            "2",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": path},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    report = json.loads(out.read_text())
    assert report["settings"]["elementwise_threads"] == 2
    assert "2 elementwise thread(s)" in done.stdout
    rows = {(r["kind"], r["lib"]): r for r in report["steps"]}
    bp = rows["backprop", "locograd"]
    assert -1 < bp["outside_products"] < 1
    assert bp["products_ms_median"] > 0 and len(bp["products_ms"]) == bp["samples"]
    for r in report["steps"]:
        if r["lib"] == "locograd":
            assert r["threads_seen"]["elementwise_threads"] == 2, r["kind"]
    # the products' share is measured for BackProp (replayed) and estimated for the CNN kinds (their FLOPs at
    # the rate over the CNN's products); no other kind reports one
    assert all(
        "outside_products" not in r
        for (kind, _), r in rows.items()
        if kind not in ("backprop", *model.CNN_KINDS)
    )
    for kind in model.CNN_KINDS:
        assert (
            rows[kind, "locograd"]["outside_products"] < 1
            and rows[kind, "locograd"]["batch"] == model.CNN_QUICK_BATCH
        )
    table_row = next(
        line for line in done.stdout.splitlines() if line.startswith("| BackProp (SGD) | locograd |")
    )
    assert table_row.rstrip(" |").endswith("%")
    assert "| outside products |" in done.stdout
    machine = report["machine"]
    assert machine["cpu"] and machine["cores"] and machine["blas_pools"] and "gpu" in machine
    if machine["torch"] is not None:
        assert machine["torch"].get("version") and "blas" in machine["torch"], machine["torch"]


def test_layer_workers_divide_the_elementwise_threads() -> None:
    """--layer-workers 2 --elementwise-threads 4: LocoProp's layer threads get 2 each, BackProp 4."""
    from locograd.bench import run

    spec = {
        "lib": "locograd",
        "sizes": model.quick_sizes(),
        "quick": True,
        "batch": 4,
        "threads": 1,
        "layer_workers": 2,
        "elementwise_threads": 4,
        "device": "cpu",
        "repeats": 1,
        "warmup": 0,
        "memory": False,
        "products": True,
    }
    # in a worker process: set_threads lasts, and must not change this one's
    result = run.run_worker({**spec, "kinds": ["backprop", "locoprop_m"]}, run.worker_env(1, False), 120)
    got = result["kinds"]
    assert got["backprop"]["threads"]["elementwise_threads"] == 4, result
    assert got["locoprop_m"]["threads"]["elementwise_threads"] == 2
    assert "products_ms" in got["backprop"] and "products_ms" not in got["locoprop_m"]


@pytest.mark.parametrize("quick", [True, False])
def test_the_replay_runs_exactly_the_products_of_the_fused_pass(quick: bool) -> None:
    """The FLOPs of the recorded products are the BackProp count of model.flops; layouts as in the pass."""
    net = model.network(quick=quick)
    batch = 8
    params, x = steps.host_data(net, batch, seed=0)
    found = steps.record_products(net, params, x, x)
    sizes, M = list(net.sizes), len(net.sizes) - 1
    assert len(found) == 3 * M - 1  # forward and weight gradient per layer, input gradient but the first
    flop = sum(2.0 * p.left.shape[0] * p.left.shape[1] * p.right.shape[1] for p in found)
    assert flop == model.flops("backprop", sizes, batch)
    forward, backward = found[:M], found[M:]
    for m, p in enumerate(forward):  # h_m @ W_m
        assert p.left.shape == (batch, sizes[m]) and np.array_equal(p.right, params[m]["W"])
        assert p.out.shape == (batch, sizes[m + 1]) and p.out.flags.c_contiguous
    assert np.array_equal(forward[0].left, x)
    m = M - 1
    for p in backward:  # from the last layer down: h_m.T @ g_m, then g_m @ W_m.T (m > 0)
        if p.left.shape == (sizes[m], batch):
            assert p.left.flags.f_contiguous and p.right.shape == (batch, sizes[m + 1])
            assert np.array_equal(p.left.T, forward[m].left)  # the layer's input, as the forward used it
            g = p.right
        else:
            assert p.left.shape == (batch, sizes[m + 1]) and np.array_equal(p.left, g)
            assert p.right.flags.f_contiguous and np.array_equal(p.right.T, params[m]["W"])
            m -= 1
    assert m == 0
    # the replay writes only scratch outputs: no operand shares memory with any output
    outs = [p.out for p in found]
    assert not any(np.shares_memory(o, a) for o in outs for p in found for a in (p.left, p.right))
    stepper = steps.products_stepper(net, batch, "cpu", seed=0, params=params)
    stepper.step()
    stepper.sync()
