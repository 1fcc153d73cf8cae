"""Train one model (AE or a GFE variant) on the first N images of a seed's nested subset.

Writes the weights (--model-out: the best validation check's when --patience stops on a
plateau, else the last step's), the per-step log (--train-log, CSV), the validation log
(--validation, CSV; empty unless --val-every > 0) and a JSON record of settings, stopping
reason and provenance (--run-json). Resumes from --checkpoint if a checkpoint of this very
run is there (another run's is refused, naming what differs); deletes it once the outputs
are written.
The arguments are resolved by the workflow (src/pipeline/plan.py): a GFE model's encode options
(--encode-options) and those of validation (--eval-encode-options: the per-sample AMD rule
even for a model trained with the shared rule, so that held-out numbers do not depend on a
batch). The run record keeps the encode options under its key "flow".
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass

import pandas as pd
import torch

from gfe import io
from gfe.checkpoints import remove_checkpoint
from gfe.devices import resolve_device
from gfe.gradients import GRADIENT_METHODS
from gfe.models import build_autoencoder, build_decoder, count_parameters
from gfe.training import OptimizerSettings, train
from pipeline import common

VALIDATION_COLUMNS = [
    "step",
    "images_seen",
    "elapsed_s",
    "n_images",
    "loss_mean",
    "loss_std",
    "loss_median",
    "nfe_mean",
    "converged_frac",
    "seconds",
    "images_per_s",
]
STEP_COLUMNS = ["step", "images_seen", "loss", "nfe", "seconds", "elapsed_s", "grad_cosine"]


@dataclass(frozen=True)
class Settings:
    """What the arguments resolve to beyond their face value: the step budget, the encode
    options of training and validation, the optimiser's fields and the code version."""

    steps: int
    continues_steps: int | None  # the steps of the run this one continues (--steps-from-run)
    code_version: str | None
    encode_options: dict
    val_encode_options: dict
    optimizer: dict


def main(argv=None) -> int:
    a = parse_arguments(argv)
    log = common.setup(a.threads)
    settings = resolve_settings(a)
    device = resolve_device(a.device)
    prepared = io.load_prepared(a.prepared)
    n = training_size(a, prepared, log)
    if n is None:
        return 1
    subset = prepared["subset_order"][str(a.seed)][:n]  # the first N of the seed's nested subset
    images = prepared["train_images"][subset].to(device)
    decoder, encoder = build_models(a, prepared["image_shape"], device)
    started = time.perf_counter()
    run = run_training(a, settings, n, decoder, encoder, images, prepared["val_images"], device, log)
    if run.resumed_at is not None:
        log.info("resumed from checkpoint %s at step %d", a.checkpoint, run.resumed_at)
    wall = time.perf_counter() - started
    if a.patience and run.best_state is not None:  # E1: the best check's weights are the result
        load_best_weights(run.best_state, decoder, encoder)
    write_outputs(a, settings, n, run, wall, decoder, encoder, prepared["image_shape"], device)
    # The checkpoint served to resume this run if it was interrupted; a finished run is its
    # outputs. Kept, it would let a later job (e.g. after a code change) return this result.
    remove_checkpoint(a.checkpoint)
    log.info("done: final loss %.5f, %.1f s", run.steps[-1]["loss"], wall)
    return 0


def parse_arguments(argv) -> argparse.Namespace:
    """The command line, checked for the combinations argparse cannot express."""
    p = argparse.ArgumentParser(description=__doc__)
    add_model_arguments(p)
    add_budget_arguments(p)
    add_output_arguments(p)
    a = p.parse_args(argv)
    if a.autoencoder and (a.loss is None or a.eval_encode_options is not None):
        p.error("--autoencoder takes --loss and no --eval-encode-options")
    if a.encode_options is not None and a.loss is not None:
        p.error("--loss is an autoencoder's: a GFE model's loss is in --encode-options")
    return a


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """The data, the run's names, and the model: its size, optimiser, encoding and gradient."""
    p.add_argument("--prepared", required=True, help="prepared dataset file (prepare_data.py)")
    p.add_argument("--dataset", required=True, help="the dataset's name: recorded in the run record")
    p.add_argument("--experiment", required=True, help="e1..e4: recorded in the run record")
    p.add_argument("--model", required=True, help="the model's name: recorded in the run record and model file")
    p.add_argument("--latent-dim", type=int, required=True, help="the latent size d")
    p.add_argument(
        "--optimizer",
        required=True,
        metavar="JSON",
        help='JSON: fields of gfe.training.OptimizerSettings, e.g. {"name": "rmsprop", "lr": 0.0005}',
    )
    encoding = p.add_mutually_exclusive_group(required=True)
    encoding.add_argument(
        "--autoencoder", action="store_true", help="train an encoder network with the decoder (needs --loss)"
    )
    encoding.add_argument(
        "--encode-options",
        metavar="JSON",
        help='JSON: a GFE model\'s encode options, as gfe.encode takes them (e.g. {"solver": "rk4", '
        '"order": 1, "tau": 15000.0, "z0": "zeros", "loss": "bce", "steps": 20})',
    )
    p.add_argument(
        "--eval-encode-options",
        metavar="JSON",
        help="JSON: the encode options of validation (default: --encode-options)",
    )
    p.add_argument("--loss", choices=["bce", "mse"], help="an autoencoder's reconstruction loss")
    p.add_argument(
        "--gradient",
        default="approximate",
        choices=GRADIENT_METHODS,
        help="a GFE model's decoder gradient (an autoencoder's is backprop)",
    )


def add_budget_arguments(p: argparse.ArgumentParser) -> None:
    """The training subset, the step budget, checkpoints, validation and early stopping."""
    p.add_argument("--train-size", required=True, help="an integer or 'full'")
    p.add_argument("--seed", type=int, required=True, help="seed of the training subset, initial weights and batches")
    budget = p.add_mutually_exclusive_group(required=True)
    budget.add_argument("--steps", type=int, help="optimiser steps (the cap with --patience)")
    budget.add_argument(
        "--steps-from-run",
        metavar="RUN_JSON",
        help="a continuation: --steps-factor times the steps of this (early-stopped) run's record",
    )
    p.add_argument("--steps-factor", type=int, default=3, help="with --steps-from-run: the multiple of its steps")
    p.add_argument("--batch-size", type=int, required=True, help="images per optimiser step")
    p.add_argument("--checkpoint", required=True, help="resumable checkpoint of this run (deleted once done)")
    p.add_argument("--checkpoint-every", type=int, default=0, help="steps between checkpoints (0: only at the end)")
    p.add_argument("--val-every", type=int, default=0, help="steps between validation checks (0: none)")
    p.add_argument("--val-at", type=int, nargs="*", default=[], help="extra steps to validate at")
    p.add_argument("--patience", type=int, default=0, help="early stopping: checks without improvement")
    p.add_argument("--min-improvement", type=float, default=0.0, help="relative improvement that counts")
    p.add_argument(
        "--plateau-window", type=int, default=1, help="early stopping reads the mean of this many last checks"
    )
    p.add_argument(
        "--patience-fraction",
        type=float,
        default=0.0,
        help="early stopping's patience grows to this fraction of the checks so far",
    )


def add_output_arguments(p: argparse.ArgumentParser) -> None:
    """What is logged, where the run computes, the output files, threads and the identity stamp."""
    p.add_argument(
        "--gradient-cosine",
        action="store_true",
        help="log the cosine between this model's decoder gradient and the approximate one",
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda[:i] or auto")
    p.add_argument("--model-out", required=True, help="the trained weights (model file)")
    p.add_argument("--train-log", required=True, help="per-step log (CSV)")
    p.add_argument("--validation", required=True, help="validation log (CSV)")
    p.add_argument("--run-json", required=True, help="the run record (JSON)")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument(
        "--identity",
        help="the job's identity stamp (JSON, written by the workflow): its code version enters the run "
        "identity, so a checkpoint made by other code is not resumed",
    )


def resolve_settings(a: argparse.Namespace) -> Settings:
    """Read the identity stamp and the continued run's record, and decode the JSON arguments."""
    code_version = None
    if a.identity is not None:
        with open(a.identity, encoding="utf-8") as f:
            code_version = json.load(f)["identity"]["code"]
    steps, continues_steps = a.steps, None
    if a.steps_from_run is not None:
        with open(a.steps_from_run, encoding="utf-8") as f:
            continues_steps = int(json.load(f)["steps"])
        steps = a.steps_factor * continues_steps
    encode_options = {"loss": a.loss} if a.autoencoder else json.loads(a.encode_options)
    val_encode_options = encode_options if a.eval_encode_options is None else json.loads(a.eval_encode_options)
    return Settings(
        steps=steps,
        continues_steps=continues_steps,
        code_version=code_version,
        encode_options=encode_options,
        val_encode_options=val_encode_options,
        optimizer=json.loads(a.optimizer),
    )


def training_size(a: argparse.Namespace, prepared: dict, log) -> int | None:
    """N, the number of training images (--train-size); None, with the error logged, if the
    training split has fewer."""
    n_train = len(prepared["train_images"])
    n = common.parse_n(a.train_size, n_train)
    if not 0 < n <= n_train:
        log.error("train size %s is invalid: the training split of %s has %d images", a.train_size, a.dataset, n_train)
        return None
    return n


def build_models(a: argparse.Namespace, image_shape, device):
    """The initial (decoder, encoder) on `device`, seeded by --seed; the encoder is None for a
    GFE model."""
    torch.manual_seed(a.seed)
    if a.autoencoder:
        ae = build_autoencoder(image_shape, a.latent_dim)
        decoder, encoder = ae.decoder, ae.encoder
    else:
        decoder, encoder = build_decoder(image_shape, a.latent_dim), None
    decoder.to(device)
    if encoder is not None:
        encoder.to(device)
    return decoder, encoder


def run_training(a, settings: Settings, n: int, decoder, encoder, images, val_images, device, log):
    """Train (or resume training) the models in place; the gfe.training run."""
    optimizer = OptimizerSettings(**settings.optimizer)
    val = val_images.to(device) if a.val_every else None
    log.info(
        "training %s on %s, N=%d, seed %d, at most %d steps of %d images (encode options %s)",
        a.model,
        a.dataset,
        n,
        a.seed,
        settings.steps,
        a.batch_size,
        settings.encode_options,
    )

    def progress(row):
        if row["step"] % 10 == 0 or row["step"] == settings.steps:
            log.info("step %d loss %.5f nfe %.1f %.3fs", row["step"], row["loss"], row["nfe"], row["seconds"])

    return train(
        decoder,
        images,
        steps=settings.steps,
        batch_size=a.batch_size,
        seed=a.seed,
        encoder=encoder,
        encode_options=settings.encode_options,
        gradient=a.gradient,
        optimizer=optimizer,
        checkpoint_path=a.checkpoint,
        checkpoint_every=a.checkpoint_every,
        val_images=val,
        val_every=a.val_every,
        val_at=tuple(a.val_at),
        val_batch_size=500,
        val_encode_options=settings.val_encode_options,
        patience=a.patience,
        min_improvement=a.min_improvement,
        plateau_window=a.plateau_window,
        patience_fraction=a.patience_fraction,
        log_gradient_cosine=a.gradient_cosine,
        code_version=settings.code_version,
        log=progress,
    )


def load_best_weights(best_state: dict, decoder, encoder) -> None:
    decoder.load_state_dict(best_state["decoder"])
    if encoder is not None:
        encoder.load_state_dict(best_state["encoder"])


def write_outputs(a, settings: Settings, n: int, run, wall: float, decoder, encoder, image_shape, device) -> None:
    """The model file, the per-step and validation logs, and the run record."""
    io.save_model(
        a.model_out,
        decoder=decoder,
        encoder=encoder,
        model_name=a.model,
        image_shape=image_shape,
        latent_dim=a.latent_dim,
    )
    keys = {"dataset": a.dataset, "experiment": a.experiment, "model": a.model, "train_size": n, "seed": a.seed}
    steps = pd.DataFrame(run.steps, columns=STEP_COLUMNS)
    io.write_csv(steps.assign(**keys)[list(keys) + STEP_COLUMNS], a.train_log)
    validation = pd.DataFrame(run.validation, columns=VALIDATION_COLUMNS)
    io.write_csv(validation.assign(**keys)[list(keys) + VALIDATION_COLUMNS], a.validation)
    record = {
        **keys,
        **budget_record(a, settings, run),
        **training_record(a, settings, run, steps, wall),
        **parameter_counts(decoder, encoder),
        "gradient": "backprop" if encoder is not None else a.gradient,
        "flow": json.dumps(settings.encode_options, sort_keys=True),  # the record's key for them, as committed
        "optimizer": json.dumps(settings.optimizer, sort_keys=True),
        **common.provenance(str(device)),
    }
    io.write_json(record, a.run_json)


def budget_record(a, settings: Settings, run) -> dict:
    """The run record's budget and early-stopping fields: what was allowed, what was used."""
    best_step = run.best_step if a.patience else run.step
    return {
        "train_size_label": a.train_size,
        "max_steps": settings.steps,
        "steps": run.step,
        "batch_size": a.batch_size,
        "images_seen": run.step * a.batch_size,
        "stop_reason": run.stop_reason,
        "best_step": best_step,
        "best_images_seen": best_step * a.batch_size,
        "best_val_loss": run.best_loss if run.best_step is not None else None,
        "val_every": a.val_every,
        "patience": a.patience,
        "min_improvement": a.min_improvement,
        "plateau_window": a.plateau_window,
        "patience_fraction": a.patience_fraction,
        "continues_steps": settings.continues_steps,
    }


def training_record(a, settings: Settings, run, steps: pd.DataFrame, wall: float) -> dict:
    """The run record's fields on how the training went: resumption, code, losses, timings."""
    return {
        "resumed_at": run.resumed_at,
        "code_version": settings.code_version,
        "threads": a.threads,  # torch threads: the rounding of a matrix product can depend on them
        "amd_rule": common.amd_rule(settings.encode_options),
        "final_train_loss": run.steps[-1]["loss"],
        "train_loss_last10": float(steps["loss"].tail(10).mean()),
        "train_nfe_mean": float(steps["nfe"].mean()),
        "step_mean_s": float(steps["seconds"].mean()),
        "train_s": float(steps["elapsed_s"].iloc[-1]),
        "job_wall_s": wall,
    }


def parameter_counts(decoder, encoder) -> dict:
    n_decoder = count_parameters(decoder)
    n_encoder = count_parameters(encoder) if encoder is not None else 0
    return {"decoder_params": n_decoder, "encoder_params": n_encoder, "total_params": n_decoder + n_encoder}


if __name__ == "__main__":
    sys.exit(common.run(main))
