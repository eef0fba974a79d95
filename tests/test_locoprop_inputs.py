"""LocoProp on every backend and dtype, and bad input: clear errors, input params never modified."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import numpy as np
import pytest

import locograd as lg
import locograd.errors
import locograd.testing
from locograd import locoprop, optim
from locograd._fast.local import solve_gd_inplace
from locograd.locoprop import GD, Exact, M, S, solvers

from .rounding import same_bits


@pytest.fixture
def setup():
    net = lg.MLP([4, 5, 3, 4], ["tanh", "leaky_relu", "sigmoid"], "sigmoid_cross_entropy")
    params = net.init(seed=0, bias="glorot")
    x = np.random.default_rng(0).random((6, 4))
    return net, params, x


SETTINGS_CASES = [
    (lambda: M(gamma=0.0), ValueError, "gamma: expected a finite number > 0, got 0.0"),
    (lambda: S(gamma=-1.0), ValueError, "gamma: expected a finite number > 0, got -1.0"),
    (lambda: M(gamma=float("nan")), ValueError, "gamma: expected a finite number > 0, got nan"),
    (lambda: M(gamma=1.0, eta=0.0), ValueError, "eta: expected None or a finite number > 0, got 0.0"),
    (lambda: S(gamma=1.0, eta=-2.0), ValueError, "eta: expected None or a finite number > 0, got -2.0"),
    (lambda: GD(steps=0, lr=0.1), ValueError, "steps: expected an integer >= 1, got 0"),
    (lambda: GD(steps=2.5, lr=0.1), ValueError, "steps: expected an integer >= 1, got 2.5"),
    (lambda: GD(steps=True, lr=0.1), ValueError, "steps: expected an integer >= 1, got True"),
    (lambda: GD(steps=2, lr=0.0), ValueError, "lr: expected a finite number > 0, got 0.0"),
    (
        lambda: GD(steps=2),
        ValueError,
        "lr: expected a step size > 0 for GD without an inner optimizer, got None",
    ),
    (
        lambda: GD(steps=2, lr=-1.0, inner=optim.adam()),
        ValueError,
        "lr: expected None or a finite number >= 0, got -1.0",
    ),
    (
        lambda: GD(steps=2, lr=0.1, lr_factor=0.5),
        TypeError,
        "lr_factor: expected a callable lr_factor(k, K), got float",
    ),
    (lambda: Exact(tol=-1.0), ValueError, "tol: expected None or a number in [0, 1), got -1.0"),
]


@pytest.mark.parametrize(("build", "error", "message"), SETTINGS_CASES)
def test_bad_settings_are_refused_when_built(build: Any, error: type, message: str) -> None:
    """Old code checked gamma, eta, steps and lr inside ``step`` (``check_steps``, ``check_lr``); now the
    settings objects refuse them when built, with one line naming the field, before any step."""
    with pytest.raises(error) as err:
        build()
    assert str(err.value) == message


def test_good_settings_are_kept_and_frozen() -> None:
    """Negative control of the test above: good values are kept (as floats and ints), an inner optimizer
    takes lr=None (its own) or 0 (the released warm-up), and the objects are frozen."""
    assert (M(gamma=10).gamma, S(gamma=1, eta=2).eta, GD(steps=3, lr=1).steps) == (10.0, 2.0, 3)
    adam = optim.adam(1e-3)
    assert GD(steps=1, inner=adam).base_lr == 1e-3 and GD(steps=1, inner=adam, lr=0).base_lr == 0.0
    assert Exact().tol is None and M(gamma=1.0) == M(gamma=1.0, eta=None) != S(gamma=1.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        M(gamma=1.0).gamma = 2.0  # type: ignore[misc]


STEP_CASES = [
    (
        {"variant": "M"},
        TypeError,
        "variant: expected locoprop.S(gamma, eta) or locoprop.M(gamma, eta), got str 'M'",
    ),
    (
        {"variant": "Q"},
        TypeError,
        "variant: expected locoprop.S(gamma, eta) or locoprop.M(gamma, eta), got str 'Q'",
    ),
    (
        {"solver": "lbfgs"},
        TypeError,
        "solver: expected locoprop.GD(steps, lr, inner, lr_factor) or locoprop.Exact(tol), got str 'lbfgs'",
    ),
    (
        {"solver": Exact()},
        ValueError,
        "eta: solver Exact() with variant M needs a proximal weight eta > 0 (M(gamma, eta=...)); "
        "without it J_M may be unbounded below",
    ),
    ({"inner_states": [None]}, ValueError, "inner_states: expected 3 per-layer states, got 1"),
    ({"diagnostics": "yes"}, ValueError, "diagnostics: expected True or False, got 'yes'"),
]


@pytest.mark.parametrize(("override", "error", "message"), STEP_CASES)
def test_bad_arguments_raise_and_leave_params_alone(setup, override: dict, error: type, message: str) -> None:
    net, params, x = setup
    before = copy.deepcopy(params)
    kwargs = {"variant": M(gamma=1.0), "solver": GD(steps=2, lr=0.1), **override}
    with pytest.raises(error) as err:
        locoprop.step(net, params, x, x, **kwargs)
    assert str(err.value) == message
    for a, b in zip(params, before, strict=True):
        np.testing.assert_array_equal(a["W"], b["W"])
    # negative control: the same step with the good settings runs (and still leaves params alone)
    new, _ = locoprop.step(net, params, x, x, variant=M(gamma=1.0, eta=1.0), solver=GD(steps=2, lr=0.1))
    assert not np.array_equal(new[0]["W"], before[0]["W"])
    np.testing.assert_array_equal(params[0]["W"], before[0]["W"])


def test_exact_m_without_eta_is_refused_with_eta_and_solved_with_it(setup) -> None:
    """M with Exact and no eta names ``eta`` (J_M may be unbounded below), in step and in the optimizer;
    negative control: with eta the exact solve reaches its tolerance."""
    net, params, x = setup
    for call in (
        lambda: locoprop.step(net, params, x, x, variant=M(gamma=1.0), solver=Exact()),
        lambda: optim.LocoProp(net, M(gamma=1.0), Exact()),
    ):
        with pytest.raises(ValueError, match=r"^eta: .*Exact\(\).* needs a proximal weight"):
            call()
    _, info = locoprop.step(
        net, params, x, x, variant=M(gamma=1.0, eta=0.5), solver=Exact(), diagnostics=True
    )
    assert all(rep.grad_norm_after <= 1e-9 * rep.grad_norm_before for rep in info.layers)


def test_params_that_do_not_fit_the_net(setup) -> None:
    net, params, x = setup
    with pytest.raises(ValueError, match=r"params\[1\]\['W'\]: expected shape \(5, 3\), got \(5, 2\)"):
        bad = copy.deepcopy(params)
        bad[1] = {"W": np.zeros((5, 2)), "b": np.zeros(2)}
        locoprop.step(net, bad, x, x, variant=S(gamma=1.0), solver=GD(steps=1, lr=0.1))


@pytest.mark.parametrize("where", ["x", "y"])
def test_nan_or_inf_in_the_data(setup, where: str) -> None:
    net, params, x = setup
    bad = x.copy()
    bad[2, 1] = np.nan if where == "x" else np.inf
    args = (bad, x) if where == "x" else (x, bad)
    with pytest.raises(ValueError, match=rf"{where}: expected finite values, found NaN or Inf"):
        locoprop.step(net, params, *args, variant=M(gamma=1.0), solver=GD(steps=1, lr=0.1))


def test_non_finite_result_of_a_step_is_an_error(setup) -> None:
    net, params, x = setup
    before = copy.deepcopy(params)
    with np.errstate(all="ignore"), pytest.raises(ValueError, match=r"step: layer \d [Wb] became non-finite"):
        locoprop.step(net, params, x, x, variant=S(gamma=1e200), solver=GD(steps=3, lr=1e200))
    for a, b in zip(params, before, strict=True):
        np.testing.assert_array_equal(a["W"], b["W"])


@pytest.mark.parametrize("solver", ["gd", "exact"])
@pytest.mark.parametrize("variant", ["S", "M"])
def test_solvers_never_modify_inputs(setup, solver: str, variant: str) -> None:
    """Neither the reference step nor the LocoProp optimizer (the fused solve) writes into the params, the
    data or the inner states it is given."""
    net, params, x = setup
    before = copy.deepcopy(params)
    x_before = x.copy()
    opt = optim.rmsprop_tf1(1e-3)
    states = [opt.init(p) for p in params]
    states_before = copy.deepcopy(states)
    settings = GD(steps=3, inner=opt) if solver == "gd" else Exact()
    v = (S if variant == "S" else M)(gamma=2.0, eta=0.5)
    locoprop.step(net, params, x, x, variant=v, solver=settings, inner_states=states)
    loco = optim.LocoProp(net, v, settings)
    state = loco.init(params)
    state_before = copy.deepcopy(state)
    new, new_state, _ = loco.step(params, x, x, state)
    np.testing.assert_array_equal(x, x_before)
    for a, b in zip(params, before, strict=True):
        np.testing.assert_array_equal(a["W"], b["W"])
        np.testing.assert_array_equal(a["b"], b["b"])
    assert same_bits(states, states_before) and same_bits(state, state_before)
    # negative control: the step did move the parameters (and, with GD, the inner states)
    assert not same_bits(new, params)
    assert solver == "exact" or not same_bits(new_state, state)


def test_locoprop_optimizer_bad_arguments(setup) -> None:
    """Old code: ``LocoProp(net, mode="adam")``, ``gamma=0``, ``solver="newton"`` keywords; now the settings
    objects are refused by type, and BackProp is its own class (``mode`` is gone)."""
    net, _, _ = setup
    with pytest.raises(
        TypeError, match=r"^net: expected a locograd.nn.Sequential \(an MLP, a CNN\), got str$"
    ):
        optim.LocoProp("net", M(gamma=1.0), GD(steps=1, lr=0.1))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^variant: expected locoprop.S\(gamma, eta\) or .*got str 'M'$"):
        optim.LocoProp(net, "M", GD(steps=1, lr=0.1))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^solver: expected locoprop.GD.* got str 'newton'$"):
        optim.LocoProp(net, M(gamma=1.0), "newton")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"mode"):
        optim.LocoProp(net, M(gamma=1.0), GD(steps=1, lr=0.1), mode="backprop")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=r"^inner: expected a first-order optimizer .* got str$"):
        optim.BackProp(net, "adam")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^diagnostics: expected True or False, got 1$"):
        optim.LocoProp(net, M(gamma=1.0), GD(steps=1, lr=0.1), diagnostics=1)  # type: ignore[arg-type]
    assert isinstance(optim.LocoProp(net, M(gamma=1.0), GD(steps=1, lr=0.1)), optim.NetOptimizer)


def test_exact_m_solver_alone_needs_eta() -> None:
    problem = locoprop.LocalProblem.build(
        np.ones((2, 2)), np.zeros((2, 1)), "tanh", "M", {"W": np.zeros((2, 1)), "b": np.zeros(1)}
    )
    with pytest.raises(ValueError, match="eta: the exact M solve needs a proximal weight"):
        locoprop.solve_exact_m(problem)
    with pytest.raises(ValueError, match="eta: a Newton step of J_M needs"):
        locoprop.newton_step(problem)


@pytest.mark.parametrize(
    ("variant", "solver"),
    [
        (S(gamma=1.0), GD(steps=3, lr=0.05)),
        (M(gamma=1.0), GD(steps=3, lr=0.05)),
        (S(gamma=1.0), Exact()),
        (S(gamma=1.0, eta=0.5), Exact()),
        (M(gamma=1.0, eta=0.5), Exact()),
    ],
    ids=["S-gd", "M-gd", "S-exact", "S-exact-eta", "M-exact-eta"],
)
def test_every_solver_on_every_backend_and_dtype(bk, dtype, variant: S | M, solver: GD | Exact) -> None:
    """Same code on NumPy/CuPy and float32/float64: dtype and backend kept, values match float64 NumPy."""
    net = lg.MLP([5, 4, 3, 5], ["tanh", "relu", "sigmoid"], "sigmoid_cross_entropy")
    ref_params = net.init(seed=3, bias="glorot")
    x_np = np.random.default_rng(3).random((8, 5))
    kw = {"variant": variant, "solver": solver}
    reference, _ = locoprop.step(net, ref_params, x_np, x_np, **kw)
    params = [{k: bk.asarray(v, dtype=dtype) for k, v in p.items()} for p in ref_params]
    x = bk.asarray(x_np, dtype=dtype)
    new, _ = locoprop.step(net, params, x, x, **kw)
    tol = 1e-10 if dtype == np.float64 else 2e-3
    for got, want in zip(new, reference, strict=True):
        for k in ("W", "b"):
            assert got[k].dtype == dtype and lg.backend.array_namespace(got[k]) is bk.xp
            np.testing.assert_allclose(bk.numpy(got[k]), want[k], rtol=tol, atol=tol)


def test_locoprop_optimizer_on_every_backend(bk) -> None:
    net = lg.MLP([5, 4, 5], ["tanh", "sigmoid"], "sigmoid_cross_entropy")
    with lg.backend.default_device("gpu" if bk.name == "cupy" else "cpu"):
        params = net.init(seed=1, dtype=np.float32)
    x = bk.asarray(
        np.random.default_rng(1).random((200, 5)), dtype=np.float32
    )  # G ~ 1/B keeps targets in range
    opt = optim.official(net)
    state = opt.init(params)
    new, state, info = opt.step(params, x, x, state, lr=1e-3)
    assert new[0]["W"].dtype == np.float32 and lg.backend.array_namespace(new[0]["W"]) is bk.xp
    assert isinstance(state, optim.LocoPropState) and state.inner[1].step == 10
    assert isinstance(info, optim.StepInfo) and bool(
        lg.backend.array_namespace(info.loss).isfinite(info.loss)
    )
    # the fused path on this backend: bit for bit the reference step (the same kernels, run on the device)
    ref, ref_info = locoprop.step(
        net,
        params,
        x,
        x,
        variant=opt.variant,
        solver=opt.solver.with_lr(1e-3),
        inner_states=opt.init(params).inner,
    )
    fast = opt.step(params, x, x, opt.init(params), lr=1e-3)
    assert same_bits(fast[0], ref) and same_bits(fast[1].inner, tuple(ref_info.inner_states))


# ---- every solver checks its problem's variant; a LocalProblem is checked when built and when used ----


def layer(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """X (6, 3), pre-activation A (6, 2), upstream G (6, 2) and the anchor of one tanh layer."""
    rng = np.random.default_rng(seed)
    X, W = rng.uniform(-1, 1, (6, 3)), rng.uniform(-1, 1, (3, 2))
    b = np.zeros(2)
    return X, X @ W + b, rng.standard_normal((6, 2)) / 6, {"W": W, "b": b}


def s_and_m_problems() -> tuple[locoprop.LocalProblem, locoprop.LocalProblem]:
    X, A, G, anchor = layer()
    return (
        locoprop.LocalProblem.build(X, A - G, "tanh", "S", anchor, eta=1.0),
        locoprop.LocalProblem.build(X, np.tanh(A) - G, "tanh", "M", anchor, eta=1.0),
    )


def test_newton_step_on_an_s_problem_is_refused() -> None:
    """Old code: newton_step took an S target for an M one and returned a point with J_S far above its
    minimum (the issue's example: 0.114 against 0.0289); hessian_vector_product likewise."""
    s, m = s_and_m_problems()
    for call, name in [
        (lambda: locoprop.newton_step(s), "newton_step"),
        (lambda: locoprop.hessian_vector_product(s, s.target, s.anchor), "hessian_vector_product"),
        (lambda: solvers.newton_direction(s, s.anchor, s.anchor, 1e-10, 10), "newton_direction"),
        (lambda: locoprop.solve_exact_m(s), "solve_exact_m"),
    ]:
        with pytest.raises(
            ValueError, match=rf"problem: expected a variant 'M' LocalProblem for {name}, got variant 'S'"
        ):
            call()
    newton = locoprop.newton_step(m)  # the same problem as M is solved, to the exact minimiser's accuracy
    exact, _ = locoprop.solve_exact_m(m)
    assert lg.testing.relative_error(newton, exact) < 1e-2


def test_solve_exact_s_on_an_m_problem_is_refused() -> None:
    """Old code: the closed form of J_S ran on an M target (a post-activation) and returned a wrong point."""
    s, m = s_and_m_problems()
    with pytest.raises(
        ValueError, match=r"problem: expected a variant 'S' LocalProblem for solve_exact_s, got variant 'M'"
    ):
        locoprop.solve_exact_s(m)
    w = locoprop.solve_exact_s(s)
    assert np.linalg.norm(locoprop.gradient(s, w)["W"]) < 1e-10


def _bad_builds() -> list[tuple[str, dict[str, Any], type, str]]:
    X, A, _, anchor = layer()
    W, b = anchor["W"], anchor["b"]
    target = np.tanh(A)
    return [
        (
            "target of another shape",
            {"target": np.zeros((6, 3))},
            ValueError,
            r"target: expected shape \(6, 2\) \(the batch of inputs, the columns of anchor\['W'\]\), got \(6, 3\)",
        ),
        (
            "target of another batch",
            {"target": np.zeros((5, 2))},
            ValueError,
            r"target: expected shape \(6, 2\)",
        ),
        (
            "target float32",
            {"target": target.astype(np.float32)},
            TypeError,
            r"target: expected dtype float64 like inputs, got float32",
        ),
        ("target 1-D", {"target": target[0]}, ValueError, r"target: expected a 2-D array, got shape \(2,\)"),
        (
            "target a list",
            {"target": target.tolist()},
            TypeError,
            r"target: expected a numpy.ndarray or cupy.ndarray",
        ),
        (
            "anchor W of another width",
            {"anchor": {"W": np.zeros((4, 2)), "b": b}},
            ValueError,
            r"anchor\['W'\]: expected shape \(3, d_out\) to fit inputs of width 3, got \(4, 2\)",
        ),
        (
            "anchor b of another length",
            {"anchor": {"W": W, "b": np.zeros(3)}},
            ValueError,
            r"anchor\['b'\]: expected shape \(2,\) like the columns of anchor\['W'\], got \(3,\)",
        ),
        (
            "anchor float32",
            {"anchor": {"W": W.astype(np.float32), "b": b.astype(np.float32)}},
            TypeError,
            r"anchor\['W'\]: expected dtype float64 like inputs, got float32",
        ),
        (
            "anchor without b",
            {"anchor": {"W": W}},
            ValueError,
            r"anchor: expected the keys \['W', 'b'\], got \['W'\]",
        ),
        (
            "anchor with an extra key",
            {"anchor": {"W": W, "b": b, "c": b}},
            ValueError,
            r"anchor: expected the keys \['W', 'b'\], got \['W', 'b', 'c'\]",
        ),
        (
            "anchor a list",
            {"anchor": [W, b]},
            TypeError,
            r"anchor: expected a dict with the keys \['W', 'b'\], got list",
        ),
        (
            "inputs float32",
            {"inputs": X.astype(np.float32)},
            TypeError,
            r"target: expected dtype float32 like inputs, got float64",
        ),
        ("inputs 1-D", {"inputs": X[0]}, ValueError, r"inputs: expected a 2-D array, got shape \(3,\)"),
        (
            "inputs integer",
            {"inputs": X.astype(int)},
            TypeError,
            r"inputs: expected a floating dtype \(float32 or float64\), got int64",
        ),
        (
            "NaN in the target",
            {"target": np.where(target > 0, np.nan, target)},
            lg.errors.NonFiniteError,
            r"target: expected finite values, got \d+ NaN and 0 infinities among 12 values",
        ),
        (
            "inf in the inputs",
            {"inputs": np.where(X > 0.5, np.inf, X)},
            lg.errors.NonFiniteError,
            r"inputs: expected finite values",
        ),
        ("unknown transfer", {"transfer": "gelu"}, ValueError, r"transfer: unknown name 'gelu'"),
        ("unknown variant", {"variant": "Q"}, ValueError, "variant: unknown name 'Q'; valid names are S, M"),
        (
            "no transfer for M",
            {"transfer": None},
            TypeError,
            r"transfer: expected a Transfer for variant 'M', got NoneType",
        ),
        ("eta 0", {"eta": 0.0}, ValueError, r"eta: expected None or a finite number > 0, got 0.0"),
    ]


@pytest.mark.parametrize(
    ("case", "override", "error", "message"), _bad_builds(), ids=[c[0] for c in _bad_builds()]
)
def test_local_problem_build_refuses_parts_that_do_not_fit(
    case: str, override: dict, error: type, message: str
) -> None:
    """Old code: build accepted every one of these (only transfer, variant and eta were checked), and
    the solvers then broadcast, upcast or failed deep inside with NumPy's message."""
    X, A, _, anchor = layer()
    kwargs = {
        "inputs": X,
        "target": np.tanh(A),
        "transfer": "tanh",
        "variant": "M",
        "anchor": anchor,
        **override,
    }
    with pytest.raises(error, match=message):
        locoprop.LocalProblem.build(**kwargs)


def test_a_directly_constructed_problem_is_checked_by_every_entry() -> None:
    """Old code: LocalProblem(...) with a (6, 3) target reached solve_gd and failed in NumPy's broadcasting;
    a transfer given as a string reached solve_exact_s (which ignores it) unnoticed.  The problem now
    holds the pre-activations and the offset gamma G in the target's place: a (6, 3) offset is refused."""
    X, A, G, anchor = layer()
    tanh = lg.transfer.get("tanh")
    wide = locoprop.LocalProblem(X, A, np.zeros((6, 3)), tanh, "M", anchor)
    by_name = locoprop.LocalProblem(X, A, G, "tanh", "S", anchor, 1.0)  # type: ignore[arg-type]
    entries = [
        lambda p: locoprop.solve_gd(p, GD(steps=1, lr=0.1)),
        lambda p: solve_gd_inplace(p, GD(steps=1, lr=0.1)),
        lambda p: locoprop.solve_layer(p, GD(steps=1, lr=0.1)),
        lambda p: locoprop.solve_exact_s(p),
        lambda p: locoprop.objective(p, anchor),
        lambda p: locoprop.gradient(p, anchor),
        lambda p: locoprop.residual(p, anchor),
        lambda p: locoprop.count_out_of_range(p),
    ]
    for entry in entries:
        with pytest.raises(ValueError, match=r"offset: expected shape \(6, 2\)"):
            entry(wide)
        with pytest.raises(
            TypeError, match=r"transfer: expected None or a Transfer for variant 'S', got str"
        ):
            entry(by_name)
    for solve in (locoprop.solve_gd, solve_gd_inplace):
        with pytest.raises(TypeError, match=r"problem: expected a LocalProblem, got dict"):
            solve({"inputs": X}, GD(steps=1, lr=0.1))  # type: ignore[arg-type]


def test_solve_gd_takes_the_gd_settings_object() -> None:
    """Old code: ``solve_gd(problem, steps, lr=..., inner=...)``; now ``solve_gd(problem, GD(...), state)``,
    and anything but a GD (the old step count, an Exact) is refused by type, in the reference and the
    fused solve alike.  Negative control: the GD object runs."""
    s, _ = s_and_m_problems()
    for solve in (locoprop.solve_gd, solve_gd_inplace):
        for bad, shown in ((3, "int"), (Exact(), "Exact")):
            with pytest.raises(TypeError) as err:
                solve(s, bad)  # type: ignore[arg-type]
            assert str(err.value) == f"solver: expected locoprop.GD(steps, lr, inner, lr_factor), got {shown}"
        with pytest.raises(TypeError, match="lr"):
            solve(s, 3, lr=0.1)  # type: ignore[call-arg]
        new, state = solve(s, GD(steps=3, lr=0.1))
        assert state is None and not same_bits(new, s.anchor)


def test_s_problem_without_a_transfer_is_the_same_problem() -> None:
    """``LocalProblem.build(..., transfer=None, "S", ...)``: S does not use the transfer, so every solver gives
    bit for bit what it gives with one; negative control: M needs it (refused above, "no transfer for M")."""
    X, A, G, anchor = layer()
    with_t = locoprop.LocalProblem.build(X, A - G, "tanh", "S", anchor, eta=1.0)
    without = locoprop.LocalProblem.build(X, A - G, None, "S", anchor, eta=1.0)
    assert without.transfer is None
    for solve in (
        lambda p: locoprop.solve_gd(p, GD(steps=3, lr=0.1)),
        lambda p: solve_gd_inplace(p, GD(steps=3, inner=optim.adam(1e-2))),
        locoprop.solve_exact_s,
        lambda p: locoprop.solve_layer(p, Exact(), report=True),
    ):
        assert same_bits(solve(without), solve(with_t))
    assert int(locoprop.count_out_of_range(without)) == 0


def test_params_that_do_not_fit_the_anchor_are_refused() -> None:
    """Old code: W (3, 1) failed later with a message about 'a'; float32 params were silently upcast."""
    _, m = s_and_m_problems()
    with pytest.raises(
        ValueError, match=r"params\['W'\]: expected shape \(3, 2\) like the anchor, got \(3, 1\)"
    ):
        locoprop.objective(m, {"W": np.zeros((3, 1)), "b": np.zeros(1)})
    with pytest.raises(
        TypeError, match=r"params\['W'\]: expected dtype float64 like the anchor, got float32"
    ):
        locoprop.gradient(m, {k: v.astype(np.float32) for k, v in m.anchor.items()})
    with pytest.raises(ValueError, match=r"v: expected the keys \['W', 'b'\], got \['W'\]"):
        locoprop.hessian_vector_product(m, m.target, {"W": m.anchor["W"]})
    with pytest.raises(
        ValueError, match=r"a: expected shape \(6, 2\) and dtype float64, got \(6, 3\) float64"
    ):
        locoprop.hessian_vector_product(m, np.zeros((6, 3)), m.anchor)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m, s: locoprop.solve_exact_m(m, tol=-1.0), r"tol: expected a finite number >= 0, got -1.0"),
        (
            lambda m, s: locoprop.solve_exact_m(m, max_newton=1.5),
            r"max_newton: expected an integer >= 0, got 1.5",
        ),
        (
            lambda m, s: locoprop.solve_exact_m(m, max_cg=0),
            r"max_cg: expected None or an integer >= 1, got 0",
        ),
        (
            lambda m, s: locoprop.newton_step(m, cg_tol=float("nan")),
            r"cg_tol: expected a finite number >= 0, got nan",
        ),
        (
            lambda m, s: locoprop.solve_exact_s(s, rcond=2.0),
            r"rcond: expected None or a number in \[0, 1\], got 2.0",
        ),
    ],
)
def test_solver_settings_are_validated(call, message: str) -> None:
    """Old code: tol=-1 ran 50 Newton iterations and reported converged=False; the others ran unchecked."""
    s, m = s_and_m_problems()
    with pytest.raises(ValueError, match=message):
        call(m, s)


def test_a_schedule_rate_of_zero_keeps_a_plain_gd_locoprop_in_place() -> None:
    """The released warm-up's epoch 0 passes ``lr=0``: a plain-GD LocoProp keeps its parameters (the
    constructor still refuses ``GD(lr=0)``, a solver that does nothing); a positive rate moves them."""
    net = lg.MLP([3, 4, 3], ["tanh", "sigmoid"], "sigmoid_cross_entropy")
    params = net.init(seed=0)
    x = np.random.default_rng(0).random((5, 3))
    opt = optim.LocoProp(net, M(gamma=1.0), GD(steps=2, lr=0.1))
    state = opt.init(params)
    same, state0, info = opt.step(params, x, x, state, lr=0.0)
    assert all(np.array_equal(a[k], b[k]) for a, b in zip(same, params, strict=True) for k in "Wb")
    assert float(info.loss) == pytest.approx(net.loss(params, x, x), rel=1e-15) and state0 == state
    moved, _, _ = opt.step(params, x, x, state, lr=0.1)
    assert not np.array_equal(moved[0]["W"], params[0]["W"])  # negative control
