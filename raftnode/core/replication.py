"""The leader's side of log replication (thesis §3.5): what each follower holds and what to send it.

``Replicator`` keeps a :class:`~raftnode.core.progress.Progress` per member and sends, at each
``Raft.ready()``, whatever accumulated since the previous one (natural batching), pipelined up to
``max_inflight`` appends per follower; a follower whose next entry was compacted away gets the
snapshot in chunks (§5). It handles the followers' answers — AppendEntries, heartbeat and
InstallSnapshot responses — and notices a follower that lost entries it had acknowledged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .messages import (
    AppendEntries,
    AppendEntriesResponse,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshotResponse,
    Message,
    ReadIndex,
)
from .progress import Progress, ProgressState

if TYPE_CHECKING:
    from .raft import Raft


class Replicator:
    """A leader's replication state: each member's progress and who has something to be sent."""

    def __init__(self, node: Raft):
        self.node = node
        self.progress: dict[str, Progress] = {}
        self.send_pending: set[str] = set()  # followers to send to at the next Ready
        self.heartbeat_elapsed = 0

    def reset(self) -> None:
        self.progress = {}
        self.send_pending = set()
        self.heartbeat_elapsed = 0

    def start(self, next_index: int) -> None:
        """A new leader: probe every member from ``next_index``; our own log matches itself."""
        node = self.node
        for member in sorted(node.configuration.members() | {node.id}):
            self.progress[member] = Progress(next_index=next_index, max_inflight=node.config.max_inflight)
        own = self.progress[node.id]
        own.become_replicate()
        own.acknowledged(node.log.stable_index)

    def add_member(self, member: str) -> None:
        """A member joined the configuration: probe it from the end of our log."""
        if member not in self.progress:
            pr = Progress(next_index=self.node.log.last_index + 1, max_inflight=self.node.config.max_inflight)
            pr.recent_active = True
            self.progress[member] = pr

    def forget(self, member: str) -> None:
        del self.progress[member]
        self.send_pending.discard(member)

    def peers(self) -> list[str]:
        return [n for n in self.progress if n != self.node.id]

    def send_to_all(self) -> None:
        """Every follower has something new (an appended entry) for the next Ready."""
        self.send_pending.update(self.progress)

    # -- heartbeats ----------------------------------------------------------------------------

    def heartbeat(self, follower: str) -> Heartbeat:
        """A heartbeat carrying ``follower``'s safe commit index, min(its match, ours)."""
        node = self.node
        match = self.progress[follower].match
        if match < node.log.offset:  # compacted away: nothing to check (the follower needs our snapshot)
            match, match_term = 0, 0
        else:
            match_term = node.log.term(match) or 0
        return Heartbeat(term=node.term, src=node.id, dst=follower, commit=min(match, node.commit), match=match,
                         match_term=match_term, read_round=node._read_index.rounds.latest)

    def heartbeats(self) -> list[Heartbeat]:
        return [self.heartbeat(follower) for follower in self.peers()]

    def send_heartbeats(self) -> None:
        self.heartbeat_elapsed = 0
        self.node._messages.extend(self.node.heartbeats())

    def tick(self) -> None:
        """Count a leader tick; send heartbeats every ``heartbeat_interval`` ticks."""
        self.heartbeat_elapsed += 1
        if self.heartbeat_elapsed >= self.node.config.heartbeat_interval:
            self.send_heartbeats()

    def ticks_until_heartbeat(self) -> int:
        return self.node.config.heartbeat_interval - self.heartbeat_elapsed

    # -- sending -------------------------------------------------------------------------------

    def flush(self) -> None:
        """Send every follower whatever it lacks, as far as its window allows."""
        if not self.send_pending:
            return
        last_index = self.node.log.last_index
        pending, self.send_pending = self.send_pending, set()
        for follower in sorted(pending):
            pr = self.progress.get(follower)
            if pr is None or follower == self.node.id:
                continue
            self._send_append(follower, pr, allow_empty=True)
            while pr.state is ProgressState.REPLICATE and pr.next <= last_index and not pr.is_paused():
                self._send_append(follower, pr, allow_empty=False)

    def _send_append(self, follower: str, pr: Progress, *, allow_empty: bool) -> None:
        if pr.is_paused():
            return
        node, log, config = self.node, self.node.log, self.node.config
        prev_index = pr.next - 1
        if prev_index < log.offset:
            self.node._snapshots.start_sending(follower, pr)
            return
        prev_term = log.term(prev_index)
        assert prev_term is not None, f"next index {pr.next} beyond the log for {follower}"
        entries = log.slice(
            pr.next, log.last_index + 1, max_count=config.max_msg_entries, max_bytes=config.max_msg_bytes
        ) if pr.next <= log.last_index else []
        if not entries and not allow_empty:
            return
        node._send(
            AppendEntries(
                term=node.term,
                src=node.id,
                dst=follower,
                prev_index=prev_index,
                prev_term=prev_term,
                entries=tuple(entries),
                commit=node.commit,
            )
        )
        pr.sent(prev_index + len(entries), len(entries))

    # -- commit --------------------------------------------------------------------------------

    def maybe_commit(self) -> bool:
        """Move the commit index to what a quorum of members holds, if ``Raft._may_commit_by_counting``."""
        node = self.node
        match = {member: pr.match for member, pr in self.progress.items()}
        index = node.configuration.committed_index(match)
        if index > node.commit and node._may_commit_by_counting(index):
            # Followers learn the new commit index from the next AppendEntries or heartbeat; a
            # message of its own per commit would double the traffic of every command.
            before, node.commit = node.commit, index
            node._membership.committed_through(before, index)
            return True
        return False

    # -- answers -------------------------------------------------------------------------------

    def step(self, m: Message) -> None:
        """A leader's messages: its followers' answers, and reads they forward."""
        pr = self.progress.get(m.src)
        if pr is None:
            self.node._count("dropped_unexpected")
        elif isinstance(m, AppendEntriesResponse):
            pr.recent_active = True
            if m.success:
                self._append_succeeded(m.src, pr, m.index)
            else:
                self._append_rejected(m, pr)
        elif isinstance(m, HeartbeatResponse):
            self._heartbeat_answered(m, pr)
        elif isinstance(m, InstallSnapshotResponse):
            pr.recent_active = True
            self.node._snapshots.answered(m, pr)
        elif isinstance(m, ReadIndex):
            for request in m.requests:
                self.node._read_index.queue((m.src, request))
        else:
            self.node._count("dropped_unexpected")

    def _append_succeeded(self, follower: str, pr: Progress, index: int) -> None:
        node = self.node
        state = pr.state
        advanced = pr.acknowledged(index)
        if (state is ProgressState.PROBE and (advanced or pr.match == index)) or (
            state is ProgressState.SNAPSHOT and pr.match >= pr.snapshot_index
        ):
            pr.become_replicate()
        node._transfer.caught_up(follower, pr)
        if advanced:
            if pr.match > node.commit:  # else this acknowledgement cannot move the commit index
                self.maybe_commit()
            node._membership.replicated(follower)
        if pr.next <= node.log.last_index:
            self.send_pending.add(follower)
        node._membership.release_if_leaving(follower)

    def _append_rejected(self, m: AppendEntriesResponse, pr: Progress) -> None:
        match = pr.match
        if pr.rejected(m.index, self._next_from_hint(m)):
            if pr.match < match:
                self._report_lost_entries(m.src, match, pr.next - 1)
            self.send_pending.add(m.src)

    def _next_from_hint(self, m: AppendEntriesResponse) -> int:
        """Where to probe next after a rejection, skipping a whole conflicting term at once."""
        if m.conflict_term is not None:
            index = self.node.log.last_index_of_term(m.conflict_term, m.index)
            if index is not None:
                return index + 1
        return m.conflict_index

    def _heartbeat_answered(self, m: HeartbeatResponse, pr: Progress) -> None:
        if m.read_round:  # a follower of this term, even one that lost entries, confirms our lead
            self.node._read_index.echoed(m.src, m.read_round)
        if m.reject and pr.state is not ProgressState.SNAPSHOT and pr.match > 0:
            match = pr.match
            pr.lost_entries(m.last_index)
            self._report_lost_entries(m.src, match, m.last_index)
            self.send_pending.add(m.src)
        pr.heartbeat_answered()
        if pr.state is ProgressState.SNAPSHOT:
            self.node._snapshots.send_chunk(m.src, pr)  # resend, in case a chunk was lost
        elif pr.match < self.node.log.last_index:
            self.send_pending.add(m.src)

    def _report_lost_entries(self, follower: str, match: int, last_index: int) -> None:
        self.node._count("follower_lost_entries")
        self.node._event(
            "lost-entries",
            f"{follower} no longer holds the entries up to {match} it acknowledged (its log "
            f"ends at or differs before {last_index + 1}): probing it again from there",
        )
