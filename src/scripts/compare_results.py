"""Compare a run's result tables with the committed reference: `make compare`.

    python src/scripts/compare_results.py [--results results/default] [--ref HEAD]

For every CSV directly in --results (the aggregated tables) and its `summary.md`, reads the
working-tree file and the one committed at git revision --ref, and prints one line per
file: "identical", or where it differs most. Wall-clock columns (names ending in `_s` or
holding `seconds`: they differ between any two runs) are left out; a numeric column is
compared as numbers (the largest absolute and relative difference and its row), any other
column cell by cell. Exit status 0 when every file is identical, 1 otherwise.
"""

from __future__ import annotations

import argparse
import io
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

WALL_CLOCK = re.compile(r"_s$|seconds")


def committed(path: Path, ref: str) -> str | None:
    """The file's text at git revision `ref` (None if it is not committed there)."""
    command = ["git", "show", f"{ref}:{path.as_posix()}"]  # a list, no shell: ref cannot run a command
    result = subprocess.run(command, capture_output=True, text=True)  # noqa: S603
    return result.stdout if result.returncode == 0 else None


def table_difference(now: pd.DataFrame, then: pd.DataFrame) -> str:
    """ "identical", or one line naming the largest difference."""
    now = now[[c for c in now.columns if not WALL_CLOCK.search(c)]]
    then = then[[c for c in then.columns if not WALL_CLOCK.search(c)]]
    if list(now.columns) != list(then.columns):
        gone, new = sorted(set(then.columns) - set(now.columns)), sorted(set(now.columns) - set(then.columns))
        return f"other columns (committed only: {gone}; new only: {new})"
    if len(now) != len(then):
        return f"{len(now)} rows, {len(then)} committed"
    worst, cells = None, []
    for column in now.columns:
        a, b = now[column], then[column]
        if pd.api.types.is_numeric_dtype(a) and pd.api.types.is_numeric_dtype(b):
            x, y = a.to_numpy(dtype=float), b.to_numpy(dtype=float)
            same = (x == y) | (np.isnan(x) & np.isnan(y))
            if same.all():
                continue
            gap = np.where(same, 0.0, np.abs(x - y))
            gap = np.where(np.isnan(gap), np.inf, gap)
            row = int(np.argmax(gap))
            relative = gap[row] / max(abs(y[row]), 1e-300)
            if worst is None or relative > worst[0]:
                worst = (relative, column, row, x[row], y[row])
        else:
            differ = int(((a.astype(object) != b.astype(object)) & ~(a.isna() & b.isna())).sum())
            if differ:
                cells.append(f"{column} ({differ} cells)")
    if worst is None and not cells:
        return "identical"
    parts = []
    if worst is not None:
        relative, column, row, x, y = worst
        parts.append(
            f"largest difference in {column}, row {row}: {x:.6g} vs {y:.6g} committed ({relative:.2e} relative)"
        )
    if cells:
        parts.append("text differs in " + ", ".join(cells))
    return "; ".join(parts)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", default="results/default", help="the run's results folder")
    p.add_argument("--ref", default="HEAD", help="the git revision of the reference")
    a = p.parse_args(argv)
    folder = Path(a.results)
    files = sorted(folder.glob("*.csv")) + [folder / "summary.md"]
    all_same = True
    for path in files:
        text = committed(path, a.ref)
        if text is None or not path.exists():
            verdict = "not committed at " + a.ref if text is None else "missing in this run"
        elif path.suffix == ".md":
            now, then = path.read_text().splitlines(), text.splitlines()
            differ = sum(x != y for x, y in zip(now, then, strict=False)) + abs(len(now) - len(then))
            verdict = "identical" if not differ else f"{differ} of {len(then)} lines differ"
        else:
            verdict = table_difference(pd.read_csv(path), pd.read_csv(io.StringIO(text)))
        all_same &= verdict == "identical"
        print(f"{path.name}: {verdict}")
    print("identical" if all_same else "differences above")
    return 0 if all_same else 1


if __name__ == "__main__":
    sys.exit(main())
