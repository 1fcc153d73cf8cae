"""L-BFGS: per-sample quasi-Newton descent on the encoding loss l(x_i, D(z_i)).

This goes beyond the papers. It does NOT integrate the gradient flow: it descends the same
per-sample loss to a stationary point faster, so z is a local minimiser of the loss (the
flow's limit for tau -> infinity when both reach the same basin) rather than z(tau).
There is no time here: `tau` is ignored (encode() still checks it), and `t` reports the
number of accepted iterations as a float64. The scale `alpha` of the flow is divided out
of its velocity, so the iterates do not depend on it.

Each sample keeps its own L-BFGS memory of the last `memory` curvature pairs (s, y) in
(B, m, d) tensors, newest last; missing pairs are zero with rho = 0, so the two-loop
recursion runs over the whole batch at once with no mask and no loop over samples. A pair
with s.y <= eps |s||y| is skipped for that sample. The initial inverse Hessian is
gamma I with gamma = s.y / y.y of the newest pair.

Line search: per-sample backtracking Armijo. Every iteration evaluates one trial point
z + step d for every sample still running, in ONE decoder forward+backward; samples at
different stages of their line searches share the call. A trial is accepted when
loss1 <= loss + c1 step g.d with a finite loss and gradient; otherwise the sample's step
shrinks (`shrink`) and it tries again in the next call. The per-sample loss therefore
never increases, and the returned z is the best point seen. A sample that stops on a
non-finite trial has its z evaluated once more: non-finite there too, the decoder itself
broke, and a FlowDivergedError says so (`raise_if_decoder_broke`). A direction that is not a
descent direction (g.d >= 0) resets the sample's memory and uses -g. Without curvature
pairs (the first iteration, after a reset) the first trial moves z by `initial_step`
along -g/|g|; with pairs the first trial step is 1.

A sample stops when an accepted step lowered its loss by less than `tol` or left a
gradient norm below `grad_tol` (converged), or when it ran out of backtracks, iterations
or evaluations (not converged). Finished samples leave the working set and cost nothing.
A sample's NFE is the number of decoder evaluations it took part in (start included),
derived from the iteration it left at.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..flows import GradientFlow
from .base import SolverOutput, is_integer, raise_if_decoder_broke
from .descent import CURVATURE_EPS, DescentOptions, start_point


@dataclass(frozen=True)
class LBFGSOptions(DescentOptions):
    """The line search and stop rules of `DescentOptions`, and `memory`: the number of
    curvature pairs each sample keeps."""

    solver_label = "L-BFGS"

    memory: int = 8

    def checks(self):
        memory = ("memory", lambda: is_integer(self.memory) and self.memory >= 1, "an integer >= 1")
        return [memory, *super().checks()]


@dataclass
class _Batch:
    """Working state of the samples still descending (index `idx` into the batch)."""

    idx: torch.Tensor
    target: torch.Tensor
    z: torch.Tensor  # the best (latest accepted) point
    loss: torch.Tensor
    grad: torch.Tensor  # grad_z l at z
    direction: torch.Tensor
    slope: torch.Tensor  # grad . direction (< 0)
    step: torch.Tensor  # the next trial is z + step * direction
    s: torch.Tensor  # (B, m, d) curvature pairs, newest last, zero where missing
    y: torch.Tensor
    rho: torch.Tensor  # (B, m) 1 / s.y, zero where missing
    gamma: torch.Tensor  # (B,) s.y / y.y of the newest pair (1 without pairs)
    pairs: torch.Tensor  # (B,) number of valid pairs
    backtracks: torch.Tensor  # trials rejected in the current line search
    iters: torch.Tensor  # accepted iterations
    rejected: torch.Tensor
    converged: torch.Tensor
    failed: torch.Tensor  # the line search ran out of backtracks
    finite: torch.Tensor  # the last trial's loss and gradient were finite

    def keep(self, mask: torch.Tensor) -> "_Batch":
        return _Batch(**{name: value[mask] for name, value in vars(self).items()})


class LBFGSSolver:
    """Per-sample L-BFGS with backtracking Armijo line search on the flow's loss.

    Args:
        **options: the fields of `LBFGSOptions` (memory, max_iters, tol, grad_tol, c1,
            shrink, max_backtracks, initial_step, max_evals); a bad one raises a ValueError.
    """

    name = "lbfgs"

    def __init__(self, **options):
        self.options = LBFGSOptions(**options)

    def solve(self, flow, z0: torch.Tensor, tau: float | None = None, trace: list | None = None) -> SolverOutput:
        """Descend each sample's loss from z0 to a stationary point.

        Args:
            flow: a first-order `GradientFlow` (its loss, and its velocity / -alpha as the gradient).
            z0: (B, d) starting points.
            tau: ignored (there is no time); kept for the solver interface.
            trace: if a list, receives one dict per decoder call with the trial of every
                sample still running (idx, z, loss, step, z1, loss1, accepted).

        Returns:
            SolverOutput: z (the best point), its loss, NFE per sample, converged (stopped by
            tol or grad_tol), t (accepted iterations, float64) and rejected trials.

        Raises:
            ValueError: the flow is not a first-order GradientFlow.
            FlowDivergedError: the loss or gradient is not finite at z0, or a sample stopped on
                a non-finite trial and the decoder is no longer finite at its z either (the
                decoder broke: `raise_if_decoder_broke`); names the samples.
        """
        if not isinstance(flow, GradientFlow):
            raise ValueError("solver='lbfgs' descends the first-order flow's loss only (order=1)")
        o = self.options
        state = self._start(flow, z0)
        out = _empty_output(z0.shape[0], z=state.z, loss=state.loss)
        iterations = 0
        done = state.converged | (iterations + 1 >= o.max_evals)
        while True:
            if bool(done.any()):
                broken = done & ~state.finite  # stopped on a non-finite trial: did the decoder break?
                if bool(broken.any()):
                    z, target, idx = state.z[broken], state.target[broken], state.idx[broken]
                    raise_if_decoder_broke(flow, z, target, None, idx, "L-BFGS", iterations)
                _store_finished(out, state, done, iterations)
                state = state.keep(~done)
            if not state.idx.numel():
                return out
            self._iterate(flow, state, trace)
            iterations += 1
            done = state.converged | state.failed | (state.iters >= o.max_iters)
            if iterations + 1 >= o.max_evals:
                done = torch.ones_like(done)

    def _start(self, flow: GradientFlow, z0: torch.Tensor) -> _Batch:
        batch, dim = z0.shape
        loss, grad = start_point(flow, z0, "L-BFGS")
        m = int(self.options.memory)
        count = dict(dtype=torch.int64, device=z0.device)
        flag = dict(dtype=torch.bool, device=z0.device)
        state = _Batch(
            idx=torch.arange(batch, device=z0.device),
            target=flow.target,
            z=z0,
            loss=loss,
            grad=grad,
            direction=torch.zeros_like(z0),
            slope=torch.zeros_like(loss),
            step=torch.zeros_like(loss),
            s=z0.new_zeros(batch, m, dim),
            y=z0.new_zeros(batch, m, dim),
            rho=z0.new_zeros(batch, m),
            gamma=torch.ones_like(loss),
            pairs=torch.zeros(batch, **count),
            backtracks=torch.zeros(batch, **count),
            iters=torch.zeros(batch, **count),
            rejected=torch.zeros(batch, **count),
            converged=self._stationary(grad),
            failed=torch.zeros(batch, **flag),
            finite=torch.ones(batch, **flag),
        )
        self._new_direction(state, torch.ones(batch, **flag))
        return state

    def _stationary(self, grad: torch.Tensor) -> torch.Tensor:
        """Samples whose gradient is zero or below grad_tol: there is nowhere to descend."""
        norm = grad.norm(dim=1)
        return (norm == 0) | (norm < self.options.grad_tol)

    def _iterate(self, flow: GradientFlow, s: _Batch, trace: list | None) -> None:
        """One trial point for every sample of the working set; updates `s` in place."""
        o = self.options
        z1 = s.z + s.step[:, None] * s.direction
        loss1, velocity1 = flow.loss_and_velocity(z1, s.target)
        grad1 = velocity1 / -flow.alpha
        s.finite = torch.isfinite(loss1) & torch.isfinite(grad1).all(1)
        accepted = (loss1 <= s.loss + o.c1 * s.step * s.slope) & s.finite
        if trace is not None:
            trace.append(dict(idx=s.idx, z=s.z, loss=s.loss, step=s.step, z1=z1, loss1=loss1, accepted=accepted))
        decrease = s.loss - loss1
        self._remember(s, accepted, z1 - s.z, grad1 - s.grad)
        col = accepted[:, None]
        s.z = torch.where(col, z1, s.z)
        s.loss = torch.where(accepted, loss1, s.loss)
        s.grad = torch.where(col, grad1, s.grad)
        s.iters = s.iters + accepted
        s.rejected = s.rejected + ~accepted
        s.backtracks = torch.where(accepted, 0, s.backtracks + 1)
        s.failed = s.backtracks > o.max_backtracks
        s.converged = accepted & ((decrease < o.tol) | self._stationary(grad1))
        s.step = torch.where(accepted, s.step, o.shrink * s.step)
        self._new_direction(s, accepted)

    def _remember(self, s: _Batch, accepted: torch.Tensor, step: torch.Tensor, change: torch.Tensor) -> None:
        """Append the pair (step, change) for accepted samples with enough curvature."""
        sy = (step * change).sum(1)
        yy = change.square().sum(1)
        keep = accepted & (sy > CURVATURE_EPS * step.norm(dim=1) * yy.sqrt())
        k3 = keep[:, None, None]
        s.s = torch.where(k3, torch.cat([s.s[:, 1:], step[:, None]], 1), s.s)
        s.y = torch.where(k3, torch.cat([s.y[:, 1:], change[:, None]], 1), s.y)
        safe_sy = torch.where(keep, sy, 1)
        s.rho = torch.where(keep[:, None], torch.cat([s.rho[:, 1:], (1 / safe_sy)[:, None]], 1), s.rho)
        s.gamma = torch.where(keep, sy / torch.where(keep, yy, 1), s.gamma)
        s.pairs = torch.where(keep, (s.pairs + 1).clamp(max=s.rho.shape[1]), s.pairs)

    def _new_direction(self, s: _Batch, update: torch.Tensor) -> None:
        """Where `update`: the L-BFGS direction from the current gradient, its slope and
        the first trial step; memory reset to steepest descent where it is not descent."""
        direction = -_two_loop(s.grad, s.s, s.y, s.rho, s.gamma)
        slope = (s.grad * direction).sum(1)
        reset = update & ~(slope < 0)
        if bool(reset.any()):
            self._forget(s, reset)
            direction = torch.where(reset[:, None], -s.grad, direction)
            slope = torch.where(reset, -s.grad.square().sum(1), slope)
        first = self.options.initial_step / s.grad.norm(dim=1)
        step = torch.where(s.pairs > 0, torch.ones_like(first), first)
        s.direction = torch.where(update[:, None], direction, s.direction)
        s.slope = torch.where(update, slope, s.slope)
        s.step = torch.where(update, step, s.step)

    @staticmethod
    def _forget(s: _Batch, reset: torch.Tensor) -> None:
        s.s = torch.where(reset[:, None, None], 0, s.s)
        s.y = torch.where(reset[:, None, None], 0, s.y)
        s.rho = torch.where(reset[:, None], 0, s.rho)
        s.gamma = torch.where(reset, 1, s.gamma)
        s.pairs = torch.where(reset, 0, s.pairs)


def _empty_output(batch: int, z: torch.Tensor, loss: torch.Tensor) -> SolverOutput:
    """A SolverOutput of `batch` samples to be filled by `_store_finished`."""
    count = dict(dtype=torch.int64, device=z.device)
    return SolverOutput(
        z=z.new_empty((batch, *z.shape[1:])),
        loss=loss.new_empty(batch),
        nfe=torch.empty(batch, **count),
        converged=torch.empty(batch, dtype=torch.bool, device=z.device),
        t=torch.empty(batch, dtype=torch.float64, device=z.device),
        rejected=torch.empty(batch, **count),
    )


def _store_finished(out: SolverOutput, state, done: torch.Tensor, iterations: int) -> None:
    """Copy the samples of the working set `state` (idx, z, loss, converged, rejected, iters)
    where `done` into `out`; each took part in `iterations` decoder calls after the start."""
    idx = state.idx[done]
    for name in ("z", "loss", "converged", "rejected"):
        getattr(out, name)[idx] = getattr(state, name)[done]
    out.t[idx] = state.iters[done].to(torch.float64)
    out.nfe[idx] = iterations + 1  # the start plus one evaluation per iteration it took part in


def _two_loop(
    grad: torch.Tensor, s: torch.Tensor, y: torch.Tensor, rho: torch.Tensor, gamma: torch.Tensor
) -> torch.Tensor:
    """H grad for every sample, H the L-BFGS inverse Hessian of its pairs (missing pairs
    have rho = 0 and drop out); a loop over the memory slots, not over samples."""
    q = grad
    alphas = []
    for j in reversed(range(s.shape[1])):
        a = rho[:, j] * (s[:, j] * q).sum(1)
        q = q - a[:, None] * y[:, j]
        alphas.append(a)
    r = gamma[:, None] * q
    for j, a in zip(range(s.shape[1]), reversed(alphas), strict=True):
        b = rho[:, j] * (y[:, j] * r).sum(1)
        r = r + (a - b)[:, None] * s[:, j]
    return r
