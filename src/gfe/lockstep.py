"""Several GFE training runs of one decoder architecture in lockstep, in one process.

At the authors' batch of 5 images, most of a decoder pass is fixed cost (kernel launches,
autograd bookkeeping), not arithmetic. `train_lockstep` therefore stacks the decoders of
G runs (other seeds, other training-set sizes) into one module whose layers are batched
matrix products (`StackedDecoders`), and takes every run's step at once: each run keeps its
own batches, initial latents, optimiser state, AMD step control (the shared rule applied
per run: `LockstepFlow.group_size`), validation, early stopping, checkpoint and result.

Each run's result equals the same run made alone by `gfe.training.train` up to float
rounding (a batched product rounds differently from a plain one), its checkpoints are those
`train` writes and reads, so a run can be resumed alone or in a group. A run that stops
leaves the group; the others go on.

Scope: GFE with the approximate decoder gradient and AMD's shared rule (the papers'
GFE-amd, whose training is the expensive one), decoders without buffers (no BatchNorm
statistics), z0 'zeros' or 'uniform'. Anything else raises a ValueError: train those runs
one by one with `train`.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import torch
from torch import nn

from .checkpoints import load_checkpoint, save_checkpoint
from .encoding import check_images, eval_mode, initial_latents, latent_dim_of
from .flows import GradientFlow
from .gradients import check_gradient_options
from .losses import LossFn, resolve_loss
from .models import MLPDecoder
from .solvers import FlowDivergedError
from .training import (
    STOPPING_KEYS,
    BatchSampler,
    OptimizerSettings,
    TrainingDivergedError,
    TrainingRun,
    _check_same_run,
    _restore,
    check_training_settings,
    run_identity,
    validate_run,
)
from .training import _snapshot as _training_snapshot

# The encode options that are not the solver's own (see `gfe.encode`).
_FLOW_KEYS = ("solver", "order", "tau", "z0", "loss", "alpha", "latent_dim")


class StackedDecoders(nn.Module):
    """G decoders of one architecture as one module: each parameter stacked to (G, ...).

    forward(z, groups) maps latents (G', B, d) to images (G', B, *image shape), decoder
    groups[i] decoding z[i] (groups: a (G',) index tensor, None for all G in order). A
    `gfe.models.MLPDecoder` runs decoder by decoder with the kernels `nn.Linear` calls (so
    each run's numbers are those of the run alone); any other decoder through
    `torch.func.vmap` of `torch.func.functional_call`.
    """

    def __init__(self, decoders: list[nn.Module]):
        super().__init__()
        if not decoders:
            raise ValueError("StackedDecoders needs at least one decoder")
        shapes = [{name: tuple(p.shape) for name, p in d.named_parameters()} for d in decoders]
        if any(shape != shapes[0] for shape in shapes[1:]):
            raise ValueError("lockstep runs need decoders of one architecture (same parameter names and shapes)")
        if any(True for d in decoders for _ in d.buffers()):
            raise ValueError(
                "lockstep training takes decoders without buffers (e.g. no BatchNorm statistics); "
                "train such runs one by one with gfe.training.train"
            )
        self.names = list(shapes[0])
        self.template = copy.deepcopy(decoders[0]).requires_grad_(False)
        self.stacked = nn.ParameterList(
            [torch.stack([dict(d.named_parameters())[name].detach() for d in decoders]).clone() for name in self.names]
        )
        self.output = getattr(decoders[0], "output", None)
        self.linear_chain = _linear_chain(decoders[0])

    def forward(self, z: torch.Tensor, groups: torch.Tensor | None = None) -> torch.Tensor:
        return self.run(z, self.select(groups))

    def select(self, groups: torch.Tensor | None) -> list[torch.Tensor]:
        """The stacked parameters of decoders `groups` (None: all, no copy)."""
        if groups is None:
            return list(self.stacked)
        return [p[groups] for p in self.stacked]

    def run(self, z: torch.Tensor, params: list[torch.Tensor]) -> torch.Tensor:
        """forward with the parameters of `select`."""
        if self.linear_chain is not None:
            return self._linear_forward(z, params)
        return torch.func.vmap(self._one)(params, z)

    def _one(self, params, z):
        return torch.func.functional_call(self.template, dict(zip(self.names, params, strict=True)), (z,))

    def _linear_forward(self, z: torch.Tensor, params: list[torch.Tensor]) -> torch.Tensor:
        h, by_name = z, dict(zip(self.names, params, strict=True))
        for layer in self.linear_chain:
            if isinstance(layer, str):  # a Linear layer's parameter prefix
                weight, bias = by_name[f"{layer}.weight"], by_name[f"{layer}.bias"]
                # run by run with the 2-D kernel nn.Linear calls: a batched product (baddbmm)
                # rounds differently from it on some CPUs (MKL on AMD EPYC, inner sizes >= 32)
                h = torch.stack([torch.addmm(b, part, w.t()) for b, part, w in zip(bias, h, weight, strict=True)])
            else:  # run by run: a vectorised exp rounds the tail of a tensor differently
                h = torch.stack([layer(part) for part in h.unbind(0)])
        return h.reshape(*z.shape[:2], *self.template.image_shape)

    def state_dict_of(self, group: int) -> dict:
        """The parameters of decoder `group` as its own state dict (copies)."""
        return {name: p[group].detach().clone() for name, p in zip(self.names, self.stacked, strict=True)}


def _linear_chain(decoder: nn.Module):
    """For a `MLPDecoder` (Linear layers with biases and parameter-free activations), its
    layers in order: a Linear as its parameter prefix, an activation as the module; else None."""
    if type(decoder) is not MLPDecoder:
        return None
    chain = []
    for name, layer in decoder.net.named_children():
        if isinstance(layer, nn.Linear) and layer.bias is not None:
            chain.append(f"net.{name}")
        elif not any(True for _ in layer.parameters()):
            chain.append(layer)
        else:
            return None
    return chain


class LockstepFlow(GradientFlow):
    """The first-order gradient flow of G runs at once: rows g*B .. g*B+B-1 of the batch are
    run g's images, decoded by its decoder. `group_size` (B) makes AMD's shared rule act per
    run. Solvers that drop finished rows must drop whole groups (AMD's shared rule does)."""

    def __init__(self, decoders: StackedDecoders, target: torch.Tensor, loss_fn, group_size: int, alpha: float = 1.0):
        super().__init__(decoders, target, run_by_run(loss_fn, group_size), alpha)
        self.group_size = int(group_size)
        self.n_rows = target.shape[0]
        self._selected = {}

    def decode(self, z: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        size = self.group_size
        key = None if rows is None or rows.numel() == self.n_rows else tuple((rows[::size] // size).tolist())
        if key not in self._selected:  # the weights do not change during a solve: gather them once
            groups = None if key is None else torch.tensor(key, device=z.device)
            self._selected = {key: self.decoder.select(groups)}
        images = self.decoder.run(z.reshape(-1, size, z.shape[-1]), self._selected[key])
        return images.flatten(0, 1)


def run_by_run(loss_fn, group_size: int):
    """`loss_fn` applied to each run's rows on their own: its vectorised kernels (exp, log)
    then round every run's numbers as they round them alone."""

    def loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        pairs = zip(output.split(group_size), target.split(group_size), strict=True)
        return torch.cat([loss_fn(out, tgt) for out, tgt in pairs])

    return loss


@dataclass
class LockstepRun:
    """One run of a lockstep group: its decoder (trained in place; on return it holds the
    last step's weights), training images (N, C, H, W), seed (training subset order,
    batches and z0 draws, as in `train`) and checkpoint file (None: no checkpoints)."""

    decoder: nn.Module
    images: torch.Tensor
    seed: int
    checkpoint_path: str | None = None


@dataclass
class _State:
    """A run of the group: its spec, batch sampler, identity (`run_identity`, None without a
    checkpoint file), result so far, optimiser state while out of a stack, elapsed seconds."""

    spec: LockstepRun
    sampler: BatchSampler
    identity: dict | None
    run: TrainingRun = field(default_factory=TrainingRun)
    optimizer_state: dict | None = None
    elapsed: float = 0.0


@dataclass(frozen=True)
class _Settings:
    """The settings every run of a `train_lockstep` call shares (those of `train`)."""

    steps: int
    batch_size: int
    encode_options: dict
    optimizer: OptimizerSettings
    checkpoint_every: int
    val_images: torch.Tensor | None
    val_every: int
    val_at: tuple
    val_batch_size: int
    val_encode_options: dict
    patience: int
    min_improvement: float
    plateau_window: int
    patience_fraction: float

    def stopping(self) -> dict:
        """The early-stopping settings, as `validate_run` and `run_identity` take them."""
        return {key: getattr(self, key) for key in STOPPING_KEYS}


@dataclass(frozen=True)
class _StepSettings:
    """What a group step needs, checked once per call (`_check_flow`)."""

    solver: object  # AMD with shared=True
    tau: float
    z0: str  # 'zeros' or 'uniform'
    alpha: float
    latent_dim: int
    base_loss_fn: LossFn  # the per-sample loss, resolved against the decoders
    loss_fn: LossFn  # the same, applied run by run (`run_by_run`)
    batch_size: int


def train_lockstep(
    runs: list[LockstepRun],
    *,
    steps: int,
    batch_size: int = 5,
    encode_options: dict,
    optimizer: OptimizerSettings = OptimizerSettings(),  # noqa: B008 (frozen: safe to share)
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
    log=None,
) -> list[TrainingRun]:
    """Train the GFE runs `runs` in lockstep; each as `gfe.training.train` would train it
    alone with the same arguments (`gradient='approximate'`, no encoder).

    Args:
        runs: the runs (decoders of one architecture, without buffers).
        encode_options: AMD with shared=True (the authors' rule), z0 'zeros' or 'uniform'.
        steps, batch_size, optimizer, checkpoint_every, val_*, patience, min_improvement,
            plateau_window, patience_fraction: those of `train`, the same for every run.
        log: called as log(index into runs, per-step row).

    Returns:
        list[TrainingRun]: one per run, in the order of `runs`. A row's `seconds` is the
        run's share (1/G) of the group step's wall time.
    """
    encode_options = dict(encode_options)
    val_encode_options = dict(encode_options if val_encode_options is None else val_encode_options)
    arguments = {name: value for name, value in locals().items() if name not in ("runs", "log")}
    settings = _Settings(**arguments)
    solver = _check_lockstep(runs, encode_options)
    for spec in runs:
        check_training_settings(
            steps=steps,
            seed=spec.seed,
            gradient="approximate",
            patience=patience,
            val_every=val_every,
            checkpoint_every=checkpoint_every,
            has_val_images=val_images is not None,
            min_improvement=min_improvement,
            plateau_window=plateau_window,
            patience_fraction=patience_fraction,
        )
    step_settings = _check_flow(runs, solver, settings)
    states = [_start(spec, settings) for spec in runs]
    for state in states:
        if state.run.step == 0 and not state.run.validation:
            _validate(state, settings)
    _train_groups(states, settings, step_settings, log)
    return [s.run for s in states]


def _check_flow(runs: list[LockstepRun], solver, settings: _Settings) -> _StepSettings:
    """The size of z, the loss and each run's images checked against its decoder, once."""
    flow_options = {k: settings.encode_options[k] for k in _FLOW_KEYS if k in settings.encode_options}
    latent_dim = latent_dim_of(runs[0].decoder, None, flow_options.get("latent_dim"))
    base_loss_fn = resolve_loss(flow_options.get("loss"), runs[0].decoder)[1]
    for spec in runs:
        check_images(spec.decoder, spec.images[:1], flow_options.get("loss"), latent_dim=latent_dim)
    return _StepSettings(
        solver=solver,
        tau=float(flow_options.get("tau", 1e4)),
        z0=flow_options.get("z0", "zeros"),
        alpha=float(flow_options.get("alpha", 1.0)),
        latent_dim=latent_dim,
        base_loss_fn=base_loss_fn,
        loss_fn=run_by_run(base_loss_fn, settings.batch_size),
        batch_size=settings.batch_size,
    )


def _train_groups(states: list[_State], settings: _Settings, step_settings: _StepSettings, log) -> None:
    """Step the runs that have steps left, lowest step first, the runs at one step as one
    stacked group (restacked when the group changes); each run's weights and optimiser
    state go back to it at the end."""
    members, stack, opt = [], None, None
    while True:
        live = [s for s in states if s.run.stop_reason is None and s.run.step < settings.steps]
        if not live:
            break
        step = min(s.run.step for s in live)  # resumed runs may stand at other steps: the laggards go first
        group = [s for s in live if s.run.step == step]
        if [id(s) for s in group] != [id(s) for s in members]:
            _unstack(members, stack, opt)
            members = group
            stack, opt = _restack(members, settings.optimizer)
        _group_step(members, stack, opt, step_settings, log, states)
        for index, state in enumerate(members):
            _after_step(state, stack, opt, index, settings)
    _unstack(members, stack, opt)


def _check_lockstep(runs, encode_options):
    if not runs:
        raise ValueError("train_lockstep needs at least one run")
    paths = [spec.checkpoint_path for spec in runs if spec.checkpoint_path is not None]
    if len(set(map(str, paths))) != len(paths):
        raise ValueError("lockstep runs need distinct checkpoint paths (two runs would overwrite one file)")
    solver = check_gradient_options("approximate", **encode_options)
    rule = (encode_options.get("solver", "amd"), encode_options.get("shared", False))
    if rule != ("amd", True):
        raise ValueError(
            f"lockstep training runs AMD's shared rule (solver='amd', shared=True); got solver={rule[0]!r}, "
            f"shared={rule[1]!r}: train these runs one by one with gfe.training.train"
        )
    z0 = encode_options.get("z0", "zeros")
    if isinstance(z0, torch.Tensor) or "sample_ids" in encode_options:
        raise ValueError("lockstep training draws z0 per run: use z0='zeros' or 'uniform', without sample_ids")
    StackedDecoders([spec.decoder for spec in runs])  # refuses unlike architectures and buffers
    return solver


def _start(spec: LockstepRun, settings: _Settings) -> _State:
    """A run's state: fresh, or resumed from its checkpoint (refused if it is another run's)."""
    identity = None
    if spec.checkpoint_path:
        identity = run_identity(
            images=spec.images,
            val_images=settings.val_images,
            decoder=spec.decoder,
            encoder=None,
            optimizer=settings.optimizer,
            encode_options=settings.encode_options,
            val_encode_options=settings.val_encode_options,
            gradient="approximate",
            steps=settings.steps,
            batch_size=settings.batch_size,
            seed=spec.seed,
            val_every=settings.val_every,
            val_at=settings.val_at,
            **settings.stopping(),
        )
    state = _State(spec=spec, sampler=BatchSampler(len(spec.images), settings.batch_size, spec.seed), identity=identity)
    saved = load_checkpoint(spec.checkpoint_path) if spec.checkpoint_path else None
    if saved is not None:
        _check_same_run(saved, identity, spec.checkpoint_path)
        optimizer_state = _OptimizerState()
        _restore(saved, spec.decoder, None, optimizer_state, state.sampler, state.run)
        state.optimizer_state = optimizer_state.saved
        state.elapsed = state.run.steps[-1]["elapsed_s"] if state.run.steps else 0.0
    return state


def _restack(members: list[_State], optimizer: OptimizerSettings):
    """The stacked decoders of `members` and an optimiser over them, holding their states."""
    stack = StackedDecoders([s.spec.decoder for s in members])
    opt = optimizer.build(list(stack.stacked))
    saved = [s.optimizer_state for s in members]
    if all(state is not None and state["state"] for state in saved):
        opt.load_state_dict(_stack_optimizer_states(saved))
    elif any(state is not None and state["state"] for state in saved):
        raise RuntimeError("lockstep group mixes runs with and without optimiser state at one step")
    return stack, opt


def _stack_optimizer_states(states: list[dict]) -> dict:
    first = states[0]
    stacked = {
        i: {
            key: torch.stack([s["state"][i][key] for s in states]) if _per_element(value) else value.clone()
            for key, value in per_param.items()
        }
        for i, per_param in first["state"].items()
    }
    return {"state": stacked, "param_groups": copy.deepcopy(first["param_groups"])}


def _per_element(value) -> bool:
    """A per-element optimiser state (shaped like its parameter), as opposed to a step count."""
    return isinstance(value, torch.Tensor) and value.ndim >= 1


def _sync(state: _State, stack: StackedDecoders, opt, index: int) -> None:
    """Copy run `index` of the stack (weights and optimiser state) back to the run."""
    with torch.no_grad():
        state.spec.decoder.load_state_dict(stack.state_dict_of(index))
    full = opt.state_dict()
    state.optimizer_state = {
        "state": {
            i: {k: v[index].clone() if _per_element(v) else v.clone() for k, v in per_param.items()}
            for i, per_param in full["state"].items()
        },
        "param_groups": copy.deepcopy(full["param_groups"]),
    }


def _unstack(members, stack, opt) -> None:
    for index, state in enumerate(members):
        _sync(state, stack, opt, index)


def _group_step(members, stack, opt, o: _StepSettings, log, states) -> None:
    """One optimiser step of every run in `members` (all at the same step)."""
    size = o.batch_size
    picks = [s.sampler.next() for s in members]
    x = torch.cat([s.spec.images[idx] for s, idx in zip(members, picks, strict=True)])
    z0 = torch.cat(
        [
            initial_latents(
                o.z0,
                size,
                o.latent_dim,
                seed=s.spec.seed * 1_000_003 + s.run.step,
                dtype=x.dtype,
                device=x.device,
            )
            for s in members
        ]
    )
    started = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    flow = LockstepFlow(stack, x, o.base_loss_fn, size, o.alpha)
    try:
        with torch.no_grad(), eval_mode(stack):
            out = o.solver.solve(flow, z0, o.tau)
    except FlowDivergedError as error:
        run = members[error.samples[0] // size]
        rows = [i % size for i in error.samples if i // size == error.samples[0] // size]
        raise TrainingDivergedError(
            f"training step {run.run.step + 1} of the run with seed {run.spec.seed}: the encoding flow diverged "
            f"for training images {picks[members.index(run)][rows].tolist()} ({error}); the last checkpoint is "
            "kept. Lower the learning rate or check the data"
        ) from error
    with torch.enable_grad():
        losses = o.loss_fn(stack(out.z.detach().reshape(len(members), size, -1)).flatten(0, 1), x)
        grads = torch.autograd.grad(losses.sum(), list(stack.stacked))
    finite = torch.isfinite(losses).reshape(len(members), size).all(1)
    for grad in grads:
        finite &= torch.isfinite(grad).flatten(1).all(1)
    if not bool(finite.all()):
        bad = members[int((~finite).nonzero()[0])]
        raise TrainingDivergedError(
            f"training step {bad.run.step + 1} of the run with seed {bad.spec.seed}: non-finite loss or gradient; "
            "the last checkpoint is kept. Lower the learning rate or check the data"
        )
    for param, grad in zip(stack.stacked, grads, strict=True):
        param.grad = grad
    opt.step()
    _log_step(members, losses, out.nfe, (time.perf_counter() - started) / len(members), log, states)


def _log_step(members, losses: torch.Tensor, nfe: torch.Tensor, share: float, log, states) -> None:
    """Advance every member by one step and log its row: its rows' mean loss and NFE, and
    `share` seconds (its part of the group step's wall time)."""
    size = len(losses) // len(members)
    for index, state in enumerate(members):
        rows = slice(index * size, (index + 1) * size)
        state.elapsed += share
        state.run.step += 1
        row = {
            "step": state.run.step,
            "images_seen": state.run.step * size,
            "loss": float(losses[rows].detach().double().mean()),
            "nfe": float(nfe[rows].double().mean()),
            "seconds": share,
            "elapsed_s": state.elapsed,
        }
        state.run.steps.append(row)
        if log is not None:
            log(states.index(state), row)


def _validate(state: _State, settings: _Settings) -> None:
    if settings.val_images is None or not settings.val_every:
        return
    validate_run(
        state.run,
        state.spec.decoder,
        None,
        settings.val_images,
        elapsed=state.elapsed,
        batch_size=settings.batch_size,
        seed=state.spec.seed,
        val_encode_options=settings.val_encode_options,
        val_batch_size=settings.val_batch_size,
        **settings.stopping(),
    )


def _after_step(state: _State, stack, opt, index: int, settings: _Settings) -> None:
    """Validation, the stop reason and the checkpoint after a step, as `train` does them."""
    run, steps, every = state.run, settings.steps, settings.val_every
    validating = every and (run.step % every == 0 or run.step in settings.val_at or run.step == steps)
    if validating:
        _sync(state, stack, opt, index)
        _validate(state, settings)
    if run.stop_reason is None and run.step >= steps:
        run.stop_reason = "cap" if settings.patience else "steps"
    path, checkpoint_every = state.spec.checkpoint_path, settings.checkpoint_every
    if path and ((checkpoint_every and run.step % checkpoint_every == 0) or run.stop_reason):
        if not validating:
            _sync(state, stack, opt, index)
        save_checkpoint(_snapshot(state), path)


class _OptimizerState:
    """An optimiser's state dict where `train`'s checkpoint functions expect an optimiser."""

    def __init__(self, saved: dict | None = None):
        self.saved = saved

    def state_dict(self) -> dict | None:
        return self.saved

    def load_state_dict(self, saved: dict) -> None:
        self.saved = saved


def _snapshot(state: _State) -> dict:
    """The checkpoint `gfe.training.train` writes for this run (its own function)."""
    optimizer_state = _OptimizerState(state.optimizer_state)
    return _training_snapshot(state.spec.decoder, None, optimizer_state, state.sampler, state.run, state.identity)
