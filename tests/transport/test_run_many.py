"""``run_many`` on the client endpoint: one request of many commands, one answer with each
command's own outcome, strict decoding, and exactly-once for a resent batch in a session -- with
deduplication planted off for batches to show the check bites."""

from __future__ import annotations

import pytest

from raftnode.client.syncclient import SyncClusterClient
from raftnode.client.trioclient import ClientError, ClusterClient
from raftnode.core.commands import CommandResult
from raftnode.wire import requests as wire

from .test_client_service import endpoint, raw, still_serving

pytestmark = pytest.mark.trio


async def test_run_many_answers_each_command_on_its_own_in_order() -> None:
    async with endpoint() as ep, raw(ep) as client:
        answer = await client.request({"op": "run_many", "commands": ["incr 1", "bogus", " ", "incr 2"], "id": 9})
        assert (answer["ok"], answer["id"], answer["node"], answer["leader"]) == (True, 9, "n1", "n1")
        ok1, bogus, blank, ok2 = answer["results"]
        assert ok1 == {"result": 1, "index": 2} and ok2 == {"result": 3, "index": 2}  # one batch entry
        assert bogus["result"] is None and "unknown command 'bogus'" in bogus["error"]
        assert blank == {"result": None, "index": None, "error": "run_many needs a non-empty string 'command'"}


async def test_an_applied_batchs_answer_formatted_in_place_is_the_general_paths_json() -> None:
    async with endpoint() as ep, raw(ep) as client:
        answer = await client.request({"op": "run_many", "commands": ["incr 1", "get"], "id": "b\u00e9"})
        assert answer == {"ok": True, "results": [{"result": 1, "index": 2}, {"result": 1, "index": 2}],
                          "node": "n1", "leader": "n1", "id": "b\u00e9"}
        results = [CommandResult(result=1, index=2), CommandResult(result=[1], index=3)]  # a list: general path
        assert ep.service._batch_frame(results, 1) is None
        assert ep.service._batch_frame(results[:1], {"an": "object"}) is None


async def test_a_malformed_run_many_is_refused_by_name_and_the_connection_keeps_working() -> None:
    async with endpoint() as ep, raw(ep) as client:
        answer = await client.request({"op": "run_many", "commands": "incr 1", "id": 1})
        assert answer == {"ok": False, "error": "run_many needs a list 'commands' of 1 to 1024 commands", "id": 1}
        answer = await client.request({"op": "run_many", "commands": ["incr 1"] * 1025, "id": 2})
        assert "of 1 to 1024 commands" in answer["error"]
        answer = await client.request({"op": "run_many", "commands": ["incr 1", "incr 1"], "session": 1,
                                       "seqs": [1, 1], "ack": 1, "id": 3})
        assert answer["error"] == "run_many: 'seqs' must be distinct"
        assert ep.node.status().state == {"value": 0}
        await still_serving(ep)


async def test_the_clients_run_many_returns_one_outcome_per_command() -> None:
    async with endpoint() as ep:
        async with ClusterClient({"n1": ep.address}) as client:
            outcomes = await client.run_many(["incr 1", "incr 2", "incr 3"])
            assert [o.result.result for o in outcomes] == [1, 3, 6] and {o.node for o in outcomes} == {"n1"}
            assert client.session is not None and client.session.in_flight == 0
            with pytest.raises(ClientError, match="run_many needs a list 'commands'"):
                await client.run_many([])


async def test_the_sync_clients_run_many_speaks_the_same_protocol() -> None:
    import trio

    async with endpoint() as ep:
        def run() -> list[object]:
            with SyncClusterClient({"n1": ep.address}) as client:
                return [o.response["result"] for o in client.run_many(["incr 4", "incr 5"])]

        assert await trio.to_thread.run_sync(run) == [4, 9]


async def resend_a_batch() -> tuple[int, list[dict[str, object]], list[dict[str, object]]]:
    """Register a session, send a run_many of three stamped increments, then the same request
    again (a client resending after a lost answer); the counter's value and both answers."""
    async with endpoint() as ep:
        async with ClusterClient({"n1": ep.address}) as client:
            session = await client.open_session()
            request = wire.RunMany(["incr 1", "incr 2", "incr 3"], 5.0, session.id, [1, 2, 3], 1)
            first = await client.call("n1", request)
            again = await client.call("n1", request)
            return ep.node.status().state["value"], first["results"], again["results"]


async def test_a_resent_batch_is_answered_from_the_session_table_never_applied_twice() -> None:
    value, first, again = await resend_a_batch()
    assert value == 6
    assert [r["result"] for r in first] == [r["result"] for r in again] == [1, 3, 6]


async def test_with_deduplication_planted_off_for_batches_the_resend_is_caught_applying_twice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(wire.RunMany, "stamps", property(lambda self: None))  # the batch path drops the stamps
    value, first, again = await resend_a_batch()
    assert value == 12  # what the test above would catch: every command applied twice
    assert [r["result"] for r in again] == [7, 9, 12]


@pytest.mark.parametrize("sessions", [True, False])
async def test_bench_with_a_batch_sends_run_many_and_counts_each_command(sessions: bool) -> None:
    from raftctl.bench import LoadGenerator, Workload, parse_mix

    async with endpoint() as ep:
        workload = Workload(parse_mix(["incr 1"]), in_flight=100, connections=2, count=1000, batch=32,
                            sessions=sessions)
        tally = await LoadGenerator({"n1": ep.address}, "n1", workload).run()
        assert (tally.ok, tally.errors, tally.unanswered, len(tally.latencies)) == (1000, 0, 0, 1000)
        assert ep.node.status().state["value"] == 1000
        assert ep.service.stats["bad_requests"] == 0


async def test_a_batch_is_1_to_1024_commands_of_any_kind() -> None:
    from raftctl.bench import Workload, parse_mix

    assert Workload(parse_mix(["get"]), count=1, batch=8).batch == 8  # as query_many
    with pytest.raises(ValueError, match="batch must be between 1 and 1024"):
        Workload(parse_mix(["incr 1"]), count=1, batch=1025)
    assert Workload(parse_mix(["get"]), count=1, batch=8, reads_through_log=True).batch == 8
