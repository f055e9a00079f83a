"""What a leader knows about each follower's log, and how fast it may send to it.

A follower is in one of three states (as in etcd's raft):

- PROBE: we do not know where its log matches ours; send one append at a time and wait for
  the answer (or a heartbeat response) before sending the next.
- REPLICATE: its log matches up to ``match``; stream appends optimistically, at most
  ``max_inflight`` unacknowledged messages at once (pipelining).
- SNAPSHOT: the entries it needs were compacted away; stream it the snapshot, one chunk at a
  time, and resume appends once it acknowledges the snapshot's index.
"""

from __future__ import annotations

import enum
from collections import deque


class ProgressState(enum.Enum):
    PROBE = "probe"
    REPLICATE = "replicate"
    SNAPSHOT = "snapshot"


class Progress:
    """Replication state of one follower, kept by the leader."""

    __slots__ = (
        "match", "next", "state", "probe_sent", "inflight", "max_inflight", "recent_active",
        "snapshot_index", "snapshot_offset",
    )

    def __init__(self, *, next_index: int, max_inflight: int):
        self.match = 0
        self.next = next_index
        self.state = ProgressState.PROBE
        self.probe_sent = False
        self.inflight: deque[int] = deque()  # last index carried by each unacknowledged append
        self.max_inflight = max_inflight
        self.recent_active = False
        self.snapshot_index = 0  # the snapshot being sent, in SNAPSHOT state
        self.snapshot_offset = 0  # bytes of it the follower acknowledged

    def __repr__(self) -> str:
        return (
            f"Progress({self.state.value}, match={self.match}, next={self.next}, "
            f"inflight={len(self.inflight)})"
        )

    def is_paused(self) -> bool:
        if self.state is ProgressState.PROBE:
            return self.probe_sent
        if self.state is ProgressState.REPLICATE:
            return len(self.inflight) >= self.max_inflight
        return True

    def become_replicate(self) -> None:
        self.state = ProgressState.REPLICATE
        self.next = self.match + 1
        self.probe_sent = False
        self.inflight.clear()

    def become_snapshot(self, snapshot_index: int) -> None:
        self.state = ProgressState.SNAPSHOT
        self.snapshot_index = snapshot_index
        self.snapshot_offset = 0
        self.probe_sent = False
        self.inflight.clear()

    def sent(self, last_index: int, count: int) -> None:
        """Record an append carrying ``count`` entries that end at ``last_index``."""
        if self.state is ProgressState.REPLICATE:
            if count:
                self.next = last_index + 1
                self.inflight.append(last_index)
        else:
            self.probe_sent = True

    def acknowledged(self, index: int) -> bool:
        """The follower's log matches ours up to ``index``; returns whether ``match`` advanced."""
        inflight = self.inflight
        while inflight and inflight[0] <= index:
            inflight.popleft()
        if index <= self.match:
            return False
        self.match = index
        self.probe_sent = False
        if self.next <= index:
            self.next = index + 1
        return True

    def rejected(self, rejected_index: int, next_guess: int) -> bool:
        """The follower refused an append at ``rejected_index``; returns False if the answer is stale.

        ``next_guess`` is the leader's reading of the conflict hint; the new ``next`` never drops
        below ``match + 1`` and always moves below the rejected index.
        """
        if self.state is ProgressState.SNAPSHOT:
            return False
        if self.state is ProgressState.REPLICATE:
            if rejected_index <= self.match:
                return False
        elif rejected_index != self.next - 1:
            return False
        elif rejected_index <= self.match:
            # Our probe at ``match`` itself was refused: the follower lost entries it acknowledged.
            self.lost_entries(min(next_guess, rejected_index) - 1)
            return True
        self.next = max(self.match + 1, min(next_guess, rejected_index))
        self.state = ProgressState.PROBE
        self.probe_sent = False
        self.inflight.clear()
        return True

    def lost_entries(self, last_index: int) -> None:
        """The follower no longer holds what it acknowledged (its log ends at ``last_index`` or
        differs before ``match``): forget ``match`` and probe from after ``last_index``."""
        self.match = 0
        self.next = max(1, min(self.next, last_index + 1))
        self.state = ProgressState.PROBE
        self.probe_sent = False
        self.inflight.clear()

    def heartbeat_answered(self) -> None:
        """A heartbeat came back: unpause a probe, and free a slot if a lost append jammed the window."""
        self.recent_active = True
        self.probe_sent = False
        if self.state is ProgressState.REPLICATE and len(self.inflight) >= self.max_inflight:
            self.inflight.popleft()
