"""`make compare` (src/scripts/compare_results.py): on an unchanged checkout it prints "identical"
(README.md), wall-clock columns differing or not; a changed number is named with its file,
column and row, and the exit status is 1.

The committed tables and summary (results/default at HEAD) are copied into a temporary git
repository and committed there, with the working tree's src/scripts/compare_results.py beside them;
`make compare` runs there with this interpreter (the venv target left alone)."""

from __future__ import annotations

import csv
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from workflow_helpers import REPO, missing

RESULTS = "results/default"
TABLE, COLUMN, ROW = "e1_data_efficiency.csv", "test_loss_mean", 3
WALL_CLOCK = re.compile(r"_s$|seconds")  # as src/scripts/compare_results.py leaves them out


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout


def _committed_results() -> dict[str, str]:
    """The committed tables and summary.md of results/default (what `make compare` reads), by name."""
    names = _git(REPO, "ls-tree", "--name-only", "HEAD", f"{RESULTS}/").split()
    wanted = [n for n in names if n.endswith(".csv") or n == f"{RESULTS}/summary.md"]
    return {Path(n).name: _git(REPO, "show", f"HEAD:{n}") for n in wanted}


@pytest.fixture
def checkout(tmp_path) -> Path:
    """An unchanged checkout of the committed results, as after a `make reproduce` that gave the
    same numbers."""
    files = _committed_results()
    if TABLE not in files or "summary.md" not in files:
        pytest.skip(f"no committed {RESULTS}")
    folder = tmp_path / RESULTS
    folder.mkdir(parents=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", RESULTS)
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false", "commit", "-qm", "ref")
    (tmp_path / "src/scripts").mkdir(parents=True)
    (tmp_path / "src/scripts/compare_results.py").write_text((REPO / "src/scripts/compare_results.py").read_text())
    return tmp_path


def _make_compare(repo: Path) -> subprocess.CompletedProcess:
    """`make compare` as the Makefile has it, with this interpreter and without (re)building .venv."""
    if shutil.which("make") is None:
        missing("needs make (apt-get install make)")
    return subprocess.run(
        ["make", "-s", "-f", str(REPO / "Makefile"), "-o", "venv", f"PY={sys.executable}", "compare"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _edit_table(path: Path, edit) -> None:
    """Rewrite a table cell by cell as text (no float is re-formatted but those `edit` changes)."""
    rows = list(csv.reader(path.read_text().splitlines()))
    header = rows[0]
    for number, row in enumerate(rows[1:]):
        for i, column in enumerate(header):
            row[i] = edit(number, column, row[i])
    with path.open("w", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows(rows)


def test_an_unchanged_checkout_is_identical_also_with_other_wall_clock_times(checkout):
    folder = checkout / RESULTS
    # A fresh run's timings differ: every wall-clock cell of the table three times what it was.
    _edit_table(
        folder / TABLE,
        lambda row, column, cell: f"{float(cell) * 3:.10g}" if WALL_CLOCK.search(column) and cell else cell,
    )
    assert _git(checkout, "diff", "--name-only") == f"{RESULTS}/{TABLE}\n"
    result = _make_compare(checkout)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    expected = sorted(p.name for p in folder.glob("*.csv")) + ["summary.md"]
    assert lines[:-1] == [f"{name}: identical" for name in expected], result.stdout
    assert lines[-1] == "identical"


def test_one_changed_number_is_named_with_its_file(checkout):
    path = checkout / RESULTS / TABLE
    old = {}

    def change(row, column, cell):
        if row == ROW and column == COLUMN:
            old["value"] = float(cell)
            return f"{float(cell) * (1 + 1e-6):.10g}"
        return cell

    _edit_table(path, change)
    result = _make_compare(checkout)
    assert result.returncode != 0, result.stdout
    lines = result.stdout.splitlines()
    assert lines[-1] == "differences above", result.stdout
    different = [line for line in lines[:-1] if not line.endswith(": identical")]
    assert len(different) == 1, result.stdout
    assert different[0].startswith(f"{TABLE}: largest difference in {COLUMN}, row {ROW}: "), different
    assert f"vs {old['value']:.6g} committed (1.00e-06 relative)" in different[0], different
