# Stage 4: aggregation of the per-run files into one tidy table per experiment and the
# parameter counts; then results/summary.md, the papers' claims judged from those tables.


rule aggregate:
    input:
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
            plan.run_file("run.json", *plan.e5_common_run(ds))
            for ds in config["datasets"]
        ],
        e6=plan.files("test_outputs.npz", plan.e6_runs()),
        e7=plan.files("tsne.csv", plan.e7_runs()),
    output:
        tables=[
            report(
                f"{RESULTS}/{name}.csv",
                category="Tables",
                labels={"table": name},
            )
            for name in wfplan.AGGREGATED_TABLES
        ],
    log:
        f"{LOGS}/aggregate.log",
    conda:
        "../../environment.yml"
    params:
        config_name=plan.name,
        config_hash=CONFIG_HASH,
        report_images_seen=" ".join(
            str(n) for n in config["learning_curves"]["report_images_seen"]
        ),
    shell:
        "python src/aggregate.py --config-name {params.config_name}"
        " --config-hash {params.config_hash} --e1-runs {input.e1_runs}"
        " --e1-metrics {input.e1_metrics} --e1c {input.e1c} --e1c-plateau-runs {input.e1c_plateau_runs}"
        " --e2 {input.e2} --e3-train {input.e3_train}"
        " --e3-heldout {input.e3_heldout} --e4-train {input.e4_train} --e4-heldout {input.e4_heldout}"
        " --e5 {input.e5} --e5-runs {input.e5_runs} --e5-robustness {input.e5_robustness} --e6 {input.e6} --e7 {input.e7}"
        " --report-images-seen {params.report_images_seen} --tables {output.tables} 2> {log}"


rule data_floors:
    input:
        prepared=expand(PREPARED, dataset=config["datasets"]),
    output:
        report(
            f"{RESULTS}/data_floors.csv",
            category="Tables",
            labels={"table": "data_floors"},
        ),
    log:
        f"{LOGS}/data_floors.log",
    conda:
        "../../environment.yml"
    params:
        prepared=" ".join(
            f"{ds}={plan.loss(ds)}={PREPARED.format(dataset=ds)}"
            for ds in config["datasets"]
        ),
    shell:
        "python src/data_floors.py --prepared {params.prepared} --output {output} 2> {log}"


rule summarize:
    input:
        plan.tables,
    output:
        report(f"{RESULTS}/summary.md", category="Summary", labels={"table": "summary"}),
    log:
        f"{LOGS}/summarize.log",
    conda:
        "../../environment.yml"
    params:
        config_name=plan.name,
        config_hash=CONFIG_HASH,
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
    shell:
        "python src/summarize.py --config-name {params.config_name} --config-hash {params.config_hash}"
        " --config-hint config/paper.yaml {params.seeds} --e3-heldout-encoder {params.heldout:q}"
        " --tables {input} --summary {output} 2> {log}"
