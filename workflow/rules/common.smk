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

MODELS = ["ae", "gfe_amd", "gfe_rk4", "gfe_2nd", "gfe_adjoint"]
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
        ("solver_comparison", "solver_models"),
        ("solver_comparison", "adjoint_models"),
    ):
        values = (cfg.get(section) or {}).get(key)
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
    used = set(cfg["models"]) | set(cfg["learning_curves"]["models"])
    used |= set(cfg["solver_comparison"]["solver_models"])
    used |= set(cfg["solver_comparison"]["adjoint_models"])
    used.add(cfg["encoding_convergence"]["model"])
    used.add("gfe_amd")  # E5 runs AMD with its settings
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
    sizes = [("train_sizes", n) for n in cfg["train_sizes"]]
    for section in ("solver_comparison", "encoding_convergence", "latent_maps"):
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
    if cfg["model_settings"][ec["model"]]["kind"] != "gfe":
        _fail(
            f"encoding_convergence.model={ec['model']!r} must be a GFE model (kind gfe)"
        )
    if cfg["latent_maps"]["n_images"] > cfg["evaluation"]["n_latents"]:
        _fail("latent_maps.n_images must be at most evaluation.n_latents")
    if cfg["latent_maps"]["n_images"] > cfg["evaluation"]["test_size"]:
        _fail("latent_maps.n_images must be at most evaluation.test_size")


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
    model="|".join(MODELS),
    N=r"\d+|full",
    seed=r"\d+",


RUN = "results/runs/{dataset}/{model}/N{N}/seed{seed}"


def run_file(name, dataset, model, n, seed):
    return f"results/runs/{dataset}/{model}/N{n}/seed{seed}/{name}"


def e1_runs():
    return list(
        itertools.product(
            config["datasets"], config["models"], config["train_sizes"], config["seeds"]
        )
    )


def e2_runs():
    models = config["learning_curves"]["models"]
    return list(
        itertools.product(config["datasets"], models, ["full"], config["seeds"])
    )


def e34_runs(key):
    sc = config["solver_comparison"]
    return [
        (ds, m, sc["train_size"], sc["seed"])
        for ds in config["datasets"]
        for m in sc[key]
    ]


def _n_value(dataset, n):
    return n_train(dataset) if n == "full" else n


def e6_runs():
    seed = config["reconstructions"]["seed"]
    runs = []
    for ds in config["datasets"]:
        sizes = sorted(config["train_sizes"], key=lambda n: _n_value(ds, n))
        for n in dict.fromkeys([sizes[0], sizes[-1]]):
            runs += [(ds, m, n, seed) for m in config["models"]]
    return runs


def e7_runs():
    lm = config["latent_maps"]
    return [
        (ds, m, lm["train_size"], lm["seed"])
        for ds in config["datasets"]
        for m in config["models"]
    ]


def all_training_runs():
    return sorted(
        set(
            e1_runs()
            + e2_runs()
            + e34_runs("solver_models")
            + e34_runs("adjoint_models")
        ),
        key=str,
    )


def files(name, runs):
    return [run_file(name, *r) for r in runs]


def model_json(model):
    return json.dumps(config["model_settings"][model], sort_keys=True)


def dataset_json(dataset):
    return json.dumps(config["dataset_settings"][dataset], sort_keys=True)


def val_every(wildcards):
    if wildcards.N == "full" and wildcards.model in config["learning_curves"]["models"]:
        return config["learning_curves"]["val_every"]
    return 0


TABLE_NAMES = [
    "e1_data_efficiency",
    "e2_learning_curves",
    "e3_solver_comparison",
    "e4_adjoint_ablation",
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


def e5_model(wildcards):
    ec = config["encoding_convergence"]
    return f"results/models/{wildcards.dataset}/{ec['model']}/N{ec['train_size']}/seed{ec['seed']}.pt"


def figure_png(name, caption):
    return report_file(
        f"figures/{name}.png",
        caption=f"../report/{caption}.rst",
        category="Figures",
        labels={"figure": name},
    )
