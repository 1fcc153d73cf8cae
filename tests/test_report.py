"""The HTML report: the pages of src/scripts/report_pages.py (summary.md and the tables as HTML), the
captions of workflow/report/ rendered as Snakemake renders them (Jinja, then reStructuredText)
for every config, and the built report clicked through in headless Chromium
(benchmarks/report_check.py; slow; skipped without Chromium, failed where CI is set)."""

from __future__ import annotations

import copy
import html
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import yaml
from docutils.core import publish_parts
from jinja2 import Environment, StrictUndefined

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
import pipeline.plan  # noqa: E402
from scripts import report_pages  # noqa: E402  (the workflow's scripts live in src/)
from workflow_helpers import CONFIGS, REPO, copy_repo, missing  # noqa: E402

SUMMARY = """# Summary: the claims

Config `quick` (hash `abc123`). Two lines
of one paragraph, with <b>markup</b> & an ampersand as text.

| claim | verdict |
|---|---|
| 1a: lower loss | supported |
| 1b: competitive | not tested at this budget |
| 4: robust | not supported |

## Claim 1a: lower loss (fashion_mnist)

**Criterion:** the interval lies below 0 → supported.

- gfe_amd: range 0.1% of its best
- gfe_rk4: `a|b` and **bold `code`**
  continued on a second line

**Verdict: supported** — At N = 100 the interval lies below 0.
"""


def test_summary_markdown_becomes_html():
    body = report_pages.markdown_to_html(SUMMARY)
    assert '<h1 id="summary-the-claims">Summary: the claims</h1>' in body
    assert '<h2 id="claim-1a-lower-loss-fashion-mnist">' in body
    # one paragraph of two lines; text is escaped, never markup
    assert "<p>Config <code>quick</code> (hash <code>abc123</code>). Two lines\nof one paragraph" in body
    assert "&lt;b&gt;markup&lt;/b&gt; &amp; an ampersand" in body and "<b>" not in body
    # the claims table: a header row, one row per claim, verdict cells coloured
    assert "<thead><tr><th>claim</th><th>verdict</th></tr></thead>" in body
    assert '<td class="v-supported">supported</td>' in body
    assert '<td class="v-not-tested">not tested at this budget</td>' in body
    assert '<td class="v-not-supported">not supported</td>' in body
    assert body.count("<tr>") == 4
    # a list of two items (the second continued), code and bold inside it; then the verdict
    assert body.count("<li>") == 2
    assert "<li>gfe_rk4: <code>a|b</code> and <strong>bold <code>code</code></strong>\ncontinued" in body
    assert '<p><strong class="verdict v-supported">Verdict: supported</strong> — At N = 100' in body
    assert "<strong>Criterion:</strong>" in body


def test_summary_page_is_a_whole_document_titled_by_the_summary():
    page = report_pages.summary_page(SUMMARY)
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<title>Summary: the claims</title>" in page and "<style>" in page


def test_table_cells_keep_escaped_bars_and_alignment():
    body = report_pages.markdown_to_html("| a | b |\n|:---|---:|\n| x \\| y | 2 |\n")
    assert '<td style="text-align: right">2</td>' in body
    assert "<td>x | y</td>" in body
    # no separator row: every row is a body row
    assert report_pages.markdown_to_html("| a | b |\n| c | d |\n").count("<tr>") == 2


def test_the_real_summary_converts_every_line():
    """Every line of the committed summary ends up in the page: no construct of summary.md is
    left out by the converter (its text, tags removed, has every word of the Markdown)."""
    path = REPO / "results/default/summary.md"
    if not path.is_file():
        pytest.skip("no committed summary")
    markdown = path.read_text()
    text = re.sub(r"<[^>]+>", " ", report_pages.markdown_to_html(markdown))
    words = set(html.unescape(text).split())
    plain = re.sub(r"[|#*`]|^\s*- ", " ", markdown, flags=re.MULTILINE).split()
    missing = [w for w in plain if w not in words and set(w) - set("-:")]
    assert not missing, missing[:20]
    assert text.count("Verdict:") == markdown.count("**Verdict:")


def _frame(n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "model": ["ae", "gfe_amd"] * (n // 2),
            "seed": [0, 1] * (n // 2),
            "loss": [0.123456789 * (i + 1) for i in range(n)],
            "config_name": ["quick"] * n,
        }
    )


def test_table_page_shows_size_seeds_and_the_constant_columns_once():
    page = report_pages.table_page(_frame(6), "results/quick/e1_data_efficiency.csv", max_rows=4)
    assert "<h1>e1_data_efficiency</h1>" in page
    assert "<code>results/quick/e1_data_efficiency.csv</code>: 6 rows × 4 columns." in page
    assert "Seeds in this table: 0, 1 (2)." in page
    assert "The first 4 of 6 rows; the CSV file has them all." in page
    # config_name is the same in every row: listed once, not a column of the table
    assert "The same in every row: <code>config_name</code> = quick." in page
    header = re.search(r"<thead>.*?</thead>", page, flags=re.DOTALL).group(0)
    assert "config_name" not in header and "loss" in header
    assert page.count("<td>ae</td>") == 2  # 4 rows shown
    assert "<td>0.123457</td>" in page  # 6 significant digits


def test_table_page_puts_model_n_seed_and_the_loss_first():
    frame = pd.DataFrame(
        {
            "dataset": ["fashion_mnist", "mnist"],
            "stop_reason": ["plateau", "cap"],
            "test_loss_mean": [0.3, 0.31],
            "seed": [0, 1],
            "train_size": [100, 300],
            "steps": [10, 20],
            "model": ["ae", "gfe_amd"],
        }
    )
    page = report_pages.table_page(frame, "x/e1.csv")
    header = re.findall(r"<th>(.*?)</th>", re.search(r"<thead>.*?</thead>", page, flags=re.DOTALL).group(0))
    assert header == ["model", "train_size", "seed", "test_loss_mean", "dataset", "stop_reason", "steps"]


def test_table_page_without_rows_says_so():
    frame = pd.DataFrame(columns=["config_name", "config_hash"])
    page = report_pages.table_page(frame, "results/default/e1_continuation.csv")
    assert "0 rows × 2 columns" in page and "No rows" in page and "<code>config_hash</code>" in page


def test_a_single_row_keeps_all_its_columns():
    page = report_pages.table_page(_frame(2).head(1), "x/one.csv")
    assert "The same in every row" not in page and "config_name</th>" in page


def test_main_writes_the_pages(tmp_path):
    (tmp_path / "summary.md").write_text(SUMMARY)
    _frame(4).to_csv(tmp_path / "t.csv", index=False)
    report_pages.main(["summary", "--markdown", str(tmp_path / "summary.md"), "--html", str(tmp_path / "s.html")])
    report_pages.main(["table", "--csv", str(tmp_path / "t.csv"), "--html", str(tmp_path / "html/t.html")])
    assert "Verdict: supported" in (tmp_path / "s.html").read_text()
    assert "Seeds in this table" in (tmp_path / "html/t.html").read_text()
    assert not [p for p in tmp_path.rglob("*") if ".tmp" in p.name]


# ---------------------------------------------------------------- captions


def _merged(base: dict, update: dict) -> dict:
    """A config file over the default one, as Snakemake merges --configfile."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _render(rst: Path, snakemake) -> str:
    """A caption as Snakemake renders it (its Jinja environment, the category links it adds),
    as text; a reStructuredText warning (a broken link, a short title underline) fails."""
    links = "\n\n" + "\n".join(f".. _{c}: #" for c in ("Summary", "Figures", "Tables", "Downloads")) + "\n"
    env = Environment(trim_blocks=True, lstrip_blocks=True, undefined=StrictUndefined)  # noqa: S701  (as Snakemake: rst)
    source = env.from_string(rst.read_text() + links).render(snakemake=snakemake)
    parts = publish_parts(source, writer="html", settings_overrides={"halt_level": 2, "report_level": 2})
    return html.unescape(re.sub(r"<[^>]+>", "", parts["html_body"]))


@pytest.mark.parametrize("configfile", CONFIGS)
def test_captions_render_with_the_configs_paths_and_seeds(configfile):
    base = yaml.safe_load((REPO / "config/config.yaml").read_text())
    cfg = _merged(base, yaml.safe_load((REPO / configfile).read_text()))
    name, results = cfg["name"], f"results/{cfg['name']}"
    report = REPO / "workflow/report"

    text = _render(report / "workflow.rst", SimpleNamespace(config=cfg))
    assert "How to read this report" in text and f"results/{name}/" in text
    assert f"{len(cfg['seeds'])} in E1 and E2" in text

    job = SimpleNamespace(config=cfg, input=[f"{results}/summary.md"], output=[f"{results}/summary.html"])
    assert f"as {results}/summary.md" in _render(report / "summary.rst", job)

    for table in pipeline.plan.TABLE_NAMES:
        job = SimpleNamespace(
            config=cfg,
            wildcards=SimpleNamespace(table=table),
            input=[f"{results}/{table}.csv"],
            output=[f"{results}/html/{table}.html"],
            params=SimpleNamespace(max_rows=200),
        )
        text = _render(report / "table.rst", job)
        assert f"File: {results}/{table}.csv" in text and "first 200 rows" in text, text
        assert len(text.split(".")[1]) > 20, f"no description of {table} in table.rst"
        if table.startswith("e3"):
            seeds = cfg["solver_comparison"]["seeds"]
            assert f"{len(seeds)} seeds ({', '.join(map(str, seeds))})" in text, text
    # the figures' captions name the config's files, not a placeholder
    for caption in sorted(report.glob("e*.rst")):
        text = _render(caption, SimpleNamespace(config=cfg, wildcards=SimpleNamespace()))
        assert "<name>" not in text and "&lt;name&gt;" not in text, caption.name


# ---------------------------------------------------------------- in a browser


def _chromium():
    sys.path.insert(0, str(REPO / "benchmarks"))
    import report_check

    return report_check.find_browser()


@pytest.mark.slow
def test_report_shows_the_verdicts_in_a_browser(tmp_path):
    """`snakemake --report` on the committed results, then Chromium clicks through it: the
    description on the landing page, the summary page inline with every verdict, a table.
    Without Chromium: skipped, or failed where CI is set (`make test` installs Debian's
    chromium as root)."""
    if _chromium() is None:
        missing(
            "needs Chromium for the browser test: apt-get install chromium (Debian; `make browser` "
            "does it as root), or set CHROMIUM to a Chromium or Chrome executable"
        )
    if not (REPO / "results/default/summary.md").is_file():
        pytest.skip("no committed results")
    repo = copy_repo(tmp_path / "repo", skip_results=False)
    shots = tmp_path / "screenshots"
    result = subprocess.run(
        [sys.executable, "benchmarks/report_check.py", "--screenshots", str(shots)],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert "verdicts visible" in result.stdout
    assert sorted(p.name for p in shots.iterdir()) == ["1_landing.png", "2_summary.png", "3_table.png"]
    assert (repo / "results/default/report.html").stat().st_size > 100_000
    shutil.rmtree(repo / ".snakemake", ignore_errors=True)


def test_verdict_cells_take_the_figures_verdict_colours():
    from pipeline import plotstyle
    from scripts import report_pages

    for verdict, css_class in report_pages.VERDICT_CLASS.items():
        rule = next(line for line in report_pages.STYLE.splitlines() if line.startswith(f".{css_class} "))
        assert plotstyle.VERDICT_COLOURS[verdict] in rule, (verdict, rule)
