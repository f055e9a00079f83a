"""The pure Raft protocol core: no I/O, no clocks, no global randomness (standard library only)."""

from .errors import LogCompacted, NotLeader, RaftError, SafetyViolation, TransferInProgress, UnknownNode
from .log import RaftLog
from .messages import (
    AppendEntries,
    AppendEntriesResponse,
    Entry,
    EntryKind,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    InstallSnapshotResponse,
    Message,
    ReadIndex,
    ReadIndexResponse,
    RequestVote,
    RequestVoteResponse,
    SnapshotMeta,
    TimeoutNow,
)
from .progress import Progress, ProgressState
from .quorum import Configuration, VoteResult
from .raft import Raft, RaftConfig
from .readindex import ReadState
from .ready import Event, HardState, Ready, Role, SoftState

__all__ = [
    "AppendEntries",
    "AppendEntriesResponse",
    "Configuration",
    "Entry",
    "EntryKind",
    "Event",
    "HardState",
    "Heartbeat",
    "HeartbeatResponse",
    "InstallSnapshot",
    "InstallSnapshotResponse",
    "LogCompacted",
    "Message",
    "NotLeader",
    "Progress",
    "ProgressState",
    "Raft",
    "RaftConfig",
    "RaftError",
    "RaftLog",
    "ReadIndex",
    "ReadIndexResponse",
    "ReadState",
    "Ready",
    "RequestVote",
    "RequestVoteResponse",
    "Role",
    "SafetyViolation",
    "SnapshotMeta",
    "SoftState",
    "TimeoutNow",
    "TransferInProgress",
    "UnknownNode",
    "VoteResult",
]
