"""The reliability catalogue: bad input and faults, each tested, and nothing lost.

1. Config   - in tests/test_faults_config.py: every bad setting is rejected before any job runs,
              naming key, value, allowed. (Stale or reused results and damaged files:
              tests/test_faults_runs.py; the library's own inputs: tests/test_faults_library.py.)
2. Data     - missing, truncated or malformed files stop the workflow's data job with a
              message naming the file; no partial outputs are left.
3. Numerics - a flow or a training step that goes non-finite: AMD rejects the step; the
              fixed-step solvers and training stop naming step and sample; the last good
              checkpoint stays intact.
4. Faults   - a training job whose workflow was SIGKILLed resumes from its checkpoint (its log
              and run.json name the step) to exactly the uninterrupted result, also when its
              latest checkpoint was truncated (then from the previous one); outputs are
              written atomically, through gfe.io.
5. Determinism - the quick config's first seed and size (every rule) made again from scratch
              with --cores 1 gives every per-run file (training logs, validation, run records,
              test metrics, t-SNE, E5 curves and sweeps) of the session's quick run (--cores 2),
              apart from the wall-clock columns, which are listed exactly.
6. Safety   - checkpoints and model files load with weights_only=True, a pickle that would
              run code is refused, no eval/exec and no unquoted config strings in shell commands.
7. Structure - one module (gfe.io) owns the atomic write, the safe torch.load and the file
              formats; no script imports another.

Workflow cases run snakemake in temporary copies of the repository (tests/workflow_helpers.py).
"""

from __future__ import annotations

import ast
import gzip
import json
import os
import pickle
import re
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch
import yaml

import gfe
import gfe.io
from gfe.checkpoints import (
    CheckpointError,
    atomic_torch_save,
    load_checkpoint,
    load_tensors,
    previous_path,
    save_checkpoint,
)
from gfe.data import DatasetError, load_dataset
from gfe.models import MLPDecoder, MLPEncoder
from gfe.training import OptimizerSettings, TrainingDivergedError, train
from helpers import FunctionDecoder, TinyDecoder
from workflow_helpers import (
    REPO,
    SCRIPT_ENV,
    SNAKEMAKE,
    ae_train_args,
    copy_repo,
    per_run_files,
    rules_run,
    snakemake,
    write_reduced_quick,
)

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, str(REPO / "src"))
from pipeline import plotstyle  # noqa: E402  (the workflow's scripts live in src/, outside the package)

FASHION = Path("/usr/share/datasets/fashion-mnist")
STEMS = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
PREPARED = "data/prepared/quick/fashion_mnist.pt"


def wall_clock(column: str) -> bool:
    """Columns holding wall-clock times (the only ones allowed to differ between runs)."""
    return column.endswith("_s") or "seconds" in column


def write_config(repo: Path, name: str, changes: dict) -> str:
    """config/quick.yaml with nested `changes` applied, written as config/<name>.yaml."""
    config = yaml.safe_load((repo / "config/quick.yaml").read_text())

    def merge(into, new):
        for key, value in new.items():
            if isinstance(value, dict) and isinstance(into.get(key), dict):
                merge(into[key], value)
            else:
                into[key] = value

    merge(config, changes)
    (repo / f"config/{name}.yaml").write_text(yaml.safe_dump(config))
    return f"config/{name}.yaml"


def leftovers(folder: Path) -> list[Path]:
    """Temporary files a writer might have left behind."""
    return [p for p in folder.rglob("*") if p.name.endswith((".tmp", ".part")) or ".tmp." in p.name]


# ================================================================ 1. configuration

# In tests/test_faults_config.py: check_config (src/pipeline/config.py) called directly on every bad
# case, and two cases through snakemake.


# ================================================================ 2. data


def _local_fashion_copy(folder: Path) -> Path:
    folder.mkdir()
    for stem in STEMS:
        (folder / f"{stem}.gz").symlink_to(FASHION / f"{stem}.gz")
    return folder


def _truncated_gz(local: Path) -> Path:
    path = local / "train-images-idx3-ubyte.gz"
    data = (FASHION / path.name).read_bytes()
    path.unlink()
    path.write_bytes(data[: len(data) // 3])
    return path


def _corrupt_gz(local: Path) -> Path:
    path = local / "t10k-images-idx3-ubyte.gz"
    data = bytearray((FASHION / path.name).read_bytes())
    path.unlink()
    data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)  # zeroed deflate data: CRC or stream error
    path.write_bytes(bytes(data))
    return path


def _wrong_count(local: Path) -> Path:
    (local / "train-labels-idx1-ubyte.gz").unlink()
    labels = gzip.decompress((FASHION / "train-labels-idx1-ubyte.gz").read_bytes())
    path = local / "train-labels-idx1-ubyte"  # uncompressed, 59,999 labels, header to match
    path.write_bytes(struct.pack(">II", 2049, 59999) + labels[8:-1])
    return path


def _wrong_shape(local: Path) -> Path:
    (local / "t10k-images-idx3-ubyte.gz").unlink()
    images = gzip.decompress((FASHION / "t10k-images-idx3-ubyte.gz").read_bytes())
    path = local / "t10k-images-idx3-ubyte"  # the same bytes declared as 10,000 images of 14 x 56
    path.write_bytes(struct.pack(">IIII", 2051, 10000, 14, 56) + images[16:])
    return path


DAMAGE = {
    "truncated gz": (_truncated_gz, "truncated or corrupt gzip"),
    "corrupt gz": (_corrupt_gz, "truncated or corrupt gzip"),
    "wrong image count": (_wrong_count, "header"),
    "wrong image shape": (_wrong_shape, "header"),
}


def _prepare(repo: Path, config: str) -> subprocess.CompletedProcess:
    return snakemake(repo, PREPARED, "--cores", "1", "--configfile", config)


def test_missing_data_lists_where_it_looked_and_how_to_provide_it(tmp_path):
    repo = copy_repo(tmp_path / "repo")
    config = write_config(repo, "missing", {"data": {"root": "raw", "local_dir": "mine", "search_system": False}})
    result = _prepare(repo, config)
    assert result.returncode != 0
    log = (repo / "logs/quick/prepare_data/fashion_mnist.log").read_text()
    for fragment in [
        "Fashion-MNIST not found",
        "Looked in",
        "mine (local_dir): no such folder",
        "download: not allowed",
        "apt-get install dataset-fashion-mnist",
        "pass local_dir=",
    ]:
        assert fragment in log, f"{fragment!r} not in\n{log}"
    assert "Error in rule prepare_data" in result.stderr
    assert "Fashion-MNIST not found" in result.stderr, "the failed log is shown (workflow/profiles/default)"
    assert not (repo / PREPARED).exists() and leftovers(repo) == []


@pytest.mark.skipif(not FASHION.is_dir(), reason="needs dataset-fashion-mnist (make data)")
@pytest.mark.parametrize("case", list(DAMAGE))
def test_the_loader_names_a_damaged_data_file_and_leaves_nothing_partial(tmp_path, case):
    """Every damage as the workflow's data job meets it (load_dataset with the job's arguments),
    without the workflow; the next test runs each through snakemake."""
    damage, problem = DAMAGE[case]
    local = _local_fashion_copy(tmp_path / "local")
    bad_file = damage(local)
    root = tmp_path / "raw"
    with pytest.raises(DatasetError) as info:
        load_dataset("fashion_mnist", root, local_dir=local)
    message = str(info.value)
    assert f"Fashion-MNIST file {bad_file} is damaged" in message and problem in message, message
    assert "Replace it with an intact copy" in message
    assert not (root / "FashionMNIST/raw" / bad_file.name.removesuffix(".gz")).exists()
    assert leftovers(tmp_path) == []


# Through snakemake: one case in the fast tier; the same job and log plumbing for the other
# three (each detected by the loader above) in the slow tier.
WORKFLOW_DAMAGE = [case if case == "truncated gz" else pytest.param(case, marks=pytest.mark.slow) for case in DAMAGE]


@pytest.mark.skipif(not FASHION.is_dir(), reason="needs dataset-fashion-mnist (make data)")
@pytest.mark.parametrize("case", WORKFLOW_DAMAGE)
def test_damaged_data_file_is_named_and_nothing_partial_is_left(tmp_path, case):
    damage, problem = DAMAGE[case]
    repo = copy_repo(tmp_path / "repo")
    bad_file = damage(_local_fashion_copy(tmp_path / "local"))
    config = write_config(repo, "damaged", {"data": {"root": "raw", "local_dir": str(tmp_path / "local")}})
    result = _prepare(repo, config)
    assert result.returncode != 0
    log = (repo / "logs/quick/prepare_data/fashion_mnist.log").read_text()
    assert f"Fashion-MNIST file {bad_file} is damaged" in log and problem in log, log
    assert "Replace it with an intact copy" in log
    raw = repo / "raw/FashionMNIST/raw"
    assert not (repo / PREPARED).exists()
    assert not (raw / bad_file.name.removesuffix(".gz")).exists()
    assert leftovers(repo) == []


# ================================================================ 3. numerics


def test_amd_rejects_a_non_finite_trial_step_and_keeps_z():
    def explode(z):
        return torch.where(z > 1.5, torch.full_like(z, float("nan")), z)

    decoder = FunctionDecoder(explode)
    x = torch.tensor([[2.0]], dtype=torch.float64)  # the flow heads for z = 2, where D is NaN
    trace = []
    out = gfe.encode(decoder, x, solver="amd", loss="mse", tau=20.0, trace=trace, dt_init=1.0)
    assert torch.isfinite(out.loss).all() and torch.isfinite(out.z).all()
    assert out.z.item() <= 1.5
    assert out.rejected.item() > 0
    assert any((~torch.isfinite(it["loss1"]) & ~it["moved"]).any() for it in trace)


def test_amd_names_the_samples_whose_start_is_not_finite():
    torch.manual_seed(0)
    decoder = TinyDecoder().double()
    x = torch.rand(4, 12, dtype=torch.float64)
    x[2, 5] = float("nan")  # a damaged image
    with pytest.raises(gfe.FlowDivergedError, match=r"samples \[2\]") as info:
        gfe.encode(decoder, x, solver="amd")
    assert info.value.samples == [2] and info.value.step == 0


def test_fixed_step_divergence_names_the_sample_and_step():
    decoder = FunctionDecoder(torch.exp)
    x = torch.tensor([[0.5], [1e9]], dtype=torch.float64)  # sample 1: a huge first step, then exp overflows
    with pytest.raises(gfe.FlowDivergedError, match=r"samples \[1\]") as info:
        gfe.encode(decoder, x, solver="euler", tau=10.0, steps=10, loss="mse")
    assert info.value.samples == [1] and info.value.step == 2


def _images(n=20, seed=0):
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("model", ["ae", "gfe"])
def test_diverging_training_stops_naming_step_and_images_and_keeps_the_checkpoint(tmp_path, model):
    torch.manual_seed(0)
    decoder = MLPDecoder(latent_dim=4)
    encoder = MLPEncoder(latent_dim=4) if model == "ae" else None
    encode_options = None if model == "ae" else {"solver": "amd", "tau": 100.0}
    ckpt = tmp_path / "run.pt"
    with pytest.raises(TrainingDivergedError, match=r"training step (\d+).*training images \[") as info:
        train(
            decoder,
            _images(),
            encoder=encoder,
            encode_options=encode_options,
            steps=50,
            checkpoint_path=ckpt,
            checkpoint_every=1,
            optimizer=OptimizerSettings(lr=1e30),
        )
    failed_step = int(re.search(r"training step (\d+)", str(info.value)).group(1))
    assert failed_step >= 2, "one good step first, so there is a checkpoint to keep"
    state = load_checkpoint(ckpt)
    assert state["step"] == failed_step - 1
    assert all(torch.isfinite(v).all() for v in state["decoder"].values())
    print(f"{model}: diverged at training step {failed_step}: {str(info.value)[:160]}")


def test_diverging_training_job_in_the_workflow_keeps_its_checkpoint(tmp_path):
    repo = copy_repo(tmp_path / "repo")
    config = write_config(
        repo,
        "diverge",
        {
            "training": {"max_steps": {"ae": 6}, "checkpoint_every": 1},
            "dataset_settings": {"fashion_mnist": {"optimizer": {"lr": 1e30}}},
        },
    )
    model = "results/quick/models/fashion_mnist/e1/ae/N20/seed0.pt"
    result = snakemake(repo, model, "--cores", "1", "--configfile", config)
    assert result.returncode != 0
    log = (repo / "logs/quick/train/fashion_mnist/e1/ae/N20/seed0.log").read_text()
    match = re.search(
        r"TrainingDivergedError: training step (\d+): non-finite loss or gradient "
        r"\(training images \[[\d, ]+\]\); the last checkpoint is kept",
        log,
    )
    assert match, log[-2000:]
    assert "Traceback" not in log
    state = load_checkpoint(repo / "results/quick/checkpoints/fashion_mnist/e1/ae/N20/seed0.pt")
    assert state["step"] == int(match.group(1)) - 1
    assert all(torch.isfinite(v).all() for v in state["decoder"].values())
    assert not (repo / model).exists() and (repo / PREPARED).exists()


# ================================================================ 4. faults

# An E1 run: trained with early stopping, so the checkpoint also holds the plateau
# detector's state and the best check's weights (the model file is the best check's).
RUN = "results/quick/runs/fashion_mnist/e1/gfe_amd/N20/seed0"
MODEL = "results/quick/models/fashion_mnist/e1/gfe_amd/N20/seed0.pt"
CHECKPOINT = "results/quick/checkpoints/fashion_mnist/e1/gfe_amd/N20/seed0.pt"
TRAIN_LOG = "logs/quick/train/fashion_mnist/e1/gfe_amd/N20/seed0.log"
STEPS, EVERY = 24, 4
# A validation check every EVERY steps and a patience of 4 checks: a plateau can stop the
# run at step 16 at the earliest, well after the kill (at a checkpoint >= 2 * EVERY).
VAL_EVERY, PATIENCE = EVERY, 4


def _resume_workspace(root: Path, name: str) -> Path:
    repo = copy_repo(root / name)
    write_config(
        repo,
        "resume",
        {
            "training": {
                "max_steps": {"gfe_amd": STEPS},
                "checkpoint_every": EVERY,
                "val_every": VAL_EVERY,
                "patience": PATIENCE,
            }
        },
    )
    return repo


def _run_to_completion(repo: Path) -> None:
    result = snakemake(
        repo, f"{RUN}/run.json", "--cores", "1", "--rerun-incomplete", "--configfile", "config/resume.yaml"
    )
    assert result.returncode == 0, result.stderr[-3000:]


def _checkpoint_step(path: Path) -> int:
    try:
        return int(torch.load(path, weights_only=True)["step"])
    except Exception:  # not there yet, or being renamed into place
        return 0


def _kill_after_two_checkpoints(repo: Path) -> int:
    """Start the job, SIGKILL the workflow's whole process group (as a node failure or
    `scancel` would) once a checkpoint past the first is on disk; return its step."""
    output = open(repo / "killed_run.log", "w")
    process = subprocess.Popen(
        [SNAKEMAKE, f"{RUN}/run.json", "--cores", "1", "--configfile", "config/resume.yaml"],
        cwd=repo,
        stdout=output,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 600
    try:
        while _checkpoint_step(repo / CHECKPOINT) < 2 * EVERY:
            if process.poll() is not None:
                pytest.fail(
                    "the job ended before it could be killed:\n" + (repo / "killed_run.log").read_text()[-3000:]
                )
            assert time.monotonic() < deadline, "no checkpoint appeared in 10 minutes"
            time.sleep(0.2)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        output.close()
    step = _checkpoint_step(repo / CHECKPOINT)
    assert 0 < step < STEPS and not (repo / RUN / "run.json").exists()
    # A SIGKILLed Snakemake leaves its lock behind: the documented recovery is --unlock, then re-run.
    assert snakemake(repo, "--unlock", "--cores", "1", "--configfile", "config/resume.yaml").returncode == 0
    return step


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    repo = _resume_workspace(tmp_path_factory.mktemp("straight"), "repo")
    _run_to_completion(repo)
    assert _resumed_at(repo) is None and "resumed from checkpoint" not in (repo / TRAIN_LOG).read_text()
    return repo


def _resumed_at(repo: Path) -> int | None:
    return json.loads((repo / RUN / "run.json").read_text())["resumed_at"]


def _assert_resumed(repo: Path, step: int) -> None:
    """The job went on from the checkpoint of `step` (training is deterministic: a job that
    ignored its checkpoint and trained from step 0 would reach the same result): its log says
    so and run.json records the step (docs/reliability.md)."""
    log = (repo / TRAIN_LOG).read_text()
    assert f"resumed from checkpoint {CHECKPOINT} at step {step}" in log, log[-2000:]
    assert _resumed_at(repo) == step


def _assert_same_result(a: Path, b: Path) -> None:
    for name in ("train_log.csv", "validation.csv"):
        frames = [pd.read_csv(repo / RUN / name) for repo in (a, b)]
        frames = [f[[c for c in f.columns if not wall_clock(c)]] for f in frames]
        pd.testing.assert_frame_equal(*frames)
    # Early stopping resumed too: where it stopped, why, and which check was the best.
    first, second = (
        {
            k: json.loads((repo / RUN / "run.json").read_text())[k]
            for k in ("steps", "stop_reason", "best_step", "best_val_loss")
        }
        for repo in (a, b)
    )
    assert first == second
    first, second = (load_tensors(repo / MODEL)["decoder"] for repo in (a, b))
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


@pytest.mark.slow
def test_killed_training_job_resumes_to_the_uninterrupted_result(uninterrupted, tmp_path):
    killed = _resume_workspace(tmp_path, "killed")
    step = _kill_after_two_checkpoints(killed)
    _run_to_completion(killed)
    log = (killed / TRAIN_LOG).read_text()
    print(f"killed at step {step} of {STEPS}; resumed run log tail:\n{log[-300:]}")
    _assert_same_result(uninterrupted, killed)
    _assert_resumed(killed, step)


@pytest.mark.slow
def test_truncated_checkpoint_after_a_kill_resumes_from_the_previous_one(uninterrupted, tmp_path):
    killed = _resume_workspace(tmp_path, "truncated")
    step = _kill_after_two_checkpoints(killed)
    latest = killed / CHECKPOINT
    previous_step = _checkpoint_step(previous_path(latest))
    assert 0 < previous_step < step
    data = latest.read_bytes()
    latest.write_bytes(data[: len(data) // 2])
    _run_to_completion(killed)
    log = (killed / TRAIN_LOG).read_text()
    assert f"checkpoint {CHECKPOINT} is damaged" in log, log[-2000:]
    assert f"resuming from {CHECKPOINT}.prev" in log, log[-2000:]
    print(f"killed at step {step}, latest checkpoint truncated, resumed from step {previous_step}")
    _assert_same_result(uninterrupted, killed)
    _assert_resumed(killed, previous_step)


def test_truncated_checkpoint_falls_back_to_the_previous_one(tmp_path):
    ckpt = tmp_path / "run.pt"
    save_checkpoint({"step": 1, "value": torch.ones(3)}, ckpt)
    save_checkpoint({"step": 2, "value": torch.ones(3) * 2}, ckpt)
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) // 2])
    with pytest.warns(UserWarning, match="damaged"):
        state = load_checkpoint(ckpt)
    assert state["step"] == 1 and previous_path(ckpt).exists()


def test_both_checkpoints_damaged_is_an_error_naming_them(tmp_path):
    ckpt = tmp_path / "run.pt"
    ckpt.write_bytes(b"not a checkpoint")
    previous_path(ckpt).write_bytes(b"nor this")
    with pytest.raises(CheckpointError, match="run.pt.*run.pt.prev.*Delete these files"):
        load_checkpoint(ckpt)


class _Interrupted(Exception):
    pass


def _writers():
    """Each output writer of the workflow: (write(path), file name, the serialiser it calls)."""
    frame = pd.DataFrame({"a": np.arange(2000), "b": np.linspace(0, 1, 2000)})
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    decoder, encoder = MLPDecoder(latent_dim=4), MLPEncoder(latent_dim=4)
    images = torch.rand(10, 1, 28, 28)
    prepared = {
        "image_shape": [1, 28, 28],
        "train_images": images,
        "train_labels": torch.zeros(10),
        "val_images": images[:2],
        "test_images": images[:4],
        "test_labels": torch.zeros(4),
        "subset_order": {"0": torch.arange(10)},
    }
    return {
        "csv": (lambda path: gfe.io.write_csv(frame, path), "out.csv", "write_text"),
        "json": (lambda path: gfe.io.write_json({"a": list(range(100))}, path), "out.json", "write_text"),
        "npz": (lambda path: gfe.io.write_npz(path, a=np.zeros(1000)), "out.npz", "savez_compressed"),
        "torch": (lambda path: atomic_torch_save({"w": torch.zeros(1000)}, path), "out.pt", "torch.save"),
        "checkpoint": (
            lambda path: save_checkpoint({"step": 1, "w": torch.zeros(1000)}, path),
            "ckpt.pt",
            "torch.save",
        ),
        "model": (
            lambda path: gfe.io.save_model(
                path, decoder=decoder, encoder=encoder, model_name="ae", image_shape=[1, 28, 28], latent_dim=4
            ),
            "model.pt",
            "torch.save",
        ),
        "prepared": (lambda path: gfe.io.save_prepared(path, prepared), "prepared.pt", "torch.save"),
        "figure": (lambda path: plotstyle.save(fig, path, path.with_suffix(".pdf")), "out.png", "savefig"),
    }


def _crash_after(write_part):
    """A stand-in serialiser that writes part of its output, then dies."""

    def broken(*args, **kwargs):
        write_part(*args)
        raise _Interrupted

    return broken


def _fail_half_way(monkeypatch, kind):
    if kind == "write_text":
        monkeypatch.setattr(Path, "write_text", _crash_after(lambda self, text: Path.write_bytes(self, b"half")))
    elif kind == "savez_compressed":
        monkeypatch.setattr(np, "savez_compressed", _crash_after(lambda handle: handle.write(b"PK\x03\x04half")))
    elif kind == "torch.save":
        monkeypatch.setattr(torch, "save", _crash_after(lambda obj, handle: handle.write(b"PK half")))
    elif kind == "savefig":
        monkeypatch.setattr(
            matplotlib.figure.Figure,
            "savefig",
            _crash_after(lambda self, path: Path(path).write_bytes(b"\x89PNG half")),
        )


WRITERS = ["csv", "json", "npz", "torch", "checkpoint", "model", "prepared", "figure"]


@pytest.mark.parametrize("writer", WRITERS)
def test_a_crash_mid_write_leaves_the_previous_output_whole(tmp_path, monkeypatch, writer):
    write, name, kind = _writers()[writer]
    path = tmp_path / name
    write(path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with monkeypatch.context() as patch:
        _fail_half_way(patch, kind)
        with pytest.raises(_Interrupted):
            write(path)
    assert path.read_bytes() == before[name], "the destination was written in place"
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no .prev rotated, nothing left
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("writer", WRITERS)
def test_every_writer_renames_its_temporary_into_place_through_gfe_io(tmp_path, monkeypatch, writer):
    """The rename that publishes a file is gfe.io's: with it failing, no writer touches its
    destination (none writes in place or renames by itself) and none leaves a temporary."""
    write, name, _ = _writers()[writer]
    path = tmp_path / name
    write(path)
    before = path.read_bytes()
    renamed = []

    def refuse(src, dst):
        renamed.append((Path(src).name, Path(dst).name))
        raise OSError("no rename today")

    monkeypatch.setattr(gfe.io.os, "replace", refuse)
    with pytest.raises(OSError, match="no rename today"):
        write(path)
    # The temporary over the destination, or (a checkpoint) the destination over its .prev.
    assert renamed[-1] in ((gfe.io.temporary_path(path).name, name), (name, name + ".prev")), renamed
    assert path.read_bytes() == before and leftovers(tmp_path) == []


def test_atomic_write_writes_a_folder_too_and_cleans_up_a_failed_one(tmp_path):
    def fill(tmp):
        tmp.mkdir()
        (tmp / "a.txt").write_text("a")

    gfe.io.atomic_write(tmp_path / "folder", fill)
    assert (tmp_path / "folder" / "a.txt").read_text() == "a"

    def fail(tmp):
        fill(tmp)
        raise _Interrupted

    with pytest.raises(_Interrupted):
        gfe.io.atomic_write(tmp_path / "other", fail)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder"]


def test_the_writers_bytes_are_the_workflows_formats(tmp_path):
    """JSON: indent 1, sorted keys, a final newline; CSV: no index, %.10g floats, '\n' line ends;
    the same torch object gives the same bytes wherever it is written."""
    gfe.io.write_json({"b": 1, "a": [1.5, None]}, tmp_path / "x.json")
    assert (tmp_path / "x.json").read_bytes() == b'{\n "a": [\n  1.5,\n  null\n ],\n "b": 1\n}\n'
    gfe.io.write_csv(pd.DataFrame({"x": [1, 2], "y": [1 / 3, 1e-12]}), tmp_path / "x.csv")
    assert (tmp_path / "x.csv").read_bytes() == b"x,y\n1,0.3333333333\n2,1e-12\n"
    gfe.io.write_text("a\r\nb\u2212\n", tmp_path / "x.txt")
    assert (tmp_path / "x.txt").read_bytes() == "a\r\nb\u2212\n".encode()
    state = {"w": torch.arange(5), "n": {"0": torch.ones(2)}}
    atomic_torch_save(state, tmp_path / "a.pt")
    atomic_torch_save(state, tmp_path / "sub" / "b.pt")
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "sub" / "b.pt").read_bytes()


def test_model_and_prepared_files_round_trip(tmp_path):
    torch.manual_seed(0)
    decoder, encoder = MLPDecoder(latent_dim=4), MLPEncoder(latent_dim=4)
    gfe.io.save_model(
        tmp_path / "ae.pt", decoder=decoder, encoder=encoder, model_name="ae", image_shape=[1, 28, 28], latent_dim=4
    )
    gfe.io.save_model(
        tmp_path / "gfe.pt", decoder=decoder, encoder=None, model_name="gfe_amd", image_shape=[1, 28, 28], latent_dim=4
    )
    loaded_decoder, loaded_encoder = gfe.io.load_model(tmp_path / "ae.pt")
    z = torch.rand(3, 4)
    assert torch.equal(loaded_decoder(z), decoder(z)) and not loaded_decoder.training
    x = torch.rand(3, 1, 28, 28)
    assert torch.equal(loaded_encoder(x), encoder(x))
    saved = gfe.io.read_model(tmp_path / "gfe.pt")
    assert saved.encoder is None and saved.name == "gfe_amd"
    assert (saved.image_shape, saved.latent_dim) == ([1, 28, 28], 4)
    assert torch.equal(saved.decoder(z), decoder(z))

    images = torch.randint(0, 256, (6, 1, 28, 28), dtype=torch.uint8)
    prepared = {
        "name": "fashion_mnist",
        "image_shape": [1, 28, 28],
        "train_images": images.float() / 255,
        "train_labels": torch.arange(6),
        "val_images": images[:2],
        "test_images": images[:3].float() / 255,
        "test_labels": torch.arange(3),
        "subset_order": {"0": torch.arange(6)},
    }
    gfe.io.save_prepared(tmp_path / "prepared.pt", prepared)
    stored = load_tensors(tmp_path / "prepared.pt")
    assert list(stored) == list(prepared) and all(stored[k].dtype == torch.uint8 for k in gfe.io.PREPARED_IMAGES)
    loaded = gfe.io.load_prepared(tmp_path / "prepared.pt")
    for key in gfe.io.PREPARED_IMAGES:
        assert loaded[key].dtype == torch.float32 and torch.equal(loaded[key], images[: len(loaded[key])].float() / 255)
    with pytest.raises(ValueError, match=r"\['subset_order'\]"):
        gfe.io.save_prepared(tmp_path / "bad.pt", {k: v for k, v in prepared.items() if k != "subset_order"})


def test_a_reader_never_sees_half_a_csv(tmp_path):
    path = tmp_path / "table.csv"
    frames = [pd.DataFrame({"x": np.arange(n), "y": np.arange(n) * 0.5}) for n in (20000, 30000)]
    gfe.io.write_csv(frames[0], path)
    stop, seen, bad = threading.Event(), [], []

    def read():
        while not stop.is_set():
            text = path.read_text()
            rows = text.count("\n") - 1
            seen.append(rows)
            if rows not in (20000, 30000) or not text.endswith("\n"):
                bad.append(rows)

    reader = threading.Thread(target=read)
    reader.start()
    for i in range(40):
        gfe.io.write_csv(frames[i % 2], path)
    stop.set()
    reader.join()
    assert len(seen) > 10 and not bad, f"{len(bad)} partial reads of {len(seen)}"


IO = REPO / "src/gfe/io.py"


def _code_files() -> list[Path]:
    """The project's code outside the tests and the workflow's rules: the scripts and helper
    modules in src/, the library, the benchmark."""
    return sorted([*(REPO / "src").rglob("*.py"), *(REPO / "benchmarks").rglob("*.py")])


def test_the_code_writes_files_only_through_gfe_io():
    """No code writes a file directly: only through gfe.io's writers (tested above), or
    inside a `write(tmp)` callable given to gfe.io.atomic_write, which writes the temporary
    it is handed (named tmp or temp) and nothing else."""
    direct = re.compile(
        r"\.to_csv\(\s*[a-z]|\bnp\.save|\btorch\.save\(|\.savefig\(|\bopen\([^)]*[\"'][wax]b?[\"']"
        r"|(?<!\bio)\.write_(text|bytes)\(|\.open\([^)]*[\"'][wax]"
        r"|\bshutil\.copy(tree|file|2)?\(|\.extractall\("
    )
    into_temporary = re.compile(r"(\.savefig|\bopen|\bshutil\.copytree|\.extractall)\((\w+, )?(tmp|temp)\b")
    offenders, through_temporary = [], set()
    for path in _code_files():
        if path == IO:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if direct.search(line):
                if into_temporary.search(line):
                    through_temporary.add(path)
                else:
                    offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert len(_code_files()) > 20 and not offenders, "\n".join(offenders)
    # The files writing a temporary hand those writes to atomic_write.
    assert through_temporary and all("atomic_write(" in p.read_text() for p in through_temporary), through_temporary


def _renames(path: Path) -> list[str]:
    """Calls that move a file or a folder into place, and temporaries of one's own."""
    moves = {
        "os.replace",
        "os.rename",
        "os.renames",
        "shutil.move",
        "tempfile.mkstemp",
        "tempfile.mkdtemp",
        "tempfile.NamedTemporaryFile",
        "tempfile.TemporaryDirectory",
    }
    hits = []
    for node, name in _calls(ast.parse(path.read_text())):
        # Path.replace(target) / Path.rename(target): one argument (str.replace takes two).
        path_move = name.endswith((".rename", ".replace")) and len(node.args) == 1 and not node.keywords
        if name in moves or path_move:
            hits.append(f"{path.relative_to(REPO)}:{node.lineno}: {name}")
    return hits


def test_one_implementation_of_write_to_a_temporary_then_rename():
    """os.replace (and every other move into place) appears in src/gfe/io.py only: all
    atomic writes are gfe.io.atomic_write."""
    found = {path: _renames(path) for path in _code_files()}
    assert found[IO], "gfe.io renames its temporaries with os.replace"
    elsewhere = [hit for path, hits in found.items() if path != IO for hit in hits]
    assert not elsewhere, elsewhere


def test_model_and_prepared_files_are_read_and_written_only_by_gfe_io():
    """Their formats live in one place: no other code loads a torch file, builds or reads
    their entries itself."""
    offenders = []
    for path in _code_files():
        if path == IO:
            continue
        for node, name in _calls(ast.parse(path.read_text())):
            if name in ("torch.load", "torch.save"):
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno}: {name}")
    assert not offenders, offenders
    for script in ("train", "evaluate", "prepare_data", "encoding_convergence"):
        text = (REPO / f"src/scripts/{script}.py").read_text()
        assert "io.load_prepared(" in text or "io.save_prepared(" in text, script
    assert "io.save_model(" in (REPO / "src/scripts/train.py").read_text()


# ================================================================ 5. determinism


@pytest.fixture(scope="module")
def reduced_rerun_one_core(tmp_path_factory):
    """The reduced quick config (every rule, the first seed and size) made from scratch on one
    core: its Snakemake output and folder."""
    repo = copy_repo(tmp_path_factory.mktemp("one_core"))
    result = snakemake(repo, "--cores", "1", "--configfile", *write_reduced_quick(repo), timeout=1200)
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    return repo, result.stdout + result.stderr


@pytest.mark.slow
def test_a_second_run_on_one_core_gives_identical_per_run_files(quick_run, reduced_rerun_one_core):
    """The quick config's first seed and size made again from scratch, on 1 core instead of 2
    (fewer jobs beside it, another order): every rule of the workflow runs again, and every
    per-run file (training logs, validation, test metrics, t-SNE, E5 curves and sweeps) equals
    the quick run's apart from wall-clock columns. One rerun checks both facts: a run repeats,
    and the number of cores does not matter. (Aggregation is a pure function of these files:
    the committed results re-aggregate identically, tests/test_workflow_e2e.py.)"""
    rerun, log = reduced_rerun_one_core
    assert rules_run(log) == rules_run((quick_run / "quick_run.log").read_text()), "a rule did not run again"
    again, first = per_run_files(rerun, wall_clock), per_run_files(quick_run, wall_clock)
    assert len(again) > 40 and set(again) <= set(first), sorted(set(again) - set(first))
    kinds = {Path(name.partition("#")[0]).name for name in again}
    assert {"train_log.csv", "validation.csv", "run.json", "test_metrics.json", "tsne.csv"} <= kinds, kinds
    assert {"encoding_convergence.csv", "solver_robustness.csv"} <= kinds, kinds
    different = [name for name in again if again[name] != first[name]]
    assert not different, f"differ apart from wall-clock columns: {different}"
    print(f"{len(again)} per-run files identical apart from wall-clock columns")


WALL_CLOCK_COLUMNS = {
    "elapsed_s",
    "images_per_s",
    "seconds",
    "step_mean_s",
    "test_images_per_s",
    "test_seconds",
    "train_s",
}


@pytest.mark.slow  # runs the quick config (quick_run)
def test_only_the_wall_clock_columns_are_excluded(quick_run):
    """The comparisons above drop exactly these timing columns; every other column counts.
    A new column whose name looks like a timing must be added here deliberately."""
    columns = set()
    for path in (quick_run / "results").rglob("*.csv"):
        columns |= set(pd.read_csv(path, nrows=1).columns)
    assert {c for c in columns if wall_clock(c)} == WALL_CLOCK_COLUMNS
    assert {
        "test_loss_mean",
        "loss",
        "nfe",
        "grad_cosine",
        "stop_reason",
        "best_step",
        "t",
        "tsne_x",
        "config_hash",
    } <= columns


# ================================================================ 6. safety


class _RunsCode:
    """Unpickling this calls os.system: it touches `marker`."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_checkpoint_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "code-ran"
    ckpt = tmp_path / "evil.pt"
    torch.save({"step": 1, "payload": _RunsCode(marker)}, ckpt, pickle_module=pickle)
    with pytest.raises(CheckpointError, match="refused: it holds pickled objects"):
        load_checkpoint(ckpt)
    with pytest.raises(CheckpointError, match="evil.pt is refused"):
        load_tensors(ckpt)
    assert not marker.exists()


def _tiny_prepared(path: Path) -> None:
    images = torch.randint(0, 256, (10, 1, 28, 28), dtype=torch.uint8)
    gfe.io.save_prepared(
        path,
        {
            "name": "fashion_mnist",
            "image_shape": [1, 28, 28],
            "train_images": images,
            "train_labels": torch.zeros(10, dtype=torch.int64),
            "val_images": images[:2],
            "test_images": images[:4],
            "test_labels": torch.zeros(4, dtype=torch.int64),
            "subset_order": {"0": torch.arange(10)},
        },
    )


@pytest.mark.parametrize("script", ["train", "evaluate"])
def test_scripts_refuse_a_model_or_checkpoint_that_would_run_code(tmp_path, script):
    marker = tmp_path / "code-ran"
    evil = tmp_path / "evil.pt"
    torch.save({"step": 1, "decoder": _RunsCode(marker)}, evil, pickle_module=pickle)
    _tiny_prepared(tmp_path / "prepared.pt")
    if script == "train":
        args = ae_train_args(tmp_path / "prepared.pt", tmp_path, evil)
    else:
        (tmp_path / "run.json").write_text(
            '{"dataset": "fashion_mnist", "experiment": "e1", "model": "ae", "train_size": 10, "seed": 0}'
        )
        args = [
            "--prepared",
            str(tmp_path / "prepared.pt"),
            "--autoencoder",
            "--loss",
            "bce",
            "--model-file",
            str(evil),
            "--run-json",
            str(tmp_path / "run.json"),
            "--metrics",
            str(tmp_path / "metrics.json"),
            "--outputs",
            str(tmp_path / "out.npz"),
        ]
    result = subprocess.run(
        [sys.executable, f"src/scripts/{script}.py", *args], cwd=REPO, capture_output=True, text=True, env=SCRIPT_ENV
    )
    assert result.returncode == 1, result.stderr[-2000:]
    assert f"CheckpointError: {evil} is refused" in result.stderr and "Traceback" not in result.stderr
    assert not marker.exists()


def _python_files():
    return sorted(p for folder in ("src", "benchmarks", "workflow") for p in (REPO / folder).rglob("*.py"))


def _calls(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node, ast.unparse(node.func)


def test_every_torch_load_uses_weights_only():
    found, unsafe = 0, []
    for path in _python_files():
        for node, name in _calls(ast.parse(path.read_text())):
            if name == "torch.load":
                found += 1
                flags = {k.arg: k.value for k in node.keywords}
                if not (isinstance(flags.get("weights_only"), ast.Constant) and flags["weights_only"].value is True):
                    unsafe.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert found >= 1 and not unsafe, unsafe


def test_no_eval_exec_or_unsafe_loading_in_the_rules():
    """The Python code is checked by ruff's bandit rules in CI (S102 exec, S301 pickle, S307 eval,
    S506 yaml.load, S602/S605 shell); the rules' files are not Python to ruff, so they are scanned here."""
    hits = []
    smk = [REPO / "workflow/Snakefile", *sorted((REPO / "workflow/rules").glob("*.smk"))]
    for path in smk:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"\b(eval|exec|compile)\s*\(|pickle\.load|yaml\.(unsafe_)?load\(", line):
                hits.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert len(smk) >= 6 and not hits, hits


@pytest.mark.skipif(not FASHION.is_dir(), reason="needs dataset-fashion-mnist (make data)")
def test_config_strings_in_shell_commands_cannot_inject_commands(tmp_path):
    """Config values reach the rules' shell commands quoted: a root or local_dir holding
    shell syntax is a folder name, never a command."""
    repo = copy_repo(tmp_path / "repo")
    config = write_config(
        repo, "inject", {"data": {"root": "raw; touch INJECTED_ROOT", "local_dir": "nowhere$(touch INJECTED_LOCAL)"}}
    )
    # One run, its shell command printed (-p): the system copy is found, nothing is executed.
    result = snakemake(repo, "-p", PREPARED, "--cores", "1", "--configfile", config)
    assert result.returncode == 0, result.stderr[-2000:]
    printed = result.stdout + result.stderr  # a real run logs to stderr
    assert "--root 'raw; touch INJECTED_ROOT'" in printed, printed[-3000:]
    assert "--local-dir 'nowhere$(touch INJECTED_LOCAL)'" in printed, printed[-3000:]
    assert (repo / "raw; touch INJECTED_ROOT" / "FashionMNIST").is_dir()
    assert not list(repo.rglob("INJECTED*")) and not list(Path.cwd().glob("INJECTED*"))
