"""Encoding throughput on trained GFE decoders, and the latent bank (gfe.LatentBank). Not a test.

    python benchmarks/encode_trained.py --data data \\
        --decoder results/default/models/fashion_mnist/e2/gfe_amd/Nfull/seed0.pt \\
        --early-decoder /tmp/early_decoder.pt --out results/benchmarks/encode_trained.csv

The E2 decoders are written by the workflow's `train` rule (default config, target
`results/default/models/fashion_mnist/e2/gfe_amd/Nfull/seed{0,1,2}.pt`: GFE-amd with the
authors' shared rule on the full training split); model files are not committed. Their
step is read from the run's `run.json` beside (`results/<name>/runs/...`) when there.
`--early-decoder` is the 500-step decoder of benchmarks/encode.py (a state_dict; trained
here with its settings and saved when the file is missing).

For each decoder (`--decoder` may be repeated; the early one last), on the first
`--n-images` (500) Fashion-MNIST test images, every non-bank method from the same z0
(U[0,1)^20 drawn once, seed 0, as benchmarks/encode.py), one row per method and batch:

* `amd_shared` at batch 5: the authors' shared-step rule at their batch, the baseline; its
  mean loss is the reference, and "equal loss" is a mean loss at most `--equal-loss` (0.1%)
  above it on the same images; `speedup` is images/s over its images/s.
* then at batch 5 and at `--batch` (500): `amd_shared` (large batch only), per-sample `amd`,
  `rk4` (100 steps), `lbfgs` (memory 8, tol 1e-6), `lbfgs_dense` (tol 1e-6, 1e-4, 3e-4);
* beyond the papers, with a `gfe.LatentBank` of the first `--bank-size` (3,000) training
  images of the authors' split, encoded once (dense L-BFGS, tol 1e-6, z0 uniform): its own
  row `bank_build` (build time, amortised in `break_even_images`), `bank_z0_*` (gfe.encode
  with z0 = bank.initial(x), the lookup timed with it) and `bank_whitened` (bank.encode:
  the same start, the descent in the bank's whitened coordinates; settings in BANK_FAST,
  chosen on test images 1000-1499 of seed 0's decoder, not on the images measured here:
  `--tune --decoder seed0.pt` prints that choice, see `tune`).

Rows that take under `--repeat-under` seconds are run three times and the median timing
is kept (their losses are the same each time). Left out of the committed benchmark's
rows: dopri5 (31,574 NFE per image on the early decoder), rk4 with 10 steps and the
2nd-order flow (mean loss 1.14 and 1.41 there), the AE encoder (not an encoding of the
GFE decoder). Torch runs on `--threads` (1) thread; the CSV is rewritten after every row,
and the JSON beside it holds the provenance (command, commit, uncommitted files, CPU, load).
A full run of three E2 decoders and the early one takes about 20 minutes on one thread.
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
import time
from pathlib import Path

import torch

import gfe
from gfe.bank import mean_hessian, whitening_matrix
from gfe.data import authors_split, load_dataset
from gfe.io import DamagedFileError, atomic_torch_save, load_tensors, read_model, write_text
from gfe.losses import resolve_loss
from gfe.training import train

sys.path.insert(0, str(Path(__file__).parent))
from encode import GFE_AMD, OPTIMIZER, SEED, cpu_info, fresh_decoder, git_commit  # noqa: E402

AMD = {k: v for k, v in GFE_AMD.items() if k != "z0"}
DENSE = dict(solver="lbfgs_dense", tol=1e-6)
BANK_BUILD = dict(solver="lbfgs_dense", z0="uniform", tol=1e-6)
BANK_Z0 = dict(solver="lbfgs_dense", tol=1e-4, initial_step=0.1)
BANK_FAST = dict(solver="lbfgs_dense", max_evals=9, tol=3e-4, initial_step=0.1)
COLUMNS = [
    "decoder",
    "decoder_step",
    "method",
    "batch",
    "n_images",
    "images_per_s",
    "nfe_per_image",
    "mean_loss",
    "loss_vs_baseline_pct",
    "equal_loss",
    "speedup",
    "cpu_images_per_s",
    "cpu_speedup",
    "seconds",
    "break_even_images",
    "cpu",
    "notes",
]


def plan(big):
    """(method, batch, options, start, notes) of every row after the baseline; start: 'z0' (the
    shared U[0,1) z0), 'bank' (z0 = bank.initial(x)) or 'bank.encode'."""
    rows = [("amd_shared", big, dict(AMD, shared=True), "z0", "the authors' shared rule at a large batch")]
    methods = [
        ("amd", AMD, "z0", "per-sample AMD (the paper's step rule per sample)"),
        ("rk4", dict(solver="rk4", steps=100, tau=1e4), "z0", "torchdiffeq rk4, 100 steps, tau 1e4"),
        ("lbfgs", dict(solver="lbfgs", memory=8, tol=1e-6), "z0", "beyond the papers: L-BFGS, memory 8, tol 1e-6"),
        ("lbfgs_dense", DENSE, "z0", "beyond the papers: dense L-BFGS, tol 1e-6"),
        ("lbfgs_dense_tol1e-4", dict(DENSE, tol=1e-4), "z0", "beyond the papers: dense L-BFGS, tol 1e-4"),
        ("lbfgs_dense_tol3e-4", dict(DENSE, tol=3e-4), "z0", "beyond the papers: dense L-BFGS, tol 3e-4"),
        ("bank_z0_tol3e-4", dict(DENSE, tol=3e-4), "bank", "dense L-BFGS, tol 3e-4, from z0 = bank.initial(x)"),
        ("bank_z0", BANK_Z0, "bank", "dense L-BFGS, tol 1e-4, initial_step 0.1, from z0 = bank.initial(x)"),
        (
            "bank_whitened",
            BANK_FAST,
            "bank.encode",
            "bank.encode: from bank.initial(x) in the whitened coordinates; dense L-BFGS, max_evals 9, tol 3e-4, "
            "initial_step 0.1",
        ),
    ]
    for batch in (5, big):
        rows += [(name, batch, options, start, notes) for name, options, start, notes in methods]
    return rows


def encode_batch(decoder, bank, x, z0, options, start):
    """gfe.Encoding of one batch: from z0, from bank.initial(x), or by bank.encode."""
    if start == "z0":
        return gfe.encode(decoder, x, z0=z0, **options)
    if start == "bank":
        return gfe.encode(decoder, x, z0=bank.initial(x), **options)
    return bank.encode(x, **options)


def timed(decoder, bank, images, z0, batch, options, start):
    """(wall s, cpu s, loss (N,), nfe (N,)) of encoding `images` in batches of `batch`."""
    losses, nfes = [], []
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(0, len(images), batch):
        out = encode_batch(decoder, bank, images[i : i + batch], z0[i : i + batch], options, start)
        losses.append(out.loss)
        nfes.append(out.nfe)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return wall, cpu, torch.cat(losses).double(), torch.cat(nfes).double()


def measure(decoder, bank, images, z0, batch, options, start, repeat_under):
    """A row's numbers; rows faster than `repeat_under` s are timed 3 times (median)."""
    runs = [timed(decoder, bank, images, z0, batch, options, start)]
    if runs[0][0] < repeat_under:
        runs += [timed(decoder, bank, images, z0, batch, options, start) for _ in range(2)]
    wall = sorted(r[0] for r in runs)[len(runs) // 2]
    cpu = sorted(r[1] for r in runs)[len(runs) // 2]
    _, _, loss, nfe = runs[0]
    n = len(images)
    return {
        "batch": batch,
        "n_images": n,
        "images_per_s": n / wall,
        "cpu_images_per_s": n / cpu,
        "seconds": wall,
        "nfe_per_image": float(nfe.mean()),
        "mean_loss": float(loss.mean()),
    }


def load_decoder(path, shape):
    """A model file's decoder (gfe.io.read_model), or a bare state_dict (benchmarks/encode.py's)."""
    try:
        decoder = read_model(path).decoder
    except DamagedFileError:
        decoder = fresh_decoder(shape)
        decoder.load_state_dict(load_tensors(path))
    return decoder.eval().requires_grad_(False)


def run_step(path):
    """The training steps of a workflow model file, from its run.json (results/<name>/runs/...)."""
    run_json = Path(str(Path(path).with_suffix("")).replace("/models/", "/runs/")) / "run.json"
    if not run_json.exists():
        return "unknown"
    return json.loads(run_json.read_text()).get("steps", "unknown")


def early_decoder(path, shape, train_images, steps):
    """benchmarks/encode.py's decoder: loaded from `path`, else trained with its settings and saved."""
    if Path(path).exists():
        return load_decoder(path, shape)
    decoder = fresh_decoder(shape)
    started = time.perf_counter()
    train(decoder, train_images, steps=steps, batch_size=5, seed=SEED, encode_options=GFE_AMD, optimizer=OPTIMIZER)
    print(f"trained the early decoder: {steps} steps in {time.perf_counter() - started:.0f} s", flush=True)
    atomic_torch_save(decoder.state_dict(), path)
    return decoder.eval().requires_grad_(False)


def add_ratios(row, base, tolerance):
    row["loss_vs_baseline_pct"] = 100 * (row["mean_loss"] / base["mean_loss"] - 1)
    row["equal_loss"] = row["mean_loss"] <= base["mean_loss"] * (1 + tolerance)
    row["speedup"] = row["images_per_s"] / base["images_per_s"]
    row["cpu_speedup"] = row["cpu_images_per_s"] / base["cpu_images_per_s"]


def break_even(build, rows):
    """Images after which the bank's build plus its fastest equal-loss row take less time than
    the fastest equal-loss row without the bank (the baseline is one); (images, which rows)."""
    equal = [r for r in rows if r["equal_loss"]]
    banked = [r for r in equal if r["method"].startswith("bank_")]
    plain = [r for r in equal if not r["method"].startswith("bank_")]
    if not banked:
        return None, "no row with the bank reached equal loss"
    fast, slow = max(banked, key=lambda r: r["images_per_s"]), max(plain, key=lambda r: r["images_per_s"])
    saved = 1 / slow["images_per_s"] - 1 / fast["images_per_s"]
    which = f"{fast['method']} at batch {fast['batch']} against {slow['method']} at batch {slow['batch']}"
    return (build["seconds"] / saved if saved > 0 else None), which


def bank_row(bank, decoder_rows):
    row = {
        "method": "bank_build",
        "batch": 500,
        "n_images": len(bank),
        "images_per_s": len(bank) / bank.build_seconds,
        "seconds": bank.build_seconds,
        "nfe_per_image": float(bank.nfe.double().mean()),
        "mean_loss": float(bank.loss.double().mean()),
    }
    row["break_even_images"], against = break_even(row, decoder_rows)
    row["notes"] = (
        f"gfe.LatentBank of the first {len(bank)} training images (authors' split): encoded once (dense L-BFGS, "
        "tol 1e-6, z0 uniform) plus the mean Hessian at 256 codes; mean_loss is on the bank's own images; "
        f"break_even_images: build seconds over the time per image saved, {against}"
    )
    return row


def decoder_rows(decoder, label, step, data, args, cpu, out, rows):
    """Every row of one decoder, appended to `rows` (the CSV rewritten after each)."""
    test = data["test"]
    z0 = torch.rand(len(test), 20, generator=torch.Generator().manual_seed(0))
    common = {"decoder": label, "decoder_step": step, "cpu": cpu}
    base = {**common, "method": "amd_shared", "notes": "the authors' shared rule at their batch 5: the baseline"}
    base.update(measure(decoder, None, test, z0, 5, dict(AMD, shared=True), "z0", args.repeat_under))
    add_ratios(base, base, args.equal_loss)
    mine = [base]
    report(base, rows + mine, out)
    bank = gfe.LatentBank(decoder, data["bank"], BANK_BUILD)
    for name, batch, options, start, notes in plan(args.batch):
        row = {**common, "method": name, "notes": notes}
        row.update(measure(decoder, bank, test, z0, batch, options, start, args.repeat_under))
        add_ratios(row, base, args.equal_loss)
        mine.append(row)
        report(row, rows + mine, out)
    mine.append({**common, **bank_row(bank, mine)})
    report(mine[-1], rows + mine, out)
    rows.extend(mine)


def report(row, rows, out):
    write_rows(rows, out)
    print(
        f"  {row['method']:20s} batch {row['batch']:4d}: {row['images_per_s']:9.1f} img/s  "
        f"nfe {row['nfe_per_image']:7.1f}  loss {row['mean_loss']:.5f}  "
        f"speedup {row.get('speedup') or 0:7.1f}  equal {row.get('equal_loss', '-')}  ({row['seconds']:.1f} s)",
        flush=True,
    )


def write_rows(rows, out):
    table = io.StringIO(newline="")
    writer = csv.DictWriter(table, fieldnames=COLUMNS)
    writer.writeheader()
    for r in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items() if k in COLUMNS})
    write_text(table.getvalue(), out)


TUNE_IMAGES = slice(1000, 1500)  # --tune: test images 1000-1499, apart from the measured ones


def tune(decoder, test_images, train_images, args):
    """How bank.encode's settings were chosen (--tune; printed, not written): on test images
    1000-1499 with seed 0's decoder, the baseline's mean loss, then bank sizes at BANK_FAST, then
    damping x initial_step x max_evals x tol with the 3,000-image bank (loss and NFE only)."""
    images = test_images[TUNE_IMAGES]
    z0 = torch.rand(len(images), 20, generator=torch.Generator().manual_seed(0))
    base = measure(decoder, None, images, z0, 5, dict(AMD, shared=True), "z0", args.repeat_under)
    print(f"baseline (amd_shared, batch 5): loss {base['mean_loss']:.5f}, nfe {base['nfe_per_image']:.1f}")
    banks = {}
    for size in (1000, 3000, 10000):
        bank = banks[size] = gfe.LatentBank(decoder, train_images[:size], BANK_BUILD)
        lookup = time.perf_counter()
        bank.nearest(images)
        lookup = time.perf_counter() - lookup
        row = measure(decoder, bank, images, z0, args.batch, BANK_FAST, "bank.encode", args.repeat_under)
        print(
            f"bank {size}: build {bank.build_seconds:.1f} s, lookup {1e3 * lookup:.0f} ms, "
            f"{row['images_per_s']:.0f} img/s, {versus(row['mean_loss'], row['nfe_per_image'], base)}",
            flush=True,
        )
    bank = banks[3000]
    curvature(decoder, bank, images[:3])
    grid = [
        (d, st, e, t)
        for d in (1e-4, 1e-3, 1e-2)
        for st in (0.05, 0.1, 0.2)
        for e in (6, 7, 8, 9)
        for t in (0, 1e-4, 3e-4)
    ]
    for damping, step, evals, tol in grid:
        bank.whitening = whitening_matrix(bank.curvature, damping)
        out = bank.encode(images, solver="lbfgs_dense", max_evals=evals, tol=tol, initial_step=step)
        print(
            f"damping {damping:g} initial_step {step:g} max_evals {evals} tol {tol:g}: "
            f"{versus(float(out.loss.double().mean()), float(out.nfe.double().mean()), base)}",
            flush=True,
        )


def curvature(decoder, bank, images):
    """Print the eigenvalue range of the bank's mean Hessian, and the condition number of the
    Hessian of each of `images` at its code (encoded to a stationary point from the bank)."""
    values = torch.linalg.eigvalsh(bank.curvature)
    print(f"mean Hessian at 256 codes: eigenvalues {values.min():.2e} to {values.max():.2f}")
    codes = bank.encode(images, solver="lbfgs_dense", tol=0.0, grad_tol=1e-6, max_iters=3000).z
    _, loss_fn = resolve_loss(None, decoder)
    for i in range(len(images)):
        each = torch.linalg.eigvalsh(mean_hessian(decoder, codes[i : i + 1], images[i : i + 1], loss_fn))
        print(
            f"image {i}: Hessian at its code, eigenvalues {each.min():.2e} to {each.max():.2f}, "
            f"condition number {each.max() / each.min():.3g}"
        )


def versus(loss, nfe, base):
    return f"nfe {nfe:.2f}, loss {loss:.5f} ({100 * (loss / base['mean_loss'] - 1):+.2f}% vs the baseline)"


def uncommitted():
    """`git status --porcelain` of the library and the benchmarks: what the commit does not hold."""
    try:
        command = ["git", "status", "--porcelain", "--", "src/gfe", "benchmarks"]
        return subprocess.run(command, capture_output=True, text=True, check=True).stdout.splitlines()  # noqa: S603
    except Exception:  # noqa: BLE001 - provenance only
        return "unknown"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decoder", action="append", default=[], help="a trained decoder's model file (repeatable)")
    parser.add_argument(
        "--early-decoder", help="benchmarks/encode.py's 500-step decoder (trained and saved if missing)"
    )
    parser.add_argument("--early-steps", type=int, default=500)
    parser.add_argument("--data", default="data")
    parser.add_argument("--out", default="results/benchmarks/encode_trained.csv")
    parser.add_argument("--n-images", type=int, default=500)
    parser.add_argument("--batch", type=int, default=500, help="the large batch")
    parser.add_argument("--bank-size", type=int, default=3000)
    parser.add_argument("--equal-loss", type=float, default=1e-3, help="relative margin of 'equal loss' (0.1%%)")
    parser.add_argument("--repeat-under", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tune", action="store_true", help="print how bank.encode's settings were chosen (see tune)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    began, load_before = time.perf_counter(), os.getloadavg()
    raw = load_dataset("fashion_mnist", args.data)
    train_images = raw.train_images[authors_split()[0]]
    data = {"test": raw.test_images[: args.n_images], "bank": train_images[: args.bank_size]}
    if args.tune:
        return tune(load_decoder(args.decoder[0], raw.image_shape), raw.test_images, train_images, args)
    cpu = cpu_info()["cpu_model"]
    out, rows = Path(args.out), []
    decoders = [(path, lambda p=path: load_decoder(p, raw.image_shape), run_step(path)) for path in args.decoder]
    if args.early_decoder:
        early = args.early_decoder
        load = lambda: early_decoder(early, raw.image_shape, train_images, args.early_steps)  # noqa: E731
        decoders.append((f"benchmarks/encode.py's decoder ({early})", load, args.early_steps))
    for label, load, step in decoders:
        print(f"{label} (step {step})", flush=True)
        decoder_rows(load(), label, step, data, args, cpu, out, rows)
    meta = {
        "command": " ".join([Path(sys.argv[0]).as_posix(), *(argv if argv is not None else sys.argv[1:])]),
        "git_commit": git_commit(),
        "uncommitted": uncommitted(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": args.threads,
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "total_seconds": time.perf_counter() - began,
        **cpu_info(),
    }
    write_text(json.dumps(meta, indent=2) + "\n", out.with_suffix(".json"))
    print(f"total {meta['total_seconds']:.0f} s; load average before {load_before}, after {meta['loadavg_after']}")


if __name__ == "__main__":
    main()
