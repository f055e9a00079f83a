"""What the simulator knows of one node and of one client request made to it."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core.commands import CommandResult, CommandTracker
from ..core.raft import Raft
from ..node.apply import Applier, ApplyFailure
from ..wire.sessions import SessionStamp
from .disk import SimDisk
from .invariants import COMPACTED


@dataclass(eq=False)
class ClientRequest:
    """One ``run_command`` a simulated client made; ``result`` is set once it is answered."""

    id: int
    node: str
    command: str
    submitted: int
    result: CommandResult | None = None
    answered_at: int | None = None
    lost: bool = False  # the node crashed before answering
    session: SessionStamp | None = None  # the stamp of a session command
    read: bool = False  # a ReadIndex query, not a log entry
    floor: int = 0  # for a read: the highest index acknowledged when it was issued
    deadline: int | None = None  # for a read: when it expires

    @property
    def done(self) -> bool:
        return self.result is not None or self.lost


@dataclass(eq=False)
class SimBatch:
    """What a node's tracker holds for a batch entry: the requests of its commands, in order."""

    requests: list[ClientRequest]

    @property
    def lost(self) -> bool:
        return all(req.lost for req in self.requests)

    @lost.setter
    def lost(self, value: bool) -> None:
        for req in self.requests:
            req.lost = value


@dataclass(eq=False)
class SimNode:
    id: str
    disk: SimDisk
    bootstrap: tuple[str, ...] = ()  # the voters it starts with when its disk holds no configuration
    removed: bool = False  # it applied a committed configuration without itself and stopped
    raft: Raft | None = None
    applier: Applier | None = None
    tracker: CommandTracker[ClientRequest | SimBatch] = field(default_factory=CommandTracker)
    incarnation: int = 0
    apply_failures: list[ApplyFailure] = field(default_factory=list)
    last_commit: int = 0
    last_applied: int = 0
    reads: dict[int, ClientRequest] = field(default_factory=dict)  # read id -> waiting for its ReadState
    ready_reads: list[tuple[int, ClientRequest]] = field(default_factory=list)  # (read index, read) to serve
    write_fault: str | None = None  # a disk fault armed to hit its next write (see DISK_WRITE_FAULTS)
    disk_full: bool = False  # its writes fail for want of space (see SimCluster.fill_disk)
    leading_without_disk: bool = False  # a leader whose write found the disk full (it refuses commands)
    refused: str | None = None  # why it refuses to start (a corrupt disk): it stays down

    @property
    def alive(self) -> bool:
        return self.raft is not None

    def term_at(self, index: int) -> int | None:
        """The term at ``index`` in the node's in-memory log (COMPACTED inside its snapshot)."""
        assert self.raft is not None
        log = self.raft.log
        if index <= 0 or index > log.last_index:
            return None
        return COMPACTED if index < log.offset else log.term(index)

