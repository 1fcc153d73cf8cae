"""The autoencoder baseline checks its images as the GFE path does (dtype, device, shape,
BCE targets in [0, 1]) and, with no flow to catch them, refuses non-finite pixels: once,
before any training step or any encoding, in one line. And a loss that does not read what
the decoder outputs is refused both ways (bce on probabilities, mse on logits)."""

import pytest
import torch

import gfe
from gfe.evaluation import evaluate
from gfe.models import MLPDecoder, MLPEncoder
from gfe.training import train
from helpers import TinyDecoder


def _images(n=10, seed=0):
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


def _ae():
    torch.manual_seed(0)
    return MLPDecoder(latent_dim=4, hidden=(16,)), MLPEncoder(latent_dim=4, hidden=(16,))


def _with_nan(images, index=3):
    images = images.clone()
    images[index, 0, 5, 7] = float("nan")
    return images


BAD_IMAGES = {  # name: (images, error type, message pattern)
    "0..255 pixels for BCE": (
        _images() * 255,
        ValueError,
        r"x has values in \[0\.\d+, 25\d\.?\d*\]; loss='bce' needs targets in \[0, 1\] \(divide by 255",
    ),
    "a NaN pixel": (_with_nan(_images()), ValueError, r"images \[3\] have non-finite pixels \(NaN or inf\)"),
    "an inf pixel": (
        _with_nan(_images(), 6).nan_to_num(nan=float("inf")),
        ValueError,
        r"images \[6\] have non-finite pixels",
    ),
    "wrong image shape": (
        _images()[:, :, :27, :27],
        ValueError,
        r"x has shape \(10, 1, 27, 27\); the decoder outputs images of shape \(1, 28, 28\)",
    ),
}


def _one_line(error):
    assert "\n" not in str(error), str(error)


@pytest.mark.parametrize("case", list(BAD_IMAGES))
def test_autoencoder_training_refuses_bad_images_before_any_step(tmp_path, case):
    images, error_type, pattern = BAD_IMAGES[case]
    decoder, encoder = _ae()
    before = [p.detach().clone() for p in (*decoder.parameters(), *encoder.parameters())]
    rows, ckpt = [], tmp_path / "ae.pt"
    with pytest.raises(error_type, match=pattern) as info:
        train(decoder, images, encoder=encoder, steps=3, batch_size=10, checkpoint_path=ckpt, log=rows.append)
    _one_line(info.value)
    assert rows == [] and not ckpt.exists()
    after = [*decoder.parameters(), *encoder.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))


@pytest.mark.parametrize("case", list(BAD_IMAGES))
def test_autoencoder_evaluation_refuses_bad_images(case):
    images, error_type, pattern = BAD_IMAGES[case]
    decoder, encoder = _ae()
    with pytest.raises(error_type, match=pattern) as info:
        evaluate(decoder, images, encoder=encoder, batch_size=4)
    _one_line(info.value)


def test_autoencoder_validation_images_are_checked_before_any_step():
    decoder, encoder = _ae()
    rows = []
    with pytest.raises(ValueError, match=r"images \[3\] have non-finite pixels"):
        train(
            decoder,
            _images(),
            encoder=encoder,
            steps=3,
            batch_size=5,
            val_images=_with_nan(_images(6, seed=1)),
            val_every=1,
            log=rows.append,
        )
    assert rows == []


def test_autoencoder_evaluation_of_good_images_is_unchanged():
    decoder, encoder = _ae()
    images = _images()
    result = evaluate(decoder, images, encoder=encoder, batch_size=4)
    with torch.no_grad():
        expected = torch.nn.functional.binary_cross_entropy_with_logits(
            decoder(encoder(images)), images, reduction="none"
        )
    assert torch.equal(result.loss, expected.flatten(1).mean(1)) and result.converged.all()


def test_mse_on_a_logits_decoder_is_refused():
    decoder = TinyDecoder().double()  # outputs logits
    with pytest.raises(ValueError, match=r"^loss='mse' .* outputs logits; use loss='bce'$") as info:
        gfe.encode(decoder, torch.rand(2, 12, dtype=torch.float64), loss="mse")
    _one_line(info.value)


def test_autoencoder_training_with_mse_on_a_logits_decoder_is_refused():
    decoder, encoder = _ae()
    rows = []
    with pytest.raises(ValueError, match="use loss='bce'"):
        train(decoder, _images(), encoder=encoder, steps=1, encode_options={"loss": "mse"}, log=rows.append)
    assert rows == []
