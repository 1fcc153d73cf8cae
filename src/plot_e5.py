"""E5 figure: encoding loss along the flow. Per dataset (one row): 'own decoder' (each
model's own flow on its own decoder, loss vs integration time t) and 'common decoder'
(rk4 step counts and orders over a tau sweep, and AMD, on one decoder; loss vs NFE per
image). The y range is clipped so that a blown-up curve does not squash the others; such
curves say 'off scale' or 'diverged' in the legend."""

import sys

import numpy as np
import pandas as pd
from matplotlib.ticker import FuncFormatter

import plotstyle
from plotstyle import plt

OWN, COMMON = "own decoder", "common decoder"
CURVE = ["decoder_model", "solver", "order", "steps", "tau", "z0"]
ORDER = {1: "1st order", 2: "2nd order"}
# The common-decoder panel colours rk4 settings (tau, steps) from a sequential map, apart
# from the per-model colours of plotstyle.COLORS, which mean models in every figure.
RK4_CMAP = plt.get_cmap("viridis")


def curves(part):
    """(key dict, rows sorted by t) per curve, AMD last, then by order, tau and steps."""
    out = []
    for key, g in part.groupby(CURVE, dropna=False, sort=False):
        out.append((dict(zip(CURVE, key, strict=True)), g.sort_values("t")))
    return sorted(
        out,
        key=lambda c: (
            c[0]["decoder_model"],
            c[0]["solver"] == "amd",
            c[0]["order"],
            c[0]["tau"],
            -np.nan_to_num(c[0]["steps"], nan=0),
        ),
    )


def method_text(key, *, z0_differs: bool) -> str:
    solver = "AMD" if key["solver"] == "amd" else f"rk4 {int(key['steps'])} steps"
    text = f"{ORDER.get(int(key['order']), key['order'])}, {solver}, τ = {key['tau']:g}"
    return text + (f", z0 {key['z0']}" if z0_differs else "")


def y_limits(panel_curves, x_col):
    """(bottom, top) of a log y axis: top at the larger of 3 x the best final loss and
    1.2 x the largest starting loss, so a blown-up curve goes off the top."""
    finals, starts, shown = [], [], []
    for _, g in panel_curves:
        loss = g["loss_mean"].to_numpy(float)
        if np.isfinite(loss[-1]):
            finals.append(loss[-1])
        if np.isfinite(loss[0]):
            starts.append(loss[0])
        visible = loss[(g[x_col].to_numpy(float) > 0) & np.isfinite(loss)]
        shown.extend(visible[visible > 0])
    if not shown:
        return None
    best = min(finals) if finals else min(shown)
    top = max(3.0 * best, 1.2 * max(starts) if starts else 0.0)
    bottom = 0.8 * min(shown)
    return bottom, max(top, 1.5 * bottom)


def draw(ax, panel_curves, x_col, label_of, style_of, limits):
    for key, g in panel_curves:
        loss = g["loss_mean"].to_numpy(float)
        x = g[x_col].to_numpy(float)
        bad = ~np.isfinite(loss)
        label = label_of(key)
        if bad.any():
            first = int(np.argmax(bad))
            where = f"t = {g['t'].iloc[first]:g}" if x_col == "t" else f"NFE {x[first]:g}"
            label += f" (diverged at {where})"
        elif limits is not None and np.nanmax(np.where(x > 0, loss, np.nan), initial=-np.inf) > limits[1]:
            label += " (off scale)" if loss[-1] > limits[1] else " (partly off scale)"
        keep = (x > 0) & ~bad
        color, style = style_of(key)
        (line,) = ax.plot(x[keep], loss[keep], label=label, color=color, **style)
        if bad.any() and keep.any():  # the last finite point before the divergence
            last = np.flatnonzero(keep)[-1]
            ax.plot(x[last], min(loss[last], limits[1] if limits else loss[last]), marker="x", ms=8, color=color)
    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis in (ax.yaxis.set_major_formatter, ax.yaxis.set_minor_formatter):
        axis(FuncFormatter(lambda v, _: f"{v:.3g}"))
    if limits is not None:
        ax.set_ylim(*limits)
    handles = ax.get_legend_handles_labels()[0]
    if handles:  # below the panel, where it covers no curve
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncols=2 if len(handles) > 4 else 1, fontsize=7.5)


def main(argv=None):
    p = plotstyle.parser(__doc__)
    p.add_argument("--table", required=True, help="encoding_convergence.py's CSV (all datasets)")
    a = p.parse_args(argv)
    t = pd.read_csv(a.table)
    datasets = sorted(t["dataset"].unique())
    fig, axes = plt.subplots(len(datasets), 2, figsize=(12, 5.6 * len(datasets)), squeeze=False, layout="constrained")
    for row, ds in zip(axes, datasets, strict=True):
        part = t[t["dataset"] == ds]
        own = curves(part[part["panel"] == OWN])
        common = curves(part[part["panel"] == COMMON])
        z0_own = len({k["z0"] for k, _ in own}) > 1
        z0_common = len({k["z0"] for k, _ in common}) > 1

        def own_style(key):
            ls = ":" if key["solver"] == "amd" else "--" if key["order"] == 2 else "-"
            return plotstyle.COLORS.get(key["decoder_model"]), {"ls": ls, "lw": 2 if key["solver"] == "amd" else 1.5}

        rk4_keys = sorted({(k["tau"], k["steps"]) for k, _ in common if k["solver"] == "rk4"})
        rk4_color = {k: RK4_CMAP(0.85 * i / max(len(rk4_keys) - 1, 1)) for i, k in enumerate(rk4_keys)}

        def common_style(key, rk4_color=rk4_color):
            if key["solver"] == "amd":
                return plotstyle.COLORS.get("gfe_amd", "tab:red"), {"ls": ":", "lw": 2}
            return rk4_color[(key["tau"], key["steps"])], {"ls": "--" if key["order"] == 2 else "-"}

        draw(
            row[0],
            own,
            "t",
            lambda k, z0_own=z0_own: f"{k['decoder_model']} decoder, " + method_text(k, z0_differs=z0_own),
            own_style,
            y_limits(own, "t"),
        )
        draw(
            row[1],
            common,
            "nfe_mean",
            lambda k, z0_common=z0_common: method_text(k, z0_differs=z0_common),
            common_style,
            y_limits(common, "nfe_mean"),
        )
        row[0].set_title(f"{plotstyle.dataset_name(ds)}: each model on its own decoder")
        names = ", ".join(sorted({k["decoder_model"] for k, _ in common}))
        row[1].set_title(f"{plotstyle.dataset_name(ds)}: common decoder ({names})")
        row[0].set_xlabel("integration time t (flow time units, log scale; t = 0 not shown)")
        row[1].set_xlabel("decoder evaluations per image (NFE, forward+backward; log scale)")
        for ax in row:
            ax.set_ylabel(plotstyle.two_lines(plotstyle.loss_label(ds, "mean encoding loss")))
            if not ax.has_data():
                ax.text(0.5, 0.5, "no curves", transform=ax.transAxes, ha="center", va="center")
    n_images = ", ".join(str(n) for n in sorted(t["n_images"].unique()))
    z0 = ", ".join(sorted(t["z0"].unique()))
    fig.suptitle(
        f"E5: encoding loss along the flow ({n_images} test images, z0 = {z0})\n"
        "solid: 1st order, dashed: 2nd order, dotted: AMD; ×: last finite point before a divergence"
    )
    plotstyle.save(fig, a.png, a.pdf)


if __name__ == "__main__":
    sys.exit(main())
