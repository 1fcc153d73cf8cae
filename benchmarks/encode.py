"""Encoding and training throughput of GFE on Fashion-MNIST (issue #5, and the L-BFGS
issue's targets). Not a test.

    python benchmarks/encode.py --out results/benchmarks/encode.csv

1. Trains (or loads, `--decoder`) a GFE-amd decoder: gfe.training.train with the gfe_amd
   settings (per-sample AMD, z0 uniform, tau 1e4, max_halvings 15, batch 5, RMSprop lr 5e-4
   alpha 0.9 eps 1e-6, seed 2020) for `--decoder-steps` (500) steps, and an autoencoder
   the same way (`--ae`).
2. Measures the floor: one bare decoder forward+backward w.r.t. z per image, per batch size.
3. Encodes the same `--n-images` (1,000) Fashion-MNIST test images with every method from
   the same per-image starting points (U[0,1)^20 drawn once, seed 0) and writes one row per
   method: images/s (wall clock), NFE, seconds per NFE per image, overhead ratio (that
   divided by the floor at the row's batch size, measured again just before the row), losses,
   peak RSS, speedup over the
   `amd_shared` batch-5 row (our implementation of the authors' batch rule).
   Rows: amd_shared (batch 5, the baseline); per-sample amd at 64, 512, 2048 (capped at
   `--n-images`) and refilled; rk4 (100 and 10 steps); the 2nd-order flow; amd with dt_max 50
   and with conv_tol 1e-4; dopri5 (`--dopri5-images` only); the AE encoder; and, beyond the
   papers, the per-sample L-BFGS descent (solver="lbfgs"): `lbfgs` at batch 5, 100 and 512
   with the gfe_lbfgs settings (memory 8, tol 1e-6), `lbfgs_tight` at 512 (tol 1e-8, about
   the float32 resolution of the loss: its tightest setting; grad_tol 1e-5 with tol 0 stopped
   earlier than tol 1e-6 on a briefly trained decoder), and two fast low-NFE rows at 512:
   `lbfgs_tol1e-4` (tol 1e-4) and `lbfgs_evals25` (max_evals 25), for the speed/quality
   trade-off; and the same descent with unlimited memory as dense matrices and its
   bookkeeping in numpy (solver="lbfgs_dense"): `lbfgs_dense` at batch 5, 100 and 512 (tol
   1e-6), `lbfgs_dense_tight` at 512 (tol 1e-8), and `lbfgs_dense_tol1e-4` and
   `lbfgs_dense_tol3e-4` at batch 5 and 512.
4. Training throughput: images/s and training loss after `--train-steps` optimiser steps
   from the same initial decoder for ae and gfe_amd per-sample (the first steps of the runs
   of 1.), and, back to back from the same initial decoder and batches, with process CPU
   time too: gfe_amd per-sample and gfe_amd shared over `--slow-train-steps`; gfe_amd shared
   and gfe_lbfgs (solver="lbfgs", z0 uniform, tau 1e4, memory 8, tol 1e-6, approximate
   gradient) and gfe_lbfgs_dense (solver="lbfgs_dense", tol 1e-6, otherwise the same) over
   `--train-steps` (the shared rows are the first steps of one run); gfe_amd
   per-sample at batch 64 over `--slow-train-steps`. The speedup of a training row is over
   the gfe_amd_shared row with the same number of steps (over the `--slow-train-steps` one
   when there is none). For the gfe_amd_shared, gfe_lbfgs and gfe_lbfgs_dense rows over `--train-steps`,
   `test_loss_mean` is the mean loss of the trained decoder on the first `--test-images`
   (200) Fashion-MNIST test images, encoded the same way for both: per-sample AMD with the
   gfe_amd settings, z0 U[0,1) from seed 0 per image (gfe.evaluation.evaluate); and
   `test_loss_stationary_mean` the same images encoded to a stationary point of the loss from
   the same z0 (lbfgs_dense, tol 0, grad_tol 1e-6): the lowest loss each decoder's own
   descent can reach, which AMD's stop rule falls short of by different amounts on
   different decoders. Their time is not counted in the training rows.
5. Prints the table, the targets of issue #5 (kept as they were) and the targets of the
   L-BFGS issue, and whether each is met. The latter compare with the `amd_shared` batch-5
   row, among the rows that encode the same `--n-images` images with the GFE decoder (not
   the AE encoder, not dopri5's few images):
     1. a row at mean loss <= the baseline's with images/s >= 50x (stretch: 100x);
     2. a row at batch 5 at mean loss <= the baseline's with images/s >= 5x;
     3. a row with mean loss >= 2% below the baseline's at images/s >= 5x;
     4. per-NFE overhead over the bare decoder pass <= 1.3 at batch 5 and <= 1.15 at batch
        512 (the best lbfgs row at each batch);
     5. gfe_lbfgs training at batch 5 >= 5x the images/s of gfe_amd shared at batch 5 over
        the same steps, at a test loss no higher (and the same for gfe_lbfgs_dense).

`--device cuda` puts the decoders, images and latents on the GPU (with `--decoder`/`--ae`,
load the CPU-trained networks, so that both CSVs measure the same decoder) and writes
`results/benchmarks/encode_cuda.csv`: wall clock after `torch.cuda.synchronize`, the GPU's
name, CUDA version and peak memory in the JSON, and two extra floor rows
(`decoder_fwd_bwd_cuda_graph`, batch 5 and 512): the same forward+backward replayed as one
captured CUDA graph, i.e. what a fixed-shape step could cost without per-kernel launches.
The CSV is rewritten after every row, so a run cut short keeps what it measured;
`--only-training-comparison` measures the compared training rows alone (for a device with
little time).

Torch runs with `--threads` (default 1) threads: on a shared 2-core machine a 2-thread
team stalls whenever another process holds a core. Wall-clock rates depend on what else
runs on the machine; the load average before and after is written to the `.json` beside
the CSV, with the CPU model, its ISA flags (avx2, avx512f, avx512_bf16, amx_bf16, amx_tile)
and torch's CPU capability and MKL / oneDNN availability; `cpu_images_per_s` (process CPU
time) is the contention-robust companion. At the default sizes the whole run (the
decoder's training included) took 395 s on an idle 2-core machine before the lbfgs_dense
rows, and 587 s with them on a slower machine of the same kind (its batch-5 decoder pass
1.5x slower): under 10 minutes on one thread, though not by much on a slow machine.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import platform
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import torch

import gfe
from gfe.data import authors_split, load_dataset
from gfe.devices import resolve_device
from gfe.encoding import build_flow
from gfe.evaluation import evaluate
from gfe.io import atomic_torch_save, load_tensors, write_text
from gfe.models import build_autoencoder, build_decoder
from gfe.training import OptimizerSettings, train

GFE_AMD = dict(solver="amd", z0="uniform", tau=1e4, max_halvings=15)  # the gfe_amd settings, Fashion-MNIST
GFE_LBFGS = dict(solver="lbfgs", z0="uniform", tau=1e4, memory=8, tol=1e-6)  # the gfe_lbfgs settings (tau unused)
GFE_LBFGS_DENSE = dict(solver="lbfgs_dense", z0="uniform", tau=1e4, tol=1e-6)  # unlimited memory, dense
STATIONARY = dict(solver="lbfgs_dense", z0="uniform", tau=1e4, tol=0.0, grad_tol=1e-6, max_iters=3000)
OPTIMIZER = OptimizerSettings(name="rmsprop", lr=5e-4, alpha=0.9, eps=1e-6)
SEED = 2020
COLUMNS = [
    "kind",
    "method",
    "batch",
    "n_images",
    "images_per_s",
    "nfe_mean",
    "s_per_nfe_per_image",
    "floor_s_per_image",
    "overhead_ratio",
    "loss_mean",
    "loss_median",
    "converged_frac",
    "peak_rss_mb",
    "speedup",
    "cpu_images_per_s",
    "cpu_s_per_nfe_per_image",
    "cpu_floor_s_per_image",
    "cpu_overhead_ratio",
    "cpu_speedup",
    "seconds",
    "steps",
    "notes",
    "test_loss_mean",
    "test_loss_stationary_mean",
]
ISA_FLAGS = ["avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"]


class PeakRSS:
    """Peak resident memory of this process while the block runs (psutil, polled every 20 ms)."""

    def __enter__(self):
        self.process = psutil.Process()
        self.peak = self.process.memory_info().rss
        self.running = True
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()
        return self

    def _poll(self):
        while self.running:
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.02)

    def __exit__(self, *exc):
        self.running = False
        self.thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)
        self.mb = self.peak / 2**20


def fresh_decoder(shape, seed=SEED):
    torch.manual_seed(seed)
    return build_decoder(shape, 20)


def fresh_autoencoder(shape, seed=SEED):
    torch.manual_seed(seed)
    return build_autoencoder(shape, 20)


FLOOR_ROWS = 40_000  # decoder rows per floor measurement (--floor-rows)
FLOOR_CALLS = 2_000  # at most this many decoder calls per floor measurement (5.8 s -> 1.5 s at batch 5)
DEVICE = torch.device("cpu")  # --device


def synchronize():
    """Wait for the device's queued work, so that a wall-clock reading covers it (CUDA)."""
    if DEVICE.type == "cuda":
        torch.cuda.synchronize(DEVICE)


def bare_floor(decoder, images, batch, repeats_rows=None):
    """Seconds per image of one decoder forward+backward w.r.t. z at this batch size."""
    x = images[:batch]
    flow = build_flow(decoder, x)
    z = torch.rand(x.shape[0], 20, generator=torch.Generator().manual_seed(1)).to(DEVICE)
    repeats = max(20, min(FLOOR_CALLS, (repeats_rows or FLOOR_ROWS) // x.shape[0]))
    with torch.no_grad():
        for _ in range(3):
            flow.loss_and_velocity(z)
        times, cpu_times = [], []
        for _ in range(5):  # the median of 5 blocks, against the noise of a shared machine
            synchronize()
            started, cpu = time.perf_counter(), time.process_time()
            for _ in range(repeats // 5):
                flow.loss_and_velocity(z)
            synchronize()
            times.append((time.perf_counter() - started) / (repeats // 5) / x.shape[0])
            cpu_times.append((time.process_time() - cpu) / (repeats // 5) / x.shape[0])
    return sorted(times)[2], sorted(cpu_times)[2]


def cuda_graph_floor(decoder, images, batch):
    """Seconds per image of the same forward+backward w.r.t. z replayed as one captured CUDA
    graph: what a fixed-shape flow step could cost without the per-kernel launch overhead."""
    x = images[:batch]
    flow = build_flow(decoder, x)
    z = torch.rand(x.shape[0], 20, generator=torch.Generator().manual_seed(1)).to(DEVICE)
    repeats = max(20, FLOOR_ROWS // x.shape[0])
    with torch.no_grad():
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up on a side stream, as capture requires
            for _ in range(3):
                flow.loss_and_velocity(z)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            flow.loss_and_velocity(z)
        times = []
        for _ in range(5):
            synchronize()
            started = time.perf_counter()
            for _ in range(repeats // 5):
                graph.replay()
            synchronize()
            times.append((time.perf_counter() - started) / (repeats // 5) / x.shape[0])
    return sorted(times)[2]


def encode_row(name, decoder, images, z0, batch, options, notes="", encoder=None):
    """Encode `images` in batches of `batch` from the per-image starting points `z0`."""
    n = len(images)
    losses, nfes, converged = [], [], []
    with PeakRSS() as rss:
        wall, cpu = time.perf_counter(), time.process_time()
        for start in range(0, n, batch):
            x = images[start : start + batch]
            if encoder is not None:
                with torch.no_grad():
                    loss = decoder_loss(decoder, encoder(x), x)
                losses.append(loss)
                nfes.append(torch.zeros_like(loss))
                converged.append(torch.ones_like(loss))
                continue
            out = gfe.encode(decoder, x, **{**options, "z0": z0[start : start + batch]})
            losses.append(out.loss)
            nfes.append(out.nfe)
            converged.append(out.converged)
        synchronize()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    loss = torch.cat(losses).double()
    nfe = torch.cat(nfes).double()
    return {
        "kind": "encode",
        "method": name,
        "batch": batch,
        "n_images": n,
        "images_per_s": n / wall,
        "cpu_images_per_s": n / cpu,
        "seconds": wall,
        "nfe_mean": float(nfe.mean()),
        "s_per_nfe_per_image": wall / float(nfe.sum()) if float(nfe.sum()) else None,
        "cpu_s_per_nfe_per_image": cpu / float(nfe.sum()) if float(nfe.sum()) else None,
        "loss_mean": float(loss.mean()),
        "loss_median": float(loss.median()),
        "converged_frac": float(torch.cat(converged).double().mean()),
        "peak_rss_mb": rss.mb,
        "notes": notes,
    }


def decoder_loss(decoder, z, x):
    return torch.nn.functional.binary_cross_entropy_with_logits(decoder(z), x, reduction="none").flatten(1).mean(1)


def train_row(name, run, batch, steps, notes=""):
    rows = run.steps[:steps]
    seconds = sum(r["seconds"] for r in rows)
    last = rows[-10:]
    return {
        "kind": "train",
        "method": name,
        "batch": batch,
        "n_images": batch * len(rows),
        "images_per_s": batch * len(rows) / seconds,
        "seconds": seconds,
        "nfe_mean": sum(r["nfe"] for r in rows) / len(rows),
        "loss_mean": sum(r["loss"] for r in last) / len(last),
        "steps": len(rows),
        "notes": f"loss_mean = mean training loss of steps {rows[-len(last)]['step']}-{rows[-1]['step']}; {notes}",
    }


def test_loss(decoder, images):
    """Mean loss of `decoder` on `images` encoded by per-sample AMD with the gfe_amd settings,
    z0 U[0,1) from seed 0 per image: the same measurement for every trained decoder; its mean
    NFE; and the mean loss at stationary points reached from the same z0 (`STATIONARY`)."""
    summary = evaluate(decoder, images, encode_options=GFE_AMD, batch_size=len(images), seed=0).summary()
    stationary = evaluate(decoder, images, encode_options=STATIONARY, batch_size=len(images), seed=0).summary()
    return summary["loss_mean"], summary["nfe_mean"], stationary["loss_mean"]


def timed_train(name, shape, train_images, batch, options, row_steps, notes, test_images=None, test_at=None):
    """Train a fresh decoder (same init and seed) for max(row_steps) steps; one row per entry of
    `row_steps` over the first that many steps, with process CPU time; with `test_images`, the
    row over `test_at` steps gets the test loss of the decoder at that step (not timed)."""
    decoder = fresh_decoder(shape).to(DEVICE)
    cpu_marks, tested, outside = {}, {}, [0.0]

    def log(step_row):
        cpu_marks[step_row["step"]] = time.process_time() - outside[0]
        if test_images is not None and step_row["step"] == test_at:
            started = time.process_time()
            tested["loss"], tested["nfe"], tested["stationary"] = test_loss(decoder, test_images)
            outside[0] += time.process_time() - started

    cpu = time.process_time()
    run = train(
        decoder,
        train_images,
        steps=max(row_steps),
        batch_size=batch,
        seed=SEED,
        encode_options=options,
        optimizer=OPTIMIZER,
        log=log,
    )
    rows = []
    for steps in row_steps:
        row = train_row(name, run, batch, steps, notes + "; same init and seed")
        row["cpu_images_per_s"] = row["n_images"] / (cpu_marks[steps] - cpu)
        if steps == test_at and tested:
            row["test_loss_mean"] = tested["loss"]
            row["test_loss_stationary_mean"] = tested["stationary"]
            row["notes"] += (
                f"; test_loss_mean: {len(test_images)} test images encoded by per-sample AMD "
                f"(gfe_amd settings, z0 seed 0), NFE {tested['nfe']:.1f}; test_loss_stationary_mean: the same "
                "images encoded to a stationary point (lbfgs_dense, grad_tol 1e-6)"
            )
        rows.append(row)
    return rows


def comparison_training_rows(shape, train_images, tests, steps, slow, rows, out):
    """The training rows compared with each other, back to back from the same initial weights
    and batches, with process CPU time too (the CSV rewritten after each): gfe_amd shared over
    `slow` and `steps` steps, gfe_lbfgs and gfe_lbfgs_dense over `steps` (with the test loss of the
    decoder after `steps` on `tests`), then per-sample gfe_amd at batch 5 and 64 over `slow`."""
    plan = [
        ("gfe_amd_shared", 5, dict(GFE_AMD, shared=True), sorted({slow, steps}), "the authors' batch rule", tests),
        (
            "gfe_lbfgs",
            5,
            GFE_LBFGS,
            [steps],
            "beyond the papers: per-sample L-BFGS encoder (memory 8, tol 1e-6, z0 uniform), approximate gradient",
            tests,
        ),
        (
            "gfe_lbfgs_dense",
            5,
            GFE_LBFGS_DENSE,
            [steps],
            "beyond the papers: L-BFGS encoder with unlimited memory as dense matrices (tol 1e-6, z0 uniform), "
            "approximate gradient",
            tests,
        ),
        ("gfe_amd", 5, GFE_AMD, [slow], "per-sample AMD", None),
        (
            "gfe_amd",
            64,
            GFE_AMD,
            [slow],
            "per-sample AMD at batch 64 (a sample's encoding does not depend on its batch; the "
            "optimiser sees bigger batches, so the loss is not comparable)",
            None,
        ),
    ]
    measured = []
    for name, batch, options, row_steps, notes, test_images in plan:
        measured += timed_train(name, shape, train_images, batch, options, row_steps, notes, test_images, steps)
        write_rows(rows + measured, out)
    return measured


def cpu_info():
    """CPU model and ISA flags (/proc/cpuinfo), torch's CPU capability and MKL / oneDNN."""
    model, flags = None, set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model is None:
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:  # not Linux: provenance only
        pass
    get_capability = getattr(torch.backends.cpu, "get_cpu_capability", None)
    return {
        "cpu_model": model or platform.processor() or None,
        "cpu_flags": {flag: flag in flags for flag in ISA_FLAGS} if flags else None,
        "torch_cpu_capability": get_capability() if get_capability else None,
        "torch_mkl": torch.backends.mkl.is_available(),
        "torch_mkldnn": torch.backends.mkldnn.is_available(),
    }


def device_info():
    """The torch device of the run; for CUDA the GPU's name, CUDA version and peak memory."""
    info = {"device": str(DEVICE)}
    if DEVICE.type == "cuda":
        info.update(
            gpu=torch.cuda.get_device_name(DEVICE),
            cuda=torch.version.cuda,
            gpu_peak_memory_mb=torch.cuda.max_memory_allocated(DEVICE) / 2**20,
        )
    return info


def write_rows(rows, out):
    """The CSV of the rows so far (rewritten after each row, so a run cut short keeps them)."""
    table = io.StringIO(newline="")
    writer = csv.DictWriter(table, fieldnames=COLUMNS)
    writer.writeheader()
    for r in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    write_text(table.getvalue(), out)


def git_commit():
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    except Exception:  # noqa: BLE001 - provenance only
        return "unknown"


@dataclass
class Setup:
    """What the steps of a run share: its options, its CSV, the images, and the clock and load
    average at its start (for the JSON)."""

    args: argparse.Namespace
    argv: list[str] | None
    out: Path
    shape: tuple
    train_images: torch.Tensor
    test_images: torch.Tensor
    began: float
    load_before: tuple


def main(argv=None):
    """The steps of the module's docstring: 1. the decoders, 2. the floor, 3. the encoding rows,
    4. the training rows, 5. the CSV, the JSON, the table and the targets."""
    setup = start(argv)
    args = setup.args
    if args.only_training_comparison:
        compare_training_only(setup)
        return
    decoder, gfe_run, decoder_source = gfe_amd_decoder(setup)
    ae, ae_run = autoencoder(setup)
    for module in (decoder, ae):
        module.requires_grad_(False)
    big = min(512, args.n_images)  # the "large batch" of the rows, capped at the images encoded
    floors = measure_floors(decoder, setup.test_images, args.n_images, args.dopri5_images)
    rows = floor_rows(floors)
    if DEVICE.type == "cuda":
        rows += cuda_graph_floor_rows(decoder, setup.test_images, big, floors)
    write_rows(rows, setup.out)
    add_encoding_rows(rows, decoder, ae, setup)
    add_training_rows(rows, setup, ae_run, gfe_run)
    base = add_derived_encoding_columns(rows, floors, big, args.n_images)
    shared_train = {r["steps"]: r for r in rows if r["method"] == "gfe_amd_shared"}
    add_training_speedups(rows, shared_train, args.slow_train_steps)
    meta = finish(rows, setup, decoder=decoder_source)
    print_table(rows)
    print_targets(rows, base, shared_train[args.slow_train_steps], big)
    print_lbfgs_targets(rows, base, shared_train.get(args.train_steps), big)
    print(
        f"total {meta['total_seconds']:.0f} s; load average before {setup.load_before}, after {meta['loadavg_after']}"
    )


def parse_arguments(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", help="the CSV (default results/benchmarks/encode.csv, encode_cuda.csv with --device cuda)"
    )
    parser.add_argument(
        "--device",
        default="cpu",
        help="cpu (default), cuda or cuda:N: where decoders, images and latents live; the decoders are "
        "trained there too unless --decoder/--ae load them",
    )
    parser.add_argument("--data", default="data")
    parser.add_argument("--decoder", help="a GFE-amd decoder state_dict to load; trained (and saved here) if missing")
    parser.add_argument("--ae", help="an autoencoder state_dict to load; trained (and saved here) if missing")
    parser.add_argument("--decoder-steps", type=int, default=500)
    parser.add_argument("--train-steps", type=int, default=100, help="steps of the training-throughput rows")
    parser.add_argument(
        "--slow-train-steps",
        type=int,
        default=20,
        help="steps of the gfe_amd per-sample, shared and batch-64 training rows (the slow ones); "
        "the shared run goes on to --train-steps for a second row",
    )
    parser.add_argument("--n-images", type=int, default=1000)
    parser.add_argument(
        "--dopri5-images",
        type=int,
        default=5,
        help="images for the dopri5 row (about 4e4 NFE per image: 0.1 images/s; 0: no dopri5 row)",
    )
    parser.add_argument(
        "--test-images",
        type=int,
        default=200,
        help="test images of the test loss of the gfe_amd_shared and gfe_lbfgs training rows",
    )
    parser.add_argument(
        "--floor-rows",
        type=int,
        default=FLOOR_ROWS,
        help="decoder rows per floor measurement (lower it for a toy run only)",
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--only-training-comparison",
        action="store_true",
        help="measure only the compared training rows (gfe_amd shared, gfe_lbfgs, per-sample gfe_amd at batch 5 "
        "and 64; no decoders, floors or encoding rows): for a device with little time",
    )
    return parser.parse_args(argv)


def start(argv):
    """Parse the options, set the device, floor size and threads they name, and load the images."""
    global FLOOR_ROWS, DEVICE
    args = parse_arguments(argv)
    FLOOR_ROWS = args.floor_rows
    DEVICE = resolve_device(args.device)
    out = Path(
        args.out or ("results/benchmarks/encode.csv" if DEVICE.type == "cpu" else "results/benchmarks/encode_cuda.csv")
    )
    torch.set_num_threads(args.threads)
    began = time.perf_counter()
    load_before = os.getloadavg()
    data = load_dataset("fashion_mnist", args.data)
    train_idx, _ = authors_split()
    return Setup(
        args=args,
        argv=argv,
        out=out,
        shape=data.image_shape,
        train_images=data.train_images[train_idx].to(DEVICE),
        test_images=data.test_images.to(DEVICE),
        began=began,
        load_before=load_before,
    )


def compare_training_only(setup):
    """--only-training-comparison: the compared training rows alone, their table and target."""
    args = setup.args
    tests = setup.test_images[: args.test_images]
    rows = comparison_training_rows(
        setup.shape, setup.train_images, tests, args.train_steps, args.slow_train_steps, [], setup.out
    )
    shared_train = {r["steps"]: r for r in rows if r["method"] == "gfe_amd_shared"}
    add_training_speedups(rows, shared_train, args.slow_train_steps)
    finish(rows, setup, decoder="none: the compared rows train fresh decoders")
    print_table(rows)
    print_lbfgs_training_target(rows, shared_train.get(args.train_steps))


def gfe_amd_decoder(setup):
    """1. The GFE-amd decoder: loaded from --decoder, else trained with the gfe_amd settings for
    --decoder-steps steps (and saved to --decoder when given). Returns it, its training run
    (None when loaded) and where it came from, for the JSON."""
    args = setup.args
    decoder = fresh_decoder(setup.shape)
    if args.decoder and Path(args.decoder).exists():
        decoder.load_state_dict(load_tensors(args.decoder))
        decoder.to(DEVICE)
        print(f"loaded decoder {args.decoder}")
        return decoder, None, args.decoder
    decoder.to(DEVICE)
    started = time.perf_counter()
    run = train(
        decoder,
        setup.train_images,
        steps=args.decoder_steps,
        batch_size=5,
        seed=SEED,
        encode_options=GFE_AMD,
        optimizer=OPTIMIZER,
    )
    print(
        f"trained the GFE-amd decoder: {args.decoder_steps} steps in {time.perf_counter() - started:.0f} s, "
        f"last-10 training loss {sum(r['loss'] for r in run.steps[-10:]) / 10:.4f}"
    )
    if args.decoder:
        atomic_torch_save(decoder.state_dict(), args.decoder)
    return decoder, run, f"trained here, {args.decoder_steps} steps"


def autoencoder(setup):
    """1. The autoencoder: loaded from --ae, else trained the same way for the larger of
    --decoder-steps and --train-steps (and saved to --ae when given). Returns it and its
    training run (None when loaded)."""
    args = setup.args
    ae = fresh_autoencoder(setup.shape)
    if args.ae and Path(args.ae).exists():
        ae.load_state_dict(load_tensors(args.ae))
        ae.to(DEVICE)
        return ae, None
    ae.to(DEVICE)
    run = train(
        ae.decoder,
        setup.train_images,
        steps=max(args.decoder_steps, args.train_steps),
        batch_size=5,
        seed=SEED,
        encoder=ae.encoder,
        optimizer=OPTIMIZER,
    )
    if args.ae:
        atomic_torch_save(ae.state_dict(), args.ae)
    return ae, run


def measure_floors(decoder, test_images, n_images, dopri5_images):
    """2. The floor, (wall, CPU) seconds per image of a bare decoder forward+backward w.r.t. z,
    at every batch size the encoding rows use: {batch: (wall, cpu)}."""
    n_dopri = min(dopri5_images, n_images)
    batches = sorted({5, 64, min(100, n_images), min(512, n_images), min(2048, n_images), n_dopri} - {0})
    floors = {b: bare_floor(decoder, test_images, b) for b in batches}
    print("floor (s per image per fwd+bwd):", {b: f"{wall:.2e}" for b, (wall, _) in floors.items()})
    return floors


def floor_rows(floors):
    """The CSV rows of the floors measured by `measure_floors`."""
    return [
        {
            "kind": "floor",
            "method": "decoder_fwd_bwd",
            "batch": b,
            "n_images": b,
            "images_per_s": 1 / wall,
            "cpu_images_per_s": 1 / cpu,
            "s_per_nfe_per_image": wall,
            "cpu_s_per_nfe_per_image": cpu,
            "floor_s_per_image": wall,
            "overhead_ratio": 1.0,
            "cpu_overhead_ratio": 1.0,
            "notes": "one decoder forward+backward w.r.t. z (median of 5 blocks)",
        }
        for b, (wall, cpu) in floors.items()
    ]


def cuda_graph_floor_rows(decoder, test_images, big, floors):
    """2. On CUDA, the floor at batch 5 and `big` replayed as one captured CUDA graph, as rows
    whose overhead ratio is its time over the plain floor's."""
    rows = []
    for b in (5, big):
        seconds = cuda_graph_floor(decoder, test_images, b)
        plain = floors[b][0]
        rows.append(
            {
                "kind": "floor",
                "method": "decoder_fwd_bwd_cuda_graph",
                "batch": b,
                "n_images": b,
                "images_per_s": 1 / seconds,
                "s_per_nfe_per_image": seconds,
                "floor_s_per_image": seconds,
                "overhead_ratio": seconds / plain,
                "notes": "the same forward+backward replayed as one captured CUDA graph (median of 5 blocks); "
                "overhead_ratio here: its time over the plain floor's",
            }
        )
        print(f"  CUDA graph floor at batch {b}: {seconds:.2e} s per image ({seconds / plain:.2f} of the plain)")
    return rows


def encoding_plan(n_images):
    """3. The encoding rows, (method, batch, encode options, notes) each, in the order measured
    (dopri5 and the AE encoder apart)."""
    rk4 = dict(solver="rk4", steps=100, tau=1e4)
    big = min(512, n_images)
    top = min(2048, n_images)
    mid = min(100, n_images)
    lbfgs = {k: v for k, v in GFE_LBFGS.items() if k != "z0"}
    dense = {k: v for k, v in GFE_LBFGS_DENSE.items() if k != "z0"}
    dense_note = "beyond the papers: L-BFGS with unlimited memory as dense matrices, bookkeeping in numpy"
    capped = f"batch 2048 capped at the {n_images} images" if top < 2048 else ""
    return [
        ("amd_shared", 5, dict(GFE_AMD, shared=True), "the authors' batch rule (baseline)"),
        ("amd", 64, GFE_AMD, "per-sample AMD (paper's step rule per sample)"),
        ("amd", big, GFE_AMD, "per-sample AMD"),
        ("amd", top, GFE_AMD, f"per-sample AMD; {capped}".strip("; ")),
        (
            "amd_refill",
            n_images,
            dict(GFE_AMD, working_set=big),
            f"per-sample AMD, all images in one call, working_set={big} refilled as samples finish",
        ),
        (
            "rk4",
            big,
            rk4,
            "torchdiffeq rk4, 100 steps, tau 1e4 (the authors' rk4 models use tau 1.5e4: "
            "loss 0.362 vs 0.291 in a trial)",
        ),
        ("rk4_10", big, dict(rk4, steps=10), "rk4, 10 steps, tau 1e4"),
        ("nesterov_rk4", big, dict(rk4, order=2), "2nd-order (Nesterov) flow, rk4 100 steps, tau 1e4"),
        ("amd_dtmax50", big, dict(GFE_AMD, dt_max=50.0), "beyond the paper: per-sample AMD with dt_max 50"),
        ("amd_tol1e-4", big, dict(GFE_AMD, conv_tol=1e-4), "beyond the paper: per-sample AMD, conv_tol 1e-4"),
        ("lbfgs", 5, lbfgs, "beyond the papers: per-sample L-BFGS, memory 8, tol 1e-6 (the gfe_lbfgs settings)"),
        ("lbfgs", mid, lbfgs, "beyond the papers: per-sample L-BFGS, memory 8, tol 1e-6"),
        ("lbfgs", big, lbfgs, "beyond the papers: per-sample L-BFGS, memory 8, tol 1e-6"),
        (
            "lbfgs_tight",
            big,
            dict(lbfgs, tol=1e-8),
            "beyond the papers: per-sample L-BFGS, memory 8, tol 1e-8 (its tightest setting: a step lowering the "
            "loss by < 1e-8 is about the float32 resolution of a loss near 0.3)",
        ),
        ("lbfgs_tol1e-4", big, dict(lbfgs, tol=1e-4), "beyond the papers: per-sample L-BFGS, tol 1e-4 (fast)"),
        (
            "lbfgs_evals25",
            big,
            dict(lbfgs, max_evals=25),
            "beyond the papers: per-sample L-BFGS, tol 1e-6, at most 25 decoder evaluations (fast)",
        ),
        ("lbfgs_dense", 5, dense, f"{dense_note}, tol 1e-6"),
        ("lbfgs_dense", mid, dense, f"{dense_note}, tol 1e-6"),
        ("lbfgs_dense", big, dense, f"{dense_note}, tol 1e-6"),
        ("lbfgs_dense_tight", big, dict(dense, tol=1e-8), f"{dense_note}, tol 1e-8 (its tightest setting)"),
        ("lbfgs_dense_tol1e-4", 5, dict(dense, tol=1e-4), f"{dense_note}, tol 1e-4 (fast)"),
        ("lbfgs_dense_tol1e-4", big, dict(dense, tol=1e-4), f"{dense_note}, tol 1e-4 (fast)"),
        ("lbfgs_dense_tol3e-4", 5, dict(dense, tol=3e-4), f"{dense_note}, tol 3e-4 (faster)"),
        ("lbfgs_dense_tol3e-4", big, dict(dense, tol=3e-4), f"{dense_note}, tol 3e-4 (faster)"),
    ]


def add_encoding_rows(rows, decoder, ae, setup):
    """3. Encode the first --n-images test images with every method of `encoding_plan`, then
    dopri5 on the first --dopri5-images and the AE encoder; all from the same per-image z0
    (U[0,1)^20, seed 0). Appends to `rows`, rewriting the CSV after each plan row."""
    n_images = setup.args.n_images
    test = setup.test_images[:n_images]
    z0 = torch.rand(n_images, 20, generator=torch.Generator().manual_seed(0)).to(DEVICE)
    for name, batch, options, notes in encoding_plan(n_images):
        # the floor again, just before the row and at its batch size, so that the overhead ratio compares
        # two measurements taken under the same load of a shared machine
        row_floor = bare_floor(decoder, setup.test_images, min(options.get("working_set") or batch, n_images))
        row = encode_row(name, decoder, test, z0, batch, options, notes + "; z0 U[0,1) per image, seed 0")
        row["floor_s_per_image"], row["cpu_floor_s_per_image"] = row_floor
        rows.append(row)
        print(
            f"  {name:14s} batch {batch:5d}: {row['images_per_s']:8.1f} img/s  nfe {row['nfe_mean']:6.1f}  "
            f"ovh {row['s_per_nfe_per_image'] / row_floor[0]:5.2f}  "
            f"loss {row['loss_mean']:.4f}  ({row['seconds']:.1f} s)",
            flush=True,
        )
        write_rows(rows, setup.out)
    n_dopri = min(setup.args.dopri5_images, n_images)
    big = min(512, n_images)
    if n_dopri:
        rows.append(dopri5_row(decoder, test[:n_dopri], z0[:n_dopri], min(big, n_dopri)))
    rows.append(
        encode_row(
            "ae_encoder", ae.decoder, test, z0, big, {}, "autoencoder: one encoder forward pass", encoder=ae.encoder
        )
    )


def dopri5_row(decoder, images, z0, batch):
    """3. The dopri5 row, on a few images only: about 4e4 NFE per image on a trained decoder."""
    n = len(images)
    row = encode_row(
        "dopri5",
        decoder,
        images,
        z0,
        batch,
        dict(solver="dopri5", rtol=1e-5, tau=1e4),
        f"torchdiffeq dopri5 rtol 1e-5 atol 1e-9, tau 1e4; first {n} of the images only (slow)",
    )
    print(f"  dopri5 on {n}: {row['images_per_s']:.1f} img/s nfe {row['nfe_mean']:.0f} loss {row['loss_mean']:.4f}")
    return row


def add_training_rows(rows, setup, ae_run, gfe_run):
    """4. Training throughput from the same initial weights and batches: the first --train-steps
    of the ae and gfe_amd runs of step 1 (trained now when step 1 loaded the networks), then the
    compared rows (`comparison_training_rows`). Appends to `rows`."""
    args, shape, train_images = setup.args, setup.shape, setup.train_images
    steps = args.train_steps
    if ae_run is None:
        fresh = fresh_autoencoder(shape).to(DEVICE)
        ae_run = train(
            fresh.decoder,
            train_images,
            steps=steps,
            batch_size=5,
            seed=SEED,
            encoder=fresh.encoder,
            optimizer=OPTIMIZER,
        )
    rows.append(train_row("ae", ae_run, 5, steps))
    if gfe_run is None:
        gfe_run = train(
            fresh_decoder(shape).to(DEVICE),
            train_images,
            steps=steps,
            batch_size=5,
            seed=SEED,
            encode_options=GFE_AMD,
            optimizer=OPTIMIZER,
        )
    rows.append(train_row("gfe_amd", gfe_run, 5, steps, f"per-sample AMD; steps 1-{steps} of a fresh gfe_amd training"))
    write_rows(rows, setup.out)
    tests = setup.test_images[: args.test_images]
    rows.extend(comparison_training_rows(shape, train_images, tests, steps, args.slow_train_steps, rows, setup.out))


def add_derived_encoding_columns(rows, floors, big, n_images):
    """The derived columns of the encoding rows: the floor (where the row has none of its own),
    the overhead ratios, and the speedups over the amd_shared batch-5 row, which is returned."""
    base = next(r for r in rows if r["method"] == "amd_shared")
    for r in rows:
        if r["kind"] != "encode":
            continue
        b = min(r["batch"] if r["method"] != "amd_refill" else big, n_images)
        r.setdefault("floor_s_per_image", floors[b][0])
        r.setdefault("cpu_floor_s_per_image", floors[b][1])
        if r.get("s_per_nfe_per_image"):
            r["overhead_ratio"] = r["s_per_nfe_per_image"] / r["floor_s_per_image"]
            r["cpu_overhead_ratio"] = r["cpu_s_per_nfe_per_image"] / r["cpu_floor_s_per_image"]
        r["speedup"] = r["images_per_s"] / base["images_per_s"]
        r["cpu_speedup"] = r["cpu_images_per_s"] / base["cpu_images_per_s"]
    return base


def add_training_speedups(rows, shared_train, slow):
    """Each training row's speedup over the gfe_amd shared row with the same steps (else `slow`)."""
    for r in rows:
        if r["kind"] == "train":
            ref = shared_train.get(r["steps"], shared_train[slow])
            r["speedup"] = r["images_per_s"] / ref["images_per_s"]
            if r.get("cpu_images_per_s"):
                r["cpu_speedup"] = r["cpu_images_per_s"] / ref["cpu_images_per_s"]


def finish(rows, setup, decoder):
    """Write the CSV and the JSON of the run's provenance beside it; returns the latter."""
    out, args, argv = setup.out, setup.args, setup.argv
    write_rows(rows, out)
    meta = {
        "command": " ".join([Path(sys.argv[0]).as_posix(), *(argv if argv is not None else sys.argv[1:])]),
        "git_commit": git_commit(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": args.threads,
        "cpus": os.cpu_count(),
        "loadavg_before": setup.load_before,
        "loadavg_after": os.getloadavg(),
        "total_seconds": time.perf_counter() - setup.began,
        "decoder": decoder,
        "peak_rss_mb_process": psutil.Process().memory_info().rss / 2**20,
        **cpu_info(),
        **device_info(),
    }
    write_text(json.dumps(meta, indent=2) + "\n", out.with_suffix(".json"))
    return meta


def fmt(v, spec):
    return format(v, spec) if isinstance(v, (int, float)) else "-"


def print_table(rows):
    print(
        f"\n{'kind':6s} {'method':15s} {'batch':>5s} {'n':>5s} {'img/s':>8s} {'nfe':>6s} {'s/nfe/img':>9s} "
        f"{'ovh':>5s} {'loss':>7s} {'median':>7s} {'conv':>5s} {'rss MB':>7s} {'speedup':>7s} {'steps':>5s} "
        f"{'test':>7s} {'test@stat':>9s}"
    )
    for r in rows:
        print(
            f"{r['kind']:6s} {r['method']:15s} {r['batch']:5d} {r['n_images']:5d} {fmt(r.get('images_per_s'), '8.1f')} "
            f"{fmt(r.get('nfe_mean'), '6.1f')} {fmt(r.get('s_per_nfe_per_image'), '9.2e')} "
            f"{fmt(r.get('overhead_ratio'), '5.2f')} {fmt(r.get('loss_mean'), '7.4f')} "
            f"{fmt(r.get('loss_median'), '7.4f')} {fmt(r.get('converged_frac'), '5.2f')} "
            f"{fmt(r.get('peak_rss_mb'), '7.0f')} {fmt(r.get('speedup'), '7.2f')} {fmt(r.get('steps'), '5d')} "
            f"{fmt(r.get('test_loss_mean'), '7.4f')} {fmt(r.get('test_loss_stationary_mean'), '9.4f')}"
        )


def print_targets(rows, base, train_base, big):
    enc = [r for r in rows if r["kind"] == "encode"]
    amd_big = next(r for r in enc if r["method"] == "amd" and r["batch"] == big)
    good = [r for r in enc if r["loss_mean"] <= base["loss_mean"] and r is not base]
    best = max(good, key=lambda r: r["images_per_s"]) if good else None
    train_rows = [r for r in rows if r["kind"] == "train" and r["method"] == "gfe_amd" and r.get("cpu_speedup")]
    best_train = max(train_rows, key=lambda r: r["images_per_s"])
    targets = [
        (
            f"amd per-sample batch {big} >= 5x amd_shared batch 5 images/s, mean loss no higher",
            f"{amd_big['speedup']:.1f}x (CPU time {amd_big['cpu_speedup']:.1f}x), "
            f"loss {amd_big['loss_mean']:.4f} vs {base['loss_mean']:.4f}",
            amd_big["speedup"] >= 5 and amd_big["loss_mean"] <= base["loss_mean"],
        ),
        (
            f"overhead ratio at batch {big} <= 1.3",
            f"{amd_big['overhead_ratio']:.2f} (CPU time {amd_big['cpu_overhead_ratio']:.2f})",
            amd_big["overhead_ratio"] <= 1.3,
        ),
        (
            "best row reaching the amd_shared mean loss >= 20x its images/s",
            f"{best['method']} batch {best['batch']}: {best['speedup']:.1f}x (CPU time {best['cpu_speedup']:.1f}x)"
            if best
            else "no row reaches it",
            bool(best) and best["speedup"] >= 20,
        ),
        (
            "GFE-amd training images/s >= 5x gfe_amd shared at batch 5",
            f"{best_train['method']} batch {best_train['batch']}: {best_train['speedup']:.1f}x "
            f"(CPU time {best_train['cpu_speedup']:.1f}x)",
            best_train["speedup"] >= 5,
        ),
    ]
    print("\ntargets (issue #5):")
    for text, value, met in targets:
        print(f"  [{'MET' if met else 'MISSED'}] {text}: {value}")


def print_lbfgs_targets(rows, base, shared, big):
    """The L-BFGS issue's targets, against the amd_shared batch-5 row (encoding) and the
    gfe_amd_shared batch-5 training row over the same steps (training)."""
    # rows comparable with the baseline: the same images, encoded with the GFE decoder
    enc = [
        r
        for r in rows
        if r["kind"] == "encode" and r is not base and r["method"] != "ae_encoder" and r["n_images"] == base["n_images"]
    ]
    targets = lbfgs_speed_targets(enc, base) + lbfgs_overhead_targets(enc, big) + lbfgs_training_targets(rows, shared)
    print("\ntargets (L-BFGS issue; encoding against amd_shared batch 5, same images, GFE decoder rows only):")
    for text, value, met in targets:
        print(f"  [{'MET' if met else 'MISSED'}] {text}: {value}")


def lbfgs_speed_targets(enc, base):
    """The L-BFGS issue's encoding targets 1-3 (speedup at the baseline's mean loss, at batch 5,
    and 2% below it) over the comparable encoding rows `enc`: a list of (text, value, met)."""

    def fastest(candidates):
        return max(candidates, key=lambda r: r["images_per_s"]) if candidates else None

    def describe(r):
        return (
            f"{r['method']} batch {r['batch']}: {r['speedup']:.1f}x (CPU time {r['cpu_speedup']:.1f}x), "
            f"loss {r['loss_mean']:.4f} vs {base['loss_mean']:.4f}"
            if r
            else "no row reaches the loss"
        )

    at_loss = fastest([r for r in enc if r["loss_mean"] <= base["loss_mean"]])
    at_loss_5 = fastest([r for r in enc if r["loss_mean"] <= base["loss_mean"] and r["batch"] == 5])
    lower = fastest([r for r in enc if r["loss_mean"] <= 0.98 * base["loss_mean"]])
    return [
        (
            "a row at mean loss <= the baseline's with images/s >= 50x (stretch 100x)",
            describe(at_loss) + (" (stretch 100x met)" if at_loss and at_loss["speedup"] >= 100 else ""),
            bool(at_loss) and at_loss["speedup"] >= 50,
        ),
        (
            "a row at batch 5 at mean loss <= the baseline's with images/s >= 5x",
            describe(at_loss_5),
            bool(at_loss_5) and at_loss_5["speedup"] >= 5,
        ),
        (
            "a row with mean loss >= 2% below the baseline's at images/s >= 5x",
            describe(lower).replace("reaches the loss", f"reaches {0.98 * base['loss_mean']:.4f}"),
            bool(lower) and lower["speedup"] >= 5,
        ),
    ]


def lbfgs_overhead_targets(enc, big):
    """The L-BFGS issue's target 4, the per-NFE overhead of the best lbfgs row among `enc` at
    batch 5 and at batch `big`: a list of (text, value, met)."""
    targets = []
    for batch, limit in ((5, 1.3), (big, 1.15)):
        candidates = [
            r for r in enc if r["method"].startswith("lbfgs") and r["batch"] == batch and r.get("overhead_ratio")
        ]
        r = min(candidates, key=lambda r: r["overhead_ratio"]) if candidates else None
        targets.append(
            (
                f"per-NFE overhead of the best lbfgs row at batch {batch} <= {limit}",
                f"{r['method']}: {r['overhead_ratio']:.2f} (CPU time {r['cpu_overhead_ratio']:.2f})"
                if r
                else "no lbfgs row",
                bool(r) and r["overhead_ratio"] <= limit,
            )
        )
    return targets


def lbfgs_training_targets(rows, shared):
    """The training target for gfe_lbfgs and gfe_lbfgs_dense, with the test loss AMD-encoded
    and at stationary points: a list of (text, value, met)."""
    return [
        lbfgs_training_target(rows, shared, method, measure)
        for method in ("gfe_lbfgs", "gfe_lbfgs_dense")
        for measure in ("test_loss_mean", "test_loss_stationary_mean")
    ]


def lbfgs_training_target(rows, shared, method="gfe_lbfgs", measure="test_loss_mean"):
    """(text, value, met) of the L-BFGS issue's training target for `method` against the
    gfe_amd shared row over the same steps, the test loss read from the column `measure`."""
    lbfgs_train = next((r for r in rows if r["kind"] == "train" and r["method"] == method), None)
    how = "AMD-encoded" if measure == "test_loss_mean" else "at stationary points"
    if not (lbfgs_train and shared and shared.get(measure) is not None):
        return f"{method} training at batch 5 >= 5x gfe_amd shared, test loss ({how}) no higher", "no rows", False
    return (
        f"{method} training at batch 5 >= 5x gfe_amd shared images/s over {lbfgs_train['steps']} steps, "
        f"test loss ({how}) no higher",
        f"{lbfgs_train['speedup']:.1f}x (CPU time {lbfgs_train['cpu_speedup']:.1f}x), test loss "
        f"{lbfgs_train[measure]:.4f} vs {shared[measure]:.4f}",
        lbfgs_train["speedup"] >= 5 and lbfgs_train[measure] <= shared[measure],
    )


def print_lbfgs_training_target(rows, shared):
    print("\ntarget (L-BFGS issue):")
    for text, value, met in lbfgs_training_targets(rows, shared):
        print(f"  [{'MET' if met else 'MISSED'}] {text}: {value}")


if __name__ == "__main__":
    main()
