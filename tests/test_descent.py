"""The per-sample quasi-Newton encoders, `lbfgs` and `lbfgs_dense`: batch independence,
monotone losses, exact NFE accounting, non-finite trials, stationarity against AMD, a
least-squares optimum, options, the encode / decoder_gradient entry points, and the dense
form against the two-loop recursion with a memory longer than the run."""

import pytest
import torch
from torch import nn

import gfe
from gfe.flows import GradientFlow
from gfe.losses import bce_with_logits, mse
from gfe.models import build_decoder
from gfe.solvers import DenseLBFGSOptions, FlowDivergedError, LBFGSOptions, make_solver
from helpers import FunctionDecoder, LinearDecoder, TinyDecoder

SOLVERS = ["lbfgs", "lbfgs_dense"]
every_solver = pytest.mark.parametrize("solver", SOLVERS)


def _mlp_problem(batch=16, seed=0):
    """The paper's MLP decoder (random weights), random images and starts, in float64."""
    torch.manual_seed(seed)
    decoder = build_decoder((1, 28, 28), 20).double()
    x = torch.rand(batch, 1, 28, 28, dtype=torch.float64)
    z0 = torch.rand(batch, 20, dtype=torch.float64)
    return decoder, x, z0


def _lightly_trained(decoder, x, steps=30, seed=0):
    """A few Adam steps fitting the decoder to x from fixed random codes, so that the
    encoding loss has real structure (a random MLP's loss is almost flat)."""
    torch.manual_seed(seed)
    codes = torch.randn(x.shape[0], decoder.latent_dim, dtype=x.dtype)
    optimiser = torch.optim.Adam(decoder.parameters(), lr=1e-3)
    for _ in range(steps):
        optimiser.zero_grad()
        bce_with_logits(decoder(codes), x).mean().backward()
        optimiser.step()
    return decoder


def _gradient_norm(decoder, z, x, loss_fn=bce_with_logits):
    with torch.enable_grad():
        z = z.detach().clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(loss_fn(decoder(z), x).sum(), z)
    return grad.norm(dim=1)


@every_solver
def test_encoding_of_a_sample_does_not_depend_on_its_batch(solver):
    decoder, x, z0 = _mlp_problem(16, seed=3)
    batch = gfe.encode(decoder, x, solver=solver, loss="bce", z0=z0)
    differences = []
    for i in range(16):
        alone = gfe.encode(decoder, x[i : i + 1], solver=solver, loss="bce", z0=z0[i : i + 1])
        differences.append(float((alone.z[0] - batch.z[i]).abs().max()))
        assert alone.nfe[0] == batch.nfe[i] and alone.rejected[0] == batch.rejected[i]
    assert max(differences) < 1e-5, max(differences)
    assert len(set(batch.nfe.tolist())) > 1, "per-sample stopping should give different NFE"


@every_solver
def test_per_sample_loss_never_increases_and_accepted_trials_satisfy_armijo(solver):
    torch.manual_seed(1)
    decoder = TinyDecoder().double()
    x = torch.rand(12, 12, dtype=torch.float64)
    z0 = 3 * torch.randn(12, 3, dtype=torch.float64)
    flow = GradientFlow(decoder, x, bce_with_logits, alpha=7.0)  # alpha must not matter
    trace = []
    # A large first step makes the line search backtrack.
    with torch.no_grad():
        out = make_solver(solver, initial_step=20.0, tol=0.0, grad_tol=1e-9).solve(flow, z0, 1.0, trace=trace)
    start = bce_with_logits(decoder(z0), x)
    last, accepted = start.tolist(), [0] * 12
    for it in trace:
        ok = it["accepted"]
        assert torch.all(it["loss1"][ok] <= it["loss"][ok])
        for i, sample in enumerate(it["idx"].tolist()):
            assert float(it["loss"][i]) == last[sample]  # the trial starts from the last accepted point
            if ok[i]:
                assert float(it["loss1"][i]) <= last[sample]
                last[sample] = float(it["loss1"][i])
                accepted[sample] += 1
    assert torch.equal(torch.tensor(last, dtype=torch.float64), out.loss)
    assert torch.all(out.loss < start)
    assert int(out.rejected.sum()) > 0, "the settings were meant to make the line search backtrack"
    assert out.t.tolist() == accepted  # t counts the accepted iterations


class RowCounter(nn.Module):
    """Wraps a decoder and counts the rows (samples) of every forward call."""

    def __init__(self, decoder):
        super().__init__()
        self.decoder, self.rows, self.calls = decoder, 0, 0
        self.latent_dim, self.output, self.image_shape = decoder.latent_dim, decoder.output, decoder.image_shape

    def forward(self, z):
        self.rows += z.shape[0]
        self.calls += 1
        return self.decoder(z)


@every_solver
def test_nfe_counts_every_decoder_row_exactly(solver):
    decoder, x, z0 = _mlp_problem(16, seed=5)
    counter = RowCounter(decoder)
    out = gfe.encode(counter, x, solver=solver, loss="bce", z0=z0, tol=1e-7)
    assert int(out.nfe.sum()) == counter.rows  # one forward (+ its backward) per evaluation
    assert int(out.nfe.max()) == counter.calls  # the slowest sample takes part in every call
    assert torch.all(out.nfe == out.t.long() + out.rejected + 1)  # the start + one per trial


@every_solver
def test_stop_rules_cap_iterations_and_evaluations(solver):
    decoder, x, z0 = _mlp_problem(8, seed=6)
    capped = gfe.encode(decoder, x, solver=solver, loss="bce", z0=z0, tol=0.0, max_iters=3)
    assert torch.all(capped.t == 3) and not capped.converged.any()
    counted = gfe.encode(decoder, x, solver=solver, loss="bce", z0=z0, tol=0.0, max_evals=5)
    assert torch.all(counted.nfe == 5) and not counted.converged.any()
    loose = gfe.encode(decoder, x, solver=solver, loss="bce", z0=z0, grad_tol=1e-3, tol=0.0)
    assert loose.converged.all()
    assert torch.all(_gradient_norm(decoder, loose.z, x) < 1e-3)


def _nan_outside(radius):
    """D(z) = sigmoid(z . 1) on 4 pixels, NaN where |z| > radius."""

    def fn(z):
        out = torch.sigmoid(z.sum(1, keepdim=True)).expand(-1, 4)
        return torch.where(z.norm(dim=1, keepdim=True) > radius, torch.nan, out)

    return fn


@every_solver
def test_non_finite_trials_are_rejected_and_the_loss_never_gets_worse(solver):
    decoder = FunctionDecoder(_nan_outside(1.0), latent_dim=2)
    x = torch.tensor([[0.9] * 4, [0.1] * 4, [0.5] * 4], dtype=torch.float64)
    z0 = torch.tensor([[0.0, 0.0], [0.5, 0.5], [0.2, -0.1]], dtype=torch.float64)
    out = gfe.encode(decoder, x, solver=solver, loss="mse", z0=z0, initial_step=5.0)
    start = mse(decoder(z0), x)
    assert torch.isfinite(out.z).all() and torch.isfinite(out.loss).all()
    assert torch.all(out.z.norm(dim=1) <= 1.0)
    assert torch.all(out.loss <= start)
    assert torch.all(out.rejected > 0)  # a first move of length 5 lands where D is NaN
    assert out.loss[2] < start[2]  # the target 0.5 is reachable inside the ball


class _NanGradientOutside(torch.autograd.Function):
    """Identity on z whose backward is NaN for rows with |z| > 1 (the loss stays finite)."""

    @staticmethod
    def forward(ctx, z):
        ctx.save_for_backward(z)
        return z.clone()

    @staticmethod
    def backward(ctx, grad):
        (z,) = ctx.saved_tensors
        return torch.where(z.norm(dim=1, keepdim=True) > 1.0, torch.nan, grad)


@every_solver
def test_finite_loss_with_non_finite_gradient_is_rejected(solver):
    decoder = FunctionDecoder(
        lambda z: torch.sigmoid(_NanGradientOutside.apply(z).sum(1, keepdim=True)).expand(-1, 4), latent_dim=2
    )
    x = torch.tensor([[0.9] * 4, [0.5] * 4], dtype=torch.float64)
    z0 = torch.tensor([[0.0, 0.0], [0.5, 0.5]], dtype=torch.float64)
    out = gfe.encode(decoder, x, solver=solver, loss="mse", z0=z0, initial_step=5.0)
    assert torch.isfinite(out.z).all() and torch.all(out.z.norm(dim=1) <= 1.0)
    assert torch.all(out.rejected > 0) and torch.all(out.loss < mse(decoder(z0), x))


def test_two_loop_matches_the_dense_bfgs_inverse_hessian_with_uneven_histories():
    from gfe.solvers.lbfgs import _two_loop

    torch.manual_seed(11)
    batch, memory, dim = 4, 3, 5
    counts = [0, 1, 2, 3]  # valid pairs per sample, newest last, missing pairs zero
    s, y = torch.zeros(batch, memory, dim, dtype=torch.float64), torch.zeros(batch, memory, dim, dtype=torch.float64)
    rho, gamma = torch.zeros(batch, memory, dtype=torch.float64), torch.ones(batch, dtype=torch.float64)
    grad = torch.randn(batch, dim, dtype=torch.float64)
    expected = []
    for b, count in enumerate(counts):
        a = torch.randn(dim, dim, dtype=torch.float64)
        hessian = a @ a.T + torch.eye(dim, dtype=torch.float64)
        pairs = [(sk, hessian @ sk) for sk in torch.randn(count, dim, dtype=torch.float64)]
        for k, (sk, yk) in enumerate(pairs):
            s[b, memory - count + k], y[b, memory - count + k], rho[b, memory - count + k] = sk, yk, 1 / (sk @ yk)
        if pairs:
            gamma[b] = (pairs[-1][0] @ pairs[-1][1]) / (pairs[-1][1] @ pairs[-1][1])
        inverse = gamma[b] * torch.eye(dim, dtype=torch.float64)
        for sk, yk in pairs:  # oldest to newest
            r = 1 / (sk @ yk)
            left = torch.eye(dim, dtype=torch.float64) - r * torch.outer(sk, yk)
            inverse = left @ inverse @ left.T + r * torch.outer(sk, sk)
        expected.append(inverse @ grad[b])
    assert torch.allclose(_two_loop(grad, s, y, rho, gamma), torch.stack(expected), atol=1e-12)


@every_solver
def test_non_finite_start_names_the_sample(solver):
    decoder, x, z0 = _mlp_problem(4, seed=7)
    z0[2, 5] = torch.nan
    with pytest.raises(FlowDivergedError, match=r"\[2\]") as error:
        gfe.encode(decoder, x, solver=solver, loss="bce", z0=z0)
    assert error.value.samples == [2]


@every_solver
def test_result_is_stationary_and_as_low_as_a_long_amd_run(solver):
    decoder, x, z0 = _mlp_problem(16, seed=8)
    decoder = _lightly_trained(decoder, x)
    start = torch.zeros_like(z0)
    lbfgs = gfe.encode(decoder, x, solver=solver, loss="bce", z0=start, tol=0.0, grad_tol=1e-7)
    amd = gfe.encode(decoder, x, solver="amd", loss="bce", z0=start, tau=1e4)
    assert lbfgs.converged.all()
    assert torch.all(_gradient_norm(decoder, lbfgs.z, x) < 1e-4)
    assert float(lbfgs.loss.mean()) <= float(amd.loss.mean()) + 1e-6
    assert float(lbfgs.nfe.float().mean()) < float(amd.nfe.float().mean())


@every_solver
def test_least_squares_optimum_of_a_linear_decoder(solver):
    torch.manual_seed(9)
    weight = torch.randn(12, 3, dtype=torch.float64)
    bias = torch.randn(12, dtype=torch.float64)
    decoder = LinearDecoder(weight, bias)
    x = torch.rand(5, 12, dtype=torch.float64)
    optimum = torch.linalg.lstsq(weight, (x - bias).T).solution.T
    out = gfe.encode(decoder, x, solver=solver, loss="mse", z0="zeros", tol=0.0, grad_tol=1e-9)
    assert out.converged.all()
    assert (out.z - optimum).abs().max() < 1e-6
    assert torch.all(out.nfe < 40)  # a 3-d quadratic: L-BFGS needs a handful of steps


@pytest.mark.parametrize(
    "bad",
    [
        dict(memory=0),
        dict(memory=2.5),
        dict(c1=0.0),
        dict(c1=1.0),
        dict(shrink=1.0),
        dict(tol=True),
        dict(grad_tol=-1.0),
        dict(max_backtracks=-1),
        dict(initial_step=0.0),
        dict(initial_step=True),
        dict(max_evals=0),
        dict(max_iters="5"),
    ],
)
def test_bad_options_are_rejected_with_the_option_name(bad):
    name = next(iter(bad))
    with pytest.raises(ValueError, match=name):
        LBFGSOptions(**bad)
    with pytest.raises(ValueError, match=name):
        make_solver("lbfgs", **bad)
    if name != "memory":
        with pytest.raises(ValueError, match=f"dense L-BFGS option {name}="):
            DenseLBFGSOptions(**bad)
        with pytest.raises(ValueError, match=name):
            make_solver("lbfgs_dense", **bad)


def test_the_dense_form_has_no_memory_option():
    with pytest.raises(ValueError, match="lbfgs_dense.*memory"):
        make_solver("lbfgs_dense", memory=8)


@pytest.mark.parametrize("options", [dict(tol=1e-6), dict(tol=0.0, grad_tol=1e-7), dict(max_evals=12)])
def test_dense_form_takes_the_same_steps_as_the_two_loop_recursion_with_a_long_memory(options):
    """H = gamma A + C kept densely is L-BFGS over all pairs: the same iterates as the
    two-loop recursion with a memory longer than the run, up to rounding, in float64."""
    decoder, x, z0 = _mlp_problem(16, seed=8)
    decoder = _lightly_trained(decoder, x)
    two_loop = gfe.encode(decoder, x, solver="lbfgs", memory=1000, loss="bce", z0=z0, **options)
    dense = gfe.encode(decoder, x, solver="lbfgs_dense", loss="bce", z0=z0, **options)
    assert torch.equal(dense.nfe, two_loop.nfe) and torch.equal(dense.rejected, two_loop.rejected)
    assert torch.equal(dense.converged, two_loop.converged) and torch.equal(dense.t, two_loop.t)
    assert (dense.z - two_loop.z).abs().max() < 1e-9
    assert (dense.loss - two_loop.loss).abs().max() < 1e-12


def test_dense_form_follows_the_inputs_dtype_and_matches_float64_in_float32():
    decoder, x, z0 = _mlp_problem(6, seed=12)
    decoder = _lightly_trained(decoder, x)
    exact = gfe.encode(decoder, x, solver="lbfgs_dense", loss="bce", z0=z0, max_evals=10)
    single = gfe.encode(decoder.float(), x.float(), solver="lbfgs_dense", loss="bce", z0=z0.float(), max_evals=10)
    assert single.z.dtype == single.loss.dtype == torch.float32
    assert single.nfe.dtype == single.rejected.dtype == torch.int64 and single.t.dtype == torch.float64
    assert (single.loss.double() - exact.loss).abs().max() < 1e-5


def test_dense_form_encodes_a_bfloat16_decoder():
    """numpy has no bfloat16: the host bookkeeping runs in float32, the decoder in bfloat16."""
    decoder, x, z0 = _mlp_problem(4, seed=13)
    decoder, x, z0 = decoder.bfloat16(), x.bfloat16(), z0.bfloat16()
    out = gfe.encode(decoder, x, solver="lbfgs_dense", loss="bce", z0=z0, max_evals=6)
    assert out.z.dtype == out.loss.dtype == torch.bfloat16
    assert torch.all(out.nfe <= 6) and torch.isfinite(out.loss.float()).all()
    assert torch.all(out.loss <= bce_with_logits(decoder(z0), x))


@every_solver
def test_unknown_option_and_second_order_flow_are_refused(solver):
    decoder = TinyDecoder().double()
    x = torch.rand(2, 12, dtype=torch.float64)
    with pytest.raises(ValueError, match=solver):
        gfe.encode(decoder, x, solver=solver, dt_init=1.0)
    with pytest.raises(ValueError, match="order"):
        gfe.encode(decoder, x, solver=solver, order=2)


@every_solver
def test_encode_and_the_approximate_decoder_gradient_work_end_to_end(solver):
    torch.manual_seed(10)
    decoder = build_decoder((1, 28, 28), 20)
    x = torch.rand(6, 1, 28, 28)
    out = gfe.encode(decoder, x, solver=solver, loss="bce", z0="zeros")
    assert out.z.shape == (6, 20) and out.z.dtype == torch.float32 and out.nfe.dtype == torch.int64
    assert out.t.dtype == torch.float64 and out.converged.dtype == torch.bool
    assert torch.all(out.loss < bce_with_logits(decoder(torch.zeros(6, 20)), x))
    grads = gfe.decoder_gradient(decoder, x, gradient="approximate", solver=solver, loss="bce", z0="zeros")
    assert [g.shape for g in grads] == [p.shape for p in decoder.parameters()]
    assert all(torch.isfinite(g).all() for g in grads)
    for gradient in ("adjoint", "backprop"):
        with pytest.raises(ValueError, match="approximate"):
            gfe.decoder_gradient(decoder, x, gradient=gradient, solver=solver, loss="bce")
