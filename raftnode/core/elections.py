"""Elections (thesis §3.4): the election timer, PreVote (§9.6), votes, the leader lease (§4.2.3)
and a leader's CheckQuorum (§6.2).

``Elections`` owns the election timer and the votes of the current round; the node's term, vote
and role stay on :class:`~raftnode.core.raft.Raft`, whose role changes it asks for. Campaigns go
through ``Raft._campaign`` so that a test engine can plant a bug there.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from .messages import (
    AppendEntries,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    Message,
    ReadIndex,
    RequestVote,
    RequestVoteResponse,
)
from .quorum import VoteResult
from .ready import Role

if TYPE_CHECKING:
    from .raft import Raft


class Elections:
    """One node's election timer and the votes of its current (pre-)campaign."""

    def __init__(self, node: Raft, rng: random.Random):
        self.node = node
        self._rng = rng  # the node's only source of randomness
        self.elapsed = 0  # ticks since the timer was last reset (by a leader's message, a vote, a term)
        self.randomized_timeout = 0
        self.votes: dict[str, bool] = {}

    def reset(self) -> None:
        """A new term or role: restart the timer with a fresh random timeout, forget the votes."""
        self.elapsed = 0
        lo, hi = self.node.config.election_timeout
        self.randomized_timeout = self._rng.randrange(lo, hi)
        self.votes = {}

    def promotable(self) -> bool:
        """Only a voter campaigns: a learner, or a node waiting to join, never does."""
        return self.node.id in self.node.configuration.voters

    def heard_from_leader(self, leader: str) -> None:
        self.elapsed = 0
        self.node.leader = leader

    # -- timers --------------------------------------------------------------------------------

    def tick(self) -> None:
        """A follower's or candidate's tick: campaign once the randomized timeout has passed."""
        node = self.node
        self.elapsed += 1
        if self.elapsed >= self.randomized_timeout and self.promotable():
            node._campaign(pre_vote=node.config.pre_vote)

    def tick_leader(self) -> bool:
        """A leader's tick: every election timeout, CheckQuorum (§6.2). False: it stepped down."""
        node = self.node
        self.elapsed += 1
        if self.elapsed < node.config.election_timeout[0]:
            return True
        self.elapsed = 0
        if node.config.check_quorum:
            progress = node._replication.progress
            active = [n for n, pr in progress.items() if pr.recent_active or n == node.id]
            if not node.configuration.has_quorum(active):
                node._roles.become_follower(node.term, None, reason="check-quorum: lost contact with a majority")
                return False
            for pr in progress.values():
                pr.recent_active = False
        return True

    def ticks_until_timeout(self) -> int:
        """Ticks until this timer fires: a campaign, or a leader's CheckQuorum round."""
        node = self.node
        if node.role is Role.LEADER:
            return node.config.election_timeout[0] - self.elapsed
        if not self.promotable():
            return node.config.election_timeout[1]
        return self.randomized_timeout - self.elapsed

    # -- campaigning ---------------------------------------------------------------------------

    def campaign(self, *, pre_vote: bool, transfer: bool) -> None:
        """Become (pre-)candidate, vote for ourselves and ask every other voter."""
        node = self.node
        if pre_vote:
            node._roles.become_pre_candidate()
            term = node.term + 1
        else:
            node._roles.become_candidate()
            term = node.term
        self.votes[node.id] = True
        if node.configuration.vote_result(self.votes) is VoteResult.WON:
            self._won()
            return
        for voter in sorted(node.configuration.voters):
            if voter != node.id:
                node._send(
                    RequestVote(
                        term=term,
                        src=node.id,
                        dst=voter,
                        last_log_index=node.log.last_index,
                        last_log_term=node.log.last_term,
                        pre_vote=pre_vote,
                        transfer=transfer,
                    )
                )

    def _won(self) -> None:
        if self.node.role is Role.PRE_CANDIDATE:
            self.node._campaign(pre_vote=False)
        else:
            self.node._become_leader()

    def step_candidate(self, m: Message) -> None:
        """A (pre-)candidate's messages: count votes; a leader of our term means it won (§3.4)."""
        node = self.node
        if isinstance(m, (AppendEntries, Heartbeat, InstallSnapshot)):
            node._roles.become_follower(node.term, m.src, reason=f"{m.src} won term {node.term}")
            node._follower.step(m)
        elif isinstance(m, RequestVoteResponse):
            if m.pre_vote != (node.role is Role.PRE_CANDIDATE):
                node._count("dropped_unexpected")
                return
            self.votes.setdefault(m.src, m.granted)
            result = node.configuration.vote_result(self.votes)
            if result is VoteResult.WON:
                self._won()
            elif result is VoteResult.LOST:
                node._roles.become_follower(node.term, None, reason="lost the election")
        elif isinstance(m, ReadIndex):
            node._read_index.refuse_request(m)
        else:
            node._count("dropped_unexpected")

    # -- terms and voting --------------------------------------------------------------------------------

    def admit(self, m: Message) -> bool:
        """Term bookkeeping for a message of another term than ours: adopt a higher term (not
        for a vote request during the leader lease, nor for a granted pre-vote), answer or drop an
        older one. False: the message goes no further."""
        node = self.node
        if m.term < node.term:
            self.answer_stale(m)
            return False
        if isinstance(m, RequestVote):
            if not m.transfer and self.in_leader_lease(m.pre_vote):
                # §4.2.3 / §9.6: while we hear from a leader, ignore disruptive candidates.
                node._count("dropped_vote_in_lease")
                return False
            if not m.pre_vote:
                node._roles.become_follower(m.term, None, reason=f"vote request from {m.src} in term {m.term}")
        elif isinstance(m, RequestVoteResponse) and m.pre_vote and m.granted:
            pass  # a granted pre-vote carries the prospective term, not the voter's
        else:
            leader = m.src if isinstance(m, (AppendEntries, Heartbeat, InstallSnapshot)) else None
            node._roles.become_follower(m.term, leader, reason=f"saw term {m.term} from {m.src}")
        return True

    def in_leader_lease(self, pre_vote: bool) -> bool:
        """We heard from a live leader within the minimum election timeout (§4.2.3, §9.6)."""
        node = self.node
        if not (pre_vote or node.config.check_quorum):
            return False
        return node.leader is not None and self.elapsed < node.config.election_timeout[0]

    def handle_request_vote(self, m: RequestVote) -> None:
        """Grant a vote to an up-to-date log (§3.6.1), once per term; a pre-vote changes nothing."""
        node = self.node
        log_ok = node.log.is_up_to_date(m.last_log_index, m.last_log_term)
        if m.pre_vote:
            granted = log_ok and m.term > node.term
        else:
            can_vote = node.vote == m.src or (node.vote is None and node.leader is None)
            granted = can_vote and log_ok
            if granted:
                node.vote = m.src
                self.elapsed = 0
        term = m.term if (m.pre_vote and granted) else node.term
        node._send(RequestVoteResponse(term=term, src=node.id, dst=m.src, granted=granted, pre_vote=m.pre_vote))

    def answer_stale(self, m: Message) -> None:
        """A message from an older term: tell a stale leader or pre-candidate our term, drop the rest."""
        node = self.node
        if isinstance(m, (AppendEntries, Heartbeat, InstallSnapshot)) and (
            node.config.pre_vote or node.config.check_quorum
        ):
            # With pre-vote or check-quorum a node may hold a higher term than a live leader; answering
            # makes that leader step down instead of leaving the node stranded forever.
            node._send(HeartbeatResponse(term=node.term, src=node.id, dst=m.src))
        elif isinstance(m, RequestVote) and m.pre_vote:
            node._send(RequestVoteResponse(term=node.term, src=node.id, dst=m.src, granted=False, pre_vote=True))
        else:
            node._count("dropped_stale_term")
