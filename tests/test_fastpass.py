"""The hand-written MLP pass (`gfe.fastpass`) and AMD's fused shared-rule loop give the
numbers of the autograd pass and the general AMD loop, and only where they apply."""

import pytest
import torch
from torch import nn

import gfe
from gfe import fastpass
from gfe.flows import GradientFlow
from gfe.losses import bce_with_logits, mse
from gfe.models import ConvDecoder, MLPDecoder
from gfe.training import train
from helpers import TinyDecoder

ENCODE = dict(  # the gfe_amd training settings of benchmarks/training_step.py
    solver="amd",
    order=1,
    tau=1e4,
    z0="uniform",
    loss="bce",
    dt_init=1.0,
    dt_max=10.0,
    shrink=0.5,
    sigma=1e-5,
    conv_fraction=0.98,
    conv_tol=1e-5,
    max_halvings=15,
    shared=True,
)


def _autograd(decoder, loss_fn, z, x, alpha):
    with torch.enable_grad():
        z = z.clone().requires_grad_(True)
        losses = loss_fn(decoder(z), x)
        (grad,) = torch.autograd.grad(losses.sum(), z)
    return losses.detach(), -alpha * grad


@pytest.mark.parametrize("loss_fn", [bce_with_logits, mse])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fast_pass_equals_autograd(loss_fn, dtype):
    torch.manual_seed(0)
    decoder = MLPDecoder().to(dtype)
    x = (torch.rand(5, 1, 28, 28) > 0.6).to(dtype)
    z = torch.rand(5, 20, dtype=dtype)
    flow = GradientFlow(decoder, x, loss_fn, alpha=3.0)
    assert isinstance(flow.fast_pass, fastpass.MLPPass)
    with torch.no_grad():
        losses, velocity = flow.loss_and_velocity(z)
    expected_losses, expected_velocity = _autograd(decoder, loss_fn, z, x, 3.0)
    assert (losses - expected_losses).abs().max() < 1e-6
    assert (velocity - expected_velocity).abs().max() < 1e-6
    assert flow.nfe == 1


class Wrapped(nn.Module):
    """An MLP that is not an MLPDecoder: a custom module."""

    output = "logits"
    latent_dim = 20
    image_shape = (1, 28, 28)

    def __init__(self):
        super().__init__()
        self.net = MLPDecoder().net

    def forward(self, z):
        return self.net(z).reshape(-1, 1, 28, 28)


class Tanh(MLPDecoder):
    """An MLPDecoder subclass with another forward."""

    def forward(self, z):
        return torch.tanh(super().forward(z))


def test_other_decoders_and_losses_keep_autograd():
    x = torch.rand(2, 1, 28, 28)
    for decoder in (Wrapped(), Tanh(), TinyDecoder()):
        assert GradientFlow(decoder, x, bce_with_logits).fast_pass is None
    assert GradientFlow(ConvDecoder(), torch.rand(2, 3, 32, 32), mse).fast_pass is None
    elu_free = MLPDecoder()
    elu_free.net[1] = nn.Tanh()
    assert GradientFlow(elu_free, x, bce_with_logits).fast_pass is None
    assert GradientFlow(MLPDecoder(), x, lambda out, target: (out - target).abs().flatten(1).mean(1)).fast_pass is None


def test_a_graph_or_the_reference_switch_uses_autograd():
    torch.manual_seed(1)
    decoder, x, z = MLPDecoder(), torch.rand(3, 1, 28, 28), torch.rand(3, 20)
    flow = GradientFlow(decoder, x, bce_with_logits)
    with torch.enable_grad():
        _, velocity = flow.loss_and_velocity(z.requires_grad_(True))
    assert velocity.grad_fn is not None  # create_graph: the autograd path
    calls = []
    flow.fast_pass = lambda *args: calls.append(args)
    with torch.no_grad(), fastpass.reference_path():
        flow.loss_and_velocity(z.detach())
    assert not calls and fastpass.enabled()


def test_fused_shared_loop_equals_the_general_loop_with_forced_steps():
    torch.manual_seed(0)
    decoder = TinyDecoder().double()
    x = torch.rand(8, 12, dtype=torch.float64)
    options = dict(solver="amd", tau=200.0, z0="uniform", seed=2, alpha=1000.0, max_halvings=3, shared=True)
    fused = gfe.encode(decoder, x, **options)
    with fastpass.reference_path():
        general = gfe.encode(decoder, x, **options)
    assert int(general.rejected[0]) > 0
    for name in ("z", "loss", "nfe", "converged", "t", "rejected"):
        assert torch.equal(getattr(fused, name), getattr(general, name)), name


def test_training_steps_equal_the_reference_path():
    """200 GFE-amd training steps (shared AMD, tau 1e4, batch 5) of a small MLPDecoder on
    binary-ish images: every step's NFE is the reference's, every loss within 1e-5 (tau 2e3
    instead of 1e4 keeps the test near 30 s)."""
    generator = torch.Generator().manual_seed(0)
    shape = (1, 8, 8)
    images = (torch.rand(60, *shape, generator=generator) > 0.6).float() * 0.9 + 0.05
    options = dict(ENCODE, tau=2e3)

    def run():
        torch.manual_seed(0)
        decoder = MLPDecoder(latent_dim=4, image_shape=shape, hidden=(32, 64))
        return train(decoder, images, steps=200, batch_size=5, seed=0, encode_options=options), decoder

    fast, fast_decoder = run()
    with fastpass.reference_path():
        reference, reference_decoder = run()
    assert [row["nfe"] for row in fast.steps] == [row["nfe"] for row in reference.steps]
    differences = [abs(a["loss"] - b["loss"]) for a, b in zip(fast.steps, reference.steps, strict=True)]
    assert len(differences) == 200 and max(differences) < 1e-5
    assert fast.steps[-1]["loss"] < fast.steps[0]["loss"]
    for p, q in zip(fast_decoder.parameters(), reference_decoder.parameters(), strict=True):
        assert torch.allclose(p, q, atol=1e-6)
