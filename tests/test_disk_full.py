"""A full disk is named as such, as the last line of a job's log (torch's zip writer
reports it as "unexpected pos ..."), and the file being replaced stays whole."""

import errno
import logging
import shutil
import subprocess
import sys
from collections import namedtuple
from pathlib import Path

import pytest
import torch

from gfe import io
from workflow_helpers import missing

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
from pipeline import common  # noqa: E402

Usage = namedtuple("Usage", "total used free")


def _torch_like_failure(tmp: Path) -> None:
    tmp.write_bytes(b"partial")
    raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 5803968 vs 5803860")


def test_a_write_that_runs_out_of_disk_raises_enospc_naming_the_file(tmp_path, monkeypatch):
    target = tmp_path / "ckpt.pt"
    target.write_bytes(b"previous")
    monkeypatch.setattr(shutil, "disk_usage", lambda folder: Usage(10**9, 10**9, 0))
    with pytest.raises(OSError) as info:
        io.atomic_write(target, _torch_like_failure)
    assert info.value.errno == errno.ENOSPC
    assert f"No space left on device: writing {target} failed" in str(info.value)
    assert target.read_bytes() == b"previous" and sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt"]


def test_another_write_failure_with_space_left_is_not_called_a_full_disk(tmp_path):
    with pytest.raises(RuntimeError, match="unexpected pos"):
        io.atomic_write(tmp_path / "x.pt", _torch_like_failure)


def test_enospc_in_the_chain_is_a_full_disk_whatever_the_space_now(tmp_path):
    def write(tmp):
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as error:
            raise RuntimeError("basic_ios::clear: iostream error") from error

    with pytest.raises(OSError) as info:
        io.atomic_write(tmp_path / "x.pt", write)
    assert info.value.errno == errno.ENOSPC


def test_a_script_ends_with_the_full_disk_as_its_last_log_line(caplog):
    def main():
        raise OSError(errno.ENOSPC, "No space left on device: writing ckpt.pt failed (unexpected pos 5 vs 4)")

    with caplog.at_level(logging.ERROR, logger="gfe-workflow"):
        assert common.run(main) == 1
    last = caplog.records[-1].getMessage()
    assert last.startswith("OSError: No space left on device: writing ckpt.pt failed") and "re-run snakemake" in last


def test_a_real_full_disk(tmp_path):
    """On a 256 KiB tmpfs. Mounting one needs root (in a container, CAP_SYS_ADMIN): where it
    is not allowed the test is skipped, and fails where CI is set (CI runs as root and has
    run it)."""
    mount = tmp_path / "full"
    mount.mkdir()
    if shutil.which("mount") is None:
        missing("needs the mount command for a tmpfs: apt-get install mount (Debian's util-linux)")
    tried = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if tried.returncode:
        missing(
            f"cannot mount a tmpfs here ({tried.stderr.strip()}): run the tests as root, in a container "
            "with CAP_SYS_ADMIN (docker run --cap-add SYS_ADMIN, or --privileged)"
        )
    try:
        (mount / "ckpt.pt").write_bytes(b"previous")
        with pytest.raises(OSError) as info:
            io.atomic_write(mount / "ckpt.pt", lambda tmp: torch.save({"w": torch.zeros(200_000)}, tmp))
        assert info.value.errno == errno.ENOSPC
        assert (mount / "ckpt.pt").read_bytes() == b"previous"
    finally:
        # lazy: the exception info may still hold the failed write's open file
        subprocess.run(["umount", "--lazy", str(mount)], check=False)
