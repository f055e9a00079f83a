"""Client sessions through the client endpoint: ``register_session``, stamped ``run_command``
requests answered once however often they come, and malformed stamps refused with the reason."""

from __future__ import annotations

from typing import Any

import pytest

from raftnode.wire import codec

from .test_client_service import endpoint, raw

pytestmark = pytest.mark.trio


async def test_a_stamped_command_sent_twice_on_both_paths_is_applied_once() -> None:
    async with endpoint() as ep, raw(ep) as client:
        registered = await client.request({"op": "register_session", "timeout": 2, "id": 1})
        assert registered["ok"] and registered["result"] == registered["index"] == 2, registered
        stamped = {"op": "run_command", "command": "incr 5", "session": 2, "seq": 1, "ack": 1}
        # Pipelined on the fast path (both in one write), then once more on its own.
        await client.send(b"".join(codec.encode_frame(codec.FrameKind.CLIENT_REQUEST, codec.encode_json({**stamped, "id": i}))
                                   for i in (2, 3)))
        answers = [await client.response(), await client.response()]
        again = await client.request({**stamped, "id": 4})
        assert [(a["result"], a["error"]) for a in [*answers, again]] == [(5, None)] * 3
        assert ep.node.status().state == {"value": 5}
        expired = await client.request({**stamped, "session": 77})
        assert expired["ok"] is False and expired["error"].startswith("session expired: session 77")


BAD_STAMPS: dict[str, tuple[dict[str, Any], str]] = {
    "a session without seq": ({"session": 2}, "'seq' must be an integer"),
    "seq without a session": ({"seq": 1, "ack": 1}, "'seq' and 'ack' need a 'session'"),
    "an ack above seq": ({"session": 2, "seq": 1, "ack": 2}, "'ack' (2) cannot exceed 'seq' (1)"),
    "a boolean session": ({"session": True, "seq": 1, "ack": 1}, "'session' must be an integer"),
    "a sequence of 0": ({"session": 2, "seq": 0, "ack": 0}, "'seq' must be an integer from 1"),
    "a session beyond 64 bits": ({"session": 1 << 64, "seq": 1, "ack": 1}, "'session' must be an integer"),
}


@pytest.mark.parametrize(("stamp", "mention"), BAD_STAMPS.values(), ids=BAD_STAMPS.keys())
async def test_a_malformed_stamp_is_refused_with_the_reason_and_nothing_is_proposed(
    stamp: dict[str, Any], mention: str
) -> None:
    async with endpoint() as ep, raw(ep) as client:
        answer = await client.request({"op": "run_command", "command": "incr 1", **stamp, "id": 9})
        assert answer["ok"] is False and answer["id"] == 9, answer
        assert mention in answer["error"], answer
        assert ep.node.status().last_index == 1  # nothing was proposed
        bad_timeout = await client.request({"op": "register_session", "timeout": "soon"})
        assert bad_timeout["ok"] is False and "timeout" in bad_timeout["error"]
