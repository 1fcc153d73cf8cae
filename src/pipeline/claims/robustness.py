"""Claim 4 (E5's robustness sweep): AMD is robust where fixed-step solvers are sensitive to
the step size. robustness: one row per decoder seed and setting with dataset, decoder_model,
decoder_seed, solver ('amd' | 'rk4'), dt_init, dt_max, steps, configured, nfe_matched,
nfe_mean, loss_mean, excess_mean, diverged (the run's own flag; a non-finite loss without it is
a broken row), tau, n_images, z0, and how the flows ended (stop_reason, t_mean) where known.

Each part of the criterion is measured on each seed's decoder and judged on its 95% t-interval
over the seeds."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd

from .integrity import duplicate_problem
from .stats import interval_problem, paired_interval
from .tables import datasets, select
from .text import count, fmt, fmt_param, joined, name, names, pct, table
from .verdict import NOT_SUPPORTED, NOT_TESTED, SUPPORTED, Claim, Effect, each, make

ROBUST_SPREAD = 0.10  # AMD "varies little": its excess-loss range within 10% of its best
SENSITIVE_SPREAD = 0.10  # rk4 "varies a lot": its range beyond 10% of its best (diverged: infinite)
MATCHED_MARGIN = 0.10  # at equal NFE, AMD's excess loss at most 10% above rk4's
KEYS = ["decoder_model", "decoder_seed", "solver", "dt_init", "dt_max", "steps"]

HOLDS, FAILS, OPEN = "holds", "fails", "open"


def meta() -> dict:
    """The claim's fixed text, written before the numbers."""
    return dict(
        number=4,
        title="AMD is robust to the step size",
        statement="AMD is robust where fixed-step solvers are sensitive to the step size.",
        criterion=(
            "on every swept decoder model, measured on each seed's decoder (the same test images and z0, "
            "first-order flow, one τ), with the excess loss = final loss − the images' entropy floor, and a "
            "setting the run flagged as diverged counted as infinitely bad: (i) AMD varies little — its excess "
            "loss over all its (dt_init, dt_max) settings spans at most "
            f"{fmt_param(100 * ROBUST_SPREAD)}% of its best; (ii) rk4 is sensitive — its excess loss over its "
            f"step counts spans more than {fmt_param(100 * SENSITIVE_SPREAD)}% of its best; (iii) at equal cost "
            "AMD is not worse — the configured AMD setting's excess loss is at most "
            f"{fmt_param(100 * MATCHED_MARGIN)}% above that of rk4 at the step count with the same NFE per "
            "image (100% below it when that rk4 run diverged). Over the seeds (at least 2): (i) and (iii) hold "
            "on a model when the upper end of the 95% t-interval of the measure is within the bound, and fail "
            "when its lower end is beyond it or AMD diverged on a seed's decoder; (ii) holds when the range "
            "exceeds the bound on every seed's decoder and, where all are finite, the interval's lower end "
            "does too. Every ending of a run counts as finished (reaching τ, AMD's own convergence test, an "
            "evaluation cap): how a solver stops is part of the solver; the table says how each ended. "
            "(i) or (iii) failing on a model → not supported; else (i) and (iii) holding on every model and "
            "(ii) on at least one → supported; else not tested at this budget (an interval across a bound: "
            "the seeds do not decide; or no sensitivity in the swept range). Not tested at this budget when "
            "the table is broken: a configured decoder, seed or setting missing or one not configured present, "
            "a duplicated setting, or a non-finite loss that the run did not flag as diverged."
        ),
    )


def claim_amd_robust(robustness: pd.DataFrame | None, grid: dict | None = None) -> list[Claim]:
    """Claim 4, one per dataset. robustness: the E5 robustness table (see above); grid: the
    configured sweep, {"decoders": [...], "seeds": [...], "dt_init": [...], "dt_max": [...],
    "rk4_steps": [...]} (a decoder, seed or setting missing from the table, or a seed not
    configured in it, then makes the claim not tested)."""
    m = meta()
    return each(
        m,
        datasets(robustness),
        "The E5 robustness table is missing or empty.",
        lambda ds: _judge(m, select(robustness, ds), ds, grid or {}),
    )


def diverged(rob: pd.DataFrame) -> pd.Series:
    """The runs' own divergence flag (False where the table has none)."""
    if "diverged" not in rob:
        return pd.Series(False, index=rob.index)
    return rob["diverged"].astype(str).str.lower().isin(["true", "1", "1.0"])


def grid_problem(rob: pd.DataFrame, grid: dict) -> str:
    """Non-empty when the sweep is not the configured one: a decoder, seed, AMD (dt_init,
    dt_max) setting with dt_init ≤ dt_max (the sweep of src/scripts/solver_robustness.py) or rk4 step
    count missing, or a seed that is not configured present."""
    if "decoder_seed" not in rob:
        return "there is no decoder_seed column (a sweep of one unnamed seed)"
    wanted_seeds = [int(seed) for seed in grid.get("seeds", [])]
    for decoder in grid.get("decoders", []):
        part = rob[rob["decoder_model"] == decoder]
        if part.empty:
            return f"decoder {decoder} of the configured {joined(grid['decoders'])} is missing"
        found = sorted({int(seed) for seed in part["decoder_seed"]})
        if wanted_seeds and (extra := sorted(set(found) - set(wanted_seeds))):
            return f"decoder {decoder} has seed {extra[0]}, not one of the configured seeds {joined(wanted_seeds)}"
        for seed in wanted_seeds or found:
            one = part[part["decoder_seed"].astype(int) == seed]
            if one.empty:
                return f"decoder {decoder} lacks seed {seed} of the configured {joined(wanted_seeds)}"
            if problem := _setting_problem(one, grid):
                return f"decoder {decoder} of seed {seed} {problem}"
    return ""


def _setting_problem(one: pd.DataFrame, grid: dict) -> str:
    """Non-empty when one seed's decoder lacks a configured AMD setting or rk4 count."""
    amd, rk4 = one[one["solver"] == "amd"], one[one["solver"] == "rk4"]
    have = set(zip(amd["dt_init"].astype(float), amd["dt_max"].astype(float), strict=True))
    for dt_init, dt_max in itertools.product(grid.get("dt_init", []), grid.get("dt_max", [])):
        if float(dt_init) <= float(dt_max) and (float(dt_init), float(dt_max)) not in have:
            return f"lacks the AMD setting dt_init {fmt_param(dt_init)}, dt_max {fmt_param(dt_max)}"
    counts = set(rk4["steps"].astype(float))
    for steps in grid.get("rk4_steps", []):
        if float(steps) not in counts:
            return f"lacks rk4 at {steps} steps of the configured {joined(grid['rk4_steps'])}"
    return ""


def finite_problem(rob: pd.DataFrame) -> str:
    """Non-empty when a setting has a non-finite loss the run did not flag as diverged."""
    flagged = diverged(rob)
    for column in ("loss_mean", "excess_mean"):
        numbers = pd.to_numeric(rob[column], errors="coerce").to_numpy(dtype=float)
        bad = rob[~np.isfinite(numbers) & ~flagged.to_numpy()]
        if len(bad):
            row = bad.iloc[0]
            return (
                f"{column} is not a finite number ({row[column]}) for {row['solver']} {setting(row)} on decoder "
                f"{row['decoder_model']}{_seed_text(row)}, and the run did not flag it as diverged: a broken row, "
                "not a divergence"
            )
    return ""


def _seed_text(row) -> str:
    seed = row.get("decoder_seed")
    return "" if seed is None or pd.isna(seed) else f" of seed {int(seed)}"


def spread(values: pd.Series) -> float:
    """(max − min) / min of excess losses; inf when one is infinite (a diverged setting)."""
    if not np.isfinite(values.to_numpy(dtype=float)).all():
        return math.inf
    best = float(values.min())
    return (float(values.max()) - best) / best if best > 0 else math.nan


def setting(row) -> str:
    """A sweep row's setting in words."""
    if row["solver"] == "amd":
        mark = " (configured)" if row["configured"] else ""
        return f"dt_init {fmt_param(row['dt_init'])}, dt_max {fmt_param(row['dt_max'])}{mark}"
    return f"{count(row['steps'])} steps" + (" (NFE-matched)" if row["nfe_matched"] else "")


def ending(rows: pd.DataFrame) -> str:
    """How the flows of a setting's rows (one per seed) ended, from stop_reason and t_mean:
    the reason they share ('mixed' otherwise), with the mean t where it is not τ ("" when
    the table does not record endings)."""
    reasons = rows.get("stop_reason", pd.Series(dtype=object)).dropna()
    reasons = reasons[reasons.astype(str) != ""]
    if reasons.empty:
        return ""
    shared = set(reasons.astype(str))
    reason = shared.pop() if len(shared) == 1 else "mixed"
    t = pd.to_numeric(rows.get("t_mean", pd.Series(dtype=float)), errors="coerce").dropna()
    return reason if t.empty or reason in ("tau", "diverged") else f"{reason}, mean t {fmt(t.mean())}"


def finding(decoder, seed, amd: pd.DataFrame, rk4: pd.DataFrame) -> dict:
    """Parts (i)-(iii) on one seed's decoder: AMD's and rk4's spreads and the matched-NFE
    ratio (−1 when the matched rk4 run diverged; NaN when its excess is not positive)."""
    configured, matched = amd[amd["configured"]], rk4[rk4["nfe_matched"]]
    amd_excess, rk4_excess = float(configured["excess"].iloc[0]), float(matched["excess"].iloc[0])
    if math.isinf(rk4_excess):
        ratio = -1.0
    else:
        ratio = amd_excess / rk4_excess - 1 if rk4_excess > 0 else math.nan
    return dict(
        decoder=decoder,
        seed=seed,
        amd_spread=spread(amd["excess"]),
        rk4_spread=spread(rk4["excess"]),
        rk4_diverged=int((~np.isfinite(rk4["excess"].to_numpy(dtype=float))).sum()),
        rk4_counts=len(rk4),
        matched_ratio=ratio,
    )


def bounded(values: list[float], bound: float) -> tuple[str, tuple]:
    """Parts (i) and (iii) over seeds: HOLDS when the interval's upper end is within `bound`,
    FAILS when its lower end is beyond it or a value is infinite (AMD diverged), else OPEN
    (also for fewer than 2 seeds or a NaN); with (mean, low, high). Equal values on every seed
    are their own interval."""
    v = np.asarray(values, dtype=float)
    if np.isinf(v).any():
        return FAILS, (math.inf, math.nan, math.nan)
    if np.isnan(v).any() or v.size < 2:
        return OPEN, paired_interval(v)
    if interval_problem(v):  # every seed gives the same value (e.g. rk4 diverged on each: −1)
        return (HOLDS if v[0] <= bound else FAILS), (float(v[0]), float(v[0]), float(v[0]))
    mean, low, high = paired_interval(v)
    return (HOLDS if high <= bound else FAILS if low > bound else OPEN), (mean, low, high)


def sensitive(values: list[float]) -> bool:
    """Part (ii) over seeds: every seed's rk4 range beyond the bound and, where all are finite
    and give an interval, its lower end too."""
    v = np.asarray(values, dtype=float)
    if not (v > SENSITIVE_SPREAD).all():
        return False
    if np.isinf(v).any() or interval_problem(v):
        return True
    return paired_interval(v)[1] > SENSITIVE_SPREAD


def interval_pct(interval: tuple) -> str:
    """(mean, low, high) of fractions as "4.000% [2.000%, 6.000%]"."""
    mean, low, high = interval
    bounds = "n/a" if pd.isna(low) else f"{pct(low)}, {pct(high)}"
    return f"{pct(mean)} [{bounds}]"


def outlier_text(decoder, amd: pd.DataFrame, tau) -> str:
    """The AMD settings that decide part (i) on a decoder model: those whose mean excess loss
    over the seeds is beyond ROBUST_SPREAD of the best, with how they ended. A verdict that
    turns on AMD's own convergence test says so, as a finding about AMD."""
    by_setting = list(amd.groupby(["dt_init", "dt_max"], sort=True))
    means = {key: float(rows["excess"].mean()) for key, rows in by_setting}
    best = min(means.values())
    out = [(key, rows) for key, rows in by_setting if means[key] > (1 + ROBUST_SPREAD) * best]
    if not out:
        return ""
    settings = "; ".join(
        f"{setting(rows.iloc[0])}: excess {fmt(means[key])} ({ending(rows) or 'ending not recorded'})"
        for key, rows in out
    )
    text = f"on the decoders trained by {name(decoder)}, AMD's best mean excess loss is {fmt(best)} and {settings}"
    reasons = set(pd.concat([rows for _, rows in out]).get("stop_reason", pd.Series(dtype=object)).dropna())
    if reasons == {"convergence test"}:
        text += (
            f" — these runs stopped on AMD's own convergence test (a per-step loss-slope tolerance, which small steps "
            f"meet early) before τ = {fmt(tau)}, neither diverging nor hitting an evaluation cap: a property of AMD "
            "as specified"
        )
    return text


def _structure_problem(decoder, seed, amd: pd.DataFrame, rk4: pd.DataFrame) -> str:
    if amd.empty or len(rk4) < 2 or amd["configured"].sum() != 1 or rk4["nfe_matched"].sum() != 1:
        return (
            f"decoder {name(decoder)} of seed {seed} lacks AMD settings, two rk4 counts or the configured/matched pair"
        )
    return ""


def _settings_rows(decoder, part: pd.DataFrame) -> list[list[str]]:
    """Evidence rows of one decoder model, each setting averaged over the seeds: AMD's
    settings, rk4's counts swept on every seed, and rk4 at the NFE-matched count."""
    seeds = part["decoder_seed"].nunique()
    amd, rk4 = part[part["solver"] == "amd"], part[part["solver"] == "rk4"]
    groups = [("amd", setting(rows.iloc[0]), rows) for _, rows in amd.groupby(["dt_init", "dt_max"], sort=True)]
    groups += [
        ("rk4", f"{count(steps)} steps", rows)
        for steps, rows in rk4.groupby("steps", sort=True)
        if rows["decoder_seed"].nunique() == seeds
    ]
    matched = rk4[rk4["nfe_matched"]]
    if not matched.empty:
        low, high = int(matched["steps"].min()), int(matched["steps"].max())
        counts = f"{low}" if low == high else f"{low}–{high}"
        groups.append(("rk4", f"NFE-matched ({counts} steps)", matched))
    return [
        [
            name(decoder),
            solver,
            label,
            fmt(rows["nfe_mean"].mean()),
            fmt(rows["loss_mean"].mean()),
            fmt(rows["excess"].mean()),
            ending(rows) or "n/a",
        ]
        for solver, label, rows in groups
    ]


def _judge(m, rob: pd.DataFrame, ds, grid: dict) -> Claim:
    problem = duplicate_problem(rob, [k for k in KEYS if k in rob]) or grid_problem(rob, grid) or finite_problem(rob)
    if problem:
        return make(
            m,
            ds,
            [],
            NOT_TESTED,
            f"In E5's robustness table (e5_robustness.csv) {problem}; no verdict is drawn from it.",
        )
    rob = rob.assign(
        excess=np.where(diverged(rob), math.inf, rob["excess_mean"].astype(float)),
        decoder_seed=rob["decoder_seed"].astype(int),
    )
    rows, findings, problems, models = [], [], [], []
    for decoder, part in rob.groupby("decoder_model", sort=True):
        rows += _settings_rows(decoder, part)
        per_seed = []
        for seed, one in part.groupby("decoder_seed", sort=True):
            amd, rk4 = one[one["solver"] == "amd"], one[one["solver"] == "rk4"]
            if problem := _structure_problem(decoder, seed, amd, rk4):
                problems.append(problem)
                continue
            per_seed.append(finding(decoder, seed, amd, rk4))
        findings += per_seed
        if per_seed and len(per_seed) == part["decoder_seed"].nunique():
            models.append(_model_finding(decoder, per_seed, part[part["solver"] == "amd"], rob["tau"].max()))
    seeds = sorted(rob["decoder_seed"].unique())
    evidence = [
        f"Final loss, excess loss over the images' floor (∞: the run flagged a divergence), and NFE per image at "
        f"τ = {fmt(rob['tau'].max())}, {count(rob['n_images'].max())} test images, z0 "
        f"{', '.join(map(str, rob['z0'].unique()))}, each setting the mean over the decoders of seeds {joined(seeds)}:",
        "",
        *table(["decoder", "solver", "setting", "NFE", "final loss", "excess loss", "ended"], rows),
        "",
        "Each seed's decoder:",
        "",
        *table(
            ["decoder", "seed", "AMD range / best", "rk4 range / best", "rk4 counts diverged", "AMD vs rk4, equal NFE"],
            [
                [
                    name(f["decoder"]),
                    f["seed"],
                    pct(f["amd_spread"]),
                    pct(f["rk4_spread"]),
                    f"{f['rk4_diverged']} of {f['rk4_counts']}",
                    _signed_pct(f["matched_ratio"]),
                ]
                for f in findings
            ],
        ),
        "",
        *[
            f"- {name(f['decoder'])} (seeds {joined(f['seeds'])}): AMD range {interval_pct(f['amd'])} of its best "
            f"(part (i) {f['part_i']}); rk4 range {interval_pct(f['rk4'])} (part (ii) "
            f"{'holds' if f['sensitive'] else 'does not hold'}); AMD vs rk4 at equal NFE {interval_pct(f['matched'])} "
            f"(part (iii) {f['part_iii']})."
            for f in models
        ],
    ]
    worst = max(models, key=lambda f: f["amd"][2] if not pd.isna(f["amd"][2]) else f["amd"][0], default=None)
    effect = Effect(
        measure="part (i) of three: AMD's excess-loss range / its best over the seeds, worst decoder model "
        "((ii), (iii) in summary.md)",
        effect=worst["amd"][0] if worst else math.nan,
        ci_low=worst["amd"][1] if worst else math.nan,
        ci_high=worst["amd"][2] if worst else math.nan,
        threshold=ROBUST_SPREAD,
        unit="fraction of the best excess loss",
        supported_when="part (i): upper end ≤ threshold",
    )
    if problems or not models:
        return make(m, ds, evidence, NOT_TESTED, "; ".join(problems) or "No decoder was swept.", effect)
    return make(m, ds, evidence, *_verdict(models), effect)


def _signed_pct(x: float) -> str:
    if pd.isna(x):
        return "n/a"
    return f"{pct(abs(x))} {'above' if x > 0 else 'below'}"


def _model_finding(decoder, per_seed: list[dict], amd: pd.DataFrame, tau) -> dict:
    """Parts (i)-(iii) on one decoder model over its seeds."""
    part_i, amd_interval = bounded([f["amd_spread"] for f in per_seed], ROBUST_SPREAD)
    part_iii, matched = bounded([f["matched_ratio"] for f in per_seed], MATCHED_MARGIN)
    rk4 = [f["rk4_spread"] for f in per_seed]
    finite = np.isfinite(np.asarray(rk4, dtype=float)).all()
    return dict(
        decoder=decoder,
        seeds=[f["seed"] for f in per_seed],
        n_seeds=len(per_seed),
        part_i=part_i,
        amd=amd_interval,
        part_iii=part_iii,
        matched=matched,
        sensitive=sensitive(rk4),
        rk4=paired_interval(rk4) if finite else (math.inf, math.nan, math.nan),
        outliers=outlier_text(decoder, amd, tau),
    )


def _verdict(models: list[dict]) -> tuple[str, str]:
    few = [f["decoder"] for f in models if f["n_seeds"] < 2]
    if few:
        return NOT_TESTED, f"The decoder(s) trained by {names(few)} were swept at fewer than 2 seeds: no interval."
    not_robust = [f["decoder"] for f in models if f["part_i"] == FAILS]
    worse = [f["decoder"] for f in models if f["part_iii"] == FAILS]
    if not_robust:
        deciding = "; ".join(f["outliers"] for f in models if f["decoder"] in not_robust and f["outliers"])
        return (
            NOT_SUPPORTED,
            f"AMD's excess loss varies beyond the bound on the decoders trained by {names(not_robust)} "
            f"(the interval's lower end, or a divergence)" + (f": {deciding}." if deciding else "."),
        )
    if worse:
        return (
            NOT_SUPPORTED,
            f"At equal NFE AMD is more than the margin worse than rk4 on the decoders trained by {names(worse)} "
            "(the interval's lower end).",
        )
    open_parts = [
        f"part ({part}) on the decoders trained by {name(f['decoder'])}, {interval_pct(f[key])} against "
        f"{fmt_param(100 * bound)}%"
        for f in models
        for part, key, bound in (("i", "amd", ROBUST_SPREAD), ("iii", "matched", MATCHED_MARGIN))
        if f[f"part_{part}"] == OPEN
    ]
    if open_parts:
        return NOT_TESTED, "The seeds do not decide: the 95% interval lies across the bound for " + "; ".join(
            open_parts
        ) + "."
    sensitive_models = [f["decoder"] for f in models if f["sensitive"]]
    if not sensitive_models:
        return NOT_TESTED, "rk4 varies by no more than the bound over the swept step counts on any decoder."
    return SUPPORTED, (
        f"Over seeds {joined(models[0]['seeds'])}, AMD varies within the bound on all {len(models)} decoder models, "
        f"rk4 varies beyond it on {len(sensitive_models)}, and AMD is within the margin of rk4 at equal NFE."
    )
