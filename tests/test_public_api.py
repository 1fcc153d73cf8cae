"""The library as a PyTorch user meets it: `import gfe`, any nn.Module as the decoder."""

import pytest
import torch
from torch import nn

import gfe
from gfe.evaluation import evaluate
from gfe.training import train


def _sequential(latent_dim=4, pixels=12):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(latent_dim, 16), nn.ELU(), nn.Linear(16, pixels))


def _images(n=6, pixels=12):
    return torch.rand(n, pixels, generator=torch.Generator().manual_seed(1))


def test_import_gfe_gives_the_models_training_evaluation_and_a_version():
    assert gfe.models.build_decoder((1, 28, 28), 20).latent_dim == 20
    assert gfe.training.train is train and gfe.evaluation.evaluate is evaluate
    assert isinstance(gfe.__version__, str) and gfe.__version__[0].isdigit()


@pytest.mark.parametrize("solver", ["amd", "rk4", "lbfgs"])
def test_a_plain_sequential_decoder_encodes_with_latent_dim_or_a_z0_tensor(solver):
    decoder, x = _sequential(), _images()
    options = {"steps": 20, "tau": 20.0} if solver == "rk4" else {}
    by_size = gfe.encode(decoder, x, solver=solver, latent_dim=4, loss="bce", **options)
    start = nn.functional.binary_cross_entropy_with_logits(decoder(torch.zeros(6, 4)), x, reduction="none").mean(1)
    assert by_size.z.shape == (6, 4) and bool((by_size.loss < start).all())
    by_z0 = gfe.encode(decoder, x, solver=solver, z0=torch.zeros(6, 4), loss="bce", **options)
    assert torch.equal(by_z0.z, by_size.z)


def test_a_plain_sequential_decoder_trains_and_evaluates_through_the_public_api():
    decoder, x = _sequential(), _images(10)
    before = [p.detach().clone() for p in decoder.parameters()]
    encode_options = dict(solver="amd", loss="bce", z0="uniform", latent_dim=4)
    run = train(decoder, x, steps=3, batch_size=5, encode_options=encode_options, val_images=x[:4], val_every=1)
    assert run.step == 3 and len(run.validation) == 4
    assert any(not torch.equal(a, b) for a, b in zip(before, decoder.parameters(), strict=True))
    result = evaluate(decoder, x, encode_options=encode_options, batch_size=4)
    assert result.z.shape == (10, 4) and torch.isfinite(result.loss).all()
    grads = gfe.decoder_gradient(
        decoder, x[:2], gradient="adjoint", solver="rk4", steps=4, tau=10.0, loss="bce", latent_dim=4
    )
    assert [g.shape for g in grads] == [p.shape for p in decoder.parameters()]


def test_the_size_of_z_must_be_known_and_unambiguous():
    decoder, x = _sequential(), _images()
    with pytest.raises(ValueError, match="the size of z is unknown: pass latent_dim=d"):
        gfe.encode(decoder, x, loss="bce")
    with pytest.raises(ValueError, match="the size of z is ambiguous"):
        gfe.encode(decoder, x, loss="bce", latent_dim=5, z0=torch.zeros(6, 4))
    with pytest.raises(ValueError, match="latent_dim=0 is invalid"):
        gfe.encode(decoder, x, loss="bce", latent_dim=0)
