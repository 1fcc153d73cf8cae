"""What the per-sample quasi-Newton descents (`lbfgs`, `lbfgs_dense`) share: their
line-search and stop-rule options, the curvature test of a pair, and the check of the
starting point."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..flows import GradientFlow
from .base import FlowDivergedError, first_samples, is_integer, is_number

CURVATURE_EPS = 1e-10  # a pair (s, y) is kept only if s.y > CURVATURE_EPS |s| |y|


@dataclass(frozen=True)
class DescentOptions:
    """Stop rules and backtracking Armijo line search of a per-sample descent.

    max_iters: accepted iterations; tol: stop when an accepted step lowered the loss by
    less; grad_tol: stop when the gradient norm is below it (0: off); c1: Armijo constant;
    shrink: step factor after a rejected trial; max_backtracks: rejected trials in a row
    before the sample gives up; initial_step: length of the first trial step along
    -grad/|grad| (with no curvature information); max_evals: decoder evaluations.
    """

    solver_label = "descent"  # the solver named in error messages (a class attribute, not an option)

    max_iters: int = 500
    tol: float = 1e-6
    grad_tol: float = 0.0
    c1: float = 1e-4
    shrink: float = 0.5
    max_backtracks: int = 20
    initial_step: float = 1.0
    max_evals: int = 5_000

    def checks(self):
        """(name, is it valid, what is allowed) for every option."""
        return [
            ("max_iters", lambda: is_integer(self.max_iters) and self.max_iters >= 1, "an integer >= 1"),
            ("tol", lambda: is_number(self.tol) and self.tol >= 0, "a number >= 0"),
            ("grad_tol", lambda: is_number(self.grad_tol) and self.grad_tol >= 0, "a number >= 0"),
            ("c1", lambda: is_number(self.c1) and 0 < self.c1 < 1, "a number in (0, 1)"),
            ("shrink", lambda: is_number(self.shrink) and 0 < self.shrink < 1, "a number in (0, 1)"),
            ("max_backtracks", lambda: is_integer(self.max_backtracks) and self.max_backtracks >= 0, "an integer >= 0"),
            (
                "initial_step",
                lambda: is_number(self.initial_step) and 0 < self.initial_step < float("inf"),
                "a finite number > 0",
            ),
            ("max_evals", lambda: is_integer(self.max_evals) and self.max_evals >= 1, "an integer >= 1"),
        ]

    def __post_init__(self):
        """Reject a bad option with a ValueError naming it, its value and what is allowed."""
        for name, ok, allowed in self.checks():
            if not ok():
                raise ValueError(
                    f"{self.solver_label} option {name}={getattr(self, name)!r} is invalid: must be {allowed}"
                )


def start_point(flow: GradientFlow, z0: torch.Tensor, label: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The loss (B,) and gradient (B, d) at z0; a FlowDivergedError names the samples where
    either is not finite."""
    loss, velocity = flow.loss_and_velocity(z0, flow.target)
    grad = velocity / -flow.alpha
    bad = ~(torch.isfinite(loss) & torch.isfinite(grad).all(1))
    if bool(bad.any()):
        samples = first_samples(bad)
        raise FlowDivergedError(
            f"{label}: non-finite loss or gradient at the starting point for samples {samples}; "
            "check the decoder weights and the data",
            samples,
            step=0,
        )
    return loss, grad
