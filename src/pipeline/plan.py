"""What the workflow runs, as pure functions of a checked config (a helper of the workflow,
not part of the library): the runs of every experiment, their budgets, where each file
goes, and the resolved arguments of each job (encode options, latent size, optimiser), so
that the scripts never read the config's shape. workflow/rules/common.smk builds one
`Plan(config)`; tests build one from a YAML file.

A run is a tuple (dataset, experiment, model, N, seed). Every file of a config lives under
its `name`: results/<name>/, figures/<name>/, logs/<name>/, data/prepared/<name>/.
"""

from __future__ import annotations

import itertools
import json
import shlex

# Tables made by aggregating per-run files (rule aggregate), then the rest (own rules).
AGGREGATED_TABLES = [
    "e1_data_efficiency",
    "e1_continuation",
    "e2_learning_curves",
    "e2_authors_points",
    "e3_solver_comparison",
    "e3_heldout",
    "e4_adjoint_ablation",
    "e4_heldout",
    "e5_encoding_convergence",
    "e5_robustness",
    "e6_reconstructions",
    "e7_latent_maps",
    "parameter_counts",
]
TABLE_NAMES = AGGREGATED_TABLES + ["data_floors", "e7_separability"]
FIGURE_NAMES = [
    "headline",
    "e1_data_efficiency",
    "e2_learning_curves",
    "e3_solver_comparison",
    "e4_adjoint_ablation",
    "e5_encoding_convergence",
    "e5_robustness",
    "e6_reconstructions",
    "e7_latent_maps",
    "claims_forest",
    "benchmarks",
]
# Per-run files written by training, evaluation and the t-SNE embedding.
TRAIN_FILES = ("train_log.csv", "validation.csv", "run.json")


def encode_options(model: dict, dataset: dict) -> dict:
    """The encode options (keyword arguments of `gfe.encode`) of a GFE model's entry of
    model_settings on a dataset's entry of dataset_settings: the one place the config becomes
    encode options (the dataset's amd_options are merged into an AMD model's solver options)."""
    options = {
        "solver": model["solver"],
        "order": model.get("order", 1),
        "tau": float(model["tau"]),
        "z0": model.get("z0", "zeros"),
        "loss": dataset["loss"],
    }
    solver_options = dict(model.get("solver_options", {}))
    if model["solver"] == "amd":
        solver_options.update(dataset.get("amd_options", {}))
    options.update(solver_options)
    return options


def evaluation_encode_options(options: dict) -> dict:
    """Encode options for validation and test: those of training, but AMD always with its
    per-sample rule (a sample's encoding then does not depend on the batch it is in)."""
    return {k: v for k, v in options.items() if k != "shared"}


def _json_arg(value) -> str:
    """A value as one shell word of JSON (keys sorted)."""
    return shlex.quote(json.dumps(value, sort_keys=True))


class Plan:
    """The runs and file names of one config (already checked by pipeline.config.check_config)."""

    def __init__(self, cfg: dict):
        self.cfg = cfg
        self.name = cfg["name"]
        self.results = f"results/{self.name}"
        self.figures = f"figures/{self.name}"
        self.logs = f"logs/{self.name}"
        self.prepared = f"data/prepared/{self.name}/{{dataset}}.pt"
        self.prepared_record = f"data/prepared/{self.name}/{{dataset}}.identity.json"
        self.run = self.results + "/runs/{dataset}/{experiment}/{model}/N{N}/seed{seed}"
        self.model_pattern = self.results + "/models/{dataset}/{experiment}/{model}/N{N}/seed{seed}.pt"
        self.checkpoint_pattern = self.results + "/checkpoints/{dataset}/{experiment}/{model}/N{N}/seed{seed}.pt"
        self.tables = [f"{self.results}/{t}.csv" for t in TABLE_NAMES]
        self.figure_files = [f"{self.figures}/{f}.{ext}" for f in FIGURE_NAMES for ext in ("png", "pdf")]
        # the HTML pages of the report (workflow/rules/report.smk): the summary and each table
        self.report_pages = [f"{self.results}/summary.html"] + [f"{self.results}/html/{t}.html" for t in TABLE_NAMES]

    # ---------------------------------------------------------------- file names

    def run_file(self, name: str, dataset, experiment, model, n, seed) -> str:
        return f"{self.results}/runs/{dataset}/{experiment}/{model}/N{n}/seed{seed}/{name}"

    def model_file(self, dataset, experiment, model, n, seed) -> str:
        return f"{self.results}/models/{dataset}/{experiment}/{model}/N{n}/seed{seed}.pt"

    def files(self, name: str, runs) -> list[str]:
        return [self.run_file(name, *r) for r in runs]

    def run_outputs(self) -> list[str]:
        """Every per-run file of every experiment: targets of rule `all`, so that a deleted one
        is rebuilt by a plain re-run (aggregation reads only some of them)."""
        trained = self.e1_runs() + self.e1c_runs() + self.e2_runs() + self.e3_runs() + self.e4_runs()
        out = [self.run_file(n, *r) for r in trained for n in TRAIN_FILES]
        out += self.files("test_metrics.json", self.e1_runs()) + self.files("test_outputs.npz", self.e1_runs())
        out += self.files("training_latents.npz", self.e7_runs()) + self.files("tsne.csv", self.e7_runs())
        return sorted(set(out))

    # ---------------------------------------------------------------- runs

    def n_train(self, dataset: str) -> int:
        s = self.cfg["dataset_settings"][dataset]
        return s["n_pool"] - s["n_val"]

    def size(self, dataset: str, n) -> int:
        """A training-set size of the config (an integer or 'full') as a number of images."""
        return self.n_train(dataset) if n == "full" else n

    def e1_sizes(self, dataset: str, model: str) -> list:
        """E1's sizes of one model, ascending: `train_sizes` up to the model's entry of
        training.max_train_size (all of them without one)."""
        cap = self.cfg["training"].get("max_train_size", {}).get(model)
        sizes = sorted(self.cfg["train_sizes"], key=lambda n: self.size(dataset, n))
        return [n for n in sizes if cap is None or self.size(dataset, n) <= self.size(dataset, cap)]

    def e1_runs(self) -> list[tuple]:
        c = self.cfg
        return [
            (ds, "e1", m, n, s)
            for ds, m in itertools.product(c["datasets"], c["models"])
            for n, s in itertools.product(self.e1_sizes(ds, m), c["seeds"])
        ]

    def e1c_runs(self) -> list[tuple]:
        """Continuations (experiment 'e1c'): the E1 run of training.continuation's seed, for
        each of its models at that model's smallest and largest E1 size (every size for the
        models of `every_size`), trained again without early stopping to `factor` times the
        steps the E1 run made."""
        cont = self.cfg["training"].get("continuation")
        if not cont:
            return []
        runs = []
        for ds, m in itertools.product(self.cfg["datasets"], cont["models"]):
            sizes = self.e1_sizes(ds, m)
            if m not in cont.get("every_size", []):
                sizes = list(dict.fromkeys([sizes[0], sizes[-1]]))
            runs += [(ds, "e1c", m, n, cont["seed"]) for n in sizes]
        return runs

    def e2_runs(self) -> list[tuple]:
        c, lc = self.cfg, self.cfg["learning_curves"]
        runs = [
            (ds, "e2", m, lc["train_size"], s)
            for ds, m, s in itertools.product(c["datasets"], lc["models"], c["seeds"])
        ]
        return runs + [
            (ds, "e2", m, lc["train_size"], c["seeds"][0]) for ds in c["datasets"] for m in lc["extra_models"]
        ]

    def _comparison_runs(self, section: str, experiment: str) -> list[tuple]:
        sc = self.cfg[section]
        return [
            (ds, experiment, m, sc["train_size"], s)
            for ds, m, s in itertools.product(self.cfg["datasets"], sc["models"], sc["seeds"])
        ]

    def e3_runs(self) -> list[tuple]:
        return self._comparison_runs("solver_comparison", "e3")

    def e4_runs(self) -> list[tuple]:
        return self._comparison_runs("adjoint_ablation", "e4")

    def e6_runs(self) -> list[tuple]:
        """The E1 runs of the reconstruction seed at the smallest and the largest N that every
        E1 model runs at."""
        c, seed, runs = self.cfg, self.cfg["reconstructions"]["seed"], []
        for ds in c["datasets"]:
            sizes = [
                n for n in self.e1_sizes(ds, c["models"][0]) if all(n in self.e1_sizes(ds, m) for m in c["models"])
            ]
            for n in dict.fromkeys([sizes[0], sizes[-1]]):
                runs += [(ds, "e1", m, n, seed) for m in c["models"]]
        return runs

    def e7_runs(self) -> list[tuple]:
        lm, lc = self.cfg["latent_maps"], self.cfg["learning_curves"]
        return [(ds, "e2", m, lc["train_size"], lm["seed"]) for ds in self.cfg["datasets"] for m in lc["models"]]

    def e5_own_runs(self, dataset: str) -> list[tuple]:
        """The decoders each flow trained: E3 models and the E2 GFE models, seed of E5."""
        c = self.cfg
        seed = c["encoding_convergence"]["seed"]
        sc, lc = c["solver_comparison"], c["learning_curves"]
        own = [(dataset, "e3", m, sc["train_size"], seed) for m in sc["models"]]
        return own + [
            (dataset, "e2", m, lc["train_size"], seed) for m in lc["models"] if c["model_settings"][m]["kind"] == "gfe"
        ]

    def robustness_runs(self, dataset: str) -> list[tuple]:
        """The runs whose decoders claim 4's sweep encodes: E5's own run of each configured
        decoder, at every seed of the sweep (by decoder, then seed)."""
        rob = self.cfg["encoding_convergence"]["robustness"]
        own = {run[2]: run for run in self.e5_own_runs(dataset)}
        return [(*own[model][:4], seed) for model in rob["decoders"] for seed in rob["seeds"]]

    def robustness_args(self, dataset: str) -> str:
        """Arguments of solver_robustness.py: `--decoder MODEL:EXPERIMENT:SEED=FILE` per
        decoder, the AMD model's evaluation encode options, and the sweep."""
        ec = self.cfg["encoding_convergence"]
        rob = ec["robustness"]
        decoders = " ".join(
            f"--decoder {r[2]}:{r[1]}:{r[4]}={self.model_file(*r)}" for r in self.robustness_runs(dataset)
        )
        amd = _json_arg(self.eval_encode_options(self.e5_amd_model(dataset), dataset))
        return (
            f"{decoders} --amd-encode-options {amd}"
            f" --dt-init {' '.join(str(v) for v in rob['dt_init'])}"
            f" --dt-max {' '.join(str(v) for v in rob['dt_max'])}"
            f" --rk4-steps {' '.join(str(v) for v in rob['rk4_steps'])}"
            f" --n-images {rob['n_images']} --tau {ec['tau']} --z0 {ec['z0']} --seed {ec['seed']}"
        )

    def e5_common_run(self, dataset: str) -> tuple:
        ec, lc = self.cfg["encoding_convergence"], self.cfg["learning_curves"]
        return (dataset, "e2", ec["common_model"], lc["train_size"], ec["seed"])

    def claims_grid(self) -> dict:
        """What the claims are judged against (summarize.py --grid): each E1 model's sizes, the
        configured last steps of E3 and E4, and claim 4's sweep."""
        c, rob = self.cfg, self.cfg["encoding_convergence"]["robustness"]
        return {
            "e1": {"sizes": {m: self.e1_sizes(c["datasets"][0], m) for m in c["models"]}},
            "e3": {"steps": c["solver_comparison"]["steps"]},
            "e4": {"steps": c["adjoint_ablation"]["steps"]},
            "e5": {k: rob[k] for k in ("decoders", "seeds", "dt_init", "dt_max", "rk4_steps")},
        }

    # ---------------------------------------------------------------- job arguments

    def train_args(self, dataset: str, experiment: str, model: str) -> str:
        """The training budget of a run, by experiment (command-line arguments of train.py)."""
        c = self.cfg
        batch = c["dataset_settings"][dataset]["batch_size"]
        if experiment == "e1c":
            t = c["training"]
            return f"--steps-factor {t['continuation']['factor']} --batch-size {batch} --val-every {t['val_every']}"
        if experiment == "e1":
            t = c["training"]
            return (
                f"--steps {t['max_steps'][model]} --batch-size {batch} --val-every {t['val_every']}"
                f" --patience {t['patience']} --min-improvement {t['min_improvement']}"
                f" --plateau-window {t.get('plateau_window', 1)}"
                f" --patience-fraction {t.get('patience_fraction', 0.0)}"
            )
        if experiment == "e2":
            lc = c["learning_curves"]
            val_at = " ".join(str(round(n / batch)) for n in lc["report_images_seen"])
            return f"--steps {lc['steps']} --batch-size {batch} --val-every {lc['val_every']}" + (
                f" --val-at {val_at}" if val_at else ""
            )
        sc = c[{"e3": "solver_comparison", "e4": "adjoint_ablation"}[experiment]]
        args = f"--steps {sc['steps']} --batch-size {sc['batch_size']} --val-every {sc['val_every']}"
        return args + (" --gradient-cosine" if experiment == "e4" else "")

    def train_budget_args(self, dataset: str, experiment: str, model: str, n, seed) -> str:
        """`train_args`, and for a continuation (e1c) the E1 run whose steps it multiplies."""
        args = self.train_args(dataset, experiment, model)
        if experiment == "e1c":
            args += f" --steps-from-run {self.run_file('run.json', dataset, 'e1', model, n, seed)}"
        return args

    def is_autoencoder(self, model: str) -> bool:
        return self.cfg["model_settings"][model]["kind"] == "autoencoder"

    def encode_options(self, model: str, dataset: str) -> dict:
        """A GFE model's training encode options on a dataset (`encode_options`)."""
        return encode_options(self.cfg["model_settings"][model], self.cfg["dataset_settings"][dataset])

    def eval_encode_options(self, model: str, dataset: str) -> dict:
        """A GFE model's validation and test encode options (`evaluation_encode_options`)."""
        return evaluation_encode_options(self.encode_options(model, dataset))

    def latent_dim(self, dataset: str) -> int:
        return self.cfg["dataset_settings"][dataset]["latent_dim"]

    def loss(self, dataset: str) -> str:
        return self.cfg["dataset_settings"][dataset]["loss"]

    def optimizer_json(self, dataset: str) -> str:
        """The dataset's optimiser (fields of gfe.training.OptimizerSettings) as JSON."""
        return json.dumps(self.cfg["dataset_settings"][dataset]["optimizer"], sort_keys=True)

    def encoding_args(self, model: str, dataset: str, *, training: bool, experiment: str | None = None) -> str:
        """How a run encodes images (arguments of train.py and evaluate.py): an autoencoder's
        `--autoencoder --loss L`; a GFE model's `--encode-options` (for evaluation with the
        per-sample AMD rule), and for training also `--eval-encode-options` (those of
        validation: in E3 the evaluation flow of `solver_comparison.heldout_encoder` for every
        model) and `--gradient` (the decoder gradient)."""
        if self.is_autoencoder(model):
            return f"--autoencoder --loss {self.loss(dataset)}"
        if not training:
            return f"--encode-options {_json_arg(self.eval_encode_options(model, dataset))}"
        gradient = self.cfg["model_settings"][model]["gradient"]
        validator = self.cfg["solver_comparison"]["heldout_encoder"] if experiment == "e3" else model
        return (
            f"--encode-options {_json_arg(self.encode_options(model, dataset))}"
            f" --eval-encode-options {_json_arg(self.eval_encode_options(validator, dataset))}"
            f" --gradient {gradient}"
        )

    def e5_inputs(self, dataset: str) -> dict:
        return {
            "prepared": self.prepared.format(dataset=dataset),
            "own": [self.model_file(*r) for r in self.e5_own_runs(dataset)],
            "common": self.model_file(*self.e5_common_run(dataset)),
        }

    def e5_own_args(self, dataset: str) -> str:
        """E5's own-decoder curves: `--own MODEL=MODEL_FILE` per model, and
        `--own-encode-options`, the evaluation encode options of each (AMD with its
        per-sample rule)."""
        runs = self.e5_own_runs(dataset)
        options = {r[2]: self.eval_encode_options(r[2], dataset) for r in runs}
        own = " ".join(f"--own {r[2]}={self.model_file(*r)}" for r in runs)
        return f"{own} --own-encode-options {_json_arg(options)}"

    def e5_amd_model(self, dataset: str) -> str | None:
        """The model whose AMD options E5's common-decoder AMD curve takes: the first by name,
        of E5's own models and its common model, with solver 'amd' (None: no AMD curve)."""
        models = {r[2] for r in self.e5_own_runs(dataset)} | {self.cfg["encoding_convergence"]["common_model"]}
        amd = [m for m in sorted(models) if self.cfg["model_settings"][m].get("solver") == "amd"]
        return amd[0] if amd else None

    def e5_amd_args(self, dataset: str) -> str:
        """`--amd-encode-options` (the evaluation encode options of `e5_amd_model`), or '' if none."""
        model = self.e5_amd_model(dataset)
        return f"--amd-encode-options {_json_arg(self.eval_encode_options(model, dataset))}" if model else ""
