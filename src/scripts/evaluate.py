"""Evaluate a trained model on the prepared test subset, or encode training images.

Test (default): writes --metrics (JSON: per-sample pixel-mean loss statistics, NFE,
provenance) and --outputs (NPZ: latents and labels of the first --n-latents test images;
for E6, the first --n-recon test images of each class, in the order rank 0 of every class,
then rank 1, ... (`recon_idx`, their positions in the test subset, with their labels, test
indices and losses), and their reconstructions), which the figures read.
--latents-of-training N: writes only --outputs (NPZ: z, labels, train_idx) of the first N
images of the run's training subset (E7's t-SNE of training latents).
A GFE model encodes with --encode-options, resolved by the workflow (src/pipeline/plan.py): its training
encode options, AMD with its per-sample rule.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import torch

from gfe import io
from gfe.devices import resolve_device
from gfe.evaluation import evaluate
from gfe.models import to_images
from pipeline import common


def main(argv=None) -> int:
    a = parse_arguments(argv)
    log = common.setup(a.threads)
    encode_options = {"loss": a.loss} if a.autoencoder else json.loads(a.encode_options)
    with open(a.run_json) as f:
        run = json.load(f)
    device = resolve_device(a.device)
    prepared = io.load_prepared(a.prepared)
    decoder, encoder = io.load_model(a.model_file, device)
    if not model_matches_arguments(a, encoder, log):
        return 1
    if a.latents_of_training:
        return training_latents(a, prepared, run, decoder, encoder, encode_options, device, log)
    return evaluate_test_subset(a, prepared, run, decoder, encoder, encode_options, device, log)


def parse_arguments(argv) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--prepared", required=True, help="prepared dataset file (prepare_data.py)")
    p.add_argument("--model-file", required=True, help="the trained model (train.py --model-out)")
    p.add_argument("--run-json", required=True, help="the run record (train.py): dataset, model, N, seed")
    encoding = p.add_mutually_exclusive_group(required=True)
    encoding.add_argument(
        "--autoencoder", action="store_true", help="the model file holds an autoencoder: encode by its encoder"
    )
    encoding.add_argument(
        "--encode-options", metavar="JSON", help="JSON: a GFE model's encode options, as gfe.encode takes them"
    )
    p.add_argument("--loss", choices=["bce", "mse"], help="an autoencoder's reconstruction loss")
    p.add_argument("--batch-size", type=int, default=500, help="images encoded at once")
    p.add_argument("--eval-seed", type=int, default=0, help="seed of a uniform z(0)")
    p.add_argument("--n-latents", type=int, default=1000, help="test images whose latents are kept")
    p.add_argument(
        "--n-recon",
        type=int,
        default=1,
        help="test images per class whose reconstructions are kept (the first of each)",
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda[:i] or auto")
    p.add_argument(
        "--latents-of-training",
        type=int,
        default=0,
        metavar="N",
        help="encode the first N training images of the run instead of the test subset",
    )
    p.add_argument("--metrics", default=None, help="test mode: the metrics JSON")
    p.add_argument("--outputs", required=True, help="the NPZ of latents (and reconstructions)")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    a = p.parse_args(argv)
    if a.autoencoder != (a.loss is not None):
        p.error("--loss goes with --autoencoder (a GFE model's loss is in --encode-options)")
    return a


def model_matches_arguments(a: argparse.Namespace, encoder, log) -> bool:
    """Whether the model file holds the kind of model the arguments describe (an autoencoder
    or a GFE decoder); if not, the mismatch is logged."""
    if a.autoencoder == (encoder is not None):
        return True
    log.error(
        "%s holds %s, but the arguments are %s's",
        a.model_file,
        "an autoencoder" if encoder is not None else "a GFE decoder",
        "an autoencoder" if a.autoencoder else "a GFE model",
    )
    return False


def evaluate_test_subset(a, prepared, run, decoder, encoder, encode_options, device, log) -> int:
    """The test subset, encoded: the metrics JSON, then the NPZ of latents and reconstructions."""
    images = prepared["test_images"].to(device)
    result = evaluate(
        decoder, images, encoder=encoder, encode_options=encode_options, batch_size=a.batch_size, seed=a.eval_seed
    )
    summary = result.summary()
    keys = {k: run[k] for k in ("dataset", "experiment", "model", "train_size", "seed")}
    metrics = {**keys, **{f"test_{k}": v for k, v in summary.items()}}
    metrics.update(common.provenance(str(device)))
    io.write_json(metrics, a.metrics)
    write_test_outputs(a, prepared, result, decoder, device)
    log.info(
        "%s: test loss %.5f (n=%d, nfe %.1f, %.1f s)",
        keys,
        summary["loss_mean"],
        summary["n_images"],
        summary["nfe_mean"],
        summary["seconds"],
    )
    return 0


def write_test_outputs(a, prepared, result, decoder, device) -> None:
    """The NPZ the figures read: latents and losses of the first --n-latents test images, and
    the first --n-recon test images of each class with their reconstructions."""
    recon_idx = per_class_indices(prepared["test_labels"].numpy(), a.n_recon)
    ridx = torch.as_tensor(recon_idx)
    with torch.no_grad():
        recon = to_images(decoder(result.z[ridx.to(result.z.device)].to(device)), decoder.output).cpu()
    n_lat = min(a.n_latents, len(prepared["test_images"]))
    io.write_npz(
        a.outputs,
        z=result.z[:n_lat].cpu().numpy(),
        labels=prepared["test_labels"][:n_lat].numpy(),
        test_idx=prepared["test_idx"][:n_lat].numpy(),
        loss=result.loss[:n_lat].cpu().numpy(),
        recon_idx=recon_idx,
        recon_labels=prepared["test_labels"][ridx].numpy(),
        recon_test_idx=prepared["test_idx"][ridx].numpy(),
        recon_loss=result.loss[ridx.to(result.loss.device)].cpu().numpy(),
        images=prepared["test_images"][ridx].numpy(),
        reconstructions=recon.numpy().astype(np.float32),
    )


def per_class_indices(labels: np.ndarray, per_class: int) -> np.ndarray:
    """Positions of the first `per_class` images of each class in `labels`, ordered by rank
    within the class, then by class: the first of every class (classes in increasing order),
    then the second of every class, ... (a class with fewer images contributes what it has)."""
    labels = np.asarray(labels)
    positions = {c: np.flatnonzero(labels == c) for c in np.unique(labels)}
    out = [int(positions[c][rank]) for rank in range(per_class) for c in sorted(positions) if rank < len(positions[c])]
    return np.asarray(out, dtype=np.int64)


def training_latents(a, prepared, run, decoder, encoder, encode_options, device, log) -> int:
    """The first N images of the run's training subset, encoded: NPZ of z, labels, train_idx."""
    order = prepared["subset_order"][str(run["seed"])][: min(a.latents_of_training, run["train_size"])]
    images = prepared["train_images"][order].to(device)
    result = evaluate(
        decoder, images, encoder=encoder, encode_options=encode_options, batch_size=a.batch_size, seed=a.eval_seed
    )
    io.write_npz(
        a.outputs,
        z=result.z.cpu().numpy(),
        labels=prepared["train_labels"][order].numpy(),
        train_idx=prepared["train_idx"][order].numpy(),
    )
    log.info(
        "encoded %d training images of %s/%s (loss %.5f)",
        len(order),
        run["dataset"],
        run["model"],
        float(result.loss.double().mean()),
    )
    return 0


if __name__ == "__main__":
    sys.exit(common.run(main))
