"""Helpers shared by the workflow's command-line scripts (not part of the library).

Provenance of every result row, torch threads and logging, a script's expected failures
as one log line, and the AMD rule of a run's encode options. The scripts take resolved
arguments (encode options, latent size, optimiser: src/pipeline/plan.py), never the config's
sections. Files are written and read through the library (gfe.io).
"""

from __future__ import annotations

import errno
import logging
import subprocess
import sys
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def setup(threads: int) -> logging.Logger:
    """Torch threads from the rule's `threads`; log to stderr (the rule sends it to its log file)."""
    import torch

    torch.set_num_threads(max(1, int(threads)))
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(message)s", handlers=[logging.StreamHandler(sys.stderr)], force=True
    )
    return logging.getLogger("gfe-workflow")


# A damaged prepared-data or model file is another rule's output: the fix the log names.
REBUILD = "delete it and re-run snakemake, which rebuilds it"


class RunFileError(ValueError):
    """Per-run files that cannot be read or are not what their jobs wrote; one line per file,
    naming it and the fix (the check before aggregation, src/pipeline/identity.py, and aggregate.py)."""


def run(main) -> int:
    """Run a script's main(); the library's expected failures (missing or damaged data,
    checkpoints, prepared-data or model files, a diverging flow or training run) end it
    with their message in the log and exit status 1 instead of a traceback."""
    from gfe.data import DatasetError
    from gfe.io import CheckpointError, DamagedFileError

    log = logging.getLogger("gfe-workflow")
    try:
        return main()
    except DamagedFileError as error:  # the scripts load only files the workflow writes
        log.error("%s: %s; %s", type(error).__name__, error, REBUILD)
        return 1
    except (DatasetError, CheckpointError, FloatingPointError) as error:
        log.error("%s: %s", type(error).__name__, error)
        return 1
    except OSError as error:
        if error.errno != errno.ENOSPC:
            raise
        # the last line of the log, not torch's "unexpected pos" buried under a traceback
        log.error(
            "OSError: %s; free space on that disk and re-run snakemake (a training job resumes "
            "from its last whole checkpoint)",
            error.strerror or error,
        )
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
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        # Outputs (results/, figures/) being rewritten do not make the code dirty.
        dirty = subprocess.run(
            [
                "git",
                "status",
                "--porcelain",
                "--untracked-files=no",
                "--",
                ".",
                ":(exclude)results",
                ":(exclude)figures",
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def provenance(device: str) -> dict:
    return {
        "git_commit": git_commit(),
        "torch_version": _version("torch"),
        "torchdiffeq_version": _version("torchdiffeq"),
        "snakemake_version": _version("snakemake"),
        "device": device,
    }


def parse_n(value: str, n_train: int) -> int:
    return n_train if value == "full" else int(value)


def amd_rule(encode_options: dict) -> str:
    """'shared' (the authors' one step per batch), 'per-sample', or '' for other solvers."""
    if encode_options.get("solver") != "amd":
        return ""
    return "shared" if encode_options.get("shared") else "per-sample"
