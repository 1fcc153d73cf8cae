# Stage 1: data preparation, once per dataset.


# What can change the prepared data (where it is read from cannot: its SHA-256 is checked).
DATA_SETTINGS = dict(
    n_val=lambda w: config["dataset_settings"][w.dataset]["n_val"],
    n_pool=lambda w: config["dataset_settings"][w.dataset]["n_pool"],
    test_size=config["evaluation"]["test_size"],
    seeds=" ".join(
        str(s)
        for s in sorted(
            set(config["seeds"])
            | set(config["solver_comparison"]["seeds"])
            | set(config["adjoint_ablation"]["seeds"])
        )
    ),
)
PREPARED_RECORD = plan.prepared_record


rule prepare_data:
    input:
        identity=identity(
            "prepare_data", "scripts/prepare_data.py", PREPARED_RECORD, **DATA_SETTINGS
        ),
    output:
        prepared=PREPARED,
        identity=PREPARED_RECORD,
    log:
        f"{LOGS}/prepare_data/{{dataset}}.log",
    conda:
        "../../environment.yml"
    threads: 1
    params:
        **DATA_SETTINGS,
        identity=recorded_identity,
        root=config["data"]["root"],
        local_dir=(
            f"--local-dir {shlex.quote(config['data']['local_dir'])}"
            if config["data"].get("local_dir")
            else ""
        ),
        system="" if config["data"].get("search_system", True) else "--no-system-copies",
        download="--download" if config["data"].get("download") else "",
    shell:
        recorded(
            "python src/scripts/prepare_data.py --dataset {wildcards.dataset} --root {params.root:q}"
            " {params.local_dir} {params.system} {params.download} --n-val {params.n_val} --n-pool {params.n_pool}"
            " --test-size {params.test_size} --seeds {params.seeds} --threads {threads}"
            " --output {output.prepared} 2> {log}"
        )
