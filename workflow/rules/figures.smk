# Stage 5: figures (PNG and PDF), read from the result tables, never from models.
from snakemake.io import report as report_file


def figure(name, caption):
    return [
        report_file(
            f"figures/{name}.png",
            caption=f"../report/{caption}.rst",
            category="Figures",
            labels={"figure": name},
        ),
        f"figures/{name}.pdf",
    ]


rule plot_e1:
    input:
        "results/e1_data_efficiency.csv",
    output:
        figure("e1_data_efficiency", "e1"),
    log:
        "logs/figures/e1.log",
    conda:
        "../../environment.yml"
    shell:
        "python src/plot_e1.py --table {input} --png {output[0]} --pdf {output[1]} 2> {log}"


rule plot_e2:
    input:
        "results/e2_learning_curves.csv",
    output:
        figure("e2_learning_curves", "e2"),
    log:
        "logs/figures/e2.log",
    conda:
        "../../environment.yml"
    shell:
        "python src/plot_e2.py --table {input} --png {output[0]} --pdf {output[1]} 2> {log}"


rule plot_e3:
    input:
        "results/e3_solver_comparison.csv",
    output:
        figure("e3_solver_comparison", "e3"),
    log:
        "logs/figures/e3.log",
    conda:
        "../../environment.yml"
    shell:
        "python src/plot_e3.py --table {input} --title 'E3 solvers'"
        " --png {output[0]} --pdf {output[1]} 2> {log}"


rule plot_e4:
    input:
        "results/e4_adjoint_ablation.csv",
    output:
        figure("e4_adjoint_ablation", "e4"),
    log:
        "logs/figures/e4.log",
    conda:
        "../../environment.yml"
    shell:
        "python src/plot_e3.py --table {input} --title 'E4 approximate vs adjoint' --cost"
        " --png {output[0]} --pdf {output[1]} 2> {log}"


rule plot_e5:
    input:
        "results/e5_encoding_convergence.csv",
    output:
        figure("e5_encoding_convergence", "e5"),
    log:
        "logs/figures/e5.log",
    conda:
        "../../environment.yml"
    shell:
        "python src/plot_e5.py --table {input} --png {output[0]} --pdf {output[1]} 2> {log}"


rule plot_e6:
    input:
        table="results/e6_reconstructions.csv",
        npz=files("test_outputs.npz", e6_runs()),
    output:
        figure("e6_reconstructions", "e6"),
    log:
        "logs/figures/e6.log",
    conda:
        "../../environment.yml"
    shell:
        "python src/plot_e6.py --table {input.table} --npz {input.npz}"
        " --png {output[0]} --pdf {output[1]} 2> {log}"


rule plot_e7:
    input:
        "results/e7_latent_maps.csv",
    output:
        figure("e7_latent_maps", "e7"),
    log:
        "logs/figures/e7.log",
    conda:
        "../../environment.yml"
    shell:
        "python src/plot_e7.py --table {input} --png {output[0]} --pdf {output[1]} 2> {log}"
