"""The reliability catalogue, 1. Config (the rest: tests/test_faults.py): every value that
could make a job fail is rejected before any job starts, by src/pipeline.config.check_config (a
plain function the workflow calls), with one line naming key, value and what is allowed.

Each bad case is the YAML a user would write with --configfile, merged onto
config/config.yaml as Snakemake merges it (mappings merged, lists replaced) and read with
PyYAML as Snakemake reads it. Two cases run snakemake itself (tests/workflow_helpers.py).
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest
import yaml

from workflow_helpers import CONFIGS, REPO, copy_repo, snakemake

sys.path.insert(0, str(REPO / "src"))
import pipeline.config  # noqa: E402  (the workflow's helpers live in src/, outside the package)
from pipeline.config import ConfigError, check_config  # noqa: E402

BASE = yaml.safe_load((REPO / "config/config.yaml").read_text())


def merge(into: dict, new: dict) -> dict:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            merge(into[key], value)
        else:
            into[key] = value
    return into


def config_with(override: str) -> dict:
    """config/config.yaml with the YAML text `override` merged in."""
    return merge(copy.deepcopy(BASE), yaml.safe_load(override))


def rejection(override: str, *, check_encode_options: bool = True) -> str:
    with pytest.raises(ConfigError) as info:
        check_config(config_with(override), check_encode_options=check_encode_options)
    return str(info.value)


@pytest.mark.parametrize("configfile", CONFIGS)
def test_shipped_configs_pass(configfile):
    config = yaml.safe_load((REPO / configfile).read_text())
    assert check_config(config) is config


AMD = "model_settings.gfe_amd"
ALL_MODELS = "'ae', 'gfe_amd', 'gfe_amd_per_sample', 'gfe_rk4', 'gfe_2nd', 'gfe_adjoint', 'gfe_lbfgs'"
OPT = "dataset_settings.fashion_mnist.optimizer"
# case: (override, fragments of the message). The encode-option cases need the library (check_encode_options).
BAD_CONFIGS = {
    # -- names and types
    "unknown key": ("colour: red", ["colour: 'red'", "not a key of the configuration", "'train_sizes'"]),
    "wrong type": ("seeds: zero", ["seeds: 'zero' is not of type 'array'", "allowed: a non-empty list"]),
    "wrong nested type": (
        "training: {val_every: many}",
        ["training.val_every: 'many' is not of type 'integer'", "allowed: an integer >= 1"],
    ),
    "unknown dataset": (
        "datasets: [svhn]",
        ["datasets: 'svhn'", "unknown dataset(s) ['svhn']", "allowed: ['mnist', 'fashion_mnist', 'cifar10']"],
    ),
    "unknown model": (
        "models: [ae, vae]",
        ["models: ['ae', 'vae']", "unknown model(s) ['vae']", f"allowed: [{ALL_MODELS}]"],
    ),
    "unknown E2 model": (
        "learning_curves: {extra_models: [gfe_amd_shared]}",
        ["learning_curves.extra_models: 'gfe_amd_shared'", "unknown model(s)", ALL_MODELS],
    ),
    "unknown solver": (
        "model_settings: {gfe_rk4: {solver: rk5}}",
        ["model_settings.gfe_rk4.solver: 'rk5' is not one of", "'amd', 'rk4', 'euler', 'dopri5'"],
    ),
    "unknown optimiser": (
        "dataset_settings: {fashion_mnist: {optimizer: {name: sgd}}}",
        [f"{OPT}.name: 'sgd' is not one of", "allowed: one of ['rmsprop', 'adam']"],
    ),
    "unsafe name": (
        "name: ../x",
        ["name: '../x' does not match", "letters, digits, '_', '-' and '.'", "not starting with '.'"],
    ),
    "hidden name": ("name: .x", ["name: '.x' does not match", "not starting with '.'"]),
    "reserved name": ("name: benchmarks", ["name: 'benchmarks' is reserved", "results/benchmarks/"]),
    # -- empty lists
    "empty seed list": ("seeds: []", ["seeds: [] is empty", "allowed: a non-empty list"]),
    "empty E2 model list": (
        "learning_curves: {models: []}",
        ["learning_curves.models: [] is empty", f"allowed: a non-empty list, each one of [{ALL_MODELS}]"],
    ),
    "empty E3 model list": (
        "solver_comparison: {models: []}",
        ["solver_comparison.models: [] is empty", "allowed: a non-empty list"],
    ),
    "empty E4 model list": (
        "adjoint_ablation: {models: []}",
        ["adjoint_ablation.models: [] is empty", "allowed: a non-empty list"],
    ),
    # -- training-set and batch sizes
    "N = 0": ("train_sizes: [0, 100]", ["train_sizes[0]: 0 is not valid", "allowed: an integer >= 1 or 'full'"]),
    "N < 0": ("train_sizes: [-5]", ["train_sizes[0]: -5 is not valid", "allowed: an integer >= 1 or 'full'"]),
    "N too large": (
        "train_sizes: [100, 60000]",
        [
            "train_sizes[1]: 60000 is larger than the training split of fashion_mnist (49800 images",
            "allowed: 1..49800 or 'full'",
        ],
    ),
    "E1 batch larger than the smallest N": (
        "train_sizes: [3, 100]",
        [
            "dataset_settings.fashion_mnist.batch_size: 5 is larger than the "
            "smallest of train_sizes (E1), N=3 on fashion_mnist",
            "allowed: 1..3",
        ],
    ),
    "E1 size cap of a model outside models": (
        "training: {max_train_size: {gfe_rk4: 300}}",
        ["training.max_train_size.gfe_rk4: 300 names a model that is not one of models (E1)"],
    ),
    "E1 size cap below the smallest N": (
        "training: {max_train_size: {gfe_amd: 50}}",
        [
            "training.max_train_size.gfe_amd: 50 is below the smallest of train_sizes (100 on fashion_mnist)",
            "allowed: a size >= 100 or 'full'",
        ],
    ),
    "E1 size cap of 0": (
        "training: {max_train_size: {gfe_amd: 0}}",
        ["training.max_train_size.gfe_amd: 0 is not valid"],
    ),
    "plateau window 0": ("training: {plateau_window: 0}", ["training.plateau_window: 0 is less than the minimum of 1"]),
    "patience fraction 1": (
        "training: {patience_fraction: 1.0}",
        [
            "training.patience_fraction: 1.0 is greater than or equal to the maximum of 1",
            "allowed: a finite number in [0, 1)",
        ],
    ),
    "continuation of a model outside models": (
        "training: {continuation: {models: [gfe_rk4], seed: 0, factor: 3}}",
        ["training.continuation.models: ['gfe_rk4'] names 'gfe_rk4', which is not one of models (E1)"],
    ),
    "continuation seed outside seeds": (
        "training: {continuation: {models: [ae], seed: 5, factor: 3}}",
        ["training.continuation.seed: 5 is not one of seeds (it picks E1 runs)", "allowed: [0, 1, 2]"],
    ),
    "continuation factor 1": (
        "training: {continuation: {models: [ae], seed: 0, factor: 1}}",
        ["training.continuation.factor: 1 is less than the minimum of 2", "allowed: an integer >= 2"],
    ),
    "E2 batch larger than N": (
        "learning_curves: {train_size: 4}",
        [
            "dataset_settings.fashion_mnist.batch_size: 5 is larger than "
            "learning_curves.train_size (E2), N=4 on fashion_mnist",
            "allowed: 1..4",
        ],
    ),
    "E3 batch larger than N": (
        "solver_comparison: {train_size: 10}",
        [
            "solver_comparison.batch_size: 20 is larger than solver_comparison.train_size, N=10 on fashion_mnist",
            "allowed: 1..10",
        ],
    ),
    "E4 batch larger than N = full": (
        "adjoint_ablation: {train_size: full, batch_size: 50000}",
        [
            "adjoint_ablation.batch_size: 50000 is larger than "
            "adjoint_ablation.train_size, N='full' = 49800 images on fashion_mnist",
            "allowed: 1..49800",
        ],
    ),
    # -- finite numbers, ranges
    "NaN tau (E5)": (
        "encoding_convergence: {tau: .nan}",
        ["encoding_convergence.tau: nan is not a finite number", "allowed: a finite number"],
    ),
    "inf perplexity (E7)": (
        "latent_maps: {perplexity: .inf}",
        ["latent_maps.perplexity: inf is not a finite number", "allowed: a finite number"],
    ),
    "NaN solver option": (
        "model_settings: {gfe_amd: {solver_options: {sigma: .nan}}}",
        [f"{AMD}.solver_options.sigma: nan is not a finite number"],
    ),
    "tau = 0": (
        "model_settings: {gfe_amd: {tau: 0}}",
        [f"{AMD}.tau: 0 is less than or equal to the minimum of 0", "allowed: a finite number > 0"],
    ),
    "tau < 0 (E5)": (
        "encoding_convergence: {tau: -1.0}",
        ["encoding_convergence.tau: -1.0 is less than or equal to the minimum of 0", "allowed: a finite number > 0"],
    ),
    "fractional integer": (
        "training: {val_every: 2.5e0}",
        ["training.val_every: 2.5 is not of type 'integer'", "allowed: an integer >= 1"],
    ),
    "RMSprop alpha = 5": (
        "dataset_settings: {fashion_mnist: {optimizer: {alpha: 5}}}",
        [f"{OPT}.alpha: 5 is greater than or equal to the maximum of 1", "allowed: a finite number in [0, 1)"],
    ),
    "RMSprop alpha < 0": (
        "dataset_settings: {fashion_mnist: {optimizer: {alpha: -1}}}",
        [f"{OPT}.alpha: -1 is less than the minimum of 0", "allowed: a finite number in [0, 1)"],
    ),
    "RMSprop eps = 0": (
        "dataset_settings: {fashion_mnist: {optimizer: {eps: 0}}}",
        [f"{OPT}.eps: 0 is less than or equal to the minimum of 0", "allowed: a finite number > 0"],
    ),
    "lr = 0": (
        "dataset_settings: {fashion_mnist: {optimizer: {lr: 0}}}",
        [f"{OPT}.lr: 0 is less than or equal to the minimum of 0", "allowed: a finite number > 0"],
    ),
    # -- settings that must agree with each other
    "E1 model without a step cap": (
        "models: [ae, gfe_amd, gfe_rk4]",
        [
            f"training.max_steps: {BASE['training']['max_steps']!r}",
            "no step cap for E1 model(s) ['gfe_rk4']",
            "allowed: a step cap for every model of models: ['ae', 'gfe_amd', 'gfe_rk4']",
        ],
    ),
    "E5 common decoder not an E2 model": (
        "encoding_convergence: {common_model: gfe_rk4}",
        [
            "encoding_convergence.common_model: 'gfe_rk4' is not one of learning_curves.models ['ae', 'gfe_amd']",
            "allowed: a GFE model of learning_curves.models: ['gfe_amd']",
        ],
    ),
    "E5 common decoder an autoencoder": (
        "encoding_convergence: {common_model: ae}",
        [
            "encoding_convergence.common_model: 'ae' is not a GFE model",
            "allowed: a GFE model of learning_curves.models: ['gfe_amd']",
        ],
    ),
    "E3 model E5 cannot encode": (
        "solver_comparison: {models: [ae, gfe_rk4]}",
        ["solver_comparison.models: 'ae' is an autoencoder", "allowed: GFE models with solver ['rk4', 'amd']"],
    ),
    "E3 held-out encoder an autoencoder": (
        "solver_comparison: {heldout_encoder: ae}",
        ["solver_comparison.heldout_encoder: 'ae' is an autoencoder", "allowed: a GFE model, e.g. gfe_amd"],
    ),
    "robustness decoder without an own run": (
        "encoding_convergence: {robustness: {decoders: [gfe_adjoint]}}",
        [
            "encoding_convergence.robustness.decoders: 'gfe_adjoint' is not one of E5's own models",
            "allowed: models of ['gfe_2nd', 'gfe_amd', 'gfe_rk4']",
        ],
    ),
    "robustness seed its decoders were not trained with": (
        "encoding_convergence: {robustness: {seeds: [0, 5]}}",
        [
            "encoding_convergence.robustness.seeds: 5 is not a seed of seeds, which trains the gfe_amd decoders",
            "allowed: [0, 1, 2]",
        ],
    ),
    "robustness with no dt_max >= dt_init": (
        "encoding_convergence: {robustness: {dt_init: [5.0], dt_max: [1.0]}}",
        ["encoding_convergence.robustness.dt_max: [1.0] has no value >= any dt_init [5.0]"],
    ),
    "robustness images beyond the test subset": (
        "encoding_convergence: {robustness: {n_images: 5000}}",
        ["encoding_convergence.robustness.n_images: 5000 is larger than evaluation.test_size", "allowed: 2..2000"],
    ),
    "gfe_amd without the authors' shared rule": (
        "model_settings: {gfe_amd: {solver_options: {shared: false}}}",
        ["model_settings.gfe_amd: {'shared': False} is not the model claims 1a-1c are about"],
    ),
    "claim 2's pair with two approximate gradients": (
        "model_settings: {gfe_adjoint: {gradient: approximate}}",
        [
            "model_settings.gfe_rk4/gfe_adjoint.gradient: ('approximate', 'approximate') is not the pair "
            "claim 2 compares; allowed: ('approximate', 'adjoint')"
        ],
    ),
    "claim 3's pair with two first-order flows": (
        "model_settings: {gfe_2nd: {order: 1}}",
        ["model_settings.gfe_rk4/gfe_2nd.order: (1, 1) is not the pair claim 3 compares; allowed: (1, 2)"],
    ),
    "claim 3's pair differing beyond the order": (
        "model_settings: {gfe_2nd: {tau: 1000.0}}",
        ["model_settings.gfe_rk4/gfe_2nd: {'tau': (15000.0, 1000.0)} differ beyond order"],
    ),
    "E7 seed not among seeds": (
        "latent_maps: {seed: 7}",
        ["latent_maps.seed: 7 is not one of seeds", "allowed: [0, 1, 2]"],
    ),
    "perplexity >= n_images (E7)": (
        "latent_maps: {perplexity: 1000}",
        [
            "latent_maps.perplexity: 1000 is not smaller than latent_maps.n_images (1000)",
            "allowed: a finite number in (0, 1000)",
        ],
    ),
    "E7 images beyond the E2 training set": (
        "learning_curves: {train_size: 500}",
        [
            "latent_maps.n_images: 1000 is larger than the E2 training set "
            "(learning_curves.train_size: N=500 on fashion_mnist)",
            "allowed: 5..500",
        ],
    ),
    # -- solver options, checked by the library (gfe.check_gradient_options)
    "dt_max < dt_init": (
        "model_settings: {gfe_amd: {solver_options: {dt_init: 2.0, dt_max: 0.5}}}",
        [AMD, "dt_max=0.5", "dt_init (2.0)"],
    ),
    "shrink = 1": ("model_settings: {gfe_amd: {solver_options: {shrink: 1.0}}}", [AMD, "shrink=1.0", "(0, 1)"]),
    "shrink = 0 (dataset override)": (
        "dataset_settings: {fashion_mnist: {amd_options: {shrink: 0.0}}}",
        [AMD, "dataset_settings.fashion_mnist.amd_options", "shrink=0.0", "(0, 1)"],
    ),
    "unknown solver option": (
        "model_settings: {gfe_amd: {solver_options: {dt_maxx: 3.0}}}",
        [AMD, "solver='amd' got an option it does not take", "dt_maxx"],
    ),
    "rk4 steps = 0": (  # in all three rk4 models: claims 2 and 3 compare pairs that differ in one setting only
        "model_settings: {gfe_rk4: {solver_options: {steps: 0}}, gfe_2nd: {solver_options: {steps: 0}}, "
        "gfe_adjoint: {solver_options: {steps: 0}}}",
        ["model_settings.gfe_", "steps=0", "an integer >= 1"],
    ),
    # -- late failures stopped before any job (they failed at job time, or not at all)
    "lbfgs with order 2": (
        "model_settings: {gfe_lbfgs: {order: 2}}",
        ["model_settings.gfe_lbfgs:", "solver='lbfgs' descends the first-order flow's loss only", "order=1"],
    ),
    "reconstructions of a seed that was not run": (
        "reconstructions: {seed: 7}",
        ["reconstructions.seed: 7 is not one of seeds (it picks E1 runs)", "allowed: [0, 1, 2]"],
    ),
    "mse on a decoder of logits": (
        "dataset_settings: {fashion_mnist: {loss: mse}}",
        ["dataset_settings.fashion_mnist.loss: 'mse' does not read what the fashion_mnist decoder outputs (logits)"],
    ),
    "Adam given RMSprop's alpha": (
        "dataset_settings: {fashion_mnist: {optimizer: {name: adam, lr: 0.001, alpha: 0.5}}}",
        [f"{OPT}.alpha: 0.5 is RMSprop's smoothing constant, which Adam does not take"],
    ),
}
ENCODE_OPTION_CASES = {
    "lbfgs with order 2",
    "dt_max < dt_init",
    "shrink = 1",
    "shrink = 0 (dataset override)",
    "unknown solver option",
    "rk4 steps = 0",
}


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_bad_config_is_rejected_naming_key_value_and_allowed(case):
    override, expected = BAD_CONFIGS[case]
    message = rejection(override)
    assert message.startswith("Invalid configuration: ") and "\n" not in message, message
    for fragment in expected:
        assert fragment in message, f"{fragment!r} not in the message:\n{message}"


# check_config in a fresh interpreter (this one has imported the library already): the config
# as YAML on stdin; prints which of the library and torch it has imported by then.
SKIP_PROBE = """
import json, sys
import yaml
sys.path.insert(0, sys.argv[1])
from pipeline.config import check_config
check_config(yaml.safe_load(sys.stdin), check_encode_options=False)
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules} & {"gfe", "torch"})))
"""
# Checks before and after the library's in check_config: each still rejects its value.
OTHER_CHECKS = ["empty seed list", "gfe_amd without the authors' shared rule"]


@pytest.mark.parametrize("case", sorted(ENCODE_OPTION_CASES))
def test_encode_option_checks_can_be_skipped(case):
    """check_encode_options=False: no library import (cluster jobs); the other checks still run."""
    config = config_with(BAD_CONFIGS[case][0])
    probe = subprocess.run(
        [sys.executable, "-c", SKIP_PROBE, str(REPO / "src")],
        input=yaml.safe_dump(config),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert probe.returncode == 0, probe.stderr[-3000:]
    assert json.loads(probe.stdout) == [], f"imported by check_config: {probe.stdout}"
    for other in OTHER_CHECKS:
        override, expected = BAD_CONFIGS[other]
        with pytest.raises(ConfigError) as info:
            check_config(merge(copy.deepcopy(config), yaml.safe_load(override)), check_encode_options=False)
        for fragment in expected:
            assert fragment in str(info.value), f"{other}: {fragment!r} not in the message:\n{info.value}"


# YAML 1.1 (PyYAML, as Snakemake reads configs) leaves these strings: check_config reads them as
# numbers where a number is expected and in the free-form option mappings.
EXPONENTS = {
    "1e-5": [
        "dataset_settings.fashion_mnist.optimizer.lr",
        "dataset_settings.fashion_mnist.optimizer.eps",
        "dataset_settings.fashion_mnist.amd_options.conv_tol",
        "model_settings.gfe_amd.solver_options.sigma",
    ],
    "1.5e4": [
        "encoding_convergence.tau",
        "model_settings.gfe_rk4.tau",
        "training.max_steps.ae",
        "learning_curves.steps",
    ],
}


def _override(path: str, text: str) -> str:
    *parents, leaf = path.split(".")
    return "".join(f"{{{p}: " for p in parents) + f"{{{leaf}: {text}}}" + "}" * len(parents)


def _get(config: dict, path: str):
    for part in path.split("."):
        config = config[part]
    return config


@pytest.mark.parametrize("text", list(EXPONENTS))
def test_exponent_notation_is_read_as_a_number(text):
    assert isinstance(yaml.safe_load(f"x: {text}")["x"], str)  # what PyYAML gives
    config = copy.deepcopy(BASE)
    for path in EXPONENTS[text]:
        merge(config, yaml.safe_load(_override(path, text)))
    assert _get(config, EXPONENTS[text][0]) == text
    check_config(config)
    for path in EXPONENTS[text]:
        value = _get(config, path)
        assert value == float(text), (path, value)
        integer = path in ("training.max_steps.ae", "learning_curves.steps")
        assert type(value) is (int if integer else float), (path, value)  # 15000 steps, not 15000.0


def test_exponent_notation_in_a_list_and_strings_elsewhere_are_kept():
    config = config_with("{encoding_convergence: {tau_sweep: [1e2, 1.5e4]}, name: 1e5, train_sizes: [1e2, full]}")
    check_config(config, check_encode_options=False)
    assert config["encoding_convergence"]["tau_sweep"] == [100.0, 15000.0]
    assert config["train_sizes"] == [100, "full"] and type(config["train_sizes"][0]) is int
    assert config["name"] == "1e5"  # a string where the schema expects one


def test_nested_command_line_values_are_read_as_numbers_and_booleans():
    """Snakemake passes the values of `--config training={max_steps: {ae: 5}}` as strings."""
    config = config_with(
        "{training: {max_steps: {ae: '5'}, min_improvement: '0.01'}, name: '12',"
        " model_settings: {gfe_amd: {tau: '100', solver_options: {dt_max: '20', max_halvings: '9', shared: 'true'}}}}"
    )
    check_config(config)
    assert config["training"]["max_steps"]["ae"] == 5 and type(config["training"]["max_steps"]["ae"]) is int
    assert config["training"]["min_improvement"] == 0.01 and config["model_settings"]["gfe_amd"]["tau"] == 100.0
    options = config["model_settings"]["gfe_amd"]["solver_options"]
    assert options["dt_max"] == 20 and options["max_halvings"] == 9 and options["shared"] is True
    assert config["name"] == "12"  # a string where the schema expects one


def test_exponent_notation_out_of_range_is_rejected_as_the_number():
    message = rejection("dataset_settings: {fashion_mnist: {optimizer: {alpha: 1.5e4}}}")
    assert f"{OPT}.alpha: 15000.0 is greater than or equal to the maximum of 1" in message


def test_safe_names_pass():
    for name in ("paper", "paper-v1.2", "my_run.2"):
        check_config(config_with(f"name: {name}"), check_encode_options=False)


def test_schema_defaults_are_filled_in(monkeypatch):
    schema = pipeline.config.load_schema()
    schema["properties"]["data"]["properties"]["search_system"]["default"] = True
    monkeypatch.setattr(pipeline.config, "load_schema", lambda: schema)
    config = copy.deepcopy(BASE)
    assert "search_system" not in config["data"]
    check_config(config, check_encode_options=False)
    assert config["data"]["search_system"] is True


# ---------------------------------------------------------------- through snakemake


@pytest.fixture(scope="module")
def repo_copy(tmp_path_factory):
    return copy_repo(tmp_path_factory.mktemp("faults_config"))


END_TO_END = {
    "empty E2 model list (schema)": (
        "learning_curves: {models: []}",
        ["Invalid configuration: learning_curves.models: [] is empty", "allowed: a non-empty list"],
    ),
    "GPU where none exists": (
        "{name: gpu, device: cuda}",
        ["Invalid configuration: device: 'cuda'", "no CUDA GPU is visible", "'cpu'", "'auto'"],
    ),
    "the default's name with other settings": (
        "training: {val_every: 3}",
        [
            "Invalid configuration: name: 'default' is the name of config/config.yaml",
            "training.val_every: 3 (not 50)",
            "--config name=mine",
        ],
    ),
}


@pytest.mark.parametrize("case", list(END_TO_END))
def test_snakemake_stops_before_any_job(repo_copy, tmp_path, monkeypatch, case):
    override, expected = END_TO_END[case]
    bad = tmp_path / "bad.yaml"
    bad.write_text(override + "\n")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # "no GPU" also on a machine that has one
    result = snakemake(repo_copy, "--cores", "1", "--configfile", str(bad))
    message = result.stdout + result.stderr
    assert result.returncode != 0, message[-2000:]
    for fragment in expected:
        assert fragment in message, f"{fragment!r} not in the message:\n{message[-3000:]}"
    for made_by_a_job in ("results", "data", "logs", "figures"):
        assert not (repo_copy / made_by_a_job).exists(), made_by_a_job


def test_the_decoder_outputs_the_config_assumes_are_the_librarys():
    from gfe.models import build_decoder
    from pipeline.config import DECODER_OUTPUT

    shapes = {"mnist": (1, 28, 28), "fashion_mnist": (1, 28, 28), "cifar10": (3, 32, 32)}
    assert {ds: build_decoder(shape, 4).output for ds, shape in shapes.items()} == DECODER_OUTPUT
