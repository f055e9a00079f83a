"""What a Raft node keeps across crashes: the contract every storage implements.

A node persists three things (thesis §3.8, §5): its **hard state** (term, vote, and the commit
index as a hint), its **log**, and its latest **snapshot**. The shell writes them while it
processes a ``Ready``, in this order:

1. ``save_snapshot(meta, data)`` if the Ready carries one (durable when it returns);
2. ``set_hard_state(hs)`` and ``append(entries)`` (buffered: not durable yet);
3. ``sync()`` — one fsync covers every append and hard-state change since the previous sync
   (group commit). Only after it returns may votes, append acknowledgements and command results
   leave the node.

``compact(index)`` later frees the log prefix a saved snapshot covers. The methods are
synchronous and may block on the disk: the runtime calls them from a worker thread
(its long-lived disk thread), one call at a time — unless the storage has a class attribute
``needs_thread = False`` (MemoryStorage), in which case it may call them inline.

Two implementations: :class:`~raftnode.storage.memory.MemoryStorage` (tests, examples; it models
what a crash keeps) and :class:`~raftnode.storage.disk.DiskStorage` (the durable default: a
segmented, checksummed, append-only log). The shared rules below (:func:`check_append`,
:func:`snapshot_keeps_log`) make both refuse and accept exactly the same calls.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ..core.messages import Entry, SnapshotMeta
from ..core.ready import HardState

__all__ = [
    "CorruptLogError",
    "DiskFailure",
    "Entry",
    "HardState",
    "LostStateError",
    "SnapshotMeta",
    "Storage",
    "StorageError",
    "StoredState",
    "check_append",
    "check_append_start",
    "gap_error",
    "snapshot_keeps_log",
]


class StorageError(Exception):
    """Storage cannot do what was asked (closed, locked by another process, an I/O error, ...)."""


class CorruptLogError(StorageError):
    """Stored data failed verification somewhere other than a torn tail: it is never served.

    ``path`` is the file and ``offset`` the byte offset of the first bad record in it.
    """

    def __init__(self, path: object, offset: int, reason: str):
        self.path = str(path)
        self.offset = offset
        self.reason = reason
        super().__init__(f"corrupt storage file {self.path} at byte offset {offset}: {reason}. {CORRUPT_WAYS_ON}")


CORRUPT_WAYS_ON = (
    "Nothing of it is served. Two safe ways on: restore the file from a copy of this data directory; "
    "or remove the node from the cluster (raftctl remove-node NODE), empty its data directory and add it "
    "back as a new one (raftctl add-node NODE ...), which copies the committed log from the others"
)
"""What :class:`CorruptLogError` tells the operator to do (the node does not repair itself)."""


class DiskFailure(StorageError):
    """A running node's write or fsync failed: it stopped, and never retries the same data (after
    a failed fsync the page cache may claim a write that never reached the disk — the PostgreSQL
    fsync lesson). Restarting it recovers from what is really on disk."""


class LostStateError(StorageError):
    """The data directory was used by a node but lost what makes restarting it safe.

    Starting it as new would forget its term and vote (it could vote twice in a term) and the
    entries it acknowledged. ``missing`` names what is gone, ``found`` what shows it was used.
    """

    def __init__(self, directory: object, missing: str, found: Sequence[str]):
        self.directory = str(directory)
        self.missing = missing
        self.found = tuple(found)
        super().__init__(
            f"data directory {self.directory} holds {', '.join(self.found)} but no {missing}: this node ran "
            "before and lost its state, and starting it as new could make it vote twice in a term and forget "
            "entries it acknowledged. Two safe ways on: restore the missing files from a copy of this "
            "directory; or remove the node from the cluster (raftctl remove-node NODE), empty this directory "
            "and add the node back as a new one (raftctl add-node NODE ...)"
        )


@dataclass(frozen=True, slots=True)
class StoredState:
    """What ``load()`` finds: the hard state, the latest snapshot, and the log after it.

    ``entries`` are contiguous and start at ``snapshot.index + 1`` (at 1 without a snapshot).
    """

    hard_state: HardState
    snapshot: SnapshotMeta | None
    entries: list[Entry]


@runtime_checkable
class Storage(Protocol):
    """The storage contract. Not thread-safe beyond one call at a time."""

    def load(self) -> StoredState:
        """The durable state to start a node from (plus anything written since, if still open)."""
        ...

    def append(self, entries: Sequence[Entry]) -> None:
        """Write ``entries`` to the log; not durable until ``sync()``.

        If ``entries[0].index`` is at or below the last stored index, the log is first truncated
        from that index (a follower overwriting a conflicting suffix). Raises ValueError if the
        entries are not contiguous with each other or with what remains, or reach into the
        snapshot.
        """
        ...

    def set_hard_state(self, hs: HardState) -> None:
        """Record the hard state; not durable until ``sync()``."""
        ...

    def sync(self) -> None:
        """Make everything written since the previous sync durable, with as few fsyncs as possible."""
        ...

    def save_snapshot(self, meta: SnapshotMeta, data: bytes) -> None:
        """Store a snapshot durably and atomically; it replaces the previous one.

        The log after it is kept only if it extends the snapshot (§5.3, InstallSnapshot rules 6-7):
        if the stored entry at ``meta.index`` has ``meta.term`` (or the index is the current
        snapshot's), the entries after it stay; otherwise every entry after ``meta.index`` is
        discarded. Raises ValueError for a snapshot older than the current one.
        """
        ...

    def read_snapshot(self) -> tuple[SnapshotMeta, bytes] | None:
        """The latest snapshot and its data, or None."""
        ...

    def compact(self, index: int) -> None:
        """Forget the log up to ``index``, which a saved snapshot must cover (else ValueError)."""
        ...

    def close(self) -> None:
        """Make pending writes durable and release the storage. Idempotent."""
        ...

    def stats(self) -> dict:
        """Counters: ``syncs``, ``fsyncs``, ``bytes_written``, ``segments``, ``appends``, ..."""
        ...


def check_append(entries: Sequence[Entry], *, snapshot_index: int, last_index: int) -> int:
    """Validate an append against the stored log; returns the index of its first entry.

    ``last_index`` is the last stored entry's index (the log may end before ``snapshot_index``
    after a snapshot was installed; the next entry then is ``snapshot_index + 1``). Every entry
    after the first is checked to follow its predecessor. Nothing is changed: call it before
    truncating or writing anything.

    Raises:
        ValueError: the entries reach into the snapshot, leave a gap after the log, or are not
            contiguous among themselves.
    """
    first = entries[0].index
    check_append_start(first, snapshot_index=snapshot_index, last_index=last_index)
    expected = first
    for entry in entries:
        if entry.index != expected:
            raise gap_error(entry.index, expected)
        expected += 1
    return first


def check_append_start(first: int, *, snapshot_index: int, last_index: int) -> None:
    """The part of :func:`check_append` about where the entries start (for implementations that
    check each entry's index themselves while encoding, raising :func:`gap_error`)."""
    if first <= snapshot_index:
        raise ValueError(
            f"cannot write entry {first}: the log up to index {snapshot_index} is covered by the snapshot"
        )
    next_index = max(last_index, snapshot_index) + 1
    if first > next_index:
        raise ValueError(
            f"non-contiguous append: entries start at index {first} but the log ends at "
            f"{next_index - 1}, so the next entry must have index {next_index} or lower"
        )


def gap_error(index: int, expected: int) -> ValueError:
    """The error for an entry whose index does not follow its predecessor's."""
    return ValueError(
        f"non-contiguous append: entry index {index} where {expected} was expected "
        f"(entries must have consecutive indexes)"
    )


def snapshot_keeps_log(
    meta: SnapshotMeta, current: SnapshotMeta | None, term_at: Callable[[int], int | None]
) -> bool:
    """Whether the stored log after ``meta.index`` extends the snapshot (and so is kept).

    ``term_at(index)`` is the term of the stored entry at ``index``, or None if it is not stored.

    Raises:
        ValueError: ``meta`` is older than the ``current`` snapshot.
    """
    if current is not None and meta.index < current.index:
        raise ValueError(f"snapshot at index {meta.index} is older than the stored one at {current.index}")
    if current is not None and meta.index == current.index and meta.term == current.term:
        return True
    return term_at(meta.index) == meta.term
