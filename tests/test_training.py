"""Training loops: exact resumption, refusing other settings, the batch sampler, evaluation.
(Damaged checkpoints and diverging runs: tests/test_faults.py.)"""

import pytest
import torch

from gfe.checkpoints import CheckpointError
from gfe.evaluation import evaluate
from gfe.losses import resolve_loss
from gfe.models import MLPDecoder, MLPEncoder
from gfe.training import (
    BatchSampler,
    OptimizerSettings,
    TrainingRun,
    gradient_cosine,
    patience_at,
    plateau_counts,
    plateau_stop,
    train,
)


def _images(n=60, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 28, 28, generator=generator)


def _models(seed=2020, ae=True):
    torch.manual_seed(seed)
    decoder = MLPDecoder(latent_dim=4)
    encoder = MLPEncoder(latent_dim=4) if ae else None
    return decoder, encoder


def _same_parameters(a, b):
    return all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


def _losses(run):
    return [row["loss"] for row in run.steps]


@pytest.mark.slow
def test_autoencoder_resume_gives_identical_parameters(tmp_path):
    images = _images()
    straight_dec, straight_enc = _models()
    straight = train(straight_dec, images, encoder=straight_enc, steps=2000, batch_size=5)
    dec, enc = _models()
    ckpt = tmp_path / "ae.pt"
    first = train(
        dec, images, encoder=enc, steps=2000, batch_size=5, checkpoint_path=ckpt, checkpoint_every=250, stop_after=1000
    )
    assert first.step == 1000
    dec2, enc2 = _models(seed=99)  # a fresh process would rebuild the models from scratch
    resumed = train(dec2, images, encoder=enc2, steps=2000, batch_size=5, checkpoint_path=ckpt, checkpoint_every=250)
    assert resumed.step == 2000
    assert _same_parameters(dec2, straight_dec) and _same_parameters(enc2, straight_enc)
    assert _losses(resumed) == _losses(straight)


@pytest.mark.parametrize(
    "encode_options, gradient",
    [
        (dict(solver="amd", tau=200.0, z0="uniform"), "approximate"),
        (dict(solver="rk4", steps=5, tau=50.0, order=2), "approximate"),
        (dict(solver="rk4", steps=5, tau=50.0), "adjoint"),
    ],
)
def test_gfe_resume_gives_identical_parameters(tmp_path, encode_options, gradient):
    images = _images(20)
    straight_dec, _ = _models(ae=False)
    straight = train(straight_dec, images, encode_options=encode_options, gradient=gradient, steps=12, batch_size=5)
    dec, _ = _models(ae=False)
    ckpt = tmp_path / "gfe.pt"
    train(
        dec,
        images,
        encode_options=encode_options,
        gradient=gradient,
        steps=12,
        batch_size=5,
        checkpoint_path=ckpt,
        checkpoint_every=3,
        stop_after=7,
    )
    dec2, _ = _models(seed=5, ae=False)
    resumed = train(
        dec2, images, encode_options=encode_options, gradient=gradient, steps=12, batch_size=5, checkpoint_path=ckpt
    )
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
    gfe_eval = evaluate(dec, images, encode_options=dict(solver="amd", tau=100.0), batch_size=7)
    for result in (ae, gfe_eval):
        assert result.loss.shape == (30,) and result.z.shape == (30, 4)
        summary = result.summary()
        assert summary["n_images"] == 30 and summary["images_per_s"] > 0
    assert ae.summary()["nfe_mean"] == 0 and gfe_eval.summary()["nfe_mean"] > 1
    assert gfe_eval.summary()["loss_mean"] < ae.summary()["loss_mean"]  # untrained encoder vs a flow


def test_patience_counts_checks_without_enough_improvement():
    # 0.9 counts (10% below 1.0); the next three are below 0.9 by less than 1% each
    assert plateau_counts([1.0, 0.9, 0.899, 0.898, 0.897], 0.01) == [0, 0, 1, 2, 3]
    # 1.1% below 0.9: slow progress adds up over checks until it counts
    assert plateau_counts([1.0, 0.9, 0.899, 0.898, 0.897, 0.890], 0.01)[-1] == 0
    assert plateau_stop([1.0, 0.9, 0.899, 0.898, 0.897], 3, 0.01) == 4
    assert plateau_stop([1.0, 0.9, 0.899, 0.898, 0.897], 4, 0.01) is None


def test_training_run_counts_its_checks_and_keeps_the_lowest():
    run = TrainingRun()
    dec, _ = _models(ae=False)
    for step, loss in enumerate([1.0, 0.9, 0.899, 0.898, 0.897]):
        run.validation.append({"step": step, "loss_mean": loss})
        run.note_validation(loss, step, dec, None, min_improvement=0.01)
    assert run.checks_since_best == 3 and run.best_step == 4 and run.best_loss == 0.897
    assert run.best_state["decoder"].keys() == dec.state_dict().keys()


# A falling validation loss with +-3% noise and one lucky early check (0.60).
NOISY = [0.70, 0.60, 0.66, 0.655, 0.64, 0.62, 0.63, 0.61, 0.60, 0.59]


def test_a_moving_average_keeps_one_lucky_check_from_ending_the_run():
    assert plateau_stop(NOISY, 3, 0.005, window=1) == 4  # stopped by the lucky 0.60
    assert plateau_stop(NOISY, 3, 0.005, window=3) is None
    # the signal of check k is the mean of checks k-2..k
    assert plateau_counts(NOISY[:4], 0.005, window=3) == [0, 0, 1, 0]


def test_a_patience_fraction_waits_longer_as_the_run_grows():
    slow = [0.25 + 0.45 / (1 + k) ** 0.7 for k in range(2000)]  # a power law: ever slower progress
    fixed = plateau_stop(slow, 3, 0.005)
    grown = plateau_stop(slow, 3, 0.005, patience_fraction=0.3)
    assert fixed == 49 and grown == 865
    # a fixed patience stops it with 5.5% still to come by 3x its stop; the grown one with 0.7%
    assert (slow[fixed] - slow[3 * fixed]) / slow[fixed] > 0.05
    assert (slow[grown] - slow[1999]) / slow[grown] < 0.01
    assert patience_at(9, 3, 0.5) == 5 and patience_at(3, 3, 0.5) == 3


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(plateau_window=0), "plateau window=0 is invalid"),
        (dict(plateau_window=1.5), "plateau window=1.5 is invalid"),
        (dict(patience_fraction=1.0), "patience_fraction=1.0 is invalid"),
        (dict(patience_fraction=-0.1), "patience_fraction=-0.1 is invalid"),
    ],
)
def test_bad_plateau_settings_are_refused_before_training(kwargs, message):
    dec, _ = _models(ae=False)
    with pytest.raises(ValueError, match=message):
        train(dec, _images(10), steps=1, **kwargs)


def test_early_stopping_keeps_the_best_check_and_says_why_it_stopped(tmp_path):
    """An AE overfitting 10 images: validation on other images stops improving; the run
    stops on a plateau before its cap and keeps the weights of its best check."""
    images, held_out = _images(10), _images(40, seed=1)
    dec, enc = _models()
    run = train(
        dec,
        images,
        encoder=enc,
        steps=5000,
        batch_size=5,
        val_images=held_out,
        val_every=50,
        patience=3,
        min_improvement=0.01,
    )
    assert run.stop_reason == "plateau" and run.step < 5000
    assert run.step == run.validation[-1]["step"] and run.best_step < run.step
    best = min(run.validation, key=lambda row: row["loss_mean"])
    assert (run.best_step, run.best_loss) == (best["step"], best["loss_mean"])
    dec.load_state_dict(run.best_state["decoder"])
    enc.load_state_dict(run.best_state["encoder"])
    again = evaluate(dec, held_out, encoder=enc).summary()["loss_mean"]
    assert again == pytest.approx(best["loss_mean"], rel=1e-6)


def test_early_stopping_at_the_cap_says_cap_and_resumes_to_the_same_state(tmp_path):
    images = _images(20)
    options = dict(encoder=None, steps=12, batch_size=5, val_every=2, patience=50, min_improvement=0.0)
    straight_dec, straight_enc = _models()
    straight = train(straight_dec, images, **{**options, "encoder": straight_enc}, val_images=images)
    assert straight.stop_reason == "cap"
    dec, enc = _models()
    ckpt = tmp_path / "ae.pt"
    train(
        dec,
        images,
        **{**options, "encoder": enc},
        val_images=images,
        checkpoint_path=ckpt,
        checkpoint_every=4,
        stop_after=6,
    )
    dec2, enc2 = _models(seed=3)
    resumed = train(dec2, images, **{**options, "encoder": enc2}, val_images=images, checkpoint_path=ckpt)
    assert (resumed.stop_reason, resumed.best_step, resumed.best_loss) == (
        straight.stop_reason,
        straight.best_step,
        straight.best_loss,
    )
    assert all(torch.equal(resumed.best_state["decoder"][k], v) for k, v in straight.best_state["decoder"].items())


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(patience=-1), "patience=-1 is invalid: must be an integer >= 0"),
        (dict(val_every=-1), "val_every=-1 is invalid"),
        (dict(checkpoint_every=-1), "checkpoint_every=-1 is invalid"),
        (dict(val_every=2.5), "val_every=2.5 is invalid"),
        (dict(seed=1.5), "seed=1.5 is invalid: must be an integer"),
        (dict(seed=True), "seed=True is invalid"),
    ],
)
def test_nonsensical_counts_and_seeds_are_refused(kwargs, message):
    dec, enc = _models()
    with pytest.raises(ValueError, match=message):
        train(dec, _images(10), encoder=enc, steps=5, **kwargs)


def test_patience_needs_validation():
    dec, enc = _models()
    with pytest.raises(ValueError, match="patience"):
        train(dec, _images(10), encoder=enc, steps=5, patience=2)


def test_adjoint_run_logs_the_cosine_to_the_approximate_gradient():
    images = _images(10)
    encode_options = dict(solver="rk4", steps=4, tau=20.0)
    dec, _ = _models(ae=False)
    run = train(
        dec, images, encode_options=encode_options, gradient="adjoint", steps=3, batch_size=5, log_gradient_cosine=True
    )
    cosines = [row["grad_cosine"] for row in run.steps]
    assert all(-1.0 <= c <= 1.0 for c in cosines) and all(c < 1.0 - 1e-9 for c in cosines)
    approx = train(
        _models(ae=False)[0], images, encode_options=encode_options, steps=3, batch_size=5, log_gradient_cosine=True
    )
    assert all("grad_cosine" not in row for row in approx.steps)  # the approximate run has nothing to compare


def test_gradient_cosine_of_a_gradient_with_itself_is_one():
    images = _images(5)
    dec, _ = _models(ae=False)
    z = torch.rand(5, 4)
    _, loss_fn = resolve_loss("bce", dec)
    params = [p for p in dec.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss_fn(dec(z), images).sum(), params)
    assert gradient_cosine(dec, images, z, grads, loss_fn) == pytest.approx(1.0, abs=1e-12)
    assert gradient_cosine(dec, images, z, [-g for g in grads], loss_fn) == pytest.approx(-1.0, abs=1e-12)


def test_adam_uses_the_eps_it_is_given_and_refuses_rmsprops_alpha():
    from gfe.training import OptimizerSettings

    params = [torch.nn.Parameter(torch.zeros(2))]
    assert OptimizerSettings(name="adam", lr=1e-3, eps=0.5).build(params).defaults["eps"] == 0.5
    assert OptimizerSettings(name="adam", lr=1e-3).build(params).defaults["eps"] == 1e-8
    assert OptimizerSettings(lr=1e-3).build(params).defaults["eps"] == 1e-6  # RMSprop: the authors' value
    with pytest.raises(ValueError, match="alpha=0.5 is RMSprop's"):
        OptimizerSettings(name="adam", lr=1e-3, alpha=0.5).build(params)


def test_gradient_check_finds_nan_and_inf_and_passes_huge_finite_gradients():
    from gfe.training import _grads_finite

    layer = torch.nn.Linear(3, 4)
    for p in layer.parameters():
        p.grad = torch.ones_like(p)
    assert _grads_finite([layer, None])
    layer.weight.grad[1, 2] = float("nan")
    assert not _grads_finite([layer])
    layer.weight.grad[1, 2] = float("-inf")
    assert not _grads_finite([layer])
    # finite values whose sum overflows float32: checked element by element, so not refused
    layer.weight.grad.fill_(3e38)
    assert _grads_finite([layer])
    layer.bias.grad = None
    assert _grads_finite([layer])


def test_autoencoder_steps_with_the_summed_gradient_check_equal_the_elementwise_check(monkeypatch):
    """The AE's cheap finiteness check changes no number: 200 steps give the same losses and
    parameters as with the elementwise check it replaced."""
    import gfe.training as training

    def elementwise(modules):
        return all(bool(torch.isfinite(p.grad).all()) for m in modules if m is not None for p in m.parameters())

    runs = []
    for check in (training._grads_finite, elementwise):
        monkeypatch.setattr(training, "_grads_finite", check)
        decoder, encoder = _models()
        runs.append((train(decoder, _images(), steps=200, encoder=encoder, seed=3), decoder, encoder))
    (fast, d1, e1), (reference, d2, e2) = runs
    assert _losses(fast) == _losses(reference) and len(_losses(fast)) == 200
    assert _same_parameters(d1, d2) and _same_parameters(e1, e2)
