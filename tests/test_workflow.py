"""The Snakemake workflow: DAGs of every config, lint, formatting, schema and docs.
(Bad configs rejected before any job: tests/test_faults.py.)"""

from __future__ import annotations

import subprocess

import pytest
import yaml

from workflow_helpers import CONFIGS, REPO, SNAKEFMT, copy_repo, snakemake


@pytest.fixture(scope="module")
def repo_copy(tmp_path_factory):
    return copy_repo(tmp_path_factory.mktemp("repo"))


@pytest.mark.parametrize("configfile", CONFIGS)
def test_dry_run_builds_the_dag(repo_copy, configfile):
    # paper.yaml's MNIST and CIFAR-10 are not on this machine: the dry run must still work.
    result = snakemake(repo_copy, "-n", "--quiet", "rules", "--configfile", configfile)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "prepare_data" in result.stdout + result.stderr
    assert not (repo_copy / "results").exists() and not (repo_copy / "data").exists()


def test_lint_reports_nothing(repo_copy):
    result = snakemake(repo_copy, "--lint")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Lints for" not in result.stdout + result.stderr
    assert "good condition" in result.stdout + result.stderr


def test_snakefmt_check_passes():
    result = subprocess.run([SNAKEFMT, "--check", "workflow/"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def _schema_properties(node, found):
    if isinstance(node, dict):
        for key, value in (node.get("properties") or {}).items():
            found.add(key)
            _schema_properties(value, found)
        for value in (node.get("patternProperties") or {}).values():
            _schema_properties(value, found)
        for key in ("definitions", "items"):
            if key in node:
                values = node[key].values() if key == "definitions" else [node[key]]
                for value in values:
                    _schema_properties(value, found)
    return found


def test_config_readme_documents_every_schema_property():
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    text = (REPO / "config/README.md").read_text()
    properties = _schema_properties(schema, set())
    assert len(properties) > 30
    missing = sorted(p for p in properties if f"`{p}`" not in text)
    assert not missing, f"config/README.md does not mention {missing}"


def test_schema_rejects_extra_keys_everywhere():
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    assert schema["additionalProperties"] is False
    for name, section in schema["properties"].items():
        if section.get("type") == "object" and name not in ("dataset_settings", "model_settings"):
            assert section.get("additionalProperties") is False, name
        if "$ref" not in section:
            assert section.get("description"), f"{name} has no description"
