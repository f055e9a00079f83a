"""When a node snapshots its state machine and compacts its log by itself.

A snapshot is due once ``every`` applied entries follow the last one, or once the commands
applied since then hold ``max_bytes`` bytes (either limit None: not that one). Pure bookkeeping:
the node takes and saves the snapshot.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..core.messages import Entry


class SnapshotPolicy:
    """Counts what was applied since the last snapshot and says when the next is due."""

    __slots__ = ("every", "max_bytes", "bytes_since")

    def __init__(self, every: int | None, max_bytes: int | None) -> None:
        self.every = every
        self.max_bytes = max_bytes
        self.bytes_since = 0  # command bytes applied since the last snapshot (taken or installed)

    def applied(self, committed: Sequence[Entry]) -> None:
        added = 0
        for entry in committed:  # usually one entry: a loop, not a generator
            added += len(entry.data)
        self.bytes_since += added

    def reset(self) -> None:
        """A snapshot was taken or installed."""
        self.bytes_since = 0

    def due(self, applied_index: int, snapshot_index: int) -> bool:
        """Is a snapshot due with the state applied through ``applied_index`` and the last
        snapshot (the log's offset) at ``snapshot_index``?"""
        entries = applied_index - snapshot_index
        if entries <= 0:
            return False
        return (self.every is not None and entries >= self.every) or (
            self.max_bytes is not None and self.bytes_since >= self.max_bytes
        )
