"""Three real ``python -m raftnode`` processes on loopback: elect, commit, kill -9, recover, SIGTERM.

Every process runs in its own session with its output in ``<tmp>/logs/<id>.log``; the fixture
kills whatever is still running at the end, whatever happened. Each test is bounded by
``trio.fail_after``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from raftnode.client.trioclient import ClusterClient
from raftnode.security.credentials import ensure_credentials, secrets_path

from .processes import (
    IDS,
    REPO,
    Processes,
    cluster_toml,
    free_ports,
    status,
    wait_caught_up,
    wait_exit,
    wait_leader,
)


@pytest.mark.trio
async def test_three_processes_elect_commit_survive_kill_9_of_the_leader_and_stop_on_sigterm(
    processes: Processes,
) -> None:
    for node_id in IDS:
        processes.start(node_id)
    try:
        with trio.fail_after(18):
            async with ClusterClient(processes.addresses) as client:
                leader = await wait_leader(client, list(IDS))
                acknowledged = []
                for _ in range(20):
                    outcome = await client.run_command("incr 1", timeout=5)
                    acknowledged.append(outcome.result)
                assert [r.result for r in acknowledged] == list(range(1, 21))

                processes.signal(leader, signal.SIGKILL)
                assert wait_exit(processes.procs[leader], 5) == -signal.SIGKILL
                survivors = [n for n in IDS if n != leader]
                new_leader = await wait_leader(client, survivors, other_than=leader)
                for _ in range(10):
                    outcome = await client.run_command("incr 1", timeout=5)
                    acknowledged.append(outcome.result)
                    assert outcome.node == new_leader
                last = acknowledged[-1]
                assert last.result == 30 and last.index is not None

                processes.start(leader)  # same data directory
                for node_id in IDS:
                    s = await wait_caught_up(client, node_id, last.index)
                    assert s["commit_index"] >= last.index
                    assert s["state"] == {"value": 30}, (node_id, s)
                restarted = await status(client, leader)
                assert restarted is not None and restarted["role"] == "follower" and restarted["leader"] == new_leader

                follower = next(n for n in survivors if n != new_leader)
                processes.signal(follower, signal.SIGTERM)
                assert wait_exit(processes.procs[follower], 5) == 0
                # two of three still commit
                assert (await client.run_command("incr 1", timeout=5)).result.result == 31
    except BaseException:
        print(processes.logs_tail())
        raise
    log = processes.log(follower)
    assert "stop" in log and "Traceback" not in log, log[-2000:]
    assert "became leader in term" in processes.log(new_leader)


def run_node(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: PLW1510 - the exit status is what is checked
        [sys.executable, "-m", "raftnode", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=15,
        start_new_session=True,
    )


def test_a_bad_cluster_file_exits_2_naming_the_file_and_key(tmp_path: Path) -> None:
    config = tmp_path / "cluster.toml"
    config.write_text('[cluster]\nheartbeat_ms = "fast"\n\n[[nodes]]\nid = "n1"\npeer = "127.0.0.1:1"\nclient = "127.0.0.1:2"\n')
    done = run_node(["--config", str(config), "--node", "n1"], tmp_path)
    assert done.returncode == 2, done
    assert str(config) in done.stderr and "cluster.heartbeat_ms" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_a_missing_cluster_file_and_an_unknown_node_exit_2(tmp_path: Path) -> None:
    missing = run_node(["--config", str(tmp_path / "nope.toml"), "--node", "n1"], tmp_path)
    assert missing.returncode == 2 and "nope.toml" in missing.stderr
    config = tmp_path / "cluster.toml"
    config.write_text(cluster_toml(free_ports(3), free_ports(3)))
    unknown = run_node(["--config", str(config), "--node", "n7"], tmp_path)
    assert unknown.returncode == 2 and "'n7'" in unknown.stderr and "Traceback" not in unknown.stderr


def test_a_node_refuses_to_start_without_its_secrets_file_or_with_one_others_can_read(tmp_path: Path) -> None:
    config = tmp_path / "cluster.toml"
    config.write_text(cluster_toml(free_ports(3), free_ports(3)))
    secrets = secrets_path(tmp_path / "state")
    missing = run_node(["--config", str(config), "--node", "n1"], tmp_path)
    assert missing.returncode == 1 and str(secrets) in missing.stderr and "missing" in missing.stderr, missing.stderr
    ensure_credentials(secrets)
    secrets.chmod(0o644)
    readable = run_node(["--config", str(config), "--node", "n1"], tmp_path)
    assert readable.returncode == 1 and f"chmod 600 {secrets}" in readable.stderr, readable.stderr
    assert "Traceback" not in missing.stderr + readable.stderr


@pytest.mark.parametrize("which", ["peer", "client"])
def test_a_port_already_in_use_exits_non_zero_naming_the_node_and_the_port(tmp_path: Path, which: str) -> None:
    peer_ports, client_ports = free_ports(3), free_ports(3)
    busy = peer_ports[0] if which == "peer" else client_ports[0]
    config = tmp_path / "cluster.toml"
    config.write_text(cluster_toml(peer_ports, client_ports))
    ensure_credentials(secrets_path(tmp_path / "state"))
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", busy))
        holder.listen()
        done = run_node(["--config", str(config), "--node", "n1"], tmp_path)
    assert done.returncode not in (0, None), done
    assert "n1" in done.stderr and str(busy) in done.stderr, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
