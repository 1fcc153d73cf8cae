import fcntl
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


def pytest_configure(config):
    """torch on one thread in the test process, as in every workflow job (the rules' `threads`,
    1 by default). The tests' tensors are small: a second thread does not speed them up, and
    while another process holds a core it slows torch's small kernels down by 5-20x."""
    import torch

    torch.set_num_threads(1)
    # Once Debian's slurm-client is installed (the SLURM tests install it), every snakemake
    # start runs `scontrol show config`, which waits about 9 s when no controller is running.
    # Every process the tests start sees no SLURM configuration; tests/test_slurm.py gives its
    # own processes the cluster's.
    from workflow_helpers import NO_SLURM_CONF

    os.environ.setdefault("SLURM_CONF", NO_SLURM_CONF)


# The order in which pytest-xdist workers take the test files (`make test` runs `-n auto
# --dist loadfile --no-loadscope-reorder`: a worker takes a whole file, whose module
# fixtures its tests share). The first file makes the shared quick run at once; the SLURM
# tests, the longest chain (a cluster, then the reduced quick config), start beside it; the
# long test_faults.py next; the other files that need the quick run come last, when it is made.
FIRST_FILES = ["test_workflow_e2e.py", "test_slurm.py", "test_faults.py"]
LAST_FILES = ["test_identity.py"]


def _start_order(item) -> tuple[int, bool]:
    """Files as above (the others alphabetically between), and in each file the tests that
    need the quick run last."""
    name = item.path.name
    if name in FIRST_FILES:
        rank = FIRST_FILES.index(name)
    elif name in LAST_FILES:
        rank = len(FIRST_FILES) + 1 + LAST_FILES.index(name)
    else:
        rank = len(FIRST_FILES)
    return rank, "quick_run" in item.fixturenames


def pytest_collection_modifyitems(config, items):
    """Tests in :func:`_start_order` (without xdist only the order changes)."""
    items.sort(key=_start_order)


@pytest.fixture(scope="session")
def quick_run(tmp_path_factory):
    """The quick config run once with --cores 2 in a temporary copy of the repository,
    shared by the end-to-end, determinism, identity and SLURM tests (the local run the SLURM
    run must equal). Snakemake's output is kept in the copy's `quick_run.log`.

    Made once per pytest session, also with pytest-xdist: the first worker that needs it
    makes it in the folder all workers share, under a file lock; the others wait for the
    lock and read its outcome (a failed run fails them with its log, it is not run again)."""
    from workflow_helpers import copy_repo, snakemake

    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    repo, outcome = shared / "quick_run", shared / "quick_run.exit"
    with open(shared / "quick_run.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not outcome.exists():
            repo.mkdir()
            try:
                result = snakemake(copy_repo(repo), "--cores", "2", "--configfile", "config/quick.yaml", timeout=1200)
                log, code = result.stdout + result.stderr, str(result.returncode)
            except subprocess.TimeoutExpired as error:
                log, code = f"the quick run took more than {error.timeout} s", "timeout"
            (repo / "quick_run.log").write_text(log)
            outcome.write_text(code)
    assert outcome.read_text() == "0", (repo / "quick_run.log").read_text()[-5000:]
    return repo
