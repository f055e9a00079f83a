"""The hot path's answers (``CommandAnswer``) are byte for byte the general path's: the JSON
``_command_response`` makes, id last, in a CLIENT_RESPONSE frame; each answered once."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from raftnode.config import Address
from raftnode.core.commands import CommandResult
from raftnode.node.service import ClientService
from raftnode.node.service_commands import CommandAnswer
from raftnode.node.service_connections import _ConnectionState
from raftnode.wire import codec


class _Writer:
    def __init__(self) -> None:
        self.frames: list[bytes] = []

    def write_soon(self, frame: bytes) -> None:
        self.frames.append(frame)


def _service(leader: str | None) -> ClientService:
    node = SimpleNamespace(id="n1", raft=SimpleNamespace(leader=leader), stop=None, add_flush_handler=lambda _: None)
    return ClientService(node, Address("127.0.0.1", 1))  # type: ignore[arg-type]


def _general(service: ClientService, result: CommandResult, request_id: Any) -> bytes:
    document = dict(service._command_response(result), id=request_id)
    return codec.encode_frame(codec.FrameKind.CLIENT_RESPONSE, codec.encode_json(document))


@pytest.mark.parametrize("leader", ["n1", "n2", None])
@pytest.mark.parametrize(
    ("result", "error", "request_id"),
    [(5, None, 7), (-3, None, 2**40), (0, None, "req-1"), ("text \u00e9\"", None, 9), (None, None, 3), (True, None, 1),
     (5, None, None), ([1, 2], None, 4), (None, "unknown command 'x'", 5), (7, None, 1.5)],
)
def test_an_applied_command_is_answered_as_the_general_path_answers_it(leader, result, error, request_id) -> None:
    service, writer, state = _service(leader), _Writer(), _ConnectionState()
    state.in_flight = 1
    answer = CommandAnswer(service, writer, state, request_id)  # type: ignore[arg-type]
    answer.applied(result, error, 42)
    answer.applied(result, error, 42)  # answered once
    answer.set(CommandResult(timeout_expired=True))
    assert writer.frames == [_general(service, CommandResult(result=result, error=error, index=42), request_id)]
    assert state.in_flight == 0


@pytest.mark.parametrize(
    "result", [CommandResult(redirect="n2", index=4), CommandResult(retry=True), CommandResult(timeout_expired=True),
               CommandResult(error="disk full", retry=True), CommandResult(result=3, index=8)],
)
def test_an_answer_that_is_no_applied_outcome_is_the_general_paths(result) -> None:
    service, writer, state = _service("n2"), _Writer(), _ConnectionState()
    state.in_flight = 1
    CommandAnswer(service, writer, state, 11).set(result)  # type: ignore[arg-type]
    assert writer.frames == [_general(service, result, 11)]
    assert state.in_flight == 0


@pytest.mark.parametrize("request_id", [3, "batch-1", None])
def test_a_run_manys_answer_from_applied_outcomes_is_the_general_paths(request_id) -> None:
    from raftnode.node.service_commands import BatchAnswer

    service, frames = _service("n1"), []
    outcomes = [(5, None), ("s\u00e9", None), (None, None), (None, "unknown command 'x'"), ([1], None)]
    for count in (3, len(outcomes)):  # all formatted in place; then some only as documents
        batch = BatchAnswer(count, frames.append)
        for position, (result, error) in enumerate(outcomes[:count]):
            batch.applied(position, result, error, 10 + position)
            batch.applied(position, -1, None, 99)  # answered once
        expected = [CommandResult(result=result, error=error, index=10 + position)
                    for position, (result, error) in enumerate(outcomes[:count])]
        frame = service._batch_frame(frames[-1], request_id) if count == 3 else None
        if frame is None:
            assert count == len(outcomes)
            frame = service._frame(codec.FrameKind.CLIENT_RESPONSE, service._batch_response(frames[-1], request_id))
        general = service._frame(codec.FrameKind.CLIENT_RESPONSE, service._batch_response(expected, request_id))
        assert frame == general
