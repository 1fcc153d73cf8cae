"""Decoder gradients: the full adjoint equals back-propagation through the solver; the
approximate gradient differs while the flow is far from converged, less as it converges."""

import copy

import pytest
import torch

import gfe
from helpers import TinyDecoder


def _flat(grads):
    return torch.cat([g.flatten() for g in grads])


def _relative(a, b):
    return float((a - b).norm() / b.norm())


@pytest.fixture
def problem():
    """Targets made by a decoder, then the decoder perturbed: the flow has a finite
    minimum (so it converges) and the decoder gradient there is not zero."""
    torch.manual_seed(0)
    decoder = TinyDecoder().double()
    with torch.no_grad():
        x = torch.sigmoid(decoder(torch.randn(4, 3, dtype=torch.float64)))
        for p in decoder.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return decoder, x


def _all_methods(decoder, x, tau, steps, order=1):
    options = dict(solver="rk4", tau=tau, steps=steps, alpha=50.0, order=order, z0="uniform", seed=1)
    return {
        m: _flat(gfe.decoder_gradient(decoder, x, gradient=m, **options))
        for m in ("approximate", "backprop", "adjoint")
    }


def test_adjoint_equals_backprop_on_an_unconverged_flow(problem):
    decoder, x = problem
    grads = _all_methods(decoder, x, tau=1.0, steps=40)
    assert _relative(grads["adjoint"], grads["backprop"]) < 1e-6
    # Far from convergence the integral term matters: the approximation is visibly off.
    assert _relative(grads["approximate"], grads["backprop"]) > 1e-2


def test_adjoint_equals_backprop_for_the_second_order_flow(problem):
    decoder, x = problem
    grads = _all_methods(decoder, x, tau=1.0, steps=80, order=2)
    assert _relative(grads["adjoint"], grads["backprop"]) < 1e-6


def test_approximation_improves_as_the_flow_converges(problem):
    decoder, x = problem
    errors = []
    for tau in (1.0, 3.0, 10.0):
        grads = _all_methods(decoder, x, tau=tau, steps=int(40 * tau))
        errors.append(_relative(grads["approximate"], grads["adjoint"]))
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 1e-2 * errors[0]


def test_gradients_come_in_parameter_order_and_leave_the_decoder_untouched(problem):
    decoder, x = problem
    before = copy.deepcopy(decoder.state_dict())
    result = gfe.decoder_loss_and_gradient(decoder, x, gradient="adjoint", solver="rk4", tau=1.0, steps=10)
    assert [g.shape for g in result.grads] == [p.shape for p in decoder.parameters()]
    assert all(p.grad is None for p in decoder.parameters())
    assert all(torch.equal(before[k], v) for k, v in decoder.state_dict().items())
    assert result.loss.shape == (4,) and result.nfe.shape == (4,)


def test_approximate_gradient_is_the_gradient_at_the_encoding(problem):
    decoder, x = problem
    result = gfe.decoder_loss_and_gradient(decoder, x, gradient="approximate", solver="amd", tau=100.0)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(decoder(result.z), x, reduction="none").mean(1)
    expected = torch.autograd.grad(loss.sum(), list(decoder.parameters()))
    assert _relative(_flat(result.grads), _flat(expected)) < 1e-12


def test_adjoint_through_amd_is_refused_with_a_reason(problem):
    decoder, x = problem
    with pytest.raises(ValueError, match="approximate"):
        gfe.decoder_gradient(decoder, x, gradient="adjoint", solver="amd")
    with pytest.raises(ValueError, match="gradient='exact' is unknown"):
        gfe.decoder_gradient(decoder, x, gradient="exact")
