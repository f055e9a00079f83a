"""Storage in memory, for tests and examples: the same contract, and a model of what a crash keeps.

Besides the current state, :class:`MemoryStorage` keeps the state as of the last ``sync()`` (what
a disk would hold after power loss), and :meth:`MemoryStorage.crash` returns a new storage holding
only that. Snapshots are durable when ``save_snapshot`` returns, and compaction and the log
reset a non-matching snapshot causes apply at once, exactly as on disk.
"""

from __future__ import annotations

from collections.abc import Sequence

from . import (
    Entry,
    HardState,
    SnapshotMeta,
    StorageError,
    StoredState,
    check_append,
    snapshot_keeps_log,
)


class MemoryStorage:
    """An in-memory :class:`~raftnode.storage.Storage` that counts its syncs."""

    #: Never blocks, so the runtime calls it inline (this keeps MockClock runs exact).
    needs_thread = False

    def __init__(self) -> None:
        self._hs = HardState()
        self._entries: list[Entry] = []  # the stored log; _entries[0].index == _first
        self._first = 1
        self._snapshot: tuple[SnapshotMeta, bytes] | None = None
        # As of the last sync. The durable log always starts at the same index as the current one.
        self._durable_hs = self._hs
        self._durable_entries: list[Entry] = []
        self._dirty_from: int | None = None  # lowest log index written since the last sync
        self._hs_dirty = False
        self._closed = False
        self._stats = {
            "syncs": 0,
            "fsyncs": 0,  # syncs that had something to make durable
            "appends": 0,
            "entries_appended": 0,
            "bytes_written": 0,
            "truncations": 0,
            "snapshots": 0,
            "compactions": 0,
        }

    # -- helpers -------------------------------------------------------------------------------

    @property
    def last_index(self) -> int:
        """The index of the last stored entry (``first - 1`` when the log is empty)."""
        return self._first + len(self._entries) - 1

    def _snapshot_index(self) -> int:
        return self._snapshot[0].index if self._snapshot else 0

    def _term_at(self, index: int) -> int | None:
        if self._first <= index <= self.last_index:
            return self._entries[index - self._first].term
        return None

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError("storage is closed")

    def _mark_dirty(self, index: int) -> None:
        if self._dirty_from is None or index < self._dirty_from:
            self._dirty_from = index

    # -- the contract --------------------------------------------------------------------------

    def load(self) -> StoredState:
        self._check_open()
        start = max(0, self._snapshot_index() + 1 - self._first)
        return StoredState(
            hard_state=self._hs,
            snapshot=self._snapshot[0] if self._snapshot else None,
            entries=self._entries[start:],
        )

    def append(self, entries: Sequence[Entry]) -> None:
        self._check_open()
        if not entries:
            return
        last = self.last_index
        first = check_append(entries, snapshot_index=self._snapshot_index(), last_index=last)
        if first > last + 1:
            # The log ends before an installed snapshot: all of it is covered; start after it.
            self._entries = []
            self._durable_entries = []
            self._first = first
            self._dirty_from = None
        elif first <= last:
            del self._entries[first - self._first :]
            self._stats["truncations"] += 1
        self._entries.extend(entries)
        self._mark_dirty(first)
        self._stats["appends"] += 1
        self._stats["entries_appended"] += len(entries)
        self._stats["bytes_written"] += sum(len(e.data) for e in entries)

    def set_hard_state(self, hs: HardState) -> None:
        self._check_open()
        if hs != self._hs:
            self._hs = hs
            self._hs_dirty = True

    def sync(self) -> None:
        self._check_open()
        self._stats["syncs"] += 1
        if self._dirty_from is None and not self._hs_dirty:
            return
        self._stats["fsyncs"] += 1
        if self._dirty_from is not None:
            start = self._dirty_from - self._first
            del self._durable_entries[start:]
            self._durable_entries.extend(self._entries[start:])
            self._dirty_from = None
        self._durable_hs = self._hs
        self._hs_dirty = False

    def save_snapshot(self, meta: SnapshotMeta, data: bytes) -> None:
        self._check_open()
        keep = snapshot_keeps_log(meta, self._snapshot[0] if self._snapshot else None, self._term_at)
        self._snapshot = (meta, bytes(data))
        self._stats["snapshots"] += 1
        if not keep and self.last_index > meta.index:
            cut = meta.index + 1 - self._first
            del self._entries[cut:]
            del self._durable_entries[cut:]
            if self._dirty_from is not None and self._dirty_from > meta.index + 1:
                self._dirty_from = meta.index + 1
            self._stats["truncations"] += 1

    def read_snapshot(self) -> tuple[SnapshotMeta, bytes] | None:
        self._check_open()
        return self._snapshot

    def compact(self, index: int) -> None:
        self._check_open()
        covered = self._snapshot_index()
        if index > covered:
            raise ValueError(
                f"cannot compact the log up to index {index}: the saved snapshot covers only up to {covered}"
            )
        if index < self._first:
            return
        drop = index + 1 - self._first
        del self._entries[:drop]
        del self._durable_entries[:drop]
        self._first = index + 1
        if self._dirty_from is not None and self._dirty_from < self._first:
            self._dirty_from = self._first
        self._stats["compactions"] += 1

    def close(self) -> None:
        if not self._closed:
            self.sync()
            self._closed = True

    def stats(self) -> dict:
        return {
            **self._stats,
            "segments": 0,
            "first_index": self._first,
            "last_index": self.last_index,
            "entries": len(self._entries),
        }

    # -- crash model ---------------------------------------------------------------------------

    def crash(self) -> MemoryStorage:
        """A new storage holding what a restart after power loss would find: the state as of the
        last sync, plus the snapshot (durable when saved). This storage is left closed."""
        survivor = MemoryStorage()
        survivor._hs = survivor._durable_hs = self._durable_hs
        survivor._entries = list(self._durable_entries)
        survivor._durable_entries = list(self._durable_entries)
        survivor._first = self._first
        survivor._snapshot = self._snapshot
        self._closed = True
        return survivor
