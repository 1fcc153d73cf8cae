"""Classic ODE solvers from torchdiffeq, applied to a gradient flow of either order.

Fixed-step methods (`euler`, `rk4`: torchdiffeq's 3/8-rule RK4) take `steps` equal steps
over [0, tau]; `dopri5` adapts its step to rtol/atol. Every sample is evaluated at every
step, so a sample's NFE is the solver's NFE. `converged` means the per-sample loss changed
by less than `conv_tol` over the last step (fixed-step) or over the last 1% of tau
(dopri5): the same scale as AMD's stop rule.
"""

from __future__ import annotations

import torch
from torchdiffeq import odeint, odeint_adjoint

from ..flows import NesterovFlow
from .base import FlowDivergedError, SolverOutput, first_samples, is_integer, is_number


def initial_state(flow, z0: torch.Tensor):
    """The ODE state at t=0: z0, plus a zero momentum for the second-order flow."""
    return (z0, torch.zeros_like(z0)) if isinstance(flow, NesterovFlow) else z0


def latent_part(states):
    """z along the output times, dropping the momentum of a second-order state."""
    return states[0] if isinstance(states, tuple) else states


class _TorchdiffeqSolver:
    name = ""

    def __init__(self, conv_tol: float = 1e-5):
        if not (is_number(conv_tol) and conv_tol >= 0):
            raise ValueError(f"conv_tol={conv_tol!r} is invalid: must be a number >= 0")
        self.conv_tol = conv_tol

    def output_times(self, tau: float, dtype, device) -> torch.Tensor:
        raise NotImplementedError

    def odeint_kwargs(self) -> dict:
        raise NotImplementedError

    def integrate(self, flow, z0: torch.Tensor, tau: float, adjoint_params=None) -> torch.Tensor:
        """z at every output time, shape (T, B, d). With `adjoint_params`, gradients flow
        back through torchdiffeq's adjoint method instead of the solver's operations."""
        times = self.output_times(tau, torch.float64, z0.device).to(z0.dtype)
        state0 = initial_state(flow, z0)
        try:
            if adjoint_params is not None:
                states = odeint_adjoint(flow, state0, times, adjoint_params=adjoint_params, **self.odeint_kwargs())
            else:
                states = odeint(flow, state0, times, **self.odeint_kwargs())
        except AssertionError as error:  # torchdiffeq's way of reporting dt underflow on NaN
            raise FlowDivergedError(
                f"{self.name}: the flow diverged ({error}); check the decoder weights, tau and the step settings",
                samples=[],
                step=None,
            ) from error
        zs = latent_part(states)
        self._check_finite(zs)
        return zs

    def _check_finite(self, zs: torch.Tensor) -> None:
        bad_at = ~torch.isfinite(zs).flatten(2).all(-1)  # (T, B)
        bad = bad_at.any(0)
        if bool(bad.any()):
            samples = first_samples(bad)
            step = int(bad_at.any(1).nonzero()[0])
            raise FlowDivergedError(
                f"{self.name}: non-finite latent at output step {step} of {zs.shape[0] - 1} for samples {samples}; "
                "lower tau, use more steps, or use solver='amd' (it rejects such steps)",
                samples,
                step,
            )

    def solve(self, flow, z0: torch.Tensor, tau: float) -> SolverOutput:
        if z0.shape[0] == 0:  # adaptive step control has no error to measure on no samples
            zs = torch.stack([z0, z0])
        else:
            zs = self.integrate(flow, z0, tau)
        loss_before, loss = flow.losses(zs[-2]), flow.losses(zs[-1])
        if not bool(torch.isfinite(loss).all()):
            samples = first_samples(~torch.isfinite(loss))
            raise FlowDivergedError(
                f"{self.name}: non-finite final loss for samples {samples}", samples, zs.shape[0] - 1
            )
        batch = z0.shape[0]
        return SolverOutput(
            z=zs[-1],
            loss=loss,
            nfe=torch.full((batch,), flow.nfe, dtype=torch.int64, device=z0.device),
            converged=(loss - loss_before).abs() < self.conv_tol,
            t=torch.full((batch,), float(tau), dtype=torch.float64, device=z0.device),
            rejected=torch.zeros(batch, dtype=torch.int64, device=z0.device),
        )


class FixedStepSolver(_TorchdiffeqSolver):
    """`steps` equal steps of torchdiffeq's `euler` or `rk4` over [0, tau]."""

    def __init__(self, method: str = "rk4", steps: int = 100, conv_tol: float = 1e-5):
        super().__init__(conv_tol)
        if not (is_integer(steps) and steps >= 1):
            raise ValueError(f"steps={steps!r} is invalid: must be an integer >= 1")
        self.name, self.steps = method, int(steps)

    def output_times(self, tau, dtype, device):
        return torch.linspace(0.0, tau, self.steps + 1, dtype=dtype, device=device)

    def odeint_kwargs(self):
        return {"method": self.name}


class Dopri5Solver(_TorchdiffeqSolver):
    """torchdiffeq's adaptive Dormand-Prince 5(4)."""

    name = "dopri5"

    def __init__(self, rtol: float = 1e-5, atol: float = 1e-9, max_num_steps: int = 100_000, conv_tol: float = 1e-5):
        super().__init__(conv_tol)
        for key, value in (("rtol", rtol), ("atol", atol)):
            if not (is_number(value) and value > 0):
                raise ValueError(f"{key}={value!r} is invalid: must be a number > 0")
        if not (is_integer(max_num_steps) and max_num_steps >= 1):
            raise ValueError(f"max_num_steps={max_num_steps!r} is invalid: must be an integer >= 1")
        self.rtol, self.atol, self.max_num_steps = rtol, atol, int(max_num_steps)

    def output_times(self, tau, dtype, device):
        return torch.tensor([0.0, 0.99 * tau, tau], dtype=dtype, device=device)

    def odeint_kwargs(self):
        return {
            "method": "dopri5",
            "rtol": self.rtol,
            "atol": self.atol,
            "options": {"max_num_steps": self.max_num_steps},
        }
