"""Leadership transfer (thesis §3.10): catch the target up, then tell it to campaign at once.

While a transfer runs the leader accepts no proposal and no membership change; it aborts after
an election timeout if the target has not taken over.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import NotLeader, UnknownNode
from .messages import TimeoutNow
from .progress import Progress
from .ready import Role

if TYPE_CHECKING:
    from .raft import Raft


class LeadershipTransfer:
    """A leader's transfer in progress, if any: its target and how long it has run."""

    def __init__(self, node: Raft):
        self.node = node
        self.transferee: str | None = None
        self.elapsed = 0

    def reset(self) -> None:
        self.transferee = None

    def best_target(self) -> str | None:
        """The voter a leader that must step aside hands over to (§3.10): one heard from in this
        election timeout first, then the highest match (ties: the greatest id); None when this
        node is not leader or leads alone."""
        node = self.node
        if node.role is not Role.LEADER:
            return None
        progress = node._progress
        others = [n for n in node.configuration.voters if n != node.id and n in progress]
        if not others:
            return None
        return max(others, key=lambda n: (progress[n].recent_active, progress[n].match, n))

    def start(self, target: str) -> None:
        """Hand leadership to ``target``; see ``Raft.transfer_leadership``."""
        node = self.node
        if node.role is not Role.LEADER:
            raise NotLeader(node.leader)
        if target not in node.configuration.voters:
            raise UnknownNode(target, list(node.configuration.voters))
        if target == node.id or target == self.transferee:
            return
        self.transferee = target
        self.elapsed = 0
        node._event("transfer", f"transferring leadership to {target}")
        if node._replication.progress[target].match == node.log.last_index:
            self.send_timeout_now(target)
        else:
            node._replication.send_pending.add(target)

    def caught_up(self, target: str, pr: Progress) -> None:
        """``target`` acknowledged entries: once it holds our whole log, it may take over."""
        if target == self.transferee and pr.match == self.node.log.last_index:
            self.send_timeout_now(target)

    def send_timeout_now(self, target: str) -> None:
        node = self.node
        node._send(TimeoutNow(term=node.term, src=node.id, dst=target))

    def tick(self) -> None:
        if self.transferee is None:
            return
        self.elapsed += 1
        if self.elapsed >= self.node.config.election_timeout[0]:
            self.node._event("transfer", f"transfer to {self.transferee} aborted after an election timeout")
            self.transferee = None

    def ticks_until_abort(self) -> int | None:
        if self.transferee is None:
            return None
        return self.node.config.election_timeout[0] - self.elapsed
