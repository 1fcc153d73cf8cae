"""The house's boundaries, read from the code's own imports: src/ holds three rooms (the
library gfe/, the workflow's helpers pipeline/, the rules' scripts scripts/ with the figures'
in scripts/plots/); the library imports nothing of the workflow, the helpers import no
script, no script imports another, every rule runs one script that exists, and the figures'
scripts read result files, never models."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from workflow_helpers import REPO

SRC = REPO / "src"
ROOMS = {"gfe", "pipeline", "scripts"}


def _python_files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.py"))


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in `path`; a relative import is resolved
    against the file's package."""
    package = path.parent.relative_to(SRC).parts if path.is_relative_to(SRC) else ()
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package[: len(package) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            found += [(node.lineno, f"{base}.{alias.name}" if base else alias.name) for alias in node.names]
    return found


def _offending(files: list[Path], forbidden) -> list[str]:
    """`file:line: module` for each import in `files` that `forbidden(module)` refuses."""
    return [
        f"{path.relative_to(REPO)}:{line}: {name}" for path in files for line, name in _imports(path) if forbidden(name)
    ]


def _top(name: str) -> str:
    return name.split(".")[0]


def test_src_holds_the_three_rooms_and_nothing_loose():
    entries = {p.name for p in SRC.iterdir() if not p.name.endswith(".egg-info") and p.name != "__pycache__"}
    assert entries == ROOMS, entries
    assert (SRC / "scripts/plots").is_dir()
    helpers = {p.stem for p in (SRC / "pipeline").glob("*.py")} - {"__init__"}
    assert not [name for name in helpers if re.match(r"wf[a-z]", name)], helpers


def test_the_library_imports_nothing_of_the_workflow():
    """gfe stands alone: no helper, no script, no Snakemake, no config reader."""
    offenders = _offending(
        _python_files(SRC / "gfe"),
        lambda name: _top(name) in {"pipeline", "scripts", "snakemake", "yaml", "jsonschema"},
    )
    assert not offenders, offenders


def test_the_helpers_import_no_script():
    offenders = _offending(_python_files(SRC / "pipeline"), lambda name: _top(name) in {"scripts", "snakemake"})
    assert not offenders, offenders


def _scripts() -> list[Path]:
    return [p for p in _python_files(SRC / "scripts") if p.name != "__init__.py"]


def test_no_script_imports_another_script():
    """Scripts share code through the library and the helpers, never through each other (by
    package name, or by a bare name that Python would find beside the script)."""
    scripts = _scripts()
    assert {"train", "evaluate", "prepare_data", "aggregate", "e1", "headline"} <= {p.stem for p in scripts}
    siblings = {p.stem for p in scripts}
    offenders = _offending(scripts, lambda name: _top(name) == "scripts" or name in siblings)
    assert not offenders, offenders


def test_every_script_is_a_program_and_every_rule_runs_one_that_exists():
    for script in _scripts():
        assert '__name__ == "__main__"' in script.read_text(), f"{script} does not run as a program"
    smk = "\n".join(p.read_text() for p in sorted((REPO / "workflow/rules").glob("*.smk")))
    named = set(re.findall(r"python (src/[\w/]+\.py)", smk))
    assert named, "no rule names a script"
    assert not [s for s in named if not s.startswith("src/scripts/")], named
    assert not [s for s in named if not (REPO / s).is_file()], named
    # every script runs somewhere: a rule, or the Makefile (make compare)
    runners = smk + (REPO / "Makefile").read_text()
    unused = [str(p.relative_to(REPO)) for p in _scripts() if str(p.relative_to(REPO)) not in runners]
    assert not unused, f"scripts no rule or make target runs: {unused}"


def test_the_figures_scripts_read_result_files_never_models():
    """A plot script (and the helpers it imports) may use gfe.io only to write its figure:
    no torch, no model, no checkpoint, no other part of the library."""
    plot_code = [*_python_files(SRC / "scripts/plots"), SRC / "pipeline/plotstyle.py", SRC / "pipeline/plotpanels.py"]
    allowed = {"gfe.io.atomic_write"}
    offenders = _offending(
        plot_code,
        lambda name: (
            _top(name) in {"torch", "torchvision", "torchdiffeq"} or (_top(name) == "gfe" and name not in allowed)
        ),
    )
    assert not offenders, offenders
    calls = [
        f"{p.relative_to(REPO)}: {m.group(0)}"
        for p in plot_code
        for m in re.finditer(r"load_model|torch\.load", p.read_text())
    ]
    assert not calls, calls
