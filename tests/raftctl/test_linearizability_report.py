"""The HTML report: its structure, its escaping of hostile history text, and (where Chromium is
installed; CI requires it with RAFTCTL_REQUIRE_BROWSER=1) that a real headless browser renders it
with no script error."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser

import pytest
from click.testing import CliRunner

from raftctl.cli import main
from raftctl.linearizability import KEY_VALUE, Budget, check_history
from raftctl.linearizability.report import html_report

from .linearizability_helpers import Recorder

HOSTILE = "</script><script>alert(1)</script>"


def run_with_an_anomaly() -> Recorder:
    """Two keys; key b has a stale read; a fault and leader changes on the way; a hostile value."""
    rec = Recorder()
    rec.leader("n1", term=1)
    rec.call(1, "set", HOSTILE, key="a")
    rec.call(1, "set", "v1", key="b")
    rec.fault("partition", value=[["n1"], ["n2", "n3"]])
    rec.invoke(2, "set", "v2", key="b")
    rec.leader("n2", term=2)
    rec.ok(2)
    rec.invoke(4, "set", "v9", key="b")
    rec.info(4)
    rec.call(3, "get", result="v1", key="b")
    rec.call(3, "get", result=HOSTILE, key="a")
    rec.invoke(5, "cas", ["x", "y"], key="a")  # never answered
    return rec


class Outline(HTMLParser):
    """Elements by id and class, text by element, as a structural view of the page."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: dict[str, dict[str, str]] = {}
        self.classes: list[str] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        attributes = {k: v or "" for k, v in attrs}
        if "id" in attributes:
            self.ids[attributes["id"]] = attributes
        self.classes.extend(attributes.get("class", "").split())
        self._in_script = tag == "script"
        if tag == "script":
            self.scripts.append("")

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.scripts[-1] += data


def page() -> tuple[str, Recorder]:
    rec = run_with_an_anomaly()
    history = rec.history()
    return html_report(history, check_history(history, KEY_VALUE), title="test run"), rec


def test_the_page_holds_the_verdict_the_anomaly_and_every_operation_as_data():
    text, rec = page()
    outline = Outline()
    outline.feed(text)
    assert {"verdict", "anomaly-1", "timeline", "latency", "history-data"} <= set(outline.ids)
    assert outline.ids["anomaly-1"]["data-key"] == "b"
    assert "NOT linearizable" in text
    assert outline.classes.count("culprit") == 3  # the bar in the drawing, the row in the table, the legend
    assert 'get b → "v1" (process 3, lines 12–13) cannot be linearized' in html.unescape(text)
    data = json.loads(outline.scripts[0])
    assert len(data["ops"]) == len(rec.history().operations) == 7
    assert [op[3] for op in data["ops"]] == ["o", "o", "o", "i", "o", "o", "i"]
    assert [op[6] for op in data["ops"]].count(1) == 1
    assert [event[1] for event in data["events"]] == ["leader", "fault", "leader"]


def test_history_text_is_escaped_and_the_page_needs_no_network():
    text, _ = page()
    assert HOSTILE not in text
    assert "alert(1)" in text  # present, but only as escaped data
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)
    assert "default-src 'none'" in text


def test_keys_given_up_on_are_named_with_the_budget_they_exhausted():
    rec = Recorder()
    for p in range(6):
        rec.invoke(p, "set", f"v{p}", key="crowded")
    for p in range(6):
        rec.ok(p)
    rec.call(9, "get", result="v0", key="crowded")
    history = rec.history()
    text = html_report(history, check_history(history, KEY_VALUE, Budget(steps=5)))
    assert "unknown (budget exhausted)" in text
    assert "<h2>Keys the checker gave up on</h2><p>crowded (steps)</p>" in text


def test_check_history_writes_the_page(tmp_path):
    source = tmp_path / "run.jsonl"
    source.write_text("\n".join(run_with_an_anomaly().lines()))
    target = tmp_path / "run.html"
    result = CliRunner().invoke(main, ["check-history", str(source), "--html", str(target), "--json"])
    assert result.exit_code == 1, result.output
    assert "<title>run.jsonl: linearizability</title>" in target.read_text()


def chromium() -> str | None:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and os.environ.get("RAFTCTL_REQUIRE_BROWSER") == "1":
        pytest.fail("RAFTCTL_REQUIRE_BROWSER=1 but no chromium on PATH")
    return found


@pytest.mark.skipif(chromium() is None, reason="chromium is not installed")
def test_a_headless_browser_renders_the_page_without_a_script_error(tmp_path):
    text, rec = page()
    path = tmp_path / "report.html"
    path.write_text(text)
    done = subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
         "--enable-logging=stderr", "--v=0", "--window-size=1200,900", "--dump-dom", path.as_uri()],
        capture_output=True, text=True, timeout=90, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], console
    body = re.search(r"<body([^>]*)>", done.stdout).group(1)
    assert 'data-rendered="yes"' in body  # the script ran to its end
    assert f'data-drawn-ops="{len(rec.history().operations)}"' in body
    assert re.search(r'<pre id="script-errors" hidden=""></pre>', done.stdout)
    assert 'id="anomaly-1"' in done.stdout and "cannot be linearized" in done.stdout
