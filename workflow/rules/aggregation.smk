# Stage 4: aggregation of the per-run files into one tidy table per experiment and the
# parameter counts; then results/summary.md, the papers' claims judged from those tables.


rule aggregate:
    input:
        e1_runs=plan.files("run.json", plan.e1_runs()),
        e1_metrics=plan.files("test_metrics.json", plan.e1_runs()),
        e2=plan.files("validation.csv", plan.e2_runs()),
        e3_train=plan.files("train_log.csv", plan.e3_runs()),
        e3_heldout=plan.files("validation.csv", plan.e3_runs()),
        e4_train=plan.files("train_log.csv", plan.e4_runs()),
        e4_heldout=plan.files("validation.csv", plan.e4_runs()),
        e5=expand(
            f"{RESULTS}/runs/{{dataset}}/encoding_convergence.csv",
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
            for name in wfplan.TABLE_NAMES
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
        " --e1-metrics {input.e1_metrics} --e2 {input.e2} --e3-train {input.e3_train}"
        " --e3-heldout {input.e3_heldout} --e4-train {input.e4_train} --e4-heldout {input.e4_heldout}"
        " --e5 {input.e5} --e5-runs {input.e5_runs} --e6 {input.e6} --e7 {input.e7}"
        " --report-images-seen {params.report_images_seen} --tables {output.tables} 2> {log}"


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
    shell:
        "python src/summarize.py --config-name {params.config_name} --config-hash {params.config_hash}"
        " --config-hint config/paper.yaml --tables {input} --summary {output} 2> {log}"
