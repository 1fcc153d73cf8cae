"""Encoding and evaluation run the decoder in eval mode and give every submodule its own
mode back: a BatchNorm or Dropout decoder in train mode gives batch-independent,
repeatable codes and keeps its running statistics."""

import pytest
import torch
from torch import nn

import gfe
from gfe.evaluation import evaluate


class NormDecoder(nn.Module):
    """latents (B, 3) -> logits (B, 1, 2, 4), with BatchNorm and Dropout."""

    latent_dim = 3
    output = "logits"

    def __init__(self, dropout=0.0):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(3, 16), nn.BatchNorm1d(16), nn.ELU(), nn.Dropout(dropout), nn.Linear(16, 8))
        with torch.no_grad():  # running statistics other than the defaults, so eval mode matters
            self.net[1].running_mean.uniform_(-0.5, 0.5)
            self.net[1].running_var.uniform_(0.5, 2.0)

    def forward(self, z):
        return self.net(z).reshape(-1, 1, 2, 4)


def _images(n, seed=1):
    return torch.rand(n, 1, 2, 4, generator=torch.Generator().manual_seed(seed))


AMD = dict(solver="amd", tau=50.0, z0="zeros", loss="bce")


def test_batchnorm_in_train_mode_keeps_its_statistics_and_codes_do_not_depend_on_the_batch():
    decoder = NormDecoder().train()
    stats = {k: v.clone() for k, v in decoder.net[1].state_dict().items()}
    x = _images(4)
    together = gfe.encode(decoder, x, **AMD)
    alone = gfe.encode(decoder, x[:1], **AMD)
    assert together.nfe.min() > 1
    assert torch.allclose(together.z[0], alone.z[0], atol=1e-6)
    assert all(torch.equal(v, decoder.net[1].state_dict()[k]) for k, v in stats.items())
    assert decoder.training and decoder.net[1].training  # its mode is given back


def test_dropout_in_train_mode_gives_the_same_code_and_loss_twice():
    decoder = NormDecoder(dropout=0.5).train()
    x = _images(6)
    first, second = gfe.encode(decoder, x, **AMD), gfe.encode(decoder, x, **AMD)
    assert torch.equal(first.z, second.z)
    losses = [evaluate(decoder, x, encode_options=AMD).summary()["loss_mean"] for _ in range(2)]
    assert losses[0] == losses[1]
    assert decoder.training


def test_each_submodule_gets_its_own_mode_back_also_after_an_error():
    decoder = NormDecoder(dropout=0.5).train()
    decoder.net[3].eval()  # a user's choice inside a training decoder
    with pytest.raises(ValueError, match="x has shape"):
        gfe.encode(decoder, torch.rand(2, 5), **AMD)
    gfe.encode(decoder, _images(2), **AMD)
    assert decoder.training and decoder.net[1].training and not decoder.net[3].training


class FailingDecoder(NormDecoder):
    """Raises in its `fail_at`-th forward pass, recording the mode of each pass: the error comes
    from inside the encoding, while the decoder is in eval mode."""

    def __init__(self, fail_at):
        super().__init__(dropout=0.5)
        self.fail_at, self.modes = fail_at, []

    def forward(self, z):
        self.modes.append((self.training, self.net[1].training, self.net[3].training))
        if len(self.modes) == self.fail_at:
            raise RuntimeError("the decoder failed mid-flow")
        return super().forward(z)


ENTRY_POINTS = {
    "encode": lambda decoder, x: gfe.encode(decoder, x, **AMD),
    "evaluate": lambda decoder, x: evaluate(decoder, x, encode_options=AMD),
    "decoder_loss_and_gradient": lambda decoder, x: gfe.decoder_loss_and_gradient(decoder, x, **AMD),
}


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_each_submodule_gets_its_own_mode_back_after_an_error_inside_the_encoding(entry):
    """The error of the test above is raised by the shape check, after the forward pass that
    finds the decoder's image shape has left eval_mode; here the decoder itself fails in the
    middle of the flow, inside eval_mode."""
    decoder = FailingDecoder(fail_at=3).train()
    decoder.net[3].eval()  # a user's choice inside a training decoder
    with pytest.raises(RuntimeError, match="the decoder failed mid-flow"):
        ENTRY_POINTS[entry](decoder, _images(2))
    assert len(decoder.modes) == 3 and decoder.modes[-1] == (False, False, False), decoder.modes  # in eval_mode
    assert decoder.training and decoder.net[1].training and not decoder.net[3].training


def test_the_training_pass_stays_in_the_decoders_mode():
    """decoder_loss_and_gradient encodes in eval mode, then takes one training forward pass in
    train mode: BatchNorm's statistics move once per call, not once per flow evaluation."""
    decoder = NormDecoder().train()
    before = int(decoder.net[1].num_batches_tracked)
    result = gfe.decoder_loss_and_gradient(decoder, _images(4), **AMD)
    assert int(result.nfe.max()) > 1
    assert int(decoder.net[1].num_batches_tracked) == before + 1


def test_evaluate_refuses_no_images():
    with pytest.raises(ValueError, match="images is empty"):
        evaluate(NormDecoder(), _images(0), encode_options=AMD)
