"""Taking a node's snapshots: when the policy says so, and when an operator asks.

:class:`Snapshotter` snapshots the state machine, compacts the core's log and has the disk save
the snapshot, after a Ready was advanced (``SnapshotPolicy.due``) and for the callers of
``take_snapshot``, who are answered with the snapshot's index once it is durable.
"""

from __future__ import annotations

from typing import Any

from ..core.raft import Raft
from .apply import Applier
from .nodedisk import NodeDisk
from .snapshotpolicy import SnapshotPolicy
from .waiters import Waiter


class Snapshotter:
    """Snapshots of one node; ``waiters`` are the ``take_snapshot`` callers of this turn."""

    __slots__ = ("policy", "_applier", "_disk", "waiters")

    def __init__(self, policy: SnapshotPolicy, applier: Applier, disk: NodeDisk) -> None:
        self.policy = policy
        self._applier = applier
        self._disk = disk
        self.waiters: list[Waiter] = []

    def due(self, raft: Raft) -> bool:
        """The policy's say, never while a batch entry is applied in part (``Applier.mid_entry``)."""
        return self.policy.due(self._applier.applied_index, raft.log.offset) and not self._applier.mid_entry

    async def take(self, raft: Raft) -> None:
        """Snapshot the state machine as applied, compact the log up to it, and save it."""
        await self._disk.save_snapshot(*self._compact(raft))

    def _compact(self, raft: Raft) -> tuple[Any, bytes]:
        data = self._applier.snapshot()
        meta = raft.compact(self._applier.applied_index, data)
        self.policy.reset()
        return meta, data

    async def answer_waiters(self, raft: Raft) -> None:
        """Take a snapshot if anything was applied since the last, then answer the waiters with its index."""
        waiters, self.waiters = self.waiters, []
        if self._applier.applied_index > raft.log.offset and not self._applier.mid_entry:
            await self.take(raft)
        for waiter in waiters:
            waiter.set(raft.log.offset)

    def fail_waiters(self, error: BaseException) -> None:
        for waiter in self.waiters:
            waiter.set(error=error)
        self.waiters = []
