"""Training loops for the autoencoder and every GFE variant, resumable exactly.

`train` draws mini-batches without replacement (a fresh seeded permutation per epoch),
encodes each batch (the AE's encoder, or the gradient flow with the given solver), takes
one optimiser step on L = sum of per-sample losses, and logs loss, NFE and seconds per
step. Every `checkpoint_every` steps it saves the model(s), optimiser, sampler state and
logs; a later call of the same run (same images, settings and budget: `run_identity`) with
the same checkpoint path resumes from there and ends with exactly the parameters and logged
losses of an uninterrupted run. A checkpoint of any other run is refused, naming what differs.

With `patience` > 0 the run stops early on a plateau of its validation loss (checked every
`val_every` steps): after `patience` checks in a row without a relative improvement of at
least `min_improvement` (`plateau_counts`). With `plateau_window` > 1 the rule reads the mean
of the last `plateau_window` checks instead of the last check alone, so that one lucky or
unlucky check of a noisy validation loss neither restarts nor ends the count; with
`patience_fraction` > 0 the patience grows with the run (`patience_at`), so that a run
stops only when the last part of its length brought no improvement. The weights of
the lowest check are kept (`TrainingRun.best_state`), so the result is the best checkpoint,
not the last one.

`train` reads as its steps: `TrainingSettings.checked` (the arguments, checked), `_start`
(the options or images, optimiser, sampler, resuming from the checkpoint), `_validate` at
step 0, then per step `_training_step` (one batch: gradients, optimiser step, the logged row)
and `_after_step` (validation, stop reason, checkpoint); what it carries from step to step is
one `TrainingState`. Options and decoder are checked once per call: the first GFE step builds
`gfe.gradients.GradientSettings` (`check_gradient_run`), and every step after checks only its
batch's images (`FlowSettings.check_batch`).
"""

from __future__ import annotations

import copy
import hashlib
import time
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from .checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from .evaluation import check_autoencoder_images, evaluate
from .gradients import (
    GRADIENT_METHODS,
    GradientSettings,
    check_gradient_options,
    check_gradient_run,
    loss_and_gradient_unchecked,
)
from .losses import LossFn, resolve_loss
from .solvers import FlowDivergedError


class TrainingDivergedError(FloatingPointError):
    """A training step produced a non-finite loss or gradient; nothing was saved for it."""


@dataclass(frozen=True)
class OptimizerSettings:
    """RMSprop (the authors' 28x28 setting) or Adam (their CIFAR-10 setting)."""

    name: str = "rmsprop"
    lr: float = 5e-4
    alpha: float = 0.9  # RMSprop smoothing constant
    eps: float | None = None  # None: the optimiser's own (RMSprop: the authors' 1e-6; Adam: torch's 1e-8)

    def build(self, params) -> torch.optim.Optimizer:
        if not self.lr > 0:
            raise ValueError(f"optimizer lr={self.lr!r} is invalid: must be > 0")
        if self.name == "rmsprop":
            return torch.optim.RMSprop(params, lr=self.lr, alpha=self.alpha, eps=1e-6 if self.eps is None else self.eps)
        if self.name == "adam":
            if self.alpha != OptimizerSettings.alpha:
                raise ValueError(
                    f"optimizer alpha={self.alpha!r} is RMSprop's smoothing constant; Adam does not take it"
                )
            return torch.optim.Adam(params, lr=self.lr, eps=1e-8 if self.eps is None else self.eps)
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
        batch = self.order[self.position : self.position + self.batch_size]
        self.position += self.batch_size
        return batch

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state(), "order": self.order, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self.order, self.position = state["order"], int(state["position"])


STOP_REASONS = ("steps", "plateau", "cap")


def plateau_counts(losses, min_improvement: float, window: int = 1) -> list[int]:
    """The early-stopping rule as a pure function of validation losses in check order.

    The signal of check k is the mean of the losses of checks max(0, k - window + 1) .. k.
    The count restarts (0) at the first check and whenever the signal is below the
    reference (the signal of the last check that restarted the count) by more than
    `min_improvement` (relative), so slow progress adds up over checks until it counts;
    otherwise it grows by one. A run stops at the first check whose count reaches its
    patience (`plateau_stop`).

    Returns:
        list[int]: the count after each check (same length as `losses`).
    """
    if int(window) != window or window < 1:
        raise ValueError(f"plateau window={window!r} is invalid: must be an integer >= 1")
    counts, reference, count = [], float("inf"), 0
    for k in range(len(losses)):
        recent = losses[max(0, k - window + 1) : k + 1]
        signal = sum(recent) / len(recent)
        if k == 0 or signal < reference * (1.0 - min_improvement):
            reference, count = signal, 0
        else:
            count += 1
        counts.append(count)
    return counts


def patience_at(check: int, patience: int, patience_fraction: float = 0.0) -> float:
    """The count of checks without improvement that stops a run at check index `check`:
    `patience`, or `patience_fraction` of the checks so far if that is more. A fraction
    makes the rule scale-free: a run stops only when no improvement came in the last
    `patience_fraction` of its length, so a slow learner is not stopped early."""
    return max(patience, patience_fraction * (check + 1))


def plateau_stop(
    losses, patience: int, min_improvement: float, window: int = 1, patience_fraction: float = 0.0
) -> int | None:
    """Index of the check at which the rule of `plateau_counts` and `patience_at` stops a
    run, or None if it never does within `losses`."""
    for k, count in enumerate(plateau_counts(losses, min_improvement, window)):
        if count >= patience_at(k, patience, patience_fraction):
            return k
    return None


@dataclass
class TrainingRun:
    """Per-step log rows, validation rows, the step reached, and early stopping's state.

    stop_reason: None while running; 'steps' (a fixed budget ran out, no early stopping),
    'plateau' (no improvement in `patience` checks) or 'cap' (early stopping was on, but
    the step cap came first). best_state: {'decoder': ..., 'encoder': ...} state dicts of
    the best validation check (None without validation)."""

    steps: list[dict] = field(default_factory=list)
    validation: list[dict] = field(default_factory=list)
    step: int = 0
    best_loss: float = float("inf")
    best_step: int | None = None
    checks_since_best: int = 0
    best_state: dict | None = None
    stop_reason: str | None = None
    resumed_at: int | None = None  # the checkpoint's step, when the run was resumed

    def note_validation(
        self, loss: float, step: int, decoder, encoder, min_improvement: float, window: int = 1
    ) -> None:
        """Count checks without improvement by `plateau_counts` over every check so far
        (`self.validation`, whose last row is this check), and keep the weights of the
        lowest check."""
        losses = [row["loss_mean"] for row in self.validation]
        self.checks_since_best = plateau_counts(losses, min_improvement, window)[-1]
        if self.best_step is None or loss < self.best_loss:
            self.best_loss, self.best_step = loss, step
            self.best_state = {
                "decoder": copy.deepcopy(decoder.state_dict()),
                "encoder": copy.deepcopy(encoder.state_dict()) if encoder is not None else None,
            }


def validate_run(
    run: TrainingRun,
    decoder,
    encoder,
    val_images,
    *,
    elapsed,
    batch_size,
    seed,
    val_encode_options,
    val_batch_size,
    patience,
    min_improvement,
    plateau_window,
    patience_fraction,
) -> None:
    """One validation check of `run` at its current step: append the row, count checks
    without improvement, keep the best weights, and set stop_reason 'plateau' when the
    rule (`plateau_counts`, `patience_at`) says so."""
    result = evaluate(
        decoder, val_images, encoder=encoder, encode_options=val_encode_options, batch_size=val_batch_size, seed=seed
    )
    summary = result.summary()
    run.validation.append({"step": run.step, "images_seen": run.step * batch_size, "elapsed_s": elapsed, **summary})
    run.note_validation(summary["loss_mean"], run.step, decoder, encoder, min_improvement, plateau_window)
    if patience and run.checks_since_best >= patience_at(len(run.validation) - 1, patience, patience_fraction):
        run.stop_reason = "plateau"


def gradient_cosine(decoder: nn.Module, x: torch.Tensor, z: torch.Tensor, grads, loss_fn) -> float:
    """Cosine between `grads` (one tensor per trainable decoder parameter) and the
    approximate gradient at the same parameters: d/dtheta sum_m l(x_m, D(z_m)) with the
    encodings z (B, d) held constant."""
    params = [p for p in decoder.parameters() if p.requires_grad]
    with torch.enable_grad():
        approximate = torch.autograd.grad(loss_fn(decoder(z), x).sum(), params)
    a = torch.cat([g.reshape(-1) for g in grads]).double()
    b = torch.cat([g.reshape(-1) for g in approximate]).double()
    return float(a @ b / (a.norm() * b.norm()).clamp_min(1e-300))


def _grads_finite(modules) -> bool:
    """Whether every parameter gradient is finite. A sum per tensor is a fraction of the cost
    of an elementwise `isfinite` (the AE's step spent 3 of its 8 ms there): a NaN or inf
    makes the total non-finite, and only a total that overflowed is checked element by element."""
    grads = [p.grad for m in modules if m is not None for p in m.parameters() if p.grad is not None]
    if not grads or bool(torch.isfinite(torch.stack([g.sum() for g in grads]).sum())):
        return True
    return all(bool(torch.isfinite(g).all()) for g in grads)


def check_training_settings(
    *,
    steps,
    seed,
    gradient,
    patience,
    val_every,
    checkpoint_every,
    has_val_images,
    min_improvement,
    plateau_window,
    patience_fraction,
) -> None:
    """Refuse a bad training setting (those of `train`) with a ValueError naming it, before
    any work."""
    if int(steps) != steps or steps < 1:
        raise ValueError(f"steps={steps!r} is invalid: must be an integer >= 1")
    counts = dict(patience=patience, val_every=val_every, checkpoint_every=checkpoint_every)
    for name, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name}={value!r} is invalid: must be an integer >= 0 (0: off)")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed={seed!r} is invalid: must be an integer")
    if gradient not in GRADIENT_METHODS:
        raise ValueError(f"gradient={gradient!r} is unknown; allowed: {list(GRADIENT_METHODS)}")
    if patience and not (has_val_images and val_every):
        raise ValueError(f"patience={patience!r} needs validation images and val_every > 0")
    if not 0 <= min_improvement < 1:
        raise ValueError(f"min_improvement={min_improvement!r} is invalid: must be in [0, 1)")
    plateau_counts([], min_improvement, plateau_window)  # refuses a bad window
    if not 0 <= patience_fraction < 1:
        raise ValueError(f"patience_fraction={patience_fraction!r} is invalid: must be in [0, 1)")


def train(
    decoder: nn.Module,
    images: torch.Tensor,
    *,
    steps: int,
    batch_size: int = 5,
    seed: int = 2020,
    encoder: nn.Module | None = None,
    encode_options: dict | None = None,
    gradient: str = "approximate",
    optimizer: OptimizerSettings = OptimizerSettings(),
    checkpoint_path=None,
    checkpoint_every: int = 0,
    val_images: torch.Tensor | None = None,
    val_every: int = 0,
    val_at: tuple = (),
    val_batch_size: int = 500,
    val_encode_options: dict | None = None,
    patience: int = 0,
    min_improvement: float = 0.0,
    plateau_window: int = 1,
    patience_fraction: float = 0.0,
    log_gradient_cosine: bool = False,
    stop_after: int | None = None,
    code_version: str | None = None,
    log=None,
) -> TrainingRun:
    """Train `decoder` (with `encoder`: an autoencoder; without: GFE with encode options
    `encode_options` and decoder gradient `gradient`) on `images` (N, C, H, W); an
    autoencoder's images are checked once, before any step (`check_autoencoder_images`).

    Args:
        steps: optimiser steps; with `patience` the step cap.
        val_images: (V, C, H, W) held-out images, encoded every `val_every` steps (and at
            steps 0 and the last, and at the steps in `val_at`) with `val_encode_options` (default: `encode_options`).
        patience: stop after this many validation checks without a relative improvement of
            `min_improvement` (0: train all `steps`).
        plateau_window: the stopping rule reads the mean of this many last checks
            (`plateau_counts`; 1: the last check alone).
        patience_fraction: the patience grows to this fraction of the checks so far
            (`patience_at`; 0: a fixed patience).
        log_gradient_cosine: for a non-approximate `gradient`, log per step the cosine
            between it and the approximate gradient at the same parameters
            (`grad_cosine`; its cost is not counted in `seconds`).
        checkpoint_path: resume from here if a checkpoint of this very run is there (a
            checkpoint of another run raises CheckpointError naming what differs); save every
            `checkpoint_every` steps and at the end.
        stop_after: end the call at that step (after checkpointing), as a kill would.
        code_version: a version of the code that calls `train` (e.g. a hash of a script and
            this library): part of the run's identity, so a checkpoint made by other code is
            refused instead of mixing two codes' steps in one run.
        log: called with each per-step row.

    Returns:
        TrainingRun: per-step rows (step, images_seen, loss, nfe, seconds, elapsed_s[,
        grad_cosine]), validation rows, the stop reason and the best check's weights.
    """
    arguments = {name: value for name, value in locals().items() if name not in ("decoder", "images", "encoder")}
    settings = TrainingSettings.checked(arguments)
    state = _start(decoder, encoder, images, settings)
    if state.run.step == 0 and not state.run.validation:
        _validate(state, settings)
    while _continues(state.run, settings):
        _training_step(state, settings)
        _after_step(state, settings)
    return state.run


# The early-stopping settings of `train` (and `train_lockstep`), passed on as they are.
STOPPING_KEYS = ("patience", "min_improvement", "plateau_window", "patience_fraction")


@dataclass(frozen=True)
class TrainingSettings:
    """The settings of one `train` call: its keyword arguments (see `train`), checked, with
    the encode options as dicts of their own."""

    steps: int
    batch_size: int
    seed: int
    encode_options: dict
    gradient: str
    optimizer: OptimizerSettings
    checkpoint_path: object
    checkpoint_every: int
    val_images: torch.Tensor | None
    val_every: int
    val_at: tuple
    val_batch_size: int
    val_encode_options: dict  # `encode_options` when the call gave none
    patience: int
    min_improvement: float
    plateau_window: int
    patience_fraction: float
    log_gradient_cosine: bool
    stop_after: int | None
    code_version: str | None
    log: object

    @classmethod
    def checked(cls, arguments: dict) -> TrainingSettings:
        """The settings of `train`'s keyword arguments; a bad one raises a ValueError naming
        it (`check_training_settings`), before any work."""
        a = dict(arguments)
        check_training_settings(
            has_val_images=a["val_images"] is not None,
            **{key: a[key] for key in ("steps", "seed", "gradient", "patience", "val_every", "checkpoint_every")},
            **{key: a[key] for key in ("min_improvement", "plateau_window", "patience_fraction")},
        )
        a["encode_options"] = dict(a["encode_options"] or {})
        given = a["val_encode_options"]
        a["val_encode_options"] = dict(a["encode_options"] if given is None else given)
        return cls(**a)

    def stopping(self) -> dict:
        """The early-stopping settings, as `validate_run` and `run_identity` take them."""
        return {key: getattr(self, key) for key in STOPPING_KEYS}


@dataclass
class TrainingState:
    """What a `train` call carries from step to step."""

    decoder: nn.Module
    encoder: nn.Module | None  # the autoencoder's encoder; None: GFE
    images: torch.Tensor  # the training images (the autoencoder's checked and reshaped)
    optimizer: torch.optim.Optimizer  # over the decoder's and the encoder's parameters
    sampler: BatchSampler
    loss_fn: LossFn  # the per-sample loss, resolved against the decoder
    identity: dict | None  # `run_identity`, when the run has a checkpoint file
    run: TrainingRun = field(default_factory=TrainingRun)  # the result, filled step by step
    elapsed: float = 0.0  # seconds of training steps so far (the rows' elapsed_s)
    gfe: GradientSettings | None = None  # GFE's step settings, checked at the first step (None: AE)

    @property
    def modules(self) -> list[nn.Module]:
        return [m for m in (self.decoder, self.encoder) if m is not None]


def _start(decoder, encoder, images, settings: TrainingSettings) -> TrainingState:
    """Check the encode options (GFE; each batch's images at its step) or the images (AE),
    build the optimiser and the batch sampler, and resume from the run's checkpoint if it
    has one."""
    if encoder is None:
        check_gradient_options(settings.gradient, **settings.encode_options)
    else:  # GFE checks each batch as it encodes it; validation images: `evaluate`, at step 0
        images = check_autoencoder_images(decoder, images, settings.encode_options.get("loss"))
    params = [p for m in (decoder, encoder) if m is not None for p in m.parameters()]
    optimizer = settings.optimizer.build(params)
    sampler = BatchSampler(len(images), settings.batch_size, settings.seed)
    _, loss_fn = resolve_loss(settings.encode_options.get("loss"), decoder)
    state = TrainingState(decoder, encoder, images, optimizer, sampler, loss_fn, identity=None)
    if settings.checkpoint_path:
        _resume(state, settings)
    return state


def _resume(state: TrainingState, settings: TrainingSettings) -> None:
    """Resume from the checkpoint at `settings.checkpoint_path` if there is one (refused,
    naming what differs, if it is another run's), and note the run's identity."""
    path = settings.checkpoint_path
    saved = load_checkpoint(path)
    state.identity = run_identity(
        images=state.images,
        val_images=settings.val_images,
        decoder=state.decoder,
        encoder=state.encoder,
        optimizer=settings.optimizer,
        encode_options=settings.encode_options,
        val_encode_options=settings.val_encode_options,
        gradient=settings.gradient,
        steps=settings.steps,
        batch_size=settings.batch_size,
        seed=settings.seed,
        val_every=settings.val_every,
        val_at=settings.val_at,
        code_version=settings.code_version,
        **settings.stopping(),
    )
    if saved is not None:
        _check_same_run(saved, state.identity, path)
        _restore(saved, state.decoder, state.encoder, state.optimizer, state.sampler, state.run)
        state.run.resumed_at = state.run.step
        state.elapsed = state.run.steps[-1]["elapsed_s"] if state.run.steps else 0.0


def _validate(state: TrainingState, settings: TrainingSettings) -> None:
    """A validation check at the run's step (`validate_run`), if the run validates."""
    if settings.val_images is None or not settings.val_every:
        return
    validate_run(
        state.run,
        state.decoder,
        state.encoder,
        settings.val_images,
        elapsed=state.elapsed,
        batch_size=settings.batch_size,
        seed=settings.seed,
        val_encode_options=settings.val_encode_options,
        val_batch_size=settings.val_batch_size,
        **settings.stopping(),
    )


def _continues(run: TrainingRun, settings: TrainingSettings) -> bool:
    """Whether the call takes another step: no stop reason yet, steps left, not at `stop_after`."""
    stop_after = settings.stop_after
    return run.stop_reason is None and run.step < settings.steps and (stop_after is None or run.step < stop_after)


def _training_step(state: TrainingState, settings: TrainingSettings) -> None:
    """One optimiser step on the sampler's next batch, logged as a row of the run."""
    run = state.run
    idx = state.sampler.next()
    x = state.images[idx]
    if state.encoder is None and state.gfe is None:  # GFE: the step's checks, once, at the first step
        state.gfe = check_gradient_run(
            state.decoder, state.images, gradient=settings.gradient, **settings.encode_options
        )
    started = time.perf_counter()
    losses, nfe, result = _step_gradients(state, x, idx, settings.seed * 1_000_003 + run.step)
    seconds = time.perf_counter() - started
    cosine = None
    if settings.log_gradient_cosine and result is not None and settings.gradient != "approximate":
        cosine = gradient_cosine(state.decoder, x, result.z, result.grads, state.loss_fn)
    started = time.perf_counter()
    state.optimizer.step()
    seconds += time.perf_counter() - started
    state.elapsed += seconds
    run.step += 1
    row = {
        "step": run.step,
        "images_seen": run.step * settings.batch_size,
        "loss": float(losses.double().mean()),
        "nfe": float(nfe.double().mean()),
        "seconds": seconds,
        "elapsed_s": state.elapsed,
    }
    if cosine is not None:
        row["grad_cosine"] = cosine
    run.steps.append(row)
    if settings.log is not None:
        settings.log(row)


def _step_gradients(state: TrainingState, x: torch.Tensor, idx: torch.Tensor, seed: int):
    """The step's gradients, set on the parameters; returns (per-sample loss, per-sample
    NFE, the decoder gradient's result or None for the AE). A non-finite loss or gradient,
    or a diverged flow, raises a TrainingDivergedError naming the training images."""
    step = state.run.step + 1
    try:
        losses, nfe, result = _batch_loss_and_step(state, x, seed)
    except FlowDivergedError as error:
        raise TrainingDivergedError(
            f"training step {step}: the encoding flow diverged for "
            f"training images {idx[error.samples].tolist()} ({error}); the last "
            "checkpoint is kept. Lower the learning rate or check the data"
        ) from error
    if nfe is None or not bool(torch.isfinite(losses).all()) or not _grads_finite(state.modules):
        bad = idx[~torch.isfinite(losses)].tolist()
        raise TrainingDivergedError(
            f"training step {step}: non-finite loss or gradient (training images {bad or 'all'}); "
            "the last checkpoint is kept. Lower the learning rate or check the data"
        )
    return losses, nfe, result


def _batch_loss_and_step(state: TrainingState, x: torch.Tensor, seed: int):
    """One optimiser step's gradients; returns (per-sample loss, per-sample NFE, the decoder
    gradient's result or None for the AE); NFE None: the AE's loss is not finite."""
    state.optimizer.zero_grad(set_to_none=True)
    decoder, encoder = state.decoder, state.encoder
    if encoder is not None:
        losses = state.loss_fn(decoder(encoder(x)), x)
        if not bool(torch.isfinite(losses).all()):
            return losses.detach(), None, None
        losses.sum().backward()
        nfe = torch.zeros_like(losses, dtype=torch.int64)
        return losses.detach(), nfe, None
    result = loss_and_gradient_unchecked(decoder, state.gfe.flow.check_batch(x), state.gfe, seed=seed)
    for param, grad in zip(state.gfe.params, result.grads, strict=True):
        param.grad = grad
    return result.loss, result.nfe, result


def _after_step(state: TrainingState, settings: TrainingSettings) -> None:
    """Validation (every `val_every` steps, at `val_at` and the last step), the stop reason
    and the checkpoint (every `checkpoint_every` steps, at a stop and at `stop_after`)."""
    run, steps = state.run, settings.steps
    if settings.val_every and (run.step % settings.val_every == 0 or run.step in settings.val_at or run.step == steps):
        _validate(state, settings)
    if run.stop_reason is None and run.step >= steps:
        run.stop_reason = "cap" if settings.patience else "steps"
    every, path = settings.checkpoint_every, settings.checkpoint_path
    if path and ((every and run.step % every == 0) or run.stop_reason or run.step == settings.stop_after):
        snapshot = _snapshot(state.decoder, state.encoder, state.optimizer, state.sampler, run, state.identity)
        save_checkpoint(snapshot, path)


def fingerprint(tensor: torch.Tensor | None) -> str | None:
    """A short hash of a tensor's shape, dtype and values (None for None)."""
    if tensor is None:
        return None
    flat = tensor.detach().cpu().contiguous().reshape(-1)
    digest = hashlib.sha256(f"{tuple(tensor.shape)} {tensor.dtype}".encode())
    digest.update(memoryview(flat.view(torch.uint8).numpy()))
    return digest.hexdigest()[:16]


def _plain(options: dict) -> dict:
    """Encode options as plain values: numbers, strings and bools as they are, a tensor as
    its fingerprint."""
    return {
        k: fingerprint(v) if isinstance(v, torch.Tensor) else v
        for k, v in sorted(options.items())
        if isinstance(v, (int, float, str, bool, torch.Tensor))
    }


def _architecture(module: nn.Module | None) -> dict | None:
    if module is None:
        return None
    return {name: list(value.shape) for name, value in module.state_dict().items()}


def run_identity(
    *,
    images,
    val_images,
    decoder,
    encoder,
    optimizer,
    encode_options,
    gradient,
    steps,
    batch_size,
    seed,
    val_every,
    val_at,
    patience,
    min_improvement,
    plateau_window=1,
    patience_fraction=0.0,
    val_encode_options=None,
    code_version=None,
) -> dict:
    """What identifies a training run (plain values only): a checkpoint is resumed only by
    the run with the same identity. Training and validation images enter as hashes of
    their values, the networks as their parameter shapes, a tensor z0 as a hash of its values
    (validation's encode options as well: a validation history of two encoders would pick
    its best step among unlike numbers)."""
    val_encode_options = encode_options if val_encode_options is None else val_encode_options
    return {
        "optimizer": asdict(optimizer),
        "flow": _plain(encode_options),  # the key checkpoints store: kept as it is, so that they still resume
        "val_flow": _plain(val_encode_options) if val_every else None,
        "gradient": gradient,
        "steps": int(steps),
        "batch_size": batch_size,
        "seed": seed,
        "val_every": val_every,
        "val_at": sorted(int(s) for s in val_at),
        "patience": patience,
        "min_improvement": min_improvement,
        "plateau_window": plateau_window,
        "patience_fraction": patience_fraction,
        "train_images": fingerprint(images),
        "val_images": fingerprint(val_images) if val_every else None,
        "decoder": _architecture(decoder),
        "encoder": _architecture(encoder),
        "code": code_version,
    }


CHECKPOINT_KEYS = ("step", "decoder", "encoder", "optimizer", "sampler", "history", "early_stopping", "settings")


def _describe_difference(key, saved, now) -> str:
    if key in ("train_images", "val_images"):
        return f"{key.replace('_', ' ')} (other images: hash {saved} in the checkpoint, {now} now)"
    if key in ("decoder", "encoder") and saved is not None and now is not None:
        return f"{key} architecture (e.g. another latent_dim)"
    if key == "code":
        return f"code (version {saved} made the checkpoint, {now} runs now)"
    return f"{key} ({saved!r} in the checkpoint, {now!r} now)"


def _check_same_run(state, identity, path) -> None:
    missing = [key for key in CHECKPOINT_KEYS if key not in state]
    if missing:
        raise CheckpointError(
            f"checkpoint {path} lacks {missing}: it was not written by this version of gfe. "
            f"Delete {path} (and {path}.prev) to restart the run from scratch"
        )
    saved = state["settings"] if isinstance(state["settings"], dict) else {}
    changed = [_describe_difference(k, saved.get(k), identity[k]) for k in identity if saved.get(k) != identity[k]]
    if changed:
        raise CheckpointError(
            f"checkpoint {path} belongs to another run: {'; '.join(changed)} differ. Resuming "
            f"would mix two runs: delete {path} (and {path}.prev) to start this run from scratch, "
            "or restore the settings it was made with"
        )


def _snapshot(decoder, encoder, opt, sampler, run, settings) -> dict:
    return {
        "format": 1,
        "step": run.step,
        "decoder": decoder.state_dict(),
        "encoder": encoder.state_dict() if encoder is not None else None,
        "optimizer": opt.state_dict(),
        "sampler": sampler.state_dict(),
        "history": {"steps": run.steps, "validation": run.validation},
        "early_stopping": {
            "best_loss": run.best_loss,
            "best_step": run.best_step,
            "checks_since_best": run.checks_since_best,
            "best_state": run.best_state,
            "stop_reason": run.stop_reason,
        },
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
    stopping = state["early_stopping"]
    run.best_loss, run.best_step = float(stopping["best_loss"]), stopping["best_step"]
    run.checks_since_best, run.best_state = int(stopping["checks_since_best"]), stopping["best_state"]
    run.stop_reason = stopping["stop_reason"]
