"""Unit tests of src/pipeline/claims.py on small hand-made result tables: for every claim a supported,
a not-supported and a not-tested case, plus the interval and formatting helpers."""

import itertools
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from pipeline import claims  # noqa: E402  (the workflow's scripts live in src/, outside the package)
from pipeline.claims import NOT_SUPPORTED, NOT_TESTED, SUPPORTED, integrity, stats  # noqa: E402
from pipeline.claims import robustness as robust  # noqa: E402

M = "\u2212"  # the minus sign the evidence uses


# ---------------------------------------------------------------- table builders


def e1_frame(losses, dataset="mnist", capped=(), params=None):
    """losses: {(model, N): [test loss of seed 0, 1, ...]}; capped: {(model, N, seed)} stopped at the cap."""
    params = params or {"ae": 1000, "gfe_amd": 500, "gfe_rk4": 500, "gfe_lbfgs": 500}
    return pd.DataFrame(
        [
            dict(
                dataset=dataset,
                model=model,
                train_size=n,
                seed=seed,
                stop_reason="cap" if (model, n, seed) in capped else "plateau",
                steps=100,
                best_step=80 + seed,
                best_images_seen=8000,
                test_loss_mean=loss,
                total_params=params[model],
            )
            for (model, n), values in losses.items()
            for seed, loss in enumerate(values)
        ]
    )


def continuation(e1, gains=None, models=("ae",)):
    """e1_continuation.csv for the E1 table `e1`: seed 0 of each of `models` at every N it has,
    with gain 0.1% (gains: {(model, N): gain} overrides)."""
    gains = gains or {}
    runs = e1[e1["model"].isin(models) & (e1["seed"] == 0)]
    return pd.DataFrame(
        [
            dict(
                dataset=r.dataset,
                model=r.model,
                train_size=r.train_size,
                seed=0,
                stop_reason=r.stop_reason,
                stop_step=100,
                best_at_stop=0.3,
                best_at_stop_again=0.3,
                continued_to=200,
                best_continued=0.3 * (1 - gains.get((r.model, r.train_size), 0.001)),
                gain=gains.get((r.model, r.train_size), 0.001),
            )
            for r in runs.itertuples()
        ]
    )


def few(e1, cont=None, **kw):
    """Claim 1a with the AE's plateau verified at every N (unless `cont` is given)."""
    return only(
        claims.claim_few_images(e1, "config/paper.yaml", continuation=continuation(e1) if cont is None else cont, **kw)
    )


def e1_few(gfe_small, ae_small=(0.30, 0.31, 0.32), **kw):
    """ae alone at N = 5 and another model at N = 1 (both ignored); both models at 10 and 1000."""
    return e1_frame(
        {
            ("ae", 5): [0.5, 0.5],
            ("gfe_rk4", 1): [0.9, 0.9],
            ("ae", 10): list(ae_small),
            ("gfe_amd", 10): list(gfe_small),
            ("ae", 1000): [0.1, 0.1, 0.1],
            ("gfe_amd", 1000): [0.1, 0.1, 0.1],
        },
        **kw,
    )


def e1_large(gfe_large, ae_large=(0.100, 0.102, 0.104), **kw):
    """Both models at N = 10 (GFE far better there) and N = 1000."""
    return e1_frame(
        {
            ("ae", 10): [0.3, 0.3, 0.3],
            ("gfe_amd", 10): [0.2, 0.2, 0.2],
            ("ae", 1000): list(ae_large),
            ("gfe_amd", 1000): list(gfe_large),
        },
        **kw,
    )


def e4_frames(rel, steps=(0, 50, 100), dataset="mnist", approx="gfe_rk4", adjoint="gfe_adjoint", extra=False):
    """Held-out loss with approx = adjoint · (1 + rel[seed]); with `extra`, seed 0 of the approximate model
    alone has one more validation step (150), so the other runs look truncated."""
    held, train = [], []
    for seed, r in enumerate(rel):
        for step in steps:
            base = 1.0 / (1 + step / 50)
            held += [
                dict(dataset=dataset, model=adjoint, seed=seed, step=step, loss_mean=base),
                dict(dataset=dataset, model=approx, seed=seed, step=step, loss_mean=base * (1 + r)),
            ]
        for step, cos in zip((1, 2, 3), (0.9, 0.95, 0.99), strict=True):
            train += [
                dict(dataset=dataset, model=adjoint, seed=seed, step=step, seconds=0.3, grad_cosine=cos),
                dict(dataset=dataset, model=approx, seed=seed, step=step, seconds=0.1, grad_cosine=np.nan),
            ]
    if extra:
        held.append(dict(dataset=dataset, model=approx, seed=0, step=150, loss_mean=10.0))
    return pd.DataFrame(held), pd.DataFrame(train)


def e3_heldout(delta, steps=(0, 10, 20, 30), dataset="mnist", extra=False):
    """gfe_2nd = gfe_rk4 + delta[seed] after step 0; with `extra`, gfe_rk4 seed 0 alone has step 40."""
    rows = []
    for seed, d in enumerate(delta):
        for step in steps:
            first = 1 - 0.01 * step
            rows += [
                dict(dataset=dataset, model="gfe_rk4", seed=seed, step=step, loss_mean=first),
                dict(
                    dataset=dataset, model="gfe_2nd", seed=seed, step=step, loss_mean=first + (d if step > 0 else 0.0)
                ),
            ]
    if extra:
        rows.append(dict(dataset=dataset, model="gfe_rk4", seed=0, step=40, loss_mean=99.0))
    return pd.DataFrame(rows)


def curve(panel, solver, order, steps, tau, losses, nfe=None, decoder="gfe_amd", dataset="mnist"):
    t = np.linspace(0, tau, len(losses))
    return pd.DataFrame(
        dict(
            dataset=dataset,
            panel=panel,
            decoder_model=decoder,
            solver=solver,
            order=order,
            steps=float(steps) if steps is not None else np.nan,
            tau=float(tau),
            t=t,
            nfe_mean=nfe if nfe is not None else np.linspace(0, 4 * (steps or 0), len(losses)),
            loss_mean=losses,
        )
    )


def e5_amd(rk4_finals, amd_final, with_amd=True, dataset="mnist"):
    """Common decoder: first-order rk4 at τ = 10 with 10, 20, 40 ... steps ending at rk4_finals, AMD at τ = 10
    ending at amd_final after 37 NFE; distractors: rk4 at τ = 5, second order at τ = 10, own-decoder rk4."""
    parts = [
        curve("common decoder", "rk4", 1, 10 * 2**i, 10, [1.0, 0.6, f], dataset=dataset)
        for i, f in enumerate(rk4_finals)
    ]
    parts += [
        curve("common decoder", "rk4", 1, 10, 5, [1.0, 0.9], dataset=dataset),
        curve("common decoder", "rk4", 1, 20, 5, [1.0, 0.1], dataset=dataset),
        curve("common decoder", "rk4", 2, 10, 10, [1.0, 0.01], dataset=dataset),
        curve("own decoder", "rk4", 1, 80, 10, [1.0, 0.01], dataset=dataset),
    ]
    if with_amd:
        parts.append(
            curve("common decoder", "amd", 1, None, 10, [1.0, 0.5, amd_final], nfe=[0, 10, 37], dataset=dataset)
        )
    return pd.concat(parts, ignore_index=True)


def e5_order(dataset="mnist"):
    """Own decoder: order 1 (gfe_rk4) and order 2 (gfe_2nd) over t = 0, 2, 4, 6, 8; common decoder rk4 curves."""
    return pd.concat(
        [
            curve("own decoder", "rk4", 1, 4, 8, [1.0, 0.8, 0.6, 0.5, 0.45], decoder="gfe_rk4", dataset=dataset),
            curve("own decoder", "rk4", 2, 4, 8, [1.0, 0.7, 0.5, 0.4, 0.35], decoder="gfe_2nd", dataset=dataset),
            curve("common decoder", "rk4", 1, 4, 8, [1.0, 0.6, 0.3], dataset=dataset),
            curve("common decoder", "rk4", 2, 4, 8, [1.0, 0.5, 0.25], dataset=dataset),
            curve("common decoder", "amd", 1, None, 8, [1.0, 0.2], nfe=[0, 30], dataset=dataset),
        ],
        ignore_index=True,
    )


def only(result):
    assert len(result) == 1
    return result[0]


# ---------------------------------------------------------------- helpers


def test_paired_interval_is_the_student_t_interval():
    mean, low, high = claims.paired_interval([1.0, 2.0, 3.0])  # sd 1, n 3: half width t_{.975,2}/√3
    assert (mean, low, high) == pytest.approx((2.0, 2 - 2.4841377117503303, 2 + 2.4841377117503303))
    assert claims.paired_interval(pd.Series([1.0, 2.0, 3.0]), level=0.90)[1:] == pytest.approx(
        (2 - 1.6858544608470485, 2 + 1.6858544608470485)
    )


def test_paired_interval_small_samples():
    mean, low, high = claims.paired_interval([0.25])
    assert mean == 0.25 and math.isnan(low) and math.isnan(high)
    assert all(math.isnan(x) for x in claims.paired_interval([]))
    assert claims.paired_interval([0.5, 0.5, 0.5]) == pytest.approx((0.5, 0.5, 0.5))


def test_number_formatting():
    assert claims.fmt(-0.0123) == f"{M}0.01230"
    assert claims.fmt(1234.0) == "1234" and claims.fmt(0.5) == "0.5000"
    assert claims.fmt(float("nan")) == "n/a" and claims.fmt(None) == "n/a"
    assert claims.fmt_interval(-0.0123, -0.015, -0.0096) == f"{M}0.01230 [{M}0.01500, {M}0.009600]"
    assert claims.fmt_interval(1.0, math.nan, math.nan) == "1.000 [n/a]"
    assert claims.mean_std([1.0, 3.0]) == "2.000 ± 1.414" and claims.mean_std([2.0]) == "2.000 ± n/a"


def test_claim_rejects_an_unknown_verdict():
    with pytest.raises(ValueError):
        claims.Claim(1, "t", "s", "c", [], "maybe", "r")


def test_render_layout():
    c = claims.Claim(
        1,
        "few images (mnist)",
        "GFE wins.",
        "interval below 0.",
        ["| a |", "|---|"],
        SUPPORTED,
        "It is below.",
        part="a",
    )
    assert claims.render([c]) == [
        "## Claim 1a: few images (mnist)",
        "",
        "**Claim (papers):** GFE wins.",
        "",
        "**Criterion:** interval below 0.",
        "",
        "| a |",
        "|---|",
        "",
        "**Verdict: supported** — It is below.",
        "",
    ]


# ---------------------------------------------------------------- claim 1a


def test_few_images_supported_at_smallest_common_size():
    e1 = e1_few([0.20, 0.215, 0.21])
    c = few(e1)
    assert (c.label, c.verdict, c.title) == ("1a", SUPPORTED, "lower loss from far fewer training images (MNIST)")
    assert c.dataset == "mnist"
    assert "N = 10" in c.reason and "below 0" in c.reason  # N = 5 (ae only) and the gfe_rk4 cap are ignored
    interval = claims.fmt_interval(*claims.paired_interval([-0.10, -0.095, -0.11]))
    assert interval in c.reason and f"Smallest N = 10, 3 paired seeds: GFE-amd − AE = {interval}." in c.evidence
    rows = [line for line in c.evidence if line.startswith("| ")][1:]
    assert [r.split(" | ")[0] for r in rows] == ["| 10", "| 1000"]  # sizes with both models
    assert rows[0].startswith("| 10 | 0.3100 ± 0.01000 | 0.2083 ± 0.007638 | ")
    assert rows[0].endswith("| 3/3 | 3/3 | 81 | 81 | yes |")
    assert (c.effect.effect, c.effect.ci_high, c.effect.threshold) == pytest.approx(
        (claims.paired_interval([-0.10, -0.095, -0.11])[0], claims.paired_interval([-0.10, -0.095, -0.11])[2], 0.0)
    )


@pytest.mark.parametrize("gfe, why", [([0.35, 0.37, 0.36], "entirely above 0"), ([0.25, 0.36, 0.33], "contains 0")])
def test_few_images_not_supported(gfe, why):
    c = few(e1_few(gfe))
    assert c.verdict == NOT_SUPPORTED and why in c.reason


def test_few_images_not_tested_when_an_ae_run_did_not_plateau():
    c = few(e1_few([0.20, 0.215, 0.21], capped={("ae", 10, 1)}))
    assert c.verdict == NOT_TESTED and "1 of 3 AE runs at N = 10 (seed 1) stopped at their step cap" in c.reason
    assert "`config/paper.yaml`" in c.reason
    assert any("| 2/3 | 3/3 |" in line and line.endswith("| no |") for line in c.evidence)


def test_a_capped_gfe_run_supports_but_cannot_refute():
    """A GFE run stopped at its budget is at or above its own plateau: better than the AE, it
    supports the claim; not better, it decides nothing."""
    c = few(e1_few([0.20, 0.215, 0.21], capped={("gfe_amd", 10, 1)}))
    assert c.verdict == SUPPORTED and "1 of 3 GFE-amd runs at N = 10 stopped at their step budget" in c.reason
    assert any("holds a fortiori" in line for line in c.evidence) and "a fortiori" in c.criterion
    c = few(e1_few([0.35, 0.37, 0.36], capped={("gfe_amd", 10, 1)}))
    assert c.verdict == NOT_TESTED and "a capped run can support the claim but not refute it" in c.reason


def test_few_images_not_tested_with_one_seed_or_a_missing_model():
    one = e1_frame({("ae", 10): [0.3], ("gfe_amd", 10): [0.2]})
    c = few(one)
    assert c.verdict == NOT_TESTED and "At N = 10 only 1 seed(s) pair" in c.reason
    c = few(e1_frame({("ae", 10): [0.3, 0.3]}))
    assert c.verdict == NOT_TESTED and "no GFE-amd runs" in c.reason and c.evidence == []


def test_few_images_one_verdict_per_dataset():
    e1 = pd.concat([e1_few([0.20, 0.215, 0.21]), e1_few([0.35, 0.37, 0.36], dataset="fmnist")])
    result = claims.claim_few_images(e1, "config/paper.yaml", continuation=continuation(e1))
    assert [(c.title, c.verdict) for c in result] == [
        ("lower loss from far fewer training images (fmnist)", NOT_SUPPORTED),
        ("lower loss from far fewer training images (MNIST)", SUPPORTED),
    ]


# ---------------------------------------------------------------- the plateau gate of claims 1a and 1b


def test_a_continuation_beyond_the_bound_leaves_the_size_not_tested():
    e1 = e1_few([0.20, 0.215, 0.21])
    c = few(e1, continuation(e1, {("ae", 10): 0.0083}))
    assert c.verdict == NOT_TESTED
    assert "the AE continuation at N = 10, seed 0, lowers the best validation loss by 0.83% > 0.5%" in c.reason
    assert "- N = 10: the AE continuation at N = 10, seed 0, lowers the best validation loss by 0.83% > 0.5%." in (
        c.evidence
    )
    assert few(e1, continuation(e1, {("ae", 10): 0.005})).verdict == SUPPORTED  # the bound itself passes


def test_any_model_s_continuation_counts_at_its_size():
    e1 = pd.concat([e1_few([0.20, 0.215, 0.21]), e1_frame({("gfe_lbfgs", 10): [0.2, 0.2, 0.2]})])
    cont = continuation(e1, {("gfe_lbfgs", 10): 0.02}, models=("ae", "gfe_lbfgs"))
    c = few(e1, cont)
    assert c.verdict == NOT_TESTED and "the GFE-lbfgs continuation at N = 10, seed 0, lowers" in c.reason


@pytest.mark.parametrize(
    "cont, words",
    [
        (None, "there is no continuation table (e1_continuation.csv), so the AE's plateau is not verified"),
        ("no ae at 10", "no AE continuation at N = 10 verifies its plateau"),
        ("nan gain", "the AE continuation at N = 10, seed 0, has no finite gain (nan)"),
    ],
)
def test_an_unverified_plateau_is_not_tested(cont, words):
    e1 = e1_few([0.20, 0.215, 0.21])
    table = continuation(e1)
    if cont == "no ae at 10":
        table = table[table["train_size"] != 10]
    elif cont == "nan gain":
        table.loc[table["train_size"] == 10, "gain"] = math.nan
    c = only(claims.claim_few_images(e1, "config/paper.yaml", continuation=None if cont is None else table))
    assert c.verdict == NOT_TESTED and words in c.reason, c.reason


# ---------------------------------------------------------------- claim 1b


def floors(test=0.05, dataset="mnist", val=0.9):
    """A data_floors table: the test floor claim 1b uses, and the validation floor claim 2 uses."""
    return pd.DataFrame(
        [
            dict(dataset=dataset, split="test", floor_mean=test),
            dict(dataset=dataset, split="val", floor_mean=val),
        ]
    )


def adjoint(held, train, val=0.0, **kw):
    """Claim 2 with a validation floor (0: excess loss = loss)."""
    return only(claims.claim_adjoint(held, train, floors(val=val), **kw))


def competitive(e1, cont=None, **kw):
    """Claim 1b with the AE's plateau verified at every N (unless `cont` is given)."""
    cont = continuation(e1) if cont is None else cont
    return only(claims.claim_competitive(e1, floors(), "config/paper.yaml", continuation=cont, **kw))


def test_competitive_supported_within_the_margin_of_excess_loss():
    c = competitive(e1_large([0.101, 0.1025, 0.1045]))
    # AE excess loss at N = 1000: mean(0.100, 0.102, 0.104) - 0.05 = 0.052; margin 10% of it
    diff = claims.paired_interval([0.001, 0.0005, 0.0005])
    assert (c.label, c.verdict) == ("1b", SUPPORTED) and "N = 1000" in c.reason and "0.005200" in c.reason
    assert f"excess-loss difference GFE-amd − AE = {claims.fmt_interval(*diff)}; margin 0.005200." in c.evidence[-1]
    # the per-N table: both sizes, excess losses (loss - the test floor, not the validation one)
    assert any(row.startswith("| 10 | 0.2500 ± 0 | 0.1500 ± 0 |") for row in c.evidence)
    assert c.effect.threshold == pytest.approx(0.0052) and c.effect.ci_high == pytest.approx(diff[2])


def test_competitive_clearly_better_is_supported():
    c = competitive(e1_large([0.08, 0.081, 0.083]))
    assert c.verdict == SUPPORTED and "clearly better" in c.reason


@pytest.mark.parametrize("gfe", [[0.12, 0.1234, 0.1238], [0.100, 0.11016, 0.10816]])
def test_competitive_not_supported_above_the_margin(gfe):
    """Worse by ~0.02 (38% of the AE's excess loss), or an interval too wide to show it."""
    c = competitive(e1_large(gfe))
    assert c.verdict == NOT_SUPPORTED and "exceeds the margin 0.005200" in c.reason


def test_competitive_capped_gfe_supports_but_cannot_refute():
    c = competitive(e1_large([0.101, 0.1025, 0.1045], capped={("gfe_amd", 1000, 0)}))
    assert c.verdict == SUPPORTED and "1 of 3 GFE-amd runs at N = 1000 stopped at their step budget" in c.reason
    c = competitive(e1_large([0.12, 0.1234, 0.1238], capped={("gfe_amd", 1000, 0)}))
    assert c.verdict == NOT_TESTED and "exceeds the margin" in c.reason and "not refute it" in c.reason


def test_competitive_judged_on_excess_not_raw_loss():
    """+2% of raw loss is +4% of the excess loss with a floor at half the loss: a 3% margin on raw
    loss would pass it; 10% of the excess passes it too, but 3% of the excess does not."""
    gfe = [0.102, 0.10404, 0.10608]
    assert competitive(e1_large(gfe)).verdict == SUPPORTED
    assert competitive(e1_large(gfe), margin=0.03).verdict == NOT_SUPPORTED


def test_competitive_not_tested_below_the_smallest_deciding_n():
    e1 = e1_frame({("ae", 10): [0.3, 0.3, 0.3], ("gfe_amd", 10): [0.2, 0.21, 0.2]})
    c = competitive(e1)
    assert c.verdict == NOT_TESTED and "No N ≥ 1000 has runs of both models" in c.reason
    assert "`config/paper.yaml` tests the claim" in c.reason
    assert competitive(e1, min_n=10).verdict == SUPPORTED


def test_competitive_takes_the_largest_n_that_passes_the_gate():
    losses = {
        ("ae", 1000): [0.100, 0.102, 0.104],
        ("gfe_amd", 1000): [0.101, 0.1025, 0.1045],
        ("ae", 3000): [0.09, 0.09, 0.09],
        ("gfe_amd", 3000): [0.2, 0.2, 0.2],
    }
    e1 = e1_frame(losses, capped={("ae", 3000, 1)})
    c = competitive(e1)
    assert c.verdict == SUPPORTED and "At N = 1000" in c.reason
    assert "- N = 3000: 1 of 3 AE runs at N = 3000 (seed 1) stopped at their step cap, not on a plateau." in c.evidence
    uncapped = e1_frame(losses)
    c = competitive(uncapped, continuation(uncapped, {("ae", 3000): 0.02}))
    assert c.verdict == SUPPORTED and "At N = 1000" in c.reason
    c = competitive(uncapped, continuation(uncapped, {("ae", 3000): 0.02, ("ae", 1000): 0.01}))
    assert c.verdict == NOT_TESTED and c.reason.startswith("No N ≥ 1000 passes the gate: at N = 3000 the AE")
    assert "at N = 1000 the AE continuation at N = 1000, seed 0, lowers the best validation loss by 1.00%" in c.reason
    # a cap at a smaller N does not matter for the largest N
    assert competitive(e1_large([0.101, 0.1025, 0.1045], capped={("ae", 10, 0)})).verdict == SUPPORTED


def test_competitive_without_a_floor_is_not_tested():
    e1 = e1_large([0.101, 0.1025, 0.1045])
    c = only(claims.claim_competitive(e1, floors(dataset="cifar10"), "x.yaml", continuation=continuation(e1)))
    assert c.verdict == NOT_TESTED and "no test floor for mnist" in c.reason


def test_claim_1b_is_judged_for_gfe_lbfgs_too_at_its_own_largest_n():
    """GFE-amd at N ≤ 1000 (its budget), GFE-lbfgs to N = 10,000: each at its largest N that passes
    the gate, with the same margin; both rows labelled apart."""
    e1 = e1_frame(
        {
            ("ae", 1000): [0.100, 0.102, 0.104],
            ("gfe_amd", 1000): [0.101, 0.1025, 0.1045],
            ("ae", 10000): [0.08, 0.081, 0.082],
            ("gfe_lbfgs", 1000): [0.09, 0.091, 0.092],
            ("gfe_lbfgs", 10000): [0.079, 0.0805, 0.0815],
        },
        params={"ae": 1000, "gfe_amd": 500, "gfe_lbfgs": 500},
    )
    cont = continuation(e1, models=("ae", "gfe_lbfgs"))
    amd, lbfgs = (competitive(e1, cont, model=m) for m in ("gfe_amd", "gfe_lbfgs"))
    assert (amd.label, amd.verdict) == ("1b", SUPPORTED) and "At N = 1000" in amd.reason
    assert (lbfgs.label, lbfgs.verdict) == ("1b (GFE-lbfgs)", SUPPORTED) and "At N = 10000" in lbfgs.reason
    assert "Beyond the papers" in lbfgs.statement and "GFE-lbfgs − AE" in lbfgs.criterion
    rows = [line for line in lbfgs.evidence if line.startswith("| 1")]
    assert [r.split(" | ")[0] for r in rows] == ["| 1000", "| 10000"]
    result = claims.all_claims(e1, *[pd.DataFrame()] * 4, "config/paper.yaml", floors=floors(), continuation=cont)
    assert [c.label for c in result][:3] == ["1a", "1b", "1b (GFE-lbfgs)"]
    assert result[2].verdict == SUPPORTED


# ---------------------------------------------------------------- claim 1c


@pytest.mark.parametrize(
    "gfe_params, verdict, ratio",
    [
        (500, SUPPORTED, "0.5000"),
        (450, SUPPORTED, "0.4500"),  # each bound, just inside and just outside
        (449, NOT_SUPPORTED, "0.4490"),
        (550, SUPPORTED, "0.5500"),
        (551, NOT_SUPPORTED, "0.5510"),
        (800, NOT_SUPPORTED, "0.8000"),
    ],
)
def test_half_parameters(gfe_params, verdict, ratio):
    e1 = e1_frame({("ae", 10): [0.3, 0.3], ("gfe_amd", 10): [0.2, 0.2]}, params={"ae": 1000, "gfe_amd": gfe_params})
    c = only(claims.claim_half_parameters(e1))
    assert (c.label, c.verdict) == ("1c", verdict) and ratio in c.reason
    assert c.evidence == [f"Total parameters: AE 1000, GFE-amd {gfe_params}; ratio GFE-amd/AE = {ratio}."]


def test_half_parameters_not_tested_without_the_autoencoder():
    c = only(claims.claim_half_parameters(e1_frame({("gfe_amd", 10): [0.2]})))
    assert c.verdict == NOT_TESTED and "no AE parameter count" in c.reason


def test_half_parameters_needs_one_count_per_model():
    e1 = e1_frame({("ae", 10): [0.3, 0.3, 0.3], ("gfe_amd", 10): [0.2, 0.2, 0.2]})
    e1.loc[(e1["model"] == "gfe_amd") & (e1["seed"] == 2), "total_params"] = 520
    c = only(claims.claim_half_parameters(e1))
    assert c.verdict == NOT_TESTED
    assert "the GFE-amd runs do not all have one parameter count: 520 at N = 10, seed 2, against 500" in c.reason
    e1.loc[(e1["model"] == "gfe_amd") & (e1["seed"] == 2), "total_params"] = math.nan
    c = only(claims.claim_half_parameters(e1))
    assert c.verdict == NOT_TESTED and "seed 2, has no parameter count" in c.reason


# ---------------------------------------------------------------- claim 2


def test_adjoint_supported_at_the_last_common_step():
    held, train = e4_frames([0.01, 0.02, 0.015])
    c = adjoint(held, train)
    assert (c.label, c.verdict) == ("2", SUPPORTED) and "At the last step 100 (3 paired seeds)" in c.reason
    assert claims.fmt_interval(*claims.paired_interval([0.01, 0.02, 0.015])) in c.reason
    rows = [line for line in c.evidence if line.startswith("| ")][1:]
    assert [r.split(" | ")[0] for r in rows] == ["| 0", "| 50", "| 100"]  # step 150 is not common
    assert "over 9 steps of the GFE-adjoint runs: mean 0.9467, min 0.9000." in c.evidence[-2]
    assert c.evidence[-1] == "Seconds per iteration: GFE-rk4 0.1000, GFE-adjoint 0.3000 (GFE-adjoint/GFE-rk4 = 3.000)."


@pytest.mark.parametrize("rel, why", [([0.2, 0.25, 0.22], "entirely above 0.1"), ([0.0, 0.1, 0.05], "too wide")])
def test_adjoint_not_supported(rel, why):
    c = adjoint(*e4_frames(rel))
    assert c.verdict == NOT_SUPPORTED and why in c.reason


@pytest.mark.parametrize(
    "rel, verdict",
    [([0.08, 0.09, 0.085], SUPPORTED), ([0.083, 0.093, 0.088], NOT_SUPPORTED)],  # upper ends 0.0974, 0.1004
)
def test_adjoint_at_the_margin(rel, verdict):
    assert adjoint(*e4_frames(rel)).verdict == verdict


def test_adjoint_not_tested():
    c = adjoint(*e4_frames([0.01, 0.02], steps=(0,)))
    assert c.verdict == NOT_TESTED and "no validation step after step 0" in c.reason
    c = adjoint(*e4_frames([0.01]))
    assert c.verdict == NOT_TESTED and "At step 100 only 1 seed(s) pair" in c.reason
    held, train = e4_frames([0.01, 0.02, 0.015])
    c = adjoint(held[held["model"] != "gfe_adjoint"], train)
    assert c.verdict == NOT_TESTED and "no held-out loss of GFE-adjoint" in c.reason


def test_adjoint_judged_on_excess_loss_over_the_validation_floor():
    """+1% of raw loss with a floor at 3/4 of the adjoint's loss is +4% of its excess loss at
    step 100 (loss 1/3): within 10%; +3% raw is +12%: beyond it."""
    floor = 0.25
    rows = [line for line in adjoint(*e4_frames([0.01, 0.012, 0.011]), val=floor).evidence if line.startswith("| 100")]
    assert rows and "0.04400 [" in rows[0]
    assert adjoint(*e4_frames([0.01, 0.012, 0.011]), val=floor).verdict == SUPPORTED
    assert adjoint(*e4_frames([0.01, 0.012, 0.011])).verdict == SUPPORTED  # on raw loss: 1.1%
    c = adjoint(*e4_frames([0.03, 0.032, 0.031]), val=floor)
    assert c.verdict == NOT_SUPPORTED and "entirely above 0.1" in c.reason
    assert adjoint(*e4_frames([0.03, 0.032, 0.031])).verdict == SUPPORTED  # raw loss would pass it
    c = only(claims.claim_adjoint(*e4_frames([0.01, 0.012, 0.011]), floors(dataset="cifar10")))
    assert c.verdict == NOT_TESTED and "no validation floor for mnist" in c.reason


def test_adjoint_model_names_and_margin_are_parameters():
    held, train = e4_frames([0.2, 0.25, 0.22], approx="gfe_amd", adjoint="adj")
    c = adjoint(held, train, margin=0.5, approximate="gfe_amd", adjoint="adj")
    assert c.verdict == SUPPORTED and "(adj/GFE-amd = 3.000)" in c.evidence[-1]


# ---------------------------------------------------------------- claim 3


def test_second_order_supported():
    c = only(claims.claim_second_order(e3_heldout([-0.05, -0.04, -0.06]), e5_order()))
    assert (c.label, c.verdict) == ("3", SUPPORTED) and "below 0" in c.reason
    text = claims.fmt_interval(*claims.paired_interval([-0.05, -0.04, -0.06]))
    line = f"Mean held-out loss over the 3 matched steps after 0, GFE-2nd − GFE-rk4, 3 paired seeds: {text}."
    assert line in c.evidence
    rows = [line for line in c.evidence if line.startswith("| ")]
    assert [r.split(" | ")[0] for r in rows[1:5]] == ["| 0", "| 10", "| 20", "| 30"]  # step 40 is unmatched
    assert "| 1 | GFE-rk4 | rk4 | 4 | 8.000 | 0.8000 (t = 2.000) | 0.4500 |" in rows
    assert "| 2 | GFE-2nd | rk4 | 4 | 8.000 | 0.7000 (t = 2.000) | 0.3500 |" in rows
    assert "| 1 | 8.000 | 4 | 0.3000 |" in rows and "| 2 | 8.000 | 4 | 0.2500 |" in rows
    assert not any("| amd" in r or "0.2000 |" in r for r in rows)  # the common-decoder AMD curve is not listed


@pytest.mark.parametrize("delta, why", [([0.05, 0.04, 0.06], "slower"), ([-0.05, 0.05, 0.01], "contains 0")])
def test_second_order_not_supported(delta, why):
    c = only(claims.claim_second_order(e3_heldout(delta), e5_order()))
    assert c.verdict == NOT_SUPPORTED and why in c.reason


def test_second_order_refuses_curves_that_differ_at_step_0():
    """Both models start from one decoder: unequal step-0 losses mean two encoders were mixed in."""
    held = e3_heldout([-0.05, -0.04, -0.06])
    held.loc[(held["model"] == "gfe_2nd") & (held["step"] == 0), "loss_mean"] -= 0.003
    c = only(claims.claim_second_order(held, e5_order()))
    assert c.verdict == NOT_TESTED and "step 0 differ by up to 0.003000" in c.reason and "heldout_encoder" in c.reason


def test_second_order_shows_training_loss_and_the_own_decoder_flows():
    train = pd.DataFrame(
        [
            dict(dataset="mnist", model=m, seed=seed, step=step, loss=1 - 0.01 * step - (0.02 if m == "gfe_2nd" else 0))
            for m in ("gfe_rk4", "gfe_2nd")
            for seed in range(3)
            for step in range(1, 31)
        ]
    )
    c = only(claims.claim_second_order(e3_heldout([-0.05, -0.04, -0.06]), e5_order(), train=train))
    assert c.verdict == SUPPORTED
    rows = [line for line in c.evidence if line.startswith("| 1–6 |")]
    assert rows == ["| 1–6 | 0.9650 ± 0 | 0.9450 ± 0 | −0.02000 [−0.02000, −0.02000] |"], rows
    assert any("at τ/4 GFE-2nd reaches 0.7000 and GFE-rk4 0.8000" in line and "faster" in line for line in c.evidence)


def test_second_order_not_tested():
    c = only(claims.claim_second_order(e3_heldout([-0.05, -0.04], steps=(0, 10)), e5_order()))
    assert c.verdict == NOT_TESTED and "Only 1 matched validation step(s)" in c.reason
    c = only(claims.claim_second_order(e3_heldout([-0.05]), e5_order()))
    assert c.verdict == NOT_TESTED and "only 1 seed(s) pair" in c.reason
    c = only(claims.claim_second_order(pd.DataFrame(), e5_order()))
    assert c.verdict == NOT_TESTED and "no held-out loss of GFE-rk4" in c.reason
    assert "| 1 | GFE-rk4 | rk4 | 4 | 8.000 | 0.8000 (t = 2.000) | 0.4500 |" in c.evidence  # E5 still shown


# ---------------------------------------------------------------- claim 4


FLOOR = 0.2


def robustness(
    amd=(0.25, 0.251, 0.252),
    rk4=(2.0, 0.5, 0.26),
    matched=2,
    decoders=("gfe_amd", "gfe_rk4"),
    flagged=True,
    seeds=(0, 1, 2),
    jitter=1e-4,
):
    """The E5 robustness table: per decoder and seed AMD final losses (the first setting
    configured) and rk4 final losses at 10, 20, 40, ... steps, the `matched`-th count
    NFE-matched; seed s adds s * jitter * (i + 1) to the i-th setting's loss, so the seeds
    differ a little; with `flagged`, a non-finite loss is a run that flagged its divergence
    (else a broken row)."""
    rows = []
    for decoder, seed in itertools.product(decoders, seeds):
        for i, loss in enumerate(amd):
            rows.append(
                dict(
                    solver="amd",
                    dt_init=10.0**i / 10,
                    dt_max=10.0,
                    steps=np.nan,
                    configured=i == 0,
                    nfe_matched=False,
                    nfe_mean=160.0,
                    loss_mean=loss + seed * jitter * (i + 1),
                    decoder_model=decoder,
                    decoder_seed=seed,
                )
            )
        for i, loss in enumerate(rk4):
            rows.append(
                dict(
                    solver="rk4",
                    dt_init=np.nan,
                    dt_max=np.nan,
                    steps=10 * 2**i,
                    configured=False,
                    nfe_matched=i == matched,
                    nfe_mean=40.0 * 2**i,
                    loss_mean=loss + seed * jitter * (i + 1),
                    decoder_model=decoder,
                    decoder_seed=seed,
                )
            )
    table = pd.DataFrame(rows).assign(dataset="mnist", tau=100.0, n_images=20, z0="zeros")
    diverged = ~np.isfinite(table["loss_mean"]) if flagged else False
    return table.assign(excess_mean=table["loss_mean"] - FLOOR, diverged=diverged)


def test_amd_robust_supported_with_its_evidence():
    c = only(claims.claim_amd_robust(robustness()))
    assert (c.label, c.verdict) == ("4", SUPPORTED), c.reason
    assert "| GFE-amd | amd | dt_init 0.1, dt_max 10 (configured) | 160.0 | 0.2501 | 0.05010 | n/a |" in c.evidence
    assert "| GFE-rk4 | rk4 | NFE-matched (40 steps) | 160.0 | 0.2603 | 0.06030 | n/a |" in c.evidence
    assert "| GFE-amd | 0 | 4.000% | 2900% | 0 of 3 | 16.67% below |" in c.evidence
    line = next(line for line in c.evidence if line.startswith("- GFE-amd (seeds 0, 1, 2)"))
    assert "AMD range 4.391% [3.421%, 5.361%] of its best (part (i) holds)" in line
    assert "AMD vs rk4 at equal NFE −16.91% [−17.53%, −16.30%] (part (iii) holds)" in line
    assert (c.effect.effect, c.effect.threshold) == (pytest.approx(0.04391, abs=1e-5), 0.1)
    assert c.effect.ci_high == pytest.approx(0.05361, abs=1e-5)


@pytest.mark.parametrize(
    "table, verdict, words",
    [
        (robustness(amd=(0.25, 0.26, 0.25)), NOT_SUPPORTED, "varies beyond the bound"),  # range 20% of 0.05
        (robustness(amd=(0.25, math.inf, 0.25)), NOT_SUPPORTED, "varies beyond the bound"),  # AMD diverged
        (robustness(amd=(0.25, math.nan, 0.25)), NOT_SUPPORTED, "varies beyond the bound"),  # flagged: never skipped
        (robustness(amd=(0.25, math.nan, 0.25), flagged=False), NOT_TESTED, "did not flag it as diverged"),
        (robustness(amd=(0.25, math.inf, 0.25), flagged=False), NOT_TESTED, "a broken row, not a divergence"),
        (robustness(rk4=(2.0, 0.5, 0.24)), NOT_SUPPORTED, "more than the margin worse"),  # AMD 25% above
        (robustness(rk4=(2.0, 0.5, 0.245)), NOT_TESTED, "seeds do not decide"),  # AMD 10.1-11.1% above
        (robustness(amd=(0.25, 0.2548, 0.25), jitter=1e-3), NOT_TESTED, "seeds do not decide"),  # 9.6%, 8.4%, 11.9%
        (robustness(amd=(0.25, 0.2548, 0.25)), NOT_TESTED, "9.780% [9.333%, 10.23%] against 10%"),
        (robustness(amd=(0.25, 0.2545, 0.25)), SUPPORTED, "AMD varies within the bound"),  # [8.73%, 9.63%]
        (robustness(amd=(0.25, 0.2556, 0.25)), NOT_SUPPORTED, "varies beyond the bound"),  # [10.94%, 11.82%]
        (robustness(seeds=(0,)), NOT_TESTED, "fewer than 2 seeds"),
        # (iii) at its bound: upper end 9.897% holds, 10.02% does not decide
        (robustness(rk4=(2.0, 0.5, 0.2458)), SUPPORTED, "AMD is within the margin of rk4"),
        (robustness(rk4=(2.0, 0.5, 0.24575)), NOT_TESTED, "8.797% [7.576%, 10.02%] against 10%"),
        # (ii) at its bound: lower end 10.15% is sensitive, 9.987% is not
        (robustness(rk4=(0.2669, 0.261, 0.26)), SUPPORTED, "rk4 varies beyond it on 2"),
        (robustness(rk4=(0.2668, 0.261, 0.26)), NOT_TESTED, "rk4 varies by no more than the bound"),
        (robustness(rk4=(0.2555, 0.2545, 0.2545)), NOT_TESTED, "rk4 varies by no more than the bound"),
        (robustness(rk4=(math.inf, math.inf, 0.26)), SUPPORTED, "rk4 varies beyond it on 2"),  # diverged: infinite
        (robustness(rk4=(0.26, 0.5, math.inf)), SUPPORTED, "AMD varies within the bound"),  # matched rk4 diverged
        (robustness(rk4=(0.26,), matched=0), NOT_TESTED, "two rk4 counts"),
        (robustness(rk4=(2.0, 0.5, 0.26), matched=7), NOT_TESTED, "configured/matched pair"),
    ],
)
def test_amd_robust_criterion(table, verdict, words):
    c = only(claims.claim_amd_robust(table))
    assert c.verdict == verdict and words in c.reason, c.reason


def test_amd_robust_says_when_its_verdict_turns_on_amds_own_convergence_test():
    table = robustness(amd=(0.25, 0.26, 0.25))  # the second setting 20% above the best excess loss
    converged = (table["solver"] == "amd") & (table["dt_init"] == 1.0)
    table["stop_reason"] = np.where(converged, "convergence test", "tau")
    table["t_mean"] = np.where(converged, 26.7, 100.0)
    c = only(claims.claim_amd_robust(table))
    assert c.verdict == NOT_SUPPORTED
    assert "dt_init 1, dt_max 10: excess 0.06020 (convergence test, mean t 26.70)" in c.reason, c.reason
    assert "stopped on AMD's own convergence test" in c.reason and "a property of AMD" in c.reason
    assert any(line.endswith("| convergence test, mean t 26.70 |") for line in c.evidence)
    # an outlier that reached tau is not called a stopping-test finding
    table["stop_reason"] = "tau"
    assert "convergence test" not in only(claims.claim_amd_robust(table)).reason


def test_amd_robust_counts_diverged_rk4_counts():
    c = only(claims.claim_amd_robust(robustness(rk4=(math.inf, math.nan, 0.26), decoders=("gfe_amd",))))
    assert "| GFE-amd | 1 | 4.391% | ∞ | 2 of 3 | 16.92% below |" in c.evidence, c.evidence
    assert c.verdict == SUPPORTED and "rk4 varies beyond it on 1" in c.reason


def test_amd_robust_not_tested_without_a_table():
    assert only(claims.claim_amd_robust(None)).verdict == NOT_TESTED
    assert only(claims.claim_amd_robust(pd.DataFrame())).verdict == NOT_TESTED


# ---------------------------------------------------------------- broken tables: no verdict


def _e1_broken(kind):
    e1 = e1_few([0.20, 0.215, 0.21])
    at10 = (e1["train_size"] == 10) & (e1["model"] == "ae")
    if kind == "nan":
        e1.loc[at10 & (e1["seed"] == 2), "test_loss_mean"] = math.nan
    elif kind == "inf":
        e1.loc[at10 & (e1["seed"] == 2), "test_loss_mean"] = math.inf
    elif kind == "missing seed":
        e1 = e1[~(at10 & (e1["seed"] == 2))]
    elif kind == "duplicate":
        e1 = pd.concat([e1, e1[at10 & (e1["seed"] == 1)].assign(test_loss_mean=0.9)])
    elif kind == "identical":
        e1.loc[at10, "test_loss_mean"] = 0.30
        e1.loc[(e1["train_size"] == 10) & (e1["model"] == "gfe_amd"), "test_loss_mean"] = 0.20
    return e1


@pytest.mark.parametrize(
    "kind, words",
    [
        ("nan", "test_loss_mean is not a finite number (nan)"),
        ("inf", "test_loss_mean is not a finite number (inf)"),
        ("missing seed", "ae lacks seed(s) 2 of seeds 0, 1, 2"),
        ("duplicate", "duplicated rows (model ae, train_size 10, seed 1"),
        ("identical", "the 3 paired differences are identical"),
    ],
)
def test_claim_1a_draws_no_verdict_from_a_broken_table(kind, words):
    c = few(_e1_broken(kind), continuation(e1_few([0.20, 0.215, 0.21])))
    assert c.verdict == NOT_TESTED and words in c.reason, c.reason
    assert few(_e1_broken("none")).verdict == SUPPORTED


def test_the_configured_seeds_are_required_even_when_both_models_lack_one():
    c = few(e1_frame({("ae", 10): [0.3, 0.31, 0.32], ("gfe_amd", 10): [0.2, 0.215, 0.21]}), seeds=[0, 1, 2, 3])
    assert c.verdict == NOT_TESTED and "ae lacks seed(s) 3" in c.reason and "gfe_amd lacks seed(s) 3" in c.reason


def _heldout_broken(frame, kind, model):
    last = frame["step"].max()
    one = (frame["model"] == model) & (frame["seed"] == 1)
    if kind == "nan":
        frame.loc[one & (frame["step"] == last), "loss_mean"] = math.nan
    elif kind == "inf":
        frame.loc[one & (frame["step"] == last), "loss_mean"] = math.inf
    elif kind == "missing seed":
        frame = frame[~one]
    elif kind == "truncated":
        frame = frame[~(one & (frame["step"] == last))]
    elif kind == "duplicate":
        frame = pd.concat([frame, frame[one & (frame["step"] == last)]])
    return frame


BROKEN = [
    ("nan", "loss_mean is not a finite number (nan)"),
    ("inf", "loss_mean is not a finite number (inf)"),
    ("missing seed", "lacks seed(s) 1 of seeds 0, 1, 2"),
    ("truncated", "run of seed 1 ends at step"),
    ("duplicate", "duplicated rows"),
]


@pytest.mark.parametrize("kind, words", BROKEN)
def test_claim_2_draws_no_verdict_from_a_broken_table(kind, words):
    held, train = e4_frames([0.01, 0.02, 0.015])
    c = adjoint(_heldout_broken(held, kind, "gfe_rk4"), train)
    assert c.verdict == NOT_TESTED and words in c.reason, c.reason


@pytest.mark.parametrize("kind, words", BROKEN)
def test_claim_3_draws_no_verdict_from_a_broken_table(kind, words):
    """The 2nd-order model better everywhere, but one value broken: no verdict, whichever value."""
    c = only(claims.claim_second_order(_heldout_broken(e3_heldout([-0.05, -0.04, -0.06]), kind, "gfe_2nd"), e5_order()))
    assert c.verdict == NOT_TESTED and words in c.reason, c.reason


def test_an_extra_step_of_one_run_makes_the_others_truncated():
    held, train = e4_frames([0.01, 0.02, 0.015], extra=True)
    c = adjoint(held, train)
    assert c.verdict == NOT_TESTED and "ends at step 100, others at step 150" in c.reason
    c = only(claims.claim_second_order(e3_heldout([-0.05, -0.04, -0.06], extra=True), e5_order()))
    assert c.verdict == NOT_TESTED and "ends at step 30, others at step 40" in c.reason


def test_identical_differences_give_no_interval():
    held, train = e4_frames([0.01, 0.01, 0.01])
    c = adjoint(held, train)
    assert c.verdict == NOT_TESTED and "identical" in c.reason and "zero width" in c.reason
    c = only(claims.claim_second_order(e3_heldout([-0.05, -0.05, -0.05]), e5_order()))
    assert c.verdict == NOT_TESTED and "identical" in c.reason


# ---------------------------------------------------------------- the integrity gate: configured grid, reference curves


def _e1_large_broken(kind):
    e1 = e1_large([0.101, 0.1025, 0.1045])
    at = (e1["train_size"] == 1000) & (e1["model"] == "gfe_amd")
    if kind == "nan":
        e1.loc[at & (e1["seed"] == 2), "test_loss_mean"] = math.nan
    elif kind == "missing seed":
        e1 = e1[~(at & (e1["seed"] == 2))]
    elif kind == "duplicate":
        e1 = pd.concat([e1, e1[at & (e1["seed"] == 1)]])
    elif kind == "missing size":
        e1 = e1[e1["train_size"] != 10]
    return e1


@pytest.mark.parametrize(
    "kind, words",
    [
        ("nan", "test_loss_mean is not a finite number (nan)"),
        ("missing seed", "at N = 1000 gfe_amd lacks seed(s) 2 of seeds 0, 1, 2"),
        ("duplicate", "duplicated rows (model gfe_amd, train_size 1000, seed 1"),
        ("missing size", "ae lacks train_size 10 of the configured 10, 1000"),
    ],
)
def test_claim_1b_draws_no_verdict_from_a_broken_table(kind, words):
    sizes = {"ae": [10, 1000], "gfe_amd": [10, 1000]}
    c = competitive(
        _e1_large_broken(kind), continuation(e1_large([0.101, 0.1025, 0.1045])), seeds=[0, 1, 2], sizes=sizes
    )
    assert c.verdict == NOT_TESTED and words in c.reason and "e1_data_efficiency.csv" in c.reason, c.reason
    assert competitive(_e1_large_broken("none"), seeds=[0, 1, 2], sizes=sizes).verdict == SUPPORTED


def test_a_configured_size_missing_from_e1_makes_claim_1a_not_tested():
    e1 = e1_few([0.20, 0.215, 0.21])
    c = few(e1, sizes={"gfe_amd": [10, 100, 1000]})
    assert c.verdict == NOT_TESTED and "gfe_amd lacks train_size 100 of the configured 10, 100, 1000" in c.reason


def _e4(**kw):
    return e4_frames([0.01, 0.02, 0.015], steps=(0, 20, 40, 60, 80, 100), **kw)


def test_claim_2_is_judged_at_the_configured_step():
    held, train = _e4()
    assert adjoint(held, train, step=100).verdict == SUPPORTED
    cut = held[held["step"] <= 20]  # every run cut at step 20: never judged there
    c = adjoint(cut, train, step=100)
    assert c.verdict == NOT_TESTED and "ends at step 20, short of the configured step 100 (truncated)" in c.reason
    assert "e4_heldout.csv" in c.reason
    c = adjoint(held, train, step=80)
    assert c.verdict == NOT_TESTED and "goes on to step 100, past the configured step 80" in c.reason


def test_claim_3_is_judged_at_the_configured_step_and_reports_it():
    held = e3_heldout([-0.05, -0.04, -0.06], steps=(0, 10, 20, 30))
    c = only(claims.claim_second_order(held, e5_order(), step=30))
    assert c.verdict == SUPPORTED and "at the last step 30 the difference is" in c.reason
    text = claims.fmt_interval(*claims.paired_interval([-0.05, -0.04, -0.06]))
    assert f"At the last step 30, GFE-2nd − GFE-rk4: {text}." in c.evidence
    c = only(claims.claim_second_order(held[held["step"] <= 20], e5_order(), step=30))
    assert c.verdict == NOT_TESTED and "short of the configured step 30" in c.reason


def _reference(frame, model, how):
    """The reference `model`'s curve made flat (did not learn) or back at its step-0 level at
    its second-to-last step (broke down), seed 1."""
    one = (frame["model"] == model) & (frame["seed"] == 1)
    start = float(frame.loc[one & (frame["step"] == 0), "loss_mean"].iloc[0])
    frame = frame.copy()
    if how == "flat":
        frame.loc[one & (frame["step"] > 0), "loss_mean"] = 0.95 * start
    else:
        steps = sorted(frame.loc[one, "step"])
        frame.loc[one & (frame["step"] == steps[-2]), "loss_mean"] = start
    return frame


@pytest.mark.parametrize(
    "how, words",
    [("flat", "did not learn: its held-out loss never falls below 0.9 × its step-0 value"), ("back", "broke down")],
)
def test_a_reference_curve_that_did_not_learn_or_broke_down_decides_nothing(how, words):
    held, train = _e4()
    c = adjoint(_reference(held, "gfe_adjoint", how), train)
    assert c.verdict == NOT_TESTED and f"the reference GFE-adjoint run of seed 1 {words}" in c.reason, c.reason
    held3 = e3_heldout([-0.05, -0.04, -0.06], steps=(0, 10, 20, 30, 40))
    c = only(claims.claim_second_order(_reference(held3, "gfe_rk4", how), e5_order()))
    assert c.verdict == NOT_TESTED and f"the reference GFE-rk4 run of seed 1 {words}" in c.reason, c.reason
    assert "e3_heldout.csv" in c.reason


GRID = {
    "decoders": ["gfe_amd", "gfe_rk4"],
    "seeds": [0, 1, 2],
    "dt_init": [0.1, 1.0, 10.0],
    "dt_max": [10.0],
    "rk4_steps": [10, 20, 40],
}


@pytest.mark.parametrize(
    "kind, words",
    [
        ("decoder", "decoder gfe_rk4 of the configured gfe_amd, gfe_rk4 is missing"),
        ("seed", "decoder gfe_rk4 lacks seed 2 of the configured 0, 1, 2"),
        ("extra seed", "decoder gfe_amd has seed 3, not one of the configured seeds 0, 1, 2"),
        ("no seed column", "there is no decoder_seed column"),
        ("setting", "decoder gfe_amd of seed 1 lacks the AMD setting dt_init 10, dt_max 10"),
        ("count", "decoder gfe_amd of seed 1 lacks rk4 at 20 steps of the configured 10, 20, 40"),
        ("duplicate", "duplicated rows (decoder_model gfe_amd, decoder_seed 1, solver rk4"),
        ("nan", "loss_mean is not a finite number (nan) for rk4 10 steps on decoder gfe_amd of seed 1"),
    ],
)
def test_claim_4_draws_no_verdict_from_a_broken_sweep(kind, words):
    table = robustness()
    assert only(claims.claim_amd_robust(table, GRID)).verdict == SUPPORTED
    amd = (table["decoder_model"] == "gfe_amd") & (table["decoder_seed"] == 1)
    if kind == "decoder":
        table = table[table["decoder_model"] == "gfe_amd"]
    elif kind == "seed":
        table = table[~((table["decoder_model"] == "gfe_rk4") & (table["decoder_seed"] == 2))]
    elif kind == "extra seed":
        table = pd.concat([table, table[amd].assign(decoder_seed=3)])
    elif kind == "no seed column":
        table = table[table["decoder_seed"] == 0].drop(columns="decoder_seed")
    elif kind == "setting":
        table = table[~(amd & (table["dt_init"] == 10.0))]
    elif kind == "count":
        table = table[~(amd & (table["steps"] == 20))]
    elif kind == "duplicate":
        table = pd.concat([table, table[amd & (table["steps"] == 10)]])
    elif kind == "nan":
        table.loc[amd & (table["steps"] == 10), ["loss_mean", "excess_mean"]] = math.nan
    c = only(claims.claim_amd_robust(table, GRID))
    assert c.verdict == NOT_TESTED and words in c.reason and "e5_robustness.csv" in c.reason, c.reason


def test_claim_4_names_decoders_in_words_not_python_lists():
    c = only(claims.claim_amd_robust(robustness(amd=(0.25, 0.26, 0.25))))
    assert c.verdict == NOT_SUPPORTED and "[" not in c.reason and "trained by GFE-amd and GFE-rk4" in c.reason


# ---------------------------------------------------------------- all claims


def test_all_claims_on_empty_tables():
    empty = pd.DataFrame()
    result = claims.all_claims(empty, empty, empty, empty, empty, "config/paper.yaml")
    assert [c.label for c in result] == ["1a", "1b", "1b (GFE-lbfgs)", "1c", "2", "3", "4"]
    assert all(c.verdict == NOT_TESTED and "empty" in c.reason for c in result)
    assert "## Claim 4: AMD is robust to the step size" in claims.render(result)


def test_all_claims_in_order_per_dataset():
    e1 = pd.concat([e1_few([0.20, 0.215, 0.21]), e1_few([0.20, 0.215, 0.21], dataset="fmnist")])
    held, train = e4_frames([0.01, 0.02, 0.015])
    result = claims.all_claims(
        e1,
        e3_heldout([-0.05, -0.04, -0.06]),
        held,
        train,
        e5_order(),
        "config/paper.yaml",
        floors=floors(val=0.0),
        continuation=continuation(e1),
    )
    lbfgs = "1b (GFE-lbfgs)"
    assert [c.label for c in result] == ["1a", "1a", "1b", "1b", lbfgs, lbfgs, "1c", "1c", "2", "3", "4"]
    assert [c.verdict for c in result[:2]] == [SUPPORTED, SUPPORTED]
    assert all(c.verdict in claims.VERDICTS for c in result)


# ---------------------------------------------------------------- the gate's and criteria's helpers, at their edges


def _curve(values, seed=0, steps=None):
    steps = list(range(len(values))) if steps is None else steps
    return pd.DataFrame(dict(model="gfe_rk4", seed=seed, step=steps, loss_mean=values))


@pytest.mark.parametrize(
    "values, steps, words",
    [
        ([2.0, 1.0, 1.0], None, ""),  # learned: the bar is 0.9 x the step-0 value (1.8), not 0.9 / it
        ([0.5, 1.0, 0.6], [10, 0, 20], ""),  # the step-0 check, wherever its row is
        ([1.0, 0.95, 0.91], None, "did not learn: its held-out loss never falls below 0.9 × its step-0 value 1.000 "
         "(step 2: 0.9100)"),
        ([1.0, 0.9, 0.9], None, "did not learn"),  # at the bar is not below it
        ([1.0, 0.5, 0.9], None, "broke down: after falling to 0.5000 its held-out loss is back at 0.9000 at step 2"),
        ([1.0, 0.5, 0.89], None, ""),  # just below the bar: still learned
        ([1.0, 0.5, 1.0], [0, 1, 2], "broke down"),  # a fall at step 1 counts
    ],
)  # fmt: skip
def test_a_reference_curve_learned_at_the_edges_of_its_bar(values, steps, words):
    problem = integrity.learned_problem(_curve(values, steps=steps), "gfe_rk4")
    assert (words in problem) if words else problem == "", problem


def test_the_first_reference_seed_that_failed_is_named():
    frame = pd.concat([_curve([1.0, 0.95], seed=1), _curve([1.0, 0.97], seed=0)])
    assert "run of seed 0 did not learn" in integrity.learned_problem(frame, "gfe_rk4")


def test_two_seeds_give_an_interval_and_identical_ones_none():
    mean, low, high = stats.paired_interval([0.1, 0.2])
    assert (mean, math.isfinite(low), math.isfinite(high)) == (pytest.approx(0.15), True, True)
    assert stats.interval_problem([0.1, 0.2]) == ""
    assert "identical (0.1000)" in stats.interval_problem([0.1, 0.1])
    assert "only 1 seed(s)" in stats.interval_problem([0.1])


@pytest.mark.parametrize(
    "values, verdict, interval",
    [
        ([0.05], robust.OPEN, (0.05, math.nan, math.nan)),  # one seed: no interval, no verdict
        ([0.05, math.nan, 0.06], robust.OPEN, None),
        ([0.05, 0.05, 0.05], robust.HOLDS, (0.05, 0.05, 0.05)),  # equal on every seed: their own interval
        ([0.5, 0.5], robust.HOLDS, (0.5, 0.5, 0.5)),  # equal, at the bound (0.5 below)
        ([0.2, 0.2], robust.FAILS, (0.2, 0.2, 0.2)),
        ([0.05, math.inf], robust.FAILS, None),  # AMD diverged on a seed's decoder
        ([0.04, 0.05, 0.06], robust.HOLDS, None),
        ([0.14, 0.15, 0.16], robust.FAILS, None),
    ],
)
def test_parts_i_and_iii_over_seeds(values, verdict, interval):
    found, (mean, low, high) = robust.bounded(values, 0.5 if values == [0.5, 0.5] else 0.1)
    assert found == verdict
    if interval:
        assert (mean, low, high) == pytest.approx(interval, nan_ok=True)
    if verdict != robust.OPEN and math.isfinite(mean) and len(set(values)) > 1:
        assert (mean, low, high) == pytest.approx(stats.paired_interval(values))


@pytest.mark.parametrize(
    "values, sensitive",
    [
        ([0.1, 0.1, 0.1], False),  # at the bound is not beyond it
        ([0.11, 0.5, 0.9], False),  # every seed beyond it, but the interval's lower end is not
        ([0.5, 0.6, 0.7], True),
        ([math.inf, 0.2, 0.3], True),  # a diverged count on a seed
        ([0.5, 0.05, 0.6], False),
    ],
)
def test_part_ii_over_seeds(values, sensitive):
    assert robust.sensitive(values) is sensitive


def test_the_spread_of_a_zero_best_is_undefined_and_of_a_divergence_infinite():
    assert math.isnan(robust.spread(pd.Series([0.0, 0.1])))
    assert robust.spread(pd.Series([0.1, math.inf])) == math.inf
    assert robust.spread(pd.Series([0.1, 0.15])) == pytest.approx(0.5)


def test_claim_4_is_judged_on_two_seeds_and_names_its_effect_interval():
    c = only(claims.claim_amd_robust(robustness(seeds=(0, 1))))
    assert c.verdict == SUPPORTED, c.reason
    three = only(claims.claim_amd_robust(robustness()))
    assert (three.effect.effect, three.effect.ci_low, three.effect.ci_high) == pytest.approx(
        (0.04391, 0.03421, 0.05361), abs=1e-5
    )
    assert (
        three.effect.measure.startswith("part (i) of three") and three.effect.unit == "fraction of the best excess loss"
    )


def test_claim_4_evidence_rows_average_the_seeds_and_show_the_matched_counts():
    table = robustness()
    matched = table["nfe_matched"]
    table.loc[matched, "steps"] = 40 + table.loc[matched, "decoder_seed"]  # the matched count follows each seed
    c = only(claims.claim_amd_robust(table))
    assert "| GFE-amd | rk4 | 10 steps | 40.00 | 2.000 | 1.800 | n/a |" in c.evidence  # swept on every seed
    assert not any("| 41 steps" in line for line in c.evidence)  # one seed's matched count is not a setting
    assert any(line.startswith("| GFE-amd | rk4 | NFE-matched (40–42 steps) |") for line in c.evidence)
    diverged = robustness(rk4=(2.0, 0.5, math.inf))
    c = only(claims.claim_amd_robust(diverged))
    assert "| GFE-amd | 0 | 4.000% | ∞ | 1 of 3 | 100.0% below |" in c.evidence


@pytest.mark.parametrize("decoder, seed", [("gfe_amd", 0), ("gfe_rk4", 2)])
def test_claim_4_is_not_tested_when_one_seeds_sweep_lacks_its_matched_count(decoder, seed):
    table = robustness()
    broken = (table["decoder_model"] == decoder) & (table["decoder_seed"] == seed)
    table.loc[broken, "nfe_matched"] = False
    c = only(claims.claim_amd_robust(table))
    assert c.verdict == NOT_TESTED and f"of seed {seed} lacks AMD settings, two rk4 counts" in c.reason, c.reason
