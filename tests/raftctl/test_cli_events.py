"""`raftctl events` over the nodes' event files (issue 17): a node that is down still has its
history, merged in time order with raftctl's audit log, filtered by --node, --kind and --since.
No node runs: the files are written the way a node writes them (raftnode.node.eventlog)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from raftctl import events
from raftctl.cli import main
from raftctl.clusterfile import write_config
from raftctl.supervisor import StatePaths
from raftnode.config import load_config
from raftnode.node.eventlog import EventFile
from raftnode.node.runtime import NodeEvent

from ..e2e.raftctl_harness import free_base_port


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    return write_config(tmp_path / "cluster.toml", 3, free_base_port(3))


def run(config_path: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--config", str(config_path), *args])


def node_wrote(paths: StatePaths, node: str, at: float, kind: str, detail: str) -> None:
    EventFile(paths.node_event_file(node)).append(NodeEvent(time=at, node=node, kind=kind, detail=detail))


def test_the_events_of_dead_nodes_merge_in_time_order_and_filter(config_path: Path) -> None:
    paths = StatePaths.of(load_config(config_path))
    now = time.time()
    node_wrote(paths, "n1", now - 600, "role", "leader in term 1, leader n1")
    node_wrote(paths, "n2", now - 500, "pre-vote", "pre-vote for term 2")
    events.record(paths, "killed", "process 42 (SIGKILL)", node="n1")  # now
    node_wrote(paths, "n3", now - 550, "role", "follower in term 1, leader n1")
    everything = json.loads(run(config_path, "events", "--json").stdout)["events"]
    assert [(e["node"], e["kind"]) for e in everything] == [("n1", "role"), ("n3", "role"), ("n2", "pre-vote"),
                                                            ("n1", "killed")]
    only = json.loads(run(config_path, "events", "--json", "--kind", "role,killed", "--node", "n1").stdout)["events"]
    assert [(e["node"], e["kind"]) for e in only] == [("n1", "role"), ("n1", "killed")]
    recent = run(config_path, "events", "-o", "jsonl", "--since", "9m")
    assert [json.loads(line)["node"] for line in recent.stdout.splitlines()] == ["n2", "n1"]


def test_a_bad_since_or_node_is_exit_2(config_path: Path) -> None:
    assert run(config_path, "events", "--since", "yesterday").exit_code == 2
    assert run(config_path, "events", "--node", "n9").exit_code == 2


def test_nothing_recorded_and_nothing_running_is_exit_5(config_path: Path) -> None:
    result = run(config_path, "events")
    assert result.exit_code == 5 and "not running" in result.stderr


def test_since_takes_durations_and_local_times() -> None:
    assert events.parse_since("90s", 1000.0) == 910.0 and events.parse_since("2h", 10_000.0) == 2800.0
    assert events.parse_since("2026-12-07 13:05", 0) == time.mktime((2026, 12, 7, 13, 5, 0, 0, 0, -1))
    with pytest.raises(ValueError, match="neither"):
        events.parse_since("5 minutes", 0)
