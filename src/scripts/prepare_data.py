"""Prepare one dataset for the workflow: the authors' split, the test subset, and the
nested training subsets of every seed, saved as one tensor file (uint8 images).

    python src/scripts/prepare_data.py --dataset fashion_mnist --root data/raw --n-val 200 \
        --n-pool 50000 --test-size 2000 --seeds 0 1 2 --output data/prepared/fashion_mnist.pt
"""

from __future__ import annotations

import argparse
import sys

import torch

from gfe import io
from gfe.data import authors_split, load_dataset, nested_subset
from pipeline import common


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True)
    p.add_argument("--root", required=True, help="folder for the raw files (torchvision layout)")
    p.add_argument("--local-dir", default="", help="extra folder holding the original files ('' for none)")
    p.add_argument(
        "--no-system-copies",
        action="store_true",
        help="do not look in the system folders (e.g. /usr/share/datasets/fashion-mnist)",
    )
    p.add_argument("--download", action="store_true")
    p.add_argument("--n-val", type=int, required=True)
    p.add_argument("--n-pool", type=int, required=True)
    p.add_argument("--test-size", type=int, required=True)
    p.add_argument("--test-seed", type=int, default=0)
    p.add_argument("--seeds", type=int, nargs="+", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    log = common.setup(a.threads)
    data = load_dataset(
        a.dataset, a.root, local_dir=a.local_dir or None, search_system=not a.no_system_copies, download=a.download
    )
    n_official = len(data.train_images)
    if a.n_pool > n_official:
        log.error("n_pool=%d exceeds the %d official training images of %s", a.n_pool, n_official, a.dataset)
        return 1
    train_idx, val_idx = authors_split(a.n_val, a.n_pool)
    n_test = len(data.test_images)
    if a.test_size > n_test:
        log.error("test_size=%d exceeds the %d test images of %s", a.test_size, n_test, a.dataset)
        return 1
    generator = torch.Generator().manual_seed(a.test_seed)
    test_idx = torch.randperm(n_test, generator=generator)[: a.test_size]
    positions = torch.arange(len(train_idx))
    orders = {str(seed): nested_subset(positions, len(positions), seed) for seed in sorted(set(a.seeds))}
    prepared = {
        "name": a.dataset,
        "image_shape": list(data.image_shape),
        "train_images": data.train_images[train_idx],
        "train_labels": data.train_labels[train_idx],
        "train_idx": train_idx,
        "val_images": data.train_images[val_idx],
        "val_labels": data.train_labels[val_idx],
        "val_idx": val_idx,
        "test_images": data.test_images[test_idx],
        "test_labels": data.test_labels[test_idx],
        "test_idx": test_idx,
        "subset_order": orders,
    }
    io.save_prepared(a.output, prepared)  # the images as bytes
    log.info(
        "%s: %d training, %d validation, %d test images -> %s",
        a.dataset,
        len(train_idx),
        len(val_idx),
        len(test_idx),
        a.output,
    )
    return 0


if __name__ == "__main__":
    sys.exit(common.run(main))
