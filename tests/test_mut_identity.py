"""Mutation tests of the identity and record code (src/pipeline/identity.py; docs/testing.md,
"Mutation score"): what enters a script's code version, when a job is up to date, what a
record holds and refuses, which per-run files the check before aggregation refuses, and what
the backfill writes. Synthetic trees in tmp_path only (no committed results, no git)."""

import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
import pipeline.identity as identity  # noqa: E402


@pytest.fixture(autouse=True)
def _no_cached_tokens():
    """The module keeps each file's tokens and imports per process, keyed by content: a test
    must see the code run, not what an earlier test (or process) cached for the same text."""
    for name in ("_token_texts", "_import_lists"):
        getattr(identity, name, {}).clear()


def _tree(root: Path, files: dict) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def _version_changes(tmp_path, files, edit, script="script.py"):
    src = _tree(tmp_path / "src", files)
    before = identity.code_version(src / script, src)
    name, old, new = edit
    path = src / name
    assert old in path.read_text()
    path.write_text(path.read_text().replace(old, new))
    return identity.code_version(src / script, src) != before


# ---------------------------------------------------------------- code versions


@pytest.mark.parametrize(
    "text, old, new, changes",
    [
        ('"""Doc."""\nX = 1\n', "Doc.", "Other doc.", False),  # a module docstring
        ('"""Doc."""\nX = 1\n', "X = 1", "X = 2", True),  # the code after it
        ('def f():\n    """Doc."""\n    return 1\n', "Doc.", "Other.", False),  # after an INDENT
        ('if True:\n    pass\n"""Doc."""\nX = 1\n', "Doc.", "Other.", False),  # after a DEDENT
        ('X = 1\n"""Last."""', "Last.", "Other.", False),  # the last statement, no newline
        ('X = "a"\n', '"a"', '"b"', True),  # a string that is a value
        ('f = print\nf(\n    "a"\n)\n', '"a"', '"b"', True),  # an argument on a line of its own
        ('X = ("a"\n     "b")\n', '"b"', '"c"', True),
        ('"a" "b"\nX = 1\n', '"b"', '"c"', True),  # two strings: not a docstring statement
        ("X = 1  # one\n", "# one", "# two", False),
        ("X = 1\n", "X = 1", "X = 2", True),
        ("X = [1,\n     2]\n", "[1,\n     2]", "[1, 2]", False),  # layout
    ],
)
def test_what_enters_a_code_version(tmp_path, text, old, new, changes):
    files = {"script.py": "import mod\n", "mod.py": text}
    assert _version_changes(tmp_path, files, ("mod.py", old, new)) == changes


def test_the_code_version_is_a_hash_of_each_files_name_and_tokens(tmp_path):
    src = _tree(tmp_path / "src", {"script.py": "import pkg.mod\n", "pkg/__init__.py": "", "pkg/mod.py": "X = 1\n"})
    digest = hashlib.sha256()
    for name in ("pkg/__init__.py", "pkg/mod.py", "script.py"):
        digest.update(f"{name}\n".encode())
        digest.update("\n".join(identity._code_tokens((src / name).read_text())).encode())
    assert identity.code_version(src / "script.py", src) == digest.hexdigest()[:16]
    # the same code at another place is another version (names enter the hash)
    moved = _tree(
        tmp_path / "moved", {"script.py": "import pkg.other\n", "pkg/__init__.py": "", "pkg/other.py": "X = 1\n"}
    )
    assert identity.code_version(moved / "script.py", moved) != identity.code_version(src / "script.py", src)


def test_a_script_outside_src_enters_by_its_file_name(tmp_path):
    src = _tree(tmp_path / "src", {"mod.py": "X = 1\n"})
    script = _tree(tmp_path / "elsewhere", {"run.py": "import mod\n"}) / "run.py"
    digest = hashlib.sha256()  # sorted by path: elsewhere/run.py, then src/mod.py
    digest.update(b"run.py\n" + "\n".join(identity._code_tokens("import mod\n")).encode())
    digest.update(b"mod.py\n" + "\n".join(identity._code_tokens("X = 1\n")).encode())
    assert identity.code_version(script, src) == digest.hexdigest()[:16]


PACKAGE = {
    "pkg/__init__.py": "from . import a\n",
    "pkg/a.py": "from .sub import c\nfrom . import b\n",
    "pkg/b.py": "import json\n",
    "pkg/sub/__init__.py": "X = 1\n",
    "pkg/sub/c.py": "from ..b import NAME\nfrom .. import a\n",
    "pkg/sub/d.py": "",
    "pkg/unused.py": "",
    "top.py": "",
}


@pytest.mark.parametrize(
    "script, expected",
    [
        # `import pkg.sub.d` runs pkg and pkg.sub (their own code) and d (deep)
        ("import pkg.sub.d\n", {"pkg/__init__.py", "pkg/sub/__init__.py", "pkg/sub/d.py"}),
        # a name from a module: that module, deep
        (
            "from pkg.sub.c import NAME\n",
            {"pkg/__init__.py", "pkg/sub/__init__.py", "pkg/sub/c.py", "pkg/b.py", "pkg/a.py"},
        ),
        ("import top, json\n", {"top.py"}),
        ("from pkg.sub import X\n", {"pkg/__init__.py", "pkg/sub/__init__.py"}),  # X: a name of pkg.sub
    ],
)
def test_code_files_follow_imports_deep_and_packages_passed_on_the_way_shallow(tmp_path, script, expected):
    src = _tree(tmp_path / "src", {**PACKAGE, "script.py": script})
    got = identity.code_files(src / "script.py", src)
    assert got == sorted(got)
    assert {p.relative_to(src).as_posix() for p in got} == expected | {"script.py"}


def test_a_package_passed_on_the_way_is_shallow(tmp_path):
    """`from pkg.leaf import f` runs pkg/__init__.py, which imports heavy: the script does not
    use heavy, so an edit of heavy leaves its version alone, an edit of pkg/__init__ does not."""
    files = {
        "pkg/__init__.py": "from . import heavy\n",
        "pkg/heavy.py": "H = 1\n",
        "pkg/leaf.py": "def f():\n    return 1\n",
        "script.py": "from pkg.leaf import f\n",
    }
    assert not _version_changes(tmp_path / "a", files, ("pkg/heavy.py", "H = 1", "H = 2"))
    assert _version_changes(tmp_path / "b", files, ("pkg/__init__.py", "heavy", "heavy as h"))
    assert _version_changes(tmp_path / "c", files, ("pkg/leaf.py", "return 1", "return 2"))


def test_relative_imports_two_levels_up(tmp_path):
    files = {
        "pkg/__init__.py": "",
        "pkg/x.py": "X = 1\n",
        "pkg/sub/__init__.py": "",
        "pkg/sub/deep/__init__.py": "",
        "pkg/sub/deep/m.py": "from ...x import X\nfrom ..y import Y\n",
        "pkg/sub/y.py": "Y = 1\n",
        "script.py": "import pkg.sub.deep.m\n",
    }
    src = _tree(tmp_path / "src", files)
    got = {p.relative_to(src).as_posix() for p in identity.code_files(src / "script.py", src)}
    assert got == set(files)
    assert _version_changes(tmp_path / "b", files, ("pkg/x.py", "X = 1", "X = 2"))
    assert _version_changes(tmp_path / "c", files, ("pkg/sub/y.py", "Y = 1", "Y = 2"))


# ---------------------------------------------------------------- identities, stamps, records


def test_identity_hash_is_sha256_of_the_sorted_json():
    job = {"settings": {"b": 1, "a": [1, 2]}, "code": "c", "rule": "r"}
    expected = hashlib.sha256(json.dumps(job, sort_keys=True).encode()).hexdigest()[:12]
    assert identity.identity_hash(job) == expected and len(expected) == 12
    assert identity.identity_hash(dict(reversed(list(job.items())))) == expected


@pytest.mark.parametrize("text", [None, "", "{", "[1, 2]", '"a"', "null"])
def test_a_missing_or_unreadable_record_reads_as_none(tmp_path, text):
    path = tmp_path / "record.json"
    if text is not None:
        path.write_text(text)
    assert identity.read_record(path) is None


def test_a_record_reads_as_its_object(tmp_path):
    path = tmp_path / "record.json"
    path.write_text('{"identity": {"a": 1}}')
    assert identity.read_record(path) == {"identity": {"a": 1}}


JOB = {"rule": "train", "code": "c1", "settings": {"tau": 1.0}}


def test_a_stamp_is_written_only_when_it_changes_and_touched_when_the_job_is_not_current(tmp_path):
    stamp, record = tmp_path / "s" / "stamp.json", tmp_path / "record.json"
    record.write_text(json.dumps({"identity": JOB}))
    assert identity.stamp(stamp, record, JOB, {"git_commit": "a"})
    text = stamp.read_text()
    assert text == json.dumps({"identity": JOB, "made_by": {"git_commit": "a"}}, indent=1, sort_keys=True) + "\n"
    old = time.time() - 1000
    os.utime(stamp, (old, old))
    assert identity.stamp(stamp, record, JOB, {"git_commit": "a"})  # current: left alone, not touched
    assert stamp.stat().st_mtime == pytest.approx(old, abs=1)
    other = {**JOB, "settings": {"tau": 2.0}}
    assert not identity.stamp(stamp, record, other, {"git_commit": "a"})
    assert stamp.stat().st_mtime > old + 500 and json.loads(stamp.read_text())["identity"] == other


def test_a_job_with_a_check_is_current_only_when_both_identity_and_checked_files_agree(tmp_path):
    stamp, record = tmp_path / "stamp.json", tmp_path / "record.json"
    record.write_text(json.dumps({"identity": JOB, "checked": {"a": "h1"}}))
    assert identity.stamp(stamp, record, JOB, {}, {"a": "h1"})
    assert not identity.stamp(stamp, record, JOB, {}, {"a": "h2"})
    assert not identity.stamp(stamp, record, {**JOB, "code": "c2"}, {}, {"a": "h1"})
    assert identity.stamp(stamp, record, JOB, {}, None)  # no check: the identity alone
    record.write_text(json.dumps({"identity": JOB}))
    assert not identity.stamp(stamp, record, JOB, {}, {"a": "h1"})
    record.unlink()
    assert not identity.stamp(stamp, record, JOB, {}, {"a": "h1"})


def test_the_reason_for_a_re_run():
    describe = identity.describe_difference
    assert describe({"identity": {**JOB, "settings": {"tau": 1.0, "seed": 1}}}, JOB) == "other settings: seed"
    assert describe({"identity": {**JOB, "settings": {}}}, {**JOB, "settings": {"b": 1, "a": 2}}) == (
        "other settings: a, b"
    )
    assert describe({"identity": JOB}, JOB) == "another identity"
    assert describe({}, JOB) == "other code"  # a record without an identity
    checked = {f"f{i}": "new" for i in range(5)}
    record = {"identity": JOB, "checked": {"f0": "new", "f1": "old"}}
    assert describe(record, JOB, checked) == "other files than it checked: f1, f2, f3 ..."
    assert describe({**record, "checked": None}, JOB, {"f0": "h"}) == "other files than it checked: f0"
    assert describe({"identity": JOB, "checked": {"a": "h"}}, JOB, {"a": "h"}) == "another identity"
    assert describe({"identity": JOB, "checked": {"a": "h"}}, JOB) == "another identity"  # no check now
    assert describe({"identity": {"code": "c1"}}, JOB) == "other settings: tau"  # a record without settings
    three = {"identity": JOB, "checked": {"f0": "x"}}
    assert describe(three, JOB, {"f0": "y", "f1": "y", "f2": "y"}) == "other files than it checked: f0, f1, f2"


def test_a_record_holds_the_identity_what_made_it_and_the_hash_of_each_output(tmp_path):
    out = tmp_path / "job" / "out.txt"
    sub = tmp_path / "job" / "deeper" / "table.csv"
    sub.parent.mkdir(parents=True)
    out.write_text("a\n")
    sub.write_text("b\n")
    record_path = tmp_path / "job" / "identity_x.json"
    text = identity.record_text(
        json.dumps({"identity": JOB}),
        record_path,
        [out, sub, str(tmp_path / "job" / "." / "identity_x.json")],
        {"c": 1},
    )
    assert text.endswith("}\n") and text == json.dumps(json.loads(text), indent=1, sort_keys=True) + "\n"
    record = json.loads(text)
    assert record == {
        "identity": JOB,
        "made_by": {"c": 1},
        "files": {
            "out.txt": hashlib.sha256(b"a\n").hexdigest(),
            "deeper/table.csv": hashlib.sha256(b"b\n").hexdigest(),
        },
    }


@pytest.mark.parametrize("bad", ["[1]", '{"identity": 1}', '{"other": {}}'])
def test_a_record_refuses_what_is_not_a_job_identity(tmp_path, bad):
    with pytest.raises(ValueError, match="^not a job identity: "):
        identity.record_text(bad, tmp_path / "r.json", [], {})


def test_a_record_refuses_missing_outputs_naming_them(tmp_path):
    there = tmp_path / "there.txt"
    there.write_text("x")
    with pytest.raises(FileNotFoundError, match="^outputs missing, nothing recorded: .*a.txt, .*b.txt$"):
        identity.record_text(
            json.dumps({"identity": JOB}), tmp_path / "r.json", [tmp_path / "a.txt", there, tmp_path / "b.txt"], {}
        )


def test_sha256_of_a_missing_file_is_none(tmp_path):
    assert identity.sha256(tmp_path / "absent") is None
    (tmp_path / "f").write_bytes(b"xyz")
    assert identity.sha256(tmp_path / "f") == hashlib.sha256(b"xyz").hexdigest()


# ---------------------------------------------------------------- the check before aggregation


RUN = "results/toy/runs/ds/e1/ae/N10/seed0"
RERUN = "re-run the job that made it: snakemake --cores all --forcerun"


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """One run's training files with their record, made with hashes by the backfill."""
    monkeypatch.chdir(tmp_path)
    run = Path(RUN)
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"steps": 3}))
    (run / "train_log.csv").write_text("step,loss\n1,0.5\n2,0.4\n3,0.3\n")
    (run / "validation.csv").write_text("step,loss_mean\n0,0.6\n3,0.3\n")
    (run / "identity_train.json").write_text(json.dumps({"identity": JOB}))
    (run / "test_metrics.json").write_text(json.dumps({"loss": 1.0}))
    np.savez(run / "test_outputs.npz", z=np.zeros(3))
    (run / "identity_evaluate.json").write_text(json.dumps({"identity": JOB}))
    assert identity.backfill("results/toy") == (2, 0)
    return run


def _problems(files):
    with pytest.raises(identity.RunFileError) as info:
        identity.check_runs(files, "default")
    return str(info.value).splitlines()


def test_the_check_passes_unchanged_files_and_checks_the_run_json_beside_each(toy):
    files = [toy / "train_log.csv", toy / "validation.csv", toy / "test_metrics.json", toy / "test_outputs.npz"]
    checked = identity.check_runs([str(f) for f in files], "default")
    assert checked == sorted([*files, toy / "run.json"])
    assert identity.files_checked([f"{RUN}/./train_log.csv"]) == [toy / "run.json", toy / "train_log.csv"]


def test_the_backfill_writes_hashes_once_and_says_where_they_came_from(toy):
    record = json.loads((toy / "identity_train.json").read_text())
    assert record["files_from"] == "backfill" and record["identity"] == JOB
    assert record["files"] == {n: identity.sha256(toy / n) for n in ("run.json", "train_log.csv", "validation.csv")}
    text = (toy / "identity_train.json").read_text()
    assert text == json.dumps(json.loads(text), indent=1, sort_keys=True) + "\n"
    assert text.index('"files"') < text.index('"files_from"') < text.index('"identity"')
    assert identity.backfill("results/toy") == (0, 2)


def test_the_backfill_refuses_a_record_whose_files_are_missing_or_that_does_not_parse(toy):
    (toy / "identity_train.json").write_text(json.dumps({"identity": JOB}))
    (toy / "validation.csv").unlink()
    with pytest.raises(identity.RunFileError, match="validation.csv are missing; nothing backfilled"):
        identity.backfill("results/toy")
    (toy / "identity_train.json").write_text("{")
    with pytest.raises(identity.RunFileError, match="identity_train.json: unreadable"):
        identity.backfill("results/toy")


def test_the_backfill_leaves_other_identity_files_alone(toy):
    other = toy / "identity_plot.json"
    other.write_text("{")  # not a per-run record: not even read
    assert identity.backfill("results/toy") == (0, 2)


@pytest.mark.parametrize(
    "name, damage, problem",
    [
        ("train_log.csv", "step,loss\n1,0.5\n2,0.4\n", "2 steps logged where run.json reports 3 (cut short or edited)"),
        ("train_log.csv", "step,loss\n1,0.5\n2,0.4\n3,0.3\n4,0.2\n", "4 steps logged where run.json reports 3"),
        ("validation.csv", "step,loss_mean\n0,0.6\n3,0.31\n", "not what its job wrote"),
        ("test_metrics.json", "", "empty"),
        ("test_metrics.json", "  \n", "empty"),
        ("test_metrics.json", "[1]", "not a JSON object"),
        ("test_metrics.json", "{", "unreadable (JSONDecodeError"),
        ("test_outputs.npz", "not a zip", "unreadable ("),
        ("validation.csv", '"a\n', "unreadable (ParserError"),
    ],
)
def test_a_damaged_file_is_refused_naming_what_is_wrong(toy, name, damage, problem):
    (toy / name).write_text(damage)
    files = [toy / "train_log.csv", toy / "validation.csv", toy / "test_metrics.json", toy / "test_outputs.npz"]
    problems = _problems(files)
    assert len(problems) == 1 and problems[0].startswith(f"{toy / name}: {problem}"), problems
    assert "re-run the job that made it: snakemake --cores all --forcerun " in problems[0]


def test_a_run_json_without_an_integer_step_count_does_not_check_the_log(toy):
    (toy / "run.json").write_text(json.dumps({"steps": "3"}))
    (toy / "identity_train.json").write_text(json.dumps({"identity": JOB}))
    assert identity.backfill("results/toy") == (1, 1)
    (toy / "train_log.csv").write_text("step,loss\n1,0.5\n")
    problems = _problems([toy / "train_log.csv"])
    log = toy / "train_log.csv"
    wrong = "not what its job wrote (its SHA-256 differs from the one in identity_train.json)"
    assert problems == [f"{log}: {wrong}; {RERUN} {log}"]


def test_missing_files_and_records_are_refused(toy):
    (toy / "test_outputs.npz").unlink()
    problems = _problems([toy / "test_outputs.npz"])
    assert problems == [f"{toy / 'test_outputs.npz'}: missing; {RERUN} {toy / 'test_outputs.npz'}"]
    (toy / "identity_train.json").unlink()
    problems = _problems([toy / "validation.csv"])
    assert problems[0].startswith(f"{toy / 'run.json'}: its job's record {toy / 'identity_train.json'} is missing")
    assert problems[0].endswith(f"missing or unreadable; {RERUN} {toy / 'run.json'}")
    assert len(problems) == 2


def test_a_file_no_record_covers_and_a_record_without_hashes(toy):
    stray = toy / "notes.json"
    stray.write_text("{}")
    assert _problems([stray]) == [f"{stray}: no job's record covers a file named notes.json; {RERUN} {stray}"]
    (toy / "identity_evaluate.json").write_text(json.dumps({"identity": JOB, "files": None}))
    problems = _problems([toy / "test_metrics.json"])
    assert f"{toy / 'test_metrics.json'}: its job's record identity_evaluate.json holds no hashes" in problems[0]
    assert problems[0].endswith("python src/scripts/identity.py backfill results/toy")
    assert f"(made before records held them); {RERUN} {toy / 'test_metrics.json'}, or, for" in problems[0]


def test_a_file_outside_a_runs_folder_names_its_own_folder_for_the_backfill(toy):
    table = Path("results/toy/encoding_convergence.csv")
    table.write_text("a\n1\n")
    (table.parent / "identity_encoding_convergence.json").write_text(json.dumps({"identity": JOB}))
    problems = _problems([table])
    assert problems[0].endswith("python src/scripts/identity.py backfill results/toy")


def test_a_missing_file_of_another_kind_is_missing_and_an_existing_one_is_read_as_it_is(toy):
    absent, present = toy / "absent.txt", toy / "notes.txt"
    present.write_text("x")
    assert _problems([absent]) == [f"{absent}: missing; {RERUN} {absent}"]
    assert _problems([present])[0].startswith(f"{present}: no job's record covers a file named notes.txt")


def test_a_package_imported_both_whole_and_on_the_way_to_a_submodule_is_followed(tmp_path):
    """`import p` (deep) and `import p.sub` (p shallow on the way): p's own imports count,
    whatever order the imports are looked at in (eight packages, so no order hides it)."""
    files = {"script.py": "".join(f"import p{i}\nimport p{i}.sub\n" for i in range(8))}
    for i in range(8):
        files |= {f"p{i}/__init__.py": f"from . import heavy{i}\n", f"p{i}/sub.py": "", f"p{i}/heavy{i}.py": ""}
    src = _tree(tmp_path / "src", files)
    got = {p.relative_to(src).as_posix() for p in identity.code_files(src / "script.py", src)}
    assert got == set(files)


def test_every_problem_is_listed_one_per_line(toy):
    (toy / "test_metrics.json").write_text("")
    (toy / "validation.csv").write_text("step,loss_mean\n")
    problems = _problems([toy / "validation.csv", toy / "test_metrics.json"])
    assert [p.split(": ")[0] for p in problems] == [str(toy / "test_metrics.json"), str(toy / "validation.csv")]


def test_the_fix_names_the_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = Path("x.csv")
    assert identity._rerun(path, "default") == "re-run the job that made it: snakemake --cores all --forcerun x.csv"
    assert identity._rerun(path, "mine").endswith("--cores all --configfile <the config named mine> --forcerun x.csv")
    _tree(tmp_path, {"config/mine.yaml": "a: 1\n"})
    assert identity._rerun(path, "mine").endswith("--cores all --configfile config/mine.yaml --forcerun x.csv")
