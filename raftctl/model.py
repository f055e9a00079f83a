"""Status records: what raftctl knows about each node, as plain frozen data.

``NodeRow`` is one node as seen by one ``status`` request (or its absence); ``ClusterStatus`` is
one picture of the whole cluster. Both are pure (no trio, no rich) so that rendering, the wait
conditions and the JSON of ``status --json`` are testable without processes.

The leader of a picture is the node that says it is leader and that a majority of the cluster
(itself included) acknowledges in the same term. A deposed leader cut off with a minority still
says "leader" until CheckQuorum demotes it, but it never has a majority behind it, so scripts that
ask for the leader (``raftctl leader``, ``kill leader``) never get a stale one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: The keys of one node in ``status --json``, in the order of the contract.
STATUS_KEYS = (
    "id",
    "alive",
    "pid",
    "role",
    "term",
    "leader",
    "last_index",
    "commit_index",
    "applied_index",
    "snapshot_index",
    "faults",
    "state",
)


@dataclass(frozen=True, kw_only=True)
class NodeRow:
    """One node in a status picture.

    Attributes:
        id: The node id.
        alive: The node answered the ``status`` request.
        pid: The process id the node reported (None when it did not answer).
        role: ``leader``, ``follower``, ``candidate`` or ``pre-candidate`` (None when down).
        term, leader, last_index, commit_index, applied_index, snapshot_index: As the node
            reported them (None when down).
        faults: The node's link faults (``partitioned_from``, ``delay_ms``, ``jitter_ms``,
            ``drop_pct``, ``duplicate_pct``), or None.
        state: The state machine's summary (e.g. ``{"value": 57}``), or None.
        apply_halted: Why the node stopped applying commands, if it did.
        disk_full: The node's disk is full: it is up but acknowledges nothing until space frees.
        voters, learners: The membership the node knows (its latest configuration).
        membership_change: The leader's membership change in progress, if any.
        match_index: On the leader, each other member's match index (what it holds of the log).
        note: For humans: why a down node is down (``"not running"``, ``"pid 42 not answering"``).
    """

    id: str
    alive: bool
    pid: int | None = None
    role: str | None = None
    term: int | None = None
    leader: str | None = None
    last_index: int | None = None
    commit_index: int | None = None
    applied_index: int | None = None
    snapshot_index: int | None = None
    faults: dict[str, Any] | None = None
    state: dict[str, Any] | None = None
    apply_halted: str | None = None
    disk_full: bool = False
    voters: tuple[str, ...] = ()
    learners: tuple[str, ...] = ()
    membership_change: str | None = None
    match_index: dict[str, int] = field(default_factory=dict)
    note: str = ""

    @classmethod
    def down(cls, node_id: str, note: str = "not running") -> NodeRow:
        """The row of a node that did not answer."""
        return cls(id=node_id, alive=False, note=note)

    @classmethod
    def from_response(cls, node_id: str, response: Mapping[str, Any]) -> NodeRow:
        """The row of a node from its ``status`` response.

        ``node_id`` is the node that was asked: the response's own ``id`` key is not trusted
        (the endpoint echoes the request id under that key).
        """
        faults = response.get("faults")
        return cls(
            id=node_id,
            alive=True,
            pid=response.get("pid"),
            role=response.get("role"),
            term=response.get("term"),
            leader=response.get("leader"),
            last_index=response.get("last_index"),
            commit_index=response.get("commit_index"),
            applied_index=response.get("applied_index"),
            snapshot_index=response.get("snapshot_index"),
            faults=dict(faults) if isinstance(faults, Mapping) else None,
            state=dict(response.get("state") or {}),
            apply_halted=response.get("apply_halted"),
            disk_full=bool((response.get("stats") or {}).get("disk_full")),
            voters=tuple(response.get("voters") or ()),
            learners=tuple(response.get("learners") or ()),
            membership_change=response.get("membership_change"),
            match_index=_int_map(response.get("match_index")),
        )

    def to_json(self) -> dict[str, Any]:
        """This row as in ``status --json``: exactly ``STATUS_KEYS``; a down node has nulls."""
        if not self.alive:
            return {key: (self.id if key == "id" else False if key == "alive" else None) for key in STATUS_KEYS}
        return {key: getattr(self, key) for key in STATUS_KEYS}


@dataclass(frozen=True)
class ClusterStatus:
    """One picture of the cluster: a row per node of the cluster file, in file order.

    Attributes:
        name: The cluster's name.
        nodes: One row per node.
        taken_at: When the picture was taken (``time.time()``).
    """

    name: str
    nodes: tuple[NodeRow, ...]
    taken_at: float = 0.0
    _by_id: dict[str, NodeRow] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_id", {row.id: row for row in self.nodes})

    def row(self, node_id: str) -> NodeRow:
        return self._by_id[node_id]

    @property
    def majority(self) -> int:
        return len(self.nodes) // 2 + 1

    @property
    def alive(self) -> tuple[NodeRow, ...]:
        return tuple(row for row in self.nodes if row.alive)

    @property
    def any_alive(self) -> bool:
        return any(row.alive for row in self.nodes)

    @property
    def leader_row(self) -> NodeRow | None:
        """The leader acknowledged by a majority in its term (see the module docstring), or None."""
        best: NodeRow | None = None
        for row in self.alive:
            if row.role != "leader":
                continue
            backers = sum(1 for r in self.alive if r.leader == row.id and r.term == row.term)
            if backers >= self.majority and (best is None or (row.term or 0) > (best.term or 0)):
                best = row
        return best

    @property
    def leader(self) -> str | None:
        row = self.leader_row
        return row.id if row is not None else None

    def claimed_leaders(self) -> list[NodeRow]:
        """Every live node that says it is leader, majority or not (newest term first)."""
        return sorted((r for r in self.alive if r.role == "leader"), key=lambda r: -(r.term or 0))

    def followers(self) -> list[NodeRow]:
        """Live followers that vote (a learner is no follower), those that acknowledge the current
        leader first, in file order."""
        leader = self.leader_row
        followers = [r for r in self.alive
                     if r.role == "follower" and r.id not in (leader.learners if leader else r.learners)]
        if leader is None:
            return followers
        return sorted(followers, key=lambda r: 0 if (r.leader == leader.id and r.term == leader.term) else 1)

    def lagging(self, applied: int) -> list[NodeRow]:
        """Rows whose applied index is below ``applied`` (down nodes included)."""
        return [r for r in self.nodes if not r.alive or (r.applied_index or 0) < applied]

    def convergence_problems(self) -> list[str]:
        """Why the cluster has not converged; empty when it has.

        Converged: every node is alive, acknowledges the same leader in the same term, has the
        same last, commit and applied index (all equal), the same state-machine summary, and
        applies commands.
        """
        problems = []
        down = [r.id for r in self.nodes if not r.alive]
        if down:
            problems.append(f"down: {', '.join(down)}")
        leader = self.leader_row
        if leader is None:
            problems.append("no leader")
            return problems
        for row in self.alive:
            if row.leader != leader.id or row.term != leader.term:
                problems.append(f"{row.id} follows {row.leader or 'nobody'} in term {row.term}")
            elif not row.last_index == row.commit_index == row.applied_index == leader.last_index:
                problems.append(
                    f"{row.id} at last {row.last_index} / commit {row.commit_index} / applied "
                    f"{row.applied_index}, leader last {leader.last_index}"
                )
            elif row.state != leader.state:
                problems.append(f"{row.id} state {row.state} differs from the leader's {leader.state}")
            if row.apply_halted:
                problems.append(f"{row.id} stopped applying: {row.apply_halted}")
            if row.disk_full:
                problems.append(f"{row.id}: disk full")
        return problems

    def membership(self) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
        """(voters, learners) as the leader knows them, or None without a leader."""
        leader = self.leader_row
        return (leader.voters, leader.learners) if leader is not None else None

    def to_json(self) -> dict[str, Any]:
        """The ``status --json`` document of the contract, plus the leader's ``voters`` and ``learners``."""
        members = self.membership()
        return {"cluster": self.name, "leader": self.leader, "nodes": [row.to_json() for row in self.nodes],
                "voters": list(members[0]) if members else None, "learners": list(members[1]) if members else None}


def _int_map(value: Any) -> dict[str, int]:
    """``{"n2": 7}`` from a node's answer; anything malformed is dropped, never trusted."""
    if not isinstance(value, Mapping):
        return {}
    return {str(k): v for k, v in value.items() if isinstance(v, int) and not isinstance(v, bool)}


def faults_active(faults: Mapping[str, Any] | None) -> bool:
    """Whether a node's fault record holds any fault."""
    if not faults:
        return False
    return bool(faults.get("partitioned_from")) or any(
        float(faults.get(key) or 0) > 0 for key in ("delay_ms", "jitter_ms", "drop_pct", "duplicate_pct")
    )


def describe_faults(faults: Mapping[str, Any] | None) -> str:
    """``"cut n2,n3 delay 50±10ms drop 20% dup 5%"``; ``"-"`` when there are none."""
    if not faults_active(faults):
        return "-"
    assert faults is not None
    parts = []
    cut = faults.get("partitioned_from") or []
    if cut:
        parts.append(f"cut {','.join(cut)}")
    delay, jitter = float(faults.get("delay_ms") or 0), float(faults.get("jitter_ms") or 0)
    if delay or jitter:
        parts.append(f"delay {_num(delay)}" + (f"±{_num(jitter)}" if jitter else "") + "ms")
    if float(faults.get("drop_pct") or 0):
        parts.append(f"drop {_num(float(faults['drop_pct']))}%")
    if float(faults.get("duplicate_pct") or 0):
        parts.append(f"dup {_num(float(faults['duplicate_pct']))}%")
    return " ".join(parts)


def describe_state(state: Mapping[str, Any] | None) -> str:
    """``"value=57"`` for ``{"value": 57}``; ``"-"`` for nothing."""
    if not state:
        return "-"
    return " ".join(f"{key}={value}" for key, value in state.items())


def _num(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:g}"
