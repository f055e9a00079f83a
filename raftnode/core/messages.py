"""Log entries and the messages Raft peers exchange.

Every RPC is a frozen, keyword-only value. ``src`` and ``dst`` are node ids; ``term`` is the
sender's current term (for a granted pre-vote, the prospective term it was asked about).
Entries are NamedTuples rather than dataclasses because they sit on the per-command hot path.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import NamedTuple

from .quorum import Configuration


class EntryKind(enum.IntEnum):
    """What a log entry carries."""

    COMMAND = 0  # an application command, applied through the state machine
    NOOP = 1  # appended by every new leader at the start of its term (§3.6.2)
    CONFIG = 2  # a cluster configuration (§4), in effect from the moment it is appended
    SESSION = 3  # a client session's registration or stamped command (§6.3; raftnode.wire.sessions)
    BATCH = 4  # many client commands, each applied in order with its own outcome (raftnode.wire.batches)


class Entry(NamedTuple):
    """One log entry: immutable, identified by (index, term)."""

    term: int
    index: int
    data: bytes = b""
    kind: EntryKind = EntryKind.COMMAND


@dataclass(frozen=True, slots=True)
class SnapshotMeta:
    """What a snapshot covers: the log up to (index, term), and the configuration at that point
    (None in snapshots that predate membership changes: the node keeps the one it has)."""

    index: int
    term: int
    configuration: Configuration | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    """Fields every message carries."""

    term: int
    src: str
    dst: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestVote(Message):
    """A vote request (§3.4), or a pre-vote probe (§9.6) when ``pre_vote`` is set.

    ``transfer`` marks an election started by TimeoutNow (§3.10): voters skip the
    leader-lease check for it.
    """

    last_log_index: int
    last_log_term: int
    pre_vote: bool = False
    transfer: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestVoteResponse(Message):
    granted: bool
    pre_vote: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class AppendEntries(Message):
    """Replicate ``entries`` after (prev_index, prev_term) and carry the leader's commit index."""

    prev_index: int
    prev_term: int
    entries: tuple[Entry, ...]
    commit: int


@dataclass(frozen=True, slots=True, kw_only=True)
class AppendEntriesResponse(Message):
    """Answer to AppendEntries.

    On success ``index`` is the last index now known to match the leader's log. On rejection
    ``index`` is the rejected ``prev_index`` and (conflict_index, conflict_term) is the hint that
    lets the leader skip a whole term of mismatching entries per round trip.
    """

    success: bool
    index: int
    conflict_index: int = 0
    conflict_term: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Heartbeat(Message):
    """Leader liveness, and a check that the follower still holds what the leader counted.

    (``match``, ``match_term``) is the last entry the leader believes the follower holds;
    ``commit`` is min(match, leader commit). A follower that holds that entry may commit up to
    ``commit``; one that does not (it lost entries it had acknowledged: a restore from an older
    copy, a damaged disk) commits nothing and answers with a rejection.

    ``read_round`` is the id of the leader's latest ReadIndex round (0: none yet); the follower
    echoes it, which confirms the leader still leads as of that round (§6.4).
    """

    commit: int
    match: int = 0
    match_term: int = 0
    read_round: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class HeartbeatResponse(Message):
    """``reject``: the follower lacks the heartbeat's (match, match_term); ``last_index`` is its
    last index then, where the leader probes from. ``read_round``: the heartbeat's, echoed."""

    reject: bool = False
    last_index: int = 0
    read_round: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadIndex(Message):
    """A follower asks its leader for a read index for its read requests ``requests`` (§6.4)."""

    requests: tuple[int, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadIndexResponse(Message):
    """The leader's answer to ReadIndex: serve ``requests`` once applied through ``index``;
    not ``granted``: the receiver is not (or no longer) the leader, or could not confirm it."""

    requests: tuple[int, ...]
    index: int
    granted: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class TimeoutNow(Message):
    """Leadership transfer (§3.10): start an election now, skipping pre-vote."""


@dataclass(frozen=True, slots=True, kw_only=True)
class InstallSnapshot(Message):
    """One chunk of the leader's snapshot (§5.3), for a follower whose next entry was compacted away.

    Chunks go one at a time, ``offset`` bytes into the snapshot; ``done`` marks the last one.
    """

    meta: SnapshotMeta
    offset: int
    data: bytes
    done: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class InstallSnapshotResponse(Message):
    """A chunk arrived: the follower holds ``offset`` bytes of the snapshot ending at ``index``.

    Once the last chunk is installed the follower answers with an AppendEntriesResponse instead.
    """

    index: int
    offset: int


ALL_MESSAGE_TYPES: tuple[type[Message], ...] = (
    RequestVote,
    RequestVoteResponse,
    AppendEntries,
    AppendEntriesResponse,
    Heartbeat,
    HeartbeatResponse,
    TimeoutNow,
    InstallSnapshot,
    InstallSnapshotResponse,
    ReadIndex,
    ReadIndexResponse,
)

#: What a leader whose own disk does not hold its log (a full disk) may still send while it hands
#: over: appends, heartbeats and snapshot chunks promise nothing about its disk (§10.2.1), and
#: TimeoutNow goes to a follower whose match shows it holds the leader's whole log on its disk.
SENT_WITHOUT_LEADER_DISK: tuple[type[Message], ...] = (AppendEntries, Heartbeat, InstallSnapshot, TimeoutNow)
