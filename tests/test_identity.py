"""A result knows what made it (src/pipeline/identity.py, the `identity` of every rule): the code
version of a script follows what it imports and ignores comments, docstrings and layout;
a job whose record differs from what the current config and code give is planned again,
in a fresh clone too; a checkpoint of other code is not resumed (tests/test_faults_runs.py)."""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
import pipeline.identity  # noqa: E402
from workflow_helpers import REPO, snakemake  # noqa: E402

# ---------------------------------------------------------------- code versions


def _tree(root: Path, files: dict) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


PACKAGE = {
    "pkg/__init__.py": "from . import a, b\n",
    "pkg/a.py": '"""Module a."""\n\nSTEP = 2.0\n\n\ndef f(x):\n    """Double."""\n    return STEP * x\n',
    "pkg/b.py": "GROWTH = 1.5\n",
    "script.py": "from pkg.a import f\n\nprint(f(1))\n",
    "other.py": "import pkg\n",
}


def test_comments_docstrings_and_layout_do_not_change_the_version(tmp_path):
    src = _tree(tmp_path, PACKAGE)
    before = pipeline.identity.code_version(src / "script.py", src)
    (src / "pkg/a.py").write_text(
        '"""Module a, documented at length."""\n\n# a comment\nSTEP = 2.0   # the step\n\n\ndef f(\n    x\n):\n'
        '    """Double it."""\n\n    return STEP  *  x\n'
    )
    assert pipeline.identity.code_version(src / "script.py", src) == before


def test_a_code_change_in_an_imported_module_changes_the_version(tmp_path):
    src = _tree(tmp_path, PACKAGE)
    before = pipeline.identity.code_version(src / "script.py", src)
    (src / "pkg/a.py").write_text(PACKAGE["pkg/a.py"].replace("2.0", "2.5"))
    assert pipeline.identity.code_version(src / "script.py", src) != before


def test_a_sibling_module_the_script_does_not_use_leaves_it_alone(tmp_path):
    """`from pkg.a import f` runs pkg/__init__.py (which imports b) but uses a alone: an
    edit of b changes the version of a script that imports pkg itself, not of this one."""
    src = _tree(tmp_path, PACKAGE)
    script, other = (pipeline.identity.code_version(src / s, src) for s in ("script.py", "other.py"))
    (src / "pkg/b.py").write_text("GROWTH = 2.0\n")
    assert pipeline.identity.code_version(src / "script.py", src) == script
    assert pipeline.identity.code_version(src / "other.py", src) != other


def test_the_training_script_depends_on_the_solvers_and_a_plot_does_not():
    src = REPO / "src"
    train = {p.relative_to(src).as_posix() for p in pipeline.identity.code_files(src / "scripts/train.py", src)}
    plot = {p.relative_to(src).as_posix() for p in pipeline.identity.code_files(src / "scripts/plots/e1.py", src)}
    assert {"scripts/train.py", "gfe/training.py", "gfe/solvers/amd.py", "gfe/models.py", "pipeline/common.py"} <= train
    assert "gfe/solvers/amd.py" not in plot and "scripts/plots/e1.py" in plot


# ---------------------------------------------------------------- stamps and records


def _stamp_case(tmp_path, record):
    stamp, recorded = tmp_path / "stamp.json", tmp_path / "record.json"
    if record is not None:
        recorded.write_text(json.dumps({"identity": record, "made_by": {"git_commit": "abc"}}))
    identity = {"rule": "train", "code": "c1", "settings": {"tau": 1.0}}
    return pipeline.identity.stamp(stamp, recorded, identity, {"git_commit": "def"}), stamp


@pytest.mark.parametrize(
    "record, current",
    [
        (None, False),
        ({"rule": "train", "code": "c1", "settings": {"tau": 1.0}}, True),
        ({"rule": "train", "code": "c0", "settings": {"tau": 1.0}}, False),
        ({"rule": "train", "code": "c1", "settings": {"tau": 2.0}}, False),
    ],
)
def test_a_job_is_current_only_when_its_record_holds_its_identity(tmp_path, record, current):
    t0 = time.time()
    is_current, stamp = _stamp_case(tmp_path, record)
    assert is_current == current
    assert json.loads(stamp.read_text())["made_by"] == {"git_commit": "def"}
    if not current:  # touched: newer than the job's outputs
        assert stamp.stat().st_mtime >= t0 - 1


def test_the_reason_names_code_or_the_settings_that_differ():
    identity = {"rule": "train", "code": "c1", "settings": {"tau": 1.0, "seed": 0}}
    assert pipeline.identity.describe_difference(None, identity) == "no record of what made its result"
    assert pipeline.identity.describe_difference({"identity": {**identity, "code": "c0"}}, identity) == "other code"
    old = {"identity": {**identity, "settings": {"tau": 2.0, "seed": 0}}}
    assert pipeline.identity.describe_difference(old, identity) == "other settings: tau"


def test_the_check_of_run_files_is_current_only_for_the_files_it_checked(tmp_path):
    """Rule check_runs: its record lists the hashes it checked; a file that differs from
    them (a hand edit in a fresh clone, whatever its time) plans the check again."""
    identity = {"rule": "check_runs", "code": "c1", "settings": {"config_name": "quick"}}
    stamp, record = tmp_path / "stamp.json", tmp_path / "checked_runs.json"
    record.write_text(json.dumps({"identity": identity, "checked": {"../runs/a.json": "h1"}}))
    assert pipeline.identity.stamp(stamp, record, identity, {}, {"../runs/a.json": "h1"})
    assert not pipeline.identity.stamp(stamp, record, identity, {}, {"../runs/a.json": "h2"})
    reason = pipeline.identity.describe_difference(json.loads(record.read_text()), identity, {"../runs/a.json": "h2"})
    assert reason == "other files than it checked: ../runs/a.json"


# ---------------------------------------------------------------- the workflow


def _planned(repo: Path, *config: str) -> list[tuple[str, str]]:
    """(rule, wildcards) of every job a dry run of the quick config plans."""
    result = snakemake(repo, "-n", "--cores", "1", "--configfile", "config/quick.yaml", *config)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    jobs, rule = [], None
    for line in result.stdout.splitlines():
        if m := re.match(r"^(?:local)?rule (\w+):", line.strip()):
            rule = m[1]
            jobs.append((rule, ""))
        elif rule and line.strip().startswith("wildcards:"):
            jobs[-1] = (rule, line.strip())
    return jobs


@pytest.fixture
def fresh_clone_of_quick_run(quick_run, tmp_path):
    """The quick run's files as a fresh clone has them: no Snakemake metadata (.snakemake/)."""
    clone = tmp_path / "clone"
    shutil.copytree(
        quick_run, clone, symlinks=True, ignore=shutil.ignore_patterns(".snakemake", pipeline.identity.STAMP_DIR)
    )
    return clone


@pytest.mark.slow  # the quick run (shared with the other end-to-end tests) and dry runs
def test_a_fresh_clone_of_finished_results_plans_nothing(fresh_clone_of_quick_run):
    assert _planned(fresh_clone_of_quick_run) == []


@pytest.mark.slow
def test_a_setting_changed_in_a_fresh_clone_plans_the_runs_it_changes(fresh_clone_of_quick_run, tmp_path):
    extra = tmp_path / "tau.yaml"
    extra.write_text("model_settings:\n  gfe_amd:\n    tau: 5000.0\n")
    planned = _planned(fresh_clone_of_quick_run, str(extra))
    trained = [w for rule, w in planned if rule == "train"]
    assert trained and all("model=gfe_amd," in w for w in trained), trained
    assert not any("model=ae," in w for _, w in planned)


@pytest.mark.slow
def test_a_library_edit_plans_the_jobs_that_run_it_and_a_comment_plans_none(fresh_clone_of_quick_run):
    clone = fresh_clone_of_quick_run
    amd = clone / "src/gfe/solvers/amd.py"
    text = amd.read_text()
    amd.write_text(text + "\n# a comment changes nothing\n")
    assert _planned(clone) == []
    amd.write_text(text + "\nGROWTH_PROBE = 1.5\n")
    rules = {rule for rule, _ in _planned(clone)}
    assert {"train", "evaluate", "encoding_convergence"} <= rules, rules
    amd.write_text(text)
    assert _planned(clone) == []  # the edit undone: the results are those of the code again


@pytest.mark.slow
def test_a_plot_script_edit_plans_its_plot_alone(fresh_clone_of_quick_run):
    plot = fresh_clone_of_quick_run / "src/scripts/plots/e1.py"
    plot.write_text(plot.read_text() + "\nPROBE = 1\n")
    rules = [rule for rule, _ in _planned(fresh_clone_of_quick_run)]
    assert "plot_e1" in rules and "train" not in rules and "aggregate" not in rules, rules


def test_the_training_script_records_its_code_version(tmp_path):
    """The stamp's code enters the run identity (train(code_version=...)) and run.json."""
    from test_faults_runs import _tiny_prepared
    from workflow_helpers import ae_train_args

    _tiny_prepared(tmp_path / "prepared.pt")
    stamp = tmp_path / "stamp.json"
    stamp.write_text(json.dumps({"identity": {"rule": "train", "code": "c0ffee", "settings": {}}, "made_by": {}}))
    args = [*ae_train_args(tmp_path / "prepared.pt", tmp_path, tmp_path / "ckpt.pt", 2), "--identity", str(stamp)]
    result = subprocess.run(
        [sys.executable, "src/scripts/train.py", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((tmp_path / "run.json").read_text())["code_version"] == "c0ffee"
