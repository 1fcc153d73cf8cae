"""src/summarize.py's data-driven lines: settings read from the tables, never typed in."""

import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
import summarize  # noqa: E402  (the workflow's scripts live in src/)


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
    assert text == "the decoder of the E2 run of gfe_amd, z0 = zeros, τ in {100, 15000}, 50 test images"


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
    assert "without a 0.2% improvement of the mean of the last 3 checks; step caps ae 900, gfe_amd 40" in text
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
    lines = summarize.stopping_check({"e1_continuation": cont})
    table = [line for line in lines if line.startswith("| mnist")]
    assert table[0].endswith("| 0.30% | yes |") and table[1].endswith("| 6.67% | **no** |")
    assert "1 of 2 continuations improve by more than the bound" in lines[-2]
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
