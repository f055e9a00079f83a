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

Membership (§4) changes one server at a time. A configuration is a log entry (``EntryKind.CONFIG``)
and takes effect on every node as soon as it is appended — and is rolled back if that entry is
truncated —, so the configuration a node uses is always the latest one in its log, else its
snapshot's, else the bootstrap one (``RaftConfig.voters``). ``add_node`` adds a learner and
catches it up in rounds (§4.2.1) before promoting it; ``remove_node`` may remove the leader itself,
which keeps leading until the change commits, then hands over and steps down (§4.2.2). A leader
accepts a change only once it has committed an entry of its own term and no other change is
pending. Messages from servers outside the configuration are processed (a new server must hear
from the leader, §4.1); PreVote and the leader lease keep removed servers from disrupting.
Linearizable reads (§6.4) skip the log: ``read_index`` at the leader joins the next ReadIndex
round (a heartbeat whose id a majority echoes, ``readindex.ReadRounds``); at a follower it asks
the leader with a ReadIndex message. Either way a later Ready's ``reads`` says when the read may
be served (once applied through its index) or that it is refused. Client sessions live above
the core, keyed by entry.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .errors import MembershipError, NotLeader, TransferInProgress, UnknownNode
from .log import RaftLog
from .messages import (
    AppendEntries,
    AppendEntriesResponse,
    Entry,
    EntryKind,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    InstallSnapshotResponse,
    Message,
    ReadIndex,
    ReadIndexResponse,
    RequestVote,
    RequestVoteResponse,
    SnapshotMeta,
    TimeoutNow,
)
from .progress import Progress, ProgressState
from .quorum import Configuration, VoteResult
from .readindex import MAX_PENDING_READS, PendingRead, ReadRounds, ReadState
from .ready import Event, HardState, Ready, Role, SoftState


@dataclass(frozen=True, slots=True, kw_only=True)
class RaftConfig:
    """Static settings of one node. Timeouts are in ticks.

    Args:
        node_id: this node's id.
        voters: the bootstrap configuration — ids of every voting member, this node included —
            used only while storage holds no configuration; empty for a node that joins an
            existing cluster (it waits, never campaigning, until the leader reaches it).
        election_timeout: (min, max) ticks; each timeout is drawn uniformly from [min, max).
        heartbeat_interval: ticks between leader heartbeats; must be below the minimum election timeout.
        pre_vote: run a pre-vote round before incrementing the term (§9.6).
        check_quorum: a leader that has not heard from a majority for an election timeout steps
            down, and followers ignore vote requests while they hear from a leader (§6.2, §4.2.3).
        max_msg_entries / max_msg_bytes: the cap on one AppendEntries batch.
        max_inflight: unacknowledged AppendEntries allowed per follower (the pipeline window).
        snapshot_chunk_bytes: the size of one InstallSnapshot chunk.
    """

    node_id: str
    voters: tuple[str, ...]
    election_timeout: tuple[int, int] = (10, 20)
    heartbeat_interval: int = 2
    pre_vote: bool = True
    check_quorum: bool = True
    max_msg_entries: int = 512
    max_msg_bytes: int = 1 << 20
    max_inflight: int = 64
    snapshot_chunk_bytes: int = 1 << 20
    catchup_rounds: int = 10

    def __post_init__(self) -> None:
        lo, hi = self.election_timeout
        if self.voters and self.node_id not in self.voters:
            raise ValueError(f"node {self.node_id!r} is not among the voters {list(self.voters)}")
        if len(set(self.voters)) != len(self.voters):
            raise ValueError(f"duplicate voter ids in {list(self.voters)}")
        if not 1 <= self.heartbeat_interval < lo < hi:
            raise ValueError(
                "need 1 <= heartbeat_interval < election_timeout min < max, got "
                f"heartbeat_interval={self.heartbeat_interval}, election_timeout={self.election_timeout}"
            )
        if min(self.max_msg_entries, self.max_msg_bytes, self.max_inflight, self.snapshot_chunk_bytes,
               self.catchup_rounds) < 1:
            raise ValueError(
                "max_msg_entries, max_msg_bytes, max_inflight, snapshot_chunk_bytes and catchup_rounds must be positive"
            )

    @property
    def catchup_round_limit(self) -> int:
        """Ticks one catch-up round of a new server may last before the leader gives up on it."""
        return 10 * self.election_timeout[1]


@dataclass(slots=True)
class _CatchUp:
    """A learner the leader is catching up (§4.2.1): each round replicates up to ``target``."""

    node: str
    added_at: int  # index of the configuration entry that made it a learner
    target: int
    round: int
    round_start: int  # tick the round began


class Raft:
    """One node's protocol state. Not thread-safe: one owner drives it."""

    def __init__(
        self,
        config: RaftConfig,
        *,
        rng: random.Random,
        hard_state: HardState = HardState(),
        entries: Sequence[Entry] = (),
        snapshot: tuple[SnapshotMeta, bytes] | None = None,
        contexts: dict[str, str] | None = None,
    ):
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
        self._rng = rng
        meta = snapshot[0] if snapshot else SnapshotMeta(0, 0)
        self.log = RaftLog(entries, offset=meta.index, offset_term=meta.term)
        # The configuration at the log's offset, and the indexes of configuration entries after it.
        self._base_configuration = meta.configuration or Configuration(
            voters=frozenset(config.voters), contexts=dict(contexts or {})
        )
        self._config_indexes = [e.index for e in self.log.slice(meta.index + 1, self.log.last_index + 1)
                                if e.kind == EntryKind.CONFIG]
        self._decoded: dict[int, tuple[Entry, Configuration]] = {}  # config index -> (its entry, decoded)
        self.configuration = self._configuration_at(self.log.last_index)
        self.catchup_failures: dict[str, str] = {}  # learner -> why the leader gave up on it
        self.term = hard_state.term
        self.vote = hard_state.vote
        self.commit = max(meta.index, min(hard_state.commit, self.log.last_index))
        self.applied = meta.index
        self.role = Role.FOLLOWER
        self._was_member = self.id in self._base_configuration.members()
        self.removed = False  # set once this node applies a configuration that removes it

        self.leader: str | None = None
        self.stats: dict[str, int] = {}

        self._persisted_hard_state = hard_state
        self._reported_soft_state = SoftState(role=Role.FOLLOWER, leader=None)
        self._snapshot = snapshot  # the latest snapshot, sent to followers that need it
        self._incoming_snapshot: tuple[SnapshotMeta, bytearray] | None = None
        self._installed_snapshot: tuple[SnapshotMeta, bytes] | None = None  # for the next Ready
        self._messages: list[Message] = []
        self._events: list[Event] = []
        self._votes: dict[str, bool] = {}
        self._progress: dict[str, Progress] = {}
        self._send_pending: set[str] = set()
        self._transferee: str | None = None
        self._transfer_elapsed = 0
        self._election_elapsed = 0
        self._heartbeat_elapsed = 0
        self._randomized_timeout = 0
        self._ticks = 0
        self._catchup: _CatchUp | None = None
        self._leaving: dict[str, tuple[int, int]] = {}  # removed node -> (its removal's index, give-up tick)
        self._reads = ReadRounds(timeout=config.election_timeout[0])  # the leader's ReadIndex rounds
        self._read_states: list[ReadState] = []  # reads answered, for the next Ready
        self._forwarded: dict[int, int] = {}  # a follower's read requests asked of the leader -> tick asked
        self._to_forward: list[int] = []  # ... not sent yet (one ReadIndex message per Ready)
        self._step_role: Callable[[Message], None] = self._step_follower
        self._tick_role: Callable[[], None] = self._tick_election
        self._become_follower(self.term, None, reason="started")

    # -- introspection -------------------------------------------------------------------------

    @property
    def transferee(self) -> str | None:
        return self._transferee

    def progress(self, node: str) -> Progress | None:
        """The leader's view of ``node``'s replication (None when not leader)."""
        return self._progress.get(node)

    def most_caught_up_follower(self) -> str | None:
        """The voter a leader that must step aside hands over to (§3.10): one heard from in this
        election timeout first, then the highest match (ties: the greatest id); None when this
        node is not leader or leads alone."""
        if self.role is not Role.LEADER:
            return None
        others = [n for n in self.configuration.voters if n != self.id and n in self._progress]
        if not others:
            return None
        return max(others, key=lambda n: (self._progress[n].recent_active, self._progress[n].match, n))

    def hard_state(self) -> HardState:
        return HardState(term=self.term, vote=self.vote, commit=self.commit)

    def heartbeats(self) -> list[Heartbeat]:
        """A leader's heartbeats to every follower, built without changing any state.

        For a shell whose turn is stalled (a slow fsync) to keep its followers from electing: a
        heartbeat promises nothing about the leader's disk (§10.2.1) and carries each follower's
        safe commit index, min(its match, ours). Empty unless this node leads.
        """
        if self.role is not Role.LEADER:
            return []
        return [self._heartbeat(node) for node in self._peers()]

    def _heartbeat(self, node: str) -> Heartbeat:
        match = self._progress[node].match
        if match < self.log.offset:  # compacted away: nothing to check (the follower needs our snapshot)
            match, match_term = 0, 0
        else:
            match_term = self.log.term(match) or 0
        return Heartbeat(term=self.term, src=self.id, dst=node, commit=min(match, self.commit), match=match,
                         match_term=match_term, read_round=self._reads.latest)

    def committed_configuration(self) -> Configuration:
        """The configuration as of the commit index (the latest one may still be uncommitted)."""
        return self._configuration_at(self.commit)

    def pending_membership_change(self) -> str | None:
        """The membership change in progress, described (None: none is)."""
        if self._config_indexes and self._config_indexes[-1] > self.commit:
            return f"the configuration change at index {self._config_indexes[-1]} is not committed yet"
        if self._catchup is not None:
            return f"{self._catchup.node} is still catching up as a learner (round {self._catchup.round})"
        return None

    # -- inputs --------------------------------------------------------------------------------

    def tick(self) -> None:
        """Advance logical time by one tick."""
        self._ticks += 1
        self._tick_role()
        if self._forwarded:
            self._expire_forwarded_reads()

    def ticks_until_timer(self) -> int:
        """How many ticks may pass before a ``tick()`` does more than count (a heartbeat, an
        election, a check-quorum round, a timeout); at least 1. A shell may sleep that long and
        then call ``tick()`` that many times in a row; any input may bring the timer forward."""
        if self.role is not Role.LEADER:
            if not self._promotable():  # a learner or a node waiting to join never campaigns
                due = self.config.election_timeout[1]
            else:
                due = self._randomized_timeout - self._election_elapsed
            if self._forwarded:  # the oldest read asked of the leader expires
                due = min(due, next(iter(self._forwarded.values())) + self.config.election_timeout[1] - self._ticks)
            return max(1, due)
        election_timeout = self.config.election_timeout[0]
        due = min(
            self.config.heartbeat_interval - self._heartbeat_elapsed,
            election_timeout - self._election_elapsed,
        )
        if self._transferee is not None:
            due = min(due, election_timeout - self._transfer_elapsed)
        if self._catchup is not None:
            due = 1  # a catch-up round is checked every tick
        for _, give_up in self._leaving.values():
            due = min(due, give_up - self._ticks)
        expiry = self._reads.next_expiry()
        if expiry is not None:
            due = min(due, expiry - self._ticks)
        return max(1, due)

    def step(self, m: Message) -> None:
        """Handle a peer's message. Stale, misdirected or unknown-sender messages are dropped and counted."""
        # Senders outside our configuration are heard (§4.1): a new node must accept its leader.
        if m.dst != self.id or m.src == self.id:
            self._count("dropped_misdirected")
            return
        if m.term > self.term:
            if isinstance(m, RequestVote):
                if not m.transfer and self._in_leader_lease(m.pre_vote):
                    # §4.2.3 / §9.6: while we hear from a leader, ignore disruptive candidates.
                    self._count("dropped_vote_in_lease")
                    return
                if not m.pre_vote:
                    self._become_follower(m.term, None, reason=f"vote request from {m.src} in term {m.term}")
            elif isinstance(m, RequestVoteResponse) and m.pre_vote and m.granted:
                pass  # a granted pre-vote carries the prospective term, not the voter's
            else:
                leader = m.src if isinstance(m, (AppendEntries, Heartbeat, InstallSnapshot)) else None
                self._become_follower(m.term, leader, reason=f"saw term {m.term} from {m.src}")
        elif m.term < self.term:
            self._answer_stale(m)
            return
        if isinstance(m, RequestVote):
            self._handle_request_vote(m)
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
        if self._transferee is not None:
            raise TransferInProgress(self._transferee)
        index = self.log.last_index + 1
        self.log.append(Entry(self.term, index, data, kind))
        self._send_pending.update(self._progress)
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
        if self.role is Role.LEADER:
            self._queue_read((None, request))
        elif self.leader is None:
            raise NotLeader(None)
        elif len(self._forwarded) >= MAX_PENDING_READS:
            self._read_states.append(ReadState(request, None))
        else:
            self._forwarded[request] = self._ticks
            self._to_forward.append(request)

    def read_rounds_started(self) -> int:
        """ReadIndex rounds this node started while leader in its current term."""
        return self._reads.rounds_started

    def compact(self, index: int, data: bytes) -> SnapshotMeta:
        """The shell snapshotted its state machine at applied ``index``: forget the log up to it.

        Returns the snapshot's metadata, which the shell persists with ``data`` before it drops
        the same prefix from storage. Followers that need the dropped entries get ``data`` instead.

        Raises:
            ValueError: ``index`` is beyond what was applied and persisted.
        """
        if index > self.applied or index > self.log.stable_index:
            raise ValueError(f"cannot snapshot at {index}: applied {self.applied}, persisted {self.log.stable_index}")
        term = self.log.term(index)
        assert term is not None
        configuration = self._configuration_at(index)
        meta = SnapshotMeta(index, term, configuration)
        self.log.compact(index, term)
        self._rebase_configurations(index, configuration)
        self._snapshot = (meta, data)
        self._event("snapshot", f"compacted the log up to index {index}")
        return meta

    def transfer_leadership(self, target: str) -> None:
        """Hand leadership to ``target`` (§3.10): catch it up, then send it TimeoutNow.

        The transfer aborts after an election timeout if ``target`` has not taken over.

        Raises:
            NotLeader: this node is not the leader.
            UnknownNode: ``target`` is not a voter.
        """
        if self.role is not Role.LEADER:
            raise NotLeader(self.leader)
        if target not in self.configuration.voters:
            raise UnknownNode(target, list(self.configuration.voters))
        if target == self.id or target == self._transferee:
            return
        self._transferee = target
        self._transfer_elapsed = 0
        self._event("transfer", f"transferring leadership to {target}")
        if self._progress[target].match == self.log.last_index:
            self._send_timeout_now(target)
        else:
            self._send_pending.add(target)

    def add_node(self, node: str, context: str = "") -> int:
        """Start adding ``node``: it joins as a learner, is caught up in rounds and then promoted.

        ``context`` (its addresses, say) is replicated with the configuration for the shells.
        Returns the index of the configuration entry that adds the learner. Promotion follows on
        its own; if the node cannot catch up, the leader removes it again and records why in
        ``catchup_failures``.

        Raises:
            NotLeader: this node is not the leader.
            MembershipError: ``node`` is already a member, or another change is pending.
        """
        self._check_can_change(node)
        if node in self.configuration.members():
            kind = "voter" if node in self.configuration.voters else "learner"
            raise MembershipError(f"cannot add {node}: it is already a {kind}")
        self._refuse_if_pending(f"add {node}")
        self.catchup_failures.pop(node, None)
        index = self._append_configuration(self.configuration.with_learner(node, context))
        self._catchup = _CatchUp(node, added_at=index, target=index, round=1, round_start=self._ticks)
        self._event("membership", f"adding {node}: catching up as a learner (entry {index})")
        return index

    def remove_node(self, node: str) -> int:
        """Remove ``node`` (the leader itself included); returns the configuration entry's index.

        Raises:
            NotLeader: this node is not the leader.
            UnknownNode: ``node`` is not a member.
            MembershipError: ``node`` is the last voter, or another change is pending.
        """
        self._check_can_change(node)
        members = self.configuration.members()
        if node not in members:
            raise UnknownNode(node, list(members))
        if self.configuration.voters == {node}:
            raise MembershipError(f"cannot remove {node}: it is the last voter")
        if self._catchup is not None and self._catchup.node == node:
            if self.commit < self._catchup.added_at:
                raise MembershipError(f"cannot remove {node} yet: the entry adding it is not committed; retry")
            self._catchup = None  # removing the learner we were catching up ends that change
        self._refuse_if_pending(f"remove {node}")
        index = self._append_configuration(self.configuration.without(node))
        self._event("membership", f"removing {node} (entry {index})")
        return index

    def _check_can_change(self, node: str) -> None:
        if self.role is not Role.LEADER:
            raise NotLeader(self.leader)
        if not node:
            raise MembershipError("a node id must not be empty")

    def _refuse_if_pending(self, what: str) -> None:
        reason = self.pending_membership_change()
        if reason is None and self.log.term(self.commit) != self.term:
            reason = "the leader has not committed an entry of its term yet; retry shortly"
        if reason is None and self._transferee is not None:
            reason = f"leadership transfer to {self._transferee} in progress"
        if reason is not None:
            raise MembershipError(f"cannot {what}: {reason}")

    def _append_configuration(self, configuration: Configuration) -> int:
        index = self.log.last_index + 1
        self.log.append(Entry(self.term, index, configuration.encode(), EntryKind.CONFIG))
        self._config_indexes.append(index)
        self._configuration_changed()
        self._send_pending.update(self._progress)
        return index

    # -- outputs -------------------------------------------------------------------------------

    def has_ready(self) -> bool:
        return bool(
            self._messages
            or self._read_states
            or self._to_forward
            or self._read_round_due()
            or self._installed_snapshot
            or self._send_pending
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
        self._flush_appends()
        if self._to_forward:
            self._forward_reads()
        if self._read_round_due():
            self._start_read_round()
        hard_state = self.hard_state()
        soft_state = self._soft_state()
        committed = self.log.slice(self.applied + 1, self.commit + 1) if self.applied < self.commit else ()
        ready = Ready(
            hard_state=hard_state if hard_state != self._persisted_hard_state else None,
            snapshot=self._installed_snapshot,
            entries=tuple(self.log.unstable()),
            messages=tuple(self._messages),
            committed=tuple(committed),
            soft_state=soft_state if soft_state != self._reported_soft_state else None,
            events=tuple(self._events),
            reads=tuple(self._read_states),
        )
        self._messages = []
        self._events = []
        self._read_states = []
        self._installed_snapshot = None
        self._reported_soft_state = soft_state
        return ready

    def advance(self, ready: Ready) -> None:
        """Acknowledge that ``ready`` was persisted, sent and applied."""
        if ready.hard_state is not None:
            self._persisted_hard_state = ready.hard_state
        if ready.entries:
            last = ready.entries[-1]
            self.log.stable_to(last.index, last.term)
            if self.role is Role.LEADER:
                self._progress[self.id].acknowledged(self.log.stable_index)
                self._maybe_commit()
        if ready.committed:
            before = self.applied
            self.applied = max(self.applied, ready.committed[-1].index)
            if self._config_indexes and self._config_indexes[-1] > before:
                for index in self._config_indexes:
                    if before < index <= self.applied:
                        self._applied_configuration(self._configuration_at(index))

    def _applied_configuration(self, configuration: Configuration) -> None:
        """A committed configuration was applied: a node it leaves out, having been in, is removed."""
        if self.id in configuration.members():
            self._was_member = True
        elif self._was_member and not self.removed:
            self.removed = True
            self._event("removed", "applied a configuration without this node: it is no longer a member")

    # -- role changes --------------------------------------------------------------------------

    def _reset(self, term: int) -> None:
        self._refuse_reads(self._reads.drain())
        self._reads = ReadRounds(timeout=self.config.election_timeout[0])
        if self._forwarded:
            self._read_states.extend(ReadState(request, None) for request in self._forwarded)
            self._forwarded = {}
            self._to_forward = []
        if term != self.term:
            self.term = term
            self.vote = None
        self.leader = None
        self._election_elapsed = 0
        self._heartbeat_elapsed = 0
        lo, hi = self.config.election_timeout
        self._randomized_timeout = self._rng.randrange(lo, hi)
        self._votes = {}
        self._progress = {}
        self._send_pending = set()
        self._transferee = None
        self._catchup = None
        self._leaving = {}

    def _become_follower(self, term: int, leader: str | None, *, reason: str) -> None:
        was = self.role
        self._reset(term)
        self.role = Role.FOLLOWER
        self.leader = leader
        self._step_role = self._step_follower
        self._tick_role = self._tick_election
        if was is not Role.FOLLOWER:
            self._event("step-down", f"{was.value} -> follower in term {term}: {reason}")

    def _become_pre_candidate(self) -> None:
        # A pre-vote round changes neither term nor vote (§9.6).
        term = self.term
        self._reset(term)
        self.role = Role.PRE_CANDIDATE
        self._step_role = self._step_candidate
        self._tick_role = self._tick_election
        self._event("pre-vote", f"pre-vote for term {term + 1}")

    def _become_candidate(self) -> None:
        self._reset(self.term + 1)
        self.vote = self.id
        self.role = Role.CANDIDATE
        self._step_role = self._step_candidate
        self._tick_role = self._tick_election
        self._event("election", f"election for term {self.term}")

    def _become_leader(self) -> None:
        self._reset(self.term)
        self.role = Role.LEADER
        self.leader = self.id
        self._step_role = self._step_leader
        self._tick_role = self._tick_leader
        next_index = self.log.last_index + 1
        for node in sorted(self.configuration.members() | {self.id}):
            self._progress[node] = Progress(next_index=next_index, max_inflight=self.config.max_inflight)
        own = self._progress[self.id]
        own.become_replicate()
        own.acknowledged(self.log.stable_index)
        # §3.6.2: a no-op of the new term lets earlier entries commit through it.
        self.log.append(Entry(self.term, next_index, b"", EntryKind.NOOP))
        self._send_pending.update(self._peers())
        self._event("leader", f"became leader in term {self.term}")
        learner = min(self.configuration.learners, default=None)
        if learner is not None:
            # A learner left by the previous leader: resume catching it up, then promote it. Its
            # promotion (or removal) waits for our no-op to commit, like any change we start.
            self._catchup = _CatchUp(learner, added_at=next_index, target=next_index, round=1, round_start=self._ticks)
            self._event("membership", f"resuming the catch-up of learner {learner}")

    def _campaign(self, *, pre_vote: bool, transfer: bool = False) -> None:
        if pre_vote:
            self._become_pre_candidate()
            term = self.term + 1
        else:
            self._become_candidate()
            term = self.term
        self._votes[self.id] = True
        if self.configuration.vote_result(self._votes) is VoteResult.WON:
            self._won_election()
            return
        for node in sorted(self.configuration.voters):
            if node != self.id:
                self._send(
                    RequestVote(
                        term=term,
                        src=self.id,
                        dst=node,
                        last_log_index=self.log.last_index,
                        last_log_term=self.log.last_term,
                        pre_vote=pre_vote,
                        transfer=transfer,
                    )
                )

    def _won_election(self) -> None:
        if self.role is Role.PRE_CANDIDATE:
            self._campaign(pre_vote=False)
        else:
            self._become_leader()

    # -- ticks ---------------------------------------------------------------------------------

    def _tick_election(self) -> None:
        self._election_elapsed += 1
        if self._election_elapsed >= self._randomized_timeout and self._promotable():
            self._campaign(pre_vote=self.config.pre_vote)

    def _tick_leader(self) -> None:
        self._heartbeat_elapsed += 1
        self._election_elapsed += 1
        election_timeout = self.config.election_timeout[0]
        if self._election_elapsed >= election_timeout:
            self._election_elapsed = 0
            if self.config.check_quorum:
                active = [n for n, pr in self._progress.items() if pr.recent_active or n == self.id]
                if not self.configuration.has_quorum(active):
                    self._become_follower(self.term, None, reason="check-quorum: lost contact with a majority")
                    return
                for pr in self._progress.values():
                    pr.recent_active = False
        if self._transferee is not None:
            self._transfer_elapsed += 1
            if self._transfer_elapsed >= election_timeout:
                self._event("transfer", f"transfer to {self._transferee} aborted after an election timeout")
                self._transferee = None
        if self._catchup is not None:
            self._check_catchup()
        if self._reads:
            self._refuse_reads(self._reads.expired(self._ticks))
        for node, (_, give_up) in list(self._leaving.items()):
            if self._ticks >= give_up:
                self._forget(node)
        if self._heartbeat_elapsed >= self.config.heartbeat_interval:
            self._heartbeat_elapsed = 0
            self._messages.extend(self.heartbeats())

    # -- message handling ----------------------------------------------------------------------

    def _in_leader_lease(self, pre_vote: bool) -> bool:
        """We heard from a live leader within the minimum election timeout (§4.2.3, §9.6)."""
        if not (pre_vote or self.config.check_quorum):
            return False
        return self.leader is not None and self._election_elapsed < self.config.election_timeout[0]

    def _answer_stale(self, m: Message) -> None:
        """A message from an older term: tell a stale leader or pre-candidate our term, drop the rest."""
        if isinstance(m, (AppendEntries, Heartbeat, InstallSnapshot)) and (
            self.config.pre_vote or self.config.check_quorum
        ):
            # With pre-vote or check-quorum a node may hold a higher term than a live leader; answering
            # makes that leader step down instead of leaving the node stranded forever.
            self._send(HeartbeatResponse(term=self.term, src=self.id, dst=m.src))
        elif isinstance(m, RequestVote) and m.pre_vote:
            self._send(RequestVoteResponse(term=self.term, src=self.id, dst=m.src, granted=False, pre_vote=True))
        else:
            self._count("dropped_stale_term")

    def _handle_request_vote(self, m: RequestVote) -> None:
        log_ok = self.log.is_up_to_date(m.last_log_index, m.last_log_term)
        if m.pre_vote:
            granted = log_ok and m.term > self.term
        else:
            can_vote = self.vote == m.src or (self.vote is None and self.leader is None)
            granted = can_vote and log_ok
            if granted:
                self.vote = m.src
                self._election_elapsed = 0
        term = m.term if (m.pre_vote and granted) else self.term
        self._send(RequestVoteResponse(term=term, src=self.id, dst=m.src, granted=granted, pre_vote=m.pre_vote))

    def _step_follower(self, m: Message) -> None:
        if isinstance(m, AppendEntries):
            self._heard_from_leader(m.src)
            self._handle_append(m)
        elif isinstance(m, Heartbeat):
            self._heard_from_leader(m.src)
            self._handle_heartbeat(m)
        elif isinstance(m, InstallSnapshot):
            self._heard_from_leader(m.src)
            self._handle_install_snapshot(m)
        elif isinstance(m, TimeoutNow):
            if self._promotable():
                self._event("transfer", f"TimeoutNow from {m.src}: campaigning at once")
                self._campaign(pre_vote=False, transfer=True)
        elif isinstance(m, ReadIndexResponse):
            self._handle_read_index_response(m)
        elif isinstance(m, ReadIndex):
            self._refuse_read_index(m)
        else:
            self._count("dropped_unexpected")

    def _step_candidate(self, m: Message) -> None:
        if isinstance(m, (AppendEntries, Heartbeat, InstallSnapshot)):
            # A leader of our term exists: it won (§3.4).
            self._become_follower(self.term, m.src, reason=f"{m.src} won term {self.term}")
            self._step_follower(m)
        elif isinstance(m, RequestVoteResponse):
            if m.pre_vote != (self.role is Role.PRE_CANDIDATE):
                self._count("dropped_unexpected")
                return
            self._votes.setdefault(m.src, m.granted)
            result = self.configuration.vote_result(self._votes)
            if result is VoteResult.WON:
                self._won_election()
            elif result is VoteResult.LOST:
                self._become_follower(self.term, None, reason="lost the election")
        elif isinstance(m, ReadIndex):
            self._refuse_read_index(m)
        else:
            self._count("dropped_unexpected")

    def _step_leader(self, m: Message) -> None:
        pr = self._progress.get(m.src)
        if pr is None:
            self._count("dropped_unexpected")
            return
        if isinstance(m, AppendEntriesResponse):
            pr.recent_active = True
            if m.success:
                self._handle_append_success(m.src, pr, m.index)
            else:
                match = pr.match
                if pr.rejected(m.index, self._next_from_hint(m)):
                    if pr.match < match:
                        self._report_lost_entries(m.src, match, pr.next - 1)
                    self._send_pending.add(m.src)
        elif isinstance(m, HeartbeatResponse):
            if m.read_round:  # a follower of this term, even one that lost entries, confirms our lead
                self._reads.echoed(m.src, m.read_round)
                self._check_read_round()
            if m.reject and pr.state is not ProgressState.SNAPSHOT and pr.match > 0:
                self._follower_lost_entries(m.src, pr, m.last_index)
            pr.heartbeat_answered()
            if pr.state is ProgressState.SNAPSHOT:
                self._send_snapshot_chunk(m.src, pr)  # resend, in case a chunk was lost
            elif pr.match < self.log.last_index:
                self._send_pending.add(m.src)
        elif isinstance(m, InstallSnapshotResponse):
            pr.recent_active = True
            # The follower says how much it holds — less than we thought if it restarted meanwhile.
            if pr.state is ProgressState.SNAPSHOT and m.index == pr.snapshot_index and m.offset != pr.snapshot_offset:
                pr.snapshot_offset = m.offset
                self._send_snapshot_chunk(m.src, pr)
        elif isinstance(m, ReadIndex):
            for request in m.requests:
                self._queue_read((m.src, request))
        else:
            self._count("dropped_unexpected")

    def _handle_heartbeat(self, m: Heartbeat) -> None:
        """Commit up to ``m.commit`` only while we hold the entry the leader counted us at; else
        say so, with our last index, so the leader probes us again instead of waiting forever."""
        if m.match <= self.commit or self.log.match_term(m.match, m.match_term):
            self._advance_commit(min(m.commit, self.log.last_index))
            self._send(HeartbeatResponse(term=self.term, src=self.id, dst=m.src, read_round=m.read_round))
            return
        self._count("heartbeat_rejected_lost_entries")
        self._send(HeartbeatResponse(term=self.term, src=self.id, dst=m.src, reject=True,
                                     last_index=min(self.log.last_index, m.match - 1), read_round=m.read_round))

    def _handle_append(self, m: AppendEntries) -> None:
        if m.prev_index < self.commit:
            # Everything up to our commit index already matches the leader's log.
            self._send(AppendEntriesResponse(term=self.term, src=self.id, dst=m.src, success=True, index=self.commit))
            return
        if not self.log.match_term(m.prev_index, m.prev_term):
            conflict_index, conflict_term = self.log.conflict_hint(m.prev_index)
            self._send(
                AppendEntriesResponse(
                    term=self.term,
                    src=self.id,
                    dst=m.src,
                    success=False,
                    index=m.prev_index,
                    conflict_index=conflict_index,
                    conflict_term=conflict_term,
                )
            )
            return
        truncated_from = self.log.merge(m.entries, commit_index=self.commit)
        self._track_configurations(m.entries, truncated_from)
        last_new = m.prev_index + len(m.entries)
        self._advance_commit(min(m.commit, last_new))
        self._send(AppendEntriesResponse(term=self.term, src=self.id, dst=m.src, success=True, index=last_new))

    def _handle_append_success(self, node: str, pr: Progress, index: int) -> None:
        state = pr.state
        advanced = pr.acknowledged(index)
        if (state is ProgressState.PROBE and (advanced or pr.match == index)) or (
            state is ProgressState.SNAPSHOT and pr.match >= pr.snapshot_index
        ):
            pr.become_replicate()
        if node == self._transferee and pr.match == self.log.last_index:
            self._send_timeout_now(node)
        if advanced:
            if pr.match > self.commit:  # else this acknowledgement cannot move the commit index
                self._maybe_commit()
            if self._catchup is not None and self._catchup.node == node:  # None if we stepped down
                self._check_catchup()
        if pr.next <= self.log.last_index:
            self._send_pending.add(node)
        if node in self._leaving:
            self._release_if_informed(node)

    def _handle_install_snapshot(self, m: InstallSnapshot) -> None:
        meta = m.meta
        if meta.index <= self.commit:
            # We already hold everything it covers.
            self._incoming_snapshot = None
            self._send(AppendEntriesResponse(term=self.term, src=self.id, dst=m.src, success=True, index=self.commit))
            return
        if m.offset == 0:
            self._incoming_snapshot = (meta, bytearray())
        incoming = self._incoming_snapshot
        if incoming is None or incoming[0] != meta or len(incoming[1]) != m.offset:
            have = len(incoming[1]) if incoming is not None and incoming[0] == meta else 0
            self._send(InstallSnapshotResponse(term=self.term, src=self.id, dst=m.src, index=meta.index, offset=have))
            return
        incoming[1].extend(m.data)
        if not m.done:
            self._send(
                InstallSnapshotResponse(term=self.term, src=self.id, dst=m.src, index=meta.index, offset=len(incoming[1]))
            )
            return
        self._incoming_snapshot = None
        snapshot = (meta, bytes(incoming[1]))
        kept = self.log.restore(meta.index, meta.term)
        self.commit = max(self.commit, meta.index)
        self.applied = meta.index
        if meta.configuration is not None:
            self._applied_configuration(meta.configuration)
        if not kept:
            self._config_indexes = []
        self._rebase_configurations(meta.index, meta.configuration or self._base_configuration)
        self._configuration_changed()
        self._snapshot = self._installed_snapshot = snapshot
        self._event(
            "snapshot",
            f"installed snapshot up to index {meta.index} (term {meta.term}) from {m.src}"
            + ("; kept the log after it" if kept else ""),
        )
        self._send(AppendEntriesResponse(term=self.term, src=self.id, dst=m.src, success=True, index=meta.index))

    def _follower_lost_entries(self, node: str, pr: Progress, last_index: int) -> None:
        match = pr.match
        pr.lost_entries(last_index)
        self._report_lost_entries(node, match, last_index)
        self._send_pending.add(node)

    def _report_lost_entries(self, node: str, match: int, last_index: int) -> None:
        self._count("follower_lost_entries")
        self._event("lost-entries", f"{node} no longer holds the entries up to {match} it acknowledged (its log "
                                    f"ends at or differs before {last_index + 1}): probing it again from there")

    def _next_from_hint(self, m: AppendEntriesResponse) -> int:
        """Where to probe next after a rejection, skipping a whole conflicting term at once."""
        if m.conflict_term is not None:
            index = self.log.last_index_of_term(m.conflict_term, m.index)
            if index is not None:
                return index + 1
        return m.conflict_index

    def _heard_from_leader(self, leader: str) -> None:
        self._election_elapsed = 0
        self.leader = leader

    # -- commit --------------------------------------------------------------------------------

    def _may_commit_by_counting(self, index: int) -> bool:
        """§3.6.2 (Figure 8): only an entry of the current term commits by counting replicas."""
        return self.log.term(index) == self.term

    def _maybe_commit(self) -> bool:
        match = {node: pr.match for node, pr in self._progress.items()}
        index = self.configuration.committed_index(match)
        if index > self.commit and self._may_commit_by_counting(index):
            # Followers learn the new commit index from the next AppendEntries or heartbeat; a
            # message of its own per commit would double the traffic of every command.
            before, self.commit = self.commit, index
            if self._config_indexes and before < self._config_indexes[-1] <= index:
                self._configuration_committed()
            return True
        return False

    def _advance_commit(self, index: int) -> None:
        if index > self.commit:
            self.commit = index

    # -- linearizable reads (§6.4) -----------------------------------------------------------------

    def _queue_read(self, read: PendingRead) -> None:
        if not self._reads.add(read, self._ticks):
            self._count("reads_refused_overload")
            self._refuse_reads([read])

    def _read_round_due(self) -> bool:
        """Reads wait, no round is in flight, and an entry of this leader's term has committed."""
        return self.role is Role.LEADER and self._reads.can_start() and self.log.term(self.commit) == self.term

    def _start_read_round(self) -> None:
        """Note the commit index as the waiting reads' read index and confirm leadership with
        one heartbeat to every follower carrying the new round's id."""
        self._reads.start(self.commit, self._ticks)
        self._count("read_rounds")
        self._heartbeat_elapsed = 0
        self._messages.extend(self.heartbeats())
        self._check_read_round()  # a single voter confirms on its own

    def _check_read_round(self) -> None:
        confirmed = self._reads.confirmed(self.configuration, self.id)
        if confirmed is None:
            return
        index, reads = confirmed
        local = [request for origin, request in reads if origin is None]
        self._read_states.extend(ReadState(request, index) for request in local)
        if len(local) < len(reads):
            self._answer_forwarded(reads, index, granted=True)

    def _refuse_reads(self, reads: list[PendingRead]) -> None:
        """Refuse waiting reads: the shell's own answer retry/redirect; followers are told."""
        if not reads:
            return
        self._read_states.extend(ReadState(request, None) for origin, request in reads if origin is None)
        self._answer_forwarded(reads, 0, granted=False)

    def _answer_forwarded(self, reads: list[PendingRead], index: int, *, granted: bool) -> None:
        by_origin: dict[str, list[int]] = {}
        for origin, request in reads:
            if origin is not None:
                by_origin.setdefault(origin, []).append(request)
        for origin, requests in by_origin.items():
            self._send(ReadIndexResponse(
                term=self.term, src=self.id, dst=origin, requests=tuple(requests), index=index, granted=granted,
            ))

    def _refuse_read_index(self, m: ReadIndex) -> None:
        """Not the leader: the asking follower retries elsewhere rather than wait."""
        self._send(ReadIndexResponse(term=self.term, src=self.id, dst=m.src, requests=m.requests, index=0, granted=False))

    def _forward_reads(self) -> None:
        assert self.leader is not None  # a leader change clears the reads to forward
        requests, self._to_forward = tuple(self._to_forward), []
        self._send(ReadIndex(term=self.term, src=self.id, dst=self.leader, requests=requests))

    def _handle_read_index_response(self, m: ReadIndexResponse) -> None:
        granted = m.granted and m.src == self.leader
        for request in m.requests:
            if self._forwarded.pop(request, None) is not None:
                self._read_states.append(ReadState(request, m.index if granted else None))

    def _expire_forwarded_reads(self) -> None:
        """A follower's reads the leader has not answered within an election timeout are refused."""
        oldest = self._ticks - self.config.election_timeout[1]
        late = []
        for request, asked in self._forwarded.items():  # in the order asked
            if asked > oldest:
                break
            late.append(request)
        for request in late:
            del self._forwarded[request]
            self._read_states.append(ReadState(request, None))

    # -- membership ----------------------------------------------------------------------------

    def _configuration_at(self, index: int) -> Configuration:
        """The configuration in effect once the log up to ``index`` is appended."""
        for config_index in reversed(self._config_indexes):
            if config_index <= index:
                entry = self.log.entry(config_index)
                cached = self._decoded.get(config_index)
                if cached is None or cached[0] is not entry:  # a truncated entry's index may come back
                    cached = self._decoded[config_index] = (entry, Configuration.decode(entry.data))
                return cached[1]
        return self._base_configuration

    def _rebase_configurations(self, index: int, configuration: Configuration) -> None:
        """The log now starts after ``index`` (a snapshot), where ``configuration`` was in effect."""
        self._base_configuration = configuration
        self._config_indexes = [i for i in self._config_indexes if i > index]
        self._decoded = {i: c for i, c in self._decoded.items() if i > index}

    def _track_configurations(self, entries: Sequence[Entry], truncated_from: int | None) -> None:
        """Follower append: forget configurations truncated away, take up newly appended ones."""
        indexes = self._config_indexes
        changed = False
        if truncated_from is not None and indexes and indexes[-1] >= truncated_from:
            indexes[:] = [i for i in indexes if i < truncated_from]
            changed = True
        for entry in entries:
            if entry.kind == EntryKind.CONFIG and entry.index > self.log.offset and (
                not indexes or entry.index > indexes[-1]
            ):
                indexes.append(entry.index)
                changed = True
        if changed:
            self._configuration_changed()

    def _configuration_changed(self) -> None:
        configuration = self._configuration_at(self.log.last_index)
        if configuration == self.configuration:
            return
        self.configuration = configuration
        self._event(
            "membership",
            f"configuration: voters {','.join(sorted(configuration.voters)) or '-'}"
            + (f", learners {','.join(sorted(configuration.learners))}" if configuration.learners else ""),
        )
        if self.role is Role.LEADER:
            for node in sorted(configuration.members()):
                if node not in self._progress:
                    pr = Progress(next_index=self.log.last_index + 1, max_inflight=self.config.max_inflight)
                    pr.recent_active = True
                    self._progress[node] = pr
            # Nodes removed keep their progress until the change commits, so they learn of it.

    def _configuration_committed(self) -> None:
        """The leader's latest configuration committed: let go of removed nodes; step down if removed."""
        members = self.configuration.members()
        removal = self._config_indexes[-1]
        for node in [n for n in self._progress if n not in members and n != self.id]:
            # Keep replicating to it until it holds its removal, then tell it the commit: it
            # applies its own removal and stops. Give up after two election timeouts.
            self._leaving[node] = (removal, self._ticks + 2 * self.config.election_timeout[1])
            self._release_if_informed(node)
        if self._catchup is not None:
            self._check_catchup()
        if self.id not in self.configuration.voters:
            successor = max(
                (n for n in self.configuration.voters if n in self._progress),
                key=lambda n: (self._progress[n].match, n),
                default=None,
            )
            if successor is not None and self._progress[successor].match == self.log.last_index:
                self._send_timeout_now(successor)
            self._become_follower(self.term, None, reason="removed from the configuration")

    def _release_if_informed(self, node: str) -> None:
        if self._progress[node].match >= self._leaving[node][0]:
            self._send(self._heartbeat(node))
            self._forget(node)

    def _forget(self, node: str) -> None:
        del self._progress[node], self._leaving[node]
        self._send_pending.discard(node)

    def _check_catchup(self) -> None:
        """Run the catch-up rounds of §4.2.1 for the learner being added: promote or give up."""
        cu = self._catchup
        assert cu is not None
        pr = self._progress.get(cu.node)
        elapsed = self._ticks - cu.round_start
        if pr is None or cu.node not in self.configuration.learners:
            self._catchup = None
            return
        if pr.match >= cu.target:
            if elapsed < self.config.election_timeout[0]:
                if self.commit >= cu.added_at and self._transferee is None:
                    self._catchup = None
                    index = self._append_configuration(self.configuration.promoted(cu.node))
                    self._event("membership", f"promoting {cu.node} to voter after {cu.round} round(s) (entry {index})")
                return
            if cu.round < self.config.catchup_rounds:
                cu.round += 1
                cu.target = self.log.last_index
                cu.round_start = self._ticks
                return
            reason = (f"{cu.node} did not catch up: round {cu.round} of {self.config.catchup_rounds} still took "
                      f"{elapsed} ticks, more than an election timeout")
        elif elapsed > self.config.catchup_round_limit:
            reason = (f"{cu.node} did not catch up: round {cu.round} made it to index {pr.match} of {cu.target} "
                      f"in {elapsed} ticks")
        else:
            return
        if self.commit < cu.added_at:
            return  # give up once the entry adding it has committed (one change at a time)
        self._catchup = None
        self.catchup_failures[cu.node] = reason
        self._event("membership", f"gave up adding {cu.node}: {reason}")
        self._append_configuration(self.configuration.without(cu.node))

    # -- sending -------------------------------------------------------------------------------

    def _peers(self) -> list[str]:
        return [n for n in self._progress if n != self.id]

    def _flush_appends(self) -> None:
        """Send every follower whatever it lacks, as far as its window allows."""
        if not self._send_pending:
            return
        pending, self._send_pending = self._send_pending, set()
        for node in sorted(pending):
            pr = self._progress.get(node)
            if pr is None or node == self.id:
                continue
            self._send_append(node, pr, allow_empty=True)
            while pr.state is ProgressState.REPLICATE and pr.next <= self.log.last_index and not pr.is_paused():
                self._send_append(node, pr, allow_empty=False)

    def _send_append(self, node: str, pr: Progress, *, allow_empty: bool) -> None:
        if pr.is_paused():
            return
        prev_index = pr.next - 1
        if prev_index < self.log.offset:
            self._start_snapshot(node, pr)
            return
        prev_term = self.log.term(prev_index)
        assert prev_term is not None, f"next index {pr.next} beyond the log for {node}"
        entries = self.log.slice(
            pr.next, self.log.last_index + 1, max_count=self.config.max_msg_entries, max_bytes=self.config.max_msg_bytes
        ) if pr.next <= self.log.last_index else []
        if not entries and not allow_empty:
            return
        self._send(
            AppendEntries(
                term=self.term,
                src=self.id,
                dst=node,
                prev_index=prev_index,
                prev_term=prev_term,
                entries=tuple(entries),
                commit=self.commit,
            )
        )
        pr.sent(prev_index + len(entries), len(entries))

    def _start_snapshot(self, node: str, pr: Progress) -> None:
        assert self._snapshot is not None, "log compacted without a snapshot"
        meta = self._snapshot[0]
        pr.become_snapshot(meta.index)
        self._event("snapshot", f"sending snapshot up to index {meta.index} to {node}")
        self._send_snapshot_chunk(node, pr)

    def _send_snapshot_chunk(self, node: str, pr: Progress) -> None:
        assert self._snapshot is not None
        meta, data = self._snapshot
        if meta.index != pr.snapshot_index:  # we compacted again since: send the newer one
            pr.become_snapshot(meta.index)
        start = pr.snapshot_offset
        chunk = data[start : start + self.config.snapshot_chunk_bytes]
        self._send(
            InstallSnapshot(
                term=self.term, src=self.id, dst=node, meta=meta, offset=start, data=chunk,
                done=start + len(chunk) >= len(data),
            )
        )

    def _send_timeout_now(self, node: str) -> None:
        self._send(TimeoutNow(term=self.term, src=self.id, dst=node))

    def _send(self, m: Message) -> None:
        self._messages.append(m)

    # -- small helpers -------------------------------------------------------------------------

    def _promotable(self) -> bool:
        return self.id in self.configuration.voters

    def _soft_state(self) -> SoftState:
        return SoftState(role=self.role, leader=self.leader)

    def _event(self, kind: str, detail: str) -> None:
        self._events.append(Event(kind=kind, detail=detail))

    def _count(self, what: str) -> None:
        self.stats[what] = self.stats.get(what, 0) + 1
