"""Deliberately broken engines, planted through the simulator's ``raft_class`` seam.

They exist only to prove the invariant checker has teeth; nothing outside tests uses them.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from raftnode.core.log import RaftLog
from raftnode.core.messages import AppendEntriesResponse, Entry
from raftnode.core.quorum import Configuration
from raftnode.core.raft import Raft
from raftnode.core.ready import Ready, Role
from raftnode.node.apply import Applier, ApplyFailure, BatchOutcome
from raftnode.node.driver import ReadyPorts, process_ready
from raftnode.node.statemachines import CommandError
from raftnode.wire.batches import decode_batch_entry, encode_batch_entry
from raftnode.wire.sessions import SessionStamp, SessionTable


class _ShortQuorum(Configuration):
    @property
    def quorum(self) -> int:
        return len(self.voters) // 2  # one vote short of a majority


class QuorumOneShort(Raft):
    """Counts a majority one vote short, for elections and commits alike."""

    def _configuration_at(self, index: int) -> Configuration:
        c = super()._configuration_at(index)
        return _ShortQuorum(c.voters, c.learners, c.contexts)


class _AnyLogIsUpToDate(RaftLog):
    __slots__ = ()

    def is_up_to_date(self, last_index: int, last_term: int) -> bool:
        return True


class VotesForStaleLogs(Raft):
    """Grants votes without the §3.6.1 up-to-date check on the candidate's log."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.log.__class__ = _AnyLogIsUpToDate


class CommitsOldTermsByCounting(Raft):
    """Ignores §3.6.2: commits entries of earlier terms by counting replicas (the Figure 8 bug)."""

    def _may_commit_by_counting(self, index: int) -> bool:
        return True


class NeverCampaigns(Raft):
    """Never starts an election: the cluster can never make progress."""

    def _campaign(self, *, pre_vote: bool, transfer: bool = False) -> None:
        return None


class ForgetsDuplicates(SessionTable):
    """Session deduplication off: a resent copy of a command is applied again, like a new one."""

    def lookup(self, stamp: SessionStamp, time: float) -> tuple[Any, str | None] | None:
        super().lookup(stamp, time)
        return None


class SkipsSessionsInBatches(Applier):
    """Applies a batch entry's session commands as plain ones: no session table lookup, so a
    resent copy is applied again (the stamp is still reported, as the applier does)."""

    def _apply_stamped(self, stamp: SessionStamp, time: float, command: str) -> tuple[Any, str | None, Any, bool]:
        if not self._partial:  # a session entry's command: as shipped
            return super()._apply_stamped(stamp, time, command)
        try:
            return self.state_machine.process_command(command), None, stamp, False
        except CommandError as exc:
            return None, str(exc), stamp, False


class ForgetsBatchOutcomes(Applier):
    """Checks a batch entry's session commands against the session table but never records their
    outcomes: a batch resent after a leader change (both copies committed) is applied twice."""

    def _apply_stamped(self, stamp: SessionStamp, time: float, command: str) -> tuple[Any, str | None, Any, bool]:
        if not self._partial:
            return super()._apply_stamped(stamp, time, command)
        record, self.sessions.record = self.sessions.record, lambda *args: None  # type: ignore[method-assign]
        try:
            return super()._apply_stamped(stamp, time, command)
        finally:
            self.sessions.record = record  # type: ignore[method-assign]


class AppliesBatchesBackwards(Applier):
    """Applies a batch entry's commands last to first (the outcomes still listed in entry order):
    the same on every node, so nothing diverges; only the outcomes tell."""

    def _apply_batch_entry(self, entry: Entry) -> tuple[BatchOutcome, ...]:
        time, commands, stamps = decode_batch_entry(entry.data)
        backwards = Entry(entry.term, entry.index, encode_batch_entry(
            time, [command.encode() for command in reversed(commands)],
            None if stamps is None else stamps[::-1]), entry.kind)
        return tuple(reversed(super()._apply_batch_entry(backwards)))


class RestartsBatchesAfterAFailure(Applier):
    """After a command of a batch entry failed to apply, the retry applies the entry from its
    first command again (the progress kept is dropped): the ones before the failure apply twice."""

    def _failed(self, entry: Entry, exc: Exception) -> ApplyFailure:
        self._partial = None
        return super()._failed(entry, exc)


class ServesReadsWithoutConfirmation(Raft):
    """Skips the ReadIndex heartbeat round (§6.4): serves reads at its commit index at once, as
    if a majority had confirmed it still leads."""

    def _start_read_round(self) -> None:
        round_id = self._reads.start(self.commit, self._ticks)
        for voter in self.configuration.voters:
            self._reads.echoed(voter, round_id)
        self._check_read_round()


class ServesReadsBeforeItsTermCommits(Raft):
    """Starts ReadIndex rounds as soon as it leads, before an entry of its own term has committed
    (§6.4 step 1 skipped): its commit index may still be behind what its predecessor acknowledged."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        reads = self._read_index
        reads.round_due = lambda: self.role is Role.LEADER and reads.rounds.can_start()  # type: ignore[method-assign]


async def AcknowledgesBeforePersisting(ready: Ready, ports: ReadyPorts) -> bool:  # noqa: N802 - named like the others
    """The shared driver with one reordering: append acknowledgements leave before the persist
    they promise (sent with the messages that may leave early), as if the fsync were a formality."""
    acks = tuple(m for m in ready.messages_after_persist if isinstance(m, AppendEntriesResponse))
    if not acks:
        return await process_ready(ready, ports)
    rest = tuple(m for m in ready.messages_after_persist if not isinstance(m, AppendEntriesResponse))
    hurried = dataclasses.replace(ready, messages_before_persist=ready.messages_before_persist + acks,
                                  messages_after_persist=rest)
    return await process_ready(hurried, ports)
