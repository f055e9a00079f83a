"""The client side of the client protocol: ``CommandPlan`` (the rules of run_command, without
I/O) step by step, and the two clients that drive it -- ``ClusterClient`` (trio) and
``SyncClusterClient`` (blocking sockets) -- giving the same answers and the same errors against
the same fake nodes, in client sessions or without."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
import trio

from raftnode.client.clientproto import (
    ClientError,
    ClientSession,
    CommandPlan,
    NodeUnreachable,
    NoLeader,
    SessionExpired,
    Timeout,
)
from raftnode.client.syncclient import SyncClusterClient
from raftnode.client.trioclient import ClusterClient
from raftnode.config import Address
from raftnode.wire.sessions import SessionStamp

from .fake_nodes import (
    HANG_UP,
    SILENT,
    FakeCluster,
    command_result,
    fake_cluster,
    redirect,
    retry,
)

NODES = ["n1", "n2", "n3"]


def test_the_plan_starts_at_the_named_node_else_the_hint_else_the_first() -> None:
    assert CommandPlan("c", NODES, node="n3", leader_hint="n2", timeout=1, now=0).next_request(0)[0] == "n3"
    assert CommandPlan("c", NODES, leader_hint="n2", timeout=1, now=0).next_request(0)[0] == "n2"
    target, request, wait = CommandPlan("incr 1", NODES, timeout=2, now=10).next_request(10.5)
    assert (target, request, wait) == ("n1", {"op": "run_command", "command": "incr 1", "timeout": 1.5}, 2.5)


def test_a_client_session_numbers_commands_and_acks_the_lowest_unanswered() -> None:
    session = ClientSession(42)
    first, second, third = session.begin(), session.begin(), session.begin()
    assert (first, second, third) == (1, 2, 3) and session.stamp(third) == SessionStamp(42, 3, 1)
    session.end(second)
    assert session.lowest_unanswered() == 1  # 1 still waits
    session.end(first)
    assert session.stamp(third) == SessionStamp(42, 3, 3) and session.in_flight == 1
    session.end(third)
    assert session.lowest_unanswered() == 4  # nothing waits: the next one


def test_a_plan_in_a_session_sends_the_same_stamp_on_every_attempt_and_can_register() -> None:
    plan = CommandPlan("incr 1", NODES, timeout=5, now=0, stamp=SessionStamp(7, 3, 2))
    first = plan.next_request(0)[1]
    assert first == {"op": "run_command", "command": "incr 1", "session": 7, "seq": 3, "ack": 2, "timeout": 5}
    plan.answer(redirect("n1", "n2"))
    assert plan.next_request(0.1)[1] == {**first, "timeout": 4.9}
    register = CommandPlan("register", NODES, timeout=5, now=0, register=True)
    assert register.next_request(0)[1] == {"op": "register_session", "timeout": 5}
    with pytest.raises(SessionExpired, match="session expired: session 7"):
        plan.answer({**command_result("n2", None), "ok": False, "error": "session expired: session 7 is not open"})


def test_the_plan_follows_a_redirect_at_once_and_learns_the_leader() -> None:
    plan = CommandPlan("c", NODES, timeout=5, now=0)
    plan.next_request(0)
    assert plan.answer(redirect("n1", "n3")) is None
    assert plan.learned == "n3" and plan.pause(0.1) is None
    target, _, _ = plan.next_request(0.1)
    assert target == "n3" and plan.attempts == 2 and plan.learned is None
    final = command_result("n3", 7)
    assert plan.answer(final) is final and plan.learned == "n3"


def test_the_plan_goes_round_the_nodes_backing_off_while_no_leader_answers() -> None:
    plan = CommandPlan("c", NODES, timeout=5, now=0)
    targets, pauses = [], []
    for step in range(8):
        target, _, _ = plan.next_request(step * 0.001)
        targets.append(target)
        if step % 3 == 2:
            plan.unreachable(NodeUnreachable(target, "Connection refused"))
        elif step % 3 == 1:
            assert plan.answer(redirect(target, "n9")) is None  # a leader not in the cluster: no help
        else:
            assert plan.answer(retry(target)) is None
        assert plan.learned is None
        pauses.append(plan.pause(step * 0.001))
    assert targets == ["n1", "n2", "n3", "n1", "n2", "n3", "n1", "n2"]
    assert pauses == [0.01, 0.02, 0.04, 0.08, 0.16, 0.2, 0.2, 0.2]
    assert plan.pause(4.95) == pytest.approx(0.05)  # never past the deadline


def test_the_plan_gives_up_at_the_deadline_naming_the_last_problem() -> None:
    plan = CommandPlan("c", NODES, timeout=1, now=0)
    target, _, _ = plan.next_request(0)
    plan.unreachable(NodeUnreachable(target, "Connection refused"))
    with pytest.raises(NoLeader, match=r"no leader answered within 1 s \(node n1 is unreachable: Connection refused\)"):
        plan.next_request(1.0)
    plan = CommandPlan("c", NODES, timeout=1, now=0)
    plan.next_request(0)
    plan.answer(retry("n1"))
    with pytest.raises(NoLeader, match=r"\(n1 knows no leader\)"):
        plan.next_request(2)


def test_the_plan_stops_at_a_leader_timeout_and_at_a_refused_request() -> None:
    plan = CommandPlan("incr 1", NODES, timeout=2, now=0)
    plan.next_request(0)
    with pytest.raises(Timeout, match=r"the leader n1 did not commit 'incr 1' within 2 s"):
        plan.answer({**command_result("n1", None), "timeout_expired": True})
    plan = CommandPlan("incr 1", NODES, timeout=2, now=0)
    plan.next_request(0)
    with pytest.raises(ClientError, match="bad request"):
        plan.answer({"ok": False, "error": "bad request"})


# -- both clients, same fake nodes ---------------------------------------------------------------


def addresses(fake: FakeCluster) -> dict[str, Address]:
    return {node: Address("127.0.0.1", port) for node, port in fake.ports.items()}


def with_sync(fake: FakeCluster, work: Callable[[Any], Any], *, sessions: bool = False) -> Any:
    with SyncClusterClient(addresses(fake), connect_timeout=0.5, sessions=sessions) as client:
        try:
            return work(client)
        except ClientError as exc:
            return exc


def with_trio(fake: FakeCluster, work: Callable[[Any], Any], *, sessions: bool = False) -> Any:
    async def main() -> Any:
        async with ClusterClient(addresses(fake), connect_timeout=0.5, sessions=sessions) as client:
            try:
                return await work(client)
            except ClientError as exc:
                return exc

    return trio.run(main)


def same(a: Any, b: Any) -> Any:
    if isinstance(a, Exception) or isinstance(b, Exception):
        assert type(a) is type(b) and str(a) == str(b), (a, b)
    else:
        assert a == b
    return a


def handler(leader: str | None, silent: tuple[str, ...] = ()) -> Any:
    def handle(node_id: str, request: dict[str, Any]) -> Any:
        if node_id in silent:
            return SILENT
        if request["op"] == "status":
            return {"ok": True, "role": "leader" if node_id == leader else "follower"}
        if request["op"] != "run_command":
            return {"ok": False, "error": f"unknown op {request['op']!r}"}
        if leader is None:
            return retry(node_id)
        return command_result(node_id, request["command"]) if node_id == leader else redirect(node_id, leader)

    return handle


def run_sync(command: str, **kwargs: Any) -> Callable[[SyncClusterClient], Any]:
    def work(client: SyncClusterClient) -> Any:
        answer = client.run_command(command, **kwargs)
        return answer.node, answer.attempts, answer.response["result"], client.leader_hint

    return work


def run_trio(command: str, **kwargs: Any) -> Callable[[ClusterClient], Any]:
    async def work(client: ClusterClient) -> Any:
        outcome = await client.run_command(command, **kwargs)
        return outcome.node, outcome.attempts, outcome.result.result, client.leader_hint

    return work


def test_both_clients_follow_redirects_and_skip_unreachable_nodes_alike() -> None:
    with fake_cluster(handler("n3"), down=("n1",)) as fake:
        assert same(with_sync(fake, run_sync("incr 1")), with_trio(fake, run_trio("incr 1"))) == ("n3", 3, "incr 1", "n3")
        assert same(with_sync(fake, run_sync("x", node="n2")), with_trio(fake, run_trio("x", node="n2"))) == ("n3", 2, "x", "n3")


def test_both_clients_give_up_alike_when_no_leader_answers() -> None:
    with fake_cluster(handler(None)) as fake:
        started = time.monotonic()
        sync = with_sync(fake, run_sync("incr 1", timeout=0.3))
        assert 0.3 <= time.monotonic() - started < 1.5
        assert isinstance(sync, NoLeader)
        same(sync, with_trio(fake, run_trio("incr 1", timeout=0.3)))


def test_both_clients_report_silent_refusing_and_unknown_nodes_alike() -> None:
    with fake_cluster(handler("n1", silent=("n2",)), down=("n3",)) as fake:
        status = {"op": "status"}
        timeout = same(
            with_sync(fake, lambda c: c.call("n2", status, timeout=0.2)),
            with_trio(fake, lambda c: c.call("n2", status, timeout=0.2)),
        )
        assert isinstance(timeout, Timeout) and str(timeout) == "node n2 did not answer 'status' within 0.2 s"
        # The reason differs in wording only: trio says "all attempts to connect to ... failed".
        for refused in (with_sync(fake, lambda c: c.call("n3", status, timeout=1)),
                        with_trio(fake, lambda c: c.call("n3", status, timeout=1))):
            assert isinstance(refused, NodeUnreachable) and refused.node == "n3"
        unknown = same(
            with_sync(fake, lambda c: c.call("n9", status)),
            with_trio(fake, lambda c: c.call("n9", status)),
        )
        assert str(unknown) == "unknown node 'n9'; known: n1, n2, n3"
        assert same(
            with_sync(fake, lambda c: c.call("n1", {"op": "bogus"})),
            with_trio(fake, lambda c: c.call("n1", {"op": "bogus"})),
        )["error"] == "unknown op 'bogus'"


def test_the_sync_client_asks_many_nodes_at_once_and_reuses_its_connections() -> None:
    with fake_cluster(handler("n1", silent=("n2",)), down=("n3",)) as fake, SyncClusterClient(addresses(fake)) as client:
        started = time.monotonic()
        answers = client.call_each({n: {"op": "status"} for n in NODES}, timeout=0.3)
        assert time.monotonic() - started < 0.6  # one timeout for everybody, not one each
        assert answers["n1"]["role"] == "leader"
        assert isinstance(answers["n2"], Timeout) and isinstance(answers["n3"], NodeUnreachable)
        for _ in range(3):
            assert client.call("n1", {"op": "status"})["ok"] is True
        ids = [request["id"] for node, request in fake.requests if node == "n1"]
        assert ids == [1, 2, 3, 4]  # one connection, request ids counting up


def test_the_sync_client_sees_a_node_hang_up_and_reconnects() -> None:
    calls = {"n": 0}

    def handle(node_id: str, request: dict[str, Any]) -> Any:
        calls["n"] += 1
        return HANG_UP if calls["n"] == 1 else {"ok": True}

    with fake_cluster(handle, ("n1",)) as fake, SyncClusterClient(addresses(fake)) as client:
        with pytest.raises(NodeUnreachable, match="node n1 is unreachable: the node closed the connection"):
            client.call("n1", {"op": "status"})
        assert client.call("n1", {"op": "status"}) == {"ok": True, "id": 1}  # a new connection


def test_the_sync_client_tries_each_address_of_a_host_name(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    from raftnode.client import syncclient

    with fake_cluster(handler("n1"), ("n1", "n2"), down=("n2",)) as fake:
        good, refused = fake.ports["n1"], fake.ports["n2"]

        def two_addresses(host: str, port: int, **kwargs: Any) -> list[Any]:
            assert host == "node.example" and port == good
            stream = (socket.AF_INET, socket.SOCK_STREAM, 6, "")
            return [(*stream, ("127.0.0.1", refused)), (*stream, ("127.0.0.1", good))]

        monkeypatch.setattr(syncclient.socket, "getaddrinfo", two_addresses)
        with SyncClusterClient({"n1": Address("node.example", good)}) as client:
            assert client.call("n1", {"op": "status"})["role"] == "leader"


def session_handler(leader: str, *, hang_up_once: bool = False, expire: set[int] | None = None) -> Any:
    """A leader that registers sessions 100, 101, ... and answers a command with its stamp; the
    first command request hangs up (``hang_up_once``); the sessions in ``expire`` are unknown."""
    state = {"next": 100, "hung_up": False}

    def handle(node_id: str, request: dict[str, Any]) -> Any:
        if node_id != leader:
            return redirect(node_id, leader)
        if request["op"] == "register_session":
            state["next"] += 1
            return command_result(node_id, state["next"] - 1)
        if hang_up_once and not state["hung_up"]:
            state["hung_up"] = True
            return HANG_UP
        if request.get("session") in (expire or set()):
            return {**command_result(node_id, None), "ok": False, "error": f"session expired: session {request['session']}"}
        return command_result(node_id, [request.get("session"), request.get("seq"), request.get("ack")])

    return handle


def stamps(fake: FakeCluster) -> list[tuple[Any, ...]]:
    return [(r.get("session"), r.get("seq"), r.get("ack")) for node, r in fake.requests
            if r["op"] == "run_command" and node == "n2"]


def test_both_clients_register_once_and_resend_a_command_with_its_stamp_after_a_hang_up() -> None:
    for run in (lambda fake: with_sync(fake, lambda c: [c.run_command(w).response["result"] for w in ("a", "b")],
                                       sessions=True),
                lambda fake: with_trio(fake, sessions=True, work=lambda c: _both(c, ("a", "b")))):
        with fake_cluster(session_handler("n2", hang_up_once=True)) as fake:
            assert run(fake) == [[100, 1, 1], [100, 2, 2]]
            assert fake.ops("register_session") == ["n1", "n2"]  # redirected once, then registered once
            assert stamps(fake) == [(100, 1, 1), (100, 1, 1), (100, 2, 2)]  # the hang-up: resent as it was


async def _both(client: ClusterClient, commands: tuple[str, ...]) -> list[Any]:
    return [(await client.run_command(command)).result.result for command in commands]


def test_both_clients_reopen_an_expired_session_only_for_a_command_never_sent_before() -> None:
    # First attempt answered "session expired": nothing of it was applied; a new session runs it.
    with fake_cluster(session_handler("n2", expire={100})) as fake:
        assert with_sync(fake, lambda c: c.run_command("a", node="n2").response["result"], sessions=True) == [101, 1, 1]
    with fake_cluster(session_handler("n2", expire={100})) as fake:
        assert with_trio(fake, sessions=True, work=lambda c: _result(c, "a")) == [101, 1, 1]
    # Expired on a resend (after a hang-up): an earlier copy may have been applied; the outcome is unknown.
    for client_run in (lambda fake: with_sync(fake, lambda c: c.run_command("a", node="n2"), sessions=True),
                       lambda fake: with_trio(fake, sessions=True, work=lambda c: _result(c, "a"))):
        with fake_cluster(session_handler("n2", hang_up_once=True, expire={100})) as fake:
            outcome = client_run(fake)
            assert isinstance(outcome, SessionExpired), outcome


async def _result(client: ClusterClient, command: str) -> Any:
    return (await client.run_command(command, node="n2")).result.result
