"""A training job killed mid-way (SIGKILL of the whole workflow, as a node failure or
`scancel` would) resumes from its last checkpoint when the workflow is re-run, and ends
with exactly the parameters and logged metrics of an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pandas as pd
import pytest
import torch
import yaml

from workflow_helpers import SNAKEMAKE, copy_repo, snakemake

pytestmark = pytest.mark.slow

RUN = "results/runs/fashion_mnist/gfe_amd/N100/seed0"
MODEL = "results/models/fashion_mnist/gfe_amd/N100/seed0.pt"
CHECKPOINT = "results/checkpoints/fashion_mnist/gfe_amd/N100/seed0.pt"
STEPS, EVERY = 24, 4


def _workspace(tmp_path, name):
    repo = copy_repo(tmp_path / name)
    config = yaml.safe_load((repo / "config/quick.yaml").read_text())
    config["training"] = {"steps": STEPS, "checkpoint_every": EVERY}
    (repo / "config/resume.yaml").write_text(yaml.safe_dump(config))
    return repo


def _run_to_completion(repo):
    result = snakemake(repo, f"{RUN}/run.json", "--cores", "1", "--rerun-incomplete",
                       "--configfile", "config/resume.yaml")
    assert result.returncode == 0, result.stderr[-3000:]


def _checkpoint_step(repo) -> int:
    try:
        return int(torch.load(repo / CHECKPOINT, weights_only=True)["step"])
    except Exception:  # not there yet, or being renamed into place
        return 0


def _kill_after_first_checkpoints(repo) -> int:
    """Start the job, SIGKILL the workflow's whole process group once a checkpoint past
    the first one is on disk, and return the step it holds."""
    output = open(repo / "killed_run.log", "w")
    process = subprocess.Popen([SNAKEMAKE, f"{RUN}/run.json", "--cores", "1", "--configfile", "config/resume.yaml"],
                               cwd=repo, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 600
    try:
        while _checkpoint_step(repo) < 2 * EVERY:
            if process.poll() is not None:
                pytest.fail("the job ended before it could be killed:\n" + (repo / "killed_run.log").read_text()[-3000:])
            assert time.monotonic() < deadline, "no checkpoint appeared in 10 minutes"
            time.sleep(0.2)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        output.close()
    return _checkpoint_step(repo)


def _without_wall_clock(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[[c for c in frame.columns if not (c.endswith("_s") or "seconds" in c)]]


def test_killed_training_job_resumes_to_the_uninterrupted_result(tmp_path):
    straight = _workspace(tmp_path, "straight")
    _run_to_completion(straight)

    killed = _workspace(tmp_path, "killed")
    step_at_kill = _kill_after_first_checkpoints(killed)
    assert 0 < step_at_kill < STEPS
    assert not (killed / RUN / "run.json").exists()
    # A SIGKILLed Snakemake leaves its lock behind: the documented recovery is --unlock, then re-run.
    assert snakemake(killed, "--unlock", "--cores", "1", "--configfile", "config/resume.yaml").returncode == 0
    _run_to_completion(killed)
    log = (killed / f"logs/train/fashion_mnist/gfe_amd/N100/seed0.log").read_text()
    print(f"killed at step {step_at_kill} of {STEPS}; resumed run log tail:\n{log[-400:]}")

    for name in ("train_log.csv", "validation.csv"):
        a = _without_wall_clock(pd.read_csv(straight / RUN / name))
        b = _without_wall_clock(pd.read_csv(killed / RUN / name))
        pd.testing.assert_frame_equal(a, b)
    a = torch.load(straight / MODEL, weights_only=True)["decoder"]
    b = torch.load(killed / MODEL, weights_only=True)["decoder"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
