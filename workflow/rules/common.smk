# Configuration checks (before any job starts) and the run lists of every experiment.
import hashlib
import json
import os
import shlex
import sys

from snakemake.exceptions import WorkflowError
from snakemake.io import report as report_file

# src/ holds the library (gfe/, installed), the workflow's helpers (pipeline/) and the scripts
# the rules run (scripts/): this process imports the helpers, the jobs' scripts import them too.
SRC = os.path.abspath(os.path.join(workflow.basedir, os.pardir, "src"))
sys.path.insert(0, SRC)
from pipeline.config import (
    DATASETS,
    EXPERIMENTS,
    MODELS,
    ConfigError,
    check_config,
    check_owner,
)
from pipeline import common
import pipeline.identity
import pipeline.plan
from pipeline.plan import Plan

# Jobs call `python`: make it the interpreter running snakemake (the project's venv), with
# src/ on its path (the scripts in src/scripts/ import the helpers in src/pipeline/).
shell.prefix(
    f"set -euo pipefail; export PATH={shlex.quote(os.path.dirname(sys.executable))}:$PATH; "
    f"export PYTHONPATH={shlex.quote(SRC)}; "
)


def check_gpu_available():
    """device: cuda on a machine without a GPU stops the run before any job. Skipped for
    cluster executors: there the jobs, not this machine, get the GPUs."""
    device = str(config["device"])
    if not device.startswith("cuda") or not workflow.local_exec:
        return
    import torch

    if not torch.cuda.is_available():
        raise WorkflowError(
            f"Invalid configuration: device: {device!r} but no CUDA GPU is visible on this "
            "machine (torch.cuda.is_available() is False); allowed here: 'cpu', or 'auto' "
            "(CUDA when present). Keep 'cuda' for a machine or cluster profile with GPUs"
        )


# The rules name data, scripts and results by paths relative to the repository root.
ROOT = os.path.dirname(os.path.abspath(workflow.basedir))
if os.path.realpath(os.getcwd()) != os.path.realpath(ROOT):
    raise WorkflowError(
        f"snakemake runs in {os.getcwd()}, not in the repository root {ROOT}: the rules call src/ "
        f"scripts and write results/ by relative paths; run it from there (cd {shlex.quote(ROOT)}) "
        f"or add --directory {shlex.quote(ROOT)}"
    )


# Every value that could make a job fail (src/pipeline/config.py). The encode-option checks
# import the library (seconds): once per run, not in every cluster job.
# A config that takes the name of config/config.yaml must have its settings: results/default/
# holds the committed reference.
try:
    check_config(config, check_encode_options=workflow.is_main_process)
    check_owner(config, os.path.join(ROOT, "config", "config.yaml"))
except ConfigError as error:
    raise WorkflowError(str(error)) from None

plan = Plan(config)  # the runs and file names of this config (src/pipeline/plan.py)
CONFIG_HASH = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[
    :12
]
THREADS = config["threads"]
# Each config writes only under its own name: results/<name>/, figures/<name>/, logs/<name>/
# and data/prepared/<name>/ (no run of one config can overwrite or reuse another's files).
RESULTS, FIGURES_DIR, LOGS = plan.results, plan.figures, plan.logs
PREPARED, RUN, MODEL_FILE = plan.prepared, plan.run, plan.model_pattern


# identity(...), recorded_identity and recorded(...): what made each result (identity.smk)
include: "identity.smk"


wildcard_constraints:
    dataset="|".join(DATASETS),
    experiment="|".join(EXPERIMENTS),
    model="|".join(MODELS),
    N=r"\d+|full",
    seed=r"\d+",


def figure_png(name, caption):
    return report_file(
        f"{FIGURES_DIR}/{name}.png",
        caption=f"../report/{caption}.rst",
        category="Figures",
        labels={"figure": name},
    )
