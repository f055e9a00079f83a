"""Raft messages over TCP between node processes.

Each node listens on its ``peer`` address and keeps one outgoing connection per peer, opened
by one task per peer that reconnects with exponential backoff. ``send`` encodes the message at
once and, when the connection is up and has no backlog, writes it straight to the socket from
the caller's task (a non-blocking ``send``: no queue, no task switch). Between ``cork()`` and
``uncork()`` messages are only gathered, so everything one Ready sends to a peer goes out in one
system call. What the socket does not take at once waits in a per-peer backlog that the peer's
task drains when the socket is writable; messages that arrive while the peer is unreachable
wait (at most ``queue_size`` of them) until it connects and are dropped if connecting fails;
a backlog over ``max_backlog_bytes`` drops new messages (Raft retransmits what matters). A connection starts with a HELLO frame naming the sender and the cluster; after it,
every frame is one Raft message whose ``src`` must be that sender and ``dst`` this node.

Anything else — garbage, a truncated or oversized frame, an unknown protocol version, an
unknown node, a message claiming another sender — drops that connection and is counted in
``stats()``; the node keeps serving.
"""

from __future__ import annotations

import logging
import socket
from functools import partial
from typing import Any

import trio

from .. import codec
from ..config import Address
from ..core.messages import Message
from . import Deliver

log = logging.getLogger("raftnode.transport")

_MAX_BACKLOG_BYTES = 32 << 20


class _Peer:
    """The outgoing side of one link: the socket when connected, frames gathered, bytes unsent."""

    __slots__ = ("id", "address", "sock", "frames", "backlog", "wakeup", "broken")

    def __init__(self, peer_id: str, address: Address):
        self.id = peer_id
        self.address = address
        self.sock: socket.socket | None = None  # set once connected and the HELLO is queued
        self.frames: list[bytes] = []  # encoded, not yet written (corked, or not connected)
        self.backlog = bytearray()  # written by nobody yet: the socket was full
        self.wakeup = trio.Event()  # the peer's task: drain the backlog, or reconnect
        self.broken = False


class PeerProtocolError(Exception):
    """A peer broke the wire protocol (not a codec error: a well-formed frame that is not allowed)."""


class TcpTransport:
    """Args:
    node_id: this node.
    cluster: the cluster's name; connections from another cluster are refused.
    listen: the peer address to listen on.
    peers: every other node's peer address.
    queue_size: messages waiting per peer before new ones are dropped.
    max_frame_bytes: the largest frame accepted (bigger ones drop the connection).
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
    ):
        self.node_id = node_id
        self.cluster = cluster
        self.listen = listen
        self.peers = {p: a for p, a in peers.items() if p != node_id}
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
        }

    def send(self, message: Message) -> None:
        peer = self._peers.get(message.dst)
        if peer is None or len(peer.frames) >= self.queue_size or len(peer.backlog) > _MAX_BACKLOG_BYTES:
            self._stats["dropped"] += 1
            return
        peer.frames.append(codec.encode_frame(codec.FrameKind.PEER, codec.encode_message(message)))
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
        if sock is None or not peer.frames:
            return  # not connected: the peer's task sends them once it is
        count = len(peer.frames)
        data = peer.frames[0] if count == 1 else b"".join(peer.frames)
        peer.frames.clear()
        self._stats["sent"] += count
        if peer.backlog:
            peer.backlog += data
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
        hello = codec.encode_frame(codec.FrameKind.HELLO, codec.encode_hello(self.node_id, self.cluster))
        while True:
            sock = socket.socket(socket.AF_INET6 if ":" in peer.address.host else socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                await trio.socket.from_stdlib_socket(sock).connect((peer.address.host, peer.address.port))
            except OSError:
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
            peer.backlog[:0] = hello
            peer.sock = sock
            try:
                self._flush(peer)  # what waited for the connection, after the HELLO
                while not peer.broken:
                    while peer.backlog and not peer.broken:
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
            except OSError as exc:
                log.debug("%s: connection to %s lost: %s", self.node_id, peer.id, exc)
            finally:
                peer.sock = None
                peer.backlog.clear()
                trio.lowlevel.notify_closing(sock)
                sock.close()

    # -- incoming ------------------------------------------------------------------------------

    async def _serve_peer(self, deliver: Deliver, stream: trio.SocketStream) -> None:
        decoder = codec.FrameDecoder(max_frame_bytes=self.max_frame_bytes)
        peer: str | None = None
        try:
            async with stream:
                async for data in stream:
                    for frame in decoder.feed(data):
                        if peer is None:
                            peer = self._check_hello(frame)
                            continue
                        if frame.kind != codec.FrameKind.PEER:
                            raise PeerProtocolError(f"unexpected {frame.kind.name} frame from {peer}")
                        message = codec.decode_message(frame.payload)
                        if message.src != peer or message.dst != self.node_id:
                            raise PeerProtocolError(
                                f"connection from {peer} carried a message from {message.src} to {message.dst}"
                            )
                        self._stats["received"] += 1
                        deliver(message)
                if decoder.buffered:
                    raise codec.FrameError(f"connection from {peer or 'an unknown peer'} closed mid-frame")
        except (codec.CodecError, PeerProtocolError) as exc:
            self._stats["bad_frames"] += 1
            self._stats["rejected_connections"] += 1
            log.warning("%s: dropped a peer connection: %s", self.node_id, exc)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass

    def _check_hello(self, frame: codec.Frame) -> str:
        if frame.kind != codec.FrameKind.HELLO:
            raise PeerProtocolError(f"the first frame must be HELLO, got {frame.kind.name}")
        node, cluster = codec.decode_hello(frame.payload)
        if cluster != self.cluster:
            raise PeerProtocolError(f"HELLO from cluster {cluster!r}, this is {self.cluster!r}")
        if node not in self.peers:
            raise PeerProtocolError(f"HELLO from unknown node {node!r}; known: {', '.join(sorted(self.peers))}")
        return node

