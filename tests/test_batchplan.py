"""``BatchPlan``, the rules of ``run_many`` without I/O: each command settled on its own, the
unsettled ones resent (same sequence numbers) where the answers point."""

from __future__ import annotations

import pytest

from raftnode.client.clientproto import BatchPlan, ClientError, ClientSession, SessionExpired, Timeout

NODES = ["n1", "n2", "n3"]


def test_settled_commands_stay_settled_and_the_others_follow_the_redirect_with_their_own_seqs() -> None:
    session = ClientSession(7)
    seqs = [session.begin() for _ in range(3)]
    plan = BatchPlan(["a", "b", "c"], NODES, timeout=5, now=0, session=session, seqs=seqs)
    target, request, _ = plan.next_request(0)
    assert (target, request) == ("n1", {"op": "run_many", "commands": ["a", "b", "c"], "timeout": 5,
                                        "session": 7, "seqs": [1, 2, 3], "ack": 1})
    answer = {"ok": True, "node": "n1", "leader": "n2",
              "results": [{"result": 1, "index": 4}, {"result": None, "index": None, "redirect": "n2"},
                          {"result": None, "index": None, "error": "bad"}]}
    assert plan.answer(answer) is None and plan.learned == "n2" and plan.pause(0) is None
    target, request, _ = plan.next_request(0.5)
    assert (target, request["commands"], request["seqs"]) == ("n2", ["b"], [2])
    final = plan.answer({"ok": True, "node": "n2", "leader": "n2", "results": [{"result": 2, "index": 5}]})
    assert final == [
        {"result": 1, "index": 4, "node": "n1", "leader": "n2"},
        {"result": 2, "index": 5, "node": "n2", "leader": "n2"},
        {"result": None, "index": None, "error": "bad", "node": "n1", "leader": "n2"},
    ]


def test_a_retry_moves_on_to_the_next_node_after_a_pause() -> None:
    plan = BatchPlan(["a"], NODES, timeout=5, now=0)
    plan.next_request(0)
    assert plan.answer({"ok": True, "results": [{"result": None, "index": None, "retry": True}]}) is None
    assert plan.pause(0) > 0 and plan.next_request(0.1)[0] == "n2"
    assert "session" not in plan.next_request(0.2)[1]


@pytest.mark.parametrize(("results", "error"), [
    ([{"result": None, "index": None, "error": "session expired: session 7 is not open"}], SessionExpired),
    ([{"result": None, "index": None, "timeout_expired": True}], Timeout),
    ([], ClientError),  # not one result per command
    (["x"], ClientError),
])
def test_what_ends_a_batch_early(results: list[object], error: type[Exception]) -> None:
    plan = BatchPlan(["a"], NODES, timeout=5, now=0)
    plan.next_request(0)
    with pytest.raises(error):
        plan.answer({"ok": True, "results": results})


def test_a_refused_request_is_a_client_error() -> None:
    plan = BatchPlan(["a"], NODES, timeout=5, now=0)
    plan.next_request(0)
    with pytest.raises(ClientError, match="needs a list"):
        plan.answer({"ok": False, "error": "run_many needs a list 'commands'"})


def test_a_query_many_plan_sends_the_unsettled_reads_again_as_query_many_without_a_session() -> None:
    plan = BatchPlan(["get", "get x", "get y"], NODES, timeout=5, now=0, op="query_many")
    target, request, _ = plan.next_request(0)
    assert (target, request) == ("n1", {"op": "query_many", "commands": ["get", "get x", "get y"], "timeout": 5})
    answer = {"ok": True, "node": "n1", "leader": None,
              "results": [{"result": 3, "index": 9}, {"result": None, "index": None, "retry": True},
                          {"result": None, "index": 9, "error": "no key 'y'"}]}
    assert plan.answer(answer) is None and plan.pause(0) > 0
    target, request, _ = plan.next_request(0.1)
    assert (target, request) == ("n2", {"op": "query_many", "commands": ["get x"], "timeout": 4.9})
    final = plan.answer({"ok": True, "node": "n2", "leader": "n1", "results": [{"result": 4, "index": 10}]})
    assert [(o["result"], o["node"]) for o in final] == [(3, "n1"), (4, "n2"), (None, "n1")]
    with pytest.raises(ClientError, match="answered query_many without 'results'"):
        again = BatchPlan(["get"], NODES, timeout=5, now=0, op="query_many")
        again.next_request(0)
        again.answer({"ok": True, "result": 1})
