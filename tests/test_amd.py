"""AMD: the acceptance rule, monotone per-sample losses, batch independence, and the
authors' shared rule on a problem worked out by hand."""

import pytest
import torch

import gfe
from gfe.models import MLPDecoder
from gfe.solvers import AMDOptions
from helpers import FunctionDecoder, TinyDecoder


def _problem(batch=16, seed=0):
    torch.manual_seed(seed)
    decoder = TinyDecoder().double()
    x = torch.rand(batch, 12, dtype=torch.float64)
    return decoder, x


def test_every_accepted_step_satisfies_the_rule():
    decoder, x = _problem()
    trace = []
    gfe.encode(decoder, x, solver="amd", tau=300.0, z0="uniform", seed=1, trace=trace, max_halvings=4)
    accepted_steps = 0
    for it in trace:
        target = x[it["idx"]]
        loss0 = bce_per_sample(decoder, it["z"], target)
        with torch.enable_grad():
            z1 = it["z1"].clone().requires_grad_(True)
            loss1 = bce_per_sample(decoder, z1, target)
            (grad1,) = torch.autograd.grad(loss1.sum(), z1)
        required = 1e-5 * it["dt"] * 10.0 * grad1.square().sum(1)
        ok = it["accepted"]
        accepted_steps += int(ok.sum())
        assert torch.all(loss0[ok] - loss1.detach()[ok] >= required[ok] - 1e-12)
        assert not torch.any((loss0 - loss1.detach() >= required + 1e-9) & ~ok)
    assert accepted_steps > 0


def bce_per_sample(decoder, z, target):
    return torch.nn.functional.binary_cross_entropy_with_logits(decoder(z), target, reduction="none").mean(1)


def test_per_sample_loss_never_increases_and_forced_steps_keep_z():
    decoder, x = _problem()
    trace = []
    # A stiff flow (large alpha) and few halvings make rejections and forced steps common.
    out = gfe.encode(
        decoder, x, solver="amd", tau=200.0, z0="uniform", seed=2, trace=trace, alpha=1000.0, max_halvings=3
    )
    last = {}
    forced_kept = 0
    for it in trace:
        new_loss = torch.where(it["moved"], it["loss1"], it["loss"])
        for i, sample in enumerate(it["idx"].tolist()):
            assert new_loss[i] <= last.get(sample, float("inf")) + 1e-15
            last[sample] = float(new_loss[i])
        stalled = it["forced"] & ~it["accepted"]
        forced_kept += int(stalled.sum())
        assert not torch.any(it["moved"] & ~it["accepted"])  # per-sample mode never moves on a failed rule
    assert forced_kept > 0, "the settings were meant to force steps"
    assert torch.all(out.rejected > 0)
    final = torch.tensor([last[i] for i in range(len(x))], dtype=torch.float64)
    assert torch.allclose(final, out.loss)


def _mlp_problem(batch, seed):
    """The paper's MLP decoder (random weights), images and starts, in float64."""
    torch.manual_seed(seed)
    decoder = MLPDecoder().double()
    x = torch.rand(batch, 1, 28, 28, dtype=torch.float64)
    z0 = torch.rand(batch, 20, dtype=torch.float64)
    return decoder, x, z0


def test_encoding_of_a_sample_does_not_depend_on_its_batch():
    decoder, x, z0 = _mlp_problem(64, seed=3)
    batch = gfe.encode(decoder, x, solver="amd", tau=1000.0, z0=z0, alpha=30.0)
    for i in (0, 17, 63):
        alone = gfe.encode(decoder, x[i : i + 1], solver="amd", tau=1000.0, z0=z0[i : i + 1], alpha=30.0)
        assert (alone.z[0] - batch.z[i]).abs().max() < 1e-5
        assert alone.nfe[0] == batch.nfe[i]
    assert len(set(batch.nfe.tolist())) > 1, "per-sample step control should give different NFE"


def _authors_shared_rule_by_hand(y, z, iterations, dt_init, dt_max, sigma=1e-5, shrink=0.5, growth=1.1):
    """The authors' shared AMD rule for D(z) = z^2, l = (z^2 - y)^2, in plain Python floats."""
    loss = [(zi * zi - yi) ** 2 for zi, yi in zip(z, y, strict=True)]
    vel = [-4 * zi * (zi * zi - yi) for zi, yi in zip(z, y, strict=True)]
    dt, t, steps = dt_init, 0.0, []
    for _ in range(iterations):
        z1 = [zi + dt * fi for zi, fi in zip(z, vel, strict=True)]
        loss1 = [(zi * zi - yi) ** 2 for zi, yi in zip(z1, y, strict=True)]
        vel1 = [-4 * zi * (zi * zi - yi) for zi, yi in zip(z1, y, strict=True)]
        each = [l0 - l1 >= sigma * dt * dt_max * f1 * f1 for l0, l1, f1 in zip(loss, loss1, vel1, strict=True)]
        accept = all(each)
        steps.append(dict(dt=dt, each=each, accept=accept))
        if accept:
            z, loss, vel, t = z1, loss1, vel1, t + dt
            dt = min(max(growth * dt, dt_init), dt_max)
        else:
            dt = shrink * dt
        steps[-1].update(t=t, z=list(z))
    return steps


def test_shared_mode_reproduces_a_hand_computed_trace():
    y, z0 = [1.0, 4.0], [0.5, 0.5]
    expected = _authors_shared_rule_by_hand(y, z0, iterations=3, dt_init=1.0, dt_max=10.0)
    # By hand: dt=1 fails for both; dt=0.5 passes sample 0 only (so the batch rejects);
    # dt=0.25 passes both.
    assert [s["each"] for s in expected] == [[False, False], [True, False], [True, True]]
    decoder = FunctionDecoder(lambda z: z * z)
    x = torch.tensor([[1.0], [4.0]], dtype=torch.float64)
    trace = []
    gfe.encode(
        decoder,
        x,
        solver="amd",
        loss="mse",
        tau=100.0,
        z0=torch.tensor([[0.5], [0.5]], dtype=torch.float64),
        shared=True,
        trace=trace,
    )
    for step, it in zip(expected, trace[:3], strict=True):
        assert float(it["dt"][0]) == pytest.approx(step["dt"])
        assert it["accepted"].tolist() == [step["accept"]] * 2
    # The state after the three trials: time 0.25, z moved by the one accepted step.
    fourth = trace[3]
    assert fourth["t"].tolist() == pytest.approx([expected[-1]["t"]] * 2)
    assert fourth["z"].flatten().tolist() == pytest.approx(expected[-1]["z"])
    assert float(fourth["dt"][0]) == pytest.approx(1.0)  # 1.1 * 0.25 clamped up to dt_init


def test_per_sample_mode_differs_from_shared_on_the_same_problem():
    decoder = FunctionDecoder(lambda z: z * z)
    x = torch.tensor([[1.0], [4.0]], dtype=torch.float64)
    z0 = torch.tensor([[0.5], [0.5]], dtype=torch.float64)
    trace = []
    gfe.encode(decoder, x, solver="amd", loss="mse", tau=100.0, z0=z0, trace=trace)
    assert trace[1]["accepted"].tolist() == [True, False]  # sample 0 takes dt=0.5 on its own


def test_shared_mode_stops_all_samples_together():
    decoder, x = _problem(batch=8)
    out = gfe.encode(decoder, x, solver="amd", tau=500.0, shared=True)
    assert len(set(out.t.tolist())) == 1
    assert len(set(out.nfe.tolist())) == 1
    assert len(set(out.converged.tolist())) == 1


def test_converged_samples_stop_before_tau_and_report_it():
    decoder, x = _problem(batch=8)
    out = gfe.encode(decoder, x, solver="amd", tau=1e4, conv_tol=1e-4)
    assert out.converged.all()
    assert torch.all(out.t < 1e4)


@pytest.mark.parametrize(
    "bad",
    [dict(dt_init=0), dict(dt_max=0.5), dict(shrink=1.0), dict(shrink=0.0), dict(max_halvings=-1), dict(conv_window=1)],
)
def test_bad_options_are_rejected_with_the_option_name(bad):
    name = next(iter(bad))
    with pytest.raises(ValueError, match=name):
        AMDOptions(**bad)


def test_amd_refuses_the_second_order_flow():
    decoder, x = _problem(batch=2)
    with pytest.raises(ValueError, match="order"):
        gfe.encode(decoder, x, solver="amd", order=2)


def test_working_set_refill_gives_the_same_encodings():
    decoder, x, z0 = _mlp_problem(24, seed=4)
    whole = gfe.encode(decoder, x, solver="amd", tau=500.0, z0=z0, alpha=30.0)
    refilled = gfe.encode(decoder, x, solver="amd", tau=500.0, z0=z0, alpha=30.0, working_set=5)
    assert (whole.z - refilled.z).abs().max() < 1e-5
    assert torch.equal(whole.nfe, refilled.nfe) and torch.equal(whole.rejected, refilled.rejected)
    assert torch.equal(whole.converged, refilled.converged)
    with pytest.raises(ValueError, match="working_set"):
        AMDOptions(working_set=4, shared=True)
