"""Helpers of the workflow tests: a temporary copy of the repository, running snakemake; a
test whose tool is missing (skipped, or failed in CI)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SNAKEMAKE = str(BIN / "snakemake")
SNAKEFMT = str(BIN / "snakefmt")
CONFIGS = ["config/config.yaml", "config/quick.yaml", "config/paper.yaml"]
# SLURM_CONF of every test process but the SLURM tests' own (tests/conftest.py)
# How the rules run a script of src/scripts/: with src/ on PYTHONPATH (workflow/rules/common.smk).
SCRIPT_ENV = {**os.environ, "PYTHONPATH": str(REPO / "src")}
NO_SLURM_CONF = str(Path(__file__).resolve().parent / "no_slurm.conf")

# The tables of rule aggregate (results/<name>.csv); rule summarize writes results/summary.md.
TABLES = [
    "e1_data_efficiency",
    "e1_continuation",
    "e2_learning_curves",
    "e2_authors_points",
    "e3_solver_comparison",
    "e3_heldout",
    "e4_adjoint_ablation",
    "e4_heldout",
    "e5_encoding_convergence",
    "e5_robustness",
    "e6_reconstructions",
    "e7_latent_maps",
    "parameter_counts",
]
FIGURES = [
    "headline",
    "e1_data_efficiency",
    "e2_learning_curves",
    "e3_solver_comparison",
    "e4_adjoint_ablation",
    "e5_encoding_convergence",
    "e5_robustness",
    "e6_reconstructions",
    "e7_latent_maps",
    "claims_forest",
    "benchmarks",
]
PROVENANCE = [
    "config_name",
    "config_hash",
    "git_commit",
    "torch_version",
    "torchdiffeq_version",
    "snakemake_version",
    "device",
]
PLOT_RULES = [f"plot_e{i}" for i in range(1, 8)] + ["plot_e5_robustness", "plot_claims", "plot_headline"]
# The rules that read only per-run result files (tables, summary, figures): all that may run
# when the committed results are re-aggregated.
TABLE_RULES = [
    "check_runs",
    "aggregate",
    "summarize",
    *PLOT_RULES,
    "report_summary",
    "report_table",
    "latent_separability",
    "plot_benchmarks",
]


def missing(reason: str) -> None:
    """A test that cannot run here: skipped with `reason`, which says what to install, or,
    where the environment variable CI is set (CI runs every test), failed with it."""
    import pytest

    if os.environ.get("CI"):
        pytest.fail(f"CI must run this test: {reason}")
    pytest.skip(reason)


def repo_files() -> list[str]:
    """Tracked files plus untracked files git does not ignore (work in progress)."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [f for f in out.split("\0") if f and (REPO / f).is_file()]


def copy_repo(target: Path, *, skip_results: bool = True) -> Path:
    """Copy the repository's files into target (results/ and figures/ left out unless asked)."""
    for name in repo_files():
        if skip_results and name.split("/")[0] in ("results", "figures"):
            continue
        dest = target / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, dest)
    subprocess.run(["git", "init", "-q"], cwd=target, check=True)
    return target


def snakemake(cwd: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([SNAKEMAKE, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def ae_train_args(prepared, folder, checkpoint, steps=2) -> list[str]:
    """The arguments of src/scripts/train.py for a tiny autoencoder run (latent 4, 10 training images,
    batch 5) from `prepared`, resuming from or saving to `checkpoint`, its outputs in `folder`."""
    folder = Path(folder)
    return [
        "--prepared",
        str(prepared),
        "--autoencoder",
        "--loss",
        "bce",
        "--latent-dim",
        "4",
        "--optimizer",
        '{"name": "rmsprop", "lr": 0.0005}',
        "--dataset",
        "fashion_mnist",
        "--experiment",
        "e1",
        "--model",
        "ae",
        "--train-size",
        "10",
        "--seed",
        "0",
        "--steps",
        str(steps),
        "--batch-size",
        "5",
        "--checkpoint",
        str(checkpoint),
        "--model-out",
        str(folder / "m.pt"),
        "--train-log",
        str(folder / "log.csv"),
        "--validation",
        str(folder / "v.csv"),
        "--run-json",
        str(folder / "run.json"),
    ]


# The quick config on its first seed and smallest training size: every rule of the workflow
# with about 70% of the quick run's jobs and half its training. The determinism and SLURM
# tests run it again (one core; through SLURM) and compare its per-run files with the
# session's quick_run, where the same runs were made among the others.
REDUCED_QUICK = (
    "train_sizes: [20]\nseeds: [0]\nsolver_comparison: {seeds: [0]}\nadjoint_ablation: {seeds: [0]}\n"
    "encoding_convergence: {robustness: {seeds: [0]}}\n"
)


def write_reduced_quick(repo: Path) -> list[str]:
    """The --configfile arguments of the reduced quick config (written into `repo`)."""
    (repo / "config/reduced.yaml").write_text(REDUCED_QUICK)
    return ["config/quick.yaml", "config/reduced.yaml"]


def rules_run(log: str) -> set[str]:
    """The rules of the jobs a Snakemake run's output lists."""
    return set(re.findall(r"^(?:local)?rule (\w+):$", log, re.M))


def per_run_files(repo: Path, drop_column) -> dict[str, str]:
    """Every per-run result file under results/quick/runs (CSV without the columns
    `drop_column` names, JSON as it is) as text, by path; a CSV with a `decoder_seed` column
    (claim 4's sweep) as one entry per seed, `<path>#decoder_seed=<seed>`, so that a run of
    fewer seeds compares with its own seeds' rows."""
    import pandas as pd

    files = {}
    for path in sorted((repo / "results/quick/runs").rglob("*")):
        if path.suffix == ".csv":
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
            frame = frame[[c for c in frame.columns if not drop_column(c)]]
            name = str(path.relative_to(repo))
            if "decoder_seed" in frame:  # a sweep of several seeds' decoders: one entry per seed
                for seed, part in frame.groupby("decoder_seed", sort=True):
                    files[f"{name}#decoder_seed={seed}"] = part.to_csv(index=False)
            else:
                files[name] = frame.to_csv()
        elif path.suffix == ".json" and not path.name.startswith("identity_"):  # records hold the commit
            record = json.loads(path.read_text())
            files[str(path.relative_to(repo))] = json.dumps(
                {k: v for k, v in record.items() if not drop_column(k)}, sort_keys=True
            )
    return files
