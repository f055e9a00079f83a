"""The client endpoint's connections (a room of ``raftnode.node.service``): accepting within
``max_connections``, securing under TLS (refusing a plaintext client in words it can read),
reading request frames with their deadlines, and bounding what all connections buffer.

Each request read goes to the command room (``_submit``) or, if it is not a command or query it
serves in place, to ``ClientService._dispatch`` in a task of the connection's own.
"""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio

from ..security.credentials import Credentials
from ..wire import codec
from ..wire.streams import FrameWriter, plain_receiver
from .readgroups import ReadGroups
from .runtime import RaftNode

log = logging.getLogger("raftnode.service")

#: The first byte of a TLS client's first record (a handshake record): anything else is plaintext.
_TLS_HANDSHAKE_RECORD = 0x16
#: Requests a connection's reader handles before it lets other tasks run (the node's among them).
_FRAMES_PER_TURN = 64
#: Read once: an enum member read through its class costs as much as decoding a small request's field.
_REQUEST, _decode_json = codec.FrameKind.CLIENT_REQUEST, codec.decode_json


class RefusedConnection(Exception):
    """The connection is closed without an answer (another cluster's request, a timeout, too much buffered)."""


class _ConnectionState:
    """What the endpoint tracks of one connection: requests in progress, bytes buffered, and the
    queries read and not yet handed to the node (``raftnode.node.readgroups``)."""

    __slots__ = ("in_flight", "buffered", "reads")

    def __init__(self) -> None:
        self.in_flight = 0
        self.buffered = 0
        self.reads = ReadGroups()


class ConnectionRoom:
    """``ClientService``'s connections: ``_serve_connection`` serves one from accept to close.
    Uses the service's settings and counters below, and the other rooms' ``_submit``,
    ``_ask_reads`` (command room) and ``_dispatch`` (the service)."""

    node: RaftNode
    stats: dict[str, int]
    max_connections: int
    max_frame_bytes: int
    max_buffered_bytes: int
    handshake_timeout: float
    idle_timeout: float
    credentials: Credentials | None
    tls: ssl.SSLContext | None
    _connections: int
    _buffered: int
    _dirty: set[FrameWriter]

    async def _serve_connection(self, stream: trio.SocketStream) -> None:
        if self._connections >= self.max_connections:
            self.stats["refused_client_connections"] += 1
            log.debug("%s: refused a client connection: %d are open", self.node.id, self._connections)
            with trio.CancelScope(shield=True):
                await stream.aclose()
            return
        self._connections += 1
        try:
            secure = await self._secure(stream)
            if secure is not None:
                await self._serve(secure)
        finally:
            self._connections -= 1

    async def _secure(self, stream: trio.SocketStream) -> trio.abc.Stream | None:
        """``stream`` under TLS once its handshake is done (as it is without ``tls``); None, and
        the connection closed, if the client does not complete one in time with a valid certificate."""
        if self.tls is None:
            return stream
        secure = trio.SSLStream(stream, self.tls, server_side=True)
        with trio.move_on_after(self.handshake_timeout):
            try:
                first = await stream.socket.recv(1, socket.MSG_PEEK)
                if first and first[0] != _TLS_HANDSHAKE_RECORD:
                    await self._refuse_plaintext(stream)
                else:
                    await secure.do_handshake()
                    return secure
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                from ..security.tls import failure_reason

                log.info("%s: refused a client connection: TLS handshake failed: %s", self.node.id, failure_reason(exc))
        self.stats["refused_client_connections"] += 1
        with trio.CancelScope(shield=True):
            await stream.aclose()
        return None

    async def _serve(self, stream: trio.abc.Stream) -> None:
        self.stats["client_connections"] += 1
        writer = FrameWriter(stream)
        state = _ConnectionState()
        async with _bounded_close(stream), trio.open_nursery() as nursery:
            nursery.start_soon(_quietly, writer.run)
            try:
                await self._read_requests(stream, writer, state, nursery)
            except codec.CodecError as exc:
                self.stats["bad_client_frames"] += 1
                log.warning("%s: dropped a client connection: %s", self.node.id, exc)
            except RefusedConnection as exc:
                self.stats["refused_client_connections"] += 1
                log.info("%s: closed a client connection: %s", self.node.id, exc)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                pass
            finally:
                writer.closed = True  # answers still to come are dropped, never written to a reused fd
                self._dirty.discard(writer)
                self._account(state, 0)
            nursery.cancel_scope.cancel()  # the client hung up or misbehaved: stop its requests

    async def _read_requests(
        self, stream: trio.abc.Stream, writer: FrameWriter, state: _ConnectionState, nursery: trio.Nursery
    ) -> None:
        """Read the connection's requests until the client hangs up, each submitted in place or
        dispatched in a task of ``nursery``; raises RefusedConnection (a deadline passed, too much
        buffered, answers not read) or CodecError (a malformed frame)."""
        decoder = codec.FrameDecoder(max_frame_bytes=self.max_frame_bytes)
        node = self.node
        checkpoint = trio.lowlevel.checkpoint
        deadline = trio.current_time() + self.handshake_timeout
        greeted = False
        # A plain connection waits until readable, then reads once (no read that finds nothing
        # after each request, on the way to the node's turn).
        receive = plain_receiver(stream) if isinstance(stream, trio.SocketStream) else stream.receive_some
        while True:
            with trio.move_on_at(deadline) as waiting:
                data = await receive()
            if waiting.cancelled_caught:
                if state.in_flight:
                    deadline = trio.current_time() + self.idle_timeout
                    continue
                limit = self.idle_timeout if greeted else self.handshake_timeout
                raise RefusedConnection(f"no complete request within {limit:g} s")
            if not data:
                break
            frames = decoder.feed(data)
            self._account(state, decoder.buffered)
            if frames:
                greeted = True
                deadline = trio.current_time() + self.idle_timeout
            for count, frame in enumerate(frames, 1):
                if frame.kind != _REQUEST:
                    raise codec.CodecError(f"expected a CLIENT_REQUEST frame, got {frame.kind.name}")
                request = _decode_json(frame.payload, max_bytes=self.max_frame_bytes)
                if self.credentials is not None:
                    self._check_cluster(request)
                if not self._submit(request, writer, state):
                    state.in_flight += 1
                    nursery.start_soon(self._dispatch, request, writer, state)
                if count % _FRAMES_PER_TURN == 0:
                    self._ask_reads(writer, state)
                    await checkpoint()  # a chunk holds ~1,000 requests: do not hog the thread
            self._ask_reads(writer, state)
            if node.proposals_backlogged():
                # Enough commands wait for the node: leave the rest in the socket (TCP
                # pushes back on the client) rather than queue without bound.
                await node.wait_for_room()
            if writer.backlog > _FRAMES_PER_TURN and writer.backlog_bytes() > self.max_frame_bytes:
                raise RefusedConnection(
                    f"the client does not read its answers ({writer.backlog_bytes()} bytes wait)"
                )
        if decoder.buffered:
            raise codec.FrameError("the client closed the connection mid-frame")

    async def _refuse_plaintext(self, stream: trio.SocketStream) -> None:
        """Tell a client that sent a frame instead of a TLS hello why it is refused, in a frame it
        can read: an answer with no id (the clients close the connection with its error)."""
        log.info("%s: refused a plaintext client connection: this node serves TLS only", self.node.id)
        error = (f"node {self.node.id} serves clients over TLS only: the cluster file needs the cluster's [tls] "
                 "table and its client certificate (`raftctl init --tls`)")
        await stream.send_all(codec.encode_frame(codec.FrameKind.CLIENT_RESPONSE,
                                                 codec.encode_json({"ok": False, "error": error, "id": None})))

    def _account(self, state: _ConnectionState, buffered: int) -> None:
        """Note that a connection now holds ``buffered`` bytes of a partial frame; refuse it if all
        connections together would hold more than ``max_buffered_bytes``."""
        grown = buffered - state.buffered
        if grown:
            state.buffered = buffered
            self._buffered += grown
            if grown > 0 and self._buffered > self.max_buffered_bytes:
                raise RefusedConnection(
                    f"client connections hold {self._buffered} bytes of partial requests, "
                    f"more than the {self.max_buffered_bytes} allowed"
                )

    def _check_cluster(self, request: dict[str, Any]) -> None:
        """A request naming another cluster is never answered."""
        assert self.credentials is not None
        cluster_id = request.get("cluster_id")
        if cluster_id is not None and cluster_id != self.credentials.cluster_id:
            raise RefusedConnection(f"a request for cluster {str(cluster_id)[:40]!r}, this is {self.credentials.cluster_id!r}")


@asynccontextmanager
async def _bounded_close(stream: trio.abc.Stream) -> AsyncIterator[trio.abc.Stream]:
    """Close ``stream`` on exit within a second: a TLS close sends an alert, which must not wait
    forever on a client that reads nothing (closed by force then)."""
    try:
        yield stream
    finally:
        with trio.CancelScope(deadline=trio.current_time() + 1.0, shield=True):
            await stream.aclose()


async def _quietly(run: Any) -> None:
    """Run a connection's writer; a client that went away is not an error of the node."""
    try:
        await run()
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        pass
