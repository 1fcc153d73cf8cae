# Stage 4: aggregation of the per-run files into one tidy table per experiment and the
# parameter counts; then results/summary.md, the papers' claims judged from those tables.


# The per-run files the tables are made from (aggregate.py also reads the run.json beside
# each file of a run's folder).
AGGREGATE_INPUTS = dict(
    e1_runs=plan.files("run.json", plan.e1_runs()),
    e1_metrics=plan.files("test_metrics.json", plan.e1_runs()),
    e1c=plan.files("validation.csv", plan.e1c_runs()),
    e1c_plateau_runs=plan.files(
        "run.json", [(d, "e1", m, n, s) for d, _, m, n, s in plan.e1c_runs()]
    ),
    e2=plan.files("validation.csv", plan.e2_runs()),
    e3_train=plan.files("train_log.csv", plan.e3_runs()),
    e3_heldout=plan.files("validation.csv", plan.e3_runs()),
    e4_train=plan.files("train_log.csv", plan.e4_runs()),
    e4_heldout=plan.files("validation.csv", plan.e4_runs()),
    e5=expand(
        f"{RESULTS}/runs/{{dataset}}/encoding_convergence.csv",
        dataset=config["datasets"],
    ),
    e5_robustness=expand(
        f"{RESULTS}/runs/{{dataset}}/solver_robustness.csv",
        dataset=config["datasets"],
    ),
    e5_runs=[
        plan.run_file("run.json", *plan.e5_common_run(ds)) for ds in config["datasets"]
    ],
    e6=plan.files("test_outputs.npz", plan.e6_runs()),
    e7=plan.files("tsne.csv", plan.e7_runs()),
)
# ... and with them, every run.json aggregate.py reads (src/pipeline/identity.py, files_checked)
CHECKED_RUN_FILES = [
    str(f)
    for f in pipeline.identity.files_checked(
        [f for files in AGGREGATE_INPUTS.values() for f in files]
    )
]
CHECKED_RUNS = f"{RESULTS}/identity/checked_runs.json"


# Every per-run file the tables are made from is checked before the job that rewrites the
# tables starts: it parses, a training log holds its run's steps, and it is what its job
# wrote (the SHA-256 in its record). A refused file stops the run here, naming the file and
# the command that re-runs its job; the committed tables stay as they are. The check file
# lists the hashes checked: the check runs again whenever a file differs from them.
rule check_runs:
    input:
        runs=CHECKED_RUN_FILES,
        identity=identity(
            "check_runs",
            "scripts/identity.py",
            CHECKED_RUNS,
            checked=lambda w: CHECKED_RUN_FILES,
            config_name=plan.name,
        ),
    output:
        identity=CHECKED_RUNS,
    log:
        f"{LOGS}/check_runs.log",
    conda:
        "../../environment.yml"
    params:
        identity=recorded_identity,
        config_name=plan.name,
    shell:
        "python src/scripts/identity.py check --identity {params.identity:q}"
        " --config-name {params.config_name} --output {output.identity} {input.runs} 2> {log}"


rule aggregate:
    input:
        **AGGREGATE_INPUTS,
        checked=CHECKED_RUNS,
        identity=identity(
            "aggregate",
            "scripts/aggregate.py",
            f"{RESULTS}/identity/aggregate.json",
            config_name=plan.name,
            report_images_seen=config["learning_curves"]["report_images_seen"],
        ),
    output:
        tables=[
            report(
                f"{RESULTS}/{name}.csv",
                category="Downloads",
                labels={"file": f"{name}.csv"},
            )
            for name in pipeline.plan.AGGREGATED_TABLES
        ],
        identity=f"{RESULTS}/identity/aggregate.json",
    log:
        f"{LOGS}/aggregate.log",
    conda:
        "../../environment.yml"
    params:
        identity=recorded_identity,
        config_name=plan.name,
        config_hash=CONFIG_HASH,
        report_images_seen=" ".join(
            str(n) for n in config["learning_curves"]["report_images_seen"]
        ),
    shell:
        recorded(
            "python src/scripts/aggregate.py --config-name {params.config_name}"
            " --config-hash {params.config_hash} --e1-runs {input.e1_runs}"
            " --e1-metrics {input.e1_metrics} --e1c {input.e1c} --e1c-plateau-runs {input.e1c_plateau_runs}"
            " --e2 {input.e2} --e3-train {input.e3_train}"
            " --e3-heldout {input.e3_heldout} --e4-train {input.e4_train} --e4-heldout {input.e4_heldout}"
            " --e5 {input.e5} --e5-runs {input.e5_runs} --e5-robustness {input.e5_robustness} --e6 {input.e6} --e7 {input.e7}"
            " --report-images-seen {params.report_images_seen} --tables {output.tables} 2> {log}"
        )


rule data_floors:
    input:
        prepared=expand(PREPARED, dataset=config["datasets"]),
        identity=identity(
            "data_floors",
            "scripts/data_floors.py",
            f"{RESULTS}/identity/data_floors.json",
            losses={ds: plan.loss(ds) for ds in config["datasets"]},
        ),
    output:
        table=report(
            f"{RESULTS}/data_floors.csv",
            category="Downloads",
            labels={"file": "data_floors.csv"},
        ),
        identity=f"{RESULTS}/identity/data_floors.json",
    log:
        f"{LOGS}/data_floors.log",
    conda:
        "../../environment.yml"
    params:
        identity=recorded_identity,
        prepared=" ".join(
            f"{ds}={plan.loss(ds)}={PREPARED.format(dataset=ds)}"
            for ds in config["datasets"]
        ),
    shell:
        recorded(
            "python src/scripts/data_floors.py --prepared {params.prepared} --output {output.table} 2> {log}"
        )


SUMMARY_SETTINGS = dict(
    config_name=plan.name,
    heldout=json.dumps(
        plan.eval_encode_options(
            config["solver_comparison"]["heldout_encoder"], config["datasets"][0]
        ),
        sort_keys=True,
    ),
    seeds=" ".join(
        f"--{flag}-seeds " + " ".join(map(str, seeds))
        for flag, seeds in (
            ("e1", config["seeds"]),
            ("e3", config["solver_comparison"]["seeds"]),
            ("e4", config["adjoint_ablation"]["seeds"]),
        )
    ),
    grid=json.dumps(plan.claims_grid(), sort_keys=True),
)


rule summarize:
    input:
        tables=plan.tables,
        identity=identity(
            "summarize",
            "scripts/summarize.py",
            f"{RESULTS}/identity/summarize.json",
            **SUMMARY_SETTINGS,
        ),
    output:
        summary=report(
            f"{RESULTS}/summary.md",
            category="Downloads",
            labels={"file": "summary.md"},
        ),
        claims=f"{RESULTS}/claims.csv",
        identity=f"{RESULTS}/identity/summarize.json",
    log:
        f"{LOGS}/summarize.log",
    conda:
        "../../environment.yml"
    params:
        **SUMMARY_SETTINGS,
        identity=recorded_identity,
        config_hash=CONFIG_HASH,
    shell:
        recorded(
            "python src/scripts/summarize.py --config-name {params.config_name} --config-hash {params.config_hash}"
            " --config-hint config/paper.yaml {params.seeds} --e3-heldout-encoder {params.heldout:q}"
            " --grid {params.grid:q} --tables {input.tables} --summary {output.summary}"
            " --claims {output.claims} 2> {log}"
        )


# E7: how well each latent space separates the classes (k-NN accuracy from the latent codes).
SEPARABILITY = dict(k=10, folds=5, cv_seed=0)


rule latent_separability:
    input:
        latents=plan.files("training_latents.npz", plan.e7_runs()),
        runs=plan.files("run.json", plan.e7_runs()),
        identity=identity(
            "latent_separability",
            "scripts/latent_separability.py",
            f"{RESULTS}/identity/latent_separability.json",
            config_name=plan.name,
            **SEPARABILITY,
        ),
    output:
        table=report(
            f"{RESULTS}/e7_separability.csv",
            category="Downloads",
            labels={"file": "e7_separability.csv"},
        ),
        identity=f"{RESULTS}/identity/latent_separability.json",
    log:
        f"{LOGS}/latent_separability.log",
    conda:
        "../../environment.yml"
    params:
        **SEPARABILITY,
        identity=recorded_identity,
        config_name=plan.name,
        config_hash=CONFIG_HASH,
    shell:
        recorded(
            "python src/scripts/latent_separability.py --latents {input.latents} --k {params.k} --folds {params.folds}"
            " --seed {params.cv_seed} --config-name {params.config_name} --config-hash {params.config_hash}"
            " --output {output.table} 2> {log}"
        )
