"""The embedding examples run to completion and print what they promise."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_example(name: str) -> str:
    done = subprocess.run(  # noqa: PLW1510 - the exit status is what is checked
        [sys.executable, str(REPO / "examples" / name)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return done.stdout


def test_embedded_tcp_replicates_a_counter_over_loopback_tcp() -> None:
    out = run_example("embedded_tcp.py")
    leader = re.search(r"^leader: (n[123])$", out, re.MULTILINE)
    assert leader, out
    for line in ("incr 5 -> 5", "incr 10 -> 15", "decr 3 -> 12", "get -> 12", "values: n1=12 n2=12 n3=12", "stopped"):
        assert line in out.splitlines(), (line, out)
    assert re.search(rf"^at follower n[123]: redirect to {leader.group(1)}$", out, re.MULTILINE), out
    assert "refused: unknown command 'launch rockets'" in out
    assert re.search(rf"^n1 event: (leader|follower) in term \d+, leader {leader.group(1)}$", out, re.MULTILINE), out


def test_custom_transport_replicates_an_application_state_machine_over_its_own_transport() -> None:
    out = run_example("custom_transport.py")
    assert re.search(r"^leader: [abc]$", out, re.MULTILINE), out
    for line in (
        "stock apples 10 -> 10",
        "take apples 3 -> 7",
        "take apples 50 -> error: only 7 apples in stock",
        "count apples -> 7",
        "sell apples -> error: cannot parse 'sell apples'; use: stock ITEM N, take ITEM N, count ITEM",
    ):
        assert line in out.splitlines(), (line, out)
    for node in "abc":
        assert re.search(rf"^{node}: {{'apples': 7}} via [1-9]\d* messages$", out, re.MULTILINE), out
