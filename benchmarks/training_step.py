"""Where a GFE-amd training step's time goes (the authors' shared AMD rule, batch 5). Not a test.

    python benchmarks/training_step.py --model results/default/models/fashion_mnist/e1/gfe_amd/N300/seed0.pt

Loads a trained GFE decoder (a model file the workflow wrote, `--model`; the cost of a step
grows as the decoder trains, so profile one from late in training), then takes `--steps`
training steps with the gfe_amd settings (shared AMD, z0 uniform, tau 1e4, max_halvings 15,
approximate gradient, RMSprop lr 5e-4 alpha 0.9 eps 1e-6) on batches of 5 images of the
prepared data (`--prepared`, first `--n-images` training images of seed 0), and splits each
step's wall time into:

- decoder passes: the flow's loss-and-velocity calls (forward + backward w.r.t. z), timed
  around each call; their count is the step's NFE;
- AMD bookkeeping: the rest of the encoding (step control, acceptance, histories);
- parameter gradient: the approximate gradient (one forward + backward w.r.t. the weights);
- optimiser: RMSprop's update;
- and, amortised per step, one validation check every `--val-every` steps (per-sample AMD on
  the `--n-val` validation images).

It also times a bare decoder forward+backward w.r.t. z for 1, 5 and 15 rows, and the same
for 3 decoders stacked into batched matrix products (5 rows each), which is what running 3
runs in lockstep would cost per pass. Prints one table; writes nothing.

    python benchmarks/training_step.py --compare [--model FILE] [--gfe-steps 100 --ae-steps 300]

`--compare` instead times whole training steps through `gfe.training.train`, the reference
path (`reference_path()`: autograd decoder passes, AMD's general loop, the elementwise
gradient check every step) against the fast path (hand-written MLP pass, AMD's fused shared
loop, the summed gradient check), from the same weights on the same batches, for GFE-amd and
the AE; prints where a GFE
step's time goes on each path and the fp32 weight-streaming floor of one pass, and writes
`--csv` (results/benchmarks/training_step.csv). Each path runs `--rounds` times from the
same weights, alternating with the other (the same steps each time); seconds_per_step is the
sum over steps of each step's fastest round (the step time `train` logs: encoding, gradient,
optimiser), wall_seconds_per_step the whole `train` call of the fastest round; a shared,
loaded machine slows single rounds at random, so the minima are what the code costs (the
load average goes into the file too). Without `--model` it first trains an
MLPDecoder for `--pretrain-steps` GFE-amd steps on Fashion-MNIST (the AMD cost of a step
grows with training, so a fresh decoder would flatter nothing and mislead).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from unittest import mock

import pandas as pd
import torch

from gfe import encode, fastpass, flows, gradients, io, training
from gfe.evaluation import evaluate
from gfe.losses import bce_with_logits
from gfe.models import build_autoencoder, build_decoder
from gfe.training import OptimizerSettings, train

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
)


class PassTimer:
    """Wraps GradientFlow.loss_and_velocity to add up its wall time and calls."""

    def __init__(self):
        self.seconds, self.calls = 0.0, 0
        self.original = flows.GradientFlow.loss_and_velocity

    def __enter__(self):
        timer, original = self, self.original

        def timed(flow, z, target=None, rows=None):
            started = time.perf_counter()
            out = original(flow, z, target, rows)
            timer.seconds += time.perf_counter() - started
            timer.calls += 1
            return out

        flows.GradientFlow.loss_and_velocity = timed
        return self

    def __exit__(self, *exc):
        flows.GradientFlow.loss_and_velocity = self.original


def median_us(fn, repeats=200) -> float:
    fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return 1e6 * statistics.median(times)


def bare_pass(decoder, rows: int) -> float:
    x = torch.rand(rows, 1, 28, 28)

    def once():
        z = torch.rand(rows, decoder.latent_dim, requires_grad=True)
        torch.autograd.grad(bce_with_logits(decoder(z), x).sum(), z)

    return median_us(once)


def stacked_pass(decoder, runs: int, rows: int) -> float:
    """runs decoders (copies of `decoder`'s weights) as batched matrix products."""
    linears = [m for m in decoder.modules() if isinstance(m, torch.nn.Linear)]
    weights = [(m.weight.detach().T.expand(runs, -1, -1).contiguous(), m.bias.detach()) for m in linears]
    x = torch.rand(runs, rows, 28 * 28)

    def once():
        z = torch.rand(runs, rows, decoder.latent_dim, requires_grad=True)
        h = z
        for i, (w, b) in enumerate(weights):
            h = torch.baddbmm(b, h, w)
            h = torch.nn.functional.elu(h) if i < len(weights) - 1 else h
        loss = torch.nn.functional.binary_cross_entropy_with_logits(h, x, reduction="none").mean(2).sum()
        torch.autograd.grad(loss, z)

    return median_us(once)


class EncodeTimer:
    """Wraps the encoding that `decoder_loss_and_gradient` runs, to add up its wall time."""

    def __init__(self):
        self.seconds = 0.0
        self.original = gradients.encode_checked

    def __enter__(self):
        timer, original = self, self.original

        def timed(*args, **kwargs):
            started = time.perf_counter()
            out = original(*args, **kwargs)
            timer.seconds += time.perf_counter() - started
            return out

        gradients.encode_checked = timed
        return self

    def __exit__(self, *exc):
        gradients.encode_checked = self.original


def fashion_mnist(n_images: int) -> torch.Tensor:
    """The first `n_images` Fashion-MNIST training images (N, 1, 28, 28) in [0, 1], from the
    system copy (/usr/share/datasets/fashion-mnist) prepared into a temporary folder."""
    from gfe.data import load_dataset

    return load_dataset("fashion_mnist", Path(tempfile.gettempdir()) / "gfe_benchmark_data").train_images[:n_images]


def timed_training(decoder, images, steps, encoder=None, encode_options=None):
    """Train a copy of `decoder` (and `encoder`) for `steps`; returns the run and its parts'
    seconds (total, decoder passes, encoding)."""
    decoder, encoder = copy.deepcopy(decoder), copy.deepcopy(encoder)
    opt = OptimizerSettings(lr=5e-4, alpha=0.9, eps=1e-6)
    started = time.perf_counter()
    with PassTimer() as passes, EncodeTimer() as encoding:
        run = train(
            decoder,
            images,
            steps=steps,
            batch_size=5,
            seed=0,
            encoder=encoder,
            encode_options=encode_options,
            optimizer=opt,
        )
    return run, dict(total=time.perf_counter() - started, passes=passes.seconds, encoding=encoding.seconds)


def weight_floor_us(decoder) -> tuple[float, float]:
    """(bytes of fp32 weights read per pass (forward + backward), that many bytes at the
    measured one-thread read bandwidth of a 256 MB tensor, in us)."""
    n = sum(m.weight.numel() + m.bias.numel() for m in decoder.modules() if isinstance(m, torch.nn.Linear))
    big = torch.rand(64 * 2**20)
    seconds = 1e-6 * median_us(lambda: big.sum(), repeats=10)
    bandwidth = big.numel() * 4 / seconds
    return 2 * 4 * n, 1e6 * 2 * 4 * n / bandwidth


def _elementwise_finite(modules) -> bool:
    """The training loop's gradient check before it summed each gradient (the AE's reference)."""
    grads = [p.grad for m in modules if m is not None for p in m.parameters() if p.grad is not None]
    return all(bool(torch.isfinite(g).all()) for g in grads)


@contextlib.contextmanager
def reference_path():
    """The code before this benchmark's speed-ups: gfe.fastpass's reference path (autograd
    passes, AMD's unfused loop) and the elementwise gradient check of every training step."""
    with fastpass.reference_path(), mock.patch.object(training, "_grads_finite", _elementwise_finite):
        yield


def compare(a) -> int:
    """--compare: reference against fast path, written to --csv."""
    torch.set_num_threads(a.threads)
    images = fashion_mnist(a.n_images)
    encode_options = dict(ENCODE, shared=True)
    if a.model:
        decoder, _ = io.load_model(a.model)
        origin = a.model
    else:
        torch.manual_seed(0)
        decoder = build_decoder((1, 28, 28), 20)
        started = time.perf_counter()
        run = train(
            decoder,
            images,
            steps=a.pretrain_steps,
            batch_size=5,
            seed=1,
            encode_options=encode_options,
            optimizer=OptimizerSettings(lr=5e-4, alpha=0.9, eps=1e-6),
        )
        origin = f"MLPDecoder trained here for {a.pretrain_steps} GFE-amd steps ({time.perf_counter() - started:.0f} s)"
        print(f"{origin}: loss {run.steps[0]['loss']:.4f} -> {run.steps[-1]['loss']:.4f}")
    decoder.train()
    torch.manual_seed(0)
    autoencoder = build_autoencoder((1, 28, 28), 20)
    rows, parts = [], {}
    for model, steps, kwargs in (
        ("gfe_amd", a.gfe_steps, dict(decoder=decoder, encode_options=encode_options)),
        ("ae", a.ae_steps, dict(decoder=autoencoder.decoder, encoder=autoencoder.encoder)),
    ):
        results, step_seconds = {}, {}
        for _ in range(a.rounds):  # alternate the paths; keep each one's fastest round
            for path in ("reference", "fast"):
                with reference_path() if path == "reference" else contextlib.nullcontext():
                    run, seconds = timed_training(images=images, steps=steps, **kwargs)
                if path not in results or seconds["total"] < results[path][1]["total"]:
                    results[path] = run, seconds
                times = [row["seconds"] for row in run.steps]
                step_seconds[path] = [min(pair) for pair in zip(step_seconds.get(path, times), times, strict=True)]
        reference_losses = [row["loss"] for row in results["reference"][0].steps]
        for path, (run, seconds) in results.items():
            losses = [row["loss"] for row in run.steps]
            rows.append(
                dict(
                    model=model,
                    path=path,
                    steps=steps,
                    rounds=a.rounds,
                    seconds_per_step=sum(step_seconds[path]) / steps,
                    wall_seconds_per_step=seconds["total"] / steps,
                    nfe_mean=statistics.fmean(row["nfe"] for row in run.steps),
                    loss_mean=statistics.fmean(losses),
                    max_abs_loss_diff_vs_reference=max(
                        abs(x - y) for x, y in zip(losses, reference_losses, strict=True)
                    ),
                    nfe_equal_to_reference=[r["nfe"] for r in run.steps]
                    == [r["nfe"] for r in results["reference"][0].steps],
                )
            )
            parts[(model, path)] = seconds
    reference_s = {row["model"]: row["seconds_per_step"] for row in rows if row["path"] == "reference"}
    machine = f"{platform.machine()} {platform.processor() or platform.node()} ({os.cpu_count()} cores)"
    for row in rows:
        row.update(
            ratio=reference_s[row["model"]] / row["seconds_per_step"],
            machine=machine,
            threads=torch.get_num_threads(),
            torch=torch.__version__,
            decoder=origin if row["model"] == "gfe_amd" else "fresh autoencoder",
            load_average=" ".join(f"{x:.2f}" for x in os.getloadavg()),
        )
    io.write_csv(pd.DataFrame(rows), a.csv)
    print(f"{'model':<9}{'path':<11}{'steps':>6}{'s/step':>10}{'NFE':>9}{'loss':>10}{'max diff':>11}{'ratio':>7}")
    for r in rows:
        print(
            f"{r['model']:<9}{r['path']:<11}{r['steps']:>6}{r['seconds_per_step']:>10.4f}{r['nfe_mean']:>9.1f}"
            f"{r['loss_mean']:>10.5f}{r['max_abs_loss_diff_vs_reference']:>11.2e}{r['ratio']:>7.2f}"
        )
    print("GFE-amd step, where the time goes (s per step):")
    for path in ("reference", "fast"):
        s = {k: v / a.gfe_steps for k, v in parts[("gfe_amd", path)].items()}
        nfe = next(r["nfe_mean"] for r in rows if r["model"] == "gfe_amd" and r["path"] == path)
        print(
            f"  {path:<10} total {s['total']:.4f}: decoder passes {s['passes']:.4f} "
            f"({1e6 * s['passes'] / nfe:.0f} us per pass), AMD bookkeeping {s['encoding'] - s['passes']:.4f} "
            f"({1e6 * (s['encoding'] - s['passes']) / nfe:.0f} us per iteration), "
            f"parameter gradient + optimiser + loop {s['total'] - s['encoding']:.4f}"
        )
    weight_bytes, floor = weight_floor_us(decoder)
    print(
        f"fp32 weight-streaming floor: {weight_bytes / 1e6:.2f} MB read per pass (forward + backward), "
        f"{floor:.0f} us at the one-thread read bandwidth of a 256 MB tensor"
    )
    print(f"wrote {a.csv}")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="a GFE model file written by the workflow")
    p.add_argument("--compare", action="store_true", help="reference against fast path, to --csv")
    p.add_argument("--csv", default="results/benchmarks/training_step.csv")
    p.add_argument("--gfe-steps", type=int, default=50)
    p.add_argument("--rounds", type=int, default=2, help="timed runs per path, alternating; the fastest counts")
    p.add_argument("--ae-steps", type=int, default=300)
    p.add_argument("--pretrain-steps", type=int, default=300)
    p.add_argument("--prepared", default="data/prepared/default/fashion_mnist.pt")
    p.add_argument("--n-images", type=int, default=1000)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--val-every", type=int, default=50)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    if a.compare:
        return compare(a)
    if a.model is None:
        p.error("--model is needed without --compare")
    torch.set_num_threads(a.threads)
    decoder, _ = io.load_model(a.model)
    decoder.train()
    prepared = io.load_prepared(a.prepared)
    images = prepared["train_images"][prepared["subset_order"]["0"][: a.n_images]]
    opt = OptimizerSettings(lr=5e-4, alpha=0.9, eps=1e-6).build(decoder.parameters())
    generator = torch.Generator().manual_seed(0)
    parts = {"total": 0.0, "decoder passes": 0.0, "AMD bookkeeping": 0.0, "parameter gradient": 0.0, "optimiser": 0.0}
    params = list(decoder.parameters())
    nfe = 0
    for step in range(a.steps):
        x = images[torch.randint(len(images), (5,), generator=generator)]
        started = time.perf_counter()
        with PassTimer() as passes:  # what decoder_loss_and_gradient does for 'approximate'
            z = encode(decoder, x, seed=step, shared=True, **ENCODE)
        encoded = time.perf_counter()
        with torch.enable_grad():
            grads = torch.autograd.grad(bce_with_logits(decoder(z.z.detach()), x).sum(), params)
        for param, grad in zip(params, grads, strict=True):
            param.grad = grad
        graded = time.perf_counter()
        opt.step()
        done = time.perf_counter()
        nfe += int(z.nfe.max())
        parts["total"] += done - started
        parts["decoder passes"] += passes.seconds
        parts["AMD bookkeeping"] += (encoded - started) - passes.seconds
        parts["parameter gradient"] += graded - encoded
        parts["optimiser"] += done - graded
    val = evaluate(decoder, prepared["val_images"], encode_options=ENCODE, batch_size=500)
    per_check = val.seconds / a.val_every
    print(f"model {a.model}: {a.steps} steps at batch 5, mean NFE per step {nfe / a.steps:.1f}")
    print(f"{'part':<22}{'s per step':>12}{'share':>8}")
    total = parts["total"] / a.steps + per_check
    for name, seconds in parts.items():
        if name != "total":
            print(f"{name:<22}{seconds / a.steps:>12.4f}{100 * seconds / a.steps / total:>7.1f}%")
    print(f"{'validation (amortised)':<22}{per_check:>12.4f}{100 * per_check / total:>7.1f}%")
    print(f"{'all':<22}{total:>12.4f}")
    print(f"decoder pass: {1e6 * parts['decoder passes'] / max(nfe, 1):.0f} us per call in training")
    decoder.eval()
    for rows in (1, 5, 15):
        print(f"bare forward+backward w.r.t. z, {rows:>2} rows: {bare_pass(decoder, rows):7.0f} us")
    print(f"3 decoders stacked (bmm), 5 rows each: {stacked_pass(decoder, 3, 5):7.0f} us")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
