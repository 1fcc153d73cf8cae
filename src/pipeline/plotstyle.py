"""Shared figure helpers of the plot_* scripts: one visual language for every figure, argument
parsing, and saving PNG + PDF atomically.

The visual language (every figure follows it; `tests/test_figures_style.py` checks it):

* colour means model: :data:`MODEL_COLOURS` gives each model of ``pipeline.config.MODELS`` one colour
  (Okabe–Ito, colour-blind safe), the same in every figure; :data:`COLORS` is its old name;
* line style means provenance: **solid** is a model of the papers (AE, GFE-amd, GFE-rk4, GFE-2nd,
  GFE-adjoint); **dashed** is a variant inside the papers' method (GFE-amd trained or validated
  with the per-sample AMD rule instead of the authors' shared one); **dotted** is a model beyond
  the papers (:data:`BEYOND_THE_PAPERS`, also labelled so in every legend) and nothing else is
  ever dotted. Values taken from the papers themselves are drawn as markers without lines;
* Fashion-MNIST / MNIST / CIFAR-10 classes take :data:`CLASS_COLOURS`, ten colours at least
  ΔE 32 (CIELAB) away from every model colour and 66 from each other, so that a class is never read as a model;
* claim verdicts take :data:`VERDICT_COLOURS`;
* a criterion's bound (a margin, a threshold) is a thin black dashed line, :data:`THRESHOLD_STYLE`,
  as in the claims forest plot, named in the legend;
* legends and titles name models by :func:`display_name` (``GFE-amd``), never by code names;
* figures are made by :func:`figure` at the paper's column widths (single 3.5 in, double 7 in)
  and drawn at their final size, with text of at least 7 pt.
"""

from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from gfe.io import atomic_write  # noqa: E402

# Text sizes in points at the printed size: figures are drawn at their final width, never scaled.
FONT_PT = 8
SMALL_PT = 7
WIDTHS_IN = {"single": 3.5, "double": 7.0}

plt.rcParams.update(
    {
        "figure.dpi": 150,
        "savefig.dpi": 200,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "grid.linewidth": 0.5,
        "font.size": FONT_PT,
        "axes.titlesize": FONT_PT,
        "axes.labelsize": FONT_PT,
        "xtick.labelsize": SMALL_PT,
        "ytick.labelsize": SMALL_PT,
        "legend.fontsize": SMALL_PT,
        "legend.title_fontsize": SMALL_PT,
        "figure.titlesize": FONT_PT,
        "axes.linewidth": 0.6,
        "lines.linewidth": 1.2,
        "lines.markersize": 4,
        "errorbar.capsize": 2,
        "legend.frameon": True,
        "legend.framealpha": 0.9,
        "legend.borderaxespad": 0.3,
        "legend.handlelength": 2.2,
        "pdf.fonttype": 42,
        "svg.hashsalt": "gfe",
        "path.simplify": False,
    }
)

LOSS = {"bce": "per-sample pixel-mean BCE", "mse": "per-sample pixel-mean MSE"}
# One colour per model (Okabe–Ito; the L-BFGS model beyond the papers in dark grey).
MODEL_COLOURS = {
    "ae": "#0072B2",
    "gfe_amd": "#D55E00",
    "gfe_amd_per_sample": "#E69F00",
    "gfe_rk4": "#009E73",
    "gfe_2nd": "#CC79A7",
    "gfe_adjoint": "#56B4E9",
    "gfe_lbfgs": "#555555",
}
COLORS = MODEL_COLOURS  # the old name, kept for the scripts that use it
MODEL_NAMES = {
    "ae": "AE",
    "gfe_amd": "GFE-amd",
    "gfe_amd_per_sample": "GFE-amd (per-sample)",
    "gfe_rk4": "GFE-rk4",
    "gfe_2nd": "GFE-2nd",
    "gfe_adjoint": "GFE-adjoint",
    "gfe_lbfgs": "GFE-lbfgs",
}
# One marker per model, for points that could sit on each other (E1 at one N).
MODEL_MARKERS = {
    "ae": "o",
    "gfe_amd": "s",
    "gfe_amd_per_sample": "D",
    "gfe_rk4": "^",
    "gfe_2nd": "v",
    "gfe_adjoint": "P",
    "gfe_lbfgs": "X",
}
# Models beyond the papers are labelled so in every legend, and drawn dotted.
BEYOND_THE_PAPERS = {"gfe_lbfgs"}
# Variants inside the papers' method, drawn dashed.
VARIANTS = {"gfe_amd_per_sample"}
# Ten class colours, picked greedily for the largest smallest CIELAB distance: ΔE >= 66 between
# classes, >= 32 from any model colour.
CLASS_COLOURS = [
    "#E8A28B",
    "#0000FF",
    "#00FF00",
    "#000046",
    "#FF00B9",
    "#00E8E8",
    "#002E00",
    "#FF0000",
    "#D1D117",
    "#A2A2FF",
]
VERDICT_COLOURS = {
    "supported": "#1A9850",
    "not supported": "#D73027",
    "not tested at this budget": "#9E9E9E",
    "not tested": "#9E9E9E",
}
# A criterion's bound drawn in a figure (the claims forest plot's threshold line).
THRESHOLD_STYLE = {"color": "black", "ls": "--", "lw": 0.8}
# The colour of values taken from the papers (marker only), and of differences between models.
PAPER_COLOUR = "black"
DIFFERENCE_COLOUR = "#333333"
DATASET_NAMES = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST", "cifar10": "CIFAR-10"}
# The Fashion-MNIST class names (label 0..9), and every dataset's.
CLASS_NAMES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
DATASET_CLASS_NAMES = {
    "mnist": [str(i) for i in range(10)],
    "fashion_mnist": CLASS_NAMES,
    "cifar10": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
}


def display_name(model: str) -> str:
    """The name of a model in legends and titles: 'GFE-amd' for 'gfe_amd' (unknown names as given)."""
    return MODEL_NAMES.get(model, model)


def model_label(model: str, detail: str = "") -> str:
    """The display name, with '(beyond the papers)' for the models beyond the papers, and the
    `detail` in the same parenthesis: 'GFE-lbfgs (beyond the papers, 3 seeds)', 'AE (3 seeds)'."""
    name = display_name(model)
    notes = (["beyond the papers"] if model in BEYOND_THE_PAPERS else []) + ([detail] if detail else [])
    if not notes:
        return name
    if name.endswith(")"):  # 'GFE-amd (per-sample)' → 'GFE-amd (per-sample, 1 seed)'
        return f"{name[:-1]}, {', '.join(notes)})"
    return f"{name} ({', '.join(notes)})"


def model_colour(model: str, default: str = "black") -> str:
    return MODEL_COLOURS.get(model, default)


def model_ls(model: str) -> str:
    """The line style of a model: dotted beyond the papers, dashed for a variant, solid otherwise."""
    if model in BEYOND_THE_PAPERS:
        return ":"
    return "--" if model in VARIANTS else "-"


def line_style(model: str) -> dict:
    """Matplotlib keyword arguments of a model's line: its colour and line style (see the module
    docstring for what solid, dashed and dotted mean)."""
    return {"color": model_colour(model), "ls": model_ls(model)}


def marker_style(model: str) -> dict:
    """Matplotlib keyword arguments of a model's points: its colour and marker, no line."""
    return {"color": model_colour(model), "marker": MODEL_MARKERS.get(model, "o"), "ls": "none"}


def figure(width: str = "single", height_in: float = 2.6, nrows: int = 1, ncols: int = 1, **kwargs):
    """(fig, axes) of plt.subplots at a paper column width: 'single' 3.5 in or 'double' 7 in
    wide, `height_in` high, laid out by matplotlib's constrained layout unless told otherwise."""
    if width not in WIDTHS_IN:
        raise ValueError(f"width {width!r} is not one of {sorted(WIDTHS_IN)}")
    kwargs.setdefault("layout", "constrained")
    return plt.subplots(nrows, ncols, figsize=(WIDTHS_IN[width], height_in), **kwargs)


def dataset_name(dataset: str) -> str:
    return DATASET_NAMES.get(dataset, dataset)


def class_name(dataset: str, label: int) -> str:
    names = DATASET_CLASS_NAMES.get(dataset)
    return names[label] if names and 0 <= label < len(names) else str(label)


def seeds_text(frame) -> str:
    """'1 seed' or 'n seeds': the number of seeds in a frame with a `seed` column."""
    n = frame["seed"].nunique()
    return f"{n} seed{'s' if n != 1 else ''}"


def two_lines(label: str) -> str:
    """An axis label with its unit part on a second line, so that it fits beside one panel."""
    return label.replace(" (", "\n(", 1)


def loss_label(dataset: str, what: str = "loss") -> str:
    return f"{what} ({LOSS['mse' if dataset == 'cifar10' else 'bce']}, unitless)"


def short_loss_label(dataset: str, what: str = "loss") -> str:
    """A loss axis label that fits a single column: 'test loss (BCE)'."""
    return f"{what} ({'MSE' if dataset == 'cifar10' else 'BCE'})"


def t_interval(values, level: float = 0.95) -> tuple[float, float, float]:
    """(mean, lower, upper) of the two-sided t-interval of the mean of `values` (NaN dropped);
    the interval is (mean, mean) for a single value."""
    import numpy as np
    from scipy import stats

    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(v.mean())
    if v.size < 2:
        return mean, mean, mean
    half = float(stats.t.ppf(0.5 + level / 2, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size))
    return mean, mean - half, mean + half


def parser(doc: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=doc)
    p.add_argument("--png", required=True)
    p.add_argument("--pdf", required=True)
    return p


def save(fig, png: str, pdf: str) -> None:
    """The figure as PNG and as PDF (no dates: the same figure gives the same bytes), each
    written atomically (its temporary keeps the suffix, from which matplotlib takes the format),
    cropped to their content with a small pad (a figure from :func:`figure` keeps its width when
    nothing sticks out of it)."""
    box = {"bbox_inches": "tight", "pad_inches": 0.02}
    for path, kwargs in ((png, {}), (pdf, {"metadata": {"CreationDate": None, "ModDate": None}})):
        atomic_write(path, lambda tmp, kwargs=kwargs: fig.savefig(tmp, **box, **kwargs))
    plt.close(fig)
