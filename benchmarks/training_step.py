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
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from gfe import encode, flows, io
from gfe.evaluation import evaluate
from gfe.losses import bce_with_logits
from gfe.training import OptimizerSettings

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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="a GFE model file written by the workflow")
    p.add_argument("--prepared", default="data/prepared/default/fashion_mnist.pt")
    p.add_argument("--n-images", type=int, default=1000)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--val-every", type=int, default=50)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
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
