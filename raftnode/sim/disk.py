"""A simulated node's disk: what survives a crash, and the write faults that can hit it.

``SimDisk`` holds the hard state, the latest snapshot and the log after it, with the same
truncate-on-conflict and compact-on-snapshot rules as the real storage; ``corrupt_at`` marks a
record whose checksum no longer matches (a node refuses to start from it, as DiskStorage does).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ..core.messages import Entry, SnapshotMeta
from ..core.ready import HardState
from .invariants import COMPACTED

# Faults that hit a node's next write, then stop it before it sends or acknowledges anything:
# a torn write (a prefix of it reached the disk), unsynced writes lost at a crash (none did), a
# failed fsync (an unknown prefix did: the node stops and never retries the same data, the
# PostgreSQL fsync lesson), a full disk (the write failed: nothing did).
DISK_WRITE_FAULTS = ("torn write", "lost unsynced writes", "fsync failed", "disk full")


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

