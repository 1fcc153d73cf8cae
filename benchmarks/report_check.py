"""Build the Snakemake HTML report and check it in a real headless browser (Chromium).

    .venv/bin/python benchmarks/report_check.py                  # results/default/report.html
    .venv/bin/python benchmarks/report_check.py --screenshots /tmp/report-check
    .venv/bin/python benchmarks/report_check.py --report results/quick/report.html -- --configfile config/quick.yaml
    .venv/bin/python benchmarks/report_check.py --no-build --report results/quick/report.html

It runs `snakemake --report REPORT` (unless --no-build), opens the report in Chromium
(`chromium --headless`, driven over the DevTools protocol on a pipe; no browser-automation
package needed), then clicks through it as a reader would. The landing page must show the
workflow description (workflow/report/workflow.rst) with its title in view; Summary, then
the item's eye button, must show the summary page inline, whose rendered text must hold
every verdict of the claims table of summary.md; Tables, then the eye button of
e1_data_efficiency, must show that table inline with its file and seeds. With --screenshots
DIR, a PNG of each view. Exit status 0 when every check passes, 1 when one fails (the
message says what the reader would miss), 2 when no Chromium is found (Debian: `apt-get
install chromium`; or set CHROMIUM). tests/test_report.py runs it (a slow test).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from gfe import io

REPO = Path(__file__).resolve().parents[1]
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
VERDICTS = ("supported", "not supported", "not tested at this budget")


# DevTools errors of a frame that is navigating or gone, not of the report
FRAME_GONE = ("Cannot find context with specified id", "No frame for given id found", "Execution context was destroyed")


def frame_gone(error: RuntimeError) -> bool:
    """Whether a DevTools call failed only because its page or frame was navigating."""
    return any(message in str(error) for message in FRAME_GONE)


def find_browser() -> str | None:
    for name in (os.environ.get("CHROMIUM"), *BROWSERS):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


class Browser:
    """Headless Chromium driven over the DevTools protocol on fds 3 and 4 (--remote-debugging-pipe):
    JSON messages ended by a NUL byte."""

    def __init__(self, executable: str, width: int = 1400, height: int = 1000):
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()

        def fds() -> None:  # in the child: its fd 3 reads commands, fd 4 writes answers
            read, write = os.dup(to_child_r), os.dup(from_child_w)  # neither is 3 or 4 now
            os.dup2(read, 3)
            os.dup2(write, 4)

        args = [executable, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run"]
        args += ["--remote-debugging-pipe", f"--window-size={width},{height}", "--hide-scrollbars", "about:blank"]
        self.proc = subprocess.Popen(  # noqa: S603
            args, preexec_fn=fds, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, close_fds=False
        )
        os.close(to_child_r)
        os.close(from_child_w)
        self._buffer = b""
        self._id = 0
        targets = self.call("Target.getTargets")["targetInfos"]
        page = next(t for t in targets if t["type"] == "page")
        self.session = self.call("Target.attachToTarget", targetId=page["targetId"], flatten=True)["sessionId"]
        self.call("Page.enable", session=True)
        self.call("Runtime.enable", session=True)

    def call(self, method: str, session: bool = False, **params) -> dict:
        self._id += 1
        message = {"id": self._id, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        os.write(self._to_child, json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in self._buffer:
                chunk = os.read(self._from_child, 1 << 20)
                if not chunk:
                    raise RuntimeError("chromium closed the DevTools pipe")
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            answer = json.loads(raw)
            if answer.get("id") == self._id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer.get("result", {})

    def evaluate(self, expression: str, context: int | None = None):
        params = {"expression": expression, "returnByValue": True, "awaitPromise": True}
        if context is not None:
            params["contextId"] = context
        result = self.call("Runtime.evaluate", session=True, **params)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression[:80]}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 20.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                value = self.evaluate(expression)
            except RuntimeError as error:  # the page is navigating: ask again
                if not frame_gone(error):
                    raise
                value = None
            if value:
                return value
            time.sleep(0.2)
        raise TimeoutError(f"not true within {timeout} s: {expression}")

    def click_text(self, text: str, selector: str = "a") -> None:
        """Click the first `selector` element whose visible text is `text` (as a reader would)."""
        found = self.evaluate(
            f"(() => {{ const el = [...document.querySelectorAll({json.dumps(selector)})]"
            f".find(e => e.innerText.trim() === {json.dumps(text)}); if (el) el.click(); return !!el; }})()"
        )
        if not found:
            raise AssertionError(f"no {selector} with the text {text!r} on the page")

    def frame_text(self, timeout: float = 20.0) -> str:
        """The rendered text (innerText) of the report's content frame, the shown result."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            tree = self.call("Page.getFrameTree", session=True)["frameTree"]
            for child in tree.get("childFrames", []):
                try:
                    world = self.call("Page.createIsolatedWorld", session=True, frameId=child["frame"]["id"])
                    text = self.evaluate("document.body ? document.body.innerText : ''", world["executionContextId"])
                except RuntimeError as error:
                    # the frame navigated or went away between the two calls (a loaded machine
                    # makes this likelier): ask again, until the timeout
                    if not frame_gone(error):
                        raise
                    continue
                if text:
                    return text
            time.sleep(0.2)
        raise TimeoutError("no content frame with text")

    def screenshot(self, path: Path) -> None:
        data = base64.b64decode(self.call("Page.captureScreenshot", session=True, format="png")["data"])

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as handle:
                handle.write(data)

        io.atomic_write(path, write)

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except RuntimeError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        os.close(self._to_child)
        os.close(self._from_child)


def build(report: Path, snakemake_args: list[str]) -> None:
    snakemake = Path(sys.executable).with_name("snakemake")
    command = [str(snakemake), "--report", str(report), *snakemake_args]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)  # noqa: S603
    if result.returncode != 0:
        raise SystemExit(f"snakemake --report failed:\n{result.stderr[-3000:]}")


class CheckFailed(Exception):
    """What the reader does not see."""


def expect(condition, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def expected_verdicts(summary_md: str) -> list[str]:
    """The verdict column of the summary's claims table (its first pipe table)."""
    rows = re.findall(r"^\|(.+)\|\s*$", summary_md, flags=re.MULTILINE)
    cells = [[c.strip() for c in row.split("|")] for row in rows]
    return [row[-1] for row in cells if row[-1] in VERDICTS]


def open_result(browser: Browser, category: str, item: str) -> str:
    """From the result categories: the category, then the eye button of its item (a row of
    the category's label table) whose label starts with `item`; the text the content frame
    then shows."""
    browser.click_text(category)
    browser.wait_for(f"document.body.innerText.includes({json.dumps(item)})")
    clicked = browser.evaluate(
        "(() => { const row = [...document.querySelectorAll('nav tr')]"
        f".find(e => e.innerText.trim().startsWith({json.dumps(item)}));"
        " const eye = row && row.querySelector('a[iconname=eye]'); if (eye) eye.click(); return !!eye; })()"
    )
    expect(clicked, f"no eye button of {item!r} in {category}")
    return browser.frame_text()


def check(report: Path, summary_md: Path, screenshots: Path | None, browser: Browser) -> list[str]:
    """Click through the report as a reader would; what was seen (CheckFailed when not)."""
    done = []

    def shot(name: str) -> None:
        if screenshots is not None:
            browser.screenshot(screenshots / f"{name}.png")

    browser.call("Page.navigate", session=True, url=report.resolve().as_uri())
    browser.wait_for("document.querySelector('#app') && document.querySelector('#app').innerText.length > 0")
    time.sleep(1.0)  # the rule graph (vega) draws
    landing = browser.evaluate("document.body.innerText")
    expect("How to read this report" in landing, "the landing page lacks the workflow description")
    top = browser.evaluate("document.querySelector('#app h1').getBoundingClientRect().top")
    expect(top >= 0, f"the description's title is {-top:.0f} px above the page, out of scroll reach")
    done.append("landing page: the workflow description, its title in view")
    shot("1_landing")

    markdown = summary_md.read_text(encoding="utf-8")
    verdicts = expected_verdicts(markdown)
    title = re.search(r"^#\s+(.+)$", markdown, flags=re.MULTILINE).group(1).strip()
    expect(verdicts, f"no verdicts in {summary_md}'s claims table")
    text = open_result(browser, "Summary", "claims and verdicts")
    expect(title in text, f"the summary page lacks its title {title!r}: {text[:300]!r}")
    for verdict in set(verdicts):
        shown, expected = text.count(f"Verdict: {verdict}"), verdicts.count(verdict)
        expect(shown == expected, f"'Verdict: {verdict}' shown {shown} times, {expected} expected")
    done.append(f"summary page shown inline, its {len(verdicts)} verdicts visible: {', '.join(verdicts)}")
    shot("2_summary")

    browser.click_text("Results")  # the breadcrumb back to the result categories
    text = open_result(browser, "Tables", "e1_data_efficiency")
    deadline = time.monotonic() + 20
    while "Seeds in this table" not in text and time.monotonic() < deadline:  # the previous page until it loads
        time.sleep(0.2)
        text = browser.frame_text()
    expect("e1_data_efficiency.csv" in text and "Seeds in this table" in text, f"table page: {text[:300]!r}")
    done.append("table page e1_data_efficiency shown inline, with its file and seeds")
    shot("3_table")
    return done


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--report", default="results/default/report.html", help="the report file (built here)")
    p.add_argument("--summary", default=None, help="its summary.md (default: beside the report)")
    p.add_argument("--no-build", action="store_true", help="check an existing report")
    p.add_argument("--screenshots", default=None, help="a folder for a PNG of each view")
    p.add_argument("snakemake_args", nargs="*", help="more arguments of snakemake --report (e.g. --configfile ...)")
    a = p.parse_args(argv)
    executable = find_browser()
    if executable is None:
        print("report_check: no Chromium found (apt-get install chromium, or set CHROMIUM)", file=sys.stderr)
        return 2
    report = (REPO / a.report).resolve()
    summary = Path(a.summary) if a.summary else report.with_name("summary.md")
    if not a.no_build:
        build(report, a.snakemake_args)
    for path in (report, summary):
        if not path.is_file():
            print(f"report_check: no {path}", file=sys.stderr)
            return 1
    browser = Browser(executable)
    try:
        done = check(report, summary, Path(a.screenshots) if a.screenshots else None, browser)
    except CheckFailed as failure:
        print(f"report_check: FAILED: {failure}", file=sys.stderr)
        return 1
    finally:
        browser.close()
    print("\n".join(f"ok: {line}" for line in done))
    return 0


if __name__ == "__main__":
    sys.exit(main())
