"""E7: 2-D t-SNE embedding of latents (test or training images), one CSV per run.

The NPZ holds z (n, d), labels (n,) and either test_idx or train_idx (n,): the
images' indices in their split. The CSV has one row per embedded latent with
image_idx (that index) and split ("test" or "train").
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import pandas as pd
from sklearn.manifold import TSNE
from threadpoolctl import threadpool_limits

from gfe import io
from pipeline import common

SPLIT_KEYS = {"test_idx": "test", "train_idx": "train"}
# The authors' t-SNE settings; the perplexity comes from the command line.
TSNE_SETTINGS = {"early_exaggeration": 4.0, "learning_rate": 100.0, "init": "pca", "random_state": 0}


def image_indices(saved) -> tuple[np.ndarray, str]:
    """The images' indices in their split and the split's name, from an NPZ with test_idx or train_idx."""
    for key, split in SPLIT_KEYS.items():
        if key in saved:
            return saved[key], split
    raise KeyError(f"the NPZ has none of {sorted(SPLIT_KEYS)}; keys: {sorted(saved.keys())}")


def embed(z: np.ndarray, perplexity: float) -> tuple[np.ndarray, float]:
    """2-D t-SNE of latents z (n, d) -> (xy (n, 2), the perplexity used, at most (n - 1) / 3)."""
    perplexity = min(perplexity, (len(z) - 1) / 3)
    tsne = TSNE(n_components=2, perplexity=perplexity, **TSNE_SETTINGS)
    return tsne.fit_transform(z), perplexity


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--outputs", required=True, help="NPZ with z, labels and test_idx or train_idx")
    p.add_argument("--dataset", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--train-size", required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--n-images", type=int, default=1000)
    p.add_argument("--perplexity", type=float, default=30.0)
    p.add_argument("--output", required=True)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    log = common.setup(a.threads)
    saved = np.load(a.outputs)
    z, labels = saved["z"][: a.n_images].astype(np.float64), saved["labels"][: a.n_images]
    idx, split = image_indices(saved)
    with threadpool_limits(a.threads):
        xy, perplexity = embed(z, a.perplexity)
    table = pd.DataFrame(
        {
            "dataset": a.dataset,
            "model": a.model,
            "train_size": a.train_size,
            "seed": a.seed,
            "image": np.arange(len(z)),
            "split": split,
            "image_idx": idx[: len(z)],
            "label": labels,
            "tsne_x": xy[:, 0],
            "tsne_y": xy[:, 1],
            "perplexity": perplexity,
        }
    )
    io.write_csv(table, a.output)
    log.info("t-SNE of %d %s latents of %s/%s", len(z), split, a.dataset, a.model)
    return 0


if __name__ == "__main__":
    sys.exit(main())
