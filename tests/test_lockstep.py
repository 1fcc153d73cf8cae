"""Lockstep training (`gfe.lockstep`): several runs at once give each run exactly what it
gives alone, checkpoints pass between the two, and what lockstep cannot do is refused."""

import pytest
import torch
from torch import nn

from gfe.lockstep import LockstepRun, StackedDecoders, train_lockstep
from gfe.models import MLPDecoder
from gfe.training import train

SHAPE = (1, 8, 8)
ENCODE = dict(
    solver="amd",
    tau=100.0,  # short flows keep the test fast
    z0="uniform",
    loss="bce",
    max_halvings=15,
    shared=True,
)
VALIDATION = dict(ENCODE, shared=False)


def _decoder(seed, hidden=(32, 64)):
    torch.manual_seed(seed)
    return MLPDecoder(latent_dim=4, image_shape=SHAPE, hidden=hidden)


def _data():
    generator = torch.Generator().manual_seed(0)
    return torch.rand(120, *SHAPE, generator=generator), torch.rand(12, *SHAPE, generator=generator)


class ConvHead(nn.Module):
    """A decoder that is not an MLPDecoder (the vmap path): linear, then a 3x3 convolution."""

    output = "logits"
    latent_dim = 4

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 64)
        self.conv = nn.Conv2d(1, 1, 3, padding=1)

    def forward(self, z):
        return self.conv(torch.tanh(self.linear(z)).reshape(-1, *SHAPE))


def _losses(run):
    return [row["loss"] for row in run.steps]


def test_lockstep_runs_equal_the_same_runs_made_one_by_one():
    """Three runs (other seeds and training-set sizes; early stopping ends them at different
    steps) over up to 200 steps: every per-step loss, NFE, validation loss, stop and final
    weight equals the run made alone."""
    images, val = _data()
    runs = [(0, 40), (1, 80), (2, 120)]
    settings = dict(
        steps=200,
        batch_size=5,
        encode_options=ENCODE,
        val_images=val,
        val_every=10,
        val_encode_options=VALIDATION,
        patience=3,
        min_improvement=3e-4,
    )
    alone = []
    for seed, n in runs:
        decoder = _decoder(seed)
        alone.append((train(decoder, images[:n], seed=seed, **settings), decoder))
    group = [LockstepRun(_decoder(seed), images[:n], seed) for seed, n in runs]
    together = train_lockstep(group, **settings)
    assert len({run.step for run, _ in alone}) > 1, "the runs were meant to stop at different steps"
    for (single, decoder), grouped, spec in zip(alone, together, group, strict=True):
        assert grouped.step == single.step and grouped.stop_reason == single.stop_reason
        assert _losses(grouped) == _losses(single)
        assert [r["nfe"] for r in grouped.steps] == [r["nfe"] for r in single.steps]
        assert [r["loss_mean"] for r in grouped.validation] == [r["loss_mean"] for r in single.validation]
        assert grouped.best_step == single.best_step
        for p, q in zip(spec.decoder.parameters(), decoder.parameters(), strict=True):
            assert torch.equal(p, q)


def test_any_decoder_runs_through_vmap_within_rounding():
    images, _ = _data()
    settings = dict(steps=20, batch_size=5, encode_options=ENCODE)
    alone = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        alone.append(train(ConvHead(), images, seed=seed, **settings))
    decoders = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        decoders.append(ConvHead())
    together = train_lockstep([LockstepRun(d, images, s) for s, d in enumerate(decoders)], **settings)
    assert StackedDecoders(decoders).linear_chain is None
    for single, grouped in zip(alone, together, strict=True):
        assert _losses(grouped) == pytest.approx(_losses(single), abs=1e-5)


def test_a_checkpoint_passes_between_a_single_run_and_a_group(tmp_path):
    """A run killed at step 20 of 40 alone resumes inside a group (beside a fresh run) and
    ends exactly as the uninterrupted run; the group's checkpoint resumes alone."""
    images, _ = _data()
    settings = dict(steps=40, batch_size=5, encode_options=ENCODE, checkpoint_every=10)
    straight = _decoder(0)
    reference = train(straight, images, seed=0, **settings)
    train(_decoder(0), images, seed=0, checkpoint_path=tmp_path / "a.pt", stop_after=20, **settings)
    resumed = LockstepRun(_decoder(7), images, 0, tmp_path / "a.pt")  # weights come from the checkpoint
    fresh = LockstepRun(_decoder(1), images, 1, tmp_path / "b.pt")
    first, second = train_lockstep([resumed, fresh], **settings)
    assert _losses(first) == _losses(reference)
    assert all(torch.equal(p, q) for p, q in zip(resumed.decoder.parameters(), straight.parameters(), strict=True))
    again = train(_decoder(5), images, seed=1, checkpoint_path=tmp_path / "b.pt", **settings)
    assert _losses(again) == _losses(second)  # the finished group run, read back alone


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(shared=False), "shared rule"),
        (dict(solver="rk4", steps=5, shared=None), "shared rule"),
        (dict(z0=torch.zeros(5, 4)), "z0"),
    ],
)
def test_what_lockstep_cannot_do_is_refused(change, message):
    images, _ = _data()
    options = {k: v for k, v in {**ENCODE, **change}.items() if v is not None}
    if options["solver"] == "rk4":
        options.pop("max_halvings")
    with pytest.raises(ValueError, match=message):
        train_lockstep([LockstepRun(_decoder(0), images, 0)], steps=2, encode_options=options)


def test_unlike_decoders_and_buffers_are_refused():
    images, _ = _data()
    with pytest.raises(ValueError, match="one architecture"):
        train_lockstep(
            [LockstepRun(_decoder(0), images, 0), LockstepRun(_decoder(1, hidden=(16, 64)), images, 1)],
            steps=2,
            encode_options=ENCODE,
        )
    with_norm = _decoder(0)
    with_norm.net.insert(1, nn.BatchNorm1d(32))
    with pytest.raises(ValueError, match="buffers"):
        train_lockstep([LockstepRun(with_norm, images, 0)], steps=2, encode_options=ENCODE)


def test_two_runs_cannot_share_a_checkpoint(tmp_path):
    images, _ = _data()
    runs = [LockstepRun(_decoder(s), images, s, tmp_path / "same.pt") for s in (0, 1)]
    with pytest.raises(ValueError, match="distinct checkpoint"):
        train_lockstep(runs, steps=2, encode_options=ENCODE)
