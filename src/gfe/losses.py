"""Per-sample reconstruction losses: one value per sample, the mean over its pixels.

The gradient flow of one sample must never depend on another sample, so every loss
here returns a vector of shape (B,); callers sum it before differentiating.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def bce_with_logits(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of sigmoid(logits) against target, pixel mean per sample."""
    pixelwise = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    return pixelwise.flatten(1).mean(1)


def mse(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Squared error of an image in [0, 1] against target, pixel mean per sample."""
    return (output - target).square().flatten(1).mean(1)


LOSSES: dict[str, LossFn] = {"bce": bce_with_logits, "mse": mse}

# Which loss matches a decoder's output kind (models set `decoder.output`).
LOSS_FOR_OUTPUT = {"logits": "bce", "probabilities": "mse"}


def resolve_loss(name: str | None, decoder: torch.nn.Module) -> tuple[str, LossFn]:
    """Pick the loss by name, or from the decoder's output kind when name is None."""
    output_kind = getattr(decoder, "output", None)
    if name is None:
        if output_kind not in LOSS_FOR_OUTPUT:
            raise ValueError(
                f"loss=None needs a decoder with `output` in {sorted(LOSS_FOR_OUTPUT)}; pass loss='bce' or loss='mse'"
            )
        name = LOSS_FOR_OUTPUT[output_kind]
    if name not in LOSSES:
        raise ValueError(f"loss={name!r} is unknown; allowed: {sorted(LOSSES)}")
    if name == "bce" and output_kind == "probabilities":
        raise ValueError(
            "loss='bce' expects a decoder that outputs logits, but this decoder outputs probabilities; use loss='mse'"
        )
    if name == "mse" and output_kind == "logits":  # the squared error would be taken of raw logits
        raise ValueError(
            "loss='mse' expects a decoder that outputs probabilities, but this decoder outputs logits; use loss='bce'"
        )
    return name, LOSSES[name]


def bernoulli_entropy_floor(images: torch.Tensor) -> torch.Tensor:
    """The lowest per-sample BCE any model can reach on `images` (N, ...) in [0, 1]: each
    pixel's Bernoulli entropy -x log x - (1 - x) log(1 - x), the BCE of predicting x itself,
    pixel mean per sample. Returns (N,) float64. Excess loss = loss - this floor; most of a
    BCE on natural images is this floor, which no model can remove.

    Raises ValueError for values outside [0, 1] (the floor exists only for those) or an
    empty batch."""
    if images.numel() == 0 or images.dim() < 2:
        raise ValueError(f"images of shape {tuple(images.shape)}: need (N, ...) with N >= 1 and pixels")
    x = images.detach().double().flatten(1)
    if not bool(((x >= 0) & (x <= 1)).all()):
        raise ValueError("images must lie in [0, 1] for a Bernoulli entropy floor (is the data normalised?)")
    return -(torch.special.xlogy(x, x) + torch.special.xlogy(1 - x, 1 - x)).mean(1)
