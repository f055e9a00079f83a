"""``query_many`` at the client endpoint (``raftnode.node.service_reads``) on the virtual clock:
its queries join the connection's read groups (one read per distinct command, shared with the
``query`` requests read in the same turn), each gets its own outcome in one answer, a follower
serves them as it serves ``query`` -- and they stay linearizable. Two planted bugs show the
checker of ``raftctl chaos`` catching a stale batched read: one answers a query_many from the
node's state at once (no read index), one lets it join a group already handed to the node.

The requests are handed to the endpoint directly (its reader's calls, without a socket).
"""

from __future__ import annotations

from typing import Any

import pytest
import trio

from raftctl.linearizability import ANOMALY, OK
from raftnode.config import Address
from raftnode.core.commands import CommandResult
from raftnode.node.readgroups import BatchReads, ReadGroups
from raftnode.node.service import ClientService, _ConnectionState

from .harness import running_cluster
from .test_read_groups import Answers, JoinsGroupsInFlight, read_after_write_history, verdict

pytestmark = pytest.mark.trio


class AnswersFromStateAtOnce(ClientService):
    """Planted bug: a query_many is answered from the node's state as it is now, without a read
    index (a follower's state may not hold a write the leader has acknowledged)."""

    def _submit_query_many(self, request: dict[str, Any], writer: Any, state: _ConnectionState) -> bool:
        query = self.node._reads._query  # the state machine's read-only query
        results = [CommandResult(result=query(command), index=self.node.applier.applied_index)
                   for command in request["commands"]]
        writer.write_soon(self._frame_of(results, request.get("id")))
        self._dirty.add(writer)
        return True

    def _frame_of(self, results: list[CommandResult], request_id: Any) -> bytes:
        return self._batch_frame(results, request_id) or b""


class BatchesJoinGroupsInFlight(JoinsGroupsInFlight):
    """Planted bug: a query_many's query joins a group already handed to the node."""

    def __init__(self) -> None:
        super().__init__()
        self.handed_batches: dict[tuple[str, float], list[Any]] = {}

    def add_batch(self, command: str, timeout: float, batch: BatchReads, positions: Any) -> None:
        in_flight = self.handed_batches.get((command, timeout))
        if in_flight is not None:
            in_flight.append((batch, positions))
        else:
            super().add_batch(command, timeout, batch, positions)

    def take(self) -> list[tuple[str, float, list[Any], Any]]:
        groups = super().take()
        for command, timeout, _, batches in groups:
            if batches:
                self.handed_batches[command, timeout] = batches
        return groups


def ask_query_many(request_id: str) -> dict[str, Any]:
    return {"op": "query_many", "commands": ["get", "get"], "id": request_id}


def result_of_query_many(answer: dict[str, Any]) -> Any:
    results = answer["results"]
    assert results[0] == results[1] and results[0].get("error") is None, results  # one read for both
    return results[0]["result"]


async def batched_read_after_write(service_class: type[ClientService] = ClientService,
                                   groups: ReadGroups | None = None) -> tuple[str, dict[Any, dict[str, Any]]]:
    """``read_after_write_history`` with query_many ``a`` and ``b`` of two gets each: the
    checker's verdict on the history, and the answers."""
    history, answers = await read_after_write_history(
        groups if groups is not None else ReadGroups(), request=ask_query_many, result=result_of_query_many, service_class=service_class,
        read_index_taken=service_class is ClientService)
    return verdict(history), answers


async def test_a_query_many_sent_after_an_acknowledged_write_reads_it(autojump_clock: trio.testing.MockClock) -> None:
    status, answers = await batched_read_after_write()
    assert [answers[rid]["results"][0]["result"] for rid in "ab"] == [0, 1]
    assert answers["a"]["node"] == answers["b"]["node"] != answers["b"]["leader"]  # served at the follower
    assert status == OK


async def test_planted_bug_a_query_many_answered_without_a_read_index_reads_stale_and_is_caught(
    autojump_clock: trio.testing.MockClock,
) -> None:
    status, answers = await batched_read_after_write(AnswersFromStateAtOnce)
    assert answers["b"]["results"][0]["result"] == 0  # the follower had not applied the write yet
    assert status == ANOMALY


async def test_planted_bug_a_query_many_that_joins_a_group_in_flight_reads_stale_and_is_caught(
    autojump_clock: trio.testing.MockClock,
) -> None:
    status, answers = await batched_read_after_write(groups=BatchesJoinGroupsInFlight())
    assert answers["b"]["results"][0]["result"] == 0  # from before the write it was sent after
    assert status == ANOMALY


async def test_a_frames_queries_share_the_connections_read_groups_and_each_gets_its_own_answer(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running_cluster() as cluster:
        leader = await cluster.wait_leader()
        assert (await leader.run_command("incr 2")).ok
        service = ClientService(leader, Address("127.0.0.1", 1))
        writer, state = Answers(), _ConnectionState()
        asked, rounds = leader._reads._last_token, leader.raft.read_rounds_started()
        service._submit({"op": "query", "command": "get", "id": "single"}, writer, state)  # type: ignore[arg-type]
        frame = ["get"] * 30 + ["incr 1", " ", "get"] + ["incr 1"] * 3
        service._submit({"op": "query_many", "commands": frame, "id": "batch"}, writer, state)  # type: ignore[arg-type]
        service._submit({"op": "query_many", "commands": ["get"], "timeout": 9, "id": "other"}, writer, state)  # type: ignore[arg-type]
        assert state.in_flight == 3
        service._ask_reads(writer, state)  # type: ignore[arg-type]
        service._dirty.add(Answers())  # type: ignore[arg-type]
        service._flush()  # another connection's answers go out before these: a new set of writers to flush
        await cluster.wait_until(lambda: len(writer.by_id) == 3)
        results = writer.by_id["batch"]["results"]
        assert [r["result"] for r in results[:30] + results[32:33]] == [2] * 31
        assert all("is not a read" in r["error"] for r in results[30:31] + results[33:])
        assert results[31] == {"result": None, "index": None, "error": "query_many needs a non-empty string 'command'"}
        assert writer.by_id["single"]["result"] == 2 and writer.by_id["other"]["results"] == [results[0]]
        assert leader._reads._last_token - asked == 3  # get, incr 1, get with timeout 9: one read each
        assert leader.raft.read_rounds_started() - rounds == 1 and state.in_flight == 0


async def test_a_follower_answers_a_query_many_as_it_answers_a_query(autojump_clock: trio.testing.MockClock) -> None:
    async with running_cluster() as cluster:
        leader = await cluster.wait_leader()
        assert (await leader.run_command("incr 4")).ok
        follower = cluster.followers()[0]
        service = ClientService(follower, Address("127.0.0.1", 1))
        writer, state = Answers(), _ConnectionState()
        service._submit({"op": "query", "command": "get", "id": 1}, writer, state)  # type: ignore[arg-type]
        service._submit({"op": "query_many", "commands": ["get", "get"], "id": 2}, writer, state)  # type: ignore[arg-type]
        service._ask_reads(writer, state)  # type: ignore[arg-type]
        await cluster.wait_until(lambda: len(writer.by_id) == 2)
        single, batch = writer.by_id[1], writer.by_id[2]
        assert single["result"] == 4 and single["node"] == follower.id
        assert batch["results"] == [{"result": 4, "index": single["index"]}] * 2 and batch["node"] == follower.id

        cluster.partition(follower.id)  # it loses its leader: reads are refused, never served stale
        await cluster.wait_until(lambda: follower.raft.leader is None, timeout=10)
        service._submit({"op": "query", "command": "get", "id": 3}, writer, state)  # type: ignore[arg-type]
        service._submit({"op": "query_many", "commands": ["get", "get"], "id": 4}, writer, state)  # type: ignore[arg-type]
        service._ask_reads(writer, state)  # type: ignore[arg-type]
        await cluster.wait_until(lambda: len(writer.by_id) == 4, timeout=10)
        assert writer.by_id[3]["retry"] and not writer.by_id[3]["ok"]  # the query: try again elsewhere
        assert writer.by_id[4]["results"] == [{"result": None, "index": None, "retry": True}] * 2


async def test_a_query_many_before_the_node_runs_takes_the_general_path_and_each_query_is_told_to_retry() -> None:
    from raftnode.core import RaftConfig
    from raftnode.node.runtime import RaftNode
    from raftnode.node.statemachines import Counter
    from raftnode.transport.memory import MemoryNetwork

    from .harness import memory_storage

    node = RaftNode(RaftConfig(node_id="n1", voters=("n1", "n2", "n3")), storage=memory_storage(),
                    transport=MemoryNetwork().transport("n1"), state_machine=Counter())
    service = ClientService(node, Address("127.0.0.1", 1))
    writer, state = Answers(), _ConnectionState()
    request = {"op": "query_many", "commands": ["get", " "], "id": 5}
    assert not service._submit(request, writer, state)  # type: ignore[arg-type]
    state.in_flight += 1  # as the reader counts a dispatched request
    sent: list[bytes] = []
    writer.write = sent.append  # type: ignore[attr-defined]
    await service._dispatch(request, writer, state)  # type: ignore[arg-type]
    writer.frames.extend(sent)
    writer.flush()
    answer = writer.by_id[5]
    assert answer["results"] == [{"result": None, "index": None, "retry": True},  # each on its own, as on the hot path
                                 {"result": None, "index": None, "error": "query_many needs a non-empty string 'command'"}]
    assert state.in_flight == 0
