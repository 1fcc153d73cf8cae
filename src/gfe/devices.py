"""Where to compute: the torch device of a job."""

from __future__ import annotations

import torch


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' is CUDA when available, else the CPU; 'cuda' without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={name!r} was requested but no CUDA GPU is available; use 'auto' or 'cpu'")
    if not (name == "cpu" or name.startswith("cuda")):
        raise ValueError(f"device={name!r} is unknown; allowed: 'auto', 'cpu', 'cuda', 'cuda:N'")
    return torch.device(name)
