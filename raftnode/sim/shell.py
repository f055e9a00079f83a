"""The shell's part for one simulated node: the ports of the one Ready loop (``raftnode.node.driver``).

:class:`SimPorts` does what the runtime's shell does with a Ready — persist it to the node's
``SimDisk`` (or meet the disk's armed fault or full disk), send, apply, serve reads, snapshot —
and reports each step to the cluster's :class:`InvariantChecker` as it happens. No port ever
waits. Answers go to the cluster's ``_answer``, which stamps and traces them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..core.commands import CommandResult
from ..core.messages import EntryKind, Message
from ..core.readindex import ReadState
from ..core.ready import Ready, Role
from ..node.apply import ApplyFailure
from ..node.statemachines import CommandError
from .node import SimBatch, SimNode

if TYPE_CHECKING:
    from .cluster import SimCluster


class SimPorts:
    """A simulated node's side of the one Ready loop, over its cluster's network and checker."""

    __slots__ = ("_cluster", "_node")

    def __init__(self, cluster: SimCluster, node: SimNode) -> None:
        self._cluster, self._node = cluster, node

    # -- the ports -------------------------------------------------------------------------------

    def send(self, messages: Sequence[Message]) -> None:
        network, now = self._cluster.network, self._cluster.now
        for m in messages:
            network.send(m, now)

    def report(self, ready: Ready) -> None:
        """Trace the events, check leaders and commits, fail the waiters of a deposed leader."""
        cluster, node = self._cluster, self._node
        raft = node.raft
        assert raft is not None
        for event in ready.events:
            cluster._log(node, event.detail, event.kind)
        if ready.soft_state is not None:
            if ready.soft_state.role is Role.LEADER:
                cluster.checker.became_leader(node.id, raft.term, node.term_at)
            elif len(node.tracker):
                for req, result in node.tracker.leadership_lost(ready.soft_state.leader):
                    cluster._answer(node, req, result)
        cluster.checker.monotonic(node.id, "commit", node.last_commit, raft.commit)
        if ready.committed:
            leaders = [(n.id, n.raft.term, n.term_at) for n in cluster.live()
                       if n.raft is not None and n.raft.role is Role.LEADER]
            cluster.checker.committed_to(node.id, ready.committed, leaders, raft.term)
            if raft.commit > node.last_commit:
                cluster._log(node, f"commit -> {raft.commit}", "commit")
        node.last_commit = raft.commit

    def apply(self, ready: Ready) -> None:
        applier = self._node.applier
        assert applier is not None and self._node.raft is not None
        if ready.snapshot is not None:
            meta, data = ready.snapshot
            applier.restore(meta.index, data)
            self._cluster.checker.state_machine_built(self._node.id, meta.index)
            self._cluster.checker.snapshot_taken(self._node.id, meta.index, data)
        if ready.committed:
            applier.submit(ready.committed)
        self.run_applier()

    def flush(self) -> None:
        """Answers reach simulated clients as they are made."""

    async def persist(self, ready: Ready) -> bool:
        """Persist, or meet the disk's armed fault or full disk: False drops the Ready."""
        cluster, node = self._cluster, self._node
        raft = node.raft
        assert raft is not None
        if not (ready.entries or ready.hard_state or ready.snapshot):
            return True
        if node.write_fault is not None:
            self._fail_write(ready)
            return False
        if node.disk_full:
            if ready.snapshot is not None:
                cluster._stop(node, "stopped: no space left on device", "disk")
            elif raft.role is Role.LEADER:
                node.leading_without_disk = True  # it refuses commands and hands over (SimCluster._process)
                cluster._log(node, "disk full at the leader: taking no commands, handing leadership over", "disk")
            else:
                cluster._log(node, "disk full: dropped a write unacknowledged", "disk")
                for req, result in node.tracker.leadership_lost(raft.leader):
                    cluster._answer(node, req, result)
            return False  # as the runtime does: the writes are dropped, never advanced
        self._write(ready)
        return True

    def serve_reads(self, reads: Sequence[ReadState]) -> None:
        if reads:
            self._reads_answered(reads)
        if self._node.ready_reads:
            self._serve_ready_reads()

    async def advanced(self) -> None:
        """Snapshot and compact once ``snapshot_every`` applied entries follow the latest snapshot."""
        cluster, node = self._cluster, self._node
        raft, applier = node.raft, node.applier
        assert raft is not None and applier is not None
        if cluster.snapshot_every is None or applier.applied_index - raft.log.offset < cluster.snapshot_every:
            return
        if applier.mid_entry:  # as the runtime's Snapshotter: never a batch entry applied in part
            return
        data = applier.snapshot()
        meta = raft.compact(applier.applied_index, data)
        cluster.checker.snapshot_taken(node.id, meta.index, data)
        node.disk.save_snapshot(meta, data)
        cluster._log(node, f"snapshot at index {meta.index}; log compacted", "snapshot")

    # -- the disk --------------------------------------------------------------------------------

    def _write(self, ready: Ready) -> None:
        node, checker = self._node, self._cluster.checker
        disk = node.disk
        assert node.raft is not None
        is_leader = node.raft.role is Role.LEADER
        if ready.snapshot is not None:
            dropped_from = disk.save_snapshot(*ready.snapshot)
            if dropped_from is not None:
                checker.persisted(node.id, (), None, dropped_from, is_leader=is_leader)
        if ready.entries:
            prev_term = disk.term(ready.entries[0].index - 1)
            truncated_from = disk.write(ready.entries)
            checker.persisted(node.id, ready.entries, prev_term, truncated_from, is_leader=is_leader)
        if ready.hard_state is not None:
            disk.hard_state = ready.hard_state

    def _fail_write(self, ready: Ready) -> None:
        """The armed fault hits this Ready's write: part of it reaches the disk (a torn write or a
        failed fsync: a prefix, the hard-state record first as in DiskStorage), and the node stops
        before sending, applying or acknowledging anything of it."""
        cluster, node = self._cluster, self._node
        fault, node.write_fault = node.write_fault, None
        reached = 0
        if fault in ("torn write", "fsync failed"):
            reached = cluster.rng.randint(0, len(ready.entries))
        if reached:
            snapshot = ready.snapshot if cluster.rng.random() < 0.5 else None
            self._write(dataclasses.replace(ready, snapshot=snapshot, entries=ready.entries[:reached]))
        why = {"disk full": "stopped: no space left on device", "fsync failed": "stopped: fsync failed (never retried)"}
        cluster._stop(node, why.get(fault, f"crashed mid-write ({fault}): {reached} of {len(ready.entries)} entries on disk"))

    # -- applying and answering ------------------------------------------------------------------

    def run_applier(self) -> None:
        """Let the applier apply what it can; check and answer each applied entry, note a failure."""
        cluster, node = self._cluster, self._node
        applier = node.applier
        assert applier is not None and node.raft is not None
        done, failure = applier.run()
        for applied in done:
            entry = applied.entry
            cluster.checker.applied_entry(node.id, entry)
            batch = entry.kind is EntryKind.BATCH and applied.error is None
            if batch:
                for position, outcome in enumerate(applied.result):
                    if outcome.stamp is not None:
                        cluster.checker.applied_in_session(node.id, entry.index, outcome.stamp, outcome.result,
                                                           outcome.error, position)
            elif applied.stamp is not None:
                cluster.checker.applied_in_session(node.id, entry.index, applied.stamp, applied.result, applied.error)
            answer = node.tracker.applied(
                entry.index, entry.term, result=applied.result, error=applied.error, leader=node.raft.leader
            )
            if answer is not None:
                req, result = answer
                if result.index is not None:
                    holders = {n.id for n in cluster.nodes.values() if n.disk.holds(entry.index, entry.term)}
                    raft = node.raft
                    voters = [raft.committed_configuration().voters, raft.configuration.voters]
                    cluster.checker.acknowledged(entry.index, entry.term, holders, voters)
                if batch and result.index is not None:
                    assert isinstance(req, SimBatch)
                    for each, outcome in zip(req.requests, applied.result):  # each command its own outcome
                        cluster._answer(node, each, CommandResult(result=outcome.result, error=outcome.error,
                                                                  index=entry.index))
                else:
                    cluster._answer(node, req, result)
        if failure is not None:
            self._apply_failed(failure)
        cluster.checker.monotonic(node.id, "applied", node.last_applied, applier.applied_index)
        node.last_applied = applier.applied_index

    def _apply_failed(self, failure: ApplyFailure) -> None:
        cluster, node = self._cluster, self._node
        node.apply_failures.append(failure)
        verdict = "halted: stopped applying" if failure.halted else "will retry"
        cluster._log(node, f"apply of index {failure.index} failed (attempt {failure.attempt}): {failure.reason}; {verdict}", "apply")
        if failure.halted:
            answer = node.tracker.failed(failure.index, f"apply halted at index {failure.index}: {failure.reason}")
            if answer is not None:
                cluster._answer(node, *answer)

    # -- reads -----------------------------------------------------------------------------------

    def _reads_answered(self, states: Sequence[ReadState]) -> None:
        node = self._node
        assert node.raft is not None
        for state in states:
            req = node.reads.pop(state.request, None)
            if req is None:
                continue  # expired meanwhile
            if state.index is None:
                self._cluster._answer(node, req, CommandResult.not_leader_any_more(node.raft.leader))
            else:
                node.ready_reads.append((state.index, req))

    def _serve_ready_reads(self) -> None:
        """Serve the reads whose read index this node has applied, from its state machine."""
        cluster, node = self._cluster, self._node
        applier = node.applier
        assert applier is not None
        applied = applier.applied_index
        waiting = []
        for index, req in node.ready_reads:
            if index > applied:
                waiting.append((index, req))
                continue
            cluster.checker.read_served(node.id, req.command, req.floor, applied)
            try:
                result = CommandResult(result=applier.state_machine.query(req.command), index=index)  # type: ignore[attr-defined]
            except CommandError as exc:
                result = CommandResult(error=str(exc), index=index)
            cluster._answer(node, req, result)
        node.ready_reads = waiting

    def expire_reads(self) -> None:
        """Answer the reads whose deadline has passed with ``timeout_expired``."""
        cluster, node = self._cluster, self._node
        for req in [r for r in node.reads.values() if r.deadline is not None and r.deadline <= cluster.now]:
            del node.reads[req.id]
            cluster._answer(node, req, CommandResult(timeout_expired=True))
        late = [(i, r) for i, r in node.ready_reads if r.deadline is not None and r.deadline <= cluster.now]
        for item in late:
            node.ready_reads.remove(item)
            cluster._answer(node, item[1], CommandResult(timeout_expired=True))
