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


def pytest_collection_modifyitems(config, items):
    """Run the SLURM tests last. Once Debian's slurm-client is installed (the SLURM tests
    install it), every snakemake start asks `scontrol show config`, which waits about 9 s
    when no controller is running; the SLURM tests keep one running while they run."""
    items.sort(key=lambda item: item.get_closest_marker("slurm") is not None)


@pytest.fixture(scope="session")
def quick_run(tmp_path_factory):
    """The quick config run once with --cores 2 in a temporary copy of the repository,
    shared by the end-to-end, determinism and SLURM tests (the local run the SLURM run must
    equal). Snakemake's output is kept in the copy's `quick_run.log`."""
    from workflow_helpers import copy_repo, snakemake

    repo = copy_repo(tmp_path_factory.mktemp("quick"))
    result = snakemake(repo, "--cores", "2", "--configfile", "config/quick.yaml", timeout=1200)
    (repo / "quick_run.log").write_text(result.stdout + result.stderr)
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    return repo
