"""The data's own loss floor (gfe.losses.bernoulli_entropy_floor)."""

import math

import pytest
import torch

from gfe.losses import bce_with_logits, bernoulli_entropy_floor


def test_the_floor_is_each_pixels_bernoulli_entropy_averaged_per_image():
    images = torch.tensor([[[0.0, 1.0], [0.5, 0.5]], [[0.2, 0.2], [0.2, 0.2]]])
    h = -(0.2 * math.log(0.2) + 0.8 * math.log(0.8))
    expected = torch.tensor([(0 + 0 + 2 * math.log(2)) / 4, h], dtype=torch.float64)
    assert torch.allclose(bernoulli_entropy_floor(images), expected, atol=1e-12)
    assert bernoulli_entropy_floor(images).dtype == torch.float64


def test_no_prediction_beats_the_floor_and_predicting_the_image_reaches_it():
    torch.manual_seed(0)
    x = torch.rand(50, 1, 8, 8).double()
    floor = bernoulli_entropy_floor(x)
    exact = bce_with_logits(torch.logit(x), x)  # predicting each pixel's own value
    assert torch.allclose(exact, floor, atol=1e-10)
    for _ in range(5):
        other = bce_with_logits(torch.logit(x) + 0.3 * torch.randn_like(x), x)
        assert bool((other >= floor - 1e-12).all())


@pytest.mark.parametrize(
    "images, message",
    [
        (torch.tensor([[1.5, 0.2]]), r"must lie in \[0, 1\]"),
        (torch.tensor([[-0.1, 0.2]]), r"must lie in \[0, 1\]"),
        (torch.empty(0, 4), "need"),
        (torch.tensor([0.5, 0.5]), "need"),
    ],
)
def test_the_floor_refuses_what_it_is_not_defined_for(images, message):
    with pytest.raises(ValueError, match=message):
        bernoulli_entropy_floor(images)
