"""A decoder that breaks during an encode (its output, loss or gradient turns non-finite
where it was finite) stops every solver with a FlowDivergedError naming the solver, on every
path (AMD per sample, the fused shared loop, the general shared loop,
groups of lockstep runs, the hand-written MLP pass; rk4, euler, dopri5; both L-BFGS forms),
and evaluation never reports such an encoding as converged."""

import pytest
import torch
from torch import nn

import gfe
from gfe import fastpass
from gfe.evaluation import evaluate
from gfe.flows import GradientFlow
from gfe.lockstep import LockstepFlow, StackedDecoders
from gfe.losses import bce_with_logits
from gfe.models import MLPDecoder
from gfe.solvers import AMDSolver, FlowDivergedError
from helpers import TinyDecoder


class _NanBackward(torch.autograd.Function):
    """Identity whose backward is NaN: a finite output with a non-finite gradient."""

    @staticmethod
    def forward(ctx, out):
        return out.clone()

    @staticmethod
    def backward(ctx, grad):
        return torch.full_like(grad, torch.nan)


class BreakingDecoder(nn.Module):
    """TinyDecoder (3 -> 12 logits) whose output turns bad from its second call on: 'nan'
    or 'inf' in every row, 'nan_one' NaN in the first row of each call only, 'nan_grad' a
    finite output with a NaN gradient."""

    def __init__(self, how: str):
        super().__init__()
        torch.manual_seed(0)
        self.inner = TinyDecoder().double()
        self.how, self.calls = how, 0
        self.latent_dim, self.output, self.image_shape = 3, "logits", (12,)

    def forward(self, z):
        self.calls += 1
        out = self.inner(z)
        if self.calls < 2:
            return out
        if self.how == "nan_grad":
            return _NanBackward.apply(out)
        rows = torch.ones(len(out), 1, dtype=torch.bool)
        if self.how == "nan_one":
            rows[1:] = False
        return torch.where(rows, float("inf") if self.how == "inf" else float("nan"), out)


BREAKS = ["nan", "inf", "nan_one", "nan_grad"]
SOLVERS = {  # id: (solver, options, the solver as its messages name it)
    "amd": ("amd", {}, "AMD"),
    "amd shared (fused loop)": ("amd", {"shared": True}, "AMD"),
    "rk4": ("rk4", {"steps": 10}, "rk4"),
    "euler": ("euler", {"steps": 10}, "euler"),
    "dopri5": ("dopri5", {}, "dopri5"),
    "lbfgs": ("lbfgs", {}, "L-BFGS"),
    "lbfgs_dense": ("lbfgs_dense", {}, "dense L-BFGS"),
}


def _images():
    return torch.rand(4, 12, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


def _raises_naming(label, encode, *args, **kwargs):
    with pytest.raises(FlowDivergedError) as info:
        encode(*args, **kwargs)
    message = str(info.value)
    assert message.startswith(f"{label}:") and "\n" not in message, message
    return info.value


@pytest.mark.parametrize("how", BREAKS)
@pytest.mark.parametrize("case", list(SOLVERS))
def test_every_solver_raises_when_the_decoder_breaks(case, how):
    solver, options, label = SOLVERS[case]
    _raises_naming(label, gfe.encode, BreakingDecoder(how), _images(), solver=solver, tau=100.0, **options)


@pytest.mark.parametrize("how", BREAKS)
def test_the_general_shared_loop_raises_when_the_decoder_breaks(how):
    with fastpass.reference_path():
        _raises_naming("AMD", gfe.encode, BreakingDecoder(how), _images(), solver="amd", tau=100.0, shared=True)


@pytest.mark.parametrize("case", ["amd", "amd shared (fused loop)", "lbfgs", "lbfgs_dense"])
def test_the_message_says_the_decoder_turned_non_finite_and_names_the_samples(case):
    solver, options, label = SOLVERS[case]
    error = _raises_naming(label, gfe.encode, BreakingDecoder("nan_one"), _images(), solver=solver, **options)
    assert "the decoder output or loss (or its gradient) turned non-finite" in str(error)
    assert error.samples and all(0 <= i < 4 for i in error.samples)


@pytest.mark.parametrize("how", ["nan", "nan_one"])
@pytest.mark.parametrize(
    "options", [dict(solver="amd", tau=100.0), dict(solver="amd", tau=100.0, shared=True), dict(solver="lbfgs")]
)
def test_evaluation_of_a_breaking_decoder_does_not_report_converged(options, how):
    with pytest.raises(FlowDivergedError):
        evaluate(BreakingDecoder(how), _images(), encode_options=options)


@pytest.mark.parametrize("shared", [False, True])
def test_the_hand_written_mlp_pass_that_turns_non_finite_raises(monkeypatch, shared):
    calls = []
    original = fastpass.MLPPass.__call__

    def breaking(self, z, target):
        calls.append(1)
        losses, grad = original(self, z, target)
        return (losses, grad) if len(calls) < 2 else (losses * torch.nan, grad)

    monkeypatch.setattr(fastpass.MLPPass, "__call__", breaking)
    torch.manual_seed(0)
    decoder = MLPDecoder(latent_dim=4, hidden=(8,)).double()
    x = torch.rand(3, 1, 28, 28, dtype=torch.float64)
    assert GradientFlow(decoder, x, bce_with_logits).fast_pass is not None
    _raises_naming("AMD", gfe.encode, decoder, x, solver="amd", tau=100.0, shared=shared)
    assert len(calls) > 2


def test_a_lockstep_group_whose_decoders_break_raises(monkeypatch):
    calls = []
    original = StackedDecoders.run

    def breaking(self, z, params):
        calls.append(1)
        out = original(self, z, params)
        return out if len(calls) < 2 else out * torch.nan

    monkeypatch.setattr(StackedDecoders, "run", breaking)
    torch.manual_seed(0)
    stack = StackedDecoders([MLPDecoder(latent_dim=4, hidden=(8,)).double() for _ in range(2)])
    x = torch.rand(6, 1, 28, 28, dtype=torch.float64)
    flow = LockstepFlow(stack, x, bce_with_logits, group_size=3)
    with (
        torch.no_grad(),
        pytest.raises(
            FlowDivergedError, match=r"^AMD: the decoder output or loss \(or its gradient\) turned non-finite"
        ),
    ):
        AMDSolver(shared=True).solve(flow, torch.rand(6, 4, dtype=torch.float64), 100.0)


class _NanBeyond(nn.Module):
    """D(z) = z on one pixel, NaN beyond z = 1.5: the flow towards 2 runs into the wall."""

    latent_dim, output, image_shape = 1, "probabilities", (1,)

    def forward(self, z):
        return torch.where(z > 1.5, torch.nan, z)


@pytest.mark.parametrize(
    "options",
    [
        dict(solver="amd"),
        dict(solver="amd", shared=True),
        dict(solver="lbfgs"),
        dict(solver="lbfgs_dense"),
    ],
)
def test_a_decoder_non_finite_only_in_part_of_latent_space_still_rejects_the_step(options):
    # The smallest step from z < 1.5 still lands beyond the wall, so the check runs, finds
    # the decoder finite at z, and the step stays rejected as before.
    x = torch.tensor([[2.0], [1.0]], dtype=torch.float64)
    out = gfe.encode(_NanBeyond(), x, loss="mse", tau=50.0, **options)
    assert torch.isfinite(out.z).all() and torch.isfinite(out.loss).all()
    assert out.z[0].item() <= 1.5 and out.z[0].item() > 1.49 and out.rejected[0].item() > 0
