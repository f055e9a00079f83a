"""What the core asks its shell to do, handed out as one bundle, and the order to do it in.

The core states the order; the shell does not choose it. ``raftnode.node.driver.process_ready`` is the
one implementation, shared by the trio runtime and the simulator (so the simulator's invariants
are checked on the order that ships). For each Ready, then ``Raft.advance(ready)``:

1. send ``messages_before_persist``: they promise nothing about this node's disk, so they may
   leave before this Ready's entries and hard state are durable. Only a leader's AppendEntries,
   heartbeats and InstallSnapshot chunks go here (thesis §10.2.1: a leader writes its log in
   parallel with replicating it; it counts its own copy towards a commit only once ``advance``
   reports it stable, so a crash before its fsync loses nothing a majority relied on);
2. report ``soft_state`` changes and ``events`` as it likes;
3. if ``apply_before_persist`` (set for a leader): restore the state machine from ``snapshot``
   (if any), apply ``committed`` in order and let the callers' answers go. A leader's committed
   entries are all on its own disk already (its commit index never passes its stable index, for
   the reason above) and on a majority's, so their answers need not wait for this Ready's fsync
   of newer entries;
4. persist ``snapshot`` (if not None: save it, then drop the log it covers — all of the log if
   the entry at its index is not the snapshot's), then ``hard_state`` (if not None) and
   ``entries`` — if the first entry's index is at or below the last stored index, storage first
   truncates its log from that index — and make them durable (fsync). A Ready whose persist
   fails is dropped: nothing below happens and it is never advanced;
5. send ``messages_after_persist``: votes, append and snapshot acknowledgements, everything else
   — they promise this node's disk holds what they speak of, so never before step 4 is durable;
6. if not ``apply_before_persist`` (a follower, a candidate): restore from ``snapshot`` and apply
   ``committed`` now. Its committed entries may be among this Ready's own ``entries`` (an append
   that carries the leader's commit index), so it applies only what it has persisted; and the
   acknowledgement the leader waits for leaves first, nobody waits for a follower's apply;
7. serve each of ``reads`` (ReadIndex, §6.4) once the state machine has applied through its
   index, at once if it already has; refuse those whose index is None (retry or redirect).

``messages`` is both lists, for a shell (or a test) that sends everything after persisting:
that order is always safe, only slower.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .messages import AppendEntries, Entry, Heartbeat, InstallSnapshot, Message, SnapshotMeta
from .readindex import ReadState


class Role(enum.Enum):
    FOLLOWER = "follower"
    PRE_CANDIDATE = "pre-candidate"
    CANDIDATE = "candidate"
    LEADER = "leader"


@dataclass(frozen=True, slots=True, kw_only=True)
class HardState:
    """What must survive a crash: the current term, the vote cast in it, and the commit index (a hint)."""

    term: int = 0
    vote: str | None = None
    commit: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class SoftState:
    """Volatile state worth reporting when it changes."""

    role: Role
    leader: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Something a person reading the node's story wants to know (elections, step-downs, transfers)."""

    kind: str
    detail: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Ready:
    hard_state: HardState | None
    snapshot: tuple[SnapshotMeta, bytes] | None
    entries: tuple[Entry, ...]
    messages_before_persist: tuple[Message, ...]
    messages_after_persist: tuple[Message, ...]
    committed: tuple[Entry, ...]
    apply_before_persist: bool
    soft_state: SoftState | None
    events: tuple[Event, ...]
    reads: tuple[ReadState, ...] = ()

    @property
    def messages(self) -> tuple[Message, ...]:
        """Every message: all of them may be sent once this Ready is persisted."""
        return self.messages_before_persist + self.messages_after_persist

    def __bool__(self) -> bool:
        return bool(
            self.hard_state or self.snapshot or self.entries or self.messages_before_persist
            or self.messages_after_persist or self.committed or self.soft_state or self.events or self.reads
        )


# What a leader may send before its own fsync (§10.2.1): replication promises nothing about its disk.
_BEFORE_PERSIST_FROM_LEADER = (AppendEntries, Heartbeat, InstallSnapshot)


def split_by_durability(messages: list[Message], *, leader: bool) -> tuple[tuple[Message, ...], tuple[Message, ...]]:
    """(may leave before this Ready is persisted, only after): see steps 1 and 5 above."""
    if not leader:
        return (), tuple(messages)
    before = [m for m in messages if isinstance(m, _BEFORE_PERSIST_FROM_LEADER)]
    if len(before) == len(messages):
        return tuple(before), ()
    return tuple(before), tuple(m for m in messages if not isinstance(m, _BEFORE_PERSIST_FROM_LEADER))
