# Every job's identity (src/pipeline/identity.py): the stamp that makes Snakemake re-run a job
# whose record differs, and the record the job itself writes when it succeeds. Included by
# common.smk; needs SRC (src/, on sys.path). A rule uses it as
#     input:  identity=identity(rule, script, record_pattern, **settings),
#     output: identity=record_pattern,
#     params: identity=recorded_identity,
#     shell:  recorded("python src/<script>.py ... 2> {log}")
import json
import os

from snakemake.io import ancient
from snakemake.logging import logger

from pipeline import common
import pipeline.identity

# the commit the jobs of this invocation run (and whether it was dirty): in each stamp
MADE_BY = {"git_commit": common.git_commit()}
# The identity of each job this process planned, by its stamp: the job's `identity`
# parameter. In this process's memory, so another Snakemake process (a dry run with other
# settings, while this one runs) cannot change what this one's jobs record.
_PLANNED = {}


def identity(rule, script, record, checked=None, **settings):
    """The `identity` input of a job (src/pipeline/identity.py): a stamp of what the job would be
    now, its rule, the code of `script` (with what it imports from src/) and `settings`
    (values, or functions of the wildcards: the job's parameters that can move its
    numbers), plus its wildcards. `record` (a path pattern with the rule's wildcards) is
    the record the job writes beside its results (its `identity` output, written by `recorded`
    at the end of its command from its `identity` parameter, `recorded_identity`); a job
    whose record differs is re-run. `checked` (the check of run files): a function of the
    wildcards giving the files it checks; it is re-run too when their hashes differ from
    those its record lists as checked.
    """
    code = pipeline.identity.code_version(os.path.join(SRC, script), SRC)

    def stamp(wildcards):
        resolved = {k: v(wildcards) if callable(v) else v for k, v in settings.items()}
        resolved["wildcards"] = dict(wildcards.items())
        job = {"rule": rule, "code": code, "settings": resolved}
        record_path = record.format(**wildcards)
        stamp_path = os.path.join(pipeline.identity.STAMP_DIR, record_path)
        _PLANNED[stamp_path] = json.dumps({"identity": job}, sort_keys=True)
        hashes = None
        if checked is not None:
            hashes = pipeline.identity.file_hashes(
                pipeline.identity.files_checked(checked(wildcards)),
                os.path.dirname(record_path),
            )
        if pipeline.identity.stamp(stamp_path, record_path, job, MADE_BY, hashes):
            return ancient(stamp_path)
        if workflow.is_main_process and os.path.exists(record_path):
            reason = pipeline.identity.describe_difference(
                pipeline.identity.read_record(record_path), job, hashes
            )
            logger.info(f"{record_path}: made by {reason}; its job runs again")
        return stamp_path

    return stamp


def recorded_identity(wildcards, input):
    """The `identity` parameter of a job: its identity as this process planned it (the
    stamp written with it may since have been rewritten by another process)."""
    return _PLANNED[input.identity]


def recorded(command):
    """A rule's shell command, then the job writes its record (its identity parameter, the
    commit, the SHA-256 of each output) once its outputs are written. Printed by
    `src/scripts/identity.py record` into the record's place: a job that fails leaves none, as
    Snakemake removes a failed job's outputs."""
    return (
        f"{command} && python src/scripts/identity.py record --identity {{params.identity:q}}"
        " --record {output.identity:q} {output:q} > {output.identity:q}"
    )
