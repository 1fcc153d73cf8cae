"""The README tells the truth about the committed run: its claims table has the verdicts of
results/default/summary.md, its links lead to files that exist, and it stays short."""

import re

from workflow_helpers import REPO

README = (REPO / "README.md").read_text()


def _verdicts(text: str, pattern: str) -> dict[str, str]:
    return {m["label"]: m["verdict"].strip() for m in re.finditer(pattern, text, re.M)}


def test_the_claims_table_has_the_committed_verdicts():
    summary = (REPO / "results/default/summary.md").read_text()
    committed = _verdicts(summary, r"^\| (?P<label>\d[a-c]?): [^|]+\| (?P<verdict>[^|]+) \|$")
    shown = _verdicts(README, r"^\| (?P<label>\d[a-c]?) [^|]+\| (?P<verdict>[^|]+) \|")
    assert committed and shown == committed


def test_every_local_link_exists():
    links = re.findall(r"\]\(((?!https?://)[^)#]+)\)", README)
    assert links
    assert not [link for link in links if not (REPO / link).exists()]


def test_the_readme_stays_short():
    assert len(README.splitlines()) <= 250
