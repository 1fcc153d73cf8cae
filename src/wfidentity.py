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
  and code give, written while Snakemake builds its DAG, and an input of the job;
- the *record* (beside the job's results, committed with them): a copy of the stamp made
  when the job succeeds, so that the result says what made it.

A job whose record holds the identity of its stamp is up to date: its stamp input is
`ancient` (its time does not count). Otherwise (another config, other code, no record, as
in a clone of results made before records existed) the stamp is touched, so it is newer
than the job's outputs and Snakemake re-runs the job, in a fresh clone too, where
Snakemake's own metadata (.snakemake/) is absent.
"""

from __future__ import annotations

import ast
import hashlib
import io
import json
import os
import tokenize
from pathlib import Path

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


def stamp(stamp_path: str | Path, record_path: str | Path, identity: dict, made_by: dict) -> bool:
    """Write the job's stamp (its identity now and what makes it: commit) where it differs,
    and return whether the job's record holds the same identity (the job is up to date).
    A job that is not up to date gets its stamp touched, so Snakemake re-runs it."""
    stamp_path = Path(stamp_path)
    text = json.dumps({"identity": identity, "made_by": made_by}, indent=1, sort_keys=True) + "\n"
    if not stamp_path.is_file() or stamp_path.read_text() != text:
        from gfe.io import write_text  # imports torch: only when a stamp changes

        write_text(text, stamp_path)
    record = read_record(record_path)
    current = record is not None and record.get("identity") == identity
    if not current:
        os.utime(stamp_path)
    return current


def describe_difference(record: dict | None, identity: dict) -> str:
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
    return "other settings: " + ", ".join(changed) if changed else "another identity"
