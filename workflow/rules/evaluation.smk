# Stage 3: evaluation of trained models (E1 test loss, latents, reconstructions), the
# training latents and t-SNE embeddings of E7, and the encoding-convergence curves (E5).


EVALUATE_SETTINGS = dict(
    encoding=lambda w: plan.encoding_args(w.model, w.dataset, training=False),
    batch_size=config["evaluation"]["batch_size"],
    eval_seed=config["evaluation"]["eval_seed"],
    n_latents=config["evaluation"]["n_latents"],
    n_recon=config["evaluation"]["n_reconstructions"],
    device=config["device"],
    threads=THREADS,
)


rule evaluate:
    input:
        prepared=PREPARED,
        model=MODEL_FILE,
        run=f"{RUN}/run.json",
        identity=identity(
            "evaluate",
            "scripts/evaluate.py",
            f"{RUN}/identity_evaluate.json",
            **EVALUATE_SETTINGS,
        ),
    output:
        metrics=f"{RUN}/test_metrics.json",
        outputs=f"{RUN}/test_outputs.npz",
        identity=f"{RUN}/identity_evaluate.json",
    log:
        f"{LOGS}/evaluate/{{dataset}}/{{experiment}}/{{model}}/N{{N}}/seed{{seed}}.log",
    conda:
        "../../environment.yml"
    threads: THREADS
    params:
        **EVALUATE_SETTINGS,
        identity=recorded_identity,
    shell:
        recorded(
            "python src/scripts/evaluate.py --prepared {input.prepared} --model-file {input.model}"
            " --run-json {input.run} {params.encoding} --batch-size {params.batch_size}"
            " --eval-seed {params.eval_seed} --n-latents {params.n_latents} --n-recon {params.n_recon}"
            " --device {params.device} --metrics {output.metrics} --outputs {output.outputs}"
            " --threads {threads} 2> {log}"
        )


LATENTS_SETTINGS = dict(
    encoding=lambda w: plan.encoding_args(w.model, w.dataset, training=False),
    batch_size=config["evaluation"]["batch_size"],
    eval_seed=config["evaluation"]["eval_seed"],
    n_images=config["latent_maps"]["n_images"],
    device=config["device"],
    threads=THREADS,
)


rule training_latents:
    input:
        prepared=PREPARED,
        model=MODEL_FILE,
        run=f"{RUN}/run.json",
        identity=identity(
            "training_latents",
            "scripts/evaluate.py",
            f"{RUN}/identity_training_latents.json",
            **LATENTS_SETTINGS,
        ),
    output:
        latents=f"{RUN}/training_latents.npz",
        identity=f"{RUN}/identity_training_latents.json",
    log:
        f"{LOGS}/training_latents/{{dataset}}/{{experiment}}/{{model}}/N{{N}}/seed{{seed}}.log",
    conda:
        "../../environment.yml"
    threads: THREADS
    params:
        **LATENTS_SETTINGS,
        identity=recorded_identity,
    shell:
        recorded(
            "python src/scripts/evaluate.py --prepared {input.prepared} --model-file {input.model}"
            " --run-json {input.run} {params.encoding} --batch-size {params.batch_size}"
            " --eval-seed {params.eval_seed} --latents-of-training {params.n_images}"
            " --device {params.device} --outputs {output.latents} --threads {threads} 2> {log}"
        )


EMBED_SETTINGS = dict(
    n_images=config["latent_maps"]["n_images"],
    perplexity=config["latent_maps"]["perplexity"],
    threads=THREADS,
)


rule embed_latents:
    input:
        latents=f"{RUN}/training_latents.npz",
        identity=identity(
            "embed_latents",
            "scripts/embed_latents.py",
            f"{RUN}/identity_embed_latents.json",
            **EMBED_SETTINGS,
        ),
    output:
        tsne=f"{RUN}/tsne.csv",
        identity=f"{RUN}/identity_embed_latents.json",
    log:
        f"{LOGS}/embed_latents/{{dataset}}/{{experiment}}/{{model}}/N{{N}}/seed{{seed}}.log",
    conda:
        "../../environment.yml"
    threads: THREADS
    params:
        **EMBED_SETTINGS,
        identity=recorded_identity,
    shell:
        recorded(
            "python src/scripts/embed_latents.py --outputs {input.latents} --dataset {wildcards.dataset}"
            " --model {wildcards.model} --train-size {wildcards.N} --seed {wildcards.seed}"
            " --n-images {params.n_images} --perplexity {params.perplexity} --output {output.tsne}"
            " --threads {threads} 2> {log}"
        )


E5_SETTINGS = dict(
    latent_dim=lambda w: plan.latent_dim(w.dataset),
    loss=lambda w: plan.loss(w.dataset),
    own=lambda w: plan.e5_own_args(w.dataset),
    amd=lambda w: plan.e5_amd_args(w.dataset),
    common_model=config["encoding_convergence"]["common_model"],
    n_images=config["encoding_convergence"]["n_images"],
    tau=config["encoding_convergence"]["tau"],
    steps=config["encoding_convergence"]["steps"],
    z0=config["encoding_convergence"]["z0"],
    coarse=" ".join(str(s) for s in config["encoding_convergence"]["coarse_steps"]),
    tau_sweep=" ".join(str(t) for t in config["encoding_convergence"]["tau_sweep"]),
    threads=THREADS,
)


rule encoding_convergence:
    input:
        unpack(lambda w: plan.e5_inputs(w.dataset)),
        identity=identity(
            "encoding_convergence",
            "scripts/encoding_convergence.py",
            f"{RESULTS}/runs/{{dataset}}/identity_encoding_convergence.json",
            **E5_SETTINGS,
        ),
    output:
        table=f"{RESULTS}/runs/{{dataset}}/encoding_convergence.csv",
        identity=f"{RESULTS}/runs/{{dataset}}/identity_encoding_convergence.json",
    log:
        f"{LOGS}/encoding_convergence/{{dataset}}.log",
    conda:
        "../../environment.yml"
    threads: THREADS
    params:
        **E5_SETTINGS,
        identity=recorded_identity,
    shell:
        recorded(
            "python src/scripts/encoding_convergence.py --prepared {input.prepared} --dataset {wildcards.dataset}"
            " --latent-dim {params.latent_dim} --loss {params.loss} {params.own} {params.amd}"
            " --common {input.common} --common-model {params.common_model}"
            " --n-images {params.n_images} --tau {params.tau} --steps {params.steps} --z0 {params.z0}"
            " --coarse-steps {params.coarse} --tau-sweep {params.tau_sweep}"
            " --output {output.table} --threads {threads} 2> {log}"
        )


ROBUSTNESS_SETTINGS = dict(
    loss=lambda w: plan.loss(w.dataset),
    sweep=lambda w: plan.robustness_args(w.dataset),
    threads=THREADS,
)


rule solver_robustness:
    input:
        prepared=PREPARED,
        decoders=lambda w: [
            plan.model_file(*r) for r in plan.robustness_runs(w.dataset)
        ],
        identity=identity(
            "solver_robustness",
            "scripts/solver_robustness.py",
            f"{RESULTS}/runs/{{dataset}}/identity_solver_robustness.json",
            **ROBUSTNESS_SETTINGS,
        ),
    output:
        table=f"{RESULTS}/runs/{{dataset}}/solver_robustness.csv",
        identity=f"{RESULTS}/runs/{{dataset}}/identity_solver_robustness.json",
    log:
        f"{LOGS}/solver_robustness/{{dataset}}.log",
    conda:
        "../../environment.yml"
    threads: THREADS
    params:
        **ROBUSTNESS_SETTINGS,
        identity=recorded_identity,
    shell:
        recorded(
            "python src/scripts/solver_robustness.py --prepared {input.prepared} --dataset {wildcards.dataset}"
            " --loss {params.loss} {params.sweep} --output {output.table} --threads {threads} 2> {log}"
        )
