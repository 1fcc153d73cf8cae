"""E5 robustness figure (claim 4): final excess loss over the images' own floor against NFE per
image, one panel per swept decoder, both axes logarithmic and unclipped, with the bounds of the
criterion (src/pipeline/claims, claim_amd_robust) drawn.

AMD at each (dt_init, dt_max) setting is one point in GFE-amd's colour: its marker says dt_max,
its lightness dt_init (darker: larger), hollow so that settings on the same spot stay visible;
the configured setting is ringed. First-order rk4 over its step counts is a line in GFE-rk4's
colour, each point labelled with its step count; the count whose NFE matches the configured AMD
setting's is ringed.

The criterion: (i) every AMD setting's excess loss within ROBUST_SPREAD (10%) of AMD's best on
that decoder: a shaded band from AMD's best to 10% above it, its upper edge dashed; (iii) the
configured AMD setting at most MATCHED_MARGIN (10%) above rk4 at the same NFE: a black bar at
10% above that rk4 point. The AMD settings outside the band, which the verdict turns on, are
drawn filled and labelled with their settings and how far above AMD's best they end (and, where
the table records them, why the run stopped and the time it reached).

A diverged setting (the table's diverged flag, or a non-finite loss) is never left out: it is a
black triangle on the panel's top edge (rk4 at its NFE, 4 per step; AMD, whose NFE is unknown
then, at the right edge), named in the legend. With several seeds per setting (the
`decoder_seed` column: each seed's decoder swept), each point is the mean over seeds with a bar
from the lowest to the highest seed; rk4 at the NFE-matched count, which differs from seed to
seed, is one point labelled with the range of counts. The band and bar are drawn on these
means; the verdict itself takes each seed's ranges and their interval over the seeds."""

import sys

import numpy as np
import pandas as pd
from matplotlib.colors import to_rgb
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from pipeline import claims, plotstyle

AMD_MARKERS = ["o", "s", "D", "^", "v", "P"]  # by dt_max, smallest first
DIVERGED = dict(marker="^", ms=7, mfc="none", mec="black", mew=1.3, ls="none")
RING = dict(marker="o", ms=13, mfc="none", mew=0.9, ls="none")
MATCHED_BAR = dict(marker="_", ms=14, mew=1.4, color="black", ls="none")
SETTING = ["dataset", "decoder_model", "decoder_experiment", "solver", "dt_init", "dt_max", "steps"]
# Two AMD points closer than this (in decades, on both axes) share one label.
SAME_SPOT_DECADES = 0.03


def lighter(colour, amount: float):
    return tuple(c + (1 - c) * amount for c in to_rgb(colour))


def diverged(rows: pd.DataFrame) -> pd.Series:
    """Rows to draw as diverged: the table's flag, or a non-finite excess loss or NFE."""
    bad = ~(np.isfinite(rows["excess_mean"].astype(float)) & np.isfinite(rows["nfe_mean"].astype(float)))
    if "diverged" in rows:
        bad |= rows["diverged"].astype(str).str.lower().isin(["true", "1", "1.0"])
    return bad


def finite(rows: pd.DataFrame) -> pd.Series:
    return ~diverged(rows)


def per_setting(t: pd.DataFrame) -> pd.DataFrame:
    """One row per setting: with several seeds, the mean of excess_mean and nfe_mean over the
    seeds (`seed`: main() names the decoder_seed column so; diverged when one seed diverged),
    excess_low/excess_high their range; one seed as is. `steps_label` names an rk4 point's step
    count(s)."""
    t = t.copy()
    labels = t["steps"].map(lambda s: "" if pd.isna(s) else f"{int(s)}")
    if "seed" not in t or t["seed"].nunique() <= 1:
        return t.assign(excess_low=t["excess_mean"], excess_high=t["excess_mean"], steps_label=labels)
    t["diverged"] = diverged(t)
    t["steps_label"] = labels
    t = matched_as_one(t)
    keys = [k for k in SETTING if k in t]
    agg = dict(
        excess_mean=("excess_mean", "mean"),
        excess_low=("excess_mean", "min"),
        excess_high=("excess_mean", "max"),
        nfe_mean=("nfe_mean", "mean"),
        diverged=("diverged", "any"),
        configured=("configured", "any"),
        nfe_matched=("nfe_matched", "any"),
    )
    firsts = [c for c in t.columns if c not in keys and c not in agg and c != "seed"]
    agg |= {c: (c, "first") for c in firsts}
    return t.groupby(keys, dropna=False, sort=False).agg(**agg).reset_index()


def matched_as_one(t: pd.DataFrame) -> pd.DataFrame:
    """rk4's NFE-matched rows of a decoder as one setting when their counts differ by seed (a
    count not swept on every seed): steps their mean, labelled with their range."""
    t = t.copy()
    for _, part in t[t["solver"] == "rk4"].groupby(["dataset", "decoder_model"], sort=False):
        seeds = part["seed"].nunique()
        per_count = part.groupby("steps")["seed"].transform("nunique")
        lone = part[part["nfe_matched"].astype(bool) & (per_count < seeds)]
        if lone.empty:
            continue
        low, high = int(lone["steps"].min()), int(lone["steps"].max())
        t.loc[lone.index, "steps"] = float(lone["steps"].mean())  # not a swept count: no merge
        t.loc[lone.index, "steps_label"] = f"{low}" if low == high else f"{low}–{high}"
    return t


def amd_style(dt_init: float, dt_max: float, dt_inits: list, dt_maxes: list) -> dict:
    """Hollow marker of an AMD setting: shape and size by dt_max (settings on the same spot nest),
    lightness by dt_init (the largest full colour)."""
    shade = 0.6 * (len(dt_inits) - 1 - dt_inits.index(dt_init)) / max(len(dt_inits) - 1, 1)
    colour = lighter(plotstyle.model_colour("gfe_amd"), shade)
    rank = dt_maxes.index(dt_max)
    marker = AMD_MARKERS[rank % len(AMD_MARKERS)]
    return {"marker": marker, "ms": 4.5 + 2.5 * rank, "mfc": "none", "mec": colour, "mew": 1.2, "ls": "none"}


def deciding_style(dt_init: float, dt_max: float, dt_inits: list, dt_maxes: list) -> dict:
    """A setting outside the band: its marker, filled and at least 8 pt."""
    style = amd_style(dt_init, dt_max, dt_inits, dt_maxes)
    return {**style, "mfc": style["mec"], "ms": max(style["ms"], 8.0)}


def bounds(part: pd.DataFrame) -> dict:
    """The criterion's bounds on one decoder: AMD's best finite excess loss, the band's top
    (1 + ROBUST_SPREAD) × best, and the matched bound (1 + MATCHED_MARGIN) × the NFE-matched rk4
    excess at that rk4's NFE (nan where missing or diverged)."""
    amd = part[(part["solver"] == "amd") & finite(part)]
    rk4 = part[(part["solver"] == "rk4") & finite(part) & part["nfe_matched"].astype(bool)]
    best = float(amd["excess_mean"].min()) if len(amd) else np.nan
    matched = rk4.iloc[0] if len(rk4) == 1 else None
    return dict(
        best=best,
        band_top=(1 + claims.ROBUST_SPREAD) * best,
        matched_nfe=float(matched["nfe_mean"]) if matched is not None else np.nan,
        matched_bound=(1 + claims.MATCHED_MARGIN) * float(matched["excess_mean"]) if matched is not None else np.nan,
    )


def same_spot_groups(rows: pd.DataFrame) -> list[pd.DataFrame]:
    """The rows grouped by position: points within SAME_SPOT_DECADES on both log axes together."""
    groups: list[list[int]] = []
    xs, ys = np.log10(rows["nfe_mean"].astype(float)), np.log10(rows["excess_mean"].astype(float))
    for i in rows.index:
        for g in groups:
            j = g[0]
            if abs(xs[i] - xs[j]) < SAME_SPOT_DECADES and abs(ys[i] - ys[j]) < SAME_SPOT_DECADES:
                g.append(i)
                break
        else:
            groups.append([i])
    return [rows.loc[g] for g in groups]


def setting_text(rows: pd.DataFrame) -> str:
    """'dt_max 1, dt_init 0.1 and 1' for settings sharing dt_max, else '(dt_init, dt_max) pairs'."""
    if rows["dt_max"].nunique() == 1:
        inits = sorted(rows["dt_init"].unique())
        return f"dt_max {rows['dt_max'].iloc[0]:g}, dt_init " + " and ".join(f"{i:g}" for i in inits)
    return ", ".join(f"({r.dt_init:g}, {r.dt_max:g})" for r in rows.sort_values(["dt_max", "dt_init"]).itertuples())


def ending_text(rows: pd.DataFrame) -> str:
    """How the runs ended, where the table records it (stop_reason, t_mean)."""
    parts = []
    if "stop_reason" in rows:
        reasons = sorted({str(r).replace("_", " ") for r in rows["stop_reason"].dropna()})
        if reasons:
            parts.append("stopped: " + ", ".join(reasons))
    if "t_mean" in rows and rows["t_mean"].notna().any():
        parts.append(f"mean t {rows['t_mean'].mean():,.0f}")
    return "\n" + "; ".join(parts) if parts else ""


def label_deciding(ax, rows: pd.DataFrame, best: float) -> None:
    for group in same_spot_groups(rows):
        above = 100 * (float(group["excess_mean"].max()) / best - 1)
        text = f"AMD {setting_text(group)}:\n{above:.0f}% above AMD's best{ending_text(group)}"
        ax.annotate(
            text,
            (float(group["nfe_mean"].mean()), float(group["excess_mean"].mean())),
            xytext=(8, 6),
            textcoords="offset points",
            fontsize=plotstyle.SMALL_PT,
            color=plotstyle.model_colour("gfe_amd"),
            gid="deciding-label",
        )


def draw_bounds(ax, b: dict) -> None:
    """The criterion's bounds (`bounds`): the band above AMD's best, its dashed top, and the
    matched bar above the NFE-matched rk4 point."""
    if np.isfinite(b["best"]):
        amd_colour = plotstyle.model_colour("gfe_amd")
        ax.axhspan(
            b["best"], b["band_top"], color=lighter(amd_colour, 0.75), alpha=0.6, lw=0, zorder=0, gid="robust-band"
        )
        ax.axhline(b["band_top"], gid="robust-bound", zorder=1, **plotstyle.THRESHOLD_STYLE)
    if np.isfinite(b["matched_bound"]):
        ax.plot(b["matched_nfe"], b["matched_bound"], gid="matched-bound", zorder=5, **MATCHED_BAR)


def draw_rk4(ax, rk4: pd.DataFrame) -> None:
    """rk4's finite points as a line, each labelled with its step count, with the seeds' range."""
    colour = plotstyle.model_colour("gfe_rk4")
    ok = rk4[finite(rk4)]
    ax.plot(ok["nfe_mean"], ok["excess_mean"], "o-", color=colour, ms=4)
    spread = ok["excess_high"] > ok["excess_low"]
    if spread.any():
        ax.vlines(
            ok.loc[spread, "nfe_mean"],
            ok.loc[spread, "excess_low"],
            ok.loc[spread, "excess_high"],
            color=colour,
            lw=0.8,
        )
    for _, r in ok.iterrows():
        ax.annotate(
            r["steps_label"],
            (r["nfe_mean"], r["excess_mean"]),
            xytext=(3, 4),
            textcoords="offset points",
            fontsize=plotstyle.SMALL_PT,
            color=colour,
        )


def draw_amd(ax, amd: pd.DataFrame, b: dict, dt_inits: list, dt_maxes: list) -> bool:
    """AMD's finite settings, one marker each with the seeds' range; those outside the band
    filled and labelled. Returns whether any lies outside the band."""
    good = amd[finite(amd)]
    outside = good[good["excess_mean"] > b["band_top"]] if np.isfinite(b["best"]) else good.iloc[:0]
    for i, r in good.iterrows():
        decides = i in outside.index
        style = (deciding_style if decides else amd_style)(r["dt_init"], r["dt_max"], dt_inits, dt_maxes)
        ax.plot(
            r["nfe_mean"], r["excess_mean"], zorder=2 if decides else 3, gid="deciding" if decides else None, **style
        )
        if r["excess_high"] > r["excess_low"]:
            ax.vlines(r["nfe_mean"], r["excess_low"], r["excess_high"], color=style["mec"], lw=0.8)
    if not outside.empty:
        label_deciding(ax, outside, b["best"])
    return not outside.empty


def ring_reference_points(ax, amd: pd.DataFrame, rk4: pd.DataFrame) -> None:
    """Rings round the configured AMD setting and the NFE-matched rk4 count."""
    for rows, colour in (
        (amd[amd["configured"].astype(bool)], plotstyle.model_colour("gfe_amd")),
        (rk4[rk4["nfe_matched"].astype(bool)], plotstyle.model_colour("gfe_rk4")),
    ):
        rows = rows[finite(rows)]
        ax.plot(rows["nfe_mean"], rows["excess_mean"], mec=colour, **RING)


def mark_diverged(ax, amd: pd.DataFrame, rk4: pd.DataFrame) -> list[str]:
    """Triangles on the top edge for the diverged settings (rk4 at its NFE, AMD at the right
    edge); returns their legend notes."""
    notes = []
    bad_rk4 = rk4[diverged(rk4)]
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
    bad_amd = amd[diverged(amd)]
    if not bad_amd.empty:
        ax.plot([0.97] * len(bad_amd), [1.0] * len(bad_amd), transform=ax.transAxes, clip_on=False, **DIVERGED)
        notes.append("AMD " + ", ".join(f"({r.dt_init:g}, {r.dt_max:g})" for r in bad_amd.itertuples()))
    return notes


def panel(ax, part: pd.DataFrame, dt_inits: list, dt_maxes: list) -> tuple[list[str], bool]:
    """One decoder's settings; returns the legend notes of its diverged settings and whether an
    AMD setting lies outside the band."""
    amd = part[part["solver"] == "amd"]
    rk4 = part[part["solver"] == "rk4"].sort_values("steps")
    ax.set_xscale("log")
    ax.set_yscale("log")
    b = bounds(part)
    draw_bounds(ax, b)
    draw_rk4(ax, rk4)
    outside = draw_amd(ax, amd, b, dt_inits, dt_maxes)
    ring_reference_points(ax, amd, rk4)
    notes = mark_diverged(ax, amd, rk4)
    if not finite(part).any():
        ax.text(0.5, 0.5, "every setting diverged", transform=ax.transAxes, ha="center", va="center")
    ax.set_xlabel("NFE per image (decoder forward+backward passes)")
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 3.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    return notes, outside


def legend_handles(
    dt_inits: list, dt_maxes: list, settings: list, diverged: list[str], deciding: bool, seeded: bool = False
) -> list:
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
        Patch(
            facecolor=lighter(plotstyle.model_colour("gfe_amd"), 0.75),
            alpha=0.6,
            edgecolor="black",
            ls="--",
            lw=0.8,
            label=f"(i) AMD's best + {100 * claims.ROBUST_SPREAD:g}%: every AMD setting must end inside"
            + (" (drawn on seed means)" if seeded else ""),
        ),
        Line2D(
            [],
            [],
            **MATCHED_BAR,
            label=(
                f"(iii) rk4 at equal NFE + {100 * claims.MATCHED_MARGIN:g}%: the configured AMD setting must end below"
            ),
        ),
    ]
    if deciding:
        handles.append(
            Line2D(
                [],
                [],
                marker="o",
                ms=8,
                color=plotstyle.model_colour("gfe_amd"),
                ls="none",
                label="filled, labelled: AMD settings outside the band (the verdict turns on them)",
            )
        )
    if diverged:
        handles.append(
            Line2D([], [], **DIVERGED, label="diverged (non-finite loss), on the top edge:\n" + "\n".join(diverged))
        )
    return handles


def main(argv=None):
    p = plotstyle.parser(__doc__)
    p.add_argument("--table", required=True)
    a = p.parse_args(argv)
    raw = pd.read_csv(a.table)
    raw = raw.rename(columns={"decoder_seed": "seed"}) if "seed" not in raw else raw
    t = per_setting(raw)
    seeded = "seed" in raw and raw["seed"].nunique() > 1
    groups = list(t.groupby(["dataset", "decoder_model"], sort=True))
    amd = t[t["solver"] == "amd"]
    dt_inits, dt_maxes = sorted(amd["dt_init"].unique()), sorted(amd["dt_max"].unique())
    settings = sorted({(r.dt_init, r.dt_max) for r in amd.itertuples()})
    fig, axes = plotstyle.figure("double", 5.0, ncols=len(groups), squeeze=False)
    diverged_notes, deciding = [], False
    for ax, ((ds, decoder), part) in zip(axes[0], groups, strict=True):
        notes, outside = panel(ax, part, dt_inits, dt_maxes)
        deciding |= outside
        diverged_notes += [f"{plotstyle.display_name(decoder)}: {n}" for n in notes]
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
        handles=legend_handles(dt_inits, dt_maxes, settings, diverged_notes, deciding, seeded),
        loc="outside lower center",
        ncols=2,
        frameon=False,
    )
    seeds = f", mean over the decoders of {raw['seed'].nunique()} seeds" if seeded else ""
    fig.suptitle(
        f"Claim 4: encoding {int(first['n_images'])} test images from z0 = {first['z0']} "
        f"to τ = {first['tau']:g}{seeds}:\n"
        "AMD over its step settings vs rk4 over its step counts (both axes log scale, none clipped)"
    )
    plotstyle.save(fig, a.png, a.pdf)


if __name__ == "__main__":
    sys.exit(main())
