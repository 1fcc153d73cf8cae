"""Training loops for the autoencoder and every GFE variant, resumable exactly.

`train` draws mini-batches without replacement (a fresh seeded permutation per epoch),
encodes each batch (the AE's encoder, or the gradient flow with the given solver), takes
one optimiser step on L = sum of per-sample losses, and logs loss, NFE and seconds per
step. Every `checkpoint_every` steps it saves the model(s), optimiser, sampler state and
logs; a later call with the same checkpoint path resumes from there and ends with exactly
the parameters and logged losses of an uninterrupted run.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from .checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from .evaluation import evaluate
from .gradients import GRADIENT_METHODS, check_gradient_options, decoder_loss_and_gradient
from .losses import resolve_loss
from .solvers import FlowDivergedError


class TrainingDivergedError(FloatingPointError):
    """A training step produced a non-finite loss or gradient; nothing was saved for it."""


@dataclass(frozen=True)
class OptimizerSettings:
    """RMSprop (the authors' 28x28 setting) or Adam (their CIFAR-10 setting)."""

    name: str = "rmsprop"
    lr: float = 5e-4
    alpha: float = 0.9  # RMSprop smoothing constant
    eps: float = 1e-6

    def build(self, params) -> torch.optim.Optimizer:
        if not self.lr > 0:
            raise ValueError(f"optimizer lr={self.lr!r} is invalid: must be > 0")
        if self.name == "rmsprop":
            return torch.optim.RMSprop(params, lr=self.lr, alpha=self.alpha, eps=self.eps)
        if self.name == "adam":
            return torch.optim.Adam(params, lr=self.lr)
        raise ValueError(f"optimizer={self.name!r} is unknown; allowed: 'rmsprop', 'adam'")


class BatchSampler:
    """Batches of indices into N items: a seeded permutation per epoch, no replacement."""

    def __init__(self, n_items: int, batch_size: int, seed: int):
        if not 1 <= batch_size <= n_items:
            raise ValueError(f"batch_size={batch_size!r} is invalid: must be in [1, {n_items}] (the training set size)")
        self.n_items, self.batch_size = n_items, batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.order = torch.randperm(n_items, generator=self.generator)
        self.position = 0

    def next(self) -> torch.Tensor:
        if self.position + self.batch_size > self.n_items:  # drop the ragged end of an epoch
            self.order = torch.randperm(self.n_items, generator=self.generator)
            self.position = 0
        batch = self.order[self.position:self.position + self.batch_size]
        self.position += self.batch_size
        return batch

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state(), "order": self.order, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self.order, self.position = state["order"], int(state["position"])


@dataclass
class TrainingRun:
    """Per-step log rows, validation rows, and the step reached."""

    steps: list[dict] = field(default_factory=list)
    validation: list[dict] = field(default_factory=list)
    step: int = 0


def _batch_loss_and_step(decoder, encoder, x, flow, gradient, seed, optimizer, loss_fn):
    """One optimiser step; returns (per-sample loss, per-sample NFE)."""
    optimizer.zero_grad(set_to_none=True)
    if encoder is not None:
        losses = loss_fn(decoder(encoder(x)), x)
        if not bool(torch.isfinite(losses).all()):
            return losses.detach(), None
        losses.sum().backward()
        nfe = torch.zeros_like(losses, dtype=torch.int64)
        losses = losses.detach()
    else:
        result = decoder_loss_and_gradient(decoder, x, method=gradient, seed=seed, **flow)
        for param, grad in zip((p for p in decoder.parameters() if p.requires_grad), result.grads):
            param.grad = grad
        losses, nfe = result.loss, result.nfe
    return losses, nfe


def _grads_finite(modules) -> bool:
    return all(bool(torch.isfinite(p.grad).all()) for m in modules if m is not None
               for p in m.parameters() if p.grad is not None)


def train(decoder: nn.Module, images: torch.Tensor, *, steps: int, batch_size: int = 5, seed: int = 2020,
          encoder: nn.Module | None = None, flow: dict | None = None, gradient: str = "approximate",
          optimizer: OptimizerSettings = OptimizerSettings(), checkpoint_path=None, checkpoint_every: int = 0,
          val_images: torch.Tensor | None = None, val_every: int = 0, val_batch_size: int = 500,
          stop_after: int | None = None, log=None) -> TrainingRun:
    """Train `decoder` (with `encoder`: an autoencoder; without: GFE with encode options
    `flow` and decoder gradient `gradient`) for `steps` optimiser steps on `images`.

    Resumes from `checkpoint_path` if a checkpoint is there. `stop_after` ends the call
    early at that step (after checkpointing), as a kill would. `log(row)` is called per step.
    """
    if int(steps) != steps or steps < 1:
        raise ValueError(f"steps={steps!r} is invalid: must be an integer >= 1")
    if gradient not in GRADIENT_METHODS:
        raise ValueError(f"gradient={gradient!r} is unknown; allowed: {list(GRADIENT_METHODS)}")
    flow = dict(flow or {})
    if encoder is None:
        check_gradient_options(gradient, **flow)
    modules = [m for m in (decoder, encoder) if m is not None]
    params = [p for m in modules for p in m.parameters()]
    opt = optimizer.build(params)
    sampler = BatchSampler(len(images), batch_size, seed)
    _, loss_fn = resolve_loss(flow.get("loss"), decoder)
    run = TrainingRun()
    state = load_checkpoint(checkpoint_path) if checkpoint_path else None
    if state is not None:
        _check_same_settings(state, _settings(optimizer, flow, gradient, batch_size, seed), checkpoint_path)
        _restore(state, decoder, encoder, opt, sampler, run)
    elapsed = run.steps[-1]["elapsed_s"] if run.steps else 0.0

    def validate():
        if val_images is None or not val_every:
            return
        result = evaluate(decoder, val_images, encoder=encoder, flow=flow, batch_size=val_batch_size, seed=seed)
        run.validation.append({"step": run.step, "images_seen": run.step * batch_size,
                               "elapsed_s": elapsed, **result.summary()})

    if run.step == 0:
        validate()
    while run.step < steps and (stop_after is None or run.step < stop_after):
        idx = sampler.next()
        x = images[idx]
        started = time.perf_counter()
        try:
            losses, nfe = _batch_loss_and_step(decoder, encoder, x, flow, gradient,
                                               seed * 1_000_003 + run.step, opt, loss_fn)
        except FlowDivergedError as error:
            raise TrainingDivergedError(f"training step {run.step + 1}: the encoding flow diverged for "
                                        f"training images {idx[error.samples].tolist()} ({error}); the last "
                                        "checkpoint is kept. Lower the learning rate or check the data") from error
        if nfe is None or not bool(torch.isfinite(losses).all()) or not _grads_finite(modules):
            bad = idx[~torch.isfinite(losses)].tolist()
            raise TrainingDivergedError(
                f"training step {run.step + 1}: non-finite loss or gradient (training images {bad or 'all'}); "
                "the last checkpoint is kept. Lower the learning rate or check the data")
        opt.step()
        seconds = time.perf_counter() - started
        elapsed += seconds
        run.step += 1
        row = {"step": run.step, "images_seen": run.step * batch_size, "loss": float(losses.double().mean()),
               "nfe": float(nfe.double().mean()), "seconds": seconds, "elapsed_s": elapsed}
        run.steps.append(row)
        if log is not None:
            log(row)
        if val_every and (run.step % val_every == 0 or run.step == steps):
            validate()
        if checkpoint_path and ((checkpoint_every and run.step % checkpoint_every == 0) or run.step == steps
                                or run.step == stop_after):
            settings = _settings(optimizer, flow, gradient, batch_size, seed)
            save_checkpoint(_snapshot(decoder, encoder, opt, sampler, run, settings), checkpoint_path)
    return run


def _settings(optimizer, flow, gradient, batch_size, seed) -> dict:
    """What must not change between a run and its resumption (plain values only)."""
    plain_flow = {k: v for k, v in sorted(flow.items()) if isinstance(v, (int, float, str, bool))}
    return {"optimizer": asdict(optimizer), "flow": plain_flow, "gradient": gradient,
            "batch_size": batch_size, "seed": seed}


def _check_same_settings(state, settings, path) -> None:
    saved = state.get("settings")
    if saved != settings:
        changed = sorted(k for k in settings if (saved or {}).get(k) != settings[k])
        raise CheckpointError(f"checkpoint {path} was made with other settings ({', '.join(changed)} differ); "
                              "resuming would mix two runs. Delete it to restart, or restore the settings")


def _snapshot(decoder, encoder, opt, sampler, run, settings) -> dict:
    return {
        "format": 1,
        "step": run.step,
        "decoder": decoder.state_dict(),
        "encoder": encoder.state_dict() if encoder is not None else None,
        "optimizer": opt.state_dict(),
        "sampler": sampler.state_dict(),
        "history": {"steps": run.steps, "validation": run.validation},
        "settings": settings,
    }


def _restore(state, decoder, encoder, opt, sampler, run) -> None:
    decoder.load_state_dict(state["decoder"])
    if encoder is not None:
        encoder.load_state_dict(state["encoder"])
    opt.load_state_dict(state["optimizer"])
    sampler.load_state_dict(state["sampler"])
    run.step = int(state["step"])
    run.steps = list(state["history"]["steps"])
    run.validation = list(state["history"]["validation"])
