"""``raftctl up --netns``: each node in a network namespace of its own, with kernel partitions.

Theory of operation
-------------------
Every node of the cluster file must have one IPv4 address (its peer and client host) in RFC
2544's benchmarking range 198.18.0.0/15, all in one /24. ``setup`` makes, for node ``i``, a
namespace ``raftctl-<h>-<id>`` holding that address on ``eth0``, the inside end of a veth pair
whose other end joins a bridge ``rb<h>`` in the root namespace (``<h>`` hashes the state dir, so
two clusters do not collide). The bridge holds ``<net>.1/24``: the route by which raftctl, in the
root namespace, reaches the nodes' client ports as if they were remote hosts; the nodes' own
addresses exist only in their namespaces. What was made is written to ``<state_dir>/netns.json``
*before* it is made, so ``teardown`` (``raftctl down``) removes it even after a half-finished
setup. Nodes run as ``ip netns exec <ns> python -m raftnode ...`` (``exec_prefix``); their pids
are ordinary pids, so ``kill`` is SIGKILL as before. ``add-node`` gives a new node its namespace
the same way (``add_node``, recorded first too); ``remove-node`` removes it once the node stopped.

A partition is the kernel's: in each node's namespace, a blackhole route to every node on another
side, so packets between sides vanish silently (no RST, no ICMP), exactly like a cut cable;
raftctl's own traffic from the bridge address is never cut. ``heal`` flushes those routes. Needs
root and iproute2; everything else is refused with a message saying what is missing.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from raftnode.config import ClusterConfig

from .errors import UsageProblem

STATE_FILE = "netns.json"
RANGE = ipaddress.ip_network("198.18.0.0/15")
IP_TIMEOUT = 10.0


class NetnsError(UsageProblem):
    """Namespaces cannot be used here, or the cluster file does not fit them (exit 2)."""


@dataclass(frozen=True)
class NodeNet:
    netns: str
    veth: str
    address: str


@dataclass(frozen=True)
class Layout:
    """What ``setup`` makes: the bridge, its address (with prefix) and each node's namespace."""

    bridge: str
    bridge_address: str
    nodes: dict[str, NodeNet]


def state_file(config: ClusterConfig) -> Path:
    return config.state_dir / STATE_FILE


def plan(config: ClusterConfig) -> Layout:
    """The layout for ``config``; NetnsError if a node's addresses do not fit (the message says how)."""
    tag = hashlib.sha256(str(config.state_dir).encode()).hexdigest()[:6]
    nets = set()
    nodes = {}
    for index, node in enumerate(config.nodes):
        try:
            address = ipaddress.IPv4Address(node.peer.host)
        except ValueError:
            address = None
        if address is None or node.client.host != node.peer.host or address not in RANGE:
            raise NetnsError(
                f"--netns: node {node.id} needs one IPv4 address from 198.18.0.0/15 as both its peer and "
                f"client host (e.g. peer = \"198.18.1.{11 + index}:7101\"), got {node.peer} and {node.client}"
            )
        net = ipaddress.ip_network(f"{address}/24", strict=False)
        if address in (net.network_address, net.network_address + 1, net.broadcast_address):
            raise NetnsError(f"--netns: node {node.id}: {address} is reserved (.0, .1 for the bridge, .255)")
        nets.add(net)
        nodes[node.id] = NodeNet(f"raftctl-{tag}-{node.id}", f"rv{tag}{index}", str(address))
    if len(nets) != 1:
        raise NetnsError("--netns: every node's address must be in one /24 (the bridge's network)")
    (net,) = nets
    return Layout(f"rb{tag}", f"{net.network_address + 1}/24", nodes)


def load(config: ClusterConfig) -> Layout | None:
    """The layout ``setup`` recorded for this cluster, or None (not in namespaces)."""
    try:
        document = json.loads(state_file(config).read_text(encoding="utf-8"))
        nodes = {node_id: NodeNet(**entry) for node_id, entry in document["nodes"].items()}
        layout = Layout(document["bridge"], document["bridge_address"], nodes)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise NetnsError(f"{state_file(config)}: unreadable ({exc}); remove it once no namespace is left") from None
    if not _ours(layout, plan(config)):  # names come from here into `ip` arguments: only ours are accepted
        raise NetnsError(f"{state_file(config)}: does not match the cluster file; `raftctl down` first")
    return layout


def _ours(layout: Layout, expected: Layout) -> bool:
    """Whether every name in ``layout`` is one ``plan`` or ``add_node`` makes for this cluster
    (nodes added or removed since ``up`` are fine: add-node and remove-node keep the record)."""
    tag = expected.bridge[2:]
    net = ipaddress.ip_network(expected.bridge_address, strict=False)
    try:
        addresses_fit = all(ipaddress.IPv4Address(n.address) in net for n in layout.nodes.values())
    except ValueError:
        return False
    return (layout.bridge, layout.bridge_address) == (expected.bridge, expected.bridge_address) and addresses_fit and all(
        node.netns == f"raftctl-{tag}-{node_id}" and re.fullmatch(rf"rv{tag}\d{{1,4}}", node.veth)
        for node_id, node in layout.nodes.items()
    )


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    ip = shutil.which("ip") or shutil.which("ip", path="/usr/sbin:/sbin")
    if ip is None:
        raise NetnsError("--netns needs iproute2's `ip` command, which is not installed")
    done = subprocess.run([ip, *args], capture_output=True, text=True, timeout=IP_TIMEOUT, check=False)
    if check and done.returncode != 0:
        raise NetnsError(f"`ip {' '.join(args)}` failed: {done.stderr.strip() or done.returncode}")
    return done


def check_usable() -> None:
    """NetnsError unless this process may make namespaces (root on Linux, with ``ip``)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        raise NetnsError("--netns needs root (it makes network namespaces, veth pairs and a bridge)")
    _ip("netns", "list")


def setup(config: ClusterConfig) -> Layout:
    """Make the namespaces, veth pairs and bridge of ``config`` (nothing if already recorded)."""
    existing = load(config)
    if existing is not None:
        return existing
    check_usable()
    layout = plan(config)
    net = layout.bridge_address.split("/")[0].rsplit(".", 1)[0] + ".0/24"
    if _ip("-4", "-o", "addr", "show", "to", net).stdout.strip():
        raise NetnsError(f"--netns: {net} is already in use on this machine; choose another /24 of 198.18.0.0/15")
    config.state_dir.mkdir(parents=True, exist_ok=True)
    _record(config, layout)
    try:
        _ip("link", "add", layout.bridge, "type", "bridge")
        _ip("addr", "add", layout.bridge_address, "dev", layout.bridge)
        _ip("link", "set", layout.bridge, "up")
        for node in layout.nodes.values():
            _make_node(layout, node)
    except BaseException:
        teardown(config)
        raise
    return layout


def _make_node(layout: Layout, node: NodeNet) -> None:
    _ip("netns", "add", node.netns)
    _ip("link", "add", node.veth, "type", "veth", "peer", "name", "eth0", "netns", node.netns)
    _ip("link", "set", node.veth, "master", layout.bridge, "up")
    _ip("-n", node.netns, "addr", "add", f"{node.address}/24", "dev", "eth0")
    _ip("-n", node.netns, "link", "set", "eth0", "up")
    _ip("-n", node.netns, "link", "set", "lo", "up")


def _record(config: ClusterConfig, layout: Layout) -> None:
    state_file(config).write_text(json.dumps(asdict(layout), indent=1), encoding="utf-8")


def add_node(config: ClusterConfig, node_id: str) -> NodeNet | None:
    """For ``raftctl add-node``: give ``node_id`` of ``config`` (the file with it added) a
    namespace of its own like ``setup`` does; None when the cluster is not in namespaces.
    NetnsError if its address does not fit (the message says how); recorded before it is made."""
    layout = load(config)
    if layout is None or node_id in layout.nodes:
        return None if layout is None else layout.nodes[node_id]
    planned = plan(config).nodes[node_id]
    taken = {node.veth for node in layout.nodes.values()}
    veth = next(v for i in range(10_000) if (v := f"rv{layout.bridge[2:]}{i}") not in taken)
    node = NodeNet(planned.netns, veth, planned.address)
    _record(config, Layout(layout.bridge, layout.bridge_address, {**layout.nodes, node_id: node}))
    try:
        _make_node(layout, node)
    except BaseException:
        remove_node(config, node_id)
        raise
    return node


def remove_node(config: ClusterConfig, node_id: str) -> bool:
    """For ``raftctl remove-node`` (once its process stopped): remove ``node_id``'s namespace and
    veth and drop it from the record; whether it had one."""
    layout = load(config)
    if layout is None or node_id not in layout.nodes:
        return False
    node = layout.nodes[node_id]
    _ip("netns", "del", node.netns, check=False)
    _ip("link", "del", node.veth, check=False)
    _record(config, Layout(layout.bridge, layout.bridge_address,
                           {k: v for k, v in layout.nodes.items() if k != node_id}))
    return True


def teardown(config: ClusterConfig) -> list[str]:
    """Remove the namespaces and bridge recorded for ``config``; returns what was removed.

    Run once the nodes have stopped (a namespace lives on while a process is in it)."""
    layout = load(config)
    if layout is None:
        return []
    removed = []
    for node in layout.nodes.values():
        if _ip("netns", "del", node.netns, check=False).returncode == 0:
            removed.append(f"netns {node.netns}")
        _ip("link", "del", node.veth, check=False)  # gone with its namespace's end, normally
    if _ip("link", "del", layout.bridge, check=False).returncode == 0:
        removed.append(f"bridge {layout.bridge}")
    state_file(config).unlink(missing_ok=True)
    return removed


def exec_prefix(config: ClusterConfig, node_id: str) -> list[str]:
    """What runs a command in ``node_id``'s namespace (empty when the cluster is not in namespaces)."""
    layout = load(config)
    if layout is None or node_id not in layout.nodes:
        return []
    return [shutil.which("ip") or "/usr/sbin/ip", "netns", "exec", layout.nodes[node_id].netns]


def partition(config: ClusterConfig, groups: Sequence[Sequence[str]]) -> Layout:
    """Cut ``groups`` (a full partition: every node in one group) apart in the kernel, replacing
    an earlier partition."""
    layout = heal(config)
    side = {node_id: index for index, group in enumerate(groups) for node_id in group}
    for node_id, node in layout.nodes.items():
        for other_id, other in layout.nodes.items():
            if side.get(other_id) != side.get(node_id):
                _ip("-n", node.netns, "route", "add", "blackhole", f"{other.address}/32")
    return layout


def heal(config: ClusterConfig) -> Layout:
    """Remove the kernel partition: every namespace's blackhole routes."""
    layout = load(config)
    if layout is None:
        raise NetnsError("the cluster is not in network namespaces (`raftctl up --netns` puts it there)")
    for node in layout.nodes.values():
        _ip("-n", node.netns, "route", "flush", "type", "blackhole")
    return layout


def cut_links(config: ClusterConfig) -> dict[str, list[str]]:
    """Each node's blackholed addresses (the kernel partition as it stands)."""
    layout = load(config)
    if layout is None:
        return {}
    return {
        node_id: [line.split()[1] for line in _ip("-n", node.netns, "route", "show", "type", "blackhole").stdout.splitlines()
                  if line.startswith("blackhole")]
        for node_id, node in layout.nodes.items()
    }
