"""Linearizable reads in the trio runtime (``RaftNode.query``, ReadIndex §6.4): served without a
log entry at the leader and at followers, refused (never stale) by a leader that is cut off,
and through the log for a state machine without a read-only ``query``."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from raftnode.core.commands import CommandResult
from raftnode.node.statemachines import Counter

from .harness import running_cluster

pytestmark = pytest.mark.trio


async def test_a_query_at_the_leader_reads_without_a_log_entry(autojump_clock: trio.testing.MockClock) -> None:
    async with running_cluster() as cluster:
        leader = await cluster.wait_leader()
        assert (await leader.run_command("incr 4")).ok
        last = leader.status().last_index
        answers = await _all(leader, ["get"] * 20)
        assert [a.result for a in answers] == [4] * 20
        assert leader.status().last_index == last
        assert leader.raft.read_rounds_started() == 1, leader.raft.read_rounds_started()  # one round for all twenty


async def test_a_query_at_a_follower_sees_the_write_acknowledged_just_before(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running_cluster() as cluster:
        leader = await cluster.wait_leader()
        follower = cluster.followers()[0]
        write = await leader.run_command("incr 9")
        assert write.ok and follower.status().applied_index < write.index  # it learns of the commit later
        answer = await follower.query("get")
        assert answer.ok and answer.result == 9 and answer.index >= write.index


async def test_a_cut_off_leader_answers_no_query_and_a_state_change_is_refused(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running_cluster() as cluster:
        leader = await cluster.wait_leader()
        assert (await leader.query("incr 1")).error is not None  # a query never changes the state
        cluster.partition(leader.id)
        answer = await leader.query("get", timeout=10.0)
        assert not answer.ok and (answer.retry or answer.redirect is not None), answer
        assert leader.status().state == {"value": 0}


class WithoutQuery:
    """A state machine with no read-only path: its queries go through the log."""

    def __init__(self) -> None:
        self.counter = Counter()

    def process_command(self, command: str) -> Any:
        return self.counter.process_command(command)

    def snapshot(self) -> bytes:
        return self.counter.snapshot()

    def restore(self, data: bytes) -> None:
        self.counter.restore(data)


async def test_a_state_machine_without_query_gets_its_queries_through_the_log(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running_cluster(machines=lambda node_id: WithoutQuery()) as cluster:
        leader = await cluster.wait_leader()
        last = leader.status().last_index
        answer = await leader.query("get")
        assert answer.ok and answer.result == 0 and answer.index == last + 1


async def _all(node: Any, commands: list[str]) -> list[CommandResult]:
    answers: list[Any] = [None] * len(commands)

    async def one(i: int, command: str) -> None:
        answers[i] = await node.query(command)

    async with trio.open_nursery() as nursery:
        for i, command in enumerate(commands):
            nursery.start_soon(one, i, command)
    return answers
