"""``raftctl members`` and ``raftctl health``: pure functions of one status picture and the
cluster file (no I/O), like ``etcdctl member list`` and ``etcdctl endpoint health``.

Members: one row per node of the cluster file plus any member the leader knows that the file
does not name: id, voter or learner (as the leader's configuration says; ``unknown`` without a
leader, ``none`` for a node of the file the leader's configuration lacks), peer and client
addresses, alive, whether it is the leader, and the leader's match index for it.

Health, per node: reachable (answers ``status``), leader known (it follows the leader a majority
acknowledges, in its term), applied lag (the leader's commit index minus the node's applied
index), disk full, apply halted. A node is healthy when it is reachable, knows the leader, lags
by at most ``max_lag`` entries, has disk space and applies commands. The cluster's verdict:
``healthy`` (every node healthy, exit 0), ``degraded`` (a leader, but some node unhealthy, exit
1), ``no-leader`` (nodes answer, none leads with a majority, exit 3); no node answering is exit 5
before any verdict.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import asdict, dataclass
from typing import Any

from raftnode.config import ClusterConfig

from .model import ClusterStatus, NodeRow

#: Applied lag (entries behind the leader's commit index) still counted healthy by default.
DEFAULT_MAX_LAG = 1000


def addresses(config: ClusterConfig) -> dict[str, dict[str, str]]:
    """``{"n1": {"peer": "127.0.0.1:7101", "client": "127.0.0.1:7201"}, ...}``."""
    return {n.id: {"peer": str(n.peer), "client": str(n.client)} for n in config.nodes}


def status_document(config: ClusterConfig, status: ClusterStatus, only: Collection[str] | None = None) -> dict[str, Any]:
    """``status --json``: the contract's document, each node with its ``peer`` and ``client``;
    ``only`` these nodes' rows (None: all)."""
    document = status.to_json()
    known = addresses(config)
    if only is not None:
        document["nodes"] = [row for row in document["nodes"] if row["id"] in only]
    for row in document["nodes"]:
        row.update(known.get(row["id"], {"peer": None, "client": None}))
    return document


@dataclass(frozen=True)
class Member:
    """One row of ``raftctl members``."""

    id: str
    role: str  # voter, learner, none (not in the leader's configuration), unknown (no leader)
    peer: str | None
    client: str | None
    alive: bool
    leader: bool
    match_index: int | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def member_list(config: ClusterConfig, status: ClusterStatus) -> list[Member]:
    """The members: the file's nodes in file order, then members only the leader knows."""
    leader = status.leader_row
    known = addresses(config)
    ids = list(config.node_ids)
    if leader is not None:
        ids += [n for n in (*leader.voters, *leader.learners) if n not in ids]
    rows = []
    for node_id in ids:
        row = status.row(node_id) if node_id in config.node_ids else NodeRow.down(node_id)
        rows.append(Member(
            id=node_id,
            role=_member_role(leader, node_id),
            peer=known.get(node_id, {}).get("peer"),
            client=known.get(node_id, {}).get("client"),
            alive=row.alive,
            leader=leader is not None and leader.id == node_id,
            match_index=_match(leader, node_id),
        ))
    return rows


def _member_role(leader: NodeRow | None, node_id: str) -> str:
    if leader is None:
        return "unknown"
    if node_id in leader.voters:
        return "voter"
    return "learner" if node_id in leader.learners else "none"


def _match(leader: NodeRow | None, node_id: str) -> int | None:
    if leader is None:
        return None
    if leader.id == node_id:
        return leader.last_index
    return leader.match_index.get(node_id)


@dataclass(frozen=True)
class NodeHealth:
    """One row of ``raftctl health``; ``problems`` is empty when the node is healthy."""

    id: str
    reachable: bool
    leader_known: bool
    lag: int | None
    disk_full: bool
    apply_halted: str | None
    problems: tuple[str, ...]

    @property
    def healthy(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "problems": list(self.problems), "healthy": self.healthy}


def node_health(status: ClusterStatus, row: NodeRow, max_lag: int) -> NodeHealth:
    """How healthy ``row`` is within ``status`` (see the module docstring)."""
    leader = status.leader_row
    if not row.alive:
        return NodeHealth(row.id, False, False, None, False, None, (row.note or "not reachable",))
    knows = leader is not None and row.leader == leader.id and row.term == leader.term
    lag = None if leader is None else max(0, (leader.commit_index or 0) - (row.applied_index or 0))
    problems = []
    if not knows:
        problems.append("no leader known" if leader is None else f"follows {row.leader or 'nobody'} in term {row.term}")
    if lag is not None and lag > max_lag:
        problems.append(f"applied {lag} entries behind the leader's commit")
    if row.disk_full:
        problems.append("disk full")
    if row.apply_halted:
        problems.append(f"stopped applying: {row.apply_halted}")
    return NodeHealth(row.id, True, knows, lag, row.disk_full, row.apply_halted, tuple(problems))


@dataclass(frozen=True)
class Health:
    """``raftctl health``'s answer: a verdict and a row per node."""

    verdict: str  # healthy, degraded, no-leader
    leader: str | None
    nodes: tuple[NodeHealth, ...]

    def to_json(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "healthy": self.verdict == "healthy", "leader": self.leader,
                "nodes": [n.to_json() for n in self.nodes]}


def cluster_health(status: ClusterStatus, *, max_lag: int = DEFAULT_MAX_LAG) -> Health:
    """The health of every node of ``status`` and the cluster's verdict."""
    rows = tuple(node_health(status, row, max_lag) for row in status.nodes)
    if status.leader is None:
        verdict = "no-leader"
    else:
        verdict = "healthy" if all(r.healthy for r in rows) else "degraded"
    return Health(verdict, status.leader, rows)
