"""src/scripts/summarize.py's data-driven lines: settings read from the tables, never typed in."""

import json
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from scripts import summarize  # noqa: E402  (the workflow's scripts live in src/)


def test_batch_sizes_come_from_the_runs_images_seen():
    held = pd.DataFrame({"step": [0, 10, 20], "images_seen": [0, 80, 160]})
    assert summarize.batch_of(held) == "8"
    assert summarize.batch_of(pd.DataFrame()) == "?"


def test_e5_common_decoder_settings_come_from_the_table():
    e5 = pd.DataFrame(
        {
            "panel": ["common decoder", "common decoder", "own decoder"],
            "decoder_model": ["gfe_amd", "gfe_amd", "gfe_rk4"],
            "z0": ["zeros", "zeros", "uniform"],
            "tau": [100.0, 15000.0, 7.0],
            "n_images": [50, 50, 50],
        }
    )
    text = summarize.e5_common(e5)
    assert text == "the decoder of the E2 run of GFE-amd, z0 = zeros, τ in {100, 15000}, 50 test images"


def test_e1_stopping_states_the_recorded_rule_and_caps():
    e1 = pd.DataFrame(
        {
            "model": ["ae", "gfe_amd"],
            "max_steps": [900, 40],
            "val_every": [25, 25],
            "patience": [4, 4],
            "min_improvement": [0.002, 0.002],
            "plateau_window": [3, 3],
            "patience_fraction": [0.3, 0.3],
        }
    )
    text = summarize.e1_stopping(e1)
    assert "a check every 25 steps; stop after 4 checks (or 0.3 of the checks so far, if more)" in text
    assert "without a 0.2% improvement of the mean of the last 3 checks; step caps AE 900, GFE-amd 40" in text
    old = e1.drop(columns=["plateau_window", "patience_fraction"])
    assert "(or" not in summarize.e1_stopping(old) and "of the last check;" in summarize.e1_stopping(old)


def test_the_stopping_check_flags_a_continuation_beyond_the_bound():
    row = dict(
        dataset="mnist",
        model="ae",
        seed=0,
        stop_reason="plateau",
        stop_step=100,
        best_at_stop=0.30,
        best_at_stop_again=0.30,
        continued_to=300,
    )
    cont = pd.DataFrame(
        [
            {**row, "train_size": 100, "best_continued": 0.2991, "gain": 0.003},
            {**row, "train_size": 1000, "best_continued": 0.28, "gain": 0.0667},
        ]
    )
    e1 = pd.DataFrame({"model": ["ae"] * 3, "train_size": [100, 1000, 3000]})
    lines = summarize.stopping_check({"e1_continuation": cont, "e1_data_efficiency": e1})
    table = [line for line in lines if line.startswith("| MNIST")]
    assert table[0].startswith("| MNIST | AE | 100 |") and table[0].endswith("| 0.30% | yes |")
    assert table[1].endswith("| 6.67% | **no** |")
    assert "the AE's plateau is checked at every N" in lines[2] and "to 3× the steps they made" in lines[2]
    assert "AE at N = 100, 1000 (seed 0)" in lines[2]
    assert "1 of 2 continuations improve by more than the bound" in lines[-2]
    assert "claims 1a and 1b are not judged at N = 1000." in lines[-2]
    assert "No AE continuation at N = 3000: the AE's plateau there is not verified." in lines[-2]
    assert summarize.stopping_check({"e1_continuation": pd.DataFrame()}) == []


def test_the_e3_heldout_encoder_is_named_from_the_options_the_workflow_passed():
    options = {"solver": "amd", "tau": 10000.0, "z0": "uniform", "loss": "bce", "dt_max": 10.0}
    text = summarize.heldout_encoder_text(options)
    assert text == "both models' by one encoder: per-sample amd, τ 10000, z0 uniform (equal at step 0)"
    lbfgs = summarize.heldout_encoder_text({"solver": "lbfgs", "tau": 10000.0, "z0": "uniform", "tol": 1e-6})
    assert lbfgs == "both models' by one encoder: lbfgs, z0 uniform (equal at step 0)"
    assert summarize.heldout_encoder_text(None) == "not recorded"


def test_provenance_names_every_commit_and_says_when_there_are_several():
    one = {"t": pd.DataFrame({"git_commit": ["a1", "a1"], "torch_version": ["2.14.1"] * 2, "device": ["cpu"] * 2})}
    assert summarize.provenance(one)[0] == "Runs made at git commit a1; torch 2.14.1, device cpu."
    two = {**one, "u": pd.DataFrame({"git_commit": ["b2; a1+dirty"], "torch_version": ["2.14.1"], "device": ["cpu"]})}
    line = summarize.provenance(two)[0]
    assert "at 3 git commits (the rows come from more than one" in line and line.count("a1") == 2
    assert "a1, a1+dirty, b2;" in line


def _summary_of_committed_run(tmp_path, *extra):
    """summarize.py on the committed tables, with the arguments of the workflow's summarize rule."""
    results = Path(__file__).resolve().parents[1] / "results" / "default"
    names = summarize.TABLES
    if not all((results / f"{n}.csv").exists() for n in names):
        pytest.skip("no committed result tables")
    args = ["--config-name", "default", "--config-hash", "x", "--e1-seeds", "0", "1", "2"]
    args += ["--e3-seeds", "0", "1", "2", "--e4-seeds", "0", "1", "2", *extra]
    args += ["--tables", *[str(results / f"{n}.csv") for n in names]]
    args += ["--summary", str(tmp_path / "summary.md"), "--claims", str(tmp_path / "claims.csv")]
    assert summarize.main(args) == 0
    return (tmp_path / "summary.md").read_text(), pd.read_csv(tmp_path / "claims.csv")


def test_claims_csv_has_both_1b_rows_with_the_effects_of_the_verdicts(tmp_path):
    text, frame = _summary_of_committed_run(tmp_path)
    assert list(frame.columns) == summarize.CLAIM_COLUMNS
    assert list(frame["claim"]) == ["1a", "1b", "1b (GFE-lbfgs)", "1c", "2", "3", "4"]
    assert set(frame["dataset"]) == {"fashion_mnist"} and not frame["title"].str.contains("Fashion").any()
    for row in frame.itertuples():
        assert f"| {row.claim}: {row.title} (Fashion-MNIST) | {row.verdict} |" in text


def test_the_summary_uses_display_names_and_no_python_reprs(tmp_path):
    text, _ = _summary_of_committed_run(tmp_path)
    for code in ("gfe_amd ", "gfe_rk4 ", "gfe_adjoint", "gfe_2nd", "fashion_mnist", "['", "']"):
        assert code not in text.replace("`gfe_lbfgs`", ""), code


def test_the_configured_grid_reaches_the_claims(tmp_path):
    """--grid: a configured size, step or setting absent from the tables makes its claim not tested."""
    grid = {
        "e1": {"sizes": {"ae": [100, 300, 1000, 3000, 10000, 30000], "gfe_amd": [100, 300, 1000]}},
        "e3": {"steps": 400},
        "e4": {"steps": 50},
        "e5": {"decoders": ["gfe_amd", "gfe_rk4"], "seeds": [0, 1, 2], "dt_init": [0.1, 1.0, 10.0],
               "dt_max": [1.0, 10.0, 1000.0], "rk4_steps": [10, 25, 100, 1000]},
    }  # fmt: skip
    text, frame = _summary_of_committed_run(tmp_path, "--grid", json.dumps(grid))
    verdicts = dict(zip(frame["claim"], frame["reason"], strict=True))
    assert "ae lacks train_size 30000 of the configured 100, 300, 1000, 3000, 10000, 30000" in verdicts["1a"]
    assert "short of the configured step 400" in verdicts["3"]
    assert "decoder gfe_amd of seed 0 lacks the AMD setting dt_init 0.1, dt_max 1000" in verdicts["4"]
    assert frame.set_index("claim").loc["2", "verdict"] == "supported"
