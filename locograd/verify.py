r"""``locograd verify``: the identities of LocoProp checked numerically, as a table.

A teaching aid and a smoke test: each row draws random float64 problems,
measures the largest relative error of one identity and compares it with a
tolerance.  ``inject`` swaps in a wrong target convention (the post-activation
target built as :math:`f(A - \gamma G)`, or from :math:`\partial L/\partial Y`)
to show that the table fails visibly when an identity breaks.

>>> rows = run_checks(trials=1)
>>> all(row.passed for row in rows)
True
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from . import locoprop, optim
from .locoprop import GD, LocalProblem, M, S
from .nn import MLP
from .nn.dense import augment
from .nn.dense import stack as _stack
from .testing import relative_error
from .transfer import NAMES as TRANSFER_NAMES
from .transfer import get as get_transfer
from .validators import canonical_choice, integer

INJECTIONS = ("none", "f-of-shifted-pre-activation", "dl-dy")


class Check(NamedTuple):
    """One row of the table."""

    identity: str
    error: float
    tolerance: float
    where: str = ""
    """Where ``docs/math.md`` explains it (``"4.1"``: section 4, item 1)."""

    @property
    def passed(self) -> bool:
        return bool(self.error <= self.tolerance)


def _random_net(rng: np.random.Generator) -> tuple[MLP, list, np.ndarray, np.ndarray]:
    hidden = [str(rng.choice([n for n in TRANSFER_NAMES if n != "identity"])) for _ in range(3)]
    sizes = [int(rng.integers(2, 9)) for _ in range(5)]
    net = MLP(sizes, [*hidden, "sigmoid"], "sigmoid_cross_entropy")
    params = net.init(seed=int(rng.integers(1 << 30)), bias="glorot")
    x = rng.standard_normal((int(rng.integers(4, 17)), sizes[0]))
    return net, params, x, rng.random((x.shape[0], sizes[-1]))


def _layer(rng: np.random.Generator, transfer: str, eta: float | None) -> dict:
    B, d_in, d_out = int(rng.integers(2, 33)), int(rng.integers(1, 9)), int(rng.integers(2, 7))
    X = rng.uniform(-1, 1, (B, d_in))
    W, b = rng.uniform(-1, 1, (d_in, d_out)) / np.sqrt(d_in), rng.uniform(-0.5, 0.5, d_out)
    G = rng.standard_normal((B, d_out)) / B
    gamma = float(rng.uniform(0.5, 5))
    A = X @ W + b
    f = get_transfer(transfer)
    Xt = augment(X)
    return {
        "anchor": {"W": W, "b": b},
        "gamma": gamma,
        "Xt": Xt,
        "C": Xt.T @ Xt,
        "grad": Xt.T @ G,
        "S": LocalProblem.build(X, A - gamma * G, None, "S", {"W": W, "b": b}, eta),
        "M": LocalProblem.build(X, f.f(A) - gamma * G, f, "M", {"W": W, "b": b}, eta),
    }


def _m_targets(
    net: MLP, params: list, x: np.ndarray, y: np.ndarray, gamma: float, inject: str
) -> list[LocalProblem]:
    trace = net.forward(params, x)
    grads = net.backward(params, trace, y, weight_grads=False)
    problems = []
    for m, f in enumerate(net.transfers):
        A, G = trace.pre[m], grads.pre[m]
        if inject == "f-of-shifted-pre-activation":
            target = f.f(A - gamma * G)
        elif inject == "dl-dy" and m + 1 < net.num_layers:
            target = trace.post[m] - gamma * grads.pre[m + 1] @ params[m + 1]["W"].T
        else:
            target = trace.post[m] - gamma * G
        problems.append(LocalProblem.build(trace.inputs[m], target, f, "M", params[m]))
    return problems


def run_checks(seed: int = 0, trials: int = 5, inject: str = "none") -> list[Check]:
    """Run every identity on ``trials`` random problems each; returns the table rows.

    Args:
        seed: an integer >= 0 (NumPy's ``default_rng``).
        trials: random problems per identity, an integer >= 1 (before, 0 failed
            with "max() arg is an empty sequence").
        inject: one of :data:`INJECTIONS` (case and ``_``/``-`` do not matter).

    Raises:
        ValueError: one line naming the bad argument, before any problem is drawn.
    """
    seed = integer("seed", seed, minimum=0)
    trials = integer("trials", trials, minimum=1)
    inject = canonical_choice("inject", inject, INJECTIONS)
    rng = np.random.default_rng(seed)
    rows: list[Check] = []

    def worst(name: str, tol: float, one: Callable[[], float], where: str) -> None:
        rows.append(Check(name, max(one() for _ in range(trials)), tol, where))

    def first_step(variant: str) -> float:
        net, params, x, y = _random_net(rng)
        grads = net.backward(params, net.forward(params, x), y)
        gamma, rho = float(rng.uniform(0.5, 5)), float(rng.uniform(0.01, 1))
        if variant == "S":
            new, _ = locoprop.step(net, params, x, y, variant=S(gamma=gamma), solver=GD(steps=1, lr=rho))
        else:
            problems = _m_targets(net, params, x, y, gamma, inject)
            new = [locoprop.solve_gd(p, GD(steps=1, lr=rho))[0] for p in problems]
        got = [_stack(n) - _stack(p) for n, p in zip(new, params, strict=True)]
        want = [-rho * gamma * _stack(g) for g in grads.as_params()]
        return relative_error(got, want, floor=1e-6 * rho * gamma)

    def k1_released() -> float:
        net, params, x, y = _random_net(rng)
        inner = optim.rmsprop_tf1(lr=1e-3)
        problems = _m_targets(net, params, x, y, 10.0, inject)
        got = [locoprop.solve_gd(p, GD(steps=1, inner=inner))[0] for p in problems]
        grads = net.backward(params, net.forward(params, x), y)
        g = [{k: 10 * v for k, v in layer.items()} for layer in grads.as_params()]
        want = optim.apply_updates(params, inner.update(g, inner.init(params), params)[0])
        return relative_error(
            [_stack(a) - _stack(p) for a, p in zip(got, params, strict=True)],
            [_stack(a) - _stack(p) for a, p in zip(want, params, strict=True)],
            floor=1e-10,
        )

    def kronecker() -> float:
        lay = _layer(rng, "tanh", eta := float(rng.uniform(0.1, 5)))
        n, d_out = lay["C"].shape[0], lay["grad"].shape[1]
        dense = np.kron(np.eye(d_out), lay["C"] + np.eye(n) / eta)
        vec = np.linalg.solve(dense, lay["grad"].reshape(-1, order="F")).reshape((n, d_out), order="F")
        got = _stack(locoprop.solve_exact_s(lay["S"])) - _stack(lay["anchor"])
        return relative_error(got, -lay["gamma"] * vec)

    def stationary_s() -> float:
        lay = _layer(rng, "tanh", float(rng.uniform(0.1, 5)))
        g0 = _stack(locoprop.gradient(lay["S"], lay["anchor"]))
        return float(
            np.linalg.norm(_stack(locoprop.gradient(lay["S"], locoprop.solve_exact_s(lay["S"]))))
            / np.linalg.norm(g0)
        )

    def gd_to_closed_form() -> float:
        eta = float(rng.uniform(0.05, 0.5))
        lay = _layer(rng, "tanh", eta)
        lam = np.linalg.eigvalsh(lay["C"])
        L, mu = lam.max() + 1 / eta, lam.min() + 1 / eta
        w, _ = locoprop.solve_gd(lay["S"], GD(steps=int(40 * L / mu) + 10, lr=1 / L))
        exact = _stack(locoprop.solve_exact_s(lay["S"])) - _stack(lay["anchor"])
        return relative_error(_stack(w) - _stack(lay["anchor"]), exact)

    def neumann() -> float:
        lay = _layer(rng, "tanh", None)
        K = int(rng.integers(1, 8))
        rho = 0.5 / np.linalg.eigvalsh(lay["C"]).max()
        w, _ = locoprop.solve_gd(lay["S"], GD(steps=K, lr=rho))
        P = np.eye(lay["C"].shape[0]) - rho * lay["C"]
        series = sum(np.linalg.matrix_power(P, k) for k in range(K))
        return relative_error(_stack(w) - _stack(lay["anchor"]), -rho * lay["gamma"] * series @ lay["grad"])

    def stationary_m() -> float:
        lay = _layer(rng, str(rng.choice(["sigmoid", "tanh", "softmax"])), float(rng.uniform(0.1, 5)))
        w, _ = locoprop.solve_exact_m(lay["M"], tol=1e-10)
        g0 = _stack(locoprop.gradient(lay["M"], lay["anchor"]))
        return float(np.linalg.norm(_stack(locoprop.gradient(lay["M"], w))) / np.linalg.norm(g0))

    def m_equals_s_identity() -> float:
        lay = _layer(rng, "identity", float(rng.uniform(0.1, 5)))
        w_m, _ = locoprop.solve_exact_m(lay["M"], tol=1e-12)
        return relative_error(
            _stack(w_m) - _stack(lay["anchor"]),
            _stack(locoprop.solve_exact_s(lay["S"])) - _stack(lay["anchor"]),
        )

    def zero_gradient() -> float:
        net, params, x, _ = _random_net(rng)
        y = net.forward(params, x).output
        solver = GD(steps=5, inner=optim.adam(1e-2))
        new, _ = locoprop.step(net, params, x, y, variant=M(gamma=5.0), solver=solver)
        return max(float(np.abs(_stack(a) - _stack(p)).max()) for a, p in zip(new, params, strict=True))

    worst(
        "first step = BackProp (S, plain GD): first inner step = -rho gamma dL/dW",
        1e-9,
        lambda: first_step("S"),
        "4.1",
    )
    worst(
        "first step = BackProp (M, plain GD): first inner step = -rho gamma dL/dW",
        1e-9,
        lambda: first_step("M"),
        "4.1",
    )
    worst(
        "K = 1, released inner RMSProp (TF1) = BackProp's RMSProp on gamma L, gamma 10",
        1e-9,
        k1_released,
        "4.1",
    )
    worst("S exact = preconditioned step: -(C + I/eta)^-1 gamma dL/dW, C = X~'X~", 1e-8, kronecker, "4.2")
    worst("S exact is stationary: |grad J| / |grad J(W_t)|", 1e-9, stationary_s, "4.2")
    worst("inner GD with proximal term eta converges to the S closed form", 1e-8, gd_to_closed_form, "4.3")
    worst("K inner GD steps on S = K terms of the Neumann series", 1e-8, neumann, "4.3")
    worst("M exact (Newton-CG) is stationary: |grad J| / |grad J(W_t)|", 1e-9, stationary_m, "4.5")
    worst("M exact = S exact when the transfer f is the identity", 1e-8, m_equals_s_identity, "4.5")
    worst("zero upstream gradient dL/dA = 0 -> no update (max |dW|)", 0.0, zero_gradient, "4.4")
    return rows


def format_table(rows: list[Check]) -> str:
    """The rows as an aligned text table."""
    width = max(len(r.identity) for r in rows)
    lines = [
        f"{'identity':<{width}}  {'max rel. error':>14}  {'tolerance':>9}  result  docs/math.md",
        "-" * (width + 50),
    ]
    for r in rows:
        lines.append(
            f"{r.identity:<{width}}  {r.error:>14.2e}  {r.tolerance:>9.0e}  {'pass' if r.passed else 'FAIL':<6}  "
            f"section {r.where}"
        )
    return "\n".join(lines)
