"""Shared figure helpers of the plot_* scripts: argument parsing, saving PNG + PDF atomically."""

from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from gfe.io import atomic_write  # noqa: E402

plt.rcParams.update(
    {
        "figure.dpi": 110,
        "savefig.dpi": 150,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "font.size": 9,
        "legend.fontsize": 8,
        "pdf.fonttype": 42,
        "svg.hashsalt": "gfe",
        "path.simplify": False,
    }
)

LOSS = {"bce": "per-sample pixel-mean BCE", "mse": "per-sample pixel-mean MSE"}
COLORS = {
    "ae": "tab:blue",
    "gfe_amd": "tab:red",
    "gfe_amd_per_sample": "tab:brown",
    "gfe_rk4": "tab:green",
    "gfe_2nd": "tab:purple",
    "gfe_adjoint": "tab:orange",
    "gfe_lbfgs": "tab:gray",
}
# Models beyond the papers are labelled so in every legend, and drawn dotted.
BEYOND_THE_PAPERS = {"gfe_lbfgs"}
DATASET_NAMES = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST", "cifar10": "CIFAR-10"}
CLASS_NAMES = {
    "mnist": [str(i) for i in range(10)],
    "fashion_mnist": [
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
    ],
    "cifar10": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
}


def model_label(model: str) -> str:
    return f"{model} (beyond the papers)" if model in BEYOND_THE_PAPERS else model


def model_ls(model: str) -> str:
    """The line style of a model: dotted beyond the papers, solid otherwise."""
    return ":" if model in BEYOND_THE_PAPERS else "-"


def dataset_name(dataset: str) -> str:
    return DATASET_NAMES.get(dataset, dataset)


def class_name(dataset: str, label: int) -> str:
    names = CLASS_NAMES.get(dataset)
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


def parser(doc: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=doc)
    p.add_argument("--png", required=True)
    p.add_argument("--pdf", required=True)
    return p


def save(fig, png: str, pdf: str) -> None:
    """The figure as PNG and as PDF (no dates: the same figure gives the same bytes), each
    written atomically (its temporary keeps the suffix, from which matplotlib takes the format)."""
    for path, kwargs in ((png, {}), (pdf, {"metadata": {"CreationDate": None, "ModDate": None}})):
        atomic_write(path, lambda tmp, kwargs=kwargs: fig.savefig(tmp, bbox_inches="tight", **kwargs))
    plt.close(fig)
