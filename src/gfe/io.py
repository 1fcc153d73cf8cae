"""Every file the project writes, and the formats of its model and prepared-data files.

Atomic writes: `atomic_write(path, write)` is the one place where a file (or a folder) is
written to a temporary beside its destination and renamed over it. A reader sees the old
file or the new one, never half of one; a write that fails leaves the destination as it
was and no temporary behind. The writers below (text, JSON, CSV, NPZ, torch files) go
through it, as do the library's checkpoints and data copies and the workflow's figures.

Loading: `load_tensors` is the one torch.load, with `weights_only=True` (tensors and
plain values only: a file that would unpickle arbitrary objects, and so could run code,
is refused).

Formats:
  model file     `save_model` / `load_model`: the decoder's and the encoder's (None for
                 a GFE model) parameters, the model's name, image shape and latent size;
  prepared data  `save_prepared` / `load_prepared`: a dataset's split, test subset and
                 nested training orders, images stored as bytes and read back as float32
                 in [0, 1].
A file that is damaged or lacks what this version reads raises DamagedFileError naming it.

The module reads no config files; how a damaged file is rebuilt is the caller's to say.
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .models import build_autoencoder, build_decoder

__all__ = [
    "MODEL_KEYS",
    "PREPARED_IMAGES",
    "PREPARED_KEYS",
    "CheckpointError",
    "DamagedFileError",
    "SavedModel",
    "atomic_torch_save",
    "atomic_write",
    "load_model",
    "load_prepared",
    "load_tensors",
    "read_model",
    "save_model",
    "save_prepared",
    "temporary_path",
    "write_csv",
    "write_json",
    "write_npz",
    "write_text",
]


class CheckpointError(RuntimeError):
    """A saved file (checkpoint, model, prepared data) could not be used; the message says
    which file and why."""


class DamagedFileError(CheckpointError):
    """A saved file is truncated, not a torch file at all, or not of this version's format."""


# ---------------------------------------------------------------- atomic writes


def temporary_path(path) -> Path:
    """The temporary beside `path` that `atomic_write` fills: `.<name>.<pid>.tmp<suffix>`
    (hidden, one per process, and with `path`'s suffix for writers that go by it)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.tmp{path.suffix}")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def atomic_write(path, write: Callable[[Path], object], *, previous=None) -> Path:
    """Create `path` with `write(tmp)`, which must create the file (or folder) `tmp`; then
    rename `tmp` over `path`.

    The parent folder is created if need be. If `write` raises, `path` is left as it was and
    `tmp` is removed. With `previous`, the file that `path` replaces (if any) is kept there.
    A folder can replace only a missing or empty folder. Returns `path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)
    _remove(tmp)  # left by a killed process that had the same id
    try:
        write(tmp)
        if previous is not None and path.exists():
            os.replace(path, previous)
        os.replace(tmp, path)
    except BaseException as error:
        if _in_chain(error, KeyboardInterrupt):  # torch's writer reports it as 'unexpected pos'
            kept = f"the previous {path.name} is intact" if path.exists() else f"no {path.name} was written"
            raise KeyboardInterrupt(f"interrupted while writing {path}; {kept}") from None
        if isinstance(error, Exception) and _disk_full(error, path.parent):
            raise OSError(errno.ENOSPC, f"No space left on device: writing {path} failed ({error})") from error
        raise
    finally:
        _remove(tmp)
    return path


def _in_chain(error: BaseException | None, kind: type) -> bool:
    """Whether `error` or an error it was raised from or during is a `kind`."""
    while error is not None:
        if isinstance(error, kind):
            return True
        error = error.__cause__ or error.__context__
    return False


def _disk_full(error: BaseException, folder: Path) -> bool:
    """Whether a failed write ran out of disk: ENOSPC in the error's chain, or no space left
    where it wrote (torch's zip writer reports a full disk as 'unexpected pos ...')."""
    while error is not None:
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            return True
        error = error.__cause__ or error.__context__
    try:
        return shutil.disk_usage(folder).free < 1 << 20
    except OSError:
        return False


def write_text(text: str, path) -> None:
    """`text` as UTF-8, line ends as they are, atomically."""
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8", newline=""))


def write_json(obj, path) -> None:
    """`obj` as JSON (indent 1, sorted keys, a final newline), atomically."""
    write_text(json.dumps(obj, indent=1, sort_keys=True) + "\n", path)


def write_csv(frame, path) -> None:
    """A pandas DataFrame as CSV (no index, floats to 10 significant digits, '\\n' line ends), atomically."""
    write_text(frame.to_csv(index=False, float_format="%.10g", lineterminator="\n"), path)


def write_npz(path, **arrays) -> None:
    """`arrays` as a compressed NPZ file, atomically."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, **arrays)

    atomic_write(path, write)


def atomic_torch_save(obj, path, *, previous=None) -> None:
    """torch.save `obj` to `path` atomically (`previous`: as in `atomic_write`).

    Saved through a file handle, so the archive's inner folder is torch's fixed 'archive'
    rather than the temporary's name: the same object gives the same bytes.
    """

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            torch.save(obj, handle)

    atomic_write(path, write, previous=previous)


# ---------------------------------------------------------------- safe loading


def load_tensors(path) -> object:
    """torch.load with `weights_only=True` onto the CPU: tensors and plain values only.

    A file that would need arbitrary unpickling (and could run code) is refused with a
    CheckpointError; a truncated or otherwise unreadable file raises DamagedFileError.
    Both name the file. A missing file raises FileNotFoundError.
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


def _load_entries(path, keys, what: str) -> dict:
    """A saved dict checked for damage and for the entries this version reads."""
    saved = load_tensors(path)
    missing = [k for k in keys if not isinstance(saved, dict) or k not in saved]
    if missing:
        raise DamagedFileError(f"{path} is not a {what} of this version (no {missing})")
    return saved


# ---------------------------------------------------------------- model files

# The entries a model file must hold (it also holds "model", the model's name).
MODEL_KEYS = ("decoder", "encoder", "image_shape", "latent_dim")


def save_model(
    path, *, decoder: nn.Module, encoder: nn.Module | None, model_name: str, image_shape, latent_dim: int
) -> None:
    """A trained model's file: the decoder's and encoder's (None: a GFE model) parameters,
    its name, image shape and latent size."""
    atomic_torch_save(
        {
            "decoder": decoder.state_dict(),
            "encoder": encoder.state_dict() if encoder is not None else None,
            "model": model_name,
            "image_shape": image_shape,
            "latent_dim": latent_dim,
        },
        path,
    )


@dataclass(frozen=True)
class SavedModel:
    """A model file's contents: networks rebuilt (gfe.models) with the saved parameters."""

    decoder: nn.Module
    encoder: nn.Module | None
    name: str | None
    image_shape: list
    latent_dim: int


def read_model(path, device="cpu") -> SavedModel:
    """The model file at `path` with its networks on `device`, in eval mode.

    Raises DamagedFileError if the file is damaged, lacks an entry, or holds parameters of
    other networks than this version builds for its image shape and latent size.
    """
    saved = _load_entries(path, MODEL_KEYS, "model file")
    shape, latent_dim = saved["image_shape"], saved["latent_dim"]
    try:
        if saved["encoder"] is not None:
            ae = build_autoencoder(shape, latent_dim)
            decoder, encoder = ae.decoder, ae.encoder
            encoder.load_state_dict(saved["encoder"])
            encoder.to(device).eval()
        else:
            decoder, encoder = build_decoder(shape, latent_dim), None
        decoder.load_state_dict(saved["decoder"])
    except RuntimeError as error:  # parameters of another architecture
        reason = str(error).splitlines()[0]
        raise DamagedFileError(f"{path} does not fit this version's networks ({reason})") from None
    decoder.to(device).eval()
    return SavedModel(decoder, encoder, saved.get("model"), shape, latent_dim)


def load_model(path, device="cpu") -> tuple[nn.Module, nn.Module | None]:
    """(decoder, encoder or None) of the model file at `path` (see `read_model`)."""
    model = read_model(path, device)
    return model.decoder, model.encoder


# ---------------------------------------------------------------- prepared data

# The entries a prepared-data file must hold. It may hold more: prepare_data.py also saves
# the dataset's name, the validation labels and every split's indices into the official
# files ("name", "train_idx", "val_labels", "val_idx", "test_idx").
PREPARED_KEYS = (
    "image_shape",
    "train_images",
    "train_labels",
    "val_images",
    "test_images",
    "test_labels",
    "subset_order",
)
# Image entries: stored as uint8 bytes, read back as float32 in [0, 1].
PREPARED_IMAGES = ("train_images", "val_images", "test_images")


def _to_bytes(images: torch.Tensor) -> torch.Tensor:
    """Images k/255 (floats) to their bytes k; bytes unchanged."""
    if images.dtype == torch.uint8:
        return images
    if not images.is_floating_point():
        raise TypeError(f"images must be uint8 or floats in [0, 1], not {images.dtype}")
    return (images * 255).round_().to(torch.uint8)


def save_prepared(path, prepared: dict) -> None:
    """A prepared dataset (the entries of PREPARED_KEYS and any others, in their order) to
    `path`; the images (uint8, or floats k/255 as `load_prepared` returns them) as bytes."""
    missing = [k for k in PREPARED_KEYS if k not in prepared]
    if missing:
        raise ValueError(f"a prepared dataset needs the entries {missing}")
    atomic_torch_save({k: _to_bytes(v) if k in PREPARED_IMAGES else v for k, v in prepared.items()}, path)


def load_prepared(path) -> dict:
    """The prepared dataset at `path`, images back to float32 in [0, 1] (as torchvision's
    ToTensor). Raises DamagedFileError if the file is damaged or lacks an entry."""
    prepared = _load_entries(path, PREPARED_KEYS, "prepared dataset file")
    for key in PREPARED_IMAGES:
        prepared[key] = prepared[key].to(torch.float32).div_(255)
    return prepared
