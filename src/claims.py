"""Claim verdicts from the result tables: small pure functions, no file I/O.

Each ``claim_*`` function takes result tables (pandas DataFrames; extra columns are
ignored) and returns one :class:`Claim` per dataset found in them, with a verdict that is
exactly one of :data:`VERDICTS`. The criterion of every claim is fixed text written before
the numbers; the verdict follows from the numbers alone. A table or model that is missing
gives "not tested at this budget" with a reason naming what is missing, never an error.
Imported by ``src/summarize.py``, which writes :func:`render`'s lines to the summary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
from scipy import stats

VERDICTS = ("supported", "not supported", "not tested at this budget")
SUPPORTED, NOT_SUPPORTED, NOT_TESTED = VERDICTS
MINUS = "\u2212"


@dataclass(frozen=True)
class Claim:
    number: int
    title: str  # short; suffixed with the dataset
    statement: str  # the claim in the papers' words
    criterion: str  # written before the numbers
    evidence: list[str]  # markdown lines
    verdict: str  # one of VERDICTS
    reason: str  # one sentence
    part: str = ""  # "a", "b", "c" for claim 1's three parts

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict {self.verdict!r} is not one of {VERDICTS}")

    @property
    def label(self) -> str:
        return f"{self.number}{self.part}"


# ---------------------------------------------------------------- numbers and markdown


def paired_interval(diffs, level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high) of per-seed paired differences: mean ± t_{(1+level)/2, n-1} · sd/√n.
    For n < 2 the interval is (nan, nan); for n = 0 the mean is nan too."""
    d = np.asarray(diffs, dtype=float)
    if d.size == 0:
        return (math.nan, math.nan, math.nan)
    mean = float(d.mean())
    if d.size < 2:
        return (mean, math.nan, math.nan)
    half = float(stats.t.ppf((1 + level) / 2, d.size - 1)) * float(d.std(ddof=1)) / math.sqrt(d.size)
    return (mean, mean - half, mean + half)


def fmt(x) -> str:
    """4 significant digits, a true minus sign, "n/a" for a missing number."""
    if x is None or pd.isna(x):
        return "n/a"
    if x == 0:
        return "0"
    text = f"{float(x):#.4g}"
    return (text[:-1] if text.endswith(".") else text).replace("-", MINUS)


def fmt_param(x) -> str:
    """A setting (margin, threshold) as written, not rounded to 4 digits."""
    return f"{x:g}".replace("-", MINUS)


def fmt_interval(mean, low, high) -> str:
    """ "−0.01230 [−0.01500, −0.009600]"; "1.000 [n/a]" where there is no interval."""
    bounds = "n/a" if pd.isna(low) else f"{fmt(low)}, {fmt(high)}"
    return f"{fmt(mean)} [{bounds}]"


def mean_std(values) -> str:
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return "n/a"
    sd = v.std(ddof=1) if v.size > 1 else math.nan
    return f"{fmt(v.mean())} ± {fmt(0.0 if sd <= 1e-12 * abs(v.mean()) else sd)}"  # 0, not rounding noise


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + [
        "| " + " | ".join(map(str, r)) + " |" for r in rows
    ]


def render(claims: list[Claim]) -> list[str]:
    """Markdown lines: per claim its heading, statement, criterion, evidence and verdict."""
    lines: list[str] = []
    for c in claims:
        lines += [
            f"## Claim {c.label}: {c.title}",
            "",
            f"**Claim (papers):** {c.statement}",
            "",
            f"**Criterion:** {c.criterion}",
            "",
            *c.evidence,
            "",
            f"**Verdict: {c.verdict}** — {c.reason}",
            "",
        ]
    return lines


# ---------------------------------------------------------------- table helpers


def _select(frame: pd.DataFrame | None, dataset) -> pd.DataFrame:
    """Rows of one dataset; an empty frame when the table is absent or empty."""
    if frame is None or frame.empty or "dataset" not in frame:
        return pd.DataFrame()
    return frame[frame["dataset"] == dataset]


def _datasets(*frames) -> list:
    found = set()
    for f in frames:
        if f is not None and not f.empty and "dataset" in f:
            found |= set(f["dataset"].dropna())
    return sorted(found, key=str)


def _per_seed(frame: pd.DataFrame, value: str) -> pd.Series:
    return frame.groupby("seed")[value].mean() if not frame.empty else pd.Series(dtype=float)


def _pair(a: pd.Series, b: pd.Series) -> pd.DataFrame:
    """Seeds present in both, columns a and b."""
    return pd.concat({"a": a, "b": b}, axis=1).dropna()


def _common_steps(frame: pd.DataFrame) -> list:
    """Validation steps that every (model, seed) run of `frame` has, ascending."""
    if frame.empty:
        return []
    sets = [set(g["step"]) for _, g in frame.groupby(["model", "seed"])]
    return sorted(set.intersection(*sets))


def table_problem(frame: pd.DataFrame, keys: list[str], values: list[str], seeds=None) -> str:
    """Why `frame` (the rows of the models one claim compares) cannot carry a verdict, or ""
    when it can. A verdict needs: one row per `keys` combination (no duplicates); finite
    `values`; for each model, the seeds `seeds` (when given) or else the same seeds as every
    other model; and, when "step" is a key, every (model, seed) run reaching the same last
    step (no truncated run). pandas would otherwise skip NaNs, average duplicates and shrink
    windows to the shortest run, and a broken table would give a confident verdict."""
    if frame.empty:
        return ""
    duplicated = frame[frame.duplicated(keys, keep=False)]
    if len(duplicated):
        row = duplicated.iloc[0]
        where = ", ".join(f"{k} {row[k]}" for k in keys)
        return f"the table has {len(duplicated)} duplicated rows ({where}, ...), so it is not one row per run"
    for value in values:
        numbers = pd.to_numeric(frame[value], errors="coerce").to_numpy(dtype=float)
        bad = frame[~np.isfinite(numbers)]
        if len(bad):
            row = bad.iloc[0]
            where = ", ".join(f"{k} {row[k]}" for k in keys)
            return f"{value} is not a finite number ({row[value]}) at {where} ({len(bad)} such rows)"
    found = {m: sorted(set(g["seed"])) for m, g in frame.groupby("model", sort=True)}
    wanted = sorted(seeds) if seeds is not None else sorted(set().union(*map(set, found.values())))
    missing = {m: sorted(set(wanted) - set(s)) for m, s in found.items() if set(wanted) - set(s)}
    if missing:
        text = "; ".join(f"{m} lacks seed(s) {', '.join(map(str, s))}" for m, s in missing.items())
        return f"{text} of seeds {', '.join(map(str, wanted))}"
    if "step" in keys:
        last = frame.groupby(["model", "seed"])["step"].max()
        if last.nunique() > 1:
            (model, seed), step = last.idxmin(), last.min()
            return f"the {model} run of seed {seed} ends at step {step}, others at step {last.max()} (a truncated run)"
    return ""


def interval_problem(diffs) -> str:
    """Why paired differences give no usable interval ("" when they do): fewer than 2, or all
    equal (a zero-width interval that says nothing about the spread over seeds)."""
    d = np.asarray(diffs, dtype=float)
    if d.size < 2:
        return f"only {d.size} seed(s) pair, too few for an interval"
    if float(d.std(ddof=1)) == 0.0:
        return f"the {d.size} paired differences are identical ({fmt(d[0])}), so the interval has zero width"
    return ""


def _count(x) -> str:
    return "n/a" if pd.isna(x) else f"{x:.0f}"


def _steps_text(steps) -> str:
    return "adaptive" if pd.isna(steps) else _count(steps)


def _make(meta: dict, dataset, evidence, verdict, reason) -> Claim:
    title = meta["title"] if dataset is None else f"{meta['title']} ({dataset})"
    return Claim(
        meta["number"],
        title,
        meta["statement"],
        meta["criterion"],
        list(evidence),
        verdict,
        reason,
        meta.get("part", ""),
    )


def _each(meta: dict, datasets: list, empty_reason: str, one: Callable[[object], Claim]) -> list[Claim]:
    if not datasets:
        return [_make(meta, None, [], NOT_TESTED, empty_reason)]
    return [one(ds) for ds in datasets]


# ---------------------------------------------------------------- claim 1 (E1)


def _e1_models(part: pd.DataFrame, dataset) -> tuple[list, str]:
    """(training-set sizes with runs of both ae and gfe_amd, reason when there are none)."""
    sizes = {}
    for m in ("ae", "gfe_amd"):
        runs = part[part["model"] == m] if not part.empty else part
        if runs.empty:
            return [], f"E1 has no {m} runs for {dataset}."
        sizes[m] = set(runs["train_size"])
    common = sorted(sizes["ae"] & sizes["gfe_amd"])
    return common, "" if common else f"No training-set size of E1 has runs of both ae and gfe_amd for {dataset}."


def _e1_pairs(part: pd.DataFrame, n, relative: bool) -> pd.Series:
    """Per seed at N = n: gfe_amd − ae, or (gfe_amd − ae)/ae."""
    at = part[part["train_size"] == n]
    p = _pair(
        _per_seed(at[at["model"] == "ae"], "test_loss_mean"), _per_seed(at[at["model"] == "gfe_amd"], "test_loss_mean")
    )
    return (p["b"] - p["a"]) / p["a"] if relative else p["b"] - p["a"]


def _e1_table(part: pd.DataFrame, relative: bool) -> list[str]:
    """Every N: loss mean ± std per model, the paired difference, plateaued runs, steps to best."""
    models = part[part["model"].isin(["ae", "gfe_amd"])]
    diff = "(gfe_amd − ae)/ae" if relative else "gfe_amd − ae"
    rows = []
    for n, at in models.groupby("train_size", sort=True):
        by = {m: at[at["model"] == m] for m in ("ae", "gfe_amd")}
        rows.append(
            [
                str(n),
                *(mean_std(by[m]["test_loss_mean"]) for m in by),
                fmt_interval(*paired_interval(_e1_pairs(part, n, relative))),
                *(f"{(by[m]['stop_reason'] == 'plateau').sum()}/{len(by[m])}" for m in by),
                *(_count(by[m]["best_step"].mean()) for m in by),
            ]
        )
    return [
        "Test loss per sample (lower is better), mean ± std over seeds; the difference is paired by "
        "seed (same seeds = same training subsets) with its 95% t-interval:",
        "",
        *table(
            [
                "N",
                "ae",
                "gfe_amd",
                f"{diff} [95% CI]",
                "plateaued ae",
                "plateaued gfe_amd",
                "steps to best ae",
                "steps to best gfe_amd",
            ],
            rows,
        ),
        "",
    ]


def _e1_gate(part: pd.DataFrame, n, pairs: pd.Series, hint: str, seeds=None) -> str:
    """Why N = n cannot decide the claim at this budget ("" when it can)."""
    runs = part[(part["train_size"] == n) & part["model"].isin(["ae", "gfe_amd"])]
    if problem := table_problem(runs, ["model", "train_size", "seed"], ["test_loss_mean"], seeds):
        return f"At N = {n} {problem}; no verdict is drawn from such a table."
    capped = int((runs["stop_reason"] != "plateau").sum())
    if capped:
        return (
            f"{capped} of {len(runs)} runs at N = {n} stopped before their validation loss "
            f"plateaued, so this budget does not test the claim; `{hint}` does."
        )
    if problem := interval_problem(pairs):
        return f"At N = {n} {problem}; `{hint}` tests the claim."
    return ""


def claim_few_images(e1: pd.DataFrame, config_hint: str, seeds=None) -> list[Claim]:
    """Claim 1a. e1: one row per run with dataset, model ('ae', 'gfe_amd'; others ignored),
    train_size, seed, stop_reason ('plateau' | 'cap'), steps, best_step, test_loss_mean."""
    meta = dict(
        number=1,
        part="a",
        title="lower loss from far fewer training images",
        statement=("GFE reaches a lower reconstruction loss than the autoencoder from far fewer training images."),
        criterion=(
            "at the smallest training-set size N with runs of both models, paired by seed, the 95% "
            "t-interval of the test-loss difference gfe_amd − ae lies entirely below 0 → supported; "
            "entirely above 0 or containing 0 → not supported; not tested at this budget when any "
            "run of either model at that N stopped before plateauing, fewer than 2 seeds pair, or the "
            "table is broken (a missing seed, a duplicated row, a non-finite loss)."
        ),
    )
    return _each(
        meta,
        _datasets(e1),
        "The E1 table is empty.",
        lambda ds: _few_images(meta, _select(e1, ds), ds, config_hint, seeds),
    )


def _few_images(meta, part, ds, hint, seeds) -> Claim:
    sizes, missing = _e1_models(part, ds)
    if missing:
        return _make(meta, ds, [], NOT_TESTED, missing)
    n = sizes[0]
    pairs = _e1_pairs(part, n, relative=False)
    evidence = _e1_table(part, relative=False)
    if gate := _e1_gate(part, n, pairs, hint, seeds):
        return _make(meta, ds, evidence, NOT_TESTED, gate)
    m, lo, hi = paired_interval(pairs)
    text = fmt_interval(m, lo, hi)
    evidence.append(f"Smallest N = {n}, {len(pairs)} paired seeds: gfe_amd − ae = {text}.")
    if hi < 0:
        return _make(
            meta, ds, evidence, SUPPORTED, f"At N = {n} the interval of gfe_amd − ae ({text}) lies entirely below 0."
        )
    why = "lies entirely above 0: GFE's loss is higher" if lo > 0 else "contains 0: no advantage is shown"
    return _make(meta, ds, evidence, NOT_SUPPORTED, f"At N = {n} the interval of gfe_amd − ae ({text}) {why}.")


def test_floor(floors: pd.DataFrame | None, dataset) -> float:
    """The test images' own loss floor of a dataset (data_floors table, split 'test'), or nan."""
    part = _select(floors, dataset)
    part = part[part["split"] == "test"] if not part.empty else part
    return float(part["floor_mean"].iloc[0]) if len(part) == 1 else math.nan


def claim_competitive(
    e1: pd.DataFrame,
    floors: pd.DataFrame | None,
    config_hint: str,
    margin: float = 0.10,
    min_n: int = 1000,
    seeds=None,
) -> list[Claim]:
    """Claim 1b, a one-sided non-inferiority test on excess test loss (loss minus the test
    images' entropy floor). e1 as for :func:`claim_few_images`; floors: the data_floors table
    (dataset, split, floor_mean)."""
    meta = dict(
        number=1,
        part="b",
        title="competitive when fully trained",
        statement=("... and stays competitive when fully trained."),
        criterion=(
            f"excess test loss = test loss − the test images' own floor (mean per-pixel Bernoulli entropy, "
            f"the lowest loss any model can reach; data_floors.csv). At the largest N ≥ {min_n} at which every "
            f"run of both models plateaued (≥ 2 paired seeds), GFE-amd is competitive when the upper end of "
            f"the 95% t-interval of the paired excess-loss difference gfe_amd − ae is at most "
            f'{fmt_param(margin)} × the AE\'s mean excess loss at that N → supported (and "clearly better" '
            f"when the upper end is below 0); above it → not supported; no such N → not tested at this "
            f"budget. Why {fmt_param(margin)}: a model that leaves at most {fmt_param(100 * margin)}% more of "
            f"the reducible loss than the AE is close to it by any reader's standard, while a margin on raw "
            f"loss (most of which is the floor) would hide a gap several times larger."
        ),
    )
    return _each(
        meta,
        _datasets(e1),
        "The E1 table is empty.",
        lambda ds: _competitive(meta, _select(e1, ds), test_floor(floors, ds), ds, config_hint, margin, min_n, seeds),
    )


def _all_plateaued(part: pd.DataFrame, n) -> bool:
    runs = part[(part["train_size"] == n) & part["model"].isin(["ae", "gfe_amd"])]
    return bool(len(runs)) and bool((runs["stop_reason"] == "plateau").all())


def _excess_table(part: pd.DataFrame, floor: float, margin: float) -> list[str]:
    """Every N with both models: excess loss per model, the paired difference and the margin."""
    rows = []
    for n in _e1_models(part, None)[0]:
        at = part[part["train_size"] == n]
        ae = at[at["model"] == "ae"]["test_loss_mean"] - floor
        gfe = at[at["model"] == "gfe_amd"]["test_loss_mean"] - floor
        m, lo, hi = paired_interval(_e1_pairs(part, n, relative=False))
        bound = margin * float(ae.mean())
        within = "n/a" if pd.isna(hi) else ("yes" if hi <= bound else "no")
        plateaued = f"{(at[at['model'].isin(['ae', 'gfe_amd'])]['stop_reason'] == 'plateau').sum()}/" + str(
            len(at[at["model"].isin(["ae", "gfe_amd"])])
        )
        rows.append([str(n), mean_std(ae), mean_std(gfe), fmt_interval(m, lo, hi), fmt(bound), within, plateaued])
    return [
        f"Excess test loss (test loss − the floor {fmt(floor)}), mean ± std over seeds; the difference "
        "gfe_amd − ae is paired by seed with its 95% t-interval (the floor cancels in it); the margin is "
        f"{fmt_param(margin)} × the AE's mean excess loss at that N:",
        "",
        *table(
            ["N", "ae excess", "gfe_amd excess", "gfe_amd − ae [95% CI]", "margin", "upper end ≤ margin", "plateaued"],
            rows,
        ),
        "",
    ]


def _competitive(meta, part, floor, ds, hint, margin, min_n, seeds) -> Claim:
    sizes, missing = _e1_models(part, ds)
    if missing:
        return _make(meta, ds, [], NOT_TESTED, missing)
    if pd.isna(floor):
        return _make(meta, ds, [], NOT_TESTED, f"The data_floors table has no test floor for {ds}.")
    evidence = _excess_table(part, floor, margin)
    decided = [n for n in sizes if n >= min_n and _all_plateaued(part, n)]
    if not decided:
        return _make(
            meta,
            ds,
            evidence,
            NOT_TESTED,
            f"No N ≥ {min_n} has runs of both models that all plateaued (sizes with both: "
            f"{', '.join(map(str, sizes))}), so this budget does not test the claim; `{hint}` does.",
        )
    n = decided[-1]
    pairs = _e1_pairs(part, n, relative=False)
    if gate := _e1_gate(part, n, pairs, hint, seeds):
        return _make(meta, ds, evidence, NOT_TESTED, gate)
    m, lo, hi = paired_interval(pairs)
    text = fmt_interval(m, lo, hi)
    bound = margin * float((part[(part["train_size"] == n) & (part["model"] == "ae")]["test_loss_mean"] - floor).mean())
    evidence.append(
        f"Largest N with every run plateaued = {n}, {len(pairs)} paired seeds: excess-loss difference "
        f"gfe_amd − ae = {text}; margin {fmt(bound)}."
    )
    if hi <= bound:
        how = "below 0: GFE is clearly better" if hi < 0 else f"at most the margin {fmt(bound)}"
        return _make(meta, ds, evidence, SUPPORTED, f"At N = {n} the upper end of the interval ({text}) is {how}.")
    return _make(
        meta,
        ds,
        evidence,
        NOT_SUPPORTED,
        f"At N = {n} the upper end of the interval ({text}) exceeds the margin {fmt(bound)}: "
        "GFE's excess loss is not shown to be within the margin of the AE's.",
    )


def claim_half_parameters(e1: pd.DataFrame) -> list[Claim]:
    """Claim 1c. e1 with dataset, model, total_params: gfe_amd/ae in [0.45, 0.55] → supported."""
    meta = dict(
        number=1,
        part="c",
        title="half the parameters",
        statement="... with half the parameters.",
        criterion=(
            "the ratio of total parameters gfe_amd/ae lies in [0.45, 0.55] → supported, "
            "otherwise not supported; not tested only when a model is missing."
        ),
    )
    return _each(meta, _datasets(e1), "The E1 table is empty.", lambda ds: _half(meta, _select(e1, ds), ds))


def _half(meta, part, ds) -> Claim:
    counts = {}
    for m in ("ae", "gfe_amd"):
        values = part.loc[part["model"] == m, "total_params"].dropna()
        if values.empty:
            return _make(meta, ds, [], NOT_TESTED, f"E1 has no {m} parameter count for {ds}.")
        counts[m] = int(values.mode().iloc[0])
    ratio = counts["gfe_amd"] / counts["ae"]
    evidence = [f"Total parameters: ae {counts['ae']}, gfe_amd {counts['gfe_amd']}; ratio gfe_amd/ae = {fmt(ratio)}."]
    ok = 0.45 <= ratio <= 0.55
    return _make(
        meta,
        ds,
        evidence,
        SUPPORTED if ok else NOT_SUPPORTED,
        f"The ratio {fmt(ratio)} lies {'inside' if ok else 'outside'} [0.45, 0.55].",
    )


# ---------------------------------------------------------------- claim 2 (E4)


def _relative_at(frame, step, first, second, floor: float = 0.0) -> pd.Series:
    """Per seed at `step`: (first − second)/(second − floor) of loss_mean, the difference
    relative to the second model's excess loss over `floor`."""
    at = frame[frame["step"] == step]
    p = _pair(_per_seed(at[at["model"] == first], "loss_mean"), _per_seed(at[at["model"] == second], "loss_mean"))
    return (p["a"] - p["b"]) / (p["b"] - floor)


def val_floor(floors: pd.DataFrame | None, dataset) -> float:
    """The validation images' own loss floor of a dataset (data_floors table, split 'val'), or nan."""
    part = _select(floors, dataset)
    part = part[part["split"] == "val"] if not part.empty else part
    return float(part["floor_mean"].iloc[0]) if len(part) == 1 else math.nan


def _difference_at(frame, step, first, second) -> pd.Series:
    """Per seed at `step`: second − first of loss_mean."""
    at = frame[frame["step"] == step]
    p = _pair(_per_seed(at[at["model"] == first], "loss_mean"), _per_seed(at[at["model"] == second], "loss_mean"))
    return p["b"] - p["a"]


def _heldout_rows(frame, steps, models, compare) -> list[list[str]]:
    """Per step: loss mean ± std for each model, then compare(frame, step) as an interval."""
    return [
        [
            str(s),
            *(mean_std(frame.loc[(frame["step"] == s) & (frame["model"] == m), "loss_mean"]) for m in models),
            fmt_interval(*paired_interval(compare(frame, s))),
        ]
        for s in steps
    ]


def _cost_lines(train, approximate, adjoint) -> list[str]:
    """grad_cosine of the adjoint runs and seconds per iteration of each model."""
    if train.empty:
        return ["No per-step training log for this dataset."]
    cos = train.loc[train["model"] == adjoint, "grad_cosine"].dropna()
    sec = {m: train.loc[train["model"] == m, "seconds"].mean() for m in (approximate, adjoint)}
    return [
        f"Cosine between the approximate and the adjoint gradient over {len(cos)} steps of the "
        f"{adjoint} runs: mean {fmt(cos.mean() if len(cos) else None)}, "
        f"min {fmt(cos.min() if len(cos) else None)}.",
        f"Seconds per iteration: {approximate} {fmt(sec[approximate])}, {adjoint} {fmt(sec[adjoint])} "
        f"({adjoint}/{approximate} = {fmt(sec[adjoint] / sec[approximate])}).",
    ]


def claim_adjoint(
    heldout: pd.DataFrame,
    train: pd.DataFrame,
    floors: pd.DataFrame | None,
    margin: float = 0.10,
    approximate: str = "gfe_rk4",
    adjoint: str = "gfe_adjoint",
    seeds=None,
) -> list[Claim]:
    """Claim 2 (E4). heldout: dataset, model, seed, step, loss_mean (one row per run and
    validation point); train: dataset, model, seed, step, seconds, grad_cosine (per step);
    floors: the data_floors table (its validation floor)."""
    meta = dict(
        number=2,
        title="the approximate gradient loses little against the adjoint",
        statement=(
            "Training with the approximate gradient (the encoding treated as a constant) loses little "
            "against the full adjoint."
        ),
        criterion=(
            f"excess loss = held-out loss − the validation images' own floor (mean per-pixel Bernoulli "
            f"entropy; data_floors.csv). At the last validation step common to all runs of both models, "
            f"paired by seed, the upper end of the 95% t-interval of the held-out loss difference relative "
            f"to the adjoint's excess loss, ({approximate} − {adjoint})/({adjoint} − floor), is ≤ "
            f"{fmt_param(margin)} → supported; its lower end > {fmt_param(margin)} → not supported; "
            f"straddling {fmt_param(margin)} → not supported (interval too wide to show it). The margin is "
            f"claim 1b's: at most {fmt_param(100 * margin)}% more of the reducible loss (a margin on raw "
            f"loss, most of which is the floor, would allow a gap several times larger). Not tested at this "
            f"budget when there is no floor, fewer than 2 seeds pair, "
            f"the last common step is step 0, or the table is broken (a missing seed, a truncated run, "
            f"a duplicated row, a non-finite loss, identical differences)."
        ),
    )
    return _each(
        meta,
        _datasets(heldout, train),
        "The E4 tables are empty.",
        lambda ds: _adjoint(
            meta,
            _select(heldout, ds),
            _select(train, ds),
            val_floor(floors, ds),
            ds,
            margin,
            approximate,
            adjoint,
            seeds,
        ),
    )


def _adjoint(meta, held, train, floor, ds, margin, approximate, adjoint, seeds) -> Claim:
    for m in (approximate, adjoint):
        if held.empty or not (held["model"] == m).any():
            return _make(
                meta,
                ds,
                _cost_lines(train, approximate, adjoint),
                NOT_TESTED,
                f"E4 has no held-out loss of {m} runs for {ds}.",
            )
    held = held[held["model"].isin([approximate, adjoint])]
    if problem := table_problem(held, ["model", "seed", "step"], ["loss_mean"], seeds):
        return _make(meta, ds, [], NOT_TESTED, f"In E4's held-out table {problem}; no verdict is drawn from it.")
    steps = _common_steps(held)
    if pd.isna(floor):
        return _make(meta, ds, [], NOT_TESTED, f"The data_floors table has no validation floor for {ds}.")
    compare = lambda f, s: _relative_at(f, s, approximate, adjoint, floor)  # noqa: E731
    evidence = [
        f"Held-out loss, mean ± std over seeds, at every validation step common to all runs; the "
        f"difference relative to {adjoint}'s excess loss over the floor {fmt(floor)}, paired by seed, "
        "with its 95% t-interval:",
        "",
        *table(
            ["step", approximate, adjoint, f"({approximate} − {adjoint})/({adjoint} − floor) [95% CI]"],
            _heldout_rows(held, steps, [approximate, adjoint], compare),
        ),
        "",
        *_cost_lines(train, approximate, adjoint),
    ]
    if not steps or steps[-1] == 0:
        return _make(meta, ds, evidence, NOT_TESTED, "The runs share no validation step after step 0.")
    rel = compare(held, steps[-1])
    if problem := interval_problem(rel):
        return _make(meta, ds, evidence, NOT_TESTED, f"At step {steps[-1]} {problem}.")
    m, lo, hi = paired_interval(rel)
    text, at = fmt_interval(m, lo, hi), f"At step {steps[-1]} ({len(rel)} paired seeds) the interval"
    if hi <= margin:
        return _make(meta, ds, evidence, SUPPORTED, f"{at} {text} ends at or below {fmt_param(margin)}.")
    if lo > margin:
        return _make(
            meta,
            ds,
            evidence,
            NOT_SUPPORTED,
            f"{at} {text} lies entirely above {fmt_param(margin)}: the approximate gradient loses more than that.",
        )
    return _make(
        meta,
        ds,
        evidence,
        NOT_SUPPORTED,
        f"{at} {text} straddles {fmt_param(margin)}: too wide to show that the approximate gradient loses little.",
    )


# ---------------------------------------------------------------- claim 3 (E3, E5)

CURVE = ["panel", "decoder_model", "solver", "order", "steps", "tau"]


def _curves(e5: pd.DataFrame):
    """(key dict, curve sorted by t) for each E5 curve; steps is NaN for AMD."""
    if e5.empty:
        return []
    keys = [k for k in CURVE if k in e5]
    return [
        (dict(zip(keys, key, strict=True)), g.sort_values("t")) for key, g in e5.groupby(keys, dropna=False, sort=True)
    ]


def _curve_order(key: dict) -> tuple:
    """Sort by order, τ, steps (missing last), then decoder."""
    number = lambda k: math.inf if pd.isna(key.get(k, math.nan)) else float(key[k])  # noqa: E731
    return (number("order"), number("tau"), number("steps"), str(key.get("decoder_model")))


def _e5_lines(e5: pd.DataFrame) -> list[str]:
    """Own-decoder curves: loss at a quarter of the integration time and final; common-decoder rk4 finals."""
    own, common = [], []
    for key, c in sorted(_curves(e5), key=lambda kc: _curve_order(kc[0])):
        final = fmt(c["loss_mean"].iloc[-1])
        if key.get("panel") == "own decoder" and key.get("order") in (1, 2):
            tau = key["tau"] if not pd.isna(key.get("tau", math.nan)) else c["t"].max()
            quarter = c.loc[(c["t"] - tau / 4).abs().idxmin()]
            own.append(
                [
                    f"{key['order']:.0f}",
                    str(key.get("decoder_model")),
                    str(key.get("solver")),
                    _steps_text(key.get("steps")),
                    fmt(tau),
                    f"{fmt(quarter['loss_mean'])} (t = {fmt(quarter['t'])})",
                    final,
                ]
            )
        elif key.get("panel") == "common decoder" and key.get("solver") == "rk4":
            common.append([f"{key['order']:.0f}", fmt(key.get("tau")), _steps_text(key.get("steps")), final])
    lines = []
    if own:
        lines += [
            "",
            "E5, each flow on the decoder it trained (evidence only):",
            "",
            *table(["order", "decoder", "solver", "steps", "τ", "loss at τ/4", "final loss"], own),
        ]
    if common:
        lines += [
            "",
            "E5, common decoder, rk4, final loss (evidence only):",
            "",
            *table(["order", "τ", "steps", "final loss"], common),
        ]
    return lines or ["", "No E5 curves for this dataset."]


def claim_second_order(
    heldout: pd.DataFrame,
    e5: pd.DataFrame,
    first: str = "gfe_rk4",
    second: str = "gfe_2nd",
    seeds=None,
    train: pd.DataFrame | None = None,
) -> list[Claim]:
    """Claim 3 (E3). heldout: dataset, model, seed, step, loss_mean (both models' checkpoints
    encoded by one common flow); e5: dataset, panel, decoder_model, solver, order, steps, tau,
    t, nfe_mean, loss_mean (evidence only); train: the E3 training logs, dataset, model,
    seed, step, loss (the authors' evidence, shown only)."""
    meta = dict(
        number=3,
        title="the second-order flow converges faster per iteration",
        statement=(
            "The second-order (Nesterov) flow converges faster per iteration than the first-order gradient flow."
        ),
        criterion=(
            f"{second} and {first} train from the same initial decoder on the same batches, and both "
            f"models' held-out checkpoints are encoded by one common encoder (so their losses are equal at "
            f"step 0, and a difference is the decoders'); per seed, "
            f"the mean held-out loss over all validation steps after step 0 common to all runs (a "
            f"discrete area under the learning curve: lower means faster per iteration); the 95% paired "
            f"t-interval of ({second} − {first}) lies entirely below 0 → supported; otherwise not "
            f"supported; not tested at this budget when fewer than 2 seeds pair, fewer than 2 common "
            f"steps follow step 0, or the table is broken (a missing seed, a truncated run, a duplicated "
            f"row, a non-finite loss, identical differences) or the step-0 losses differ (the models were "
            f"encoded by different encoders)."
        ),
    )
    return _each(
        meta,
        _datasets(heldout, e5),
        "The E3 held-out table and the E5 table are empty.",
        lambda ds: _second_order(
            meta, _select(heldout, ds), _select(e5, ds), ds, first, second, seeds, _select(train, ds)
        ),
    )


def _train_rows(train: pd.DataFrame, first: str, second: str, windows: int = 5) -> list[list[str]]:
    """Training loss (the authors' evidence), mean over equal windows of steps: per model mean
    ± std over seeds of each seed's window mean, and the paired difference."""
    if train.empty or not {"model", "seed", "step", "loss"} <= set(train.columns):
        return []
    last = int(train["step"].max())
    edges = np.unique(np.linspace(0, last, min(windows, last) + 1).round().astype(int))
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        part = train[(train["step"] > lo) & (train["step"] <= hi)]
        means = {m: part[part["model"] == m].groupby("seed")["loss"].mean() for m in (first, second)}
        pairs = _pair(means[first], means[second])
        m, low, high = paired_interval(pairs["b"] - pairs["a"]) if len(pairs) else (math.nan,) * 3
        rows.append([f"{lo + 1}–{hi}", mean_std(means[first]), mean_std(means[second]), fmt_interval(m, low, high)])
    return rows


def _own_decoder_note(e5: pd.DataFrame, first: str, second: str) -> list[str]:
    """A sentence on E5's own-decoder curves: each flow's loss at τ/4 on the decoder it trained."""
    quarter = {}
    for key, c in _curves(e5):
        if key.get("panel") == "own decoder" and key.get("decoder_model") in (first, second):
            tau = key["tau"] if not pd.isna(key.get("tau", math.nan)) else c["t"].max()
            quarter[key["decoder_model"]] = float(c.loc[(c["t"] - tau / 4).abs().idxmin(), "loss_mean"])
    if len(quarter) < 2:
        return []
    faster = "faster" if quarter[second] < quarter[first] else "slower"
    return [
        "",
        f"Along the encoding flow (E5, each flow on the decoder it trained; evidence only, the claim is "
        f"judged on training): at τ/4 {second} reaches {fmt(quarter[second])} and {first} "
        f"{fmt(quarter[first])}, so there the second-order flow is {faster}.",
    ]


def _step0_problem(held: pd.DataFrame, first: str, second: str) -> str:
    """Non-empty when the two models' held-out losses at step 0 differ for some seed."""
    start = held[held["step"] == 0]
    pairs = _pair(
        _per_seed(start[start["model"] == first], "loss_mean"), _per_seed(start[start["model"] == second], "loss_mean")
    )
    gap = (pairs["b"] - pairs["a"]).abs()
    if len(gap) and float(gap.max()) > 1e-9 * float(pairs["a"].abs().max()):
        return (
            f"the held-out losses at step 0 differ by up to {fmt(float(gap.max()))} although both models start "
            "from the same decoder: their checkpoints were encoded by different encoders (encoder and decoder "
            "mixed); set solver_comparison.heldout_encoder"
        )
    return ""


def _second_order(meta, held, e5, ds, first, second, seeds, train=None) -> Claim:
    train = pd.DataFrame() if train is None else train
    for m in (first, second):
        if held.empty or not (held["model"] == m).any():
            return _make(meta, ds, _e5_lines(e5), NOT_TESTED, f"E3 has no held-out loss of {m} runs for {ds}.")
    held = held[held["model"].isin([first, second])]
    if problem := table_problem(held, ["model", "seed", "step"], ["loss_mean"], seeds) or _step0_problem(
        held, first, second
    ):
        return _make(
            meta, ds, _e5_lines(e5), NOT_TESTED, f"In E3's held-out table {problem}; no verdict is drawn from it."
        )
    steps = _common_steps(held)
    shown = sorted({steps[int(round(i))] for i in np.linspace(0, len(steps) - 1, min(6, len(steps)))})
    compare = lambda f, s: _difference_at(f, s, first, second)  # noqa: E731
    evidence = [
        "Held-out loss, mean ± std over seeds, at matched validation steps; difference paired by seed "
        "with its 95% t-interval:",
        "",
        *table(
            ["step", first, second, f"{second} − {first} [95% CI]"],
            _heldout_rows(held, shown, [first, second], compare),
        ),
    ]
    after = [s for s in steps if s > 0]
    later = held[held["step"].isin(after)]
    pairs = _pair(
        _per_seed(later[later["model"] == first], "loss_mean"), _per_seed(later[later["model"] == second], "loss_mean")
    )
    diff = pairs["b"] - pairs["a"]
    m, lo, hi = paired_interval(diff)
    text = fmt_interval(m, lo, hi)
    evidence += [
        "",
        f"Mean held-out loss over the {len(after)} matched steps after 0, {second} − {first}, "
        f"{len(diff)} paired seeds: {text}.",
    ]
    if rows := _train_rows(train, first, second):
        evidence += [
            "",
            "Training loss (the authors' evidence; each step's batch encoded by the model's own flow), mean "
            "over windows of steps, mean ± std over seeds, difference paired by seed:",
            "",
            *table(["steps", first, second, f"{second} − {first} [95% CI]"], rows),
        ]
    evidence += [*_own_decoder_note(e5, first, second), *_e5_lines(e5)]
    if len(after) < 2:
        return _make(
            meta,
            ds,
            evidence,
            NOT_TESTED,
            f"Only {len(after)} matched validation step(s) follow step 0, too few for a learning curve.",
        )
    if problem := interval_problem(diff):
        return _make(meta, ds, evidence, NOT_TESTED, f"In the area difference {problem}.")
    if hi < 0:
        return _make(
            meta, ds, evidence, SUPPORTED, f"The interval of the area difference ({text}) lies entirely below 0."
        )
    why = "lies entirely above 0: the second-order flow is slower" if lo > 0 else "contains 0: no speed-up is shown"
    return _make(meta, ds, evidence, NOT_SUPPORTED, f"The interval of the area difference ({text}) {why}.")


# ---------------------------------------------------------------- claim 4 (E5 robustness)

ROBUST_SPREAD = 0.10  # AMD "varies little": its excess-loss range within 10% of its best
SENSITIVE_SPREAD = 0.10  # rk4 "varies a lot": its range beyond 10% of its best (diverged: infinite)
MATCHED_MARGIN = 0.10  # at equal NFE, AMD's excess loss at most 10% above rk4's


def claim_amd_robust(robustness: pd.DataFrame | None) -> list[Claim]:
    """Claim 4 (the E5 robustness sweep). robustness: dataset, decoder_model, solver ('amd' |
    'rk4'), dt_init, dt_max, steps, configured, nfe_matched, nfe_mean, loss_mean, excess_mean
    (one row per setting; a diverged setting has loss_mean inf)."""
    meta = dict(
        number=4,
        title="AMD is robust to the step size",
        statement="AMD is robust where fixed-step solvers are sensitive to the step size.",
        criterion=(
            "on every swept decoder (the same test images and z0, first-order flow, one τ), with the "
            "excess loss = final loss − the images' entropy floor, and a diverged (non-finite) setting "
            "counted as infinitely bad: (i) AMD varies little — its excess loss over all its (dt_init, "
            f"dt_max) settings spans at most {fmt_param(100 * ROBUST_SPREAD)}% of its best, none "
            "diverged; (ii) rk4 is sensitive — its excess loss over its step counts spans more than "
            f"{fmt_param(100 * SENSITIVE_SPREAD)}% of its best; (iii) at equal cost AMD is not worse — "
            "the configured AMD setting's excess loss is at most "
            f"{fmt_param(100 * MATCHED_MARGIN)}% above that of rk4 at the step count with the same NFE "
            "per image. (i) and (iii) on every decoder and (ii) on at least one → supported; (i) or "
            "(iii) failing on a decoder → not supported; (ii) failing on every decoder → not tested at "
            "this budget (no sensitivity in the swept range)."
        ),
    )
    return _each(
        meta,
        _datasets(robustness),
        "The E5 robustness table is missing or empty.",
        lambda ds: _amd(meta, _select(robustness, ds), ds),
    )


def _spread(values: pd.Series) -> float:
    """(max − min) / min of excess losses; inf when one is non-finite (diverged)."""
    if not np.isfinite(values.to_numpy(dtype=float)).all():
        return math.inf
    best = float(values.min())
    return (float(values.max()) - best) / best if best > 0 else math.nan


def _setting(row) -> str:
    if row["solver"] == "amd":
        mark = " (configured)" if row["configured"] else ""
        return f"dt_init {fmt_param(row['dt_init'])}, dt_max {fmt_param(row['dt_max'])}{mark}"
    return f"{_count(row['steps'])} steps" + (" (NFE-matched)" if row["nfe_matched"] else "")


def _amd(meta, rob: pd.DataFrame, ds) -> Claim:
    rows, findings, problems = [], [], []
    for decoder, part in rob.groupby("decoder_model", sort=True):
        amd, rk4 = part[part["solver"] == "amd"], part[part["solver"] == "rk4"]
        rows += [
            [decoder, r["solver"], _setting(r), fmt(r["nfe_mean"]), fmt(r["loss_mean"]), fmt(r["excess_mean"])]
            for _, r in pd.concat([amd, rk4]).iterrows()
        ]
        configured, matched = amd[amd["configured"]], rk4[rk4["nfe_matched"]]
        if amd.empty or len(rk4) < 2 or len(configured) != 1 or len(matched) != 1:
            problems.append(f"decoder {decoder} lacks AMD settings, two rk4 counts or the configured/matched pair")
            continue
        amd_excess, rk4_excess = float(configured["excess_mean"].iloc[0]), float(matched["excess_mean"].iloc[0])
        ratio = amd_excess / rk4_excess - 1 if math.isfinite(rk4_excess) and rk4_excess > 0 else -math.inf
        findings.append(
            dict(
                decoder=decoder,
                amd_spread=_spread(amd["excess_mean"]),
                rk4_spread=_spread(rk4["excess_mean"]),
                rk4_diverged=int((~np.isfinite(rk4["loss_mean"].to_numpy(dtype=float))).sum()),
                rk4_counts=len(rk4),
                matched_ratio=ratio,
                matched_nfe=float(matched["nfe_mean"].iloc[0]) if math.isfinite(rk4_excess) else math.nan,
            )
        )
    evidence = [
        f"Final loss, excess loss over the images' floor, and NFE per image at τ = {fmt(rob['tau'].max())}, "
        f"{_count(rob['n_images'].max())} test images, z0 {', '.join(map(str, rob['z0'].unique()))}:",
        "",
        *table(["decoder", "solver", "setting", "NFE", "final loss", "excess loss"], rows),
        "",
    ]
    for f in findings:
        evidence.append(
            f"- {f['decoder']}: AMD range {_pct(f['amd_spread'])} of its best; rk4 range {_pct(f['rk4_spread'])} "
            f"({f['rk4_diverged']} of {f['rk4_counts']} counts diverged); at equal NFE AMD is "
            f"{_pct(abs(f['matched_ratio']))} {'above' if f['matched_ratio'] > 0 else 'below'} rk4."
        )
    if problems or not findings:
        return _make(meta, ds, evidence, NOT_TESTED, "; ".join(problems) or "No decoder was swept.")
    not_robust = [f["decoder"] for f in findings if not f["amd_spread"] <= ROBUST_SPREAD]
    worse = [f["decoder"] for f in findings if not f["matched_ratio"] <= MATCHED_MARGIN]
    sensitive = [f["decoder"] for f in findings if f["rk4_spread"] > SENSITIVE_SPREAD]
    if not_robust:
        return _make(meta, ds, evidence, NOT_SUPPORTED, f"AMD's excess loss varies beyond the bound on {not_robust}.")
    if worse:
        return _make(
            meta, ds, evidence, NOT_SUPPORTED, f"At equal NFE AMD is more than the margin worse than rk4 on {worse}."
        )
    if not sensitive:
        return _make(
            meta,
            ds,
            evidence,
            NOT_TESTED,
            "rk4 varies by no more than the bound over the swept step counts on any decoder.",
        )
    return _make(
        meta,
        ds,
        evidence,
        SUPPORTED,
        f"AMD varies within the bound on all {len(findings)} decoders, rk4 varies beyond it on {len(sensitive)}, "
        "and AMD is within the margin of rk4 at equal NFE.",
    )


def _pct(x: float) -> str:
    return "∞" if math.isinf(x) else f"{fmt(100 * x)}%"


# ---------------------------------------------------------------- all


def all_claims(
    e1,
    e3_heldout,
    e4_heldout,
    e4_train,
    e5,
    config_hint: str,
    floors=None,
    seeds: dict | None = None,
    robustness=None,
    e3_train=None,
) -> list[Claim]:
    """Claims 1a, 1b, 1c, 2, 3, 4 in that order, one per dataset each. floors: the
    data_floors table (without it claim 1b is not tested); robustness: the E5 robustness
    table (without it claim 4 is not tested); seeds: the configured seeds of
    "e1", "e3" and "e4" (a run missing from a table then makes its claim not tested; without
    them every model must have the seeds any model has)."""
    seeds = seeds or {}
    return [
        *claim_few_images(e1, config_hint, seeds=seeds.get("e1")),
        *claim_competitive(e1, floors, config_hint, seeds=seeds.get("e1")),
        *claim_half_parameters(e1),
        *claim_adjoint(e4_heldout, e4_train, floors, seeds=seeds.get("e4")),
        *claim_second_order(e3_heldout, e5, seeds=seeds.get("e3"), train=e3_train),
        *claim_amd_robust(robustness),
    ]
