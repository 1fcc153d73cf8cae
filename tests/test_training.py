"""Training loops: exact resumption, refusing other settings, the batch sampler, evaluation.
(Damaged checkpoints and diverging runs: tests/test_faults.py.)"""

import pytest
import torch

from gfe.checkpoints import CheckpointError
from gfe.evaluation import evaluate
from gfe.models import MLPDecoder, MLPEncoder
from gfe.training import BatchSampler, OptimizerSettings, train


def _images(n=60, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 28, 28, generator=generator)


def _models(seed=2020, ae=True):
    torch.manual_seed(seed)
    decoder = MLPDecoder(latent_dim=4)
    encoder = MLPEncoder(latent_dim=4) if ae else None
    return decoder, encoder


def _same_parameters(a, b):
    return all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def _losses(run):
    return [row["loss"] for row in run.steps]


@pytest.mark.slow
def test_autoencoder_resume_gives_identical_parameters(tmp_path):
    images = _images()
    straight_dec, straight_enc = _models()
    straight = train(straight_dec, images, encoder=straight_enc, steps=2000, batch_size=5)
    dec, enc = _models()
    ckpt = tmp_path / "ae.pt"
    first = train(dec, images, encoder=enc, steps=2000, batch_size=5, checkpoint_path=ckpt,
                  checkpoint_every=250, stop_after=1000)
    assert first.step == 1000
    dec2, enc2 = _models(seed=99)  # a fresh process would rebuild the models from scratch
    resumed = train(dec2, images, encoder=enc2, steps=2000, batch_size=5, checkpoint_path=ckpt,
                    checkpoint_every=250)
    assert resumed.step == 2000
    assert _same_parameters(dec2, straight_dec) and _same_parameters(enc2, straight_enc)
    assert _losses(resumed) == _losses(straight)


@pytest.mark.parametrize("flow, gradient", [
    (dict(solver="amd", tau=200.0, z0="uniform"), "approximate"),
    (dict(solver="rk4", steps=5, tau=50.0, order=2), "approximate"),
    (dict(solver="rk4", steps=5, tau=50.0), "adjoint"),
])
def test_gfe_resume_gives_identical_parameters(tmp_path, flow, gradient):
    images = _images(20)
    straight_dec, _ = _models(ae=False)
    straight = train(straight_dec, images, flow=flow, gradient=gradient, steps=12, batch_size=5)
    dec, _ = _models(ae=False)
    ckpt = tmp_path / "gfe.pt"
    train(dec, images, flow=flow, gradient=gradient, steps=12, batch_size=5, checkpoint_path=ckpt,
          checkpoint_every=3, stop_after=7)
    dec2, _ = _models(seed=5, ae=False)
    resumed = train(dec2, images, flow=flow, gradient=gradient, steps=12, batch_size=5, checkpoint_path=ckpt)
    assert _same_parameters(dec2, straight_dec)
    assert _losses(resumed) == _losses(straight)
    assert all(row["nfe"] > 0 for row in resumed.steps)


def test_training_lowers_the_loss_and_logs_every_step():
    images = _images(100)
    dec, enc = _models()
    run = train(dec, images, encoder=enc, steps=300, batch_size=10, val_images=images[:20], val_every=100)
    assert [row["step"] for row in run.steps] == list(range(1, 301))
    assert [row["step"] for row in run.validation] == [0, 100, 200, 300]
    assert run.validation[-1]["loss_mean"] < run.validation[0]["loss_mean"]
    assert run.steps[-1]["images_seen"] == 3000
    assert all(row["seconds"] >= 0 for row in run.steps)


def test_resuming_with_other_settings_is_refused(tmp_path):
    images = _images(20)
    dec, enc = _models()
    ckpt = tmp_path / "ae.pt"
    train(dec, images, encoder=enc, steps=4, checkpoint_path=ckpt, stop_after=2)
    with pytest.raises(CheckpointError, match="optimizer"):
        train(dec, images, encoder=enc, steps=4, checkpoint_path=ckpt, optimizer=OptimizerSettings(lr=1e-2))


def test_sampler_covers_an_epoch_without_repeats():
    sampler = BatchSampler(20, 5, seed=0)
    epoch = torch.cat([sampler.next() for _ in range(4)])
    assert sorted(epoch.tolist()) == list(range(20))
    with pytest.raises(ValueError, match="batch_size"):
        BatchSampler(3, 5, seed=0)


def test_evaluate_reports_per_image_results_for_ae_and_gfe():
    images = _images(30)
    dec, enc = _models()
    ae = evaluate(dec, images, encoder=enc, batch_size=7)
    gfe_eval = evaluate(dec, images, flow=dict(solver="amd", tau=100.0), batch_size=7)
    for result in (ae, gfe_eval):
        assert result.loss.shape == (30,) and result.z.shape == (30, 4)
        summary = result.summary()
        assert summary["n_images"] == 30 and summary["images_per_s"] > 0
    assert ae.summary()["nfe_mean"] == 0 and gfe_eval.summary()["nfe_mean"] > 1
    assert gfe_eval.summary()["loss_mean"] < ae.summary()["loss_mean"]  # untrained encoder vs a flow
