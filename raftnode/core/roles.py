"""Role changes: what a node resets and which step and tick functions it takes up when it becomes
follower, pre-candidate (§9.6), candidate (§3.4) or leader, and what a leader does each tick.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .messages import Entry, EntryKind, Message
from .ready import Role

if TYPE_CHECKING:
    from .raft import Raft


class Roles:
    """Switches a node between roles; every collaborator forgets its per-term state on a switch."""

    def __init__(self, node: Raft):
        self.node = node

    def reset(self, term: int) -> None:
        node = self.node
        node._read_index.reset()  # refuses the waiting reads, in the term they were asked
        if term != node.term:
            node.term = term
            node.vote = None
        node.leader = None
        node._elections.reset()
        node._replication.reset()
        node._transfer.reset()
        node._membership.reset()

    def _take_up(self, role: Role, step: Callable[[Message], None], tick: Callable[[], None]) -> None:
        """Become ``role``: its messages go to ``step``, its ticks to ``tick``."""
        self.node.role = role
        self.node._step_role = step
        self.node._tick_role = tick

    def become_follower(self, term: int, leader: str | None, *, reason: str) -> None:
        node = self.node
        was = node.role
        self.reset(term)
        self._take_up(Role.FOLLOWER, node._follower.step, node._elections.tick)
        node.leader = leader
        if was is not Role.FOLLOWER:
            node._event("step-down", f"{was.value} -> follower in term {term}: {reason}")

    def become_pre_candidate(self) -> None:
        # A pre-vote round changes neither term nor vote (§9.6).
        node = self.node
        term = node.term
        self.reset(term)
        self._take_up(Role.PRE_CANDIDATE, node._elections.step_candidate, node._elections.tick)
        node._event("pre-vote", f"pre-vote for term {term + 1}")

    def become_candidate(self) -> None:
        node = self.node
        self.reset(node.term + 1)
        node.vote = node.id
        self._take_up(Role.CANDIDATE, node._elections.step_candidate, node._elections.tick)
        node._event("election", f"election for term {node.term}")

    def become_leader(self) -> None:
        node = self.node
        self.reset(node.term)
        self._take_up(Role.LEADER, node._replication.step, self.tick_leader)
        node.leader = node.id
        next_index = node.log.last_index + 1
        node._replication.start(next_index)
        # §3.6.2: a no-op of the new term lets earlier entries commit through it.
        node.log.append(Entry(node.term, next_index, b"", EntryKind.NOOP))
        node._replication.send_pending.update(node._replication.peers())
        node._event("leader", f"became leader in term {node.term}")
        node._membership.resume_catchup(next_index)

    def ticks_until_timer(self) -> int:
        """Ticks until the next timer of this role fires; see ``Raft.ticks_until_timer``."""
        node = self.node  # asked after every turn of the runtime: no list, no generator
        due = node._elections.ticks_until_timeout()
        reads = node._read_index.ticks_until_expiry()
        if reads is not None and reads < due:
            due = reads
        if node.role is Role.LEADER:
            for other in (
                node._replication.ticks_until_heartbeat(),
                node._transfer.ticks_until_abort(),
                node._membership.ticks_until_timer(),
            ):
                if other is not None and other < due:
                    due = other
        return due if due > 1 else 1

    def tick_leader(self) -> None:
        node = self.node
        if not node._elections.tick_leader():  # CheckQuorum made it step down
            return
        node._transfer.tick()
        node._membership.tick()
        node._read_index.expire_rounds()
        node._membership.give_up_on_leaving()
        node._replication.tick()
