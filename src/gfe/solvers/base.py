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


def raise_if_decoder_broke(flow, z: torch.Tensor, target: torch.Tensor, rows, samples, label: str, step: int) -> None:
    """Evaluate the flow again at latents where it gave a finite loss and gradient before,
    and raise a FlowDivergedError if it no longer does: the decoder itself broke (its output
    is no longer a function of z), which no smaller step gets around.

    The solvers that reject non-finite trial steps call this only where a sample can go no
    further because of one (AMD: its smallest, forced step; L-BFGS: the trial its line search
    stopped on). A decoder that is non-finite only in part of latent space passes the check,
    and its non-finite trials stay rejected steps, as before.

    Args:
        flow: the first-order flow (`loss_and_velocity(z, target, rows=rows)`).
        z: (B', d) latents, each with a finite loss and gradient at an earlier evaluation.
        target: (B', ...) their images.
        rows: (B',) their rows in the flow's batch, as `loss_and_velocity` takes them, or None.
        samples: (B',) int tensor, their indices in the caller's batch (for the message).
        label: the solver as its messages name it ('AMD', 'L-BFGS', ...).
        step: the solver's iteration, for the message.
    """
    loss, velocity = flow.loss_and_velocity(z, target, rows=rows)
    bad = ~(torch.isfinite(loss) & torch.isfinite(velocity).all(1))
    if bool(bad.any()):
        named = samples[bad.to(samples.device)][:10].tolist()
        raise FlowDivergedError(
            f"{label}: the decoder output or loss (or its gradient) turned non-finite at iteration {step} "
            f"for samples {named}, at latents where it was finite before; check the decoder (were its "
            "weights changed or corrupted during the encode?)",
            named,
            step,
        )


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
