"""Mutation tests of `gfe.encoding` (docs/testing.md, "Mutation score"): each test pins a
number, a decision or a refusal that a surviving mutant of `make mutation
MUTATE=src/gfe/encoding.py` changed without any fast test noticing. Only the public entry
points are used (`gfe.encode`, `gfe.initial_latents`, `gfe.check_encode_options`,
`gfe.check_images`), so that the tests hold whatever the module's helpers are called."""

import math

import numpy as np
import pytest
import torch

import gfe
from helpers import TinyDecoder


def _uniform(batch, dim, **kwargs):
    return gfe.initial_latents("uniform", batch, dim, dtype=torch.float64, **kwargs)


def _rows(seed, ids, dim):
    """The documented per-image draw: row i from numpy's generator seeded (seed, ids[i])."""
    return torch.from_numpy(
        np.stack([np.random.default_rng(np.random.SeedSequence([seed, i])).random(dim) for i in ids])
    )


# ---------------------------------------------------------------- z(0) per image


def test_per_image_draw_is_the_documented_numpy_draw_and_seed_none_is_seed_0():
    """Kills `0 if seed is None` -> `1` and -> `(seed is None) and False` (a refusal)."""
    ids = [5, 0, 9]
    assert torch.equal(_uniform(3, 4, seed=3, sample_ids=ids), _rows(3, ids, 4))
    assert torch.equal(_uniform(3, 4, seed=None, sample_ids=ids), _rows(0, ids, 4))


@pytest.mark.parametrize("seed", [-1, 1.5, "1", True])
def test_per_image_draw_refuses_a_seed_that_is_not_an_integer_at_least_0(seed):
    """Kills `is_integer(seed) and seed >= 0` -> `or` (1.5 would draw as seed 1) and the
    message -> None."""
    with pytest.raises(ValueError, match=f"seed={seed!r} is invalid with sample_ids"):
        _uniform(3, 2, seed=seed, sample_ids=[0, 1, 2])


def test_bool_sample_ids_are_refused():
    """Kills `ids.is_complex() or ids.dtype == torch.bool` -> `and` (True, False read as 1, 0)."""
    with pytest.raises(ValueError, match="sample_ids=.* is invalid: must be 3 integers >= 0"):
        _uniform(3, 2, seed=0, sample_ids=torch.tensor([True, False, True]))


def test_the_refusal_shows_bad_sample_ids_on_one_line_cut_at_80_characters():
    """Kills the one-line rendering (`" ".join` -> `"XX XX".join`, `repr(None)`) and the cut
    (`[:80]` -> `[:81]`)."""
    with pytest.raises(ValueError) as info:
        _uniform(2, 2, seed=0, sample_ids=torch.tensor([[1, 2], [3, 4]]))
    assert str(info.value).startswith("sample_ids=tensor([[1, 2], [3, 4]]) is invalid: must be 2 integers >= 0")
    long = list(range(-1, 60))
    with pytest.raises(ValueError) as info:
        _uniform(len(long), 2, seed=0, sample_ids=long)
    assert str(info.value).startswith(f"sample_ids={repr(long)[:80]} is invalid")


def test_an_empty_batch_with_sample_ids_has_no_rows():
    """Kills `np.stack(rows) if rows` -> `if rows or True` (stack of nothing raises) and the
    empty shape `(0, d)` -> `(1, d)` / `None`."""
    z = _uniform(0, 4, seed=0, sample_ids=torch.zeros(0, dtype=torch.int64))
    assert z.shape == (0, 4) and z.dtype == torch.float64


def test_a_z0_tensor_of_the_wrong_shape_is_refused_naming_both_shapes():
    """Kills the message of the z0 shape refusal -> None (and `tuple(None)`: a TypeError)."""
    with pytest.raises(ValueError, match=r"^z0 has shape \(2, 3\); expected \(2, 4\)$"):
        gfe.initial_latents(torch.zeros(2, 3), 2, 4)


# ---------------------------------------------------------------- encode's result


def test_encode_reports_the_wall_time_of_the_batch():
    """Kills `seconds=time.perf_counter() - started` -> `seconds=None`, -> left out (0.0)
    and -> `perf_counter() + started` (twice the clock)."""
    decoder = TinyDecoder(latent_dim=2, pixels=6)
    x = torch.rand(3, 6, generator=torch.Generator().manual_seed(0))
    out = gfe.encode(decoder, x, solver="euler", tau=1.0, steps=2)
    assert isinstance(out.seconds, float) and 0 < out.seconds < 60 and not math.isnan(out.seconds)
