"""E1 figure: per dataset (one row), (left) the test loss of each run's best checkpoint against
the training-set size N, every model on one log N axis with every size labelled, and (right)
each GFE model's test loss minus the AE's, paired by seed (same seed = same training subset),
with its 95% t-interval: claim 1a's unit (claim 1b's too: the images' floor cancels in a
difference).

Left: mean ± std over seeds as a large marker with an error bar, every seed as a small marker;
the models sit side by side around each N, so that no point hides another, and their means are
joined by lines only where a model has three sizes or more (two points joined by a line would
suggest a trend the data cannot show). A run that stopped at its step cap instead of on a
validation plateau is hollow, and so is every mean or difference with such a run behind it: a
capped GFE run's loss is at or above its own plateau, so a capped GFE point errs against GFE.

The images seen at the best checkpoint are not drawn: they follow from each model's stopping
rule (the AE trained to its plateau, up to tens of thousands of steps; GFE-amd at a fixed step
budget), not from how much a model learns per image, so that panel compared the rules, not the
models. E2 (and the headline figure) compares the models against images seen on equal terms."""

import sys

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from pipeline import plotpanels, plotstyle

REFERENCE = "ae"  # the differences are each GFE model minus this one


def paired_differences(part: pd.DataFrame, model: str, reference: str = REFERENCE) -> pd.DataFrame:
    """Per N with both models: mean and 95% t-interval of model − reference of test_loss_mean,
    paired by seed; n (paired seeds) and capped (a run of either model at that N is capped)."""
    rows = []
    both = part[part["model"].isin([model, reference])]
    for n, at in both.groupby("train_size", sort=True):
        wide = at.pivot_table(index="seed", columns="model", values="test_loss_mean", aggfunc="mean")
        if model not in wide or reference not in wide:
            continue
        diffs = (wide[model] - wide[reference]).dropna()
        if diffs.empty:
            continue
        mean, low, high = plotstyle.t_interval(diffs.to_numpy())
        capped = bool(plotpanels.is_capped(at[at["seed"].isin(diffs.index)]).any())
        rows.append(dict(train_size=n, mean=mean, low=low, high=high, n=len(diffs), capped=capped))
    return pd.DataFrame(rows, columns=["train_size", "mean", "low", "high", "n", "capped"])


def difference_panel(ax, part: pd.DataFrame, shift: dict) -> dict:
    """Each GFE model − the AE against N, paired by seed, 95% t-interval; returns legend entries."""
    sizes = sorted(part["train_size"].unique())
    plotpanels.size_axis(ax, sizes)
    ax.axhline(0.0, color="grey", lw=0.8)
    others = [m for m in plotpanels.model_order(part["model"].unique()) if m != REFERENCE]
    entries: dict[str, object] = {}
    drawn = False
    for model in others:
        d = paired_differences(part, model)
        if d.empty:
            continue
        drawn = True
        style = plotstyle.marker_style(model)
        x = d["train_size"] * shift[model]
        if len(d) >= 3:
            ax.plot(x, d["mean"], lw=0.8, alpha=0.7, **plotstyle.line_style(model))
        for capped in (False, True):
            at = d["capped"] == capped
            if at.any():
                err = np.vstack([d.loc[at, "mean"] - d.loc[at, "low"], d.loc[at, "high"] - d.loc[at, "mean"]])
                marker = plotpanels.hollow(style) if capped else style
                ax.errorbar(x[at], d.loc[at, "mean"], yerr=err, ms=5, elinewidth=1, zorder=3, **marker)
        entries.setdefault(
            "GFE − AE: mean over paired seeds, 95% t-interval",
            Line2D([], [], color="grey", marker="o", ms=4, ls="none"),
        )
    if not drawn:
        ax.text(0.5, 0.5, "no size with runs of the AE and a GFE model", transform=ax.transAxes, ha="center")
    return entries


def main(argv=None):
    p = plotstyle.parser(__doc__)
    p.add_argument("--table", required=True)
    a = p.parse_args(argv)
    t = pd.read_csv(a.table)
    datasets = sorted(t["dataset"].unique())
    fig, axes = plotstyle.figure("double", 2.5 * len(datasets) + 0.6, len(datasets), 2, squeeze=False)
    handles: dict[str, object] = {}
    notes: dict[str, object] = {}
    any_capped = False
    for (loss_ax, diff_ax), ds in zip(axes, datasets, strict=True):
        part = t[t["dataset"] == ds]
        found, capped, shift = plotpanels.loss_panel(loss_ax, part)
        for label, handle in found.items():
            handles.setdefault(label, handle)
        any_capped |= capped
        notes.update(difference_panel(diff_ax, part, shift))
        name = plotstyle.dataset_name(ds)
        loss_ax.set_ylabel(plotstyle.short_loss_label(ds, "test loss"))
        loss_ax.set_title(f"{name}: test loss at the best checkpoint")
        diff_ax.set_ylabel(plotstyle.short_loss_label(ds, "GFE − AE test loss") + "\n< 0: GFE lower")
        diff_ax.set_title(f"{name}: GFE − AE at each N, paired by seed")
    legend = plotpanels.legend_entries(handles, any_capped) | notes
    fig.legend(legend.values(), legend.keys(), loc="outside lower center", ncols=min(len(legend), 2))
    plotstyle.save(fig, a.png, a.pdf)


if __name__ == "__main__":
    sys.exit(main())
