"""E5 robustness figure (claim 4): final excess loss over the images' own floor against NFE per
image, one panel per swept decoder, both axes logarithmic and unclipped.

AMD at each (dt_init, dt_max) setting is one point in GFE-amd's colour: its marker says dt_max,
its lightness dt_init (darker: larger), all hollow so that settings on the same spot stay
visible; the configured setting is ringed. First-order rk4 over its step counts is a line in
GFE-rk4's colour, each point labelled with its step count; the count whose NFE matches the
configured AMD setting's is ringed. A diverged setting (non-finite loss) is never left out: it
is a black triangle on the panel's top edge (rk4 at its NFE, 4 per step; AMD, whose NFE is
unknown then, at the right edge), named in the legend."""

import sys

import numpy as np
import pandas as pd
from matplotlib.colors import to_rgb
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

import plotstyle

AMD_MARKERS = ["o", "s", "D", "^", "v", "P"]  # by dt_max, smallest first
DIVERGED = dict(marker="^", ms=7, mfc="none", mec="black", mew=1.3, ls="none")
RING = dict(marker="o", ms=13, mfc="none", mew=0.9, ls="none")


def lighter(colour, amount: float):
    return tuple(c + (1 - c) * amount for c in to_rgb(colour))


def finite(rows: pd.DataFrame) -> pd.Series:
    return np.isfinite(rows["excess_mean"].astype(float)) & np.isfinite(rows["nfe_mean"].astype(float))


def amd_style(dt_init: float, dt_max: float, dt_inits: list, dt_maxes: list) -> dict:
    """Hollow marker of an AMD setting: shape and size by dt_max (settings on the same spot nest),
    lightness by dt_init (the largest full colour)."""
    shade = 0.6 * (len(dt_inits) - 1 - dt_inits.index(dt_init)) / max(len(dt_inits) - 1, 1)
    colour = lighter(plotstyle.model_colour("gfe_amd"), shade)
    rank = dt_maxes.index(dt_max)
    marker = AMD_MARKERS[rank % len(AMD_MARKERS)]
    return {"marker": marker, "ms": 4.5 + 2.5 * rank, "mfc": "none", "mec": colour, "mew": 1.2, "ls": "none"}


def panel(ax, part: pd.DataFrame, dt_inits: list, dt_maxes: list) -> list[str]:
    """One decoder's settings; returns the legend notes of its diverged settings."""
    rk4_colour = plotstyle.model_colour("gfe_rk4")
    amd_colour = plotstyle.model_colour("gfe_amd")
    amd = part[part["solver"] == "amd"]
    rk4 = part[part["solver"] == "rk4"].sort_values("steps")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ok = rk4[finite(rk4)]
    ax.plot(ok["nfe_mean"], ok["excess_mean"], "o-", color=rk4_colour, ms=4)
    for _, r in ok.iterrows():
        ax.annotate(
            f"{int(r['steps'])}",
            (r["nfe_mean"], r["excess_mean"]),
            xytext=(3, 4),
            textcoords="offset points",
            fontsize=plotstyle.SMALL_PT,
            color=rk4_colour,
        )
    for _, r in amd[finite(amd)].iterrows():
        ax.plot(r["nfe_mean"], r["excess_mean"], **amd_style(r["dt_init"], r["dt_max"], dt_inits, dt_maxes))
    for rows, colour in (
        (amd[amd["configured"].astype(bool)], amd_colour),
        (rk4[rk4["nfe_matched"].astype(bool)], rk4_colour),
    ):
        rows = rows[finite(rows)]
        ax.plot(rows["nfe_mean"], rows["excess_mean"], mec=colour, **RING)
    notes = []
    bad_rk4 = rk4[~finite(rk4)]
    if not bad_rk4.empty:
        ax.plot(
            4.0 * bad_rk4["steps"], [1.0] * len(bad_rk4), transform=ax.get_xaxis_transform(), clip_on=False, **DIVERGED
        )
        for steps in bad_rk4["steps"]:
            ax.annotate(
                f"{int(steps)}",
                (4.0 * steps, 1.0),
                xycoords=ax.get_xaxis_transform(),
                xytext=(4, -9),
                textcoords="offset points",
                fontsize=plotstyle.SMALL_PT,
            )
        notes.append("rk4 " + ", ".join(str(int(s)) for s in bad_rk4["steps"]) + " steps")
    bad_amd = amd[~finite(amd)]
    if not bad_amd.empty:
        ax.plot([0.97] * len(bad_amd), [1.0] * len(bad_amd), transform=ax.transAxes, clip_on=False, **DIVERGED)
        notes.append("AMD " + ", ".join(f"({r.dt_init:g}, {r.dt_max:g})" for r in bad_amd.itertuples()))
    if not finite(part).any():
        ax.text(0.5, 0.5, "every setting diverged", transform=ax.transAxes, ha="center", va="center")
    ax.set_xlabel("NFE per image (decoder forward+backward passes)")
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 3.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    return notes


def legend_handles(dt_inits: list, dt_maxes: list, settings: list, diverged: list[str]) -> list[Line2D]:
    handles = [
        Line2D([], [], marker="o", ms=4, color=plotstyle.model_colour("gfe_rk4"), label="rk4, 1st order (label: steps)")
    ]
    handles += [
        Line2D([], [], **amd_style(i, m, dt_inits, dt_maxes), label=f"AMD dt_init {i:g}, dt_max {m:g}")
        for i, m in settings
    ]
    handles += [
        Line2D([], [], mec=plotstyle.model_colour("gfe_amd"), **RING, label="AMD, configured setting"),
        Line2D([], [], mec=plotstyle.model_colour("gfe_rk4"), **RING, label="rk4 at that setting's NFE"),
    ]
    if diverged:
        handles.append(
            Line2D([], [], **DIVERGED, label="diverged (non-finite loss), on the top edge:\n" + "\n".join(diverged))
        )
    return handles


def main(argv=None):
    p = plotstyle.parser(__doc__)
    p.add_argument("--table", required=True)
    a = p.parse_args(argv)
    t = pd.read_csv(a.table)
    groups = list(t.groupby(["dataset", "decoder_model"], sort=True))
    amd = t[t["solver"] == "amd"]
    dt_inits, dt_maxes = sorted(amd["dt_init"].unique()), sorted(amd["dt_max"].unique())
    settings = sorted({(r.dt_init, r.dt_max) for r in amd.itertuples()})
    fig, axes = plotstyle.figure("double", 4.4, ncols=len(groups), squeeze=False)
    diverged = []
    for ax, ((ds, decoder), part) in zip(axes[0], groups, strict=True):
        notes = panel(ax, part, dt_inits, dt_maxes)
        diverged += [f"{plotstyle.display_name(decoder)}: {n}" for n in notes]
        experiment = part["decoder_experiment"].iloc[0]
        floor = part["floor_mean"].iloc[0]
        ax.set_title(
            f"{plotstyle.dataset_name(ds)}: {plotstyle.model_label(decoder)} decoder ({experiment} run)\n"
            f"images' floor {floor:.4g}"
        )
    first = t.iloc[0]
    axes[0, 0].set_ylabel(
        plotstyle.short_loss_label(first["dataset"], "final loss − the images' floor") + ", log scale"
    )
    fig.legend(
        handles=legend_handles(dt_inits, dt_maxes, settings, diverged),
        loc="outside lower center",
        ncols=3,
        frameon=False,
    )
    fig.suptitle(
        f"Claim 4: encoding {int(first['n_images'])} test images from z0 = {first['z0']} to τ = {first['tau']:g}:\n"
        "AMD over its step settings vs rk4 over its step counts (both axes log scale, none clipped)"
    )
    plotstyle.save(fig, a.png, a.pdf)


if __name__ == "__main__":
    sys.exit(main())
