"""The figures' visual language (src/pipeline/plotstyle.py) and the E1-E4 and claims figures: one colour
per model, class colours apart from them, dotted only beyond the papers, display names in every
text, paper column widths with text of at least 7 pt, and each plot script run on a small
synthetic table and on the committed results."""

import importlib
import math
import re
import sys
from pathlib import Path

import matplotlib.colors as mcolors
import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.text import Text  # noqa: E402

import pipeline.config  # noqa: E402
from pipeline import claims, plotstyle  # noqa: E402  (the workflow's code lives in src/)
from scripts import summarize  # noqa: E402

RESULTS = REPO / "results/default"
CODE_NAME = re.compile(r"\b(?:ae|gfe_[a-z0-9_]+)\b")


# ---------------------------------------------------------------- the style


def lab(colour) -> np.ndarray:
    """CIELAB (D65) of a matplotlib colour."""
    rgb = np.array(mcolors.to_rgb(colour))
    rgb = np.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]) @ rgb
    f = xyz / np.array([0.9505, 1.0, 1.089])
    f = np.where(f > 0.008856, np.cbrt(f), 7.787 * f + 16 / 116)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def test_every_model_has_its_own_colour_name_and_marker():
    assert set(pipeline.config.MODELS) <= set(plotstyle.MODEL_COLOURS)
    colours = [mcolors.to_hex(plotstyle.MODEL_COLOURS[m]) for m in pipeline.config.MODELS]
    assert len(set(colours)) == len(colours)
    assert plotstyle.COLORS is plotstyle.MODEL_COLOURS  # the old name still works
    names = [plotstyle.display_name(m) for m in pipeline.config.MODELS]
    assert len(set(names)) == len(names) and not any("_" in n for n in names)
    assert plotstyle.display_name("gfe_amd") == "GFE-amd" and plotstyle.display_name("ae") == "AE"
    assert len({plotstyle.MODEL_MARKERS[m] for m in pipeline.config.MODELS}) == len(pipeline.config.MODELS)


def test_class_colours_never_read_as_a_model():
    classes = [mcolors.to_hex(c) for c in plotstyle.CLASS_COLOURS]
    assert len(classes) == 10 and len(set(classes)) == 10
    models = [mcolors.to_hex(c) for c in plotstyle.MODEL_COLOURS.values()]
    assert not set(classes) & set(models)
    closest = min(np.linalg.norm(lab(c) - lab(m)) for c in classes for m in models)
    assert closest >= 30, closest  # CIELAB ΔE: clearly another colour
    apart = min(np.linalg.norm(lab(a) - lab(b)) for i, a in enumerate(classes) for b in classes[i + 1 :])
    assert apart >= 50, apart  # two classes never look alike on a map (two blues did: ΔE 38)
    assert plotstyle.CLASS_NAMES[0] == "T-shirt/top" and plotstyle.CLASS_NAMES[9] == "Ankle boot"
    assert plotstyle.class_name("fashion_mnist", 8) == "Bag" and plotstyle.class_name("mnist", 3) == "3"


def test_only_models_beyond_the_papers_are_dotted():
    for model in pipeline.config.MODELS:
        style = plotstyle.line_style(model)
        assert style["color"] == plotstyle.MODEL_COLOURS[model]
        assert (style["ls"] == ":") == (model in plotstyle.BEYOND_THE_PAPERS), model
        assert plotstyle.model_ls(model) == style["ls"]
    assert plotstyle.model_label("gfe_lbfgs", "1 seed") == "GFE-lbfgs (beyond the papers, 1 seed)"
    assert plotstyle.model_label("gfe_amd_per_sample", "1 seed") == "GFE-amd (per-sample, 1 seed)"
    assert plotstyle.model_label("ae") == "AE"


def test_figures_are_made_at_the_paper_widths_with_readable_text():
    for width, inches in (("single", 3.5), ("double", 7.0)):
        fig, _ = plotstyle.figure(width, 2.0)
        assert fig.get_size_inches()[0] == pytest.approx(inches)
        plotstyle.plt.close(fig)
    with pytest.raises(ValueError):
        plotstyle.figure("wide")
    rc = plotstyle.plt.rcParams
    for key in ("font.size", "axes.labelsize", "axes.titlesize", "xtick.labelsize", "ytick.labelsize"):
        assert float(rc[key]) >= 7, key
    assert float(rc["legend.fontsize"]) >= 7


def test_verdict_colours_cover_every_verdict():
    assert set(claims.VERDICTS) <= set(plotstyle.VERDICT_COLOURS)
    colours = {plotstyle.VERDICT_COLOURS[v] for v in claims.VERDICTS}
    assert len(colours) == 3


def test_t_interval():
    mean, low, high = plotstyle.t_interval([1.0, 2.0, 3.0])
    assert mean == 2.0 and (low, high) == pytest.approx((2 - 2.4841377, 2 + 2.4841377))
    assert plotstyle.t_interval([5.0]) == (5.0, 5.0, 5.0)
    assert all(math.isnan(x) for x in plotstyle.t_interval([]))


# ---------------------------------------------------------------- running the scripts


@pytest.fixture
def drawn(monkeypatch, tmp_path):
    """Run a plot script's main() and return its figure (saved too, then inspected)."""

    def run(script: str, *args: str):
        module = importlib.import_module("scripts.plots." + script.removeprefix("plot_"))
        figures = []
        real = plotstyle.save

        def keep(fig, png, pdf):
            figures.append(fig)
            fig.canvas.draw()
            fig.drawn_width = fig.get_tightbbox().width  # before save closes the figure
            real(fig, png, pdf)

        monkeypatch.setattr(plotstyle, "save", keep)
        png, pdf = tmp_path / f"{script}.png", tmp_path / f"{script}.pdf"
        module.main([*args, "--png", str(png), "--pdf", str(pdf)])
        assert png.stat().st_size > 1000 and pdf.stat().st_size > 1000
        return figures[0]

    return run


def texts(fig) -> list[Text]:
    return [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]


def check_readable(fig, width: float = 7.0) -> None:
    """Double-column width (nothing sticks out), text ≥ 7 pt, no model code name in any text."""
    assert fig.get_size_inches()[0] == pytest.approx(width)
    assert fig.drawn_width <= width + 0.05, fig.drawn_width
    small = [(t.get_text(), t.get_fontsize()) for t in texts(fig) if t.get_fontsize() < 7]
    assert not small, small
    coded = [t.get_text() for t in texts(fig) if CODE_NAME.search(t.get_text())]
    assert not coded, coded


def e1_table(sizes=(100, 300, 1000, 3000, 10000), models=("ae", "gfe_amd", "gfe_lbfgs"), seeds=(0, 1, 2)):
    rows = []
    for i, model in enumerate(models):
        for n in sizes:
            for seed in seeds:
                rows.append(
                    dict(
                        dataset="fashion_mnist",
                        model=model,
                        train_size=n,
                        seed=seed,
                        test_loss_mean=0.35 - 0.01 * i - 0.005 * math.log10(n) + 0.001 * seed,
                        best_images_seen=1000 + 10 * n + 100 * seed,
                        stop_reason="cap" if (seed == 2 and model == "gfe_amd") else "plateau",
                    )
                )
    return pd.DataFrame(rows)


def test_e1_labels_every_size_and_hides_no_point(drawn, tmp_path):
    table = tmp_path / "e1.csv"
    e1_table().to_csv(table, index=False)
    fig = drawn("plot_e1", "--table", str(table))
    check_readable(fig)
    loss_ax = fig.axes[0]
    assert loss_ax.get_xscale() == "log"
    labels = [t.get_text() for t in loss_ax.get_xticklabels()]
    assert labels == ["100", "300", "1,000", "3,000", "10,000"]
    assert not [t for t in loss_ax.xaxis.get_minorticklabels() if t.get_text()]
    # the mean markers of the models at one N never share an x
    xs = [
        tuple(np.round(np.asarray(line.get_xdata(), dtype=float), 6))
        for line in loss_ax.lines
        if line.get_marker() in ("o", "s", "X")
    ]
    firsts = {x[0] for x in xs if len(x) == 5}
    assert len(firsts) >= 3
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "GFE-lbfgs (beyond the papers, 3 seeds)" in legend
    assert any(t.startswith("hollow: a run stopped at its step cap") for t in legend)


def test_e1_two_sizes_are_not_joined_by_a_line(drawn, tmp_path):
    table = tmp_path / "e1.csv"
    e1_table(sizes=(100, 300)).to_csv(table, index=False)
    fig = drawn("plot_e1", "--table", str(table))
    joined = [line for line in fig.axes[0].lines if line.get_linestyle() not in ("None", "none", "")]
    assert not joined


def e2_tables(tmp_path):
    rows, points = [], []
    for model, rule, seeds in (("ae", "", 3), ("gfe_amd", "shared", 3), ("gfe_lbfgs", "", 1)):
        for seed in range(seeds):
            for step in range(0, 11):
                loss = 0.69 if step == 0 else 0.3 + 0.05 / step + (0.04 if model == "ae" else 0)
                rows.append(
                    dict(
                        dataset="fashion_mnist",
                        model=model,
                        amd_rule=rule,
                        train_size=49800,
                        seed=seed,
                        step=step,
                        images_seen=64 * step,
                        elapsed_s=(0.1 if model == "ae" else 5.0) * step,
                        n_images=200,
                        loss_mean=loss + 0.001 * seed,
                    )
                )
        points.append(
            dict(dataset="fashion_mnist", model=model, amd_rule=rule, images_seen=320, loss_mean=0.31, n_seeds=seeds)
        )
    table, point_table = tmp_path / "e2.csv", tmp_path / "points.csv"
    pd.DataFrame(rows).to_csv(table, index=False)
    pd.DataFrame(points).to_csv(point_table, index=False)
    return table, point_table


def test_e2_starts_after_step_0_and_marks_the_authors_points(drawn, tmp_path):
    table, points = e2_tables(tmp_path)
    fig = drawn("plot_e2", "--table", str(table), "--points", str(points))
    check_readable(fig)
    images_ax = fig.axes[0]
    assert images_ax.get_ylim()[1] < 0.5  # the step-0 loss (0.69) does not take the y-range
    curves = [line for line in images_ax.lines if line.get_linestyle() not in ("None", "none")]
    assert all(min(line.get_xdata()) > 0 for line in curves)
    markers = [line for line in images_ax.lines if line.get_linestyle() in ("None", "none")]
    assert len(markers) == 3 and all(line.get_marker() == "o" for line in markers)
    dotted = {line.get_color() for line in curves if line.get_linestyle() == ":"}
    assert dotted == {plotstyle.MODEL_COLOURS["gfe_lbfgs"]}
    assert not images_ax.get_legend()  # the legend is the figure's, below the panels


def solver_tables(tmp_path, models, steps=60, val_every=10, name="e3"):
    train, held = [], []
    for k, model in enumerate(models):
        for seed in range(3):
            for step in range(1, steps + 1):
                train.append(
                    dict(
                        dataset="fashion_mnist",
                        model=model,
                        train_size=1000,
                        seed=seed,
                        step=step,
                        loss=0.3 + 0.4 / step + 0.01 * k,
                        seconds=0.5 + k + 0.1 * seed,
                        grad_cosine=0.97 + 0.0004 * step if model == "gfe_adjoint" else np.nan,
                    )
                )
            for step in range(0, steps + 1, val_every):
                loss = 0.69 if step == 0 else 0.3 + 0.1 / step + 0.003 * k + 0.0005 * seed
                held.append(
                    dict(dataset="fashion_mnist", model=model, seed=seed, step=step, n_images=200, loss_mean=loss)
                )
    paths = tmp_path / f"{name}_train.csv", tmp_path / f"{name}_held.csv"
    pd.DataFrame(train).to_csv(paths[0], index=False)
    pd.DataFrame(held).to_csv(paths[1], index=False)
    return paths


def test_e3_smoothing_is_centred_and_keeps_the_start():
    from scripts.plots import e3 as plot_e3

    line = np.arange(50, dtype=float)
    assert np.allclose(plot_e3.centred_smooth(line, 25), line)  # a centred window does not lag
    steep = 1 / np.arange(1, 51)
    smooth = plot_e3.centred_smooth(steep, 25)
    assert smooth[0] == steep[0]
    trailing = pd.Series(steep).rolling(25, min_periods=1).mean().to_numpy()  # the old smoothing
    assert (smooth[:10] <= 1.1 * steep[:10]).all()  # within 10% of the raw start
    assert (trailing[2:10] > 1.5 * steep[2:10]).all()  # where a trailing window lifted it by half


def test_e3_has_the_paired_difference_panel(drawn, tmp_path):
    train, held = solver_tables(tmp_path, ["gfe_rk4", "gfe_2nd"])
    fig = drawn("plot_e3", "--train", str(train), "--heldout", str(held))
    check_readable(fig)
    from scripts.plots import e3 as plot_e3

    d = plot_e3.paired_difference(pd.read_csv(held), "gfe_rk4", "gfe_2nd")
    assert d["mean"].iloc[0] == 0 and list(d["mean"].iloc[1:]) == pytest.approx([0.003] * 6)
    assert (d["n"] == 3).all()
    assert "GFE-2nd − GFE-rk4" in fig.axes[2].get_title()
    legend = fig.legends[0]
    colours = {mcolors.to_hex(h.get_color()) for h in legend.legend_handles if isinstance(h, Line2D)}
    assert {plotstyle.MODEL_COLOURS["gfe_rk4"].lower(), plotstyle.MODEL_COLOURS["gfe_2nd"].lower()} <= colours


def test_e4_shows_the_relative_difference_and_fits_the_cosine_axis(drawn, tmp_path):
    train, held = solver_tables(tmp_path, ["gfe_rk4", "gfe_adjoint"], name="e4")
    fig = drawn("plot_e4", "--train", str(train), "--heldout", str(held))
    check_readable(fig)
    from scripts.plots import e4 as plot_e4

    frame = pd.read_csv(held)
    d = plot_e4.relative_difference(frame, "gfe_rk4", "gfe_adjoint")
    last = frame[frame["step"] == 60].pivot_table(index="seed", columns="model", values="loss_mean")
    expected = (100 * (last["gfe_rk4"] - last["gfe_adjoint"]) / last["gfe_adjoint"]).mean()
    assert d["mean"].iloc[-1] == pytest.approx(expected)
    cosine_ax = fig.axes[2]
    low, high = cosine_ax.get_ylim()
    assert low > 0.96 and high < 1.01  # fitted to 0.9704..0.994, not from 0.90
    assert "shared machine" in fig.axes[3].get_ylabel()


@pytest.mark.parametrize(
    "script, args",
    [
        ("plot_e1", ["--table", "e1_data_efficiency.csv"]),
        ("plot_e2", ["--table", "e2_learning_curves.csv", "--points", "e2_authors_points.csv"]),
        ("plot_e3", ["--train", "e3_solver_comparison.csv", "--heldout", "e3_heldout.csv"]),
        (
            "plot_e4",
            ["--train", "e4_adjoint_ablation.csv", "--heldout", "e4_heldout.csv", "--floors", "data_floors.csv"],
        ),
        ("plot_headline", ["--e1", "e1_data_efficiency.csv", "--e2", "e2_learning_curves.csv"]),
        ("plot_claims", ["--table", "claims.csv"]),
    ],
)
def test_scripts_run_on_the_committed_results(drawn, script, args):
    paths = [a if a.startswith("--") else str(RESULTS / a) for a in args]
    missing = [p for p in paths if not p.startswith("--") and not Path(p).exists()]
    if missing:
        pytest.skip(f"not committed: {missing}")
    check_readable(drawn(script, *paths))


# ---------------------------------------------------------------- claims.csv and the forest plot


def claims_table(tmp_path) -> Path:
    rows = [
        dict(claim="1a", dataset="fashion_mnist", title="fewer images", effect=-0.05, ci_low=-0.07, ci_high=-0.03,
             threshold=0.0, verdict="supported", measure="gfe_amd − ae at N = 100", unit="test loss (BCE)"),
        dict(claim="1b", dataset="fashion_mnist", title="competitive", effect=np.nan, ci_low=np.nan, ci_high=np.nan,
             threshold=np.nan, verdict="not tested at this budget", measure="no N ≥ 1000 plateaued", unit="loss"),
        dict(claim="2", dataset="fashion_mnist", title="adjoint", effect=0.2, ci_low=0.05, ci_high=0.35,
             threshold=0.1, verdict="not supported", measure="relative", unit="fraction"),
        dict(claim="3", dataset="fashion_mnist", title="second order", effect=-0.01, ci_low=-0.02, ci_high=0.001,
             threshold=0.0, verdict="not tested at this budget", measure="area", unit="loss"),
    ]  # fmt: skip
    frame = pd.DataFrame(rows).reindex(columns=summarize.CLAIM_COLUMNS)
    path = tmp_path / "claims.csv"
    frame.to_csv(path, index=False)
    return path


def test_forest_plot_colours_follow_the_verdicts(drawn, tmp_path):
    fig = drawn("plot_claims", "--table", str(claims_table(tmp_path)))
    check_readable(fig)
    interval_axes = fig.axes[1::3]
    expected = ["supported", None, "not supported", "not tested at this budget"]
    for ax, verdict in zip(interval_axes, expected, strict=True):
        points = [line for line in ax.lines if line.get_marker() == "o"]
        if verdict is None:  # no effect: no point, a note instead
            assert not points
            assert any("no single effect" in t.get_text() for t in ax.texts)
        else:
            assert [mcolors.to_hex(p.get_color()) for p in points] == [
                mcolors.to_hex(plotstyle.VERDICT_COLOURS[verdict])
            ]
    verdict_texts = [t for ax in fig.axes[2::3] for t in ax.texts if t.get_text() in claims.VERDICTS]
    for t in verdict_texts:
        assert mcolors.to_hex(t.get_color()) == mcolors.to_hex(plotstyle.VERDICT_COLOURS[t.get_text()])


def test_claims_csv_holds_the_numbers_the_verdicts_state():
    """summarize.claims_frame recomputes each decisive effect with claims.py's helpers: on the
    committed results its interval is the one each verdict's reason quotes."""
    names = summarize.TABLES
    if not all((RESULTS / f"{n}.csv").exists() for n in names):
        pytest.skip("no committed result tables")
    tables = summarize.read_tables([str(RESULTS / f"{n}.csv") for n in names])
    seeds = {"e1": [0, 1, 2], "e3": [0, 1, 2], "e4": [0, 1, 2]}
    verdicts = summarize.verdicts_of(tables, "config/paper.yaml", seeds)
    frame = summarize.claims_frame(verdicts, tables)
    assert list(frame.columns) == summarize.CLAIM_COLUMNS
    assert list(frame["claim"]) == [c.label for c in verdicts]
    assert list(frame["verdict"]) == [c.verdict for c in verdicts]
    checked = 0
    for row in frame.itertuples():
        if row.claim in ("1a", "2", "3") and row.verdict != "not tested at this budget":
            assert claims.fmt_interval(row.effect, row.ci_low, row.ci_high) in row.reason, row
            checked += 1
        if row.claim == "1c" and not math.isnan(row.effect):
            assert claims.fmt(row.effect) in row.reason
    assert checked >= 1
