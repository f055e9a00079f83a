"""A follower's side of replication: the leader's AppendEntries (§3.5) and heartbeats, each
answered so the leader knows what this node holds (snapshot chunks go to ``snapshots``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .messages import (
    AppendEntries,
    AppendEntriesResponse,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    Message,
    ReadIndex,
    ReadIndexResponse,
    TimeoutNow,
)

if TYPE_CHECKING:
    from .raft import Raft


class Follower:
    """What a follower does with its leader's messages."""

    def __init__(self, node: Raft):
        self.node = node

    def step(self, m: Message) -> None:
        """A follower's messages: the leader's, a transfer's TimeoutNow, and read answers."""
        node = self.node
        if isinstance(m, AppendEntries):
            node._elections.heard_from_leader(m.src)
            self._handle_append(m)
        elif isinstance(m, Heartbeat):
            node._elections.heard_from_leader(m.src)
            self._handle_heartbeat(m)
        elif isinstance(m, InstallSnapshot):
            node._elections.heard_from_leader(m.src)
            node._snapshots.receive(m)
        elif isinstance(m, TimeoutNow):
            if node._elections.promotable():
                node._event("transfer", f"TimeoutNow from {m.src}: campaigning at once")
                node._campaign(pre_vote=False, transfer=True)
        elif isinstance(m, ReadIndexResponse):
            node._read_index.handle_response(m)
        elif isinstance(m, ReadIndex):
            node._read_index.refuse_request(m)
        else:
            node._count("dropped_unexpected")

    def _advance_commit(self, index: int) -> None:
        if index > self.node.commit:
            self.node.commit = index

    def _handle_heartbeat(self, m: Heartbeat) -> None:
        """Commit up to ``m.commit`` only while we hold the entry the leader counted us at; else
        say so, with our last index, so the leader probes us again instead of waiting forever."""
        node = self.node
        if m.match <= node.commit or node.log.match_term(m.match, m.match_term):
            self._advance_commit(min(m.commit, node.log.last_index))
            node._send(HeartbeatResponse(term=node.term, src=node.id, dst=m.src, read_round=m.read_round))
            return
        node._count("heartbeat_rejected_lost_entries")
        node._send(HeartbeatResponse(term=node.term, src=node.id, dst=m.src, reject=True,
                                     last_index=min(node.log.last_index, m.match - 1), read_round=m.read_round))

    def _handle_append(self, m: AppendEntries) -> None:
        node = self.node
        if m.prev_index < node.commit:
            # Everything up to our commit index already matches the leader's log.
            node._send(AppendEntriesResponse(term=node.term, src=node.id, dst=m.src, success=True, index=node.commit))
            return
        if not node.log.match_term(m.prev_index, m.prev_term):
            conflict_index, conflict_term = node.log.conflict_hint(m.prev_index)
            node._send(
                AppendEntriesResponse(
                    term=node.term,
                    src=node.id,
                    dst=m.src,
                    success=False,
                    index=m.prev_index,
                    conflict_index=conflict_index,
                    conflict_term=conflict_term,
                )
            )
            return
        truncated_from = node.log.merge(m.entries, commit_index=node.commit)
        node._membership.track(m.entries, truncated_from)
        last_new = m.prev_index + len(m.entries)
        self._advance_commit(min(m.commit, last_new))
        node._send(AppendEntriesResponse(term=node.term, src=node.id, dst=m.src, success=True, index=last_new))
