"""`raftctl up --netns`: three nodes in network namespaces of their own, with mutual TLS (their
certificates name their 198.18.x addresses), peer authentication and client and admin tokens,
driven by raftctl from the root namespace as if they were remote hosts. The drills of issue 18:
the leader is cut off by the kernel (blackhole routes), the rest elect a new leader and commit,
`heal` joins them again; the leader is killed and started again in its namespace; a follower is
isolated, the majority keeps committing and the follower catches up after `heal`; add-node grows
the cluster by a node in a namespace of its own and remove-node shrinks it again (the leader
itself, which hands over). `down` leaves no namespace or bridge behind.

Traffic goes only to 198.18.x addresses inside the namespaces this test makes (and the bridge)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from raftctl import netns
from raftnode.config import ClusterConfig, load_config

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
    return ('[cluster]\nname = "ns"\nstate_dir = "state"\npeer_auth = true\nclient_auth = true\n'
            + nodes + '\n[tls]\nenabled = true\n')


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
    """This cluster's namespaces (added nodes' too: same name prefix) and bridge still present."""
    prefix = f"raftctl-{layout.bridge[2:]}-"
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10).stdout.split()
    left = [name for name in names if name.startswith(prefix)]
    if subprocess.run(["ip", "link", "show", layout.bridge], capture_output=True, timeout=10).returncode == 0:
        left.append(layout.bridge)
    return left


def tls_names(config: ClusterConfig, address: str, port: int = 7201) -> str:
    """The common name of the certificate the node at ``address`` presents, verified against the
    cluster CA *and* ``address`` (a certificate without that address as a SAN fails here)."""
    assert config.tls is not None
    context = ssl.create_default_context(cafile=str(config.tls.ca))
    context.load_cert_chain(config.tls.client_cert, config.tls.client_key)
    import socket

    with socket.create_connection((address, port), timeout=10) as raw, context.wrap_socket(raw, server_hostname=address) as tls:
        subject = dict(item[0] for item in tls.getpeercert()["subject"])
    return subject["commonName"]


@contextlib.contextmanager
def netns_cluster(tmp_path: Path, subnet: int) -> Iterator[tuple[Cluster, ClusterConfig, netns.Layout]]:
    """A cluster (TLS, tokens) up in namespaces; torn down and checked gone however the test ends."""
    config_path = tmp_path / "cluster.toml"
    config_path.write_text(cluster_text(subnet))
    config = load_config(config_path)
    layout = netns.plan(config)
    c = Cluster(tmp_path, config_path)
    try:
        with deadline(150):
            c.cli("up", "--netns", "--timeout", "30")
            yield c, config, layout
            c.cli("down")
            assert leftovers(layout) == []
    finally:
        c.close()
        netns.teardown(load_config(config_path))
    assert leftovers(layout) == []


def incr(c: Cluster, by: int) -> int:
    return json.loads(c.cli("run-command", "incr", str(by), "--json").stdout)["result"]


def test_kernel_partition_and_kill_of_the_leader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with netns_cluster(tmp_path, 100 + os.getpid() % 75) as (c, config, layout):
        assert incr(c, 5) == 5
        for node_id, node in layout.nodes.items():  # TLS to every node, from the root namespace
            assert tls_names(config, node.address) == node_id
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
        assert incr(c, 1) == 6

        c.cli("heal")
        assert reachable(old_ns, follower_address, 7101)
        rejoined(c, old, value=6)

        # Kill the leader: the process dies in its namespace, the others elect and commit.
        victim = majority_leader(c)
        c.cli("kill", victim)
        majority_leader(c, other_than=victim)
        assert incr(c, 1) == 7
        c.cli("start", victim)  # back in its own namespace, at its own address
        rejoined(c, victim, value=7)


def value_of(c: Cluster, node: str) -> int | None:
    row = next(r for r in json.loads(c.cli("status", "--json").stdout)["nodes"] if r["id"] == node)
    return (row["state"] or {}).get("value")


def test_isolated_minority_then_grow_and_shrink(tmp_path: Path) -> None:
    subnet = 175 + os.getpid() % 75
    with netns_cluster(tmp_path, subnet) as (c, config, layout):
        assert incr(c, 1) == 1
        leader = majority_leader(c)
        loner = next(n for n in config.node_ids if n != leader)
        rejoined(c, loner, value=1)
        c.cli("partition", loner)
        assert not reachable(layout.nodes[loner].netns, layout.nodes[leader].address, 7101)
        for expected in range(2, 6):  # the majority commits on without it
            assert incr(c, 1) == expected
        assert value_of(c, loner) == 1  # cut off by the kernel: nothing reached it
        c.cli("heal")
        rejoined(c, loner, value=5)

        # Grow: n4 gets a namespace, an address and a certificate of its own, and becomes a voter.
        n4 = f"198.18.{subnet}.14"
        added = c.json("add-node", "n4", "--peer", f"{n4}:7101", "--client", f"{n4}:7201", "--timeout", "60")
        assert sorted(added["voters"]) == ["n1", "n2", "n3", "n4"], added
        grown = netns.load(load_config(config.path))
        assert grown is not None and grown.nodes["n4"].address == n4
        assert reachable(grown.nodes["n4"].netns, layout.nodes[leader].address, 7101)
        assert tls_names(config, n4) == "n4"
        assert incr(c, 1) == 6
        rejoined(c, "n4", value=6)

        # Shrink: remove the leader itself; it hands over, and its namespace goes with it.
        victim = majority_leader(c)
        removed = c.json("remove-node", victim, "--timeout", "30")
        assert victim not in removed["voters"] and len(removed["voters"]) == 3, removed
        shrunk = netns.load(load_config(config.path))
        assert shrunk is not None and victim not in shrunk.nodes
        assert layout.nodes[victim].netns not in leftovers(layout)
        majority_leader(c, other_than=victim)
        assert incr(c, 1) == 7
