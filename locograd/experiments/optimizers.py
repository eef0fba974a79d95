r"""Optimizers by name for experiments, with documented defaults per data set.

Every name builds a :class:`~locograd.optim.NetOptimizer`: the BackProp names a
:class:`~locograd.optim.BackProp` (one step of the named first-order optimizer on
:math:`\partial L/\partial W` per batch), ``locoprop-s`` and ``locoprop-m`` (and their
``-normalised`` variants, which are not in the paper) a
:class:`~locograd.optim.LocoProp` (``K`` inner steps per batch), the second-order names
:class:`~locograd.optim.KFAC`, :class:`~locograd.optim.Shampoo` and :class:`~locograd.optim.FOOF`.

| name       | update                                        | default settings (per data set but K)   |
|------------|-----------------------------------------------|------------------------------------------|
| sgd        | BackProp, plain SGD                           | lr                                       |
| momentum   | BackProp, heavy ball (PyTorch), beta 0.9      | lr                                       |
| adam       | BackProp, Adam (PyTorch)                      | lr                                       |
| rmsprop-tf1 | BackProp, RMSProp with the released (TF1) semantics: the same optimizer LocoProp runs inside (``optim.rmsprop_tf1``; PyTorch's RMSProp is the inner ``rmsprop``) | lr |
| kfac       | K-FAC, sampled Fisher, factors every 5 steps, step and momentum from the exact quadratic model, damping adapted (``adaptive=True``, :class:`~locograd.optim.KFAC`) | lr (a multiplier of the model's step, 1), initial damping |
| shampoo    | Shampoo, roots every 10 steps, no momentum, step norm grafted to Adam's (:class:`~locograd.optim.Shampoo`) | lr, damping (its epsilon) |
| foof       | FOOF, input covariance average 0.95 (:class:`~locograd.optim.FOOF`) | lr, damping |
| locoprop-s | LocoProp-S, K steps of TF1-RMSProp per layer, within-batch factor max(1 - k/K, 0.25) | gamma, K, lr |
| locoprop-m | LocoProp-M, likewise (the released method)    | gamma, K, lr                             |
| locoprop-s-normalised | LocoProp-S with per-layer-normalised targets, NOT in the paper: layer m's target step is gamma_m G_m with gamma_m = gamma / max(RMS(G_m), 1e-30), so gamma (dimensionless) is the RMS of every layer's target step; otherwise as locoprop-s | gamma 0.01, K, lr as locoprop-s (untuned) |
| locoprop-m-normalised | LocoProp-M likewise, NOT in the paper          | gamma 0.01, K, lr as locoprop-m (untuned) |

Defaults: the settings the studies chose under one protocol for every optimizer (5 points
per axis, edge extension, 3 seeds in the final runs; ``docs/results/*/report.md``).  On
CURVES: the CURVES study's chosen points, for every name.  On MNIST-format sets: the
Fashion-MNIST study's for ``adam``, ``kfac``, ``shampoo`` and ``locoprop-m``; ``rmsprop-tf1``
keeps the released 1e-5 there, since the rate the study chose (1e-3, best after 30 steps) rose
from epoch 2 on in all its final runs; ``sgd``, ``momentum``, ``foof`` and ``locoprop-s``, which
that study did not run, keep common untuned values there.  The two ``-normalised`` names (no
study ran them) take gamma 0.01 on every set and the plain variant's K, inner optimizer and rate;
their resolved settings add ``"normalised": True``, a key the other names do not have (so theirs,
and the trial keys hashed from them, are unchanged).  K 10 is the released value.  ``tests/test_defaults.py`` checks these
values against the studies' ``summary.json``.  ``official`` is the released configuration
exactly (:func:`locograd.optim.official`), untouched by the studies.
"""

from __future__ import annotations

from typing import Any

from .. import locoprop, optim
from ..data.registry import dataset_key
from ..nn import Sequential
from ..optim.presets import RELEASED_STEPS
from ..validators import canonical_choice, integer, number

OPTIMIZERS: tuple[str, ...] = (
    "sgd",
    "momentum",
    "adam",
    "rmsprop-tf1",
    "kfac",
    "shampoo",
    "foof",
    "locoprop-s",
    "locoprop-m",
    "locoprop-s-normalised",
    "locoprop-m-normalised",
)
NORMALISED = ("locoprop-s-normalised", "locoprop-m-normalised")
"""The per-layer-normalised LocoProp variants (locograd's, not in the paper): ``gamma`` is the RMS of
every layer's target step (:class:`~locograd.locoprop.S` / :class:`~locograd.locoprop.M` with
``normalised=True``)."""
SECOND_ORDER = ("kfac", "shampoo", "foof")
INNER = ("sgd", "momentum", "nesterov", "adam", "adagrad", "rmsprop", "rmsprop_tf1")
SOLVERS = ("gd", "exact")

# Per optimizer: each setting either shared by all data sets or given per data-set family
# ("curves"; "mnist": the MNIST-format sets).  The tuned values are the chosen points of the studies,
# as their summary.json records them (tests/test_defaults.py checks that they agree).
DEFAULTS: dict[str, dict[str, Any]] = {
    "sgd": {"lr": {"curves": 0.01, "mnist": 0.1}},
    "momentum": {"lr": {"curves": 0.000948684, "mnist": 0.01}},
    "adam": {"lr": {"curves": 0.003, "mnist": 1e-3}},
    # mnist: the released rate, not the study's 1e-3, whose final runs rose from epoch 2 on (to 2,091)
    "rmsprop-tf1": {"lr": {"curves": 0.0003, "mnist": 1e-5}},
    "kfac": {"lr": 1.0, "damping": {"curves": 10.0, "mnist": 0.01}},
    "shampoo": {"lr": {"curves": 0.0316228, "mnist": 0.00316228}, "damping": {"curves": 0.001, "mnist": 0.1}},
    "foof": {"lr": {"curves": 0.3, "mnist": 0.01}, "damping": {"curves": 0.1, "mnist": 1e-2}},
    "locoprop-s": {
        "gamma": {"curves": 100.0, "mnist": 10.0},
        "steps": RELEASED_STEPS,
        "inner": "rmsprop_tf1",
        "lr": {"curves": 3e-07, "mnist": 1e-5},
    },
    "locoprop-m": {
        "gamma": {"curves": 3.16228, "mnist": 31.6228},
        "steps": RELEASED_STEPS,
        "inner": "rmsprop_tf1",
        "lr": {"curves": 3e-06, "mnist": 1e-05},
    },
    # not in the paper and not tuned by a study: gamma is dimensionless (each layer's target step has
    # RMS gamma); K, the inner optimizer and its rate are the plain variant's
    "locoprop-s-normalised": {
        "gamma": 0.01,
        "steps": RELEASED_STEPS,
        "inner": "rmsprop_tf1",
        "lr": {"curves": 3e-07, "mnist": 1e-5},
    },
    "locoprop-m-normalised": {
        "gamma": 0.01,
        "steps": RELEASED_STEPS,
        "inner": "rmsprop_tf1",
        "lr": {"curves": 3e-06, "mnist": 1e-05},
    },
}


def default(name: str, key: str, family: str) -> Any:
    """``DEFAULTS[name][key]`` on the data-set family ``family`` (``"curves"`` or ``"mnist"``)."""
    value = DEFAULTS[name][key]
    return value[family] if isinstance(value, dict) else value


_BACKPROP_INNER = {"sgd": "sgd", "momentum": "momentum", "adam": "adam", "rmsprop-tf1": "rmsprop_tf1"}


def check_name(name: str) -> str:
    """The canonical spelling of an optimizer name (``"LocoProp_M"`` -> ``"locoprop-m"``).

    Names are matched by :func:`locograd.validators.canonical_choice` (case,
    surrounding spaces and ``_`` vs ``-`` do not matter); the error lists the
    valid ones.  Before, only the exact spelling was accepted.
    """
    return canonical_choice("optimizer", name, OPTIMIZERS)


def check_inner(name: str) -> str:
    """The canonical spelling of an inner optimizer name (``"RMSProp-TF1"`` -> ``"rmsprop_tf1"``)."""
    return canonical_choice("inner", name, INNER)


def check_solver(name: str) -> str:
    """The canonical spelling of a LocoProp solver name (``"GD"`` -> ``"gd"``)."""
    return canonical_choice("solver", name, SOLVERS)


def settings(
    name: str,
    dataset: str,
    *,
    lr: float | None = None,
    gamma: float | None = None,
    eta: float | None = None,
    steps: int | None = None,
    solver: str | None = None,
    inner: str | None = None,
    damping: float | None = None,
) -> dict[str, Any]:
    """The resolved settings of ``name`` on ``dataset``: defaults, then the given overrides.

    Every argument is checked here, before any optimizer is built: the names are
    put in their canonical spelling (:func:`check_name`; ``dataset`` by
    :func:`locograd.data.registry.dataset_key` (a ``.npz`` path is an MNIST-format set here), so ``"CURVES"`` gets the CURVES
    defaults: before, any spelling but ``"curves"`` got the MNIST ones), ``lr``,
    ``gamma``, ``eta`` and ``damping`` must be finite and > 0, ``steps`` an integer
    >= 1, and a setting the optimizer does not have is refused.

    Raises:
        ValueError: one line naming the argument, e.g. ``"lr: expected a finite number > 0, got nan"``.
    """
    name = check_name(name)
    family = "curves" if dataset_key(dataset) == "curves" else "mnist"
    lr, gamma, eta, damping = (
        None if v is None else number(k, v, low=0, low_open=True)
        for k, v in (("lr", lr), ("gamma", gamma), ("eta", eta), ("damping", damping))
    )
    steps = None if steps is None else integer("steps", steps, minimum=1)
    solver = None if solver is None else check_solver(solver)
    inner = None if inner is None else check_inner(inner)
    resolved: dict[str, Any] = {"optimizer": name, "lr": default(name, "lr", family) if lr is None else lr}
    if name.startswith("locoprop"):
        resolved.update(
            variant=name.split("-")[1].upper(),  # "locoprop-m" and "locoprop-m-normalised": "M"
            gamma=default(name, "gamma", family) if gamma is None else gamma,
            eta=eta,
            steps=default(name, "steps", family) if steps is None else steps,
            solver=solver or "gd",
            inner=inner or default(name, "inner", family),
        )
        if name in NORMALISED:  # only these names: the plain names' settings (and keys) are unchanged
            resolved["normalised"] = True
        if resolved["solver"] == "exact":  # no inner loop: a rate, K or inner optimizer would be ignored
            ignored = [k for k, v in (("lr", lr), ("steps", steps), ("inner", inner)) if v is not None]
            if ignored:
                raise ValueError(
                    f"{ignored[0]}: the exact solver has no inner loop (it solves each local problem "
                    f"exactly), so {name} would ignore {ignored[0]}; drop it or use solver gd"
                )
            if resolved["variant"] == "M" and eta is None:
                raise ValueError(
                    f"eta: {name} with the exact solver needs a proximal weight eta > 0 (its Newton solve "
                    "is defined with the proximal term)"
                )
            resolved.update(lr=None, steps=None, inner=None)
    else:
        given = {"gamma": gamma, "eta": eta, "steps": steps, "solver": solver, "inner": inner}
        extra = [k for k, v in given.items() if v is not None]
        if extra:
            raise ValueError(f"{extra[0]}: only applies to locoprop-s and locoprop-m, not to {name!r}")
        if name in SECOND_ORDER:
            resolved["damping"] = default(name, "damping", family) if damping is None else damping
        else:
            resolved["inner"] = _BACKPROP_INNER[name]
    if damping is not None and name not in SECOND_ORDER:
        raise ValueError(f"damping: only applies to kfac, shampoo and foof, not to {name!r}")
    return resolved


def build(
    net: Sequential, resolved: dict[str, Any], workers: int = 1, donate: bool = False
) -> optim.NetOptimizer:
    """Build the network optimizer from :func:`settings`' output.

    ``workers``: LocoProp solves this many layers at once on threads (the same
    results bit for bit; the other optimizers have no per-layer solves and ignore it).
    ``donate``: BackProp writes each step into the arrays of the parameters and state it is
    given (:class:`~locograd.optim.BackProp`; the same numbers), for loops that keep only the
    latest ones.
    """
    name, lr = resolved["optimizer"], resolved["lr"]
    if name == "kfac":
        return optim.KFAC(net, lr=lr, damping=resolved["damping"], update_every=5, adaptive=True)
    if name == "shampoo":
        return optim.Shampoo(net, lr=lr, eps=resolved["damping"], grafting="adam", momentum=0.0)
    if name == "foof":
        return optim.FOOF(net, lr=lr, damping=resolved["damping"])
    if name.startswith("locoprop"):
        variant_type = locoprop.S if resolved["variant"] == "S" else locoprop.M
        variant = variant_type(
            gamma=resolved["gamma"], eta=resolved["eta"], normalised=resolved.get("normalised", False)
        )
        solver: locoprop.GD | locoprop.Exact
        if resolved["solver"] == "exact":
            solver = locoprop.Exact()
        else:
            solver = locoprop.GD(
                steps=resolved["steps"],
                inner=optim.get(resolved["inner"], lr=lr),
                lr_factor=optim.schedules.released_inner_factor,
            )
        return optim.LocoProp(net, variant, solver, workers=workers)
    return optim.BackProp(net, optim.get(resolved["inner"], lr=lr), donate=donate)
