"""`raftctl up --netns`: three nodes in network namespaces of their own, driven by raftctl from
the root namespace as if they were remote hosts; the leader is cut off by the kernel (blackhole
routes), the rest elect a new leader and commit, `heal` joins them again; the leader is killed and
started again in its namespace; and `down` leaves no namespace or bridge behind.

Traffic goes only to 198.18.x addresses inside the namespaces this test makes (and the bridge)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from raftctl import netns
from raftnode.config import load_config

from .raftctl_harness import Cluster, deadline


def _netns_usable() -> str | None:
    if sys.platform != "linux" or os.geteuid() != 0:
        return "needs root on Linux (network namespaces, veth pairs, a bridge)"
    ip = shutil.which("ip") or shutil.which("ip", path="/usr/sbin:/sbin")
    if ip is None or subprocess.run([ip, "netns", "list"], capture_output=True, timeout=10).returncode != 0:
        return "`ip netns` (iproute2) is not available"
    return None


pytestmark = pytest.mark.skipif(_netns_usable() is not None, reason=_netns_usable() or "")


def cluster_text(subnet: int) -> str:
    nodes = "".join(
        f'\n[[nodes]]\nid = "n{k}"\npeer = "198.18.{subnet}.{10 + k}:7101"\nclient = "198.18.{subnet}.{10 + k}:7201"\n'
        for k in (1, 2, 3)
    )
    return '[cluster]\nname = "ns"\nstate_dir = "state"\n' + nodes


def reachable(namespace: str, address: str, port: int) -> bool:
    """Whether a TCP connection from inside ``namespace`` to ``address:port`` opens within 1 s."""
    probe = f"import socket; socket.create_connection(({address!r}, {port}), timeout=1).close()"
    done = subprocess.run(["ip", "netns", "exec", namespace, sys.executable, "-c", probe],
                          capture_output=True, timeout=20)
    return done.returncode == 0


def majority_leader(c: Cluster, *, other_than: str | None = None, within: float = 30.0) -> str:
    """The leader a majority follows, once there is one (other than ``other_than``)."""
    limit = time.monotonic() + within
    while time.monotonic() < limit:
        leader = json.loads(c.cli("status", "--json", code=None).stdout or "{}").get("leader")
        if leader and leader != other_than:
            return leader
        time.sleep(0.1)
    raise AssertionError(f"no leader other than {other_than} within {within} s\n{c.logs_tail()}")


def rejoined(c: Cluster, node: str, *, value: int, within: float = 30.0) -> None:
    """Wait until ``node`` follows the majority's leader and has applied up to ``value``."""
    limit = time.monotonic() + within
    while True:
        status = json.loads(c.cli("status", "--json").stdout)
        row = next(r for r in status["nodes"] if r["id"] == node)
        if status["leader"] and row["leader"] == status["leader"] and (row["state"] or {}).get("value") == value:
            return
        assert time.monotonic() < limit, f"{node} did not rejoin: {row}\n{c.logs_tail()}"
        time.sleep(0.1)


def leftovers(layout: netns.Layout) -> list[str]:
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10).stdout
    left = [n.netns for n in layout.nodes.values() if n.netns in names]
    if subprocess.run(["ip", "link", "show", layout.bridge], capture_output=True, timeout=10).returncode == 0:
        left.append(layout.bridge)
    return left


def test_kernel_partition_and_kill_of_the_leader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config_path = tmp_path / "cluster.toml"
    config_path.write_text(cluster_text(100 + os.getpid() % 150))
    config = load_config(config_path)
    layout = netns.plan(config)
    c = Cluster(tmp_path, config_path)
    try:
        with deadline(120):
            c.cli("up", "--netns", "--timeout", "30")
            assert json.loads(c.cli("run-command", "incr", "5", "--json").stdout)["result"] == 5
            old = majority_leader(c)
            follower = next(n for n in config.node_ids if n != old)
            old_ns, follower_address = layout.nodes[old].netns, layout.nodes[follower].address
            assert reachable(old_ns, follower_address, 7101)

            # Planted bug: a partition that adds no route. The link check sees through it.
            real_ip = netns._ip
            with monkeypatch.context() as m:
                m.setattr(netns, "_ip", lambda *a, **k: real_ip("-V") if "blackhole" in a and "add" in a else real_ip(*a, **k))
                c.cli("partition", old)
            assert reachable(old_ns, follower_address, 7101)

            c.cli("partition", old)
            assert not reachable(old_ns, follower_address, 7101)
            assert reachable(layout.nodes[follower].netns, layout.nodes[next(n for n in config.node_ids if n not in (old, follower))].address, 7101)
            majority_leader(c, other_than=old)
            assert json.loads(c.cli("run-command", "incr", "1", "--json").stdout)["result"] == 6

            c.cli("heal")
            assert reachable(old_ns, follower_address, 7101)
            rejoined(c, old, value=6)

            # Kill the leader: the process dies in its namespace, the others elect and commit.
            victim = majority_leader(c)
            c.cli("kill", victim)
            majority_leader(c, other_than=victim)
            assert json.loads(c.cli("run-command", "incr", "1", "--json").stdout)["result"] == 7
            c.cli("start", victim)  # back in its own namespace, at its own address
            rejoined(c, victim, value=7)
            c.cli("down")
            assert leftovers(layout) == []
    finally:
        c.close()
        netns.teardown(config)
    assert leftovers(layout) == []
