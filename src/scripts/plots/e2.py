"""E2 figure: validation loss during training against training images seen, and against
wall-clock seconds (log x, so that the AE's fast curve is not squashed against the axis); mean
± std over seeds (a band where there are several seeds). The curves start at the first
validation after step 0: the untrained decoder's loss at step 0 (about 0.69 for every model)
would take most of the y-range and squeeze the gaps between the models. With --points, open
markers show each model's loss at the images seen of the authors' table points."""

import sys

import pandas as pd
from matplotlib.lines import Line2D

from pipeline import plotpanels, plotstyle


def label(model: str, rule: str, detail: str) -> str:
    """The legend label: the AMD rule is named for GFE-amd, whose name does not say it."""
    if model == "gfe_amd" and rule:
        detail = f"{'authors’ ' if rule == 'shared' else ''}{rule} AMD rule, {detail}"
    return plotstyle.model_label(model, detail)


def main(argv=None):
    p = plotstyle.parser(__doc__)
    p.add_argument("--table", required=True)
    p.add_argument("--points", default=None, help="e2_authors_points.csv (marks the authors' points)")
    a = p.parse_args(argv)
    t = pd.read_csv(a.table)
    points = pd.read_csv(a.points) if a.points else None
    if points is not None:
        points = points.assign(amd_rule=points["amd_rule"].fillna(""))
    datasets = sorted(t["dataset"].unique())
    fig, axes = plotstyle.figure("double", 2.6 * len(datasets) + 0.6, len(datasets), 2, squeeze=False)
    handles: dict[str, object] = {}
    for row, ds in zip(axes, datasets, strict=True):
        part = t[t["dataset"] == ds]
        for (model, rule), n_seeds, s in plotpanels.curves(part):
            style = plotpanels.line_style(model, rule)
            for ax, x in ((row[0], s["images"]), (row[1], s["sec"])):
                (line,) = ax.plot(x, s["loss"], lw=1.1, **style)
                if n_seeds > 1:
                    ax.fill_between(
                        x, s["loss"] - s["std"], s["loss"] + s["std"], alpha=0.2, lw=0, color=style["color"]
                    )
            seeds = f"{n_seeds} seed{'s' if n_seeds != 1 else ''}"
            handles.setdefault(label(model, rule, seeds), line)
            if points is not None:
                at = points[(points["dataset"] == ds) & (points["model"] == model) & (points["amd_rule"] == rule)]
                row[0].plot(
                    at["images_seen"], at["loss_mean"], "o", ms=4, mfc="white", mec=style["color"], mew=1, zorder=4
                )
        row[0].set_xlabel("training images seen")
        row[1].set_xlabel("training wall-clock time (s, this machine, log scale)")
        row[1].set_xscale("log")
        for ax in row:
            ax.set_ylabel(plotstyle.short_loss_label(ds, "validation loss"))
        where = f"{plotstyle.dataset_name(ds)}, N = {part['train_size'].iloc[0]:,}"
        row[0].set_title(f"{where}: against images seen")
        row[1].set_title(f"{where}: against wall-clock time")
    if points is not None and len(points):
        handles["at the authors’ table points (images seen)"] = Line2D(
            [], [], ls="none", marker="o", ms=4, mfc="white", mec="grey", mew=1
        )
    fig.legend(handles.values(), handles.keys(), loc="outside lower center", ncols=min(len(handles), 2))
    plotstyle.save(fig, a.png, a.pdf)


if __name__ == "__main__":
    sys.exit(main())
