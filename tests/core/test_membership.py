"""Membership changes (§4) in the simulator: the Membership section of the scenario catalog.

Each scenario runs over a few seeds; every step is checked by the invariant checker, and a
failing assertion names its seed so it can be replayed.
"""

from __future__ import annotations

import pytest

from raftnode.core.errors import MembershipError, NotLeader, UnknownNode
from raftnode.core.messages import EntryKind
from raftnode.core.quorum import Configuration
from raftnode.core.ready import Role
from raftnode.sim.cluster import SimCluster

SEEDS = range(5)


def _cluster(seed: int, size: int = 3, **kwargs) -> tuple[SimCluster, str]:
    c = SimCluster(size, seed=seed, **kwargs)
    leader = c.wait_leader()
    assert c.stabilize(), f"seed {seed}: no convergence"
    return c, leader


def _commit(c: SimCluster, node: str, command: str = "incr 1") -> int:
    result = c.wait_answered(c.propose(node, command))
    assert result.ok, f"seed {c.seed}: {command!r} not committed: {result}"
    assert result.index is not None
    return result.index


def _voters(c: SimCluster, node: str) -> set[str]:
    return set(c.raft(node).configuration.voters)


@pytest.mark.parametrize("seed", SEEDS)
def test_an_added_node_catches_up_as_a_learner_then_becomes_a_voter_and_applies_everything(seed):
    c, leader = _cluster(seed)
    for _ in range(30):
        _commit(c, leader)
    c.add_node("n4")
    assert c.raft(leader).configuration.learners == {"n4"}, f"seed {seed}"
    assert c.run_until(lambda: "n4" in _voters(c, c.leader() or leader), max_ticks=500), f"seed {seed}: never promoted"
    leader = c.wait_leader()
    _commit(c, leader)
    assert c.stabilize(), f"seed {seed}"
    assert c.state("n4").value == c.state(leader).value == 31, f"seed {seed}"
    assert all(_voters(c, n) == {"n1", "n2", "n3", "n4"} for n in c.members()), f"seed {seed}"


@pytest.mark.parametrize("seed", SEEDS)
def test_a_learner_does_not_count_toward_any_majority(seed):
    c, leader = _cluster(seed)
    c.add_node("n4")
    c.crash("n4")  # the learner never answers
    follower = next(n for n in ("n1", "n2", "n3") if n != leader)
    c.crash(follower)
    # Two of the three voters remain: enough, unless the learner were counted (then 2 of 4).
    _commit(c, leader)
    assert "n4" in c.raft(leader).configuration.learners, f"seed {seed}"


@pytest.mark.parametrize("seed", SEEDS)
def test_a_learner_that_cannot_catch_up_is_removed_again_with_the_reason(seed):
    c, leader = _cluster(seed, catchup_rounds=3)
    c.add_node("n4")
    c.crash("n4")
    limit = c.raft(leader).config.catchup_round_limit
    assert c.run_until(lambda: "n4" in c.raft(leader).catchup_failures, max_ticks=limit + 50), f"seed {seed}"
    assert "did not catch up" in c.raft(leader).catchup_failures["n4"], f"seed {seed}"
    assert c.run_until(lambda: "n4" not in c.raft(leader).committed_configuration().members(), max_ticks=200)
    _commit(c, leader)  # the cluster goes on with its three voters


@pytest.mark.parametrize("seed", SEEDS)
def test_removing_a_follower_commits_and_the_removed_node_stops(seed):
    c, leader = _cluster(seed)
    victim = next(n for n in ("n1", "n2", "n3") if n != leader)
    c.remove_node(victim)
    assert victim not in _voters(c, leader), "the change takes effect when appended"
    assert c.run_until(lambda: c.node(victim).removed, max_ticks=200), f"seed {seed}: {victim} never learned"
    assert not c.node(victim).alive
    _commit(c, leader)
    remaining = [n for n in ("n1", "n2", "n3") if n != victim]
    assert c.stabilize(nodes=remaining), f"seed {seed}"


@pytest.mark.parametrize("seed", SEEDS)
def test_the_leader_removing_itself_leads_until_the_change_commits_then_steps_down(seed):
    c, leader = _cluster(seed)
    raft = c.raft(leader)
    index = raft.remove_node(leader)
    assert raft.role is Role.LEADER and leader not in raft.configuration.voters
    # It keeps leading (and replicating) while the change is uncommitted...
    assert raft.commit < index
    c.deliver()
    assert c.run_until(lambda: c.node(leader).removed, max_ticks=200), f"seed {seed}"
    # ...then hands over: a remaining voter leads and commits.
    new_leader = c.wait_leader()
    assert new_leader != leader
    _commit(c, new_leader)
    assert _voters(c, new_leader) == {"n1", "n2", "n3"} - {leader}


@pytest.mark.parametrize("seed", SEEDS)
def test_a_second_change_while_one_is_pending_is_refused_with_the_reason(seed):
    c, leader = _cluster(seed)
    c.isolate("n1" if leader != "n1" else "n2")
    raft = c.raft(leader)
    raft.add_node("n4")
    with pytest.raises(MembershipError, match="not committed yet|still catching up"):
        raft.remove_node(next(n for n in ("n1", "n2", "n3") if n != leader))
    with pytest.raises(MembershipError, match="already a learner"):
        raft.add_node("n4")


def test_refusals_name_what_is_wrong():
    c, leader = _cluster(0)
    raft = c.raft(leader)
    with pytest.raises(UnknownNode, match="n9"):
        raft.remove_node("n9")
    with pytest.raises(MembershipError, match="already a voter"):
        raft.add_node("n2" if leader != "n2" else "n3")
    follower = next(n for n in ("n1", "n2", "n3") if n != leader)
    with pytest.raises(NotLeader):
        c.raft(follower).add_node("n4")
    one, solo = _cluster(0, size=1)
    with pytest.raises(MembershipError, match="last voter"):
        one.raft(solo).remove_node(solo)


@pytest.mark.parametrize("seed", SEEDS)
def test_a_new_leader_accepts_a_change_only_after_committing_an_entry_of_its_term(seed):
    c, leader = _cluster(seed)
    for node in c.ids:
        c.delay(node, None, ticks=1)  # so a new leader's no-op cannot commit within the tick it wins
    c.crash(leader)

    def new_leader() -> str | None:
        return next((n.id for n in c.live() if n.raft.role is Role.LEADER), None)  # type: ignore[union-attr]

    assert c.run_until(lambda: new_leader() is not None, max_ticks=500), f"seed {seed}"
    fresh = c.raft(new_leader())  # type: ignore[arg-type]
    assert fresh.log.term(fresh.commit) != fresh.term
    with pytest.raises(MembershipError, match="not committed an entry of its term"):
        fresh.add_node("n4")
    assert c.run_until(lambda: fresh.log.term(fresh.commit) == fresh.term, max_ticks=100)
    fresh.add_node("n4")  # accepted once its no-op committed


@pytest.mark.parametrize("seed", SEEDS)
def test_an_uncommitted_change_on_a_deposed_leader_is_rolled_back(seed):
    c, leader = _cluster(seed)
    raft = c.raft(leader)
    c.isolate(leader)
    victim = next(n for n in ("n1", "n2", "n3") if n != leader)
    c.remove_node(victim, leader=leader)  # appended on the isolated leader only
    assert victim not in raft.configuration.voters
    assert c.run_until(lambda: c.leader() not in (None, leader), max_ticks=500), f"seed {seed}"
    _commit(c, c.leader())  # type: ignore[arg-type]
    c.heal()
    assert c.stabilize(), f"seed {seed}"
    assert victim in _voters(c, leader), f"seed {seed}: the old leader kept its truncated configuration"
    assert not any(e.kind == EntryKind.CONFIG for e in c.raft(leader).log.slice(c.raft(leader).log.offset + 1,
                                                                                c.raft(leader).log.last_index + 1))


@pytest.mark.parametrize("seed", SEEDS)
def test_a_removed_node_that_never_learns_it_does_not_disrupt_the_cluster(seed):
    c, leader = _cluster(seed)
    victim = next(n for n in ("n1", "n2", "n3") if n != leader)
    c.isolate(victim)
    c.remove_node(victim)
    _commit(c, leader)
    c.tick(200)  # the removed node times out again and again, alone
    term = c.raft(leader).term
    c.heal()
    for _ in range(10):
        _commit(c, leader)
    c.tick(200)
    assert c.leader() == leader and c.raft(leader).term == term, f"seed {seed}: the removed node disrupted"


@pytest.mark.parametrize("seed", SEEDS)
def test_a_node_added_after_many_snapshots_catches_up_through_install_snapshot(seed):
    c, leader = _cluster(seed, snapshot_every=10, snapshot_chunk_bytes=8)
    for _ in range(60):
        _commit(c, leader)
    assert c.raft(leader).log.offset > 0
    c.add_node("n4")
    assert c.run_until(lambda: "n4" in _voters(c, c.leader() or leader), max_ticks=800), f"seed {seed}"
    assert c.stabilize(), f"seed {seed}"
    assert c.state("n4").value == 60
    assert c.node("n4").disk.snapshot is not None, "it was caught up from a snapshot"


@pytest.mark.parametrize("seed", SEEDS)
def test_the_configuration_survives_a_restart_from_the_log_and_from_a_snapshot(seed):
    c, leader = _cluster(seed, snapshot_every=5)
    c.add_node("n4")
    assert c.run_until(lambda: "n4" in _voters(c, c.leader() or leader), max_ticks=500)
    for _ in range(3):
        _commit(c, c.wait_leader())
    assert c.stabilize()
    for node in ("n1", "n4"):
        c.crash(node)
        c.restart(node)
        assert c.raft(node).configuration.voters == {"n1", "n2", "n3", "n4"}, f"seed {seed}: {node}"
    for _ in range(10):  # past another snapshot
        _commit(c, c.wait_leader())
    assert c.stabilize()
    c.crash("n2")
    c.restart("n2")
    assert c.node("n2").disk.snapshot is not None
    assert c.raft("n2").configuration.voters == {"n1", "n2", "n3", "n4"}


def test_configuration_entries_encode_deterministically_and_reject_garbage():
    config = Configuration(frozenset({"b", "a"}), frozenset({"c"}), {"c": "127.0.0.1:1 127.0.0.1:2"})
    assert config.encode() == Configuration(frozenset({"a", "b"}), frozenset({"c"}), dict(config.contexts)).encode()
    assert Configuration.decode(config.encode()) == config
    for garbage in (b"", b"{}", b'{"voters": "a"}', b'{"voters": [1]}', b"\xff"):
        with pytest.raises(ValueError, match="bad configuration entry"):
            Configuration.decode(garbage)
    with pytest.raises(ValueError, match="both voter and learner"):
        Configuration(frozenset({"a"}), frozenset({"a"}))
