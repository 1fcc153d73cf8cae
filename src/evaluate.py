"""Evaluate a trained model on the prepared test subset.

Writes --metrics (JSON: per-sample pixel-mean loss statistics, NFE, provenance) and
--outputs (NPZ: latents and labels of the first --n-latents test images; the first
--n-recon test images and their reconstructions), which the figures read.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import torch

from gfe.checkpoints import load_tensors
from gfe.devices import resolve_device
from gfe.evaluation import evaluate
from gfe.models import build_autoencoder, build_decoder, to_images

import wfcommon


def load_model(path, device):
    saved = load_tensors(path)
    shape, latent_dim = saved["image_shape"], saved["latent_dim"]
    if saved["encoder"] is not None:
        ae = build_autoencoder(shape, latent_dim)
        decoder, encoder = ae.decoder, ae.encoder
        encoder.load_state_dict(saved["encoder"])
        encoder.to(device).eval()
    else:
        decoder, encoder = build_decoder(shape, latent_dim), None
    decoder.load_state_dict(saved["decoder"])
    decoder.to(device).eval()
    return decoder, encoder


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--prepared", required=True)
    p.add_argument("--model-file", required=True)
    p.add_argument("--run-json", required=True)
    p.add_argument("--model-settings", required=True)
    p.add_argument("--dataset-settings", required=True)
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--eval-seed", type=int, default=0)
    p.add_argument("--n-latents", type=int, default=1000)
    p.add_argument("--n-recon", type=int, default=8)
    p.add_argument("--device", default="cpu")
    p.add_argument("--metrics", required=True)
    p.add_argument("--outputs", required=True)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--log", default=None)
    a = p.parse_args(argv)
    log = wfcommon.setup(a.threads, a.log)
    model, ds = json.loads(a.model_settings), json.loads(a.dataset_settings)
    run = json.loads(open(a.run_json).read())
    device = resolve_device(a.device)
    prepared = wfcommon.load_prepared(a.prepared)
    images = prepared["test_images"].to(device)
    decoder, encoder = load_model(a.model_file, device)
    flow = {"loss": ds["loss"]} if encoder is not None else wfcommon.flow_options(model, ds)
    result = evaluate(decoder, images, encoder=encoder, flow=flow, batch_size=a.batch_size, seed=a.eval_seed)
    summary = result.summary()
    keys = {k: run[k] for k in ("dataset", "model", "train_size", "seed")}
    metrics = {**keys, **{f"test_{k}" if not k.endswith("_s") and k != "seconds" else f"test_{k}": v
                          for k, v in summary.items()}}
    metrics["test_seconds"] = metrics.pop("test_seconds")
    metrics.update(wfcommon.provenance(str(device)))
    wfcommon.write_json(metrics, a.metrics)
    n_recon = min(a.n_recon, len(images))
    with torch.no_grad():
        recon = to_images(decoder(result.z[:n_recon].to(device)), decoder.output).cpu()
    n_lat = min(a.n_latents, len(images))
    wfcommon.write_npz(a.outputs, z=result.z[:n_lat].cpu().numpy(), labels=prepared["test_labels"][:n_lat].numpy(),
                       test_idx=prepared["test_idx"][:n_lat].numpy(), loss=result.loss[:n_lat].cpu().numpy(),
                       images=prepared["test_images"][:n_recon].numpy(), reconstructions=recon.numpy().astype(np.float32))
    log.info("%s: test loss %.5f (n=%d, nfe %.1f, %.1f s)", keys, summary["loss_mean"], summary["n_images"],
             summary["nfe_mean"], summary["seconds"])
    return 0


if __name__ == "__main__":
    sys.exit(wfcommon.run(main))
