"""E7: how well each model's latent space separates the classes, one table row per run.

For each training_latents.npz (z, labels: the run's first training images, encoded) the
k-nearest-neighbour accuracy of the class labels from the latent codes themselves (Euclidean
distance in the latent space, not in the t-SNE map), by stratified k-fold cross-validation
with a seeded shuffle: each latent is classified by the majority of its k nearest latents of
the other folds. The table also gives the accuracy's spread over the folds and the chance
level (the share of the most frequent class). The run's keys and provenance come from the
run.json beside each NPZ.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.neighbors import KNeighborsClassifier
from threadpoolctl import threadpool_limits

from gfe import io
from pipeline import common

RUN_KEYS = ["dataset", "experiment", "model", "train_size_label", "seed"]
RUN_PROVENANCE = ["git_commit", "code_version", "torch_version", "torchdiffeq_version", "snakemake_version", "device"]


def knn_accuracy(z: np.ndarray, labels: np.ndarray, *, k: int, folds: int, seed: int) -> tuple[float, float]:
    """(mean, standard deviation over the folds) of the cross-validated k-NN accuracy of
    `labels` from the rows of `z`. The folds are stratified (capped at the smallest class's
    size), shuffled with `seed`."""
    labels = np.asarray(labels)
    smallest = int(np.unique(labels, return_counts=True)[1].min())
    splitter = StratifiedKFold(n_splits=max(2, min(folds, smallest)), shuffle=True, random_state=seed)
    classifier = KNeighborsClassifier(n_neighbors=k)
    scores = cross_val_score(classifier, np.asarray(z, dtype=np.float64), labels, cv=splitter)
    return float(scores.mean()), float(scores.std(ddof=1)) if len(scores) > 1 else 0.0


def chance_accuracy(labels: np.ndarray) -> float:
    """The accuracy of always answering the most frequent class."""
    return float(np.unique(labels, return_counts=True)[1].max() / len(labels))


def separability_row(npz: str, *, k: int, folds: int, seed: int) -> dict:
    saved = np.load(npz)
    z, labels = saved["z"], saved["labels"]
    run = json.loads(Path(npz).with_name("run.json").read_text())
    k_used = min(k, len(z) - len(z) // folds - 1)
    mean, std = knn_accuracy(z, labels, k=k_used, folds=folds, seed=seed)
    return {
        **{key: run[key] for key in RUN_KEYS},
        "split": "train",
        "n_latents": len(z),
        "latent_dim": int(z.shape[1]),
        "n_classes": int(len(np.unique(labels))),
        "k": k_used,
        "folds": folds,
        "cv_seed": seed,
        "knn_accuracy": mean,
        "knn_accuracy_std": std,
        "chance_accuracy": chance_accuracy(labels),
        **{key: run[key] for key in RUN_PROVENANCE if key in run},
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--latents", nargs="+", required=True, help="training_latents.npz files (run.json beside each)")
    p.add_argument("--k", type=int, default=10, help="neighbours of the k-NN classifier")
    p.add_argument("--folds", type=int, default=5, help="cross-validation folds")
    p.add_argument("--seed", type=int, default=0, help="seed of the folds' shuffle")
    p.add_argument("--config-name", required=True)
    p.add_argument("--config-hash", required=True)
    p.add_argument("--output", required=True, help="the table (CSV)")
    a = p.parse_args(argv)
    log = common.setup(1)
    with threadpool_limits(1):
        rows = [separability_row(f, k=a.k, folds=a.folds, seed=a.seed) for f in a.latents]
    table = pd.DataFrame(rows).assign(config_name=a.config_name, config_hash=a.config_hash)
    ordered = [c for c in table.columns if c not in RUN_PROVENANCE] + [c for c in RUN_PROVENANCE if c in table]
    io.write_csv(table[ordered], a.output)
    for r in rows:
        log.info(
            "%s/%s: %d-NN accuracy %.3f (chance %.3f)",
            r["dataset"],
            r["model"],
            r["k"],
            r["knn_accuracy"],
            r["chance_accuracy"],
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
