"""Deliberately broken engines, planted through the simulator's ``raft_class`` seam.

They exist only to prove the invariant checker has teeth; nothing outside tests uses them.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from raftnode.core.log import RaftLog
from raftnode.core.messages import AppendEntriesResponse
from raftnode.core.quorum import Configuration
from raftnode.core.raft import Raft
from raftnode.core.ready import Ready, Role
from raftnode.node.driver import ReadyPorts, process_ready
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
