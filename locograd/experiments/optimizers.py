r"""Optimizers by name for experiments, with documented defaults per data set.

Every name builds a :class:`~locograd.optim.LocoProp`: the BackProp
optimizers run it in ``mode="backprop"`` (one step of the named first-order
optimizer on :math:`\partial L/\partial W` per batch), ``locoprop-s`` and
``locoprop-m`` run ``K`` inner steps per batch.

| name       | update                                        | default settings                         |
|------------|-----------------------------------------------|------------------------------------------|
| sgd        | BackProp, plain SGD                           | lr (per data set)                        |
| momentum   | BackProp, heavy ball (PyTorch), beta 0.9      | lr                                       |
| adam       | BackProp, Adam (PyTorch)                      | lr                                       |
| rmsprop    | BackProp, RMSProp with the released (TF1) semantics: the same optimizer LocoProp runs inside | lr |
| kfac       | K-FAC, sampled Fisher, factors every 5 steps, step and momentum from the exact quadratic model, damping adapted (``adaptive=True``, :class:`~locograd.optim.KFAC`) | lr (a multiplier of the model's step, 1), initial damping |
| shampoo    | Shampoo, roots every 10 steps, no momentum, step norm grafted to Adam's (:class:`~locograd.optim.Shampoo`) | lr, damping (its epsilon) |
| foof       | FOOF, input covariance average 0.95 (:class:`~locograd.optim.FOOF`) | lr, damping |
| locoprop-s | LocoProp-S, K steps of TF1-RMSProp per layer, within-batch factor max(1 - k/K, 0.25) | gamma, K, lr |
| locoprop-m | LocoProp-M, likewise (the released method)    | gamma, K, lr                             |

Defaults: on CURVES every learning rate (and K-FAC's damping) is the best of one
``locograd sweep`` per optimizer under the same protocol (1,000 images, 3 epochs,
batch 100, a 3-point grid around the usual value), recorded with the commands
in ``docs/TUNING.md``; gamma 10 and K 10 are the released values.  On MNIST-format
sets the released values (TF1-RMSProp lr 1e-5) and common ones (Adam 1e-3, ...) are
kept, untuned.  ``official`` is the released configuration exactly
(:func:`locograd.optim.official`).
"""

from __future__ import annotations

from typing import Any

from .. import optim
from ..network import MLP

OPTIMIZERS: tuple[str, ...] = (
    "sgd",
    "momentum",
    "adam",
    "rmsprop",
    "kfac",
    "shampoo",
    "foof",
    "locoprop-s",
    "locoprop-m",
)
SECOND_ORDER = ("kfac", "shampoo", "foof")
INNER = ("sgd", "momentum", "nesterov", "adam", "adagrad", "rmsprop", "rmsprop_tf1")
SOLVERS = ("gd", "exact")

# Per optimizer: settings shared by all data sets, then per-data-set learning rates.
DEFAULTS: dict[str, dict[str, Any]] = {
    "sgd": {"lr": {"curves": 0.1, "mnist": 0.1}},
    "momentum": {"lr": {"curves": 0.03, "mnist": 0.01}},
    "adam": {"lr": {"curves": 3e-3, "mnist": 1e-3}},
    "rmsprop": {"lr": {"curves": 3e-5, "mnist": 1e-5}},
    "kfac": {"damping": 1.0, "lr": {"curves": 1.0, "mnist": 1.0}},
    "shampoo": {"damping": 1.0, "lr": {"curves": 0.01, "mnist": 1e-3}},
    "foof": {"damping": 1e-2, "lr": {"curves": 0.03, "mnist": 0.01}},
    "locoprop-s": {"gamma": 10.0, "steps": 10, "inner": "rmsprop_tf1", "lr": {"curves": 3e-6, "mnist": 1e-5}},
    "locoprop-m": {"gamma": 10.0, "steps": 10, "inner": "rmsprop_tf1", "lr": {"curves": 3e-5, "mnist": 1e-5}},
}


_BACKPROP_INNER = {"sgd": "sgd", "momentum": "momentum", "adam": "adam", "rmsprop": "rmsprop_tf1"}


def check_name(name: str) -> str:
    """Validate an optimizer name (the error lists the valid ones)."""
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer: unknown name {name!r}; valid names are {', '.join(OPTIMIZERS)}")
    return name


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
    """The resolved settings of ``name`` on ``dataset``: defaults, then the given overrides."""
    check_name(name)
    defaults = DEFAULTS[name]
    family = "curves" if dataset == "curves" else "mnist"
    resolved: dict[str, Any] = {"optimizer": name, "lr": defaults["lr"][family] if lr is None else float(lr)}
    if name.startswith("locoprop"):
        resolved.update(
            variant=name[-1].upper(),
            gamma=defaults["gamma"] if gamma is None else float(gamma),
            eta=eta,
            steps=defaults["steps"] if steps is None else steps,
            solver=solver or "gd",
            inner=inner or defaults["inner"],
        )
        if resolved["inner"] not in INNER:
            raise ValueError(f"inner: unknown name {resolved['inner']!r}; valid names are {', '.join(INNER)}")
        if resolved["solver"] not in SOLVERS:
            raise ValueError(f"solver: expected one of {SOLVERS}, got {resolved['solver']!r}")
    else:
        given = {"gamma": gamma, "eta": eta, "steps": steps, "solver": solver, "inner": inner}
        extra = [k for k, v in given.items() if v is not None]
        if extra:
            raise ValueError(f"{extra[0]}: only applies to locoprop-s and locoprop-m, not to {name!r}")
        if name in SECOND_ORDER:
            resolved["damping"] = defaults["damping"] if damping is None else float(damping)
        else:
            resolved["inner"] = _BACKPROP_INNER[name]
    if damping is not None and name not in SECOND_ORDER:
        raise ValueError(f"damping: only applies to kfac, shampoo and foof, not to {name!r}")
    return resolved


def build(net: MLP, resolved: dict[str, Any], workers: int = 1) -> Any:
    """Build the optimizer from :func:`settings`' output.

    ``workers``: LocoProp solves this many layers at once on threads (the same
    results bit for bit; the other optimizers have no per-layer solves and ignore it).
    """
    name, lr = resolved["optimizer"], resolved["lr"]
    if name == "kfac":
        return optim.KFAC(net, lr=lr, damping=resolved["damping"], update_every=5, adaptive=True)
    if name == "shampoo":
        return optim.Shampoo(net, lr=lr, eps=resolved["damping"], grafting="adam", momentum=0.0)
    if name == "foof":
        return optim.FOOF(net, lr=lr, damping=resolved["damping"])
    inner = optim.get(resolved["inner"], lr=lr)
    if resolved["optimizer"].startswith("locoprop"):
        return optim.LocoProp(
            net,
            variant=resolved["variant"],
            gamma=resolved["gamma"],
            eta=resolved["eta"],
            solver=resolved["solver"],
            steps=resolved["steps"],
            inner=inner,
            lr_factor=optim.schedules.released_inner_factor,
            workers=workers,
        )
    return optim.LocoProp(net, inner=inner, mode="backprop")
