"""Where and under which name the workflow may run: from the repository root only, and the
name of config/config.yaml ('default', whose results are committed) only with its settings."""

import copy
import shutil
import subprocess

import pytest
import yaml

import pipeline.config
from workflow_helpers import REPO, SNAKEMAKE

DEFAULT = REPO / "config" / "config.yaml"


def _checked(path):
    return pipeline.config.check_config(yaml.safe_load(path.read_text()), check_encode_options=False)


def test_the_default_config_may_use_its_own_name():
    pipeline.config.check_owner(_checked(DEFAULT), DEFAULT)


@pytest.mark.parametrize(
    "change, words",
    [
        (lambda c: c["training"].update(val_every=3), "training.val_every: 3 (not 50)"),
        (lambda c: c.update(device="cuda"), "device: 'cuda' (not 'cpu')"),
        (lambda c: c["encoding_convergence"]["robustness"].update(seeds=[0]), "robustness.seeds: [0] (not [0, 1, 2])"),
    ],
)
def test_other_settings_under_the_default_name_are_refused(change, words):
    cfg = _checked(DEFAULT)
    change(cfg)
    with pytest.raises(pipeline.config.ConfigError, match="name: 'default' is the name of config/config.yaml") as error:
        pipeline.config.check_owner(cfg, DEFAULT)
    assert words in str(error.value) and "--config name=mine" in str(error.value)


def test_the_quick_config_under_the_default_name_is_refused_and_under_its_own_accepted():
    base = yaml.safe_load(DEFAULT.read_text())
    quick = yaml.safe_load((REPO / "config" / "quick.yaml").read_text())
    merged = copy.deepcopy(base)
    for key, value in quick.items():  # Snakemake's --configfile merge, one level deep
        merged[key] = (
            {**merged[key], **value} if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
        )
    pipeline.config.check_owner(
        pipeline.config.check_config(copy.deepcopy(merged), check_encode_options=False), DEFAULT
    )
    merged["name"] = "default"
    with pytest.raises(pipeline.config.ConfigError, match=r"and \d+ more\), so its runs would write over them"):
        pipeline.config.check_owner(pipeline.config.check_config(merged, check_encode_options=False), DEFAULT)


def test_the_workflow_refuses_to_run_from_another_folder(tmp_path):
    """From a folder that has a config/ of its own, `-s path/to/Snakefile` would plan every job
    and fail at the first one (relative paths); it stops at once, naming the root."""
    (tmp_path / "config").mkdir()
    shutil.copy(DEFAULT, tmp_path / "config" / "config.yaml")
    result = subprocess.run(
        [SNAKEMAKE, "-s", str(REPO / "workflow" / "Snakefile"), "-n", "--cores", "1"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    assert f"snakemake runs in {tmp_path}, not in the repository root {REPO}" in result.stdout + result.stderr
    assert f"--directory {REPO}" in result.stdout + result.stderr
    assert "Job stats" not in result.stdout + result.stderr  # refused before planning
