"""The pure parts of raftctl's chaos, audit log and process supervision.

- partitions follow blockade: named groups, the rest one more group, a node on one side only;
- the audit log appends whole lines and survives torn ones; a follower reads only what is new;
- a pid file is trusted only for a live process that is that node of that cluster file.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from raftctl import chaos, events, supervisor
from raftctl.clusterfile import write_config
from raftctl.errors import UsageProblem
from raftnode.config import load_config

from ..e2e.raftctl_harness import free_base_port

NODES = ("n1", "n2", "n3", "n4", "n5")


# -- partitions ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("groups", "plan"),
    [
        ([["n2"]], [["n2"], ["n1", "n3", "n4", "n5"]]),
        ([["n1", "n2"], ["n3", "n4", "n5"]], [["n1", "n2"], ["n3", "n4", "n5"]]),
        ([["n2", "n1"], ["n4"]], [["n1", "n2"], ["n4"], ["n3", "n5"]]),
        ([["n5"], ["n4"], ["n3"], ["n2"]], [["n5"], ["n4"], ["n3"], ["n2"], ["n1"]]),
    ],
)
def test_nodes_not_named_form_one_more_group(groups: list[list[str]], plan: list[list[str]]) -> None:
    assert chaos.plan_partition(groups, NODES) == plan


def test_a_node_belongs_to_one_side_and_a_partition_needs_two() -> None:
    with pytest.raises(UsageProblem, match="twice in one group"):
        chaos.plan_partition([["n1", "n1"]], NODES)
    with pytest.raises(UsageProblem, match="in two groups"):
        chaos.plan_partition([["n1"], ["n2", "n1"]], NODES)
    with pytest.raises(UsageProblem, match="every node on one side"):
        chaos.plan_partition([list(NODES)], NODES)


def test_groups_parse_from_comma_lists() -> None:
    assert chaos.parse_groups(["n1,n2", " n3 "]) == [["n1", "n2"], ["n3"]]
    for bad in (["n1,,n2"], [","], []):
        with pytest.raises(UsageProblem):
            chaos.parse_groups(bad)


def test_each_node_is_cut_from_every_node_outside_its_group_in_both_directions() -> None:
    plan = [["n1", "n2"], ["n3", "n4", "n5"]]
    assert chaos.partitioned_from(plan, "n1") == ["n3", "n4", "n5"]
    assert chaos.partitioned_from(plan, "n4") == ["n1", "n2"]
    assert chaos.partitioned_from([], "n1") == []
    for a in NODES:
        for b in NODES:
            assert (b in chaos.partitioned_from(plan, a)) == (a in chaos.partitioned_from(plan, b))


def test_wanted_faults_persist_and_make_complete_records(tmp_path: Path) -> None:
    path = tmp_path / "faults.json"
    wanted = chaos.WantedFaults.load(path)
    assert wanted.node_faults("n1") == {"partitioned_from": [], "delay_ms": 0.0, "jitter_ms": 0.0,
                                        "drop_pct": 0.0, "duplicate_pct": 0.0}
    wanted.partition = [["n1"], ["n2", "n3"]]
    wanted.set_links("n2", delay_ms=30, jitter_ms=5)
    wanted.set_links("n2", drop_pct=10)  # faults add up
    wanted.save(path)
    again = chaos.WantedFaults.load(path)
    assert again.node_faults("n2") == {"partitioned_from": ["n1"], "delay_ms": 30, "jitter_ms": 5,
                                       "drop_pct": 10, "duplicate_pct": 0.0}
    again.set_links("n2", delay_ms=0, jitter_ms=0, drop_pct=0)
    assert "n2" not in again.links
    path.write_text("not json")
    assert chaos.WantedFaults.load(path) == chaos.WantedFaults()


def test_descriptions() -> None:
    assert chaos.describe_partition([["n1"], ["n2", "n3"]]) == "n1 | n2,n3"
    assert chaos.describe_partition([]) == "none"
    assert chaos.describe_links({"delay_ms": 30, "jitter_ms": 5}) == "delay 30ms ± 5ms"
    assert chaos.describe_links({"drop_pct": 20, "duplicate_pct": 1}) == "drop 20%, duplicate 1%"


# -- the audit log ---------------------------------------------------------------------------------


def test_records_append_as_json_lines_and_torn_lines_are_skipped(tmp_path: Path) -> None:
    paths = supervisor.StatePaths(tmp_path / "state")
    first = events.record(paths, "killed", "process 42 (SIGKILL)", node="n2")
    with paths.events.open("a") as f:
        f.write('{"time": 1, "kind"\n["not", "an", "event"]\n')
    second = events.record(paths, "heal", "partition removed")
    assert events.read_log(paths.events) == [first, second]
    assert first["source"] == "raftctl" and second["node"] is None
    assert events.read_log(tmp_path / "missing.jsonl") == []


def test_merge_drops_replayed_copies_and_orders_by_time() -> None:
    node_event = events.from_node({"time": 2.0, "node": "n1", "kind": "role", "detail": "leader"}, "n1")
    ours = events.make_event("partition", "n1 | n2", at=2.0)
    late = events.make_event("heal", "", at=3.0)
    merged = events.merge([late, node_event], [node_event, ours])
    assert merged == [ours, node_event, late]


def test_the_follower_reads_only_new_whole_lines_and_survives_truncation(tmp_path: Path) -> None:
    path = tmp_path / "log"
    path.write_text("old\n")
    follower = events.LogFollower(path, from_end=True)
    assert follower.read_new() == []
    with path.open("a") as f:
        f.write("one\ntw")
    assert follower.read_new() == ["one"]
    with path.open("a") as f:
        f.write("o\n")
    assert follower.read_new() == ["two"]
    path.write_text("new\n")  # truncated and rewritten
    assert follower.read_new() == ["new"]
    assert events.LogFollower(tmp_path / "absent").read_new() == []


# -- supervision -----------------------------------------------------------------------------------


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    return write_config(tmp_path / "cluster.toml", 3, free_base_port(3))


def test_a_pid_file_is_trusted_only_for_that_node_of_that_cluster(config_path: Path) -> None:
    config = load_config(config_path)
    paths = supervisor.StatePaths.of(config)
    paths.ensure()
    paths.pid_file("n1").write_text(f"{os.getpid()}\n")  # a live process, but not a node
    assert supervisor.live_pid(config, "n1") is None
    assert paths.pid_file("n1").exists()  # readers never delete: a concurrent start may own it
    paths.pid_file("n2").write_text("garbage\n")
    assert supervisor.live_pid(config, "n2") is None
    assert supervisor.live_pids(config) == {}


def test_a_fake_node_process_is_recognised_and_stopped_with_sigterm(config_path: Path, tmp_path: Path) -> None:
    config = load_config(config_path)
    paths = supervisor.StatePaths.of(config)
    paths.ensure()
    # A stand-in with a node's command line: `python -c ... raftnode --node n3 --config PATH`.
    fake = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(30)", "raftnode", "--config", str(config.path), "--node", "n3"],
        start_new_session=True,
    )
    try:
        paths.pid_file("n3").write_text(f"{fake.pid}\n")
        assert supervisor.live_pids(config) == {"n3": fake.pid}
        [stopped] = supervisor.stop(config, {"n3": fake.pid}, grace=5)
        assert stopped.signal == "SIGTERM"
        assert fake.wait(5) != 0 and not supervisor.is_alive(fake.pid)
        assert not paths.pid_file("n3").exists()
    finally:
        if fake.poll() is None:
            fake.kill()
            fake.wait()


def test_a_stubborn_process_gets_sigkill_after_the_grace_period(config_path: Path) -> None:
    config = load_config(config_path)
    stubborn = subprocess.Popen(
        [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(30)"],
        stdout=subprocess.PIPE, start_new_session=True,
    )
    try:
        assert stubborn.stdout is not None and stubborn.stdout.readline() == b"ready\n"
        started = time.monotonic()
        [stopped] = supervisor.stop(config, {"n1": stubborn.pid}, grace=0.3)
        assert stopped.signal == "SIGKILL"
        assert time.monotonic() - started < 5
        assert stubborn.wait(5) < 0
    finally:
        if stubborn.poll() is None:
            stubborn.kill()
            stubborn.wait()


def test_ports_in_use_are_found_and_named(config_path: Path) -> None:
    config = load_config(config_path)
    supervisor.check_ports(config, config.node_ids)  # all free
    peer = config.node("n3").peer
    with socket.socket() as s:
        s.bind((peer.host, peer.port))
        s.listen()
        assert supervisor.bind_problem(peer) == "another process listens there"
        with pytest.raises(Exception, match=f"node n3: peer address {peer} is already in use"):
            supervisor.check_ports(config, config.node_ids)


def test_listening_ports_are_picked_outside_the_kernels_ephemeral_range(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An outgoing connection takes an ephemeral port; a node's port picked there can be stolen
    between the search and the bind (a drill once failed with EADDRINUSE on 54940)."""
    ranges = tmp_path / "ip_local_port_range"
    monkeypatch.setattr(supervisor, "EPHEMERAL_RANGE_FILE", str(ranges))
    for low, high in ((32768, 60999), (15000, 60999), (49152, 65535)):
        ranges.write_text(f"{low}\t{high}\n")
        pool = supervisor.listening_port_range()
        assert len(pool) > 4000 and not set(pool) & set(range(low, high + 1)), (low, high, pool)
        ports = supervisor.free_ports(10)
        base = supervisor.free_base_port(5)
        assert len(set(ports)) == 10 and all(port in pool for port in ports)
        assert base + 1 in pool and base + 105 in pool


def test_log_tail_shows_only_the_latest_run(config_path: Path) -> None:
    config = load_config(config_path)
    paths = supervisor.StatePaths.of(config)
    paths.ensure()
    paths.log_file("n1").write_text(
        f"{supervisor.MARKER} n1 at 1 ---\nfirst run\n{supervisor.MARKER} n1 at 2 ---\nboom\n"
    )
    assert supervisor.log_tail(config, "n1") == ["boom"]
    assert supervisor.log_tail(config, "n1", since_marker=False)[-1] == "boom"
    assert supervisor.log_tail(config, "n2") == []


def test_the_reason_a_node_refused_to_start_is_read_from_its_latest_run(config_path: Path) -> None:
    config = load_config(config_path)
    paths = supervisor.StatePaths.of(config)
    paths.ensure()
    reason = "corrupt storage file /d/log-00000000000000000001.seg at byte offset 4096: bad checksum"
    paths.log_file("n1").write_text(
        f"{supervisor.MARKER} n1 at 1 ---\nraftnode: node n1 cannot start: old\n"
        f"{supervisor.MARKER} n1 at 2 ---\nINFO starting\nraftnode: node n1 cannot start: {reason}\n"
    )
    paths.log_file("n2").write_text(f"{supervisor.MARKER} n2 at 2 ---\nINFO started\n")
    assert supervisor.start_failure(config, "n1") == reason
    assert supervisor.start_failure(config, "n2") is None
    assert supervisor.start_failure(config, "n3") is None


def test_purge_deletes_only_what_raftctl_made(config_path: Path) -> None:
    config = load_config(config_path)
    paths = supervisor.StatePaths.of(config)
    paths.ensure()
    (paths.data_dir("n1")).mkdir()
    events.record(paths, "started", "x", node="n1")
    (paths.root / "notes.txt").write_text("mine")
    deleted = supervisor.purge(config)
    assert paths.events in deleted and paths.data in deleted
    assert sorted(p.name for p in paths.root.iterdir()) == ["notes.txt"]
    (paths.root / "notes.txt").unlink()
    supervisor.purge(config)
    assert not paths.root.exists()


def test_the_node_command_line_names_config_node_and_data_dir(config_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_config(config_path)
    argv = supervisor.node_command(config, "n2")
    assert argv[:3] == [sys.executable, "-m", "raftnode"]
    assert argv[argv.index("--config") + 1] == str(config.path)
    assert argv[argv.index("--node") + 1] == "n2"
    assert argv[argv.index("--data-dir") + 1] == str(config.state_dir / "data" / "n2")
    assert all(isinstance(word, str) for word in argv)
    # A process running this command line (as /proc shows it) is trusted as n2 of this file only.
    monkeypatch.setattr(supervisor, "is_alive", lambda pid: True)
    monkeypatch.setattr(supervisor, "_cmdline", lambda pid: argv)
    assert supervisor.is_node_process(4242, config, "n2")
    assert not supervisor.is_node_process(4242, config, "n1")
    other = load_config(write_config(config_path.with_name("other.toml"), 3, free_base_port(3)))
    assert not supervisor.is_node_process(4242, other, "n2")
