"""Dense L-BFGS: the per-sample L-BFGS descent with unlimited memory, kept as two (d, d)
matrices per sample, its bookkeeping on the host.

This goes beyond the papers, like `lbfgs` (see there for what a descent is and is not: it
reaches a stationary point of the same per-sample loss, it does not integrate the flow;
`tau` is ignored and `t` counts accepted iterations). It is the same method as `lbfgs`
with a memory longer than the run (same line search, stop rules, resets, working set and
NFE count, same iterates up to rounding), written for speed at small batches, where a
step's cost is mostly per-operation overhead rather than arithmetic:

* The L-BFGS inverse Hessian of all pairs so far with initial matrix gamma I is
      H = gamma A + C,  A = V_k^T ... V_1^T V_1 ... V_k,  V_j = I - rho_j y_j s_j^T,
      C = the same products applied to the rho_j s_j s_j^T terms,
  and a new pair (s, y) updates both by the rank-two map M -> V^T M V (C also gains
  rho s s^T), while gamma = s.y / y.y of the newest pair scales A afresh each iteration.
  One matrix-vector product gives the direction, where the two-loop recursion takes
  2 x memory sequential steps. A and C are d^2 numbers each per sample (d = 20 in GFE).
* Everything but the decoder pass runs in numpy on the host, where an operation on a few
  numbers costs about a microsecond, a third of a torch call. On the CPU the arrays share
  memory with the tensors; on a GPU each decoder call copies z (B, d) there and the loss
  and gradient back, one synchronisation per call, which the other solvers' per-step
  decisions take too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..flows import GradientFlow
from .base import SolverOutput, raise_if_decoder_broke
from .descent import CURVATURE_EPS, DescentOptions, start_point


@dataclass(frozen=True)
class DenseLBFGSOptions(DescentOptions):
    """The line search and stop rules of `DescentOptions` (no `memory`: it is unlimited)."""

    solver_label = "dense L-BFGS"


@dataclass
class _Batch:
    """Working state of the samples still descending, numpy arrays on the host (`idx`
    indexes the batch; `target` is the images of the working set, a tensor on the device)."""

    idx: np.ndarray
    target: torch.Tensor
    z: np.ndarray  # (B, d) the best (latest accepted) point
    loss: np.ndarray
    grad: np.ndarray  # (B, d) grad_z l at z
    products: np.ndarray  # (B, 2, d, d) the matrices A and C of H = gamma A + C
    gamma: np.ndarray  # (B,) s.y / y.y of the newest pair (1 without pairs)
    fresh: np.ndarray  # (B,) no curvature pair yet: H is the identity
    direction: np.ndarray
    slope: np.ndarray  # grad . direction (< 0)
    step: np.ndarray  # the next trial is z + step * direction
    backtracks: np.ndarray  # trials rejected in the current line search
    iters: np.ndarray  # accepted iterations
    rejected: np.ndarray
    converged: np.ndarray
    failed: np.ndarray  # the line search ran out of backtracks
    finite: np.ndarray  # the last trial's loss and gradient were finite

    def keep(self, mask: np.ndarray) -> "_Batch":
        kept = {name: value[mask] for name, value in vars(self).items() if name != "target"}
        return _Batch(target=self.target[torch.from_numpy(mask).to(self.target.device)], **kept)


class DenseLBFGSSolver:
    """Per-sample L-BFGS with unlimited memory as dense matrices, backtracking Armijo line search.

    Args:
        **options: the fields of `DenseLBFGSOptions` (max_iters, tol, grad_tol, c1, shrink,
            max_backtracks, initial_step, max_evals); a bad one raises a ValueError.
    """

    name = "lbfgs_dense"

    def __init__(self, **options):
        self.options = DenseLBFGSOptions(**options)

    def solve(self, flow, z0: torch.Tensor, tau: float | None = None, trace: list | None = None) -> SolverOutput:
        """Descend each sample's loss from z0 to a stationary point.

        Args:
            flow: a first-order `GradientFlow` (its loss, and its velocity / -alpha as the gradient).
            z0: (B, d) starting points.
            tau: ignored (there is no time); kept for the solver interface.
            trace: if a list, receives one dict of tensors per decoder call with the trial of
                every sample still running (idx, z, loss, step, z1, loss1, accepted).

        Returns:
            SolverOutput: z (the best point, z0's dtype and device), its loss, NFE per sample,
            converged (stopped by tol or grad_tol), t (accepted iterations, float64) and
            rejected trials.

        Raises:
            ValueError: the flow is not a first-order GradientFlow.
            FlowDivergedError: the loss or gradient is not finite at z0, or a sample stopped on
                a non-finite trial and the decoder is no longer finite at its z either (the
                decoder broke: `raise_if_decoder_broke`); names the samples.
        """
        if not isinstance(flow, GradientFlow):
            raise ValueError("solver='lbfgs_dense' descends the first-order flow's loss only (order=1)")
        o = self.options
        state = self._start(flow, z0)
        out = {name: np.empty_like(getattr(state, name)) for name in ("z", "loss", "iters", "rejected", "converged")}
        out["nfe"] = np.empty_like(state.iters)
        iterations = 0
        done = state.converged | (iterations + 1 >= o.max_evals)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            while True:
                if done.any():
                    self._check_decoder(flow, state, done, iterations, z0)
                    self._store(out, state, done, iterations)
                    state = state.keep(~done)
                if not state.idx.size:
                    return self._output(out, z0)
                self._iterate(flow, state, trace, z0)
                iterations += 1
                done = state.converged | state.failed | (state.iters >= o.max_iters)
                if iterations + 1 >= o.max_evals:
                    done = np.ones_like(done)

    def _start(self, flow: GradientFlow, z0: torch.Tensor) -> _Batch:
        batch, dim = z0.shape
        loss, grad = (host(t) for t in start_point(flow, z0, "dense L-BFGS"))
        gnorm = np.sqrt(np.einsum("ij,ij->i", grad, grad))
        with np.errstate(divide="ignore"):
            step = self.options.initial_step / gnorm
        return _Batch(
            idx=np.arange(batch),
            target=flow.target,
            z=host(z0).copy(),
            loss=loss,
            grad=grad,
            products=_identity_and_zero(batch, dim, grad.dtype),
            gamma=np.ones(batch, dtype=grad.dtype),
            fresh=np.ones(batch, dtype=bool),
            direction=-grad,
            slope=-np.square(gnorm),
            step=step,
            backtracks=np.zeros(batch, dtype=np.int64),
            iters=np.zeros(batch, dtype=np.int64),
            rejected=np.zeros(batch, dtype=np.int64),
            converged=self._stationary(gnorm),
            failed=np.zeros(batch, dtype=bool),
            finite=np.ones(batch, dtype=bool),
        )

    def _stationary(self, gnorm: np.ndarray) -> np.ndarray:
        """Samples whose gradient norm is zero or below grad_tol: there is nowhere to descend."""
        grad_tol = self.options.grad_tol
        return gnorm < grad_tol if grad_tol > 0 else gnorm == 0

    def _iterate(self, flow: GradientFlow, s: _Batch, trace: list | None, like: torch.Tensor) -> None:
        """One trial point for every sample of the working set; updates `s` in place."""
        o = self.options
        z1 = s.z + s.step[:, None] * s.direction
        loss1, velocity1 = flow.loss_and_velocity(
            torch.from_numpy(z1).to(device=like.device, dtype=like.dtype), s.target
        )
        loss1, grad1 = host(loss1), host(velocity1) / -flow.alpha
        s.finite = np.isfinite(loss1) & np.isfinite(grad1).all(1)
        accepted = (loss1 <= s.loss + o.c1 * s.step * s.slope) & s.finite
        if trace is not None:
            trace.append(_trace_entry(s, z1, loss1, accepted, like.device))
        decrease = s.loss - loss1
        self._remember(s, accepted, z1 - s.z, grad1 - s.grad)
        col = accepted[:, None]
        s.z = np.where(col, z1, s.z)
        s.loss = np.where(accepted, loss1, s.loss)
        s.grad = np.where(col, grad1, s.grad)
        s.iters += accepted
        s.rejected += ~accepted
        s.backtracks = np.where(accepted, 0, s.backtracks + 1)
        s.failed = s.backtracks > o.max_backtracks
        gnorm = np.sqrt(np.einsum("ij,ij->i", s.grad, s.grad))
        s.converged = accepted & ((decrease < o.tol) | self._stationary(gnorm))
        self._new_direction(s, accepted, gnorm)

    @staticmethod
    def _remember(s: _Batch, accepted: np.ndarray, step: np.ndarray, change: np.ndarray) -> None:
        """Take the pair (step, change) into A and C, for accepted samples with enough curvature."""
        sy = np.einsum("ij,ij->i", step, change)
        yy = np.einsum("ij,ij->i", change, change)
        keep = accepted & (sy > CURVATURE_EPS * np.sqrt(np.einsum("ij,ij->i", step, step) * yy))
        if not keep.any():
            return
        rho = 1 / sy
        my = s.products @ change[:, None, :, None]  # (B, 2, d, 1): A y and C y
        ymy = np.einsum("bj,bkj->bk", change, my[..., 0])  # (B, 2): y.A.y and y.C.y
        coefficient = np.square(rho)[:, None] * ymy
        coefficient[:, 1] += rho
        # M -> V^T M V = M - rho (s (My)^T + (My) s^T) + rho^2 (y.M.y) s s^T, and C += rho s s^T
        col, row = step[:, None, :, None], step[:, None, None, :]
        scaled = rho[:, None, None, None] * my
        updated = s.products + col * (coefficient[:, :, None, None] * row - np.swapaxes(scaled, 2, 3))
        updated -= scaled * row
        s.products = updated if keep.all() else np.where(keep[:, None, None, None], updated, s.products)
        s.gamma = np.where(keep, sy / yy, s.gamma).astype(s.gamma.dtype, copy=False)
        s.fresh = s.fresh & ~keep

    def _new_direction(self, s: _Batch, update: np.ndarray, gnorm: np.ndarray) -> None:
        """Where `update`: the direction -H grad, its slope and the first trial step (1, or
        `initial_step` along -grad/|grad| while H is the identity); a sample whose direction
        is not descent forgets its pairs. Elsewhere the step shrinks."""
        hinv = s.gamma[:, None, None] * s.products[:, 0] + s.products[:, 1]
        direction = -(hinv @ s.grad[:, :, None])[:, :, 0]
        slope = np.einsum("ij,ij->i", s.grad, direction)
        reset = update & ~(slope < 0)
        if reset.any():
            s.products = np.where(
                reset[:, None, None, None], _identity_and_zero(*s.z.shape, s.products.dtype), s.products
            )
            s.gamma = np.where(reset, 1, s.gamma).astype(s.gamma.dtype, copy=False)
            s.fresh = s.fresh | reset
            direction = np.where(reset[:, None], -s.grad, direction)
            slope = np.where(reset, -np.square(gnorm), slope)
        step = np.where(s.fresh, self.options.initial_step / gnorm, 1).astype(s.step.dtype, copy=False)
        s.direction = np.where(update[:, None], direction, s.direction)
        s.slope = np.where(update, slope, s.slope)
        s.step = np.where(update, step, self.options.shrink * s.step).astype(s.step.dtype, copy=False)

    @staticmethod
    def _check_decoder(flow: GradientFlow, s: _Batch, done: np.ndarray, iterations: int, like: torch.Tensor) -> None:
        """Samples that stopped on a non-finite trial: raise if the decoder broke at their z."""
        broken = done & ~s.finite
        if broken.any():
            z = torch.from_numpy(s.z[broken]).to(device=like.device, dtype=like.dtype)
            target = s.target[torch.from_numpy(broken).to(s.target.device)]
            idx = torch.from_numpy(s.idx[broken])
            raise_if_decoder_broke(flow, z, target, None, idx, "dense L-BFGS", iterations)

    @staticmethod
    def _store(out: dict, s: _Batch, done: np.ndarray, iterations: int) -> None:
        idx = s.idx[done]
        for name in ("z", "loss", "iters", "rejected", "converged"):
            out[name][idx] = getattr(s, name)[done]
        out["nfe"][idx] = iterations + 1  # the start plus one evaluation per iteration it took part in

    @staticmethod
    def _output(out: dict, like: torch.Tensor) -> SolverOutput:
        def tensor(array, dtype=None):
            return torch.from_numpy(array).to(device=like.device, dtype=dtype)

        return SolverOutput(
            z=tensor(out["z"], like.dtype),
            loss=tensor(out["loss"], like.dtype),
            nfe=tensor(out["nfe"]),
            converged=tensor(out["converged"]),
            t=tensor(out["iters"], torch.float64),
            rejected=tensor(out["rejected"]),
        )


def _identity_and_zero(batch: int, dim: int, dtype) -> np.ndarray:
    """(batch, 2, dim, dim): A = I and C = 0, the matrices of a sample without pairs."""
    products = np.zeros((batch, 2, dim, dim), dtype=dtype)
    products[:, 0] = np.eye(dim, dtype=dtype)
    return products


def host(tensor: torch.Tensor) -> np.ndarray:
    """A tensor as a numpy array on the host (no copy for a CPU tensor of a numpy dtype;
    16-bit floats, which numpy lacks or computes slowly, become float32)."""
    tensor = tensor.detach()
    if tensor.dtype in (torch.bfloat16, torch.float16):
        tensor = tensor.float()
    return tensor.cpu().numpy()


def _trace_entry(s: _Batch, z1, loss1, accepted, device) -> dict:
    arrays = dict(idx=s.idx, z=s.z, loss=s.loss, step=s.step, z1=z1, loss1=loss1, accepted=accepted)
    return {name: torch.from_numpy(np.array(value)).to(device) for name, value in arrays.items()}
