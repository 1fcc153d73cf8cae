"""E6 figure: test images and their reconstructions by each model, at the smallest and the
largest N (one block each, from the NPZ files listed in the E6 table), with each
reconstruction's own per-sample loss under it and the runs' seed in the block's title.

The table of src/scripts/aggregate.py says which test images were kept: with a `class_rank` column
(src/scripts/evaluate.py keeps the first test images of each class), the block shows the first test
image of each class, in class order; without it (an older evaluation, which kept the first
test images whatever their class) it shows the kept images in their order and says so."""

import sys

import numpy as np
import pandas as pd

from pipeline import plotstyle
from pipeline.plotstyle import plt


def sizes_in_order(part: pd.DataFrame) -> list[str]:
    return sorted(part["train_size_label"].astype(str).unique(), key=lambda n: float("inf") if n == "full" else int(n))


def shown_rows(rows: pd.DataFrame) -> tuple[pd.DataFrame, bool]:
    """The rows of one run to show and whether they are one per class: rank 0 of every class by
    label when the table has `class_rank`, else every kept image in its order."""
    if "class_rank" in rows and rows["class_rank"].notna().all():
        return rows[rows["class_rank"] == 0].sort_values("label"), True
    return rows.sort_values("image"), False


def as_image(array: np.ndarray) -> np.ndarray:
    """(C, H, W) in [0, 1] -> what imshow takes: (H, W) for one channel, else (H, W, C)."""
    array = np.clip(np.asarray(array, dtype=float), 0.0, 1.0)
    return array[0] if array.shape[0] == 1 else np.transpose(array, (1, 2, 0))


def tile(ax, image: np.ndarray) -> None:
    ax.imshow(as_image(image), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    for spine in ax.spines.values():
        spine.set_visible(False)


def block(subfig, ds: str, n: str, part: pd.DataFrame, by_path: dict) -> bool:
    """One (dataset, N) block: a row of test images, then a row per model. Returns whether the
    images are one per class."""
    runs = part.drop_duplicates("npz").sort_values("model")
    models = list(runs["model"])
    first, per_class = shown_rows(part[part["npz"] == runs["npz"].iloc[0]])
    axes = subfig.subplots(len(models) + 1, len(first), squeeze=False, gridspec_kw={"wspace": 0.06, "hspace": 0.05})
    saved_first = by_path[runs["npz"].iloc[0]]
    for col, r in enumerate(first.itertuples()):
        ax = axes[0, col]
        tile(ax, saved_first["images"][r.image])
        ax.set_title(plotstyle.class_name(ds, int(r.label)), fontsize=plotstyle.SMALL_PT, pad=2)
    axes[0, 0].set_ylabel("test image", rotation=0, ha="right", va="center", fontsize=plotstyle.SMALL_PT)
    loss_name = "MSE" if ds == "cifar10" else "BCE"
    for row, (model, npz) in enumerate(zip(models, runs["npz"], strict=True), start=1):
        rows = part[part["npz"] == npz].set_index("test_idx")
        saved = by_path[npz]
        for col, r in enumerate(first.itertuples()):
            ax = axes[row, col]
            if r.test_idx not in rows.index:  # this run kept other images: say so, never guess
                ax.set_axis_off()
                ax.text(0.5, 0.5, "not kept", ha="center", va="center", fontsize=plotstyle.SMALL_PT)
                continue
            own = rows.loc[r.test_idx]
            tile(ax, saved["reconstructions"][int(own["image"])])
            ax.set_xlabel(f"{own['loss']:.3f}", fontsize=plotstyle.SMALL_PT, labelpad=1)
        axes[row, 0].set_ylabel(
            plotstyle.model_label(model).replace(" (", "\n("),
            rotation=0,
            ha="right",
            va="center",
            fontsize=plotstyle.SMALL_PT,
            color=plotstyle.model_colour(model),
        )
    seeds = ", ".join(str(int(s)) for s in sorted(part["seed"].unique()))
    what = "the first test image of each class" if per_class else f"the first {len(first)} test images"
    subfig.suptitle(
        f"{plotstyle.dataset_name(ds)}, N = {n}, seed {seeds}: {what};\n"
        f"under each reconstruction, its {loss_name} (per-sample pixel mean)",
        fontsize=plotstyle.FONT_PT,
    )
    return per_class


def main(argv=None):
    p = plotstyle.parser(__doc__)
    p.add_argument("--table", required=True)
    p.add_argument("--npz", nargs="+", required=True)
    a = p.parse_args(argv)
    t = pd.read_csv(a.table)
    by_path = {f: np.load(f) for f in a.npz}
    blocks = [
        (ds, n, part[part["train_size_label"].astype(str) == n])
        for ds, part in t.groupby("dataset", sort=True)
        for n in sizes_in_order(part)
    ]
    heights = [0.75 * (part["model"].nunique() + 1) + 0.55 for _, _, part in blocks]
    fig = plt.figure(figsize=(plotstyle.WIDTHS_IN["double"], sum(heights) + 0.3), layout="constrained")
    subfigs = fig.subfigures(len(blocks), 1, squeeze=False, height_ratios=heights)[:, 0]
    per_class = [block(sf, ds, n, part, by_path) for sf, (ds, n, part) in zip(subfigs, blocks, strict=True)]
    note = "" if all(per_class) else "\n(an older evaluation, which kept the first test images, not one per class)"
    fig.suptitle(f"E6: test images and their reconstructions at the smallest and largest N{note}")
    plotstyle.save(fig, a.png, a.pdf)


if __name__ == "__main__":
    sys.exit(main())
