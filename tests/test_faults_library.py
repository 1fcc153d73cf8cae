"""Faults at the library's front door: evaluation numbers that must not depend on the
evaluation batch size, and bad inputs to `gfe.encode` / `gfe.decoder_gradient` /
`evaluate` that must fail at once with a one-line error naming the argument, its value
and the fix (not a torch traceback from deep inside, a silently negative loss or a
silently different rule)."""

import numpy as np
import pytest
import torch

import gfe
from gfe.evaluation import evaluate
from gfe.models import build_decoder
from gfe.solvers import SOLVERS, AMDOptions, make_solver
from helpers import FunctionDecoder, TinyDecoder

MNIST = (1, 28, 28)


def _images(n, dtype=torch.float32, seed=1):
    return torch.rand(n, *MNIST, generator=torch.Generator().manual_seed(seed)).to(dtype)


def _mlp(latent_dim=8, dtype=torch.float32, seed=0):
    torch.manual_seed(seed)
    return build_decoder(MNIST, latent_dim).to(dtype)


def _raises(error, match, fn, *args, **kwargs):
    """fn fails with `error` matching `match`, in a one-line message."""
    with pytest.raises(error, match=match) as info:
        fn(*args, **kwargs)
    assert "\n" not in str(info.value)
    return info.value


# ====================================================== 1. evaluation vs batch size


def test_initial_latents_of_an_image_do_not_depend_on_its_batch():
    whole = gfe.initial_latents("uniform", 6, 5, seed=7, sample_ids=torch.arange(6), dtype=torch.float64)
    part = gfe.initial_latents("uniform", 2, 5, seed=7, sample_ids=[3, 4], dtype=torch.float64)
    assert torch.equal(part, whole[3:5])
    assert ((0 <= whole) & (whole < 1)).all() and len(set(whole[:, 0].tolist())) == 6
    other_seed = gfe.initial_latents("uniform", 6, 5, seed=8, sample_ids=torch.arange(6), dtype=torch.float64)
    assert not torch.isclose(other_seed, whole).any()
    # float32 rows are the float64 draw rounded, on any device
    single = gfe.initial_latents("uniform", 2, 5, seed=7, sample_ids=torch.tensor([3, 4]))
    assert single.dtype == torch.float32 and torch.equal(single, whole[3:5].float())


def test_initial_latents_without_sample_ids_keep_the_training_draw():
    expected = torch.rand(4, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64).float()
    assert torch.equal(gfe.initial_latents("uniform", 4, 3, seed=5), expected)


@pytest.mark.parametrize("ids", [[0, 1], [0, 1, -2], [0.0, 1.0, 2.0], torch.arange(6).reshape(2, 3)])
def test_bad_sample_ids_are_refused(ids):
    _raises(ValueError, "sample_ids=.*3 integers >= 0", gfe.initial_latents, "uniform", 3, 2, seed=0, sample_ids=ids)


def test_encode_and_the_gradient_start_from_the_rows_of_their_sample_ids():
    decoder = _mlp(latent_dim=4)
    x, ids = _images(3), torch.tensor([10, 4, 7])
    trace = []
    gfe.encode(decoder, x, solver="amd", tau=5.0, z0="uniform", seed=2, sample_ids=ids, trace=trace)
    assert torch.equal(trace[0]["z"], gfe.initial_latents("uniform", 3, 4, seed=2, sample_ids=ids))
    encode_options = dict(solver="rk4", tau=1.0, steps=2, z0="uniform", seed=2, sample_ids=ids)
    encoded = gfe.encode(decoder, x, **encode_options)
    for gradient in ("approximate", "backprop"):
        result = gfe.decoder_loss_and_gradient(decoder, x, gradient=gradient, **encode_options)
        assert torch.allclose(result.z, encoded.z, rtol=0, atol=1e-6), gradient


def _elementwise_decoder(dtype):
    """D(z) built from +, * and powers only: every op rounds each element the same way
    whatever the batch, unlike BLAS products and vectorised exp (see the next test)."""
    g = torch.Generator().manual_seed(0)
    w = torch.rand(12, generator=g, dtype=dtype) + 0.5
    b = torch.rand(12, generator=g, dtype=dtype) * 0.2
    return FunctionDecoder(lambda z: (z.repeat(1, 3) * w - b) ** 2, latent_dim=4)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    "encode_options", [dict(solver="amd", tau=300.0, alpha=5.0), dict(solver="rk4", tau=3.0, steps=10)]
)
def test_evaluation_is_bit_for_bit_independent_of_batch_size(dtype, encode_options):
    decoder = _elementwise_decoder(dtype)
    images = torch.rand(23, 12, generator=torch.Generator().manual_seed(1), dtype=dtype)
    encode_options = dict(encode_options, z0="uniform", loss="mse")
    runs = [evaluate(decoder, images, encode_options=encode_options, batch_size=size, seed=3) for size in (5, 23, 500)]
    for run in runs[:1] + runs[2:]:
        assert torch.equal(run.loss, runs[1].loss) and torch.equal(run.z, runs[1].z)
        assert torch.equal(run.nfe, runs[1].nfe) and torch.equal(run.converged, runs[1].converged)
    if encode_options["solver"] == "amd":
        assert len(set(runs[1].nfe.tolist())) > 1, "samples should leave the working set at different times"


def test_mlp_evaluation_is_independent_of_batch_size_up_to_kernel_rounding():
    """The MLP decoder's batched kernels (MKL GEMM, vectorised ELU/sigmoid with a scalar
    tail) round a row differently depending on the batch's row count, by about one ulp;
    so z and the loss agree to float32 rounding, and the step decisions (NFE) exactly."""
    decoder, images = _mlp(), _images(23)
    encode_options = dict(solver="amd", tau=200.0, z0="uniform", alpha=30.0)
    runs = [evaluate(decoder, images, encode_options=encode_options, batch_size=size, seed=3) for size in (5, 23, 500)]
    for run in runs:
        assert torch.equal(run.nfe, runs[1].nfe)
        torch.testing.assert_close(run.z, runs[1].z, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(run.loss, runs[1].loss, rtol=1e-5, atol=1e-6)


# ====================================================== 2. inputs checked up front


def _entry_points():
    """Each public way into the flow, as fn(decoder, x, **options)."""

    def gradient(decoder, x, **options):
        return gfe.decoder_gradient(decoder, x, solver="amd", **options)

    def evaluation(decoder, x, **options):
        return evaluate(decoder, x, encode_options=options, batch_size=8)

    return [gfe.encode, gradient, evaluation]


ENTRY = pytest.mark.parametrize("entry", _entry_points(), ids=["encode", "decoder_gradient", "evaluate"])


@ENTRY
def test_images_that_are_not_a_tensor_are_refused(entry):
    _raises(TypeError, r"x is a list; pass a torch.Tensor", entry, _mlp(4), _images(3).tolist(), tau=5.0)


@ENTRY
def test_uint8_images_are_refused_with_the_conversion(entry):
    pixels = (_images(3) * 255).to(torch.uint8)
    _raises(TypeError, r"x has dtype torch.uint8; .*x.float\(\) / 255", entry, _mlp(4), pixels, tau=5.0)


@ENTRY
def test_images_of_another_dtype_than_the_decoder_are_refused(entry):
    _raises(
        TypeError,
        r"x has dtype torch.float64 but the decoder's parameters have dtype torch.float32; "
        r"use x.to\(torch.float32\) or decoder.to\(torch.float64\)",
        entry,
        _mlp(4),
        _images(3, torch.float64),
        tau=5.0,
    )


@ENTRY
def test_images_on_another_device_than_the_decoder_are_refused(entry):
    _raises(
        ValueError,
        r"x is on device meta but the decoder's parameters are on cpu; use x.to\('cpu'\)",
        entry,
        _mlp(4),
        _images(3).to("meta"),
        tau=5.0,
    )


@ENTRY
def test_images_of_the_wrong_shape_are_refused(entry):
    _raises(
        ValueError,
        r"x has shape \(3, 1, 27, 28\); .*shape \(1, 28, 28\), so x must be \(B, 1, 28, 28\) "
        r"or flattened \(B, 784\)",
        entry,
        _mlp(4),
        torch.rand(3, 1, 27, 28),
        tau=5.0,
    )


def test_a_decoder_without_image_shape_is_probed_for_it():
    # TinyDecoder outputs (B, 12); an MSE target of shape (B, 1) used to broadcast silently.
    decoder = TinyDecoder(output="probabilities")
    _raises(
        ValueError,
        r"x has shape \(3, 1\); .*shape \(12,\), so x must be \(B, 12\)$",
        gfe.encode,
        decoder,
        torch.rand(3, 1),
        loss="mse",
        tau=5.0,
    )
    out = gfe.encode(decoder, torch.rand(3, 12), loss="mse", solver="rk4", tau=1.0, steps=2)
    assert out.nfe.tolist() == [8, 8, 8]  # the probe is not a flow evaluation


def test_flattened_images_are_reshaped_to_the_decoder_output():
    decoder, x = _mlp(4), _images(3)
    options = dict(solver="amd", tau=20.0, z0="uniform", seed=1)
    flat, shaped = gfe.encode(decoder, x.flatten(1), **options), gfe.encode(decoder, x, **options)
    assert torch.equal(flat.z, shaped.z) and torch.equal(flat.loss, shaped.loss)
    grad_flat = gfe.decoder_gradient(decoder, x.flatten(1), solver="amd", tau=20.0)
    grad_shaped = gfe.decoder_gradient(decoder, x, solver="amd", tau=20.0)
    assert all(torch.equal(a, b) for a, b in zip(grad_flat, grad_shaped, strict=True))


@ENTRY
def test_bce_targets_outside_0_1_are_refused(entry):
    pixels = _images(3) * 255  # forgot to divide: BCE gives a negative "loss" and runs on
    _raises(
        ValueError,
        r"x has values in \[0\.\d+, 25\d\.?\d*\]; loss='bce' needs targets in \[0, 1\] "
        r"\(divide by 255",
        entry,
        _mlp(4),
        pixels,
        tau=5.0,
    )


def test_mse_targets_are_not_range_checked():
    decoder = TinyDecoder(output="probabilities")
    out = gfe.encode(decoder, torch.rand(2, 12) * 3, loss="mse", solver="rk4", tau=1.0, steps=2)
    assert torch.isfinite(out.loss).all()


def test_nan_in_the_images_is_left_to_the_solver_which_names_the_sample():
    # Not a new check: the range check must not hide AMD's named error (NaN compares False).
    x = _images(3)
    x[1, 0, 3, 3] = float("nan")
    error = _raises(gfe.FlowDivergedError, r"samples \[1\]", gfe.encode, _mlp(4), x, tau=5.0)
    assert error.samples == [1]


def test_a_frozen_decoder_encodes():
    # Works today too (the flow differentiates w.r.t. z only); kept so that it stays so.
    decoder, x = _mlp(4), _images(3)
    expected = gfe.encode(decoder, x, tau=20.0)
    decoder.requires_grad_(False)
    frozen = gfe.encode(decoder, x, tau=20.0)
    assert torch.equal(frozen.z, expected.z) and frozen.nfe.min() > 1


@pytest.mark.parametrize("gradient, solver", [("approximate", "amd"), ("backprop", "rk4"), ("adjoint", "rk4")])
def test_the_gradient_of_a_frozen_decoder_is_refused(gradient, solver):
    decoder = _mlp(4).requires_grad_(False)
    _raises(
        ValueError,
        r"the decoder has no trainable parameters \(requires_grad=False everywhere\); nothing to train",
        gfe.decoder_gradient,
        decoder,
        _images(3),
        gradient=gradient,
        solver=solver,
        tau=1.0,
    )


def test_tau_may_be_a_one_element_tensor():
    decoder, x = _mlp(4), _images(3)
    as_float = gfe.encode(decoder, x, tau=20.0, z0="uniform")
    for tau in (torch.tensor(20.0), torch.tensor([20.0]), torch.tensor(20)):
        out = gfe.encode(decoder, x, tau=tau, z0="uniform")
        assert torch.equal(out.z, as_float.z) and torch.equal(out.t, as_float.t)
    two = torch.tensor([20.0, 30.0])
    _raises(ValueError, r"tau=tensor\(\[20., 30.\]\) is invalid", gfe.encode, decoder, x, tau=two)


BAD_OPTIONS = [
    (dict(tau=True), r"tau=True is invalid"),
    (dict(tau="100"), r"tau='100' is invalid"),
    (dict(order=True, solver="rk4"), r"order=True is invalid"),
    (dict(alpha=True), r"alpha=True is invalid"),
    (dict(shared="no"), r"shared='no' is invalid: must be True or False"),
    (dict(shared=1), r"shared=1 is invalid: must be True or False"),
    (dict(shared=None), r"shared=None is invalid: must be True or False"),
    (dict(working_set=True), r"working_set=True is invalid"),
    (dict(dt_init="1"), r"dt_init='1' is invalid: must be a number > 0"),
    (dict(max_halvings=2.5), r"max_halvings=2.5 is invalid: must be an integer"),
    (dict(max_evals=True), r"max_evals=True is invalid"),
    (dict(solver="rk4", steps=True), r"steps=True is invalid: must be an integer >= 1"),
    (dict(solver="rk4", steps=2.5), r"steps=2.5 is invalid: must be an integer >= 1"),
    (dict(solver="rk4", conv_tol=True), r"conv_tol=True is invalid: must be a number >= 0"),
    (dict(solver="dopri5", rtol="1e-5"), r"rtol='1e-5' is invalid: must be a number > 0"),
    (dict(solver="dopri5", max_num_steps=2.5), r"max_num_steps=2.5 is invalid: must be an integer >= 1"),
]


@pytest.mark.parametrize("options, match", BAD_OPTIONS, ids=[m.split(" is")[0] for _, m in BAD_OPTIONS])
def test_options_of_the_wrong_type_are_refused(options, match):
    _raises(ValueError, match, gfe.encode, _mlp(4), _images(2), **{"tau": 5.0, **options})


def test_integral_floats_and_numpy_bools_stay_accepted():
    assert make_solver("rk4", steps=4.0).steps == 4
    assert AMDOptions(shared=np.bool_(True), max_halvings=20.0).shared
    assert make_solver("dopri5", rtol=np.float32(1e-4)).rtol > 0


def test_a_tensor_z0_gives_the_latent_size_of_a_decoder_without_latent_dim():
    class Bare(torch.nn.Module):
        output = "logits"

        def __init__(self):
            super().__init__()
            self.net = torch.nn.Linear(3, 12)

        def forward(self, z):
            return self.net(z)

    decoder, x = Bare(), torch.rand(2, 12)
    out = gfe.encode(decoder, x, solver="rk4", tau=1.0, steps=2, z0=torch.zeros(2, 3))
    assert out.z.shape == (2, 3)
    _raises(
        ValueError,
        r"the size of z is unknown: pass latent_dim=d \(or z0 as a \(B, d\) tensor\)",
        gfe.encode,
        decoder,
        x,
        tau=1.0,
    )


# Every registered solver (a new one is in at once) with its default options, and the
# second-order flow where the solver integrates it (docs/reliability.md: "any solver").
SECOND_ORDER = {"dopri5", "euler", "rk4"}
EMPTY_BATCH = [{"solver": name} for name in sorted(SOLVERS)] + [
    {"solver": name, "order": 2} for name in sorted(SECOND_ORDER)
]


@pytest.mark.parametrize("options", EMPTY_BATCH, ids=lambda o: o["solver"] + ("-order2" if "order" in o else ""))
def test_an_empty_batch_encodes_to_no_codes(options):
    from gfe.models import MLPDecoder

    out = gfe.encode(MLPDecoder(latent_dim=4), torch.rand(0, 1, 28, 28), tau=10.0, loss="bce", **options)
    assert tuple(out.z.shape) == (0, 4) and out.loss.shape == (0,) and out.nfe.shape == (0,)
