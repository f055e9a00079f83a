"""Handshake and idle deadlines in virtual time (``autojump_clock``): connections are in-memory
stream pairs handed to the endpoints' per-connection handlers, so the time at which a slow or
silent connection is closed is exact and the same on every run."""

from __future__ import annotations

import random

import pytest
import trio
import trio.testing

from raftnode.config import Address
from raftnode.core import RaftConfig
from raftnode.node.runtime import RaftNode
from raftnode.node.service import ClientService
from raftnode.node.statemachines import Counter
from raftnode.security.credentials import Credentials
from raftnode.storage.memory import MemoryStorage
from raftnode.transport.memory import MemoryNetwork
from raftnode.transport.tcp import TcpTransport
from raftnode.wire import codec

pytestmark = pytest.mark.trio

CREDENTIALS = Credentials("0123456789abcdef", bytes(32), "admin-token-0123456789", "client-token-0123456789")


async def closed_at(client: trio.abc.Stream) -> float:
    """The virtual time at which the other end closes ``client`` (reading what it sends)."""
    try:
        while await client.receive_some(65536):
            pass
    except trio.BrokenResourceError:
        pass
    return trio.current_time()


async def slowloris(client: trio.abc.Stream, data: bytes, every: float) -> None:
    """Send ``data`` a byte every ``every`` seconds, until the other end hangs up."""
    try:
        for byte in data:
            await client.send_all(bytes([byte]))
            await trio.sleep(every)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass


async def test_a_peer_that_never_finishes_its_handshake_is_closed_at_the_deadline(autojump_clock: trio.testing.MockClock) -> None:
    transport = TcpTransport(
        "n2", cluster="test", listen=Address("127.0.0.1", 1), peers={"n1": Address("127.0.0.1", 2)},
        credentials=CREDENTIALS, handshake_timeout=5.0,
    )
    delivered: list[object] = []
    hello = codec.encode_frame(codec.FrameKind.HELLO, codec.encode_hello("n1", "test", CREDENTIALS.cluster_id, bytes(32)))
    for data, every in ((b"", 1.0), (hello[:-1], 0.5), (hello, 0.1)):  # silent; a byte at a time; no PROOF
        client, server = trio.testing.memory_stream_pair()
        start = trio.current_time()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(transport._serve_peer, delivered.append, server)
            nursery.start_soon(slowloris, client, data, every)
            assert await closed_at(client) - start == pytest.approx(5.0, abs=0.01)
    assert delivered == [] and transport.stats()["rejected_connections"] == 3


async def test_a_silent_client_at_the_handshake_deadline_and_an_idle_one_at_the_idle_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    node = RaftNode(
        RaftConfig(node_id="n1", voters=("n1",), election_timeout=(2, 4), heartbeat_interval=1),
        storage=MemoryStorage(), transport=MemoryNetwork().transport("n1"), state_machine=Counter(),
        tick_seconds=0.01, rng=random.Random(1),
    )
    service = ClientService(node, Address("127.0.0.1", 1), handshake_timeout=2.0, idle_timeout=30.0)
    request = codec.encode_frame(codec.FrameKind.CLIENT_REQUEST, codec.encode_json({"op": "status", "id": 1}))
    async with trio.open_nursery() as nursery:
        await nursery.start(node.run)
        for data, every, expected in (
            (b"", 1.0, 2.0),  # never a request: the handshake deadline
            (request[:-1], 1.0, 2.0),  # a byte a second, never complete: the same
            (request, 0.0, 30.0),  # answered at once, then idle: the idle deadline after it
        ):
            client, server = trio.testing.memory_stream_pair()
            start = trio.current_time()
            nursery.start_soon(service._serve_connection, server)
            nursery.start_soon(slowloris, client, data, every)
            assert await closed_at(client) - start == pytest.approx(expected, abs=0.01)
        assert service.stats["refused_client_connections"] == 3
        node.stop()
