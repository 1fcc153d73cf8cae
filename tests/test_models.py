"""Architectures of SPEC §2: parameter counts, shapes, output ranges, batch independence."""

import pytest
import torch

from gfe.models import (
    Autoencoder,
    ConvDecoder,
    ConvEncoder,
    MLPDecoder,
    MLPEncoder,
    build_autoencoder,
    build_decoder,
    build_encoder,
    count_parameters,
    to_images,
)

MNIST = (1, 28, 28)
CIFAR = (3, 32, 32)


def test_mlp_parameter_counts_match_the_authors():
    assert count_parameters(MLPDecoder(20)) == 700_234
    assert count_parameters(build_autoencoder(MNIST, 20)) == 1_399_704


@pytest.mark.parametrize(
    ("shape", "d", "kind"), [(MNIST, 20, "logits"), (CIFAR, 64, "probabilities")]
)
def test_shapes_and_attributes(shape, d, kind):
    torch.manual_seed(0)
    dec, enc = build_decoder(shape, d), build_encoder(shape, d)
    ae = build_autoencoder(shape, d)
    z = torch.randn(3, d)
    x = torch.rand(3, *shape)
    assert dec(z).shape == (3, *shape)
    assert enc(x).shape == (3, d)
    assert ae.encode(x).shape == (3, d)
    assert ae(x).shape == (3, *shape)
    for m in (dec, ae):
        assert (m.latent_dim, m.image_shape, m.output) == (d, shape, kind)


def test_conv_decoder_outputs_probabilities():
    torch.manual_seed(0)
    y = ConvDecoder()(3 * torch.randn(4, 64))
    assert ((y > 0) & (y < 1)).all()
    assert torch.equal(to_images(y, "probabilities"), y)


def test_to_images():
    logits = torch.tensor([-100.0, 0.0, 100.0])
    assert torch.allclose(to_images(logits, "logits"), torch.tensor([0.0, 0.5, 1.0]))
    with pytest.raises(ValueError):
        to_images(logits, "raw")


@pytest.mark.parametrize(
    "make",
    [
        lambda: (MLPDecoder(20), torch.randn(8, 20)),
        lambda: (MLPEncoder(20), torch.rand(8, *MNIST)),
        lambda: (ConvDecoder(64), torch.randn(8, 64)),
        lambda: (ConvEncoder(64), torch.rand(8, *CIFAR)),
    ],
)
def test_batch_independence(make):
    torch.manual_seed(0)
    model, batch = make()
    model.train()  # no batch statistics in either mode
    with torch.no_grad():
        together = model(batch)
        for i in (0, 5):
            alone = model(batch[i : i + 1])
            assert torch.allclose(alone[0], together[i], atol=1e-6, rtol=1e-5)


def test_dispatch_and_unknown_shape():
    assert isinstance(build_decoder(MNIST, 20), MLPDecoder)
    assert isinstance(build_encoder([1, 28, 28], 20), MLPEncoder)
    assert isinstance(build_decoder(CIFAR, 64), ConvDecoder)
    assert isinstance(build_encoder(CIFAR, 64), ConvEncoder)
    ae = build_autoencoder(CIFAR, 64)
    assert isinstance(ae, Autoencoder)
    assert isinstance(ae.encoder, ConvEncoder) and isinstance(ae.decoder, ConvDecoder)
    for build in (build_decoder, build_encoder, build_autoencoder):
        with pytest.raises(ValueError, match=r"\(1, 32, 32\)"):
            build((1, 32, 32), 20)


def test_autoencoder_rejects_mismatched_latents():
    with pytest.raises(ValueError):
        Autoencoder(MLPEncoder(10), MLPDecoder(20))
