"""Aggregate the per-run metric files into one tidy CSV per experiment and the parameter
counts (the claims' verdicts are made from these tables by summarize.py).
Deterministic: the same inputs give byte-identical outputs.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from gfe import io
from pipeline import common
from pipeline.common import RunFileError

KEYS = ["dataset", "experiment", "model", "train_size", "seed"]
PROVENANCE = [
    "config_name",
    "config_hash",
    "git_commit",
    "code_version",
    "torch_version",
    "torchdiffeq_version",
    "snakemake_version",
    "device",
]
RUN_PROVENANCE = [k for k in PROVENANCE if not k.startswith("config_")]  # recorded by each run
RUN_PATH = re.compile(r"runs/(?P<dataset>[^/]+)/(?P<experiment>e\d)/(?P<model>[^/]+)/N(?P<N>[^/]+)/seed(?P<seed>\d+)/")


def path_keys(path: str) -> dict:
    m = RUN_PATH.search(Path(path).as_posix())
    if not m:
        raise ValueError(
            f"{path} is not a run file (results/<name>/runs/<dataset>/<experiment>/<model>/N<N>/seed<seed>/...)"
        )
    return {
        "dataset": m["dataset"],
        "experiment": m["experiment"],
        "model": m["model"],
        "train_size_label": m["N"],
        "seed": int(m["seed"]),
    }


def _read(path, read):
    """read(path), or a RunFileError naming the file (not a bare JSONDecodeError). The check
    before aggregation (rule check_runs, src/pipeline/identity.py) refuses such a file first."""
    try:
        return read(path)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise RunFileError(
            f"{path}: unreadable ({type(error).__name__}: {str(error).strip() or 'empty'}); "
            f"re-run the job that made it: snakemake --cores all --forcerun {path}"
        ) from None


def read_json(path):
    return _read(path, lambda p: json.loads(Path(p).read_text()))


def read_csv(path) -> pd.DataFrame:
    return _read(path, pd.read_csv)


def read_npz(path) -> dict:
    def load(p):
        with np.load(p) as saved:
            return {k: saved[k] for k in saved.files}

    return _read(path, load)


def with_config(frame: pd.DataFrame, a) -> pd.DataFrame:
    frame = frame.copy()
    frame.insert(len(frame.columns), "config_name", a.config_name)
    frame.insert(len(frame.columns), "config_hash", a.config_hash)
    ordered = [c for c in frame.columns if c not in PROVENANCE] + [c for c in PROVENANCE if c in frame.columns]
    return frame[ordered]


def run_provenance(run: dict) -> dict:
    return {k: run[k] for k in PROVENANCE if k in run}


def e1_table(run_files, metric_files, a) -> pd.DataFrame:
    rows = []
    for run_file, metric_file in zip(run_files, metric_files, strict=True):
        run, metrics = read_json(run_file), read_json(metric_file)
        row = {
            **{k: run[k] for k in KEYS},
            "train_size_label": run["train_size_label"],
            "amd_rule": run["amd_rule"],
            "batch_size": run["batch_size"],
            "stop_reason": run["stop_reason"],
            "steps": run["steps"],
            "max_steps": run["max_steps"],
            "images_seen": run["images_seen"],
            "epochs": run["images_seen"] / run["train_size"],
            "best_step": run["best_step"],
            "best_images_seen": run["best_images_seen"],
            "best_val_loss": run["best_val_loss"],
            "val_every": run["val_every"],
            "patience": run["patience"],
            "min_improvement": run["min_improvement"],
            # runs recorded before these settings existed used a window of 1 and a fixed patience
            "plateau_window": run.get("plateau_window", 1),
            "patience_fraction": run.get("patience_fraction", 0.0),
        }
        row.update({k: v for k, v in metrics.items() if k.startswith("test_")})
        row.update(
            {
                "final_train_loss": run["final_train_loss"],
                "train_loss_last10": run["train_loss_last10"],
                "train_nfe_mean": run["train_nfe_mean"],
                "total_params": run["total_params"],
                "step_mean_s": run["step_mean_s"],
                "train_s": run["train_s"],
            }
        )
        row.update(run_provenance(run))
        rows.append(row)
    frame = pd.DataFrame(rows).sort_values(["dataset", "model", "train_size", "seed"], kind="stable")
    return with_config(frame, a)


def e1_continuation_table(validation_files, plateau_run_files, a) -> pd.DataFrame:
    """One row per continuation (e1c): its E1 run's stop and best validation loss, and the
    best validation loss of the same run trained on to a multiple of those steps. `gain`
    is how much lower the continuation's best is, relative to the E1 best; the E1 best
    is recomputed from the continuation's own checks up to the stop (`best_at_stop_again`:
    equal when training does not depend on early stopping, as it should not)."""
    rows = []
    for validation_file, plateau_file in zip(validation_files, plateau_run_files, strict=True):
        checks, plateau = read_csv(validation_file), read_json(plateau_file)
        run = read_json(Path(validation_file).with_name("run.json"))
        until_stop = checks[checks["step"] <= plateau["steps"]]
        best = checks.loc[checks["loss_mean"].idxmin()]
        rows.append(
            {
                **{k: plateau[k] for k in KEYS if k != "experiment"},
                "stop_reason": plateau["stop_reason"],
                "stop_step": plateau["steps"],
                "best_step": plateau["best_step"],
                "best_at_stop": plateau["best_val_loss"],
                "best_at_stop_again": float(until_stop["loss_mean"].min()),
                "continued_to": run["steps"],
                "best_step_continued": int(best["step"]),
                "best_continued": float(best["loss_mean"]),
                "gain": (plateau["best_val_loss"] - float(best["loss_mean"])) / plateau["best_val_loss"],
                "plateau_window": plateau.get("plateau_window", 1),
                "patience_fraction": plateau.get("patience_fraction", 0.0),
                **run_provenance(run),
            }
        )
    frame = pd.DataFrame(rows)
    if not frame.empty:
        frame = frame.sort_values(["dataset", "model", "train_size", "seed"], kind="stable")
    return with_config(frame, a)


def log_table(files) -> pd.DataFrame:
    """Per-step or validation logs of runs, one frame, with each run's AMD rule."""
    frames = [
        read_csv(f).assign(
            train_size_label=path_keys(f)["train_size_label"],
            amd_rule=read_json(Path(f).with_name("run.json"))["amd_rule"],
        )
        for f in files
    ]
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame()
    frame = pd.concat(frames, ignore_index=True)
    return frame.sort_values(["dataset", "model", "train_size", "seed", "step"], kind="stable").reset_index(drop=True)


def provenance_of(files) -> dict:
    """Provenance of the runs behind per-step logs, from the run.json beside each log."""
    out = {}
    for f in files:
        run = read_json(Path(f).with_name("run.json"))
        out[(run["dataset"], run["experiment"], run["model"], run["train_size"], run["seed"])] = run_provenance(run)
    return out


def add_provenance(frame: pd.DataFrame, files, a) -> pd.DataFrame:
    if frame.empty:
        return with_config(frame, a)
    prov = provenance_of(files)
    extra = pd.DataFrame(
        [prov[(r.dataset, r.experiment, r.model, r.train_size, r.seed)] for r in frame.itertuples()], index=frame.index
    )
    return with_config(pd.concat([frame, extra], axis=1), a)


def e6_table(files) -> pd.DataFrame:
    """One row per kept reconstruction. An NPZ with `recon_idx` (src/scripts/evaluate.py: the first
    test images of each class) gives each image's own label, test index and loss, and its
    rank within its class (`class_rank`, 0: the first); an older NPZ kept the first test images."""
    rows = []
    for f in files:
        keys = path_keys(f)
        saved = read_npz(f)
        prov = run_provenance(read_json(Path(f).with_name("run.json")))
        per_class = "recon_idx" in saved
        prefix = "recon_" if per_class else ""
        labels = saved[f"{prefix}labels"]
        for i in range(len(saved["reconstructions"])):
            rank = {"class_rank": int((labels[:i] == labels[i]).sum())} if per_class else {}
            rows.append(
                {
                    **keys,
                    "image": i,
                    "test_idx": int(saved[f"{prefix}test_idx"][i]),
                    "label": int(labels[i]),
                    **rank,
                    "loss": float(saved[f"{prefix}loss"][i]),
                    "npz": Path(f).as_posix(),
                    **prov,
                }
            )
    return pd.DataFrame(rows)


def with_run_provenance(files, run_file_of) -> pd.DataFrame:
    """Concatenate CSVs, each with the provenance of the run (run.json) it came from."""
    frames = []
    for f in files:
        prov = run_provenance(read_json(run_file_of(f)))
        frames.append(read_csv(f).assign(**prov))
    return pd.concat(frames, ignore_index=True)


def authors_points(e2: pd.DataFrame, targets: list[int]) -> pd.DataFrame:
    """E2 validation loss at the authors' table points: per (dataset, model, AMD rule) and
    target, the validation check nearest in images seen, mean and std over seeds, with the
    provenance of the runs (`e2` carries it; one value per column, joined if they differ)."""
    rows = []
    if e2.empty:
        return pd.DataFrame(
            columns=[
                "dataset",
                "model",
                "amd_rule",
                "target_images_seen",
                "images_seen",
                "n_seeds",
                "loss_mean",
                "loss_std",
            ]
        )
    for (ds, model, rule), part in e2.groupby(["dataset", "model", "amd_rule"], sort=True, dropna=False):
        prov = {k: "; ".join(sorted(map(str, part[k].unique()))) for k in RUN_PROVENANCE if k in part}
        seen = np.sort(part["images_seen"].unique())
        for target in targets:
            nearest = int(seen[np.abs(seen - target).argmin()])
            losses = part.loc[part["images_seen"] == nearest, "loss_mean"]
            rows.append(
                {
                    "dataset": ds,
                    "model": model,
                    "amd_rule": rule,
                    "target_images_seen": target,
                    "images_seen": nearest,
                    "n_seeds": int(losses.size),
                    "loss_mean": float(losses.mean()),
                    "loss_std": float(losses.std()) if losses.size > 1 else float("nan"),
                    **prov,
                }
            )
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--config-name", required=True)
    p.add_argument("--config-hash", required=True)
    for name in (
        "e1-runs",
        "e1-metrics",
        "e1c",
        "e1c-plateau-runs",
        "e2",
        "e3-train",
        "e3-heldout",
        "e4-train",
        "e4-heldout",
        "e5",
        "e5-runs",
        "e5-robustness",
        "e6",
        "e7",
        "tables",
    ):
        p.add_argument(f"--{name}", nargs="*", default=[])
    p.add_argument("--report-images-seen", type=int, nargs="*", default=[])
    a = p.parse_args(argv)
    log = common.setup(1)
    try:
        return aggregate(a)
    except RunFileError as error:
        log.error("RunFileError: %s", error)
        return 1


def aggregate(a) -> int:
    tables = {Path(t).stem: t for t in a.tables}
    e1 = e1_table(a.e1_runs, a.e1_metrics, a)
    e2 = add_provenance(log_table(a.e2), a.e2, a)
    logs = {
        name: add_provenance(log_table(files), files, a)
        for name, files in (
            ("e3_solver_comparison", a.e3_train),
            ("e3_heldout", a.e3_heldout),
            ("e4_adjoint_ablation", a.e4_train),
            ("e4_heldout", a.e4_heldout),
        )
    }
    e5_run = {read_json(f)["dataset"]: f for f in a.e5_runs}
    # results/<name>/runs/{dataset}/encoding_convergence.csv
    e5 = with_config(with_run_provenance(a.e5, lambda f: e5_run[Path(f).parent.name]), a)
    # results/<name>/runs/{dataset}/solver_robustness.csv
    robustness = with_config(with_run_provenance(a.e5_robustness, lambda f: e5_run[Path(f).parent.name]), a)
    e6 = with_config(e6_table(a.e6), a)
    e7 = with_config(with_run_provenance(a.e7, lambda f: Path(f).with_name("run.json")), a)
    run_files = sorted(set(a.e1_runs) | {str(Path(f).with_name("run.json")) for f in a.e3_train + a.e4_train})
    runs = [read_json(f) for f in run_files]
    params = (
        pd.DataFrame(
            [
                {
                    **{k: r[k] for k in ("dataset", "model", "decoder_params", "encoder_params", "total_params")},
                    **run_provenance(r),
                }
                for r in runs
            ]
        )
        .drop_duplicates(["dataset", "model"])
        .sort_values(["dataset", "model"])
        .reset_index(drop=True)
    )
    outputs = {
        "e1_data_efficiency": e1,
        "e1_continuation": e1_continuation_table(a.e1c, a.e1c_plateau_runs, a),
        "e2_learning_curves": e2,
        "e2_authors_points": with_config(authors_points(e2, a.report_images_seen), a),
        **logs,
        "e5_encoding_convergence": e5,
        "e5_robustness": robustness,
        "e6_reconstructions": e6,
        "e7_latent_maps": e7,
        "parameter_counts": with_config(params, a),
    }
    for name, path in tables.items():
        io.write_csv(outputs[name], path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
