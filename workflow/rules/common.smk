# Configuration checks (before any job starts) and the run lists of every experiment.
import hashlib
import itertools
import json
import os
import shlex
import sys

from snakemake.exceptions import WorkflowError
from snakemake.io import report as report_file
from snakemake.utils import validate

# Jobs call `python`: make it the interpreter running snakemake (the project's venv).
shell.prefix(
    f"set -euo pipefail; export PATH={shlex.quote(os.path.dirname(sys.executable))}:$PATH; "
)

MODELS = ["ae", "gfe_amd", "gfe_amd_per_sample", "gfe_rk4", "gfe_2nd", "gfe_adjoint"]
EXPERIMENTS = ["e1", "e2", "e3", "e4"]
DATASETS = ["mnist", "fashion_mnist", "cifar10"]
OFFICIAL_TRAIN = {"mnist": 60000, "fashion_mnist": 60000, "cifar10": 50000}
OFFICIAL_TEST = 10000
SCHEMA = os.path.join(workflow.basedir, "schemas", "config.schema.yaml")


def _fail(message):
    raise WorkflowError(f"Invalid configuration: {message}")


def _schema_keys():
    import yaml

    with open(SCHEMA) as handle:
        return list(yaml.safe_load(handle)["properties"])


def _check_names(cfg):
    """Clearer messages than the schema's for the mistakes people make."""
    allowed = _schema_keys()
    unknown = sorted(set(cfg) - set(allowed))
    if unknown:
        _fail(f"unknown top-level key(s) {unknown}; allowed keys: {allowed}")
    for key, names in (("datasets", DATASETS), ("models", MODELS)):
        values = cfg.get(key)
        if isinstance(values, list):
            bad = [v for v in values if v not in names]
            if bad:
                _fail(f"{key}: unknown {key[:-1]}(s) {bad}; allowed values: {names}")
    for section, key in (
        ("learning_curves", "models"),
        ("learning_curves", "extra_models"),
        ("solver_comparison", "models"),
        ("adjoint_ablation", "models"),
        ("encoding_convergence", "common_model"),
    ):
        values = (cfg.get(section) or {}).get(key)
        values = [values] if isinstance(values, str) else values
        if isinstance(values, list):
            bad = [v for v in values if v not in MODELS]
            if bad:
                _fail(
                    f"{section}.{key}: unknown model(s) {bad}; allowed values: {MODELS}"
                )


def n_train(dataset):
    s = config["dataset_settings"][dataset]
    return s["n_pool"] - s["n_val"]


def _models_in_use(cfg):
    lc = cfg["learning_curves"]
    used = set(cfg["models"]) | set(lc["models"]) | set(lc["extra_models"])
    used |= set(cfg["solver_comparison"]["models"])
    used |= set(cfg["adjoint_ablation"]["models"])
    return sorted(used)


def _check_semantics(cfg):
    for ds in cfg["datasets"]:
        if ds not in cfg["dataset_settings"]:
            _fail(
                f"dataset_settings has no entry for dataset {ds!r} (listed in datasets); "
                f"entries: {sorted(cfg['dataset_settings'])}"
            )
        s = cfg["dataset_settings"][ds]
        if s["n_pool"] > OFFICIAL_TRAIN[ds]:
            _fail(
                f"dataset_settings.{ds}.n_pool={s['n_pool']} is larger than the {OFFICIAL_TRAIN[ds]} "
                f"official training images; allowed: 2..{OFFICIAL_TRAIN[ds]}"
            )
        if not s["n_val"] < s["n_pool"]:
            _fail(
                f"dataset_settings.{ds}.n_val={s['n_val']} must be smaller than n_pool={s['n_pool']}"
            )
    if cfg["evaluation"]["test_size"] > OFFICIAL_TEST:
        _fail(
            f"evaluation.test_size={cfg['evaluation']['test_size']} is larger than the test set; "
            f"allowed: 2..{OFFICIAL_TEST}"
        )
    missing = [m for m in cfg["models"] if m not in cfg["training"]["max_steps"]]
    if missing:
        _fail(
            f"training.max_steps has no step cap for E1 model(s) {missing}; "
            f"entries: {sorted(cfg['training']['max_steps'])}"
        )
    common = cfg["encoding_convergence"]["common_model"]
    if common not in cfg["learning_curves"]["models"]:
        _fail(
            f"encoding_convergence.common_model={common!r} must be one of learning_curves.models "
            f"{cfg['learning_curves']['models']} (its E2 decoder is the common decoder)"
        )
    for key in ("encoding_convergence", "latent_maps"):
        if cfg[key]["seed"] not in cfg["seeds"]:
            _fail(f"{key}.seed={cfg[key]['seed']} must be one of seeds {cfg['seeds']}")
    sizes = [("train_sizes", n) for n in cfg["train_sizes"]]
    for section in ("learning_curves", "solver_comparison", "adjoint_ablation"):
        sizes.append((f"{section}.train_size", cfg[section]["train_size"]))
    for key, n in sizes:
        for ds in cfg["datasets"]:
            limit = n_train(ds)
            if n != "full" and n > limit:
                _fail(
                    f"{key}: N={n} is larger than the training split of {ds} ({limit} images = "
                    f"dataset_settings.{ds}.n_pool - n_val); allowed: 1..{limit} or 'full'"
                )
    for model in _models_in_use(cfg):
        if model not in cfg["model_settings"]:
            _fail(
                f"model_settings has no entry for model {model!r}; entries: {sorted(cfg['model_settings'])}"
            )
        m = cfg["model_settings"][model]
        if m["kind"] == "gfe":
            missing = [k for k in ("gradient", "solver", "tau") if k not in m]
            if missing:
                _fail(f"model_settings.{model} (kind gfe) lacks {missing}")
    ec = cfg["encoding_convergence"]
    if cfg["model_settings"][ec["common_model"]]["kind"] != "gfe":
        _fail(
            f"encoding_convergence.common_model={ec['common_model']!r} must be a GFE model (kind gfe)"
        )
    if ec["n_images"] > cfg["evaluation"]["test_size"]:
        _fail("encoding_convergence.n_images must be at most evaluation.test_size")


def _check_flows(cfg):
    """Each GFE model's solver options on each dataset, checked by the library with the
    very options a job would pass it (dt_max >= dt_init, 0 < shrink < 1, known option
    names, a differentiable solver for the adjoint, ...)."""
    sys.path.insert(0, os.path.join(workflow.basedir, os.pardir, "src"))
    import wfcommon
    from gfe import check_gradient_options

    for ds in cfg["datasets"]:
        for model in _models_in_use(cfg):
            settings = cfg["model_settings"][model]
            if settings["kind"] != "gfe":
                continue
            flow = wfcommon.flow_options(settings, cfg["dataset_settings"][ds])
            try:
                check_gradient_options(settings["gradient"], **flow)
            except ValueError as error:
                where = f"model_settings.{model}"
                if settings["solver"] == "amd" and cfg["dataset_settings"][ds].get(
                    "amd_options"
                ):
                    where += (
                        f".solver_options merged with dataset_settings.{ds}.amd_options"
                    )
                _fail(f"{where}: {error}")


def check_gpu_available():
    """device: cuda on a machine without a GPU stops the run before any job. Skipped for
    cluster executors: there the jobs, not this machine, get the GPUs."""
    device = str(config["device"])
    if not device.startswith("cuda") or not workflow.local_exec:
        return
    import torch

    if not torch.cuda.is_available():
        _fail(
            f"device={device!r} but no CUDA GPU is visible on this machine "
            "(torch.cuda.is_available() is False); allowed here: 'cpu', or 'auto' "
            "(CUDA when present). Keep 'cuda' for a machine or cluster profile with GPUs"
        )


_check_names(config)
validate(config, SCHEMA)
_check_semantics(config)
if workflow.is_main_process:
    # The library import costs seconds: once per run, not in every cluster job.
    _check_flows(config)

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


RUN = "results/runs/{dataset}/{experiment}/{model}/N{N}/seed{seed}"
MODEL_FILE = "results/models/{dataset}/{experiment}/{model}/N{N}/seed{seed}.pt"


def run_file(name, dataset, experiment, model, n, seed):
    return f"results/runs/{dataset}/{experiment}/{model}/N{n}/seed{seed}/{name}"


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


def model_file(dataset, experiment, model, n, seed):
    return f"results/models/{dataset}/{experiment}/{model}/N{n}/seed{seed}.pt"


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
TABLES = [f"results/{name}.csv" for name in TABLE_NAMES] + ["results/summary.md"]
FIGURE_NAMES = [
    "e1_data_efficiency",
    "e2_learning_curves",
    "e3_solver_comparison",
    "e4_adjoint_ablation",
    "e5_encoding_convergence",
    "e6_reconstructions",
    "e7_latent_maps",
]
FIGURES = [f"figures/{name}.{ext}" for name in FIGURE_NAMES for ext in ("png", "pdf")]


def e5_inputs(wildcards):
    ec, lc = config["encoding_convergence"], config["learning_curves"]
    common = (wildcards.dataset, "e2", ec["common_model"], lc["train_size"], ec["seed"])
    own = e5_own_runs(wildcards.dataset)
    return {
        "prepared": f"data/prepared/{wildcards.dataset}.pt",
        "own": [model_file(*r) for r in own],
        "common": model_file(*common),
    }


def e5_own_args(wildcards):
    return " ".join(
        f"--own {r[2]}={model_file(*r)}" for r in e5_own_runs(wildcards.dataset)
    )


def figure_png(name, caption):
    return report_file(
        f"figures/{name}.png",
        caption=f"../report/{caption}.rst",
        category="Figures",
        labels={"figure": name},
    )
