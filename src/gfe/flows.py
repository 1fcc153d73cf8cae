"""Vector fields of the gradient flows that encode a sample.

First order:  dz/dt = -alpha * grad_z l(y, D(z))
Second order (Nesterov): dz/dt = m,  dm/dt = -3/(t + eps) m - alpha * grad_z l(y, D(z))

Both are nn.Modules with forward(t, state), so torchdiffeq's `odeint` and
`odeint_adjoint` integrate them directly. The gradient w.r.t. z keeps its graph
(`create_graph=True`) exactly when autograd is recording: that is what back-propagation
through the solver and the adjoint's backward pass need, and it costs nothing when
encoding under `torch.no_grad()`.
"""

from __future__ import annotations

import torch
from torch import nn

from . import fastpass
from .losses import LossFn


class GradientFlow(nn.Module):
    """dz/dt = -alpha * grad_z sum_i l(y_i, D(z_i)); samples never interact."""

    def __init__(self, decoder: nn.Module, target: torch.Tensor, loss_fn: LossFn, alpha: float = 1.0):
        super().__init__()
        self.decoder = decoder
        self.target = target
        self.loss_fn = loss_fn
        self.alpha = alpha
        self.nfe = 0  # decoder forward+backward evaluations, each over the whole batch passed in
        self.fast_pass = fastpass.plan(decoder, loss_fn)  # None: autograd (see gfe.fastpass)

    def decode(self, z: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """D(z) for latents z (B', d). `rows` (B',) says which rows of the batch z holds (None:
        all, in order); the decoder here is the same for every row, so it is not used, but a
        flow whose decoder differs by row (`gfe.lockstep.LockstepFlow`) needs it."""
        return self.decoder(z)

    def loss_and_velocity(self, z: torch.Tensor, target: torch.Tensor | None = None, rows: torch.Tensor | None = None):
        """Per-sample loss (B,) and velocity -alpha * grad_z l (B, d) from one evaluation
        (`rows`: see `decode`). Without a graph to keep, an MLPDecoder's pass is done by hand
        (`gfe.fastpass`), with the same numbers."""
        target = self.target if target is None else target
        create_graph = torch.is_grad_enabled()
        if (
            self.fast_pass is not None
            and not create_graph
            and not z.requires_grad
            and type(self).decode is GradientFlow.decode
            and fastpass.enabled()
        ):
            losses, grad = self.fast_pass(z, target)
            self.nfe += 1
            return losses, grad.mul_(-self.alpha)
        with torch.enable_grad():
            z_in = z if z.requires_grad else z.detach().requires_grad_(True)
            losses = self.loss_fn(self.decode(z_in, rows), target)
            (grad,) = torch.autograd.grad(losses.sum(), z_in, create_graph=create_graph)
        self.nfe += 1
        if not create_graph:
            losses = losses.detach()
        return losses, -self.alpha * grad

    def losses(self, z: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
        """Per-sample loss at z, forward pass only (for reporting, not counted as NFE)."""
        target = self.target if target is None else target
        return self.loss_fn(self.decode(z), target)

    def forward(self, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.loss_and_velocity(z)[1]


class NesterovFlow(nn.Module):
    """z'' + 3/t z' + alpha grad_z l = 0 as a first-order system in (z, m)."""

    def __init__(self, gradient_flow: GradientFlow, eps: float = 1e-5):
        super().__init__()
        self.gradient_flow = gradient_flow
        self.eps = eps

    @property
    def nfe(self) -> int:
        return self.gradient_flow.nfe

    def losses(self, z: torch.Tensor) -> torch.Tensor:
        return self.gradient_flow.losses(z)

    def forward(self, t: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]):
        z, m = state
        _, velocity = self.gradient_flow.loss_and_velocity(z)
        return m, -(3.0 / (t + self.eps)) * m + velocity
