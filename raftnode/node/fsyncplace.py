"""Where a node runs one Ready's fsync: inline in the node's task, or handed to its disk thread.

The hand-off costs two thread wake-ups (the disk thread's, then the event loop's), and on a
busy machine each one waits for a CPU: at one command in flight the leader's hand-off was the
longest stretch of a command's path (measured on the 2-core VM with other work on it: 4.5 ms
from the hand-off to the event loop running again, for a sync that wrote nothing with
``fsync = false``). Inline, the event loop stops for the fsync instead: nothing reads client
requests or sends heartbeats meanwhile, which is what the thread is for under load and on a
slow disk.

So: inline when the storage does not fsync at all (``fsync = false``: the sync only writes to
the page cache); for a small Ready (at most ``INLINE_FSYNC_ENTRIES`` entries) at a follower,
whose acknowledgement waits for the fsync anyway; and for a small Ready at a leader while the
disk is fast — its last fsync took at most ``FAST_FSYNC_SHARE`` of a heartbeat interval — so
that a disk that stalls once costs at most one late heartbeat round before the leader goes
back to the thread (``observe``). Where the fsync runs changes nothing of what is written or
when it is acknowledged: the Ready's messages after persist still go only after it returns.
"""

from __future__ import annotations

INLINE_FSYNC_ENTRIES = 32
"""The most entries a Ready may hold to be fsynced inline (beyond it the load is high enough
that overlapping the fsync with reading the next requests pays)."""

FAST_FSYNC_SHARE = 0.25
"""A leader fsyncs inline while its last fsync took at most this share of a heartbeat interval."""


class FsyncPlacement:
    """Decides, per Ready, whether its fsync runs inline; told how long each fsync took."""

    __slots__ = ("_fsyncs", "_leader_inline", "_fast_seconds", "_last_seconds")

    def __init__(self, *, fsyncs: bool, heartbeat_seconds: float, leader_inline: bool = True) -> None:
        """``fsyncs``: whether the storage's sync makes writes durable (False: ``fsync = false``).
        ``leader_inline``: False hands every fsync of a leader to the disk thread."""
        self._fsyncs = fsyncs
        self._leader_inline = leader_inline
        self._fast_seconds = heartbeat_seconds * FAST_FSYNC_SHARE
        self._last_seconds = 0.0

    def inline(self, entries: int, *, leader: bool) -> bool:
        """Run the sync of a Ready with ``entries`` entries in the node's task?"""
        if not self._fsyncs:
            return True
        if entries > INLINE_FSYNC_ENTRIES:
            return False
        return not leader or (self._leader_inline and self._last_seconds <= self._fast_seconds)

    def observe(self, seconds: float) -> None:
        """The sync just done took ``seconds`` (inline or not)."""
        self._last_seconds = seconds
