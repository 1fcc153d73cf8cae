"""The reliability catalogue, runs and files: no stale or silently reused result.

- A checkpoint is resumed only by the run that made it (steps, batch, seed, validation
  schedule, optimiser, flow, networks and the training/validation images' values); any
  other run is refused, naming what differs and the file to delete. A finished job deletes
  its checkpoint, so a later job (after a code or config change) trains afresh.
- Damaged or incompatible prepared-data and model files end the job with one line naming
  the file and the fix; Snakemake rebuilds them after the fix.
- Workflow: lowering a budget re-trains instead of reusing a longer run; a deleted per-run
  file is rebuilt by a plain re-run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from gfe.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from gfe.io import save_prepared
from gfe.models import MLPDecoder, MLPEncoder
from gfe.training import OptimizerSettings, train
from workflow_helpers import REPO, SCRIPT_ENV, ae_train_args, copy_repo, snakemake

FASHION = Path("/usr/share/datasets/fashion-mnist")
needs_fashion = pytest.mark.skipif(not FASHION.is_dir(), reason="needs dataset-fashion-mnist (make data)")


def _images(n=20, seed=0):
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


def _ae(latent_dim=4):
    torch.manual_seed(0)
    return MLPDecoder(latent_dim=latent_dim), MLPEncoder(latent_dim=latent_dim)


def _finished_run(ckpt, **options):
    """An AE run of 3 steps at batch 5 with validation every 2 steps, checkpointed at its end."""
    dec, enc = _ae()
    settings = {"steps": 3, "batch_size": 5, "val_images": _images(6, seed=9), "val_every": 2, **options}
    return train(dec, settings.pop("images", _images()), encoder=enc, checkpoint_path=ckpt, **settings)


# ---------------------------------------------------------------- checkpoint identity

OTHER_RUNS = {
    "more steps": ({"steps": 6}, "steps (3 in the checkpoint, 6 now)"),
    "fewer steps": ({"steps": 2}, "steps (3 in the checkpoint, 2 now)"),
    "other validation schedule": ({"val_every": 1}, "val_every (2 in the checkpoint, 1 now)"),
    "other validation images (n_val)": ({"val_images": _images(7, seed=9)}, "val images (other images"),
    "other training images (another N)": ({"images": _images(25)}, "train images (other images"),
    "same N, other images": ({"images": _images(20, seed=1)}, "train images (other images"),
    "other batch size": ({"batch_size": 4}, "batch_size (5 in the checkpoint, 4 now)"),
    "other seed": ({"seed": 7}, "seed (2020 in the checkpoint, 7 now)"),
    "other extra validation steps": ({"val_at": (1,)}, "val_at ([] in the checkpoint, [1] now)"),
    "other optimiser": ({"optimizer": OptimizerSettings(alpha=0.5)}, "optimizer ("),
    "other plateau window": ({"plateau_window": 3}, "plateau_window (1 in the checkpoint, 3 now)"),
    "other validation encoder": (
        {"val_encode_options": {"loss": "mse"}},
        "val_flow ({} in the checkpoint, {'loss': 'mse'} now)",
    ),
    "other patience fraction": ({"patience_fraction": 0.5}, "patience_fraction (0.0 in the checkpoint, 0.5 now)"),
    # a job killed under one code, re-run after an edit: its steps would come from two codes
    "other code": ({"code_version": "9f3c"}, "code (version None made the checkpoint, 9f3c runs now)"),
}


@pytest.mark.parametrize("case", list(OTHER_RUNS))
def test_a_checkpoint_of_another_run_is_refused_naming_what_differs(tmp_path, case):
    change, difference = OTHER_RUNS[case]
    ckpt = tmp_path / "run.pt"
    _finished_run(ckpt)
    before = ckpt.read_bytes()
    with pytest.raises(CheckpointError) as info:
        _finished_run(ckpt, **change)
    message = str(info.value)
    assert difference in message, message
    assert f"delete {ckpt} (and {ckpt}.prev)" in message and "\n" not in message
    assert ckpt.read_bytes() == before, "nothing already computed is lost"


def test_the_same_run_still_resumes_its_checkpoint(tmp_path):
    ckpt = tmp_path / "run.pt"
    first = _finished_run(ckpt)
    again = _finished_run(ckpt)
    assert again.steps == first.steps and again.stop_reason == "steps"
    assert first.resumed_at is None and again.resumed_at == 3  # the script logs it


def test_the_same_code_version_resumes(tmp_path):
    ckpt = tmp_path / "run.pt"
    first = _finished_run(ckpt, code_version="9f3c")
    assert _finished_run(ckpt, code_version="9f3c").steps == first.steps


def test_another_latent_dim_is_refused_before_any_weight_is_loaded(tmp_path):
    ckpt = tmp_path / "run.pt"
    _finished_run(ckpt)
    dec, enc = _ae(latent_dim=6)
    with pytest.raises(CheckpointError, match="decoder architecture .* encoder architecture"):
        train(
            dec,
            _images(),
            encoder=enc,
            steps=3,
            batch_size=5,
            val_images=_images(6, seed=9),
            val_every=2,
            checkpoint_path=ckpt,
        )


def test_a_checkpoint_missing_an_entry_names_it_and_the_fix(tmp_path):
    ckpt = tmp_path / "run.pt"
    _finished_run(ckpt)
    state = load_checkpoint(ckpt)
    del state["sampler"]
    save_checkpoint(state, ckpt)
    with pytest.raises(CheckpointError, match=r"lacks \['sampler'\].*Delete .*run.pt"):
        _finished_run(ckpt)


# ---------------------------------------------------------------- the scripts' files


def _tiny_prepared(path: Path) -> None:
    images = torch.randint(0, 256, (10, 1, 28, 28), dtype=torch.uint8)
    save_prepared(
        path,
        {
            "name": "fashion_mnist",
            "image_shape": [1, 28, 28],
            "train_images": images,
            "train_labels": torch.zeros(10, dtype=torch.int64),
            "val_images": images[:2],
            "test_images": images[:4],
            "test_labels": torch.zeros(4, dtype=torch.int64),
            "test_idx": torch.arange(4),
            "subset_order": {"0": torch.arange(10)},
        },
    )


# The resolved arguments of an autoencoder (pipeline.plan.Plan.encoding_args).
AUTOENCODER = ["--autoencoder", "--loss", "bce"]


def _train(tmp_path, prepared, steps=2) -> subprocess.CompletedProcess:
    args = [*ae_train_args(prepared, tmp_path, tmp_path / "ckpt.pt", steps), "--checkpoint-every", "1"]
    return subprocess.run(
        [sys.executable, "src/scripts/train.py", *args], cwd=REPO, capture_output=True, text=True, env=SCRIPT_ENV
    )


def _evaluate(tmp_path, prepared, model) -> subprocess.CompletedProcess:
    args = [
        "--prepared",
        str(prepared),
        *AUTOENCODER,
        "--model-file",
        str(model),
        "--run-json",
        str(tmp_path / "run.json"),
        "--metrics",
        str(tmp_path / "metrics.json"),
        "--outputs",
        str(tmp_path / "out.npz"),
    ]
    return subprocess.run(
        [sys.executable, "src/scripts/evaluate.py", *args], cwd=REPO, capture_output=True, text=True, env=SCRIPT_ENV
    )


def _one_error_line(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if "Error:" in line]
    assert len(errors) == 1, result.stderr[-2000:]
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


@pytest.fixture(scope="module")
def finished_job(tmp_path_factory):
    """One training job of 2 steps run to its end by src/scripts/train.py, checkpointing every step:
    its folder (prepared.pt, m.pt, run.json, ...) and its result. Read-only to the tests:
    a test that changes a file copies it first."""
    folder = tmp_path_factory.mktemp("finished_job")
    _tiny_prepared(folder / "prepared.pt")
    return folder, _train(folder, folder / "prepared.pt")


def test_a_finished_training_job_deletes_its_checkpoint(finished_job):
    folder, result = finished_job
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((folder / "run.json").read_text())["steps"] == 2
    assert (folder / "m.pt").exists()
    assert not (folder / "ckpt.pt").exists() and not (folder / "ckpt.pt.prev").exists()


@pytest.mark.parametrize("damage", ["truncated", "an older format"])
def test_a_damaged_prepared_file_is_named_with_its_fix(tmp_path, damage):
    prepared = tmp_path / "prepared.pt"
    _tiny_prepared(prepared)
    if damage == "truncated":
        prepared.write_bytes(prepared.read_bytes()[:5000])
    else:
        state = torch.load(prepared, weights_only=True)
        del state["subset_order"]
        torch.save(state, prepared)
    _one_error_line(_train(tmp_path, prepared), str(prepared), "delete it and re-run snakemake, which rebuilds it")
    assert not (tmp_path / "run.json").exists()


@pytest.mark.parametrize("damage", ["truncated", "another latent_dim"])
def test_a_damaged_model_file_is_named_with_its_fix(finished_job, tmp_path, damage):
    folder, result = finished_job
    assert result.returncode == 0, result.stderr[-2000:]
    for name in ("prepared.pt", "run.json"):
        shutil.copy(folder / name, tmp_path / name)
    model = tmp_path / "m.pt"
    if damage == "truncated":
        model.write_bytes((folder / "m.pt").read_bytes()[:3000])
    else:
        state = torch.load(folder / "m.pt", weights_only=True)
        state["latent_dim"] = 6
        torch.save(state, model)
    _one_error_line(
        _evaluate(tmp_path, tmp_path / "prepared.pt", model),
        str(model),
        "delete it and re-run snakemake, which rebuilds it",
    )
    assert not (tmp_path / "metrics.json").exists()


# ---------------------------------------------------------------- the workflow

RUN = "results/quick/runs/fashion_mnist/e1/ae/N20/seed0"
PREPARED = "data/prepared/quick/fashion_mnist.pt"


def _config(repo: Path, max_steps: int) -> str:
    config = yaml.safe_load((repo / "config/quick.yaml").read_text())
    config["training"]["max_steps"]["ae"] = max_steps
    config["training"]["patience"] = 1000  # no plateau this early: the run takes all max_steps
    (repo / "config/budget.yaml").write_text(yaml.safe_dump(config))
    return "config/budget.yaml"


def _train_job(repo: Path, max_steps: int) -> subprocess.CompletedProcess:
    return snakemake(repo, f"{RUN}/run.json", "--cores", "1", "--configfile", _config(repo, max_steps))


@pytest.mark.slow
@needs_fashion
def test_workflow_budget_changes_and_damaged_files_never_give_a_stale_result(tmp_path):
    repo = copy_repo(tmp_path / "repo")
    assert _train_job(repo, 6).returncode == 0
    assert len(pd.read_csv(repo / RUN / "train_log.csv")) == 6
    # A lower budget: the job re-runs (its parameters changed) and trains afresh.
    result = _train_job(repo, 3)
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((repo / RUN / "run.json").read_text())
    assert (record["max_steps"], record["steps"]) == (3, 3)
    assert len(pd.read_csv(repo / RUN / "train_log.csv")) == 3
    # A deleted per-run file is rebuilt by a plain re-run (every per-run file is a target of `all`).
    (repo / RUN / "validation.csv").unlink()
    result = snakemake(repo, "-n", "--cores", "1", "--configfile", "config/budget.yaml")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Missing output files: {RUN}/validation.csv" in result.stdout + result.stderr, result.stdout[-3000:]
    # A damaged prepared file: the job names it and the fix; after the fix it is rebuilt.
    prepared = repo / PREPARED
    prepared.write_bytes(prepared.read_bytes()[:100000])
    (repo / RUN / "run.json").unlink()
    result = _train_job(repo, 3)
    assert result.returncode != 0
    log = (repo / "logs/quick/train/fashion_mnist/e1/ae/N20/seed0.log").read_text()
    assert f"{PREPARED} is damaged" in log and "delete it and re-run snakemake, which rebuilds it" in log, log
    prepared.unlink()
    result = _train_job(repo, 3)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "prepare_data" in result.stdout + result.stderr
    assert (repo / RUN / "run.json").exists() and (repo / RUN / "validation.csv").exists()


def test_a_checkpoint_made_with_another_z0_tensor_is_refused(tmp_path):
    """A tensor z0 enters the run identity by its values, not only as 'some tensor'."""
    ckpt = tmp_path / "gfe.pt"

    def run(z0):
        torch.manual_seed(0)
        decoder = MLPDecoder(latent_dim=4)
        options = dict(solver="rk4", steps=2, tau=1.0, z0=z0, loss="bce")
        return train(decoder, _images(10), steps=2, batch_size=5, encode_options=options, checkpoint_path=ckpt)

    run(torch.zeros(5, 4))
    run(torch.zeros(5, 4))  # the same run resumes (it is finished)
    with pytest.raises(CheckpointError, match=r"flow \(.*'z0': '[0-9a-f]{16}'.* differ"):
        run(torch.full((5, 4), 0.5))
