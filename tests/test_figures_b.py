"""Figures E1, the headline, E4's panel (b), E5, claim 4 (E5 robustness), E6, E7 and the
benchmark figure, and the tables behind them (E6's per-class choice of test images, E7's k-NN
separability), on small synthetic tables: each figure is drawn, and what it must show is found
on its axes."""

from __future__ import annotations

import json
import re
import sys

import numpy as np
import pandas as pd
import pytest
from matplotlib.lines import Line2D
from matplotlib.text import Text

import gfe.io
from workflow_helpers import REPO

sys.path.insert(0, str(REPO / "src"))
from pipeline import (
    claims,  # noqa: E402
    plotstyle,  # noqa: E402
)
from scripts import (
    aggregate,  # noqa: E402  (the workflow's scripts live in src/, outside the package)
    evaluate,  # noqa: E402
    latent_separability,  # noqa: E402
)
from scripts.plots import benchmarks as plot_benchmarks  # noqa: E402
from scripts.plots import e1 as plot_e1  # noqa: E402
from scripts.plots import e4 as plot_e4  # noqa: E402
from scripts.plots import e5 as plot_e5  # noqa: E402
from scripts.plots import e5_robustness as plot_e5_robustness  # noqa: E402
from scripts.plots import e6 as plot_e6  # noqa: E402
from scripts.plots import e7 as plot_e7  # noqa: E402
from scripts.plots import headline as plot_headline  # noqa: E402

PROVENANCE = {"git_commit": "abc", "torch_version": "2", "torchdiffeq_version": "0", "snakemake_version": "9"}


CODE_NAME = re.compile(r"\b(?:ae|gfe_[a-z0-9_]+)\b")


@pytest.fixture
def drawn(monkeypatch):
    """The figures the scripts save, kept open (plotstyle.save still writes them), each checked
    to be readable: at most the double-column width (nothing sticks out), no text under 7 pt,
    no model code name in any text (display names only)."""
    figures = []
    save = plotstyle.save

    def keep(fig, png, pdf):
        fig.canvas.draw()
        assert fig.get_tightbbox().width <= plotstyle.WIDTHS_IN["double"] + 0.05, fig.get_tightbbox().width
        texts = [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
        assert not [(t.get_text(), t.get_fontsize()) for t in texts if t.get_fontsize() < 7]
        assert not [t.get_text() for t in texts if CODE_NAME.search(t.get_text())]
        figures.append(fig)
        save(fig, png, pdf)

    monkeypatch.setattr(plotstyle, "save", keep)
    return figures


def out_args(tmp_path, name="fig"):
    return ["--png", str(tmp_path / f"{name}.png"), "--pdf", str(tmp_path / f"{name}.pdf")]


def lines(fig) -> list[Line2D]:
    return [line for ax in fig.axes for line in ax.get_lines()]


def legend_texts(fig) -> list[str]:
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend()] + list(fig.legends)
    return [t.get_text() for legend in legends for t in legend.get_texts()]


def gid_lines(ax, gid: str) -> list[Line2D]:
    return [line for line in ax.get_lines() if line.get_gid() == gid]


def is_white(colour) -> bool:
    from matplotlib.colors import to_hex

    return isinstance(colour, str | tuple | list | np.ndarray) and to_hex(colour) == "#ffffff"


# ---------------------------------------------------------------- E1 and the headline

E1_SIZES = {
    "ae": (100, 300, 1000, 3000, 10000),
    "gfe_amd": (100, 300, 1000),
    "gfe_lbfgs": (100, 300, 1000, 3000, 10000),
}


def _e1_table(capped=(("gfe_amd", 1000), ("gfe_amd", 300))) -> pd.DataFrame:
    """An E1 table shaped as the default run's: AE and GFE-lbfgs on 5 sizes, GFE-amd on 3 (at a
    step budget: the runs at the `capped` (model, N) stopped at their cap), 3 seeds."""
    rows = []
    for k, (model, sizes) in enumerate(E1_SIZES.items()):
        for n in sizes:
            for seed in range(3):
                base = {"ae": 0.36, "gfe_amd": 0.31, "gfe_lbfgs": 0.305}[model] - 0.01 * np.log10(n / 100)
                loss = base + 0.002 * seed - 0.001 * k * (seed == 1)
                rows.append(
                    dict(
                        dataset="fashion_mnist",
                        model=model,
                        train_size=n,
                        seed=seed,
                        test_loss_mean=loss,
                        best_images_seen=5 * (60 * n if model == "ae" else 1000),
                        stop_reason="cap" if (model, n) in capped else "plateau",
                    )
                )
    return pd.DataFrame(rows)


def _model_of(line: Line2D) -> str | None:
    from matplotlib.colors import to_hex

    colour = to_hex(line.get_color())
    return next((m for m, c in plotstyle.MODEL_COLOURS.items() if to_hex(c) == colour), None)


def test_e1_has_every_model_on_a_log_n_axis_capped_runs_hollow_and_no_images_seen_panel(tmp_path, drawn):
    table = _e1_table()
    path = tmp_path / "e1.csv"
    gfe.io.write_csv(table, path)
    plot_e1.main(["--table", str(path), *out_args(tmp_path)])
    fig = drawn[-1]
    assert (tmp_path / "fig.png").stat().st_size > 10000 and (tmp_path / "fig.pdf").stat().st_size > 1000
    loss_ax, diff_ax = fig.axes[:2]
    for ax in (loss_ax, diff_ax):
        assert ax.get_xscale() == "log"
        assert [t.get_text() for t in ax.get_xticklabels()] == ["100", "300", "1,000", "3,000", "10,000"]
        assert "training-set size N" in ax.get_xlabel() and "log scale" in ax.get_xlabel()
    assert loss_ax.get_ylabel() == "test loss (BCE)"
    # the images seen at the best checkpoint are no longer drawn
    assert not [ax for ax in fig.axes if "images seen" in (ax.get_ylabel() + ax.get_title())]
    # all three models on the loss panel, each in its colour and marker
    markers = {
        (_model_of(line), line.get_marker())
        for line in loss_ax.get_lines()
        if line.get_marker() in set(plotstyle.MODEL_MARKERS.values())
    }
    assert {(m, plotstyle.MODEL_MARKERS[m]) for m in E1_SIZES} <= markers
    # the capped runs, and only they, are hollow single seeds
    hollow_seeds = [
        line for line in loss_ax.get_lines() if is_white(line.get_markerfacecolor()) and line.get_markersize() == 3
    ]
    drawn_capped = sorted(y for line in hollow_seeds for y in line.get_ydata())
    capped = table[table["stop_reason"] == "cap"]
    assert drawn_capped == pytest.approx(sorted(capped["test_loss_mean"]))
    # a mean with a capped run behind it is hollow too: GFE-amd at N = 300 and 1,000, not 100
    amd_means = [
        line
        for line in loss_ax.get_lines()
        if _model_of(line) == "gfe_amd" and line.get_marker() == "s" and line.get_markersize() == 5
    ]
    hollow_x = sorted(round(x) for line in amd_means if is_white(line.get_markerfacecolor()) for x in line.get_xdata())
    filled_x = sorted(
        round(x) for line in amd_means if not is_white(line.get_markerfacecolor()) for x in line.get_xdata()
    )
    assert len(hollow_x) == 2 and len(filled_x) == 1 and filled_x[0] < 110
    assert any(t.startswith("hollow: a run stopped at its step cap") for t in legend_texts(fig))
    # the difference panel: each GFE model − the AE, paired by seed, at every N with both
    d = plot_e1.paired_differences(table, "gfe_amd")
    assert list(d["train_size"]) == [100, 300, 1000] and (d["n"] == 3).all()
    at = table[table["train_size"] == 300].pivot_table(index="seed", columns="model", values="test_loss_mean")
    assert d.loc[d["train_size"] == 300, "mean"].iloc[0] == pytest.approx((at["gfe_amd"] - at["ae"]).mean())
    assert list(d["capped"]) == [False, True, True]
    assert len(plot_e1.paired_differences(table, "gfe_lbfgs")) == 5
    amd_diffs = sorted(
        y
        for line in diff_ax.get_lines()
        if _model_of(line) == "gfe_amd" and line.get_marker() == "s"
        for y in line.get_ydata()
    )
    assert amd_diffs == pytest.approx(sorted(d["mean"]))
    assert "GFE − AE" in diff_ax.get_ylabel()


def test_e1_without_capped_runs_has_no_hollow_marker_or_entry(tmp_path, drawn):
    path = tmp_path / "e1.csv"
    gfe.io.write_csv(_e1_table(capped=()), path)
    plot_e1.main(["--table", str(path), *out_args(tmp_path)])
    fig = drawn[-1]
    assert not [line for ax in fig.axes for line in ax.get_lines() if is_white(line.get_markerfacecolor())]
    assert not any("hollow" in t for t in legend_texts(fig))


def _e2_table(ae_last=0.3153, gfe_at_825=0.3121) -> pd.DataFrame:
    """E2 curves of AE, GFE-amd (shared rule, and a per-sample run) and GFE-lbfgs, validated at
    the images of the default run (320, 640, 825, ..., 7,040)."""
    images = [320, 640, 825, 1345, 1840, 2470, 3520, 7040]
    rows = []
    for model, rule, seeds in (("ae", "", 3), ("gfe_amd", "shared", 3), ("gfe_amd_per_sample", "per-sample", 1)):
        for seed in range(seeds):
            for i, img in enumerate([0, *images]):
                if img == 0:
                    loss = 0.69
                elif model == "ae":
                    loss = ae_last + 0.09 * (1 - i / len(images))
                elif img < 825:  # above the AE's last loss before 825 images
                    loss = ae_last + 0.005 + 0.01 * (2 - i)
                else:
                    loss = gfe_at_825 - 0.004 * (i - 3)
                rows.append(
                    dict(
                        dataset="fashion_mnist",
                        model=model,
                        amd_rule=rule,
                        train_size=49800,
                        seed=seed,
                        step=img // 5,
                        images_seen=img,
                        elapsed_s=img / 10,
                        n_images=200,
                        loss_mean=loss + 0.0005 * (seed - 1),
                    )
                )
    return pd.DataFrame(rows)


def test_headline_marks_gfe_amd_below_the_ae_with_the_tables_numbers(tmp_path, drawn):
    e1, e2 = tmp_path / "e1.csv", tmp_path / "e2.csv"
    gfe.io.write_csv(_e1_table(), e1)
    table = _e2_table()
    gfe.io.write_csv(table, e2)
    png, pdf = tmp_path / "headline.png", tmp_path / "headline.pdf"
    plot_headline.main(["--e1", str(e1), "--e2", str(e2), "--png", str(png), "--pdf", str(pdf)])
    assert png.stat().st_size > 10000 and pdf.stat().st_size > 1000
    fig = drawn[-1]
    assert fig.get_size_inches()[0] == pytest.approx(7.0)
    loss_ax, curve_ax = fig.axes[:2]
    assert loss_ax.get_xscale() == "log" and "training-set size N" in loss_ax.get_xlabel()
    assert curve_ax.get_xlabel() == "training images seen" and curve_ax.get_ylabel() == "validation loss (BCE)"
    # the values in the text are the table's: GFE-amd's mean at 825 images, the AE's at its last
    gfe_825 = table[(table["model"] == "gfe_amd") & (table["images_seen"] == 825)]["loss_mean"].mean()
    ae_last = table[(table["model"] == "ae") & (table["images_seen"] == 7040)]["loss_mean"].mean()
    point = plot_headline.crossing(table)
    assert point == dict(
        gfe_images=825, gfe_loss=pytest.approx(gfe_825), ae_images=7040, ae_loss=pytest.approx(ae_last)
    )
    (text,) = [t for t in curve_ax.texts if t.get_gid() == "headline-text"]
    assert "825 images" in text.get_text() and "7,040" in text.get_text()
    assert f"{gfe_825:.4f}" in text.get_text() and f"{ae_last:.4f}" in text.get_text()
    (level,) = gid_lines(curve_ax, "headline-level")
    assert list(level.get_ydata()) == pytest.approx([ae_last] * 2) and list(level.get_xdata()) == [825, 7040]
    assert list(gid_lines(curve_ax, "headline-gfe")[0].get_ydata()) == pytest.approx([gfe_825])
    # the per-sample variant is E2's own figure, not the headline's
    curve_colours = {_model_of(line) for line in curve_ax.get_lines() if len(line.get_xdata()) > 2}
    assert curve_colours == {"ae", "gfe_amd"}
    assert not any("per-sample" in t for t in legend_texts(fig))


def test_headline_draws_no_mark_when_gfe_amd_is_never_below_the_ae(tmp_path, drawn):
    e1, e2 = tmp_path / "e1.csv", tmp_path / "e2.csv"
    gfe.io.write_csv(_e1_table(), e1)
    table = _e2_table(ae_last=0.25)  # the AE ends below every GFE-amd validation
    gfe.io.write_csv(table, e2)
    assert plot_headline.crossing(table) is None
    plot_headline.main(["--e1", str(e1), "--e2", str(e2), *out_args(tmp_path)])
    fig = drawn[-1]
    assert not [t for ax in fig.axes for t in ax.texts if t.get_gid() == "headline-text"]
    assert not [line for ax in fig.axes for line in ax.get_lines() if (line.get_gid() or "").startswith("headline")]


# ---------------------------------------------------------------- E4 (b): claim 2's unit and margin


def _e4_tables(tmp_path, floor=0.24):
    train, held = [], []
    for k, model in enumerate(("gfe_rk4", "gfe_adjoint")):
        for seed in range(3):
            for step in range(1, 61):
                train.append(
                    dict(
                        dataset="fashion_mnist",
                        model=model,
                        seed=seed,
                        step=step,
                        loss=0.3 + 0.4 / step,
                        seconds=0.4 + 3 * k,
                        grad_cosine=0.99 if model == "gfe_adjoint" else np.nan,
                    )
                )
            for step in range(0, 61, 20):
                adjoint = 0.69 if step == 0 else 0.30 + 0.1 / step + 0.001 * seed
                gap = 0 if step == 0 else (0.04 + 0.01 * seed) * (adjoint - floor)  # 4-6% of the excess
                held.append(
                    dict(
                        dataset="fashion_mnist",
                        model=model,
                        seed=seed,
                        step=step,
                        n_images=200,
                        loss_mean=adjoint + (gap if model == "gfe_rk4" else 0),
                    )
                )
    floors = pd.DataFrame(
        [
            dict(dataset="fashion_mnist", split="val", n_images=200, loss="bce", floor_mean=floor, floor_std=0.09),
            dict(dataset="fashion_mnist", split="test", n_images=2000, loss="bce", floor_mean=0.5, floor_std=0.09),
        ]
    )
    paths = tmp_path / "e4_train.csv", tmp_path / "e4_held.csv", tmp_path / "floors.csv"
    for frame, path in zip((train, held, floors), paths, strict=True):
        gfe.io.write_csv(pd.DataFrame(frame), path)
    return paths


def test_e4_panel_b_is_in_the_criterions_unit_with_its_margin(tmp_path, drawn):
    train, held, floors = _e4_tables(tmp_path)
    plot_e4.main(["--train", str(train), "--heldout", str(held), "--floors", str(floors), *out_args(tmp_path)])
    fig = drawn[-1]
    assert (tmp_path / "fig.png").stat().st_size > 10000
    diff_ax = fig.axes[1]
    assert "excess loss" in diff_ax.get_ylabel() and "%" in diff_ax.get_ylabel()
    assert "floor 0.2400" in diff_ax.get_title()  # the validation floor, not the test one
    # the margin is src/pipeline/claims', as a line at 100 × margin %
    margin = 100 * plot_e4.MARGIN
    assert plot_e4.MARGIN == 0.10
    (line,) = gid_lines(diff_ax, "claim-margin")
    assert list(line.get_ydata()) == [margin, margin] and line.get_linestyle() == "--"
    assert any("margin: 10% of the adjoint's excess loss" in t for t in legend_texts(fig))
    # the plotted values are claim 2's (approximate − adjoint)/(adjoint − floor), in %: 4, 5, 6% by seed
    frame = pd.read_csv(held)
    d = plot_e4.relative_difference(frame, "gfe_rk4", "gfe_adjoint", 0.24)
    assert list(d["mean"]) == pytest.approx([0.0, 5.0, 5.0, 5.0])
    # the same number as the criterion's own helper
    assert 100 * claims.relative_at(frame, 60, "gfe_rk4", "gfe_adjoint", 0.24).mean() == pytest.approx(5.0)
    (curve,) = [line for line in diff_ax.get_lines() if line.get_marker() == "o"]
    assert list(curve.get_ydata()) == pytest.approx(list(d["mean"]))
    (value,) = [t for t in diff_ax.texts if t.get_gid() == "claim-value"]
    assert value.get_text().startswith("step 60: 5.00% (95% CI")
    assert diff_ax.get_ylim()[1] > margin  # the margin is inside the axis


def test_e4_without_floors_says_so_and_draws_no_margin(tmp_path, drawn):
    train, held, _floors = _e4_tables(tmp_path)
    plot_e4.main(["--train", str(train), "--heldout", str(held), *out_args(tmp_path)])
    diff_ax = drawn[-1].axes[1]
    assert not gid_lines(diff_ax, "claim-margin")
    assert "no floor given" in diff_ax.get_title()


# ---------------------------------------------------------------- E6: one test image per class


def test_per_class_indices_pick_the_first_image_of_each_class_in_class_order():
    labels = np.array([1, 1, 5, 0, 8, 1, 2, 9, 3, 3, 4, 6, 7, 0, 5, 8, 2, 9, 4, 6, 7])
    first = evaluate.per_class_indices(labels, 1)
    assert list(labels[first]) == list(range(10))
    assert list(first) == [int(np.flatnonzero(labels == c)[0]) for c in range(10)]
    two = evaluate.per_class_indices(labels, 2)
    assert list(two[:10]) == list(first)
    assert list(two[10:]) == [int(np.flatnonzero(labels == c)[1]) for c in range(10)]
    # a class with fewer images gives what it has
    assert list(evaluate.per_class_indices(np.array([0, 1, 1, 1]), 3)) == [0, 1, 2, 3]


def _e6_run(tmp_path, model: str, n: int, *, per_class: bool, rng) -> str:
    """A synthetic test_outputs.npz (and run.json) of an E1 run, kept as src/scripts/evaluate.py keeps
    them now (per_class) or did before (the first 8 test images)."""
    folder = tmp_path / f"results/x/runs/fashion_mnist/e1/{model}/N{n}/seed3"
    folder.mkdir(parents=True)
    labels = np.array([1, 1, 8, 1, 0, 8, 2, 3, 4, 5, 6, 7, 9, 0, 1] * 4)
    test_idx = np.arange(len(labels)) * 7
    loss = rng.uniform(0.2, 0.5, len(labels)).astype(np.float32)
    chosen = evaluate.per_class_indices(labels, 2) if per_class else np.arange(8)
    images = rng.uniform(0, 1, (len(chosen), 1, 28, 28)).astype(np.float32)
    arrays = {"z": np.zeros((len(labels), 4), np.float32), "labels": labels, "test_idx": test_idx, "loss": loss}
    if per_class:
        arrays |= {
            "recon_idx": chosen,
            "recon_labels": labels[chosen],
            "recon_test_idx": test_idx[chosen],
            "recon_loss": loss[chosen],
        }
    gfe.io.write_npz(folder / "test_outputs.npz", **arrays, images=images, reconstructions=images[:, :, ::-1])
    (folder / "run.json").write_text(json.dumps(PROVENANCE | {"device": "cpu"}))
    return str(folder / "test_outputs.npz")


@pytest.mark.parametrize("per_class", [True, False], ids=["per-class NPZ", "older first-8 NPZ"])
def test_e6_table_and_figure_show_one_image_per_class_with_its_loss_and_seed(tmp_path, drawn, per_class):
    rng = np.random.default_rng(0)
    files = [_e6_run(tmp_path, m, n, per_class=per_class, rng=rng) for m in ("ae", "gfe_amd") for n in (10, 50)]
    table = aggregate.e6_table(files)
    assert ("class_rank" in table) == per_class
    path = tmp_path / "e6.csv"
    gfe.io.write_csv(table, path)
    plot_e6.main(["--table", str(path), "--npz", *files, *out_args(tmp_path)])
    fig = drawn[-1]
    assert (tmp_path / "fig.png").stat().st_size > 1000
    for sub in fig.subfigs:
        assert "seed 3" in sub._suptitle.get_text()
        top = [ax for ax in sub.axes if ax.get_title()]
        classes = [ax.get_title() for ax in top]
        if per_class:  # the ten classes, once each, in class order
            assert classes == plotstyle.DATASET_CLASS_NAMES["fashion_mnist"]
            assert "first test image of each class" in sub._suptitle.get_text()
        else:
            assert len(classes) == 8
        losses = [ax.get_xlabel() for ax in sub.axes if ax.get_xlabel()]
        assert len(losses) == 2 * len(classes)  # one per reconstruction of each model
    # the loss under a reconstruction is that image's own loss in the table
    if per_class:
        rows = table[(table["model"] == "ae") & (table["train_size_label"] == "10") & (table["class_rank"] == 0)]
        ae_row = fig.subfigs[0].axes[len(rows) : 2 * len(rows)]
        expected = [f"{v:.3f}" for v in rows.sort_values("label")["loss"]]
        assert [ax.get_xlabel() for ax in ae_row] == expected


# ---------------------------------------------------------------- E5 and claim 4


def _robustness_table(diverged_steps=(10,), amd_diverged=False) -> pd.DataFrame:
    rows = []
    for decoder, exp in (("gfe_amd", "e2"), ("gfe_rk4", "e3")):
        for dt_init, dt_max in ((0.1, 1.0), (1.0, 10.0), (1.0, 100.0)):
            bad = amd_diverged and decoder == "gfe_rk4" and dt_max == 100.0
            rows.append(
                dict(
                    solver="amd",
                    dt_init=dt_init,
                    dt_max=dt_max,
                    steps=np.nan,
                    configured=(dt_init, dt_max) == (1.0, 10.0),
                    nfe_matched=False,
                    nfe_mean=np.nan if bad else 600 + 100 * dt_init,
                    excess_mean=np.inf if bad else 0.047,
                    decoder_model=decoder,
                    decoder_experiment=exp,
                )
            )
        for steps in (10, 25, 100, 1000):
            bad = steps in diverged_steps
            rows.append(
                dict(
                    solver="rk4",
                    dt_init=np.nan,
                    dt_max=np.nan,
                    steps=steps,
                    configured=False,
                    nfe_matched=steps == 100,
                    nfe_mean=np.nan if bad else 4.0 * steps,
                    excess_mean=np.inf if bad else 1.0 / steps,
                    decoder_model=decoder,
                    decoder_experiment=exp,
                )
            )
    t = pd.DataFrame(rows).assign(dataset="fashion_mnist", tau=15000.0, z0="zeros", n_images=100, floor_mean=0.24)
    t["loss_mean"] = t["excess_mean"] + 0.24
    t["diverged"] = ~np.isfinite(t["excess_mean"])
    return t


def test_claim4_figure_draws_diverged_settings_on_the_top_edge(tmp_path, drawn):
    path = tmp_path / "robustness.csv"
    gfe.io.write_csv(_robustness_table(diverged_steps=(10, 25), amd_diverged=True), path)
    plot_e5_robustness.main(["--table", str(path), *out_args(tmp_path)])
    fig = drawn[-1]
    for ax in fig.axes:
        assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
        top = [line for line in ax.get_lines() if line.get_marker() == "^" and line.get_mfc() == "none"]
        assert top, "a diverged setting must be drawn"
        rk4_top = [line for line in top if line.get_transform() == ax.get_xaxis_transform()]
        assert sorted(x for line in rk4_top for x in line.get_xdata()) == [40.0, 100.0]  # NFE 4 per step
        assert all(y == 1.0 for line in rk4_top for y in line.get_ydata())  # on the top edge
        # every finite point inside the axis limits: nothing is clipped
        low, high = ax.get_ylim()
        finite = [y for line in ax.get_lines() if line not in top for y in line.get_ydata()]
        assert all(low <= y <= high for y in finite)
    texts = " ".join(legend_texts(fig))
    assert "diverged" in texts and "GFE-amd: rk4 10, 25 steps" in texts and "GFE-rk4: AMD (1, 100)" in texts
    # the AMD settings are told apart: one legend entry, one marker style, per setting
    amd_entries = [t for t in legend_texts(fig) if t.startswith("AMD dt_init")]
    assert len(amd_entries) == 3


def test_claim4_figure_without_divergence_has_no_diverged_entry(tmp_path, drawn):
    path = tmp_path / "robustness.csv"
    gfe.io.write_csv(_robustness_table(diverged_steps=()), path)
    plot_e5_robustness.main(["--table", str(path), *out_args(tmp_path)])
    assert not any("diverged" in t for t in legend_texts(drawn[-1]))


def _deciding_table() -> pd.DataFrame:
    """The claim-4 table with AMD at dt_max 1 (dt_init 0.1 and 1) ending 18% above AMD's best on
    the rk4-trained decoder, at nearly the same spot, as in the default run."""
    t = _robustness_table(diverged_steps=())
    on_rk4 = (t["decoder_model"] == "gfe_rk4") & (t["solver"] == "amd")
    t.loc[on_rk4 & (t["dt_max"] == 1.0), ["excess_mean", "nfe_mean"]] = [0.047 * 1.18, 820.0]
    extra = t[on_rk4 & (t["dt_max"] == 1.0)].assign(dt_init=1.0, nfe_mean=807.0)
    t = pd.concat([t, extra], ignore_index=True)
    t["loss_mean"] = t["excess_mean"] + 0.24
    return t


def _patch_span(patch) -> tuple[float, float]:
    return patch.get_y(), patch.get_y() + patch.get_height()


def test_claim4_figure_draws_the_criterions_bounds_and_labels_the_deciding_settings(tmp_path, drawn):
    table = _deciding_table()
    path = tmp_path / "robustness.csv"
    gfe.io.write_csv(table, path)
    plot_e5_robustness.main(["--table", str(path), *out_args(tmp_path)])
    fig = drawn[-1]
    assert (tmp_path / "fig.png").stat().st_size > 10000
    spread, margin = claims.ROBUST_SPREAD, claims.MATCHED_MARGIN
    assert spread == 0.10 and margin == 0.10
    for ax in fig.axes:
        decoder = "gfe_amd" if "GFE-amd decoder" in ax.get_title() else "gfe_rk4"
        part = table[table["decoder_model"] == decoder]
        amd, rk4 = part[part["solver"] == "amd"], part[part["solver"] == "rk4"]
        best = amd["excess_mean"].min()
        # (i): the band from AMD's best to 10% above it, its top edge dashed
        (band,) = [p for p in ax.patches if p.get_gid() == "robust-band"]
        assert _patch_span(band) == pytest.approx((best, (1 + spread) * best))
        (edge,) = gid_lines(ax, "robust-bound")
        assert list(edge.get_ydata()) == pytest.approx([(1 + spread) * best] * 2) and edge.get_linestyle() == "--"
        # (iii): the bar 10% above rk4 at the configured AMD setting's NFE
        matched = rk4[rk4["nfe_matched"]].iloc[0]
        (bar,) = gid_lines(ax, "matched-bound")
        assert list(bar.get_xdata()) == [matched["nfe_mean"]]
        assert list(bar.get_ydata()) == pytest.approx([(1 + margin) * matched["excess_mean"]])
        # the settings outside the band are filled and labelled; those inside stay hollow
        deciding = gid_lines(ax, "deciding")
        labels = [t.get_text() for t in ax.texts if t.get_gid() == "deciding-label"]
        if decoder == "gfe_amd":
            assert not deciding and not labels
            continue
        assert len(deciding) == 2
        assert all(line.get_markerfacecolor() == line.get_markeredgecolor() for line in deciding)
        assert all(line.get_markersize() >= 8 for line in deciding)
        assert labels == ["AMD dt_max 1, dt_init 0.1 and 1:\n18% above AMD's best"]  # one label for the one spot
    assert any(t.startswith("(i) AMD's best + 10%") for t in legend_texts(fig))
    assert any(t.startswith("(iii) rk4 at equal NFE + 10%") for t in legend_texts(fig))
    assert any(t.startswith("filled, labelled") for t in legend_texts(fig))


def test_claim4_figure_averages_seeds_and_says_how_the_deciding_runs_ended(tmp_path, drawn):
    one = _deciding_table()
    table = pd.concat([one.assign(decoder_seed=s, excess_mean=one["excess_mean"] * (1 + 0.01 * s)) for s in range(3)])
    # the NFE-matched rk4 count differs by seed (it follows each decoder's AMD NFE)
    matched = table["nfe_matched"].astype(bool)
    table.loc[matched, "steps"] = 99 + table.loc[matched, "decoder_seed"]
    table.loc[matched, "nfe_mean"] = 4.0 * table.loc[matched, "steps"]
    table["stop_reason"] = np.where(table["solver"] == "amd", "amd_convergence", "reached_tau")
    table["t_mean"] = np.where(table["dt_max"] == 1.0, 2670.0, 15000.0)
    path = tmp_path / "robustness.csv"
    gfe.io.write_csv(table, path)
    plot_e5_robustness.main(["--table", str(path), *out_args(tmp_path)])
    fig = drawn[-1]
    assert "mean over the decoders of 3 seeds" in fig._suptitle.get_text()
    rk4_ax = next(ax for ax in fig.axes if "GFE-rk4 decoder" in ax.get_title())
    # the matched counts are one point at their mean NFE, labelled with their range
    step_labels = [t.get_text() for t in rk4_ax.texts if t.get_gid() != "deciding-label"]
    assert "99–101" in step_labels and not {"99", "100", "101"} & set(step_labels), step_labels
    (bar,) = gid_lines(rk4_ax, "matched-bound")
    assert list(bar.get_xdata()) == [pytest.approx(400.0)]
    (label,) = [t.get_text() for t in rk4_ax.texts if t.get_gid() == "deciding-label"]
    assert "stopped: amd convergence" in label and "mean t 2,670" in label
    # each point is the mean over the seeds
    configured = table[(table["decoder_model"] == "gfe_rk4") & table["configured"]]
    ring = [line for line in rk4_ax.get_lines() if line.get_marker() == "o" and line.get_markersize() == 13]
    assert configured["excess_mean"].mean() in [pytest.approx(y) for line in ring for y in line.get_ydata()]


def _e5_curve(panel, decoder, solver, order, steps, tau, z0, losses):
    n = len(losses)
    return pd.DataFrame(
        dict(
            dataset="fashion_mnist",
            panel=panel,
            decoder_model=decoder,
            solver=solver,
            order=order,
            steps=steps,
            tau=tau,
            n_images=20,
            z0=z0,
            t=np.linspace(0, tau, n),
            nfe_mean=np.arange(n) * 4.0,
            loss_mean=losses,
        )
    )


def test_e5_figure_is_unclipped_and_marks_blown_up_and_nonfinite_curves(tmp_path, drawn):
    own, common = plot_e5.OWN, plot_e5.COMMON
    table = pd.concat(
        [
            _e5_curve(own, "gfe_amd", "amd", 1, np.nan, 100.0, "uniform", [2.0, 1.0, 0.5, 0.3]),
            _e5_curve(own, "gfe_rk4", "rk4", 1, 3, 150.0, "zeros", [0.6, 0.5, 0.35, 0.3]),
            _e5_curve(common, "gfe_amd", "amd", 1, np.nan, 150.0, "zeros", [0.6, 0.4, 0.3, 0.29]),
            _e5_curve(common, "gfe_amd", "rk4", 1, 3, 150.0, "zeros", [0.6, 40.0, 9.0, 2.0]),  # blown up
            _e5_curve(common, "gfe_amd", "rk4", 1, 5, 150.0, "zeros", [0.6, 0.5, 0.4, 0.35, 0.3, 0.29]),
            _e5_curve(common, "gfe_amd", "rk4", 2, 5, 150.0, "zeros", [0.6, 3.0, np.inf, np.inf, np.inf, np.inf]),
            _e5_curve(common, "gfe_amd", "rk4", 1, 5, 10.0, "zeros", [0.6, 0.5, 0.45, 0.4, 0.35, 0.33]),
        ]
    )
    path = tmp_path / "e5.csv"
    gfe.io.write_csv(table, path)
    plot_e5.main(["--table", str(path), *out_args(tmp_path)])
    fig = drawn[-1]
    a, b, c = fig.axes[:3]
    for ax in (a, b, c):
        low, high = ax.get_ylim()
        data = [y for line in ax.get_lines() for y in line.get_ydata() if line.get_transform() == ax.transData]
        assert all(low <= y <= high for y in data), "no point is off scale"
    # (b): the blown-up curve is marked with x at its end (40 is inside the axis)
    assert any(line.get_marker() == "x" and list(line.get_ydata()) == [2.0] for line in b.get_lines())
    # (c): the second-order curve that turned non-finite has a triangle on the top edge
    assert any(line.get_marker() == "^" and line.get_transform() == c.get_xaxis_transform() for line in c.get_lines())
    texts = " ".join(legend_texts(fig))
    assert "z0 uniform" in texts and "z0 zeros" in texts and "non-finite from t = 60" in texts
    # colour means the model whose flow it is; nothing is dotted (no model beyond the papers here)
    assert {line.get_linestyle() for line in lines(fig) if len(line.get_xdata()) > 1} <= {"-"}
    amd = [line for line in b.get_lines() if line.get_label().startswith("AMD")]
    assert amd and amd[0].get_color() == plotstyle.model_colour("gfe_amd")
    # (a) starts at t = 0 (symlog): every curve's starting loss is drawn there
    assert a.get_xscale() == "symlog" and a.get_xlim()[0] == 0
    assert sorted(line.get_ydata()[0] for line in a.get_lines() if list(line.get_xdata()) == [0]) == [0.6, 2.0]


# ---------------------------------------------------------------- E7: separability


def test_knn_accuracy_is_one_on_separated_classes_and_chance_on_random_labels():
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(10), 60)
    centres = rng.normal(0, 50, (10, 8))
    z = centres[labels] + rng.normal(0, 1, (len(labels), 8))
    mean, std = latent_separability.knn_accuracy(z, labels, k=10, folds=5, seed=0)
    assert mean == 1.0 and std == 0.0
    shuffled = rng.permutation(labels)
    mean, _ = latent_separability.knn_accuracy(z, shuffled, k=10, folds=5, seed=0)
    assert abs(mean - 0.1) < 0.05
    assert latent_separability.chance_accuracy(labels) == pytest.approx(0.1)
    # seeded: the same folds give the same number
    assert latent_separability.knn_accuracy(z, shuffled, k=10, folds=5, seed=0)[0] == mean


def _e7_run(tmp_path, model, z, labels) -> str:
    folder = tmp_path / f"results/x/runs/fashion_mnist/e2/{model}/Nfull/seed0"
    folder.mkdir(parents=True)
    gfe.io.write_npz(folder / "training_latents.npz", z=z, labels=labels, train_idx=np.arange(len(z)))
    run = {"dataset": "fashion_mnist", "experiment": "e2", "model": model, "train_size_label": "full", "seed": 0}
    (folder / "run.json").write_text(json.dumps(run | PROVENANCE | {"device": "cpu"}))
    return str(folder / "training_latents.npz")


def test_separability_table_and_e7_titles_read_from_it(tmp_path, drawn):
    rng = np.random.default_rng(2)
    labels = np.repeat(np.arange(10), 30)
    separated = np.eye(10)[labels] * 100 + rng.normal(0, 1, (len(labels), 10))
    mixed = rng.normal(0, 1, (len(labels), 10))
    files = [_e7_run(tmp_path, "ae", separated, labels), _e7_run(tmp_path, "gfe_amd", mixed, labels)]
    sep_path = tmp_path / "sep.csv"
    latent_separability.main(
        ["--latents", *files, "--config-name", "x", "--config-hash", "h", "--output", str(sep_path)]
    )
    sep = pd.read_csv(sep_path)
    assert list(sep["model"]) == ["ae", "gfe_amd"]
    assert sep.loc[0, "knn_accuracy"] == 1.0 and sep.loc[1, "knn_accuracy"] < 0.3
    assert {"k", "folds", "cv_seed", "chance_accuracy", "config_hash", "git_commit"} <= set(sep.columns)
    maps = pd.DataFrame(
        dict(
            dataset="fashion_mnist",
            model=np.repeat(["ae", "gfe_amd"], len(labels)),
            train_size="full",
            seed=0,
            image=np.tile(np.arange(len(labels)), 2),
            split="train",
            image_idx=0,
            label=np.tile(labels, 2),
            tsne_x=rng.normal(size=2 * len(labels)),
            tsne_y=rng.normal(size=2 * len(labels)),
            perplexity=30.0,
        )
    )
    maps_path = tmp_path / "maps.csv"
    gfe.io.write_csv(maps, maps_path)
    plot_e7.main(["--table", str(maps_path), "--separability", str(sep_path), *out_args(tmp_path)])
    fig = drawn[-1]
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible() and ax.get_title()]
    assert "10-NN accuracy 1.000" in titles[0] and "seed 0" in titles[0]
    assert f"10-NN accuracy {sep.loc[1, 'knn_accuracy']:.3f}" in titles[1]
    # the classes take the class colours, never a model's
    colours = {tuple(np.round(c, 3)) for ax in fig.axes for coll in ax.collections for c in coll.get_facecolors()}
    from matplotlib.colors import to_rgba

    assert colours <= {tuple(np.round(to_rgba(c), 3)) for c in plotstyle.CLASS_COLOURS}
    assert not colours & {tuple(np.round(to_rgba(c), 3)) for c in plotstyle.MODEL_COLOURS.values()}


# ---------------------------------------------------------------- benchmarks


def test_benchmark_figure_has_a_point_per_method_and_batch_and_names_the_machine(tmp_path, drawn):
    rows = [
        dict(kind="floor", method="decoder_fwd_bwd", batch=5, n_images=5, images_per_s=1e4, loss_mean=np.nan),
        dict(kind="encode", method="amd_shared", batch=5, n_images=100, images_per_s=30.0, loss_mean=0.3026),
        dict(kind="encode", method="amd", batch=64, n_images=100, images_per_s=120.0, loss_mean=0.3020),
        dict(kind="encode", method="amd", batch=512, n_images=100, images_per_s=160.0, loss_mean=0.3020),
        dict(kind="encode", method="lbfgs", batch=512, n_images=100, images_per_s=210.0, loss_mean=0.2998),
        dict(kind="encode", method="rk4_10", batch=512, n_images=100, images_per_s=470.0, loss_mean=1.14),
        dict(kind="encode", method="dopri5", batch=5, n_images=5, images_per_s=0.16, loss_mean=0.26),
        dict(kind="train", method="ae", batch=5, n_images=500, images_per_s=500.0, loss_mean=0.39),
    ]
    table = tmp_path / "encode.csv"
    gfe.io.write_csv(pd.DataFrame(rows), table)
    gfe.io.write_json({"device": "cpu", "cpu_model": "Test CPU", "threads": 1, "cpus": 2}, tmp_path / "encode.json")
    plot_benchmarks.main(["--tables", str(table), *out_args(tmp_path)])
    fig = drawn[-1]
    overview, zoom = fig.axes[:2]
    assert "CPU: Test CPU" in overview.get_title()
    markers = [line for line in overview.get_lines() if line.get_marker() not in ("None", "")]
    assert len(markers) == 6  # the encode rows only
    assert overview.get_xscale() == "log" and overview.get_yscale() == "log"
    labels = {t.get_text() for t in zoom.texts} | {t.get_text() for t in overview.texts}
    assert {"amd_shared", "amd (b 64, 512)", "lbfgs", "rk4_10", "dopri5"} <= labels
    # no tables (a fresh clone without results/benchmarks): still a figure, saying so
    plot_benchmarks.main(["--tables", *out_args(tmp_path, "empty")])
    assert (tmp_path / "empty.png").stat().st_size > 1000


# ---------------------------------------------------------------- the committed results

RESULTS = REPO / "results/default"
COMMITTED = {
    "plot_e4": lambda: [
        "--train",
        str(RESULTS / "e4_adjoint_ablation.csv"),
        "--heldout",
        str(RESULTS / "e4_heldout.csv"),
        "--floors",
        str(RESULTS / "data_floors.csv"),
    ],
    "plot_e5": lambda: ["--table", str(RESULTS / "e5_encoding_convergence.csv")],
    "plot_e5_robustness": lambda: ["--table", str(RESULTS / "e5_robustness.csv")],
    "plot_e6": lambda: [
        "--table",
        str(RESULTS / "e6_reconstructions.csv"),
        "--npz",
        *sorted(pd.read_csv(RESULTS / "e6_reconstructions.csv")["npz"].unique()),
    ],
    "plot_e7": lambda: (
        ["--table", str(RESULTS / "e7_latent_maps.csv")]
        + (
            ["--separability", str(RESULTS / "e7_separability.csv")]
            if (RESULTS / "e7_separability.csv").exists()
            else []
        )
    ),
    "plot_benchmarks": lambda: [  # the tables the workflow's rule plots (encode_trained.csv has its own layout)
        "--tables",
        *(str(p) for p in (REPO / "results/benchmarks/encode.csv", REPO / "results/benchmarks/encode_cuda.csv")),
    ],
    "plot_headline": lambda: [
        "--e1",
        str(RESULTS / "e1_data_efficiency.csv"),
        "--e2",
        str(RESULTS / "e2_learning_curves.csv"),
    ],
}


@pytest.mark.parametrize("script", sorted(COMMITTED))
def test_each_figure_draws_the_committed_results(tmp_path, drawn, script, monkeypatch):
    if not (RESULTS / "e5_robustness.csv").exists():
        pytest.skip("no committed results")
    monkeypatch.chdir(REPO)  # the E6 table names its NPZ files relative to the repository
    module = {"plot_e5": plot_e5, "plot_e5_robustness": plot_e5_robustness, "plot_e6": plot_e6}
    module |= {
        "plot_e7": plot_e7,
        "plot_benchmarks": plot_benchmarks,
        "plot_e4": plot_e4,
        "plot_headline": plot_headline,
    }
    module[script].main([*COMMITTED[script](), *out_args(tmp_path)])
    assert len(drawn) == 1 and (tmp_path / "fig.png").stat().st_size > 10000


def test_the_committed_figures_show_the_verdicts_numbers(tmp_path, drawn):
    """On the committed tables: the headline's mark, E4 (b)'s last value and the claim-4 band
    are the numbers the tables give."""
    if not (RESULTS / "e5_robustness.csv").exists():
        pytest.skip("no committed results")
    e2 = pd.read_csv(RESULTS / "e2_learning_curves.csv")
    point = plot_headline.crossing(e2)
    if point is not None:
        plot_headline.main(
            [
                "--e1",
                str(RESULTS / "e1_data_efficiency.csv"),
                "--e2",
                str(RESULTS / "e2_learning_curves.csv"),
                *out_args(tmp_path),
            ]
        )
        (text,) = [t for t in drawn[-1].axes[1].texts if t.get_gid() == "headline-text"]
        assert f"{point['gfe_loss']:.4f}" in text.get_text() and f"{point['ae_images']:,}" in text.get_text()
        gfe = e2[(e2["model"] == "gfe_amd") & (e2["images_seen"] == point["gfe_images"])]["loss_mean"].mean()
        ae = e2[(e2["model"] == "ae") & (e2["images_seen"] == point["ae_images"])]["loss_mean"].mean()
        assert point["gfe_loss"] == pytest.approx(gfe) and gfe < ae
    rob = pd.read_csv(RESULTS / "e5_robustness.csv")
    plot_e5_robustness.main(["--table", str(RESULTS / "e5_robustness.csv"), *out_args(tmp_path, "rob")])
    for ax in drawn[-1].axes:
        (band,) = [p for p in ax.patches if p.get_gid() == "robust-band"]
        low, high = _patch_span(band)
        decoder = "gfe_amd" if "GFE-amd decoder" in ax.get_title() else "gfe_rk4"
        part = rob[(rob["decoder_model"] == decoder) & (rob["solver"] == "amd")]
        amd = part.groupby(["dt_init", "dt_max"])["excess_mean"].mean()  # each setting over the seeds
        assert part["decoder_seed"].nunique() == 3
        assert low == pytest.approx(amd.min()) and high == pytest.approx(1.1 * amd.min())
        outside = int((amd > high).sum())
        assert len(gid_lines(ax, "deciding")) == outside
