# Stage 4: aggregation of the per-run files into one tidy table per experiment and the
# parameter counts; then results/summary.md, the papers' claims judged from those tables.


rule aggregate:
    input:
        e1_runs=files("run.json", e1_runs()),
        e1_metrics=files("test_metrics.json", e1_runs()),
        e2=files("validation.csv", e2_runs()),
        e3_train=files("train_log.csv", e3_runs()),
        e3_heldout=files("validation.csv", e3_runs()),
        e4_train=files("train_log.csv", e4_runs()),
        e4_heldout=files("validation.csv", e4_runs()),
        e5=expand(
            f"{RESULTS}/runs/{{dataset}}/encoding_convergence.csv",
            dataset=config["datasets"],
        ),
        e5_runs=[
            run_file(
                "run.json",
                ds,
                "e2",
                config["encoding_convergence"]["common_model"],
                config["learning_curves"]["train_size"],
                config["encoding_convergence"]["seed"],
            )
            for ds in config["datasets"]
        ],
        e6=files("test_outputs.npz", e6_runs()),
        e7=files("tsne.csv", e7_runs()),
    output:
        tables=[
            report(
                f"{RESULTS}/{name}.csv",
                category="Tables",
                labels={"table": name},
            )
            for name in TABLE_NAMES
        ],
    log:
        f"{LOGS}/aggregate.log",
    conda:
        "../../environment.yml"
    params:
        config_name=CONFIG_NAME,
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
        [f"{RESULTS}/{name}.csv" for name in TABLE_NAMES],
    output:
        report(f"{RESULTS}/summary.md", category="Summary", labels={"table": "summary"}),
    log:
        f"{LOGS}/summarize.log",
    conda:
        "../../environment.yml"
    params:
        config_name=CONFIG_NAME,
        config_hash=CONFIG_HASH,
    shell:
        "python src/summarize.py --config-name {params.config_name} --config-hash {params.config_hash}"
        " --config-hint config/paper.yaml --tables {input} --summary {output} 2> {log}"
