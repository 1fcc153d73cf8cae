"""E5 figure: encoding loss vs integration time t and vs NFE, per method."""

import sys

import pandas as pd

import plotstyle
from plotstyle import plt


def main(argv=None):
    p = plotstyle.parser(__doc__)
    p.add_argument("--table", required=True)
    a = p.parse_args(argv)
    t = pd.read_csv(a.table)
    datasets = sorted(t["dataset"].unique())
    fig, axes = plt.subplots(len(datasets), 2, figsize=(10, 3.6 * len(datasets)), squeeze=False)
    for row, ds in zip(axes, datasets):
        part = t[t["dataset"] == ds]
        for method, g in part.groupby("method", sort=True):
            g = g[g["t"] > 0]
            row[0].plot(g["t"], g["loss_mean"], label=method)
            row[1].plot(g["nfe_mean"], g["loss_mean"], label=method)
        row[0].set_xscale("log")
        row[0].set_xlabel("integration time t (flow time units)")
        row[1].set_xscale("log")
        row[1].set_xlabel("function evaluations per image (NFE)")
        for ax in row:
            ax.set_yscale("log")
            ax.set_ylabel(plotstyle.loss_label(ds, "mean encoding loss"))
            ax.legend()
        row[0].set_title(f"{ds}: E5, {part['n_images'].iloc[0]} test images, z0 = {part['z0'].iloc[0]}")
    plotstyle.save(fig, a.png, a.pdf)


if __name__ == "__main__":
    sys.exit(main())
