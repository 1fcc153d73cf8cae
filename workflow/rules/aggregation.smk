# Stage 4: aggregation of the per-run metric files into one tidy table per experiment,
# the parameter counts, and results/summary.md (the claims of SPEC section 4 checked).


rule aggregate:
    input:
        e1_runs=files("run.json", e1_runs()),
        e1_metrics=files("test_metrics.json", e1_runs()),
        e2=files("validation.csv", e2_runs()),
        e3=files("train_log.csv", e34_runs("solver_models")),
        e4=files("train_log.csv", e34_runs("adjoint_models")),
        e4_runs=files("run.json", e34_runs("adjoint_models")),
        e5=expand(
            "results/runs/{dataset}/encoding_convergence.csv",
            dataset=config["datasets"],
        ),
        e5_runs=expand(
            "results/runs/{dataset}/{model}/N{N}/seed{seed}/run.json",
            dataset=config["datasets"],
            model=config["encoding_convergence"]["model"],
            N=config["encoding_convergence"]["train_size"],
            seed=config["encoding_convergence"]["seed"],
        ),
        e6=files("test_outputs.npz", e6_runs()),
        e7=files("tsne.csv", e7_runs()),
    output:
        tables=[
            report(
                f"results/{name}.csv",
                category="Tables",
                labels={"table": name},
            )
            for name in TABLE_NAMES
        ],
        summary=report(
            "results/summary.md", category="Summary", labels={"table": "summary"}
        ),
    log:
        "logs/aggregate.log",
    conda:
        "../../environment.yml"
    params:
        config_name=CONFIG_NAME,
        config_hash=CONFIG_HASH,
    shell:
        "python src/aggregate.py --config-name {params.config_name}"
        " --config-hash {params.config_hash} --e1-runs {input.e1_runs}"
        " --e1-metrics {input.e1_metrics} --e2 {input.e2} --e3 {input.e3} --e4 {input.e4}"
        " --e4-runs {input.e4_runs} --e5 {input.e5} --e5-runs {input.e5_runs} --e6 {input.e6} --e7 {input.e7}"
        " --tables {output.tables} --summary {output.summary} 2> {log}"
