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
moves every sample, and convergence judged on the batch-mean loss. A flow with a
`group_size` attribute (`gfe.lockstep.LockstepFlow`: several runs' batches, one after
the other) gets the shared rule per group of that many rows, each group as if alone.

A non-finite trial is a rejected step (a decoder may be non-finite in part of latent
space). Where even a forced step is non-finite, the working set is evaluated once more at
its current z, where every loss was finite: non-finite there too, the decoder itself broke,
and a FlowDivergedError says so (`raise_if_decoder_broke`) instead of a flat loss history
passing for convergence.

Each trial costs exactly one decoder forward+backward: the loss at z is kept from the
evaluation that produced f(z), never recomputed (the check above aside).

Cost: an iteration is the decoder call plus about forty small tensor operations on the
working set (no Python loop over samples, no per-iteration gather of the targets; the
slope of the loss history is a fixed linear combination of the window, the number
`numpy.gradient(...).mean()` gives, in float64 as in the authors' code, whose history is
a list of Python floats). A sample's NFE is derived from the
iteration it joined and left at, not counted per iteration. `working_set=K` (per-sample
mode only, off by default) integrates at most K samples at once and refills the freed
slots from the rest of the batch, so a large batch keeps the decoder calls full instead
of ending in a long tail of nearly empty ones; it changes the cost, not the encodings.

The shared rule on one group (the training setting) runs a fused loop (`_solve_shared`):
dt, t, the history and the stop flag are one number for the whole batch, so they are
kept as Python floats, rounded to the tensors' dtype where the general loop computes in
that dtype; it takes the same steps, with the same losses and NFE, as the general loop
(which `gfe.fastpass.reference_path()` restores), at about ten tensor operations and two
synchronisations an iteration.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .. import fastpass
from ..flows import GradientFlow
from .base import FlowDivergedError, SolverOutput, is_bool, is_integer, is_number, raise_if_decoder_broke


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
    working_set: int | None = None

    def __post_init__(self):
        """Reject a bad option with a ValueError naming it, its value and what is allowed.
        Numbers must be real numbers (not bools or strings), counts integers, `shared` a bool."""
        checks = [
            ("dt_init", lambda: is_number(self.dt_init) and self.dt_init > 0, "a number > 0"),
            (
                "dt_max",
                lambda: is_number(self.dt_max) and self.dt_max >= self.dt_init,
                f"a number >= dt_init ({self.dt_init})",
            ),
            ("shrink", lambda: is_number(self.shrink) and 0 < self.shrink < 1, "a number in (0, 1)"),
            ("max_halvings", lambda: is_integer(self.max_halvings) and self.max_halvings >= 0, "an integer >= 0"),
            ("sigma", lambda: is_number(self.sigma) and self.sigma >= 0, "a number >= 0"),
            (
                "conv_fraction",
                lambda: is_number(self.conv_fraction) and 0 <= self.conv_fraction <= 1,
                "a number in [0, 1]",
            ),
            ("conv_tol", lambda: is_number(self.conv_tol) and self.conv_tol >= 0, "a number >= 0"),
            ("conv_window", lambda: is_integer(self.conv_window) and self.conv_window >= 2, "an integer >= 2"),
            ("dt_stall", lambda: is_number(self.dt_stall) and self.dt_stall > 0, "a number > 0"),
            ("growth", lambda: is_number(self.growth) and self.growth >= 1, "a number >= 1"),
            ("shared", lambda: is_bool(self.shared), "True or False"),
            ("max_evals", lambda: is_integer(self.max_evals) and self.max_evals >= 1, "an integer >= 1"),
            (
                "working_set",
                lambda: (
                    self.working_set is None
                    or (is_integer(self.working_set) and self.working_set >= 1 and not self.shared)
                ),
                "None or an integer >= 1, and only without shared=True",
            ),
        ]
        for name, ok, allowed in checks:
            if not ok():
                raise ValueError(f"AMD option {name}={getattr(self, name)!r} is invalid: must be {allowed}")


# Round a Python float (float64) to a dtype, as a tensor of that dtype holds it.
_ROUND = {torch.float64: float, torch.float32: lambda value: float(np.float32(value))}


def _in_groups(values: torch.Tensor, group_size: int | None, reduce) -> torch.Tensor:
    """`reduce` (torch.all, torch.mean) over each group of `group_size` consecutive rows
    (None: over all rows), broadcast back to every row of the group."""
    if group_size is None:
        return reduce(values).expand_as(values)
    return reduce(values.view(-1, group_size), 1).repeat_interleave(group_size)


def _slope_weights(window: int, device) -> torch.Tensor:
    """w with h @ w == torch.gradient(h)[0].mean() for any window h of length `window`
    (unit spacing, second-order interior differences, one-sided at the ends)."""
    eye = torch.eye(window, dtype=torch.float64)
    return torch.gradient(eye, dim=1)[0].mean(1).to(device)


@dataclass
class _Batch:
    """Working state of the samples still being integrated (index `idx` into the batch)."""

    idx: torch.Tensor
    target: torch.Tensor
    z: torch.Tensor
    velocity: torch.Tensor
    loss: torch.Tensor
    dt: torch.Tensor
    t: torch.Tensor
    history: torch.Tensor
    history_len: torch.Tensor
    born: torch.Tensor  # the iteration count when the sample joined the working set
    rejected: torch.Tensor
    converged: torch.Tensor

    def keep(self, mask: torch.Tensor) -> "_Batch":
        return _Batch(**{name: value[mask] for name, value in vars(self).items()})

    @staticmethod
    def join(first: "_Batch", second: "_Batch") -> "_Batch":
        return _Batch(**{name: torch.cat([value, getattr(second, name)]) for name, value in vars(first).items()})


class AMDSolver:
    """Adaptive minimise-distance integration of a first-order gradient flow."""

    name = "amd"

    def __init__(self, **options):
        self.options = AMDOptions(**options)

    def solve(self, flow, z0: torch.Tensor, tau: float, trace: list | None = None) -> SolverOutput:
        """Integrate from z0 to tau (or convergence). `trace`, if a list, receives one
        dict per iteration with the trial of every sample still active. Raises a
        FlowDivergedError when the loss or gradient is not finite at z0 or the decoder
        turns non-finite during the run (see the module docstring)."""
        if not isinstance(flow, GradientFlow):
            raise ValueError("solver='amd' integrates the first-order flow only (order=1)")
        o = self.options
        if (
            o.shared
            and trace is None
            and getattr(flow, "group_size", None) is None
            and z0.dtype in _ROUND
            and z0.shape[0] > 0
            and fastpass.enabled()
        ):
            return self._solve_shared(flow, z0, tau)
        batch = z0.shape[0]
        capacity = batch if o.working_set is None else min(int(o.working_set), batch)
        weights = _slope_weights(o.conv_window, z0.device)
        state = self._start(flow, z0, torch.arange(capacity, device=z0.device), 0)
        waiting = capacity  # samples capacity..batch-1 have not started yet
        out = self._empty_output(state, batch)
        iterations = 0
        while state.idx.numel():
            stuck = self._iterate(flow, state, tau, trace, weights)
            iterations += 1
            done = state.converged | (state.t >= tau)
            if iterations - int(state.born.min()) + 1 >= o.max_evals:  # rare: check per sample only then
                done = done | (iterations - state.born + 1 >= o.max_evals)
            if bool((done | stuck).any()):  # one synchronisation for both
                if bool(stuck.any()):
                    raise_if_decoder_broke(flow, state.z, state.target, state.idx, state.idx, "AMD", iterations)
                if bool(done.any()):
                    self._store(out, state, done, iterations)
                    state = state.keep(~done)
            free = capacity - state.idx.numel()
            if waiting < batch and free and (free * 8 >= capacity or not state.idx.numel()):
                new = torch.arange(waiting, min(batch, waiting + free), device=z0.device)
                waiting += new.numel()
                state = _Batch.join(state, self._start(flow, z0, new, iterations))
        return out

    def _start(self, flow: GradientFlow, z0: torch.Tensor, idx: torch.Tensor, iteration: int) -> _Batch:
        o = self.options
        z, target = (z0, flow.target) if idx.numel() == z0.shape[0] else (z0[idx], flow.target[idx])
        batch = idx.numel()
        loss, velocity = flow.loss_and_velocity(z, target, rows=idx)
        bad = ~(torch.isfinite(loss) & torch.isfinite(velocity).all(1))
        if bool(bad.any()):
            samples = idx[bad][:10].tolist()
            raise FlowDivergedError(
                f"AMD: non-finite loss or gradient at the starting point for samples {samples}; "
                "check the decoder weights and the data",
                samples,
                step=0,
            )
        time_opts = dict(dtype=torch.float64, device=z0.device)
        count_opts = dict(dtype=torch.int64, device=z0.device)
        return _Batch(
            idx=idx,
            target=target,
            z=z,
            velocity=velocity,
            loss=loss,
            dt=torch.full((batch,), o.dt_init, **time_opts),
            t=torch.zeros(batch, **time_opts),
            history=torch.zeros(batch, o.conv_window, **time_opts),
            history_len=torch.zeros(batch, **count_opts),
            born=torch.full((batch,), iteration, **count_opts),
            rejected=torch.zeros(batch, **count_opts),
            converged=torch.zeros(batch, dtype=torch.bool, device=z0.device),
        )

    def _iterate(
        self, flow: GradientFlow, s: _Batch, tau: float, trace: list | None, weights: torch.Tensor
    ) -> torch.Tensor:
        """One trial step for every sample of the working set; updates `s` in place. Returns
        the (B,) mask of samples whose forced (smallest) step was non-finite: `solve` checks
        whether the decoder itself broke there."""
        o = self.options
        remaining = tau - s.t
        dt = torch.minimum(s.dt, remaining)
        z1 = s.z + dt.to(s.z.dtype)[:, None] * s.velocity
        loss1, velocity1 = flow.loss_and_velocity(z1, s.target, rows=s.idx)
        speed2 = velocity1.square().sum(1)
        required = o.sigma * dt.to(loss1.dtype) * o.dt_max * speed2
        # A non-finite loss or velocity makes the comparison False (NaN, or a decrease
        # that cannot reach an infinite requirement), so `accepted` implies finite.
        accepted = s.loss - loss1 >= required
        forced = dt < o.shrink**o.max_halvings
        finite = torch.isfinite(loss1 + speed2)
        group_size = getattr(flow, "group_size", None)
        if o.shared:
            accepted = _in_groups(accepted, group_size, torch.all)
            moved = accepted | (forced & finite)
        else:
            moved = accepted
        advanced = accepted | forced
        step = torch.where(forced, remaining.clamp(max=o.dt_stall), dt)
        if trace is not None:
            trace.append(
                dict(
                    idx=s.idx,
                    t=s.t,
                    dt=dt,
                    z=s.z,
                    z1=z1,
                    loss=s.loss,
                    loss1=loss1,
                    required=required,
                    accepted=accepted,
                    forced=forced,
                    moved=moved,
                )
            )
        moved_col = moved[:, None]
        s.z = torch.where(moved_col, z1, s.z)
        s.velocity = torch.where(moved_col, velocity1, s.velocity)
        s.loss = torch.where(moved, loss1, s.loss)
        t_next = torch.where(step >= remaining, tau, s.t + step)
        s.t = torch.where(advanced, t_next, s.t)
        s.dt = torch.where(advanced, (o.growth * step).clamp(o.dt_init, o.dt_max), o.shrink * dt)
        s.rejected = s.rejected + (~accepted)
        self._record(s, advanced & (s.t >= (1 - o.conv_fraction) * tau), weights, group_size)
        return forced & ~finite

    def _record(self, s: _Batch, record: torch.Tensor, weights: torch.Tensor, group_size: int | None) -> None:
        """Append the loss (the batch or group mean in shared mode) to the history where `record`."""
        o = self.options
        value = _in_groups(s.loss, group_size, torch.mean) if o.shared else s.loss  # a float32 mean, as the authors'
        appended = torch.cat([s.history[:, 1:], value.to(s.history.dtype)[:, None]], dim=1)
        s.history = torch.where(record[:, None], appended, s.history)
        s.history_len = s.history_len + record
        slope = (s.history * weights).sum(1)
        s.converged = s.converged | (record & (s.history_len >= o.conv_window) & (slope.abs() < o.conv_tol))

    def _solve_shared(self, flow: GradientFlow, z0: torch.Tensor, tau: float) -> SolverOutput:
        """The shared rule for the whole batch as one group, with scalar step control; the
        same steps as `_iterate` and `_record` take in shared mode (see the module docstring)."""
        o = self.options
        s = self._start(flow, z0, torch.arange(z0.shape[0], device=z0.device), 0)
        z, velocity, loss, target, idx = s.z, s.velocity, s.loss, s.target, s.idx
        as_dtype = _ROUND[z0.dtype]
        weights = _slope_weights(o.conv_window, z0.device)[None]
        dt, t, rejected, iterations, converged = float(o.dt_init), 0.0, 0, 0, False
        history: list[float] = []
        min_dt, record_from = o.shrink**o.max_halvings, (1 - o.conv_fraction) * tau
        sigma, dt_max = as_dtype(o.sigma), as_dtype(o.dt_max)
        while True:
            remaining = tau - t
            dt = min(dt, remaining)
            dt_z = as_dtype(dt)
            z1 = z + velocity * dt_z
            loss1, velocity1 = flow.loss_and_velocity(z1, target, rows=idx)
            speed2 = velocity1.square().sum(1)
            required = speed2 * as_dtype(as_dtype(sigma * dt_z) * dt_max)  # (sigma * dt) * dt_max * |f|^2
            accepted = bool((loss - loss1 >= required).all())
            forced = dt < min_dt
            if accepted:
                z, velocity, loss = z1, velocity1, loss1
            elif forced:  # a forced step moves the samples whose trial is finite
                moved = torch.isfinite(loss1 + speed2)
                if not bool(moved.all()):
                    raise_if_decoder_broke(flow, z, target, idx, idx, "AMD", iterations + 1)
                z = torch.where(moved[:, None], z1, z)
                velocity = torch.where(moved[:, None], velocity1, velocity)
                loss = torch.where(moved, loss1, loss)
            iterations += 1
            rejected += not accepted
            if accepted or forced:
                step = min(remaining, o.dt_stall) if forced else dt
                t = tau if step >= remaining else t + step
                dt = min(max(o.growth * step, o.dt_init), o.dt_max)
                if t >= record_from:
                    history = [*history[1 - o.conv_window :], float(loss.mean())]
                    if len(history) >= o.conv_window:
                        h = torch.tensor([history], dtype=torch.float64, device=weights.device)
                        converged = bool((h * weights).sum(1).abs() < o.conv_tol)
            else:
                dt = o.shrink * dt
            if converged or t >= tau or iterations + 1 >= o.max_evals:
                break
        full = dict(size=(z0.shape[0],), device=z0.device)
        return SolverOutput(
            z=z.clone(),  # never the caller's z0 itself
            loss=loss.clone(),
            nfe=torch.full(fill_value=iterations + 1, dtype=torch.int64, **full),
            converged=torch.full(fill_value=converged, dtype=torch.bool, **full),
            t=torch.full(fill_value=t, dtype=torch.float64, **full),
            rejected=torch.full(fill_value=rejected, dtype=torch.int64, **full),
        )

    @staticmethod
    def _empty_output(s: _Batch, batch: int) -> SolverOutput:
        def empty(like):
            return like.new_empty((batch, *like.shape[1:]))

        return SolverOutput(
            z=empty(s.z),
            loss=empty(s.loss),
            nfe=empty(s.born),
            converged=empty(s.converged),
            t=empty(s.t),
            rejected=empty(s.rejected),
        )

    @staticmethod
    def _store(out: SolverOutput, s: _Batch, done: torch.Tensor, iterations: int) -> None:
        idx = s.idx[done]
        for name in ("z", "loss", "converged", "t", "rejected"):
            getattr(out, name)[idx] = getattr(s, name)[done]
        out.nfe[idx] = iterations + 1 - s.born[done]
