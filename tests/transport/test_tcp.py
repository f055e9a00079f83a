"""TcpTransport on loopback: delivery, reconnection, and bad input that must drop only its connection."""

from __future__ import annotations

import contextlib
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio

from raftnode.concurrency import unwrapped
from raftnode.config import Address
from raftnode.core.messages import (
    AppendEntries,
    Entry,
    EntryKind,
    Heartbeat,
    HeartbeatResponse,
    Message,
)
from raftnode.security.credentials import Credentials
from raftnode.transport import Transport
from raftnode.transport.tcp import TcpTransport
from raftnode.wire import codec

from .helpers import closed_by_peer, free_ports, wait_until

pytestmark = pytest.mark.trio

CLUSTER = "test"
IDS = ("n1", "n2", "n3")


class Node:
    """A TcpTransport that can be started and stopped, with what it delivered."""

    def __init__(self, node_id: str, addresses: dict[str, Address], nursery: trio.Nursery, **kwargs: object):
        self.id = node_id
        self.addresses = addresses
        self.nursery = nursery
        self.kwargs = kwargs
        self.received: list[Message] = []
        self.transport: TcpTransport | None = None
        self._scope: trio.CancelScope | None = None
        self._done = trio.Event()

    async def start(self) -> TcpTransport:
        self.transport = TcpTransport(
            self.id, cluster=CLUSTER, listen=self.addresses[self.id], peers=self.addresses, **self.kwargs  # type: ignore[arg-type]
        )
        self._done = trio.Event()
        await self.nursery.start(self._run, self.transport)
        return self.transport

    async def _run(self, transport: TcpTransport, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            with trio.CancelScope() as self._scope:
                await transport.run(self.received.append, task_status=task_status)
        finally:
            self._done.set()

    async def stop(self) -> None:
        assert self._scope is not None
        self._scope.cancel()
        await self._done.wait()

    def stats(self) -> dict[str, int]:
        assert self.transport is not None
        return self.transport.stats()


@asynccontextmanager
async def loopback(*running: str, **kwargs: object) -> AsyncIterator[dict[str, Node]]:
    """Nodes IDS with free loopback ports; those in ``running`` started."""
    ports = free_ports(len(IDS))
    addresses = {node_id: Address("127.0.0.1", port) for node_id, port in zip(IDS, ports)}
    with trio.fail_after(15):
        async with trio.open_nursery() as nursery:
            nodes = {node_id: Node(node_id, addresses, nursery, **kwargs) for node_id in IDS}
            for node_id in running:
                await nodes[node_id].start()
            yield nodes
            nursery.cancel_scope.cancel()


def heartbeat(src: str, dst: str, commit: int = 0) -> Heartbeat:
    return Heartbeat(term=1, src=src, dst=dst, commit=commit)


async def deliver_until_received(sender: Node, receiver: Node, *, commit: int, timeout: float = 5.0) -> None:
    """Send a heartbeat tagged ``commit`` every 20 ms until ``receiver`` delivers it."""
    assert sender.transport is not None
    wanted = heartbeat(sender.id, receiver.id, commit)
    with trio.move_on_after(timeout):
        while wanted not in receiver.received:
            sender.transport.send(wanted)
            await trio.sleep(0.02)
        return
    raise AssertionError(f"{receiver.id} never received {wanted} from {sender.id}; stats {sender.stats()}")


# -- normal traffic ------------------------------------------------------------------------------


async def test_the_tcp_transport_implements_the_transport_protocol() -> None:
    async with loopback() as nodes:
        await nodes["n1"].start()
        assert isinstance(nodes["n1"].transport, Transport)


async def test_two_transports_exchange_messages_in_order_over_one_connection_each_way() -> None:
    async with loopback("n1", "n2") as nodes:
        # Messages sent while a connection attempt fails are dropped as stale: connect first.
        await deliver_until_received(nodes["n1"], nodes["n2"], commit=1000)
        await deliver_until_received(nodes["n2"], nodes["n1"], commit=1000)
        probes = {heartbeat("n1", "n2", 1000), heartbeat("n2", "n1", 1000)}

        def received(node: str) -> list[Message]:
            return [m for m in nodes[node].received if m not in probes]

        n1, n2 = nodes["n1"].transport, nodes["n2"].transport
        assert n1 is not None and n2 is not None
        await wait_until(  # late copies of the probes have landed
            lambda: n2.stats()["received"] == n1.stats()["sent"] and n1.stats()["received"] == n2.stats()["sent"],
            what="the probes to land",
        )
        sent_before, received_before = n1.stats()["sent"], n2.stats()["received"]
        entries = tuple(Entry(1, i, f"incr {i}".encode()) for i in range(1, 6)) + (Entry(1, 6, b"", EntryKind.NOOP),)
        outgoing: list[Message] = [
            AppendEntries(term=1, src="n1", dst="n2", prev_index=0, prev_term=0, entries=entries, commit=3),
            *(heartbeat("n1", "n2", commit=c) for c in range(100)),
        ]
        for message in outgoing:
            n1.send(message)
        n2.send(HeartbeatResponse(term=1, src="n2", dst="n1"))
        await wait_until(lambda: len(received("n2")) == len(outgoing), what="n2 to receive everything")
        await wait_until(lambda: len(received("n1")) == 1, what="n1 to receive the response")
        assert received("n2") == outgoing  # equal values, in order
        assert received("n1") == [HeartbeatResponse(term=1, src="n2", dst="n1")]
        assert n1.stats()["sent"] - sent_before == len(outgoing)
        assert n2.stats()["received"] - received_before == len(outgoing)
        assert n1.stats()["connects"] == 1 and n2.stats()["connects"] == 1
        assert n2.stats()["rejected_connections"] == 0 and n2.stats()["bad_frames"] == 0


async def test_a_message_for_an_unknown_node_or_an_unreachable_peer_is_dropped_and_counted_without_blocking() -> None:
    async with loopback("n1", queue_size=4) as nodes:
        n1 = nodes["n1"].transport
        assert n1 is not None
        n1.send(heartbeat("n1", "n9"))
        assert n1.stats()["dropped"] == 1
        for commit in range(50):  # n2 is down and its queue holds 4: send never blocks
            n1.send(heartbeat("n1", "n2", commit))
        await wait_until(lambda: n1.stats()["dropped"] >= 47, what="drops to be counted")
        assert n1.stats()["sent"] == 0


async def test_the_sender_reconnects_after_the_peer_restarts() -> None:
    async with loopback("n1", "n2") as nodes:
        n1, n2 = nodes["n1"], nodes["n2"]
        await deliver_until_received(n1, n2, commit=1)
        assert n1.stats()["connects"] == 1
        await n2.stop()
        for commit in range(2, 6):  # into the void: the old connection breaks, the peer is down
            n1.transport.send(heartbeat("n1", "n2", commit))  # type: ignore[union-attr]
            await trio.sleep(0.02)
        await trio.sleep(0.2)
        await n2.start()
        await deliver_until_received(n1, n2, commit=100, timeout=5.0)
        assert n1.stats()["connects"] >= 2
        # and the restarted node can answer over its own fresh outgoing connection
        await deliver_until_received(n2, n1, commit=101)


async def test_run_raises_oserror_when_the_listen_address_is_taken() -> None:
    async with loopback("n1") as nodes:
        again = TcpTransport("n1", cluster=CLUSTER, listen=nodes["n1"].addresses["n1"], peers=nodes["n1"].addresses)
        with pytest.raises(OSError, match="cannot listen on peer address"), unwrapped():
            async with trio.open_nursery() as nursery:
                await nursery.start(again.run, lambda m: None)


# -- bad input -----------------------------------------------------------------------------------


def frame(kind: int, payload: bytes, *, version: int = codec.PROTOCOL_VERSION, length: int | None = None) -> bytes:
    """A frame built by hand, so it can lie about its length or version."""
    size = 2 + len(payload) if length is None else length
    return struct.pack(">IBB", size, version, kind) + payload


def hello(node: object = "n1", cluster: object = CLUSTER, cluster_id: str = "", nonce: bytes = b"") -> bytes:
    """The HELLO frame the TCP transport sends (a transport without credentials: no cluster id,
    no nonce); a node or cluster that is not a str gives a HELLO of JSON, which is malformed."""
    if isinstance(node, str) and isinstance(cluster, str):
        return codec.encode_frame(codec.FrameKind.HELLO, codec.encode_hello(node, cluster, cluster_id, nonce))
    return codec.encode_frame(codec.FrameKind.HELLO, codec.encode_json({"node": node, "cluster": cluster}))


def peer(message: Message) -> bytes:
    return codec.encode_frame(codec.FrameKind.PEER, codec.encode_message(message))


BAD_INPUT = {
    "garbage: an HTTP request": b"GET / HTTP/1.1\r\nHost: n2\r\n\r\n",
    "garbage: random bytes": bytes(range(7, 200)),
    "a frame length under 2": b"\x00\x00\x00\x01\x01",
    "an oversized length, no body": frame(codec.FrameKind.PEER, b"", length=0xFFFF_FFF0),
    "an unknown protocol version": frame(codec.FrameKind.HELLO, b'{"node":"n1","cluster":"test"}', version=99),
    "an unknown frame kind": frame(99, b"{}"),
    "a first frame that is not HELLO": peer(heartbeat("n1", "n2")),
    "a HELLO that is not JSON": frame(codec.FrameKind.HELLO, b"\xff\xfe\x00"),
    "a HELLO from an unknown node": hello("n9"),
    "a HELLO from another cluster": hello("n1", "other"),
    "a HELLO without a node": codec.encode_frame(codec.FrameKind.HELLO, codec.encode_json({"cluster": CLUSTER})),
    "a HELLO with a cluster id to a node without one": hello("n1", CLUSTER, "0123456789abcdef"),
    "a HELLO with a short payload": frame(codec.FrameKind.HELLO, b"\x02n1\x04test"),
    "a message with a term over 2**63-1": hello("n1") + peer(Heartbeat(term=2**64 - 2, src="n1", dst="n2", commit=0)),
    "a CHALLENGE to a node that did not send a HELLO": frame(codec.FrameKind.CHALLENGE, bytes(64)),
    "a HELLO whose node is not a string": hello(["n1"]),
    "a HELLO whose node is a number": hello(1),
    "a message whose src differs from the HELLO": hello("n1") + peer(heartbeat("n3", "n2")),
    "a message for another node": hello("n1") + peer(heartbeat("n1", "n3")),
    "a second HELLO": hello("n1") + hello("n1"),
    "a PEER frame that does not decode": hello("n1") + frame(codec.FrameKind.PEER, b"\x05\x00\x01"),
    "a PEER frame of an unknown message type": hello("n1") + frame(codec.FrameKind.PEER, b"\xee" + bytes(30)),
    "a client request on the peer port": hello("n1") + codec.encode_frame(codec.FrameKind.CLIENT_REQUEST, b'{"op":"status"}'),
}


@pytest.mark.parametrize("data", BAD_INPUT.values(), ids=BAD_INPUT.keys())
async def test_bad_input_drops_that_connection_is_counted_and_valid_traffic_still_flows(data: bytes) -> None:
    async with loopback("n1", "n2") as nodes:
        n1, n2 = nodes["n1"], nodes["n2"]
        await deliver_until_received(n1, n2, commit=1)
        before = n2.stats()
        stream = await trio.open_tcp_stream("127.0.0.1", n2.addresses["n2"].port)
        async with stream:
            await stream.send_all(data)
            assert await closed_by_peer(stream), "n2 kept the bad connection open"
        await wait_until(
            lambda: n2.stats()["rejected_connections"] == before["rejected_connections"] + 1,
            what="the rejected connection to be counted",
        )
        assert n2.stats()["bad_frames"] == before["bad_frames"] + 1
        assert n2.stats()["received"] == before["received"]  # nothing from it was delivered
        await deliver_until_received(n1, n2, commit=2)


async def test_a_truncated_frame_then_close_is_counted() -> None:
    async with loopback("n1", "n2") as nodes:
        n1, n2 = nodes["n1"], nodes["n2"]
        before = n2.stats()
        stream = await trio.open_tcp_stream("127.0.0.1", n2.addresses["n2"].port)
        async with stream:
            await stream.send_all(hello("n1") + peer(heartbeat("n1", "n2"))[:-3])
        await wait_until(
            lambda: n2.stats()["rejected_connections"] == before["rejected_connections"] + 1,
            timeout=2.0,
            what="the truncated frame to be counted (issue 4: truncated frames are dropped and counted)",
        )
        await deliver_until_received(n1, n2, commit=2)


async def test_one_bad_connection_does_not_disturb_a_good_connection_in_flight() -> None:
    async with loopback("n1", "n2") as nodes:
        n1, n2 = nodes["n1"], nodes["n2"]
        await deliver_until_received(n1, n2, commit=1)
        for data in (BAD_INPUT["garbage: an HTTP request"], BAD_INPUT["a HELLO from an unknown node"]):
            stream = await trio.open_tcp_stream("127.0.0.1", n2.addresses["n2"].port)
            async with stream:
                await stream.send_all(data)
                assert await closed_by_peer(stream)
        await deliver_until_received(n1, n2, commit=2)
        assert n1.stats()["connects"] == 1  # the good connection was never dropped


# -- authentication and bounded resources -----------------------------------------------------------

CREDENTIALS = Credentials("0123456789abcdef", bytes(range(32)), "t" * 24)


async def test_authenticated_transports_exchange_messages_both_ways() -> None:
    async with loopback("n1", "n2", credentials=CREDENTIALS) as nodes:
        await deliver_until_received(nodes["n1"], nodes["n2"], commit=7)
        await deliver_until_received(nodes["n2"], nodes["n1"], commit=8)
        assert nodes["n2"].stats()["rejected_connections"] == 0


async def test_a_node_without_the_secret_delivers_nothing_and_is_refused_both_ways() -> None:
    ports = free_ports(2)
    addresses = {"n1": Address("127.0.0.1", ports[0]), "n2": Address("127.0.0.1", ports[1])}
    impostor = Credentials(CREDENTIALS.cluster_id, bytes(32), CREDENTIALS.admin_token)  # a guessed secret
    with trio.fail_after(15):
        async with trio.open_nursery() as nursery:
            n1 = Node("n1", addresses, nursery, credentials=CREDENTIALS)
            n2 = Node("n2", addresses, nursery, credentials=impostor)
            await n1.start()
            await n2.start()
            for commit in range(20):
                n1.transport.send(heartbeat("n1", "n2", commit))  # type: ignore[union-attr]
                n2.transport.send(heartbeat("n2", "n1", commit))  # type: ignore[union-attr]
                await trio.sleep(0.02)
            await wait_until(lambda: n1.stats()["rejected_connections"] >= 1 and n2.stats()["rejected_connections"] >= 1,
                             what="each side to refuse the other's proof")
            assert n1.received == [] and n2.received == []
            assert n1.stats()["connects"] == 0 and n2.stats()["connects"] == 0  # neither accepted the other as acceptor
            nursery.cancel_scope.cancel()


async def test_a_connector_sends_nothing_to_an_acceptor_that_cannot_prove_it_holds_the_secret() -> None:
    """Mutual: a process holding n2's port answers the HELLO with a made-up CHALLENGE; n1 sends
    it neither a PROOF nor any message."""
    ports = free_ports(2)
    addresses = {"n1": Address("127.0.0.1", ports[0]), "n2": Address("127.0.0.1", ports[1])}
    received = bytearray()
    with trio.fail_after(15):
        async with trio.open_nursery() as nursery:
            listeners = await trio.open_tcp_listeners(ports[1], host="127.0.0.1")

            async def fake_n2(stream: trio.SocketStream) -> None:
                with contextlib.suppress(trio.BrokenResourceError, OSError):
                    received.extend(await stream.receive_some(4096))
                    await stream.send_all(codec.encode_frame(codec.FrameKind.CHALLENGE, bytes(64)))
                    while data := await stream.receive_some(4096):
                        received.extend(data)

            nursery.start_soon(trio.serve_listeners, fake_n2, listeners)
            n1 = Node("n1", addresses, nursery, credentials=CREDENTIALS)
            await n1.start()
            for commit in range(10):
                n1.transport.send(heartbeat("n1", "n2", commit))  # type: ignore[union-attr]
                await trio.sleep(0.03)
            await wait_until(lambda: bool(received), what="n1's HELLO")
            frames = codec.FrameDecoder().feed(bytes(received))
            assert frames and {f.kind for f in frames} == {codec.FrameKind.HELLO}, frames
            assert n1.stats()["connects"] == 0
            nursery.cancel_scope.cancel()


async def test_before_authentication_a_big_frame_header_is_refused_and_nothing_is_decoded_as_raft() -> None:
    async with loopback("n1", "n2", credentials=CREDENTIALS) as nodes:
        n2 = nodes["n2"]
        for data in (
            frame(codec.FrameKind.HELLO, b"", length=60_000_000) + bytes(8192),  # a 60 MB frame, begun
            hello("n1", CLUSTER, CREDENTIALS.cluster_id, bytes(32)) + peer(heartbeat("n1", "n2")),  # no PROOF
            hello("n1", CLUSTER, CREDENTIALS.cluster_id, bytes(32)) + frame(codec.FrameKind.PROOF, bytes(32)),
            hello("n1", CLUSTER, CREDENTIALS.cluster_id),  # no nonce: this cluster authenticates
            hello("n1", CLUSTER, "fedcba9876543210", bytes(32)),  # another cluster's id
        ):
            stream = await trio.open_tcp_stream("127.0.0.1", n2.addresses["n2"].port)
            async with stream:
                with contextlib.suppress(trio.BrokenResourceError, OSError):
                    await stream.send_all(data)
                assert await closed_by_peer(stream)
        await wait_until(lambda: n2.stats()["rejected_connections"] == 5, what="five refusals")
        assert n2.stats()["received"] == 0 and n2.received == []


async def test_connections_beyond_the_limit_are_closed_at_once_and_silent_ones_at_the_handshake_deadline() -> None:
    async with loopback("n2", credentials=CREDENTIALS, max_connections=4, handshake_timeout=0.3) as nodes:
        n2 = nodes["n2"]
        streams = [await trio.open_tcp_stream("127.0.0.1", n2.addresses["n2"].port) for _ in range(10)]
        await wait_until(lambda: n2.stats()["refused_connections"] == 6, what="six refusals")
        for stream in streams:  # the four within the limit never finish a HELLO: closed at the deadline
            assert await closed_by_peer(stream)
            await stream.aclose()
        await wait_until(lambda: n2.stats()["rejected_connections"] == 4, what="four handshake timeouts")
        await n2.stop()
        assert n2.transport is not None and n2.transport._connections == 0


async def test_a_message_that_cannot_be_encoded_is_dropped_and_counted_not_raised() -> None:
    async with loopback("n1", "n2") as nodes:
        n1 = nodes["n1"]
        await deliver_until_received(n1, nodes["n2"], commit=1)
        n1.transport.send(Heartbeat(term=2**64, src="n1", dst="n2", commit=0))  # type: ignore[union-attr]
        assert n1.stats()["unencodable"] == 1
        await deliver_until_received(n1, nodes["n2"], commit=2)


async def test_a_closed_peer_socket_is_never_read_through_its_reused_descriptor() -> None:
    """The plain receiver asks the socket for its descriptor before each read: once the socket
    is closed, a new file given the same number is not read (the old socket's reader gets
    ClosedResourceError, the new file keeps its bytes)."""
    import socket as stdlib_socket

    from raftnode.wire.streams import plain_receiver

    mine, peer = stdlib_socket.socketpair()
    stream = trio.SocketStream(trio.socket.from_stdlib_socket(mine))
    receive = plain_receiver(stream)
    peer.send(b"hello")
    assert await receive() == b"hello"
    number = stream.socket.fileno()
    stream.socket.close()
    other, other_peer = stdlib_socket.socketpair()  # the lowest free numbers: ``number`` again
    try:
        reused = other if other.fileno() == number else other_peer
        assert reused.fileno() == number
        (other_peer if reused is other else other).send(b"not yours")
        with pytest.raises(trio.ClosedResourceError):
            await receive()
        assert reused.recv(64) == b"not yours"
    finally:
        for s in (peer, other, other_peer):
            s.close()
