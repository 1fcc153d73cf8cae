"""gfe.LatentBank: a memory of encoded images handing out starting points (beyond the papers)."""

import pytest
import torch
from torch import nn

import gfe
from gfe.bank import WhitenedDecoder, mean_hessian, whitened_decoder, whitening_matrix
from gfe.evaluation import evaluate
from gfe.losses import bce_with_logits
from gfe.models import MLPDecoder

SHAPE = (1, 6, 6)
FAST = dict(solver="lbfgs_dense", z0="uniform", tol=1e-5)


def _decoder(dtype=torch.float32):
    torch.manual_seed(0)
    return MLPDecoder(latent_dim=4, image_shape=SHAPE, hidden=(16, 32)).to(dtype)


def _images(n, seed=1, dtype=torch.float32):
    return torch.rand(n, *SHAPE, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _brute_force(bank_images, x):
    """Index of the nearest bank image by float64 pixel L2 distance, the lowest index on a tie."""
    distances = (x.double().flatten(1)[:, None] - bank_images.double().flatten(1)[None]).square().sum(2)
    return distances.argmin(1)  # torch returns the first minimal index


@pytest.fixture(scope="module")
def bank():
    images = _images(30)
    images[7] = images[3]  # an exact duplicate: a tie, which the lowest index wins
    return gfe.LatentBank(_decoder(), images, FAST, curvature_images=10)


def test_the_lookup_is_the_brute_force_nearest_neighbour(bank):
    queries = torch.cat([_images(40, seed=2), bank.images[[3, 7, 12]], (bank.images[:5] + 0.01).clamp(0, 1)])
    found = bank.nearest(queries)
    assert torch.equal(found, _brute_force(bank.images, queries))
    assert found[40:43].tolist() == [3, 3, 12] and found[43:].tolist() == [0, 1, 2, 3, 4]
    assert torch.equal(bank.initial(queries), bank.codes[found])


def test_the_lookup_in_chunks_is_the_lookup_at_once(bank, monkeypatch):
    queries = _images(25, seed=3)
    whole = bank.nearest(queries)
    monkeypatch.setattr("gfe.bank.CHUNK_ELEMENTS", 2 * len(bank))  # two queries per chunk
    assert torch.equal(bank.nearest(queries), whole)


def test_a_bank_of_the_images_gives_their_own_codes_back():
    images = _images(12, seed=4)
    bank = gfe.LatentBank(_decoder(), images, FAST, curvature_images=4)
    assert torch.equal(bank.nearest(images), torch.arange(12))
    assert torch.equal(bank.initial(images), bank.codes)
    own = gfe.encode(
        _decoder(), images, solver="lbfgs_dense", tol=1e-5, z0="uniform", seed=0, sample_ids=torch.arange(12)
    )
    assert torch.equal(bank.codes, own.z)  # the build is evaluate(): image m from the draw (seed, m)


def test_shapes_and_dtypes(bank):
    x = _images(5, seed=5)
    assert bank.codes.shape == (30, 4) and bank.codes.dtype == torch.float32 and len(bank) == 30
    assert bank.loss.shape == (30,) and bank.nfe.shape == (30,) and bank.images.shape == (30, *SHAPE)
    assert bank.nearest(x).dtype == torch.int64 and bank.nearest(x).shape == (5,)
    assert bank.initial(x).shape == (5, 4) and bank.initial(x).dtype == torch.float32
    assert torch.equal(bank.initial(x.flatten(1)), bank.initial(x))  # flattened images too
    assert bank.initial(x[:0]).shape == (0, 4) and bank.encode(x[:0]).z.shape == (0, 4)
    assert bank.curvature.shape == bank.whitening.shape == (4, 4) and bank.whitening.dtype == torch.float64
    wide = gfe.LatentBank(_decoder(torch.float64), _images(6, dtype=torch.float64), FAST, curvature_images=2)
    assert wide.codes.dtype == torch.float64 and wide.initial(_images(2, dtype=torch.float64)).dtype == torch.float64


def test_the_bank_starts_gfe_encode_and_evaluate(bank):
    decoder, x = bank.decoder, _images(8, seed=6)
    z0 = bank.initial(x)
    direct = gfe.encode(decoder, x, z0=z0, solver="lbfgs_dense", tol=1e-5)
    result = evaluate(decoder, x, encode_options={"z0": z0, "solver": "lbfgs_dense", "tol": 1e-5}, batch_size=8)
    assert torch.equal(result.z, direct.z) and torch.equal(result.loss, direct.loss)
    start = bce_with_logits(decoder(z0), x)
    assert bool((direct.loss <= start).all())


def test_bank_encode_returns_codes_of_the_decoder_at_its_loss(bank):
    x = _images(10, seed=7)
    out = bank.encode(x, max_evals=6, tol=0.0)
    with torch.no_grad():
        at_z = bce_with_logits(bank.decoder(out.z), x)
        start = bce_with_logits(bank.decoder(bank.initial(x)), x)
    assert torch.allclose(out.loss, at_z, atol=1e-6)  # z is back in the decoder's coordinates
    assert bool((out.loss < start).all()) and bool((out.nfe <= 6).all())


def test_bank_encode_follows_the_decoder_when_its_weights_change_in_place():
    decoder, x = _decoder(), _images(4, seed=11)
    bank = gfe.LatentBank(decoder, _images(10), FAST, curvature_images=4)
    before = bank.encode(x, max_evals=5)
    with torch.no_grad():
        decoder.net[-1].bias.add_(0.5)  # as an optimiser step would
    after = bank.encode(x, max_evals=5)
    with torch.no_grad():
        assert torch.allclose(after.loss, bce_with_logits(decoder(after.z), x), atol=1e-6)
    assert not torch.allclose(before.loss, after.loss)


def test_the_whitening_inverts_the_damped_curvature():
    eye = torch.eye(2, dtype=torch.float64)
    curvature = torch.tensor([[4.0, 1.0], [1.0, 0.5]], dtype=torch.float64)
    top = float(torch.linalg.eigvalsh(curvature).max())
    w = whitening_matrix(curvature, 1e-3)
    assert torch.allclose(w @ (curvature + 1e-3 * top * eye) @ w, eye, atol=1e-9) and torch.allclose(w, w.T)
    negative = whitening_matrix(torch.diag(torch.tensor([-1.0, 2.0], dtype=torch.float64)), 1e-3)
    assert torch.allclose(negative, torch.diag(torch.tensor([2e-3, 2.002], dtype=torch.float64).rsqrt()))
    assert torch.equal(whitening_matrix(torch.zeros(3, 3), 1e-3), torch.eye(3, dtype=torch.float64))


def test_mean_hessian_is_the_mean_of_the_per_sample_hessians():
    decoder, x = _decoder(torch.float64), _images(3, dtype=torch.float64)
    z = torch.randn(3, 4, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    each = [
        torch.autograd.functional.hessian(lambda v, i=i: bce_with_logits(decoder(v[None]), x[i : i + 1]).sum(), z[i])
        for i in range(3)
    ]
    assert torch.allclose(mean_hessian(decoder, z, x, bce_with_logits), torch.stack(each).mean(0), atol=1e-10)


def test_the_folded_mlp_and_the_wrapper_are_the_same_decoder():
    decoder = _decoder(torch.float64)
    w = whitening_matrix(torch.diag(torch.tensor([3.0, 1.0, 0.1, 1e-4], dtype=torch.float64)), 1e-3)
    folded = whitened_decoder(decoder, w)
    u = torch.randn(5, 4, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    assert type(folded) is MLPDecoder and folded is not decoder
    with torch.no_grad():
        assert torch.allclose(folded(u), WhitenedDecoder(decoder, w)(u), atol=1e-12)
        assert torch.allclose(folded(u), decoder(u @ w.T), atol=1e-12)


def test_any_decoder_works_through_the_wrapper():
    torch.manual_seed(0)
    decoder = nn.Sequential(nn.Linear(3, 16), nn.ELU(), nn.Linear(16, 10))
    images = torch.rand(8, 10, generator=torch.Generator().manual_seed(10))
    bank = gfe.LatentBank(decoder, images, dict(FAST, loss="bce", latent_dim=3), curvature_images=4)
    assert type(whitened_decoder(decoder, bank.whitening.float())) is WhitenedDecoder
    out = bank.encode(images[:3] * 0.9, max_evals=4)
    with torch.no_grad():
        assert torch.allclose(out.loss, bce_with_logits(decoder(out.z), images[:3] * 0.9), atol=1e-6)


def test_bad_input_is_refused(bank):
    with pytest.raises(ValueError, match="images is empty: a LatentBank needs at least one image"):
        gfe.LatentBank(_decoder(), _images(0), FAST)
    with pytest.raises(ValueError, match=r"x has images of shape \(1, 5, 5\); this bank stores images of shape"):
        bank.initial(torch.rand(2, 1, 5, 5))
    with pytest.raises(ValueError, match=r"x has images of shape \(35,\)"):
        bank.nearest(torch.rand(2, 35))
    with pytest.raises(TypeError, match="dtype"):
        bank.initial(_images(2, dtype=torch.float64))
    with pytest.raises(ValueError, match="bank.encode starts from the bank's codes: drop z0"):
        bank.encode(_images(2), z0=torch.zeros(2, 4))
    with pytest.raises(ValueError, match="encode_options z0 is a tensor"):
        gfe.LatentBank(_decoder(), _images(3), dict(FAST, z0=torch.zeros(3, 4)))
    with pytest.raises(ValueError, match="damping=0 is invalid"):
        gfe.LatentBank(_decoder(), _images(3), FAST, damping=0)
    with pytest.raises(ValueError, match="curvature_images=0 is invalid"):
        gfe.LatentBank(_decoder(), _images(3), FAST, curvature_images=0)
