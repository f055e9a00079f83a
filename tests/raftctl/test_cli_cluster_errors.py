"""The cluster commands, parsed and failing the way cli.md says, without any node running.

The cluster file points at ports nobody listens on, so every command meets a cluster that is not
running: exit 5 with the hint to run `raftctl up`; a node that does not exist is exit 2 with the
valid ids; idempotent commands (`down`, `kill` of a dead node) succeed. Nothing here starts a
process except through `up` with a port taken, which must start nothing.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from raftctl import events
from raftctl.cli import main
from raftctl.clusterfile import write_config
from raftctl.supervisor import StatePaths
from raftnode.config import load_config

from ..e2e.raftctl_harness import free_base_port


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    return write_config(tmp_path / "cluster.toml", 3, free_base_port(3))


def run(config_path: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--config", str(config_path), *args])


def assert_fails(result: Result, code: int, *needles: str, json_mode: bool = False) -> None:
    """Exit ``code``, the message on stderr; stdout empty, or in JSON mode the error document."""
    assert result.exit_code == code, (result.exit_code, result.output)
    if json_mode:
        document = json.loads(result.stdout)
        assert document["exit_code"] == code and document["error"] in result.stderr, document
    else:
        assert result.stdout == ""
    assert result.stderr.startswith("Error: ") or "Usage:" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in result.stderr, (needle, result.stderr)


NOT_RUNNING = ["status", "status --json", "leader", "wait --leader", "wait --converged --json",
               "run-command incr 1", "query get", "run-command --json decr -5", "kill leader",
               "stop follower", "partition n1", "heal", "slow n1 --delay 10", "flaky n2 --drop 5",
               "duplicate n3 --pct 5", "fast n1", "transfer-leader n2", "snapshot leader",
               "restart follower", "logs leader"]


@pytest.mark.parametrize("command", NOT_RUNNING)
def test_a_cluster_that_is_not_running_is_exit_5_with_the_hint_to_run_up(config_path: Path, command: str) -> None:
    started = time.monotonic()
    result = run(config_path, *command.split())
    assert_fails(result, 5, "not running", "raftctl up", json_mode="--json" in command)
    assert time.monotonic() - started < 3, "a stopped cluster must be reported at once, not after a timeout"


def test_a_named_node_that_is_down_is_exit_5(config_path: Path) -> None:
    assert_fails(run(config_path, "run-command", "--node", "n2", "incr", "1"), 5, "node n2 is not running")
    assert_fails(run(config_path, "snapshot", "n2"), 5, "node n2 is not running")


UNKNOWN = ["kill n7", "stop n7", "start n7", "restart n7", "run-command --node n7 incr 1",
           "query --node n7 get", "partition n1,n7", "slow n7 --delay 5", "fast n7",
           "transfer-leader n7", "snapshot n7", "logs n7", "events --node n7"]


@pytest.mark.parametrize("command", UNKNOWN)
def test_an_unknown_node_is_exit_2_listing_the_valid_ids(config_path: Path, command: str) -> None:
    assert_fails(run(config_path, *command.split()), 2, "'n7'", "n1, n2, n3", "leader")


@pytest.mark.parametrize(
    ("command", "needle"),
    [
        ("partition n1,n1", "twice"),
        ("partition n1 n1,n2", "two groups"),
        ("partition n1,n2,n3", "every node on one side"),
        ("partition n1,", "bad group"),
        ("wait", "name a condition"),
        ("wait --applied -1", "-1"),
        ("slow n1", "--delay"),
        ("flaky n1 --drop 101", "101"),
        ("run-command", "WORDS"),
        ("run-command --no-follow incr 1", "--no-follow needs --node"),
        ("start leader", "by its id"),
    ],
)
def test_usage_errors_are_exit_2(config_path: Path, command: str, needle: str) -> None:
    assert_fails(run(config_path, *command.split()), 2, needle)


def test_a_missing_cluster_file_is_exit_2_naming_it(tmp_path: Path) -> None:
    assert_fails(run(tmp_path / "nope.toml", "status"), 2, "nope.toml", "raftctl init")


def test_down_and_killing_a_dead_node_are_idempotent(config_path: Path) -> None:
    down = run(config_path, "down")
    assert down.exit_code == 0 and "not running; nothing to stop" in down.stdout
    assert json.loads(run(config_path, "down", "--json").stdout) == {"stopped": [], "purged": []}
    kill = run(config_path, "kill", "n2")
    assert kill.exit_code == 0 and kill.stdout == "n2 is not running; nothing to do.\n"
    stop = run(config_path, "stop", "n3", "--json")
    assert json.loads(stop.stdout)["action"] == "not-running"


def test_up_with_a_port_in_use_names_the_node_and_port_and_starts_nothing(config_path: Path) -> None:
    config = load_config(config_path)
    taken = config.node("n2").client
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((taken.host, taken.port))
        listener.listen()
        result = run(config_path, "up")
    assert_fails(result, 2, "node n2", f"client address {taken}", "in use")
    assert not StatePaths.of(config).pids.exists() or not list(StatePaths.of(config).pids.iterdir())


def test_events_work_without_a_running_cluster_and_merge_in_time_order(config_path: Path) -> None:
    paths = StatePaths.of(load_config(config_path))
    events.record(paths, "partition", "n1 | n2,n3")
    events.record(paths, "killed", "process 42 (SIGKILL)", node="n2")
    with paths.events.open("a") as f:
        f.write('{"torn line\n')
    human = run(config_path, "events")
    assert human.exit_code == 0, human.output
    lines = human.stdout.splitlines()
    assert len(lines) == 2
    assert "partition" in lines[0] and "n1 | n2,n3" in lines[0] and "[raftctl]" in lines[0]
    assert " n2 " in lines[1] and "killed" in lines[1]
    document = json.loads(run(config_path, "events", "--json").stdout)
    assert [e["kind"] for e in document["events"]] == ["partition", "killed"]
    only = json.loads(run(config_path, "events", "--json", "--node", "n3").stdout)
    assert [e["kind"] for e in only["events"]] == ["partition"]  # cluster-wide events stay


def test_logs_of_a_node_never_started_is_exit_5(config_path: Path) -> None:
    assert_fails(run(config_path, "logs", "n1"), 5, "never started")


def test_logs_prints_the_tail_and_json(config_path: Path) -> None:
    paths = StatePaths.of(load_config(config_path))
    paths.ensure()
    paths.log_file("n1").write_text("one\ntwo\nthree\n")
    assert run(config_path, "logs", "n1", "-n", "2").stdout == "two\nthree\n"
    assert json.loads(run(config_path, "logs", "n1", "--json").stdout)["lines"] == ["one", "two", "three"]


def test_every_command_that_prints_takes_json() -> None:
    # `raftctl --help` lists each command (two spaces in) with its short help after the name.
    listing = CliRunner().invoke(main, ["--help"]).stdout.splitlines()
    listed = {line.split()[0]: line.split(maxsplit=1)[1:] for line in listing if line[:2] == "  " and line[2:3].strip()}
    for name, command in main.commands.items():
        options = {opt for param in command.params for opt in getattr(param, "opts", [])}
        assert "--json" in options, f"`raftctl {name}` has no --json"
        assert listed.get(name), f"`raftctl --help` does not list {name} with a short help"
        own_help = CliRunner().invoke(main, [name, "--help"])
        assert own_help.exit_code == 0 and "--json" in own_help.stdout, (name, own_help.output)


def test_run_command_passes_negative_numbers_through_as_words(config_path: Path) -> None:
    # `decr -5` must reach the cluster (not running: 5), not be taken for an option (2).
    assert_fails(run(config_path, "run-command", "decr", "-5"), 5)


def test_help_documents_the_exit_codes_and_node_names() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert "Exit codes: 0 success" in result.stdout
    kill_help = CliRunner().invoke(main, ["kill", "--help"]).stdout
    assert "`leader`" in kill_help and "`follower`" in kill_help
    query_help = CliRunner().invoke(main, ["query", "--help"]).stdout
    assert "linearizable" in query_help and "without a log entry" in query_help
