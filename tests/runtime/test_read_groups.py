"""The client endpoint asks the node one read per group of queries (``raftnode.node.readgroups``), and
stays linearizable: a query sent after a write was acknowledged reads it, even while an earlier
group of the same query is still waiting for its read index. A planted bug that lets the later
query join the group in flight answers it from before the write, and the linearizability checker
of ``raftctl chaos`` reports the anomaly.

The requests are handed to the endpoint directly (its reader's calls, without a socket), so that
the whole run is on the virtual clock.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import trio

from raftctl.linearizability import ANOMALY, COUNTER, OK, check_history, parse_history
from raftnode.config import Address
from raftnode.node.readgroups import ReadGroups
from raftnode.node.service import ClientService, _ConnectionState
from raftnode.wire import codec

from .harness import running_cluster

pytestmark = pytest.mark.trio


class Answers:
    """A connection's writer as the endpoint uses it: the answers by request id, first one kept."""

    closed = False

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.decoder = codec.FrameDecoder()
        self.by_id: dict[Any, dict[str, Any]] = {}

    def write_soon(self, frame: bytes) -> None:
        self.frames.append(frame)

    def flush(self) -> None:
        for frame in self.decoder.feed(b"".join(self.frames)):
            answer = codec.decode_json(frame.payload)
            self.by_id.setdefault(answer["id"], answer)
        self.frames.clear()


class JoinsGroupsInFlight(ReadGroups):
    """Planted bug: a query joins a group already handed to the node, whose read index may have
    been taken before the query was sent."""

    def __init__(self) -> None:
        super().__init__()
        self.handed: dict[tuple[str, float], list[Any]] = {}

    def add(self, command: str, timeout: float, request_id: Any) -> None:
        in_flight = self.handed.get((command, timeout))
        if in_flight is not None:
            in_flight.append(request_id)
        else:
            super().add(command, timeout, request_id)

    def take(self) -> list[tuple[str, float, list[Any], Any]]:
        groups = super().take()
        for command, timeout, ids, _ in groups:
            self.handed[command, timeout] = ids
        return groups


def ask_query(request_id: str) -> dict[str, Any]:
    return {"op": "query", "command": "get", "id": request_id}


def result_of_query(answer: dict[str, Any]) -> Any:
    assert answer["ok"], answer
    return answer["result"]


async def read_after_write_history(
    groups: ReadGroups, *, request: Callable[[str], dict[str, Any]] = ask_query,
    result: Callable[[dict[str, Any]], Any] = result_of_query, service_class: type[ClientService] = ClientService,
    read_index_taken: bool = True,
) -> tuple[list[dict[str, Any]], dict[Any, dict[str, Any]]]:
    """A follower's endpoint is asked ``get`` (a), then a write is acknowledged by the leader while
    a's read index is on its way back (the follower's links are slow), then ``get`` (b) is sent:
    the history of the three operations and the answers. ``request(id)`` is the read's request,
    ``result(answer)`` the value its answer read; ``read_index_taken``: wait until the leader
    has taken a's read index before the write."""
    async with running_cluster() as cluster:
        leader = await cluster.wait_leader()
        follower = cluster.followers()[0]
        service = service_class(follower, Address("127.0.0.1", 1))  # not listening: requests handed in
        writer, state = Answers(), _ConnectionState()
        state.reads = groups
        history: list[dict[str, Any]] = []

        def record(kind: str, process: int, f: str, value: Any) -> None:
            history.append({"type": kind, "process": process, "f": f, "key": None, "value": value,
                            "time": trio.current_time()})

        def ask(request_id: str) -> None:
            service._submit(request(request_id), writer, state)  # type: ignore[arg-type]
            service._ask_reads(writer, state)  # type: ignore[arg-type]

        cluster.transports[follower.id].faults.delay_ms = 80  # both ways; less than an election timeout
        rounds = leader.raft.read_rounds_started()
        record("invoke", 1, "get", None)
        ask("a")
        if read_index_taken:
            await cluster.wait_until(lambda: leader.raft.read_rounds_started() > rounds)  # a's read index is taken
        record("invoke", 2, "incr", 1)
        write = await leader.run_command("incr 1")
        assert write.ok
        record("ok", 2, "incr", write.result)
        assert "a" not in writer.by_id or not read_index_taken, "the read index is still on its way to the follower"
        record("invoke", 3, "get", None)
        ask("b")
        await cluster.wait_until(lambda: {"a", "b"} <= writer.by_id.keys())
        for request_id, process in (("a", 1), ("b", 3)):
            record("ok", process, "get", result(writer.by_id[request_id]))
        return history, writer.by_id


def verdict(history: list[dict[str, Any]]) -> str:
    return check_history(parse_history(json.dumps(record) for record in history), COUNTER).status


async def test_a_query_sent_after_an_acknowledged_write_reads_it_while_an_earlier_group_waits(
    autojump_clock: trio.testing.MockClock,
) -> None:
    history, answers = await read_after_write_history(ReadGroups())
    assert answers["a"]["result"] == 0 and answers["b"]["result"] == 1
    assert answers["b"]["index"] > answers["a"]["index"]  # asked of the leader on its own
    assert verdict(history) == OK


async def test_planted_bug_a_query_that_joins_a_group_in_flight_reads_stale_and_is_caught(
    autojump_clock: trio.testing.MockClock,
) -> None:
    history, answers = await read_after_write_history(JoinsGroupsInFlight())
    assert answers["b"]["result"] == 0  # from before the write it was sent after
    assert verdict(history) == ANOMALY


async def test_queries_of_one_batch_share_one_read_and_each_gets_its_own_answer(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running_cluster() as cluster:
        leader = await cluster.wait_leader()
        assert (await leader.run_command("incr 2")).ok
        service = ClientService(leader, Address("127.0.0.1", 1))
        writer, state = Answers(), _ConnectionState()
        asked = leader._reads._last_token  # reads asked of the core so far
        for i in range(50):
            service._submit({"op": "query", "command": "get", "id": i}, writer, state)  # type: ignore[arg-type]
            if i == 20:  # another command, another timeout: groups of their own
                service._submit({"op": "query", "command": "incr 1", "id": "write"}, writer, state)  # type: ignore[arg-type]
                service._submit({"op": "query", "command": "get", "timeout": 9, "id": "other"}, writer, state)  # type: ignore[arg-type]
        rounds = leader.raft.read_rounds_started()
        service._ask_reads(writer, state)  # type: ignore[arg-type]
        await cluster.wait_until(lambda: len(writer.by_id) == 52)
        assert [writer.by_id[i]["result"] for i in range(50)] == [2] * 50 and writer.by_id["other"]["result"] == 2
        assert not writer.by_id["write"]["ok"] and writer.by_id["write"]["error"]  # a query changes nothing
        assert leader._reads._last_token - asked == 3  # one read per (command, timeout)
        assert leader.raft.read_rounds_started() - rounds == 1 and state.in_flight == 0
