"""What made a result: every job's identity, and the decision to re-run a job whose
result was made by other settings or other code (a helper of the workflow, not part of
the library).

A job's identity is its rule, its resolved settings (the job's parameters as the current
config gives them, its wildcards, threads and device) and `code_version` of its script: a
hash of the script and of every module under src/ it imports, directly or not (for the
training script: the whole library). Comments, docstrings and layout do not enter it, so
that a documentation edit re-runs nothing.

Two files per job:
- the *stamp* (`STAMP_DIR/<record path>`, not committed): the identity the current config
  and code give, written while Snakemake builds its DAG, and an input of the job; any
  Snakemake process rewrites it (a dry run with other settings too), so it is only the
  re-run trigger, never what a job records;
- the *record* (beside the job's results, committed with them), written by the job when it
  succeeds (`python src/scripts/identity.py record`, the end of every rule's command): the identity
  the Snakemake process running the job planned it with (the job's `identity` parameter,
  held in that process's memory, not read from the stamp), the commit it ran at, and the
  SHA-256 of every file it wrote, so that the result says what made it and a file changed
  afterwards is caught.

A job whose record holds the identity of its stamp is up to date: its stamp input is
`ancient` (its time does not count). Otherwise (another config, other code, no record, as
in a clone of results made before records existed) the stamp is touched, so it is newer
than the job's outputs and Snakemake re-runs the job, in a fresh clone too, where
Snakemake's own metadata (.snakemake/) is absent.

Before aggregation, `python src/scripts/identity.py check` reads every per-run file the tables
are made from: it must parse, equal the hash its job's record holds, and a training log
must hold the steps its run.json reports. Its one output (`checked_runs.json`) lists what
it checked; the aggregation takes it as input, so a refused file stops the run before the
job that rewrites the tables. `python src/scripts/identity.py backfill results/<name>` gives
records made before they held hashes the hashes of their files as they are (once, for
results a run committed).
"""

from __future__ import annotations

import ast
import hashlib
import io
import json
import os
import tokenize
from pathlib import Path

from pipeline.common import RunFileError

STAMP_DIR = ".snakemake-identity"
_SKIPPED_TOKENS = {tokenize.COMMENT, tokenize.NL, tokenize.ENCODING}


def _code_tokens(source: str) -> list[str]:
    """The tokens that can change what a module does: no comments, layout or docstrings
    (a string that is a statement of its own)."""
    tokens = [t for t in tokenize.generate_tokens(io.StringIO(source).readline) if t.type not in _SKIPPED_TOKENS]
    kept, statement_start = [], True
    for i, token in enumerate(tokens):
        following = tokens[i + 1].type if i + 1 < len(tokens) else tokenize.ENDMARKER
        if token.type == tokenize.STRING and statement_start and following in (tokenize.NEWLINE, tokenize.ENDMARKER):
            continue
        kept.append(f"{token.type}:{token.string}")
        statement_start = token.type in (tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT)
    return kept


def _module_file(name: str, src: Path) -> Path | None:
    """The file of module `name` under src/ (a package: its __init__.py), or None for a
    module from elsewhere (the standard library, torch, ...)."""
    path = src.joinpath(*name.split("."))
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py")
    return None


# The workflow asks for the code version of ~20 scripts that share most of their modules:
# each file's content is tokenized and parsed once per process (a dry run: 6 s -> under 1 s).
# Keyed by content, so an edit is always seen.
_token_texts: dict[bytes, bytes] = {}
_import_lists: dict[tuple, dict[Path, bool]] = {}


def _content_key(file: Path) -> bytes:
    return hashlib.sha256(file.read_bytes()).digest()


def _token_text(file: Path) -> bytes:
    """A file's code tokens (:func:`_code_tokens`) one per line."""
    key = _content_key(file)
    if key not in _token_texts:
        _token_texts[key] = "\n".join(_code_tokens(file.read_text())).encode()
    return _token_texts[key]


def _imports(file: Path, src: Path) -> dict[Path, bool]:
    """:func:`_find_imports`, by the file's content and place (relative imports). It also
    depends on which modules exist under src/; a process that adds one (no workflow run
    does) would see the list made before."""
    key = (_content_key(file), file, src)
    if key not in _import_lists:
        _import_lists[key] = _find_imports(file, src)
    return _import_lists[key]


def _find_imports(file: Path, src: Path) -> dict[Path, bool]:
    """The files under src/ that `file` imports: {file: deep}. A module named by an import
    is deep (what it imports counts too); a package passed on the way to a submodule
    (`gfe` in `from gfe.io import x`) is shallow: its own code counts, not what it imports,
    which the submodule does not use."""
    package = file.parent.relative_to(src).parts if file.is_relative_to(src) else ()
    targets = set()
    for node in ast.walk(ast.parse(file.read_text(), filename=str(file))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the importing file's package
                parent = package[: len(package) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            for alias in node.names:  # a submodule, or else a name the module defines
                submodule = f"{base}.{alias.name}" if base else alias.name
                targets.add(submodule if _module_file(submodule, src) else base)
    found: dict[Path, bool] = {}
    for name in filter(None, targets):
        parts = name.split(".")
        for k in range(1, len(parts) + 1):  # importing a.b.c runs a and a.b too
            module = _module_file(".".join(parts[:k]), src)
            if module is not None:
                found[module] = found.get(module, False) or k == len(parts)
    return found


def code_files(script: str | Path, src: str | Path) -> list[Path]:
    """The script and every file under `src` whose code it runs, sorted."""
    src, script = Path(src).resolve(), Path(script).resolve()
    deep, shallow, todo = set(), set(), [script]
    while todo:
        file = todo.pop()
        if file not in deep:
            deep.add(file)
            for module, is_deep in _imports(file, src).items():
                (todo.append if is_deep else shallow.add)(module)
    return sorted(deep | shallow)


def code_version(script: str | Path, src: str | Path) -> str:
    """A hash of what `script` runs: its code and that of every module under `src` it
    imports (comments, docstrings and layout left out)."""
    src = Path(src).resolve()
    digest = hashlib.sha256()
    for file in code_files(script, src):
        name = file.relative_to(src) if file.is_relative_to(src) else file.name
        digest.update(f"{name}\n".encode())
        digest.update(_token_text(file))
    return digest.hexdigest()[:16]


def identity_hash(identity: dict) -> str:
    """A short hash of an identity (for table rows)."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]


def read_record(path: str | Path) -> dict | None:
    """A job's record (None when absent or unreadable: the job is then re-run)."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def stamp(
    stamp_path: str | Path, record_path: str | Path, identity: dict, made_by: dict, checked: dict | None = None
) -> bool:
    """Write the job's stamp (its identity now and what makes it: commit) where it differs,
    and return whether the job's record holds the same identity (the job is up to date).
    `checked` (the check of run files, :func:`check_runs`): the hashes its files have now,
    which the record must list as checked too. A job that is not up to date gets its stamp
    touched, so Snakemake re-runs it."""
    stamp_path = Path(stamp_path)
    text = json.dumps({"identity": identity, "made_by": made_by}, indent=1, sort_keys=True) + "\n"
    if not stamp_path.is_file() or stamp_path.read_text() != text:
        from gfe.io import write_text  # imports torch: only when a stamp changes

        write_text(text, stamp_path)
    record = read_record(record_path)
    current = record is not None and record.get("identity") == identity
    if checked is not None:
        current = current and record.get("checked") == checked
    if not current:
        os.utime(stamp_path)
    return current


def describe_difference(record: dict | None, identity: dict, checked: dict | None = None) -> str:
    """Why a job is re-run, in words (for the log of the DAG)."""
    if record is None:
        return "no record of what made its result"
    old = record.get("identity", {})
    if old.get("code") != identity.get("code"):
        return "other code"
    changed = sorted(
        k
        for k in set(old.get("settings", {})) | set(identity.get("settings", {}))
        if old.get("settings", {}).get(k) != identity["settings"].get(k)
    )
    if changed:
        return "other settings: " + ", ".join(changed)
    if checked is not None and record.get("checked") != checked:
        old_checked = record.get("checked") or {}
        differ = sorted(k for k in set(old_checked) | set(checked) if old_checked.get(k) != checked.get(k))
        return f"other files than it checked: {', '.join(differ[:3])}" + (" ..." if len(differ) > 3 else "")
    return "another identity"


# ---------------------------------------------------------------- records: the files a job wrote

# The per-run files each per-run record covers (its rule's outputs beside it, the model file
# apart): what the check before aggregation looks up, and what a backfill hashes.
RUN_RECORDS = {
    "identity_train.json": ("run.json", "train_log.csv", "validation.csv"),
    "identity_evaluate.json": ("test_metrics.json", "test_outputs.npz"),
    "identity_training_latents.json": ("training_latents.npz",),
    "identity_embed_latents.json": ("tsne.csv",),
    "identity_encoding_convergence.json": ("encoding_convergence.csv",),
    "identity_solver_robustness.json": ("solver_robustness.csv",),
}
RECORD_OF = {name: record for record, names in RUN_RECORDS.items() for name in names}
# The files of a run's own folder (runs/<dataset>/<experiment>/<model>/N<N>/seed<seed>/), not
# of a dataset's (runs/<dataset>/: E5): aggregation reads each with the run.json beside it.
IN_RUN_FOLDER = {
    name
    for name, record in RECORD_OF.items()
    if record not in ("identity_encoding_convergence.json", "identity_solver_robustness.json")
}


def sha256(path: str | Path) -> str | None:
    """The SHA-256 of a file's bytes; None for a missing file."""
    try:
        with open(path, "rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    except FileNotFoundError:
        return None


def file_hashes(files, base: str | Path) -> dict[str, str | None]:
    """{path relative to folder `base` (as in a record: `run.json`, `../e1_data_efficiency.csv`):
    SHA-256} of `files`."""
    return {Path(os.path.relpath(f, base)).as_posix(): sha256(f) for f in files}


def record_text(identity_json: str, record_path: str | Path, files, made_by: dict) -> str:
    """A job's record: its identity (`identity_json`: the job's `identity` parameter, {"identity":
    ...}), what made it and the SHA-256 of every file in `files` (its outputs; the record itself
    left out), keyed by path relative to the record's folder."""
    record = json.loads(identity_json)
    if not isinstance(record, dict) or not isinstance(record.get("identity"), dict):
        raise ValueError(f"not a job identity: {identity_json[:200]}")
    outputs = [f for f in files if os.path.normpath(f) != os.path.normpath(record_path)]
    missing = [str(f) for f in outputs if not os.path.isfile(f)]
    if missing:
        raise FileNotFoundError(f"outputs missing, nothing recorded: {', '.join(missing)}")
    record["made_by"] = made_by
    record["files"] = file_hashes(outputs, Path(record_path).parent)
    return json.dumps(record, indent=1, sort_keys=True) + "\n"


# ---------------------------------------------------------------- the check before aggregation


def _configfile(config_name: str) -> str:
    """The --configfile arguments that select config `config_name` (for a command to give)."""
    if config_name == "default":
        return ""
    if Path(f"config/{config_name}.yaml").is_file():
        return f" --configfile config/{config_name}.yaml"
    return f" --configfile <the config named {config_name}>"


def _rerun(path: Path, config_name: str) -> str:
    return f"re-run the job that made it: snakemake --cores all{_configfile(config_name)} --forcerun {path}"


def _unreadable(path: Path) -> str | None:
    """Why `path` cannot be read as the file aggregation reads (None: it parses)."""
    try:
        if path.suffix == ".json":
            text = path.read_text()
            if not text.strip():
                return "empty"
            if not isinstance(json.loads(text), dict):
                return "not a JSON object"
        elif path.suffix == ".csv":
            import pandas as pd

            pd.read_csv(path)
        elif path.suffix == ".npz":
            import numpy as np

            with np.load(path) as saved:
                for key in saved.files:
                    saved[key]
        elif not path.is_file():
            return "missing"
    except FileNotFoundError:
        return "missing"
    except Exception as error:  # pandas, numpy, zipfile and json each raise their own
        return f"unreadable ({type(error).__name__}: {str(error).strip() or 'empty'})"
    return None


def _steps_problem(path: Path) -> str | None:
    """A training log with other than the steps its run.json reports (a run cut short)."""
    import pandas as pd

    run = read_record(path.with_name("run.json"))  # a run.json that does not parse is refused itself
    if run is None or not isinstance(run.get("steps"), int):
        return None
    logged = len(pd.read_csv(path))
    if logged != run["steps"]:
        return f"{logged} steps logged where run.json reports {run['steps']} (cut short or edited)"
    return None


def _record_problem(path: Path, config_name: str) -> str | None:
    """`path` against the hash its job's record holds: what is wrong and the fix."""
    if path.name not in RECORD_OF:
        return f"no job's record covers a file named {path.name}; {_rerun(path, config_name)}"
    record_path = path.with_name(RECORD_OF[path.name])
    record = read_record(record_path)
    if record is None:
        return f"its job's record {record_path} is missing or unreadable; {_rerun(path, config_name)}"
    if not isinstance(record.get("files"), dict):
        return (
            f"its job's record {record_path.name} holds no hashes of the files the job wrote (made before "
            f"records held them); {_rerun(path, config_name)}, or, for results a run committed, add them "
            f"once: python src/scripts/identity.py backfill {_results_folder(path)}"
        )
    if record["files"].get(path.name) != sha256(path):
        return (
            f"not what its job wrote (its SHA-256 differs from the one in {record_path.name}); "
            f"{_rerun(path, config_name)}"
        )
    return None


def _results_folder(path: Path) -> Path:
    """results/<name> of a per-run file (results/<name>/runs/...)."""
    parts = path.parts
    return Path(*parts[: parts.index("runs")]) if "runs" in parts else path.parent


def files_checked(files) -> list[Path]:
    """`files` and the run.json beside each file of a run's folder (aggregation reads it too),
    sorted: what :func:`check_runs` checks."""
    checked = {Path(os.path.normpath(f)) for f in files}
    checked |= {f.with_name("run.json") for f in checked if f.name in IN_RUN_FOLDER}
    return sorted(checked)


def check_runs(files, config_name: str) -> list[Path]:
    """Check the per-run files aggregation reads (`files`, and the run.json beside each file of
    a run's folder): each parses, a training log holds the steps of its run.json, and each is
    what its job wrote (the SHA-256 in its record). Returns the files checked; raises
    RunFileError naming each refused file, what is wrong and the command that re-runs its job."""
    checked = files_checked(files)
    problems = []
    for path in checked:
        problem = _unreadable(path) or (path.name == "train_log.csv" and _steps_problem(path))
        if problem:
            problems.append(f"{path}: {problem}; {_rerun(path, config_name)}")
        elif problem := _record_problem(path, config_name):
            problems.append(f"{path}: {problem}")
    if problems:
        raise RunFileError("\n".join(problems))
    return checked


# ---------------------------------------------------------------- backfill


def backfill(results: str | Path) -> tuple[int, int]:
    """Give every per-run record under `results` (results/<name>) that holds no file hashes the
    hashes of its files as they are now; a record that holds them is left alone. For results
    a run committed before records held hashes (git history shows the files are those the run
    wrote), run once. Returns (records given hashes, records that had them)."""
    from gfe.io import write_text  # imports torch

    added, had = 0, 0
    for record_path in sorted(Path(results).rglob("identity_*.json")):
        if record_path.name not in RUN_RECORDS:
            continue
        record = read_record(record_path)
        if record is None:
            raise RunFileError(f"{record_path}: unreadable; re-run the job that made it")
        if "files" in record:
            had += 1
            continue
        files = [record_path.with_name(n) for n in RUN_RECORDS[record_path.name]]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise RunFileError(f"{record_path}: its files {', '.join(missing)} are missing; nothing backfilled")
        record["files"] = file_hashes(files, record_path.parent)
        record["files_from"] = "backfill"  # hashed after the job, from the files as committed
        write_text(json.dumps(record, indent=1, sort_keys=True) + "\n", record_path)
        added += 1
    return added, had
