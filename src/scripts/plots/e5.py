"""E5 figure: encoding loss along the flow, one row of three panels per dataset.

(a) each model's own flow on its own decoder, loss against integration time t (symlog: linear
    from t = 0 to 1, so every curve shows its starting loss at z0, log above);
(b) one common decoder, first-order rk4 at the step counts of the sweep and AMD, at the
    largest tau, loss against NFE per image;
(c) the same decoder, rk4 with the most steps, first and second order, over the tau sweep,
    and AMD, loss against NFE per image.

One visual language with every other figure (plotstyle): colour means the model whose flow
it is (AMD: GFE-amd, first-order rk4: GFE-rk4, second-order rk4: GFE-2nd); all lines are
solid (every flow here is one of the papers'); within a colour, the swept setting (steps or
tau) is told apart by marker and lightness. No axis is clipped: the loss axis is logarithmic
over the whole range. A curve whose final loss is above its starting loss is marked with
"x" at its end; a curve that turned non-finite with a triangle on the panel's top edge at
the first non-finite point. Every legend entry gives the curve's z0 and final loss.
"""

import sys

import numpy as np
import pandas as pd
from matplotlib.colors import to_rgb
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from pipeline import plotstyle

OWN, COMMON = "own decoder", "common decoder"
CURVE = ["decoder_model", "solver", "order", "steps", "tau", "z0"]
# Markers of a swept setting, from the smallest value to the largest (the main setting: "o").
SWEEP_MARKERS = ["v", "D", "^", "P", "X"]
UNSTABLE_MARKER = dict(marker="x", ms=7, mew=1.6, color="black", ls="none")
NONFINITE_MARKER = dict(marker="^", ms=6, mec="black", mfc="none", mew=1.2, ls="none")


def flow_model(key) -> str:
    """The model whose flow a curve is: AMD is GFE-amd's, rk4 of order 1 GFE-rk4's, of order 2 GFE-2nd's."""
    if key["solver"] == "amd":
        return "gfe_amd"
    return "gfe_2nd" if int(key["order"]) == 2 else "gfe_rk4"


def lighter(colour, amount: float):
    """A colour mixed with white (amount 0: the colour itself, 1: white)."""
    return tuple(c + (1 - c) * amount for c in to_rgb(colour))


def curves(part: pd.DataFrame) -> list[tuple[dict, pd.DataFrame]]:
    """(key dict, rows sorted by t) per curve."""
    return [(dict(zip(CURVE, key, strict=True)), g.sort_values("t")) for key, g in part.groupby(CURVE, dropna=False)]


def status(g: pd.DataFrame) -> tuple[str, int | None]:
    """('nonfinite', index of the first non-finite point), ('unstable', None) when the final loss
    is above the starting loss, else ('ok', None)."""
    loss = g["loss_mean"].to_numpy(float)
    bad = ~np.isfinite(loss)
    if bad.any():
        return "nonfinite", int(np.argmax(bad))
    return ("unstable" if loss[-1] > loss[0] else "ok"), None


def final_text(g: pd.DataFrame) -> str:
    state, first = status(g)
    if state == "nonfinite":
        return f"non-finite from t = {g['t'].iloc[first]:g}"
    return f"final {g['loss_mean'].iloc[-1]:.3g}"


def draw_curve(ax, g: pd.DataFrame, x_col: str, label: str, colour, marker: str | None = None) -> None:
    """One curve (its finite points with x > 0: the line never joins t = 0 to a first rk4 step
    far away), with the divergence markers of `status`."""
    x = g[x_col].to_numpy(float)
    loss = g["loss_mean"].to_numpy(float)
    keep = np.isfinite(loss) & (x > 0)
    style = {"color": colour, "ls": "-", "lw": 1.1}
    if marker:
        style.update(marker=marker, markevery=0.1, ms=3.5, mfc=colour, mec=colour)
    ax.plot(x[keep], loss[keep], label=label, **style)
    state, first = status(g)
    if state == "unstable":
        ax.plot(x[keep][-1], loss[keep][-1], **UNSTABLE_MARKER, zorder=5)
    elif state == "nonfinite":
        # on the top edge (axes coordinates in y), at the x of the first non-finite point
        ax.plot(x[first], 1.0, transform=ax.get_xaxis_transform(), clip_on=False, **NONFINITE_MARKER, zorder=5)


def log_loss_axis(ax) -> None:
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 3.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def legend_below(ax, handles=None, ncols: int = 1) -> None:
    handles = handles if handles is not None else ax.get_legend_handles_labels()[0]
    if handles:
        ax.legend(
            handles=handles,
            loc="upper center",
            bbox_to_anchor=(0.5, -0.2),
            ncols=ncols,
            frameon=False,
            handlelength=1.8,
        )


def marker_entries(found: set[str]) -> list[Line2D]:
    """Legend entries of the divergence markers that a panel shows."""
    out = []
    if "unstable" in found:
        out.append(Line2D([], [], **UNSTABLE_MARKER, label="final loss above the start"))
    if "nonfinite" in found:
        out.append(Line2D([], [], **NONFINITE_MARKER, label="turned non-finite (top edge)"))
    return out


def own_panel(ax, own) -> None:
    """(a): each model's flow on its own decoder, loss against t (symlog)."""
    ax.set_xscale("symlog", linthresh=1.0, linscale=0.6)
    found = set()
    for key, g in sorted(own, key=lambda c: c[0]["decoder_model"]):
        model = key["decoder_model"]
        solver = "AMD" if key["solver"] == "amd" else f"rk4 {int(key['steps'])} steps"
        order = ", 2nd order" if int(key["order"]) == 2 else ""
        label = f"{plotstyle.model_label(model)}: {solver}{order},\nτ = {key['tau']:g}, z0 {key['z0']}, {final_text(g)}"
        draw_curve(ax, g, "t", label, plotstyle.model_colour(model))
        loss0 = g["loss_mean"].iloc[0]
        ax.plot(
            0,
            loss0,
            marker="o",
            ms=4,
            mfc="white",
            mec=plotstyle.model_colour(model),
            ls="none",
            zorder=4,
            clip_on=False,
        )
        found.add(status(g)[0])
    ax.set_xlim(left=0)
    top = max((g["t"].max() for _, g in own), default=1.0)
    ticks = [0.0] + [10.0**e for e in range(0, int(np.floor(np.log10(max(top, 1.0)))) + 1)]
    ax.set_xticks(ticks, [f"{v:g}" if v < 1000 else f"$10^{{{int(np.log10(v))}}}$" for v in ticks])
    ax.set_xlabel("integration time t (flow time units;\nlinear 0 to 1, log above)")
    handles = ax.get_legend_handles_labels()[0]
    start = Line2D([], [], marker="o", ms=4, mfc="white", mec="black", ls="none", label="loss at t = 0 (at z0)")
    legend_below(ax, handles + [start] + marker_entries(found))


def sweep_panel(ax, chosen, amd, swept: str) -> None:
    """(b) or (c): rk4 curves over one swept setting (`steps` or `tau`) and the AMD curve,
    loss against NFE per image. Colour: the flow's model; marker and lightness: the setting
    (the largest value full colour with "o")."""
    ax.set_xscale("log")
    values = sorted({k[swept] for k, _ in chosen})
    found = set()
    for key, g in sorted(chosen, key=lambda c: (int(c[0]["order"]), c[0][swept])):
        rank = values.index(key[swept])
        from_top = len(values) - 1 - rank
        marker = "o" if from_top == 0 else SWEEP_MARKERS[(from_top - 1) % len(SWEEP_MARKERS)]
        colour = lighter(plotstyle.model_colour(flow_model(key)), 0.45 * from_top / max(len(values) - 1, 1))
        order = "2nd" if int(key["order"]) == 2 else "1st"
        what = f"{int(key['steps'])} steps" if swept == "steps" else f"τ = {key['tau']:g}"
        draw_curve(ax, g, "nfe_mean", f"rk4 {order} order, {what}: {final_text(g)}", colour, marker)
        found.add(status(g)[0])
    for key, g in amd:
        draw_curve(ax, g, "nfe_mean", f"AMD, τ = {key['tau']:g}: {final_text(g)}", plotstyle.model_colour("gfe_amd"))
        found.add(status(g)[0])
    ax.set_xlabel("decoder evaluations per image\n(NFE, forward+backward; log scale)")
    legend_below(ax, ax.get_legend_handles_labels()[0] + marker_entries(found))


def split_common(common):
    """The common-decoder curves as (AMD curves, step-count sweep, tau sweep): the step sweep is
    first-order rk4 at the largest tau; the tau sweep is rk4 with the most steps."""
    amd = [c for c in common if c[0]["solver"] == "amd"]
    rk4 = [c for c in common if c[0]["solver"] != "amd"]
    if not rk4:
        return amd, [], []
    main_tau = max(k["tau"] for k, _ in rk4)
    main_steps = max(k["steps"] for k, _ in rk4)
    steps = [c for c in rk4 if c[0]["tau"] == main_tau and int(c[0]["order"]) == 1]
    taus = [c for c in rk4 if c[0]["steps"] == main_steps]
    return amd, steps, taus


def main(argv=None):
    p = plotstyle.parser(__doc__)
    p.add_argument("--table", required=True, help="encoding_convergence.py's CSV (all datasets)")
    a = p.parse_args(argv)
    t = pd.read_csv(a.table)
    datasets = sorted(t["dataset"].unique())
    fig, axes = plotstyle.figure("double", 4.6 * len(datasets), nrows=len(datasets), ncols=3, squeeze=False)
    for row, ds in zip(axes, datasets, strict=True):
        part = t[t["dataset"] == ds]
        own = curves(part[part["panel"] == OWN])
        common = curves(part[part["panel"] == COMMON])
        amd, steps, taus = split_common(common)
        own_panel(row[0], own)
        sweep_panel(row[1], steps, amd, "steps")
        sweep_panel(row[2], taus, amd, "tau")
        decoder = ", ".join(plotstyle.display_name(m) for m in sorted({k["decoder_model"] for k, _ in common}))
        z0 = ", ".join(sorted({k["z0"] for k, _ in common}))
        main_tau = max((k["tau"] for k, _ in steps), default=float("nan"))
        main_steps = max((int(k["steps"]) for k, _ in taus), default=0)
        row[0].set_title(f"(a) {plotstyle.dataset_name(ds)}: each model\non its own decoder")
        row[1].set_title(f"(b) {decoder} decoder, z0 {z0}:\nrk4 step count (τ = {main_tau:g})")
        row[2].set_title(f"(c) {decoder} decoder, z0 {z0}:\nτ sweep (rk4 {main_steps} steps)")
        row[0].set_ylabel(plotstyle.short_loss_label(ds, "mean encoding loss") + ", log scale")
        for ax in row:
            log_loss_axis(ax)
            if not ax.has_data():
                ax.text(0.5, 0.5, "no curves", transform=ax.transAxes, ha="center", va="center")
    n_images = ", ".join(str(n) for n in sorted(t["n_images"].unique()))
    fig.suptitle(
        f"E5: encoding loss along the flow ({n_images} test images). Colour: the model whose flow it is;\n"
        "z0 of each curve in the legends; no axis is clipped"
    )
    plotstyle.save(fig, a.png, a.pdf)


if __name__ == "__main__":
    sys.exit(main())
