# Stage 5: figures (PNG and PDF), read from the result tables, never from models.
rule plot_e1:
    input:
        table=f"{RESULTS}/e1_data_efficiency.csv",
        identity=identity(
            "plot_e1", "scripts/plots/e1.py", f"{RESULTS}/identity/plot_e1.json"
        ),
    output:
        png=figure_png("e1_data_efficiency", "e1"),
        pdf=f"{FIGURES_DIR}/e1_data_efficiency.pdf",
        identity=f"{RESULTS}/identity/plot_e1.json",
    log:
        f"{LOGS}/figures/e1.log",
    conda:
        "../../environment.yml"
    params:
        identity=recorded_identity,
    shell:
        recorded(
            "python src/scripts/plots/e1.py --table {input.table} --png {output.png} --pdf {output.pdf} 2> {log}"
        )


rule plot_e2:
    input:
        table=f"{RESULTS}/e2_learning_curves.csv",
        points=f"{RESULTS}/e2_authors_points.csv",
        identity=identity(
            "plot_e2", "scripts/plots/e2.py", f"{RESULTS}/identity/plot_e2.json"
        ),
    output:
        png=figure_png("e2_learning_curves", "e2"),
        pdf=f"{FIGURES_DIR}/e2_learning_curves.pdf",
        identity=f"{RESULTS}/identity/plot_e2.json",
    log:
        f"{LOGS}/figures/e2.log",
    conda:
        "../../environment.yml"
    params:
        identity=recorded_identity,
    shell:
        recorded(
            "python src/scripts/plots/e2.py --table {input.table} --points {input.points} --png {output.png} --pdf {output.pdf} 2> {log}"
        )


rule plot_e3:
    input:
        train=f"{RESULTS}/e3_solver_comparison.csv",
        heldout=f"{RESULTS}/e3_heldout.csv",
        identity=identity(
            "plot_e3", "scripts/plots/e3.py", f"{RESULTS}/identity/plot_e3.json"
        ),
    output:
        png=figure_png("e3_solver_comparison", "e3"),
        pdf=f"{FIGURES_DIR}/e3_solver_comparison.pdf",
        identity=f"{RESULTS}/identity/plot_e3.json",
    log:
        f"{LOGS}/figures/e3.log",
    conda:
        "../../environment.yml"
    params:
        identity=recorded_identity,
    shell:
        recorded(
            "python src/scripts/plots/e3.py --train {input.train} --heldout {input.heldout}"
            " --png {output.png} --pdf {output.pdf} 2> {log}"
        )


rule plot_e4:
    input:
        train=f"{RESULTS}/e4_adjoint_ablation.csv",
        heldout=f"{RESULTS}/e4_heldout.csv",
        floors=f"{RESULTS}/data_floors.csv",
        identity=identity(
            "plot_e4", "scripts/plots/e4.py", f"{RESULTS}/identity/plot_e4.json"
        ),
    output:
        png=figure_png("e4_adjoint_ablation", "e4"),
        pdf=f"{FIGURES_DIR}/e4_adjoint_ablation.pdf",
        identity=f"{RESULTS}/identity/plot_e4.json",
    log:
        f"{LOGS}/figures/e4.log",
    conda:
        "../../environment.yml"
    params:
        identity=recorded_identity,
    shell:
        recorded(
            "python src/scripts/plots/e4.py --train {input.train} --heldout {input.heldout} --floors {input.floors}"
            " --png {output.png} --pdf {output.pdf} 2> {log}"
        )


# The README's first figure: E1's test loss against N beside E2's loss against images seen.
rule plot_headline:
    input:
        e1=f"{RESULTS}/e1_data_efficiency.csv",
        e2=f"{RESULTS}/e2_learning_curves.csv",
        identity=identity(
            "plot_headline",
            "scripts/plots/headline.py",
            f"{RESULTS}/identity/plot_headline.json",
        ),
    output:
        png=figure_png("headline", "headline"),
        pdf=f"{FIGURES_DIR}/headline.pdf",
        identity=f"{RESULTS}/identity/plot_headline.json",
    log:
        f"{LOGS}/figures/headline.log",
    conda:
        "../../environment.yml"
    params:
        identity=recorded_identity,
    shell:
        recorded(
            "python src/scripts/plots/headline.py --e1 {input.e1} --e2 {input.e2} --png {output.png} --pdf {output.pdf} 2> {log}"
        )


rule plot_e5:
    input:
        table=f"{RESULTS}/e5_encoding_convergence.csv",
        identity=identity(
            "plot_e5", "scripts/plots/e5.py", f"{RESULTS}/identity/plot_e5.json"
        ),
    output:
        png=figure_png("e5_encoding_convergence", "e5"),
        pdf=f"{FIGURES_DIR}/e5_encoding_convergence.pdf",
        identity=f"{RESULTS}/identity/plot_e5.json",
    log:
        f"{LOGS}/figures/e5.log",
    conda:
        "../../environment.yml"
    params:
        identity=recorded_identity,
    shell:
        recorded(
            "python src/scripts/plots/e5.py --table {input.table} --png {output.png} --pdf {output.pdf} 2> {log}"
        )


rule plot_e5_robustness:
    input:
        table=f"{RESULTS}/e5_robustness.csv",
        identity=identity(
            "plot_e5_robustness",
            "scripts/plots/e5_robustness.py",
            f"{RESULTS}/identity/plot_e5_robustness.json",
        ),
    output:
        png=figure_png("e5_robustness", "e5_robustness"),
        pdf=f"{FIGURES_DIR}/e5_robustness.pdf",
        identity=f"{RESULTS}/identity/plot_e5_robustness.json",
    log:
        f"{LOGS}/figures/e5_robustness.log",
    conda:
        "../../environment.yml"
    params:
        identity=recorded_identity,
    shell:
        recorded(
            "python src/scripts/plots/e5_robustness.py --table {input.table} --png {output.png} --pdf {output.pdf} 2> {log}"
        )


rule plot_e6:
    input:
        table=f"{RESULTS}/e6_reconstructions.csv",
        npz=plan.files("test_outputs.npz", plan.e6_runs()),
        identity=identity(
            "plot_e6", "scripts/plots/e6.py", f"{RESULTS}/identity/plot_e6.json"
        ),
    output:
        png=figure_png("e6_reconstructions", "e6"),
        pdf=f"{FIGURES_DIR}/e6_reconstructions.pdf",
        identity=f"{RESULTS}/identity/plot_e6.json",
    log:
        f"{LOGS}/figures/e6.log",
    conda:
        "../../environment.yml"
    params:
        identity=recorded_identity,
    shell:
        recorded(
            "python src/scripts/plots/e6.py --table {input.table} --npz {input.npz}"
            " --png {output.png} --pdf {output.pdf} 2> {log}"
        )


rule plot_e7:
    input:
        table=f"{RESULTS}/e7_latent_maps.csv",
        separability=f"{RESULTS}/e7_separability.csv",
        identity=identity(
            "plot_e7", "scripts/plots/e7.py", f"{RESULTS}/identity/plot_e7.json"
        ),
    output:
        png=figure_png("e7_latent_maps", "e7"),
        pdf=f"{FIGURES_DIR}/e7_latent_maps.pdf",
        identity=f"{RESULTS}/identity/plot_e7.json",
    log:
        f"{LOGS}/figures/e7.log",
    conda:
        "../../environment.yml"
    params:
        identity=recorded_identity,
    shell:
        recorded(
            "python src/scripts/plots/e7.py --table {input.table} --separability {input.separability}"
            " --png {output.png} --pdf {output.pdf} 2> {log}"
        )


rule plot_claims:
    input:
        table=f"{RESULTS}/claims.csv",
        identity=identity(
            "plot_claims",
            "scripts/plots/claims.py",
            f"{RESULTS}/identity/plot_claims.json",
        ),
    output:
        png=figure_png("claims_forest", "claims"),
        pdf=f"{FIGURES_DIR}/claims_forest.pdf",
        identity=f"{RESULTS}/identity/plot_claims.json",
    log:
        f"{LOGS}/figures/claims.log",
    conda:
        "../../environment.yml"
    params:
        identity=recorded_identity,
    shell:
        recorded(
            "python src/scripts/plots/claims.py --table {input.table} --png {output.png} --pdf {output.pdf} 2> {log}"
        )


# The encoding benchmarks (benchmarks/encode.py; not made by this workflow, committed under
# results/benchmarks/): those present, each with the JSON that names its machine.
BENCHMARK_TABLES = [
    f
    for f in ("results/benchmarks/encode.csv", "results/benchmarks/encode_cuda.csv")
    if os.path.exists(f)
]


rule plot_benchmarks:
    input:
        tables=BENCHMARK_TABLES,
        machines=[
            os.path.splitext(f)[0] + ".json"
            for f in BENCHMARK_TABLES
            if os.path.exists(os.path.splitext(f)[0] + ".json")
        ],
        identity=identity(
            "plot_benchmarks",
            "scripts/plots/benchmarks.py",
            f"{RESULTS}/identity/plot_benchmarks.json",
        ),
    output:
        png=figure_png("benchmarks", "benchmarks"),
        pdf=f"{FIGURES_DIR}/benchmarks.pdf",
        identity=f"{RESULTS}/identity/plot_benchmarks.json",
    log:
        f"{LOGS}/figures/benchmarks.log",
    conda:
        "../../environment.yml"
    params:
        identity=recorded_identity,
    shell:
        recorded(
            "python src/scripts/plots/benchmarks.py --tables {input.tables} --png {output.png} --pdf {output.pdf} 2> {log}"
        )
