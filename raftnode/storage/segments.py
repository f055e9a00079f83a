"""``DiskStorage``'s segment files: their names, their sparse in-memory index, and the writing,
cutting and reading of the log across them.

``_SegmentFiles`` is a part of :class:`~raftnode.storage.disk.DiskStorage` (mixed in): it works
on the state that ``DiskStorage.__init__`` sets up (``_segments``, ``_fd``, ``_dirty``,
``_synced``, ``_stats`` and the hard-state fields) and makes its fsyncs through
``DiskStorage._fsync`` and ``_fsync_dir`` (``_atomic_write`` fsyncs its temporary file itself).
"""

from __future__ import annotations

import os
import re
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from pathlib import Path

from . import CorruptLogError, Entry, StorageError
from .records import _KINDS, _RECORD, HEADER_SIZE, HS_KIND, _frame_ok

SEGMENT_RE = re.compile(r"^log-(\d{20})\.seg$")
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



class _SegmentFiles:  # a part of DiskStorage
    """The log's files: append to the active segment, start, cut and drop segments, find and read entries."""

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
