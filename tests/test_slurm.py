"""Cluster execution: the workflow through a real single-node SLURM cluster on localhost.

The module fixture starts munged, slurmctld and slurmd with .ci/slurm-up.sh (installing
Debian's slurmctld, slurmd, slurm-client and munge when missing) and stops them with
.ci/slurm-down.sh. The reduced quick config (every rule; the first seed and size) then runs
through workflow/profiles/slurm in a temporary copy of the repository. Every job that
Snakemake did not run locally must have gone through sbatch (the controller's own job
list says so: MinJobAge keeps finished jobs in squeue for an hour), and every per-run file
must equal the same file of the session's local quick run apart from wall-clock columns.
Processes started here get the cluster's SLURM_CONF (tests/conftest.py gives other tests an
empty one).

Where no cluster can be started (not root, no apt-get, a foreign slurm.conf) the tests
are skipped, unless CI is set: then they fail with the reason.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from workflow_helpers import NO_SLURM_CONF, REPO, copy_repo, per_run_files, rules_run, write_reduced_quick

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

BIN = Path(sys.executable).parent
SNAKEMAKE = str(BIN / "snakemake")
UP = REPO / ".ci" / "slurm-up.sh"
DOWN = REPO / ".ci" / "slurm-down.sh"
CONFIG = "config/quick.yaml"
# The test cluster has no accounting database, so no sacct: job states come from squeue
# (slurm.conf: MinJobAge = 3600 >= 3 x 3 s), and the first check comes after 3 s, not 40 s.
CLUSTER_ONLY = ["--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "3"]
RUN_TIMEOUT = 1800  # seconds, per Snakemake run
WORKFLOW_PRESENT = (REPO / "workflow" / "Snakefile").is_file() and (REPO / CONFIG).is_file()


def _env() -> dict:
    """The shell commands of the rules call `python`: this interpreter's environment, with
    the cluster's SLURM configuration (not the empty one conftest.py gives other tests)."""
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    if env.get("SLURM_CONF") == NO_SLURM_CONF:
        del env["SLURM_CONF"]
    return env


def _run(cmd: list[str], cwd: Path, timeout: int = RUN_TIMEOUT) -> tuple[subprocess.CompletedProcess, float]:
    # After SIGTERM Snakemake waits for its jobs: SIGKILL 10 s later.
    start = time.monotonic()
    result = subprocess.run(
        ["timeout", "-k", "10", str(timeout), *cmd], cwd=cwd, env=_env(), capture_output=True, text=True
    )
    return result, time.monotonic() - start


def _cannot(reason: str):
    if os.environ.get("CI"):
        pytest.fail(f"no SLURM cluster in CI: {reason}")
    pytest.skip(f"no SLURM cluster: {reason}")


@pytest.fixture(scope="module")
def slurm_cluster():
    if os.name != "posix" or os.geteuid() != 0:
        _cannot(".ci/slurm-up.sh needs root")
    if not shutil.which("slurmctld") and not shutil.which("apt-get"):
        _cannot("SLURM is not installed and there is no apt-get to install it")
    try:
        up = subprocess.run([str(UP)], env=_env(), capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        subprocess.run([str(DOWN)], env=_env(), capture_output=True, timeout=120)
        _cannot(".ci/slurm-up.sh took more than 10 minutes")
    if up.returncode != 0:
        subprocess.run([str(DOWN)], env=_env(), capture_output=True, timeout=120)
        _cannot(f".ci/slurm-up.sh exited {up.returncode}: {up.stderr[-2000:]}")
    try:
        yield up.stderr
    finally:
        subprocess.run([str(DOWN)], env=_env(), capture_output=True, text=True, timeout=120)


def slurm_jobs() -> list[dict]:
    """Every job the controller knows (finished ones too, for MinJobAge): id, name, state, comment."""
    out = subprocess.run(
        ["squeue", "-h", "-t", "all", "-o", "%i|%j|%T|%k"],
        env=_env(),
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    jobs = []
    for line in out.splitlines():
        jobid, name, state, comment = line.split("|", 3)
        jobs.append({"id": jobid, "name": name, "state": state, "comment": comment})
    return jobs


def snakemake_jobs(log: str) -> tuple[Counter, Counter, dict]:
    """From Snakemake's output: remote jobs per rule, local jobs per rule, SLURM job id -> rule."""
    remote = Counter(re.findall(r"^rule (\w+):$", log, re.M))
    local = Counter(re.findall(r"^localrule (\w+):$", log, re.M))
    # "Job 3 has been submitted with SLURM jobid 17 (log: .../logs/slurm/rule_train/...)."
    submitted = dict(re.findall(r"submitted with SLURM jobid (\d+) \(log: \S*?/rule_(\w+?)/", log))
    return remote, local, submitted


WALL_CLOCK = re.compile(r"_s$|seconds")  # train_s, images_per_s, seconds, test_seconds, ...


def _report(lines: list[str], capsys) -> None:
    with capsys.disabled():
        print("\n" + "\n".join(f"[test_slurm] {line}" for line in lines))


def test_failing_job_is_reported_and_fails_the_run(slurm_cluster, tmp_path, capsys):
    """A job that exits non-zero on the cluster: SLURM says FAILED, snakemake exits 1."""
    (tmp_path / "Snakefile").write_text(
        'rule all:\n    input: "b.txt"\n\n'
        'rule ok:\n    output: "a.txt"\n    shell: "echo $SLURM_JOB_ID > {output}"\n\n'
        'rule broken:\n    input: "a.txt"\n    output: "b.txt"\n    shell: "exit 3"\n'
    )
    profile = REPO / "workflow" / "profiles" / "slurm"
    result, seconds = _run(
        [SNAKEMAKE, "--profile", str(profile), *CLUSTER_ONLY, "--retries", "0"], tmp_path, timeout=300
    )
    log = result.stdout + result.stderr
    assert result.returncode == 1, log[-4000:]
    _, _, submitted = snakemake_jobs(log)
    assert sorted(submitted.values()) == ["broken", "ok"], log[-4000:]
    states = {job["id"]: job["state"] for job in slurm_jobs()}
    by_rule = {rule: states.get(jobid) for jobid, rule in submitted.items()}
    assert by_rule == {"ok": "COMPLETED", "broken": "FAILED"}, (by_rule, log[-4000:])
    # the ok job really ran on the cluster: it wrote its own SLURM job id
    ok_id = next(jobid for jobid, rule in submitted.items() if rule == "ok")
    assert (tmp_path / "a.txt").read_text().strip() == ok_id
    _report(
        [f"failing workflow: SLURM job states {by_rule}, snakemake exit {result.returncode}, {seconds:.0f} s"], capsys
    )


@pytest.mark.skipif(not WORKFLOW_PRESENT, reason="workflow not yet present (workflow/Snakefile, config/quick.yaml)")
def test_quick_workflow_through_slurm_equals_local_run(slurm_cluster, request, tmp_path_factory, capsys):
    """The reduced quick config (every rule; the first seed and size) through SLURM: every job
    goes through sbatch and completes, every rule of the session's local `quick_run` (the
    quick config with --cores 2) runs, and every per-run file equals the local run's. The
    local run is asked for after the cluster run, which another pytest-xdist worker may be
    making meanwhile."""
    cluster_dir = copy_repo(tmp_path_factory.mktemp("slurm"))
    configs = write_reduced_quick(cluster_dir)

    before = {job["id"] for job in slurm_jobs()}
    cluster, cluster_s = _run(
        [SNAKEMAKE, "--profile", "workflow/profiles/slurm", "--configfile", *configs, *CLUSTER_ONLY], cluster_dir
    )
    log = cluster.stdout + cluster.stderr
    assert cluster.returncode == 0, log[-5000:]

    # Every job Snakemake ran remotely went through sbatch, and SLURM ran it to completion.
    remote, local_jobs, submitted = snakemake_jobs(log)
    assert sum(remote.values()) > 0 and set(local_jobs) <= {"all"}, (remote, local_jobs)
    assert Counter(submitted.values()) == remote, (Counter(submitted.values()), remote)
    new_jobs = [job for job in slurm_jobs() if job["id"] not in before]
    assert {job["id"] for job in new_jobs} == set(submitted), (new_jobs, submitted)
    assert len({job["name"] for job in new_jobs}) == 1  # the plugin names every job after the run's UUID
    for job in new_jobs:
        assert job["state"] == "COMPLETED", job
        assert job["comment"].startswith(f"rule_{submitted[job['id']]}"), job
    # Every rule of the local run ran here too.
    local_dir = request.getfixturevalue("quick_run")
    assert rules_run(log) == rules_run((local_dir / "quick_run.log").read_text())

    # The same results, run by run.
    expected, got = per_run_files(local_dir, WALL_CLOCK.search), per_run_files(cluster_dir, WALL_CLOCK.search)
    assert len(got) > 40 and set(got) <= set(expected), sorted(set(got) - set(expected))
    different = [name for name in got if got[name] != expected[name]]
    assert not different, f"differ apart from wall-clock columns: {different}"

    _report(
        [
            f"{len(new_jobs)} jobs through SLURM (sbatch): {dict(sorted(remote.items()))}; "
            f"local on the submit host: {dict(local_jobs)}",
            f"wall time: SLURM {cluster_s:.0f} s (the reduced quick config, {os.cpu_count()} cores)",
            f"{len(got)} per-run files equal the local run's (without wall-clock columns)",
        ],
        capsys,
    )
