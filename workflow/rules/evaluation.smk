# Stage 3: evaluation of trained models (test loss, latents, reconstructions), the
# encoding-convergence experiment (E5) and the t-SNE embeddings (E7).


rule evaluate:
    input:
        prepared="data/prepared/{dataset}.pt",
        model="results/models/{dataset}/{model}/N{N}/seed{seed}.pt",
        run=f"{RUN}/run.json",
    output:
        metrics=f"{RUN}/test_metrics.json",
        outputs=f"{RUN}/test_outputs.npz",
    log:
        "logs/evaluate/{dataset}/{model}/N{N}/seed{seed}.log",
    conda:
        "../../environment.yml"
    threads: THREADS
    params:
        model_settings=lambda w: model_json(w.model),
        dataset_settings=lambda w: dataset_json(w.dataset),
        batch_size=config["evaluation"]["batch_size"],
        eval_seed=config["evaluation"]["eval_seed"],
        n_latents=config["evaluation"]["n_latents"],
        n_recon=config["evaluation"]["n_reconstructions"],
        device=config["device"],
    shell:
        "python src/evaluate.py --prepared {input.prepared} --model-file {input.model}"
        " --run-json {input.run} --model-settings {params.model_settings:q}"
        " --dataset-settings {params.dataset_settings:q} --batch-size {params.batch_size}"
        " --eval-seed {params.eval_seed} --n-latents {params.n_latents} --n-recon {params.n_recon}"
        " --device {params.device} --metrics {output.metrics} --outputs {output.outputs}"
        " --threads {threads} 2> {log}"


rule encoding_convergence:
    input:
        prepared="data/prepared/{dataset}.pt",
        model=e5_model,
    output:
        "results/runs/{dataset}/encoding_convergence.csv",
    log:
        "logs/encoding_convergence/{dataset}.log",
    conda:
        "../../environment.yml"
    threads: THREADS
    params:
        dataset_settings=lambda w: dataset_json(w.dataset),
        amd_settings=model_json("gfe_amd"),
        n_images=config["encoding_convergence"]["n_images"],
        tau=config["encoding_convergence"]["tau"],
        steps=config["encoding_convergence"]["steps"],
        z0=config["encoding_convergence"]["z0"],
        coarse=" ".join(str(s) for s in config["encoding_convergence"]["coarse_steps"]),
    shell:
        "python src/encoding_convergence.py --prepared {input.prepared} --model-file {input.model}"
        " --dataset {wildcards.dataset} --dataset-settings {params.dataset_settings:q}"
        " --amd-settings {params.amd_settings:q} --n-images {params.n_images} --tau {params.tau}"
        " --steps {params.steps} --z0 {params.z0} --coarse-steps {params.coarse}"
        " --output {output} --threads {threads} 2> {log}"


rule embed_latents:
    input:
        f"{RUN}/test_outputs.npz",
    output:
        f"{RUN}/tsne.csv",
    log:
        "logs/embed_latents/{dataset}/{model}/N{N}/seed{seed}.log",
    conda:
        "../../environment.yml"
    threads: THREADS
    params:
        n_images=config["latent_maps"]["n_images"],
        perplexity=config["latent_maps"]["perplexity"],
    shell:
        "python src/embed_latents.py --outputs {input} --dataset {wildcards.dataset}"
        " --model {wildcards.model} --train-size {wildcards.N} --seed {wildcards.seed}"
        " --n-images {params.n_images} --perplexity {params.perplexity} --output {output}"
        " --threads {threads} 2> {log}"
