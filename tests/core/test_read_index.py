"""Linearizable reads without the log: ReadIndex (thesis §6.4), in the core and the simulator.

A read is served at the leader's commit index once one heartbeat round confirms a majority still
follows it; reads share rounds; a new leader serves none before an entry of its term commits; a
follower asks the leader for the read index. The simulator's "read freshness" invariant checks
that a read sees every command acknowledged before it was issued, and a planted bug (a leader
that skips the confirmation) proves it has teeth.
"""

from __future__ import annotations

import random

import pytest

from raftnode.core.errors import NotLeader
from raftnode.core.messages import AppendEntriesResponse, Heartbeat, HeartbeatResponse, RequestVoteResponse
from raftnode.core.raft import Raft, RaftConfig
from raftnode.core.readindex import ReadRounds, ReadState
from raftnode.core.quorum import Configuration
from raftnode.core.ready import Role
from raftnode.sim.cluster import SimCluster
from raftnode.sim.invariants import InvariantViolation

from .helpers import stable_cluster
from .planted_bugs import ServesReadsBeforeItsTermCommits, ServesReadsWithoutConfirmation

SEEDS = range(4)


def answer_of(cluster: SimCluster, req, max_ticks: int = 200):
    return cluster.wait_answered(req, max_ticks=max_ticks)


# -- the bookkeeping ------------------------------------------------------------------------------


def test_a_round_is_confirmed_by_a_majority_echoing_its_id_or_a_later_one():
    rounds = ReadRounds(timeout=10)
    config = Configuration(frozenset({"a", "b", "c", "d", "e"}))
    rounds.add((None, 1), now=0)
    assert rounds.start(commit=7, now=0) == 1
    rounds.add((None, 2), now=0)  # arrives while round 1 is in flight: waits for round 2
    assert not rounds.can_start()
    rounds.echoed("b", 1)
    assert rounds.confirmed(config, "a") is None  # the leader and b: 2 of 5
    rounds.echoed("c", 0)  # a heartbeat from before the round proves nothing about it
    assert rounds.confirmed(config, "a") is None
    rounds.echoed("d", 3)  # a later round's echo confirms every earlier one
    assert rounds.confirmed(config, "a") == (7, [(None, 1)])
    assert rounds.can_start() and rounds.start(commit=9, now=1) == 2


def test_reads_that_wait_too_long_expire_and_a_flood_is_refused_not_queued():
    rounds = ReadRounds(timeout=10, max_pending=3)
    assert all(rounds.add((None, i), now=0) for i in range(3))
    assert not rounds.add((None, 3), now=0)
    rounds.start(commit=1, now=0)
    assert rounds.expired(9) == []
    assert rounds.expired(10) == [(None, 0), (None, 1), (None, 2)]
    assert rounds.add((None, 4), now=11)  # room again
    assert rounds.expired(20) == []
    assert rounds.expired(21) == [(None, 4)]
    assert len(rounds) == 0


# -- a hand-driven leader: no read before its own term commits -------------------------------------


def elected_leader() -> Raft:
    raft = Raft(RaftConfig(node_id="n1", voters=("n1", "n2", "n3"), pre_vote=False), rng=random.Random(1))
    while raft.role is not Role.CANDIDATE:
        raft.tick()
    raft.step(RequestVoteResponse(term=raft.term, src="n2", dst="n1", granted=True))
    assert raft.role is Role.LEADER
    raft.advance(raft.ready())  # its no-op (index 1) is persisted, not yet committed
    return raft


def read_rounds_in(messages) -> set[int]:
    return {m.read_round for m in messages if isinstance(m, Heartbeat)}


def test_a_new_leader_serves_no_read_before_an_entry_of_its_own_term_commits():
    raft = elected_leader()
    raft.read_index(7)
    ready = raft.ready()
    assert ready.reads == () and read_rounds_in(ready.messages) <= {0} and raft.read_rounds_started() == 0
    # Followers answering heartbeats do not help: the round has not even started.
    raft.step(HeartbeatResponse(term=raft.term, src="n2", dst="n1"))
    assert raft.ready().reads == ()
    raft.step(AppendEntriesResponse(term=raft.term, src="n2", dst="n1", success=True, index=1))
    assert raft.commit == 1  # the no-op of its term committed: now the round starts, at index 1
    ready = raft.ready()
    assert read_rounds_in(ready.messages) == {1} and ready.reads == ()
    raft.advance(ready)
    raft.step(HeartbeatResponse(term=raft.term, src="n3", dst="n1", read_round=1))
    assert raft.ready().reads == (ReadState(7, 1),)


def test_a_leader_that_steps_down_refuses_its_waiting_reads():
    raft = elected_leader()
    raft.read_index(1)
    raft.step(Heartbeat(term=raft.term + 1, src="n2", dst="n1", commit=0))
    ready = raft.ready()
    assert ready.reads == (ReadState(1, None),) and raft.role is Role.FOLLOWER


def test_a_node_that_knows_no_leader_refuses_a_read_at_once():
    raft = Raft(RaftConfig(node_id="n1", voters=("n1", "n2", "n3")), rng=random.Random(1))
    with pytest.raises(NotLeader):
        raft.read_index(1)


# -- the simulator: reads at the leader ------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_a_read_at_the_leader_sees_every_acknowledged_write_without_a_log_entry(seed):
    c, leader, _ = stable_cluster(3, seed)
    assert answer_of(c, c.propose(leader, "incr 5")).ok
    last = c.raft(leader).log.last_index
    result = answer_of(c, c.read(leader))
    assert result.ok and result.result == 5, f"seed {seed}: {result}"
    assert c.raft(leader).log.last_index == last  # nothing was appended for the read


@pytest.mark.parametrize("seed", SEEDS)
def test_many_reads_share_one_heartbeat_round(seed):
    c, leader, _ = stable_cluster(5, seed)
    assert answer_of(c, c.propose(leader, "incr 3")).ok
    before = c.raft(leader).read_rounds_started()
    reads = [c.read(leader) for _ in range(100)]  # the first starts a round; the rest wait for the next
    assert c.run_until(lambda: all(r.done for r in reads), max_ticks=50), f"seed {seed}"
    assert [r.result.result for r in reads] == [3] * 100
    assert c.raft(leader).read_rounds_started() - before == 2, f"seed {seed}"


@pytest.mark.parametrize("check_quorum", [True, False])
@pytest.mark.parametrize("seed", SEEDS)
def test_a_leader_cut_off_with_a_minority_answers_no_read(seed, check_quorum):
    c, old, _ = stable_cluster(5, seed, check_quorum=check_quorum)
    assert answer_of(c, c.propose(old, "incr 1")).ok
    buddy = next(n for n in c.ids if n != old)
    c.partition([old, buddy])
    stale = c.read(old)  # the old leader still believes it leads
    assert c.raft(old).read_rounds_started() == 1  # its round started: it cannot be confirmed
    majority = [n for n in c.ids if n not in (old, buddy)]
    assert c.run_until(lambda: c.leader() in majority, max_ticks=400), f"seed {seed}"
    new = c.leader()
    assert answer_of(c, c.propose(new, "incr 10")).ok
    late = c.read(old) if c.raft(old).role is Role.LEADER else None
    for req in filter(None, [stale, late]):
        result = answer_of(c, req)
        assert not result.ok and (result.retry or result.redirect is not None or result.timeout_expired), (
            f"seed {seed}: the cut-off leader answered {result}"
        )
    # Reads at the majority's leader see both writes.
    assert answer_of(c, c.read(new)).result == 11


def test_planted_bug_a_leader_that_skips_the_confirmation_serves_a_stale_read_and_is_caught():
    """Without the heartbeat round a deposed leader that does not know it yet (CheckQuorum off)
    answers from its old state: the read freshness invariant reports the stale read."""
    c, old, _ = stable_cluster(5, 0, check_quorum=False, raft_class=ServesReadsWithoutConfirmation)
    assert answer_of(c, c.propose(old, "incr 1")).ok
    buddy = next(n for n in c.ids if n != old)
    c.partition([old, buddy])
    majority = [n for n in c.ids if n not in (old, buddy)]
    assert c.run_until(lambda: c.leader() in majority, max_ticks=400)
    assert answer_of(c, c.propose(c.leader(), "incr 10")).ok
    assert c.raft(old).role is Role.LEADER
    with pytest.raises(InvariantViolation, match="read freshness"):
        c.read(old)


def read_at_a_new_leader_right_after_a_write(seed: int, raft_class: type[Raft] = Raft):
    """A write is acknowledged by its leader and one follower (the other, cut off from the leader,
    never gets it), the leader is cut off before that follower learns of the commit, and a read is
    asked of it the moment it leads (its links to the other follower slow): its first entry needs
    two round trips to the follower that lacks the write, a heartbeat round one. (the cluster,
    the read)."""
    c, old, _ = stable_cluster(3, seed, raft_class=raft_class)
    new, lagging = (n for n in c.ids if n != old)
    c.cut(old, lagging)
    write = c.propose(old, "incr 1")
    assert c.run_until(lambda: write.done, max_ticks=100) and write.result.ok
    assert c.raft(new).commit < write.result.index, f"seed {seed}: {new} knows of the commit already"
    c.isolate(old)
    c.delay(new, lagging, ticks=2)  # the read is asked before its first entry could commit
    assert c.run_until(lambda: c.raft(new).role is Role.LEADER, max_ticks=400), f"seed {seed}"
    assert c.raft(new).commit < write.result.index, f"seed {seed}"
    return c, c.read(new)


@pytest.mark.parametrize("seed", SEEDS)
def test_a_new_leader_reads_only_once_its_term_committed_and_so_sees_the_last_acknowledged_write(seed):
    c, read = read_at_a_new_leader_right_after_a_write(seed)
    result = answer_of(c, read)
    assert result.ok and result.result == 1, f"seed {seed}: {result}"


def test_planted_bug_a_new_leader_that_reads_before_its_term_commits_serves_a_stale_read_and_is_caught():
    """Its commit index is still its predecessor's of before the write: the read freshness
    invariant reports the read served from there."""
    with pytest.raises(InvariantViolation, match="read freshness"):
        c, read = read_at_a_new_leader_right_after_a_write(0, ServesReadsBeforeItsTermCommits)
        answer_of(c, read)


# -- the simulator: reads at a follower -------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_a_follower_read_sees_every_write_acknowledged_before_it_began(seed):
    c, leader, _ = stable_cluster(3, seed)
    follower = next(n for n in c.ids if n != leader)
    req = c.propose(leader, "incr 7")
    c.run_until(lambda: req.done, max_ticks=100)
    assert req.result.ok
    # The follower has not applied the write yet: it learns the commit with the next message.
    assert c.node(follower).applier.applied_index < req.result.index, f"seed {seed}"
    result = answer_of(c, c.read(follower))
    assert result.ok and result.result == 7, f"seed {seed}: {result}"
    assert result.index >= req.result.index


@pytest.mark.parametrize("seed", SEEDS)
def test_a_follower_cut_off_from_its_leader_refuses_the_read_rather_than_answer_stale(seed):
    c, leader, _ = stable_cluster(3, seed)
    follower = next(n for n in c.ids if n != leader)
    c.cut(leader, follower)
    req = c.read(follower)
    result = answer_of(c, req)
    assert not result.ok and (result.retry or result.redirect is not None), f"seed {seed}: {result}"


def test_a_query_refuses_a_command_that_would_change_the_state():
    c, leader, _ = stable_cluster(3, 0)
    result = answer_of(c, c.read(leader, "incr 1"))
    assert result.error is not None and "not a read" in result.error
    assert c.state(leader).value == 0
