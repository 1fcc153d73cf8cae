# Configuration checks (before any job starts) and the run lists of every experiment.
import hashlib
import json
import os
import shlex
import sys

from snakemake.exceptions import WorkflowError
from snakemake.io import ancient, report as report_file
from snakemake.logging import logger

# The workflow's helpers (src/wfconfig.py, src/wfcommon.py) live beside the library.
SRC = os.path.abspath(os.path.join(workflow.basedir, os.pardir, "src"))
sys.path.insert(0, SRC)
from wfconfig import DATASETS, EXPERIMENTS, MODELS, ConfigError, check_config
import wfcommon
import wfidentity
import wfplan
from wfplan import Plan

# Jobs call `python`: make it the interpreter running snakemake (the project's venv).
shell.prefix(
    f"set -euo pipefail; export PATH={shlex.quote(os.path.dirname(sys.executable))}:$PATH; "
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


# Every value that could make a job fail (src/wfconfig.py). The encode-option checks
# import the library (seconds): once per run, not in every cluster job.
try:
    check_config(config, check_encode_options=workflow.is_main_process)
except ConfigError as error:
    raise WorkflowError(str(error)) from None

plan = Plan(config)  # the runs and file names of this config (src/wfplan.py)
CONFIG_HASH = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[
    :12
]
THREADS = config["threads"]
# Each config writes only under its own name: results/<name>/, figures/<name>/, logs/<name>/
# and data/prepared/<name>/ (no run of one config can overwrite or reuse another's files).
RESULTS, FIGURES_DIR, LOGS = plan.results, plan.figures, plan.logs
PREPARED, RUN, MODEL_FILE = plan.prepared, plan.run, plan.model_pattern
# the commit the jobs of this invocation run (and whether it was dirty): in each record
MADE_BY = {"git_commit": wfcommon.git_commit()}


def identity(rule, script, record, **settings):
    """The `identity` input of a job (src/wfidentity.py): a stamp of what the job would be
    now, its rule, the code of `script` (with what it imports from src/) and `settings`
    (values, or functions of the wildcards: the job's parameters that can move its
    numbers), plus its wildcards. `record` (a path pattern with the rule's wildcards) is
    the copy the job leaves beside its results (its shell command ends with
    `&& cp {input.identity:q} {output.identity:q}`); a job whose record differs is re-run.
    """
    code = wfidentity.code_version(os.path.join(SRC, script), SRC)

    def stamp(wildcards):
        resolved = {k: v(wildcards) if callable(v) else v for k, v in settings.items()}
        resolved["wildcards"] = dict(wildcards.items())
        job = {"rule": rule, "code": code, "settings": resolved}
        record_path = record.format(**wildcards)
        stamp_path = os.path.join(wfidentity.STAMP_DIR, record_path)
        if wfidentity.stamp(stamp_path, record_path, job, MADE_BY):
            return ancient(stamp_path)
        if workflow.is_main_process and os.path.exists(record_path):
            reason = wfidentity.describe_difference(
                wfidentity.read_record(record_path), job
            )
            logger.info(f"{record_path}: made by {reason}; its job runs again")
        return stamp_path

    return stamp


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
