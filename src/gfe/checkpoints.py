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


class DamagedFileError(CheckpointError):
    """A saved file is truncated or not a torch file at all."""


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


def remove_checkpoint(path) -> None:
    """Delete the checkpoint at `path` and its `.prev` (a finished run's outputs are written)."""
    path = Path(path)
    for candidate in (path, previous_path(path)):
        candidate.unlink(missing_ok=True)


def load_tensors(path) -> object:
    """torch.load with `weights_only=True` onto the CPU: tensors and plain values only.

    A file that would need arbitrary unpickling (and could run code) is refused with a
    CheckpointError; a truncated or otherwise unreadable file raises DamagedFileError.
    Both name the file.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except pickle.UnpicklingError as error:
        # torch names the blocked class or function ("GLOBAL posix.system"); any other
        # unpickling error means damaged bytes.
        if "GLOBAL" in str(error):
            raise CheckpointError(
                f"{path} is refused: it holds pickled objects beyond tensors and plain values, "
                "which could run code when loaded. Delete it, or re-create it with this project"
            ) from error
        raise DamagedFileError(f"{path} is damaged: unreadable pickle data") from error
    except Exception as error:  # truncated zip archive, bad header, short read
        reason = str(error).split(". ")[0].splitlines()[0] if str(error) else type(error).__name__
        raise DamagedFileError(f"{path} is damaged: {reason}") from error


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
            warnings.warn(f"checkpoint {path} is damaged ({failures[0]}); resuming from {candidate}")
        return state
    if failures:
        raise CheckpointError("no usable checkpoint; " + "; ".join(failures) +
                              ". Delete these files to restart training from scratch")
    return None
