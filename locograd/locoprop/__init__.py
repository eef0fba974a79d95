r"""LocoProp: settings, targets, local objectives, local solvers and the whole-network step.

* :class:`S`, :class:`M` (the variant: ``gamma``, ``eta``) and :class:`GD`, :class:`Exact` (the
  local solver): small frozen settings objects, checked when built.
* :func:`targets`: :math:`A^* = A - \gamma G` (S), :math:`Y^* = f(A) - \gamma G` (M);
  ``S(gamma, normalised=True)`` / ``M(gamma, eta, normalised=True)`` (not in the paper) use the
  per-layer :math:`\gamma_m = \gamma/\max(\mathrm{RMS}(G_m), \tau)` (:func:`normalised_gamma`,
  :func:`normalised_offset`).
* :class:`LocalProblem`, :func:`objective`, :func:`objective_change`, :func:`gradient`: one layer's
  :math:`J_S` / :math:`J_M` with bias and optional proximal term, held in the displacement from
  its anchor (the offset :math:`\gamma G`, never a subtracted target).
* :func:`solve_gd`, :func:`solve_exact_s`, :func:`solve_exact_m`, :func:`newton_step`, and the
  displacements they form the new parameters from (:func:`gd_displacement`, ...).
* :func:`step`: one LocoProp step for an :class:`~locograd.MLP`:
  ``step(net, params, x, y, variant=M(gamma=10), solver=GD(steps=10, lr=1e-5)) -> (params, info)``.
"""

from .objectives import LocalProblem, displacement, gradient, objective, objective_change, residual
from .settings import GD, Exact, M, S
from .solvers import (
    ExactInfo,
    exact_m_displacement,
    exact_s_displacement,
    gd_displacement,
    hessian_vector_product,
    newton_step,
    solve_exact_m,
    solve_exact_s,
    solve_gd,
)
from .step import (
    LayerReport,
    LocoPropWarning,
    StepReport,
    check_workers,
    count_out_of_range,
    local_problems,
    solve_layer,
    step,
)
from .targets import VARIANTS, normalised_gamma, normalised_offset, targets

__all__ = [
    "GD",
    "VARIANTS",
    "Exact",
    "ExactInfo",
    "LayerReport",
    "LocalProblem",
    "LocoPropWarning",
    "M",
    "S",
    "StepReport",
    "check_workers",
    "count_out_of_range",
    "displacement",
    "exact_m_displacement",
    "exact_s_displacement",
    "gd_displacement",
    "gradient",
    "hessian_vector_product",
    "local_problems",
    "newton_step",
    "normalised_gamma",
    "normalised_offset",
    "objective",
    "objective_change",
    "residual",
    "solve_exact_m",
    "solve_exact_s",
    "solve_gd",
    "solve_layer",
    "step",
    "targets",
]
