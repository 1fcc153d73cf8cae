"""E7 figure: t-SNE of latents coloured by class, one row of panels per dataset, one panel per
model. The classes take plotstyle.CLASS_COLOURS (never a model's colour); each panel's title
gives the run (N, seed) and, from the separability table (src/scripts/latent_separability.py), the
cross-validated k-NN accuracy of the classes from the latent codes themselves (not from the
t-SNE map), with the chance level."""

import sys

import pandas as pd
from matplotlib.lines import Line2D

from pipeline import plotstyle
from pipeline.plotstyle import plt

SPLIT_NAMES = {"train": "training", "test": "test"}


def split_words(t: pd.DataFrame) -> str:
    """'training', 'test' or 'training and test': the splits the latents come from (test if no `split` column)."""
    if "split" not in t:
        return "test"
    return " and ".join(SPLIT_NAMES.get(s, str(s)) for s in sorted(t["split"].unique(), reverse=True))


def class_colour(label: int) -> str:
    return plotstyle.CLASS_COLOURS[int(label) % len(plotstyle.CLASS_COLOURS)]


def class_legend(subfig, dataset: str, labels) -> None:
    """One legend of the class names with their colours, right of the subfigure's panels."""
    handles = [
        Line2D([], [], ls="", marker="o", ms=4, color=class_colour(i), label=plotstyle.class_name(dataset, i))
        for i in sorted(labels)
    ]
    subfig.legend(handles=handles, loc="outside right upper", title="class", frameon=False)


def separability_of(sep: pd.DataFrame | None, dataset: str, model: str, train_size, seed) -> pd.Series | None:
    """The separability row of one run (None when the table has none)."""
    if sep is None:
        return None
    rows = sep[
        (sep["dataset"] == dataset)
        & (sep["model"] == model)
        & (sep["train_size_label"].astype(str) == str(train_size))
        & (sep["seed"].astype(int) == int(seed))
    ]
    return rows.iloc[0] if len(rows) else None


def accuracy_text(row: pd.Series | None) -> str:
    if row is None:
        return "k-NN accuracy: not computed"
    return (
        f"{int(row['k'])}-NN accuracy {row['knn_accuracy']:.3f} ± {row['knn_accuracy_std']:.3f}"
        f"\n(chance {row['chance_accuracy']:.3f})"
    )


def panel(ax, g: pd.DataFrame, model: str, sep_row: pd.Series | None) -> None:
    """Scatter of one run's embedded latents g (rows with tsne_x, tsne_y, label), coloured by class."""
    ax.scatter(g["tsne_x"], g["tsne_y"], c=[class_colour(c) for c in g["label"]], s=3, linewidths=0)
    first = g.iloc[0]
    title = (
        f"{plotstyle.model_label(model)}\nN = {first['train_size']}, seed {int(first['seed'])}, {len(g)} latents\n"
        + accuracy_text(sep_row)
    )
    ax.set_title(title, color=plotstyle.model_colour(model))
    ax.set_xlabel("t-SNE 1 (arbitrary units)")
    ax.set_ylabel("t-SNE 2 (arbitrary units)")


def main(argv=None):
    p = plotstyle.parser(__doc__)
    p.add_argument("--table", required=True)
    p.add_argument("--separability", help="src/scripts/latent_separability.py's table (k-NN accuracy per run)")
    a = p.parse_args(argv)
    t = pd.read_csv(a.table)
    sep = pd.read_csv(a.separability) if a.separability else None
    order = list(plotstyle.DATASET_NAMES)
    datasets = sorted(t["dataset"].unique(), key=lambda d: (order.index(d) if d in order else len(order), d))
    n_cols = t.groupby("dataset")["model"].nunique().max()
    fig = plt.figure(figsize=(plotstyle.WIDTHS_IN["double"], 3.3 * len(datasets) + 0.3), layout="constrained")
    subfigs = fig.subfigures(len(datasets), 1, squeeze=False)[:, 0]
    for subfig, ds in zip(subfigs, datasets, strict=True):
        part = t[t["dataset"] == ds]
        groups = list(part.groupby("model", sort=True))
        axes = subfig.subplots(1, n_cols, squeeze=False)[0]
        for ax, (model, g) in zip(axes, groups, strict=True):
            first = g.iloc[0]
            panel(ax, g, model, separability_of(sep, ds, model, first["train_size"], first["seed"]))
        for ax in axes[len(groups) :]:
            ax.set_visible(False)
        subfig.suptitle(plotstyle.dataset_name(ds))
        class_legend(subfig, ds, part["label"].unique())
    seeds = ", ".join(str(int(s)) for s in sorted(t["seed"].unique()))
    perplexity = ", ".join(f"{p:g}" for p in sorted(t["perplexity"].unique())) if "perplexity" in t else "?"
    title = (
        f"E7: t-SNE (perplexity {perplexity}) of {split_words(t)} latents, coloured by class; "
        f"run seed {seeds}, t-SNE seed 0"
    )
    if sep is not None and len(sep):
        folds = ", ".join(str(int(f)) for f in sorted(sep["folds"].unique()))
        cv_seeds = ", ".join(str(int(f)) for f in sorted(sep["cv_seed"].unique()))
        title += (
            f"\nk-NN accuracy: classes predicted from the latent codes (not the map),\n{folds}-fold "
            f"cross-validation (shuffle seed {cv_seeds}), ± the SD over the folds"
        )
    fig.suptitle(title)
    plotstyle.save(fig, a.png, a.pdf)


if __name__ == "__main__":
    sys.exit(main())
