"""Reconstruction quality of a trained model on a set of images.

GFE models encode each image with their own flow (from the same z0 rule as in training);
the autoencoder uses its encoder. Losses are per-sample pixel means (BCE or MSE).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn

from .encoding import (
    FlowSettings,
    check_encode_options,
    check_image_tensor,
    check_images,
    check_run,
    encode_unchecked,
    eval_mode,
)
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


def evaluate(
    decoder: nn.Module,
    images: torch.Tensor,
    *,
    encoder: nn.Module | None = None,
    encode_options: dict | None = None,
    batch_size: int = 500,
    seed: int = 0,
) -> Evaluation:
    """Encode `images` in batches (by `encoder` if given, else by `gfe.encode(**encode_options)`),
    with both networks in eval mode (each submodule gets its own mode back afterwards).

    Args:
        decoder: the decoder whose reconstructions are scored.
        images: (N, ...) images, as `gfe.encode` takes them.
        encoder: an amortised encoder (the autoencoder baseline); None encodes by the flow.
        encode_options: options of `gfe.encode` (solver, tau, z0, loss, ...; not seed or sample_ids).
        batch_size: images encoded at once; a cost setting, not a result setting (below).
        seed: the seed of z0='uniform'.

    With z0='uniform', image n of `images` starts from the z(0) drawn from (seed, n)
    (`initial_latents` with sample_ids), bit for bit the same whatever batch it is in. For
    the per-sample solvers (AMD without shared=True, rk4, euler) the results are therefore
    independent of `batch_size`: bit for bit for a decoder of plain arithmetic, and up to
    the rounding of the decoder's batched kernels otherwise (on CPU, MKL's matrix product
    and the vectorised ELU/sigmoid round a row differently depending on how many rows the
    batch has, by about one ulp). AMD with shared=True sizes its steps on the whole batch
    by design, and dopri5 chooses its steps on the whole batch, so theirs depend on it.

    Returns:
        Evaluation: per image (length N) loss, nfe, converged and z (N, d), and seconds
        (wall time of all batches); `.summary()` gives mean/std/median loss, mean NFE, ...
    """
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} is invalid: must be >= 1")
    if len(images) == 0:
        raise ValueError("images is empty: evaluate needs at least one image")
    encode_options = dict(encode_options or {})
    _, loss_fn = resolve_loss(encode_options.get("loss"), decoder)
    if encoder is not None:
        images, settings = check_autoencoder_images(decoder, images, encode_options.get("loss")), None
    else:
        settings = check_flow_run(decoder, images, encode_options)
    trace = encode_options.get("trace")
    started = time.perf_counter()
    with eval_mode(decoder, encoder):
        parts = [
            _encode_batch(decoder, encoder, images[start : start + batch_size], start, settings, loss_fn, seed, trace)
            for start in range(0, len(images), batch_size)
        ]
    seconds = time.perf_counter() - started
    loss, nfe, converged, z = (torch.cat(column) for column in zip(*parts, strict=True))
    return Evaluation(loss=loss, nfe=nfe, converged=converged, z=z, seconds=seconds)


def check_flow_run(decoder: nn.Module, images, encode_options: dict) -> FlowSettings:
    """The checks `gfe.encode` makes of its options and the decoder, done once for all the
    batches of `images` that `evaluate` encodes with `encode_options` (its messages; the
    images of each batch: `FlowSettings.check_batch`)."""
    for name in ("seed", "sample_ids"):  # `evaluate` passes these to each batch itself
        if name in encode_options:
            raise TypeError(f"gfe.encoding.encode() got multiple values for keyword argument {name!r}")
    options = dict(encode_options)
    trace = options.pop("trace", None)
    solver_impl = check_encode_options(**options)
    if trace is not None and options.get("solver", "amd") != "amd":
        raise ValueError("trace= is recorded by solver='amd' only")
    flow_options = {key: options.get(key, default) for key, default in _FLOW_DEFAULTS.items()}
    return check_run(decoder, images, solver_impl, **flow_options)


# `gfe.encode`'s options that are not the solver's own, with its defaults.
_FLOW_DEFAULTS = {"order": 1, "tau": 1e4, "z0": "zeros", "loss": None, "alpha": 1.0, "latent_dim": None}


def check_autoencoder_images(decoder: nn.Module, images: torch.Tensor, loss: str | None = None) -> torch.Tensor:
    """Check the images of the autoencoder baseline, all at once, before any work: those of
    `gfe.encode` (`check_images`: dtype, device, shape, BCE targets in [0, 1]) and, as no flow
    is there to name them, non-finite pixels.

    Args:
        decoder: the autoencoder's decoder.
        images: (N, *image shape) or flattened (N, prod(image shape)) images.
        loss: 'bce', 'mse' or None (follow the decoder's `output`).

    Returns:
        torch.Tensor: images, reshaped to (N, *image shape) when they came flattened.

    Raises:
        TypeError, ValueError: as `check_images`; ValueError naming the images with a NaN or
            inf pixel.
    """
    check_image_tensor(decoder, images)
    _check_finite(images)  # before the BCE range check, so that an inf pixel is named as such
    return check_images(decoder, images, loss)


def _check_finite(images: torch.Tensor) -> None:
    if images.ndim == 0 or bool(torch.isfinite(images.sum())):  # a sum costs less than an isfinite
        return
    bad = ~torch.isfinite(images.reshape(len(images), -1)).all(1)
    raise ValueError(
        f"images {bad.nonzero().flatten()[:10].tolist()} have non-finite pixels (NaN or inf); "
        "the autoencoder cannot encode them: repair or drop them"
    )


def _encode_batch(decoder, encoder, x, start, settings, loss_fn, seed, trace):
    """(loss, nfe, converged, z) of the batch x, images start .. start + len(x) - 1."""
    if encoder is not None:
        with torch.no_grad():
            z = encoder(x)
            loss = loss_fn(decoder(z), x)
        return loss, torch.zeros_like(loss, dtype=torch.int64), torch.ones_like(loss, dtype=torch.bool), z
    x = settings.check_batch(x)
    out = encode_unchecked(decoder, x, settings, seed=seed, sample_ids=torch.arange(start, start + len(x)), trace=trace)
    return out.loss, out.nfe, out.converged, out.z
