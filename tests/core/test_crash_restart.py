"""Crash and restart: the "Crash and restart" section of scenarios.md (thesis §3.8, §3.6, §11).

A crash in ``SimCluster`` throws away a node's memory, state machine and waiting clients and
keeps only what it persisted (hard state and log); a restart rebuilds the node from that disk.
The invariant checker (raftnode/sim/invariants.py) watches every step, including durability of
acknowledged commands and monotonic commit/applied indexes within a node's life.

Crashes here can land between any two message deliveries (``CrashPoint`` hooks the network's
delivery), not only between ticks. Torn records and corruption belong to the storage tests.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Sequence

import pytest

from raftnode.core.messages import Entry, Message, RequestVote, RequestVoteResponse
from raftnode.core.raft import Raft, RaftConfig
from raftnode.core.ready import HardState, Role
from raftnode.sim.cluster import SimCluster

from .helpers import RecordingCounter, assert_no_acknowledged_command_lost

# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------


class CrashPoint:
    """Crash nodes between two message deliveries: after the next ``after`` deliveries, crash
    whatever ``victims()`` names at that moment (so "the leader" means the leader then)."""

    def __init__(self, cluster: SimCluster):
        self.cluster = cluster
        self.countdown: int | None = None
        self.victims: Callable[[], Sequence[str]] = lambda: ()
        self.crashed: list[str] = []
        self.fired_at: int | None = None
        pop_due = cluster.network.pop_due

        def hooked(now: int) -> Message | None:
            if self.countdown is not None:
                self.countdown -= 1
                if self.countdown <= 0:
                    self.countdown = None
                    self.crashed = list(self.victims())
                    self.fired_at = cluster.now
                    for node_id in self.crashed:
                        cluster.crash(node_id)
            return pop_due(now)

        cluster.network.pop_due = hooked  # type: ignore[method-assign]

    def arm(self, after: int, victims: Callable[[], Sequence[str]]) -> None:
        self.countdown, self.victims, self.crashed, self.fired_at = after, victims, [], None


def drive(cluster: SimCluster, rng: random.Random, ticks: int, *, rate: float = 0.7) -> None:
    """Clients send commands to whoever is leader now, while time passes."""
    for _ in range(ticks):
        leader = cluster.leader()
        if leader is not None and rng.random() < rate:
            for _ in range(rng.randint(1, 3)):
                cluster.propose(leader, f"incr {rng.randint(1, 9)}", timeout=rng.randint(20, 80))
        cluster.tick(1)


def minority_patterns(size: int) -> list[str]:
    return ["leader", "follower"] if size == 3 else ["leader", "follower", "leader+follower", "two followers"]


def pick_victims(cluster: SimCluster, pattern: str, rng: random.Random) -> list[str]:
    live = [n.id for n in cluster.live()]
    leader = cluster.leader()
    followers = [n for n in live if n != leader]
    rng.shuffle(followers)
    if pattern == "leader":
        return [leader] if leader is not None else followers[:1]
    if pattern == "follower":
        return followers[:1]
    if pattern == "leader+follower":
        return ([leader] if leader is not None else []) + followers[: 2 - (leader is not None)]
    return followers[:2]


# ------------------------------------------------------------------------------------------------
# Kill any minority at any moment
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [3, 5])
def test_killing_any_minority_at_any_moment_and_restarting_it_loses_no_acknowledged_command(size):
    """§3.8 (persisted state) and §3.6 (safety): a command acknowledged to a client is on a
    majority of disks, so crashing any minority — leader included, between any two message
    deliveries — and restarting it loses none, and every invariant holds throughout."""
    crashes = 0
    leader_crashes = 0
    for pattern, seed in itertools.product(minority_patterns(size), range(4)):
        context = f"size {size}, pattern {pattern!r}, seed {seed}"
        cluster = SimCluster(size, seed=seed, max_msg_entries=8, max_inflight=4)
        rng = random.Random(f"{size}-{pattern}-{seed}")
        point = CrashPoint(cluster)
        cluster.wait_leader()
        for cycle in range(3):  # three crash/restart cycles at different moments
            leader_before = cluster.leader()
            point.arm(rng.randint(1, 150), lambda: pick_victims(cluster, pattern, rng))
            drive(cluster, rng, rng.randint(10, 40))
            if point.fired_at is None:
                point.countdown = None
                continue
            crashes += 1
            leader_crashes += leader_before in point.crashed
            assert len(point.crashed) <= (size - 1) // 2, context
            drive(cluster, rng, rng.randint(0, 60))  # the majority carries on (or not) meanwhile
            for node_id in point.crashed:
                cluster.restart(node_id)
            drive(cluster, rng, rng.randint(0, 30))
        assert cluster.stabilize(max_ticks=600), f"{context}: no convergence after the restarts"
        final = cluster.propose(cluster.leader(), "incr 1000")
        assert cluster.wait_answered(final, max_ticks=100).ok, context
        assert len(cluster.acknowledged()) >= 10, f"{context}: too few commands acknowledged to mean much"
        assert_no_acknowledged_command_lost(cluster, context)
    assert crashes >= 3 * len(minority_patterns(size)) * 4 * 0.8, crashes
    assert leader_crashes >= 4, leader_crashes


# ------------------------------------------------------------------------------------------------
# Restart every node at once
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_restarting_every_node_at_once_brings_back_every_committed_command_with_terms_and_votes(seed):
    """§3.8: term, vote and log are persisted before a node answers, so a whole-cluster restart
    (crashing every node between two message deliveries) loses no committed entry, and every
    node comes back with the term and vote it had."""
    cluster = SimCluster(5, seed=seed, max_msg_entries=8, max_inflight=4)
    rng = random.Random(seed)
    point = CrashPoint(cluster)
    cluster.wait_leader()
    drive(cluster, rng, 40)
    before: dict[str, tuple[int, str | None]] = {}

    def everyone() -> list[str]:
        before.update({n: (cluster.raft(n).term, cluster.raft(n).vote) for n in cluster.ids})
        return list(cluster.ids)

    point.arm(rng.randint(1, 200), everyone)
    for _ in range(200):
        if point.fired_at is not None:
            break
        drive(cluster, rng, 1, rate=0.9)
    assert point.fired_at is not None and not cluster.live(), f"seed {seed}: the crash did not fire"
    committed = dict(cluster.checker.committed)
    acked_before = len(cluster.acknowledged())
    assert committed and acked_before > 0, f"seed {seed}"
    max_term = max(term for term, _ in before.values())

    for node_id in cluster.ids:
        cluster.restart(node_id)
        raft = cluster.raft(node_id)
        assert (raft.term, raft.vote) == before[node_id], f"seed {seed}: {node_id} forgot its term or vote"
        assert raft.role is Role.FOLLOWER and raft.leader is None

    leader = cluster.wait_leader()
    assert cluster.raft(leader).term > max_term, f"seed {seed}: a term was reused after restart"
    assert cluster.stabilize(max_ticks=300), f"seed {seed}"
    for node_id in cluster.ids:
        entries = cluster.node(node_id).disk.entries
        for index, term in committed.items():
            assert entries[index - 1].term == term, f"seed {seed}: committed entry {index} lost on {node_id}"
    assert len(cluster.acknowledged()) == acked_before  # nobody was answered by a dead node
    assert_no_acknowledged_command_lost(cluster, f"seed {seed}")
    assert cluster.wait_answered(cluster.propose(leader, "incr 1")).ok, f"seed {seed}"


class Bench:
    """Three Raft cores wired by hand (PreVote and CheckQuorum off): each persists its Ready to a
    dict 'disk' before its messages go to ``outbox``; ``crash_restart`` rebuilds from that disk."""

    def __init__(self, ids: Sequence[str]):
        self.ids = tuple(ids)
        self.disk: dict[str, tuple[HardState, list[Entry]]] = {i: (HardState(), []) for i in self.ids}
        self.nodes: dict[str, Raft] = {}
        self.outbox: list[Message] = []
        for node_id in self.ids:
            self.crash_restart(node_id)

    def crash_restart(self, node_id: str) -> Raft:
        hard_state, entries = self.disk[node_id]
        config = RaftConfig(node_id=node_id, voters=self.ids, pre_vote=False, check_quorum=False)
        self.nodes[node_id] = Raft(config, rng=random.Random(node_id), hard_state=hard_state, entries=list(entries))
        return self.nodes[node_id]

    def process(self, node_id: str) -> None:
        raft = self.nodes[node_id]
        while raft.has_ready():
            ready = raft.ready()
            hard_state, entries = self.disk[node_id]
            if ready.entries:
                entries = entries[: ready.entries[0].index - 1] + list(ready.entries)
            self.disk[node_id] = (ready.hard_state or hard_state, entries)
            self.outbox.extend(ready.messages)
            raft.advance(ready)

    def campaign(self, node_id: str) -> None:
        raft = self.nodes[node_id]
        term = raft.term
        while raft.term == term:
            raft.tick()
        self.process(node_id)

    def deliver(self, src: str, dst: str, kind: type[Message]) -> Message:
        m = next(m for m in self.outbox if (m.src, m.dst) == (src, dst) and isinstance(m, kind))
        self.outbox.remove(m)
        self.nodes[dst].step(m)
        self.process(dst)
        return m

    def answer(self, src: str, dst: str) -> RequestVoteResponse:
        m = next(m for m in self.outbox if (m.src, m.dst) == (src, dst) and isinstance(m, RequestVoteResponse))
        assert isinstance(m, RequestVoteResponse)
        return m


def test_a_restarted_node_keeps_its_term_and_vote_and_does_not_vote_twice_in_that_term():
    """§3.8 / Figure 3.1: currentTerm and votedFor are persisted before the vote is answered; a
    node that crashes right after granting its vote still holds it after restart, refuses a
    second candidate of that term, and re-grants the first (its answer may have been lost)."""
    bench = Bench(["a", "b", "c"])
    bench.campaign("a")
    request = bench.deliver("a", "b", RequestVote)
    assert bench.answer("b", "a").granted
    assert bench.disk["b"][0].term == 1 and bench.disk["b"][0].vote == "a"  # on disk before the answer left

    bench.outbox.clear()  # b crashes: its answer never arrives
    b = bench.crash_restart("b")
    assert (b.term, b.vote) == (1, "a")

    bench.campaign("c")
    assert bench.nodes["c"].term == 1  # the same term b voted in
    bench.deliver("c", "b", RequestVote)
    assert not bench.answer("b", "c").granted, "b voted twice in term 1 after a restart"
    bench.outbox.clear()
    # a is still a candidate of term 1: a duplicate of its request gets the same vote again.
    assert bench.nodes["a"].role is Role.CANDIDATE and bench.nodes["a"].term == 1
    bench.outbox.append(request)
    bench.deliver("a", "b", RequestVote)
    assert bench.answer("b", "a").granted
    bench.deliver("b", "a", RequestVoteResponse)
    assert bench.nodes["a"].role is Role.LEADER and bench.nodes["a"].term == 1


# ------------------------------------------------------------------------------------------------
# Commit and applied indexes: monotonic within a life, recovered by re-applying after restart
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_commit_and_applied_indexes_never_move_backwards_within_a_nodes_life(seed):
    """Figure 3.1 / §3.8: commitIndex and lastApplied only grow while a node runs; a restart
    starts a new life that re-applies from the log. Sampled after every message delivery."""
    cluster = SimCluster(5, seed=seed, max_msg_entries=8, max_inflight=4)
    rng = random.Random(f"monotonic-{seed}")
    seen: dict[tuple[str, int], tuple[int, int]] = {}  # (node, incarnation) -> (commit, applied)
    samples = {"n": 0}
    pop_due = cluster.network.pop_due

    def sample() -> None:
        for node in cluster.live():
            key = (node.id, node.incarnation)
            now = (node.raft.commit, node.applier.applied_index)  # type: ignore[union-attr]
            last = seen.get(key, (0, 0))
            assert now[0] >= last[0], f"seed {seed}: commit of {node.id} went back {last[0]} -> {now[0]}"
            assert now[1] >= last[1], f"seed {seed}: applied of {node.id} went back {last[1]} -> {now[1]}"
            assert now[1] <= now[0], f"seed {seed}: {node.id} applied past its commit"
            seen[key] = now
            samples["n"] += 1

    def sampling_pop(now: int) -> Message | None:
        sample()
        return pop_due(now)

    cluster.network.pop_due = sampling_pop  # type: ignore[method-assign]
    cluster.wait_leader()
    max_down = (len(cluster.ids) - 1) // 2
    for _ in range(12):
        drive(cluster, rng, rng.randint(5, 25))
        down = [n.id for n in cluster.nodes.values() if not n.alive]
        if down and rng.random() < 0.6:
            cluster.restart(rng.choice(down))
        elif len(down) < max_down:
            cluster.crash(rng.choice([n.id for n in cluster.live()]))
    for node_id in cluster.ids:
        cluster.restart(node_id)
    assert cluster.stabilize(max_ticks=400), f"seed {seed}"
    sample()
    lives = {node for node, _ in seen}
    assert lives == set(cluster.ids)
    assert sum(n.incarnation for n in cluster.nodes.values()) >= 2, f"seed {seed}: too few restarts"
    assert samples["n"] > 1000
    assert_no_acknowledged_command_lost(cluster, f"seed {seed}")


def test_a_restarted_node_recovers_its_state_by_reapplying_its_own_log_up_to_its_persisted_commit():
    """§3.8: the state machine is volatile; after a restart the node rebuilds it by applying its
    persisted log again, in order, up to the commit index it had persisted — even before it hears
    from any leader — and then continues from there."""
    cluster = SimCluster(3, seed=2, state_machine=RecordingCounter)
    leader = cluster.wait_leader()
    for n in range(20):
        assert cluster.wait_answered(cluster.propose(leader, f"incr {n}")).ok
    assert cluster.stabilize(max_ticks=100)
    node_id = next(n for n in cluster.ids if n != leader)
    node = cluster.node(node_id)
    applied_before = node.applier.applied_index  # type: ignore[union-attr]
    commit_before = cluster.raft(node_id).commit
    history_before = list(cluster.state(node_id).history)  # type: ignore[attr-defined]
    value_before = cluster.state(node_id).value  # type: ignore[attr-defined]
    assert applied_before == commit_before > 20
    assert node.disk.hard_state.commit == commit_before  # the commit index was persisted as a hint

    cluster.isolate(node_id)  # nothing from the leader can help it now
    cluster.crash(node_id)
    cluster.restart(node_id)
    assert cluster.state(node_id).value == 0  # type: ignore[attr-defined]
    assert cluster.raft(node_id).commit == commit_before and cluster.raft(node_id).applied == 0
    cluster.tick(1)
    assert node.applier.applied_index == applied_before  # type: ignore[union-attr]
    assert cluster.state(node_id).history == history_before  # type: ignore[attr-defined]
    assert cluster.state(node_id).value == value_before  # type: ignore[attr-defined]

    # Meanwhile the others go on; once healed it continues from where it re-applied to.
    more = [cluster.propose(leader, f"decr {n}") for n in range(5)]
    assert all(cluster.wait_answered(r).ok for r in more)
    cluster.heal()
    assert cluster.stabilize(max_ticks=100)
    assert cluster.state(node_id).history == [f"incr {n}" for n in range(20)] + [f"decr {n}" for n in range(5)]  # type: ignore[attr-defined]
    assert cluster.state(node_id).value == cluster.state(leader).value  # type: ignore[attr-defined]
