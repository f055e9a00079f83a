"""What the core asks its shell to do, handed out as one bundle.

The shell processes a Ready in this order, then calls ``Raft.advance(ready)``:

1. persist ``snapshot`` (if not None: save it, then drop the log it covers — all of the log if
   the entry at its index is not the snapshot's), then ``hard_state`` (if not None) and
   ``entries`` — if the first entry's index is at or
   below the last stored index, storage first truncates its log from that index;
2. send ``messages`` (votes and append acknowledgements in it promise durability, so never
   before step 1 is durable);
3. restore the state machine from ``snapshot`` (if any), then apply ``committed`` entries in order
   (this step may come before step 1: committed entries are durable on a majority already, and
   applying them promises nothing about this node's disk);
4. report ``soft_state`` changes and ``events`` as it likes;
5. serve each of ``reads`` (ReadIndex, §6.4) once the state machine has applied through its
   index, at once if it already has; refuse those whose index is None (retry or redirect).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .messages import Entry, Message, SnapshotMeta
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
    messages: tuple[Message, ...]
    committed: tuple[Entry, ...]
    soft_state: SoftState | None
    events: tuple[Event, ...]
    reads: tuple[ReadState, ...] = ()

    def __bool__(self) -> bool:
        return bool(
            self.hard_state or self.snapshot or self.entries or self.messages or self.committed or self.soft_state
            or self.events or self.reads
        )
