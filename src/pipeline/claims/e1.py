"""What claims 1a and 1b share: E1's table (one row per run: dataset, model, train_size,
seed, stop_reason 'plateau' | 'cap', best_step, test_loss_mean, total_params), its
integrity gate, the per-seed differences of a model against the AE, and the per-N table."""

from __future__ import annotations

import pandas as pd

from .integrity import duplicate_problem, finite_problem, grid_problem, seed_problem
from .plateau import plateau_problem
from .stats import paired_interval
from .tables import of_models, pair, per_seed
from .text import count, fmt_interval, mean_std, name, table

REFERENCE = "ae"
KEYS = ["model", "train_size", "seed"]


def loss_unit(dataset) -> str:
    """The loss of a dataset's runs: MSE for CIFAR-10, BCE otherwise."""
    return "test loss (MSE)" if str(dataset) == "cifar10" else "test loss (BCE)"


def missing_model(part: pd.DataFrame, models, dataset) -> str:
    """Non-empty when E1 (one dataset's rows) has no runs of one of `models`."""
    for m in models:
        if part.empty or not (part["model"] == m).any():
            return f"E1 has no {name(m)} runs for {dataset}."
    return ""


def common_sizes(part: pd.DataFrame, model: str) -> list:
    """Training-set sizes with runs of both the AE and `model`, ascending."""
    sizes = [set(part.loc[part["model"] == m, "train_size"]) for m in (REFERENCE, model)]
    return sorted(sizes[0] & sizes[1])


def e1_problem(part: pd.DataFrame, model: str, seeds=None, sizes: dict | None = None) -> str:
    """The integrity gate on E1's rows of the AE and `model` ("" when they pass): one row per
    (model, N, seed), a finite test loss, every configured N of each model (sizes: {model:
    [N, ...]}), and at every N each model with every configured seed (or, without `seeds`,
    the seeds of the other model)."""
    runs = of_models(part, [REFERENCE, model])
    configured = {m: v for m, v in (sizes or {}).items() if m in (REFERENCE, model)}
    problem = (
        duplicate_problem(runs, KEYS)
        or finite_problem(runs, KEYS, ["test_loss_mean"])
        or grid_problem(runs, "train_size", configured)
        or _seeds_at_every_size(runs, seeds)
    )
    return f"In E1's table (e1_data_efficiency.csv) {problem}; no verdict is drawn from it." if problem else ""


def _seeds_at_every_size(runs: pd.DataFrame, seeds) -> str:
    for n, at in runs.groupby("train_size", sort=True):
        if found := seed_problem(at, seeds):
            return f"at N = {n} {found}"
    return ""


def differences(part: pd.DataFrame, n, model: str) -> pd.Series:
    """Per seed at N = n: `model` − AE test loss (the test floor cancels in it)."""
    at = part[part["train_size"] == n]
    p = pair(
        per_seed(at[at["model"] == REFERENCE], "test_loss_mean"), per_seed(at[at["model"] == model], "test_loss_mean")
    )
    return p["b"] - p["a"]


def capped(part: pd.DataFrame, n, model: str) -> pd.DataFrame:
    """The runs of `model` at N = n that stopped at their step budget, not on a plateau."""
    runs = part[(part["train_size"] == n) & (part["model"] == model)]
    return runs[runs["stop_reason"] != "plateau"]


def capped_text(part: pd.DataFrame, n, model: str) -> str:
    """ "2 of 3 GFE-amd runs at N = 1000 stopped at their step budget" ("" when none did)."""
    early = capped(part, n, model)
    total = int(((part["train_size"] == n) & (part["model"] == model)).sum())
    return f"{len(early)} of {total} {name(model)} runs at N = {n} stopped at their step budget" if len(early) else ""


def plateaued(part: pd.DataFrame, n, model: str) -> str:
    """ "2/3": runs of `model` at N = n that stopped on a plateau, of all its runs there."""
    runs = part[(part["train_size"] == n) & (part["model"] == model)]
    return f"{int((runs['stop_reason'] == 'plateau').sum())}/{len(runs)}"


def gate_column(part: pd.DataFrame, continuation, n) -> str:
    """ "yes" when N = n passes the plateau gate, else "no"."""
    return "no" if plateau_problem(part, continuation, n) else "yes"


def gate_notes(part: pd.DataFrame, continuation, sizes) -> list[str]:
    """A bullet per N of `sizes` that fails the plateau gate, saying why."""
    notes = [(n, plateau_problem(part, continuation, n)) for n in sizes]
    return [f"- N = {n}: {why}." for n, why in notes if why]


def loss_table(part: pd.DataFrame, continuation, model: str) -> list[str]:
    """Claim 1a's evidence: every N with runs of both models, each model's test loss (mean ±
    std over seeds), the paired difference with its 95% interval, plateaued runs, steps to the
    best checkpoint, and whether the AE's plateau there is verified."""
    ae, gfe = name(REFERENCE), name(model)
    rows = []
    sizes = common_sizes(part, model)
    for n in sizes:
        by = {m: part[(part["train_size"] == n) & (part["model"] == m)] for m in (REFERENCE, model)}
        rows.append(
            [
                str(n),
                *(mean_std(by[m]["test_loss_mean"]) for m in by),
                fmt_interval(*paired_interval(differences(part, n, model))),
                *(plateaued(part, n, m) for m in by),
                *(count(by[m]["best_step"].mean()) for m in by),
                gate_column(part, continuation, n),
            ]
        )
    header = ["N", ae, gfe, f"{gfe} − {ae} [95% CI]", f"plateaued {ae}", f"plateaued {gfe}"]
    header += [f"steps to best {ae}", f"steps to best {gfe}", f"{ae} plateau verified"]
    return [
        "Test loss per sample (lower is better), mean ± std over seeds; the difference is paired by "
        "seed (same seeds = same training subsets) with its 95% t-interval:",
        "",
        *table(header, rows),
        "",
        *gate_notes(part, continuation, sizes),
    ]
