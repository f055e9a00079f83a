"""The client/admin endpoint on loopback: a one-node RaftNode behind a ClientService.

Good requests get answers; a bad request gets ``{"ok": false, "error": ...}`` on a connection
that keeps working; a bad frame drops its connection and is counted. Either way the node keeps
serving every other client.
"""

from __future__ import annotations

import json
import random
import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import trio

from raftnode.client.trioclient import ClusterClient, NodeUnreachable
from raftnode.config import Address
from raftnode.core import RaftConfig
from raftnode.node.runtime import RaftNode
from raftnode.node.service import REQUEST_HEADROOM, ClientService
from raftnode.node.statemachines import Counter
from raftnode.security.credentials import Credentials
from raftnode.storage.memory import MemoryStorage
from raftnode.transport.faults import FaultyTransport
from raftnode.transport.memory import MemoryNetwork
from raftnode.wire import codec

from .helpers import closed_by_peer, free_ports, wait_until

pytestmark = pytest.mark.trio


@dataclass
class Endpoint:
    node: RaftNode
    service: ClientService
    address: Address
    faults: FaultyTransport
    stopped: trio.Event


@asynccontextmanager
async def endpoint(**service_settings: Any) -> AsyncIterator[Endpoint]:
    """A one-node cluster (it elects itself) serving clients on a free loopback port
    (``service_settings``: more ClientService arguments)."""
    (port,) = free_ports(1)
    address = Address("127.0.0.1", port)
    faults = FaultyTransport(MemoryNetwork().transport("n1"), rng=random.Random(1))
    node = RaftNode(
        RaftConfig(node_id="n1", voters=("n1",), election_timeout=(2, 4), heartbeat_interval=1),
        storage=MemoryStorage(),
        transport=faults,
        state_machine=Counter(),
        tick_seconds=0.005,
        rng=random.Random(1),
    )
    service = ClientService(node, address, faults=faults, **service_settings)
    stopped = trio.Event()

    async def run_node(task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        try:
            await node.run(task_status=task_status)
        finally:
            stopped.set()

    with trio.fail_after(15):
        async with trio.open_nursery() as nursery:
            await nursery.start(run_node)
            await nursery.start(service.run)
            await wait_until(lambda: node.status().role == "leader", what="the node to elect itself")
            yield Endpoint(node, service, address, faults, stopped)
            nursery.cancel_scope.cancel()


class RawClient:
    """Frames by hand over one connection, to send what ClusterClient never would."""

    def __init__(self, stream: trio.SocketStream):
        self.stream = stream
        self.decoder = codec.FrameDecoder()
        self.pending: list[codec.Frame] = []

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def request(self, document: dict[str, Any]) -> dict[str, Any]:
        await self.send(codec.encode_frame(codec.FrameKind.CLIENT_REQUEST, codec.encode_json(document)))
        return await self.response()

    async def response(self) -> dict[str, Any]:
        with trio.fail_after(5):
            while True:
                for i, frame in enumerate(self.pending):
                    if frame.kind == codec.FrameKind.CLIENT_RESPONSE:
                        del self.pending[i]
                        return codec.decode_json(frame.payload)
                data = await self.stream.receive_some(65536)
                assert data, "the node closed the connection"
                self.pending.extend(self.decoder.feed(data))


@asynccontextmanager
async def raw(ep: Endpoint) -> AsyncIterator[RawClient]:
    stream = await trio.open_tcp_stream(ep.address.host, ep.address.port)
    async with stream:
        yield RawClient(stream)


async def still_serving(ep: Endpoint, command: str = "incr 1") -> dict[str, Any]:
    """A fresh connection still gets a command committed and a status."""
    async with raw(ep) as client:
        answer = await client.request({"op": "run_command", "command": command, "id": 7})
        assert answer["ok"] is True and answer["id"] == 7, answer
        status = await client.request({"op": "status"})
        assert status["ok"] is True and status["role"] == "leader"
        return answer


# -- good requests -------------------------------------------------------------------------------


async def test_run_command_status_and_admin_requests_are_answered() -> None:
    async with endpoint() as ep, raw(ep) as client:
        answer = await client.request({"op": "run_command", "command": "incr 5", "timeout": 2, "id": "a"})
        assert answer == {
            "ok": True, "result": 5, "error": None, "redirect": None, "retry": False,
            "timeout_expired": False, "index": 2, "node": "n1", "leader": "n1", "id": "a",
        }
        status = await client.request({"op": "status", "id": 2})
        assert status["id"] == 2 and status["ok"] and status["alive"]
        assert (status["id"], status["role"], status["leader"], status["state"]) == (2, "leader", "n1", {"value": 5})
        for key in ("term", "commit_index", "applied_index", "last_index", "snapshot_index", "voters", "pid", "faults"):
            assert key in status, key

        faults = await client.request({"op": "set_faults", "faults": {"drop_pct": 10, "partitioned_from": ["n2"]}})
        assert faults["ok"] and faults["faults"]["drop_pct"] == 10.0
        assert ep.faults.faults.partitioned_from == {"n2"}
        assert (await client.request({"op": "clear_faults"}))["faults"]["partitioned_from"] == []
        assert not ep.faults.faults.any()

        snap = await client.request({"op": "snapshot"})
        assert snap == {"ok": True, "index": 2, "id": None}
        assert ep.node.status().snapshot_index == 2
        transfer = await client.request({"op": "transfer", "target": "n1"})  # to itself: nothing to do
        assert transfer["ok"] is True


async def test_many_requests_in_flight_on_one_connection_are_answered_by_id() -> None:
    async with endpoint() as ep, raw(ep) as client:
        frames = b"".join(
            codec.encode_frame(codec.FrameKind.CLIENT_REQUEST, codec.encode_json({"op": "run_command", "command": "incr 1", "id": i}))
            for i in range(50)
        )
        await client.send(frames)
        answers = [await client.response() for _ in range(50)]
        assert sorted(a["id"] for a in answers) == list(range(50))
        assert sorted(a["result"] for a in answers) == list(range(1, 51))
        assert ep.node.status().state == {"value": 50}


async def test_query_requests_read_without_a_log_entry_fast_path_and_task_path_alike() -> None:
    async with endpoint() as ep, raw(ep) as client:
        await client.request({"op": "run_command", "command": "incr 5", "id": 1})
        last = ep.node.status().last_index
        frames = b"".join(
            codec.encode_frame(codec.FrameKind.CLIENT_REQUEST, codec.encode_json({"op": "query", "command": "get", "id": i}))
            for i in range(20)
        )
        await client.send(frames)
        answers = [await client.response() for _ in range(20)]
        assert sorted(a["id"] for a in answers) == list(range(20)) and {a["result"] for a in answers} == {5}
        # A request the fast path does not take (a bad timeout) goes to the task path and is refused there.
        bad = await client.request({"op": "query", "command": "get", "timeout": "5", "id": "t"})
        assert bad["ok"] is False and "timeout" in bad["error"]
        write = await client.request({"op": "query", "command": "incr 1", "id": "w"})
        assert write["ok"] is False and "not a read" in write["error"]
        assert ep.node.status().last_index == last and ep.node.status().state == {"value": 5}
    async with endpoint() as ep, ClusterClient({"n1": ep.address}) as cluster_client:
        assert (await cluster_client.query("get", timeout=2)).result.result == 0


async def test_cluster_client_runs_commands_and_streams_events() -> None:
    async with endpoint() as ep, ClusterClient({"n1": ep.address}) as client:
        outcome = await client.run_command("incr 3", timeout=2)
        assert (outcome.result.result, outcome.node, outcome.attempts) == (3, "n1", 1)
        events_connection = await client.connect("n1")
        events = await events_connection.events()
        second = ClusterClient({"n1": ep.address})
        async with second:
            await second.call("n1", {"op": "set_faults", "faults": {"delay_ms": 1}})
        with trio.fail_after(5):
            async for event in events:
                if event["kind"] == "fault":
                    assert "delay_ms" in event["detail"] and event["node"] == "n1"
                    break


async def test_the_stop_request_stops_the_node_after_answering() -> None:
    async with endpoint() as ep, raw(ep) as client:
        assert await client.request({"op": "stop"}) == {"ok": True, "id": None}
        with trio.fail_after(5):
            await ep.stopped.wait()


# -- bad requests: an error answer, and the connection goes on ------------------------------------


BAD_REQUESTS = {
    "an unknown op": ({"op": "frobnicate"}, "unknown op 'frobnicate'"),
    "no op": ({"command": "incr 1"}, "unknown op None"),
    "an op that is not a string": ({"op": ["status"]}, "unknown op"),
    "run_command without a command": ({"op": "run_command"}, "command"),
    "run_command with an empty command": ({"op": "run_command", "command": "  "}, "command"),
    "run_command with a number as command": ({"op": "run_command", "command": 5}, "command"),
    "run_command with a string timeout": ({"op": "run_command", "command": "incr 1", "timeout": "5"}, "timeout"),
    "run_command with a negative timeout": ({"op": "run_command", "command": "incr 1", "timeout": -1}, "timeout"),
    "query with an empty command": ({"op": "query", "command": " "}, "query needs a non-empty string 'command'"),
    "set_faults without faults": ({"op": "set_faults"}, "faults"),
    "set_faults with an unknown field": ({"op": "set_faults", "faults": {"loss": 5}}, "loss"),
    "set_faults with a bad percentage": ({"op": "set_faults", "faults": {"drop_pct": 500}}, "drop_pct"),
    "transfer without a target": ({"op": "transfer"}, "target"),
    "transfer to an unknown node": ({"op": "transfer", "target": "n9"}, "n9"),
}


@pytest.mark.parametrize(("request_", "mention"), BAD_REQUESTS.values(), ids=BAD_REQUESTS.keys())
async def test_a_bad_request_gets_an_error_answer_and_the_connection_keeps_working(
    request_: dict[str, Any], mention: str
) -> None:
    async with endpoint() as ep, raw(ep) as client:
        answer = await client.request({**request_, "id": 41})
        assert answer["ok"] is False and answer["id"] == 41, answer
        assert mention in answer["error"], answer
        assert ep.node.status().last_index == 1  # nothing was proposed
        again = await client.request({"op": "run_command", "command": "incr 2", "id": 42})
        assert (again["ok"], again["result"], again["id"]) == (True, 2, 42)


async def test_a_command_the_counter_refuses_is_answered_with_its_error() -> None:
    async with endpoint() as ep, raw(ep) as client:
        answer = await client.request({"op": "run_command", "command": "bogus"})
        assert answer["ok"] is False and "unknown command 'bogus'" in answer["error"]
        assert (await still_serving(ep))["result"] == 1


async def test_a_command_that_is_not_valid_utf8_text_does_not_crash_the_node() -> None:
    # "\ud800" is valid JSON (an escaped lone surrogate) that decodes to a str which cannot be
    # encoded as UTF-8. The node must refuse it, not die.
    async with endpoint() as ep, raw(ep) as client:
        payload = b'{"op":"run_command","command":"incr \\ud800","id":1}'
        await client.send(codec.encode_frame(codec.FrameKind.CLIENT_REQUEST, payload))
        with trio.move_on_after(2):
            answer = await client.response()
            assert answer["ok"] is False
        assert not ep.stopped.is_set(), "the node stopped"
        await still_serving(ep)


# -- bad frames: the connection is dropped and counted ---------------------------------------------


def frame(kind: int, payload: bytes, *, version: int = codec.PROTOCOL_VERSION, length: int | None = None) -> bytes:
    return struct.pack(">IBB", 2 + len(payload) if length is None else length, version, kind) + payload


BAD_FRAMES = {
    "garbage": b"GET /status HTTP/1.1\r\n\r\n",
    "an oversized length": frame(codec.FrameKind.CLIENT_REQUEST, b"", length=(1 << 20) + REQUEST_HEADROOM + 3),
    "an unknown protocol version": frame(codec.FrameKind.CLIENT_REQUEST, b'{"op":"status"}', version=9),
    "an unknown frame kind": frame(77, b'{"op":"status"}'),
    "a PEER frame": frame(codec.FrameKind.PEER, b"\x05" + bytes(20)),
    "a response frame": frame(codec.FrameKind.CLIENT_RESPONSE, b'{"op":"status"}'),
    "invalid JSON": frame(codec.FrameKind.CLIENT_REQUEST, b'{"op": status}'),
    "JSON that is not an object": frame(codec.FrameKind.CLIENT_REQUEST, b'["status"]'),
    "invalid UTF-8": frame(codec.FrameKind.CLIENT_REQUEST, b'{"op":"\xff"}'),
    "NaN": frame(codec.FrameKind.CLIENT_REQUEST, b'{"op":"run_command","command":"incr 1","timeout":NaN}'),
    "deeply nested JSON": frame(codec.FrameKind.CLIENT_REQUEST, b'{"a":' * 100_000 + b"1" + b"}" * 100_000),
}


@pytest.mark.parametrize("data", BAD_FRAMES.values(), ids=BAD_FRAMES.keys())
async def test_a_bad_frame_drops_the_connection_is_counted_and_the_node_keeps_serving(data: bytes) -> None:
    async with endpoint() as ep:
        async with raw(ep) as client:
            await client.send(data)
            assert await closed_by_peer(client.stream), "the connection was kept open"
        await wait_until(lambda: ep.service.stats["bad_client_frames"] == 1, what="the bad frame to be counted")
        async with raw(ep) as client:
            status = await client.request({"op": "status"})
            assert status["stats"]["bad_client_frames"] == 1
        await still_serving(ep)


async def test_a_good_request_before_a_bad_frame_on_the_same_connection_is_still_answered() -> None:
    async with endpoint() as ep, raw(ep) as client:
        good = codec.encode_frame(codec.FrameKind.CLIENT_REQUEST, json.dumps({"op": "status", "id": 1}).encode())
        await client.send(good)
        assert (await client.response())["id"] == 1
        await client.send(BAD_FRAMES["garbage"])
        assert await closed_by_peer(client.stream)
        await still_serving(ep)


async def test_a_request_on_a_closed_connection_is_refused_and_never_written_to_a_reused_descriptor() -> None:
    async with endpoint() as ep:
        async with ClusterClient({"n1": ep.address}) as client:
            connection = await client.connect("n1")
            await connection.aclose()  # its descriptor is free; the reader task has not run yet
            a, b = socket.socketpair()  # an unrelated socket may take the same number
            with a, b:
                with pytest.raises(NodeUnreachable):
                    await connection.call({"op": "status"})
                for side in (a, b):
                    side.setblocking(False)
                    with pytest.raises(BlockingIOError):
                        side.recv(100)  # nothing arrived on either end


# -- hostile clients: sizes, credentials, connection limits and timeouts ------------------------------

CREDENTIALS = Credentials("0123456789abcdef", bytes(32), "admin-token-0123456789", "client-token-0123456789")


async def test_a_command_over_max_command_bytes_is_refused_by_name_measured_in_utf8_bytes() -> None:
    async with endpoint(max_command_bytes=4096) as ep, raw(ep) as client:
        answer = await client.request({"op": "run_command", "command": "incr " + "€" * 1400, "id": 1})
        assert answer["ok"] is False and "cluster.max_command_bytes = 4096" in answer["error"], answer
        assert "is 4205 bytes" in answer["error"]  # 1400 characters, three bytes each
        answer = await client.request({"op": "run_command", "command": "incr " + "1" * 4000, "id": 2})
        assert "max_command_bytes" not in str(answer.get("error")), answer  # within: the counter answers
        assert ep.node.status().applied_index >= 1 and not ep.stopped.is_set()
        await still_serving(ep)


async def test_an_answer_too_long_to_send_becomes_an_error_answer_and_the_node_keeps_serving() -> None:
    async with endpoint() as ep, raw(ep) as client:
        # Within max_command_bytes (1 MiB), but the counter's error quotes it twice: 1.8 MB.
        answer = await client.request({"op": "run_command", "command": "incr " + "9" * 900_000, "id": 5})
        assert answer == {"ok": False, "id": 5, "error": answer["error"]}, answer
        assert "could not be sent" in answer["error"] and "cluster.max_command_bytes = 1048576" in answer["error"]
        assert ep.service.stats["unsendable_answers"] == 1
        # An id that cannot be echoed back is dropped from the error answer rather than failing it.
        answer = await client.request({"op": "run_command", "command": "incr " + "9" * 500_000, "id": "y" * 200_000})
        assert answer["ok"] is False and answer["id"] is None and "could not be sent" in answer["error"]
        await still_serving(ep)


async def test_admin_ops_need_the_admin_token_and_client_ops_do_not() -> None:
    async with endpoint(credentials=CREDENTIALS) as ep, raw(ep) as client:
        assert (await client.request({"op": "status"}))["cluster_id"] == CREDENTIALS.cluster_id
        assert (await client.request({"op": "run_command", "command": "incr 2"}))["result"] == 2
        for token in (None, "wrong", CREDENTIALS.admin_token[:-1], 7):
            for op in ("set_faults", "clear_faults", "transfer", "snapshot", "add_node", "remove_node", "stop"):
                request = {"op": op, "faults": {"drop_pct": 100}, "target": "n1", "node": "n1"}
                if token is not None:
                    request["token"] = token
                answer = await client.request(request)
                assert answer["ok"] is False and answer["unauthorized"] is True, answer
                assert f"{op} needs the admin token" in answer["error"]
        assert not ep.stopped.is_set() and ep.faults.faults.drop_pct == 0
        answer = await client.request({"op": "snapshot", "token": CREDENTIALS.admin_token})
        assert answer["ok"] is True, answer
        answer = await client.request({"op": "stop", **CREDENTIALS.client_fields()})
        assert answer["ok"] is True
        await wait_until(ep.stopped.is_set, what="the node to stop")


async def test_a_request_naming_another_cluster_is_never_answered() -> None:
    async with endpoint(credentials=CREDENTIALS) as ep:
        async with raw(ep) as client:
            await client.send(codec.encode_frame(codec.FrameKind.CLIENT_REQUEST, codec.encode_json(
                {"op": "run_command", "command": "incr 5", "cluster_id": "fedcba9876543210", "id": 1})))
            assert await closed_by_peer(client.stream)
        assert ep.node.status().state == {"value": 0}  # nothing was proposed either
        async with ClusterClient({"n1": ep.address}, fields=CREDENTIALS.client_fields(admin=False)) as ours:
            assert (await ours.run_command("incr 5")).result.result == 5


async def test_connections_beyond_the_limit_are_closed_and_the_others_served() -> None:
    async with endpoint(max_connections=3) as ep:
        streams = [await trio.open_tcp_stream(ep.address.host, ep.address.port) for _ in range(3)]
        await wait_until(lambda: ep.service._connections == 3, what="three connections")
        extra = [await trio.open_tcp_stream(ep.address.host, ep.address.port) for _ in range(5)]
        for stream in extra:
            assert await closed_by_peer(stream)
            await stream.aclose()
        assert ep.service.stats["refused_client_connections"] == 5
        client = RawClient(streams[0])
        assert (await client.request({"op": "status"}))["ok"] is True
        for stream in streams:
            await stream.aclose()
        await wait_until(lambda: ep.service._connections == 0, what="the connections to be gone")
        await still_serving(ep)


async def test_a_silent_or_slow_connection_is_closed_and_one_with_a_request_in_progress_is_not() -> None:
    async with endpoint(handshake_timeout=0.2, idle_timeout=0.4) as ep:
        async with raw(ep) as silent:
            assert await closed_by_peer(silent.stream)  # never sent a request
        async with raw(ep) as slow:  # a request that never completes, a byte at a time
            request = codec.encode_frame(codec.FrameKind.CLIENT_REQUEST, b'{"op":"status"}')
            closed_while_sending = False
            with trio.move_on_after(5):
                for byte in request[:-1]:
                    try:
                        await slow.send(bytes([byte]))
                    except trio.BrokenResourceError:
                        closed_while_sending = True
                        break
                    await trio.sleep(0.05)
            assert closed_while_sending or await closed_by_peer(slow.stream)
        async with ClusterClient({"n1": ep.address}) as client:  # an events stream is a request in progress
            connection = await client.connect("n1")
            events = await connection.events()
            seen_before = ep.service.stats["refused_client_connections"]
            for value in range(1, 4):
                await trio.sleep(0.4)  # one idle timeout each time
                assert (await ep.node.run_command("incr 1")).result == value
                await ep.node.take_snapshot()  # an event for the stream
                with trio.fail_after(5):
                    while (await events.receive())["kind"] != "snapshot":
                        pass
            assert ep.service.stats["refused_client_connections"] == seen_before


async def test_partial_frames_of_all_connections_together_are_bounded() -> None:
    async with endpoint(max_buffered_bytes=100_000) as ep:
        head = struct.pack(">IBB", 90_000, codec.PROTOCOL_VERSION, codec.FrameKind.CLIENT_REQUEST)
        async with raw(ep) as first, raw(ep) as second:
            await first.send(head + b"x" * 60_000)
            await wait_until(lambda: ep.service._buffered >= 60_000, what="the first partial frame")
            await second.send(head + b"x" * 60_000)
            assert await closed_by_peer(second.stream)
            assert ep.service._buffered <= 100_000
        await wait_until(lambda: ep.service._buffered == 0, what="the buffers to be released")
        await still_serving(ep)


async def test_a_client_that_never_reads_its_answers_is_disconnected_before_they_pile_up() -> None:
    async with endpoint(max_command_bytes=1024) as ep:
        stream = await trio.open_tcp_stream(ep.address.host, ep.address.port)
        async with stream:
            stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            request = codec.encode_frame(codec.FrameKind.CLIENT_REQUEST, codec.encode_json({"op": "status"}))
            with trio.move_on_after(10):
                try:
                    while True:  # statuses of ~1 KB each, never read
                        await stream.send_all(request * 200)
                except trio.BrokenResourceError:
                    pass
            await wait_until(lambda: ep.service.stats["refused_client_connections"] == 1, what="the disconnection")
        await still_serving(ep)


async def test_with_client_auth_client_requests_need_the_client_token_or_the_admin_token() -> None:
    async with endpoint(credentials=CREDENTIALS, client_auth=True) as ep, raw(ep) as client:
        for token in (None, "wrong", CREDENTIALS.client_token[:-1]):
            for request in ({"op": "run_command", "command": "incr 1"}, {"op": "status"}, {"op": "events"}):
                if token is not None:
                    request = {**request, "token": token}
                answer = await client.request(request)
                assert answer["ok"] is False and answer["unauthorized"] is True, answer
                assert "needs the client token" in answer["error"]
        assert ep.node.status().state == {"value": 0}
        answer = await client.request({"op": "run_command", "command": "incr 2", **CREDENTIALS.client_fields(admin=False)})
        assert answer["result"] == 2
        answer = await client.request({"op": "run_command", "command": "incr 3", **CREDENTIALS.client_fields()})
        assert answer["result"] == 5  # the admin token serves for client requests too
        answer = await client.request({"op": "snapshot", **CREDENTIALS.client_fields(admin=False)})
        assert answer["unauthorized"] is True  # but the client token is not an admin token


async def test_a_plain_connection_reads_each_request_once_it_is_readable_never_finding_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The service reads a plain connection with wire.streams.plain_receiver: wait until readable,
    # then one read (trio's receive_some would first try a read that finds nothing, per request).
    import os

    reads: list[int | str] = []
    real_read = os.read

    def counted(fd: int, size: int) -> bytes:
        try:
            data = real_read(fd, size)
        except BlockingIOError:
            reads.append("nothing")
            raise
        reads.append(len(data))
        return data

    monkeypatch.setattr(os, "read", counted)
    async with endpoint() as ep, raw(ep) as client:
        for n in range(3):
            answer = await client.request({"op": "run_command", "command": "incr 1", "id": n})
            assert answer["ok"] is True and answer["id"] == n
    assert "nothing" not in reads and sum(1 for r in reads if isinstance(r, int) and r > 0) >= 3
