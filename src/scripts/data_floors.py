"""Write the data's own loss floor per dataset and split (validation, test): the lowest mean
per-sample loss any model can reach on those images. For BCE it is the mean per-pixel
Bernoulli entropy of the images (`gfe.losses.bernoulli_entropy_floor`); for MSE it is 0.
The claims judge differences of *excess* loss (loss minus this floor), because most of a
BCE is the floor, which no model can remove. Reads prepared-data files only.
"""

from __future__ import annotations

import argparse
import sys

import pandas as pd

from gfe import io
from gfe.losses import bernoulli_entropy_floor
from pipeline import common

COLUMNS = ["dataset", "split", "n_images", "loss", "floor_mean", "floor_std"]
SPLITS = {"val": "val_images", "test": "test_images"}


def floor_rows(dataset: str, loss: str, prepared: dict) -> list[dict]:
    rows = []
    for split, key in SPLITS.items():
        images = prepared[key]
        floor = bernoulli_entropy_floor(images) if loss == "bce" else images.new_zeros(len(images)).double()
        rows.append(
            {
                "dataset": dataset,
                "split": split,
                "n_images": len(images),
                "loss": loss,
                "floor_mean": float(floor.mean()),
                "floor_std": float(floor.std()) if len(floor) > 1 else 0.0,
            }
        )
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument(
        "--prepared", nargs="+", required=True, metavar="DATASET=LOSS=FILE", help="a prepared file per dataset"
    )
    p.add_argument("--output", required=True, help="the table (CSV)")
    a = p.parse_args(argv)
    common.setup(1)
    rows = []
    for item in a.prepared:
        dataset, loss, path = item.split("=", 2)
        rows += floor_rows(dataset, loss, io.load_prepared(path))
    io.write_csv(pd.DataFrame(rows, columns=COLUMNS), a.output)
    return 0


if __name__ == "__main__":
    sys.exit(common.run(main))
