"""The messages of linearizable reads (thesis §6.4): ReadIndex rounds at the leader, forwarding
at a follower. ``readindex.ReadRounds`` keeps the leader's bookkeeping; this module sends and
receives for it and hands each answer to the next Ready as a ``ReadState``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .messages import ReadIndex, ReadIndexResponse
from .readindex import MAX_PENDING_READS, PendingRead, ReadRounds, ReadState
from .ready import Role

if TYPE_CHECKING:
    from .raft import Raft


class Reads:
    """A node's reads in flight: the leader's rounds, or a follower's requests to its leader."""

    def __init__(self, node: Raft):
        self.node = node
        self.rounds = ReadRounds(timeout=node.config.election_timeout[0])  # the leader's ReadIndex rounds
        self.forwarded: dict[int, int] = {}  # a follower's read requests asked of the leader -> tick asked
        self.to_forward: list[int] = []  # ... not sent yet (one ReadIndex message per Ready)

    def reset(self) -> None:
        """A new term or role: every read waiting here is refused (the shell retries elsewhere)."""
        self.refuse(self.rounds.drain())
        self.rounds = ReadRounds(timeout=self.node.config.election_timeout[0])
        if self.forwarded:
            self.node._read_states.extend(ReadState(request, None) for request in self.forwarded)
            self.forwarded = {}
            self.to_forward = []

    def request(self, request: int) -> None:
        """Ask for a read; see ``Raft.read_index``. The caller checked that a leader is known."""
        node = self.node
        if node.role is Role.LEADER:
            self.queue((None, request))
        elif len(self.forwarded) >= MAX_PENDING_READS:
            node._read_states.append(ReadState(request, None))
        else:
            self.forwarded[request] = node._ticks
            self.to_forward.append(request)

    # -- at the leader -------------------------------------------------------------------------

    def queue(self, read: PendingRead) -> None:
        if not self.rounds.add(read, self.node._ticks):
            self.node._count("reads_refused_overload")
            self.refuse([read])

    def round_due(self) -> bool:
        """Reads wait, no round is in flight, and an entry of this leader's term has committed."""
        node = self.node
        return node.role is Role.LEADER and self.rounds.can_start() and node.log.term(node.commit) == node.term

    def start_round(self) -> None:
        """Note the commit index as the waiting reads' read index and confirm leadership with
        one heartbeat to every follower carrying the new round's id."""
        node = self.node
        self.rounds.start(node.commit, node._ticks)
        node._count("read_rounds")
        node._replication.send_heartbeats()
        self.check_round()  # a single voter confirms on its own

    def echoed(self, follower: str, round_id: int) -> None:
        """A follower of this term echoed round ``round_id`` (even one that lost entries confirms our lead)."""
        self.rounds.echoed(follower, round_id)
        self.check_round()

    def check_round(self) -> None:
        node = self.node
        confirmed = self.rounds.confirmed(node.configuration, node.id)
        if confirmed is None:
            return
        index, reads = confirmed
        local = [request for origin, request in reads if origin is None]
        node._read_states.extend(ReadState(request, index) for request in local)
        if len(local) < len(reads):
            self._answer_forwarded(reads, index, granted=True)

    def expire_rounds(self) -> None:
        if self.rounds:
            self.refuse(self.rounds.expired(self.node._ticks))

    def refuse(self, reads: list[PendingRead]) -> None:
        """Refuse waiting reads: the shell's own answer retry/redirect; followers are told."""
        if not reads:
            return
        self.node._read_states.extend(ReadState(request, None) for origin, request in reads if origin is None)
        self._answer_forwarded(reads, 0, granted=False)

    def _answer_forwarded(self, reads: list[PendingRead], index: int, *, granted: bool) -> None:
        node = self.node
        by_origin: dict[str, list[int]] = {}
        for origin, request in reads:
            if origin is not None:
                by_origin.setdefault(origin, []).append(request)
        for origin, requests in by_origin.items():
            node._send(ReadIndexResponse(
                term=node.term, src=node.id, dst=origin, requests=tuple(requests), index=index, granted=granted,
            ))

    def refuse_request(self, m: ReadIndex) -> None:
        """Not the leader: the asking follower retries elsewhere rather than wait."""
        node = self.node
        node._send(ReadIndexResponse(term=node.term, src=node.id, dst=m.src, requests=m.requests, index=0,
                                     granted=False))

    # -- at a follower -------------------------------------------------------------------------

    def forward(self) -> None:
        """Ask the leader, in one ReadIndex message, for the reads requested since the last Ready."""
        if not self.to_forward:
            return
        node = self.node
        assert node.leader is not None  # a leader change clears the reads to forward
        requests, self.to_forward = tuple(self.to_forward), []
        node._send(ReadIndex(term=node.term, src=node.id, dst=node.leader, requests=requests))

    def handle_response(self, m: ReadIndexResponse) -> None:
        granted = m.granted and m.src == self.node.leader
        for request in m.requests:
            if self.forwarded.pop(request, None) is not None:
                self.node._read_states.append(ReadState(request, m.index if granted else None))

    def tick(self) -> None:
        """A follower's reads the leader has not answered within an election timeout are refused."""
        if not self.forwarded:
            return
        oldest = self.node._ticks - self.node.config.election_timeout[1]
        late = []
        for request, asked in self.forwarded.items():  # in the order asked
            if asked > oldest:
                break
            late.append(request)
        for request in late:
            del self.forwarded[request]
            self.node._read_states.append(ReadState(request, None))

    def ticks_until_expiry(self) -> int | None:
        """Ticks until a waiting read (the leader's or one asked of the leader) times out."""
        node = self.node
        due = None
        if self.forwarded:  # the oldest read asked of the leader expires
            due = next(iter(self.forwarded.values())) + node.config.election_timeout[1] - node._ticks
        expiry = self.rounds.next_expiry()
        if expiry is not None:
            due = expiry - node._ticks if due is None else min(due, expiry - node._ticks)
        return due
