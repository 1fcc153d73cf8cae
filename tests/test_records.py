"""A job's record is written by the job itself, from the identity its own Snakemake process
planned it with (never from the stamp, which any process rewrites), and holds the SHA-256 of
every file the job wrote; the per-run files aggregation reads are checked against those
records in a job of their own (rule check_runs), so a changed, cut or emptied file is
refused by name before the job that rewrites the tables starts (src/pipeline/identity.py)."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
import pipeline.identity  # noqa: E402
from workflow_helpers import REPO, SNAKEMAKE, TABLES, copy_repo, rules_run, snakemake  # noqa: E402

COMMITTED = REPO / "results/default"
E1_RUN = "results/default/runs/fashion_mnist/e1/ae/N100/seed0"  # run.json, test_metrics.json, test_outputs.npz
E3_RUN = "results/default/runs/fashion_mnist/e3/gfe_rk4/N1000/seed0"  # train_log.csv of 200 steps
E5 = "results/default/runs/fashion_mnist"
needs_committed = pytest.mark.skipif(not (REPO / E1_RUN).is_dir(), reason="no committed per-run results")


def _run_python(cwd, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "src/scripts/identity.py"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")},
    )


# ---------------------------------------------------------------- defect 1: what a job records


def _identity(value) -> str:
    """A job's `identity` parameter, as identity.smk makes it."""
    job = {"rule": "toy", "code": "c1", "settings": {"value": value, "wildcards": {}}}
    return json.dumps({"identity": job}, sort_keys=True)


def test_the_record_says_what_the_job_was_planned_with_not_what_a_later_stamp_says(tmp_path):
    """A job planned with value A; a dry run with value B rewrites its stamp meanwhile (as
    Snakemake does while it builds its DAG); the job's record step still says A, and holds
    the hash of each output."""
    out, record = tmp_path / "out/data.txt", tmp_path / "out/identity_toy.json"
    out.parent.mkdir()
    out.write_text("made with A\n")
    stamp = tmp_path / pipeline.identity.STAMP_DIR / "out/identity_toy.json"
    b = json.loads(_identity("B"))["identity"]
    pipeline.identity.stamp(stamp, record, b, {"git_commit": "dry run"})  # the dry run
    assert json.loads(stamp.read_text())["identity"]["settings"]["value"] == "B"

    result = _run_python(
        tmp_path, "record", "--identity", _identity("A"), "--record", "out/identity_toy.json", "out/data.txt"
    )
    assert result.returncode == 0, result.stderr
    record.write_text(result.stdout)  # the rule's `> {output.identity}`
    written = pipeline.identity.read_record(record)
    assert written["identity"]["settings"]["value"] == "A"
    assert written["files"] == {"data.txt": pipeline.identity.sha256(out)}
    assert set(written["made_by"]) == {"git_commit"}
    # a run with B re-runs the job; a run with A finds it up to date
    assert not pipeline.identity.stamp(stamp, record, b, {})
    assert pipeline.identity.stamp(stamp, record, json.loads(_identity("A"))["identity"], {})


def test_a_missing_output_is_not_recorded(tmp_path):
    result = _run_python(tmp_path, "record", "--identity", _identity("A"), "--record", "r.json", "absent.txt")
    assert result.returncode != 0 and "absent.txt" in result.stderr


TOY = """
import os, sys
SRC = {src!r}
sys.path.insert(0, SRC)
shell.prefix(f"set -euo pipefail; export PATH={{os.path.dirname(sys.executable)}}:$PATH; export PYTHONPATH={{SRC}}; ")


include: {identity_smk!r}


rule toy:
    input:
        identity=identity("toy", "pipeline/common.py", "out/identity_toy.json", value=config["value"]),
    output:
        data="out/data.txt",
        identity="out/identity_toy.json",
    params:
        identity=recorded_identity,
        value=config["value"],
    shell:
        recorded("touch started; while [ ! -e go ]; do sleep 0.1; done; echo {{params.value}} > {{output.data}}")
"""


def _toy_planned(toy: Path, value: str) -> bool:
    result = snakemake(toy, "-n", "--cores", "1", "--config", f"value={value}", timeout=120)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    return "rule toy:" in result.stdout


def test_a_dry_run_with_other_settings_during_a_run_does_not_change_its_record(tmp_path):
    """Snakemake itself: a run with value A is running its job when a dry run with value B
    rewrites the job's stamp. The job still records A (before: the stamp's B, so that a
    later run with B took the job as up to date), and a run with B re-runs it."""
    toy = tmp_path / "toy"
    toy.mkdir()
    (toy / "src").symlink_to(REPO / "src")
    (toy / "Snakefile").write_text(
        TOY.format(src=str(REPO / "src"), identity_smk=str(REPO / "workflow/rules/identity.smk"))
    )
    run = subprocess.Popen(
        [SNAKEMAKE, "--cores", "1", "--config", "value=A"], cwd=toy, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.time() + 120
        while not (toy / "started").exists():
            assert run.poll() is None and time.time() < deadline, run.communicate()[0][-3000:]
            time.sleep(0.2)
        assert _toy_planned(toy, "B")  # the dry run: it rewrites the stamp with B
        stamp = toy / pipeline.identity.STAMP_DIR / "out/identity_toy.json"
        assert json.loads(stamp.read_text())["identity"]["settings"]["value"] == "B"
        (toy / "go").touch()
        output = run.communicate(timeout=120)[0]
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, output[-3000:]
    record = pipeline.identity.read_record(toy / "out/identity_toy.json")
    assert record["identity"]["settings"]["value"] == "A"
    assert record["files"] == {"data.txt": pipeline.identity.sha256(toy / "out/data.txt")}
    assert (toy / "out/data.txt").read_text() == "A\n"
    assert _toy_planned(toy, "B") and not _toy_planned(toy, "A")


# ---------------------------------------------------------------- defect 2: files checked against records


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    """Two committed runs (an E1 run with its evaluation, an E3 run) and the E5 tables, copied
    to a scratch folder (the working directory), their records given hashes by the backfill."""
    for folder in (E1_RUN, E3_RUN):
        shutil.copytree(REPO / folder, tmp_path / folder)
    for name in ("encoding_convergence.csv", "identity_encoding_convergence.json"):
        shutil.copy2(REPO / E5 / name, tmp_path / E5 / name)
    monkeypatch.chdir(tmp_path)
    for record_path in tmp_path.rglob("identity_*.json"):  # as records were before they held hashes
        record = json.loads(record_path.read_text())
        record.pop("files", None), record.pop("files_from", None)
        record_path.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    assert pipeline.identity.backfill("results/default") == (4, 0)
    assert pipeline.identity.read_record(f"{E1_RUN}/identity_evaluate.json")["files_from"] == "backfill"
    return tmp_path


FILES = [
    f"{E1_RUN}/run.json",
    f"{E1_RUN}/test_metrics.json",
    f"{E1_RUN}/test_outputs.npz",
    f"{E3_RUN}/train_log.csv",
    f"{E3_RUN}/validation.csv",
    f"{E5}/encoding_convergence.csv",
]


def _refused(files=FILES) -> str:
    with pytest.raises(pipeline.identity.RunFileError) as error:
        pipeline.identity.check_runs(files, "default")
    return str(error.value)


@needs_committed
def test_unchanged_files_pass_and_the_run_json_beside_each_is_checked_too(scratch):
    checked = pipeline.identity.check_runs(FILES, "default")
    assert Path(f"{E3_RUN}/run.json") in checked and len(checked) == len(FILES) + 1


@needs_committed
def test_a_hand_edited_number_in_test_metrics_is_refused_naming_the_file_and_the_fix(scratch):
    path = Path(f"{E1_RUN}/test_metrics.json")
    metrics = json.loads(path.read_text())
    path.write_text(path.read_text().replace(repr(metrics["test_loss_mean"]), repr(metrics["test_loss_mean"] * 0.9)))
    assert json.loads(path.read_text())["test_loss_mean"] != metrics["test_loss_mean"]
    message = _refused()
    assert message.count("\n") == 0, message  # one line: the one file
    assert message.startswith(f"{path}: not what its job wrote"), message
    assert f"snakemake --cores all --forcerun {path}" in message


@needs_committed
def test_a_training_log_cut_short_is_refused(scratch):
    path = Path(f"{E3_RUN}/train_log.csv")
    lines = path.read_text().splitlines(keepends=True)
    assert len(lines) == 201  # header and 200 steps
    path.write_text("".join(lines[:150]))
    message = _refused()
    assert message.startswith(f"{path}: 149 steps logged where run.json reports 200"), message
    assert "--forcerun" in message


@needs_committed
@pytest.mark.parametrize(
    "name, damage",
    [
        ("run.json", lambda text: text.replace('"steps": 200', '"steps": 201')),
        ("validation.csv", lambda text: "".join(text.splitlines(keepends=True)[:-2] + text.splitlines(True)[-1:])),
    ],
)
def test_an_edited_run_json_or_a_row_deleted_from_another_csv_is_refused(scratch, name, damage):
    path = Path(f"{E3_RUN}/{name}")
    text = path.read_text()
    path.write_text(damage(text))
    assert path.read_text() != text
    message = _refused()
    assert f"{path}: " in message and "--forcerun" in message, message
    if name == "run.json":  # the log no longer holds the steps it reports either
        assert "200 steps logged where run.json reports 201" in message


@needs_committed
@pytest.mark.parametrize("name", ["test_metrics.json", "run.json"])
def test_an_emptied_json_is_refused_by_name(scratch, name):
    path = Path(f"{E1_RUN}/{name}")
    path.write_text("")
    message = _refused()
    assert message.startswith(f"{path}: empty; re-run the job that made it: snakemake"), message


@needs_committed
def test_a_damaged_npz_and_a_missing_file_are_refused_by_name(scratch):
    npz = Path(f"{E1_RUN}/test_outputs.npz")
    npz.write_bytes(npz.read_bytes()[:100])
    Path(f"{E5}/encoding_convergence.csv").unlink()
    message = _refused()
    assert f"{npz}: unreadable" in message
    assert f"{E5}/encoding_convergence.csv: missing" in message


@needs_committed
def test_a_record_without_hashes_names_the_backfill(scratch):
    record = Path(f"{E1_RUN}/identity_evaluate.json")
    content = json.loads(record.read_text())
    del content["files"]
    record.write_text(json.dumps(content))
    message = _refused()
    assert "holds no hashes" in message and "python src/scripts/identity.py backfill results/default" in message


@needs_committed
def test_the_backfill_adds_hashes_once_and_never_rewrites_them(scratch):
    record = Path(f"{E1_RUN}/identity_evaluate.json")
    before = record.read_text()
    assert json.loads(before)["files"].keys() == {"test_metrics.json", "test_outputs.npz"}
    Path(f"{E1_RUN}/test_metrics.json").write_text("{}")
    assert pipeline.identity.backfill("results/default") == (0, 4)  # an edit afterwards is not laundered
    assert record.read_text() == before
    committed = json.loads((REPO / E1_RUN / "identity_evaluate.json").read_text())
    assert json.loads(before) == committed  # the committed record holds the backfilled hashes


@needs_committed
def test_every_committed_per_run_file_has_the_record_the_check_looks_up():
    """RUN_RECORDS follows the rules' outputs: each per-run file's record is beside it."""
    files = [p for p in (COMMITTED / "runs").rglob("*") if p.is_file() and not p.name.startswith("identity_")]
    assert len(files) > 200
    for path in files:
        assert path.name in pipeline.identity.RECORD_OF, path
        assert path.with_name(pipeline.identity.RECORD_OF[path.name]).is_file(), path


def test_the_config_named_in_the_fix(tmp_path):
    assert "--configfile config/quick.yaml --forcerun x" in pipeline.identity._rerun(Path("x"), "quick")
    assert "--configfile" not in pipeline.identity._rerun(Path("x"), "default")


def test_aggregate_names_a_file_it_cannot_read(tmp_path):
    """Behind the check too: a read error names the file (before: a bare JSONDecodeError)."""
    from scripts import aggregate

    empty = tmp_path / "run.json"
    empty.write_text("")
    with pytest.raises(aggregate.RunFileError, match=f"^{empty}: unreadable"):
        aggregate.read_json(empty)


# ---------------------------------------------------------------- defect 3: a refused file stops before the tables


@needs_committed
def test_a_refused_file_leaves_the_tables_and_an_unchanged_copy_reaggregates_identically(tmp_path):
    """The committed results in a scratch copy, their records backfilled. An emptied per-run
    JSON: rule check_runs fails naming it and aggregate never starts, so every table is still
    there as committed. The file restored: the check passes and aggregate gives the committed
    tables byte for byte."""
    repo = copy_repo(tmp_path / "repo", skip_results=False)
    backfilled = _run_python(repo, "backfill", "results/default")
    assert backfilled.returncode == 0, backfilled.stderr
    assert "records given the hashes of their files" in backfilled.stdout
    results = repo / "results/default"
    tables = {name: (results / f"{name}.csv").read_bytes() for name in TABLES}
    metrics = repo / E1_RUN / "test_metrics.json"
    original = metrics.read_bytes()
    metrics.write_text("")
    target = ["--allowed-rules", "check_runs", "aggregate", "--", "results/default/identity/aggregate.json"]
    failed = snakemake(repo, "--cores", "1", *target, timeout=300)
    log = failed.stdout + failed.stderr
    assert failed.returncode != 0
    assert f"RunFileError: {E1_RUN}/test_metrics.json: empty; re-run the job that made it" in log, log[-4000:]
    assert "rule aggregate:" not in log
    assert {name: (results / f"{name}.csv").read_bytes() for name in TABLES} == tables
    assert (results / "identity/aggregate.json").is_file()

    metrics.write_bytes(original)
    passed = snakemake(repo, "--cores", "1", "--forcerun", "aggregate", *target, timeout=300)
    assert passed.returncode == 0, (passed.stdout + passed.stderr)[-4000:]
    assert {"check_runs", "aggregate"} <= rules_run(passed.stdout + passed.stderr), passed.stderr[-3000:]
    # Byte for byte, apart from the config's hash where the config changed since the run
    # (the committed tables predate a config edit that re-runs other jobs).
    before, now = (_config_hash(table) for table in (tables["e1_data_efficiency"], results / "e1_data_efficiency.csv"))
    for name in TABLES:
        assert (results / f"{name}.csv").read_bytes() == tables[name].replace(before, now), name
    checked = json.loads((results / "identity/checked_runs.json").read_text())
    assert checked["identity"]["rule"] == "check_runs" and len(checked["checked"]) > 100
    record = json.loads((results / "identity/aggregate.json").read_text())
    assert record["files"]["../e1_data_efficiency.csv"] == pipeline.identity.sha256(results / "e1_data_efficiency.csv")


def _config_hash(table: bytes | Path) -> bytes:
    import io

    import pandas as pd

    text = table.read_bytes() if isinstance(table, Path) else table
    return pd.read_csv(io.BytesIO(text), dtype=str)["config_hash"].iloc[0].encode()
