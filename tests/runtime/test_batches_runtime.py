"""Batches of commands in the trio runtime (``RaftNode.submit_commands``, what ``run_many``
uses): proposed together in one turn, each command answered on its own, and in a session a
resent batch is answered from the session table, never applied twice (virtual time, seeded)."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from raftnode.client.clientproto import ClientSession
from raftnode.core.commands import CommandResult
from raftnode.core.messages import EntryKind
from raftnode.node.runtime import RaftNode

from .test_node_runtime import running_cluster

pytestmark = pytest.mark.trio


async def run_batch(node: RaftNode, commands: list[str], **kwargs: Any) -> list[CommandResult]:
    """Submit ``commands`` as one batch and wait until each has its answer."""
    results: list[Any] = [None] * len(commands)
    done = trio.Event()

    def answered(position: int, result: CommandResult) -> None:
        assert results[position] is None, f"command {position} answered twice"
        results[position] = result
        if all(r is not None for r in results):
            done.set()

    node.submit_commands(commands, answered, timeout=5.0, **kwargs)
    with trio.fail_after(10):
        await done.wait()
    return results


async def test_a_batch_beyond_max_batch_is_proposed_in_one_turn_and_each_command_answered_on_its_own(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running_cluster() as cluster:
        leader = await cluster.wait_leader()
        storage = cluster.storages[leader.id]
        appended: list[int] = []
        append = storage.append
        storage.append = lambda entries: (appended.append(len(entries)), append(entries))[1]  # type: ignore[method-assign]
        commands = ["incr 1"] * 300 + ["bogus"] + ["incr 1"] * 300  # 601 > max_batch (256)
        results = await run_batch(leader, commands)
        assert appended == [1]  # one Ready, one entry holding the whole batch (the bogus one refused first)
        assert results[300].error is not None and "unknown command 'bogus'" in results[300].error
        assert results[300].index is None  # refused before the log
        good = results[:300] + results[301:]
        assert [r.result for r in good] == list(range(1, 601))  # applied in order, each with its outcome
        assert {r.index for r in good} == {good[0].index}  # every command answers with its entry's index
        entry = storage.load().entries[-1]
        assert entry.index == good[0].index and entry.kind == EntryKind.BATCH
        follower = cluster.followers()[0]
        redirected = await run_batch(follower, ["incr 1", "incr 2"])
        assert redirected == [CommandResult(redirect=leader.id)] * 2


async def test_a_batch_with_no_room_in_the_inbox_is_refused_whole_with_retry(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running_cluster() as cluster:
        leader = await cluster.wait_leader()
        leader._inbox.inbox_size = 3
        results = await run_batch(leader, ["incr 1"] * 4)
        assert results == [CommandResult(retry=True)] * 4
        assert leader.status().stats["inbox_dropped"] == 4
        assert cluster.values()[leader.id] == 0


async def test_a_resent_batch_in_a_session_is_answered_from_the_session_table_and_applied_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running_cluster() as cluster:
        leader = await cluster.wait_leader()
        registered = await leader.register_session(timeout=5.0)
        session = ClientSession(registered.result)
        seqs = [session.begin() for _ in range(3)]
        stamps = [session.stamp(seq) for seq in seqs]
        first = await run_batch(leader, ["incr 1", "incr 2", "incr 3"], stamps=stamps)
        assert [r.result for r in first] == [1, 3, 6]
        again = await run_batch(leader, ["incr 1", "incr 2", "incr 3"], stamps=stamps)
        assert [r.result for r in again] == [1, 3, 6]  # the first outcomes, from the table
        await cluster.wait_applied(leader.status().commit_index)
        assert set(cluster.values().values()) == {6}


async def test_a_batch_too_big_for_one_entry_is_split_and_each_command_answers_with_its_entrys_index(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch,
) -> None:
    import functools

    from raftnode.node import intake
    from raftnode.wire.batches import entry_runs

    monkeypatch.setattr(intake, "entry_runs", functools.partial(entry_runs, max_bytes=40))  # 2 commands an entry
    async with running_cluster() as cluster:
        leader = await cluster.wait_leader()
        commands = ["incr 1", "bogus", "incr 1", "incr \ud800", "incr 1", "incr 1", "incr 1", "incr 1"]
        results = await run_batch(leader, commands)
        assert "not valid Unicode" in results[3].error and "unknown command" in results[1].error
        good = [r for n, r in enumerate(results) if n not in (1, 3)]
        assert [r.result for r in good] == [1, 2, 3, 4, 5, 6]
        indexes = [r.index for r in good]
        # entries of 2 commands as submitted (the lone surrogate left before the split, the bogus one after)
        first = indexes[0]
        assert indexes == [first, first + 1, first + 1, first + 2, first + 2, first + 3]
        await cluster.wait_applied(leader.status().commit_index)
        assert set(cluster.values().values()) == {6}
