"""The CUDA path: encoding, gradients, training and evaluation on a GPU agree with the CPU.

These tests need a CUDA GPU and are skipped (with that reason) where there is none, as on
CI's machines; run them on a GPU machine with `pytest tests/test_cuda.py`. In float64 the
GPU and the CPU take the same solver decisions, so their results agree to rounding.
"""

import pytest
import torch

import gfe
from gfe.devices import resolve_device
from gfe.evaluation import evaluate
from gfe.models import build_decoder
from gfe.training import OptimizerSettings, train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
CUDA = torch.device("cuda", 0)


def _decoder_and_images(n=12, dtype=torch.float64):
    torch.manual_seed(0)
    decoder = build_decoder((1, 28, 28), 8).to(dtype)
    images = torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(1), dtype=dtype)
    return decoder, images


def _on(device, decoder, images):
    copy = build_decoder((1, 28, 28), decoder.latent_dim).to(decoder.net[0].weight.dtype)
    copy.load_state_dict(decoder.state_dict())
    return copy.to(device), images.to(device)


def test_auto_resolves_to_the_gpu():
    assert resolve_device("auto").type == "cuda"


@pytest.mark.parametrize(
    "options",
    [
        dict(solver="amd", tau=1e3),
        dict(solver="amd", tau=1e3, shared=True),
        dict(solver="lbfgs"),
        dict(solver="lbfgs_dense"),
        dict(solver="rk4", steps=50, tau=50.0),
        dict(solver="rk4", steps=50, tau=50.0, order=2),
    ],
    ids=["amd", "amd_shared", "lbfgs", "lbfgs_dense", "rk4", "nesterov_rk4"],
)
def test_encoding_on_the_gpu_matches_the_cpu(options):
    decoder, images = _decoder_and_images()
    z0 = torch.rand(len(images), 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    results = {}
    for device in ("cpu", CUDA):
        dec, x = _on(device, decoder, images)
        out = gfe.encode(dec, x, z0=z0.to(device), **options)
        assert out.z.device.type == torch.device(device).type
        results[str(device)] = out
    cpu, gpu = results["cpu"], results[str(CUDA)]
    torch.testing.assert_close(gpu.z.cpu(), cpu.z, rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(gpu.loss.cpu(), cpu.loss, rtol=1e-9, atol=1e-10)
    assert torch.equal(gpu.nfe.cpu(), cpu.nfe)


@pytest.mark.parametrize("gradient", ["approximate", "adjoint", "backprop"])
def test_decoder_gradients_on_the_gpu_match_the_cpu(gradient):
    decoder, images = _decoder_and_images(n=4)
    grads = {}
    for device in ("cpu", CUDA):
        dec, x = _on(device, decoder, images)
        options = dict(solver="rk4", steps=10, tau=10.0) if gradient != "approximate" else dict(solver="amd", tau=1e3)
        grads[str(device)] = gfe.decoder_gradient(dec, x, gradient=gradient, z0="zeros", **options)
    for g_cpu, g_gpu in zip(grads["cpu"], grads[str(CUDA)], strict=True):
        assert g_gpu.device.type == CUDA.type
        torch.testing.assert_close(g_gpu.cpu(), g_cpu, rtol=1e-6, atol=1e-9)


def test_training_and_evaluation_run_on_the_gpu():
    decoder, images = _decoder_and_images(n=20, dtype=torch.float32)
    dec, x = _on(CUDA, decoder, images)
    encode_options = dict(solver="amd", z0="uniform", tau=1e3)
    run = train(
        dec,
        x,
        steps=4,
        batch_size=5,
        encode_options=encode_options,
        optimizer=OptimizerSettings(),
        val_images=x[:6],
        val_every=2,
    )
    assert run.step == 4 and all(torch.isfinite(torch.tensor(r["loss"])) for r in run.steps)
    assert all(p.device.type == CUDA.type for p in dec.parameters())
    result = evaluate(dec, x[:10], encode_options=encode_options, batch_size=4, seed=0)
    assert result.loss.shape == (10,) and bool(torch.isfinite(result.loss).all())
    # the same held-out numbers as on the CPU, to float32 rounding
    cpu_dec, cpu_x = _on("cpu", dec.cpu(), x[:10].cpu())
    cpu_result = evaluate(cpu_dec, cpu_x, encode_options=encode_options, batch_size=4, seed=0)
    torch.testing.assert_close(result.loss.cpu(), cpu_result.loss, rtol=1e-4, atol=1e-5)
