"""Helpers shared by the workflow's command-line scripts (not part of the library).

Provenance of every result row, atomic writes of CSV/JSON/NPZ files, torch threads,
and the translation of the config's per-model / per-dataset settings (passed to the
scripts as JSON) into keyword arguments of `gfe`.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def setup(threads: int) -> logging.Logger:
    """Torch threads from the rule's `threads`; log to stderr (the rule sends it to its log file)."""
    import torch

    torch.set_num_threads(max(1, int(threads)))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", handlers=[logging.StreamHandler(sys.stderr)],
                        force=True)
    return logging.getLogger("gfe-workflow")


def run(main) -> int:
    """Run a script's main(); the library's expected failures (missing or damaged data or
    checkpoints, a diverging flow or training run) end it with their message
    in the log and exit status 1 instead of a traceback."""
    from gfe.checkpoints import CheckpointError
    from gfe.data import DatasetError

    try:
        return main()
    except (DatasetError, CheckpointError, FloatingPointError) as error:
        logging.getLogger("gfe-workflow").error("%s: %s", type(error).__name__, error)
        return 1


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "absent"


def git_commit() -> str:
    """HEAD of the repository the script runs from, '+dirty' if tracked files other than
    the workflow's outputs differ from it."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()
        # Outputs (results/, figures/) being rewritten do not make the code dirty.
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                ":(exclude)results", ":(exclude)figures"], cwd=REPO,
                               capture_output=True, text=True, check=True).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def provenance(device: str) -> dict:
    return {"git_commit": git_commit(), "torch_version": _version("torch"),
            "torchdiffeq_version": _version("torchdiffeq"), "snakemake_version": _version("snakemake"),
            "device": device}


def _tmp(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def write_text(text: str, path) -> None:
    path = Path(path)
    tmp = _tmp(path)
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(obj, path) -> None:
    write_text(json.dumps(obj, indent=1, sort_keys=True) + "\n", path)


def write_csv(frame, path) -> None:
    write_text(frame.to_csv(index=False, float_format="%.10g", lineterminator="\n"), path)


def write_npz(path, **arrays) -> None:
    path = Path(path)
    tmp = _tmp(path)
    try:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, **arrays)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def parse_n(value: str, n_train: int) -> int:
    return n_train if value == "full" else int(value)


def flow_options(model: dict, dataset: dict) -> dict:
    """Encode options for a GFE model on a dataset (dataset AMD overrides merged in)."""
    flow = {"solver": model["solver"], "order": model.get("order", 1), "tau": float(model["tau"]),
            "z0": model.get("z0", "zeros"), "loss": dataset["loss"]}
    options = dict(model.get("solver_options", {}))
    if model["solver"] == "amd":
        options.update(dataset.get("amd_options", {}))
    flow.update(options)
    return flow


def evaluation_flow(flow: dict) -> dict:
    """Encode options for validation and test: those of training, but AMD always with its
    per-sample rule (a sample's encoding then does not depend on the batch it is in)."""
    return {k: v for k, v in flow.items() if k != "shared"}


def amd_rule(flow: dict) -> str:
    """'shared' (the authors' one step per batch), 'per-sample', or '' for other solvers."""
    if flow.get("solver") != "amd":
        return ""
    return "shared" if flow.get("shared") else "per-sample"


PREPARED_KEYS = ("image_shape", "train_images", "train_labels", "val_images", "test_images", "test_labels",
                 "subset_order")
MODEL_KEYS = ("decoder", "encoder", "image_shape", "latent_dim")
REBUILD = "delete it and re-run snakemake, which rebuilds it"


def _load_output(path, keys, what: str):
    """A file another rule wrote (prepared data, a model), checked for damage and for the
    entries this version reads; either problem is one DamagedFileError naming the file and
    the fix."""
    from gfe.checkpoints import DamagedFileError, load_tensors

    try:
        saved = load_tensors(path)
    except DamagedFileError as error:
        raise DamagedFileError(f"{error}; {REBUILD}") from None
    missing = [k for k in keys if not isinstance(saved, dict) or k not in saved]
    if missing:
        raise DamagedFileError(f"{path} is not a {what} of this version (no {missing}); {REBUILD}")
    return saved


def load_prepared(path):
    """The prepared dataset file, images back to float32 in [0, 1] (as torchvision's ToTensor)."""
    import torch

    prepared = _load_output(path, PREPARED_KEYS, "prepared dataset file")
    for key in ("train_images", "val_images", "test_images"):
        images = prepared[key]
        prepared[key] = images.to(torch.float32).div_(255)
    return prepared


def load_model(path, device="cpu"):
    """(decoder, encoder or None) from a model file written by train.py, in eval mode."""
    from gfe.checkpoints import DamagedFileError
    from gfe.models import build_autoencoder, build_decoder

    saved = _load_output(path, MODEL_KEYS, "model file")
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
        raise DamagedFileError(f"{path} does not fit this version's networks ({reason}); {REBUILD}") from None
    decoder.to(device).eval()
    return decoder, encoder
