"""The in-memory Raft log of one node.

Theory of operation: the log holds every entry after ``offset`` (the index covered by the latest
snapshot; 0 until compaction lands). Entries up to ``stable_index`` are known to be on disk; the
rest are *unstable* and are handed to the shell through ``Ready.entries`` until it reports them
persisted with ``stable_to``. Truncating a conflicting suffix pulls ``stable_index`` back so the
replacement entries are handed out again, starting at the truncation point — which tells storage
to cut its log there.
"""

from __future__ import annotations

from collections.abc import Sequence

from .errors import LogCompacted, SafetyViolation
from .messages import Entry


class RaftLog:
    """Entries with contiguous indexes ``offset+1 .. last_index``."""

    __slots__ = ("_entries", "last_index", "offset", "offset_term", "stable_index")

    def __init__(self, entries: Sequence[Entry] = (), *, offset: int = 0, offset_term: int = 0):
        self._entries: list[Entry] = list(entries)
        self.offset = offset
        self.offset_term = offset_term
        self.last_index = offset + len(self._entries)  # kept up to date by every change: read on every input
        for i, entry in enumerate(self._entries):
            if entry.index != offset + 1 + i:
                raise ValueError(f"log entries are not contiguous at position {i}: {entry!r}")
        self.stable_index = self.last_index

    # -- queries -------------------------------------------------------------------------------

    @property
    def last_term(self) -> int:
        return self._entries[-1].term if self._entries else self.offset_term

    def term(self, index: int) -> int | None:
        """The term of the entry at ``index``; None past the end; raises LogCompacted before it."""
        if index > self.last_index:
            return None
        if index == self.offset:
            return self.offset_term
        if index < self.offset:
            raise LogCompacted(index, self.offset)
        return self._entries[index - self.offset - 1].term

    def match_term(self, index: int, term: int) -> bool:
        try:
            return self.term(index) == term
        except LogCompacted:
            return False

    def entry(self, index: int) -> Entry:
        if index <= self.offset:
            raise LogCompacted(index, self.offset)
        return self._entries[index - self.offset - 1]

    def slice(self, lo: int, hi: int, *, max_count: int | None = None, max_bytes: int | None = None) -> list[Entry]:
        """Entries with ``lo <= index < hi``, at most ``max_count`` and about ``max_bytes`` of data.

        At least one entry is returned when the range is not empty, whatever its size.
        """
        if lo <= self.offset:
            raise LogCompacted(lo, self.offset)
        hi = min(hi, self.last_index + 1)
        if max_count is not None:
            hi = min(hi, lo + max_count)
        start = lo - self.offset - 1
        out = self._entries[start : hi - self.offset - 1]
        if max_bytes is not None and len(out) > 1:
            size = 0
            for n, entry in enumerate(out):
                size += len(entry.data)
                if size > max_bytes and n > 0:
                    return out[:n]
        return out

    def is_up_to_date(self, last_index: int, last_term: int) -> bool:
        """§3.6.1: a candidate's log is at least as up to date as ours (last term, then length)."""
        return (last_term, last_index) >= (self.last_term, self.last_index)

    def conflict_hint(self, prev_index: int) -> tuple[int, int | None]:
        """What a follower tells a leader whose ``prev_index`` did not match.

        Returns (conflict_index, conflict_term): if our log is too short, (last_index+1, None);
        otherwise the term we hold at ``prev_index`` and the first index we hold of that term.
        """
        if prev_index > self.last_index:
            return self.last_index + 1, None
        term = self.term(prev_index)
        index = prev_index
        while index - 1 > self.offset and self._entries[index - 2 - self.offset].term == term:
            index -= 1
        return index, term

    def last_index_of_term(self, term: int, upper: int) -> int | None:
        """The last index ``<= upper`` holding ``term``, if any (scans back only while terms >= term)."""
        index = min(upper, self.last_index)
        while index > self.offset:
            t = self._entries[index - self.offset - 1].term
            if t == term:
                return index
            if t < term:
                return None
            index -= 1
        return None

    def unstable(self) -> list[Entry]:
        """Entries not yet reported persisted, in order."""
        return self._entries[self.stable_index - self.offset :]

    # -- mutation ------------------------------------------------------------------------------

    def append(self, entry: Entry) -> None:
        """Leader append: the entry must directly follow the last one."""
        self._entries.append(entry)
        self.last_index += 1

    def merge(self, entries: Sequence[Entry], *, commit_index: int) -> int | None:
        """Follower append (§3.5): skip entries we already hold, truncate at the first conflict.

        Returns the index the log was truncated from, or None if nothing was removed.
        Raises SafetyViolation if a conflict would remove an entry at or below ``commit_index``.
        """
        for n, entry in enumerate(entries):
            index = entry.index
            if index > self.last_index:
                self._entries.extend(entries[n:])
                self.last_index = self.offset + len(self._entries)
                return None
            if index <= self.offset:
                continue
            if self._entries[index - self.offset - 1].term != entry.term:
                if index <= commit_index:
                    raise SafetyViolation(
                        f"conflicting entry at committed index {index} (commit {commit_index})"
                    )
                del self._entries[index - self.offset - 1 :]
                self.stable_index = min(self.stable_index, index - 1)
                self._entries.extend(entries[n:])
                self.last_index = self.offset + len(self._entries)
                return index
        return None

    def compact(self, index: int, term: int) -> None:
        """Forget entries up to ``index`` (now covered by a snapshot ending at (index, term))."""
        if index <= self.offset:
            return
        if index > self.stable_index:
            raise ValueError(f"cannot compact to {index}: only {self.stable_index} is persisted")
        del self._entries[: index - self.offset]
        self.offset = index
        self.offset_term = term

    def restore(self, index: int, term: int) -> bool:
        """Start the log after a received snapshot ending at (index, term); returns whether the
        entries following it were kept (they are when we hold that very entry, §5.3)."""
        if self.match_term(index, term) and index <= self.stable_index:
            self.compact(index, term)
            return True
        self._entries = []
        self.offset = index
        self.offset_term = term
        self.stable_index = self.last_index = index
        return False

    def stable_to(self, index: int, term: int) -> None:
        """The shell persisted entries up to (index, term); ignored if that entry was since replaced."""
        if index > self.stable_index and self.match_term(index, term):
            self.stable_index = index
