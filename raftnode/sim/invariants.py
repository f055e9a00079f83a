"""The safety invariants of Raft, checked incrementally as a simulation runs.

The simulator reports what happens (a role change, entries persisted or truncated, commit
advancing, an entry applied, a client acknowledged); each report is checked at once, so a
violation is caught at the step that caused it. Names follow the scenario catalog:

- election safety: at most one leader per term, ever;
- leader append-only: a leader never overwrites or deletes entries in its own log;
- log matching: two logs holding an entry with the same index and term are identical up to it
  (checked inductively: every (index, term) must always carry the same data and follow the same
  previous term);
- leader completeness: a committed entry is in the log of every leader of a later term;
- state machine safety: no two nodes apply different commands at the same index, and each node's
  state machine applies every index once, in order, from where it was last built (empty, or
  restored from a snapshot) — an entry handed to it twice is applied twice, whatever it holds;
- durability: an acknowledged command stays on a majority of the voters that committed it;
  commit and applied indexes never move backwards on a node that kept its disk;
- exactly once: a command of a client session (identified by its session and sequence number,
  however many copies the log holds) reaches the state machine at most once — at one log index —
  and a command the client was answered is one that was applied, with the outcome it had then.
- read freshness (ReadIndex, §6.4): a read is served from a state that includes every command
  acknowledged before the read was issued (applied index >= the highest acknowledged index then).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from typing import Any

from ..core.messages import Entry, EntryKind
from ..wire.sessions import SessionStamp


class InvariantViolation(AssertionError):
    """An invariant broke; ``invariant`` is its catalog name."""

    def __init__(self, invariant: str, detail: str):
        self.invariant = invariant
        self.detail = detail
        super().__init__(f"{invariant}: {detail}")


COMPACTED = -1  # "inside the node's snapshot", which holds only committed entries

# A view of one node's log for completeness checks: index -> term (None if absent, COMPACTED).
TermAt = Callable[[int], "int | None"]


class InvariantChecker:
    def __init__(self, node_ids: Sequence[str]):
        self.initial = tuple(node_ids)
        self.leaders: dict[int, str] = {}  # term -> leader
        self.entries: dict[tuple[int, int], tuple[int | None, bytes]] = {}  # (index, term) -> (prev term, data)
        self.committed: dict[int, int] = {}  # index -> term
        self.commit_terms: dict[int, int] = {}  # index -> the term in which it was first known committed
        self.applied: dict[int, tuple[int, bytes]] = {}  # index -> (term, data)
        self.applied_up_to: dict[str, int] = {}  # node -> the last index its current state machine holds
        self.acked: dict[int, int] = {}  # index -> term of acknowledged commands
        self.holders: dict[int, set[str]] = {}  # acked index -> nodes whose disk holds it
        self.voters: dict[int, frozenset[str]] = {}  # acked index -> the voters a majority of which must hold it
        self.snapshots: dict[int, bytes] = {}  # index -> state machine snapshot taken there
        # (session, seq) -> ((index, position in a batch entry), result, error) of the one
        # application of a session command
        self.session_applied: dict[tuple[int, int], tuple[tuple[int, int], Any, str | None]] = {}
        self.session_acked = 0
        self.highest_acked = 0  # the highest acknowledged index
        self.reads_served = 0
        self.batch_entries: set[int] = set()  # indexes of the batch entries applied
        self.checks = 0

    def _fail(self, invariant: str, detail: str) -> None:
        raise InvariantViolation(invariant, detail)

    # -- reports ---------------------------------------------------------------------------------

    def became_leader(self, node: str, term: int, term_at: TermAt) -> None:
        self.checks += 1
        other = self.leaders.setdefault(term, node)
        if other != node:
            self._fail("election safety", f"{other} and {node} were both leader in term {term}")
        for index, committed_term in self.committed.items():
            if self.commit_terms[index] < term and term_at(index) not in (committed_term, COMPACTED):
                self._fail(
                    "leader completeness",
                    f"{node} became leader of term {term} without entry {index} (term {committed_term}), "
                    f"committed in term {self.commit_terms[index]}",
                )

    def persisted(self, node: str, entries: Sequence[Entry], prev_term: int | None, truncated_from: int | None,
                  is_leader: bool) -> None:
        """``node`` wrote ``entries`` (after truncating its disk log from ``truncated_from``, if set)."""
        self.checks += 1
        if truncated_from is not None:
            if is_leader:
                self._fail("leader append-only", f"leader {node} truncated its log from index {truncated_from}")
            for index, holders in self.holders.items():
                if index >= truncated_from and node in holders:
                    holders.discard(node)
                    voters = self.voters[index]
                    if len(holders & voters) <= len(voters) // 2:
                        self._fail(
                            "durability",
                            f"acknowledged entry {index} (term {self.acked[index]}) is left on "
                            f"{sorted(holders)} only, after {node} truncated from {truncated_from}",
                        )
        for entry in entries:
            key = (entry.index, entry.term)
            seen = self.entries.setdefault(key, (prev_term, entry.data))
            if seen != (prev_term, entry.data):
                self._fail(
                    "log matching",
                    f"entry {entry.index} of term {entry.term} on {node} differs from another copy "
                    f"(previous term {prev_term} vs {seen[0]}, data {entry.data!r} vs {seen[1]!r})",
                )
            if self.acked.get(entry.index) == entry.term:
                self.holders[entry.index].add(node)
            prev_term = entry.term

    def committed_to(self, node: str, entries: Sequence[Entry], leaders: Sequence[tuple[str, int, TermAt]],
                     term: int) -> None:
        """``node``, in ``term``, now knows ``entries`` committed; ``leaders`` are the live leaders.

        Leader completeness concerns the leaders of terms after the one an entry was committed in
        (the first report of it: the committing leader's term), not after the entry's own term: an
        entry of term 10 committed by the leader of term 16 need not be in term 15's leader's log.
        """
        self.checks += 1
        for entry in entries:
            commit_term = self.commit_terms.setdefault(entry.index, term)
            known = self.committed.setdefault(entry.index, entry.term)
            if known != entry.term:
                self._fail(
                    "state machine safety",
                    f"{node} committed index {entry.index} with term {entry.term}, already committed with term {known}",
                )
            for leader, leader_term, term_at in leaders:
                if leader_term > commit_term and term_at(entry.index) not in (entry.term, COMPACTED):
                    self._fail(
                        "leader completeness",
                        f"leader {leader} of term {leader_term} lacks entry {entry.index} (term {entry.term}), "
                        f"committed in term {commit_term}",
                    )

    def state_machine_built(self, node: str, index: int) -> None:
        """``node``'s state machine was made anew, holding every entry up to ``index`` (0: empty)."""
        self.applied_up_to[node] = index

    def applied_entry(self, node: str, entry: Entry) -> None:
        self.checks += 1
        previous = self.applied_up_to.get(node, 0)
        if entry.index != previous + 1:
            again = "again" if entry.index <= previous else f"skipping {previous + 1}-{entry.index - 1}"
            self._fail("state machine safety",
                       f"{node} applied index {entry.index} {again}: its state machine already held up to {previous}")
        self.applied_up_to[node] = entry.index
        if entry.kind is EntryKind.BATCH:
            self.batch_entries.add(entry.index)
        seen = self.applied.setdefault(entry.index, (entry.term, entry.data))
        if seen != (entry.term, entry.data):
            self._fail(
                "state machine safety",
                f"{node} applied {entry.data!r} (term {entry.term}) at index {entry.index}, "
                f"another node applied {seen[1]!r} (term {seen[0]})",
            )

    def snapshot_taken(self, node: str, index: int, data: bytes) -> None:
        """``node``'s state machine state at ``index`` is ``data``: every node's must be the same there."""
        self.checks += 1
        seen = self.snapshots.setdefault(index, data)
        if seen != data:
            self._fail("state machine safety", f"{node}'s snapshot at index {index} differs from another node's")

    def acknowledged(self, index: int, term: int, holders: set[str],
                     configurations: Sequence[frozenset[str]] | None = None) -> None:
        """A client was told its command at (index, term) succeeded; ``holders`` have it on disk.

        ``configurations``: the voter sets the leader may have counted with (its committed and its
        latest configuration); the holders must be a majority of one of them.
        """
        self.checks += 1
        if self.committed.get(index) != term:
            self._fail("durability", f"entry {index} (term {term}) was acknowledged but is not committed")
        candidates = configurations or [frozenset(self.initial)]
        voters = next((v for v in candidates if len(holders & v) > len(v) // 2), None)
        if voters is None:
            self._fail("durability", f"entry {index} was acknowledged while on {sorted(holders)} only "
                                     f"(voters {[sorted(v) for v in candidates]})")
            return
        self.acked[index] = term
        self.highest_acked = max(self.highest_acked, index)
        self.holders[index] = set(holders)
        self.voters[index] = voters

    def read_served(self, node: str, command: str, floor: int, applied: int) -> None:
        """``node`` answered a read issued when ``floor`` was ``highest_acked``, from its state at ``applied``."""
        self.checks += 1
        self.reads_served += 1
        if applied < floor:
            self._fail(
                "read freshness",
                f"{node} served {command!r} from its state at index {applied}, older than index {floor}, "
                "acknowledged before the read was issued (a stale read)",
            )

    def monotonic(self, node: str, what: str, before: int, after: int) -> None:
        if after < before:
            self._fail("durability", f"{what} index of {node} moved backwards from {before} to {after}")

    def applied_in_session(self, node: str, index: int, stamp: SessionStamp, result: Any, error: str | None,
                           position: int = 0) -> None:
        """``node``'s state machine applied the session command ``stamp`` at ``index`` (the
        ``position``-th command of a batch entry; 0 for any other entry)."""
        self.checks += 1
        key = (stamp.session, stamp.seq)
        first = self.session_applied.setdefault(key, ((index, position), result, error))
        if first[0] != (index, position):
            self._fail("exactly once", f"{node} applied command {stamp.seq} of session {stamp.session} at "
                                       f"{_place(index, position)}; it was applied at {_place(*first[0])} already")

    def acknowledged_in_session(self, stamp: SessionStamp, result: Any, error: str | None) -> None:
        """A client was answered ``(result, error)`` for its session command ``stamp``."""
        self.checks += 1
        self.session_acked += 1
        applied = self.session_applied.get((stamp.session, stamp.seq))
        if applied is None:
            self._fail("exactly once", f"command {stamp.seq} of session {stamp.session} was answered "
                                       f"({result!r}, {error!r}) but never applied")
        elif applied[1:] != (result, error):
            self._fail("exactly once", f"command {stamp.seq} of session {stamp.session} was answered "
                                       f"({result!r}, {error!r}) but applying it at index {applied[0][0]} gave "
                                       f"({applied[1]!r}, {applied[2]!r})")


def _place(index: int, position: int) -> str:
    """Where a session command was applied: its entry's index, and its place in a batch entry."""
    return f"index {index}" + (f" (command {position} of its batch entry)" if position else "")
