"""The one-shot commands (`status`, `leader`, `run-command`, `query`: no trio, see raftctl.oneshot)
as a user runs them -- new processes -- against real nodes: redirects followed, a dead node
skipped, a cluster that lost its majority retried until --timeout (exit 3), and a stopped
cluster reported at once (exit 5 with the hint)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .raftctl_harness import Cluster, cluster, deadline


@pytest.fixture
def three(tmp_path: Path) -> Iterator[Cluster]:
    with cluster(tmp_path, 3) as c:
        yield c


def test_one_shot_commands_against_real_nodes_that_die_one_by_one(three: Cluster) -> None:
    with deadline(60):
        three.cli("up")
        leader = three.process("leader")
        assert leader.returncode == 0, leader.stderr
        first = leader.stdout.strip()

        redirected = three.process("run-command", "--json", "--node", "follower", "incr", "2")
        assert redirected.returncode == 0, redirected.stderr
        reply = json.loads(redirected.stdout)
        assert reply["node"] == first and reply["result"] == 2 and reply["attempts"] == 2
        assert three.process("query", "get", "--expect", "2").returncode == 0

        # A dead node is skipped: the command goes round to whoever leads now.
        three.cli("kill", "n1")
        three.cli("wait", "--leader", "--timeout", "10")
        skipped = three.process("run-command", "--json", "incr", "1")
        assert skipped.returncode == 0, skipped.stderr
        reply = json.loads(skipped.stdout)
        # A new process looks first: its session is registered at the leader it sees, and the
        # command itself goes there at once.
        assert reply["node"] != "n1" and reply["result"] == 3 and reply["attempts"] == 1
        named = three.process("run-command", "--node", "n1", "incr", "1")
        assert named.returncode == 5 and "node n1 is not running" in named.stderr

        # Without a majority nobody leads: retried until --timeout, then exit 3.
        three.cli("kill", "leader")
        started = time.monotonic()
        stuck = three.process("run-command", "--timeout", "1", "incr", "1")
        assert stuck.returncode == 3, stuck.stdout + stuck.stderr
        assert "no leader" in stuck.stderr and time.monotonic() - started < 10
        assert three.process("leader").returncode == 3
        status = three.process("status", "--json")
        assert status.returncode == 0, status.stderr
        document = json.loads(status.stdout)
        assert document["leader"] is None and [r["alive"] for r in document["nodes"]].count(True) == 1
        assert "down" in three.process("status").stdout

        three.cli("down")
        for command in (["status"], ["status", "--json"], ["leader"], ["run-command", "incr", "1"], ["query", "get"]):
            gone = three.process(*command)
            assert gone.returncode == 5, command
            if "--json" in command:  # issue 17: in JSON mode the error is a document on stdout
                assert json.loads(gone.stdout)["code"] == "not_running"
            else:
                assert gone.stdout == "", command
            assert "not running" in gone.stderr and "raftctl up" in gone.stderr, command
