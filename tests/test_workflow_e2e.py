"""End to end: the quick config in a temporary copy of the repository (the session fixture
`quick_run`, tests/conftest.py), the HTML report, and the committed results re-aggregated
identically. (Determinism of the results: tests/test_faults.py.)"""

from __future__ import annotations

import math
import shutil

import pandas as pd
import pytest

from workflow_helpers import FIGURES, PLOT_RULES, PROVENANCE, REPO, TABLES, copy_repo, snakemake

pytestmark = pytest.mark.slow

COLUMNS = {
    "e1_data_efficiency": ["dataset", "model", "train_size", "seed", "steps", "test_loss_mean", "test_loss_std",
                           "test_nfe_mean", "final_train_loss", "total_params", "train_s"],
    "e2_learning_curves": ["dataset", "model", "train_size", "seed", "step", "images_seen", "elapsed_s",
                           "loss_mean"],
    "e3_solver_comparison": ["dataset", "model", "train_size", "seed", "step", "loss", "nfe", "seconds"],
    "e4_adjoint_ablation": ["dataset", "model", "train_size", "seed", "step", "loss", "nfe", "seconds"],
    "e5_encoding_convergence": ["dataset", "method", "t", "nfe_mean", "loss_mean", "loss_std"],
    "e6_reconstructions": ["dataset", "model", "train_size_label", "seed", "image", "label", "loss"],
    "e7_latent_maps": ["dataset", "model", "train_size", "seed", "label", "tsne_x", "tsne_y"],
    "parameter_counts": ["dataset", "model", "decoder_params", "encoder_params", "total_params"],
}


def test_quick_config_produces_every_output(quick_run):
    for name in TABLES:
        assert (quick_run / "results" / f"{name}.csv").stat().st_size > 0, name
    assert "Claim 1" in (quick_run / "results/summary.md").read_text()
    for name in FIGURES:
        for ext in ("png", "pdf"):
            assert (quick_run / "figures" / f"{name}.{ext}").stat().st_size > 1000, (name, ext)


@pytest.mark.parametrize("table", TABLES)
def test_tables_have_the_promised_columns_and_no_nan(quick_run, table):
    frame = pd.read_csv(quick_run / "results" / f"{table}.csv")
    assert len(frame) > 0
    missing = [c for c in COLUMNS[table] + ["config_name", "config_hash"] if c not in frame.columns]
    assert not missing, missing
    assert not [c for c in PROVENANCE if c not in frame.columns]
    assert not frame.isna().any().any(), frame.columns[frame.isna().any()].tolist()
    assert set(frame["config_name"]) == {"quick"}


def test_report_builds(quick_run):
    result = snakemake(quick_run, "--configfile", "config/quick.yaml", "--report", "results/report.html")
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert (quick_run / "results/report.html").stat().st_size > 10000


def test_committed_results_reaggregate_identically(tmp_path):
    """Re-run the aggregation and figure rules from the committed per-run metric files
    (models and data are not committed, so no other rule may run) and compare the tables."""
    committed = REPO / "results" / "runs"
    if not committed.is_dir():
        pytest.skip("no committed per-run results")
    repo = copy_repo(tmp_path / "repo", skip_results=False)
    for name in TABLES:
        (repo / "results" / f"{name}.csv").unlink()
    (repo / "results" / "summary.md").unlink()
    shutil.rmtree(repo / "figures")
    result = snakemake(repo, "--cores", "2", "--allowed-rules", "aggregate", *PLOT_RULES, "all")
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    for name in TABLES:
        new, old = (repo / "results" / f"{name}.csv").read_text(), (REPO / "results" / f"{name}.csv").read_text()
        assert new == old, name
    assert (repo / "results/summary.md").read_text() == (REPO / "results/summary.md").read_text()
    for name in FIGURES:
        assert (repo / "figures" / f"{name}.png").exists()
    assert not math.isnan(pd.read_csv(repo / "results/e1_data_efficiency.csv")["test_loss_mean"].mean())
