"""The workflow's plan (src/pipeline/plan.py): runs, budgets and file names as plain functions of a
config, tested without Snakemake."""

import json
import shlex
import sys

import pytest
import yaml

from workflow_helpers import REPO

sys.path.insert(0, str(REPO / "src"))
from pipeline.config import check_config  # noqa: E402  (the workflow's helpers live in src/)
from pipeline.plan import Plan, encode_options  # noqa: E402


def _plan(name: str) -> Plan:
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    if name != "config":
        cfg.update(yaml.safe_load((REPO / f"config/{name}.yaml").read_text()))
    return Plan(check_config(cfg, check_encode_options=False))


def test_the_default_plan_runs_every_model_n_and_seed():
    plan = _plan("config")
    cfg = plan.cfg
    sizes = {m: plan.e1_sizes("fashion_mnist", m) for m in cfg["models"]}
    assert len(plan.e1_runs()) == sum(len(s) for s in sizes.values()) * len(cfg["seeds"])
    # the AE at every size up to 10,000; gfe_lbfgs and gfe_amd at every size up to their caps
    assert sizes["ae"] == sorted(cfg["train_sizes"]) and max(sizes["ae"]) >= 10000
    assert len(sizes["gfe_lbfgs"]) >= 4 and max(sizes["gfe_lbfgs"]) >= 3000
    assert len(sizes["gfe_amd"]) >= 3 and max(sizes["gfe_amd"]) >= 1000
    lc = cfg["learning_curves"]
    assert len(plan.e2_runs()) == len(lc["models"]) * len(cfg["seeds"]) + len(lc["extra_models"])
    assert {r[2] for r in plan.e2_runs() if r[4] != cfg["seeds"][0]} == set(lc["models"])
    assert {r[1] for r in plan.e3_runs()} == {"e3"} and {r[1] for r in plan.e4_runs()} == {"e4"}


@pytest.mark.parametrize("name", ["config", "quick", "paper"])
def test_every_file_of_a_config_lives_under_its_name(name):
    plan = _plan(name)
    prefix = f"results/{plan.name}/"
    outputs = plan.run_outputs()
    assert outputs and all(f.startswith(prefix + "runs/") for f in outputs)
    assert all(t.startswith(prefix) for t in plan.tables)
    assert all(f.startswith(f"figures/{plan.name}/") for f in plan.figure_files)
    assert plan.prepared.startswith(f"data/prepared/{plan.name}/")
    # every trained run's three files and every E1 run's evaluation are targets
    run = plan.e1_runs()[0]
    for file in ("train_log.csv", "validation.csv", "run.json", "test_metrics.json", "test_outputs.npz"):
        assert plan.run_file(file, *run) in outputs


def test_budgets_by_experiment():
    plan = _plan("config")
    cfg = plan.cfg
    e1 = plan.train_args("fashion_mnist", "e1", "gfe_amd")
    assert f"--steps {cfg['training']['max_steps']['gfe_amd']}" in e1 and "--patience" in e1
    e2 = plan.train_args("fashion_mnist", "e2", "ae")
    batch = cfg["dataset_settings"]["fashion_mnist"]["batch_size"]
    points = " ".join(str(round(n / batch)) for n in cfg["learning_curves"]["report_images_seen"])
    assert e2.endswith(f"--val-at {points}") and "--patience" not in e2
    assert plan.train_args("fashion_mnist", "e4", "gfe_adjoint").endswith("--gradient-cosine")


def test_e6_takes_the_smallest_and_largest_n_and_e5_the_decoders_each_flow_trained():
    plan = _plan("config")
    sizes = {r[3] for r in plan.e6_runs()}
    # the largest N that every E1 model runs at: gfe_amd's cap
    common = [
        n for n in plan.cfg["train_sizes"] if all(n in plan.e1_sizes("fashion_mnist", m) for m in plan.cfg["models"])
    ]
    assert sizes == {min(common), max(common)} and max(common) < max(plan.cfg["train_sizes"])
    own = plan.e5_own_runs("fashion_mnist")
    assert {r[2] for r in own} >= set(plan.cfg["solver_comparison"]["models"])
    assert all(plan.cfg["model_settings"][r[2]]["kind"] == "gfe" for r in own)


def _options(args: str) -> dict:
    """`--name value` pairs of a resolved argument string (flags map to True)."""
    words, out = shlex.split(args), {}
    for i, word in enumerate(words):
        if word.startswith("--"):
            value = words[i + 1] if i + 1 < len(words) and not words[i + 1].startswith("--") else True
            out[word] = json.loads(value) if isinstance(value, str) and value.startswith("{") else value
    return out


def test_jobs_get_resolved_encode_options_not_config_sections():
    plan = _plan("quick")
    cfg, ds = plan.cfg, "fashion_mnist"
    settings = cfg["dataset_settings"][ds]
    assert _options(plan.encoding_args("ae", ds, training=True)) == {"--autoencoder": True, "--loss": settings["loss"]}
    train = _options(plan.encoding_args("gfe_amd", ds, training=True))
    options = encode_options(cfg["model_settings"]["gfe_amd"], settings)
    assert train["--encode-options"] == options and options["shared"] is True
    assert options["max_halvings"] == settings["amd_options"]["max_halvings"]  # the dataset's AMD options merged in
    # validation and test: AMD with its per-sample rule
    assert train["--eval-encode-options"] == {k: v for k, v in options.items() if k != "shared"}
    assert train["--gradient"] == cfg["model_settings"]["gfe_amd"]["gradient"]
    assert _options(plan.encoding_args("gfe_amd", ds, training=False)) == {
        "--encode-options": train["--eval-encode-options"]
    }
    assert json.loads(plan.optimizer_json(ds)) == settings["optimizer"]
    own = _options(plan.e5_own_args(ds))
    assert set(own["--own-encode-options"]) == {r[2] for r in plan.e5_own_runs(ds)}
    assert own["--own-encode-options"]["gfe_rk4"] == encode_options(cfg["model_settings"]["gfe_rk4"], settings)
    assert plan.e5_amd_model(ds) == "gfe_amd"
    assert _options(plan.e5_amd_args(ds))["--amd-encode-options"] == train["--eval-encode-options"]


def test_a_size_cap_limits_one_models_e1_sizes_and_e6_takes_sizes_every_model_has():
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    cfg["train_sizes"] = [1000, 100, 300]
    cfg["training"]["max_train_size"] = {"gfe_amd": 300}
    plan = Plan(check_config(cfg, check_encode_options=False))
    assert plan.e1_sizes("fashion_mnist", "gfe_amd") == [100, 300]
    assert plan.e1_sizes("fashion_mnist", "ae") == [100, 300, 1000]
    sizes = {(r[2], r[3]) for r in plan.e1_runs()}
    assert ("gfe_amd", 1000) not in sizes and ("ae", 1000) in sizes and ("gfe_lbfgs", 1000) in sizes
    assert len(plan.e1_runs()) == (3 + 2 + 3) * len(cfg["seeds"])
    assert {r[3] for r in plan.e6_runs()} == {100, 300}


def test_continuations_train_the_smallest_and_largest_run_of_each_model_again():
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    cfg["train_sizes"] = [100, 300, 1000]
    cfg["training"]["max_train_size"] = {"gfe_amd": 300}
    cfg["training"]["continuation"] = {"models": ["ae", "gfe_amd"], "seed": 1, "factor": 3}
    plan = Plan(check_config(cfg, check_encode_options=False))
    assert plan.e1c_runs() == [
        ("fashion_mnist", "e1c", "ae", 100, 1),
        ("fashion_mnist", "e1c", "ae", 1000, 1),
        ("fashion_mnist", "e1c", "gfe_amd", 100, 1),
        ("fashion_mnist", "e1c", "gfe_amd", 300, 1),
    ]
    args = plan.train_args("fashion_mnist", "e1c", "gfe_amd")
    assert "--steps-factor 3" in args and "--patience" not in args and "--steps " not in args
    assert plan.run_file("validation.csv", *plan.e1c_runs()[0]) in plan.run_outputs()
    budget = plan.train_budget_args("fashion_mnist", "e1c", "gfe_amd", 100, 1)
    assert budget.startswith(args) and budget.endswith("/runs/fashion_mnist/e1/gfe_amd/N100/seed1/run.json")
    # the default checks the AE's stop at every size and gfe_lbfgs's at its smallest and largest
    default = _plan("config")
    assert default.e1c_runs() == [("fashion_mnist", "e1c", "ae", n, 0) for n in [100, 300, 1000, 3000, 10000]] + [
        ("fashion_mnist", "e1c", "gfe_lbfgs", n, 0) for n in [100, 3000]
    ]


def test_continuations_of_every_size_models_cover_all_their_sizes():
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    cfg["train_sizes"] = [100, 300, 1000]
    cfg["training"]["max_train_size"] = {"gfe_amd": 300}
    cfg["training"]["continuation"] = {"models": ["ae", "gfe_amd"], "seed": 1, "factor": 2, "every_size": ["gfe_amd"]}
    plan = Plan(check_config(cfg, check_encode_options=False))
    assert plan.e1c_runs() == [
        ("fashion_mnist", "e1c", "ae", 100, 1),
        ("fashion_mnist", "e1c", "ae", 1000, 1),
        ("fashion_mnist", "e1c", "gfe_amd", 100, 1),
        ("fashion_mnist", "e1c", "gfe_amd", 300, 1),
    ]
    cfg["training"]["continuation"]["every_size"] = ["ae"]
    assert [r[3] for r in Plan(check_config(cfg, check_encode_options=False)).e1c_runs()] == [100, 300, 1000, 100, 300]


def test_every_size_must_name_continued_models():
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    cfg["training"]["continuation"] = {"models": ["ae"], "seed": 0, "factor": 2, "every_size": ["gfe_lbfgs"]}
    with pytest.raises(Exception, match=r"training.continuation.every_size: \['gfe_lbfgs'\] names 'gfe_lbfgs'"):
        check_config(cfg, check_encode_options=False)
