"""Checkpoints written atomically, read back safely.

A checkpoint is a dict of tensors and plain Python values. It is written to a temporary
file beside its destination and renamed into place, so a reader never sees half a file;
the checkpoint it replaces is kept as `<name>.prev`. Loading uses `weights_only=True`:
a file that would need arbitrary unpickling (code execution) is refused, a truncated or
unreadable latest checkpoint falls back to the previous one.
"""

from __future__ import annotations

import os
import pickle
import warnings
from pathlib import Path

import torch


class CheckpointError(RuntimeError):
    """A checkpoint could not be used; the message says which file and why."""


def previous_path(path: Path) -> Path:
    return path.with_name(path.name + ".prev")


def atomic_torch_save(obj, path: Path) -> None:
    """torch.save to a temporary file in the same folder, then rename over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_checkpoint(state: dict, path) -> None:
    """Write `state` to `path`, keeping the checkpoint it replaces as `<path>.prev`."""
    path = Path(path)
    if path.exists():
        os.replace(path, previous_path(path))
    atomic_torch_save(state, path)


def _read(path: Path) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "weights_only" in str(error) or "Weights only load failed" in str(error):
            raise CheckpointError(
                f"{path} is refused: it holds pickled objects beyond tensors and plain values, "
                "which could run code when loaded. Delete it, or re-create it with this project"
            ) from error
        raise
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
        except CheckpointError:
            raise
        except Exception as error:  # truncated zip, bad header, wrong content
            failures.append(f"{candidate}: {type(error).__name__}: {error}")
            continue
        if failures:
            warnings.warn(f"checkpoint {path} is damaged ({failures[0]}); resuming from {candidate}")
        return state
    if failures:
        raise CheckpointError("no usable checkpoint; " + "; ".join(failures) +
                              ". Delete these files to restart training from scratch")
    return None
