"""Opening ``DiskStorage``'s directory: take the lock, read the snapshot and every segment,
verify each record, cut a torn tail, refuse corruption and lost state (the rules are in
``raftnode.storage.disk``'s docstring).

``_Recovery`` is a part of :class:`~raftnode.storage.disk.DiskStorage` (mixed in): it fills in
the state that ``DiskStorage.__init__`` sets up, and makes its fsyncs through ``_fsync``.
"""

from __future__ import annotations

import gc
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from . import CorruptLogError, Entry, HardState, LostStateError, StorageError
from .records import (
    _FRAME,
    _INDEX_AT,
    _KINDS,
    _PAYLOAD_HEAD,
    _RECORD,
    _U64,
    HEADER_SIZE,
    HS_KIND,
    MIN_PAYLOAD,
    _decode_hs,
    _frame_ok,
    _parse_snapshot,
)
from .segments import MARK_EVERY, SEGMENT_RE, _Segment

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

LOCK_MARK = b"raftnode data directory: in use by a node; do not delete its log-*.seg files\n"


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



class _Recovery:  # a part of DiskStorage
    """Open and recover the directory; release its file descriptors."""

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
            self._snapshot, _ = _parse_snapshot(snap_path.read_bytes(), snap_path)
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
