"""The library checks its inputs at the entry of a call or run, never per step: options,
loss and the decoder's output shape once per `gfe.encode`, `decoder_loss_and_gradient`,
`evaluate` and `gfe.training.train`, whatever the number of training steps, evaluation
batches or flow evaluations; and bad input is refused as before, with the same messages."""

import pytest
import torch

import gfe
import gfe.encoding
import gfe.evaluation
import gfe.gradients
import gfe.training
from gfe.evaluation import evaluate
from gfe.models import build_decoder
from gfe.training import train
from helpers import TinyDecoder

MNIST = (1, 28, 28)
# The checks an encode makes of its options and decoder; each is counted wherever a module
# of the library has imported it.
CHECKS = ("resolve_loss", "check_images", "latent_dim_of", "check_encode_options", "decoder_output_shape")
MODULES = (gfe.encoding, gfe.gradients, gfe.training, gfe.evaluation)
FLOW = dict(solver="amd", shared=True, tau=20.0, z0="uniform", loss="bce")


def _images(n, dtype=torch.float32, seed=1):
    return torch.rand(n, *MNIST, generator=torch.Generator().manual_seed(seed)).to(dtype)


def _mlp(latent_dim=4, seed=0):
    torch.manual_seed(seed)
    return build_decoder(MNIST, latent_dim)


# ====================================================== (a) bad input: the same refusals


def _train(decoder, x, **options):
    """GFE training of a few steps on x, refused at its first step for bad images."""
    return train(decoder, x, steps=2, batch_size=min(3, len(x)), encode_options=dict(options, solver="amd"))


def _evaluate(decoder, x, **options):
    return evaluate(decoder, x, encode_options=options, batch_size=8)


def _gradient(decoder, x, **options):
    return gfe.decoder_gradient(decoder, x, solver="amd", **options)


ENTRIES = {"encode": gfe.encode, "decoder_gradient": _gradient, "evaluate": _evaluate, "train": _train}

# (error, message fragment as tests/test_faults_library.py asserts it, images)
BAD_IMAGES = {
    "not a tensor": (TypeError, r"x is a list; pass a torch.Tensor", lambda: _images(3).tolist()),
    "uint8": (TypeError, r"x has dtype torch.uint8; .*x.float\(\) / 255", lambda: (_images(3) * 255).to(torch.uint8)),
    "float64": (
        TypeError,
        r"x has dtype torch.float64 but the decoder's parameters have dtype torch.float32; "
        r"use x.to\(torch.float32\) or decoder.to\(torch.float64\)",
        lambda: _images(3, torch.float64),
    ),
    "another device": (
        ValueError,
        r"x is on device meta but the decoder's parameters are on cpu; use x.to\('cpu'\)",
        lambda: _images(3).to("meta"),
    ),
    "wrong shape": (
        ValueError,
        r"x has shape \(3, 1, 27, 28\); .*shape \(1, 28, 28\), so x must be \(B, 1, 28, 28\) or flattened \(B, 784\)",
        lambda: torch.rand(3, 1, 27, 28),
    ),
    "bce targets outside [0, 1]": (
        ValueError,
        r"x has values in \[0\.\d+, 25\d\.?\d*\]; loss='bce' needs targets in \[0, 1\] \(divide by 255",
        lambda: _images(3) * 255,
    ),
}

BAD_OPTIONS = {
    "tau": (dict(tau=-1.0), r"tau=-1.0 is invalid: must be a finite number > 0"),
    "order": (dict(order=3), r"order=3 is invalid: allowed 1 \(gradient flow\) or 2"),
    "alpha": (dict(alpha=0), r"alpha=0 is invalid: must be a number > 0"),
    "latent_dim": (dict(latent_dim=0), r"latent_dim=0 is invalid: must be an integer >= 1"),
    "z0": (dict(z0="ones"), r"z0='ones' is unknown; allowed: \['zeros', 'uniform'\]"),
    "solver option": (dict(dt_max=-1.0), r"AMD option dt_max=-1.0 is invalid"),
    "loss for the decoder": (dict(loss="mse"), r"loss='mse' expects a decoder that outputs probabilities"),
    "size of z": (dict(latent_dim=5, z0=torch.zeros(3, 4)), r"the size of z is ambiguous"),
}


def _raises(error, match, fn, *args, **kwargs):
    with pytest.raises(error, match=match) as info:
        fn(*args, **kwargs)
    assert "\n" not in str(info.value)


# train indexes its images before any check: a list fails there as Python's indexing makes it
# (as it did before checks ran once), so that one pair is not among the cases.
IMAGE_CASES = [(e, c) for c in BAD_IMAGES for e in ENTRIES if (e, c) != ("train", "not a tensor")]


@pytest.mark.parametrize(("entry", "case"), IMAGE_CASES)
def test_bad_images_are_refused_with_the_same_messages(entry, case):
    error, match, images = BAD_IMAGES[case]
    _raises(error, match, ENTRIES[entry], _mlp(), images(), tau=5.0)


@pytest.mark.parametrize("entry", list(ENTRIES))
@pytest.mark.parametrize("case", list(BAD_OPTIONS))
def test_bad_options_are_refused_with_the_same_messages(entry, case):
    options, match = BAD_OPTIONS[case]
    _raises(ValueError, match, ENTRIES[entry], _mlp(), _images(3), **{"tau": 5.0, **options})


def test_a_decoder_without_latent_dim_needs_it_in_every_entry():
    decoder = torch.nn.Sequential(torch.nn.Linear(4, 12))
    x = torch.rand(3, 12)
    for entry in ENTRIES.values():
        _raises(ValueError, "the size of z is unknown: pass latent_dim=d", entry, decoder, x, loss="bce", tau=5.0)


def test_evaluate_refuses_seed_and_sample_ids_in_its_encode_options_as_before():
    for name, value in (("seed", 1), ("sample_ids", torch.arange(3))):
        match = rf"encode\(\) got multiple values for keyword argument '{name}'"
        _raises(TypeError, match, evaluate, _mlp(), _images(3), encode_options={name: value, "tau": 5.0})


# ====================================================== (b) checks once per run, not per step


@pytest.fixture
def counts(monkeypatch):
    """Calls of each of CHECKS, through whichever module of the library calls it."""
    calls = dict.fromkeys(CHECKS, 0)
    for name in CHECKS:
        original = getattr(gfe.encoding, name, None) or getattr(gfe.losses, name)
        for module in MODULES:
            if getattr(module, name, None) is original:

                def counted(*args, _name=name, _original=original, **kwargs):
                    calls[_name] += 1
                    return _original(*args, **kwargs)

                monkeypatch.setattr(module, name, counted)
    return calls


def _counted(counts, fn):
    for name in counts:
        counts[name] = 0
    fn()
    return dict(counts)


def test_training_checks_once_whatever_the_number_of_steps(counts):
    """A GFE run of 2 and of 6 steps makes the same checks (the old code checked every step)."""
    images = torch.rand(12, 12, generator=torch.Generator().manual_seed(0))

    def run(steps):
        torch.manual_seed(0)
        return lambda: train(TinyDecoder(), images, steps=steps, batch_size=3, encode_options=FLOW)

    short, long = _counted(counts, run(2)), _counted(counts, run(6))
    assert short == long, (short, long)
    assert short["resolve_loss"] >= 1 and short["decoder_output_shape"] == 1


def test_evaluation_checks_once_whatever_the_number_of_batches(counts):
    decoder, images = TinyDecoder(), torch.rand(12, 12, generator=torch.Generator().manual_seed(0))
    options = dict(FLOW, shared=False)
    one = _counted(counts, lambda: evaluate(decoder, images, encode_options=options, batch_size=12))
    six = _counted(counts, lambda: evaluate(decoder, images, encode_options=options, batch_size=2))
    assert one == six, (one, six)
    assert one["check_encode_options"] == 1 and one["decoder_output_shape"] == 1


@pytest.mark.parametrize("entry", ["encode", "decoder_loss_and_gradient"])
def test_one_call_resolves_the_loss_and_probes_the_decoder_once(counts, entry):
    decoder, x = TinyDecoder(), torch.rand(3, 12, generator=torch.Generator().manual_seed(0))
    fn = getattr(gfe, entry)
    seen = _counted(counts, lambda: fn(decoder, x, solver="amd", tau=50.0, loss="bce"))
    assert seen["resolve_loss"] == 1 and seen["decoder_output_shape"] == 1, seen
    assert seen["latent_dim_of"] == 1, seen


def test_training_with_checked_settings_takes_the_steps_of_the_public_gradient():
    """The training step's unchecked path gives the numbers of `decoder_loss_and_gradient`,
    the checked public call, step by step."""
    images = torch.rand(12, 12, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    decoder = TinyDecoder()
    reference = TinyDecoder()
    reference.load_state_dict(decoder.state_dict())
    run = train(decoder, images, steps=4, batch_size=3, seed=5, encode_options=FLOW)
    optimizer = gfe.training.OptimizerSettings().build(reference.parameters())
    sampler = gfe.training.BatchSampler(len(images), 3, 5)
    for step in range(4):
        optimizer.zero_grad(set_to_none=True)
        result = gfe.decoder_loss_and_gradient(reference, images[sampler.next()], seed=5 * 1_000_003 + step, **FLOW)
        for param, grad in zip(reference.parameters(), result.grads, strict=True):
            param.grad = grad
        optimizer.step()
        assert run.steps[step]["loss"] == float(result.loss.double().mean())
    assert all(torch.equal(a, b) for a, b in zip(decoder.parameters(), reference.parameters(), strict=True))
