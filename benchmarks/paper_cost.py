"""What `config/paper.yaml` costs, from seconds per step measured by the committed default run.
Not a test.

    python benchmarks/paper_cost.py [--runs results/default/runs] [--config config/paper.yaml]

The paper config's training jobs are listed by the workflow's own plan (src/pipeline/plan.py). Each
job class (experiment, model) gets the seconds per training step of the same class in the
committed default run's per-step logs (`train_log.csv`, column `seconds`: the step alone, not
validation), taken over the last `--tail` (20%) of each run's steps, because a GFE-amd step
costs more as its decoder learns; E1 and its continuations (runs of up to tens of thousands of
steps) take the cost of the model's longest-trained runs, E2's (1,408 steps on the whole
split), where the default has them. Steps per job are the paper config's budget: the fixed
steps of E2-E4, and for E1 the step cap (`max_steps`; a run that plateaus earlier costs less,
so E1's hours are an upper bound); a continuation is `factor` times its E1 run. Validation,
evaluation and the t-SNE jobs are not counted. Datasets with the 28x28 MLPs (MNIST,
Fashion-MNIST) share the measured costs; CIFAR-10's conv networks were not measured and are
listed without hours. One CPU thread per job.

Prints a table per job class (jobs, steps per job, seconds per step, CPU-hours, the largest
single job) and the totals.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))
from pipeline.config import check_config  # noqa: E402  (the workflow's helpers live in src/)
from pipeline.plan import Plan  # noqa: E402

MEASURED_DATASETS = {"mnist", "fashion_mnist"}  # the 28x28 MLPs the default run trained


def measured_seconds(runs: Path, tail: float) -> dict:
    """(experiment, model) -> mean seconds per step over the last `tail` of each run's steps."""
    per_class = defaultdict(list)
    for log in sorted(runs.glob("fashion_mnist/*/*/N*/seed*/train_log.csv")):
        steps = pd.read_csv(log)
        late = steps.tail(max(1, int(len(steps) * tail)))
        per_class[(steps["experiment"].iloc[0], steps["model"].iloc[0])].append(float(late["seconds"].mean()))
    return {key: sum(v) / len(v) for key, v in per_class.items()}


def job_steps(plan: Plan, run: tuple) -> int:
    dataset, experiment, model, n, seed = run
    cfg = plan.cfg
    if experiment == "e1":
        return cfg["training"]["max_steps"][model]
    if experiment == "e1c":
        return cfg["training"]["continuation"]["factor"] * cfg["training"]["max_steps"][model]
    section = {"e2": "learning_curves", "e3": "solver_comparison", "e4": "adjoint_ablation"}[experiment]
    return cfg[section]["steps"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", default=str(REPO / "results/default/runs"))
    p.add_argument("--config", default=str(REPO / "config/paper.yaml"))
    p.add_argument("--tail", type=float, default=0.2)
    a = p.parse_args(argv)
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    cfg.update(yaml.safe_load(Path(a.config).read_text()))
    plan = Plan(check_config(cfg, check_encode_options=False))
    seconds = measured_seconds(Path(a.runs), a.tail)
    runs = plan.e1_runs() + plan.e1c_runs() + plan.e2_runs() + plan.e3_runs() + plan.e4_runs()

    def per_step_of(experiment, model, measured):
        if not measured:
            return None
        if experiment in ("e1", "e1c"):
            return seconds.get(("e2", model), seconds.get(("e1", model)))
        return seconds.get((experiment, model))

    classes = defaultdict(list)
    for run in runs:
        per_step = per_step_of(run[1], run[2], run[0] in MEASURED_DATASETS)
        classes[(run[1], run[2], run[0] in MEASURED_DATASETS)].append(
            job_steps(plan, run) * per_step if per_step else None
        )
    print(f"{'experiment':<11}{'model':<20}{'datasets':<16}{'jobs':>6}{'s/step':>9}{'CPU-h':>9}{'largest job h':>15}")
    total, largest, unmeasured = 0.0, 0.0, 0
    for (experiment, model, measured), costs in sorted(classes.items()):
        per_step = per_step_of(experiment, model, measured)
        where = "MNIST, F-MNIST" if measured else "CIFAR-10"
        if per_step is None:
            unmeasured += len(costs)
            print(f"{experiment:<11}{model:<20}{where:<16}{len(costs):>6}{'-':>9}{'-':>9}{'-':>15}")
            continue
        hours = sum(costs) / 3600
        total, largest = total + hours, max(largest, max(costs) / 3600)
        biggest = max(costs) / 3600
        print(f"{experiment:<11}{model:<20}{where:<16}{len(costs):>6}{per_step:>9.3f}{hours:>9.1f}{biggest:>15.1f}")
    print(
        f"total: {len(runs)} training jobs; {total:.0f} CPU-hours for the {len(runs) - unmeasured} measured ones "
        f"(E1 at its step caps: an upper bound), the largest single job {largest:.1f} h; "
        f"{unmeasured} jobs not measured (CIFAR-10's, and classes the default does not run)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
