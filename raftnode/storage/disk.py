"""The durable default: a segmented, checksummed, append-only log on local disk.

Chosen over SQLite (WAL, synchronous=FULL) by measurement (``benchmarks/storage.py``, run on the
same disk): both make exactly one fsync per sync, so at batch size 1 both run at the disk's fsync
rate; at batch 1,024 SQLite's per-row cost is the limit (100-255k entries/s on disk, at most
475k/s even on tmpfs), while this log spends about 0.5 us of CPU per entry (1.2-1.7M entries/s on
tmpfs) and runs at whatever the disk allows (140-570k entries/s on a shared virtual disk). It also
keeps the recovery rules (torn tail or corruption, with file and offset) in our hands.

Files in the data directory
---------------------------
``log-<first index, 20 digits>.seg``
    Log segments, in index order. A segment starts with a hard-state record, then holds entries
    ``first, first+1, ...``, with more hard-state records interleaved. A new segment is started
    once the active one reaches ``segment_bytes`` (4 MiB by default).
``hardstate``
    One hard-state record, written atomically only when a truncation (or a log reset after an
    installed snapshot) would otherwise cut the newest hard-state record out of the log.
``snapshot``
    The latest snapshot: ``"RAFTSNP1"``, u32 meta length, u64 data length, the metadata as JSON,
    the data, and a CRC-32 of everything before it. Written to ``snapshot.tmp``, fsynced, renamed,
    and the directory fsynced, so it is either the old one or the new one.
``LOCK``
    Held with ``flock`` while open, so two processes never share a directory. Once the first
    segment is durable it holds a line saying the directory is in use: a directory whose LOCK
    says so (or that holds a snapshot or a hardstate file) but has no segment, or whose log
    holds entries but no hard-state record, lost its state — :class:`LostStateError` refuses it,
    naming what is missing and the safe ways on. An empty or new directory starts fresh.

Records
-------
``[u32 length][u32 checksum][payload]``, little-endian, where ``checksum`` is the CRC-32 of the
length field followed by the payload, and ``payload = term u64, index u64, kind u8, data``. An
entry record's kind is its :class:`EntryKind`; a hard-state record has kind 255, ``index`` is a
sequence number (the highest one found at recovery wins), and ``data = commit u64, has_vote u8,
vote (UTF-8)``. Keeping the hard state in the log means one fsync makes both durable.

The checksum is CRC-32 (``zlib.crc32``), not CRC32C: the standard library has no CRC32C, and a
pure-Python one costs microseconds per record. CRC-32 is computed in C, avoids a native
dependency, and detects torn and corrupt records the same way (every burst error up to 32 bits,
and all but about one in 2^32 of other damage).

Durability and recovery
-----------------------
``set_hard_state`` only buffers its record; ``append`` makes one ``os.write`` per call (that
record, if any, and every entry record joined); ``sync`` writes a still-buffered hard state and
does one ``fdatasync`` of the active segment — group commit. Everything else that must
not be reordered by a crash is fsynced where it happens (rare events): starting a segment
(the old segment, the new one and the directory), a truncation (the cut segment and the
directory), a snapshot, the hardstate file, compaction (the directory).

On open, segments are read in order and every record verified. A record is torn — a crash cut
the write that made it — only if it is in the last segment, nothing valid follows it, and it runs
past the end of the file or the file is zeros from inside it to the end: it is cut off (and the cut
fsynced) and the log ends at the record before it. Any other bad record — a full-length record
with a bad checksum (even the last one: the node may have acknowledged it), one in an earlier
segment, one followed by a valid record — is corruption: :class:`CorruptLogError` names the file
and byte offset and the safe ways on, and nothing is served. A gap between indexes (inside a segment, between segments, or
between the snapshot and the log) is corruption too. (A file system that can persist a later page
of an unsynced write without an earlier one would turn such a crash into a refusal to start: the
safe direction. ext4 in its default data=ordered mode does not.)
"""

from __future__ import annotations

import errno
import os
import shutil
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Self

from . import (
    Entry,
    HardState,
    SnapshotMeta,
    StorageError,
    StoredState,
    check_append_start,
    snapshot_keeps_log,
)
from .records import _encode_entries, _encode_snapshot, _hs_record, _parse_snapshot
from .recovery import _Recovery
from .segments import MARK_EVERY, _Segment, _SegmentFiles, segment_name

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

__all__ = ["DEFAULT_SEGMENT_BYTES", "DiskStorage", "segment_name"]

# Small enough that compaction frees the log behind a snapshot soon (a restart reads every
# record of the segments it keeps), large enough that rotation (three fsyncs) is rare.
DEFAULT_SEGMENT_BYTES = 4 * 1024 * 1024

RECOVER_FREE_BYTES = 1 << 20  # recover() after a full disk waits for at least this much room


# What makes a segment's data durable here, chosen once (it runs with nearly every Ready); the
# os function is still looked up at each call.
if hasattr(fcntl, "F_FULLFSYNC"):  # pragma: no cover - macOS: fsync alone is not a barrier

    def _fsync_data(fd: int) -> None:
        fcntl.fcntl(fd, fcntl.F_FULLFSYNC)

elif hasattr(os, "fdatasync"):

    def _fsync_data(fd: int) -> None:
        os.fdatasync(fd)

else:  # pragma: no cover

    def _fsync_data(fd: int) -> None:
        os.fsync(fd)


class DiskStorage(_SegmentFiles, _Recovery):
    """The durable :class:`~raftnode.storage.Storage`: opening ``directory`` recovers it.

    Args:
        directory: the node's storage directory (created if missing).
        segment_bytes: start a new segment once the active one reaches this size.
        fsync: False skips the fsyncs that make writes durable (``cluster.fsync = false``):
            UNSAFE, for benchmarks and tests only -- what a crash loses may have been acknowledged.

    Raises:
        CorruptLogError: a stored file failed verification other than as a torn tail.
        StorageError: the directory is held by another open DiskStorage, or cannot be used.

    Thread-safe in the sense that calls are serialized by a lock; the runtime makes them from a
    worker thread. After an I/O error (a failed write or fsync leaves the on-disk state unknown)
    every call raises StorageError: reopen the storage to recover from what is on disk.

    Its parts: the contract and the hard state here; the segment files and the log's index in
    ``raftnode.storage.segments`` and opening and recovery in ``raftnode.storage.recovery``
    (both mixed in, over the state set up here); the byte formats in ``raftnode.storage.records``.
    """

    needs_thread = True  # calls block on the disk: the runtime runs them in a worker thread

    def __init__(self, directory: str | os.PathLike, *, segment_bytes: int = DEFAULT_SEGMENT_BYTES, fsync: bool = True):
        if segment_bytes < 1:
            raise ValueError("segment_bytes must be positive")
        self.fsync = fsync
        self.directory = Path(directory)
        self.segment_bytes = segment_bytes
        self._lock = threading.Lock()
        self._segments: list[_Segment] = []
        self._fd: int | None = None  # the active (last) segment, opened for appending
        self._dirfd: int | None = None
        self._lockfd: int | None = None
        self._hs = HardState()
        self._hs_seq = 0  # the sequence number of the newest hard-state record written
        self._hs_loc: tuple[int, int] | None = None  # (segment first, offset) of the newest in-log one
        self._pending_hs = b""  # a hard-state record not yet written
        self._dirty = False  # the active segment has writes not yet fsynced
        self._synced: tuple[int, int] | None = None  # (first, size) of the active segment at its last fsync
        self._snapshot: SnapshotMeta | None = None
        self._compacted_to = 0  # the highest index compact() was called with (counting only)
        self._cache: list[Entry] | None = None  # entries read at recovery, until first used
        self._failed: BaseException | None = None
        self._closed = False
        self._stats = {
            "syncs": 0,
            "fsyncs": 0,
            "fsyncs_skipped": 0,  # fsync = false (unsafe)
            "appends": 0,
            "entries_appended": 0,
            "bytes_written": 0,
            "truncations": 0,
            "segments_created": 0,
            "segments_deleted": 0,
            "snapshots": 0,
            "compactions": 0,
            "torn_bytes_dropped": 0,
        }
        try:
            self._open()
        except BaseException:
            self._release()
            raise

    # -- low-level helpers ---------------------------------------------------------------------

    def _fsync(self, fd: int, sync: Callable[[int], None] | None = None) -> None:
        """``sync(fd)`` (default ``_fsync_data``) and count it; only counted as skipped with ``fsync=False``."""
        if not self.fsync:
            self._stats["fsyncs_skipped"] += 1
            return
        (sync or _fsync_data)(fd)
        self._stats["fsyncs"] += 1

    def _fsync_dir(self) -> None:
        assert self._dirfd is not None
        self._fsync(self._dirfd, os.fsync)

    def _hs_record(self, hs: HardState) -> bytes:
        self._hs_seq += 1
        return _hs_record(hs, self._hs_seq)

    def _check_usable(self) -> None:
        if self._closed:
            raise StorageError(f"storage {self.directory} is closed")
        if self._failed is not None:
            raise StorageError(
                f"storage {self.directory} failed earlier ({self._failed}); reopen it to recover"
            )

    def _fail(self, err: OSError) -> StorageError:
        """Poison the storage after an I/O error: what reached the disk is unknown."""
        self._failed = err
        return StorageError(f"I/O error on storage {self.directory}: {err}; reopen it to recover")

    def _last_index(self) -> int:
        return self._segments[-1].last

    def _snapshot_index(self) -> int:
        return self._snapshot.index if self._snapshot else 0

    # -- the contract --------------------------------------------------------------------------

    def load(self) -> StoredState:
        with self._lock:
            self._check_usable()
            if self._cache is not None:
                entries, self._cache = self._cache, None
            else:
                entries = self._read_entries(self._snapshot_index() + 1)
            return StoredState(hard_state=self._hs, snapshot=self._snapshot, entries=entries)

    def append(self, entries: Sequence[Entry]) -> None:
        with self._lock:
            if self._closed or self._failed is not None:  # the check, inline on the hot path
                self._check_usable()
            if not entries:
                return
            last = self._segments[-1].last
            first = entries[0].index
            check_append_start(first, snapshot_index=self._snapshot_index(), last_index=last)
            out = [b""]  # the slot for a pending hard-state record
            _encode_entries(entries, out)  # raises on a gap, before anything changes
            self._cache = None
            try:
                if first > last + 1:
                    self._reset_log(first)
                elif first <= last:
                    self._truncate(first)
                seg = self._segments[-1]
                if seg.size >= self.segment_bytes and seg.last >= seg.first:
                    self._rotate(first)
                    seg = self._segments[-1]
                prefix = out[0] = self._pending_hs
                if prefix:
                    self._hs_loc = (seg.first, seg.size)
                    self._pending_hs = b""
                base = seg.size + len(prefix)
                self._write(b"".join(out))
                if not seg.marks or first - seg.marks[-1] >= MARK_EVERY:
                    seg.mark(first, base)
                seg.last = entries[-1].index
            except OSError as e:
                raise self._fail(e) from e
            self._stats["appends"] += 1
            self._stats["entries_appended"] += len(entries)

    def set_hard_state(self, hs: HardState) -> None:
        with self._lock:
            if self._closed or self._failed is not None:  # the check, inline on the hot path
                self._check_usable()
            if hs != self._hs:
                self._hs = hs
                self._pending_hs = self._hs_record(hs)  # replaces an older unwritten one

    def sync(self) -> None:
        with self._lock:
            if self._closed or self._failed is not None:  # the check, inline on the hot path
                self._check_usable()
            self._sync()

    def _sync(self) -> None:
        try:
            if self._pending_hs:
                seg = self._segments[-1]
                self._hs_loc = (seg.first, seg.size)
                pending, self._pending_hs = self._pending_hs, b""
                self._write(pending)
            if self._dirty:
                assert self._fd is not None
                self._fsync(self._fd)
                self._dirty = False
                self._synced = (self._segments[-1].first, self._segments[-1].size)
        except OSError as e:
            raise self._fail(e) from e
        self._stats["syncs"] += 1

    def save_snapshot(self, meta: SnapshotMeta, data: bytes) -> None:
        with self._lock:
            self._check_usable()
            try:
                keep = snapshot_keeps_log(meta, self._snapshot, self._term_at)
                self._atomic_write("snapshot", _encode_snapshot(meta, data))
                self._snapshot = meta
                self._cache = None
                self._stats["snapshots"] += 1
                if not keep:
                    # Drop the log after the snapshot, and the stored entry at its index too
                    # (its term differs): recovery takes a mismatch there as a crash before
                    # this point and drops the log after the snapshot again.
                    if self._term_at(meta.index) is not None:
                        self._truncate(meta.index)
                    elif self._last_index() > meta.index:
                        self._truncate(meta.index + 1)
            except OSError as e:
                raise self._fail(e) from e

    def read_snapshot(self) -> tuple[SnapshotMeta, bytes] | None:
        with self._lock:
            self._check_usable()
            if self._snapshot is None:
                return None
            path = self.directory / "snapshot"
            meta, data = _parse_snapshot(path.read_bytes(), path)
            return meta, bytes(data)

    def compact(self, index: int) -> None:
        with self._lock:
            self._check_usable()
            covered = self._snapshot_index()
            if index > covered:
                raise ValueError(
                    f"cannot compact the log up to index {index}: the saved snapshot covers only up to {covered}"
                )
            if index > self._compacted_to:
                self._compacted_to = index
                self._stats["compactions"] += 1
            # A segment is covered when the next one starts at or before index + 1. The last
            # (active) segment always stays: it holds the newest hard state.
            doomed = 0
            while doomed < len(self._segments) - 1 and self._segments[doomed + 1].first <= index + 1:
                doomed += 1
            if not doomed:
                return
            try:
                for seg in self._segments[:doomed]:  # oldest first: a crash leaves a suffix
                    os.unlink(seg.path)
                    self._stats["segments_deleted"] += 1
                del self._segments[:doomed]
                self._fsync_dir()
            except OSError as e:
                raise self._fail(e) from e

    def recover(self) -> None:
        """After a failed write or fsync, start over from what is surely on disk: cut the active
        segment back to its size at the last successful fsync (what came after may sit in the
        page cache without being on disk, so it is not trusted, only written again) and reopen.

        Raises StorageError if the failure is not one of the active segment's appends or syncs
        (then the node must stop), or OSError if the disk still refuses.
        """
        with self._lock:
            if self._failed is None or self._closed:
                return
            if shutil.disk_usage(self.directory).free < RECOVER_FREE_BYTES:
                raise OSError(errno.ENOSPC, f"still less than {RECOVER_FREE_BYTES} bytes free", str(self.directory))
            synced = self._synced
            if synced is None or not self._segments or self._segments[-1].first != synced[0]:
                raise StorageError(f"storage {self.directory} cannot recover in place: restart the node")
            path = self._segments[-1].path
            self._release()
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.ftruncate(fd, synced[1])
            _fsync_data(fd)
        finally:
            os.close(fd)
        stats = self._stats
        self.__init__(self.directory, segment_bytes=self.segment_bytes)  # type: ignore[misc]
        self._stats = {k: stats[k] + v for k, v in self._stats.items()}

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            try:
                if self._failed is None:
                    self._sync()
            finally:
                self._closed = True
                self._release()

    def stats(self) -> dict:
        with self._lock:
            segs = self._segments
            return {
                **self._stats,
                "segments": len(segs),
                "first_index": segs[0].first if segs else 0,
                "last_index": self._last_index() if segs else 0,
                "log_bytes": sum(s.size for s in segs),
            }

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"DiskStorage({str(self.directory)!r})"
