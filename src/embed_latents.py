"""E7: 2-D t-SNE embedding of test latents (from evaluation outputs), one CSV per run."""

from __future__ import annotations

import argparse
import sys

import numpy as np
import pandas as pd
from sklearn.manifold import TSNE
from threadpoolctl import threadpool_limits

import wfcommon


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--outputs", required=True, help="NPZ written by evaluate.py")
    p.add_argument("--dataset", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--train-size", required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--n-images", type=int, default=1000)
    p.add_argument("--perplexity", type=float, default=30.0)
    p.add_argument("--output", required=True)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--log", default=None)
    a = p.parse_args(argv)
    log = wfcommon.setup(a.threads, a.log)
    saved = np.load(a.outputs)
    z, labels = saved["z"][: a.n_images].astype(np.float64), saved["labels"][: a.n_images]
    perplexity = min(a.perplexity, (len(z) - 1) / 3)
    with threadpool_limits(a.threads):
        xy = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=0).fit_transform(z)
    table = pd.DataFrame({"dataset": a.dataset, "model": a.model, "train_size": a.train_size, "seed": a.seed,
                          "image": np.arange(len(z)), "test_idx": saved["test_idx"][: len(z)], "label": labels,
                          "tsne_x": xy[:, 0], "tsne_y": xy[:, 1], "perplexity": perplexity})
    wfcommon.write_csv(table, a.output)
    log.info("t-SNE of %d latents of %s/%s", len(z), a.dataset, a.model)
    return 0


if __name__ == "__main__":
    sys.exit(main())
