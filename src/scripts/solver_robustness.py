"""E5, robustness: final encoding loss and NFE of AMD over its step settings and of
first-order rk4 over its step counts, on several trained decoders, same images and z0.

For each --decoder (a model file, e.g. the AMD-trained E2 decoder and the rk4-trained E3
decoder, of several seeds) the first --n-images test images are encoded from the same z(0) (--z0, --seed) to
--tau:
  * by AMD (the per-sample rule of --amd-encode-options) at every (dt_init, dt_max) of
    --dt-init x --dt-max with dt_max >= dt_init (AMD refuses the others); the configured
    setting is marked `configured`;
  * by first-order rk4 at every count of --rk4-steps, and at the count whose NFE per image
    (4 per step) is nearest the configured AMD setting's mean NFE (marked `nfe_matched`).
A fixed-step flow that turns non-finite is `diverged` (loss_mean = inf): kept as a row,
never dropped. Each row says how the flow ended: the mean time reached (`t_mean`), the
fractions of images that reached tau, stopped on the solver's own convergence test (AMD's
loss-slope tolerance) or on neither (an evaluation cap), and `stop_reason`: 'tau',
'convergence test', 'evaluation cap' or 'diverged' when every image ended so, else 'mixed'.
Each row carries the images' own loss floor (mean per-pixel Bernoulli entropy, for BCE; 0 for
MSE) and the excess loss over it.
"""

from __future__ import annotations

import argparse
import json
import math
import sys

import pandas as pd

import gfe
from gfe import io
from gfe.losses import bernoulli_entropy_floor
from gfe.solvers import FlowDivergedError
from pipeline import common

COLUMNS = [
    "dataset",
    "decoder_model",
    "decoder_experiment",
    "decoder_seed",
    "solver",
    "dt_init",
    "dt_max",
    "steps",
    "configured",
    "nfe_matched",
    "tau",
    "z0",
    "n_images",
    "nfe_mean",
    "loss_mean",
    "floor_mean",
    "excess_mean",
    "diverged",
    "stop_reason",
    "t_mean",
    "reached_tau_frac",
    "converged_frac",
    "capped_frac",
    "seconds",
]
ENDINGS = {"reached_tau_frac": "tau", "converged_frac": "convergence test", "capped_frac": "evaluation cap"}
NON_SOLVER_KEYS = ("solver", "order", "tau", "z0", "loss")


def parse_decoder(value: str) -> tuple[str, str, int, str]:
    """MODEL:EXPERIMENT:SEED=MODEL_FILE -> (model, experiment, seed, path)."""
    label, sep, path = value.partition("=")
    parts = label.split(":")
    if not (sep and path and len(parts) == 3 and all(parts) and parts[2].isdigit()):
        raise ValueError(f"--decoder {value!r} is invalid: expected MODEL:EXPERIMENT:SEED=MODEL_FILE (SEED an integer)")
    model, experiment, seed = parts
    return model, experiment, int(seed), path


def endings(t, converged, tau: float) -> dict:
    """How a batch's flows ended, from the solver's per-image time reached t (B,) and
    convergence flags (B,): t_mean and the fractions of `ENDINGS`, with `stop_reason` the one
    ending every image shares ('mixed' otherwise). An image that reached tau counts as such
    whatever its flag says (a fixed-step solver's flag only says its last step changed little)."""
    t, converged = t.double(), converged.bool()
    reached = t >= tau * (1 - 1e-9)
    fractions = {
        "reached_tau_frac": float(reached.double().mean()),
        "converged_frac": float((converged & ~reached).double().mean()),
        "capped_frac": float((~reached & ~converged).double().mean()),
    }
    whole = [ENDINGS[k] for k, v in fractions.items() if v == 1.0]
    return {"t_mean": float(t.mean()), **fractions, "stop_reason": whole[0] if whole else "mixed"}


def encode_final(decoder, x, z0, loss, tau, **options) -> dict:
    """Mean final loss and NFE per image and how the flows ended (`endings`); loss inf and
    stop_reason 'diverged' when the flow turns non-finite."""
    try:
        out = gfe.encode(decoder, x, z0=z0, loss=loss, tau=tau, **options)
    except FlowDivergedError:
        return {
            "nfe_mean": math.nan,
            "loss_mean": math.inf,
            "diverged": True,
            "stop_reason": "diverged",
            "seconds": math.nan,
        }
    value = float(out.loss.double().mean())
    finite = math.isfinite(value)
    ended = endings(out.t, out.converged, tau) if finite else {"stop_reason": "diverged"}
    return {
        "nfe_mean": float(out.nfe.double().mean()),
        "loss_mean": value if finite else math.inf,
        "diverged": not finite,
        **ended,
        "seconds": out.seconds,
    }


def sweep(decoder, x, z0, *, loss, tau, amd_options, dt_inits, dt_maxes, rk4_steps, log) -> list[dict]:
    """The rows of one decoder: AMD over its settings, then rk4 over its step counts."""
    rows = []
    configured = (float(amd_options["dt_init"]), float(amd_options["dt_max"]))
    settings = sorted({(float(i), float(m)) for i in dt_inits for m in dt_maxes if m >= i} | {configured})
    for dt_init, dt_max in settings:
        options = dict(amd_options, dt_init=dt_init, dt_max=dt_max)
        result = encode_final(decoder, x, z0, loss, solver="amd", tau=tau, **options)
        rows.append(
            dict(solver="amd", dt_init=dt_init, dt_max=dt_max, configured=(dt_init, dt_max) == configured, **result)
        )
        log.info(
            "AMD dt_init %g dt_max %g: loss %.5f, NFE %.1f, ended: %s",
            dt_init,
            dt_max,
            result["loss_mean"],
            result["nfe_mean"],
            result["stop_reason"],
        )
    amd_nfe = next(r["nfe_mean"] for r in rows if r["configured"])
    matched = max(1, round(amd_nfe / 4)) if math.isfinite(amd_nfe) else None
    for steps in sorted(set(rk4_steps) | ({matched} if matched else set())):
        result = encode_final(decoder, x, z0, loss, solver="rk4", order=1, tau=tau, steps=int(steps))
        rows.append(dict(solver="rk4", steps=int(steps), nfe_matched=steps == matched, **result))
        state = "DIVERGED" if result["diverged"] else f"loss {result['loss_mean']:.5f}"
        log.info("rk4 %d steps (NFE %d): %s", steps, 4 * steps, state)
    return rows


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prepared", required=True, help="prepared dataset file (prepare_data.py)")
    p.add_argument("--dataset", required=True, help="the dataset's name: a column of the output")
    p.add_argument("--loss", required=True, choices=["bce", "mse"], help="the encoding loss")
    p.add_argument(
        "--decoder",
        action="append",
        required=True,
        metavar="MODEL:EXPERIMENT:SEED=MODEL_FILE",
        help="a decoder: its model, the experiment and seed of its run (repeatable)",
    )
    p.add_argument(
        "--amd-encode-options",
        required=True,
        metavar="JSON",
        help="JSON: an AMD model's encode options; its solver options are the configured setting",
    )
    p.add_argument("--dt-init", type=float, nargs="+", required=True, help="AMD dt_init values")
    p.add_argument("--dt-max", type=float, nargs="+", required=True, help="AMD dt_max values")
    p.add_argument("--rk4-steps", type=int, nargs="+", required=True, help="rk4 step counts")
    p.add_argument("--tau", type=float, required=True, help="the integration time of every flow")
    p.add_argument("--z0", default="zeros", choices=["zeros", "uniform"], help="z(0) of every flow")
    p.add_argument("--seed", type=int, default=0, help="seed of a uniform z(0)")
    p.add_argument("--n-images", type=int, required=True, help="the first N test images")
    p.add_argument("--output", required=True, help="the table (CSV)")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    return p


def checked_options(p: argparse.ArgumentParser, a: argparse.Namespace):
    """The parsed --decoder values and the configured AMD solver options; an option that does
    not fit ends the run through p.error."""
    try:
        decoders = [parse_decoder(value) for value in a.decoder]
    except ValueError as error:
        p.error(str(error))
    amd_encode_options = json.loads(a.amd_encode_options)
    if amd_encode_options.get("solver") != "amd":
        p.error(f"--amd-encode-options: solver {amd_encode_options.get('solver')!r} is not 'amd'")
    amd_options = {k: v for k, v in amd_encode_options.items() if k not in NON_SOLVER_KEYS}
    if min(a.rk4_steps) < 1:
        p.error(f"--rk4-steps {a.rk4_steps}: step counts must be >= 1")
    return decoders, amd_options


def sweep_decoder(a: argparse.Namespace, x, model, experiment, seed, path, amd_options, log) -> list[dict]:
    """The rows of one --decoder (`sweep`), labelled with its model, experiment and seed."""
    decoder = io.read_model(path).decoder
    z0 = gfe.initial_latents(a.z0, x.shape[0], decoder.latent_dim, seed=a.seed)
    log.info(
        "decoder %s (%s run, seed %d, %s) on %d test images, tau %g, z0 %s",
        model,
        experiment,
        seed,
        path,
        len(x),
        a.tau,
        a.z0,
    )
    found = sweep(
        decoder,
        x,
        z0,
        loss=a.loss,
        tau=a.tau,
        amd_options=amd_options,
        dt_inits=a.dt_init,
        dt_maxes=a.dt_max,
        rk4_steps=a.rk4_steps,
        log=log,
    )
    return [dict(row, decoder_model=model, decoder_experiment=experiment, decoder_seed=seed) for row in found]


def write_table(rows: list[dict], a: argparse.Namespace, n_images: int, floor: float, log) -> None:
    """The rows as one CSV (COLUMNS), with the run's settings and the images' floor."""
    table = pd.DataFrame(rows).assign(dataset=a.dataset, tau=a.tau, z0=a.z0, n_images=n_images, floor_mean=floor)
    table["excess_mean"] = table["loss_mean"] - floor
    table["configured"] = table["configured"].fillna(False).astype(bool)
    table["nfe_matched"] = table["nfe_matched"].fillna(False).astype(bool)
    table["steps"] = table["steps"].astype("Int64")
    io.write_csv(table[COLUMNS], a.output)
    log.info("%d rows -> %s", len(table), a.output)


def main(argv=None) -> int:
    p = build_parser()
    a = p.parse_args(argv)
    decoders, amd_options = checked_options(p, a)
    log = common.setup(a.threads)
    prepared = io.load_prepared(a.prepared)
    x = prepared["test_images"][: a.n_images]
    floor = float(bernoulli_entropy_floor(x).mean()) if a.loss == "bce" else 0.0
    if len({d[:3] for d in decoders}) < len(decoders):
        p.error("--decoder: a MODEL:EXPERIMENT:SEED is given twice")
    rows = []
    for model, experiment, seed, path in decoders:
        rows += sweep_decoder(a, x, model, experiment, seed, path, amd_options, log)
    write_table(rows, a, len(x), floor, log)
    return 0


if __name__ == "__main__":
    sys.exit(common.run(main))
