"""Mutation tests of the training loop's stop and resume logic (`gfe.training`; docs/testing.md,
"Mutation score"): the early-stopping rule against a plain reimplementation of its
documentation, when a run validates, stops and saves a checkpoint, what a resumed run
restores, and which changed setting makes a checkpoint another run's. Only `train` and the
rule's public functions are used, so that the tests hold whatever train()'s steps are called."""

import numpy as np
import pytest
import torch

from gfe.checkpoints import CheckpointError, load_checkpoint
from gfe.models import MLPDecoder, MLPEncoder
from gfe.training import OptimizerSettings, patience_at, plateau_counts, plateau_stop, train


def _images(n=20, seed=0):
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


def _ae(seed=2020):
    torch.manual_seed(seed)
    return MLPDecoder(latent_dim=4), MLPEncoder(latent_dim=4)


# ---------------------------------------------------------------- the rule, as documented


def reference_counts(losses, min_improvement, window=1):
    counts, reference = [], None
    for k in range(len(losses)):
        recent = losses[max(0, k - window + 1) : k + 1]
        signal = sum(recent) / len(recent)
        if reference is None or signal < reference * (1 - min_improvement):
            reference, count = signal, 0
        else:
            count += 1
        counts.append(count)
    return counts


def reference_stop(losses, patience, min_improvement, window=1, fraction=0.0):
    for k, count in enumerate(reference_counts(losses, min_improvement, window)):
        if count >= max(patience, fraction * (k + 1)):
            return k
    return None


def _sequences():
    rng = np.random.default_rng(0)
    for _ in range(60):
        n = int(rng.integers(1, 41))
        level, out = 1.0, []
        for _ in range(n):
            level *= 1 - float(rng.choice([0.0, 0.001, 0.02, 0.1, -0.05]))
            out.append(round(level, int(rng.choice([2, 3, 6]))))
        yield out


@pytest.mark.parametrize("window", [1, 2, 3, 5])
@pytest.mark.parametrize("min_improvement", [0.0, 0.01, 0.05])
def test_plateau_counts_and_stop_equal_the_documented_rule(window, min_improvement):
    """Kills the window's slice bounds, the restart test (`<` -> `<=`, `1.0 - m` -> `1.0 + m`,
    `k == 0`), the count step, and plateau_stop's `>=` against patience_at."""
    for losses in _sequences():
        assert plateau_counts(losses, min_improvement, window) == reference_counts(losses, min_improvement, window)
        for patience, fraction in ((1, 0.0), (2, 0.0), (3, 0.0), (2, 0.3), (1, 0.5)):
            got = plateau_stop(losses, patience, min_improvement, window, fraction)
            assert got == reference_stop(losses, patience, min_improvement, window, fraction), (losses, patience)


def test_plateau_edge_cases():
    """A check equal to the bar does not restart the count; an infinite first check does;
    the default window is the last check alone; no checks, no counts."""
    assert plateau_counts([1.0, 1.0, 1.0], 0.0) == [0, 1, 2]
    assert plateau_counts([float("inf"), 5.0, 5.0], 0.0) == [0, 0, 1]
    assert plateau_counts([4.0, 2.0, 5.0, 1.0], 0.0) == [0, 0, 1, 0]
    assert plateau_counts([4.0, 2.0, 5.0, 1.0], 0.0, 2) == [0, 0, 1, 2]
    assert plateau_counts([], 0.0) == []
    assert plateau_stop([1.0, 1.0, 1.0], 2, 0.0) == 2 and plateau_stop([1.0, 1.0], 2, 0.0) is None
    assert plateau_stop([1.0, 1.0, 1.0, 1.0], 1, 0.0, patience_fraction=0.0) == 1


def test_patience_at_is_the_larger_of_patience_and_the_fraction_of_checks_so_far():
    assert patience_at(9, 3, 0.5) == 5.0  # (9 + 1) * 0.5
    assert patience_at(4, 3, 0.5) == 3  # 2.5 < 3
    assert patience_at(6, 3, 0.5) == 3.5
    assert patience_at(100, 3) == 3  # no fraction by default


@pytest.mark.parametrize("window", [0, -1, 1.5])
def test_a_bad_window_is_refused(window):
    with pytest.raises(ValueError, match=f"plateau window={window!r} is invalid"):
        plateau_counts([1.0], 0.0, window)


# ---------------------------------------------------------------- settings train() refuses


BAD = [
    (dict(steps=0), "steps=0 is invalid"),
    (dict(steps=2.5), "steps=2.5 is invalid"),
    (dict(patience=True), "patience=True is invalid"),
    (dict(checkpoint_every=1.0), "checkpoint_every=1.0 is invalid"),
    (dict(seed="1"), "seed='1' is invalid"),
    (dict(gradient="exact"), "gradient='exact' is unknown"),
    (dict(patience=2, val_every=2), "patience=2 needs validation images"),
    (dict(patience=2, val_every=0, val_images="images"), "patience=2 needs validation images"),
    (dict(min_improvement=1.0), r"min_improvement=1.0 is invalid: must be in \[0, 1\)"),
    (dict(min_improvement=-0.01), "min_improvement=-0.01 is invalid"),
    (dict(patience_fraction=1.0), "patience_fraction=1.0 is invalid"),
]


@pytest.mark.parametrize("kwargs, message", BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_a_bad_setting_is_refused_before_any_step(kwargs, message):
    decoder, encoder = _ae()
    before = [p.clone() for p in decoder.parameters()]
    kwargs = {**kwargs, **({"val_images": _images(4)} if kwargs.get("val_images") else {})}
    with pytest.raises(ValueError, match=message):
        train(decoder, _images(), encoder=encoder, steps=kwargs.pop("steps", 3), **kwargs)
    assert all(torch.equal(p, q) for p, q in zip(before, decoder.parameters(), strict=True))


def test_settings_at_their_bounds_are_accepted():
    """steps=1, min_improvement=0, patience_fraction just below 1, a zero count."""
    decoder, encoder = _ae()
    run = train(
        decoder,
        _images(),
        encoder=encoder,
        steps=1,
        val_images=_images(4, seed=1),
        val_every=1,
        patience=1,
        min_improvement=0.0,
        patience_fraction=0.99,
        checkpoint_every=0,
        seed=0,
    )
    assert run.step == 1 and run.stop_reason == "cap"


# ---------------------------------------------------------------- when a run validates and stops


def test_validation_runs_at_0_every_val_every_the_val_at_steps_and_the_last():
    decoder, encoder = _ae()
    run = train(
        decoder, _images(), encoder=encoder, steps=10, batch_size=5, val_images=_images(4, 1), val_every=3, val_at=(5,)
    )
    assert [row["step"] for row in run.validation] == [0, 3, 5, 6, 9, 10]
    assert [row["images_seen"] for row in run.validation] == [0, 15, 25, 30, 45, 50]
    assert run.stop_reason == "steps" and run.step == 10 and len(run.steps) == 10
    assert run.validation[0]["elapsed_s"] == 0.0 and run.validation[-1]["elapsed_s"] == run.steps[-1]["elapsed_s"]


def test_without_validation_a_run_takes_all_its_steps_and_never_validates():
    decoder, encoder = _ae()
    run = train(decoder, _images(), encoder=encoder, steps=4, val_images=_images(4, 1), val_every=0)
    assert run.validation == [] and run.stop_reason == "steps" and run.best_state is None
    assert [row["images_seen"] for row in run.steps] == [5, 10, 15, 20]


@pytest.mark.parametrize("lr", [2e-3, 5e-4])
def test_a_plateau_stops_the_run_at_the_check_the_rule_names_and_keeps_the_lowest_check(lr):
    """The stop step is the first check at which plateau_stop says stop (with a window and
    a patience fraction), the best check is the lowest, its weights are those of that step.
    lr 2e-3: the best check (step 20) comes two checks before the stop (step 40); lr 5e-4:
    the run stops at step 190 on the mean of two checks, after a patience grown to 4."""
    images = _images(10)
    options = dict(
        steps=600,
        batch_size=5,
        val_images=images,
        val_every=10,
        patience=2,
        min_improvement=0.01,
        plateau_window=2,
        patience_fraction=0.2,
        optimizer=OptimizerSettings(lr=lr),
    )
    decoder, encoder = _ae()
    run = train(decoder, images, encoder=encoder, **options)
    losses = [row["loss_mean"] for row in run.validation]
    assert run.stop_reason == "plateau" and plateau_stop(losses, 2, 0.01, 2, 0.2) == len(losses) - 1
    assert run.step == run.validation[-1]["step"] == {2e-3: 40, 5e-4: 190}[lr]
    assert run.checks_since_best == plateau_counts(losses, 0.01, 2)[-1]
    best = min(range(len(losses)), key=lambda k: (losses[k], k))
    assert (run.best_step, run.best_loss) == (run.validation[best]["step"], losses[best]) and run.best_step > 0
    # the kept weights are the model's at the best step: a run cut there ends with them
    decoder2, encoder2 = _ae()
    short = train(decoder2, images, encoder=encoder2, **{**options, "steps": run.best_step})
    assert all(torch.equal(v, decoder2.state_dict()[k]) for k, v in run.best_state["decoder"].items())
    assert all(torch.equal(v, encoder2.state_dict()[k]) for k, v in run.best_state["encoder"].items())
    assert [r["loss_mean"] for r in short.validation] == losses[: best + 1]


def test_a_run_with_patience_that_reaches_its_cap_says_cap():
    decoder, encoder = _ae()
    run = train(decoder, _images(), encoder=encoder, steps=3, val_images=_images(4, 1), val_every=1, patience=50)
    assert run.stop_reason == "cap" and run.step == 3


# ---------------------------------------------------------------- checkpoints and resume


def _checkpointed(path, **kwargs):
    decoder, encoder = _ae()
    options = dict(encoder=encoder, steps=10, batch_size=5, val_images=_images(4, 1), val_every=2, patience=20)
    return train(decoder, _images(), **{**options, **kwargs}, checkpoint_path=path), decoder


def _saved_steps(path):
    """The steps of the checkpoint at `path` and of the one it replaced (`.prev`)."""
    prev = path.with_name(path.name + ".prev")
    return load_checkpoint(path)["step"], load_checkpoint(prev)["step"] if prev.exists() else None


@pytest.mark.parametrize(
    "kwargs, saved",
    [
        (dict(checkpoint_every=4, stop_after=3), (3, None)),  # the kill point
        (dict(checkpoint_every=4, stop_after=6), (6, 4)),
        (dict(checkpoint_every=0, stop_after=5), (5, None)),
        (dict(checkpoint_every=4, steps=9), (9, 8)),  # every 4 steps and at the end
        (dict(checkpoint_every=0), (10, None)),  # at the end only
    ],
    ids=["kill-at-3", "every-4-kill-at-6", "kill-at-5", "every-4", "end-only"],
)
def test_a_checkpoint_is_saved_every_checkpoint_every_steps_at_stop_after_and_at_the_end(tmp_path, kwargs, saved):
    path = tmp_path / "run.pt"
    run, _ = _checkpointed(path, **kwargs)
    assert _saved_steps(path) == saved
    state = load_checkpoint(path)
    assert state["early_stopping"]["stop_reason"] == run.stop_reason
    assert state["history"]["steps"] == run.steps and state["history"]["validation"] == run.validation


def test_a_resumed_run_restores_everything_and_ends_as_an_uninterrupted_one(tmp_path):
    """The parameters, the logs, the early-stopping state, the sampler; resumed_at says where."""
    straight, straight_decoder = _checkpointed(tmp_path / "straight.pt", checkpoint_every=0)
    assert straight.resumed_at is None
    path = tmp_path / "run.pt"
    first, _ = _checkpointed(path, checkpoint_every=3, stop_after=5)
    assert first.step == 5 and first.stop_reason is None
    resumed, decoder = _checkpointed(path, checkpoint_every=3)
    assert resumed.resumed_at == 5 and resumed.step == 10
    assert [r["loss"] for r in resumed.steps] == [r["loss"] for r in straight.steps]
    assert [r["step"] for r in resumed.steps] == list(range(1, 11))
    assert resumed.steps[:5] == first.steps
    assert [r["loss_mean"] for r in resumed.validation] == [r["loss_mean"] for r in straight.validation]
    assert (resumed.best_step, resumed.best_loss, resumed.checks_since_best, resumed.stop_reason) == (
        straight.best_step,
        straight.best_loss,
        straight.checks_since_best,
        straight.stop_reason,
    )
    assert all(torch.equal(p, q) for p, q in zip(decoder.parameters(), straight_decoder.parameters(), strict=True))
    # resuming a finished run takes no step and changes nothing
    again, _ = _checkpointed(path, checkpoint_every=3)
    assert again.resumed_at == 10 and again.steps == resumed.steps and again.stop_reason == "cap"


def test_resuming_a_run_stopped_on_a_plateau_keeps_its_best_state(tmp_path):
    path = tmp_path / "run.pt"
    options = dict(patience=1, min_improvement=0.5, val_every=1, steps=30)
    run, _ = _checkpointed(path, **options)
    assert run.stop_reason == "plateau"
    again, decoder = _checkpointed(path, **options)
    assert again.stop_reason == "plateau" and again.step == run.step and again.steps == run.steps
    assert again.best_step == run.best_step and again.best_loss == run.best_loss
    assert all(torch.equal(v, again.best_state["decoder"][k]) for k, v in run.best_state["decoder"].items())


CHANGES = [
    ("steps", dict(steps=11)),
    ("batch_size", dict(batch_size=4)),
    ("seed", dict(seed=7)),
    ("val_every", dict(val_every=3)),
    ("val_at", dict(val_at=(3,))),
    ("patience", dict(patience=21)),
    ("min_improvement", dict(min_improvement=0.001)),
    ("plateau_window", dict(plateau_window=2)),
    ("patience_fraction", dict(patience_fraction=0.1)),
    ("optimizer", dict(optimizer=OptimizerSettings(lr=1e-3))),
    ("flow", dict(encode_options={"loss": "bce"})),
    ("val_flow", dict(val_encode_options={"loss": "bce"})),
    ("val images", dict(val_images=_images(4, 2))),
    ("code", dict(code_version="other")),
]


@pytest.mark.parametrize("name, change", CHANGES, ids=[c[0].replace(" ", "_") for c in CHANGES])
def test_a_checkpoint_of_a_run_with_another_setting_is_refused_naming_it(tmp_path, name, change):
    path = tmp_path / "run.pt"
    _checkpointed(path, checkpoint_every=2, stop_after=2)
    with pytest.raises(CheckpointError, match=rf"belongs to another run: (.*; )?{name} \("):
        _checkpointed(path, **change)


def test_a_checkpoint_stores_the_runs_identity_under_the_keys_older_checkpoints_have(tmp_path):
    """Checkpoints written before must still resume: the keys, and 16-hex-digit image hashes."""
    path = tmp_path / "run.pt"
    _checkpointed(path, stop_after=2)
    settings = load_checkpoint(path)["settings"]
    assert set(settings) == {
        "optimizer",
        "flow",
        "val_flow",
        "gradient",
        "steps",
        "batch_size",
        "seed",
        "val_every",
        "val_at",
        "patience",
        "min_improvement",
        "plateau_window",
        "patience_fraction",
        "train_images",
        "val_images",
        "decoder",
        "encoder",
        "code",
    }
    assert len(settings["train_images"]) == 16 and int(settings["train_images"], 16) >= 0
    assert settings["steps"] == 10 and settings["val_flow"] == {} and settings["val_at"] == []


def test_without_validation_the_validation_settings_do_not_make_another_run(tmp_path):
    """val_every=0: the validation images and options are not used, so a resume with others
    goes on (kills `val_flow ... if val_every` -> always)."""
    path = tmp_path / "run.pt"
    _checkpointed(path, val_every=0, patience=0, stop_after=2)
    run, _ = _checkpointed(path, val_every=0, patience=0, val_images=_images(4, 3), val_encode_options={"tau": 2.0})
    assert run.resumed_at == 2 and run.step == 10


def test_a_checkpoint_of_other_training_images_is_refused(tmp_path):
    path = tmp_path / "run.pt"
    _checkpointed(path, stop_after=2)
    decoder, encoder = _ae()
    other = _images()
    other[0, 0, 0, 0] = 0.5
    with pytest.raises(CheckpointError, match="train images .other images: hash"):
        train(
            decoder,
            other,
            encoder=encoder,
            steps=10,
            batch_size=5,
            val_images=_images(4, 1),
            val_every=2,
            patience=20,
            checkpoint_path=path,
        )


def test_validation_encodes_with_the_validation_options_and_the_runs_seed():
    """A GFE run's checks use `val_encode_options` (not the evaluation's defaults) and the
    run's seed for a uniform z0 (kills `encode_options=` / `seed=` of the check dropped or None)."""
    from gfe.evaluation import evaluate

    torch.manual_seed(0)
    decoder = MLPDecoder(latent_dim=4)
    start = {k: v.clone() for k, v in decoder.state_dict().items()}
    images, held_out = _images(10), _images(6, seed=1)
    val_options = dict(solver="rk4", steps=2, tau=3.0, z0="uniform")
    run = train(
        decoder,
        images,
        steps=1,
        encode_options=dict(solver="rk4", steps=1, tau=1.0),
        val_images=held_out,
        val_every=1,
        val_encode_options=val_options,
        seed=7,
    )
    decoder.load_state_dict(start)
    expected = evaluate(decoder, held_out, encode_options=val_options, seed=7).summary()["loss_mean"]
    assert run.validation[0]["loss_mean"] == expected
    assert expected != evaluate(decoder, held_out, encode_options=val_options, seed=0).summary()["loss_mean"]
    assert expected != evaluate(decoder, held_out).summary()["loss_mean"]


def test_of_equal_checks_the_first_is_the_best():
    """A learning rate too small to move a float32 weight: every check has the same loss, the
    count grows from the first, and the best check stays the first (kills `<` -> `<=`)."""
    decoder, encoder = _ae()
    run = train(
        decoder,
        _images(),
        encoder=encoder,
        steps=10,
        val_images=_images(4, 1),
        val_every=1,
        patience=3,
        optimizer=OptimizerSettings(lr=1e-30),
    )
    assert len({row["loss_mean"] for row in run.validation}) == 1
    assert run.stop_reason == "plateau" and run.step == 3 and (run.best_step, run.checks_since_best) == (0, 3)


def test_a_checkpoint_without_the_entries_of_this_version_is_refused_naming_them(tmp_path):
    from gfe.checkpoints import save_checkpoint

    path = tmp_path / "run.pt"
    save_checkpoint({"step": 3, "decoder": {}}, path)
    with pytest.raises(CheckpointError, match=r"^checkpoint .*run.pt lacks \['encoder', 'optimizer', 'sampler', "):
        _checkpointed(path)


def test_a_checkpoint_whose_settings_are_not_a_dict_belongs_to_another_run(tmp_path):
    from gfe.checkpoints import save_checkpoint

    path = tmp_path / "run.pt"
    _checkpointed(path, stop_after=2)
    state = load_checkpoint(path)
    assert state["format"] == 1
    save_checkpoint({**state, "settings": None}, path)
    with pytest.raises(CheckpointError, match=r"belongs to another run: optimizer \(None in the checkpoint, \{"):
        _checkpointed(path)


def test_the_refusal_names_the_value_saved_and_the_value_now(tmp_path):
    path = tmp_path / "run.pt"
    _checkpointed(path, stop_after=2)
    with pytest.raises(CheckpointError, match=r"belongs to another run: steps \(10 in the checkpoint, 11 now\) differ"):
        _checkpointed(path, steps=11)


# ---------------------------------------------------------------- the sampler and the defaults


def test_the_sampler_draws_seeded_permutations_and_drops_the_ragged_end():
    from gfe.training import BatchSampler

    sampler = BatchSampler(6, 4, seed=3)
    generator = torch.Generator().manual_seed(3)
    first, second = torch.randperm(6, generator=generator), torch.randperm(6, generator=generator)
    assert torch.equal(sampler.next(), first[:4])
    assert torch.equal(sampler.next(), second[:4])  # 2 left: a new epoch from its start
    torch.manual_seed(0)  # the global generator plays no part
    again = BatchSampler(6, 4, seed=3)
    torch.manual_seed(1)
    assert torch.equal(again.next(), first[:4])


@pytest.mark.parametrize("batch_size", [1, 20])
def test_a_batch_of_one_image_or_of_all_images_is_allowed(batch_size):
    decoder, encoder = _ae()
    run = train(decoder, _images(20), encoder=encoder, steps=2, batch_size=batch_size)
    assert [row["images_seen"] for row in run.steps] == [batch_size, 2 * batch_size]


@pytest.mark.parametrize("batch_size", [0, 21])
def test_a_batch_size_outside_1_to_the_training_set_size_is_refused(batch_size):
    decoder, encoder = _ae()
    with pytest.raises(ValueError, match=rf"batch_size={batch_size} is invalid: must be in \[1, 20\]"):
        train(decoder, _images(20), encoder=encoder, steps=2, batch_size=batch_size)


def test_the_defaults_are_batches_of_5_seed_2020_and_a_checkpoint_at_the_end_only(tmp_path):
    path = tmp_path / "run.pt"
    decoder, encoder = _ae()
    default = train(decoder, _images(), encoder=encoder, steps=3, checkpoint_path=path)
    decoder, encoder = _ae()
    explicit = train(decoder, _images(), encoder=encoder, steps=3, batch_size=5, seed=2020, checkpoint_every=0)
    assert [r["loss"] for r in default.steps] == [r["loss"] for r in explicit.steps]
    assert default.steps[-1]["images_seen"] == 15
    assert _saved_steps(path) == (3, None)
    decoder, encoder = _ae()
    assert train(decoder, _images(), encoder=encoder, steps=2, val_images=_images(4, 1)).validation == []


def test_a_tensor_encode_option_enters_the_identity_as_its_hash(tmp_path):
    """A (B, d) z0: the checkpoint holds its fingerprint; the same values resume, others are
    another run (kills `fingerprint(v) if isinstance(v, Tensor)` -> never / `fingerprint(None)`)."""
    path = tmp_path / "run.pt"

    def gfe_run(z0, **kwargs):
        torch.manual_seed(0)
        options = dict(solver="rk4", steps=1, tau=1.0, z0=z0)
        return train(
            MLPDecoder(latent_dim=4), _images(10), steps=3, encode_options=options, checkpoint_path=path, **kwargs
        )

    gfe_run(torch.full((5, 4), 0.1), stop_after=1)
    flow = load_checkpoint(path)["settings"]["flow"]
    assert isinstance(flow["z0"], str) and len(flow["z0"]) == 16
    assert gfe_run(torch.full((5, 4), 0.1)).resumed_at == 1
    path.unlink()
    path.with_name("run.pt.prev").unlink(missing_ok=True)
    gfe_run(torch.full((5, 4), 0.1), stop_after=1)
    with pytest.raises(CheckpointError, match=r"belongs to another run: flow \("):
        gfe_run(torch.full((5, 4), 0.2))


def test_the_default_plateau_window_is_the_last_check_alone():
    """Stopped at step 130 by the last check alone; a mean of two would not stop it there."""
    decoder, encoder = _ae()
    images = _images(10)
    run = train(
        decoder, images, encoder=encoder, steps=600, val_images=images, val_every=10, patience=2, min_improvement=0.01
    )
    losses = [row["loss_mean"] for row in run.validation]
    assert run.stop_reason == "plateau" and run.step == 130
    assert plateau_stop(losses, 2, 0.01) == len(losses) - 1 and plateau_stop(losses, 2, 0.01, window=2) is None


def test_the_gradient_cosine_is_logged_only_when_asked():
    torch.manual_seed(0)
    options = dict(steps=1, encode_options=dict(solver="rk4", steps=1, tau=1.0), gradient="adjoint")
    assert "grad_cosine" not in train(MLPDecoder(latent_dim=4), _images(10), **options).steps[0]
    assert "grad_cosine" in train(MLPDecoder(latent_dim=4), _images(10), **options, log_gradient_cosine=True).steps[0]


def test_a_checkpoint_of_other_networks_is_refused(tmp_path):
    path = tmp_path / "run.pt"
    _checkpointed(path, stop_after=2)
    torch.manual_seed(0)
    wider = dict(encoder=MLPEncoder(latent_dim=4), steps=10, batch_size=5, val_images=_images(4, 1), val_every=2)
    with pytest.raises(
        CheckpointError, match=r"belongs to another run: decoder architecture \(e.g. another latent_dim\)"
    ):
        train(MLPDecoder(latent_dim=5), _images(), **wider, patience=20, checkpoint_path=path)
    torch.manual_seed(0)
    with pytest.raises(CheckpointError, match=r"belongs to another run: encoder architecture"):
        train(
            MLPDecoder(latent_dim=4),
            _images(),
            **{**wider, "encoder": MLPEncoder(latent_dim=3)},
            patience=20,
            checkpoint_path=path,
        )
