"""AMD, "adaptive minimise distance": explicit Euler steps sized to make the loss fall.

Each trial step z1 = z + dt f(z) is accepted when the loss falls by at least
sigma * dt * dt_max * |f(z1)|^2. A rejected step halves dt (`shrink`); once dt has been
shrunk below shrink**max_halvings the step is forced and time jumps by `dt_stall`.
Accepted steps grow dt by `growth`, clamped to [dt_init, dt_max]. Once t has passed
(1 - conv_fraction) * tau, each accepted step appends the loss to a history, and the
flow has converged when |mean(numpy.gradient(last `conv_window` losses))| < conv_tol.

Per-sample mode (the default) keeps dt, t, the history and the stop flag per sample, so a
sample's encoding does not depend on its batch mates; a forced step keeps the current z
(the loss never increases) and only advances time. Finished samples leave the working
set, so they stop costing decoder evaluations. `shared=True` is the authors' batch rule:
one dt for the whole batch, a step accepted only if every sample accepts it, a forced step
moves every sample, and convergence judged on the batch-mean loss.

Each trial costs exactly one decoder forward+backward: the loss at z is kept from the
evaluation that produced f(z), never recomputed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from ..flows import GradientFlow
from .base import FlowDivergedError, SolverOutput, first_samples


@dataclass(frozen=True)
class AMDOptions:
    """Step control of AMD; defaults are the authors' MNIST configuration."""

    dt_init: float = 1.0
    dt_max: float = 10.0
    shrink: float = 0.5
    max_halvings: int = 20
    sigma: float = 1e-5
    conv_fraction: float = 0.98
    conv_tol: float = 1e-5
    conv_window: int = 5
    dt_stall: float = 10.0
    growth: float = 1.1
    shared: bool = False
    max_evals: int = 100_000

    def __post_init__(self):
        checks = [
            ("dt_init", self.dt_init > 0, "> 0"),
            ("dt_max", self.dt_max >= self.dt_init, f">= dt_init ({self.dt_init})"),
            ("shrink", 0 < self.shrink < 1, "in (0, 1)"),
            ("max_halvings", int(self.max_halvings) == self.max_halvings and self.max_halvings >= 0, "an integer >= 0"),
            ("sigma", self.sigma >= 0, ">= 0"),
            ("conv_fraction", 0 <= self.conv_fraction <= 1, "in [0, 1]"),
            ("conv_tol", self.conv_tol >= 0, ">= 0"),
            ("conv_window", int(self.conv_window) == self.conv_window and self.conv_window >= 2, "an integer >= 2"),
            ("dt_stall", self.dt_stall > 0, "> 0"),
            ("growth", self.growth >= 1, ">= 1"),
            ("max_evals", int(self.max_evals) == self.max_evals and self.max_evals >= 1, "an integer >= 1"),
        ]
        for name, ok, allowed in checks:
            if not ok:
                raise ValueError(f"AMD option {name}={getattr(self, name)!r} is invalid: must be {allowed}")


@dataclass
class _Batch:
    """Working state of the samples still being integrated (index `idx` into the batch)."""

    idx: torch.Tensor
    z: torch.Tensor
    velocity: torch.Tensor
    loss: torch.Tensor
    dt: torch.Tensor
    t: torch.Tensor
    history: torch.Tensor
    history_len: torch.Tensor
    nfe: torch.Tensor
    rejected: torch.Tensor
    converged: torch.Tensor

    def keep(self, mask: torch.Tensor) -> "_Batch":
        return _Batch(**{name: value[mask] for name, value in vars(self).items()})


class AMDSolver:
    """Adaptive minimise-distance integration of a first-order gradient flow."""

    name = "amd"

    def __init__(self, **options):
        self.options = AMDOptions(**options)

    def describe(self) -> dict:
        return {"solver": self.name, **asdict(self.options)}

    def solve(self, flow, z0: torch.Tensor, tau: float, trace: list | None = None) -> SolverOutput:
        """Integrate from z0 to tau (or convergence). `trace`, if a list, receives one
        dict per iteration with the trial of every sample still active."""
        if not isinstance(flow, GradientFlow):
            raise ValueError("solver='amd' integrates the first-order flow only (order=1)")
        state = self._start(flow, z0)
        out = self._empty_output(state)
        while state.idx.numel():
            state = self._iterate(flow, state, tau, trace)
            done = state.converged | (state.t >= tau) | (state.nfe >= self.options.max_evals)
            if bool(done.any()):
                self._store(out, state, done)
                state = state.keep(~done)
        return out

    def _start(self, flow: GradientFlow, z0: torch.Tensor) -> _Batch:
        o = self.options
        batch = z0.shape[0]
        loss, velocity = flow.loss_and_velocity(z0)
        bad = ~(torch.isfinite(loss) & torch.isfinite(velocity).all(1))
        if bool(bad.any()):
            samples = first_samples(bad)
            raise FlowDivergedError(
                f"AMD: non-finite loss or gradient at the starting point for samples {samples}; "
                "check the decoder weights and the data", samples, step=0)
        time_opts = dict(dtype=torch.float64, device=z0.device)
        count_opts = dict(dtype=torch.int64, device=z0.device)
        return _Batch(
            idx=torch.arange(batch, device=z0.device),
            z=z0, velocity=velocity, loss=loss,
            dt=torch.full((batch,), o.dt_init, **time_opts),
            t=torch.zeros(batch, **time_opts),
            history=torch.zeros(batch, o.conv_window, dtype=loss.dtype, device=z0.device),
            history_len=torch.zeros(batch, **count_opts),
            nfe=torch.ones(batch, **count_opts),
            rejected=torch.zeros(batch, **count_opts),
            converged=torch.zeros(batch, dtype=torch.bool, device=z0.device),
        )

    def _iterate(self, flow: GradientFlow, s: _Batch, tau: float, trace: list | None) -> _Batch:
        o = self.options
        remaining = tau - s.t
        dt = torch.minimum(s.dt, remaining)
        z1 = s.z + dt.to(s.z.dtype)[:, None] * s.velocity
        loss1, velocity1 = flow.loss_and_velocity(z1, flow.target[s.idx])
        finite = torch.isfinite(loss1) & torch.isfinite(velocity1).all(1)
        required = o.sigma * dt.to(loss1.dtype) * o.dt_max * velocity1.square().sum(1)
        accepted = finite & (s.loss - loss1 >= required)
        forced = dt < o.shrink ** o.max_halvings
        if o.shared:
            accepted = accepted.all().expand_as(accepted)
            moved = accepted | (forced & finite)
        else:
            moved = accepted
        advanced = accepted | forced
        step = torch.where(forced, torch.minimum(torch.full_like(dt, o.dt_stall), remaining), dt)
        ends = step >= remaining
        if trace is not None:
            trace.append(dict(idx=s.idx, t=s.t, dt=dt, z=s.z, z1=z1, loss=s.loss, loss1=loss1, required=required,
                              accepted=accepted, forced=forced, moved=moved))

        z = torch.where(moved[:, None], z1, s.z)
        velocity = torch.where(moved[:, None], velocity1, s.velocity)
        loss = torch.where(moved, loss1, s.loss)
        t = torch.where(advanced, torch.where(ends, torch.full_like(s.t, tau), s.t + step), s.t)
        grown = (o.growth * step).clamp(o.dt_init, o.dt_max)
        new_dt = torch.where(advanced, grown, o.shrink * dt)
        history, history_len, converged = self._record(s, loss, advanced & (t >= (1 - o.conv_fraction) * tau))
        return _Batch(idx=s.idx, z=z, velocity=velocity, loss=loss, dt=new_dt, t=t,
                      history=history, history_len=history_len, nfe=s.nfe + 1,
                      rejected=s.rejected + (~accepted).long(), converged=converged)

    def _record(self, s: _Batch, loss: torch.Tensor, record: torch.Tensor):
        """Append the loss (the batch mean in shared mode) to the history where `record`."""
        o = self.options
        value = loss.mean().expand_as(loss) if o.shared else loss
        appended = torch.cat([s.history[:, 1:], value[:, None]], dim=1)
        history = torch.where(record[:, None], appended, s.history)
        history_len = s.history_len + record.long()
        slope = torch.gradient(history, dim=1)[0].mean(1)
        converged = s.converged | (record & (history_len >= o.conv_window) & (slope.abs() < o.conv_tol))
        return history, history_len, converged

    @staticmethod
    def _empty_output(s: _Batch) -> SolverOutput:
        return SolverOutput(z=torch.empty_like(s.z), loss=torch.empty_like(s.loss), nfe=torch.empty_like(s.nfe),
                            converged=torch.empty_like(s.converged), t=torch.empty_like(s.t),
                            rejected=torch.empty_like(s.rejected))

    @staticmethod
    def _store(out: SolverOutput, s: _Batch, done: torch.Tensor) -> None:
        idx = s.idx[done]
        for name in ("z", "loss", "nfe", "converged", "t", "rejected"):
            getattr(out, name)[idx] = getattr(s, name)[done]
