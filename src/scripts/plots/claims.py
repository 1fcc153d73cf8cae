"""Claims forest plot: one row per claim (and dataset) of results/<name>/claims.csv, written by
summarize.py from the verdicts of src/pipeline/claims/. Each row: the claim, its decisive effect with the 95%
t-interval of the per-seed paired differences (a point alone where the effect has no interval,
such as a parameter ratio) on its own axis in its own unit, the threshold of its criterion as a
dashed line and the region where the claim is supported shaded, coloured by the verdict. A
claim without a single effect (no decided training-set size, or a criterion of several parts)
says so in its row instead of a point: no number is drawn that the table does not hold."""

import math
import sys
import textwrap

import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from pipeline import plotstyle

ROW_IN = 0.78  # height of one claim's row (inches)


def fmt(x) -> str:
    """4 significant digits with a true minus sign, as in summary.md; 'n/a' for a missing number."""
    if x is None or pd.isna(x):
        return "n/a"
    text = f"{float(x):#.4g}"
    return (text[:-1] if text.endswith(".") else text).replace("-", "\u2212")


def setting(x) -> str:
    """A threshold as written: up to 4 significant digits, no trailing zeros."""
    return f"{float(x):.4g}".replace("-", "\u2212")


def display_names(text: str) -> str:
    """Model code names in a measure replaced by their display names (longest names first)."""
    for model in sorted(plotstyle.MODEL_NAMES, key=len, reverse=True):
        text = text.replace(model, plotstyle.display_name(model))
    return text


def verdict_colour(verdict: str) -> str:
    return plotstyle.VERDICT_COLOURS.get(verdict, plotstyle.VERDICT_COLOURS["not tested"])


def supported_region(row) -> tuple[float, float] | None:
    """(low, high) of the effects that support the claim: the band [threshold, threshold_high]
    when both are given, else everything up to the threshold (every criterion here is 'lower is
    better'); None without a threshold."""
    low, high = row["threshold"], row["threshold_high"]
    if pd.notna(low) and pd.notna(high):
        return float(low), float(high)
    if pd.notna(low):
        return -math.inf, float(low)
    return None


def x_limits(row) -> tuple[float, float] | None:
    """An x-range holding the effect, its interval and the threshold(s), padded by 15%."""
    values = [row[c] for c in ("effect", "ci_low", "ci_high", "threshold", "threshold_high") if pd.notna(row[c])]
    if not values:
        return None
    low, high = min(values), max(values)
    pad = 0.15 * (high - low) if high > low else 0.1 * max(abs(high), 1e-3)
    return low - pad, high + pad


def draw_row(label_ax, ax, text_ax, row) -> None:
    colour = verdict_colour(row["verdict"])
    name = plotstyle.dataset_name(row["dataset"]) if isinstance(row["dataset"], str) and row["dataset"] else ""
    title = f"{row['claim']}: {row['title']}" + (f" ({name})" if name else "")
    measure = display_names(row["measure"]) if isinstance(row["measure"], str) else ""
    head = label_ax.text(0, 1.0, textwrap.fill(title, 40), va="top", ha="left", fontsize=plotstyle.FONT_PT)
    if measure and pd.notna(row["effect"]):  # right under the title, whatever its number of lines
        label_ax.annotate(
            textwrap.fill(measure, 50),
            xy=(0, 0),
            xycoords=head,
            xytext=(0, -2),
            textcoords="offset points",
            va="top",
            ha="left",
            fontsize=plotstyle.SMALL_PT,
            color="dimgrey",
        )
    label_ax.set_axis_off()
    limits = x_limits(row)
    region = supported_region(row)
    if limits:
        ax.set_xlim(*limits)
    if region:
        low, high = region
        ax.axvspan(max(low, ax.get_xlim()[0]), high, color=plotstyle.VERDICT_COLOURS["supported"], alpha=0.08, lw=0)
        for edge in (low, high):
            if math.isfinite(edge):
                ax.axvline(edge, color="black", lw=0.8, ls="--")
    has_effect = pd.notna(row["effect"])
    if has_effect:
        has_interval = pd.notna(row["ci_low"]) and pd.notna(row["ci_high"])
        xerr = [[row["effect"] - row["ci_low"]], [row["ci_high"] - row["effect"]]] if has_interval else None
        ax.errorbar([row["effect"]], [0], xerr=xerr, fmt="o", ms=5, color=colour, elinewidth=2, capsize=3, zorder=3)
        numbers = (
            f"{fmt(row['effect'])} [{fmt(row['ci_low'])}, {fmt(row['ci_high'])}]"
            if has_interval
            else fmt(row["effect"])
        )
    else:
        why = measure or "no effect in the table"
        ax.text(
            0.5,
            0.5,
            textwrap.fill(f"no single effect: {why}", 40),
            transform=ax.transAxes,
            ha="center",
            va="center",
            fontsize=plotstyle.SMALL_PT,
            style="italic",
            color="dimgrey",
        )
        numbers = "no single effect"
    ax.set_ylim(-1, 1)
    ax.set_yticks([])
    ax.grid(axis="y", visible=False)
    ax.tick_params(axis="x", labelsize=plotstyle.SMALL_PT, pad=1)
    unit = row["unit"] if isinstance(row["unit"], str) else ""
    if unit:
        ax.set_xlabel(unit, fontsize=plotstyle.SMALL_PT, labelpad=1)
    if not limits:
        ax.set_xticks([])
    threshold = ""
    if pd.notna(row["threshold"]) and pd.notna(row["threshold_high"]):
        threshold = f"supported within [{setting(row['threshold'])}, {setting(row['threshold_high'])}]"
    elif pd.notna(row["threshold"]):
        threshold = f"threshold {setting(row['threshold'])}"
    lines = [row["verdict"], numbers] + ([threshold] if threshold else [])
    text_ax.text(0.04, 1.0, lines[0], va="top", ha="left", color=colour, fontweight="bold", fontsize=plotstyle.FONT_PT)
    text_ax.text(0.04, 0.7, "\n".join(lines[1:]), va="top", ha="left", fontsize=plotstyle.SMALL_PT)
    text_ax.set_axis_off()


def main(argv=None):
    p = plotstyle.parser(__doc__)
    p.add_argument("--table", required=True, help="claims.csv (claim, dataset, title, effect, ci_low, ci_high, ...)")
    a = p.parse_args(argv)
    t = pd.read_csv(a.table, keep_default_na=True)
    n = max(len(t), 1)
    fig, axes = plotstyle.figure("double", ROW_IN * n + 0.55, n, 3, squeeze=False, width_ratios=[2.4, 2.7, 1.9])
    for (label_ax, ax, text_ax), (_, row) in zip(axes, t.iterrows(), strict=False):
        draw_row(label_ax, ax, text_ax, row)
    if t.empty:
        axes[0, 1].text(0.5, 0.5, "no claims in the table", transform=axes[0, 1].transAxes, ha="center")
    handles = [
        Line2D([], [], ls="none", marker="o", color=plotstyle.VERDICT_COLOURS[v], label=v)
        for v in ("supported", "not supported", "not tested at this budget")
    ]
    handles += [
        Line2D([], [], color="black", ls="--", lw=0.8, label="threshold of the criterion"),
        Patch(color=plotstyle.VERDICT_COLOURS["supported"], alpha=0.15, lw=0, label="effects that support the claim"),
        Line2D([], [], color="grey", marker="o", lw=2, label="effect, 95% t-interval over seeds"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=3)
    plotstyle.save(fig, a.png, a.pdf)


if __name__ == "__main__":
    sys.exit(main())
