"""``query_many`` on the client endpoint: many linearizable reads in one request, one answer with
each query's own outcome in order (a bad query among good ones answered on its own), the clients'
``query_many``, and ``raftctl bench --batch`` with reads."""

from __future__ import annotations

import pytest
import trio

from raftnode.client.syncclient import SyncClusterClient
from raftnode.client.trioclient import ClientError, ClusterClient
from raftnode.wire import codec

from .test_client_service import endpoint, raw, still_serving

pytestmark = pytest.mark.trio


async def test_query_many_answers_each_query_on_its_own_in_order() -> None:
    async with endpoint() as ep, raw(ep) as client:
        assert (await client.request({"op": "run_command", "command": "incr 3", "id": 1}))["ok"]
        answer = await client.request({"op": "query_many", "commands": ["get", "incr 1", " ", "get", "bogus"],
                                       "id": 9})
        assert (answer["ok"], answer["id"], answer["node"], answer["leader"]) == (True, 9, "n1", "n1")
        got, write, blank, again, bogus = answer["results"]
        assert got == again and got["result"] == 3 and got["index"] >= 2
        assert write["result"] is None and "'incr 1' is not a read" in write["error"]
        assert blank == {"result": None, "index": None, "error": "query_many needs a non-empty string 'command'"}
        assert "unknown command 'bogus'" in bogus["error"]
        assert ep.node.status().state == {"value": 3}  # a query changes nothing


async def test_a_query_many_formatted_in_place_is_the_general_paths_json() -> None:
    async with endpoint() as ep, raw(ep) as client:
        assert (await client.request({"op": "run_command", "command": "incr 2", "id": 1}))["ok"]
        answer = await client.request({"op": "query_many", "commands": ["get", "get"], "id": "b\u00e9"})
        index = answer["results"][0]["index"]
        assert answer == {"ok": True, "results": [{"result": 2, "index": index}] * 2, "node": "n1",
                          "leader": "n1", "id": "b\u00e9"}


async def test_pipelined_query_manys_on_one_connection_are_all_answered() -> None:
    async with endpoint() as ep, raw(ep) as client:
        frames = [codec.encode_frame(codec.FrameKind.CLIENT_REQUEST, codec.encode_json(
            {"op": "query_many", "commands": ["get"] * (i + 1), "id": i})) for i in range(40)]
        with trio.fail_after(5):
            for round_ in range(3):  # again after the node's flushes: each answer still goes out
                await client.send(b"".join(frames))
                answers = {(a := await client.response())["id"]: a for _ in frames}
                assert sorted(answers) == list(range(40)), round_
                assert all(len(answers[i]["results"]) == i + 1 for i in answers)
        assert ep.service.stats["bad_requests"] == 0


async def test_a_malformed_query_many_is_refused_by_name_and_the_connection_keeps_working() -> None:
    async with endpoint() as ep, raw(ep) as client:
        answer = await client.request({"op": "query_many", "commands": "get", "id": 1})
        assert answer == {"ok": False, "error": "query_many needs a list 'commands' of 1 to 1024 commands", "id": 1}
        answer = await client.request({"op": "query_many", "commands": ["get"] * 1025, "id": 2})
        assert "of 1 to 1024 commands" in answer["error"]
        answer = await client.request({"op": "query_many", "commands": ["get", 7], "id": 3})
        assert answer["error"] == "query_many: command 1 is not a string"
        answer = await client.request({"op": "query_many", "commands": ["get", ""], "id": 4})
        assert answer["error"] == "query_many: command 1 is empty"
        assert ep.service.stats["bad_requests"] == 4
        answer = await client.request({"op": "query_many", "commands": ["get"], "id": 5})
        assert answer["ok"] and answer["results"][0]["result"] == 0
        await still_serving(ep)


async def test_a_too_long_query_is_answered_with_its_error_and_the_others_are_served() -> None:
    async with endpoint(max_command_bytes=1024) as ep, raw(ep) as client:
        answer = await client.request({"op": "query_many", "commands": ["get", "get " + "x" * 2000], "id": 1})
        served, too_long = answer["results"]
        assert served["result"] == 0 and "more than cluster.max_command_bytes = 1024" in too_long["error"]


async def test_the_clients_query_many_returns_one_outcome_per_read() -> None:
    async with endpoint() as ep:
        async with ClusterClient({"n1": ep.address}) as client:
            await client.run_command("incr 5")
            outcomes = await client.query_many(["get", "get", "incr 1"])
            assert [o.result.result for o in outcomes[:2]] == [5, 5] and {o.node for o in outcomes} == {"n1"}
            assert outcomes[2].result.error and not outcomes[2].result.ok
            with pytest.raises(ClientError, match="query_many needs a list 'commands'"):
                await client.query_many([])

        def run() -> list[object]:
            with SyncClusterClient({"n1": ep.address}) as sync:
                return [o.response["result"] for o in sync.query_many(["get", "get"])]

        assert await trio.to_thread.run_sync(run) == [5, 5]
        assert ep.node.status().state == {"value": 5}


@pytest.mark.parametrize(("mix", "sessions"), [(["get"], True), (["incr 1", "get"], True), (["incr 1", "get"], False)])
async def test_bench_with_a_batch_sends_reads_as_query_many_and_counts_each(mix: list[str], sessions: bool) -> None:
    from raftctl.bench import LoadGenerator, Workload, parse_mix

    async with endpoint() as ep:
        workload = Workload(parse_mix(mix), in_flight=100, connections=2, count=1000, batch=16, sessions=sessions)
        tally = await LoadGenerator({"n1": ep.address}, "n1", workload).run()
        assert (tally.ok, tally.errors, tally.unanswered, len(tally.latencies)) == (1000, 0, 0, 1000)
        assert ep.node.status().state["value"] == tally.per_command.get("incr 1", 0)
        assert tally.per_command.get("get", 0) > (300 if len(mix) > 1 else 999)
        assert ep.service.stats["bad_requests"] == 0


async def test_bench_counts_a_batchs_failed_reads_as_errors_and_the_others_as_acknowledged() -> None:
    from raftctl.bench import LoadGenerator, Workload, parse_mix

    async with endpoint() as ep:
        workload = Workload(parse_mix(["3:get", "get x"]), in_flight=64, connections=1, count=800, batch=16)
        tally = await LoadGenerator({"n1": ep.address}, "n1", workload).run()
        assert tally.ok + tally.errors == 800 and tally.unanswered == 0
        assert tally.ok == tally.per_command["get"] and 100 < tally.errors < 300  # a quarter, give or take
        assert list(tally.error_samples) == ["unknown command 'get x'; the counter accepts: incr N, decr N, get"]
