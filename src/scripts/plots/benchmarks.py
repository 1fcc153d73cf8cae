"""Benchmark figure: encoding throughput (images per second, wall clock) against the mean
encoding loss, one point per method and batch size, one column per benchmark table
(benchmarks/encode.py: results/benchmarks/encode.csv on the CPU, encode_cuda.csv on a GPU; the
machine is read from the JSON beside each table). Only the `encode` rows are drawn (not the
decoder-pass floor, not the training rows).

Top row: every method, both axes logarithmic, none clipped; the band of converged methods
(mean loss within 2 % of the median) is shaded and drawn again, labelled, in the bottom row on
a linear loss axis. Colour: the model whose encoder the method is (AMD with the authors' shared
rule: GFE-amd; per-sample AMD: GFE-amd (per-sample); first-order rk4: GFE-rk4; the
second-order flow: GFE-2nd; L-BFGS: GFE-lbfgs, beyond the papers; the AE's encoder: AE;
dopri5, no model's: black). Marker: the batch size."""

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from pipeline import plotstyle

BATCH_MARKERS = {5: "^", 64: "v", 100: "D", 512: "o", 1000: "s"}
BAND = 0.02  # the zoomed band: mean loss within this fraction of the median


def method_model(method: str) -> str | None:
    """The model whose encoder a benchmark method is (None: dopri5, no model's)."""
    if method.startswith("lbfgs"):
        return "gfe_lbfgs"
    if method == "amd_shared":
        return "gfe_amd"
    if method.startswith("amd"):
        return "gfe_amd_per_sample"
    if method.startswith("nesterov"):
        return "gfe_2nd"
    if method.startswith("rk4"):
        return "gfe_rk4"
    if method.startswith("ae"):
        return "ae"
    return None


def colour(method: str):
    model = method_model(method)
    return plotstyle.model_colour(model) if model else "black"


def marker(batch: int) -> str:
    return BATCH_MARKERS.get(int(batch), "P")


def machine(table: str) -> str:
    """The machine of a benchmark table, from the JSON beside it ('' when there is none)."""
    meta = Path(table).with_suffix(".json")
    if not meta.exists():
        return ""
    info = json.loads(meta.read_text())
    if str(info.get("device", "")).startswith("cuda"):
        return f"GPU: {info.get('gpu', 'cuda').split(',')[0]}"
    cpu = info.get("cpu_model", "CPU")
    threads = info.get("threads", "?")
    return f"CPU: {cpu}, {threads} thread{'' if threads == 1 else 's'} of {info.get('cpus', '?')} cores"


def encode_rows(table: str) -> pd.DataFrame:
    t = pd.read_csv(table)
    t = t[(t["kind"] == "encode") & np.isfinite(t["loss_mean"]) & (t["images_per_s"] > 0)]
    return t.reset_index(drop=True)


def in_band(rows: pd.DataFrame) -> pd.Series:
    median = rows["loss_mean"].median()
    return (rows["loss_mean"] / median - 1).abs() <= BAND


def points(ax, rows: pd.DataFrame) -> None:
    """One point per row; the rows of one method (at several batch sizes) joined by a thin line
    in the method model's line style (dotted: beyond the papers)."""
    for method, g in rows.groupby("method", sort=False):
        g = g.sort_values("images_per_s")
        model = method_model(method)
        if len(g) > 1:
            ls = plotstyle.model_ls(model) if model else "-"
            ax.plot(g["images_per_s"], g["loss_mean"], color=colour(method), ls=ls, lw=0.7, zorder=2)
        for _, r in g.iterrows():
            ax.plot(
                r["images_per_s"],
                r["loss_mean"],
                marker=marker(r["batch"]),
                ms=5,
                mfc=colour(method),
                mec="white",
                mew=0.5,
                ls="none",
                zorder=3,
            )


def label_text(g: pd.DataFrame) -> str:
    method = g["method"].iloc[0]
    if len(g) == 1:
        return method
    return f"{method} (b {', '.join(str(int(b)) for b in sorted(g['batch']))})"


# Offsets (points) tried for a label, in order: right, left, above, below, then further out.
# Beyond 12 points a thin leader line joins the label to its point.
OFFSETS = [(4, -3), (-4, -3), (0, 5), (0, -12), (4, 6), (4, -12), (-4, 6), (-4, -12), (0, 13), (0, -20)]
OFFSETS += [(dx, dy) for dy in (22, -30, 31, -39) for dx in (0, 14, -14)]


def place_labels(ax, rows: pd.DataFrame) -> None:
    """Name each method once, beside its rightmost point, at the first offset whose text box
    (estimated from the font size) overlaps no earlier label, no point and stays inside the axes."""
    fig = ax.figure
    fig.canvas.draw()  # the constrained layout and the axes limits, before measuring
    px = fig.dpi / 72.0
    size = plotstyle.SMALL_PT
    box = ax.get_window_extent()
    xy = ax.transData.transform(rows[["images_per_s", "loss_mean"]].to_numpy(float))
    taken = [(x - 4 * px, y - 4 * px, x + 4 * px, y + 4 * px) for x, y in xy]
    order = rows.groupby("method", sort=False)["loss_mean"].mean().sort_values(ascending=False).index
    for method in order:
        g = rows[rows["method"] == method]
        anchor = g.loc[g["images_per_s"].idxmax()]
        x0, y0 = ax.transData.transform((anchor["images_per_s"], anchor["loss_mean"]))
        text = label_text(g)
        w, h = 0.62 * size * len(text) * px, size * px
        best, best_cost = None, None
        for dx, dy in OFFSETS:
            left = x0 + dx * px - (w if dx < 0 else w / 2 if dx == 0 else 0)
            bottom = y0 + dy * px
            rect = (left, bottom, left + w, bottom + h)
            outside = rect[0] < box.x0 or rect[2] > box.x1 or rect[1] < box.y0 or rect[3] > box.y1
            cost = sum(
                max(0.0, min(rect[2], o[2]) - max(rect[0], o[0])) * max(0.0, min(rect[3], o[3]) - max(rect[1], o[1]))
                for o in taken
            ) + (1e9 if outside else 0.0)
            if best_cost is None or cost < best_cost:
                best, best_cost = (dx, dy, rect), cost
            if cost == 0:
                break
        dx, dy, rect = best
        ha = "right" if dx < 0 else "center" if dx == 0 else "left"
        label = ax.annotate(
            text,
            (anchor["images_per_s"], anchor["loss_mean"]),
            xytext=(dx, dy),
            textcoords="offset points",
            ha=ha,
            va="bottom",
            fontsize=size,
            color=colour(method),
            arrowprops={"arrowstyle": "-", "color": "0.6", "lw": 0.5} if abs(dy) > 13 else None,
        )
        label.set_in_layout(False)
        taken.append(rect)


def overview(ax, rows: pd.DataFrame, title: str) -> None:
    band = in_band(rows)
    points(ax, rows)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 3.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    lo, hi = rows.loc[band, "loss_mean"].min(), rows.loc[band, "loss_mean"].max()
    ax.axhspan(lo * 0.995, hi * 1.005, color="0.85", zorder=0, lw=0)
    ax.set_title(title)
    ax.set_xlabel("images per second (log scale)")


def zoom(ax, rows: pd.DataFrame) -> None:
    band = in_band(rows)
    points(ax, rows[band])
    ax.set_xscale("log")
    ax.set_facecolor("0.97")
    ax.set_title(f"zoom: the shaded band (loss within {BAND:.0%} of the median)")
    ax.set_xlabel("images per second (log scale)")


def legend_handles(rows: pd.DataFrame) -> list[Line2D]:
    models = dict.fromkeys(method_model(m) for m in rows["method"])
    handles = [
        Line2D(
            [],
            [],
            marker="o",
            ls="none",
            mfc=plotstyle.model_colour(m) if m else "black",
            mec="white",
            ms=6,
            label=plotstyle.model_label(m) if m else "dopri5 (no model's)",
        )
        for m in models
    ]
    handles += [
        Line2D([], [], marker=marker(b), ls="none", mfc="0.4", mec="white", ms=6, label=f"batch {int(b)}")
        for b in sorted(rows["batch"].unique())
    ]
    return handles


def main(argv=None):
    p = plotstyle.parser(__doc__)
    p.add_argument("--tables", nargs="*", default=[], help="benchmark CSVs of benchmarks/encode.py")
    a = p.parse_args(argv)
    tables = [(t, encode_rows(t)) for t in a.tables]
    tables = [(t, rows) for t, rows in tables if not rows.empty]
    if not tables:
        fig, ax = plotstyle.figure("double", 2.0)
        ax.text(0.5, 0.5, "no benchmark tables (results/benchmarks/encode*.csv)", ha="center", va="center")
        ax.set_axis_off()
        plotstyle.save(fig, a.png, a.pdf)
        return 0
    fig, axes = plotstyle.figure(
        "double", 7.6, nrows=2, ncols=len(tables), squeeze=False, gridspec_kw={"height_ratios": [1, 1.5]}
    )
    for col, (table, rows) in enumerate(tables):
        where = machine(table) or Path(table).name
        overview(axes[0, col], rows, f"{Path(table).name} ({where})")
        zoom(axes[1, col], rows)
    for row, scale in zip(axes, ("log scale", "linear"), strict=True):
        row[0].set_ylabel(plotstyle.short_loss_label("fashion_mnist", "mean encoding loss") + f", {scale}")
    every = pd.concat([rows for _, rows in tables])
    counts = every.groupby("n_images")["method"].unique()
    most = every["n_images"].mode().iloc[0]
    fewer = "; ".join(f"{', '.join(counts[n])}: {int(n)}" for n in counts.index if n != most)
    fig.legend(handles=legend_handles(every), loc="outside lower center", ncols=5, frameon=False)
    for col, (_, rows) in enumerate(tables):
        place_labels(axes[0, col], rows[~in_band(rows)])
        place_labels(axes[1, col], rows[in_band(rows)])
    fig.suptitle(
        "Encoding throughput vs mean loss (benchmarks/encode.py): the same GFE-amd decoder and AE,\n"
        f"{int(most)} Fashion-MNIST test images per point" + (f" ({fewer})" if fewer else "")
    )
    plotstyle.save(fig, a.png, a.pdf)
    return 0


if __name__ == "__main__":
    sys.exit(main())
