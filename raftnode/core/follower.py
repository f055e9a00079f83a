"""A follower's side of replication: the leader's AppendEntries (§3.5), heartbeats and snapshot
chunks (§5), each answered so the leader knows what this node holds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .messages import (
    AppendEntries,
    AppendEntriesResponse,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    InstallSnapshotResponse,
    Message,
    ReadIndex,
    ReadIndexResponse,
    SnapshotMeta,
    TimeoutNow,
)

if TYPE_CHECKING:
    from .raft import Raft


class Follower:
    """What a follower does with its leader's messages; holds a snapshot being received."""

    def __init__(self, node: Raft):
        self.node = node
        self._incoming_snapshot: tuple[SnapshotMeta, bytearray] | None = None

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
            self._handle_install_snapshot(m)
        elif isinstance(m, TimeoutNow):
            if node._promotable():
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

    def _handle_install_snapshot(self, m: InstallSnapshot) -> None:
        """Gather the chunks in order (saying how much we hold when one is missing), then install."""
        node = self.node
        meta = m.meta
        if meta.index <= node.commit:
            # We already hold everything it covers.
            self._incoming_snapshot = None
            node._send(AppendEntriesResponse(term=node.term, src=node.id, dst=m.src, success=True, index=node.commit))
            return
        if m.offset == 0:
            self._incoming_snapshot = (meta, bytearray())
        incoming = self._incoming_snapshot
        if incoming is None or incoming[0] != meta or len(incoming[1]) != m.offset:
            have = len(incoming[1]) if incoming is not None and incoming[0] == meta else 0
            node._send(InstallSnapshotResponse(term=node.term, src=node.id, dst=m.src, index=meta.index, offset=have))
            return
        incoming[1].extend(m.data)
        if not m.done:
            node._send(
                InstallSnapshotResponse(term=node.term, src=node.id, dst=m.src, index=meta.index, offset=len(incoming[1]))
            )
            return
        self._incoming_snapshot = None
        self._install((meta, bytes(incoming[1])), m.src)

    def _install(self, snapshot: tuple[SnapshotMeta, bytes], leader: str) -> None:
        """The last chunk arrived: restore from the snapshot and hand it to the shell's next Ready."""
        node = self.node
        meta = snapshot[0]
        kept = node.log.restore(meta.index, meta.term)
        node.commit = max(node.commit, meta.index)
        node.applied = meta.index
        node._membership.installed_snapshot(meta, kept)
        node._snapshot = node._installed_snapshot = snapshot
        node._event(
            "snapshot",
            f"installed snapshot up to index {meta.index} (term {meta.term}) from {leader}"
            + ("; kept the log after it" if kept else ""),
        )
        node._send(AppendEntriesResponse(term=node.term, src=node.id, dst=leader, success=True, index=meta.index))
