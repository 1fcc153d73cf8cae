"""Decoder, encoder and autoencoder architectures: parameter counts, shapes, output ranges,
batch independence."""

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


@pytest.mark.parametrize(("shape", "d", "kind"), [(MNIST, 20, "logits"), (CIFAR, 64, "probabilities")])
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


def test_conv_parameter_counts_match_the_authors():
    dec, enc = ConvDecoder(64), ConvEncoder(64)
    assert count_parameters(dec) == 1_780_227
    assert count_parameters(dec.fc) == 266_240
    assert [count_parameters(b) for b in dec.blocks] == [1_180_160, 295_168]
    assert count_parameters(enc) == 1_223_488
    assert count_parameters(build_autoencoder(CIFAR, 64)) == 1_780_227 + 1_223_488


def test_conv_networks_have_no_normalisation_and_all_biases():
    for model in (ConvDecoder(64), ConvEncoder(64)):
        for m in model.modules():
            assert not isinstance(m, (torch.nn.BatchNorm2d, torch.nn.GroupNorm, torch.nn.LayerNorm))
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
                assert m.bias is not None


def test_conv_spatial_sizes():
    torch.manual_seed(0)
    dec, enc = ConvDecoder(64), ConvEncoder(64)
    h = dec.fc(torch.randn(2, 64)).reshape(2, *dec.base)
    sizes = [h.shape[1:]]
    for block in dec.blocks:
        h = block(h)
        sizes.append(h.shape[1:])
    sizes.append(dec.head(h).shape[1:])
    assert sizes == [(256, 4, 4), (128, 8, 8), (64, 16, 16), (3, 32, 32)]
    h = enc.stem(torch.rand(2, *CIFAR))
    sizes = [h.shape[1:]]
    for block in enc.blocks:
        h = block(h)
        sizes.append(h.shape[1:])
    assert sizes == [(64, 16, 16), (128, 8, 8), (256, 4, 4)]


def test_conv_autoencoder_forward_backward():
    torch.manual_seed(0)
    ae = build_autoencoder(CIFAR, 64)
    x = torch.rand(4, *CIFAR)
    z = ae.encode(x)
    y = ae.decoder(z)
    assert z.shape == (4, 64)
    assert y.shape == (4, *CIFAR)
    assert ((y >= 0) & (y <= 1)).all()
    torch.nn.functional.mse_loss(y, x).backward()
    for name, p in ae.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert any(p.grad.abs().sum() > 0 for p in ae.encoder.parameters())


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
