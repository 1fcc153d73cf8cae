"""The README tells the truth about the committed run: its claims table has the verdicts and
the numbers of results/default/summary.md, its links lead to files that exist, and it stays
short."""

import re

from workflow_helpers import REPO

README = (REPO / "README.md").read_text()
SUMMARY = REPO / "results/default/summary.md"

# A claim's label: "1a", "2", "1b (GFE-lbfgs)" (a model beyond the papers judged by claim 1b's criterion).
LABEL = r"\d[a-c]?(?: \(GFE-[a-z0-9]+\))?"
# A number as the summary and the README write it: a true minus sign or a plus, thousands commas.
NUMBER = re.compile(r"(?<![\w.])[−+]?\d[\d,]*(?:\.\d+)?(?!\w)")


def _verdicts(text: str, pattern: str) -> dict[str, str]:
    return {m["label"]: m["verdict"].strip() for m in re.finditer(pattern, text, re.M)}


def readme_rows() -> dict[str, str]:
    """The README's claims table: {label: its verdict and numbers cells}."""
    rows = re.finditer(rf"^\| (?P<label>{LABEL}) [^|]+\|(?P<rest>.+)\|$", README, re.M)
    return {m["label"]: m["rest"] for m in rows}


def section(summary: str, label: str) -> str:
    """The text of claim `label`'s sections in summary.md (one per dataset)."""
    parts = re.split(r"^## ", summary, flags=re.M)
    return "\n".join(p for p in parts if p.startswith(f"Claim {label}: "))


def numbers(text: str) -> list[str]:
    return NUMBER.findall(re.sub(r"\]\([^)]*\)", "]", text))  # link targets hold no numbers


def value(number: str) -> float:
    return float(number.replace("−", "-").replace(",", ""))


def shown_as(summary_value: float, readme_number: str) -> bool:
    """Whether `readme_number` is `summary_value` rounded to its own decimals, as written or as a
    percentage of it (a fraction 0.04258 is "4.26%")."""
    decimals = len(readme_number.split(".")[1]) if "." in readme_number else 0
    target = value(readme_number)
    return any(abs(round(v, decimals) - target) < 1e-9 for v in (summary_value, 100 * summary_value))


def test_the_claims_table_has_the_committed_verdicts():
    summary = SUMMARY.read_text()
    committed = _verdicts(summary, rf"^\| (?P<label>{LABEL}): [^|]+\| (?P<verdict>[^|]+) \|$")
    shown = _verdicts(README, rf"^\| (?P<label>{LABEL}) [^|]+\| (?P<verdict>[^|]+) \|")
    assert committed and shown == committed


def test_every_number_in_the_claims_table_is_the_summary_s():
    """Number for number: each number in a claim's row of the README (its verdict and numbers
    cells) is one of the numbers of that claim's section of summary.md, rounded to the digits
    the README shows (a mismatch such as "7.8×" against the summary's 10.06 fails)."""
    summary = SUMMARY.read_text()
    rows = readme_rows()
    assert rows
    wrong = {}
    for label, cells in rows.items():
        found = [value(n) for n in numbers(section(summary, label))]
        assert found, f"summary.md has no section for claim {label}"
        missing = [n for n in numbers(cells) if not any(shown_as(v, n) for v in found)]
        if missing:
            wrong[label] = missing
    assert not wrong, f"README numbers not in the claim's section of summary.md: {wrong}"


def test_the_number_check_catches_a_mismatch():
    summary = "## Claim 2: x\n\nSeconds per iteration (GFE-adjoint/GFE-rk4 = 10.06); 0.04258 [0.03332, 0.05184].\n"
    found = [value(n) for n in numbers(section(summary, "2"))]
    assert all(any(shown_as(v, n) for v in found) for n in ("10.1", "4.26", "+3.33", "10"))
    assert not any(shown_as(v, "7.8") for v in found)
    assert numbers("−0.0446 [−0.0593, +5.18]; 1,399,704 and 1b ([docs/e1.md](docs/e1_2.md))") == [
        "−0.0446",
        "−0.0593",
        "+5.18",
        "1,399,704",
    ]


def test_every_local_link_exists():
    links = re.findall(r"\]\(((?!https?://)[^)#]+)\)", README)
    assert links
    assert not [link for link in links if not (REPO / link).exists()]


def test_the_readme_stays_short():
    assert len(README.splitlines()) <= 250
