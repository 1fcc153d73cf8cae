"""E5: encoding loss along the integration time and against NFE, for the first-order
flow (rk4), the second-order Nesterov flow (rk4) and AMD, on test images with a trained
decoder. Writes one CSV row per (method, time point): t, mean NFE per image, loss mean/std.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import pandas as pd
import torch

import gfe
from gfe.encoding import build_flow, initial_latents
from gfe.solvers.odeint import FixedStepSolver

import wfcommon
from evaluate import load_model


def fixed_step_curve(decoder, x, z0, *, order, tau, steps, loss):
    flow = build_flow(decoder, x, order=order, loss=loss)
    with torch.no_grad():
        zs = FixedStepSolver("rk4", steps).integrate(flow, z0, tau)
        losses = torch.stack([flow.losses(z) for z in zs]).double()  # (T, B)
    t = np.linspace(0.0, tau, steps + 1)
    return pd.DataFrame({"t": t, "nfe_mean": 4.0 * np.arange(steps + 1),
                         "loss_mean": losses.mean(1).numpy(), "loss_std": losses.std(1).numpy()})


def amd_curve(decoder, x, z0, *, tau, loss, options, grid):
    trace: list = []
    out = gfe.encode(decoder, x, solver="amd", tau=tau, z0=z0, loss=loss, trace=trace, **options)
    b = x.shape[0]
    ts = [[] for _ in range(b)]
    ls = [[] for _ in range(b)]
    ns = [[] for _ in range(b)]
    count = np.zeros(b, dtype=np.int64)
    for entry in trace:
        idx = entry["idx"].numpy()
        count[idx] += 1
        for j, i in enumerate(idx):
            ts[i].append(float(entry["t"][j]))
            ls[i].append(float(entry["loss"][j]))
            ns[i].append(float(count[i]))
    for i in range(b):  # the final state
        ts[i].append(float(out.t[i]))
        ls[i].append(float(out.loss[i]))
        ns[i].append(float(out.nfe[i]))
    loss_at = np.empty((len(grid), b))
    nfe_at = np.empty((len(grid), b))
    for i in range(b):
        t_i = np.maximum.accumulate(np.asarray(ts[i]))
        k = np.clip(np.searchsorted(t_i, grid, side="right") - 1, 0, len(t_i) - 1)
        loss_at[:, i] = np.asarray(ls[i])[k]
        nfe_at[:, i] = np.asarray(ns[i])[k]
    return pd.DataFrame({"t": grid, "nfe_mean": nfe_at.mean(1), "loss_mean": loss_at.mean(1),
                         "loss_std": loss_at.std(1, ddof=1)})


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--prepared", required=True)
    p.add_argument("--model-file", required=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("--dataset-settings", required=True)
    p.add_argument("--amd-settings", required=True, help="JSON: model_settings of the AMD model")
    p.add_argument("--n-images", type=int, required=True)
    p.add_argument("--tau", type=float, required=True)
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--z0", default="zeros")
    p.add_argument("--coarse-steps", type=int, nargs="*", default=[])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", required=True)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--log", default=None)
    a = p.parse_args(argv)
    log = wfcommon.setup(a.threads, a.log)
    ds, amd = json.loads(a.dataset_settings), json.loads(a.amd_settings)
    prepared = wfcommon.load_prepared(a.prepared)
    decoder, _ = load_model(a.model_file, "cpu")
    x = prepared["test_images"][: a.n_images]
    z0 = initial_latents(a.z0, x.shape[0], ds["latent_dim"], seed=a.seed)
    frames = []
    for name, order in ((f"1st order (rk4, {a.steps} steps)", 1), (f"2nd order (rk4, {a.steps} steps)", 2)):
        frame = fixed_step_curve(decoder, x, z0, order=order, tau=a.tau, steps=a.steps, loss=ds["loss"])
        frames.append(frame.assign(method=name))
        log.info("%s: final loss %.5f", name, frame["loss_mean"].iloc[-1])
    for steps in a.coarse_steps:
        frame = fixed_step_curve(decoder, x, z0, order=1, tau=a.tau, steps=steps, loss=ds["loss"])
        frames.append(frame.assign(method=f"1st order (rk4, {steps} steps)"))
        log.info("rk4 with %d steps: final loss %.5f", steps, frame["loss_mean"].iloc[-1])
    options = {k: v for k, v in wfcommon.flow_options(amd, ds).items()
               if k not in ("solver", "order", "tau", "z0", "loss")}
    grid = np.concatenate([[0.0], np.geomspace(1e-2, a.tau, 120)])
    frame = amd_curve(decoder, x, z0, tau=a.tau, loss=ds["loss"], options=options, grid=grid)
    frames.append(frame.assign(method="AMD (1st order)"))
    log.info("AMD: final loss %.5f", frame["loss_mean"].iloc[-1])
    table = pd.concat(frames, ignore_index=True).assign(dataset=a.dataset, n_images=len(x), z0=a.z0)
    columns = ["dataset", "method", "n_images", "z0", "t", "nfe_mean", "loss_mean", "loss_std"]
    wfcommon.write_csv(table[columns], a.output)
    return 0


if __name__ == "__main__":
    sys.exit(wfcommon.run(main))
