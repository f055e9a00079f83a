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
import gc
import json
import os
import re
import shutil
import struct
import threading
import zlib
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from ..core.messages import EntryKind
from ..core.quorum import Configuration
from . import (
    CorruptLogError,
    Entry,
    HardState,
    LostStateError,
    SnapshotMeta,
    StorageError,
    StoredState,
    check_append_start,
    gap_error,
    snapshot_keeps_log,
)

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

__all__ = ["DEFAULT_SEGMENT_BYTES", "DiskStorage"]

# Small enough that compaction frees the log behind a snapshot soon (a restart reads every
# record of the segments it keeps), large enough that rotation (three fsyncs) is rare.
DEFAULT_SEGMENT_BYTES = 4 * 1024 * 1024

_FRAME = struct.Struct("<II")  # length, checksum
_HEAD = struct.Struct("<IQQB")  # length + payload head: the first bytes the checksum covers
_RECORD = struct.Struct("<IIQQB")  # the whole 25-byte record header
_PAYLOAD_HEAD = struct.Struct("<QQB")  # term, index, kind
_U64 = struct.Struct("<Q")
_HS_DATA = struct.Struct("<QB")  # commit, has_vote
_SNAP_HEAD = struct.Struct("<8sIQ")  # magic, meta length, data length
_U32 = struct.Struct("<I")

HEADER_SIZE = _RECORD.size  # 25
MIN_PAYLOAD = _PAYLOAD_HEAD.size  # 17
HS_KIND = 0xFF
SNAPSHOT_MAGIC = b"RAFTSNP1"
LOCK_MARK = b"raftnode data directory: in use by a node; do not delete its log-*.seg files\n"
SEGMENT_RE = re.compile(r"^log-(\d{20})\.seg$")
_KINDS = {k.value: k for k in EntryKind}
_INDEX_AT = 16  # where a record's index field sits, from the record's start
RECOVER_FREE_BYTES = 1 << 20  # recover() after a full disk waits for at least this much room
MARK_EVERY = 64  # the in-memory index knows the offset of at least every 64th entry


def segment_name(first: int) -> str:
    return f"log-{first:020d}.seg"


class _Segment:
    """One segment file holding entries ``first .. last`` (``last = first - 1``: none yet).

    The in-memory index is sparse: ``marks[k]`` is an entry index whose record starts at byte
    ``mark_offsets[k]``; there is one at the segment's first entry, at the first entry of every
    append that starts 64 or more entries after the previous mark, and every 64 entries in what
    recovery read. Finding any entry walks at most one append's (or 64 entries') records from
    the nearest mark, which keeps truncation cheap while costing nothing per entry on the hot path.
    """

    __slots__ = ("first", "last", "mark_offsets", "marks", "path", "size")

    def __init__(self, first: int, path: Path, size: int = 0):
        self.first = first
        self.last = first - 1
        self.path = path
        self.size = size
        self.marks = array("Q")
        self.mark_offsets = array("Q")

    def mark(self, index: int, offset: int) -> None:
        self.marks.append(index)
        self.mark_offsets.append(offset)

    def offset_of(self, index: int) -> int:
        """The byte offset of entry ``index``'s record (``first <= index <= last``)."""
        k = bisect_right(self.marks, index) - 1
        at, pos = self.marks[k], self.mark_offsets[k]
        if at == index:
            return pos
        end = self.mark_offsets[k + 1] if k + 1 < len(self.marks) else self.size
        with open(self.path, "rb") as f:
            buf = os.pread(f.fileno(), end - pos, pos)
        p = 0
        while p + HEADER_SIZE <= len(buf):
            length, _, _, _, kind = _RECORD.unpack_from(buf, p)
            if kind != HS_KIND:
                if at == index:
                    return pos + p
                at += 1
            p += 8 + length
        raise StorageError(f"{self.path}: entry {index} not found where the index says it is")

    def forget_from(self, index: int) -> None:
        """Drop the marks of entries ``index`` and later (they were truncated)."""
        k = bisect_left(self.marks, index)
        del self.marks[k:]
        del self.mark_offsets[k:]
        self.last = index - 1


def _encode_entries(entries: Sequence[Entry], out: list) -> None:
    """Frame ``entries`` into ``out`` (chunks to join), checking that their indexes are consecutive.

    The hot path: two struct packs and two C-level crc32 calls per entry, no slicing, no copies.

    Raises:
        ValueError: an entry's index does not follow its predecessor's.
    """
    crc32 = zlib.crc32
    head = _HEAD.pack
    record = _RECORD.pack
    add = out.append
    expected = entries[0].index
    for term, index, data, kind in entries:
        if index != expected:
            raise gap_error(index, expected)
        expected += 1
        n = MIN_PAYLOAD + len(data)
        add(record(n, crc32(data, crc32(head(n, term, index, kind))), term, index, kind))
        add(data)


def _frame(term: int, index: int, kind: int, data: bytes) -> bytes:
    n = MIN_PAYLOAD + len(data)
    crc = zlib.crc32(data, zlib.crc32(_HEAD.pack(n, term, index, kind)))
    return _RECORD.pack(n, crc, term, index, kind) + data


def _hs_data(hs: HardState) -> bytes:
    vote = hs.vote
    return _HS_DATA.pack(hs.commit, vote is not None) + (vote.encode() if vote is not None else b"")


def _decode_hs(term: int, data: bytes) -> HardState:
    """The hard state in a record's data; ValueError if malformed."""
    if len(data) < _HS_DATA.size:
        raise ValueError("hard-state record too short")
    commit, has_vote = _HS_DATA.unpack_from(data)
    rest = data[_HS_DATA.size :]
    if has_vote not in (0, 1) or (not has_vote and rest):
        raise ValueError("malformed hard-state record")
    return HardState(term=term, vote=rest.decode() if has_vote else None, commit=commit)


def _frame_ok(buf: bytes, start: int) -> bool:
    """Whether a complete record with a valid checksum starts at ``start``."""
    n = len(buf)
    if start < 0 or n - start < HEADER_SIZE:
        return False
    length, crc = _FRAME.unpack_from(buf, start)
    end = start + 8 + length
    if length < MIN_PAYLOAD or end > n:
        return False
    mv = memoryview(buf)
    return zlib.crc32(mv[start + 8 : end], zlib.crc32(mv[start : start + 4])) == crc


_NOT_TORN = (
    "corruption, not a torn write (a crash cuts a record short or leaves zeros after it; this one is whole), "
    "and the node may have acknowledged it, so it is not dropped"
)


def _could_be_torn(buf: bytes, start: int, end: int) -> bool:
    """Whether a bad record at ``start`` (claiming to end at ``end``) can be a crash mid-write.

    Yes if it (or its header alone) runs past the end of the file, or if the file is zeros from
    inside it to the end — from its very start, or on past where it claims to end, or from a
    512-byte boundary (a sector never written). A whole record with a bad checksum is not.
    """
    n = len(buf)
    if end > n or n - start < HEADER_SIZE:
        return True
    zeros_from = len(buf.rstrip(b"\0"))  # where the zeros that end the file begin
    if zeros_from <= start:
        return True
    return zeros_from < end and (end < n or zeros_from % 512 == 0)


def _fsync_data(fd: int) -> None:
    if hasattr(fcntl, "F_FULLFSYNC"):  # pragma: no cover - macOS: fsync alone is not a barrier
        fcntl.fcntl(fd, fcntl.F_FULLFSYNC)
    elif hasattr(os, "fdatasync"):
        os.fdatasync(fd)
    else:  # pragma: no cover
        os.fsync(fd)


def _short_record_problem(buf: bytes, pos: int, n: int) -> tuple[str, int]:
    """What is wrong with a record that starts less than a header's length before ``n``, and
    where it says it ends."""
    if n - pos < 8:
        return "incomplete record header", n
    length = _FRAME.unpack_from(buf, pos)[0]
    end = pos + 8 + length
    return ("incomplete record" if end > n else f"impossible record length {length}"), end


@dataclass(slots=True)
class _Recovered:
    """What reading the segments found so far: the newest hard state and the entries after the snapshot."""

    snap_index: int
    best_seq: int  # the sequence number of the newest hard state (0: none)
    best_hs: HardState
    best_loc: tuple[int, int] | None = None  # (segment, offset) of the newest hard-state record in the log
    log_seq: int = 0  # the highest sequence number seen in the log so far
    cache: list[Entry] = field(default_factory=list)
    term_at_snap: int | None = None  # the term of the log's entry at the snapshot's index, if any

    def hard_state(self, path: Path, pos: int, segment: int, term: int, seq: int, data: bytes) -> None:
        try:
            hs = _decode_hs(term, data)
        except (ValueError, UnicodeDecodeError) as e:
            raise CorruptLogError(path, pos, str(e)) from None
        self.log_seq = max(self.log_seq, seq)
        if seq > self.best_seq:
            self.best_seq, self.best_hs, self.best_loc = seq, hs, (segment, pos)


class DiskStorage:
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

    def _write(self, data: bytes) -> None:
        """Append ``data`` to the active segment (one write call unless the kernel splits it)."""
        assert self._fd is not None
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self._segments[-1].size += len(data)
        self._dirty = True
        self._stats["bytes_written"] += len(data)

    def _hs_record(self, hs: HardState) -> bytes:
        self._hs_seq += 1
        return _frame(hs.term, self._hs_seq, HS_KIND, _hs_data(hs))

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

    def _locate(self, index: int) -> tuple[int, _Segment]:
        """The position in ``_segments`` of the segment holding stored entry ``index``, and it."""
        k = bisect_right([s.first for s in self._segments], index) - 1
        seg = self._segments[k]
        assert k >= 0 and seg.first <= index <= seg.last, (index, k)
        return k, seg

    def _term_at(self, index: int) -> int | None:
        if not self._segments or index < self._segments[0].first or index > self._last_index():
            return None
        _, seg = self._locate(index)
        with open(seg.path, "rb") as f:
            head = os.pread(f.fileno(), HEADER_SIZE, seg.offset_of(index))
        _, _, term, _, _ = _RECORD.unpack(head)
        return term

    def _atomic_write(self, name: str, chunks: Sequence[bytes]) -> None:
        """Write a whole file atomically: temp file, fsync, rename, fsync of the directory."""
        tmp = self.directory / (name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            for chunk in chunks:
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
            self._fsync(fd, os.fsync)
        finally:
            os.close(fd)
        os.replace(tmp, self.directory / name)
        self._fsync_dir()

    def _write_hs_file(self) -> None:
        """Make the current hard state durable outside the log (before cutting the log)."""
        self._atomic_write("hardstate", [self._hs_record(self._hs)])
        self._hs_loc = None
        self._pending_hs = b""

    def _new_segment(self, first: int) -> None:
        """Start segment ``first`` with the current hard state, durably, and make it active."""
        path = self.directory / segment_name(first)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o644)
        if self._fd is not None:
            os.close(self._fd)
        self._fd = fd
        self._segments.append(_Segment(first, path))
        self._stats["segments_created"] += 1
        self._pending_hs = b""
        self._hs_loc = (first, 0)
        self._write(self._hs_record(self._hs))
        self._fsync(fd)
        self._fsync_dir()
        self._dirty = False
        self._synced = (self._segments[-1].first, self._segments[-1].size)

    def _rotate(self, first: int) -> None:
        # The old segment must be complete on disk before a newer one exists: recovery treats a
        # bad record in any segment but the last as corruption.
        if self._dirty:
            assert self._fd is not None
            self._fsync(self._fd)
        self._new_segment(first)

    def _truncate(self, index: int) -> None:
        """Cut the log from ``index`` (a stored entry) on, durably."""
        k, seg = self._locate(index)
        offset = seg.offset_of(index)
        rewrite_hs = self._hs_loc is not None and self._hs_loc >= (seg.first, offset)
        if rewrite_hs:
            self._write_hs_file()  # the newest hard state would be cut away: keep it outside
        if k < len(self._segments) - 1:
            # Newest first, so a crash part-way leaves a contiguous log.
            assert self._fd is not None
            os.close(self._fd)
            self._fd = None
            for later in reversed(self._segments[k + 1 :]):
                os.unlink(later.path)
                self._stats["segments_deleted"] += 1
            del self._segments[k + 1 :]
            self._fsync_dir()
            self._fd = os.open(seg.path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        assert self._fd is not None
        os.ftruncate(self._fd, offset)
        self._fsync(self._fd)  # the cut is durable before anything is written after it
        seg.forget_from(index)
        seg.size = offset
        self._dirty = False
        self._synced = (self._segments[-1].first, self._segments[-1].size)
        self._stats["truncations"] += 1
        if rewrite_hs and not self._pending_hs:
            # ... and back in the log with the next write, so the log alone holds it again.
            self._pending_hs = self._hs_record(self._hs)

    def _reset_log(self, first: int) -> None:
        """The log ends before an installed snapshot: drop it all and start over at ``first``."""
        self._write_hs_file()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        for seg in reversed(self._segments):
            os.unlink(seg.path)
            self._stats["segments_deleted"] += 1
        self._segments.clear()
        self._fsync_dir()
        self._new_segment(first)

    # -- opening and recovery ------------------------------------------------------------------

    def _open(self) -> None:
        created = not self.directory.exists()
        self.directory.mkdir(parents=True, exist_ok=True)
        self._dirfd = os.open(self.directory, os.O_RDONLY | os.O_CLOEXEC)
        if created:
            parent = os.open(self.directory.resolve().parent, os.O_RDONLY | os.O_CLOEXEC)
            try:
                os.fsync(parent)
            finally:
                os.close(parent)
        self._lockfd = os.open(self.directory / "LOCK", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        if fcntl is not None:
            try:
                fcntl.flock(self._lockfd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise StorageError(
                    f"storage {self.directory} is in use: another DiskStorage holds it open (in another "
                    f"process, or in this one and not closed yet)"
                ) from None
        for leftover in self.directory.glob("*.tmp"):
            leftover.unlink()  # an interrupted atomic write: the real file is intact
        self._refuse_if_log_lost()

        snap_path = self.directory / "snapshot"
        if snap_path.exists():
            self._snapshot, _ = self._parse_snapshot(snap_path.read_bytes(), snap_path)
        file_hs = self._read_hs_file()
        gc_was_enabled = gc.isenabled()
        gc.disable()  # recovery allocates one Entry per record and no cycles: skip the collector
        try:
            self._recover_segments(file_hs)
        finally:
            if gc_was_enabled:
                gc.enable()

    def _refuse_if_log_lost(self) -> None:
        """A directory a node used (LOCK marked, a snapshot, a hardstate file) must still hold a log."""
        if any(SEGMENT_RE.match(p.name) for p in self.directory.iterdir()):
            return
        assert self._lockfd is not None
        found = [name for name, used in (
            ("a LOCK file marked in use", os.fstat(self._lockfd).st_size > 0),
            ("a snapshot", (self.directory / "snapshot").exists()),
            ("a hardstate file", (self.directory / "hardstate").exists()),
        ) if used]
        if found:
            raise LostStateError(self.directory, "log (log-*.seg files, which hold its entries, term and vote)", found)

    def _mark_in_use(self) -> None:
        """Say in LOCK that this directory holds a node's state (once its first segment is durable)."""
        assert self._lockfd is not None
        if os.fstat(self._lockfd).st_size == 0:
            os.pwrite(self._lockfd, LOCK_MARK, 0)
            os.fsync(self._lockfd)

    def _parse_snapshot(self, buf: bytes, path: Path) -> tuple[SnapshotMeta, memoryview]:
        if len(buf) < _SNAP_HEAD.size + 4:
            raise CorruptLogError(path, 0, f"snapshot file too short ({len(buf)} bytes)")
        magic, meta_len, data_len = _SNAP_HEAD.unpack_from(buf)
        if magic != SNAPSHOT_MAGIC:
            raise CorruptLogError(path, 0, "not a snapshot file (bad magic)")
        body_end = _SNAP_HEAD.size + meta_len + data_len
        if body_end + 4 != len(buf):
            raise CorruptLogError(path, 8, f"snapshot lengths ({meta_len}, {data_len}) do not match the file size {len(buf)}")
        mv = memoryview(buf)
        (crc,) = _U32.unpack_from(buf, body_end)
        if zlib.crc32(mv[:body_end]) != crc:
            raise CorruptLogError(path, body_end, "snapshot checksum mismatch")
        try:
            raw = json.loads(bytes(mv[_SNAP_HEAD.size : _SNAP_HEAD.size + meta_len]))
            configuration = raw.get("configuration")
            meta = SnapshotMeta(
                int(raw["index"]), int(raw["term"]),
                Configuration.decode(configuration.encode()) if configuration else None,
            )
        except (ValueError, KeyError, TypeError) as e:
            raise CorruptLogError(path, _SNAP_HEAD.size, f"bad snapshot metadata: {e}") from None
        return meta, mv[_SNAP_HEAD.size + meta_len : body_end]

    def _read_hs_file(self) -> tuple[int, HardState] | None:
        path = self.directory / "hardstate"
        if not path.exists():
            return None
        buf = path.read_bytes()
        if not _frame_ok(buf, 0) or _FRAME.unpack_from(buf)[0] + 8 != len(buf):
            raise CorruptLogError(path, 0, "hard-state record fails verification")
        term, seq, kind = _PAYLOAD_HEAD.unpack_from(buf, 8)
        if kind != HS_KIND:
            raise CorruptLogError(path, 0, f"not a hard-state record (kind {kind})")
        try:
            return seq, _decode_hs(term, buf[HEADER_SIZE:])
        except (ValueError, UnicodeDecodeError) as e:
            raise CorruptLogError(path, 0, str(e)) from None

    def _recover_segments(self, file_hs: tuple[int, HardState] | None) -> None:
        """Read every segment in order, verifying each record; adopt what they hold."""
        named: list[tuple[int, Path]] = []
        for path in self.directory.iterdir():
            m = SEGMENT_RE.match(path.name)
            if m:
                named.append((int(m.group(1)), path))
        named.sort()
        best_seq, best_hs = file_hs if file_hs else (0, HardState())
        found = _Recovered(snap_index=self._snapshot_index(), best_seq=best_seq, best_hs=best_hs)
        prev_last: int | None = None
        for i, (first, path) in enumerate(named):
            self._check_segment_start(path, first, prev_last, found.snap_index)
            seg = self._scan_segment(path, first, is_last=i == len(named) - 1, found=found)
            self._segments.append(seg)
            prev_last = seg.last
        self._adopt(found)

    def _check_segment_start(self, path: Path, first: int, prev_last: int | None, snap_index: int) -> None:
        """A segment must start right after the previous one (the first, right after the snapshot)."""
        if first < 1:
            raise CorruptLogError(path, 0, "segment named with index 0")
        if prev_last is None:
            if first > snap_index + 1:
                covered = f"the snapshot covers only up to {snap_index}" if self._snapshot else "there is no snapshot"
                raise CorruptLogError(
                    path, 0, f"the log starts at index {first} but {covered}: entries {snap_index + 1}..{first - 1} are missing"
                )
        elif first != prev_last + 1:
            raise CorruptLogError(
                path, 0, f"segment starts at index {first} but the previous segment ends at {prev_last} (a gap)"
            )

    def _scan_segment(self, path: Path, first: int, *, is_last: bool, found: _Recovered) -> _Segment:
        """Verify one segment's records, collecting its entries and hard states into ``found``;
        a torn tail of the last segment is cut off."""
        buf = path.read_bytes()
        mv = memoryview(buf)
        n = len(buf)
        seg = _Segment(first, path)
        add_entry = found.cache.append
        snap_index = found.snap_index
        expected = first
        pos = 0
        crc32 = zlib.crc32
        unpack_record = _RECORD.unpack_from
        kinds = _KINDS
        while pos < n:
            problem = None
            if n - pos < HEADER_SIZE:
                problem, end = _short_record_problem(buf, pos, n)
            else:
                length, crc, term, index, kind = unpack_record(buf, pos)
                end = pos + 8 + length
                if length < MIN_PAYLOAD:
                    problem = f"impossible record length {length}"
                elif end > n:
                    problem = f"record of {length} bytes runs past the end of the file"
                elif crc32(mv[pos + 8 : end], crc32(mv[pos : pos + 4])) != crc:
                    problem = "checksum mismatch"
            if problem is not None:
                n = self._cut_torn_tail(path, buf, pos, end, problem, is_last=is_last, expected=expected, found=found)
                break
            if kind == HS_KIND:
                found.hard_state(path, pos, first, term, index, buf[pos + HEADER_SIZE : end])
            else:
                if index != expected:
                    raise CorruptLogError(path, pos, f"entry index {index} where {expected} was expected (a gap or reordering)")
                entry_kind = kinds.get(kind)
                if entry_kind is None:
                    raise CorruptLogError(path, pos, f"unknown entry kind {kind}")
                if not (index - first) % MARK_EVERY:
                    seg.mark(index, pos)
                if index > snap_index:
                    add_entry(Entry(term, index, buf[pos + HEADER_SIZE : end], entry_kind))
                elif index == snap_index:
                    found.term_at_snap = term
                expected += 1
            pos = end
        seg.size, seg.last = n, expected - 1
        return seg

    def _cut_torn_tail(
        self, path: Path, buf: bytes, pos: int, end: int, problem: str, *, is_last: bool, expected: int,
        found: _Recovered,
    ) -> int:
        """The record at ``pos`` is bad: cut it off if it is a torn write (a crash cut the last
        segment's last record short), else raise. Returns the segment's new size."""
        if not is_last:
            raise CorruptLogError(path, pos, f"{problem} (in a segment that is not the last)")
        if not _could_be_torn(buf, pos, end):
            raise CorruptLogError(path, pos, f"{problem} in a full-length record: {_NOT_TORN}")
        if self._valid_record_follows(buf, pos, end, expected, (found.log_seq, found.best_seq)):
            raise CorruptLogError(path, pos, f"{problem}, and valid records follow it")
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.ftruncate(fd, pos)
            self._fsync(fd)
        finally:
            os.close(fd)
        self._stats["torn_bytes_dropped"] += len(buf) - pos
        return pos

    def _adopt(self, found: _Recovered) -> None:
        """Take up what recovery found: the newest hard state, the entries, the segment to append to."""
        cache, best_loc = found.cache, found.best_loc
        if cache and found.best_seq == 0:
            raise LostStateError(self.directory, "hard state (term and vote: no hard-state record in the log, no "
                                 "hardstate file)", [f"log entries {cache[0].index}..{cache[-1].index}"])
        self._hs, self._hs_seq, self._hs_loc = found.best_hs, max(found.best_seq, found.log_seq), best_loc
        if not self._segments:
            self._new_segment(found.snap_index + 1)
        else:
            self._fd = os.open(self._segments[-1].path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
            if best_loc is not None and best_loc[0] != self._segments[-1].first:
                # Keep the newest hard state in the last segment, which compaction never deletes.
                self._hs_loc = (self._segments[-1].first, self._segments[-1].size)
                self._write(self._hs_record(self._hs))
                self._fsync(self._fd)
                self._dirty = False
                self._synced = (self._segments[-1].first, self._segments[-1].size)
        self._mark_in_use()
        if self._synced is None:  # what recovery read counts as on disk
            self._synced = (self._segments[-1].first, self._segments[-1].size)
        self._cache = cache
        if self._snapshot is not None and found.term_at_snap is not None and found.term_at_snap != self._snapshot.term:
            # A crash between saving a snapshot and dropping the log it does not extend.
            self._truncate(found.snap_index)
            self._cache = []

    @staticmethod
    def _valid_record_follows(buf: bytes, pos: int, end: int, expected: int, seqs: tuple[int, int]) -> bool:
        """Whether a valid record follows the bad one at ``pos`` (then it is corruption, not a tear).

        Checks where the bad record says it ends, then searches for the records that could come
        next — entries ``expected`` to ``expected + 2`` and the next hard-state sequence numbers —
        by their index field, so a corrupted length field cannot hide the records after it.
        """
        if end < len(buf) and _frame_ok(buf, end):
            return True
        keys = {expected, expected + 1, expected + 2}
        for seq in seqs:
            keys.update((seq + 1, seq + 2))
        for key in keys:
            pattern = _U64.pack(key)
            hit = buf.find(pattern, pos + 1 + _INDEX_AT)
            while hit != -1:
                if _frame_ok(buf, hit - _INDEX_AT):
                    return True
                hit = buf.find(pattern, hit + 1)
        return False

    def _release(self) -> None:
        for name in ("_fd", "_dirfd", "_lockfd"):
            fd = getattr(self, name)
            if fd is not None:
                try:
                    os.close(fd)  # closing the lock file releases the flock
                except OSError:
                    pass
                setattr(self, name, None)

    # -- the contract --------------------------------------------------------------------------

    def load(self) -> StoredState:
        with self._lock:
            self._check_usable()
            if self._cache is not None:
                entries, self._cache = self._cache, None
            else:
                entries = self._read_entries(self._snapshot_index() + 1)
            return StoredState(hard_state=self._hs, snapshot=self._snapshot, entries=entries)

    def _read_entries(self, lo: int) -> list[Entry]:
        out: list[Entry] = []
        for seg in self._segments:
            if seg.last < lo:
                continue
            with open(seg.path, "rb") as f:
                buf = f.read(seg.size)
            pos = seg.offset_of(max(lo, seg.first))
            expected = max(lo, seg.first)
            while pos < len(buf):
                if not _frame_ok(buf, pos):
                    raise CorruptLogError(seg.path, pos, "record fails verification on read")
                length, _, term, index, kind = _RECORD.unpack_from(buf, pos)
                if kind != HS_KIND:
                    if index != expected or kind not in _KINDS:
                        raise CorruptLogError(seg.path, pos, f"unexpected record (index {index}, kind {kind}) on read")
                    out.append(Entry(term, index, buf[pos + HEADER_SIZE : pos + 8 + length], _KINDS[kind]))
                    expected += 1
                pos += 8 + length
        return out

    def append(self, entries: Sequence[Entry]) -> None:
        with self._lock:
            self._check_usable()
            if not entries:
                return
            last = self._last_index()
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
            self._check_usable()
            if hs != self._hs:
                self._hs = hs
                self._pending_hs = self._hs_record(hs)  # replaces an older unwritten one

    def sync(self) -> None:
        with self._lock:
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
                configuration = meta.configuration.encode().decode() if meta.configuration else None
                meta_json = json.dumps({"index": meta.index, "term": meta.term, "configuration": configuration}).encode()
                head = _SNAP_HEAD.pack(SNAPSHOT_MAGIC, len(meta_json), len(data))
                crc = zlib.crc32(data, zlib.crc32(meta_json, zlib.crc32(head)))
                self._atomic_write("snapshot", [head, meta_json, data, _U32.pack(crc)])
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
            meta, data = self._parse_snapshot(path.read_bytes(), path)
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
