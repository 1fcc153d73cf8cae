"""E5 robustness figure (claim 4): final excess loss over the images' floor against NFE per
image, one panel per swept decoder: AMD at each (dt_init, dt_max) as points (the configured
setting ringed; summary.md lists the settings), first-order rk4 over its step counts as a
line (the NFE-matched count ringed). A diverged setting (non-finite loss) is drawn as "×" on the panel's top edge and
named in the legend, never left out."""

import sys

import numpy as np
import pandas as pd

import plotstyle
from plotstyle import plt

AMD_COLOR, RK4_COLOR = "#b2182b", "#2166ac"


def panel(ax, part: pd.DataFrame, title: str) -> None:
    amd = part[part["solver"] == "amd"]
    rk4 = part[part["solver"] == "rk4"].sort_values("steps")
    finite = part[np.isfinite(part["excess_mean"].astype(float))]
    top = float(finite["excess_mean"].max()) * 2 if not finite.empty else 1.0
    ok = rk4[np.isfinite(rk4["excess_mean"].astype(float))]
    ax.plot(ok["nfe_mean"], ok["excess_mean"], "o-", color=RK4_COLOR, label="rk4, first order (step counts)")
    for _, r in ok.iterrows():
        ax.annotate(
            f"{int(r['steps'])}",
            (r["nfe_mean"], r["excess_mean"]),
            xytext=(3, 3),
            textcoords="offset points",
            fontsize=7,
            color=RK4_COLOR,
        )
    bad = rk4[~np.isfinite(rk4["excess_mean"].astype(float))]
    if not bad.empty:
        ax.plot(
            4.0 * bad["steps"],
            [top] * len(bad),
            "x",
            color=RK4_COLOR,
            markersize=9,
            label=f"rk4 diverged ({', '.join(str(int(s)) for s in bad['steps'])} steps)",
        )
    ax.plot(
        amd["nfe_mean"], amd["excess_mean"], "s", color=AMD_COLOR, label=f"AMD, {len(amd)} (dt_init, dt_max) settings"
    )
    for rows, color, what in (
        (amd[amd["configured"]], AMD_COLOR, "AMD configured"),
        (rk4[rk4["nfe_matched"]], RK4_COLOR, "rk4 at AMD's NFE"),
    ):
        rows = rows[np.isfinite(rows["excess_mean"].astype(float))]
        ax.plot(
            rows["nfe_mean"],
            rows["excess_mean"],
            "o",
            markersize=12,
            markerfacecolor="none",
            markeredgecolor=color,
            label=what,
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("NFE per image (decoder forward+backward passes)")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="upper right")


def main(argv=None):
    p = plotstyle.parser(__doc__)
    p.add_argument("--table", required=True)
    a = p.parse_args(argv)
    t = pd.read_csv(a.table)
    groups = list(t.groupby(["dataset", "decoder_model"], sort=True))
    fig, axes = plt.subplots(1, len(groups), figsize=(4.2 * len(groups), 3.6), squeeze=False, layout="constrained")
    for ax, ((ds, decoder), part) in zip(axes[0], groups, strict=True):
        experiment = part["decoder_experiment"].iloc[0]
        panel(ax, part, f"{plotstyle.dataset_name(ds)}: {plotstyle.model_label(decoder)} decoder ({experiment} run)")
    first = t.iloc[0]
    axes[0, 0].set_ylabel(plotstyle.loss_label(first["dataset"], "final loss − the images' floor"))
    fig.suptitle(
        f"Encoding {int(first['n_images'])} test images from z0 = {first['z0']} to τ = {first['tau']:g}: "
        "AMD over its step settings vs rk4 over its step counts",
        fontsize=9,
    )
    plotstyle.save(fig, a.png, a.pdf)


if __name__ == "__main__":
    sys.exit(main())
