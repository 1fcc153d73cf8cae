"""Write the HTML pages of the Snakemake report (`snakemake --report`): results/<name>/summary.md
as results/<name>/summary.html, and a result table (CSV) as results/<name>/html/<table>.html.
The report shows HTML files inline; Markdown and CSV files only download. Reads files only.

    python src/scripts/report_pages.py summary --markdown SUMMARY.md --html SUMMARY.html
    python src/scripts/report_pages.py table --csv TABLE.csv --html TABLE.html [--max-rows 200]

The summary is written by src/scripts/summarize.py in a small subset of Markdown, which
`markdown_to_html` converts: headings, paragraphs, bullet lists, pipe tables, **bold** and
`code` (everything else is text, HTML-escaped). Verdicts (src/pipeline/claims/) are coloured.
"""

from __future__ import annotations

import argparse
import html
import re
import sys
from pathlib import Path

import pandas as pd

from gfe import io
from pipeline import common, plotstyle
from pipeline.claims import VERDICTS

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; font-size: 14px; line-height: 1.45;
       color: #1f2937; margin: 1.2em 1.6em; max-width: 80em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.25em; margin-top: 1.6em; border-bottom: 1px solid #e5e7eb; }
h3 { font-size: 1.1em; }
code { font-family: ui-monospace, monospace; font-size: 0.92em; background: #f3f4f6; padding: 0 0.2em; }
.scroll { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.92em; }
th, td { border: 1px solid #d1d5db; padding: 0.2em 0.5em; text-align: left; vertical-align: top; }
th { background: #f3f4f6; position: sticky; top: 0; }
tr:nth-child(even) td { background: #fafafa; }
strong.verdict { padding: 0 0.3em; }
p.note { color: #4b5563; }
"""

VERDICT_CLASS = dict(zip(VERDICTS, ("v-supported", "v-not-supported", "v-not-tested"), strict=True))


def verdict_style() -> str:
    """The verdict cells' CSS in the figures' verdict palette (plotstyle.VERDICT_COLOURS): a
    tint of the colour behind dark text, and a bar of the colour itself."""
    rules = []
    for verdict, css_class in VERDICT_CLASS.items():
        colour = plotstyle.VERDICT_COLOURS[verdict]
        red, green, blue = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
        rules.append(
            f".{css_class} {{ background: rgba({red}, {green}, {blue}, 0.18) !important; color: #1f2937;"
            f" box-shadow: inset 4px 0 0 {colour}; }}"
        )
    return "\n".join(rules) + "\n"


STYLE += verdict_style()


def page(title: str, body: str) -> str:
    """A self-contained HTML document (the report shows it in a frame of its own)."""
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}</body>\n</html>\n"
    )


# ---------------------------------------------------------------- Markdown (summary.md)


def _verdict_class(text: str) -> str | None:
    return VERDICT_CLASS.get(text.strip())


def inline(text: str) -> str:
    """Inline Markdown as HTML: `code` spans, then **bold** (a bold "Verdict: X" coloured)."""
    codes: list[str] = []

    def keep_code(m: re.Match) -> str:
        codes.append(f"<code>{m.group(1)}</code>")
        return f"\0{len(codes) - 1}\0"

    out = re.sub(r"`([^`]+)`", keep_code, html.escape(text, quote=False))

    def bold(m: re.Match) -> str:
        inner = m.group(1)
        verdict = re.fullmatch(r"Verdict: (.+)", inner)
        cls = _verdict_class(verdict.group(1)) if verdict else None
        return f'<strong class="verdict {cls}">{inner}</strong>' if cls else f"<strong>{inner}</strong>"

    out = re.sub(r"\*\*(.+?)\*\*", bold, out)
    return re.sub(r"\0(\d+)\0", lambda m: codes[int(m.group(1))], out)


def _cells(line: str) -> list[str]:
    """The cells of a pipe-table row (`\\|` is a literal bar)."""
    line = line.strip()
    line = line[1:] if line.startswith("|") else line
    line = line[:-1] if line.endswith("|") and not line.endswith("\\|") else line
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)]


def _is_separator(cells: list[str]) -> bool:
    return all(re.fullmatch(r":?-{1,}:?", c) for c in cells)


def _td(cell: str, tag: str = "td", align: str | None = None) -> str:
    cls = _verdict_class(cell) if tag == "td" else None
    attrs = f' class="{cls}"' if cls else ""
    attrs += f' style="text-align: {align}"' if align else ""
    return f"<{tag}{attrs}>{inline(cell)}</{tag}>"


def table_block(lines: list[str]) -> str:
    rows = [_cells(line) for line in lines]
    header, align = None, []
    if len(rows) >= 2 and _is_separator(rows[1]):
        header, sep, rows = rows[0], rows[1], rows[2:]
        for c in sep:
            align.append("center" if c.startswith(":") and c.endswith(":") else "right" if c.endswith(":") else None)
    out = ['<div class="scroll"><table>']
    if header is not None:
        out.append("<thead><tr>" + "".join(_td(c, "th") for c in header) + "</tr></thead>")
    out.append("<tbody>")
    for row in rows:
        cells = [_td(c, align=align[i] if i < len(align) else None) for i, c in enumerate(row)]
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table></div>")
    return "\n".join(out)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
ITEM = re.compile(r"^\s{0,3}[-*+]\s+(.*)$")


def _starts_block(line: str) -> bool:
    return bool(HEADING.match(line) or line.lstrip().startswith("|") or ITEM.match(line))


def markdown_to_html(text: str) -> str:
    """The body HTML of the Markdown subset summary.md uses (see the module docstring)."""
    lines = text.splitlines()
    out, i = [], 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
        elif m := HEADING.match(line):
            level, title = len(m.group(1)), m.group(2)
            out.append(f'<h{level} id="{_slug(title)}">{inline(title)}</h{level}>')
            i += 1
        elif line.lstrip().startswith("|"):
            j = i
            while j < len(lines) and lines[j].lstrip().startswith("|"):
                j += 1
            out.append(table_block(lines[i:j]))
            i = j
        elif ITEM.match(line):
            items: list[str] = []
            while i < len(lines) and lines[i].strip():
                if m := ITEM.match(lines[i]):
                    items.append(m.group(1))
                elif _starts_block(lines[i]):
                    break
                else:  # a continuation line of the item
                    items[-1] += "\n" + lines[i].strip()
                i += 1
            out.append("<ul>\n" + "\n".join(f"<li>{inline(t)}</li>" for t in items) + "\n</ul>")
        else:
            para = []
            while i < len(lines) and lines[i].strip() and not (para and _starts_block(lines[i])):
                para.append(lines[i].strip())
                i += 1
            out.append(f"<p>{inline(chr(10).join(para))}</p>")
    return "\n".join(out) + "\n"


def summary_page(markdown: str) -> str:
    m = re.search(r"^#\s+(.+)$", markdown, flags=re.MULTILINE)
    return page(m.group(1).strip() if m else "Summary", markdown_to_html(markdown))


# ---------------------------------------------------------------- tables (CSV)


def _number(value: float) -> str:
    return f"{value:.6g}"


# The columns a reader looks for first on a table page, in this order; then the losses.
KEY_COLUMNS = [
    "model",
    "decoder_model",
    "train_size",
    "train_size_label",
    "seed",
    "decoder_seed",
    "step",
    "solver",
    "panel",
    "t",
    "nfe_mean",
]


def key_columns_first(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with the KEY_COLUMNS it has first, then every column naming a loss, then the rest."""
    keys = [c for c in KEY_COLUMNS if c in frame.columns]
    losses = [c for c in frame.columns if "loss" in str(c) and c not in keys]
    return frame[keys + losses + [c for c in frame.columns if c not in keys and c not in losses]]


def table_page(frame: pd.DataFrame, source: str, max_rows: int = 200) -> str:
    """A result table as HTML: its size and seeds, the columns with one value in every row
    listed once above it, and its first `max_rows` rows (key columns and losses first:
    `key_columns_first`; numbers to 6 significant digits)."""
    frame = key_columns_first(frame)
    name = Path(source).stem
    parts = [f"<h1>{html.escape(name)}</h1>"]
    size = f"{len(frame)} rows × {len(frame.columns)} columns"
    parts.append(f"<p>File <code>{html.escape(source)}</code>: {size}.</p>")
    if "seed" in frame.columns and len(frame):
        seeds = sorted(frame["seed"].dropna().unique().tolist())
        parts.append(f"<p>Seeds in this table: {html.escape(', '.join(map(str, seeds)))} ({len(seeds)}).</p>")
    if not len(frame):
        columns = ", ".join(f"<code>{html.escape(str(c))}</code>" for c in frame.columns)
        parts.append(f'<p class="note">No rows: this config makes none. Columns: {columns}.</p>')
        return page(name, "\n".join(parts) + "\n")
    constant = [c for c in frame.columns if len(frame) > 1 and frame[c].nunique(dropna=False) == 1]
    shown = frame.drop(columns=constant).head(max_rows)
    if len(shown.columns):
        body = shown.to_html(index=False, border=0, na_rep="", float_format=_number, escape=True)
        parts.append(f'<div class="scroll">{body}</div>')
    if len(frame) > max_rows:
        parts.append(f'<p class="note">The first {max_rows} of {len(frame)} rows; the CSV file has them all.</p>')
    if constant:
        same = "; ".join(
            f"<code>{html.escape(str(c))}</code> = {html.escape(_cell(frame[c].iloc[0]))}" for c in constant
        )
        parts.append(f'<p class="same">The same in every row: {same}.</p>')
    parts.append('<p class="note">Numbers rounded to 6 significant digits here; the CSV file has 10.</p>')
    return page(name, "\n".join(parts) + "\n")


def _cell(value) -> str:
    if isinstance(value, float):
        return "" if pd.isna(value) else _number(value)
    return str(value)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="page", required=True)
    s = sub.add_parser("summary", help="summary.md as HTML")
    s.add_argument("--markdown", required=True, help="the summary (Markdown)")
    s.add_argument("--html", required=True, help="the page to write")
    t = sub.add_parser("table", help="a result table (CSV) as HTML")
    t.add_argument("--csv", required=True, help="the table (CSV)")
    t.add_argument("--html", required=True, help="the page to write")
    t.add_argument("--max-rows", type=int, default=200, help="rows shown (the first ones)")
    a = p.parse_args(argv)
    common.setup(1)
    if a.page == "summary":
        text = summary_page(Path(a.markdown).read_text(encoding="utf-8"))
    else:
        text = table_page(pd.read_csv(a.csv), a.csv, a.max_rows)
    io.write_text(text, a.html)
    return 0


if __name__ == "__main__":
    sys.exit(common.run(main))
