"""Membership changes through the node runtime (RaftNode.add_node / remove_node), in virtual time."""

from __future__ import annotations

import pytest
import trio

from raftnode.core import UnknownNode
from raftnode.core.errors import MembershipError, NotLeader
from raftnode.node.runtime import NodeNotRunning

from .harness import Cluster
from .test_node_runtime import commit, running_cluster

pytestmark = pytest.mark.trio


def cut_off_the_followers(cluster: Cluster, leader: str) -> str:
    """Partition every follower away from the leader (no change can commit); returns one of them."""
    followers = [n for n in cluster.ids if n != leader]
    for node_id in followers:
        cluster.partition(node_id)
    return followers[0]


async def test_a_joining_node_is_added_as_a_voter_and_applies_the_whole_log(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running_cluster() as cluster:
        leader = await cluster.wait_leader()
        for _ in range(20):
            await commit(leader, "incr 2")
        joiner = await cluster.start("n4", join=True)
        assert joiner.status().voters == [] and joiner.status().role == "follower"
        await leader.add_node("n4", "addresses of n4")
        assert leader.status().voters == ["n1", "n2", "n3", "n4"]
        result = await commit(leader, "incr 1")
        await cluster.wait_applied(result.index, nodes=["n4"])
        assert cluster.values(["n4"]) == {"n4": 41}
        assert joiner.status().voters == ["n1", "n2", "n3", "n4"]
        assert joiner.raft.configuration.contexts["n4"] == "addresses of n4"


async def test_a_removed_follower_stops_and_the_rest_go_on(autojump_clock: trio.testing.MockClock) -> None:
    async with running_cluster() as cluster:
        leader = await cluster.wait_leader()
        victim = next(n for n in cluster.ids if n != leader.id)
        seen: list[object] = []
        leader.add_configuration_handler(seen.append)
        await leader.remove_node(victim)
        await cluster.wait_until(lambda: cluster.stopped(victim), timeout=2.0)
        assert any(e.kind == "removed" for _, e in cluster.events_of(victim, "removed"))
        assert victim not in leader.status().voters and victim not in seen[-1].voters  # type: ignore[attr-defined]
        await commit(leader, "incr 1")


async def test_the_leader_removes_itself_steps_down_and_stops_and_another_node_leads(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running_cluster() as cluster:
        leader = await cluster.wait_leader()
        await leader.remove_node(leader.id)
        await cluster.wait_until(lambda: cluster.stopped(leader.id), timeout=2.0)
        new_leader = await cluster.wait_leader(other_than=leader.id)
        await commit(new_leader, "incr 1")
        assert new_leader.status().voters == sorted(set(cluster.ids) - {leader.id})


async def test_the_leader_removing_itself_is_answered_done_when_it_stopped_before_its_caller_waited(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The caller of ``remove_node(self)`` may resume only after the node applied its removal and
    stopped: the e2e drill saw it register its wait 2 ms after the commit, while the node was
    stopping, and be answered ``node n2 stopped``. The removal is committed, so the answer is done."""
    async with running_cluster() as cluster:
        leader = await cluster.wait_leader()
        wait_membership = leader._wait_membership

        async def resumed_after_the_stop(*args: object) -> None:
            await cluster.wait_until(lambda: cluster.stopped(leader.id), timeout=2.0)
            await wait_membership(*args)  # type: ignore[arg-type]

        monkeypatch.setattr(leader, "_wait_membership", resumed_after_the_stop)
        await leader.remove_node(leader.id)
        assert cluster.stopped(leader.id)
        assert leader.id not in leader.raft.committed_configuration().members()
        with pytest.raises(NodeNotRunning):  # a change the stopped node never committed is not done
            await leader.remove_node(next(n for n in cluster.ids if n != leader.id))


async def test_membership_refusals_name_the_reason(autojump_clock: trio.testing.MockClock) -> None:
    async with running_cluster() as cluster:
        leader = await cluster.wait_leader()
        follower = next(n for n in cluster.running() if n.id != leader.id)
        with pytest.raises(NotLeader):
            await follower.add_node("n9")
        with pytest.raises(MembershipError, match="already a voter"):
            await leader.add_node(follower.id)
        with pytest.raises(UnknownNode, match="n9"):
            await leader.remove_node("n9")


async def test_adding_a_node_that_never_answers_gives_up_with_the_reason(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running_cluster() as cluster:
        leader = await cluster.wait_leader()
        with pytest.raises(MembershipError, match="did not catch up"):
            await leader.add_node("n4", timeout=600)  # n4 was never started
        await cluster.wait_until(lambda: "n4" not in leader.raft.committed_configuration().members())
        await commit(leader, "incr 1")


async def test_a_membership_change_that_cannot_commit_times_out(autojump_clock: trio.testing.MockClock) -> None:
    async with running_cluster() as cluster:
        leader = await cluster.wait_leader()
        victim = cut_off_the_followers(cluster, leader.id)
        with pytest.raises(TimeoutError, match=f"removal of {victim} is not committed"):
            await leader.remove_node(victim, timeout=0.05)


async def test_a_restarted_node_keeps_the_membership_from_its_log(autojump_clock: trio.testing.MockClock) -> None:
    async with trio.open_nursery() as nursery:
        cluster = Cluster(nursery)
        await cluster.start_all()
        leader = await cluster.wait_leader()
        await cluster.start("n4", join=True)
        await leader.add_node("n4")
        await cluster.wait_until(lambda: cluster.nodes["n4"].status().voters == ["n1", "n2", "n3", "n4"])
        storage = await cluster.crash("n4")
        restarted = await cluster.start("n4", storage=storage, join=True)
        assert restarted.status().voters == ["n1", "n2", "n3", "n4"], "the log's configuration wins"
        nursery.cancel_scope.cancel()


async def test_a_caller_waiting_on_a_node_that_stops_is_answered(autojump_clock: trio.testing.MockClock) -> None:
    async with running_cluster() as cluster:
        leader = await cluster.wait_leader()
        victim = cut_off_the_followers(cluster, leader.id)
        outcome: list[BaseException] = []

        async def remove() -> None:
            try:
                await leader.remove_node(victim, timeout=600)
            except NodeNotRunning as exc:
                outcome.append(exc)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(remove)
            await cluster.wait_until(lambda: bool(leader._membership_waiters))
            await cluster.stop(leader.id)
        assert outcome and "stopped" in str(outcome[0])
        with pytest.raises(NodeNotRunning):
            await leader.take_snapshot()
