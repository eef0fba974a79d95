"""The float32 first-step identity of the numerics issue, on a CNN: the first inner GD step moves
every conv and dense layer by -rho gamma dL/dW~ about as accurately as float32 BackProp computes
dL/dW~, against the float64 gradient at the same float32 parameters and data.

Tolerance, per layer (Frobenius norms): twice BackProp's own error, plus 4 u ||(|X~|^T |G|)|| with u
the float32 unit roundoff.  The step makes two roundings BackProp does not: gamma G (at most u |gamma
G| per entry, entering X~^T (gamma G) through |X~|^T) and rho times the gradient (at most u per
entry); a convolution's gradient sums B*P = 50,176 products, so a rounding of each term is amplified
by the sum's cancellation |X~|^T |G| / |X~^T G| (for dense layers, tests/test_numerics32.py measured
1.03 times BackProp's error; here layer 0 measured 2.55 times, within this bound).  The rate makes
the rounding of W~ + D negligible, as there.  Negative control: a step 0.1 % too long fails the
same bound by far."""

from __future__ import annotations

import numpy as np
import pytest

import locograd as lg
from locograd import locoprop
from locograd.data.curves import curves
from locograd.experiments.models import cnn
from locograd.locoprop import GD, M, S

GAMMA = 3.16


def setting():
    net = cnn((28, 28, 1), 10, hidden="tanh", widths=[4, 8, 16])
    x = curves(n_train=64, n_test=1, seed=0).x_train[:64].reshape(-1, 28, 28, 1).astype(np.float32)
    y = np.random.default_rng(0).integers(0, 10, 64)
    return net, net.init(seed=0, dtype=np.float32), x, y


@pytest.mark.parametrize("path", ["locoprop.step", "optim.LocoProp"])
@pytest.mark.parametrize("variant", ["S", "M"])
def test_float32_first_inner_step_is_backprop_in_every_layer_of_a_cnn(variant: str, path: str) -> None:
    net, p32, x, y = setting()
    weighted = net.weight_layers
    p64 = [{k: v.astype(np.float64) for k, v in p.items()} for p in p32]
    _, g64 = net.value_and_grad(p64, x.astype(np.float64), y)
    _, g32 = net.value_and_grad(p32, x, y)
    stack = {m: net.layers[m].stack for m in weighted}  # type: ignore[attr-defined]
    ref = {m: stack[m](g64[m]) for m in weighted}
    scale = max(float(np.abs(stack[m](p32[m])).mean()) / float(np.abs(ref[m]).mean()) for m in weighted)
    rho = 1e2 * scale / GAMMA
    settings = S(gamma=GAMMA) if variant == "S" else M(gamma=GAMMA)

    def moves(rate: float) -> dict[int, np.ndarray]:
        solver = GD(steps=1, lr=rate)
        if path == "locoprop.step":
            new, _ = locoprop.step(net, p32, x, y, variant=settings, solver=solver)
        else:
            opt = lg.optim.LocoProp(net, settings, solver)
            new, _, _ = opt.step(p32, x, y, opt.init(p32))
        return {
            m: stack[m](new[m]).astype(np.float64) - stack[m](p32[m]).astype(np.float64) for m in weighted
        }

    x64 = x.astype(np.float64)
    trace64 = net.forward(p64, x64)
    full64 = net.backward(p64, trace64, y)
    u = float(np.finfo(np.float32).eps) / 2
    bound = {}
    for m in weighted:
        layer = net.layers[m]
        terms = layer.linear_transpose(np.abs(trace64.inputs[m]), np.abs(layer.rows(full64.pre[m])))  # type: ignore[attr-defined]
        backprop_error = float(np.linalg.norm(stack[m](g32[m]).astype(np.float64) - ref[m]))
        bound[m] = 2 * backprop_error + 4 * u * float(np.linalg.norm(stack[m](terms)))
    first = moves(rho)
    for m in weighted:
        mine = float(np.linalg.norm(first[m] / (-rho * GAMMA) - ref[m]))
        assert mine <= bound[m], f"layer {m} ({net.layers[m]!r}): {mine:.2e} against the bound {bound[m]:.2e}"
    longer = moves(rho * 1.001)  # negative control
    assert all(float(np.linalg.norm(longer[m] / (-rho * GAMMA) - ref[m])) > bound[m] for m in weighted)
