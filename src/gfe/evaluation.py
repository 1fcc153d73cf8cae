"""Reconstruction quality of a trained model on a set of images.

GFE models encode each image with their own flow (from the same z0 rule as in training);
the autoencoder uses its encoder. Losses are per-sample pixel means (BCE or MSE).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn

from .encoding import encode
from .losses import resolve_loss


@dataclass
class Evaluation:
    """Per-image results (length N) and the wall time of encoding them all."""

    loss: torch.Tensor
    nfe: torch.Tensor
    converged: torch.Tensor
    z: torch.Tensor
    seconds: float

    def summary(self) -> dict:
        loss = self.loss.double()
        return {
            "n_images": int(loss.numel()),
            "loss_mean": float(loss.mean()),
            "loss_std": float(loss.std()) if loss.numel() > 1 else 0.0,
            "loss_median": float(loss.median()),
            "nfe_mean": float(self.nfe.double().mean()),
            "converged_frac": float(self.converged.double().mean()),
            "seconds": self.seconds,
            "images_per_s": float(loss.numel() / self.seconds) if self.seconds > 0 else float("inf"),
        }


def evaluate(decoder: nn.Module, images: torch.Tensor, *, encoder: nn.Module | None = None, flow: dict | None = None,
             batch_size: int = 500, seed: int = 0) -> Evaluation:
    """Encode `images` in batches (by `encoder` if given, else by `gfe.encode(**flow)`)."""
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} is invalid: must be >= 1")
    flow = dict(flow or {})
    _, loss_fn = resolve_loss(flow.get("loss"), decoder)
    parts = []
    started = time.perf_counter()
    for number, start in enumerate(range(0, len(images), batch_size)):
        x = images[start:start + batch_size]
        if encoder is not None:
            with torch.no_grad():
                z = encoder(x)
                loss = loss_fn(decoder(z), x)
            parts.append((loss, torch.zeros_like(loss, dtype=torch.int64), torch.ones_like(loss, dtype=torch.bool), z))
        else:
            out = encode(decoder, x, seed=seed + number, **flow)
            parts.append((out.loss, out.nfe, out.converged, out.z))
    seconds = time.perf_counter() - started
    loss, nfe, converged, z = (torch.cat(column) for column in zip(*parts))
    return Evaluation(loss=loss, nfe=nfe, converged=converged, z=z, seconds=seconds)
