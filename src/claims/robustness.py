"""Claim 4 (E5's robustness sweep): AMD is robust where fixed-step solvers are sensitive to
the step size. robustness: one row per setting with dataset, decoder_model, solver ('amd' |
'rk4'), dt_init, dt_max, steps, configured, nfe_matched, nfe_mean, loss_mean, excess_mean,
diverged (the run's own flag; a non-finite loss without it is a broken row), tau, n_images, z0."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd

from .integrity import duplicate_problem
from .tables import datasets, select
from .text import count, fmt, fmt_param, joined, name, names, pct, table
from .verdict import NOT_SUPPORTED, NOT_TESTED, SUPPORTED, Claim, Effect, each, make

ROBUST_SPREAD = 0.10  # AMD "varies little": its excess-loss range within 10% of its best
SENSITIVE_SPREAD = 0.10  # rk4 "varies a lot": its range beyond 10% of its best (diverged: infinite)
MATCHED_MARGIN = 0.10  # at equal NFE, AMD's excess loss at most 10% above rk4's
KEYS = ["decoder_model", "solver", "dt_init", "dt_max", "steps"]


def meta() -> dict:
    """The claim's fixed text, written before the numbers."""
    return dict(
        number=4,
        title="AMD is robust to the step size",
        statement="AMD is robust where fixed-step solvers are sensitive to the step size.",
        criterion=(
            "on every swept decoder (the same test images and z0, first-order flow, one τ), with the "
            "excess loss = final loss − the images' entropy floor, and a setting the run flagged as "
            "diverged counted as infinitely bad: (i) AMD varies little — its excess loss over all its "
            f"(dt_init, dt_max) settings spans at most {fmt_param(100 * ROBUST_SPREAD)}% of its best, none "
            "diverged; (ii) rk4 is sensitive — its excess loss over its step counts spans more than "
            f"{fmt_param(100 * SENSITIVE_SPREAD)}% of its best; (iii) at equal cost AMD is not worse — "
            "the configured AMD setting's excess loss is at most "
            f"{fmt_param(100 * MATCHED_MARGIN)}% above that of rk4 at the step count with the same NFE "
            "per image. Every ending of a run counts as finished (reaching τ, AMD's own convergence test, "
            "an evaluation cap): how a solver stops is part of the solver; the table says how each ended. "
            "(i) and (iii) on every decoder and (ii) on at least one → supported; (i) or "
            "(iii) failing on a decoder → not supported; (ii) failing on every decoder → not tested at "
            "this budget (no sensitivity in the swept range). Not tested at this budget when the table "
            "is broken: a configured decoder or setting missing, a duplicated setting, or a non-finite "
            "loss that the run did not flag as diverged."
        ),
    )


def claim_amd_robust(robustness: pd.DataFrame | None, grid: dict | None = None) -> list[Claim]:
    """Claim 4, one per dataset. robustness: the E5 robustness table (see above); grid: the
    configured sweep, {"decoders": [...], "dt_init": [...], "dt_max": [...], "rk4_steps": [...]}
    (a setting missing from the table then makes the claim not tested)."""
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
    """Non-empty when a configured decoder, AMD (dt_init, dt_max) setting with dt_init ≤ dt_max
    (the sweep of src/solver_robustness.py) or rk4 step count is missing from the sweep."""
    for decoder in grid.get("decoders", []):
        part = rob[rob["decoder_model"] == decoder]
        if part.empty:
            return f"decoder {decoder} of the configured {joined(grid['decoders'])} is missing"
        amd, rk4 = part[part["solver"] == "amd"], part[part["solver"] == "rk4"]
        have = set(zip(amd["dt_init"].astype(float), amd["dt_max"].astype(float), strict=True))
        for dt_init, dt_max in itertools.product(grid.get("dt_init", []), grid.get("dt_max", [])):
            if float(dt_init) <= float(dt_max) and (float(dt_init), float(dt_max)) not in have:
                return (
                    f"decoder {decoder} lacks the AMD setting dt_init {fmt_param(dt_init)}, dt_max {fmt_param(dt_max)}"
                )
        counts = set(rk4["steps"].astype(float))
        for steps in grid.get("rk4_steps", []):
            if float(steps) not in counts:
                return f"decoder {decoder} lacks rk4 at {steps} steps of the configured {joined(grid['rk4_steps'])}"
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
                f"{row['decoder_model']}, and the run did not flag it as diverged: a broken row, not a divergence"
            )
    return ""


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


def ending(row) -> str:
    """How a sweep row's flows ended, from its stop_reason and t_mean columns ("" without them)."""
    reason = row.get("stop_reason")
    if not isinstance(reason, str) or not reason:
        return ""
    t = row.get("t_mean")
    return reason if t is None or pd.isna(t) or reason in ("tau", "diverged") else f"{reason}, mean t {fmt(t)}"


def outliers(amd: pd.DataFrame) -> pd.DataFrame:
    """AMD's settings whose excess loss is beyond ROBUST_SPREAD of its best on one decoder."""
    return amd[amd["excess"] > (1 + ROBUST_SPREAD) * float(amd["excess"].min())]


def outlier_text(decoder, amd: pd.DataFrame, tau) -> str:
    """The AMD settings that decide part (i) on a decoder, with how they ended: a verdict that
    turns on AMD's own convergence test says so, as a finding about AMD."""
    out = outliers(amd)
    if out.empty:
        return ""
    settings = "; ".join(
        f"{setting(r)}: excess {fmt(r['excess'])} ({ending(r) or 'ending not recorded'})" for _, r in out.iterrows()
    )
    text = f"on the decoder trained by {name(decoder)}, AMD's best is {fmt(amd['excess'].min())} and {settings}"
    reasons = set(out.get("stop_reason", pd.Series(dtype=object)).dropna())
    if reasons == {"convergence test"}:
        text += (
            f" — these runs stopped on AMD's own convergence test (a per-step loss-slope tolerance, which small steps "
            f"meet early) before τ = {fmt(tau)}, neither diverging nor hitting an evaluation cap: a property of AMD "
            "as specified"
        )
    return text


def finding(decoder, amd: pd.DataFrame, rk4: pd.DataFrame) -> dict:
    """Parts (i)-(iii) on one decoder: AMD's and rk4's spreads and the matched-NFE ratio."""
    configured, matched = amd[amd["configured"]], rk4[rk4["nfe_matched"]]
    amd_excess, rk4_excess = float(configured["excess"].iloc[0]), float(matched["excess"].iloc[0])
    ratio = amd_excess / rk4_excess - 1 if math.isfinite(rk4_excess) and rk4_excess > 0 else -math.inf
    return dict(
        decoder=decoder,
        amd_spread=spread(amd["excess"]),
        rk4_spread=spread(rk4["excess"]),
        rk4_diverged=int((~np.isfinite(rk4["excess"].to_numpy(dtype=float))).sum()),
        rk4_counts=len(rk4),
        matched_ratio=ratio,
    )


def _judge(m, rob: pd.DataFrame, ds, grid: dict) -> Claim:
    problem = duplicate_problem(rob, KEYS) or grid_problem(rob, grid) or finite_problem(rob)
    if problem:
        return make(
            m,
            ds,
            [],
            NOT_TESTED,
            f"In E5's robustness table (e5_robustness.csv) {problem}; no verdict is drawn from it.",
        )
    rob = rob.assign(excess=np.where(diverged(rob), math.inf, rob["excess_mean"].astype(float)))
    rows, findings, problems = [], [], []
    for decoder, part in rob.groupby("decoder_model", sort=True):
        amd, rk4 = part[part["solver"] == "amd"], part[part["solver"] == "rk4"]
        rows += [
            [
                name(decoder),
                r["solver"],
                setting(r),
                fmt(r["nfe_mean"]),
                fmt(r["loss_mean"]),
                fmt(r["excess"]),
                ending(r) or "n/a",
            ]
            for _, r in pd.concat([amd, rk4]).iterrows()
        ]
        if amd.empty or len(rk4) < 2 or amd["configured"].sum() != 1 or rk4["nfe_matched"].sum() != 1:
            problems.append(
                f"decoder {name(decoder)} lacks AMD settings, two rk4 counts or the configured/matched pair"
            )
            continue
        findings.append(dict(finding(decoder, amd, rk4), outliers=outlier_text(decoder, amd, rob["tau"].max())))
    evidence = [
        f"Final loss, excess loss over the images' floor (∞: the run flagged a divergence), and NFE per image at "
        f"τ = {fmt(rob['tau'].max())}, {count(rob['n_images'].max())} test images, z0 "
        f"{', '.join(map(str, rob['z0'].unique()))}:",
        "",
        *table(["decoder", "solver", "setting", "NFE", "final loss", "excess loss", "ended"], rows),
        "",
    ]
    for f in findings:
        evidence.append(
            f"- {name(f['decoder'])}: AMD range {pct(f['amd_spread'])} of its best; rk4 range {pct(f['rk4_spread'])} "
            f"({f['rk4_diverged']} of {f['rk4_counts']} counts diverged); at equal NFE AMD is "
            f"{pct(abs(f['matched_ratio']))} {'above' if f['matched_ratio'] > 0 else 'below'} rk4."
        )
    spreads = [f["amd_spread"] for f in findings]
    effect = Effect(
        measure="part (i) of three: AMD's excess-loss range / its best, worst decoder ((ii), (iii) in summary.md)",
        effect=max(spreads) if spreads else math.nan,
        threshold=ROBUST_SPREAD,
        unit="fraction of the best excess loss",
        supported_when="part (i): effect ≤ threshold",
    )
    if problems or not findings:
        return make(m, ds, evidence, NOT_TESTED, "; ".join(problems) or "No decoder was swept.", effect)
    return make(m, ds, evidence, *_verdict(findings), effect)


def _verdict(findings: list[dict]) -> tuple[str, str]:
    not_robust = [f["decoder"] for f in findings if not f["amd_spread"] <= ROBUST_SPREAD]
    worse = [f["decoder"] for f in findings if not f["matched_ratio"] <= MATCHED_MARGIN]
    sensitive = [f["decoder"] for f in findings if f["rk4_spread"] > SENSITIVE_SPREAD]
    if not_robust:
        deciding = "; ".join(f["outliers"] for f in findings if f["decoder"] in not_robust and f.get("outliers"))
        return (
            NOT_SUPPORTED,
            f"AMD's excess loss varies beyond the bound on the decoder(s) trained by {names(not_robust)}"
            + (f": {deciding}." if deciding else "."),
        )
    if worse:
        return (
            NOT_SUPPORTED,
            f"At equal NFE AMD is more than the margin worse than rk4 on the decoder(s) trained by {names(worse)}.",
        )
    if not sensitive:
        return NOT_TESTED, "rk4 varies by no more than the bound over the swept step counts on any decoder."
    return SUPPORTED, (
        f"AMD varies within the bound on all {len(findings)} decoders, rk4 varies beyond it on {len(sensitive)}, "
        "and AMD is within the margin of rk4 at equal NFE."
    )
