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


def build(autoencoder: bool, image_shape, latent_dim: int, seed: int):
    torch.manual_seed(seed)
    if autoencoder:
        ae = build_autoencoder(image_shape, latent_dim)
        return ae.decoder, ae.encoder
    return build_decoder(image_shape, latent_dim), None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
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
    a = p.parse_args(argv)
    if a.autoencoder and (a.loss is None or a.eval_encode_options is not None):
        p.error("--autoencoder takes --loss and no --eval-encode-options")
    if a.encode_options is not None and a.loss is not None:
        p.error("--loss is an autoencoder's: a GFE model's loss is in --encode-options")
    log = common.setup(a.threads)
    code_version = None
    if a.identity is not None:
        with open(a.identity, encoding="utf-8") as f:
            code_version = json.load(f)["identity"]["code"]
    continued = None
    if a.steps_from_run is not None:
        with open(a.steps_from_run, encoding="utf-8") as f:
            continued = json.load(f)
        a.steps = a.steps_factor * int(continued["steps"])
    encode_options = {"loss": a.loss} if a.autoencoder else json.loads(a.encode_options)
    val_encode_options = encode_options if a.eval_encode_options is None else json.loads(a.eval_encode_options)
    optimizer = json.loads(a.optimizer)
    device = resolve_device(a.device)
    prepared = io.load_prepared(a.prepared)
    n_train = len(prepared["train_images"])
    n = common.parse_n(a.train_size, n_train)
    if not 0 < n <= n_train:
        log.error("train size %s is invalid: the training split of %s has %d images", a.train_size, a.dataset, n_train)
        return 1
    order = prepared["subset_order"][str(a.seed)]
    images = prepared["train_images"][order[:n]].to(device)
    decoder, encoder = build(a.autoencoder, prepared["image_shape"], a.latent_dim, a.seed)
    decoder.to(device)
    if encoder is not None:
        encoder.to(device)
    opt = OptimizerSettings(**optimizer)
    val = prepared["val_images"].to(device) if a.val_every else None
    log.info(
        "training %s on %s, N=%d, seed %d, at most %d steps of %d images (encode options %s)",
        a.model,
        a.dataset,
        n,
        a.seed,
        a.steps,
        a.batch_size,
        encode_options,
    )
    started = time.perf_counter()

    def progress(row):
        if row["step"] % 10 == 0 or row["step"] == a.steps:
            log.info("step %d loss %.5f nfe %.1f %.3fs", row["step"], row["loss"], row["nfe"], row["seconds"])

    run = train(
        decoder,
        images,
        steps=a.steps,
        batch_size=a.batch_size,
        seed=a.seed,
        encoder=encoder,
        encode_options=encode_options,
        gradient=a.gradient,
        optimizer=opt,
        checkpoint_path=a.checkpoint,
        checkpoint_every=a.checkpoint_every,
        val_images=val,
        val_every=a.val_every,
        val_at=tuple(a.val_at),
        val_batch_size=500,
        val_encode_options=val_encode_options,
        patience=a.patience,
        min_improvement=a.min_improvement,
        plateau_window=a.plateau_window,
        patience_fraction=a.patience_fraction,
        log_gradient_cosine=a.gradient_cosine,
        code_version=code_version,
        log=progress,
    )
    if run.resumed_at is not None:
        log.info("resumed from checkpoint %s at step %d", a.checkpoint, run.resumed_at)
    wall = time.perf_counter() - started
    if a.patience and run.best_state is not None:  # E1: the best check's weights are the result
        decoder.load_state_dict(run.best_state["decoder"])
        if encoder is not None:
            encoder.load_state_dict(run.best_state["encoder"])
    io.save_model(
        a.model_out,
        decoder=decoder,
        encoder=encoder,
        model_name=a.model,
        image_shape=prepared["image_shape"],
        latent_dim=a.latent_dim,
    )
    keys = {"dataset": a.dataset, "experiment": a.experiment, "model": a.model, "train_size": n, "seed": a.seed}
    steps = pd.DataFrame(run.steps, columns=STEP_COLUMNS)
    io.write_csv(steps.assign(**keys)[list(keys) + STEP_COLUMNS], a.train_log)
    validation = pd.DataFrame(run.validation, columns=VALIDATION_COLUMNS)
    io.write_csv(validation.assign(**keys)[list(keys) + VALIDATION_COLUMNS], a.validation)
    n_decoder = count_parameters(decoder)
    n_encoder = count_parameters(encoder) if encoder is not None else 0
    best_step = run.best_step if a.patience else run.step
    record = {
        **keys,
        "train_size_label": a.train_size,
        "max_steps": a.steps,
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
        "continues_steps": None if continued is None else int(continued["steps"]),
        "resumed_at": run.resumed_at,
        "code_version": code_version,
        "threads": a.threads,  # torch threads: the rounding of a matrix product can depend on them
        "amd_rule": common.amd_rule(encode_options),
        "final_train_loss": run.steps[-1]["loss"],
        "train_loss_last10": float(steps["loss"].tail(10).mean()),
        "train_nfe_mean": float(steps["nfe"].mean()),
        "step_mean_s": float(steps["seconds"].mean()),
        "train_s": float(steps["elapsed_s"].iloc[-1]),
        "job_wall_s": wall,
        "decoder_params": n_decoder,
        "encoder_params": n_encoder,
        "total_params": n_decoder + n_encoder,
        "gradient": "backprop" if encoder is not None else a.gradient,
        "flow": json.dumps(encode_options, sort_keys=True),  # the record's key for them, as committed
        "optimizer": json.dumps(optimizer, sort_keys=True),
        **common.provenance(str(device)),
    }
    io.write_json(record, a.run_json)
    # The checkpoint served to resume this run if it was interrupted; a finished run is its
    # outputs. Kept, it would let a later job (e.g. after a code change) return this result.
    remove_checkpoint(a.checkpoint)
    log.info("done: final loss %.5f, %.1f s", run.steps[-1]["loss"], wall)
    return 0


if __name__ == "__main__":
    sys.exit(common.run(main))
