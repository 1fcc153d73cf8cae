"""Checkpoints written atomically, read back safely.

A checkpoint is a dict of tensors and plain Python values. It is written to a temporary
file beside its destination and renamed into place (gfe.io.atomic_write), so a reader
never sees half a file; the checkpoint it replaces is kept as `<name>.prev`. Loading uses
gfe.io.load_tensors (`weights_only=True`): a file that would need arbitrary unpickling
(code execution) is refused, a truncated or unreadable latest checkpoint falls back to the
previous one.
"""

from __future__ import annotations

import warnings
from pathlib import Path

# Re-exported: the errors, the safe loader and the atomic torch.save live in gfe.io.
from .io import CheckpointError, DamagedFileError, atomic_torch_save, load_tensors

__all__ = [
    "CheckpointError",
    "DamagedFileError",
    "atomic_torch_save",
    "load_checkpoint",
    "load_tensors",
    "previous_path",
    "remove_checkpoint",
    "save_checkpoint",
]


def previous_path(path: Path) -> Path:
    return path.with_name(path.name + ".prev")


def save_checkpoint(state: dict, path) -> None:
    """Write `state` to `path`, keeping the checkpoint it replaces as `<path>.prev`."""
    path = Path(path)
    atomic_torch_save(state, path, previous=previous_path(path))


def remove_checkpoint(path) -> None:
    """Delete the checkpoint at `path` and its `.prev` (a finished run's outputs are written)."""
    path = Path(path)
    for candidate in (path, previous_path(path)):
        candidate.unlink(missing_ok=True)


def _read(path: Path) -> dict:
    state = load_tensors(path)
    if not isinstance(state, dict) or "step" not in state:
        raise ValueError("not a gfe training checkpoint (no 'step' entry)")
    return state


def load_checkpoint(path) -> dict | None:
    """The latest readable checkpoint at `path` (or its `.prev`), or None if there is none."""
    path = Path(path)
    failures = []
    for candidate in (path, previous_path(path)):
        if not candidate.exists():
            continue
        try:
            state = _read(candidate)
        except (DamagedFileError, ValueError) as error:
            failures.append(str(error) if isinstance(error, DamagedFileError) else f"{candidate}: {error}")
            continue
        if failures:
            warnings.warn(f"checkpoint {path} is damaged ({failures[0]}); resuming from {candidate}", stacklevel=2)
        return state
    if failures:
        raise CheckpointError(
            "no usable checkpoint; " + "; ".join(failures) + ". Delete these files to restart training from scratch"
        )
    return None
