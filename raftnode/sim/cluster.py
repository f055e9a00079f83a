"""A deterministic cluster of Raft cores over the simulated network.

The vocabulary of the scenario catalog: ``isolate``, ``cut``, ``drop``, ``delay``,
``duplicate``, ``reorder``, ``crash``, ``restart``, ``heal``, ``tick``, ``stabilize``, plus
``propose`` (a client's ``run_command``, in a session or not), ``register_session``, ``read`` (a
ReadIndex query, §6.4), ``transfer``, ``add_node`` and ``remove_node``, and disk faults:
``fail_next_write`` (DISK_WRITE_FAULTS), ``corrupt_record`` / ``repair_disk``, ``rewind_log`` and
``replace_disk``. Session entries are stamped with the simulated time (ticks). A node
added joins with no configuration of its own; a node that applies a committed configuration
without itself stops, as the runtime does. After every input each node runs the runtime's own
Ready loop (``raftnode.driver.drive``, in the order the core states in ``core/ready.py``) over
simulated ports: a leader's appends leave before its persist and it applies before it, a
follower acknowledges and applies only after. A crash throws away everything but the disk, and a
write fault (``fail_next_write``) stops a node in the middle of a Ready's persist, after what the
order let leave already left.

Every report is checked by :class:`InvariantChecker` as it happens, and ``check_step`` runs the
per-step checks, so a violation surfaces at the step that caused it.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from ..apply import Applier, ApplyFailure
from ..core.commands import CommandResult, CommandTracker
from ..core.errors import RaftError
from ..core.messages import Entry, EntryKind, Message, SnapshotMeta
from ..core.quorum import Configuration
from ..core.raft import Raft, RaftConfig
from ..core.readindex import ReadState
from ..core.ready import HardState, Ready, Role
from ..driver import ReadyStep, drive, hand_over, lead_without_disk, run_to_completion
from ..sessions import SessionStamp, SessionTable, encode_register, encode_session_command
from ..statemachines import CommandError, Counter, StateMachine
from .invariants import COMPACTED, InvariantChecker
from .network import SimNetwork
from .trace import TraceLine


@dataclass(eq=False)
class ClientRequest:
    """One ``run_command`` a simulated client made; ``result`` is set once it is answered."""

    id: int
    node: str
    command: str
    submitted: int
    result: CommandResult | None = None
    answered_at: int | None = None
    lost: bool = False  # the node crashed before answering
    session: SessionStamp | None = None  # the stamp of a session command
    read: bool = False  # a ReadIndex query, not a log entry
    floor: int = 0  # for a read: the highest index acknowledged when it was issued
    deadline: int | None = None  # for a read: when it expires

    @property
    def done(self) -> bool:
        return self.result is not None or self.lost


@dataclass
class SimDisk:
    """What survives a crash: the hard state, the latest snapshot and the log after it."""

    hard_state: HardState = field(default_factory=HardState)
    entries: list[Entry] = field(default_factory=list)
    snapshot: tuple[SnapshotMeta, bytes] | None = None
    corrupt_at: int | None = None  # the index of a whole record whose checksum no longer matches

    @property
    def offset(self) -> int:
        return self.snapshot[0].index if self.snapshot else 0

    @property
    def last_index(self) -> int:
        return self.offset + len(self.entries)

    def term(self, index: int) -> int | None:
        """The term stored at ``index``: COMPACTED inside the snapshot, None past the end."""
        offset = self.offset
        if index > offset + len(self.entries) or index < 0:
            return None
        if index == offset:
            return self.snapshot[0].term if self.snapshot else 0
        if index < offset:
            return COMPACTED
        return self.entries[index - offset - 1].term

    def holds(self, index: int, term: int) -> bool:
        """The entry is on this disk, in the log or inside the snapshot (which holds only committed entries)."""
        stored = self.term(index)
        return stored == term or stored == COMPACTED or (index == self.offset and index > 0)

    def write(self, entries: Sequence[Entry]) -> int | None:
        """Append, truncating a conflicting suffix first; returns where it truncated, if it did."""
        first = entries[0].index
        truncated_from = first if first <= self.last_index else None
        del self.entries[first - self.offset - 1 :]
        self.entries.extend(entries)
        return truncated_from

    def save_snapshot(self, meta: SnapshotMeta, data: bytes) -> int | None:
        """Keep the snapshot and drop the log it covers (all of it if the entry at its index differs).

        Returns the index the log was truncated from, if entries after the snapshot were dropped.
        """
        keep = self.term(meta.index) in (meta.term, COMPACTED)
        dropped = None if keep or self.last_index <= meta.index else meta.index + 1
        self.entries = [e for e in self.entries if e.index > meta.index] if keep else []
        self.snapshot = (meta, data)
        return dropped


@dataclass(eq=False)
class SimNode:
    id: str
    disk: SimDisk
    bootstrap: tuple[str, ...] = ()  # the voters it starts with when its disk holds no configuration
    removed: bool = False  # it applied a committed configuration without itself and stopped
    raft: Raft | None = None
    applier: Applier | None = None
    tracker: CommandTracker[ClientRequest] = field(default_factory=CommandTracker)
    incarnation: int = 0
    apply_failures: list[ApplyFailure] = field(default_factory=list)
    last_commit: int = 0
    last_applied: int = 0
    reads: dict[int, ClientRequest] = field(default_factory=dict)  # read id -> waiting for its ReadState
    ready_reads: list[tuple[int, ClientRequest]] = field(default_factory=list)  # (read index, read) to serve
    write_fault: str | None = None  # a disk fault armed to hit its next write (see DISK_WRITE_FAULTS)
    disk_full: bool = False  # its writes fail for want of space (see SimCluster.fill_disk)
    leading_without_disk: bool = False  # a leader whose write found the disk full (it refuses commands)
    refused: str | None = None  # why it refuses to start (a corrupt disk): it stays down

    @property
    def alive(self) -> bool:
        return self.raft is not None

    def term_at(self, index: int) -> int | None:
        """The term at ``index`` in the node's in-memory log (COMPACTED inside its snapshot)."""
        assert self.raft is not None
        log = self.raft.log
        if index <= 0 or index > log.last_index:
            return None
        return COMPACTED if index < log.offset else log.term(index)


# Faults that hit a node's next write, then stop it before it sends or acknowledges anything:
# a torn write (a prefix of it reached the disk), unsynced writes lost at a crash (none did), a
# failed fsync (an unknown prefix did: the node stops and never retries the same data, the
# PostgreSQL fsync lesson), a full disk (the write failed: nothing did).
DISK_WRITE_FAULTS = ("torn write", "lost unsynced writes", "fsync failed", "disk full")


class SimCluster:
    """N Raft cores, one seeded network, one invariant checker.

    Args:
        size: number of nodes, named n1..nN (or pass ``ids``).
        seed: seeds every random choice (network faults and each node's timeouts).
        raft_class: the engine to run — a test-only seam for planting bugs.
        state_machine: factory of each node's state machine.
        trace: collect one line per event in ``self.trace``.
        snapshot_every: each node snapshots its state machine and compacts its log once this many
            applied entries follow its latest snapshot (None: never).
        corrupt_as_torn: a test-only seam for a planted bug: a restarting node takes a corrupt
            record for a torn tail and drops the log from it, instead of refusing to start.
        session_table: factory of each node's client session table (a seam for planted bugs too).
        ready_step: replaces ``raftnode.driver.process_ready`` — a seam for planting a reordering.
        config: overrides of RaftConfig fields for every node.
    """

    def __init__(
        self,
        size: int = 3,
        *,
        seed: int = 0,
        ids: Sequence[str] | None = None,
        raft_class: type[Raft] = Raft,
        state_machine: Callable[[], StateMachine] = Counter,
        trace: bool = False,
        client_timeout: int = 100,
        snapshot_every: int | None = None,
        corrupt_as_torn: bool = False,
        session_table: Callable[[], SessionTable] = SessionTable,
        ready_step: ReadyStep | None = None,
        **config: object,
    ):
        self.ids = tuple(ids) if ids else tuple(f"n{i}" for i in range(1, size + 1))
        self.seed = seed
        self.rng = random.Random(seed)
        self.network = SimNetwork(rng=random.Random(self.rng.random()))
        self.checker = InvariantChecker(self.ids)
        self.raft_class = raft_class
        self.state_machine = state_machine
        self.client_timeout = client_timeout
        self.snapshot_every = snapshot_every
        self.corrupt_as_torn = corrupt_as_torn
        self.session_table = session_table
        self.ready_step = ready_step
        self.config_overrides = config
        self.now = 0
        self.trace: list[TraceLine] | None = [] if trace else None
        self.requests: list[ClientRequest] = []
        self.nodes: dict[str, SimNode] = {node_id: SimNode(node_id, SimDisk(), self.ids) for node_id in self.ids}
        for node in self.nodes.values():
            self._boot(node)

    # -- node life -------------------------------------------------------------------------------

    def _boot(self, node: SimNode) -> None:
        config = RaftConfig(node_id=node.id, voters=node.bootstrap, **self.config_overrides)  # type: ignore[arg-type]
        disk = node.disk
        node.raft = self.raft_class(
            config,
            rng=random.Random(self.rng.random()),
            hard_state=disk.hard_state,
            entries=list(disk.entries),
            snapshot=disk.snapshot,
        )
        node.applier = Applier(self.state_machine(), sessions=self.session_table())
        if disk.snapshot is not None:
            node.applier.restore(disk.snapshot[0].index, disk.snapshot[1])
        self.checker.state_machine_built(node.id, node.applier.applied_index)
        node.tracker = CommandTracker()
        node.reads, node.ready_reads = {}, []
        node.last_commit = node.raft.commit
        node.last_applied = node.applier.applied_index

    def crash(self, node_id: str) -> None:
        """Stop a node at once: memory, pending clients and its state machine are lost; its disk is kept."""
        node = self.node(node_id)
        if node.alive:
            self._stop(node, "crashed")

    def _stop(self, node: SimNode, why: str, kind: str = "crash") -> None:
        """Memory, pending clients and the state machine are gone; the disk stays."""
        for req, _ in node.tracker.leadership_lost(None):
            req.lost = True
        for req in [*node.reads.values(), *(req for _, req in node.ready_reads)]:
            req.lost = True
        node.raft = None
        node.applier = None
        node.leading_without_disk = False  # the process that noticed is gone
        self._log(node, why, kind)

    def restart(self, node_id: str) -> None:
        """Start a crashed node again from its disk (a no-op for a live node).

        A disk with a corrupt record is refused, as DiskStorage refuses it: the node stays down
        (``refused`` says why) — unless ``corrupt_as_torn`` (a planted bug) drops the log from it.
        """
        node = self.node(node_id)
        if node.alive or node.removed or node.refused:
            return
        corrupt_at = node.disk.corrupt_at
        if corrupt_at is not None:
            if not self.corrupt_as_torn:
                node.refused = f"refused to start: the record of entry {corrupt_at} fails its checksum"
                self._log(node, node.refused, "restart")
                return
            self.rewind_log(node_id, corrupt_at - 1)
        node.incarnation += 1
        self._boot(node)
        self._log(node, f"restarted from disk (term {node.disk.hard_state.term}, {len(node.disk.entries)} entries)", "restart")

    def rewind_log(self, node_id: str, last_index: int) -> None:
        """A crashed node's disk lost the end of its log: it now ends at ``last_index`` (its hard
        state, term and vote, is kept). The checker is told the node lost what it may have
        acknowledged, as for a truncation."""
        node = self.node(node_id)
        disk = node.disk
        if not disk.offset <= last_index < disk.last_index:
            raise ValueError(f"cannot rewind {node_id} to {last_index}: its log holds {disk.offset + 1}..{disk.last_index}")
        rewound = SimDisk(disk.hard_state, disk.entries[: last_index - disk.offset], disk.snapshot)
        self.replace_disk(node_id, rewound, why=f"lost the end of its log: it now ends at {last_index}")

    def corrupt_record(self, node_id: str, index: int) -> None:
        """Flip a bit in the (whole) record of entry ``index`` on a crashed node's disk."""
        node = self.node(node_id)
        if node.alive:
            raise RuntimeError(f"node {node_id} is running: crash it before damaging its disk")
        if not node.disk.offset < index <= node.disk.last_index:
            raise ValueError(f"{node_id}'s log holds no entry {index}")
        node.disk.corrupt_at = index
        self._log(node, f"disk damaged: a bit flipped in the record of entry {index}", "disk")

    def repair_disk(self, node_id: str) -> None:
        """The operator restores a crashed node's corrupt record from a copy: it may start again."""
        node = self.node(node_id)
        if node.disk.corrupt_at is not None and not node.alive:
            node.disk.corrupt_at = None
            node.refused = None
            self._log(node, "disk repaired: the corrupt record restored from a copy", "disk")

    def fill_disk(self, node_id: str, full: bool = True) -> None:
        """The node's disk is full (or has room again). Like the runtime, a full follower stays up
        and drops each write unacknowledged and unadvanced (its core hands it out again later); a
        full leader stays up too, refuses commands and hands over (``driver.hand_over``, ``driver.lead_without_disk``); a
        node installing a snapshot stops."""
        node = self.node(node_id)
        node.disk_full = full
        node.leading_without_disk = node.leading_without_disk and full
        self._log(node, "disk full" if full else "disk has room again", "disk")
        if not full and node.raft is not None:
            self._process(node)

    def fail_next_write(self, node_id: str, fault: str) -> None:
        """Arm one of DISK_WRITE_FAULTS: it hits the node's next write to its disk."""
        if fault not in DISK_WRITE_FAULTS:
            raise ValueError(f"unknown disk fault {fault!r}; one of {', '.join(DISK_WRITE_FAULTS)}")
        self.node(node_id).write_fault = fault

    def replace_disk(self, node_id: str, disk: SimDisk, *, why: str = "disk replaced") -> None:
        """A crashed node's disk is swapped for ``disk`` (an older copy, an empty one); the checker
        counts it as no longer holding anything after ``disk``'s last index."""
        node = self.node(node_id)
        if node.alive:
            raise RuntimeError(f"node {node_id} is running: crash it before touching its disk")
        node.disk = disk
        self.checker.persisted(node_id, (), None, disk.last_index + 1, is_leader=False)
        self._log(node, why, "disk")

    def node(self, node_id: str) -> SimNode:
        try:
            return self.nodes[node_id]
        except KeyError:
            raise KeyError(f"unknown node {node_id!r}; nodes are {', '.join(self.ids)}") from None

    def raft(self, node_id: str) -> Raft:
        raft = self.node(node_id).raft
        if raft is None:
            raise RuntimeError(f"node {node_id} is crashed")
        return raft

    def live(self) -> list[SimNode]:
        return [n for n in self.nodes.values() if n.alive]

    # -- network faults --------------------------------------------------------------------------

    def _links(self, a: str, b: str | None) -> Iterable[tuple[str, str]]:
        others = [b] if b is not None else [n for n in self.ids if n != a]
        for other in others:
            yield a, other
            yield other, a

    def cut(self, a: str, b: str) -> None:
        """Block both directions between ``a`` and ``b``."""
        for src, dst in self._links(a, b):
            self.network.link(src, dst).blocked = True
        self._log(None, f"cut {a} <-> {b}", "network", (a, b))

    def isolate(self, node_id: str) -> None:
        """Block every link of ``node_id``."""
        for src, dst in self._links(node_id, None):
            self.network.link(src, dst).blocked = True
        self._log(None, f"isolate {node_id}", "network", (node_id,))

    def partition(self, *groups: Sequence[str]) -> None:
        """Blockade semantics: nodes in different groups cannot talk; unnamed nodes form one more group."""
        named = {n for g in groups for n in g}
        all_groups = [set(g) for g in groups] + [set(self.ids) - named]
        side = {n: i for i, g in enumerate(all_groups) for n in g}
        for a in self.ids:
            for b in self.ids:
                if a != b and side[a] != side[b]:
                    self.network.link(a, b).blocked = True
        self._log(None, f"partition {' | '.join(','.join(sorted(g)) for g in all_groups if g)}", "network")

    def drop(self, a: str, b: str | None = None, rate: float = 0.5) -> None:
        """Lose ``rate`` of the messages on the links between ``a`` and ``b`` (all of ``a``'s if None)."""
        for src, dst in self._links(a, b):
            self.network.link(src, dst).drop = rate
        self._log(None, f"drop {rate:.0%} {a} <-> {b or '*'}", "network", _pair(a, b, self.ids))

    def delay(self, a: str, b: str | None = None, ticks: int = 3, jitter: int = 0) -> None:
        for src, dst in self._links(a, b):
            faults = self.network.link(src, dst)
            faults.delay, faults.jitter = ticks, jitter
        self._log(None, f"delay {ticks}+{jitter} ticks {a} <-> {b or '*'}", "network", _pair(a, b, self.ids))

    def reorder(self, a: str, b: str | None = None, jitter: int = 3) -> None:
        """Deliver messages on these links out of order (random jitter of up to ``jitter`` ticks)."""
        for src, dst in self._links(a, b):
            self.network.link(src, dst).jitter = jitter
        self._log(None, f"reorder (jitter {jitter}) {a} <-> {b or '*'}", "network", _pair(a, b, self.ids))

    def duplicate(self, a: str, b: str | None = None, rate: float = 0.5) -> None:
        for src, dst in self._links(a, b):
            self.network.link(src, dst).duplicate = rate
        self._log(None, f"duplicate {rate:.0%} {a} <-> {b or '*'}", "network", _pair(a, b, self.ids))

    def heal(self) -> None:
        """Remove every network fault (crashed nodes stay crashed)."""
        self.network.heal()
        self._log(None, "heal", "network")

    # -- clients ---------------------------------------------------------------------------------

    def propose(
        self, node_id: str, command: str, *, timeout: int | None = None, session: SessionStamp | None = None
    ) -> ClientRequest:
        """A client's ``run_command`` at ``node_id`` (in a session with ``session``); answered at
        once or after apply, expiry or step-down."""
        if session is None:
            return self._submit(node_id, command, command.encode(), EntryKind.COMMAND, timeout, None)
        data = encode_session_command(session, float(self.now), command.encode())
        return self._submit(node_id, command, data, EntryKind.SESSION, timeout, session)

    def register_session(self, node_id: str, *, timeout: int | None = None) -> ClientRequest:
        """A client registers a session at ``node_id``; the answer's result is the session id."""
        data = encode_register(float(self.now))
        return self._submit(node_id, "register session", data, EntryKind.SESSION, timeout, None)

    def _submit(self, node_id: str, command: str, data: bytes, kind: EntryKind, timeout: int | None,
                session: SessionStamp | None) -> ClientRequest:
        node = self.node(node_id)
        req = ClientRequest(id=len(self.requests) + 1, node=node_id, command=command, submitted=self.now,
                            session=session)
        self.requests.append(req)
        if node.raft is None:
            req.lost = True
            return req
        if node.leading_without_disk and node.raft.role is Role.LEADER:  # as the runtime's _propose
            self._answer(node, req, CommandResult(retry=True, error=f"disk full at leader {node_id}"))
            return req
        try:
            index = node.raft.propose(data, kind)
        except RaftError as exc:
            self._answer(node, req, CommandResult.from_refusal(exc))
            return req
        deadline = self.now + (timeout if timeout is not None else self.client_timeout)
        node.tracker.track(index, node.raft.term, req, deadline=deadline)
        self._log(node, f"proposed {command!r} at index {index}", "propose")
        self._process(node)
        return req

    def read(self, node_id: str, command: str = "get", *, timeout: int | None = None) -> ClientRequest:
        """A client's linearizable query at ``node_id`` (ReadIndex, no log entry); answered once
        the node has applied through the read index, or refused, or expired."""
        node = self.node(node_id)
        req = ClientRequest(id=len(self.requests) + 1, node=node_id, command=command, submitted=self.now, read=True,
                            floor=self.checker.highest_acked)
        self.requests.append(req)
        if node.raft is None:
            req.lost = True
            return req
        try:
            node.raft.read_index(req.id)
        except RaftError as exc:
            self._answer(node, req, CommandResult.from_refusal(exc))
            return req
        req.deadline = self.now + (timeout if timeout is not None else self.client_timeout)
        node.reads[req.id] = req
        self._log(node, f"read {command!r} (request {req.id})", "read")
        self._process(node)
        return req

    def transfer(self, target: str, *, leader: str | None = None) -> None:
        """Ask the leader (or ``leader``) to hand leadership to ``target``."""
        node = self._leader_node(leader)
        node.raft.transfer_leadership(target)  # type: ignore[union-attr]
        self._process(node)

    def add_node(self, node_id: str, *, leader: str | None = None) -> int:
        """Ask the leader to add a brand-new node ``node_id`` (started empty); returns the entry index.

        Raises the core's RaftError (NotLeader, MembershipError) when the leader refuses.
        """
        if node_id in self.nodes:
            raise ValueError(f"node {node_id} existed already; ids are never reused")
        node = self._leader_node(leader)
        index = node.raft.add_node(node_id, f"sim://{node_id}")  # type: ignore[union-attr]
        new = self.nodes[node_id] = SimNode(node_id, SimDisk())
        self.ids = (*self.ids, node_id)
        self._boot(new)
        self._log(new, "started empty, to join the cluster", "join")
        self._process(node)
        return index

    def remove_node(self, node_id: str, *, leader: str | None = None) -> int:
        """Ask the leader to remove ``node_id``; returns the entry index (raises RaftError if refused)."""
        node = self._leader_node(leader)
        index = node.raft.remove_node(node_id)  # type: ignore[union-attr]
        self._process(node)
        return index

    def _leader_node(self, leader: str | None) -> SimNode:
        leader_id = leader or self.leader()
        if leader_id is None:
            raise RuntimeError("no leader to ask")
        node = self.node(leader_id)
        if node.raft is None:
            raise RuntimeError(f"node {leader_id} is crashed")
        return node

    def configuration(self) -> Configuration:
        """The latest configuration: the leader's, else the one in the longest live log."""
        leader = self.leader()
        if leader is not None:
            return self.raft(leader).configuration
        live = [n.raft for n in self.live() if n.raft is not None]
        if not live:
            return Configuration(frozenset(self.ids))
        return max(live, key=lambda r: (r.log.last_term, r.log.last_index)).configuration

    def members(self) -> list[str]:
        """Ids of the latest configuration's voters and learners, in order."""
        return sorted(self.configuration().members())

    def _answer(self, node: SimNode, req: ClientRequest, result: CommandResult) -> None:
        req.result = result
        req.answered_at = self.now
        self._log(node, f"answered {req.command!r}: {_describe(result)}", "answer")

    # -- time ------------------------------------------------------------------------------------

    def tick(self, ticks: int = 1) -> None:
        """Advance time: every live node ticks, then every message due is delivered."""
        for _ in range(ticks):
            self.now += 1
            for node in self.live():
                assert node.raft is not None
                node.raft.tick()
                for req, result in node.tracker.expire(self.now):
                    self._answer(node, req, result)
                if node.reads or node.ready_reads:
                    self._expire_reads(node)
                self._process(node)
            self.deliver()

    def deliver(self) -> int:
        """Deliver every message due now, including the answers they provoke; returns how many."""
        count = 0
        while (m := self.network.pop_due(self.now)) is not None:
            node = self.nodes.get(m.dst)
            if node is None or node.raft is None:
                continue
            node.raft.step(m)
            self._process(node)
            count += 1
        return count

    def run_until(self, predicate: Callable[[], bool], *, max_ticks: int = 1000) -> bool:
        """Tick until ``predicate()`` holds; False if it still does not after ``max_ticks``."""
        for _ in range(max_ticks):
            if predicate():
                return True
            self.tick()
        return predicate()

    def stabilize(self, *, max_ticks: int = 1000, nodes: Iterable[str] | None = None) -> bool:
        """Tick until the given (default: live) nodes share one leader and have applied its whole log."""
        members = list(nodes) if nodes is not None else None
        return self.run_until(lambda: self.converged(members), max_ticks=max_ticks)

    def wait_leader(self, *, max_ticks: int = 1000) -> str:
        """Tick until a leader is known to every live node; returns it."""
        if not self.run_until(lambda: self._agreed_leader() is not None, max_ticks=max_ticks):
            raise AssertionError(f"no leader within {max_ticks} ticks (seed {self.seed})")
        leader = self._agreed_leader()
        assert leader is not None
        return leader

    def wait_answered(self, req: ClientRequest, *, max_ticks: int = 1000) -> CommandResult:
        if not self.run_until(lambda: req.done, max_ticks=max_ticks):
            raise AssertionError(f"request {req.command!r} unanswered after {max_ticks} ticks (seed {self.seed})")
        assert req.result is not None, f"request {req.command!r} lost: its node crashed"
        return req.result

    # -- observation -----------------------------------------------------------------------------

    def leader(self) -> str | None:
        """The live leader of the highest term, if any."""
        leaders = [n for n in self.live() if n.raft is not None and n.raft.role is Role.LEADER]
        if not leaders:
            return None
        return max(leaders, key=lambda n: n.raft.term).id  # type: ignore[union-attr]

    def _agreed_leader(self) -> str | None:
        leader = self.leader()
        if leader is None:
            return None
        term = self.raft(leader).term
        members = self.raft(leader).configuration.members()
        if all(n.raft.leader == leader and n.raft.term == term  # type: ignore[union-attr]
               for n in self.live() if n.id in members):
            return leader
        return None

    def converged(self, nodes: Sequence[str] | None = None) -> bool:
        leader = self.leader()
        if leader is None:
            return False
        lraft = self.raft(leader)
        if lraft.commit != lraft.log.last_index:
            return False
        if nodes is not None:
            members = [self.node(n) for n in nodes]
        else:
            members = [n for n in self.live() if n.id in lraft.configuration.members()]
        for node in members:
            raft = node.raft
            if raft is None or raft.leader != leader or raft.term != lraft.term:
                return False
            if raft.commit != lraft.commit or node.applier is None or node.applier.applied_index != lraft.commit:
                return False
        return True

    def state(self, node_id: str) -> StateMachine:
        applier = self.node(node_id).applier
        if applier is None:
            raise RuntimeError(f"node {node_id} is crashed")
        return applier.state_machine

    def acknowledged(self) -> list[ClientRequest]:
        """Requests answered with the command's own outcome (a result or the state machine's error)."""
        return [r for r in self.requests if r.result is not None and r.result.index is not None
                and not r.result.timeout_expired and not r.read]

    # -- the shell's part ------------------------------------------------------------------------

    def _process(self, node: SimNode) -> None:
        """Play the shell's part for ``node``: the one Ready loop the runtime runs too."""
        raft = node.raft
        assert raft is not None and node.applier is not None
        if node.leading_without_disk and node.disk_full and raft.role is Role.LEADER:
            hand_over(raft)
            lead_without_disk(raft, _SimPorts(self, node))  # as the runtime's _while_disk_full
        elif not run_to_completion(drive(raft, _SimPorts(self, node), self.ready_step)):
            if node.leading_without_disk and node.raft is not None and raft.role is Role.LEADER:
                hand_over(raft)  # as the runtime's _step_aside
            return  # a write fault or a full disk dropped the Ready (see _persist_ready)
        if raft.removed:
            node.removed = True
            self._stop(node, "applied its own removal from the configuration: stopped", "removed")

    def _persist_ready(self, node: SimNode, ready: Ready) -> bool:
        """Persist, or meet the disk's armed fault or full disk: False drops the Ready."""
        raft = node.raft
        assert raft is not None
        if not (ready.entries or ready.hard_state or ready.snapshot):
            return True
        if node.write_fault is not None:
            self._fail_write(node, ready)
            return False
        if node.disk_full:
            if ready.snapshot is not None:
                self._stop(node, "stopped: no space left on device", "disk")
            elif raft.role is Role.LEADER:
                node.leading_without_disk = True  # it refuses commands and hands over (_process)
                self._log(node, "disk full at the leader: taking no commands, handing leadership over", "disk")
            else:
                self._log(node, "disk full: dropped a write unacknowledged", "disk")
                for req, result in node.tracker.leadership_lost(raft.leader):
                    self._answer(node, req, result)
            return False  # as the runtime does: the writes are dropped, never advanced
        self._persist(node, ready)
        return True

    def _persist(self, node: SimNode, ready: Ready) -> None:
        disk = node.disk
        assert node.raft is not None
        is_leader = node.raft.role is Role.LEADER
        if ready.snapshot is not None:
            dropped_from = disk.save_snapshot(*ready.snapshot)
            if dropped_from is not None:
                self.checker.persisted(node.id, (), None, dropped_from, is_leader=is_leader)
        if ready.entries:
            prev_term = disk.term(ready.entries[0].index - 1)
            truncated_from = disk.write(ready.entries)
            self.checker.persisted(node.id, ready.entries, prev_term, truncated_from, is_leader=is_leader)
        if ready.hard_state is not None:
            disk.hard_state = ready.hard_state

    def _fail_write(self, node: SimNode, ready: Ready) -> None:
        """The armed fault hits this Ready's write: part of it reaches the disk (a torn write or a
        failed fsync: a prefix, the hard-state record first as in DiskStorage), and the node stops
        before sending, applying or acknowledging anything of it."""
        fault, node.write_fault = node.write_fault, None
        reached = 0
        if fault in ("torn write", "fsync failed"):
            reached = self.rng.randint(0, len(ready.entries))
        if reached:
            snapshot = ready.snapshot if self.rng.random() < 0.5 else None
            self._persist(node, dataclasses.replace(ready, snapshot=snapshot, entries=ready.entries[:reached]))
        why = {"disk full": "stopped: no space left on device", "fsync failed": "stopped: fsync failed (never retried)"}
        self._stop(node, why.get(fault, f"crashed mid-write ({fault}): {reached} of {len(ready.entries)} entries on disk"))

    def _maybe_snapshot(self, node: SimNode) -> None:
        """Snapshot and compact once ``snapshot_every`` applied entries follow the latest snapshot."""
        raft, applier = node.raft, node.applier
        assert raft is not None and applier is not None
        if self.snapshot_every is None or applier.applied_index - raft.log.offset < self.snapshot_every:
            return
        data = applier.snapshot()
        meta = raft.compact(applier.applied_index, data)
        self.checker.snapshot_taken(node.id, meta.index, data)
        node.disk.save_snapshot(meta, data)
        self._log(node, f"snapshot at index {meta.index}; log compacted", "snapshot")

    def _report_state(self, node: SimNode, ready: Ready) -> None:
        raft = node.raft
        assert raft is not None
        for event in ready.events:
            self._log(node, event.detail, event.kind)
        if ready.soft_state is not None:
            if ready.soft_state.role is Role.LEADER:
                self.checker.became_leader(node.id, raft.term, node.term_at)
            elif len(node.tracker):
                for req, result in node.tracker.leadership_lost(ready.soft_state.leader):
                    self._answer(node, req, result)
        self.checker.monotonic(node.id, "commit", node.last_commit, raft.commit)
        if ready.committed:
            leaders = [(n.id, n.raft.term, n.term_at) for n in self.live()
                       if n.raft is not None and n.raft.role is Role.LEADER]
            self.checker.committed_to(node.id, ready.committed, leaders, raft.term)
            if raft.commit > node.last_commit:
                self._log(node, f"commit -> {raft.commit}", "commit")
        node.last_commit = raft.commit

    def _apply(self, node: SimNode, ready: Ready) -> None:
        applier = node.applier
        assert applier is not None and node.raft is not None
        if ready.snapshot is not None:
            meta, data = ready.snapshot
            applier.restore(meta.index, data)
            self.checker.state_machine_built(node.id, meta.index)
            self.checker.snapshot_taken(node.id, meta.index, data)
        if ready.committed:
            applier.submit(ready.committed)
        self._run_applier(node)

    def _run_applier(self, node: SimNode) -> None:
        applier = node.applier
        assert applier is not None and node.raft is not None
        done, failure = applier.run()
        for applied in done:
            entry = applied.entry
            self.checker.applied_entry(node.id, entry)
            if applied.stamp is not None:
                self.checker.applied_in_session(node.id, entry.index, applied.stamp, applied.result, applied.error)
            answer = node.tracker.applied(
                entry.index, entry.term, result=applied.result, error=applied.error, leader=node.raft.leader
            )
            if answer is not None:
                req, result = answer
                if result.index is not None:
                    holders = {n.id for n in self.nodes.values() if n.disk.holds(entry.index, entry.term)}
                    raft = node.raft
                    voters = [raft.committed_configuration().voters, raft.configuration.voters]
                    self.checker.acknowledged(entry.index, entry.term, holders, voters)
                self._answer(node, req, result)
        if failure is not None:
            node.apply_failures.append(failure)
            verdict = "halted: stopped applying" if failure.halted else "will retry"
            self._log(node, f"apply of index {failure.index} failed (attempt {failure.attempt}): {failure.reason}; {verdict}", "apply")
            if failure.halted:
                answer = node.tracker.failed(failure.index, f"apply halted at index {failure.index}: {failure.reason}")
                if answer is not None:
                    self._answer(node, *answer)
        self.checker.monotonic(node.id, "applied", node.last_applied, applier.applied_index)
        node.last_applied = applier.applied_index

    def _reads_answered(self, node: SimNode, states: Sequence[ReadState]) -> None:
        assert node.raft is not None
        for state in states:
            req = node.reads.pop(state.request, None)
            if req is None:
                continue  # expired meanwhile
            if state.index is None:
                self._answer(node, req, CommandResult.not_leader_any_more(node.raft.leader))
            else:
                node.ready_reads.append((state.index, req))

    def _serve_reads(self, node: SimNode) -> None:
        """Serve the reads whose read index this node has applied, from its state machine."""
        applier = node.applier
        assert applier is not None
        applied = applier.applied_index
        waiting = []
        for index, req in node.ready_reads:
            if index > applied:
                waiting.append((index, req))
                continue
            self.checker.read_served(node.id, req.command, req.floor, applied)
            try:
                result = CommandResult(result=applier.state_machine.query(req.command), index=index)  # type: ignore[attr-defined]
            except CommandError as exc:
                result = CommandResult(error=str(exc), index=index)
            self._answer(node, req, result)
        node.ready_reads = waiting

    def _expire_reads(self, node: SimNode) -> None:
        for req in [r for r in node.reads.values() if r.deadline is not None and r.deadline <= self.now]:
            del node.reads[req.id]
            self._answer(node, req, CommandResult(timeout_expired=True))
        late = [(i, r) for i, r in node.ready_reads if r.deadline is not None and r.deadline <= self.now]
        for item in late:
            node.ready_reads.remove(item)
            self._answer(node, item[1], CommandResult(timeout_expired=True))

    def retry_apply(self) -> None:
        """Give every live node's applier another go at entries that failed to apply."""
        for node in self.live():
            self._run_applier(node)

    def _log(self, node: SimNode | None, what: str, kind: str, about: tuple[str, ...] = ()) -> None:
        """Tell one event in ``self.trace`` (if tracing): ``kind`` is one of TRACE_KINDS, ``about``
        the nodes a network fault touches."""
        if self.trace is None:
            return
        raft = node.raft if node is not None else None
        state = "down" if node is not None and raft is None else ""
        if raft is not None:
            state = f"{raft.role.value:<13} t={raft.term:<3} c={raft.commit:<5}"
        self.trace.append(TraceLine(self.now, node.id if node else None, kind, what, state, about))


class _SimPorts:
    """A simulated node's side of the one Ready loop (``raftnode.driver``); no port ever waits."""

    __slots__ = ("_cluster", "_node")

    def __init__(self, cluster: SimCluster, node: SimNode) -> None:
        self._cluster, self._node = cluster, node

    def send(self, messages: Sequence[Message]) -> None:
        network, now = self._cluster.network, self._cluster.now
        for m in messages:
            network.send(m, now)

    def report(self, ready: Ready) -> None:
        self._cluster._report_state(self._node, ready)

    def apply(self, ready: Ready) -> None:
        self._cluster._apply(self._node, ready)

    def flush(self) -> None:
        """Answers reach simulated clients as they are made."""

    async def persist(self, ready: Ready) -> bool:
        return self._cluster._persist_ready(self._node, ready)

    def serve_reads(self, reads: Sequence[ReadState]) -> None:
        if reads:
            self._cluster._reads_answered(self._node, reads)
        if self._node.ready_reads:
            self._cluster._serve_reads(self._node)

    async def advanced(self) -> None:
        self._cluster._maybe_snapshot(self._node)


def _pair(a: str, b: str | None, ids: Sequence[str]) -> tuple[str, ...]:
    """The nodes a link fault between ``a`` and ``b`` (every peer of ``a`` if None) touches."""
    return tuple(ids) if b is None else (a, b)


def _describe(result: CommandResult) -> str:
    if result.timeout_expired:
        return "timeout_expired"
    if result.retry:
        return "retry"
    if result.redirect is not None:
        return f"redirect to {result.redirect}"
    if result.error is not None:
        return f"error: {result.error}"
    return f"result {result.result!r} at index {result.index}"
