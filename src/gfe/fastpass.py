"""A loss-and-z-gradient pass for the papers' MLP decoder without autograd.

`GradientFlow.loss_and_velocity` spends most of an encoding's time in the decoder's forward
pass and its backward pass w.r.t. z; autograd adds its graph bookkeeping to every call. For
an `MLPDecoder` (Linear layers with ELU between them, as `gfe.models` builds it) and the
`bce` or `mse` loss, `MLPPass` does the same forward and backward by hand under
`torch.no_grad()`, calling the very kernels autograd calls (addmm, elu, elu_backward, mm,
and autograd's formula for the loss's derivative), so the losses and gradients are the same
numbers. Any other decoder or loss keeps the autograd path (`plan` returns None).

`reference_path()` (or the environment variable GFE_REFERENCE_PATH=1) switches this pass
and AMD's fused shared-rule loop off, for comparing against the original code.
"""

from __future__ import annotations

import os
from contextlib import contextmanager

import torch
from torch import nn

from .losses import bce_with_logits, mse
from .models import MLPDecoder

_enabled = os.environ.get("GFE_REFERENCE_PATH", "") in ("", "0")


def enabled() -> bool:
    """Whether the fast paths (this pass, AMD's fused loop) are on."""
    return _enabled


@contextmanager
def reference_path():
    """Run the original code paths (autograd pass, AMD's per-sample bookkeeping) inside."""
    global _enabled
    saved, _enabled = _enabled, False
    try:
        yield
    finally:
        _enabled = saved


def _layers(decoder: nn.Module):
    """[(weight, bias, elu alpha or None)] of an exact MLPDecoder, else None; the alpha is
    that of the ELU after the layer (None for the last)."""
    if type(decoder) is not MLPDecoder or type(decoder.net) is not nn.Sequential:
        return None
    modules = list(decoder.net)
    linears, elus = modules[0::2], modules[1::2]
    if not linears or len(elus) != len(linears) - 1:
        return None
    if any(type(m) is not nn.Linear or m.bias is None for m in linears) or any(type(m) is not nn.ELU for m in elus):
        return None
    alphas = [float(m.alpha) for m in elus] + [None]
    return [(m.weight, m.bias, alpha) for m, alpha in zip(linears, alphas, strict=True)]


class MLPPass:
    """Per-sample loss and grad_z of sum(loss) for an MLPDecoder, by hand (no autograd)."""

    def __init__(self, layers, loss_name: str, image_shape: tuple):
        self.layers = [(w, b, w.t(), alpha) for w, b, alpha in layers]
        self.loss_name = loss_name
        self.image_shape = image_shape
        self.loss_fn = bce_with_logits if loss_name == "bce" else mse

    def __call__(self, z: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z (B, d), target (B, *image_shape) -> losses (B,), grad_z sum(losses) (B, d)."""
        with torch.no_grad():
            pre = []
            h = z
            for _, bias, weight_t, alpha in self.layers:
                a = torch.addmm(bias, h, weight_t)
                pre.append(a)
                h = torch.nn.functional.elu(a, alpha) if alpha is not None else a
            batch = z.shape[0]
            output = h.view(batch, *self.image_shape)
            losses = self.loss_fn(output, target)
            grad = self._loss_backward(h, target.reshape(h.shape))  # (B, P), also for B = 0
            for i in range(len(self.layers) - 1, -1, -1):
                weight, _, _, alpha = self.layers[i]
                if alpha is not None:
                    grad = torch.ops.aten.elu_backward(grad, alpha, 1, 1, False, pre[i])
                grad = grad.mm(weight)
        return losses, grad

    def _loss_backward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """d sum_i mean_pixels l / d output (B, P), as autograd's mean backward and loss backward."""
        seed = torch.ones((), dtype=output.dtype, device=output.device).div_(output.shape[1]).expand_as(output)
        if self.loss_name == "bce":
            return (output.sigmoid() - target).mul_(seed)  # autograd's formula for this loss
        diff = output - target  # d (o - t)^2 = 2 (o - t) * seed, as pow's backward computes it
        return seed * (2.0 * diff)


def plan(decoder: nn.Module, loss_fn) -> MLPPass | None:
    """An `MLPPass` for this decoder and loss function, or None (use autograd)."""
    names = {bce_with_logits: "bce", mse: "mse"}
    if loss_fn not in names:
        return None
    layers = _layers(decoder)
    if layers is None:
        return None
    return MLPPass(layers, names[loss_fn], tuple(decoder.image_shape))
