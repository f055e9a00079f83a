"""``raftctl add-node`` and ``raftctl remove-node``: membership changes of a running local cluster.

Theory of operation
-------------------
The cluster's leader does the protocol work (a learner caught up then promoted, §4.2.1; one
change at a time); raftctl keeps the local side in step with it, so the cluster file always names
the processes it runs:

- add-node checks what it can before touching anything (the id, the addresses, free ports, a
  leader), appends the node to cluster.toml marked ``join = true``, starts its process empty and
  asks the leader to add it, waiting until it is a voter. If anything fails after the file was
  written, the process is stopped, its data deleted and the file restored: no half-added node.
  Under ``up --netns`` the node gets a namespace of its own first (``netns.add_node``).
- remove-node asks the leader to remove the node (the leader itself included) and waits for the
  change to commit; then stops the process (it usually stopped by itself on learning of its
  removal), deletes its data — a removed node's log must never rejoin — and its namespace under
  ``up --netns``, and drops it from cluster.toml.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from typing import Any

import trio

from raftctl.clusterfile import add_node_to_file, remove_node_from_file
from raftnode.client.trioclient import ClientError
from raftnode.config import Address, ClusterConfig, ConfigError, check_node_id, load_config, parse_address
from raftnode.wire import requests as wire

from . import netns, oneshot, supervisor
from .cluster import Session, _abandon, _wait_started, session
from .errors import NotRunning, Refused, UsageProblem, WaitTimeout


@dataclass
class MembershipResult:
    """What add-node / remove-node did, for rendering and ``--json``."""

    action: str  # "added" or "removed"
    node: str
    leader: str
    voters: list[str]
    learners: list[str]
    pid: int | None = None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"action": self.action, "node": self.node, "leader": self.leader, "voters": self.voters,
                "learners": self.learners, "pid": self.pid, "notes": self.notes}


def _check_free(node_id: str, peer: Address, client: Address) -> None:
    for what, address in (("peer", peer), ("client", client)):
        in_use = supervisor.bind_problem(address)
        if in_use is not None:
            raise UsageProblem(f"cannot add {node_id}: its {what} address {address} is not free ({in_use})")


def _prepare_host(added: ClusterConfig, node_id: str, original: str, notes: list[str]) -> None:
    """With [tls], the new node's certificate; under ``up --netns``, its namespace. The cluster
    file back as it was if either cannot be made."""
    try:
        if oneshot.cluster_certificates(added):
            notes.append(f"issued a certificate for {node_id} in {added.tls.dir}")  # type: ignore[union-attr]
        node_net = netns.add_node(added, node_id)
        if node_net is not None:
            notes.append(f"made network namespace {node_net.netns} ({node_net.address})")
    except UsageProblem:
        added.path.write_text(original, encoding="utf-8")
        raise


async def add_node(config: ClusterConfig, node_id: str, peer: str, client: str, *, timeout: float = 60.0) -> MembershipResult:
    """Add ``node_id`` listening on ``peer``/``client`` to the running cluster; wait until it votes.

    Raises:
        UsageProblem: a bad id or address, an id or address already in the file, a port in use (exit 2).
        ClusterNotRunning / NoLeaderError: nothing runs (exit 5) / no leader (exit 3).
        Refused: the leader refused (a change is pending, the node could not catch up) (exit 1).
        WaitTimeout: not a voter within ``timeout`` (exit 4); the node is taken out again.
    """
    problem = check_node_id(node_id)
    if problem:
        raise UsageProblem(f"cannot add {node_id!r}: {problem}")
    try:
        peer_address, client_address = parse_address(peer), parse_address(client)
    except ValueError as exc:
        raise UsageProblem(f"cannot add {node_id}: {exc}") from None
    if node_id in config.node_ids:
        raise UsageProblem(f"cannot add {node_id}: {config.path} already has a node {node_id!r}")
    notes: list[str] = []
    async with session(config) as s:
        leader = await s.resolve("leader", timeout=min(timeout, 5.0))
        if netns.load(config) is None:  # under `up --netns` the address is only in the node's new namespace
            _check_free(node_id, peer_address, client_address)
        original = config.path.read_text(encoding="utf-8")
        try:
            add_node_to_file(config.path, node_id, peer_address, client_address)
        except ConfigError as exc:
            raise UsageProblem(f"cannot add {node_id}: {exc}") from None
        added = load_config(config.path)
        _prepare_host(added, node_id, original, notes)
        stale = supervisor.StatePaths.of(added).data_dir(node_id)
        if stale.exists():
            shutil.rmtree(stale)  # an earlier node of that id: its log must not come back
            notes.append(f"deleted the old data of an earlier {node_id} ({stale})")
        started: dict[str, int] = {}
        try:
            async with session(added) as fresh:
                pid = started[node_id] = supervisor.spawn(added, node_id)
                fresh.record("started", f"process {pid} (joining the cluster)", node=node_id)
                await _wait_started(fresh, started, timeout=min(timeout, 10.0))
                response = await _through_leader(
                    fresh, leader,
                    wire.AddNode(node_id, str(peer_address), str(client_address), timeout),
                    timeout=timeout, what=f"add {node_id}",
                )
                fresh.record("add-node", f"{node_id} is a voter (peer {peer_address}, client {client_address})",
                             node=node_id)
        except BaseException:
            with trio.CancelScope(shield=True):
                await _abandon(s, started)
                shutil.rmtree(stale, ignore_errors=True)
                netns.remove_node(added, node_id)
                config.path.write_text(original, encoding="utf-8")
            raise
    return MembershipResult("added", node_id, response["node"], response["voters"], response["learners"],
                            pid=pid, notes=notes)


async def remove_node(config: ClusterConfig, name: str, *, timeout: float = 30.0) -> MembershipResult:
    """Remove ``name`` (an id, ``leader`` or ``follower``) from the running cluster, then stop it.

    Raises:
        UnknownNode: not a node of the file (exit 2). ClusterNotRunning / NoLeaderError (exit 5 / 3).
        Refused: the leader refused (the last voter, a change pending) (exit 1). WaitTimeout (exit 4).
    """
    async with session(config) as s:
        node_id = await s.resolve(name, timeout=min(timeout, 5.0))
        leader = await s.resolve("leader", timeout=min(timeout, 5.0))
        response = await _through_leader(s, leader, wire.RemoveNode(node_id, timeout),
                                         timeout=timeout, what=f"remove {node_id}")
        s.record("remove-node", f"{node_id} removed (committed by {response['node']})", node=node_id)
        notes = []
        pid = supervisor.live_pid(config, node_id)
        if pid is not None:
            [stopped] = await trio.to_thread.run_sync(lambda: supervisor.stop(config, {node_id: pid}))
            notes.append(f"stopped process {pid} ({stopped.signal})")
        data = s.paths.data_dir(node_id)
        if data.exists():
            shutil.rmtree(data)
            notes.append(f"deleted its data ({data})")
        if netns.remove_node(config, node_id):
            notes.append("removed its network namespace")
        if remove_node_from_file(config.path, node_id):
            notes.append(f"removed it from {config.path.name}")
    return MembershipResult("removed", node_id, response["node"], response["voters"], response["learners"],
                            notes=notes)


async def _through_leader(s: Session, leader: str, request: wire.Request, *, timeout: float, what: str) -> dict[str, Any]:
    """Send a membership request to the leader, following one change of leader."""
    for _ in range(3):
        try:
            response = await s.client.call(leader, request, timeout=timeout + 5.0)
        except ClientError as exc:
            raise NotRunning(f"cannot {what}: the leader {leader} did not answer: {exc}") from None
        if response.get("ok"):
            return response
        if response.get("timeout_expired"):
            raise WaitTimeout(f"cannot {what}: {response.get('error')}")
        new_leader = response.get("leader")
        if str(response.get("error", "")).startswith("not the leader") and new_leader and new_leader != leader:
            leader = new_leader
            continue
        raise Refused(f"{leader} refused to {what}: {response.get('error')}")
    raise Refused(f"cannot {what}: the leader keeps changing; retry")
