"""E6 figure: test images next to their reconstructions by each model at the smallest
and largest N (from the NPZ files listed in the E6 table), made with make_grid."""

import sys

import numpy as np
import pandas as pd
import torch
from torchvision.utils import make_grid

import plotstyle
from plotstyle import plt


def main(argv=None):
    p = plotstyle.parser(__doc__)
    p.add_argument("--table", required=True)
    p.add_argument("--npz", nargs="+", required=True)
    a = p.parse_args(argv)
    t = pd.read_csv(a.table)
    by_path = {f: np.load(f) for f in a.npz}
    panels = []
    for ds, part in t.groupby("dataset", sort=True):
        sizes = sorted(part["train_size_label"].unique(), key=lambda n: float("inf") if n == "full" else int(n))
        for n in sizes:
            rows = part[part["train_size_label"].astype(str) == str(n)]
            files = rows.drop_duplicates("npz").sort_values("model")
            first = by_path[files["npz"].iloc[0]]
            images = [torch.from_numpy(first["images"])]
            names = ["test images"]
            for f, model in zip(files["npz"], files["model"], strict=True):
                images.append(torch.from_numpy(by_path[f]["reconstructions"]))
                names.append(plotstyle.model_label(model))
            grid = make_grid(torch.cat(images), nrow=len(images[0]), padding=2, pad_value=1.0)
            panels.append((f"{ds}, N = {n}: rows = " + ", ".join(names), grid))
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 1.6 * len(panels) * 1.3), squeeze=False)
    for ax, (title, grid) in zip(axes[:, 0], panels, strict=True):
        ax.imshow(grid.permute(1, 2, 0).numpy(), interpolation="nearest")
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    plotstyle.save(fig, a.png, a.pdf)


if __name__ == "__main__":
    sys.exit(main())
