"""A node's disk: its storage calls, the thread that runs the blocking ones, and a full disk.

:class:`NodeDisk` writes and fsyncs each Ready (one fsync for the whole batch: group commit), in
one long-lived disk thread (:class:`DiskThread`) or, for a small batch (and with ``fsync = false``),
in the node's task (``raftnode.node.fsyncplace``). A full disk (ENOSPC) with a storage that can ``recover`` is a
state the node survives (:class:`DiskFull`: nothing of the Ready is acknowledged, it is written
again once there is room); any other write or fsync failure stops the node (``DiskFailure``).
"""

from __future__ import annotations

import errno
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import outcome
import trio

from ..core.ready import Ready
from ..storage import DiskFailure, Storage, StorageError
from .fsyncplace import FsyncPlacement

log = logging.getLogger("raftnode")

DISK_FULL_RETRY_SECONDS = 1.0
"""How often a follower whose disk is full tries its storage again."""

class DiskFull(Exception):
    """This turn's write hit a full disk: its entries and hard state are dropped, never advanced."""


class DiskThread:
    """One long-lived thread for the blocking storage calls (fsync), handed work without
    ``trio.to_thread``: a queue put wakes it, ``run_sync_soon`` wakes the waiting task. Measured
    on the 2-core VM: about 85 us of CPU per round trip against 150-250 us for ``to_thread``.
    A caller cancelled meanwhile still waits for its call to finish (an fsync is never abandoned).
    """

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._token = trio.lowlevel.current_trio_token()
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def _work(self) -> None:
        jobs, token, reschedule = self._jobs, self._token, trio.lowlevel.reschedule
        while True:
            job = jobs.get()
            if job is None:
                return
            task, fn, args = job
            result = outcome.capture(fn, *args)
            try:
                token.run_sync_soon(reschedule, task, result)
            except trio.RunFinishedError:  # pragma: no cover - the run ended under us
                return

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        await trio.lowlevel.checkpoint_if_cancelled()
        self._jobs.put((trio.lowlevel.current_task(), fn, args))
        return await trio.lowlevel.wait_task_rescheduled(lambda _: trio.lowlevel.Abort.FAILED)

    def close(self) -> None:
        self._jobs.put(None)


class NodeDisk:
    """The storage calls of one node, made from its task.

    ``stats`` is the node's counter dict (``fsyncs``, ``fsync_max_ms``, ``disk_full``); ``emit``
    tells of disk events; ``before_wait`` is called each time the task starts waiting on the
    disk thread (the ticker rearms, so a leader's keepalives start from its heartbeat timer).
    ``since`` is when the task began waiting (None: not waiting), ``full_since`` when the disk
    filled (None: it has room).
    """

    def __init__(
        self, storage: Storage, node_id: str, stats: dict[str, Any], emit: Callable[[str, str], None],
        *, heartbeat_seconds: float,
    ) -> None:
        self.storage = storage
        self.fsync_place = FsyncPlacement(fsyncs=getattr(storage, "fsync", True) is not False,
                                          heartbeat_seconds=heartbeat_seconds)
        self.node_id = node_id
        self.stats = stats
        self.emit = emit
        self.before_wait: Callable[[], None] = lambda: None
        self.thread_storage = getattr(storage, "needs_thread", True)
        self.thread: DiskThread | None = None
        self.since: float | None = None  # when the node's task began waiting on the disk thread
        self.synced_vote: tuple[int, str | None] | None = None
        self.failed = False  # a write or fsync failed: never again
        self.full_since: float | None = None  # waiting for space (see persist)
        self.retry_at = 0.0

    def open(self) -> None:
        """Start the disk thread (if the storage blocks); from the node's trio run."""
        if self.thread_storage:
            self.thread = DiskThread(f"raftnode-disk-{self.node_id}")

    def close(self) -> None:
        if self.thread is not None:
            self.thread.close()

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)``: in the disk thread if the storage blocks, else at once."""
        if not self.thread_storage:
            return fn(*args)
        self.since = trio.current_time()
        self.before_wait()  # this turn may have made the node leader: keepalives from its heartbeat timer on
        try:
            if self.thread is not None:
                return await self.thread.run(fn, *args)
            return await trio.to_thread.run_sync(fn, *args)
        finally:
            self.since = None

    async def sync_at_stop(self) -> None:
        """The last fsync as the node stops (none after a failed write or fsync), shielded."""
        try:
            with trio.CancelScope(shield=True):
                if not self.failed:  # after a failed write or fsync: never again
                    await self.run(self.storage.sync)
        except Exception as exc:  # noqa: BLE001 - e.g. storage refusing after an fsync error
            log.error("%s: last sync at stop failed: %s", self.node_id, exc)

    async def persist(self, ready: Ready, leader: bool) -> None:
        """Write and fsync ``ready``. A full disk (without a snapshot to install) raises DiskFull:
        the node stays up, this Ready's entries and hard state are dropped unacknowledged and
        written again once space frees; a leader hands over (``ReadyLoop._step_aside``). Any other
        failure stops the node (DiskFailure), never retried."""
        try:
            await self._write(ready, leader)
        except (StorageError, OSError) as exc:
            cause = exc.__cause__ or exc
            full = isinstance(cause, OSError) and cause.errno == errno.ENOSPC
            if full and ready.snapshot is None and hasattr(self.storage, "recover"):
                self._enter_full(exc)
                raise DiskFull from exc
            self.failed = True
            detail = (f"{'disk full' if full else 'disk write or fsync failed'} ({exc}): node {self.node_id} stops; "
                      "it never retries the same data, and acknowledged nothing of it. Restart it to recover from "
                      "what is really on disk" + (" once the disk has room" if full else ""))
            self.emit("disk", detail)
            raise DiskFailure(detail) from exc

    def _enter_full(self, exc: BaseException) -> None:
        self.retry_at = trio.current_time() + DISK_FULL_RETRY_SECONDS
        if self.full_since is None:
            self.full_since = trio.current_time()
            self.stats["disk_full"] = 1
            self.emit("disk", f"disk full ({exc}): staying up, acknowledging nothing it cannot persist; "
                              f"trying again every {DISK_FULL_RETRY_SECONDS:g} s")

    async def has_room_again(self) -> bool:
        """While the disk is full: is it time to try again, and does the storage reopen?"""
        if trio.current_time() < self.retry_at:
            return False
        self.retry_at = trio.current_time() + DISK_FULL_RETRY_SECONDS
        try:
            await self.run(self.storage.recover)  # type: ignore[attr-defined]
        except OSError:
            return False
        return True

    def leave_full(self) -> None:
        since, self.full_since = self.full_since, None
        self.stats["disk_full"] = 0
        self.emit("disk", f"disk has room again after {trio.current_time() - since:.1f} s: resumed")  # type: ignore[operator]

    async def _write(self, ready: Ready, leader: bool) -> None:
        storage = self.storage
        if ready.snapshot is not None:
            await self.run(storage.save_snapshot, *ready.snapshot)
        hard_state = ready.hard_state
        vote_changed = hard_state is not None and (hard_state.term, hard_state.vote) != self.synced_vote
        if hard_state is not None:
            storage.set_hard_state(hard_state)
        if ready.entries:
            storage.append(ready.entries)
        if ready.entries or vote_changed:
            # One fsync for everything this batch wrote: entries, term and vote. A commit index
            # that changed alone is a hint and rides along with the next fsync.
            started = time.perf_counter()
            if self.fsync_place.inline(len(ready.entries), leader=leader):
                storage.sync()  # see raftnode.node.fsyncplace
            else:
                await self.run(storage.sync)
            took = time.perf_counter() - started
            self.fsync_place.observe(took)
            if took * 1000 > self.stats["fsync_max_ms"]:
                self.stats["fsync_max_ms"] = round(took * 1000, 1)
            self.stats["fsyncs"] += 1
            if hard_state is not None:
                self.synced_vote = (hard_state.term, hard_state.vote)

    async def save_snapshot(self, meta: Any, data: bytes) -> None:
        """Write a snapshot the node took and compact the stored log up to it."""

        def save() -> None:
            self.storage.save_snapshot(meta, data)
            self.storage.compact(meta.index)

        await self.run(save)
        self.emit("snapshot", f"snapshot at index {meta.index}; log compacted")
