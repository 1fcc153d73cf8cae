"""E1 figure: per dataset (one row), the test loss of each run's best checkpoint against the
training-set size N (log N axis, every size labelled) and the images seen at that checkpoint.
Mean ± std over seeds as a large marker with an error bar, every seed as a small marker (open
when the run stopped at its step cap instead of a validation plateau); the models sit side by
side around each N, so that no point hides another. Means are joined by lines only when there
are three sizes or more (two points joined by a line would suggest a trend the data cannot show)."""

import sys

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter, NullLocator

import plotstyle


def model_order(models) -> list[str]:
    """The models in the style's order (the workflow's), unknown ones last by name."""
    known = [m for m in plotstyle.MODEL_COLOURS if m in set(models)]
    return known + sorted(set(models) - set(known))


def offsets(sizes, n_models: int) -> np.ndarray:
    """Multiplicative x offsets of the models around each N: at most 0.045 decades apart, and
    together at most a third of the smallest gap between two sizes (log10)."""
    gaps = np.diff(np.log10(sorted(sizes)))
    room = min(0.045 * max(n_models - 1, 1), gaps.min() / 3 if len(gaps) else 0.1)
    step = room / max(n_models - 1, 1)
    return 10 ** (step * (np.arange(n_models) - (n_models - 1) / 2))


def count(v, _pos=None) -> str:
    return f"{v:,.0f}"


def size_axis(ax, sizes) -> None:
    """Log N axis with exactly the sizes as labelled ticks (no unlabelled minor ticks)."""
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator(sizes))
    ax.xaxis.set_major_formatter(FuncFormatter(count))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlim(min(sizes) / 1.4, max(sizes) * 1.4)
    ax.set_xlabel("training-set size N (images, log scale)")


def count_axis(ax, values) -> None:
    """Images seen: a linear axis, or a log axis with labelled 1-2-5 ticks over a decade or more."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values) & (values > 0)]
    if len(values) and values.max() / values.min() >= 10:
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))
        ax.yaxis.set_minor_locator(NullLocator())
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_ylabel("images seen (log scale)")
    else:
        ax.set_ylabel("images seen")
    ax.yaxis.set_major_formatter(FuncFormatter(count))


def main(argv=None):
    p = plotstyle.parser(__doc__)
    p.add_argument("--table", required=True)
    a = p.parse_args(argv)
    t = pd.read_csv(a.table)
    datasets = sorted(t["dataset"].unique())
    fig, axes = plotstyle.figure("double", 2.5 * len(datasets) + 0.5, len(datasets), 2, squeeze=False)
    handles: dict[str, object] = {}
    any_capped = False
    for (loss_ax, seen_ax), ds in zip(axes, datasets, strict=True):
        part = t[t["dataset"] == ds]
        sizes = sorted(part["train_size"].unique())
        models = model_order(part["model"].unique())
        shift = dict(zip(models, offsets(sizes, len(models)), strict=True))
        # the single seeds just right of their mean, so that its marker does not cover them
        pair = offsets(sizes, max(len(models), 2))
        seed_shift = (pair[1] / pair[0]) ** 0.35
        for model in models:
            g = part[part["model"] == model]
            style = plotstyle.marker_style(model)
            s = (
                g.groupby("train_size")
                .agg(
                    loss=("test_loss_mean", "mean"),
                    std=("test_loss_mean", "std"),
                    seen=("best_images_seen", "mean"),
                    seen_std=("best_images_seen", "std"),
                )
                .fillna({"std": 0.0, "seen_std": 0.0})
                .reset_index()
            )
            x = s["train_size"] * shift[model]
            capped = g["stop_reason"] != "plateau"
            any_capped |= bool(capped.any())
            for ax, y, err, col in (
                (loss_ax, "loss", "std", "test_loss_mean"),
                (seen_ax, "seen", "seen_std", "best_images_seen"),
            ):
                if len(sizes) >= 3:
                    ax.plot(x, s[y], lw=0.8, alpha=0.7, **plotstyle.line_style(model))
                bars = ax.errorbar(x, s[y], yerr=s[err], ms=5, elinewidth=1, zorder=3, **style)
                gx = g["train_size"] * shift[model] * seed_shift
                ax.plot(gx[~capped], g.loc[~capped, col], ms=2.5, alpha=0.6, mew=0, zorder=2, **style)
                ax.plot(gx[capped], g.loc[capped, col], ms=3, mfc="white", mew=0.8, zorder=4, **style)
            handles.setdefault(plotstyle.model_label(model, plotstyle.seeds_text(g)), bars)
        for ax in (loss_ax, seen_ax):
            size_axis(ax, sizes)
        count_axis(seen_ax, part["best_images_seen"])
        name = plotstyle.dataset_name(ds)
        loss_ax.set_ylabel(plotstyle.short_loss_label(ds, "test loss"))
        loss_ax.set_title(f"{name}: test loss at the best checkpoint")
        seen_ax.set_title(f"{name}: images seen at the best checkpoint")
    legend = dict(handles)
    legend["single seeds"] = Line2D([], [], color="grey", marker="o", ls="none", ms=2.5, alpha=0.6, mew=0)
    if any_capped:
        legend["a run stopped at its step cap"] = Line2D([], [], color="grey", marker="o", ls="none", ms=3, mfc="white")
    fig.legend(legend.values(), legend.keys(), loc="outside lower center", ncols=min(len(legend), 3))
    plotstyle.save(fig, a.png, a.pdf)


if __name__ == "__main__":
    sys.exit(main())
