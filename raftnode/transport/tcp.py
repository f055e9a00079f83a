"""Raft messages over TCP between node processes.

Each node listens on its ``peer`` address and keeps one outgoing connection per peer, opened
by one task per peer that reconnects with exponential backoff. ``send`` encodes the message at
once and, when the connection is up and has no backlog, writes it straight to the socket from
the caller's task (a non-blocking ``send``: no queue, no task switch). Between ``cork()`` and
``uncork()`` messages are only gathered, so everything one Ready sends to a peer goes out in one
system call. What the socket does not take at once waits in a per-peer backlog that the peer's
task drains when the socket is writable; messages that arrive while the peer is unreachable
wait (at most ``queue_size`` of them) until it connects and are dropped if connecting fails;
a backlog over ``max_backlog_bytes`` drops new messages (Raft retransmits what matters).

A connection starts, with ``tls``, with a mutual TLS handshake (certificates of the cluster CA),
then a HELLO frame naming the sender, the cluster and its id; with ``credentials`` and
``peer_auth`` the two sides then authenticate each other (``raftnode.transport.greeting``)
before the connector sends anything else. Over TLS every write goes through the peer's task
(``trio.SSLStream``); without it, straight to the socket when it has room. After that, every
frame is one Raft message whose ``src`` must be that sender and ``dst`` this node. Until the
handshake is done a frame may hold at most ``HANDSHAKE_FRAME_BYTES`` and nothing is decoded as
Raft; it must be done within ``handshake_timeout``. The port holds at most ``max_connections``
connections; more are closed at once.

Anything else — garbage, a truncated or oversized frame, an unknown protocol version, an
unknown node, another cluster, a wrong proof, a message claiming another sender — drops that
connection and is counted in ``stats()``; the node keeps serving. A message the node cannot
encode is dropped and counted, never raised into the node's task.
"""

from __future__ import annotations

import logging
import socket
from functools import partial
from typing import Any

import trio

from ..config import Address
from ..core.messages import Message
from ..security.credentials import Credentials
from ..wire import codec
from ..wire.streams import plain_receiver
from . import Deliver
from .greeting import HANDSHAKE_FRAME_BYTES, Greeter, PeerProtocolError

__all__ = ["HANDSHAKE_FRAME_BYTES", "PeerProtocolError", "TcpTransport"]

log = logging.getLogger("raftnode.transport")

_MAX_BACKLOG_BYTES = 32 << 20


class _Peer:
    """The outgoing side of one link: the socket when connected, frames gathered, bytes unsent."""

    __slots__ = ("id", "address", "sock", "stream", "frames", "backlog", "wakeup", "broken")

    def __init__(self, peer_id: str, address: Address):
        self.id = peer_id
        self.address = address
        self.sock: socket.socket | None = None  # set once connected and the HELLO is queued
        self.stream: trio.abc.Stream | None = None  # instead of sock under TLS: writes go through the task
        self.frames: list[bytes] = []  # encoded, not yet written (corked, or not connected)
        self.backlog = bytearray()  # written by nobody yet: the socket was full
        self.wakeup = trio.Event()  # the peer's task: drain the backlog, or reconnect
        self.broken = False


class TcpTransport:
    """Args:
    node_id: this node.
    cluster: the cluster's name; connections from another cluster are refused.
    listen: the peer address to listen on.
    peers: every other node's peer address.
    queue_size: messages waiting per peer before new ones are dropped.
    max_frame_bytes: the largest frame accepted from an authenticated peer (bigger ones drop the connection).
    credentials: the cluster id (checked in every HELLO) and the peer secret; None: no id, no authentication.
    peer_auth: authenticate peers with ``credentials.peer_secret`` (both sides must agree).
    max_connections: connections the peer port holds at once.
    handshake_timeout: seconds a new connection has to finish its HELLO (and authentication).
    tls: the node's TLS contexts (``raftnode.security.tls.NodeTls``); None: plain TCP.
    """

    def __init__(
        self,
        node_id: str,
        *,
        cluster: str,
        listen: Address,
        peers: dict[str, Address],
        queue_size: int = 8192,
        max_frame_bytes: int = 64 << 20,
        credentials: Credentials | None = None,
        peer_auth: bool = True,
        max_connections: int = 64,
        handshake_timeout: float = 5.0,
        tls: Any = None,
    ):
        self.node_id = node_id
        self.credentials = credentials
        self.cluster_id = credentials.cluster_id if credentials is not None else ""
        self.secret = credentials.peer_secret if credentials is not None and peer_auth else None
        self.tls = tls
        self.max_connections = max_connections
        self.handshake_timeout = handshake_timeout
        self._connections = 0
        self.cluster = cluster
        self.listen = listen
        self.peers = {p: a for p, a in peers.items() if p != node_id}
        self._greeter = Greeter(node_id, cluster, self.cluster_id, self.secret, self.peers, tls)
        self.max_frame_bytes = max_frame_bytes
        self.queue_size = queue_size
        self._peers = {p: _Peer(p, a) for p, a in self.peers.items()}
        self._corked = 0
        self._dirty: set[_Peer] = set()
        self._nursery: trio.Nursery | None = None
        self._stats: dict[str, int] = {
            "sent": 0,
            "dropped": 0,
            "received": 0,
            "connects": 0,
            "bad_frames": 0,
            "rejected_connections": 0,
            "refused_connections": 0,
            "unencodable": 0,
        }

    def send(self, message: Message) -> None:
        peer = self._peers.get(message.dst)
        if peer is None or len(peer.frames) >= self.queue_size or len(peer.backlog) > _MAX_BACKLOG_BYTES:
            self._stats["dropped"] += 1
            return
        try:
            frame = codec.encode_peer_frame(message)
        except codec.CodecError as exc:
            self._stats["unencodable"] += 1
            log.error("%s: dropped a message it cannot encode: %s", self.node_id, exc)
            return
        peer.frames.append(frame)
        if self._corked:
            self._dirty.add(peer)
        else:
            self._flush(peer)

    def cork(self) -> None:
        """Gather what ``send`` is given until ``uncork``: one write per peer for the lot."""
        self._corked += 1

    def uncork(self) -> None:
        self._corked -= 1
        if not self._corked and self._dirty:
            dirty, self._dirty = self._dirty, set()
            for peer in dirty:
                self._flush(peer)

    def _flush(self, peer: _Peer) -> None:
        sock = peer.sock
        if (sock is None and peer.stream is None) or not peer.frames:
            return  # not connected: the peer's task sends them once it is
        count = len(peer.frames)
        data = peer.frames[0] if count == 1 else b"".join(peer.frames)
        peer.frames.clear()
        self._stats["sent"] += count
        if peer.backlog or sock is None:  # a backlog the task drains, or TLS: the task writes
            peer.backlog += data
            if sock is None:
                peer.wakeup.set()
            return
        try:
            written = sock.send(data)
        except BlockingIOError:
            written = 0
        except OSError as exc:
            log.debug("%s: connection to %s lost: %s", self.node_id, peer.id, exc)
            peer.broken = True
            peer.wakeup.set()
            return
        if written < len(data):
            peer.backlog += memoryview(data)[written:]
            peer.wakeup.set()

    def stats(self) -> dict[str, Any]:
        return dict(self._stats)

    def add_peers(self, peers: dict[str, Address]) -> None:
        """Know more nodes (a membership change added them): accept their HELLO, connect to them.

        A known node's address is not changed, and nodes are never forgotten: a removed node is
        ignored by the core and stops by itself.
        """
        for peer_id, address in peers.items():
            if peer_id == self.node_id or peer_id in self._peers:
                continue
            self.peers[peer_id] = address
            peer = self._peers[peer_id] = _Peer(peer_id, address)
            if self._nursery is not None:
                self._nursery.start_soon(self._sender, peer)

    async def run(self, deliver: Deliver, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Listen and keep the outgoing connections; raises OSError if the address is taken."""
        try:
            listeners = await trio.open_tcp_listeners(self.listen.port, host=self.listen.host)
        except OSError as exc:
            raise OSError(exc.errno, f"cannot listen on peer address {self.listen}: {exc.strerror}") from None
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(trio.serve_listeners, partial(self._serve_peer, deliver), listeners))
            for peer in self._peers.values():
                nursery.start_soon(self._sender, peer)
            self._nursery = nursery
            task_status.started()

    # -- outgoing ------------------------------------------------------------------------------

    async def _sender(self, peer: _Peer) -> None:
        """Connect to ``peer`` and keep connected; drain its backlog when the socket is full."""
        backoff = 0.02
        while True:
            sock = socket.socket(socket.AF_INET6 if ":" in peer.address.host else socket.AF_INET, socket.SOCK_STREAM)
            try:
                stream, opening = await self._open(sock, peer)
            except (OSError, codec.CodecError, PeerProtocolError, trio.TooSlowError, trio.BrokenResourceError) as exc:
                if not isinstance(exc, OSError):
                    log.warning("%s: handshake with %s at %s failed: %s", self.node_id, peer.id, peer.address, exc or "timed out")
                trio.lowlevel.notify_closing(sock)
                sock.close()
                self._stats["dropped"] += len(peer.frames)  # stale by the time the peer is back
                peer.frames.clear()
                await trio.sleep(backoff)
                backoff = min(backoff * 2, 1.0)
                continue
            except BaseException:
                sock.close()
                raise
            backoff = 0.02
            self._stats["connects"] += 1
            peer.broken = False
            peer.backlog[:0] = opening
            try:
                await self._pump(peer, sock, stream)
            except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                log.debug("%s: connection to %s lost: %s", self.node_id, peer.id, exc)
            finally:
                peer.sock = peer.stream = None
                peer.backlog.clear()
                trio.lowlevel.notify_closing(sock)
                sock.close()

    async def _open(self, sock: socket.socket, peer: _Peer) -> tuple[trio.abc.Stream | None, bytes]:
        """Connect ``sock`` to ``peer`` and greet it: the TLS stream (None without TLS) and what
        is still to be sent before Raft messages."""
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        trio_sock = trio.socket.from_stdlib_socket(sock)
        await trio_sock.connect((peer.address.host, peer.address.port))
        with trio.fail_after(self.handshake_timeout):
            stream = await self._greeter.secure_outgoing(trio.SocketStream(trio_sock), peer.address)
            opening = await self._greeter.connect(stream, peer.id)
        return (stream if self.tls is not None else None), opening

    async def _pump(self, peer: _Peer, sock: socket.socket, stream: trio.abc.Stream | None) -> None:
        """Write what ``send`` queues for ``peer`` until the connection breaks: straight to
        ``sock`` from ``send`` when it has room (the backlog here), or all of it here under TLS."""
        if stream is None:
            peer.sock = sock
        else:
            peer.stream = stream
        self._flush(peer)  # what waited for the connection, after the HELLO
        while not peer.broken:
            while peer.backlog and not peer.broken:
                if stream is not None:
                    data = bytes(peer.backlog)
                    peer.backlog.clear()
                    await stream.send_all(data)
                    continue
                await trio.lowlevel.wait_writable(sock)
                try:
                    written = sock.send(peer.backlog)
                except BlockingIOError:  # writable was a spurious wake-up
                    continue
                del peer.backlog[:written]
            if peer.broken:
                break
            await peer.wakeup.wait()
            peer.wakeup = trio.Event()

    # -- incoming ------------------------------------------------------------------------------

    async def _serve_peer(self, deliver: Deliver, stream: trio.SocketStream) -> None:
        if self._connections >= self.max_connections:
            self._stats["refused_connections"] += 1
            with trio.CancelScope(shield=True):
                await stream.aclose()
            return
        self._connections += 1
        try:
            await self._serve_connection(deliver, stream)
        finally:
            self._connections -= 1

    async def _serve_connection(self, deliver: Deliver, stream: trio.abc.Stream) -> None:
        decoder = codec.FrameDecoder(max_frame_bytes=HANDSHAKE_FRAME_BYTES)
        peer: str | None = None
        try:
            async with stream:
                with trio.move_on_after(self.handshake_timeout):
                    stream = await self._greeter.secure_incoming(stream)
                    peer = await self._greeter.accept(stream, decoder)
                if peer is None:
                    what = "authenticated " if self.secret is not None else ""
                    raise PeerProtocolError(f"no {what}HELLO within {self.handshake_timeout:g} s")
                decoder.max_frame_bytes = self.max_frame_bytes
                plain = self.tls is None and isinstance(stream, trio.SocketStream)
                receive = plain_receiver(stream) if plain else stream.receive_some
                data = b""  # frames that arrived with the handshake's last one come first
                while True:
                    for frame in decoder.feed(data):
                        if frame.kind != codec.FrameKind.PEER:
                            raise PeerProtocolError(f"unexpected {frame.kind.name} frame from {peer}")
                        message = codec.decode_message(frame.payload)
                        if message.src != peer or message.dst != self.node_id:
                            raise PeerProtocolError(
                                f"connection from {peer} carried a message from {message.src} to {message.dst}"
                            )
                        self._stats["received"] += 1
                        deliver(message)
                    data = await receive()
                    if not data:
                        break
                if decoder.buffered:
                    raise codec.FrameError(f"connection from {peer} closed mid-frame")
        except (codec.CodecError, PeerProtocolError) as exc:
            self._stats["bad_frames"] += 1
            self._stats["rejected_connections"] += 1
            log.warning("%s: dropped a peer connection: %s", self.node_id, exc)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
