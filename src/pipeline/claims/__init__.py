"""Claim verdicts from the result tables: small pure functions, no file I/O.

Each ``claim_*`` function takes result tables (pandas DataFrames; extra columns are
ignored) and returns one :class:`Claim` per dataset found in them, with a verdict that is
exactly one of :data:`VERDICTS`. The criterion of every claim is fixed text written before
the numbers; the verdict follows from the numbers alone. Every table first passes the
integrity gate (:mod:`claims.integrity`): a table or model that is missing, or a table that
is not the configured experiment whole, gives "not tested at this budget" with a reason
naming the table, the run and the check, never an error and never a verdict.

The modules, one concept each:

- :mod:`claims.verdict`: the verdicts, :class:`Claim`, :class:`Effect` and :func:`render`;
- :mod:`claims.text`, :mod:`claims.stats`, :mod:`claims.tables`: formatting, the paired
  t-interval, pandas helpers;
- :mod:`claims.integrity`: the gate every claim passes through;
- :mod:`claims.plateau`: the data-efficiency claims' gate (the AE on a verified plateau);
- one module per claim: :mod:`claims.few_images` (1a), :mod:`claims.competitive` (1b, for
  GFE-amd and GFE-lbfgs), :mod:`claims.parameters` (1c), :mod:`claims.adjoint` (2),
  :mod:`claims.second_order` (3), :mod:`claims.robustness` (4).

Imported by ``src/scripts/summarize.py``, which writes :func:`render`'s lines to the summary.
"""

from __future__ import annotations

from .adjoint import claim_adjoint, relative_at, val_floor
from .competitive import claim_competitive, test_floor
from .few_images import claim_few_images
from .integrity import LEARNED_FRACTION, table_problem
from .parameters import claim_half_parameters
from .plateau import CONTINUATION_BOUND
from .robustness import MATCHED_MARGIN, ROBUST_SPREAD, SENSITIVE_SPREAD, claim_amd_robust
from .second_order import claim_second_order
from .stats import interval_problem, paired_interval
from .text import MINUS, fmt, fmt_interval, fmt_param, mean_std, table
from .verdict import NOT_SUPPORTED, NOT_TESTED, SUPPORTED, VERDICTS, Claim, Effect, render

BEYOND_THE_PAPERS_1B = "gfe_lbfgs"

__all__ = [
    "BEYOND_THE_PAPERS_1B",
    "CONTINUATION_BOUND",
    "LEARNED_FRACTION",
    "MATCHED_MARGIN",
    "MINUS",
    "NOT_SUPPORTED",
    "NOT_TESTED",
    "ROBUST_SPREAD",
    "SENSITIVE_SPREAD",
    "SUPPORTED",
    "VERDICTS",
    "Claim",
    "Effect",
    "all_claims",
    "claim_adjoint",
    "claim_amd_robust",
    "claim_competitive",
    "claim_few_images",
    "claim_half_parameters",
    "claim_second_order",
    "fmt",
    "fmt_interval",
    "fmt_param",
    "interval_problem",
    "mean_std",
    "paired_interval",
    "relative_at",
    "render",
    "table",
    "table_problem",
    "test_floor",
    "val_floor",
]


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
    continuation=None,
    grid: dict | None = None,
) -> list[Claim]:
    """Claims 1a, 1b, 1b (GFE-lbfgs), 1c, 2, 3, 4 in that order, one per dataset each.

    e1, e3_heldout, e4_heldout, e4_train, e5, e3_train, robustness, floors, continuation:
    the tables e1_data_efficiency, e3_heldout, e4_heldout, e4_adjoint_ablation,
    e5_encoding_convergence, e3_solver_comparison, e5_robustness, data_floors and
    e1_continuation (a missing one makes the claims that need it not tested); config_hint:
    the config that tests what this budget cannot; seeds: the configured seeds of "e1",
    "e3" and "e4"; grid: the rest of the configured experiment, {"e1": {"sizes": {model:
    [N, ...]}}, "e3": {"steps": S}, "e4": {"steps": S}, "e5": {"decoders": [...],
    "dt_init": [...], "dt_max": [...], "rk4_steps": [...]}}. Without seeds or grid, every
    model must have the seeds any model has and every run the same last step."""
    seeds, grid = seeds or {}, grid or {}
    sizes = grid.get("e1", {}).get("sizes")
    e1_args = dict(seeds=seeds.get("e1"), continuation=continuation, sizes=sizes)
    return [
        *claim_few_images(e1, config_hint, **e1_args),
        *claim_competitive(e1, floors, config_hint, **e1_args),
        *claim_competitive(e1, floors, config_hint, model=BEYOND_THE_PAPERS_1B, **e1_args),
        *claim_half_parameters(e1),
        *claim_adjoint(e4_heldout, e4_train, floors, seeds=seeds.get("e4"), step=grid.get("e4", {}).get("steps")),
        *claim_second_order(
            e3_heldout, e5, seeds=seeds.get("e3"), train=e3_train, step=grid.get("e3", {}).get("steps")
        ),
        *claim_amd_robust(robustness, grid.get("e5")),
    ]
