# Stage 5: figures (PNG and PDF), read from the result tables, never from models.
rule plot_e1:
    input:
        f"{RESULTS}/e1_data_efficiency.csv",
    output:
        png=figure_png("e1_data_efficiency", "e1"),
        pdf=f"{FIGURES_DIR}/e1_data_efficiency.pdf",
    log:
        f"{LOGS}/figures/e1.log",
    conda:
        "../../environment.yml"
    shell:
        "python src/plot_e1.py --table {input} --png {output.png} --pdf {output.pdf} 2> {log}"


rule plot_e2:
    input:
        table=f"{RESULTS}/e2_learning_curves.csv",
        points=f"{RESULTS}/e2_authors_points.csv",
    output:
        png=figure_png("e2_learning_curves", "e2"),
        pdf=f"{FIGURES_DIR}/e2_learning_curves.pdf",
    log:
        f"{LOGS}/figures/e2.log",
    conda:
        "../../environment.yml"
    shell:
        "python src/plot_e2.py --table {input.table} --points {input.points} --png {output.png} --pdf {output.pdf} 2> {log}"


rule plot_e3:
    input:
        train=f"{RESULTS}/e3_solver_comparison.csv",
        heldout=f"{RESULTS}/e3_heldout.csv",
    output:
        png=figure_png("e3_solver_comparison", "e3"),
        pdf=f"{FIGURES_DIR}/e3_solver_comparison.pdf",
    log:
        f"{LOGS}/figures/e3.log",
    conda:
        "../../environment.yml"
    shell:
        "python src/plot_e3.py --train {input.train} --heldout {input.heldout}"
        " --png {output.png} --pdf {output.pdf} 2> {log}"


rule plot_e4:
    input:
        train=f"{RESULTS}/e4_adjoint_ablation.csv",
        heldout=f"{RESULTS}/e4_heldout.csv",
    output:
        png=figure_png("e4_adjoint_ablation", "e4"),
        pdf=f"{FIGURES_DIR}/e4_adjoint_ablation.pdf",
    log:
        f"{LOGS}/figures/e4.log",
    conda:
        "../../environment.yml"
    shell:
        "python src/plot_e4.py --train {input.train} --heldout {input.heldout}"
        " --png {output.png} --pdf {output.pdf} 2> {log}"


rule plot_e5:
    input:
        f"{RESULTS}/e5_encoding_convergence.csv",
    output:
        png=figure_png("e5_encoding_convergence", "e5"),
        pdf=f"{FIGURES_DIR}/e5_encoding_convergence.pdf",
    log:
        f"{LOGS}/figures/e5.log",
    conda:
        "../../environment.yml"
    shell:
        "python src/plot_e5.py --table {input} --png {output.png} --pdf {output.pdf} 2> {log}"


rule plot_e5_robustness:
    input:
        f"{RESULTS}/e5_robustness.csv",
    output:
        png=figure_png("e5_robustness", "e5_robustness"),
        pdf=f"{FIGURES_DIR}/e5_robustness.pdf",
    log:
        f"{LOGS}/figures/e5_robustness.log",
    conda:
        "../../environment.yml"
    shell:
        "python src/plot_e5_robustness.py --table {input} --png {output.png} --pdf {output.pdf} 2> {log}"


rule plot_e6:
    input:
        table=f"{RESULTS}/e6_reconstructions.csv",
        npz=plan.files("test_outputs.npz", plan.e6_runs()),
    output:
        png=figure_png("e6_reconstructions", "e6"),
        pdf=f"{FIGURES_DIR}/e6_reconstructions.pdf",
    log:
        f"{LOGS}/figures/e6.log",
    conda:
        "../../environment.yml"
    shell:
        "python src/plot_e6.py --table {input.table} --npz {input.npz}"
        " --png {output.png} --pdf {output.pdf} 2> {log}"


rule plot_e7:
    input:
        f"{RESULTS}/e7_latent_maps.csv",
    output:
        png=figure_png("e7_latent_maps", "e7"),
        pdf=f"{FIGURES_DIR}/e7_latent_maps.pdf",
    log:
        f"{LOGS}/figures/e7.log",
    conda:
        "../../environment.yml"
    shell:
        "python src/plot_e7.py --table {input} --png {output.png} --pdf {output.pdf} 2> {log}"
