"""The Makefile's venv stamp: `make venv` reinstalls when the TORCH pin, pyproject.toml or the
checkout it was installed from changes, and does nothing otherwise (a fake venv whose python
records what it is asked)."""

import os
import subprocess

from workflow_helpers import REPO


def _fake_venv(tmp_path):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    calls = tmp_path / "calls.txt"
    python = venv / "bin" / "python"
    python.write_text(f'#!/bin/sh\necho "$*" >> {calls}\n')
    pip = venv / "bin" / "pip"
    pip.write_text("#!/bin/sh\n")
    for tool in (python, pip):
        tool.chmod(0o755)
    return venv, calls


def _make_venv(venv, torch):
    return subprocess.run(
        ["make", "-f", str(REPO / "Makefile"), "-C", str(REPO), "venv", f"VENV={venv}", f"TORCH={torch}"],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_make_venv_reinstalls_when_the_torch_pin_changes_and_only_then(tmp_path):
    venv, calls = _fake_venv(tmp_path)
    first = _make_venv(venv, "torch==2.14.1")
    assert first.returncode == 0, first.stderr
    assert calls.read_text().splitlines() == ["-m pip install torch==2.14.1", "-m pip install -e .[test]"]
    assert (venv / ".gfe-installed").read_text() == f"torch==2.14.1 from {REPO}\n"
    calls.unlink()
    assert _make_venv(venv, "torch==2.14.1").returncode == 0 and not calls.exists()  # up to date: nothing
    changed = _make_venv(venv, "torch==2.11.0")
    assert changed.returncode == 0
    assert f"venv changed: torch==2.14.1 from {REPO} -> torch==2.11.0 from {REPO}" in changed.stdout
    assert calls.read_text().splitlines()[0] == "-m pip install torch==2.11.0"


def test_make_venv_reinstalls_when_pyproject_is_newer_than_the_stamp(tmp_path):
    venv, calls = _fake_venv(tmp_path)
    assert _make_venv(venv, "torch==2.14.1").returncode == 0
    calls.unlink()
    old = (REPO / "pyproject.toml").stat().st_mtime - 10
    os.utime(venv / ".gfe-installed", (old, old))  # as if pyproject.toml changed since
    assert _make_venv(venv, "torch==2.14.1").returncode == 0
    assert "-m pip install -e .[test]" in calls.read_text()


def test_make_venv_reinstalls_for_another_checkout(tmp_path):
    """A venv shared by two checkouts (a symlink) would import the other one's code."""
    venv, calls = _fake_venv(tmp_path)
    assert _make_venv(venv, "torch==2.14.1").returncode == 0
    (venv / ".gfe-installed").write_text("torch==2.14.1 from /elsewhere/checkout\n")
    calls.unlink()
    assert _make_venv(venv, "torch==2.14.1").returncode == 0
    assert "-m pip install -e .[test]" in calls.read_text()
