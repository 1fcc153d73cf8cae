"""E5: encoding loss along the integration time t and against NFE, on test images.

Two panels of curves:
  'own decoder'    every --own model encoded by its own flow (its encode options in
                   --own-encode-options: solver, order, tau, z0, solver options) on its own
                   decoder;
  'common decoder' one decoder (--common) encoded by first-order rk4 with --steps and with
                   each of --coarse-steps at --tau; by rk4 with --steps, order 1 and 2, at
                   every tau of --tau-sweep; and by AMD at --tau with the solver options of
                   --amd-encode-options (absent: no AMD curve). All start from --z0.
The encode options are resolved by the workflow (src/pipeline/plan.py): those of evaluation, so
AMD always runs its per-sample rule here.

rk4 curves have a point at every step (t = k tau / steps, NFE = 4 k); AMD curves are read
off its per-iteration trace on a geometric time grid. One CSV row per (curve, time point):
mean and std over the images of the per-sample loss, and the mean NFE per image.

A fixed-step flow that turns non-finite (a second-order flow on a decoder it did not
train, coarse steps) keeps its finite points; the points from the first non-finite one on
are written with loss_mean = inf (and loss_std empty), and the log says so.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

import gfe
from gfe import io
from gfe.encoding import build_flow, initial_latents
from gfe.solvers import FlowDivergedError
from gfe.solvers.odeint import FixedStepSolver
from pipeline import common

COLUMNS = [
    "dataset",
    "panel",
    "decoder_model",
    "solver",
    "order",
    "steps",
    "tau",
    "n_images",
    "z0",
    "t",
    "nfe_mean",
    "loss_mean",
    "loss_std",
]
OWN, COMMON = "own decoder", "common decoder"
AMD_GRID_POINTS = 120
# The encode options that are not solver options.
NON_SOLVER_KEYS = ("solver", "order", "tau", "z0", "loss")


class _PrefixRK4(FixedStepSolver):
    """rk4 on the same grid as FixedStepSolver('rk4', steps), stopped after `keep` steps:
    the states it returns are exactly the first keep + 1 states of the full run."""

    def __init__(self, steps: int, keep: int):
        super().__init__("rk4", steps)
        self.keep = keep

    def output_times(self, tau, dtype, device):
        return super().output_times(tau, dtype, device)[: self.keep + 1]


def _losses_along(flow, zs) -> torch.Tensor:
    with torch.no_grad():
        return torch.stack([flow.losses(z) for z in zs]).double()  # (T, B)


def fixed_step_curve(decoder, x, z0, *, order, tau, steps, loss, alpha=1.0):
    """rk4 with `steps` steps over [0, tau]: a frame with a row per step point, and the first
    step whose state or loss is non-finite (None if the whole curve is finite)."""
    flow = build_flow(decoder, x, order=order, loss=loss, alpha=alpha)
    diverged_at = None
    with torch.no_grad():
        try:
            zs = FixedStepSolver("rk4", steps).integrate(flow, z0, tau)
        except FlowDivergedError as error:
            # error.step: the first output step with a non-finite latent (None: torchdiffeq
            # gave up without saying where). Redo the finite prefix on the same grid.
            diverged_at = error.step if error.step is not None and error.step >= 1 else 1
            zs = z0[None]
            if diverged_at > 1:
                try:
                    zs = _PrefixRK4(steps, diverged_at - 1).integrate(
                        build_flow(decoder, x, order=order, loss=loss, alpha=alpha), z0, tau
                    )
                except FlowDivergedError:
                    diverged_at = 1
    losses = _losses_along(flow, zs)
    finite = torch.isfinite(losses).all(1)
    if not bool(finite.all()):  # a finite but huge latent can still give a non-finite loss
        first_bad = int((~finite).nonzero()[0])
        diverged_at = first_bad if diverged_at is None else min(diverged_at, first_bad)
        losses = losses[:first_bad]
    n_ok = losses.shape[0]
    k = np.arange(steps + 1)
    loss_mean = np.full(steps + 1, np.inf)
    loss_std = np.full(steps + 1, np.nan)
    loss_mean[:n_ok] = losses.mean(1).numpy()
    loss_std[:n_ok] = losses.std(1).numpy() if losses.shape[1] > 1 else np.nan
    frame = pd.DataFrame({"t": tau * k / steps, "nfe_mean": 4.0 * k, "loss_mean": loss_mean, "loss_std": loss_std})
    return frame, diverged_at


def amd_curve(decoder, x, z0, *, tau, loss, options, grid):
    """AMD's loss and NFE per image at the times of `grid`, read off its trace (a sample
    that stopped early keeps its final loss and NFE)."""
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
    return pd.DataFrame(
        {
            "t": grid,
            "nfe_mean": nfe_at.mean(1),
            "loss_mean": loss_at.mean(1),
            "loss_std": loss_at.std(1, ddof=1) if b > 1 else np.nan,
        }
    )


def amd_grid(tau: float) -> np.ndarray:
    return np.concatenate([[0.0], np.geomspace(min(1e-2, tau), tau, AMD_GRID_POINTS)])


def rk4_settings(name: str, options: dict) -> dict:
    """order, tau, steps, z0 and alpha of an rk4 model's encode options."""
    extra = {k: v for k, v in options.items() if k not in (*NON_SOLVER_KEYS, "steps", "conv_tol", "alpha")}
    if extra or "steps" not in options:
        solver_options = {k: v for k, v in options.items() if k not in NON_SOLVER_KEYS}
        raise ValueError(f"model {name}: rk4 takes solver_options {{steps}} here; got {solver_options}")
    return {
        "order": int(options["order"]),
        "tau": options["tau"],
        "steps": int(options["steps"]),
        "z0": options["z0"],
        "alpha": float(options.get("alpha", 1.0)),
    }


def amd_settings(options: dict) -> dict:
    """tau, z0 and solver options of an AMD model's encode options."""
    return {
        "tau": options["tau"],
        "z0": options["z0"],
        "options": {k: v for k, v in options.items() if k not in NON_SOLVER_KEYS},
    }


def parse_own(values: list[str]) -> list[tuple[str, str]]:
    pairs = []
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"--own {value!r} is invalid: expected MODEL=MODEL_FILE")
        pairs.append((name, path))
    return pairs


@dataclass
class Curves:
    """The curves of the table as they are computed, every one on the images `x` with the
    encoding loss `loss`, from a z(0) drawn by `initial_latents` with `seed`."""

    x: torch.Tensor
    latent_dim: int
    loss: str
    seed: int
    log: logging.Logger
    frames: list = field(default_factory=list)

    def z_start(self, rule: str) -> torch.Tensor:
        return initial_latents(rule, self.x.shape[0], self.latent_dim, seed=self.seed)

    def add_rk4(self, panel, decoder_name, decoder, *, order, tau, steps, z0, alpha=1.0) -> None:
        """An rk4 curve (`fixed_step_curve`), its final loss or its divergence logged."""
        frame, diverged_at = fixed_step_curve(
            decoder, self.x, self.z_start(z0), order=order, tau=tau, steps=steps, loss=self.loss, alpha=alpha
        )
        label = f"{panel} | {decoder_name} decoder, order {order}, rk4 {steps} steps, tau {tau:g}, z0 {z0}"
        if diverged_at is None:
            self.log.info("%s: final loss %.5f (NFE %d)", label, frame["loss_mean"].iloc[-1], 4 * steps)
        else:
            self.log.warning(
                "%s: DIVERGED at step %d of %d (t = %g): last finite loss %.5f at step %d; "
                "the %d points from step %d on are written with loss_mean = inf",
                label,
                diverged_at,
                steps,
                tau * diverged_at / steps,
                frame["loss_mean"].iloc[diverged_at - 1],
                diverged_at - 1,
                steps + 1 - diverged_at,
                diverged_at,
            )
        self.frames.append(
            frame.assign(
                panel=panel, decoder_model=decoder_name, solver="rk4", order=order, steps=steps, tau=float(tau), z0=z0
            )
        )

    def add_amd(self, panel, decoder_name, decoder, *, tau, z0, options) -> None:
        """An AMD curve (`amd_curve`) on `amd_grid`; all inf when its start is non-finite."""
        grid = amd_grid(tau)
        label = f"{panel} | {decoder_name} decoder, AMD, tau {tau:g}, z0 {z0}"
        try:
            frame = amd_curve(decoder, self.x, self.z_start(z0), tau=tau, loss=self.loss, options=options, grid=grid)
            self.log.info(
                "%s: final loss %.5f (mean NFE %.1f)", label, frame["loss_mean"].iloc[-1], frame["nfe_mean"].iloc[-1]
            )
        except FlowDivergedError as error:  # AMD rejects non-finite steps; only its start can fail
            self.log.warning(
                "%s: DIVERGED (%s); all %d points are written with loss_mean = inf", label, error, len(grid)
            )
            frame = pd.DataFrame({"t": grid, "nfe_mean": np.nan, "loss_mean": np.inf, "loss_std": np.nan})
        self.frames.append(
            frame.assign(
                panel=panel, decoder_model=decoder_name, solver="amd", order=1, steps=pd.NA, tau=float(tau), z0=z0
            )
        )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prepared", required=True, help="prepared dataset file (prepare_data.py)")
    p.add_argument("--dataset", required=True, help="the dataset's name: a column of the output")
    p.add_argument("--latent-dim", type=int, required=True, help="the latent size d of the decoders")
    p.add_argument("--loss", required=True, choices=["bce", "mse"], help="the encoding loss")
    p.add_argument(
        "--own",
        action="append",
        default=[],
        metavar="MODEL=MODEL_FILE",
        help="a model encoded by its own flow on its own decoder (repeatable)",
    )
    p.add_argument(
        "--own-encode-options",
        default="{}",
        metavar="JSON",
        help="JSON: {model: its encode options, as gfe.encode takes them} for every --own model",
    )
    p.add_argument(
        "--amd-encode-options",
        metavar="JSON",
        help="JSON: encode options of an AMD model, whose solver options the common-decoder AMD curve takes",
    )
    p.add_argument("--common", required=True, metavar="MODEL_FILE", help="the decoder of the 'common decoder' panel")
    p.add_argument("--common-model", required=True, metavar="NAME", help="the model name of --common")
    p.add_argument("--n-images", type=int, required=True, help="the first N test images")
    p.add_argument("--tau", type=float, required=True, help="tau of the common-decoder rk4 step-count curves")
    p.add_argument("--steps", type=int, required=True, help="rk4 steps of the common-decoder curves")
    p.add_argument("--coarse-steps", type=int, nargs="*", default=[], help="coarser first-order rk4 curves at --tau")
    p.add_argument(
        "--tau-sweep",
        type=float,
        nargs="*",
        default=[],
        help="taus of the common-decoder rk4 curves, order 1 and 2, with --steps",
    )
    p.add_argument("--z0", default="zeros", choices=["zeros", "uniform"], help="z(0) of the common-decoder curves")
    p.add_argument("--seed", type=int, default=0, help="seed of a uniform z(0)")
    p.add_argument("--output", required=True, help="the curves (CSV)")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    return p


def checked_encode_options(p: argparse.ArgumentParser, a: argparse.Namespace):
    """The --own models, their encode options and the AMD encode options (None: absent);
    an option that does not fit ends the run through p.error."""
    own_encode_options = json.loads(a.own_encode_options)
    try:
        own = parse_own(a.own)
    except ValueError as error:
        p.error(str(error))
    for name, _ in own:
        if name not in own_encode_options:
            p.error(f"--own {name}: no entry for {name} in --own-encode-options ({sorted(own_encode_options)})")
        if own_encode_options[name].get("solver") not in ("rk4", "amd"):
            p.error(f"--own {name}: solver {own_encode_options[name].get('solver')!r} is not 'rk4' or 'amd'")
    amd_encode_options = json.loads(a.amd_encode_options) if a.amd_encode_options is not None else None
    if amd_encode_options is not None and amd_encode_options.get("solver") != "amd":
        p.error(f"--amd-encode-options: solver {amd_encode_options.get('solver')!r} is not 'amd'")
    return own, own_encode_options, amd_encode_options


def add_own_panel(curves: Curves, own: list[tuple[str, str]], own_encode_options: dict) -> None:
    """Panel 'own decoder': each model's own flow on its own decoder."""
    for name, path in own:
        saved = io.read_model(path)
        decoder, saved_name = saved.decoder, saved.name
        if saved_name not in (None, name):
            curves.log.warning("--own %s=%s: the file says it holds model %r", name, path, saved_name)
        options = own_encode_options[name]
        if options["solver"] == "rk4":
            curves.add_rk4(OWN, name, decoder, **rk4_settings(name, options))
        else:
            curves.add_amd(OWN, name, decoder, **amd_settings(options))


def add_common_panel(curves: Curves, a: argparse.Namespace, amd_encode_options: dict | None) -> None:
    """Panel 'common decoder': step counts, tau sweep and orders, AMD, all from --z0."""
    saved = io.read_model(a.common)
    decoder, saved_name = saved.decoder, saved.name
    if saved_name not in (None, a.common_model):
        curves.log.warning("--common %s: the file says it holds model %r, not %r", a.common, saved_name, a.common_model)
    specs = [(1, a.steps, a.tau)] + [(1, s, a.tau) for s in a.coarse_steps]
    specs += [(order, a.steps, tau) for tau in a.tau_sweep for order in (1, 2)]
    done = set()
    for order, steps, tau in specs:
        if (order, steps, float(tau)) in done:
            continue  # the same curve is asked for twice (e.g. --tau is in --tau-sweep)
        done.add((order, steps, float(tau)))
        curves.add_rk4(COMMON, a.common_model, decoder, order=order, tau=float(tau), steps=steps, z0=a.z0)
    if amd_encode_options is not None:
        amd = amd_settings(amd_encode_options)
        curves.log.info("AMD options of the common-decoder curve: %s", amd["options"])
        curves.add_amd(COMMON, a.common_model, decoder, tau=a.tau, z0=a.z0, options=amd["options"])
    else:
        curves.log.info("no --amd-encode-options: no AMD curve on the common decoder")


def write_table(curves: Curves, dataset: str, output: str) -> None:
    """The curves as one CSV (COLUMNS), a row per (curve, time point)."""
    table = pd.concat(curves.frames, ignore_index=True).assign(dataset=dataset, n_images=len(curves.x))
    table["steps"] = table["steps"].astype("Int64")
    table["order"] = table["order"].astype(int)
    io.write_csv(table[COLUMNS], output)
    curves.log.info(
        "%d curves, %d rows -> %s",
        table.groupby(["panel", "decoder_model", "solver", "order", "steps", "tau", "z0"], dropna=False).ngroups,
        len(table),
        output,
    )


def main(argv=None) -> int:
    p = build_parser()
    a = p.parse_args(argv)
    log = common.setup(a.threads)
    own, own_encode_options, amd_encode_options = checked_encode_options(p, a)
    prepared = io.load_prepared(a.prepared)
    x = prepared["test_images"][: a.n_images]
    if len(x) < a.n_images:
        log.warning("only %d test images in %s (asked for %d)", len(x), a.prepared, a.n_images)
    curves = Curves(x, a.latent_dim, a.loss, a.seed, log)
    add_own_panel(curves, own, own_encode_options)
    add_common_panel(curves, a, amd_encode_options)
    write_table(curves, a.dataset, a.output)
    return 0


if __name__ == "__main__":
    sys.exit(common.run(main))
