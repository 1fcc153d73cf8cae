"""End to end: the quick config in a temporary copy of the repository (the session fixture
`quick_run`, tests/conftest.py), the HTML report, and the committed results re-aggregated
identically. (Determinism of the results: tests/test_faults.py.)"""

from __future__ import annotations

import math
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml

from workflow_helpers import FIGURES, PROVENANCE, REPO, TABLE_RULES, TABLES, copy_repo, snakemake

pytestmark = pytest.mark.slow

RUN_KEYS = ["dataset", "experiment", "model", "train_size", "train_size_label", "seed"]
VALIDATION = [
    "step",
    "images_seen",
    "elapsed_s",
    "n_images",
    "loss_mean",
    "loss_std",
    "loss_median",
    "nfe_mean",
    "converged_frac",
    "seconds",
    "images_per_s",
    "amd_rule",
]
TRAIN_LOG = ["step", "images_seen", "loss", "nfe", "seconds", "elapsed_s", "grad_cosine", "amd_rule"]
COLUMNS = {
    "e1_data_efficiency": RUN_KEYS
    + [
        "amd_rule",
        "batch_size",
        "stop_reason",
        "steps",
        "max_steps",
        "images_seen",
        "epochs",
        "best_step",
        "best_images_seen",
        "best_val_loss",
        "val_every",
        "patience",
        "plateau_window",
        "patience_fraction",
        "min_improvement",
        "test_loss_mean",
        "test_loss_std",
        "test_loss_median",
        "test_nfe_mean",
        "test_converged_frac",
        "final_train_loss",
        "train_loss_last10",
        "train_nfe_mean",
        "total_params",
        "step_mean_s",
        "train_s",
    ],
    "e1_continuation": [
        "dataset",
        "model",
        "train_size",
        "seed",
        "stop_reason",
        "stop_step",
        "best_step",
        "best_at_stop",
        "best_at_stop_again",
        "continued_to",
        "best_step_continued",
        "best_continued",
        "gain",
        "plateau_window",
        "patience_fraction",
    ],
    "e2_learning_curves": RUN_KEYS + VALIDATION,
    "e2_authors_points": [
        "dataset",
        "model",
        "amd_rule",
        "target_images_seen",
        "images_seen",
        "n_seeds",
        "loss_mean",
        "loss_std",
    ],
    "e3_solver_comparison": RUN_KEYS + TRAIN_LOG,
    "e3_heldout": RUN_KEYS + VALIDATION,
    "e4_adjoint_ablation": RUN_KEYS + TRAIN_LOG,
    "e4_heldout": RUN_KEYS + VALIDATION,
    "e5_encoding_convergence": [
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
    ],
    "e5_robustness": [
        "dataset",
        "decoder_model",
        "decoder_experiment",
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
        "seconds",
    ],
    "e6_reconstructions": [
        "dataset",
        "experiment",
        "model",
        "train_size_label",
        "seed",
        "image",
        "test_idx",
        "label",
        "loss",
        "npz",
    ],
    "e7_latent_maps": [
        "dataset",
        "model",
        "train_size",
        "seed",
        "image",
        "split",
        "image_idx",
        "label",
        "tsne_x",
        "tsne_y",
        "perplexity",
    ],
    "parameter_counts": ["dataset", "model", "decoder_params", "encoder_params", "total_params"],
}


def nan_allowed(model_settings: dict) -> dict:
    """Per table, the columns that may be empty (NaN) and in which rows (a boolean mask of
    the frame), each for a reason; an empty cell anywhere else fails the test."""
    not_amd = [m for m, s in model_settings.items() if s.get("solver") != "amd"]
    approximate = [m for m, s in model_settings.items() if s.get("gradient", "approximate") == "approximate"]

    def no_amd_rule(f):  # amd_rule is '' for models without AMD (the AE, rk4 flows)
        return f["model"].isin(not_amd)

    def no_cosine(f):  # grad_cosine is logged only in E4, and only for a non-approximate gradient
        return (f["experiment"] != "e4") | f["model"].isin(approximate)

    def diverged(f):  # an E5 curve from its first non-finite point on: loss_mean = inf
        return np.isinf(f["loss_mean"])

    return {
        "e1_data_efficiency": {
            "amd_rule": no_amd_rule,
            "best_val_loss": lambda f: f["val_every"] == 0,
        },  # no validation check
        "e2_learning_curves": {"amd_rule": no_amd_rule},
        "e2_authors_points": {
            "amd_rule": no_amd_rule,
            "loss_std": lambda f: f["n_seeds"] < 2,
        },  # extra_models: first seed only
        "e3_solver_comparison": {"amd_rule": no_amd_rule, "grad_cosine": no_cosine},
        "e3_heldout": {"amd_rule": no_amd_rule},
        "e4_adjoint_ablation": {"amd_rule": no_amd_rule, "grad_cosine": no_cosine},
        "e4_heldout": {"amd_rule": no_amd_rule},
        "e5_encoding_convergence": {
            "steps": lambda f: f["solver"] == "amd",  # AMD has no step count
            "nfe_mean": diverged,
            "loss_std": diverged,
        },
        "e5_robustness": {  # AMD has no step count, rk4 no dt; a diverged flow has no NFE or time
            "steps": lambda f: f["solver"] == "amd",
            "dt_init": lambda f: f["solver"] == "rk4",
            "dt_max": lambda f: f["solver"] == "rk4",
            "nfe_mean": lambda f: f["diverged"],
            "seconds": lambda f: f["diverged"],
        },
    }


def test_quick_config_produces_every_output(quick_run):
    for name in TABLES:
        assert (quick_run / "results/quick" / f"{name}.csv").stat().st_size > 0, name
    floors = pd.read_csv(quick_run / "results/quick/data_floors.csv")
    assert floors[["split", "loss"]].values.tolist() == [["val", "bce"], ["test", "bce"]]
    assert floors["floor_mean"].between(0.2, 0.3).all()  # Fashion-MNIST's pixels: most of a BCE
    summary = (quick_run / "results/quick/summary.md").read_text()
    assert "Claim 1" in summary and "## Does E1's stopping rule stop early?" in summary
    for name in FIGURES:
        for ext in ("png", "pdf"):
            assert (quick_run / "figures/quick" / f"{name}.{ext}").stat().st_size > 1000, (name, ext)


def test_a_config_writes_only_under_its_own_name(quick_run):
    """results/<name>/, figures/<name>/, logs/<name>/, data/prepared/<name>/: the quick run
    leaves no file where the default config's (committed) results live."""
    for top in ("results", "figures", "logs", "data/prepared"):
        assert sorted(p.name for p in (quick_run / top).iterdir()) == ["quick"], top


@pytest.mark.parametrize("table", TABLES)
def test_tables_have_the_promised_columns_and_no_nan(quick_run, table):
    """No empty cell except where a table's column is meant to have one (nan_allowed)."""
    frame = pd.read_csv(quick_run / "results/quick" / f"{table}.csv")
    assert len(frame) > 0
    missing = [c for c in COLUMNS[table] + ["config_name", "config_hash"] if c not in frame.columns]
    assert not missing, missing
    assert not [c for c in PROVENANCE if c not in frame.columns]
    settings = yaml.safe_load((quick_run / "config/quick.yaml").read_text())["model_settings"]
    allowed = nan_allowed(settings).get(table, {})
    unexpected = {}
    for column in frame.columns:
        empty = frame[column].isna()
        if column in allowed:
            empty &= ~allowed[column](frame)
        if empty.any():
            unexpected[column] = f"{int(empty.sum())} rows, the first: {frame[empty].iloc[0].to_dict()}"
    assert not unexpected, f"unexpected empty cells: {unexpected}"
    assert set(frame["config_name"]) == {"quick"}


def test_report_builds(quick_run):
    result = snakemake(quick_run, "--configfile", "config/quick.yaml", "--report", "results/quick/report.html")
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert (quick_run / "results/quick/report.html").stat().st_size > 10000


def test_committed_results_reaggregate_identically(tmp_path):
    """Re-run the aggregation, summary and figure rules from the committed per-run metric
    files (models and data are not committed, so no other rule may run) and compare the
    tables and results/default/summary.md."""
    committed = REPO / "results/default/runs"
    if not committed.is_dir():
        pytest.skip("no committed per-run results")
    repo = copy_repo(tmp_path / "repo", skip_results=False)
    results = repo / "results/default"
    for name in TABLES:
        (results / f"{name}.csv").unlink(missing_ok=True)
    (results / "summary.md").unlink(missing_ok=True)
    shutil.rmtree(repo / "figures", ignore_errors=True)
    result = snakemake(repo, "--cores", "2", "--allowed-rules", *TABLE_RULES, "all")
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    for name in TABLES:
        new, old = (results / f"{name}.csv").read_text(), (committed.parent / f"{name}.csv").read_text()
        assert new == old, name
    assert (results / "summary.md").read_text() == (committed.parent / "summary.md").read_text()
    for name in FIGURES:
        assert (repo / "figures/default" / f"{name}.png").exists()
    assert not math.isnan(pd.read_csv(results / "e1_data_efficiency.csv")["test_loss_mean"].mean())
