"""pyproject.toml (runtime + test extra) and environment.yml list the same packages and bounds."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

# conda package name -> PyPI distribution name, where they differ
CONDA_TO_PYPI = {"pytorch": "torch"}
# environment.yml entries that are tooling, not project dependencies
NOT_DEPENDENCIES = {"python", "pip"}


def normalise(name: str) -> str:
    """PEP 503 normalised distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def split(spec: str) -> tuple[str, str]:
    """'scikit-learn>=1.3' -> ('scikit-learn', '>=1.3'); 'python=3.11' -> ('python', '=3.11')."""
    m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(.*)", spec)
    return normalise(m.group(1)), m.group(2).replace(" ", "")


def pyproject_requirements() -> dict[str, str]:
    """Runtime dependencies plus the test extra: name -> version specifier."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = project["dependencies"] + project["optional-dependencies"]["test"]
    return dict(split(s) for s in specs)


def environment() -> dict:
    return yaml.safe_load((ROOT / "environment.yml").read_text())


def environment_requirements() -> dict[str, str]:
    """Conda and pip entries of environment.yml, under PyPI names: name -> version specifier."""
    reqs = {}
    for entry in environment()["dependencies"]:
        if isinstance(entry, dict):  # the pip: section
            for spec in entry["pip"]:
                if not spec.startswith("-"):  # '-e .' installs the project itself
                    name, version = split(spec)
                    reqs[name] = version
        else:
            name, version = split(entry)
            if name not in NOT_DEPENDENCIES:
                reqs[CONDA_TO_PYPI.get(name, name)] = version
    return reqs


def test_dependency_names_agree():
    py, env = set(pyproject_requirements()), set(environment_requirements())
    assert py == env, f"only in pyproject.toml: {sorted(py - env)}; only in environment.yml: {sorted(env - py)}"


def test_version_bounds_agree():
    py, env = pyproject_requirements(), environment_requirements()
    differ = {n: (py[n], env[n]) for n in py.keys() & env.keys() if py[n] != env[n]}
    assert not differ, f"pyproject.toml vs environment.yml bounds differ: {differ}"


def test_environment_python_and_channels():
    env = environment()
    assert "python=3.11" in env["dependencies"]
    assert env["channels"][:2] == ["conda-forge", "pytorch"]
    pip_sections = [e for e in env["dependencies"] if isinstance(e, dict)]
    assert len(pip_sections) == 1 and "-e ." in pip_sections[0]["pip"]
