"""Every job's record, and the checks of what jobs wrote (the command line of
`pipeline.identity`, which explains records and stamps):

    python src/scripts/identity.py record --identity JSON --record PATH OUTPUTS...
        print a job's record: the end of every rule's command (workflow/rules/identity.smk);
    python src/scripts/identity.py check --identity JSON --config-name NAME --output FILE FILES...
        check the per-run files aggregation reads; write what was checked (rule check_runs);
    python src/scripts/identity.py backfill results/<name>
        give per-run records made before records held hashes the hashes of their files.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pipeline import identity
from pipeline.common import RunFileError, git_commit


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record", help="print a job's record (the end of every rule's command)")
    rec.add_argument("--identity", required=True, help="the job's identity parameter (JSON)")
    rec.add_argument("--record", required=True, help="the record's path (its keys are relative to its folder)")
    rec.add_argument("outputs", nargs="*", help="the job's outputs (the record among them is left out)")
    chk = sub.add_parser("check", help="check the per-run files aggregation reads; write what was checked")
    chk.add_argument("--identity", required=True, help="the check job's identity parameter (JSON)")
    chk.add_argument("--config-name", required=True)
    chk.add_argument("--output", required=True, help="the check file (results/<name>/identity/checked_runs.json)")
    chk.add_argument("files", nargs="*")
    back = sub.add_parser("backfill", help="add file hashes to the per-run records of results/<name> that lack them")
    back.add_argument("results", help="results/<name>")
    a = p.parse_args(argv)
    if a.command == "record":
        sys.stdout.write(identity.record_text(a.identity, a.record, a.outputs, {"git_commit": git_commit()}))
        return 0
    if a.command == "backfill":
        try:
            added, had = identity.backfill(a.results)
        except RunFileError as error:
            print(f"RunFileError: {error}", file=sys.stderr)
            return 1
        print(f"{added} records given the hashes of their files; {had} had them already")
        return 0
    try:
        checked = identity.check_runs(a.files, a.config_name)
    except RunFileError as error:
        lines = str(error).splitlines()
        for line in lines:
            print(f"RunFileError: {line}", file=sys.stderr)
        if len(lines) > 1:
            print(f"RunFileError: {len(lines)} per-run files refused (each named above)", file=sys.stderr)
        return 1
    from gfe.io import write_text  # imports torch

    record = json.loads(a.identity)
    record["made_by"] = {"git_commit": git_commit()}
    record["checked"] = identity.file_hashes(checked, Path(a.output).parent)
    write_text(json.dumps(record, indent=1, sort_keys=True) + "\n", a.output)
    print(f"{len(checked)} per-run files checked", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
