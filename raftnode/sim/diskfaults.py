"""The disk-fault verbs of the simulated cluster's scenario vocabulary.

Faults armed on a live node's next write (``fail_next_write``, one of DISK_WRITE_FAULTS), a disk
that fills up (``fill_disk``), and damage done to a crashed node's disk: ``corrupt_record`` /
``repair_disk``, ``rewind_log`` and ``replace_disk``. What a write fault does when it hits is the
shell's part (``raftnode.sim.shell``). A mixin of :class:`SimCluster`: it needs ``node``,
``checker``, ``_process`` and ``_log``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .disk import DISK_WRITE_FAULTS, SimDisk
from .invariants import InvariantChecker

if TYPE_CHECKING:
    from .node import SimNode


class DiskFaults:
    """Faults on the disks of simulated nodes."""

    checker: InvariantChecker
    node: Callable[[str], SimNode]
    _process: Callable[[SimNode], None]
    _log: Callable[..., None]  # (node, what, kind, about=())

    def rewind_log(self, node_id: str, last_index: int) -> None:
        """A crashed node's disk lost the end of its log: it now ends at ``last_index`` (its hard
        state, term and vote, is kept). The checker is told the node lost what it may have
        acknowledged, as for a truncation."""
        node = self.node(node_id)
        disk = node.disk
        if not disk.offset <= last_index < disk.last_index:
            raise ValueError(f"cannot rewind {node_id} to {last_index}: its log holds {disk.offset + 1}..{disk.last_index}")
        rewound = SimDisk(disk.hard_state, disk.entries[: last_index - disk.offset], disk.snapshot)
        self.replace_disk(node_id, rewound, why=f"lost the end of its log: it now ends at {last_index}")

    def corrupt_record(self, node_id: str, index: int) -> None:
        """Flip a bit in the (whole) record of entry ``index`` on a crashed node's disk."""
        node = self.node(node_id)
        if node.alive:
            raise RuntimeError(f"node {node_id} is running: crash it before damaging its disk")
        if not node.disk.offset < index <= node.disk.last_index:
            raise ValueError(f"{node_id}'s log holds no entry {index}")
        node.disk.corrupt_at = index
        self._log(node, f"disk damaged: a bit flipped in the record of entry {index}", "disk")

    def repair_disk(self, node_id: str) -> None:
        """The operator restores a crashed node's corrupt record from a copy: it may start again."""
        node = self.node(node_id)
        if node.disk.corrupt_at is not None and not node.alive:
            node.disk.corrupt_at = None
            node.refused = None
            self._log(node, "disk repaired: the corrupt record restored from a copy", "disk")

    def fill_disk(self, node_id: str, full: bool = True) -> None:
        """The node's disk is full (or has room again). Like the runtime, a full follower stays up
        and drops each write unacknowledged and unadvanced (its core hands it out again later); a
        full leader stays up too, refuses commands and hands over (``driver.hand_over``, ``driver.lead_without_disk``); a
        node installing a snapshot stops."""
        node = self.node(node_id)
        node.disk_full = full
        node.leading_without_disk = node.leading_without_disk and full
        self._log(node, "disk full" if full else "disk has room again", "disk")
        if not full and node.raft is not None:
            self._process(node)

    def fail_next_write(self, node_id: str, fault: str) -> None:
        """Arm one of DISK_WRITE_FAULTS: it hits the node's next write to its disk."""
        if fault not in DISK_WRITE_FAULTS:
            raise ValueError(f"unknown disk fault {fault!r}; one of {', '.join(DISK_WRITE_FAULTS)}")
        self.node(node_id).write_fault = fault

    def replace_disk(self, node_id: str, disk: SimDisk, *, why: str = "disk replaced") -> None:
        """A crashed node's disk is swapped for ``disk`` (an older copy, an empty one); the checker
        counts it as no longer holding anything after ``disk``'s last index."""
        node = self.node(node_id)
        if node.alive:
            raise RuntimeError(f"node {node_id} is running: crash it before touching its disk")
        node.disk = disk
        self.checker.persisted(node_id, (), None, disk.last_index + 1, is_leader=False)
        self._log(node, why, "disk")
