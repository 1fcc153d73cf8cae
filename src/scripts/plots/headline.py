"""Headline figure (the README's first): (a) E1's test loss of each run's best checkpoint
against the training-set size N (log N axis, as in the E1 figure: mean ± std over seeds, single
seeds small, a run stopped at its step cap hollow), beside (b) E2's validation loss during
training on the full training split against training images seen (mean ± std over seeds, from
the first validation after step 0).

Panel (b) marks the fewest images after which GFE-amd (the authors' shared AMD rule) has a mean
validation loss below the AE's at the AE's last validation, both values read from the E2 table;
the mark and its text are drawn only when the data show it."""

import sys

import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from pipeline import plotpanels, plotstyle

HEADLINE_MODELS = ("ae", "gfe_amd", "gfe_lbfgs")  # per-sample AMD is E2's own figure
GFE = ("gfe_amd", "shared")  # (model, AMD rule): the authors' GFE-amd
REFERENCE = ("ae", "")
CAPPED_NOTE = "(a) hollow: a run stopped at its step cap (a mean: one of its runs)"


def headline_curves(part: pd.DataFrame):
    """plotpanels.curves of the headline models (GFE-amd with the authors' shared rule only)."""
    for (model, rule), n_seeds, s in plotpanels.curves(part):
        if model in HEADLINE_MODELS and (model != GFE[0] or rule in ("", GFE[1])):
            yield (model, rule), n_seeds, s


def crossing(part: pd.DataFrame) -> dict | None:
    """The fewest images seen (> 0) after which GFE-amd's mean validation loss is below the AE's
    mean at its last validation, with both losses and image counts; None when no validation of
    GFE-amd before the AE's last one is below it (or a model is missing). part: one dataset's E2
    rows."""
    found = {key: s for key, _n, s in headline_curves(part)}
    gfe = next((s for (m, r), s in found.items() if m == GFE[0]), None)
    ae = found.get(REFERENCE)
    if gfe is None or ae is None or gfe.empty or ae.empty:
        return None
    last = ae.iloc[-1]
    below = gfe[(gfe["loss"] < last["loss"]) & (gfe["images"] < last["images"])]
    if below.empty:
        return None
    first = below.iloc[0]
    return dict(
        gfe_images=int(first["images"]),
        gfe_loss=float(first["loss"]),
        ae_images=int(last["images"]),
        ae_loss=float(last["loss"]),
    )


def learning_panel(ax, part: pd.DataFrame) -> dict:
    """E2's validation loss against images seen of the headline models; returns {model: seeds}."""
    seeds = {}
    for (model, rule), n_seeds, s in headline_curves(part):
        style = plotpanels.line_style(model, rule)
        ax.plot(s["images"], s["loss"], lw=1.1, **style)
        if n_seeds > 1:
            ax.fill_between(
                s["images"], s["loss"] - s["std"], s["loss"] + s["std"], alpha=0.2, lw=0, color=style["color"]
            )
        seeds[model] = n_seeds
    ax.set_xlabel("training images seen")
    ax.set_ylabel(plotstyle.short_loss_label(part["dataset"].iloc[0], "validation loss"))
    return seeds


def seed_count(n: int) -> str:
    return f"{n} seed{'s' if n != 1 else ''}"


def model_entries(e1: pd.DataFrame, e2_seeds: dict) -> dict:
    """One legend entry per model, its marker (a) and its line (b), with its seed counts."""
    entries = {}
    for model in plotpanels.model_order(set(e1["model"]) | set(e2_seeds)):
        runs = e1[e1["model"] == model]
        counts = {"a": runs["seed"].nunique() if len(runs) else None, "b": e2_seeds.get(model)}
        if counts["a"] == counts["b"]:
            counts = [seed_count(counts["a"])]
        else:
            counts = [f"({k}) {seed_count(n)}" for k, n in counts.items() if n is not None]
        marker = plotstyle.MODEL_MARKERS.get(model, "o")
        handle = Line2D([], [], marker=marker, ms=5, lw=1.1, **plotstyle.line_style(model))
        entries[plotstyle.model_label(model, ", ".join(counts))] = handle
    return entries


def mark(ax, point: dict) -> None:
    """The AE's last validation loss as a dashed line back to GFE-amd's crossing, both points
    ringed, and the two numbers."""
    gfe_colour, ae_colour = plotstyle.model_colour(GFE[0]), plotstyle.model_colour(REFERENCE[0])
    ax.plot(
        [point["gfe_images"], point["ae_images"]],
        [point["ae_loss"]] * 2,
        gid="headline-level",
        **plotstyle.THRESHOLD_STYLE,
    )
    ring = dict(marker="o", ms=9, mfc="none", mew=1.2, ls="none", zorder=5)
    ax.plot(point["gfe_images"], point["gfe_loss"], mec=gfe_colour, gid="headline-gfe", **ring)
    ax.plot(point["ae_images"], point["ae_loss"], mec=ae_colour, gid="headline-ae", **ring)
    text = (
        f"ringed: {plotstyle.display_name(GFE[0])} after {point['gfe_images']:,} images, {point['gfe_loss']:.4f},\n"
        f"already below the {plotstyle.display_name(REFERENCE[0])} after {point['ae_images']:,}, {point['ae_loss']:.4f}"
    )
    ax.annotate(
        text,
        xy=(point["gfe_images"], point["gfe_loss"]),
        xytext=(0.97, 0.95),
        textcoords="axes fraction",
        ha="right",
        va="top",
        fontsize=plotstyle.SMALL_PT,
        arrowprops=dict(arrowstyle="->", lw=0.8, color="black", shrinkB=6),
        gid="headline-text",
    )


def main(argv=None):
    p = plotstyle.parser(__doc__)
    p.add_argument("--e1", required=True, help="results/<name>/e1_data_efficiency.csv")
    p.add_argument("--e2", required=True, help="results/<name>/e2_learning_curves.csv")
    p.add_argument("--dataset", default=None, help="the dataset drawn (default: the first in both tables)")
    a = p.parse_args(argv)
    e1, e2 = pd.read_csv(a.e1), pd.read_csv(a.e2)
    common = sorted(set(e1["dataset"]) & set(e2["dataset"]))
    if a.dataset is None and not common:
        raise SystemExit(
            f"no dataset in both tables (E1: {sorted(set(e1['dataset']))}, E2: {sorted(set(e2['dataset']))})"
        )
    ds = a.dataset or common[0]
    e1, e2 = e1[e1["dataset"] == ds], e2[e2["dataset"] == ds]
    e1 = e1[e1["model"].isin(HEADLINE_MODELS)]
    fig, (loss_ax, curve_ax) = plotstyle.figure("double", 3.3, 1, 2)
    name = plotstyle.dataset_name(ds)
    _found, any_capped, _shift = plotpanels.loss_panel(loss_ax, e1)
    loss_ax.set_ylabel(plotstyle.short_loss_label(ds, "test loss"))
    loss_ax.set_title(f"(a) {name}: test loss against the training-set size\n(best checkpoint of each run)")
    e2_seeds = learning_panel(curve_ax, e2)
    n_full = f"{int(e2['train_size'].iloc[0]):,}" if "train_size" in e2 else "all"
    curve_ax.set_title(f"(b) {name}: validation loss during training\non N = {n_full} images, against images seen")
    point = crossing(e2)
    if point:
        mark(curve_ax, point)
    legend = model_entries(e1, e2_seeds)
    legend.update(
        {
            f"(a) {k}" if k == "single seeds" else k: v
            for k, v in plotpanels.legend_entries({}, any_capped, CAPPED_NOTE).items()
        }
    )
    legend["(b) band: ± std over seeds"] = Patch(color="grey", alpha=0.2, lw=0)
    if point:
        legend["(b) dashed: the AE's loss at its last validation"] = Line2D([], [], **plotstyle.THRESHOLD_STYLE)
    fig.legend(legend.values(), legend.keys(), loc="outside lower center", ncols=2)
    plotstyle.save(fig, a.png, a.pdf)


if __name__ == "__main__":
    sys.exit(main())
