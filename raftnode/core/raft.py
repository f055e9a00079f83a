"""The Raft engine: a deterministic state machine with no I/O.

Theory of operation
-------------------
Three inputs drive it: ``tick()`` (logical time), ``step(message)`` (a peer's message) and the
proposals (``propose``, ``transfer_leadership``). Nothing is performed: every effect is queued and
handed out by ``ready()`` as a :class:`Ready` bundle, which the shell persists, sends and applies
in the documented order before calling ``advance()``. Randomness comes from the injected
``random.Random``; time is ticks. Given the same inputs, two engines behave identically.

Term bookkeeping happens once, in ``step``, before the message reaches the handler of the
current role; a role change swaps the step and tick functions (``_step_role``, ``_tick_role``).

Proposals are not sent one by one: ``propose`` only appends, and ``ready()`` sends whatever
accumulated since the previous call in shared AppendEntries (natural batching), pipelined up to
``max_inflight`` messages per follower.

Protocol references are to Ongaro's thesis (2014): elections §3.4, replication §3.5, commit
rule §3.6.2, leadership transfer §3.10, leader lease for votes §4.2.3, PreVote §9.6, CheckQuorum
§6.2. Log compaction (§5): the shell snapshots its state machine and calls ``compact``; a follower
whose next entry is gone receives the snapshot in chunks (InstallSnapshot) and the Ready that
installs it carries it to the shell.

The engine is a facade over collaborators that each own one part of the protocol's state and
work on the node's shared state (term, vote, log, commit, role, configuration, the outbox):

- ``roles.Roles``: role changes (what each resets, which step and tick functions it takes up);
- ``elections.Elections``: term bookkeeping, the election timer, PreVote, votes, the leader
  lease, CheckQuorum;
- ``replication.Replicator``: the leader's progress per follower, appends, heartbeats, the
  commit rule;
- ``follower.Follower``: a follower's handling of its leader's appends and heartbeats;
- ``snapshots.Snapshots``: log compaction and InstallSnapshot, at the leader and at a follower;
- ``membership.Membership``: configurations, add/remove one server at a time, catch-up (§4);
- ``transfer.LeadershipTransfer``: handing leadership over (§3.10);
- ``reads.Reads``: linearizable reads (§6.4) over ``readindex.ReadRounds``.

Each collaborator holds a reference to its node rather than being mixed into it: its state is its
own (``node._elections.votes``, not one flat namespace), and what it touches of the node's reads
as ``node.term``, ``node._send``. ``Raft`` keeps the public API and the Ready cycle (``has_ready``,
``ready``, ``advance``). A few methods are seams that a test engine subclasses to plant a bug, so
the collaborators call them through the node: ``_campaign``, ``_become_leader``,
``_may_commit_by_counting``, ``_configuration_at``, ``_start_read_round``.
Client sessions live above the core, keyed by entry.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from .elections import Elections
from .errors import NotLeader, TransferInProgress
from .follower import Follower
from .log import RaftLog
from .membership import Membership
from .messages import (
    Entry,
    EntryKind,
    Heartbeat,
    Message,
    RequestVote,
    SnapshotMeta,
)
from .progress import Progress
from .quorum import Configuration
from .reads import Reads
from .readindex import ReadRounds, ReadState
from .ready import Event, HardState, Ready, Role, SoftState, split_by_durability
from .replication import Replicator
from .roles import Roles
from .settings import RaftConfig
from .snapshots import Snapshots
from .transfer import LeadershipTransfer

__all__ = ["Raft", "RaftConfig"]


class Raft:
    """One node's protocol state. Not thread-safe: one owner drives it."""

    def __init__(self, config: RaftConfig, *, rng: random.Random, hard_state: HardState = HardState(),
                 entries: Sequence[Entry] = (), snapshot: tuple[SnapshotMeta, bytes] | None = None,
                 contexts: dict[str, str] | None = None):
        """Build a node from what its storage holds (nothing, for a new node).

        Args:
            config: static settings.
            rng: the only source of randomness (election timeouts); seed it for replayable runs.
            hard_state: the persisted term, vote and commit hint.
            entries: the persisted log after the snapshot (from index 1 without one).
            snapshot: the latest persisted snapshot; the shell restores its state machine from it.
            contexts: what the shell needs to reach each bootstrap voter (carried, never read).
        """
        self.id = config.node_id
        self.config = config
        meta = snapshot[0] if snapshot else SnapshotMeta(0, 0)
        self.log = RaftLog(entries, offset=meta.index, offset_term=meta.term)
        self._membership = Membership(self, meta, contexts)
        self.configuration = self._configuration_at(self.log.last_index)
        self.term = hard_state.term
        self.vote = hard_state.vote
        self.commit = max(meta.index, min(hard_state.commit, self.log.last_index))
        self.applied = meta.index
        self.role = Role.FOLLOWER
        self.leader: str | None = None
        self.stats: dict[str, int] = {}
        self._ticks = 0
        self._persisted_hard_state = hard_state
        self._reported_soft_state = SoftState(role=Role.FOLLOWER, leader=None)
        self._installed_snapshot: tuple[SnapshotMeta, bytes] | None = None  # for the next Ready
        self._messages: list[Message] = []  # the outbox the next Ready hands to the shell
        self._events: list[Event] = []
        self._read_states: list[ReadState] = []  # reads answered
        self._elections = Elections(self, rng)
        self._replication = Replicator(self)
        self._follower = Follower(self)
        self._snapshots = Snapshots(self, snapshot)
        self._transfer = LeadershipTransfer(self)
        self._read_index = Reads(self)
        self._roles = Roles(self)
        self._step_role: Callable[[Message], None] = self._follower.step
        self._tick_role: Callable[[], None] = self._elections.tick
        self._roles.become_follower(self.term, None, reason="started")

    # -- introspection -------------------------------------------------------------------------

    transferee = property(lambda self: self._transfer.transferee, doc="The target of a transfer under way.")

    @property
    def removed(self) -> bool:
        """This node applied a configuration that removes it."""
        return self._membership.removed

    @property
    def catchup_failures(self) -> dict[str, str]:
        """Learners the leader gave up adding -> why."""
        return self._membership.catchup_failures

    def progress(self, node: str) -> Progress | None:
        """The leader's view of ``node``'s replication (None when not leader)."""
        return self._replication.progress.get(node)

    def most_caught_up_follower(self) -> str | None:
        """The voter a leader that must step aside hands over to (``LeadershipTransfer.best_target``)."""
        return self._transfer.best_target()

    def hard_state(self) -> HardState:
        return HardState(term=self.term, vote=self.vote, commit=self.commit)

    def heartbeats(self) -> list[Heartbeat]:
        """A leader's heartbeats (none unless it leads), changing no state, for a shell stalled by a
        slow fsync (§10.2.1); each carries the follower's safe commit index, min(its match, ours)."""
        return self._replication.heartbeats() if self.role is Role.LEADER else []

    def committed_configuration(self) -> Configuration:
        """The configuration as of the commit index (the latest one may still be uncommitted)."""
        return self._configuration_at(self.commit)

    def pending_membership_change(self) -> str | None:
        """The membership change in progress, described (None: none is)."""
        return self._membership.pending_change()

    def read_rounds_started(self) -> int:
        """ReadIndex rounds this node started while leader in its current term."""
        return self._read_index.rounds.rounds_started

    # -- inputs --------------------------------------------------------------------------------

    def tick(self) -> None:
        """Advance logical time by one tick."""
        self._ticks += 1
        self._tick_role()
        self._read_index.tick()

    def ticks_until_timer(self) -> int:
        """Ticks (at least 1) a shell may sleep, then ``tick()`` in a row, before one does more than
        count (a heartbeat, election, check-quorum round, timeout); any input may bring it forward."""
        return self._roles.ticks_until_timer()

    def step(self, m: Message) -> None:
        """Handle a peer's message. Stale, misdirected or unknown-sender messages are dropped and counted."""
        # Senders outside our configuration are heard (§4.1): a new node must accept its leader.
        if m.dst != self.id or m.src == self.id:
            self._count("dropped_misdirected")
            return
        if m.term != self.term and not self._elections.admit(m):
            return
        if isinstance(m, RequestVote):
            self._elections.handle_request_vote(m)
        else:
            self._step_role(m)

    def propose(self, data: bytes, kind: EntryKind = EntryKind.COMMAND) -> int:
        """Append a command (or a session entry, ``kind``) to the leader's log; returns its index.

        The entry is sent with the next ``ready()``. Its fate is known when an entry at that index
        is applied: the same term means it committed, another term means it was lost.

        Raises:
            NotLeader: this node is not the leader (carries the leader it knows, if any).
            TransferInProgress: leadership is being handed over; retry shortly.
        """
        if self.role is not Role.LEADER:
            raise NotLeader(self.leader)
        if self._transfer.transferee is not None:
            raise TransferInProgress(self._transfer.transferee)
        index = self.log.last_index + 1
        self.log.append(Entry(self.term, index, data, kind))
        self._replication.send_to_all()
        return index

    def read_index(self, request: int) -> None:
        """Ask for a linearizable read (§6.4) under the shell's token ``request``, no log entry.

        A later Ready's ``reads`` carries ``ReadState(request, index)``: serve the read once the
        state machine has applied through ``index``; index None means refused (leadership lost,
        or not confirmed in time). The leader batches reads into heartbeat rounds and starts
        none before an entry of its own term commits; a follower asks its leader.

        Raises:
            NotLeader: this node knows no leader (no one to ask).
        """
        if self.role is not Role.LEADER and self.leader is None:
            raise NotLeader(None)
        self._read_index.request(request)

    def compact(self, index: int, data: bytes) -> SnapshotMeta:
        """The shell snapshotted its state machine at applied ``index``: forget the log up to it.

        Returns the snapshot's metadata, which the shell persists with ``data`` before it drops
        the same prefix from storage. Followers that need the dropped entries get ``data`` instead.

        Raises:
            ValueError: ``index`` is beyond what was applied and persisted.
        """
        return self._snapshots.compact(index, data)

    def transfer_leadership(self, target: str) -> None:
        """Hand leadership to ``target`` (§3.10): catch it up, then send it TimeoutNow; abort after
        an election timeout if ``target`` has not taken over.

        Raises:
            NotLeader: this node is not the leader.
            UnknownNode: ``target`` is not a voter.
        """
        self._transfer.start(target)

    def add_node(self, node: str, context: str = "") -> int:
        """Start adding ``node``: it joins as a learner, is caught up in rounds, then promoted on its
        own — or removed again if it cannot catch up, with the reason in ``catchup_failures``.
        ``context`` (its addresses, say) is replicated with the configuration for the shells.
        Returns the index of the configuration entry that adds the learner.

        Raises:
            NotLeader: this node is not the leader.
            MembershipError: ``node`` is already a member, or another change is pending.
        """
        return self._membership.add_node(node, context)

    def remove_node(self, node: str) -> int:
        """Remove ``node`` (the leader itself included); returns the configuration entry's index.

        Raises:
            NotLeader: this node is not the leader.
            UnknownNode: ``node`` is not a member.
            MembershipError: ``node`` is the last voter, or another change is pending.
        """
        return self._membership.remove_node(node)

    # -- outputs -------------------------------------------------------------------------------

    def has_ready(self) -> bool:
        return bool(
            self._messages
            or self._read_states
            or self._read_index.to_forward
            or (self.role is Role.LEADER and self._read_index.round_due())  # only a leader starts rounds
            or self._installed_snapshot
            or self._replication.send_pending
            or self._events
            or self.log.stable_index < self.log.last_index
            or self.applied < self.commit
            or self._hard_state_changed()
            or self.role is not self._reported_soft_state.role
            or self.leader != self._reported_soft_state.leader
        )

    def _hard_state_changed(self) -> bool:
        # Called for every input: compare fields instead of building a HardState.
        persisted = self._persisted_hard_state
        return self.term != persisted.term or self.vote != persisted.vote or self.commit != persisted.commit

    def ready(self) -> Ready:
        """Collect everything the shell must do now. Call ``advance`` with it once done."""
        self._replication.flush()
        self._read_index.forward()
        if self._read_index.round_due():
            self._start_read_round()
        hard_state = self.hard_state() if self._hard_state_changed() else None  # built only when changed
        reported = self._reported_soft_state
        soft_state = None if self.role is reported.role and self.leader == reported.leader else self._soft_state()
        self._reported_soft_state = soft_state or reported
        committed = self.log.slice(self.applied + 1, self.commit + 1) if self.applied < self.commit else ()
        leader = self.role is Role.LEADER  # the order is the core's to state: see ready.py
        before_persist, after_persist = split_by_durability(self._messages, leader=leader)
        ready = Ready(
            hard_state=hard_state,
            snapshot=self._installed_snapshot,
            entries=tuple(self.log.unstable()),
            messages_before_persist=before_persist,
            messages_after_persist=after_persist,
            committed=tuple(committed),
            apply_before_persist=leader,
            soft_state=soft_state,
            events=tuple(self._events),
            reads=tuple(self._read_states),
        )
        self._messages, self._events, self._read_states, self._installed_snapshot = [], [], [], None
        return ready

    def advance(self, ready: Ready) -> None:
        """Acknowledge that ``ready`` was persisted, sent and applied."""
        if ready.hard_state is not None:
            self._persisted_hard_state = ready.hard_state
        if ready.entries:
            last = ready.entries[-1]
            self.log.stable_to(last.index, last.term)
            if self.role is Role.LEADER:
                self._replication.progress[self.id].acknowledged(self.log.stable_index)
                self._replication.maybe_commit()
        if ready.committed:
            before = self.applied
            self.applied = max(self.applied, ready.committed[-1].index)
            self._membership.applied(before, self.applied)

    # -- seams: called through the node, so that a test engine may override them ----------------

    def _become_leader(self) -> None:
        self._roles.become_leader()

    def _campaign(self, *, pre_vote: bool, transfer: bool = False) -> None:
        self._elections.campaign(pre_vote=pre_vote, transfer=transfer)

    def _may_commit_by_counting(self, index: int) -> bool:
        """§3.6.2 (Figure 8): only an entry of the current term commits by counting replicas."""
        return self.log.term(index) == self.term

    def _configuration_at(self, index: int) -> Configuration:
        return self._membership.configuration_at(index)

    def _start_read_round(self) -> None:
        self._read_index.start_round()

    def _check_read_round(self) -> None:
        self._read_index.check_round()

    @property
    def _reads(self) -> ReadRounds:
        return self._read_index.rounds

    @property
    def _progress(self) -> dict[str, Progress]:
        return self._replication.progress

    # -- small helpers -------------------------------------------------------------------------

    def _soft_state(self) -> SoftState:
        return SoftState(role=self.role, leader=self.leader)

    def _send(self, m: Message) -> None:
        self._messages.append(m)

    def _event(self, kind: str, detail: str) -> None:
        self._events.append(Event(kind=kind, detail=detail))

    def _count(self, what: str) -> None:
        self.stats[what] = self.stats.get(what, 0) + 1
