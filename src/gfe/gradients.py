"""Gradient of the decoder's training loss L(theta) = sum_m l(y_m, D(z*_m; theta)).

z* = z(tau) depends on theta through the whole flow. Three ways to get dL/dtheta, the
keyword `gradient` of `decoder_gradient`, `decoder_loss_and_gradient` and `gfe.training.train`:
- 'approximate': treat z* as a constant (the paper's training rule; cheapest);
- 'backprop': differentiate through every operation of the solver;
- 'adjoint': torchdiffeq's `odeint_adjoint`, integrating the adjoint system backwards.
'backprop' and 'adjoint' need a torchdiffeq solver (euler, rk4, dopri5): AMD's accept/
reject decisions are not differentiable.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .encoding import (
    FlowSettings,
    check_encode_options,
    check_run,
    encode_unchecked,
    eval_mode,
    initial_latents,
    make_flow,
)
from .solvers.odeint import _TorchdiffeqSolver

GRADIENT_METHODS = ("approximate", "backprop", "adjoint")


@dataclass
class DecoderGradient:
    """dL/dtheta per parameter (in decoder.parameters() order), the per-sample loss at
    z(tau) and the forward NFE per sample."""

    grads: list[torch.Tensor]
    loss: torch.Tensor
    nfe: torch.Tensor
    z: torch.Tensor


def check_gradient_options(gradient: str = "approximate", **encode_options):
    """Check a decoder-gradient method `gradient` and its encode options (those of
    `gfe.encode`) before any decoder or image is at hand; a ValueError names the option.
    Returns the solver."""
    if gradient not in GRADIENT_METHODS:
        raise ValueError(f"gradient={gradient!r} is unknown; allowed: {list(GRADIENT_METHODS)}")
    solver_impl = check_encode_options(**encode_options)
    if gradient != "approximate" and not isinstance(solver_impl, _TorchdiffeqSolver):
        raise ValueError(
            f"gradient={gradient!r} needs solver 'euler', 'rk4' or 'dopri5'; "
            f"{encode_options.get('solver', 'amd')!r} makes non-differentiable step decisions "
            "(use gradient='approximate')"
        )
    return solver_impl


def trainable_parameters(decoder: nn.Module) -> list[torch.nn.Parameter]:
    """The decoder's parameters with requires_grad; a ValueError when there is none."""
    params = [p for p in decoder.parameters() if p.requires_grad]
    if not params:
        raise ValueError(
            "the decoder has no trainable parameters (requires_grad=False everywhere); "
            "nothing to train (use gfe.encode to encode with a frozen decoder)"
        )
    return params


def decoder_loss_and_gradient(
    decoder: nn.Module,
    x: torch.Tensor,
    *,
    gradient: str = "approximate",
    solver: str = "rk4",
    order: int = 1,
    tau: float = 1e4,
    z0="zeros",
    loss: str | None = None,
    seed: int | None = None,
    sample_ids=None,
    alpha: float = 1.0,
    latent_dim: int | None = None,
    **solver_options,
) -> DecoderGradient:
    """dL/dtheta (see `decoder_gradient`), with the per-sample loss, NFE and encodings.

    Args:
        decoder: a decoder with at least one parameter that requires grad.
        x: images, checked and reshaped as by `gfe.encode` (`check_images`).
        gradient: 'approximate', 'backprop' or 'adjoint' (see the module docstring).
        solver, order, tau, z0, loss, seed, sample_ids, alpha, latent_dim, **solver_options:
            those of `gfe.encode`.
    """
    settings = check_gradient_run(
        decoder,
        x,
        gradient=gradient,
        solver=solver,
        order=order,
        tau=tau,
        z0=z0,
        loss=loss,
        alpha=alpha,
        latent_dim=latent_dim,
        **solver_options,
    )
    x = settings.flow.check_batch(x)
    return loss_and_gradient_unchecked(decoder, x, settings, seed=seed, sample_ids=sample_ids)


@dataclass(frozen=True)
class GradientSettings:
    """What every training step of a GFE run shares, checked once (`check_gradient_run`, or
    `decoder_loss_and_gradient` for one call): the gradient method, the flow's settings and
    the decoder's trainable parameters."""

    gradient: str  # 'approximate', 'backprop' or 'adjoint'
    flow: FlowSettings
    params: list[torch.nn.Parameter]  # `trainable_parameters(decoder)`


def check_gradient_run(
    decoder: nn.Module,
    images: torch.Tensor,
    *,
    gradient: str = "approximate",
    solver: str = "rk4",
    order: int = 1,
    tau: float = 1e4,
    z0="zeros",
    loss: str | None = None,
    alpha: float = 1.0,
    latent_dim: int | None = None,
    **solver_options,
) -> GradientSettings:
    """The checks of `decoder_loss_and_gradient` (its defaults, its messages; it calls this and
    `check_batch` for its one batch) done once for a
    run over batches of `images`: options, trainable parameters, the size of z, the image
    tensor and the decoder's output shape (`gfe.encoding.check_run`). Each batch then needs
    only `settings.flow.check_batch`, and `loss_and_gradient_unchecked` takes it."""
    solver_impl = check_gradient_options(
        gradient,
        solver=solver,
        order=order,
        tau=tau,
        z0=z0,
        loss=loss,
        alpha=alpha,
        latent_dim=latent_dim,
        **solver_options,
    )
    params = trainable_parameters(decoder)
    flow = check_run(
        decoder, images, solver_impl, order=order, tau=tau, z0=z0, loss=loss, alpha=alpha, latent_dim=latent_dim
    )
    return GradientSettings(gradient, flow, params)


def loss_and_gradient_unchecked(
    decoder: nn.Module, x: torch.Tensor, settings: GradientSettings, *, seed=None, sample_ids=None
) -> DecoderGradient:
    """`decoder_loss_and_gradient` after its checks: x checked (and reshaped) images, the
    settings of a checked call or run."""
    flow = settings.flow
    if settings.gradient == "approximate":
        enc = encode_unchecked(decoder, x, flow, seed=seed, sample_ids=sample_ids)
        z, nfe = enc.z.detach(), enc.nfe
    else:
        z_start = initial_latents(
            flow.z0, x.shape[0], flow.latent_dim, seed=seed, sample_ids=sample_ids, dtype=x.dtype, device=x.device
        )
        with eval_mode(decoder):
            z, nfe = _differentiable_encoding(decoder, x, settings, z_start)
    with torch.enable_grad():  # the training pass: the decoder in its own mode
        losses = flow.loss_fn(decoder(z), x)
        grads = torch.autograd.grad(losses.sum(), settings.params)
    return DecoderGradient(grads=list(grads), loss=losses.detach(), nfe=nfe, z=z.detach())


def _differentiable_encoding(decoder, x, settings: GradientSettings, z_start):
    flow_settings = settings.flow
    flow = make_flow(decoder, x, flow_settings.order, flow_settings.loss_fn, flow_settings.alpha)
    adjoint_params = tuple(settings.params) if settings.gradient == "adjoint" else None
    with torch.enable_grad():
        zs = flow_settings.solver.integrate(flow, z_start, flow_settings.tau, adjoint_params=adjoint_params)
    nfe = torch.full((x.shape[0],), flow.nfe, dtype=torch.int64, device=x.device)
    return zs[-1], nfe


def decoder_gradient(
    decoder: nn.Module, x: torch.Tensor, *, gradient: str = "approximate", **encode_options
) -> list[torch.Tensor]:
    """The gradient of L(theta) = sum_m l(x_m, D(z*_m; theta)) w.r.t. the decoder's parameters.

    Args:
        decoder: any nn.Module decoder with at least one parameter that requires grad.
        x: (B, *image shape) images, as `gfe.encode` takes them.
        gradient: 'approximate' (z* held constant; the papers' training rule), 'backprop'
            (through every solver step) or 'adjoint' (torchdiffeq's adjoint); the last two
            need solver 'euler', 'rk4' or 'dopri5'.
        **encode_options: those of `gfe.encode` (solver, order, tau, z0, loss, seed, sample_ids,
            alpha, latent_dim, steps, ...).

    Returns:
        list[torch.Tensor]: dL/dtheta, one tensor per trainable parameter, in
        `decoder.parameters()` order (`decoder_loss_and_gradient` also returns the
        per-sample loss, NFE and z*).
    """
    return decoder_loss_and_gradient(decoder, x, gradient=gradient, **encode_options).grads
