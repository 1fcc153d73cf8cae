"""E6 figure: test images next to their reconstructions by each model at the smallest
and largest N (from the NPZ files listed in the E6 table), made with make_grid. Rows are
labelled with the models (in their colours), columns with the test images' classes."""

import sys

import numpy as np
import pandas as pd
import torch
from torchvision.utils import make_grid

import plotstyle
from plotstyle import plt

PAD = 2  # make_grid's padding (pixels)


def centres(n: int, size: int) -> list[float]:
    """Pixel centres of n cells of `size` pixels in a make_grid image with PAD padding."""
    return [PAD + i * (size + PAD) + (size - 1) / 2 for i in range(n)]


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
            first = rows[rows["npz"] == files["npz"].iloc[0]].sort_values("image")
            images = [torch.from_numpy(by_path[files["npz"].iloc[0]]["images"])]
            for f in files["npz"]:
                images.append(torch.from_numpy(by_path[f]["reconstructions"]))
            grid = make_grid(torch.cat(images), nrow=len(images[0]), padding=PAD, pad_value=1.0)
            classes = [plotstyle.class_name(ds, int(c)) for c in first["label"]]
            panels.append((f"{plotstyle.dataset_name(ds)}, N = {n}", grid, classes, list(files["model"])))
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 3.4 * len(panels)), squeeze=False, layout="constrained")
    for ax, (title, grid, classes, models) in zip(axes[:, 0], panels, strict=True):
        ax.imshow(grid.permute(1, 2, 0).numpy(), interpolation="nearest")
        h, w = (grid.shape[1] - PAD) // (len(models) + 1) - PAD, (grid.shape[2] - PAD) // len(classes) - PAD
        ax.set_xticks(centres(len(classes), w), classes, fontsize=7)
        ax.xaxis.tick_top()
        ax.set_yticks(centres(len(models) + 1, h), ["test image"] + [plotstyle.model_label(m) for m in models])
        for label, model in zip(ax.get_yticklabels()[1:], models, strict=True):
            label.set_color(plotstyle.COLORS.get(model, "black"))
        ax.tick_params(length=0)
        ax.grid(False)
        ax.spines[:].set_visible(False)
        ax.set_title(f"{title}: test images (classes above) and reconstructions")
    plotstyle.save(fig, a.png, a.pdf)


if __name__ == "__main__":
    sys.exit(main())
