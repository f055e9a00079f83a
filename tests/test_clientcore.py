"""The client without I/O (``raftnode.client.clientcore``): a connection's bytes and a command's steps,
driven by hand with a clock the test moves."""

from __future__ import annotations

from typing import Any

import pytest

from raftnode.client.clientcore import Advanced, Answer, Call, ClientConnection, ClientCore, NeedSession, Pause, Pushed, advance
from raftnode.client.clientproto import NodeUnreachable, NoLeader, SessionExpired
from raftnode.wire import requests as wire
from raftnode.wire.framing import CodecError, FrameKind, encode_frame, encode_json

NODES = ["n1", "n2", "n3"]


def answer_frame(document: dict[str, Any], kind: FrameKind = FrameKind.CLIENT_RESPONSE) -> bytes:
    return encode_frame(kind, encode_json(document))


def test_a_connection_numbers_requests_adds_its_fields_and_reads_answers_split_anywhere() -> None:
    connection = ClientConnection("n1", {"cluster_id": "c1", "token": "t"})
    first_id, first = connection.send(wire.document(wire.Status()))
    second_id, _ = connection.send(wire.document(wire.Query("get", 1)))
    assert (first_id, second_id) == (1, 2)
    assert first == answer_frame({"op": "status", "cluster_id": "c1", "token": "t", "id": 1}, FrameKind.CLIENT_REQUEST)
    data = answer_frame({"ok": True, "id": 2}) + answer_frame({"kind": "elected"}, FrameKind.EVENT) + answer_frame({"id": 1})
    received: list[Any] = []
    for cut in range(0, len(data), 7):  # seven bytes at a time: frames complete across reads
        received += connection.receive_data(data[cut:cut + 7])
    assert received == [Answer(2, {"ok": True, "id": 2}), Pushed({"kind": "elected"}), Answer(1, {"id": 1})]


def test_a_connection_refuses_bytes_that_are_not_json_frames() -> None:
    connection = ClientConnection("n1")
    with pytest.raises(CodecError):
        connection.receive_data(encode_frame(FrameKind.CLIENT_RESPONSE, b"[1, 2]"))


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def result(node: str, value: Any) -> dict[str, Any]:
    return {"ok": True, "result": value, "error": None, "redirect": None, "retry": False,
            "timeout_expired": False, "index": 5, "node": node, "leader": node}


def test_the_steps_follow_a_redirect_at_once_and_pause_after_an_unreachable_node() -> None:
    clock = Clock()
    core = ClientCore(NODES, clock=clock, sessions=False)
    steps = core.run_command("incr 1", node=None, timeout=5, op="run_command")
    step = advance(steps)
    assert step == Call("n1", {"op": "run_command", "command": "incr 1", "timeout": 5}, 6)
    step = advance(steps, {**result("n1", None), "ok": False, "redirect": "n3"})
    assert isinstance(step, Call) and step.node == "n3"  # a redirect: no pause
    step = advance(steps, error=NodeUnreachable("n3", "refused"))
    assert step == Pause(0.01)
    clock.now = 0.01
    step = advance(steps)
    assert isinstance(step, Call) and step.node == "n1" and step.request["timeout"] == pytest.approx(4.99)
    done = advance(steps, result("n1", 7))
    assert isinstance(done, Advanced) and done.value.response["result"] == 7 and done.value.attempts == 3
    assert core.leader_hint == "n1"


def test_the_steps_give_up_at_the_deadline() -> None:
    clock = Clock()
    steps = ClientCore(NODES, clock=clock, sessions=False).run_command("x", node="n2", timeout=0.5, op="query")
    assert isinstance(advance(steps), Call)
    assert isinstance(advance(steps, {"ok": False, "retry": True}), Pause)
    clock.now = 0.6
    with pytest.raises(NoLeader, match="within 0.5 s"):
        advance(steps)


def run_to_call(steps: Any, core: ClientCore) -> Any:
    """Answer NeedSession steps (registering through the core) until the command's Call."""
    step = advance(steps)
    if isinstance(step, NeedSession):
        if core.session is None:
            register = core.register(step.node, step.started, step.timeout)
            call = advance(register)
            assert call.request["op"] == "register_session"
            assert advance(register, result("n1", 40)) == Advanced(core.session)
        step = advance(steps, core.session)
    return step


def test_a_command_resent_after_a_lost_connection_carries_the_same_stamp() -> None:
    clock = Clock()
    core = ClientCore(NODES, clock=clock)
    steps = core.run_command("incr 1", node="n1", timeout=5)
    first = run_to_call(steps, core)
    assert (first.request["session"], first.request["seq"], first.request["ack"]) == (40, 1, 1)
    assert isinstance(advance(steps, error=NodeUnreachable("n1", "hung up")), Pause)
    clock.now = 0.01
    again = advance(steps)
    assert again.node == "n2" and {k: again.request[k] for k in ("session", "seq", "ack")} == {"session": 40, "seq": 1, "ack": 1}
    assert isinstance(advance(steps, result("n2", 1)), Advanced)
    assert core.session is not None and core.session.in_flight == 0  # the command ended: the next acks it
    second = run_to_call(core.run_command("incr 1", node="n2", timeout=5), core)
    assert (second.request["seq"], second.request["ack"]) == (2, 2)


def test_an_expired_session_is_reopened_only_for_a_command_never_sent_before() -> None:
    core = ClientCore(NODES, clock=Clock())
    steps = core.run_command("a", node="n1", timeout=5)
    run_to_call(steps, core)
    expired = {**result("n1", None), "ok": False, "error": "session expired: session 40"}
    assert isinstance(advance(steps, expired), NeedSession) and core.session is None  # first copy refused: a new session
    core.session = None
    steps = core.run_command("b", node="n1", timeout=5)
    run_to_call(steps, core)
    advance(steps, error=NodeUnreachable("n1", "hung up"))
    advance(steps)
    with pytest.raises(SessionExpired):  # a resent copy: the first may have been applied
        advance(steps, expired)
