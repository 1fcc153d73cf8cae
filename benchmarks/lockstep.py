"""Lockstep training vs one run at a time: runs x steps per second, measured in one process.
Not a test.

    python benchmarks/lockstep.py --model MODEL.pt --model-note "GFE-amd, N=1000, step 1000"

Trains `--runs` GFE-amd runs (the gfe_amd settings: the authors' shared AMD rule, batch 5,
z0 uniform, tau 1e4, RMSprop) for `--steps` steps each on the first `--n-images` training
images of the prepared data, twice: one run after another with `gfe.training.train`, then all
together with `gfe.lockstep.train_lockstep`, and checks that every per-step loss is equal.
Two starting points: fresh decoders (seeds 0..runs-1; cheap early steps) and, with `--model`,
copies of a trained decoder (a GFE-amd step costs more as the decoder learns: late training
is where the time goes). It also times one decoder forward+backward w.r.t. z for 5 rows and
the stacked pass of `--runs` decoders (5 rows each), the part lockstep can share.

Writes `--out` (CSV, one row per case and mode) and prints it. One torch thread.
"""

from __future__ import annotations

import argparse
import copy
import time

import pandas as pd
import torch

from gfe import io
from gfe.flows import GradientFlow
from gfe.lockstep import LockstepFlow, LockstepRun, StackedDecoders, train_lockstep
from gfe.losses import bce_with_logits
from gfe.models import build_decoder
from gfe.training import train

ENCODE = dict(
    solver="amd",
    order=1,
    tau=1e4,
    z0="uniform",
    loss="bce",
    dt_init=1.0,
    dt_max=10.0,
    shrink=0.5,
    sigma=1e-5,
    conv_fraction=0.98,
    conv_tol=1e-5,
    max_halvings=15,
    shared=True,
)


def one_by_one(decoders, images, steps):
    started = time.perf_counter()
    runs = [train(d, images, steps=steps, batch_size=5, seed=s, encode_options=ENCODE) for s, d in enumerate(decoders)]
    return runs, time.perf_counter() - started


def together(decoders, images, steps):
    started = time.perf_counter()
    specs = [LockstepRun(d, images, s) for s, d in enumerate(decoders)]
    return train_lockstep(specs, steps=steps, batch_size=5, encode_options=ENCODE), time.perf_counter() - started


def pass_us(fn, repeats=300) -> float:
    fn()
    started = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - started) / repeats * 1e6


def pass_rows(decoder, runs: int) -> list[dict]:
    x = torch.rand(5 * runs, 1, 28, 28)
    z = torch.rand(5 * runs, 20)
    single = GradientFlow(decoder, x[:5], bce_with_logits)
    stacked = LockstepFlow(StackedDecoders([copy.deepcopy(decoder) for _ in range(runs)]), x, bce_with_logits, 5)
    with torch.no_grad():
        one = pass_us(lambda: single.loss_and_velocity(z[:5]))
        many = pass_us(lambda: stacked.loss_and_velocity(z))
    note = "decoder forward+backward w.r.t. z, 5 rows per run"
    return [
        dict(case="decoder pass", mode="one by one", runs=runs, us_per_pass=runs * one, notes=note),
        dict(case="decoder pass", mode="lockstep", runs=runs, us_per_pass=many, ratio=runs * one / many, notes=note),
    ]


def case_rows(name, decoders, images, steps, note) -> list[dict]:
    alone, alone_s = one_by_one([copy.deepcopy(d) for d in decoders], images, steps)
    grouped, grouped_s = together([copy.deepcopy(d) for d in decoders], images, steps)
    equal = all(
        [r["loss"] for r in a.steps] == [r["loss"] for r in g.steps] for a, g in zip(alone, grouped, strict=True)
    )
    nfe = sum(r["nfe"] for run in alone for r in run.steps) / (len(alone) * steps)
    base = dict(case=name, runs=len(decoders), steps=steps, nfe_per_step=nfe, notes=note)
    return [
        dict(base, mode="one by one", seconds=alone_s, run_steps_per_s=len(decoders) * steps / alone_s),
        dict(
            base,
            mode="lockstep",
            seconds=grouped_s,
            run_steps_per_s=len(decoders) * steps / grouped_s,
            ratio=alone_s / grouped_s,
            losses_equal=equal,
        ),
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prepared", default="data/prepared/default/fashion_mnist.pt")
    p.add_argument("--model", help="a trained GFE model file (the late-training case)")
    p.add_argument("--model-note", default="", help="what --model is (written to the CSV)")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--n-images", type=int, default=1000)
    p.add_argument("--out", default="results/benchmarks/lockstep.csv")
    a = p.parse_args()
    torch.set_num_threads(1)
    prepared = io.load_prepared(a.prepared)
    images = prepared["train_images"][: a.n_images]
    fresh = []
    for seed in range(a.runs):
        torch.manual_seed(seed)
        fresh.append(build_decoder(prepared["image_shape"], 20))
    rows = pass_rows(fresh[0], a.runs)
    rows += case_rows("fresh decoders", fresh, images, a.steps, "seeds 0..runs-1, steps 1..steps")
    if a.model:
        trained = io.load_model(a.model)[0]
        rows += case_rows("trained decoder", [trained] * a.runs, images, a.steps, a.model_note or a.model)
    table = pd.DataFrame(rows)
    table.insert(0, "torch", torch.__version__)
    io.write_csv(table, a.out)
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
