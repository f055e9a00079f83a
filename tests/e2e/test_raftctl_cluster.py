"""raftctl against real node processes on loopback: up/down, kill and restart of the leader,
partitions and their healing, a node crashing at start, and the live view surviving deaths.

Every test has a time budget (``deadline``) and its cluster is torn down by the fixture whatever
happens (``down``, then SIGKILL of any node process of that cluster file still alive).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
from rich.console import Console

from raftctl import cluster as domain
from raftctl import dashboard
from raftctl.model import STATUS_KEYS
from raftnode.config import load_config

from .raftctl_harness import Cluster, cluster, deadline


@pytest.fixture
def three(tmp_path: Path) -> Iterator[Cluster]:
    with cluster(tmp_path, 3) as c:
        yield c


@pytest.fixture
def five(tmp_path: Path) -> Iterator[Cluster]:
    with cluster(tmp_path, 5) as c:
        yield c


def test_up_is_idempotent_status_json_has_the_contract_shape_and_down_stops_everything(three: Cluster) -> None:
    with deadline(40):
        # As a user runs it: new processes.
        first = three.process("up", "--json")
        assert first.returncode == 0, first.stderr + three.logs_tail()
        report = json.loads(first.stdout)
        assert sorted(report["started"]) == ["n1", "n2", "n3"]
        assert report["status"]["leader"] in ("n1", "n2", "n3")

        again = three.process("up")
        assert again.returncode == 0
        assert "already running" in again.stdout

        status = three.status()
        assert set(status) == {"cluster", "leader", "nodes", "voters", "learners"} and status["cluster"] == "e2e"
        assert status["voters"] == ["n1", "n2", "n3"] and status["learners"] == []
        assert [n["id"] for n in status["nodes"]] == ["n1", "n2", "n3"]
        for row in status["nodes"]:
            assert list(row) == [*STATUS_KEYS, "peer", "client"]  # issue 17: the addresses too
            assert row["alive"] is True and isinstance(row["pid"], int)
            assert set(row["faults"]) >= {"partitioned_from", "delay_ms", "drop_pct"}
            assert row["state"] == {"value": 0}

        answer = three.process("run-command", "incr", "5")
        assert answer.returncode == 0, answer.stderr
        assert answer.stdout.startswith("5  (n") and "answered" in answer.stdout

        human = three.cli("status").stdout
        assert "leader" in human and "value=5" in human

        pids = three.node_pids()
        assert len(pids) == 3
        down = three.process("down")
        assert down.returncode == 0, down.stderr
        assert down.stdout.startswith("Stopped n1")
        assert three.node_pids() == []
        assert not list((three.dir / "state" / "pids").glob("*.pid"))

        gone = three.process("status")
        assert gone.returncode == 5
        assert gone.stdout == ""
        assert "raftctl up" in gone.stderr


def test_killing_the_leader_elects_another_commands_keep_committing_and_it_catches_up(three: Cluster) -> None:
    with deadline(60):
        three.cli("up")
        assert three.json("run-command", "incr", "1")["result"] == 1
        killed = three.json("kill", "leader")
        assert killed["action"] == "killed" and killed["signal"] == "SIGKILL"
        old = killed["node"]
        assert "is not running; nothing to do" in three.cli("kill", old).stdout

        three.cli("wait", "--leader", "--timeout", "10")
        new = three.leader()
        assert new != old
        rows = {r["id"]: r for r in three.status()["nodes"]}
        node = load_config(three.config).node(old)
        down = {key: (old if key == "id" else False if key == "alive" else None) for key in STATUS_KEYS}
        assert rows[old] == {**down, "peer": str(node.peer), "client": str(node.client)}  # issue 17: addresses too

        results = [three.json("run-command", "incr", "1", "--timeout", "5")["result"] for _ in range(3)]
        assert results == [2, 3, 4]

        assert three.cli("start", old).stdout.startswith(f"Started {old} (pid ")
        three.cli("wait", "--converged", "--timeout", "15")
        three.cli("query", "get", "--expect", "4")
        three.cli("query", "--node", "follower", "get", "--expect", "4")  # a follower asks the leader
        status = three.status()
        assert all(r["alive"] and r["state"] == {"value": 4} for r in status["nodes"])
        kinds = [(e["kind"], e["node"]) for e in three.json("events")["events"] if e["source"] == "raftctl"]
        assert ("killed", old) in kinds and ("started", old) in kinds


def test_a_leader_cut_off_with_a_minority_stops_serving_and_its_command_never_applies(five: Cluster) -> None:
    with deadline(60):
        five.cli("up", "--timeout", "15")
        five.cli("run-command", "incr", "1")
        old = five.leader()

        cut = five.json("partition", "leader,follower")
        minority, majority = cut["partition"]
        assert old in minority and len(minority) == 2 and len(majority) == 3
        rows = {r["id"]: r for r in five.status()["nodes"]}
        assert sorted(rows[old]["faults"]["partitioned_from"]) == sorted(majority)
        # It cannot confirm its leadership with a majority: no read, whether it still leads or not.
        unconfirmed = five.cli("query", "--node", old, "--no-follow", "--timeout", "1", "get", code=None)
        assert unconfirmed.exit_code != 0, unconfirmed.output

        # Whatever the old leader takes now, it cannot commit: refused, no leader, or timeout.
        refused = five.cli("run-command", "--node", old, "--no-follow", "--timeout", "1", "incr", "100", code=None)
        assert refused.exit_code in (1, 3, 4), refused.output

        five.cli("wait", "--leader", "--timeout", "10")
        new = five.leader()
        assert new in majority

        # CheckQuorum: the old leader steps down by itself within an election timeout or so.
        until = time.monotonic() + 5
        while {r["id"]: r for r in five.status()["nodes"]}[old]["role"] == "leader":
            assert time.monotonic() < until, "the cut-off leader never stepped down"
            time.sleep(0.1)
        stale = five.cli("query", "--node", old, "--no-follow", "--timeout", "1", "get", code=None)
        assert stale.exit_code != 0

        assert five.json("run-command", "incr", "10")["result"] == 11
        five.cli("heal")
        five.cli("wait", "--converged", "--timeout", "15")
        five.cli("query", "get", "--expect", "11")
        kinds = [e["kind"] for e in five.json("events")["events"] if e["source"] == "raftctl"]
        assert "partition" in kinds and "heal" in kinds


def test_a_partition_outlives_the_restart_of_a_node_and_heal_reconnects_it(three: Cluster) -> None:
    with deadline(45):
        three.cli("up")
        three.cli("partition", "n3")
        three.cli("run-command", "incr", "2")
        three.cli("restart", "n3")
        rows = {r["id"]: r for r in three.status()["nodes"]}
        assert rows["n3"]["faults"]["partitioned_from"] == ["n1", "n2"]
        assert rows["n1"]["faults"]["partitioned_from"] == ["n3"]
        three.cli("wait", "--converged", "--timeout", "1", code=4)  # n3 cannot catch up

        three.cli("slow", "n1", "--delay", "5")
        three.cli("heal")  # the partition goes, the delay stays
        rows = {r["id"]: r for r in three.status()["nodes"]}
        assert rows["n3"]["faults"]["partitioned_from"] == []
        assert rows["n1"]["faults"]["delay_ms"] == 5
        three.cli("fast", "n1")
        three.cli("wait", "--converged", "--timeout", "15")
        three.cli("query", "get", "--expect", "2")
        logs = three.cli("logs", "n3", "-n", "50").stdout
        assert "--- raftctl: starting n3" in logs


def test_a_node_that_crashes_at_start_shows_its_log_and_up_leaves_nothing_running(tmp_path: Path) -> None:
    with deadline(30), cluster(tmp_path, 3, state_machine="no_such_module:Machine") as c:
        result = c.cli("up", "--timeout", "10", code=5)
        assert "crashed while starting" in result.stderr
        assert "cannot load state machine" in result.stderr  # the node's own last log line
        assert c.node_pids() == []
        assert not list((c.dir / "state" / "pids").glob("*.pid"))


def test_watch_follows_a_node_that_dies_and_comes_back(three: Cluster) -> None:
    with deadline(45):
        three.cli("up")
        config = load_config(three.config)

        async def scenario() -> list[str]:
            watcher = dashboard.Watcher(config, interval=0.1)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(watcher.run)

                async def seen(kind: str, node: str) -> None:
                    while not any(e["kind"] == kind and e["node"] == node for e in watcher.state.feed):
                        await trio.sleep(0.05)

                with trio.fail_after(30):
                    while watcher.state.status is None:
                        await trio.sleep(0.05)
                    await domain.kill(config, "n2")
                    await seen("died", "n2")
                    await domain.start(config, "n2")
                    await seen("returned", "n2")
                nursery.cancel_scope.cancel()
            return [e["kind"] for e in watcher.state.feed]

        kinds = trio.run(scenario)
        assert "leader-change" in kinds  # the first picture names the leader
        assert "killed" in kinds and "started" in kinds  # from the audit log

        # The whole command, in a non-terminal: at least 4 frames a second, the table at the end.
        class Recorder:
            console = Console(width=100, color_system=None)

            def __init__(self) -> None:
                self.updates = 0

            def update(self, renderable: object, *, refresh: bool = False) -> None:
                assert refresh
                self.updates += 1

        live = Recorder()
        frames = trio.run(lambda: dashboard.watch(config, live, duration=1.0))  # type: ignore[arg-type]
        assert frames >= 4 and live.updates >= 4
        # Not a terminal (issue 17): the status table once, then plain event lines, not frames.
        shown = three.cli("watch", "--duration", "1.0").stdout
        assert "raftctl watch" not in shown and "ROLE" in shown and "n3" in shown
        assert "leader-change" in shown and "leader is" in shown
        # As JSON lines: one record per line, with its count, no markup, no table.
        records = [json.loads(line) for line in three.cli("watch", "-o", "jsonl", "--duration", "1.0").stdout.splitlines()]
        assert any(r["kind"] == "leader-change" and r["count"] == 1 and "leader is" in r["detail"] for r in records)


def test_operator_view_members_health_selectors_and_a_killed_nodes_events(three: Cluster) -> None:
    """Issue 17 on real processes: `kill n1 n2`-style selectors, members/health through a kill,
    and the killed node's own events still in `raftctl events` after it died."""
    with deadline(60):
        three.cli("up")
        members = three.json("members")["members"]
        assert {m["role"] for m in members} == {"voter"} and sum(m["leader"] for m in members) == 1
        # `up` returns once a leader is elected; a loaded machine may not have had a follower hear
        # it yet (health: "n2 follows nobody in term 0"). Healthy is claimed of a settled cluster.
        three.cli("wait", "--converged", "--timeout", "20")
        assert three.cli("health").exit_code == 0
        leader = three.leader()
        killed = three.json("kill", "follower", leader)["results"]
        assert {r["node"] for r in killed} != {leader} and len(killed) == 2
        assert three.json("health", code=3)["verdict"] == "no-leader"
        mine = three.json("events", "--node", leader, "--kind", "role")["events"]
        assert any(e["source"] == "node" and f"leader n{leader[1:]}" in e["detail"] for e in mine), mine
        three.cli("start", "--all")
        three.cli("wait", "--leader", "--timeout", "20")
        three.cli("fast", "--all")
