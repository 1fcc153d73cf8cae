"""What every solver returns, and the error a diverging flow raises."""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class SolverOutput:
    """Per-sample results of integrating the flow of a batch (all tensors have length B)."""

    z: torch.Tensor  # (B, d) encoding z(t_end)
    loss: torch.Tensor  # (B,) per-sample loss at z
    nfe: torch.Tensor  # (B,) int64 decoder forward+backward evaluations spent on the sample
    converged: torch.Tensor  # (B,) bool, the solver's stop rule fired before tau
    t: torch.Tensor  # (B,) float64 integration time reached
    rejected: torch.Tensor  # (B,) int64 trial steps rejected (0 for fixed-step solvers)


class FlowDivergedError(FloatingPointError):
    """The flow produced a non-finite loss or state; names the samples and the step."""

    def __init__(self, message: str, samples: list[int], step: int | None = None):
        super().__init__(message)
        self.samples = samples
        self.step = step


def first_samples(mask: torch.Tensor, limit: int = 10) -> list[int]:
    """Indices of the True entries of a (B,) mask, at most `limit` of them."""
    return mask.nonzero().flatten()[:limit].tolist()


def is_bool(value) -> bool:
    """A real bool (Python's or numpy's); 1, 'no' or None are not."""
    return isinstance(value, (bool, np.bool_))


def is_number(value) -> bool:
    """A real number that is not a bool (True is an int to Python, never a step size)."""
    return isinstance(value, numbers.Real) and not is_bool(value)


def is_integer(value) -> bool:
    """A number with an integer value (2 or 2.0, not 2.5, True or '2')."""
    return is_number(value) and float(value).is_integer()
