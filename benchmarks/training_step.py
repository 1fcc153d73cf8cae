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

    python benchmarks/training_step.py --before [REF] [--gfe-steps 60 --ae-steps 300 --rounds 5]

`--before REF` (default 1a1f721, the commit before the library checked its options and
decoder once per run instead of once per step) times whole `train` steps of the library as
it was at REF (`git archive REF src/gfe`, extracted to a temporary folder) against the
working tree's `src/gfe`: each library trains in its own subprocess (PYTHONPATH pointing at
it), from the same starting weights (the `--model` file, or the decoder pretrained as above;
a fresh autoencoder) on the same batches, GFE-amd with the shared AMD rule as the workflow
trains it and the AE; rounds alternate the libraries (and which goes first), and per step
the fastest round counts, as above. It checks that every round of both ends with bit-identical
parameters, losses and NFE (exit status 1 if not), prints a table and writes `--checks-csv`
(results/benchmarks/training_step_checks.csv: seconds per step before and after, their
ratio, the identity checks, the load average at the start and at the end).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import pandas as pd
import torch

import gfe
from gfe import encode, fastpass, flows, gradients, io, training
from gfe.evaluation import evaluate
from gfe.losses import bce_with_logits
from gfe.models import build_autoencoder, build_decoder
from gfe.training import OptimizerSettings, train

BEFORE = "1a1f721"  # the commit before the library checked its inputs once per run

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
        self.original = gradients.encode_unchecked

    def __enter__(self):
        timer, original = self, self.original

        def timed(*args, **kwargs):
            started = time.perf_counter()
            out = original(*args, **kwargs)
            timer.seconds += time.perf_counter() - started
            return out

        gradients.encode_unchecked = timed
        return self

    def __exit__(self, *exc):
        gradients.encode_unchecked = self.original


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


def _starting_decoder(a, images, encode_options):
    """The GFE decoder the timed steps start from: `--model`, or an MLPDecoder trained here
    for `--pretrain-steps` GFE-amd steps. Returns (decoder, where it came from)."""
    if a.model:
        decoder, _ = io.load_model(a.model)
        return decoder, a.model
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
    return decoder, origin


def _time_paths(images, steps, rounds, kwargs):
    """Train `rounds` times per path, alternating reference and fast; returns each path's
    fastest round (run, seconds of its parts) and per-step minima over the rounds."""
    results, step_seconds = {}, {}
    for _ in range(rounds):
        for path in ("reference", "fast"):
            with reference_path() if path == "reference" else contextlib.nullcontext():
                run, seconds = timed_training(images=images, steps=steps, **kwargs)
            if path not in results or seconds["total"] < results[path][1]["total"]:
                results[path] = run, seconds
            times = [row["seconds"] for row in run.steps]
            step_seconds[path] = [min(pair) for pair in zip(step_seconds.get(path, times), times, strict=True)]
    return results, step_seconds


def _compare_row(model, path, steps, rounds, results, step_seconds) -> dict:
    run, seconds = results[path]
    losses = [row["loss"] for row in run.steps]
    reference = results["reference"][0].steps
    return dict(
        model=model,
        path=path,
        steps=steps,
        rounds=rounds,
        seconds_per_step=sum(step_seconds[path]) / steps,
        wall_seconds_per_step=seconds["total"] / steps,
        nfe_mean=statistics.fmean(row["nfe"] for row in run.steps),
        loss_mean=statistics.fmean(losses),
        max_abs_loss_diff_vs_reference=max(abs(x - r["loss"]) for x, r in zip(losses, reference, strict=True)),
        nfe_equal_to_reference=[r["nfe"] for r in run.steps] == [r["nfe"] for r in reference],
    )


def _machine() -> dict:
    return dict(
        machine=f"{platform.machine()} {platform.processor() or platform.node()} ({os.cpu_count()} cores)",
        threads=torch.get_num_threads(),
        torch=torch.__version__,
    )


def _load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def compare(a) -> int:
    """--compare: reference against fast path, written to --csv."""
    torch.set_num_threads(a.threads)
    images = fashion_mnist(a.n_images)
    encode_options = dict(ENCODE, shared=True)
    decoder, origin = _starting_decoder(a, images, encode_options)
    decoder.train()
    torch.manual_seed(0)
    autoencoder = build_autoencoder((1, 28, 28), 20)
    rows, parts = [], {}
    for model, steps, kwargs in (
        ("gfe_amd", a.gfe_steps, dict(decoder=decoder, encode_options=encode_options)),
        ("ae", a.ae_steps, dict(decoder=autoencoder.decoder, encoder=autoencoder.encoder)),
    ):
        results, step_seconds = _time_paths(images, steps, a.rounds, kwargs)
        for path in results:
            rows.append(_compare_row(model, path, steps, a.rounds, results, step_seconds))
            parts[(model, path)] = results[path][1]
    reference_s = {row["model"]: row["seconds_per_step"] for row in rows if row["path"] == "reference"}
    for row in rows:
        row.update(
            ratio=reference_s[row["model"]] / row["seconds_per_step"],
            **_machine(),
            decoder=origin if row["model"] == "gfe_amd" else "fresh autoencoder",
            load_average=_load_average(),
        )
    io.write_csv(pd.DataFrame(rows), a.csv)
    _print_compare(rows, parts, a.gfe_steps, decoder)
    print(f"wrote {a.csv}")
    return 0


def _print_compare(rows, parts, gfe_steps, decoder) -> None:
    print(f"{'model':<9}{'path':<11}{'steps':>6}{'s/step':>10}{'NFE':>9}{'loss':>10}{'max diff':>11}{'ratio':>7}")
    for r in rows:
        print(
            f"{r['model']:<9}{r['path']:<11}{r['steps']:>6}{r['seconds_per_step']:>10.4f}{r['nfe_mean']:>9.1f}"
            f"{r['loss_mean']:>10.5f}{r['max_abs_loss_diff_vs_reference']:>11.2e}{r['ratio']:>7.2f}"
        )
    print("GFE-amd step, where the time goes (s per step):")
    for path in ("reference", "fast"):
        s = {k: v / gfe_steps for k, v in parts[("gfe_amd", path)].items()}
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


# ------------------------------------------------------------------ --before: the library before and after


def before_after(a) -> int:
    """--before REF: whole training steps of the library at REF against the working tree's,
    in alternating subprocesses from the same weights on the same batches; checks that both
    end with bit-identical parameters, losses and NFE, and writes --checks-csv."""
    torch.set_num_threads(a.threads)
    load_before = _load_average()
    folder = Path(tempfile.gettempdir()) / f"gfe_before_after_{os.getpid()}"  # removed at the end
    try:
        libraries = {"before": _extract_library(a.before, folder / "before"), "after": REPO / "src"}
        start = folder / "start.pt"
        origin = _write_start(a, start)
        outcomes = {}
        for model, steps in (("gfe_amd", a.gfe_steps), ("ae", a.ae_steps)):
            outcomes[model] = _alternate(a, model, steps, libraries, start, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    rows = _before_after_rows(a, outcomes, origin, load_before)
    io.write_csv(pd.DataFrame(rows), a.checks_csv)
    _print_before_after(rows)
    print(f"wrote {a.checks_csv}")
    return 0 if all(row["identical_parameters"] and row["identical_losses_and_nfe"] for row in rows) else 1


REPO = Path(__file__).resolve().parents[1]


def _extract_library(ref: str, folder: Path) -> Path:
    """src/gfe as it is at git commit `ref`, extracted under `folder`; returns folder/src."""
    folder.mkdir(parents=True)
    git = ["git", "archive", ref, "src/gfe"]
    archive = subprocess.run(git, cwd=REPO, check=True, capture_output=True).stdout  # noqa: S603
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)  # noqa: S603
    return folder / "src"


def _write_start(a, path: Path) -> str:
    """The starting point both libraries train from (images and weights), saved to `path`;
    returns where the GFE decoder came from."""
    images = fashion_mnist(a.n_images)
    decoder, origin = _starting_decoder(a, images, dict(ENCODE, shared=True))
    torch.manual_seed(0)
    autoencoder = build_autoencoder((1, 28, 28), 20)
    io.atomic_torch_save(
        {"images": images, "decoder": decoder.state_dict(), "autoencoder": autoencoder.state_dict()}, path
    )
    return origin


def _alternate(a, model: str, steps: int, libraries: dict, start: Path, folder: Path) -> dict:
    """`a.rounds` rounds of `steps` training steps of `model` per library, alternating (and
    alternating which goes first); returns per library the per-step minima, the fastest
    wall time and every round's result."""
    out = {name: {"rounds": []} for name in libraries}
    for round_index in range(a.rounds):
        order = list(libraries) if round_index % 2 == 0 else list(libraries)[::-1]
        for name in order:
            result = folder / f"{model}_{name}_{round_index}.pt"
            command = [sys.executable, __file__, "--worker", model, "--steps", str(steps), "--start", str(start)]
            command += ["--out", str(result), "--threads", str(a.threads)]
            environment = dict(os.environ, PYTHONPATH=str(libraries[name]), OMP_NUM_THREADS=str(a.threads))
            subprocess.run(command, check=True, env=environment)  # noqa: S603
            out[name]["rounds"].append(io.load_tensors(result))
            ran = out[name]["rounds"][-1]["library"]
            assert Path(ran) == (libraries[name] / "gfe").resolve(), f"{name}: ran the gfe at {ran}"  # noqa: S101
    for entry in out.values():
        seconds = [r["seconds"] for r in entry["rounds"]]
        entry["step_minima"] = [min(column) for column in zip(*seconds, strict=True)]
        entry["wall"] = min(r["wall"] for r in entry["rounds"])
    return out


def worker(a) -> int:
    """--worker MODEL: train from --start for --steps with the gfe on PYTHONPATH; save the
    per-step seconds, losses, NFE and final parameters to --out."""
    torch.set_num_threads(a.threads)
    start = io.load_tensors(a.start)
    encoder, kwargs = None, {}
    if a.worker == "gfe_amd":
        decoder = build_decoder((1, 28, 28), 20)
        decoder.load_state_dict(start["decoder"])
        kwargs = dict(encode_options=dict(ENCODE, shared=True))
    else:
        autoencoder = build_autoencoder((1, 28, 28), 20)
        autoencoder.load_state_dict(start["autoencoder"])
        decoder, encoder = autoencoder.decoder, autoencoder.encoder
    optimizer = OptimizerSettings(lr=5e-4, alpha=0.9, eps=1e-6)
    started = time.perf_counter()
    run = train(
        decoder, start["images"], steps=a.steps, batch_size=5, seed=0, encoder=encoder, optimizer=optimizer, **kwargs
    )
    wall = time.perf_counter() - started
    parameters = [p.detach().clone() for m in (decoder, encoder) if m is not None for p in m.parameters()]
    io.atomic_torch_save(
        {
            "library": str(Path(gfe.__file__).resolve().parent),
            "seconds": [row["seconds"] for row in run.steps],
            "loss": [row["loss"] for row in run.steps],
            "nfe": [row["nfe"] for row in run.steps],
            "wall": wall,
            "parameters": parameters,
        },
        a.out,
    )
    return 0


def _identical(first: dict, second: dict) -> tuple[bool, bool]:
    """(same parameters bit for bit, same losses and NFE) of two rounds' results."""
    parameters = all(torch.equal(x, y) for x, y in zip(first["parameters"], second["parameters"], strict=True))
    return parameters, first["loss"] == second["loss"] and first["nfe"] == second["nfe"]


def _before_after_rows(a, outcomes: dict, origin: str, load_before: str) -> list[dict]:
    rows = []
    for model, libraries in outcomes.items():
        reference = libraries["before"]["rounds"][0]
        per_step = {name: statistics.fmean(entry["step_minima"]) for name, entry in libraries.items()}
        for name, entry in libraries.items():
            checks = [_identical(reference, result) for result in entry["rounds"]]
            rows.append(
                dict(
                    model=model,
                    library=name,
                    ref=a.before if name == "before" else "working tree",
                    steps=len(reference["loss"]),
                    rounds=a.rounds,
                    seconds_per_step=per_step[name],
                    wall_seconds_per_step=entry["wall"] / len(reference["loss"]),
                    ratio_before_over_after=per_step["before"] / per_step["after"],
                    nfe_mean=statistics.fmean(entry["rounds"][0]["nfe"]),
                    loss_mean=statistics.fmean(entry["rounds"][0]["loss"]),
                    identical_parameters=all(c[0] for c in checks),
                    identical_losses_and_nfe=all(c[1] for c in checks),
                    **_machine(),
                    decoder=origin if model == "gfe_amd" else "fresh autoencoder",
                    load_average_start=load_before,
                    load_average_end=_load_average(),
                )
            )
    return rows


def _print_before_after(rows) -> None:
    print(
        f"{'model':<9}{'library':<9}{'steps':>6}{'rounds':>7}{'s/step':>10}{'wall s/step':>12}{'NFE':>8}"
        f"{'before/after':>13}  identical params, losses+NFE"
    )
    for r in rows:
        print(
            f"{r['model']:<9}{r['library']:<9}{r['steps']:>6}{r['rounds']:>7}{r['seconds_per_step']:>10.5f}"
            f"{r['wall_seconds_per_step']:>12.5f}{r['nfe_mean']:>8.1f}{r['ratio_before_over_after']:>13.4f}"
            f"  {r['identical_parameters']}, {r['identical_losses_and_nfe']}"
        )
    print(f"load average: {rows[0]['load_average_start']} at the start, {rows[-1]['load_average_end']} at the end")


def _parser() -> argparse.ArgumentParser:
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
    p.add_argument(
        "--before",
        nargs="?",
        const=BEFORE,
        default=None,
        metavar="REF",
        help=f"the library at git REF (default {BEFORE}) against the working tree's, to --checks-csv",
    )
    p.add_argument("--checks-csv", default="results/benchmarks/training_step_checks.csv")
    p.add_argument("--worker", choices=("gfe_amd", "ae"), help=argparse.SUPPRESS)
    p.add_argument("--start", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    return p


def profile(a) -> int:
    """--model without --compare or --before: where a GFE-amd step's time goes (see the docstring)."""
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


def main(argv=None) -> int:
    p = _parser()
    a = p.parse_args(argv)
    if a.worker:
        return worker(a)
    if a.before:
        return before_after(a)
    if a.compare:
        return compare(a)
    if a.model is None:
        p.error("--model is needed without --compare")
    return profile(a)


if __name__ == "__main__":
    raise SystemExit(main())
