"""Flows and the torchdiffeq-backed solvers: second order against a reference, NFE, the
encode interface. (Diverging flows: tests/test_faults.py.)"""

import pytest
import torch
from torchdiffeq import odeint

import gfe
from helpers import LinearDecoder, TinyDecoder


def _quadratic_problem(seed=0):
    torch.manual_seed(seed)
    weight = torch.randn(6, 3, dtype=torch.float64) * 0.7
    bias = torch.randn(6, dtype=torch.float64) * 0.1
    decoder = LinearDecoder(weight, bias)
    x = torch.rand(4, 6, dtype=torch.float64)
    return decoder, x, weight, bias


def _nesterov_reference(weight, bias, x, z0, tau, eps=1e-5):
    """z'' + 3/(t+eps) z' + grad l = 0 for l = mean_j (W z + b - x)_j^2, by dopri5."""
    pixels = weight.shape[0]

    def field(t, state):
        z, m = state
        grad = 2.0 / pixels * (z @ weight.T + bias - x) @ weight
        return m, -(3.0 / (t + eps)) * m - grad

    times = torch.tensor([0.0, tau], dtype=torch.float64)
    z, _ = odeint(field, (z0, torch.zeros_like(z0)), times, method="dopri5", rtol=1e-11, atol=1e-12)
    return z[-1]


@pytest.mark.parametrize(
    "solver, options, tol", [("dopri5", dict(rtol=1e-10, atol=1e-12), 1e-7), ("rk4", dict(steps=2000), 1e-4)]
)
def test_second_order_flow_matches_a_reference_on_a_convex_quadratic(solver, options, tol):
    decoder, x, weight, bias = _quadratic_problem()
    z0 = torch.rand(4, 3, dtype=torch.float64)
    ours = gfe.encode(decoder, x, solver=solver, order=2, tau=20.0, z0=z0, loss="mse", **options)
    reference = _nesterov_reference(weight.detach(), bias.detach(), x, z0, 20.0)
    assert (ours.z - reference).abs().max() < tol


def test_fixed_step_nfe_and_end_time():
    torch.manual_seed(0)
    decoder, x = TinyDecoder().double(), torch.rand(3, 12, dtype=torch.float64)
    rk4 = gfe.encode(decoder, x, solver="rk4", tau=10.0, steps=25)
    euler = gfe.encode(decoder, x, solver="euler", tau=10.0, steps=25)
    assert rk4.nfe.tolist() == [100] * 3 and euler.nfe.tolist() == [25] * 3
    assert rk4.t.tolist() == [10.0] * 3
    assert torch.allclose(rk4.loss, euler.loss, atol=1e-3)


def test_encode_loss_matches_the_decoder_at_z():
    torch.manual_seed(0)
    decoder, x = TinyDecoder().double(), torch.rand(3, 12, dtype=torch.float64)
    for solver in ("amd", "rk4", "dopri5"):
        out = gfe.encode(decoder, x, solver=solver, tau=50.0)
        direct = torch.nn.functional.binary_cross_entropy_with_logits(decoder(out.z), x, reduction="none").mean(1)
        assert torch.allclose(out.loss, direct)


def test_uniform_start_is_seeded_and_zeros_is_zero():
    a = gfe.initial_latents("uniform", 4, 3, seed=7)
    b = gfe.initial_latents("uniform", 4, 3, seed=7)
    c = gfe.initial_latents("uniform", 4, 3, seed=8)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.all((a >= 0) & (a < 1))
    assert torch.count_nonzero(gfe.initial_latents("zeros", 4, 3)) == 0


@pytest.mark.parametrize(
    "kwargs, word",
    [
        (dict(solver="rk5"), "solver"),
        (dict(order=3), "order"),
        (dict(tau=0.0), "tau"),
        (dict(tau=-1.0), "tau"),
        (dict(z0="ones"), "z0"),
        (dict(loss="l1"), "loss"),
        (dict(solver="rk4", steps=0), "steps"),
        (dict(solver="rk4", dt_max=3.0), "option"),
    ],
)
def test_bad_encode_arguments_name_the_argument(kwargs, word):
    decoder, x = TinyDecoder().double(), torch.rand(2, 12, dtype=torch.float64)
    with pytest.raises(ValueError, match=word):
        gfe.encode(decoder, x, **kwargs)


def test_bce_on_a_probability_decoder_is_refused():
    decoder = TinyDecoder(output="probabilities").double()
    with pytest.raises(ValueError, match="mse"):
        gfe.encode(decoder, torch.rand(2, 12, dtype=torch.float64), loss="bce")
