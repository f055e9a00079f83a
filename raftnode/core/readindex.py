"""ReadIndex bookkeeping (thesis §6.4): linearizable reads without writing to the log.

A read is served at a *read index*: the leader's commit index when the read joined a *round*.
A round is one heartbeat to every follower carrying the round's id; once a majority of voters
(the leader counts) has echoed that id, or a later one, in a HeartbeatResponse of the leader's
term, no other leader can have committed anything before the round began, so every write
acknowledged before the read arrived is at or below the read index. The shell then serves the
read once it has applied through that index.

Rounds are batched: reads that arrive while a round is in flight wait for the next one, which
starts when the current one is confirmed (or times out). A new leader starts no round before an
entry of its own term has committed (§6.4 step 1: only then is its commit index the cluster's).
A read that cannot be confirmed within ``timeout`` ticks, or whose leader steps down, is refused
(``ReadState.index`` None), never answered with a possibly stale index.

This module is pure bookkeeping over request tokens; ``Raft`` sends and receives the messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .quorum import Configuration

MAX_PENDING_READS = 1 << 17
"""Reads a leader keeps waiting (queued and in flight) at most; more are refused at once, so a
flood of reads (a follower's ReadIndex messages included) never grows memory without bound."""


@dataclass(frozen=True, slots=True)
class ReadState:
    """The answer to one read request: serve it once the state machine has applied ``index``;
    ``index`` None means refused (leadership lost or not confirmed in time): retry elsewhere."""

    request: int
    index: int | None


# Who asked: None for the leader's own shell, else the follower that forwarded the request.
Origin = str | None
PendingRead = tuple[Origin, int]  # (origin, the origin's request id)


@dataclass(slots=True)
class _Round:
    id: int
    index: int  # the commit index noted when the round started: the reads' read index
    reads: list[PendingRead]
    started: int  # tick


class ReadRounds:
    """A leader's read rounds: the reads waiting for the next round and the one in flight."""

    def __init__(self, *, timeout: int, max_pending: int = MAX_PENDING_READS):
        self.timeout = timeout
        self.max_pending = max_pending
        self.latest = 0  # id of the latest round started; every heartbeat carries it
        self.rounds_started = 0
        self._queued: list[PendingRead] = []
        self._queued_since = 0  # tick the oldest queued read arrived
        self._in_flight: _Round | None = None
        self._echoed: dict[str, int] = {}  # voter -> highest round id it echoed

    def __len__(self) -> int:
        return len(self._queued) + (len(self._in_flight.reads) if self._in_flight else 0)

    def add(self, read: PendingRead, now: int) -> bool:
        """Queue a read for the next round; False (refuse it) when too many reads wait."""
        if len(self) >= self.max_pending:
            return False
        if not self._queued:
            self._queued_since = now
        self._queued.append(read)
        return True

    def can_start(self) -> bool:
        """Reads wait and no round is in flight (the caller checks its own-term commit)."""
        return bool(self._queued) and self._in_flight is None

    def start(self, commit: int, now: int) -> int:
        """Start a round for every queued read at read index ``commit``; returns its id."""
        assert self.can_start()
        self.latest += 1
        self.rounds_started += 1
        self._in_flight = _Round(self.latest, commit, self._queued, now)
        self._queued = []
        return self.latest

    def echoed(self, node: str, round_id: int) -> None:
        """``node`` answered a heartbeat of round ``round_id`` in the leader's term."""
        if round_id > self._echoed.get(node, 0):
            self._echoed[node] = round_id

    def confirmed(self, configuration: Configuration, leader: str) -> tuple[int, list[PendingRead]] | None:
        """The in-flight round's (read index, reads) once a majority of voters echoed it, else None."""
        current = self._in_flight
        if current is None:
            return None
        echoed: Mapping[str, int] = {**self._echoed, leader: current.id}
        if configuration.committed_index(echoed) < current.id:
            return None
        self._in_flight = None
        return current.index, current.reads

    def next_expiry(self) -> int | None:
        """The tick at which ``expired`` next has reads to give (None: no read waits)."""
        current = self._in_flight
        start = current.started if current is not None else None
        if self._queued and (start is None or self._queued_since < start):
            start = self._queued_since
        return None if start is None else start + self.timeout

    def expired(self, now: int) -> list[PendingRead]:
        """Reads waiting longer than ``timeout`` ticks: the in-flight round's, and the queue's."""
        late: list[PendingRead] = []
        current = self._in_flight
        if current is not None and now - current.started >= self.timeout:
            late.extend(current.reads)
            self._in_flight = None
        if self._queued and now - self._queued_since >= self.timeout:
            late.extend(self._queued)
            self._queued = []
        return late

    def drain(self) -> list[PendingRead]:
        """Every waiting read (the leader stepped down): the caller refuses them all."""
        reads = list(self._in_flight.reads) if self._in_flight else []
        reads.extend(self._queued)
        self._in_flight = None
        self._queued = []
        return reads
