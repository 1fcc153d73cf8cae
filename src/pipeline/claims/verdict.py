"""What a judged claim is: the three verdicts, the decisive effect of a claim and the
:class:`Claim` record that every claim module returns, and :func:`render`, its markdown."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

from .text import dataset_name

VERDICTS = ("supported", "not supported", "not tested at this budget")
SUPPORTED, NOT_SUPPORTED, NOT_TESTED = VERDICTS


@dataclass(frozen=True)
class Effect:
    """The one number a verdict turns on, for claims.csv and the forest plot.

    measure: what the number is, in words; effect, ci_low, ci_high: its value and 95%
    interval (NaN where there is none); threshold, threshold_high: the criterion's bound(s);
    unit: the axis unit; supported_when: the rule, in words."""

    measure: str = ""
    effect: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan
    threshold: float = math.nan
    threshold_high: float = math.nan
    unit: str = ""
    supported_when: str = ""


@dataclass(frozen=True)
class Claim:
    """One claim judged on one dataset.

    number, part: the claim's label ("1" and "a" → "1a"); variant: a model beyond the papers
    judged by the same criterion (its label then reads "1b (GFE-lbfgs)"); title: short,
    suffixed with the dataset; statement: the claim in the papers' words; criterion: fixed
    text written before the numbers; evidence: markdown lines; verdict: one of
    :data:`VERDICTS`; reason: one sentence; dataset: the dataset's code name; effect: the
    decisive number (empty where the claim has none)."""

    number: int
    title: str
    statement: str
    criterion: str
    evidence: list[str]
    verdict: str
    reason: str
    part: str = ""
    variant: str = ""
    dataset: str = ""
    effect: Effect = field(default_factory=Effect)

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict {self.verdict!r} is not one of {VERDICTS}")

    @property
    def label(self) -> str:
        return f"{self.number}{self.part}" + (f" ({self.variant})" if self.variant else "")


def make(meta: dict, dataset, evidence, verdict: str, reason: str, effect: Effect | None = None) -> Claim:
    """A Claim from a claim's fixed text `meta` (number, part, variant, title, statement,
    criterion) and what the data gave; `dataset` None for a claim judged on no dataset."""
    title = meta["title"] if dataset is None else f"{meta['title']} ({dataset_name(dataset)})"
    return Claim(
        meta["number"],
        title,
        meta["statement"],
        meta["criterion"],
        list(evidence),
        verdict,
        reason,
        part=meta.get("part", ""),
        variant=meta.get("variant", ""),
        dataset="" if dataset is None else str(dataset),
        effect=effect or Effect(),
    )


def each(meta: dict, datasets: list, empty_reason: str, one: Callable[[object], Claim]) -> list[Claim]:
    """one(dataset) for every dataset, or one "not tested" claim saying `empty_reason`."""
    if not datasets:
        return [make(meta, None, [], NOT_TESTED, empty_reason)]
    return [one(ds) for ds in datasets]


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
