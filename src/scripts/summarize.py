"""Write results/summary.md from the result tables: each claim of the papers with its
criterion, its numbers (intervals over seeds) and one of three verdicts (src/pipeline/claims/),
the E2 table at the authors' points, the AMD rule of every run, the deviations from the
authors' code, the parameter counts and the provenance. Reads tables only.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

import pandas as pd

from gfe import io
from pipeline import claims, common, plotstyle

TABLES = (
    "e1_data_efficiency",
    "e1_continuation",
    "e2_learning_curves",
    "e2_authors_points",
    "e3_solver_comparison",
    "e3_heldout",
    "e4_adjoint_ablation",
    "e4_heldout",
    "e5_encoding_convergence",
    "e5_robustness",
    "parameter_counts",
    "data_floors",
)


def read_tables(paths: list[str]) -> dict[str, pd.DataFrame]:
    by_name = {name: path for path in paths for name in TABLES if path.endswith(f"/{name}.csv")}
    missing = [name for name in TABLES if name not in by_name]
    if missing:
        raise SystemExit(f"summarize: tables missing from --tables: {missing}")
    return {name: pd.read_csv(path) for name, path in by_name.items()}


def amd_rules(t: dict[str, pd.DataFrame]) -> list[str]:
    """Which AMD rule each experiment's AMD runs trained with."""
    lines = [
        "## AMD rule of each run",
        "",
        "Training: `shared` is the authors' rule (one step size for the whole batch, a step accepted only "
        "if every sample accepts it); `per-sample` is this project's (a step size per sample). Validation "
        "and test encodings always use the per-sample rule, so they do not depend on the evaluation batch.",
        "",
        "| experiment | model | AMD rule in training | runs |",
        "|---|---|---|---|",
    ]
    for name, experiment in (("e1_data_efficiency", "E1"), ("e2_learning_curves", "E2")):
        frame = t[name]
        if frame.empty:
            continue
        amd = frame[frame["amd_rule"].fillna("") != ""].drop_duplicates(["dataset", "model", "seed"])
        for (model, rule), part in amd.groupby(["model", "amd_rule"], sort=True):
            lines.append(f"| {experiment} | {plotstyle.display_name(model)} | {rule} | {len(part)} |")
    return lines + [""]


# Models beyond the papers: shown in their own section and labelled, never in a claim.
BEYOND_THE_PAPERS = {
    "gfe_lbfgs": "GFE trained with a per-sample L-BFGS encoder (a faster descent to a "
    "stationary point of the same loss, not an integration of the flow)"
}


def column(model: str, rule: str = "") -> str:
    """A model's column heading: its display name, its AMD rule unless the name says it, and
    "beyond the papers" where it is: "GFE-amd (shared)", "GFE-lbfgs (beyond the papers)"."""
    name = plotstyle.display_name(model)
    notes = ([rule] if rule and rule not in name else []) + (
        ["beyond the papers"] if model in BEYOND_THE_PAPERS else []
    )
    return f"{name} ({', '.join(notes)})" if notes else name


def beyond_the_papers(t: dict[str, pd.DataFrame]) -> list[str]:
    """E1 test loss and training cost of the models beyond the papers next to AE and GFE-amd
    (numbers only: no claim of the papers is about them)."""
    e1 = t["e1_data_efficiency"]
    extra = sorted(set(e1["model"]) & set(BEYOND_THE_PAPERS)) if not e1.empty else []
    if not extra:
        return []
    lines = ["## Beyond the papers", ""]
    lines += [f"- {plotstyle.display_name(m)} (`{m}`): {BEYOND_THE_PAPERS[m]}." for m in extra]
    lines += [
        "",
        "E1 test loss of the best checkpoint (mean ± std over seeds) and training seconds per run "
        "(mean); not part of any verdict above.",
        "",
    ]
    models = [m for m in ("ae", "gfe_amd", *extra) if m in set(e1["model"])]
    for ds, part in e1.groupby("dataset", sort=True):
        rows = []
        for n, at in part.groupby("train_size", sort=True):
            cells = []
            for m in models:
                runs = at[at["model"] == m]
                spread = f" ± {claims.fmt(runs['test_loss_mean'].std())}" if len(runs) > 1 else ""
                cells.append(
                    f"{claims.fmt(runs['test_loss_mean'].mean())}{spread}, {claims.fmt(runs['train_s'].mean())} s"
                    if len(runs)
                    else "n/a"
                )
            rows.append([str(n), *cells])
        lines += [f"{plotstyle.dataset_name(ds)}:", "", *claims.table(["N", *[column(m) for m in models]], rows), ""]
    return lines


def e2_points(t: dict[str, pd.DataFrame]) -> list[str]:
    points = t["e2_authors_points"].assign(amd_rule=lambda f: f["amd_rule"].fillna(""))
    lines = [
        "## E2 at the authors' table points",
        "",
        "Validation loss, mean ± std over seeds (n = seeds), at the validation check nearest each of the "
        "authors' points (images seen).",
        "",
    ]
    if points.empty:
        return lines + ["No E2 runs.", ""]
    for ds, part in points.groupby("dataset", sort=True):
        keys = sorted(part.groupby(["model", "amd_rule"]).groups)
        header = ["target images seen", "images seen"] + [column(m, r) for m, r in keys]
        rows = []
        for target, at in part.groupby("target_images_seen", sort=True):
            cells = []
            for model, rule in keys:
                row = at[(at["model"] == model) & (at["amd_rule"] == rule)].iloc[0]
                spread = f" ± {claims.fmt(row['loss_std'])}" if row["n_seeds"] > 1 else ""
                cells.append(f"{claims.fmt(row['loss_mean'])}{spread} (n = {int(row['n_seeds'])})")
            rows.append([str(target), "/".join(str(v) for v in sorted(at["images_seen"].unique())), *cells])
        lines += [f"{plotstyle.dataset_name(ds)}:", "", *claims.table(header, rows), ""]
    return lines


CONTINUATION_BOUND = claims.CONTINUATION_BOUND  # one source: the plateau gate of claims 1a and 1b


def _sizes_text(sizes) -> str:
    return ", ".join(str(n) for n in sorted(sizes)) or "none"


def _continued(cont: pd.DataFrame) -> str:
    """Which runs were continued: "AE at N = 100, 300; GFE-lbfgs at N = 100, 10000 (seed 0)"."""
    parts = []
    for model, rows in cont.groupby("model", sort=False):
        seeds = ", ".join(str(s) for s in sorted(set(rows["seed"])))
        parts.append(f"{plotstyle.display_name(model)} at N = {_sizes_text(set(rows['train_size']))} (seed {seeds})")
    return "; ".join(parts)


def stopping_check(t: dict[str, pd.DataFrame]) -> list[str]:
    """Does E1's stopping rule stop early? The continuations (e1c) of E1 runs, trained on
    without early stopping to a multiple of their stop step, against the bound fixed before
    the numbers; the sizes where the AE's plateau is not verified."""
    cont = t["e1_continuation"]
    if cont.empty:
        return []
    rows = [
        [
            plotstyle.dataset_name(r.dataset),
            plotstyle.display_name(r.model),
            str(r.train_size),
            str(r.seed),
            f"{r.stop_step} ({r.stop_reason})",
            claims.fmt(r.best_at_stop),
            str(r.continued_to),
            claims.fmt(r.best_continued),
            f"{100 * r.gain:.2f}%",
            "yes" if r.gain <= CONTINUATION_BOUND else "**no**",
        ]
        for r in cont.itertuples()
    ]
    early = cont[cont["gain"] > CONTINUATION_BOUND]
    again = (cont["best_at_stop_again"] - cont["best_at_stop"]).abs().max()
    factors = sorted({round(r.continued_to / r.stop_step, 2) for r in cont.itertuples() if r.stop_step})
    e1 = t.get("e1_data_efficiency", pd.DataFrame())
    ae_sizes = set(e1.loc[e1["model"] == "ae", "train_size"]) if not e1.empty else set()
    unverified = ae_sizes - set(cont.loc[cont["model"] == "ae", "train_size"])
    verdict = (
        f"All {len(cont)} continuations stay within the bound."
        if early.empty
        else f"{len(early)} of {len(cont)} continuations improve by more than the bound: those runs stopped early, "
        f"and claims 1a and 1b are not judged at N = {_sizes_text(set(early['train_size']))}."
    )
    if unverified:
        verdict += f" No AE continuation at N = {_sizes_text(unverified)}: the AE's plateau there is not verified."
    return [
        "## Does E1's stopping rule stop early?",
        "",
        f"Claims 1a and 1b need the AE fully trained, so the AE's plateau is checked at every N: E1 runs were "
        f"trained again without early stopping to {' or '.join(f'{f:g}' for f in factors)}× the steps they made "
        f"(`e1_continuation.csv`: {_continued(cont)}). The rule stops early if a continuation lowers the best "
        f"validation loss by more than {100 * CONTINUATION_BOUND:g}% (fixed before the numbers); an N where one "
        "does, or where the AE has no continuation, decides neither claim.",
        "",
        *claims.table(
            [
                "dataset",
                "model",
                "N",
                "seed",
                "stop step",
                "best at the stop",
                "continued to",
                "best continued",
                "lower by",
                f"within {100 * CONTINUATION_BOUND:g}%",
            ],
            rows,
        ),
        "",
        verdict
        + f" Replayed up to the stop, each continuation's best check equals its E1 run's to {claims.fmt(again)}.",
        "",
    ]


def batch_of(frame: pd.DataFrame) -> str:
    """The batch size of a held-out table's runs (images seen per step), as the runs recorded it."""
    later = frame[frame["step"] > 0] if not frame.empty else frame
    sizes = sorted({round(r.images_seen / r.step) for r in later.itertuples()})
    return "/".join(map(str, sizes)) or "?"


def e5_common(e5: pd.DataFrame) -> str:
    """E5's common-decoder settings as its table records them."""
    common = e5[e5["panel"] == "common decoder"] if not e5.empty else e5
    if common.empty:
        return "none"
    decoder = "/".join(sorted({plotstyle.display_name(d) for d in common["decoder_model"].astype(str)}))
    z0 = "/".join(sorted(set(common["z0"].astype(str))))
    taus = ", ".join(f"{t:g}" for t in sorted(set(common["tau"])))
    images = int(common["n_images"].max())
    return f"the decoder of the E2 run of {decoder}, z0 = {z0}, τ in {{{taus}}}, {images} test images"


def e1_stopping(e1: pd.DataFrame) -> str:
    """E1's stopping settings as the runs recorded them."""
    if e1.empty:
        return "no E1 runs"
    first = e1.iloc[0]
    caps = ", ".join(f"{plotstyle.display_name(m)} {int(c)}" for m, c in e1.groupby("model")["max_steps"].max().items())
    window = int(first.get("plateau_window", 1)) if "plateau_window" in e1 else 1
    fraction = float(first.get("patience_fraction", 0.0)) if "patience_fraction" in e1 else 0.0
    rule = (
        f"to a validation plateau (best checkpoint): a check every {int(first['val_every'])} steps; stop "
        f"after {int(first['patience'])} checks"
        + (f" (or {fraction:g} of the checks so far, if more)" if fraction else "")
        + f" without a {100 * float(first['min_improvement']):g}% improvement of "
        + (f"the mean of the last {window} checks" if window > 1 else "the last check")
    )
    return f"{rule}; step caps {caps}"


def heldout_encoder_text(options: dict | None) -> str:
    """How E3's held-out images were encoded, from the encode options the workflow passed."""
    if not options:
        return "not recorded"
    solver = options.get("solver", "?")
    rule = " per-sample" if solver == "amd" and not options.get("shared", False) else ""
    tau = "" if solver.startswith("lbfgs") else f", τ {options.get('tau', '?'):g}"  # a descent: no τ
    return f"both models' by one encoder:{rule} {solver}{tau}, z0 {options.get('z0', '?')} (equal at step 0)"


def deviations(t: dict[str, pd.DataFrame], e3_heldout_encoder: dict | None = None) -> list[str]:
    """Where this run differs from the authors' code, with the values the tables record and
    the E3 held-out encoder the workflow passed."""
    e1, e3, e4 = t["e1_data_efficiency"], t["e3_heldout"], t["e4_heldout"]
    n_val = int(e3["n_images"].max()) if not e3.empty else "?"
    test = int(e1["test_n_images"].max()) if not e1.empty else "?"
    e3_steps = int(e3["step"].max()) if not e3.empty else "?"
    e4_steps = int(e4["step"].max()) if not e4.empty else "?"
    seeds = ", ".join(str(s) for s in sorted(set(e1["seed"]) | set(e3.get("seed", [])) | set(e4.get("seed", []))))
    return [
        "## Deviations from the authors' code",
        "",
        "| what | authors | this run |",
        "|---|---|---|",
        f"| validation images | 8 (the tail of their shuffle) | {n_val} (the tail of the same shuffle) |",
        f"| test images | the 10,000 test images | a fixed random subset of {test} |",
        f"| E1 training | one pass over the data | {e1_stopping(e1)} |",
        f"| E3 (1st vs 2nd order) iterations | ~1,000 at batch 20 | {e3_steps} at batch {batch_of(e3)} |",
        "| E3 held-out loss | (training loss only; each model's own flow) | "
        f"{heldout_encoder_text(e3_heldout_encoder)} |",
        f"| E4 (adjoint ablation) iterations | as their training | {e4_steps} at batch {batch_of(e4)}, "
        "the dataset's optimiser |",
        f"| E5 common decoder | (their plots' decoders) | {e5_common(t['e5_encoding_convergence'])} |",
        "| AMD in validation/test | their training rule | the per-sample rule (batch-independent) |",
        "| rk4 grid | `linspace(0, tau, steps)` (steps - 1 intervals) | `steps` intervals of tau/steps |",
        f"| seeds | 2020 | {seeds or '?'} (model init, subsets, batch order, z0) |",
        "| CIFAR-10 flow (not run here) | batch-mean MSE (gradients / (B·3·32·32)), RMSE in the AMD test | "
        "per-sample pixel-mean MSE in flow and test (a factor 1/B in the flow's time scale) |",
        "",
    ]


def parameter_counts(t: dict[str, pd.DataFrame]) -> list[str]:
    lines = ["## Parameter counts", "", "| dataset | model | decoder | encoder | total |", "|---|---|---|---|---|"]
    for r in t["parameter_counts"].itertuples():
        lines.append(
            f"| {plotstyle.dataset_name(r.dataset)} | {plotstyle.display_name(r.model)} | {r.decoder_params} "
            f"| {r.encoder_params} | {r.total_params} |"
        )
    return lines + [""]


def provenance(t: dict[str, pd.DataFrame]) -> list[str]:
    frames = [f for f in t.values() if "git_commit" in f and not f.empty]
    # a cell joins the commits of the runs it summarises with "; " (e2_authors_points)
    commits = sorted({c for f in frames for cell in f["git_commit"].dropna().unique() for c in str(cell).split("; ")})
    torch = sorted({v for f in frames if "torch_version" in f for v in f["torch_version"].dropna().unique()})
    devices = sorted({v for f in frames if "device" in f for v in f["device"].dropna().unique()})
    made = (
        f"Runs made at git commit {commits[0]}"
        if len(commits) == 1
        else f"Runs made at {len(commits)} git commits (the rows come from more than one; each table's "
        f"`git_commit` column says which): {', '.join(commits)}"
    )
    return [f"{made}; torch {', '.join(torch)}, device {', '.join(devices)}.", ""]


# ---------------------------------------------------------------- claims.csv (for the forest plot)

CLAIM_COLUMNS = [
    "claim",
    "dataset",
    "title",
    "statement",
    "measure",
    "effect",
    "ci_low",
    "ci_high",
    "threshold",
    "threshold_high",
    "unit",
    "supported_when",
    "verdict",
    "reason",
]


def claims_frame(verdicts: list, tables: dict | None = None) -> pd.DataFrame:
    """One row per judged claim (and dataset): its verdict and its decisive effect with the 95%
    interval and threshold(s), as src/pipeline/claims/ computed them (for figures; summary.md stays the
    reference). `tables` is not used (the effects come with the verdicts); kept for callers."""
    rows = [
        dict(
            claim=c.label,
            dataset=c.dataset,
            title=c.title.removesuffix(f" ({plotstyle.dataset_name(c.dataset)})") if c.dataset else c.title,
            statement=c.statement,
            **dataclasses.asdict(c.effect),
            verdict=c.verdict,
            reason=c.reason,
        )
        for c in verdicts
    ]
    return pd.DataFrame(rows, columns=CLAIM_COLUMNS)


def verdicts_of(
    t: dict[str, pd.DataFrame], config_hint: str, seeds: dict | None = None, grid: dict | None = None
) -> list:
    """Every claim judged by src/pipeline/claims/ from the tables, against the configured seeds and grid
    (see claims.all_claims)."""
    return claims.all_claims(
        t["e1_data_efficiency"],
        t["e3_heldout"],
        t["e4_heldout"],
        t["e4_adjoint_ablation"],
        t["e5_encoding_convergence"],
        config_hint,
        floors=t["data_floors"],
        seeds=seeds,
        robustness=t["e5_robustness"],
        e3_train=t["e3_solver_comparison"],
        continuation=t["e1_continuation"],
        grid=grid,
    )


def summary_text(
    t: dict[str, pd.DataFrame],
    config_name: str,
    config_hash: str,
    config_hint: str,
    seeds: dict | None = None,
    e3_heldout_encoder: dict | None = None,
    grid: dict | None = None,
) -> str:
    verdicts = verdicts_of(t, config_hint, seeds, grid)
    lines = [
        "# Summary: the papers' claims against this run",
        "",
        f"Config `{config_name}` (hash `{config_hash}`). Losses are per-sample pixel-mean BCE (MSE for "
        "CIFAR-10). Each claim has a criterion fixed before the numbers and one of three verdicts: "
        "supported, not supported, or not tested at this budget. Verdicts are computed from the tables in "
        "this folder by `src/pipeline/claims/`, whatever the numbers say; intervals are 95% Student-t intervals "
        "of per-seed paired differences.",
        "",
        "| claim | verdict |",
        "|---|---|",
    ]
    lines += [f"| {c.label}: {c.title} | {c.verdict} |" for c in verdicts]
    lines += [
        "",
        *claims.render(verdicts),
        *stopping_check(t),
        *e2_points(t),
        *beyond_the_papers(t),
        *amd_rules(t),
        *deviations(t, e3_heldout_encoder),
        *parameter_counts(t),
        *provenance(t),
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--config-name", required=True)
    p.add_argument("--config-hash", required=True)
    p.add_argument(
        "--config-hint",
        default="config/paper.yaml",
        help="the config that tests what this one's budget cannot (named in verdicts)",
    )
    p.add_argument("--tables", nargs="+", required=True)
    for experiment in ("e1", "e3", "e4"):
        p.add_argument(
            f"--{experiment}-seeds",
            type=int,
            nargs="+",
            help=f"the configured seeds of {experiment.upper()}: a run missing from its table makes a claim not tested",
        )
    p.add_argument(
        "--e3-heldout-encoder",
        metavar="JSON",
        help="JSON: the encode options every E3 model's held-out images were encoded with (named in the deviations)",
    )
    p.add_argument(
        "--grid",
        metavar="JSON",
        help='JSON: the configured experiment the claims are judged against, {"e1": {"sizes": {model: [N, ...]}}, '
        '"e3": {"steps": S}, "e4": {"steps": S}, "e5": {"decoders": [...], "dt_init": [...], "dt_max": [...], '
        '"rk4_steps": [...]}}: a missing size, step or setting makes its claim not tested',
    )
    p.add_argument("--summary", required=True)
    p.add_argument("--claims", help="also write each claim's verdict, effect, interval and threshold as this CSV")
    a = p.parse_args(argv)
    common.setup(1)
    seeds = {"e1": a.e1_seeds, "e3": a.e3_seeds, "e4": a.e4_seeds}
    heldout = json.loads(a.e3_heldout_encoder) if a.e3_heldout_encoder else None
    tables = read_tables(a.tables)
    grid = json.loads(a.grid) if a.grid else None
    text = summary_text(tables, a.config_name, a.config_hash, a.config_hint, seeds, heldout, grid)
    io.write_text(text, a.summary)
    if a.claims:
        io.write_csv(claims_frame(verdicts_of(tables, a.config_hint, seeds, grid)), a.claims)
    return 0


if __name__ == "__main__":
    sys.exit(main())
