"""Mutation tests of the AMD solver (`gfe.solvers.amd`; docs/testing.md, "Mutation score").

The solver is compared, number for number, with a plain-Python AMD written from its
documented rule (module docstring of gfe/solvers/amd.py): per sample, or with the batch's
shared rule, through the general loop (with a trace) and the fused loop (without). The
problems are chosen so that every branch is taken: rejected and forced steps, the time jump
of a forced step, convergence before tau, tau reached, the evaluation cap. Each option's
bound is checked just inside and just outside."""

import math

import numpy as np
import pytest
import torch

import gfe
from gfe.flows import GradientFlow
from gfe.losses import resolve_loss
from gfe.solvers import AMDOptions, make_solver
from helpers import FunctionDecoder

AUTHORS = dict(
    dt_init=1.0,
    dt_max=10.0,
    shrink=0.5,
    max_halvings=20,
    sigma=1e-5,
    conv_fraction=0.98,
    conv_tol=1e-5,
    conv_window=5,
    dt_stall=10.0,
    growth=1.1,
    shared=False,
    max_evals=100_000,
    working_set=None,
)


def _loss_velocity(z, y, alpha, c=1.0):
    """D(z) = c z^2 with the MSE loss on one pixel: l = (c z^2 - y)^2, f = -alpha dl/dz."""
    return (c * z * z - y) ** 2, -alpha * 4 * c * z * (c * z * z - y)


def reference_amd(zs, ys, tau, alpha=1.0, shared=False, scales=None, **options):
    """AMD in plain Python floats, from the documented rule. Returns per sample
    (z, loss, nfe, converged, t, rejected)."""
    o = {**AUTHORS, **options}
    n = len(zs)
    z = [np.float64(v) for v in zs]
    scales = scales or [1.0] * n
    lv = [_loss_velocity(zi, yi, alpha, c) for zi, yi, c in zip(z, ys, scales, strict=True)]
    loss, vel = [a for a, _ in lv], [b for _, b in lv]
    dt, t, hist, rejected, conv, it = [o["dt_init"]] * n, [0.0] * n, [[] for _ in range(n)], [0] * n, [False] * n, 0
    active = list(range(n))
    done = {}
    min_dt = o["shrink"] ** o["max_halvings"]
    while active:
        it += 1
        trial = {}
        for i in active:
            remaining = tau - t[i]
            d = min(dt[i], remaining)
            z1 = z[i] + d * vel[i]
            l1, f1 = _loss_velocity(z1, ys[i], alpha, scales[i])
            trial[i] = dict(
                remaining=remaining, d=d, z1=z1, l1=l1, f1=f1, ok=loss[i] - l1 >= o["sigma"] * d * o["dt_max"] * f1 * f1
            )
        all_ok = all(trial[i]["ok"] for i in active)
        for i in active:
            s = trial[i]
            accepted = all_ok if shared else s["ok"]
            forced = s["d"] < min_dt
            moved = accepted or (shared and forced and math.isfinite(s["l1"] + s["f1"] ** 2))
            if moved:
                z[i], loss[i], vel[i] = s["z1"], s["l1"], s["f1"]
            if accepted or forced:
                step = min(s["remaining"], o["dt_stall"]) if forced else s["d"]
                t[i] = tau if step >= s["remaining"] else t[i] + step
                dt[i] = min(max(o["growth"] * step, o["dt_init"]), o["dt_max"])
            else:
                dt[i] = o["shrink"] * s["d"]
            rejected[i] += not accepted
        for i in active:
            s = trial[i]
            if (all_ok if shared else s["ok"]) or s["d"] < min_dt:
                if t[i] >= (1 - o["conv_fraction"]) * tau:
                    value = sum(loss[j] for j in active) / len(active) if shared else loss[i]
                    hist[i] = [*hist[i], value][-o["conv_window"] :]
                    if len(hist[i]) >= o["conv_window"]:
                        conv[i] = conv[i] or abs(float(np.gradient(hist[i]).mean())) < o["conv_tol"]
        for i in list(active):
            if conv[i] or t[i] >= tau or it + 1 >= o["max_evals"]:
                done[i] = (z[i], loss[i], it + 1, conv[i], t[i], rejected[i])
                active.remove(i)
    return [done[i] for i in range(n)]


def _amd(zs, ys, tau, alpha=1.0, trace=None, dtype=torch.float64, **options):
    z0 = torch.tensor([[v] for v in zs], dtype=dtype).reshape(-1, 1)
    x = torch.tensor([[v] for v in ys], dtype=dtype).reshape(-1, 1)
    out = gfe.encode(
        FunctionDecoder(lambda z: z * z),
        x,
        solver="amd",
        loss="mse",
        tau=tau,
        z0=z0,
        alpha=alpha,
        trace=trace,
        **options,
    )
    return out


DTYPES = {
    "z": None,
    "loss": None,
    "nfe": torch.int64,
    "converged": torch.bool,
    "t": torch.float64,
    "rejected": torch.int64,
}


def _assert_same(out, expected):
    for name, dtype in DTYPES.items():
        assert getattr(out, name).dtype == (dtype or torch.float64), name
    for i, (z, loss, nfe, conv, t, rejected) in enumerate(expected):
        got = (float(out.z[i, 0]), float(out.loss[i]), int(out.nfe[i]), bool(out.converged[i]), float(out.t[i]))
        assert got[0] == pytest.approx(z, rel=1e-12, abs=1e-15), (i, got, expected[i])
        assert got[1] == pytest.approx(loss, rel=1e-12, abs=1e-18), (i, got, expected[i])
        assert got[2:] == (nfe, conv, t), (i, got, expected[i])  # t exactly: tau itself when reached
        assert int(out.rejected[i]) == rejected, (i, int(out.rejected[i]), rejected)


# the last sample starts at its minimum: its loss cannot fall, and a step that keeps it
# (a decrease of 0 against a requirement of 0) is accepted
ZS, YS = [0.5, 0.5, 1.3, 0.2, 1.0], [1.0, 4.0, 0.7, 2.5, 1.0]
CASES = {
    # the authors' options: rejections, then convergence long before tau
    "authors": dict(tau=1e4),
    # tau reached before convergence could be judged; a tau that is not a multiple of dt
    "tau reached": dict(tau=7.3, conv_tol=0.0),
    # stiff flow, few halvings: forced steps, and their time jump (dt_stall) ends the run
    "forced steps": dict(tau=40.0, alpha=60.0, max_halvings=2, dt_stall=3.0),
    # a loose tolerance with a short window, the history recorded from the middle of the run
    "window": dict(tau=60.0, conv_window=3, conv_tol=1e-3, conv_fraction=0.5, growth=1.5, dt_max=4.0),
    # the evaluation cap
    "cap": dict(tau=1e4, max_evals=7),
    # the cap reached by some samples only; with a working set of 2, samples of unlike ages
    "cap, some": dict(tau=1e4, max_evals=100),
    # no history at all (conv_fraction 0: only at tau), a small sigma-free rule
    "no history": dict(tau=30.0, conv_fraction=0.0, sigma=0.0, dt_init=0.5, shrink=0.25),
    # every sample at rest: a flat history (slope exactly 0) never beats conv_tol=0
    "at rest": dict(zs=[1.0, 2.0], ys=[1.0, 4.0], tau=50.0, conv_tol=0.0),
    # losses 1 - 2e-10 and slowly falling: float64 sees the slope, float32 would not
    "slow start": dict(zs=[1e-5, 2e-5], ys=[1.0, 1.0], tau=60.0, conv_tol=1e-12, conv_fraction=1.0),
    # steps of exactly 1: t reaches the start of the history (8.0) exactly
    "record from": dict(tau=16.0, conv_fraction=0.5, dt_max=1.0, growth=1.0, conv_window=2, conv_tol=1e-2),
    "record from, at rest": dict(
        zs=[1.0, 2.0], ys=[1.0, 4.0], tau=16.0, conv_fraction=0.5, dt_max=1.0, growth=1.0, conv_window=2, conv_tol=1e-2
    ),
}


def _data(options):
    options = dict(options)
    return options.pop("zs", ZS), options.pop("ys", YS), options


@pytest.fixture(autouse=True)
def _float_overflow_is_inf():
    with np.errstate(all="ignore"):
        yield


@pytest.mark.parametrize("case", CASES)
def test_per_sample_amd_equals_the_documented_rule(case):
    zs, ys, options = _data(CASES[case])
    expected = reference_amd(zs, ys, **options)
    _assert_same(_amd(zs, ys, **options), expected)
    _assert_same(_amd(zs, ys, working_set=2, **options), expected)  # a refilled working set: the same


@pytest.mark.parametrize("case", CASES)
def test_shared_amd_equals_the_documented_rule_in_both_loops(case):
    zs, ys, options = _data(CASES[case])
    expected = reference_amd(zs, ys, shared=True, **options)
    _assert_same(_amd(zs, ys, shared=True, **options), expected)  # fused loop
    _assert_same(_amd(zs, ys, shared=True, trace=[], **options), expected)  # general loop
    # in float32 the fused loop rounds its Python floats as the general loop's tensors are
    fused = _amd(zs, ys, shared=True, dtype=torch.float32, **options)
    general = _amd(zs, ys, shared=True, trace=[], dtype=torch.float32, **options)
    for name, dtype in DTYPES.items():
        got, want = getattr(fused, name), getattr(general, name)
        assert got.dtype == want.dtype == (dtype or torch.float32) and torch.equal(got, want), name


def test_the_cases_take_every_branch():
    """The reference itself: each case reaches what it is named for."""
    ends = {case: reference_amd(*_data(options)[:2], **_data(options)[2]) for case, options in CASES.items()}
    assert all(conv for *_, conv, _t, _r in ends["authors"])
    assert all(t == 7.3 and not conv for *_, conv, t, _r in ends["tau reached"])
    assert all(n == 7 and not conv for _z, _l, n, conv, *_ in ends["cap"])
    assert all(t == 15.0 and n == 25 and r == 24 for *_, n, _c, t, r in ends["forced steps"][:4])  # 5 jumps of 3
    assert all(t == 30.0 and not conv for *_, conv, t, _r in ends["no history"])
    assert len({n for _z, _l, n, *_ in ends["window"]}) == 5
    assert all(t == 50.0 and not conv for *_, conv, t, _r in ends["at rest"])


def test_the_trace_records_each_trial():
    """The trace rows: the trial's dt, the requirement sigma * dt * dt_max * |f(z1)|^2, and
    which samples moved."""
    trace = []
    _amd([0.5, 0.5], [1.0, 4.0], tau=100.0, trace=trace)
    first = trace[0]
    assert first["dt"].tolist() == [1.0, 1.0] and first["t"].tolist() == [0.0, 0.0]
    z1 = first["z1"][:, 0]
    f1 = -4 * z1 * (z1 * z1 - torch.tensor([1.0, 4.0], dtype=torch.float64))
    assert torch.allclose(first["required"], 1e-5 * 1.0 * 10.0 * f1 * f1, rtol=1e-12, atol=0)
    assert trace[1]["accepted"].tolist() == [True, False] == trace[1]["moved"].tolist()
    assert trace[1]["dt"].tolist() == [0.5, 0.5]


# ---------------------------------------------------------------- options


def test_the_defaults_are_the_authors_mnist_configuration():
    from dataclasses import asdict

    assert asdict(AMDOptions()) == AUTHORS
    assert asdict(make_solver("amd").options) == AUTHORS


GOOD = [
    dict(dt_init=1e-9, dt_max=1e-9),
    dict(dt_max=1.0),
    dict(shrink=1e-9),
    dict(shrink=0.999),
    dict(max_halvings=0),
    dict(sigma=0.0),
    dict(conv_fraction=0.0),
    dict(conv_fraction=1.0),
    dict(conv_tol=0.0),
    dict(conv_window=2),
    dict(dt_stall=1e-9),
    dict(growth=1.0),
    dict(shared=True),
    dict(max_evals=1),
    dict(working_set=1),
]
BAD = [
    dict(dt_init=0.0),
    dict(dt_init=-1.0),
    dict(dt_init="1"),
    dict(dt_max=0.999),
    dict(dt_max=None),
    dict(shrink=0.0),
    dict(shrink=1.0),
    dict(shrink=True),
    dict(max_halvings=-1),
    dict(max_halvings=2.5),
    dict(sigma=-1e-12),
    dict(sigma="0"),
    dict(conv_fraction=-1e-9),
    dict(conv_fraction=1.000001),
    dict(conv_fraction=None),
    dict(conv_tol=-1e-12),
    dict(conv_tol=None),
    dict(conv_window=1),
    dict(conv_window=5.5),
    dict(dt_stall=0.0),
    dict(dt_stall="1"),
    dict(growth=0.999),
    dict(growth=None),
    dict(shared=1),
    dict(max_evals=0),
    dict(max_evals=10.5),
    dict(working_set=0),
    dict(working_set=2.5),
    dict(working_set=2, shared=True),
]


@pytest.mark.parametrize("good", GOOD, ids=str)
def test_an_option_at_its_bound_is_accepted(good):
    AMDOptions(**good)


@pytest.mark.parametrize("bad", BAD, ids=str)
def test_an_option_past_its_bound_is_refused_naming_it(bad):
    name, value = next(iter(bad.items()))
    with pytest.raises(ValueError, match=f"^AMD option {name}={value!r} is invalid: must be "):
        AMDOptions(**bad)


def test_amd_refuses_a_flow_that_is_not_first_order():
    from gfe.flows import NesterovFlow

    solver = make_solver("amd")
    x, decoder = torch.ones(1, 1, dtype=torch.float64), FunctionDecoder(lambda z: z * z)
    flow = NesterovFlow(GradientFlow(decoder, x, resolve_loss("mse", decoder)[1]))
    with pytest.raises(ValueError, match=r"^solver='amd' integrates the first-order flow only \(order=1\)$"):
        solver.solve(flow, torch.zeros(1, 2, dtype=torch.float64), 1.0)


class _Breaking(torch.nn.Module):
    """D(z) = z^2 for its first call, NaN or inf in every row from the second on."""

    def __init__(self, value):
        super().__init__()
        self.value, self.calls, self.latent_dim, self.output = value, 0, 1, "probabilities"
        self.image_shape = (1,)  # no probe call

    def forward(self, z):
        self.calls += 1
        return z * z if self.calls < 2 else z * z + self.value


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
@pytest.mark.parametrize("loop", ["per sample", "shared, fused", "shared, general"])
def test_a_broken_decoder_is_reported_at_the_forced_step_naming_every_sample(loop, value):
    """Every trial after the start is non-finite: rejected, dt halved 3 times, then the
    forced 5th trial raises FlowDivergedError with step 5 and the samples."""
    options = dict(shared=loop != "per sample", trace=[] if loop == "shared, general" else None)
    x = torch.tensor([[1.0], [4.0], [2.0]], dtype=torch.float64)
    z0 = torch.full((3, 1), 0.5, dtype=torch.float64)
    with pytest.raises(gfe.FlowDivergedError) as info:
        gfe.encode(_Breaking(value), x, solver="amd", loss="mse", tau=100.0, z0=z0, max_halvings=3, **options)
    assert info.value.step == 5 and info.value.samples == [0, 1, 2]
    assert "non-finite at iteration 5 for samples [0, 1, 2]" in str(info.value)


def test_a_broken_decoder_is_reported_with_a_working_set_smaller_than_the_batch():
    """The re-evaluation uses the working set's own targets (kills `state.target` -> None)."""
    x = torch.tensor([[1.0], [4.0], [2.0]], dtype=torch.float64)
    z0 = torch.full((3, 1), 0.5, dtype=torch.float64)
    with pytest.raises(gfe.FlowDivergedError) as info:
        gfe.encode(
            _Breaking(float("nan")), x, solver="amd", loss="mse", tau=100.0, z0=z0, max_halvings=3, working_set=2
        )
    assert info.value.step == 5 and info.value.samples == [0, 1]


class _RowFlow(GradientFlow):
    """D_i(z) = c_i z^2: a decoder that differs by row, as a lockstep group's does; with
    `group_size`, AMD's shared rule acts per group of that many rows."""

    def __init__(self, scales, target, group_size=None):
        decoder = FunctionDecoder(lambda z: z * z)
        super().__init__(decoder, target, resolve_loss("mse", decoder)[1])
        self.scales = torch.tensor(scales, dtype=torch.float64)
        if group_size is not None:
            self.group_size = group_size

    def decode(self, z, rows=None):
        c = self.scales if rows is None else self.scales[rows]
        return c[:, None] * z * z


SCALES = [1.0, 2.0, 0.5, 3.0, 1.5, 1.0]
ROW_ZS, ROW_YS = [0.5, 0.5, 1.3, 0.2, 1.0, 0.9], [1.0, 4.0, 0.7, 2.5, 1.0, 0.3]


def _solve(flow_options, **options):
    x = torch.tensor([[v] for v in ROW_YS], dtype=torch.float64)
    z0 = torch.tensor([[v] for v in ROW_ZS], dtype=torch.float64)
    flow = _RowFlow(SCALES, x, **flow_options)
    with torch.no_grad():  # as gfe.encode solves
        return make_solver("amd", **options).solve(flow, z0, 40.0)


@pytest.mark.parametrize("working_set", [None, 2, 4])
def test_per_sample_amd_evaluates_each_row_with_its_own_decoder(working_set):
    """Kills `rows=s.idx` -> None / left out in the trial step and at the start: a working
    set that is part of the batch must be decoded by its own rows."""
    expected = reference_amd(ROW_ZS, ROW_YS, 40.0, scales=SCALES)
    _assert_same(_solve({}, working_set=working_set), expected)


@pytest.mark.parametrize("tau", [40.0, 1e4])  # 1e4: each group converges, on its own mean loss
@pytest.mark.parametrize("trace", [None, []])
def test_the_shared_rule_acts_per_group_of_a_grouped_flow(trace, tau):
    """With group_size 3 each group of rows takes the shared rule as if alone: its own dt,
    acceptance, history (the group's mean loss) and stop."""
    expected = []
    for g in (0, 3):
        expected += reference_amd(ROW_ZS[g : g + 3], ROW_YS[g : g + 3], tau, shared=True, scales=SCALES[g : g + 3])
    x = torch.tensor([[v] for v in ROW_YS], dtype=torch.float64)
    z0 = torch.tensor([[v] for v in ROW_ZS], dtype=torch.float64)
    with torch.no_grad():
        out = make_solver("amd", shared=True).solve(_RowFlow(SCALES, x, group_size=3), z0, tau, trace=trace)
    _assert_same(out, expected)
    assert len({int(n) for n in out.nfe[:3]}) == 1 and len({int(n) for n in out.nfe[3:]}) == 1
    assert int(out.nfe[0]) != int(out.nfe[3])  # the groups stop apart
    if tau > 100:
        assert bool(out.converged.all())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_the_shared_rule_in_a_half_precision_dtype_takes_the_general_loop(dtype):
    """The fused loop rounds to float32 or float64 only (kills `z0.dtype in _ROUND` -> `not in`)."""
    out = _amd([0.5, 0.5], [1.0, 4.0], tau=20.0, shared=True, dtype=dtype)
    assert out.z.dtype == dtype and out.z.flatten().tolist() == [1.0, 2.0]
    assert out.nfe.tolist() == {torch.float16: [45, 45], torch.bfloat16: [34, 34]}[dtype]


@pytest.mark.parametrize("shared", [False, True])
def test_an_empty_batch_gives_empty_results(shared):
    """Kills `z0.shape[0] > 0` -> `z0.shape[1] > 0` (an empty batch in the fused loop)."""
    out = _amd([], [], tau=20.0, shared=shared)
    assert out.z.shape == (0, 1) and out.nfe.shape == (0,) and out.t.dtype == torch.float64


@pytest.mark.parametrize("trace", [None, []])
def test_a_group_at_rest_converges_on_its_own_history_while_the_other_still_moves(trace):
    """Group 0 starts at its minimum (a flat history); group 1 keeps moving. Group 0's
    convergence reads its own mean loss, not the batch's (kills the group size dropped in
    `_record` and in `_iterate`'s call of it)."""
    zs, ys, scales = [1.0, 2.0, 0.5, 0.2, 0.9, 1e-3], [1.0, 4.0, 0.25, 2.5, 0.3, 1.0], [1.0] * 6
    expected = []
    for g in (0, 3):
        expected += reference_amd(zs[g : g + 3], ys[g : g + 3], 1e4, shared=True, scales=scales[g : g + 3])
    x = torch.tensor([[v] for v in ys], dtype=torch.float64)
    z0 = torch.tensor([[v] for v in zs], dtype=torch.float64)
    with torch.no_grad():
        out = make_solver("amd", shared=True).solve(_RowFlow(scales, x, group_size=3), z0, 1e4, trace=trace)
    _assert_same(out, expected)
    assert int(out.nfe[0]) < int(out.nfe[3])
