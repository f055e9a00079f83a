"""The static settings of one Raft node (``RaftConfig``), checked when built."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class RaftConfig:
    """Static settings of one node. Timeouts are in ticks.

    Args:
        node_id: this node's id.
        voters: the bootstrap configuration — ids of every voting member, this node included —
            used only while storage holds no configuration; empty for a node that joins an
            existing cluster (it waits, never campaigning, until the leader reaches it).
        election_timeout: (min, max) ticks; each timeout is drawn uniformly from [min, max).
        heartbeat_interval: ticks between leader heartbeats; must be below the minimum election timeout.
        pre_vote: run a pre-vote round before incrementing the term (§9.6).
        check_quorum: a leader that has not heard from a majority for an election timeout steps
            down, and followers ignore vote requests while they hear from a leader (§6.2, §4.2.3).
        max_msg_entries / max_msg_bytes: the cap on one AppendEntries batch.
        max_inflight: unacknowledged AppendEntries allowed per follower (the pipeline window).
        snapshot_chunk_bytes: the size of one InstallSnapshot chunk.
    """

    node_id: str
    voters: tuple[str, ...]
    election_timeout: tuple[int, int] = (10, 20)
    heartbeat_interval: int = 2
    pre_vote: bool = True
    check_quorum: bool = True
    max_msg_entries: int = 512
    max_msg_bytes: int = 1 << 20
    max_inflight: int = 64
    snapshot_chunk_bytes: int = 1 << 20
    catchup_rounds: int = 10

    def __post_init__(self) -> None:
        lo, hi = self.election_timeout
        if self.voters and self.node_id not in self.voters:
            raise ValueError(f"node {self.node_id!r} is not among the voters {list(self.voters)}")
        if len(set(self.voters)) != len(self.voters):
            raise ValueError(f"duplicate voter ids in {list(self.voters)}")
        if not 1 <= self.heartbeat_interval < lo < hi:
            raise ValueError(
                "need 1 <= heartbeat_interval < election_timeout min < max, got "
                f"heartbeat_interval={self.heartbeat_interval}, election_timeout={self.election_timeout}"
            )
        if min(self.max_msg_entries, self.max_msg_bytes, self.max_inflight, self.snapshot_chunk_bytes,
               self.catchup_rounds) < 1:
            raise ValueError(
                "max_msg_entries, max_msg_bytes, max_inflight, snapshot_chunk_bytes and catchup_rounds must be positive"
            )

    @property
    def catchup_round_limit(self) -> int:
        """Ticks one catch-up round of a new server may last before the leader gives up on it."""
        return 10 * self.election_timeout[1]
