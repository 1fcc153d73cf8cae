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
# Models beyond the papers are labelled so in every legend.
BEYOND_THE_PAPERS = {"gfe_lbfgs"}


def model_label(model: str) -> str:
    return f"{model} (beyond the papers)" if model in BEYOND_THE_PAPERS else model


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
