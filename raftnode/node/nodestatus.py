"""A consistent picture of one node (``RaftNode.status()``): its core, applier and counters."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..core.raft import Raft
from ..core.ready import Role
from .apply import Applier
from .statemachines import StateMachine


@dataclass(frozen=True, kw_only=True)
class NodeStatus:
    """A consistent picture of one node, cheap to take (``RaftNode.status()``)."""

    id: str
    role: str
    term: int
    leader: str | None
    voters: list[str]
    learners: list[str]
    membership_change: str | None  # the leader's pending change, if any
    last_index: int
    commit_index: int
    applied_index: int
    snapshot_index: int
    apply_halted: str | None
    state: dict[str, Any]
    stats: dict[str, Any] = field(default_factory=dict)
    #: On the leader: how far each other member's log is known to match its own; else empty.
    match_index: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def node_stats() -> dict[str, int]:
    """A new node's own counters, all zero (the node's rooms count into this one dict)."""
    return {
        "inbox_dropped": 0, "peer_dropped": 0, "fsyncs": 0, "batches": 0, "events_dropped": 0,
        "turn_max_ms": 0, "turns_over_50ms": 0,
        "fsync_max_ms": 0, "keepalive_heartbeats": 0, "ticker_wakeups": 0, "disk_full": 0,
    }


def node_status(
    node_id: str, raft: Raft, applier: Applier, stats: dict[str, Any], transport_stats: dict[str, Any]
) -> NodeStatus:
    """The status of the node ``node_id`` now; ``stats``: its own counters, besides the core's
    and its transport's."""
    return NodeStatus(
        id=node_id,
        role=raft.role.value,
        term=raft.term,
        leader=raft.leader,
        voters=sorted(raft.configuration.voters),
        learners=sorted(raft.configuration.learners),
        membership_change=raft.pending_membership_change() if raft.role is Role.LEADER else None,
        last_index=raft.log.last_index,
        commit_index=raft.commit,
        applied_index=applier.applied_index,
        snapshot_index=raft.log.offset,
        apply_halted=applier.halted.reason if applier.halted else None,
        state=_summary(applier.state_machine),
        stats={**stats, **raft.stats, **transport_stats, "client_sessions": len(applier.sessions)},
        match_index=_match_index(raft),
    )


def _match_index(raft: Raft) -> dict[str, int]:
    """The leader's match index of every other member (empty unless ``raft`` leads)."""
    if raft.role is not Role.LEADER:
        return {}
    members = (*raft.configuration.voters, *raft.configuration.learners)
    return {n: progress.match for n in sorted(members) if n != raft.id and (progress := raft.progress(n)) is not None}


def _summary(state_machine: StateMachine) -> dict[str, Any]:
    summary = getattr(state_machine, "summary", None)
    return summary() if summary is not None else {}
