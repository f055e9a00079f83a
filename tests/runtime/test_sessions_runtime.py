"""Client sessions in the trio runtime: a command resent after its leader lost leadership is
applied once, and the saved results survive snapshots and restarts (virtual time, seeded)."""

from __future__ import annotations

import pytest
import trio

from raftnode.client.clientproto import ClientSession
from raftnode.core.commands import CommandResult
from raftnode.node.runtime import RaftNode
from raftnode.wire.sessions import SessionStamp

from .harness import Cluster
from .test_node_runtime import running_cluster

pytestmark = pytest.mark.trio


async def lose_leadership_after_appending(cluster: Cluster, leader: RaftNode, command: str,
                                          session: SessionStamp | None,
                                          expected_before_resend: int) -> tuple[CommandResult, RaftNode]:
    """The issue's defect in miniature: ``leader`` appends ``command`` and replicates it, but no
    acknowledgement comes back (the followers' links to it are cut), so it steps down and answers
    "retry"; the followers elect a new leader whose log holds the command, which commits (the
    counter is then ``expected_before_resend`` everywhere). Returns the answer and the new leader."""
    followers = [cluster.transports[n] for n in cluster.ids if n != leader.id]
    for transport in followers:
        send = transport.send
        transport.send = lambda m, send=send: None if m.dst == leader.id else send(m)  # type: ignore[method-assign]
    answer = await leader.run_command(command, timeout=10.0, session=session)
    new = await cluster.wait_leader(other_than=leader.id)
    for transport in followers:
        del transport.send  # type: ignore[method-assign]
    await cluster.wait_applied(new.status().commit_index)
    assert set(cluster.values().values()) == {expected_before_resend}
    return answer, new


async def test_a_command_resent_in_a_session_after_its_leader_lost_leadership_is_applied_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running_cluster() as cluster:
        leader = await cluster.wait_leader()
        registered = await leader.register_session(timeout=5.0)
        session = ClientSession(registered.result)
        assert registered.ok and registered.result == registered.index
        await cluster.wait_applied(registered.index)
        assert {node.status().stats["client_sessions"] for node in cluster.running()} == {1}
        seq = session.begin()
        answer, new = await lose_leadership_after_appending(cluster, leader, "incr 5", session.stamp(seq), 5)
        assert answer.retry and answer.outcome_unknown  # taken, then orphaned: the client resends
        resent = await new.run_command("incr 5", timeout=5.0, session=session.stamp(seq))
        session.end(seq)
        assert resent.ok and resent.result == 5
        await cluster.wait_applied(new.status().commit_index)
        assert set(cluster.values().values()) == {5}

        # Without a session the same resend applies the command twice: the defect sessions fix.
        leader = new
        answer, new = await lose_leadership_after_appending(cluster, leader, "incr 100", None, 105)
        assert answer.retry and answer.outcome_unknown  # and indeed it committed: 105 before the resend
        assert (await new.run_command("incr 100", timeout=5.0)).result == 205
        await cluster.wait_applied(new.status().commit_index)
        assert set(cluster.values().values()) == {205}


async def test_saved_results_survive_a_snapshot_and_a_restart_of_every_node(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running_cluster() as cluster:
        leader = await cluster.wait_leader()
        session = ClientSession((await leader.register_session()).result)
        first = session.begin()
        assert (await leader.run_command("incr 7", session=session.stamp(first))).result == 7
        await leader.take_snapshot()
        for node_id in cluster.ids:
            await cluster.stop(node_id)
        for node_id in cluster.ids:
            await cluster.start(node_id)
        leader = await cluster.wait_leader()
        again = await leader.run_command("incr 7", session=session.stamp(first))
        assert (again.result, again.error) == (7, None)
        session.end(first)
        second = session.begin()
        assert (await leader.run_command("incr 1", session=session.stamp(second))).result == 8
        stale = await leader.run_command("incr 7", session=SessionStamp(session.id, first, first))
        assert stale.error is not None and "was answered already" in stale.error
        unknown = await leader.run_command("incr 1", session=SessionStamp(999, 1, 1))
        assert unknown.error is not None and unknown.error.startswith("session expired")
        await cluster.wait_applied(leader.status().commit_index)
        assert set(cluster.values().values()) == {8}
