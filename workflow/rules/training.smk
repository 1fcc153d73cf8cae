# Stage 2: training, one job per (dataset, experiment, model, N, seed). The experiment
# sets the budget: E1 trains to a plateau (best checkpoint), E2-E4 a fixed number of steps.


# The job's parameters that can move its numbers (its identity holds them too).
TRAIN_SETTINGS = dict(
    latent_dim=lambda w: plan.latent_dim(w.dataset),
    optimizer=lambda w: plan.optimizer_json(w.dataset),
    encoding=lambda w: plan.encoding_args(
        w.model, w.dataset, training=True, experiment=w.experiment
    ),
    # a plain function of the wildcards (not of `input`), so that Snakemake's params
    # trigger sees a changed budget and re-runs the job
    budget=lambda w: plan.train_budget_args(
        w.dataset, w.experiment, w.model, w.N, w.seed
    ),
    device=config["device"],
    threads=THREADS,
)


rule train:
    input:
        prepared=PREPARED,
        # a continuation (e1c) trains its E1 run again to a multiple of that run's steps
        plateau_run=lambda w: (
            [plan.run_file("run.json", w.dataset, "e1", w.model, w.N, w.seed)]
            if w.experiment == "e1c"
            else []
        ),
        identity=identity(
            "train", "scripts/train.py", f"{RUN}/identity_train.json", **TRAIN_SETTINGS
        ),
    output:
        model=MODEL_FILE,
        train_log=f"{RUN}/train_log.csv",
        validation=f"{RUN}/validation.csv",
        run=f"{RUN}/run.json",
        identity=f"{RUN}/identity_train.json",
    log:
        f"{LOGS}/train/{{dataset}}/{{experiment}}/{{model}}/N{{N}}/seed{{seed}}.log",
    conda:
        "../../environment.yml"
    threads: THREADS
    resources:
        # One GPU per training job when the config asks for CUDA (SLURM: sbatch --gpus=1).
        gpu=1 if str(config["device"]).startswith("cuda") else 0,
    params:
        **TRAIN_SETTINGS,
        identity=recorded_identity,
        checkpoint_every=config["training"]["checkpoint_every"],
        checkpoint=lambda w: plan.checkpoint_pattern.format(**w),
    shell:
        recorded(
            "python src/scripts/train.py --prepared {input.prepared} --dataset {wildcards.dataset}"
            " --experiment {wildcards.experiment} --model {wildcards.model}"
            " --latent-dim {params.latent_dim} --optimizer {params.optimizer:q} {params.encoding}"
            " --train-size {wildcards.N} --seed {wildcards.seed} {params.budget}"
            " --checkpoint {params.checkpoint} --checkpoint-every {params.checkpoint_every}"
            " --device {params.device} --model-out {output.model} --train-log {output.train_log}"
            " --validation {output.validation} --run-json {output.run} --threads {threads}"
            # the job's identity as this process planned it, not the stamp another may rewrite
            " --identity <(printf '%s' {params.identity:q}) 2> {log}"
        )
