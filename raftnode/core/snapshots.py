"""Log compaction and snapshot transfer (thesis §5).

The shell snapshots its state machine and calls ``Raft.compact``; the node keeps that snapshot
(or the last one it installed) to send to any follower whose next entry was compacted away. The
leader streams it in chunks of ``snapshot_chunk_bytes`` (InstallSnapshot), resending from what the
follower says it holds; the follower gathers the chunks in order, installs the snapshot and hands
it to the shell in the next Ready.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .messages import AppendEntriesResponse, InstallSnapshot, InstallSnapshotResponse, SnapshotMeta
from .progress import Progress, ProgressState

if TYPE_CHECKING:
    from .raft import Raft


class Snapshots:
    """The node's latest snapshot, and the one a follower is receiving."""

    def __init__(self, node: Raft, latest: tuple[SnapshotMeta, bytes] | None):
        self.node = node
        self.latest = latest  # the latest snapshot, sent to followers that need it
        self._incoming: tuple[SnapshotMeta, bytearray] | None = None

    def compact(self, index: int, data: bytes) -> SnapshotMeta:
        """Forget the log up to ``index``, which ``data`` now stands for; see ``Raft.compact``."""
        node = self.node
        if index > node.applied or index > node.log.stable_index:
            raise ValueError(f"cannot snapshot at {index}: applied {node.applied}, persisted {node.log.stable_index}")
        term = node.log.term(index)
        assert term is not None
        configuration = node._configuration_at(index)
        meta = SnapshotMeta(index, term, configuration)
        node.log.compact(index, term)
        node._membership.rebase(index, configuration)
        self.latest = (meta, data)
        node._event("snapshot", f"compacted the log up to index {index}")
        return meta

    # -- at the leader -------------------------------------------------------------------------

    def start_sending(self, follower: str, pr: Progress) -> None:
        assert self.latest is not None, "log compacted without a snapshot"
        meta = self.latest[0]
        pr.become_snapshot(meta.index)
        self.node._event("snapshot", f"sending snapshot up to index {meta.index} to {follower}")
        self.send_chunk(follower, pr)

    def send_chunk(self, follower: str, pr: Progress) -> None:
        """Send ``follower`` the chunk after what it acknowledged (again, if it was lost)."""
        node = self.node
        assert self.latest is not None
        meta, data = self.latest
        if meta.index != pr.snapshot_index:  # we compacted again since: send the newer one
            pr.become_snapshot(meta.index)
        start = pr.snapshot_offset
        chunk = data[start : start + node.config.snapshot_chunk_bytes]
        node._send(
            InstallSnapshot(
                term=node.term, src=node.id, dst=follower, meta=meta, offset=start, data=chunk,
                done=start + len(chunk) >= len(data),
            )
        )

    def answered(self, m: InstallSnapshotResponse, pr: Progress) -> None:
        """The follower says how much it holds — less than we thought if it restarted meanwhile."""
        if pr.state is ProgressState.SNAPSHOT and m.index == pr.snapshot_index and m.offset != pr.snapshot_offset:
            pr.snapshot_offset = m.offset
            self.send_chunk(m.src, pr)

    # -- at a follower -------------------------------------------------------------------------

    def receive(self, m: InstallSnapshot) -> None:
        """Gather the chunks in order (saying how much we hold when one is missing), then install."""
        node = self.node
        meta = m.meta
        if meta.index <= node.commit:
            # We already hold everything it covers.
            self._incoming = None
            node._send(AppendEntriesResponse(term=node.term, src=node.id, dst=m.src, success=True, index=node.commit))
            return
        if m.offset == 0:
            self._incoming = (meta, bytearray())
        incoming = self._incoming
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
        self._incoming = None
        self._install((meta, bytes(incoming[1])), m.src)

    def _install(self, snapshot: tuple[SnapshotMeta, bytes], leader: str) -> None:
        """The last chunk arrived: restore from the snapshot and hand it to the shell's next Ready."""
        node = self.node
        meta = snapshot[0]
        kept = node.log.restore(meta.index, meta.term)
        node.commit = max(node.commit, meta.index)
        node.applied = meta.index
        node._membership.installed_snapshot(meta, kept)
        self.latest = node._installed_snapshot = snapshot
        node._event(
            "snapshot",
            f"installed snapshot up to index {meta.index} (term {meta.term}) from {leader}"
            + ("; kept the log after it" if kept else ""),
        )
        node._send(AppendEntriesResponse(term=node.term, src=node.id, dst=leader, success=True, index=meta.index))
