"""Encode images by integrating the gradient flow of a decoder: `gfe.encode`.

Encoding runs the decoder in eval mode (`eval_mode`) and gives each submodule its own mode
back afterwards: with BatchNorm in train mode a sample's code would depend on its batch mates
and every flow step would move the running statistics; with Dropout the same image would get
another code each time. A decoder's training forward pass (the parameter gradient in
`gfe.gradients`) stays in the decoder's own mode.

Inputs are checked once, at the entry of a call or run. `encode` (and
`gfe.gradients.decoder_loss_and_gradient`) checks its options (`check_encode_options`), then
the size of z and the images (`check_call`); `gfe.evaluation.evaluate` and
`gfe.training.train`, which encode many batches, check the options, the decoder and the image
tensor once (`check_run`) and each batch's images only (`FlowSettings.check_batch`). Both
give a `FlowSettings`, which the unchecked internals (`encode_unchecked`, `make_flow`, the
solvers) take as it is.
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .flows import GradientFlow, NesterovFlow
from .losses import LOSSES, LossFn, resolve_loss
from .solvers import SolverOutput, make_solver
from .solvers.base import is_integer, is_number
from .solvers.descent import DescentOptions

Z0_RULES = ("zeros", "uniform")


@contextmanager
def eval_mode(*modules):
    """Run `modules` (None entries are skipped) in eval mode: BatchNorm uses its running
    statistics and leaves them alone, Dropout is off. Every submodule gets its own mode back
    on exit, also after an exception."""
    saved = [(m, m.training) for module in modules if module is not None for m in module.modules()]
    for module in modules:
        if module is not None:
            module.eval()
    try:
        yield
    finally:
        for m, training in saved:
            m.training = training


@dataclass
class Encoding(SolverOutput):
    """Per-sample encodings and solver statistics, plus the wall time of the whole batch."""

    seconds: float = 0.0


def initial_latents(
    z0, batch: int, latent_dim: int, *, seed: int | None = None, sample_ids=None, dtype=torch.float32, device="cpu"
) -> torch.Tensor:
    """z(0) for a batch: 'zeros', 'uniform' (U[0,1)^d drawn on the CPU, so that the draw
    does not depend on the device), or a given (B, d) tensor.

    Args:
        z0: 'zeros', 'uniform' or a (batch, latent_dim) tensor.
        batch, latent_dim: the shape of z(0).
        seed: the seed of the 'uniform' draw (None: 0).
        sample_ids: for 'uniform' only: None draws the whole (B, d) block from one torch
            generator seeded with `seed` (the training rule); B non-negative integers
            (a 1-D tensor or sequence) draw row i from a generator seeded with
            (seed, sample_ids[i]) alone, so an image's z(0) is the same whatever batch it
            is in. Ignored for 'zeros' and a tensor z0.
        dtype, device: those of the result.
    """
    if isinstance(z0, torch.Tensor):
        if tuple(z0.shape) != (batch, latent_dim):
            raise ValueError(f"z0 has shape {tuple(z0.shape)}; expected ({batch}, {latent_dim})")
        return z0.to(dtype=dtype, device=device)
    if z0 == "zeros":
        return torch.zeros(batch, latent_dim, dtype=dtype, device=device)
    if z0 == "uniform":
        if sample_ids is not None:
            return _uniform_per_sample(seed, sample_ids, batch, latent_dim).to(dtype=dtype, device=device)
        generator = torch.Generator().manual_seed(0 if seed is None else int(seed))
        return torch.rand(batch, latent_dim, generator=generator, dtype=torch.float64).to(dtype=dtype, device=device)
    raise ValueError(f"z0={z0!r} is unknown; allowed: {list(Z0_RULES)} or a (B, d) tensor")


def _uniform_per_sample(seed, sample_ids, batch: int, latent_dim: int) -> torch.Tensor:
    """(B, d) float64 rows, row i U[0,1)^d from numpy's generator seeded by (seed, sample_ids[i])."""
    seed = 0 if seed is None else seed
    if not (is_integer(seed) and seed >= 0):
        raise ValueError(f"seed={seed!r} is invalid with sample_ids: must be an integer >= 0")
    ids = torch.as_tensor(sample_ids)
    if (
        ids.shape != (batch,)
        or ids.is_floating_point()
        or ids.is_complex()
        or ids.dtype == torch.bool
        or (batch and int(ids.min()) < 0)
    ):
        shown = " ".join(repr(sample_ids).split())  # one line, even for a 2-D tensor
        raise ValueError(f"sample_ids={shown[:80]} is invalid: must be {batch} integers >= 0, one per image")
    rows = [np.random.default_rng(np.random.SeedSequence([int(seed), i])).random(latent_dim) for i in ids.tolist()]
    return torch.from_numpy(np.stack(rows) if rows else np.zeros((0, latent_dim)))


def build_flow(
    decoder: nn.Module, x: torch.Tensor, *, order: int = 1, loss=None, alpha: float = 1.0, nesterov_eps: float = 1e-5
):
    """The vector field of the first- or second-order flow for targets x (checks `order`,
    `alpha` and the loss, then `make_flow`)."""
    check_order(order)
    check_alpha(alpha)
    _, loss_fn = resolve_loss(loss, decoder)
    return make_flow(decoder, x, order, loss_fn, alpha, nesterov_eps)


def make_flow(decoder: nn.Module, x: torch.Tensor, order: int, loss_fn: LossFn, alpha, nesterov_eps: float = 1e-5):
    """`build_flow` without its checks: `order`, `loss_fn` and `alpha` as a run's checks left them."""
    flow = GradientFlow(decoder, x, loss_fn, alpha)
    return flow if order == 1 else NesterovFlow(flow, nesterov_eps)


def check_tau(tau) -> float:
    """tau as a float. A number, or a one-element real tensor (converted by float()); bools,
    strings, and numbers that are not finite and > 0 raise a ValueError."""
    value = tau
    if isinstance(tau, torch.Tensor) and tau.numel() == 1 and not tau.is_complex() and tau.dtype != torch.bool:
        value = tau.item()
    if not (is_number(value) and 0 < value < math.inf):
        raise ValueError(f"tau={tau!r} is invalid: must be a finite number > 0 (e.g. tau=1e4)")
    return float(value)


def check_order(order) -> None:
    if not (is_integer(order) and order in (1, 2)):
        raise ValueError(f"order={order!r} is invalid: allowed 1 (gradient flow) or 2 (Nesterov flow)")


def check_alpha(alpha) -> None:
    if not (is_number(alpha) and alpha > 0):
        raise ValueError(f"alpha={alpha!r} is invalid: must be a number > 0")


def check_encode_options(
    *,
    solver: str = "amd",
    order: int = 1,
    tau: float = 1e4,
    z0="zeros",
    loss: str | None = None,
    alpha: float = 1.0,
    latent_dim: int | None = None,
    **solver_options,
):
    """Check the options of `encode` before any decoder or image is at hand (a config can be
    checked this way before a job starts); returns the solver. A ValueError names the option,
    its value and what is allowed."""
    check_tau(tau)
    check_order(order)
    if not isinstance(z0, torch.Tensor) and z0 not in Z0_RULES:
        raise ValueError(f"z0={z0!r} is unknown; allowed: {list(Z0_RULES)} or a (B, d) tensor")
    if loss not in (None, *LOSSES):
        raise ValueError(f"loss={loss!r} is unknown; allowed: {list(LOSSES)} or None (follow the decoder)")
    check_alpha(alpha)
    if latent_dim is not None and not (is_integer(latent_dim) and latent_dim >= 1):
        raise ValueError(f"latent_dim={latent_dim!r} is invalid: must be an integer >= 1 (the size of z)")
    solver_impl = make_solver(solver, **solver_options)
    if solver == "amd" and order != 1:
        raise ValueError("solver='amd' integrates the first-order flow only; use order=1 or solver='rk4'")
    if isinstance(getattr(solver_impl, "options", None), DescentOptions) and order != 1:
        raise ValueError(f"solver={solver!r} descends the first-order flow's loss only; use order=1 or solver='rk4'")
    return solver_impl


def latent_dim_of(decoder: nn.Module, z0=None, latent_dim: int | None = None) -> int:
    """The size of z: `latent_dim` if given, else the width of a (B, d) tensor z0, else the
    decoder's `latent_dim` attribute (the models of `gfe.models` have one)."""
    sizes = {
        "latent_dim=": latent_dim,
        "z0's width": int(z0.shape[1]) if isinstance(z0, torch.Tensor) and z0.ndim == 2 else None,
        "decoder.latent_dim": int(decoder.latent_dim) if hasattr(decoder, "latent_dim") else None,
    }
    given = {name: int(size) for name, size in sizes.items() if size is not None}
    if len(set(given.values())) > 1:
        raise ValueError(f"the size of z is ambiguous: {given}; make them agree")
    if not given:
        raise ValueError(
            "the size of z is unknown: pass latent_dim=d (or z0 as a (B, d) tensor), or give the "
            "decoder a `latent_dim` attribute"
        )
    return next(iter(given.values()))


def _first_parameter(decoder: nn.Module):
    return next(iter(decoder.parameters()), None)


def check_image_tensor(decoder: nn.Module, x) -> None:
    """x must be a floating tensor with the dtype and device of the decoder's parameters
    (not checked for a decoder without parameters)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x is a {type(x).__name__}; pass a torch.Tensor of floating images (B, ...) in [0, 1]")
    if not x.is_floating_point():
        raise TypeError(f"x has dtype {x.dtype}; the flow needs floating images in [0, 1], e.g. x.float() / 255")
    param = _first_parameter(decoder)
    if param is None:
        return
    if x.dtype != param.dtype:
        raise TypeError(
            f"x has dtype {x.dtype} but the decoder's parameters have dtype {param.dtype}; "
            f"use x.to({param.dtype}) or decoder.to({x.dtype})"
        )
    if x.device != param.device:
        raise ValueError(
            f"x is on device {x.device} but the decoder's parameters are on {param.device}; "
            f"use x.to('{param.device}') or decoder.to('{x.device}')"
        )


def decoder_output_shape(decoder: nn.Module, latent_dim: int, *, dtype=torch.float32, device="cpu") -> tuple:
    """The shape of one decoded image: the decoder's `image_shape` if it has one, else
    the output of one forward pass of z = 0 (under no_grad and in eval mode; no flow NFE is
    spent, no BatchNorm statistic moves)."""
    shape = getattr(decoder, "image_shape", None)
    if shape is not None:
        return tuple(int(s) for s in shape)
    with torch.no_grad(), eval_mode(decoder):
        return tuple(decoder(torch.zeros(1, latent_dim, dtype=dtype, device=device)).shape[1:])


def check_images(decoder: nn.Module, x, loss: str | None = None, *, latent_dim: int | None = None) -> torch.Tensor:
    """Check images x against the decoder before any flow work; returns x, reshaped to
    (B, *image shape) when it came flattened as (B, prod(image shape)).

    Args:
        decoder: the decoder the flow will use.
        x: (B, *image shape) or (B, prod(image shape)) floating images, with the dtype and
            device of the decoder's parameters.
        loss: the `loss` option of `encode` (None: follow the decoder); with 'bce' the
            targets must lie in [0, 1].
        latent_dim: the size of z (default: `latent_dim_of(decoder)`), for the shape probe.

    Raises:
        TypeError: x is not a floating tensor, or its dtype is not the decoder's.
        ValueError: x is on another device, has the wrong shape, or has BCE targets outside
            [0, 1]. NaN in x is left to the solvers (they name the samples).
    """
    check_image_tensor(decoder, x)
    if latent_dim is None:
        latent_dim = latent_dim_of(decoder)
    return _checked_images(decoder, x, loss, latent_dim)[0]


def _checked_images(decoder: nn.Module, x, loss, latent_dim: int):
    """`check_images` after `check_image_tensor`: (x reshaped, the image shape, the resolved
    loss (name, function))."""
    shape = decoder_output_shape(decoder, latent_dim, dtype=x.dtype, device=x.device)
    x = _match_image_shape(x, shape)
    resolved = resolve_loss(loss, decoder)
    _check_target_range(x, resolved[0])
    return x, shape, resolved


def _match_image_shape(x: torch.Tensor, shape: tuple) -> torch.Tensor:
    if x.ndim >= 1 and tuple(x.shape[1:]) == shape:
        return x
    size = math.prod(shape)
    if x.ndim == 2 and x.shape[1] == size:
        return x.reshape(x.shape[0], *shape)
    expected = f"(B, {', '.join(str(s) for s in shape)})" + (f" or flattened (B, {size})" if len(shape) > 1 else "")
    raise ValueError(
        f"x has shape {tuple(x.shape)}; the decoder outputs images of shape {shape}, so x must be {expected}"
    )


def _check_target_range(x: torch.Tensor, loss_name: str) -> None:
    if loss_name != "bce" or x.numel() == 0:
        return
    low, high = (float(v) for v in torch.aminmax(x))
    if low < 0 or high > 1:  # False for NaN: those are left to the solvers
        raise ValueError(
            f"x has values in [{low:g}, {high:g}]; loss='bce' needs targets in [0, 1] (divide by 255, or rescale)"
        )


def encode(
    decoder: nn.Module,
    x: torch.Tensor,
    *,
    solver: str = "amd",
    order: int = 1,
    tau: float = 1e4,
    z0="zeros",
    loss: str | None = None,
    seed: int | None = None,
    sample_ids=None,
    alpha: float = 1.0,
    latent_dim: int | None = None,
    trace: list | None = None,
    **solver_options,
) -> Encoding:
    """Encode the images x by the gradient flow of `decoder` (no graph is built for the
    decoder's parameters, so a frozen decoder works).

    Args:
        decoder: any nn.Module mapping latents (B, d) to images (B, *image shape); run in
            eval mode while encoding (its own mode is restored afterwards).
        x: (B, *image shape) floating images, or flattened (B, prod(image shape)), on the
            decoder's device and in its dtype; in [0, 1] for loss='bce' (`check_images`).
        solver: 'amd' (per-sample AMD; `shared=True` for the authors' batch rule), 'rk4',
            'euler' (take `steps`), 'dopri5' (takes `rtol`, `atol`), 'lbfgs' (beyond the
            papers: per-sample L-BFGS descent on the same loss; `tau` is not used) or
            'lbfgs_dense' (the same descent with unlimited memory as dense matrices and its
            bookkeeping in numpy: the cheapest steps at small batches).
        order: 1 (gradient flow) or 2 (Nesterov flow; rk4/euler/dopri5 only).
        tau: integration time (a number or a one-element tensor).
        z0: 'zeros', 'uniform' (U[0,1)^d from `seed`; per image from (seed, sample_ids[i])
            when `sample_ids` is given, see `initial_latents`) or a (B, d) tensor.
        loss: 'bce' (decoder outputs logits), 'mse' (decoder outputs probabilities) or None
            to follow the decoder's `output` attribute.
        seed, sample_ids: the draw of a uniform z0.
        alpha: scale of the velocity, dz/dt = -alpha * grad_z loss.
        latent_dim: the size d of z; default: z0's width or the decoder's `latent_dim`.
        trace: (AMD only) a list that receives one dict per iteration.
        **solver_options: the solver's options (e.g. AMD `dt_max`, rk4 `steps`).

    Returns:
        Encoding: z (B, d), loss (B,) per-sample pixel-mean loss at z, nfe (B,) decoder
        forward+backward evaluations per sample, converged (B,) bool, t (B,) time reached,
        rejected (B,) rejected trial steps, and seconds (wall time of the batch).
    """
    solver_impl = check_encode_options(
        solver=solver, order=order, tau=tau, z0=z0, loss=loss, alpha=alpha, latent_dim=latent_dim, **solver_options
    )
    if trace is not None and solver != "amd":
        raise ValueError("trace= is recorded by solver='amd' only")
    x, settings = check_call(
        decoder, x, solver_impl, order=order, tau=tau, z0=z0, loss=loss, alpha=alpha, latent_dim=latent_dim
    )
    return encode_unchecked(decoder, x, settings, seed=seed, sample_ids=sample_ids, trace=trace)


@dataclass(frozen=True)
class FlowSettings:
    """The options of `encode`, checked and resolved against one decoder: what every batch of
    a run shares. Built once at the entry of a call or run (`check_call`, `check_run`); the
    unchecked internals (`encode_unchecked`, `make_flow`, the solvers) take its values as
    they are, and `check_batch` checks the one thing that differs by batch: the images."""

    solver: object  # the solver object (`check_encode_options`)
    order: int  # 1 (gradient flow) or 2 (Nesterov flow)
    tau: float  # the integration time as a float (`check_tau`)
    z0: object  # 'zeros', 'uniform' or a (B, d) tensor
    loss_name: str  # 'bce' or 'mse', resolved against the decoder (`resolve_loss`)
    loss_fn: LossFn  # the per-sample loss of that name
    alpha: float  # the velocity's scale, as given
    latent_dim: int  # the size of z (`latent_dim_of`)
    image_shape: tuple  # the shape of one decoded image (`decoder_output_shape`)

    def check_batch(self, x: torch.Tensor) -> torch.Tensor:
        """A batch of the run's images (a tensor whose type, dtype and device `check_run`
        checked): its shape, reshaped when flattened, and BCE targets in [0, 1], with the
        messages of `check_images`."""
        x = _match_image_shape(x, self.image_shape)
        _check_target_range(x, self.loss_name)
        return x


def check_call(
    decoder: nn.Module, x, solver_impl, *, order, tau, z0, loss, alpha, latent_dim
) -> tuple[torch.Tensor, FlowSettings]:
    """The checks of one call (`encode`, `decoder_loss_and_gradient`) after its options'
    (`check_encode_options` gave `solver_impl`): the size of z, then the images x
    (`check_images`). Returns x, reshaped, and the settings."""
    latent_dim = latent_dim_of(decoder, z0, latent_dim)
    check_image_tensor(decoder, x)
    x, image_shape, (loss_name, loss_fn) = _checked_images(decoder, x, loss, latent_dim)
    settings = FlowSettings(solver_impl, order, check_tau(tau), z0, loss_name, loss_fn, alpha, latent_dim, image_shape)
    return x, settings


def check_run(decoder: nn.Module, images, solver_impl, *, order, tau, z0, loss, alpha, latent_dim) -> FlowSettings:
    """The checks of a run over many batches of `images` (`evaluate`, `gfe.training.train`)
    after its options': the size of z, the image tensor's type, dtype and device, the
    decoder's output shape and the loss, once; each batch then takes `check_batch`."""
    latent_dim = latent_dim_of(decoder, z0, latent_dim)
    check_image_tensor(decoder, images)
    image_shape = decoder_output_shape(decoder, latent_dim, dtype=images.dtype, device=images.device)
    loss_name, loss_fn = resolve_loss(loss, decoder)
    return FlowSettings(solver_impl, order, check_tau(tau), z0, loss_name, loss_fn, alpha, latent_dim, image_shape)


def encode_unchecked(
    decoder: nn.Module, x: torch.Tensor, settings: FlowSettings, *, seed=None, sample_ids=None, trace=None
) -> Encoding:
    """`encode` after its checks: x as `check_images` or `FlowSettings.check_batch` returns it,
    the settings of `check_call` or `check_run`."""
    flow = make_flow(decoder, x, settings.order, settings.loss_fn, settings.alpha)
    z_start = initial_latents(
        settings.z0, x.shape[0], settings.latent_dim, seed=seed, sample_ids=sample_ids, dtype=x.dtype, device=x.device
    )
    started = time.perf_counter()
    with torch.no_grad(), eval_mode(decoder):
        extra = {"trace": trace} if trace is not None else {}
        out = settings.solver.solve(flow, z_start, settings.tau, **extra)
    return Encoding(**vars(out), seconds=time.perf_counter() - started)
