# Configuration checks (before any job starts) and the run lists of every experiment.
import hashlib
import itertools
import json
import os
import shlex
import sys

from snakemake.exceptions import WorkflowError
from snakemake.io import report as report_file

# The workflow's helpers (src/wfconfig.py, src/wfcommon.py) live beside the library.
sys.path.insert(0, os.path.abspath(os.path.join(workflow.basedir, os.pardir, "src")))
from wfconfig import DATASETS, EXPERIMENTS, MODELS, ConfigError, check_config

# Jobs call `python`: make it the interpreter running snakemake (the project's venv).
shell.prefix(
    f"set -euo pipefail; export PATH={shlex.quote(os.path.dirname(sys.executable))}:$PATH; "
)


def n_train(dataset):
    s = config["dataset_settings"][dataset]
    return s["n_pool"] - s["n_val"]


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


# Every value that could make a job fail (src/wfconfig.py). The flow checks import the
# library (seconds): once per run, not in every cluster job.
try:
    check_config(config, check_flows=workflow.is_main_process)
except ConfigError as error:
    raise WorkflowError(str(error)) from None

CONFIG_NAME = config["name"]
CONFIG_HASH = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[
    :12
]
THREADS = config["threads"]


wildcard_constraints:
    dataset="|".join(DATASETS),
    experiment="|".join(EXPERIMENTS),
    model="|".join(MODELS),
    N=r"\d+|full",
    seed=r"\d+",


# Each config writes only under its own name: results/<name>/, figures/<name>/, logs/<name>/
# and data/prepared/<name>/ (no run of one config can overwrite or reuse another's files).
RESULTS = f"results/{CONFIG_NAME}"
FIGURES_DIR = f"figures/{CONFIG_NAME}"
LOGS = f"logs/{CONFIG_NAME}"
PREPARED = f"data/prepared/{CONFIG_NAME}/{{dataset}}.pt"
RUN = f"{RESULTS}/runs/{{dataset}}/{{experiment}}/{{model}}/N{{N}}/seed{{seed}}"
MODEL_FILE = (
    f"{RESULTS}/models/{{dataset}}/{{experiment}}/{{model}}/N{{N}}/seed{{seed}}.pt"
)


def run_file(name, dataset, experiment, model, n, seed):
    return f"{RESULTS}/runs/{dataset}/{experiment}/{model}/N{n}/seed{seed}/{name}"


def e1_runs():
    return [
        (ds, "e1", m, n, s)
        for ds, m, n, s in itertools.product(
            config["datasets"], config["models"], config["train_sizes"], config["seeds"]
        )
    ]


def e2_runs():
    lc = config["learning_curves"]
    runs = [
        (ds, "e2", m, lc["train_size"], s)
        for ds, m, s in itertools.product(
            config["datasets"], lc["models"], config["seeds"]
        )
    ]
    return runs + [
        (ds, "e2", m, lc["train_size"], config["seeds"][0])
        for ds in config["datasets"]
        for m in lc["extra_models"]
    ]


def comparison_runs(section, experiment):
    sc = config[section]
    return [
        (ds, experiment, m, sc["train_size"], s)
        for ds, m, s in itertools.product(config["datasets"], sc["models"], sc["seeds"])
    ]


def e3_runs():
    return comparison_runs("solver_comparison", "e3")


def e4_runs():
    return comparison_runs("adjoint_ablation", "e4")


def _n_value(dataset, n):
    return n_train(dataset) if n == "full" else n


def e6_runs():
    seed = config["reconstructions"]["seed"]
    runs = []
    for ds in config["datasets"]:
        sizes = sorted(config["train_sizes"], key=lambda n: _n_value(ds, n))
        for n in dict.fromkeys([sizes[0], sizes[-1]]):
            runs += [(ds, "e1", m, n, seed) for m in config["models"]]
    return runs


def e7_runs():
    lm = config["latent_maps"]
    lc = config["learning_curves"]
    return [
        (ds, "e2", m, lc["train_size"], lm["seed"])
        for ds in config["datasets"]
        for m in lc["models"]
    ]


def e5_own_runs(dataset):
    """The decoders each flow trained: E3 models and the E2 GFE models, seed of E5."""
    seed = config["encoding_convergence"]["seed"]
    sc, lc = config["solver_comparison"], config["learning_curves"]
    own = [(dataset, "e3", m, sc["train_size"], seed) for m in sc["models"]]
    own += [
        (dataset, "e2", m, lc["train_size"], seed)
        for m in lc["models"]
        if config["model_settings"][m]["kind"] == "gfe"
    ]
    return own


def files(name, runs):
    return [run_file(name, *r) for r in runs]


def run_outputs():
    """Every per-run file of every experiment: targets of rule `all`, so that a deleted one
    is rebuilt by a plain re-run (aggregation reads only some of them)."""
    trained = e1_runs() + e2_runs() + e3_runs() + e4_runs()
    out = [
        run_file(n, *r)
        for r in trained
        for n in ("train_log.csv", "validation.csv", "run.json")
    ]
    out += files("test_metrics.json", e1_runs()) + files("test_outputs.npz", e1_runs())
    out += files("training_latents.npz", e7_runs()) + files("tsne.csv", e7_runs())
    return sorted(set(out))


def model_file(dataset, experiment, model, n, seed):
    return f"{RESULTS}/models/{dataset}/{experiment}/{model}/N{n}/seed{seed}.pt"


def model_json(model):
    return json.dumps(config["model_settings"][model], sort_keys=True)


def models_json(models):
    return json.dumps({m: config["model_settings"][m] for m in models}, sort_keys=True)


def dataset_json(dataset):
    return json.dumps(config["dataset_settings"][dataset], sort_keys=True)


def train_args(wildcards):
    """The training budget of a run, by experiment (command-line arguments of train.py)."""
    ds = config["dataset_settings"][wildcards.dataset]
    if wildcards.experiment == "e1":
        t = config["training"]
        return (
            f"--steps {t['max_steps'][wildcards.model]} --batch-size {ds['batch_size']}"
            f" --val-every {t['val_every']} --patience {t['patience']}"
            f" --min-improvement {t['min_improvement']}"
        )
    if wildcards.experiment == "e2":
        lc = config["learning_curves"]
        batch = ds["batch_size"]
        val_at = " ".join(str(round(n / batch)) for n in lc["report_images_seen"])
        return (
            f"--steps {lc['steps']} --batch-size {batch} --val-every {lc['val_every']}"
            + (f" --val-at {val_at}" if val_at else "")
        )
    section = {"e3": "solver_comparison", "e4": "adjoint_ablation"}[
        wildcards.experiment
    ]
    sc = config[section]
    args = f"--steps {sc['steps']} --batch-size {sc['batch_size']} --val-every {sc['val_every']}"
    if wildcards.experiment == "e4":
        args += " --gradient-cosine"
    return args


TABLE_NAMES = [
    "e1_data_efficiency",
    "e2_learning_curves",
    "e2_authors_points",
    "e3_solver_comparison",
    "e3_heldout",
    "e4_adjoint_ablation",
    "e4_heldout",
    "e5_encoding_convergence",
    "e6_reconstructions",
    "e7_latent_maps",
    "parameter_counts",
]
TABLES = [f"{RESULTS}/{name}.csv" for name in TABLE_NAMES] + [f"{RESULTS}/summary.md"]
FIGURE_NAMES = [
    "e1_data_efficiency",
    "e2_learning_curves",
    "e3_solver_comparison",
    "e4_adjoint_ablation",
    "e5_encoding_convergence",
    "e6_reconstructions",
    "e7_latent_maps",
]
FIGURES = [
    f"{FIGURES_DIR}/{name}.{ext}" for name in FIGURE_NAMES for ext in ("png", "pdf")
]


def e5_inputs(wildcards):
    ec, lc = config["encoding_convergence"], config["learning_curves"]
    common = (wildcards.dataset, "e2", ec["common_model"], lc["train_size"], ec["seed"])
    own = e5_own_runs(wildcards.dataset)
    return {
        "prepared": PREPARED.format(dataset=wildcards.dataset),
        "own": [model_file(*r) for r in own],
        "common": model_file(*common),
    }


def e5_own_args(wildcards):
    return " ".join(
        f"--own {r[2]}={model_file(*r)}" for r in e5_own_runs(wildcards.dataset)
    )


def figure_png(name, caption):
    return report_file(
        f"{FIGURES_DIR}/{name}.png",
        caption=f"../report/{caption}.rst",
        category="Figures",
        labels={"figure": name},
    )
