"""Encode images by integrating the gradient flow of a decoder: `gfe.encode`."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn

from .flows import GradientFlow, NesterovFlow
from .losses import LOSSES, resolve_loss
from .solvers import SolverOutput, make_solver

Z0_RULES = ("zeros", "uniform")


@dataclass
class Encoding(SolverOutput):
    """Per-sample encodings and solver statistics, plus the wall time of the whole batch."""

    seconds: float = 0.0

    @property
    def t_end(self) -> torch.Tensor:
        return self.t


def initial_latents(z0, batch: int, latent_dim: int, *, seed: int | None = None,
                    dtype=torch.float32, device="cpu") -> torch.Tensor:
    """z(0) for a batch: 'zeros', 'uniform' (U[0,1)^d drawn on the CPU from `seed`, so
    that the draw does not depend on the device), or a given (B, d) tensor."""
    if isinstance(z0, torch.Tensor):
        if tuple(z0.shape) != (batch, latent_dim):
            raise ValueError(f"z0 has shape {tuple(z0.shape)}; expected ({batch}, {latent_dim})")
        return z0.to(dtype=dtype, device=device)
    if z0 == "zeros":
        return torch.zeros(batch, latent_dim, dtype=dtype, device=device)
    if z0 == "uniform":
        generator = torch.Generator().manual_seed(0 if seed is None else int(seed))
        return torch.rand(batch, latent_dim, generator=generator, dtype=torch.float64).to(dtype=dtype, device=device)
    raise ValueError(f"z0={z0!r} is unknown; allowed: {list(Z0_RULES)} or a (B, d) tensor")


def build_flow(decoder: nn.Module, x: torch.Tensor, *, order: int = 1, loss=None, alpha: float = 1.0,
               nesterov_eps: float = 1e-5):
    """The vector field of the first- or second-order flow for targets x."""
    if order not in (1, 2):
        raise ValueError(f"order={order!r} is invalid: allowed 1 (gradient flow) or 2 (Nesterov flow)")
    if not alpha > 0:
        raise ValueError(f"alpha={alpha!r} is invalid: must be > 0")
    _, loss_fn = resolve_loss(loss, decoder)
    flow = GradientFlow(decoder, x, loss_fn, alpha)
    return flow if order == 1 else NesterovFlow(flow, nesterov_eps)


def check_tau(tau: float) -> float:
    if not (isinstance(tau, (int, float)) and tau > 0 and tau != float("inf")):
        raise ValueError(f"tau={tau!r} is invalid: must be a finite number > 0")
    return float(tau)


def check_encode_options(*, solver: str = "amd", order: int = 1, tau: float = 1e4, z0="zeros",
                         loss: str | None = None, alpha: float = 1.0, **solver_options):
    """Check the options of `encode` before any decoder or image is at hand (a config can be
    checked this way before a job starts); returns the solver. A ValueError names the option,
    its value and what is allowed."""
    check_tau(tau)
    if order not in (1, 2):
        raise ValueError(f"order={order!r} is invalid: allowed 1 (gradient flow) or 2 (Nesterov flow)")
    if not isinstance(z0, torch.Tensor) and z0 not in Z0_RULES:
        raise ValueError(f"z0={z0!r} is unknown; allowed: {list(Z0_RULES)} or a (B, d) tensor")
    if loss not in (None, *LOSSES):
        raise ValueError(f"loss={loss!r} is unknown; allowed: {list(LOSSES)} or None (follow the decoder)")
    if not alpha > 0:
        raise ValueError(f"alpha={alpha!r} is invalid: must be > 0")
    solver_impl = make_solver(solver, **solver_options)
    if solver == "amd" and order != 1:
        raise ValueError("solver='amd' integrates the first-order flow only; use order=1 or solver='rk4'")
    return solver_impl


def latent_dim_of(decoder: nn.Module) -> int:
    if not hasattr(decoder, "latent_dim"):
        raise ValueError("the decoder needs a `latent_dim` attribute (the size of z)")
    return int(decoder.latent_dim)


def encode(decoder: nn.Module, x: torch.Tensor, *, solver: str = "amd", order: int = 1, tau: float = 1e4,
           z0="zeros", loss: str | None = None, seed: int | None = None, alpha: float = 1.0,
           trace: list | None = None, **solver_options) -> Encoding:
    """Encode the images x (B, ...) by the gradient flow of `decoder`.

    solver: 'amd' (per-sample AMD; `shared=True` for the authors' batch rule), 'rk4',
    'euler' (take `steps`) or 'dopri5' (takes `rtol`, `atol`). order 2 is the Nesterov
    flow (not with AMD). loss: 'bce' (decoder outputs logits), 'mse' (decoder outputs
    probabilities) or None to follow the decoder. `trace` (AMD only) collects each iteration.
    Runs without building a graph for the decoder's parameters.
    """
    solver_impl = check_encode_options(solver=solver, order=order, tau=tau, z0=z0, loss=loss, alpha=alpha,
                                       **solver_options)
    flow = build_flow(decoder, x, order=order, loss=loss, alpha=alpha)
    if trace is not None and solver != "amd":
        raise ValueError("trace= is recorded by solver='amd' only")
    z_start = initial_latents(z0, x.shape[0], latent_dim_of(decoder), seed=seed, dtype=x.dtype, device=x.device)
    started = time.perf_counter()
    with torch.no_grad():
        extra = {"trace": trace} if trace is not None else {}
        out = solver_impl.solve(flow, z_start, float(tau), **extra)
    return Encoding(**vars(out), seconds=time.perf_counter() - started)
