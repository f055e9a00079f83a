"""Elections (§3.4), PreVote (§9.6), CheckQuorum (§6.2, §4.2.3) and the new leader's no-op (§3.6.2).

The "Elections" section of the scenario catalog, claim by claim. Cluster-level behaviour is
driven through :class:`SimCluster` (every step checked against the invariants) and parametrized
over ``SEEDS`` so that a claim holds beyond one lucky schedule; the seed is in each test id and
assertion message. Where a claim needs exact control over which message arrives when (a split vote,
a vote across a restart, a candidate with a shorter log, stale terms, the commit rule), the test
drives :class:`Raft` cores by hand through :class:`Wire`, which plays the shell's part (persist,
then send, then advance) and delivers nothing unless told to.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from raftnode.core.errors import NotLeader
from raftnode.core.messages import (
    AppendEntries,
    AppendEntriesResponse,
    Entry,
    EntryKind,
    Heartbeat,
    HeartbeatResponse,
    Message,
    RequestVote,
    RequestVoteResponse,
)
from raftnode.core.raft import Raft, RaftConfig
from raftnode.core.ready import HardState, Ready, Role
from raftnode.sim.cluster import SimCluster

from .helpers import stable_cluster

SEEDS = range(20)
LO, HI = 10, 20  # SimCluster's default election timeout range, in ticks
IDS = ("n1", "n2", "n3")
QUIET = 6 * HI  # a long spell in which a disruption would show: six maximal election timeouts


# -- a hand-driven cluster ------------------------------------------------------------------------


@dataclass
class Disk:
    hard_state: HardState = field(default_factory=HardState)
    entries: list[Entry] = field(default_factory=list)


class Wire:
    """Raft cores whose messages the test moves by hand.

    Every message a core emits lands in ``outbox``; nothing is delivered until ``deliver`` (or
    ``step``) says so. ``flush`` plays the shell: persist the Ready's hard state and entries to
    the node's ``Disk``, collect its messages, then ``advance``. ``crash``/``restart`` keep only
    the disk.
    """

    def __init__(self, ids: tuple[str, ...] = IDS, *, seed: int = 0, hard_state: HardState | None = None,
                 **config: object):
        self.ids = ids
        self.seed = seed
        self.config = config
        self.disks = {i: Disk(hard_state=hard_state or HardState()) for i in ids}
        self.nodes: dict[str, Raft] = {}
        self.readies: list[tuple[str, Ready]] = []
        self.outbox: list[Message] = []
        self._boots = 0
        for i in ids:
            self.restart(i)

    def __getitem__(self, node: str) -> Raft:
        return self.nodes[node]

    def restart(self, node: str) -> Raft:
        """(Re)build ``node`` from nothing but its disk."""
        self._boots += 1
        disk = self.disks[node]
        raft = Raft(
            RaftConfig(node_id=node, voters=self.ids, **self.config),  # type: ignore[arg-type]
            rng=random.Random(f"{self.seed}/{node}/{self._boots}"),
            hard_state=disk.hard_state,
            entries=list(disk.entries),
        )
        self.nodes[node] = raft
        return raft

    def crash(self, node: str) -> None:
        del self.nodes[node]

    def flush(self, node: str) -> list[Message]:
        raft = self.nodes[node]
        sent: list[Message] = []
        while raft.has_ready():
            ready = raft.ready()
            self.readies.append((node, ready))
            disk = self.disks[node]
            if ready.entries:
                del disk.entries[ready.entries[0].index - 1 :]
                disk.entries.extend(ready.entries)
            if ready.hard_state is not None:
                disk.hard_state = ready.hard_state
            sent.extend(ready.messages)
            raft.advance(ready)
        self.outbox.extend(sent)
        return sent

    def step(self, m: Message) -> list[Message]:
        """Hand ``m`` to its destination; returns what that node sent in answer."""
        self.nodes[m.dst].step(m)
        return self.flush(m.dst)

    def tick(self, node: str, ticks: int = 1) -> None:
        for _ in range(ticks):
            self.nodes[node].tick()
            self.flush(node)

    def tick_until(self, node: str, role: Role, *, max_ticks: int = 10 * HI) -> None:
        for _ in range(max_ticks):
            if self.nodes[node].role is role:
                return
            self.tick(node)
        assert self.nodes[node].role is role, f"{node} never became {role.value}"

    def deliver(self, pred: Callable[[Message], bool] = lambda m: True) -> int:
        """Deliver every message in the outbox matching ``pred`` (and matching replies), in order.

        Messages to or from a crashed node are lost. Returns how many were delivered.
        """
        count = 0
        while True:
            due = next((m for m in self.outbox if pred(m)), None)
            if due is None:
                return count
            self.outbox.remove(due)
            if due.dst in self.nodes and due.src in self.nodes:
                self.step(due)
                count += 1

    def elect(self, node: str) -> None:
        """Let ``node`` time out and run an election with every message delivered."""
        self.tick_until(node, Role.PRE_CANDIDATE if self.nodes[node].config.pre_vote else Role.CANDIDATE)
        self.deliver()
        assert self.nodes[node].role is Role.LEADER, f"{node} did not win its election"

    def run(self, ticks: int, *, until: Callable[[], bool] = lambda: False) -> int:
        """Synchronous rounds: every live node ticks, then everything is delivered. Returns rounds run."""
        for done in range(ticks):
            if until():
                return done
            for node in sorted(self.nodes):
                self.tick(node)
            self.deliver()
        return ticks

    def leaders(self) -> list[str]:
        return [i for i, r in self.nodes.items() if r.role is Role.LEADER]


def log_of(raft: Raft) -> list[Entry]:
    return raft.log.slice(1, raft.log.last_index + 1) if raft.log.last_index else []


def follower_of(c: SimCluster, leader: str, seed: int) -> str:
    followers = sorted(i for i in c.ids if i != leader)
    return followers[seed % len(followers)]


def agreed_leader(c: SimCluster, nodes: list[str]) -> str | None:
    """The leader every node in ``nodes`` follows in one term, if there is one."""
    rafts = [c.raft(n) for n in nodes]
    leader = rafts[0].leader
    if leader is None or leader not in nodes or c.raft(leader).role is not Role.LEADER:
        return None
    term = c.raft(leader).term
    return leader if all(r.leader == leader and r.term == term for r in rafts) else None


# -- cold start ------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [3, 5])
@pytest.mark.parametrize("seed", SEEDS)
def test_a_cold_cluster_elects_exactly_one_leader_and_every_node_learns_it(size, seed):
    """§3.4: from a cold start one leader is elected within a few election timeouts, every other
    node follows it in the same term, and it stays the only leader while nothing fails."""
    c = SimCluster(size, seed=seed)
    assert c.run_until(lambda: c.leader() is not None and agreed_leader(c, list(c.ids)) is not None,
                       max_ticks=3 * HI), f"seed {seed}: no agreed leader within {3 * HI} ticks"
    leader = c.leader()
    term = c.raft(leader).term
    for _ in range(3 * HI):
        c.tick()
        roles = {i: c.raft(i).role for i in c.ids}
        assert [i for i, r in roles.items() if r is Role.LEADER] == [leader], f"seed {seed}: roles {roles}"
        assert all(r is Role.FOLLOWER for i, r in roles.items() if i != leader), f"seed {seed}: {roles}"
        for i in c.ids:
            assert (c.raft(i).leader, c.raft(i).term) == (leader, term), f"seed {seed}: {i} does not follow {leader}"


# -- a lost leader is replaced ---------------------------------------------------------------------


@pytest.mark.parametrize("size", [3, 5])
@pytest.mark.parametrize("seed", SEEDS)
def test_a_crashed_leader_is_replaced_within_three_election_timeouts(size, seed):
    """§3.4: when the leader crashes, the survivors elect a new leader in a higher term within a
    bounded number of election timeouts; the restarted old leader then follows it."""
    c, old, term = stable_cluster(size, seed)
    c.crash(old)
    survivors = [i for i in c.ids if i != old]
    start = c.now
    assert c.run_until(lambda: agreed_leader(c, survivors) is not None, max_ticks=3 * HI), (
        f"seed {seed}: no new leader {3 * HI} ticks after {old} crashed"
    )
    new = agreed_leader(c, survivors)
    assert new != old and c.raft(new).term > term, f"seed {seed}: leader {new} term {c.raft(new).term}"
    assert c.now - start <= 3 * HI
    c.restart(old)
    assert c.stabilize(max_ticks=5 * HI), f"seed {seed}: restarted {old} did not rejoin"
    assert c.raft(old).role is Role.FOLLOWER and c.raft(old).leader == c.leader(), f"seed {seed}"


@pytest.mark.parametrize(
    "config",
    [{"pre_vote": True, "check_quorum": True}, {"pre_vote": False, "check_quorum": False}],
    ids=["prevote+checkquorum", "plain"],
)
@pytest.mark.parametrize("seed", SEEDS)
def test_an_isolated_leader_is_replaced_and_steps_down_when_it_rejoins(config, seed):
    """§3.4: a leader cut off from everyone is replaced by the majority within a bounded number
    of election timeouts; on rejoining, the old leader sees the higher term and follows the new
    leader (with or without CheckQuorum having already made it step down)."""
    c, old, term = stable_cluster(3, seed, **config)
    c.isolate(old)
    majority = [i for i in c.ids if i != old]
    assert c.run_until(lambda: agreed_leader(c, majority) is not None, max_ticks=3 * HI), (
        f"seed {seed}: the majority elected no leader within {3 * HI} ticks"
    )
    new = agreed_leader(c, majority)
    new_term = c.raft(new).term
    assert new != old and new_term > term, f"seed {seed}"
    if not config["check_quorum"]:
        assert c.raft(old).role is Role.LEADER and c.raft(old).term == term, (
            f"seed {seed}: without CheckQuorum the isolated leader should still believe it leads"
        )
    c.heal()
    assert c.stabilize(max_ticks=5 * HI), f"seed {seed}"
    assert c.raft(old).role is Role.FOLLOWER, f"seed {seed}"
    assert c.raft(old).term >= new_term and c.raft(old).leader == c.leader(), f"seed {seed}"


# -- split votes -----------------------------------------------------------------------------------


def _split_vote(seed: int, election_timeout: tuple[int, int]) -> Wire:
    """Make all three nodes candidates of term 1 at once, then deliver: everyone refuses everyone."""
    w = Wire(seed=seed, pre_vote=False, check_quorum=False, election_timeout=election_timeout)
    for node in IDS:
        w.tick_until(node, Role.CANDIDATE)  # its RequestVotes wait in the outbox
    assert all((w[n].term, w[n].vote) == (1, n) for n in IDS)
    w.deliver()
    assert w.leaders() == [], f"seed {seed}: the split vote produced a leader"
    assert all(w[n].term == 1 and w[n].role is not Role.LEADER for n in IDS), f"seed {seed}"
    return w


@pytest.mark.parametrize("seed", SEEDS)
def test_a_split_vote_is_resolved_by_randomized_election_timeouts(seed):
    """§3.4: when every node stood in the same term and nobody won, randomized timeouts make one
    node time out first in the next term, and it wins: exactly one leader, all others follow."""
    w = _split_vote(seed, (LO, HI))
    rounds = w.run(5 * HI, until=lambda: len(w.leaders()) == 1 and all(r.leader == w.leaders()[0]
                                                                      for r in w.nodes.values()))
    leaders = w.leaders()
    assert len(leaders) == 1, f"seed {seed}: leaders {leaders} after {rounds} rounds"
    leader = w[leaders[0]]
    assert leader.term >= 2, f"seed {seed}"
    assert all(r.term == leader.term and r.leader == leader.id for r in w.nodes.values()), f"seed {seed}"
    assert rounds <= 3 * HI, f"seed {seed}: took {rounds} ticks"


def test_split_votes_repeat_forever_when_every_node_draws_the_same_timeout():
    """§3.4 (why timeouts are randomized): with a degenerate range every node times out in the
    same tick after a split, so every term splits again and no leader ever emerges. This is the
    control for the test above: its resolution comes from the randomization."""
    w = _split_vote(0, (LO, LO + 1))
    w.run(10 * HI)
    assert w.leaders() == []
    assert len({r.term for r in w.nodes.values()}) == 1 and w["n1"].term >= 10


# -- one vote per term, persisted ------------------------------------------------------------------


def vote_request(term: int, src: str, dst: str, last_index: int = 0, last_term: int = 0, **kw) -> RequestVote:
    return RequestVote(term=term, src=src, dst=dst, last_log_index=last_index, last_log_term=last_term, **kw)


def grants(messages: list[Message], to: str) -> list[bool]:
    return [m.granted for m in messages if isinstance(m, RequestVoteResponse) and m.dst == to]


CONFIGS = pytest.mark.parametrize(
    "config",
    [{}, {"pre_vote": False, "check_quorum": False}],
    ids=["prevote+checkquorum", "plain"],
)


@CONFIGS
def test_a_node_grants_at_most_one_vote_per_term_and_persists_it_before_answering(config):
    """§3.4: each server votes for at most one candidate in a term (first come, first served);
    a retransmitted request from the same candidate is granted again. The Ready carrying the
    grant also carries the hard state recording the vote, so it is durable before it is sent."""
    w = Wire(**config)
    assert grants(w.step(vote_request(1, "n2", "n1")), "n2") == [True]
    _, ready = w.readies[-1]
    assert ready.hard_state is not None and (ready.hard_state.term, ready.hard_state.vote) == (1, "n2")
    assert any(isinstance(m, RequestVoteResponse) and m.granted for m in ready.messages)
    assert grants(w.step(vote_request(1, "n3", "n1")), "n3") == [False]
    assert grants(w.step(vote_request(1, "n2", "n1")), "n2") == [True]
    assert (w["n1"].term, w["n1"].vote) == (1, "n2")


@CONFIGS
def test_a_vote_survives_a_restart_and_a_second_candidate_of_that_term_is_refused(config):
    """§3.4 and §3.8: currentTerm and votedFor are persistent state. A node that voted, crashed
    and restarted from its persisted HardState refuses another candidate of the same term, still
    grants the one it voted for, and votes afresh in a later term."""
    w = Wire(**config)
    assert grants(w.step(vote_request(1, "n2", "n1")), "n2") == [True]
    w.crash("n1")
    assert w.disks["n1"].hard_state == HardState(term=1, vote="n2", commit=0)
    restarted = w.restart("n1")
    assert (restarted.term, restarted.vote) == (1, "n2")
    assert grants(w.step(vote_request(1, "n3", "n1")), "n3") == [False]
    assert w["n1"].vote == "n2"
    assert grants(w.step(vote_request(1, "n2", "n1")), "n2") == [True]
    assert grants(w.step(vote_request(2, "n3", "n1")), "n3") == [True]
    assert w.disks["n1"].hard_state.term == 2 and w.disks["n1"].hard_state.vote == "n3"


def test_no_node_grants_two_candidates_its_vote_in_one_term_under_crashes_and_restarts():
    """§3.4: across seeded runs full of elections, crashes and restarts, no node ever sends two
    different candidates a granted vote for the same term."""
    total_grants = 0
    restarts = 0
    for seed in SEEDS:
        c = SimCluster(3, seed=seed, pre_vote=False, check_quorum=False)
        granted: dict[tuple[str, int], set[str]] = {}
        send = c.network.send

        def recording_send(m: Message, now: int, granted=granted, send=send) -> None:
            if isinstance(m, RequestVoteResponse) and m.granted and not m.pre_vote:
                granted.setdefault((m.src, m.term), set()).add(m.dst)
            send(m, now)

        c.network.send = recording_send  # type: ignore[method-assign]
        rng = random.Random(f"votes-{seed}")
        for _ in range(40):
            down = [n.id for n in c.nodes.values() if not n.alive]
            if down and rng.random() < 0.6:
                c.restart(rng.choice(down))
                restarts += 1
            elif not down:
                c.crash(rng.choice(c.ids))
            if rng.random() < 0.3:
                c.drop(rng.choice(c.ids), rate=0.5)
            elif rng.random() < 0.3:
                c.heal()
            c.tick(rng.randint(1, HI))
        for (voter, term), candidates in granted.items():
            assert len(candidates) == 1, f"seed {seed}: {voter} voted for {sorted(candidates)} in term {term}"
        total_grants += len(granted)
    assert total_grants > 100 and restarts > 100, (total_grants, restarts)  # the runs did exercise voting


# -- the election restriction ----------------------------------------------------------------------

VOTER_LOG = [Entry(1, 1), Entry(1, 2), Entry(2, 3)]  # last term 2, last index 3


@pytest.mark.parametrize("pre_vote", [False, True], ids=["vote", "prevote"])
@pytest.mark.parametrize(
    "last_index, last_term, granted",
    [
        (5, 1, False),  # lower last term, although longer: refused
        (2, 2, False),  # same last term, shorter: refused
        (3, 2, True),  # same last term, same length: granted
        (4, 2, True),  # same last term, longer: granted
        (1, 3, True),  # higher last term, although shorter: granted
    ],
    ids=["lower-last-term-longer-log", "same-term-shorter-log", "same-log", "same-term-longer-log",
         "higher-term-shorter-log"],
)
def test_a_candidate_whose_log_is_less_up_to_date_is_refused(pre_vote, last_index, last_term, granted):
    """§3.6.1: a voter denies its vote when its own log is more up to date: the later last term
    wins, and with equal last terms the longer log wins. The same rule answers pre-votes (§9.6).
    A refusal still makes the voter adopt a higher term of a real vote request, without a vote."""
    voter = Raft(RaftConfig(node_id="n1", voters=IDS), rng=random.Random(0),
                 hard_state=HardState(term=2), entries=VOTER_LOG)
    voter.step(vote_request(3, "n2", "n1", last_index, last_term, pre_vote=pre_vote))
    ready = voter.ready()
    answers = [m for m in ready.messages if isinstance(m, RequestVoteResponse)]
    assert [m.granted for m in answers] == [granted]
    assert answers[0].pre_vote is pre_vote
    if pre_vote:
        assert (voter.term, voter.vote) == (2, None), "a pre-vote changes neither term nor vote"
    else:
        assert voter.term == 3 and answers[0].term == 3
        assert voter.vote == ("n2" if granted else None)
        assert ready.hard_state == HardState(term=3, vote=voter.vote, commit=0)


@pytest.mark.parametrize("seed", SEEDS)
def test_a_node_missing_committed_entries_never_wins_the_next_election(seed):
    """§3.6.1: a follower that missed committed entries cannot be elected: when the leader
    crashes, the node holding them wins, and every acknowledged command survives."""
    c, leader, _ = stable_cluster(3, seed)
    behind = follower_of(c, leader, seed)
    ahead = next(i for i in c.ids if i not in (leader, behind))
    c.isolate(behind)
    reqs = [c.propose(leader, f"incr {k}") for k in range(1, 6)]
    assert all(c.wait_answered(r, max_ticks=HI).ok for r in reqs), f"seed {seed}"
    c.crash(leader)
    c.heal()
    assert c.run_until(lambda: agreed_leader(c, [behind, ahead]) is not None, max_ticks=5 * HI), f"seed {seed}"
    assert agreed_leader(c, [behind, ahead]) == ahead, f"seed {seed}: {behind} lacked committed entries yet won"
    assert c.stabilize(max_ticks=5 * HI), f"seed {seed}"
    assert c.state(behind).value == c.state(ahead).value == 15, f"seed {seed}"


# -- higher and lower terms ------------------------------------------------------------------------

HIGHER = 5


def higher_term_messages() -> dict[str, Message]:
    kw = {"term": HIGHER, "src": "n2", "dst": "n1"}
    return {
        "Heartbeat": Heartbeat(**kw, commit=0),
        "AppendEntries": AppendEntries(**kw, prev_index=1, prev_term=1, entries=(), commit=0),
        "AppendEntriesResponse": AppendEntriesResponse(**kw, success=False, index=0),
        "HeartbeatResponse": HeartbeatResponse(**kw),
        "RequestVoteResponse": RequestVoteResponse(**kw, granted=False),
        "RequestVote": RequestVote(**kw, last_log_index=1, last_log_term=1),
    }


@pytest.mark.parametrize("kind", list(higher_term_messages()))
def test_a_leader_that_sees_a_higher_term_steps_down_and_adopts_it(kind):
    """§3.3/§3.4: a server that sees a larger term updates its current term (persisted, vote
    cleared) and, if leader, reverts to follower. (CheckQuorum is off here: with it on, a leader
    inside its lease ignores a disruptive RequestVote, which the CheckQuorum tests cover.)"""
    w = Wire(check_quorum=False)
    w.elect("n1")
    assert w["n1"].term == 1
    w.step(higher_term_messages()[kind])
    n1 = w["n1"]
    assert n1.role is Role.FOLLOWER and n1.term == HIGHER
    assert n1.leader == ("n2" if kind in ("Heartbeat", "AppendEntries") else None)
    assert n1.vote == ("n2" if kind == "RequestVote" else None)
    assert w.disks["n1"].hard_state.term == HIGHER
    with pytest.raises(NotLeader):
        n1.propose(b"incr 1")


@pytest.mark.parametrize("role", [Role.FOLLOWER, Role.PRE_CANDIDATE, Role.CANDIDATE])
def test_followers_and_candidates_adopt_a_higher_term_and_forget_their_vote(role):
    """§3.4: a follower, pre-candidate or candidate that receives an AppendEntries of a higher
    term adopts the term, forgets its vote of the old term and follows the sender."""
    w = Wire(pre_vote=role is Role.PRE_CANDIDATE)
    if role is Role.FOLLOWER:
        w.step(vote_request(1, "n3", "n1"))
        assert (w["n1"].term, w["n1"].vote) == (1, "n3")
    else:
        w.tick_until("n1", role)
    w.outbox.clear()
    answers = w.step(AppendEntries(term=HIGHER, src="n2", dst="n1", prev_index=0, prev_term=0, entries=(), commit=0))
    n1 = w["n1"]
    assert (n1.role, n1.term, n1.vote, n1.leader) == (Role.FOLLOWER, HIGHER, None, "n2")
    assert w.disks["n1"].hard_state == HardState(term=HIGHER, vote=None, commit=0)
    assert [(type(m), m.term, m.success) for m in answers] == [(AppendEntriesResponse, HIGHER, True)]


def stale_messages(dst: str) -> dict[str, Message]:
    kw = {"term": 2, "src": "n3", "dst": dst}
    return {
        "Heartbeat": Heartbeat(**kw, commit=1),
        "AppendEntries": AppendEntries(**kw, prev_index=0, prev_term=0, entries=(Entry(2, 1, b"incr 9"),), commit=1),
        "RequestVote": RequestVote(**kw, last_log_index=9, last_log_term=2),
        "PreVote": RequestVote(**kw, last_log_index=9, last_log_term=2, pre_vote=True),
        "RequestVoteResponse": RequestVoteResponse(**kw, granted=True),
        "PreVoteResponse": RequestVoteResponse(**kw, granted=True, pre_vote=True),
        "AppendEntriesResponse": AppendEntriesResponse(**kw, success=True, index=5),
        "HeartbeatResponse": HeartbeatResponse(**kw),
    }


def observable(raft: Raft) -> tuple:
    progress = tuple((n, raft.progress(n).match, raft.progress(n).next) for n in IDS if raft.progress(n))
    return raft.role, raft.term, raft.vote, raft.leader, raft.commit, log_of(raft), progress


@CONFIGS
@pytest.mark.parametrize("receiver", ["n1", "n2"], ids=["leader", "follower"])
@pytest.mark.parametrize("kind", list(stale_messages("n1")))
def test_a_message_from_a_lower_term_is_ignored_or_answered_with_the_current_term(config, receiver, kind):
    """§3.3: a request with a stale term is rejected; the receiver's state (role, term, vote,
    leader, commit, log, replication progress) is untouched, and any answer carries its current
    term so the stale sender can catch up. A stale vote is never granted."""
    w = Wire(hard_state=HardState(term=2), **config)
    w.elect("n1")  # term 3; n2 follows n1
    assert w["n1"].term == 3 and w["n2"].leader == "n1"
    w.outbox.clear()
    before = observable(w[receiver])
    answers = w.step(stale_messages(receiver)[kind])
    assert observable(w[receiver]) == before
    for m in answers:
        assert m.dst == "n3" and m.term == 3, m
        assert not (isinstance(m, RequestVoteResponse) and m.granted), m


# -- PreVote ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    [{"pre_vote": True, "check_quorum": True}, {"pre_vote": True, "check_quorum": False}],
    ids=["prevote+checkquorum", "prevote-only"],
)
@pytest.mark.parametrize("seed", SEEDS)
def test_prevote_a_rejoining_partitioned_node_neither_disrupts_the_leader_nor_bumps_the_term(config, seed):
    """§9.6: a node partitioned away keeps timing out, but a pre-vote round changes no term, so
    it rejoins at the cluster's term; the leader keeps leading the same term throughout and the
    node catches up on what was committed meanwhile."""
    c, leader, term = stable_cluster(3, seed, **config)
    node = follower_of(c, leader, seed)
    c.isolate(node)
    for _ in range(QUIET):
        c.tick()
        assert c.raft(leader).role is Role.LEADER and c.raft(leader).term == term, f"seed {seed}"
    assert c.raft(node).term == term, f"seed {seed}: isolated {node} bumped its term to {c.raft(node).term}"
    assert c.raft(node).role is not Role.LEADER
    c.heal()
    req = c.propose(leader, "incr 7")
    for _ in range(QUIET):
        c.tick()
        assert c.raft(leader).role is Role.LEADER, f"seed {seed}: {leader} was deposed after {node} rejoined"
        assert {c.raft(i).term for i in c.ids} <= {term}, f"seed {seed}: the term moved"
    assert req.result is not None and req.result.ok, f"seed {seed}"
    assert c.converged() and c.state(node).value == 7, f"seed {seed}"
    assert max(c.checker.leaders) == term and c.checker.leaders[term] == leader, f"seed {seed}"


@pytest.mark.parametrize("seed", SEEDS)
def test_without_prevote_or_checkquorum_a_rejoining_node_bumps_the_term_and_deposes_the_leader(seed):
    """§9.6 (the problem PreVote solves): with pre_vote=False and check_quorum=False the
    partitioned node increments its term at every timeout, and when it rejoins the healthy
    leader must step down into that higher term."""
    c, leader, term = stable_cluster(3, seed, pre_vote=False, check_quorum=False)
    node = follower_of(c, leader, seed)
    c.isolate(node)
    c.tick(QUIET)
    assert c.raft(node).term > term, f"seed {seed}: the isolated node did not bump its term"
    c.heal()
    assert c.run_until(lambda: c.raft(leader).term > term, max_ticks=5 * HI), (
        f"seed {seed}: the leader was not disrupted"
    )
    assert c.stabilize(max_ticks=10 * HI), f"seed {seed}"
    assert max(c.checker.leaders) > term, f"seed {seed}"


# -- CheckQuorum -----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [3, 5])
@pytest.mark.parametrize("seed", SEEDS)
def test_checkquorum_a_leader_cut_off_from_its_majority_steps_down_within_two_election_timeouts(size, seed):
    """§6.2: a leader that does not hear from a majority for an election timeout steps down
    (without bumping its term); a command sent to it is then answered "retry", not silence.
    With five nodes the leader keeps one follower, still short of a majority."""
    c, leader, term = stable_cluster(size, seed)
    if size == 3:
        c.isolate(leader)
    else:
        c.partition([leader, follower_of(c, leader, seed)])
    start = c.now
    assert c.run_until(lambda: c.raft(leader).role is not Role.LEADER, max_ticks=2 * HI), (
        f"seed {seed}: the cut-off leader still leads after {2 * HI} ticks"
    )
    assert c.now - start <= 2 * HI
    assert c.raft(leader).term == term and c.raft(leader).leader is None, f"seed {seed}"
    req = c.propose(leader, "incr 1")
    assert req.result is not None and req.result.retry, f"seed {seed}: {req.result}"


@pytest.mark.parametrize("seed", SEEDS)
def test_without_checkquorum_a_cut_off_leader_keeps_believing_it_leads(seed):
    """§6.2 (the control): with check_quorum=False nothing tells an isolated leader it lost its
    majority; it is still leader many election timeouts later."""
    c, leader, term = stable_cluster(3, seed, check_quorum=False)
    c.isolate(leader)
    c.tick(QUIET)
    assert c.raft(leader).role is Role.LEADER and c.raft(leader).term == term, f"seed {seed}"


@pytest.mark.parametrize(
    "config",
    [{"pre_vote": True, "check_quorum": True}, {"pre_vote": False, "check_quorum": True}],
    ids=["prevote+checkquorum", "checkquorum-only"],
)
@pytest.mark.parametrize("fault", ["isolate", "cut-from-leader"])
@pytest.mark.parametrize("seed", SEEDS)
def test_checkquorum_a_partitioned_follower_does_not_make_a_healthy_leader_step_down(config, fault, seed):
    """§6.2 and §4.2.3: a follower that cannot hear the leader (fully isolated, or only its link
    to the leader cut so it can still reach the other follower) does not depose a leader that
    still has a majority: that follower's vote requests are ignored by servers that hear from
    the leader, and the leader keeps committing commands."""
    c, leader, term = stable_cluster(3, seed, **config)
    node = follower_of(c, leader, seed)
    if fault == "isolate":
        c.isolate(node)
    else:
        c.cut(leader, node)
    for _ in range(QUIET):
        c.tick()
        assert c.raft(leader).role is Role.LEADER and c.raft(leader).term == term, (
            f"seed {seed}: {leader} lost leadership at tick {c.now}"
        )
    req = c.propose(leader, "incr 3")
    assert c.wait_answered(req, max_ticks=HI).ok, f"seed {seed}"


def test_a_follower_that_hears_from_its_leader_ignores_a_disruptive_vote_request():
    """§4.2.3: with CheckQuorum, a server that heard from a leader within the minimum election
    timeout neither adopts the term of a RequestVote nor grants it; once that time passes without
    the leader, it votes normally."""
    w = Wire()
    w.elect("n1")
    w.outbox.clear()
    n2 = w["n2"]
    answers = w.step(vote_request(HIGHER, "n3", "n2", n2.log.last_index, n2.log.last_term))
    assert answers == [] and (n2.term, n2.vote, n2.leader) == (1, "n1", "n1")
    assert n2.stats.get("dropped_vote_in_lease") == 1
    w.tick("n2", LO)  # n1 silent meanwhile
    answers = w.step(vote_request(HIGHER, "n3", "n2", n2.log.last_index, n2.log.last_term))
    assert grants(answers, "n3") == [True] and (n2.term, n2.vote) == (HIGHER, "n3")


# -- the new leader's no-op and the commit rule ----------------------------------------------------


def test_a_new_leader_commits_an_earlier_term_entry_only_through_its_noop():
    """§3.6.2: a new leader appends a no-op of its term. An entry of an earlier term stored on a
    majority is still not committed by counting replicas; it commits only once the no-op is on
    a majority. (One entry per AppendEntries, so the follower acknowledges the two separately.)"""
    w = Wire(pre_vote=False, check_quorum=False, max_msg_entries=1)
    w.elect("n1")
    w.deliver()
    index = w["n1"].propose(b"incr 4")
    w.flush("n1")
    w.deliver(lambda m: m.src == "n1" and m.dst == "n2")  # only n2 receives the entry ...
    w.crash("n1")  # ... and the leader dies before anyone learns it committed
    w.outbox.clear()
    n2, n3 = w["n2"], w["n3"]
    assert n2.log.term(index) == 1 and n3.log.last_index < index and n2.commit < index

    w.tick_until("n2", Role.CANDIDATE)
    w.deliver(lambda m: isinstance(m, (RequestVote, RequestVoteResponse)))
    assert n2.role is Role.LEADER and n2.term == 2
    noop = n2.log.entry(n2.log.last_index)
    assert (noop.index, noop.term, noop.kind) == (index + 1, 2, EntryKind.NOOP)

    saw_old_entry_on_majority_uncommitted = False
    while w.outbox:
        m = w.outbox.pop(0)
        if m.dst not in w.nodes:
            continue  # to the crashed n1
        w.step(m)
        match = n2.progress("n3").match
        if match == index and n2.commit < index:
            saw_old_entry_on_majority_uncommitted = True
        if n2.commit >= index:
            assert match >= noop.index, f"entry {index} of term 1 committed with n3 at {match}, before the no-op"
    assert saw_old_entry_on_majority_uncommitted, "the scenario never held the term-1 entry on a majority alone"
    assert n2.commit == noop.index
    assert w.run(HI, until=lambda: n3.commit == noop.index) < HI


@dataclass
class NewLeaderRecord:
    elections: int = 0
    inherited_uncommitted: int = 0  # elections where the new leader held uncommitted earlier-term entries
    commit_advances: int = 0
    noop_problems: list[str] = field(default_factory=list)
    commit_problems: list[str] = field(default_factory=list)


def watched_raft(record: NewLeaderRecord) -> type[Raft]:
    """A Raft that checks, around each public input, the two rules of a new leader (§3.6.2)."""

    class Watched(Raft):
        def _watch(self, call: Callable[[], None]) -> None:
            was_leader, term, commit, last = self.role is Role.LEADER, self.term, self.commit, self.log.last_index
            call()
            if self.role is not Role.LEADER:
                return
            if not was_leader or term != self.term:
                record.elections += 1
                noop = self.log.entry(self.log.last_index)
                if (noop.index, noop.term, noop.kind) != (last + 1, self.term, EntryKind.NOOP):
                    record.noop_problems.append(f"{self.id} became leader of term {self.term} with last entry {noop}")
                if any(self.log.term(i) < self.term for i in range(self.commit + 1, self.log.last_index)):
                    record.inherited_uncommitted += 1
            elif self.commit > commit:
                record.commit_advances += 1
                if self.log.term(self.commit) != self.term:
                    record.commit_problems.append(
                        f"leader {self.id} of term {self.term} moved commit to {self.commit}, "
                        f"an entry of term {self.log.term(self.commit)}"
                    )

        def tick(self) -> None:
            self._watch(lambda: Raft.tick(self))

        def step(self, m: Message) -> None:
            self._watch(lambda: Raft.step(self, m))

        def advance(self, ready: Ready) -> None:
            self._watch(lambda: Raft.advance(self, ready))

    return Watched


@functools.cache
def churn_new_leaders(seed: int) -> NewLeaderRecord:
    """Leaders crash right after proposing, so successors inherit uncommitted entries.

    Cached: the two tests below check different rules on the same runs.
    """
    record = NewLeaderRecord()
    c = SimCluster(3, seed=seed, raft_class=watched_raft(record), max_msg_entries=2)
    rng = random.Random(f"noop-{seed}")
    for _ in range(18):
        leader = c.leader()
        if leader is not None:
            for k in range(rng.randint(1, 4)):
                c.propose(leader, f"incr {k}")
            if all(n.alive for n in c.nodes.values()) and rng.random() < 0.5:
                c.crash(leader)
        c.tick(rng.randint(1, 2 * HI))
        for n in c.ids:
            if rng.random() < 0.5:
                c.restart(n)
    for n in c.ids:
        c.restart(n)
    assert c.stabilize(max_ticks=20 * HI), f"seed {seed}: did not stabilize"
    return record


def test_every_new_leader_first_appends_a_noop_of_its_term():
    """§3.6.2: on election, a leader's first act on its log is a no-op entry of its own term,
    right after the entries it inherited (checked at every election of churning seeded runs)."""
    elections = 0
    for seed in SEEDS:
        record = churn_new_leaders(seed)
        assert record.noop_problems == [], f"seed {seed}: {record.noop_problems}"
        assert record.elections >= 2, f"seed {seed}: only {record.elections} elections"
        elections += record.elections
    assert elections >= 100, f"only {elections} elections in {len(SEEDS)} seeds"


def test_a_leader_only_moves_its_commit_index_onto_an_entry_of_its_own_term():
    """§3.6.2: a leader commits by counting replicas only entries of its current term; earlier
    entries commit only as a consequence. Checked at every commit advance of churning seeded runs
    in which new leaders do inherit uncommitted entries of earlier terms."""
    inherited = 0
    for seed in SEEDS:
        record = churn_new_leaders(seed)
        assert record.commit_problems == [], f"seed {seed}: {record.commit_problems}"
        assert record.commit_advances > 0, f"seed {seed}"
        inherited += record.inherited_uncommitted
    assert inherited >= 10, f"only {inherited} elections inherited uncommitted earlier-term entries"
