"""Errors raised by the core for local misuse.

Only the local caller's mistakes raise (proposing at a follower, transferring to an unknown
node). A peer that breaks the rules never raises: its message is dropped and counted.
"""

from __future__ import annotations


class RaftError(Exception):
    """Base class of the core's errors."""


class NotLeader(RaftError):
    """This node is not the leader; ``leader`` is the one it knows of, or None during an election."""

    def __init__(self, leader: str | None):
        self.leader = leader
        super().__init__(f"not the leader (leader: {leader or 'unknown'})")


class TransferInProgress(RaftError):
    """The leader is handing leadership to ``target`` and accepts no proposals meanwhile."""

    def __init__(self, target: str):
        self.target = target
        super().__init__(f"leadership transfer to {target} in progress; retry")


class UnknownNode(RaftError):
    def __init__(self, node: str, known: list[str]):
        self.node = node
        super().__init__(f"unknown node {node!r}; known nodes: {', '.join(sorted(known))}")


class LogCompacted(RaftError):
    """The requested index lies inside the snapshot and is no longer in the log."""

    def __init__(self, index: int, offset: int):
        super().__init__(f"index {index} is compacted (log starts after {offset})")


class SafetyViolation(AssertionError):
    """The protocol's safety was broken; this is a bug, never a peer's fault to tolerate."""


class MembershipError(RaftError):
    """A membership change was refused; the message says why (pending change, last voter, ...)."""
