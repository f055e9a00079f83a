"""Raft messages over TCP between node processes.

Each node listens on its ``peer`` address and keeps one outgoing connection per peer, owned by
one sender task that reconnects with exponential backoff. Messages wait in a bounded queue per
peer; when it is full, or the peer is unreachable, they are dropped (Raft retransmits what
matters). A connection starts with a HELLO frame naming the sender and the cluster; after it,
every frame is one Raft message whose ``src`` must be that sender and ``dst`` this node.

Anything else — garbage, a truncated or oversized frame, an unknown protocol version, an
unknown node, a message claiming another sender — drops that connection and is counted in
``stats()``; the node keeps serving.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

import trio

from .. import codec
from ..config import Address
from ..core.messages import Message
from . import Deliver

log = logging.getLogger("raftnode.transport")

_SEND_BATCH = 512


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
        self._queues = {p: trio.open_memory_channel[Message](queue_size) for p in self.peers}
        self._stats: dict[str, int] = {
            "sent": 0,
            "dropped": 0,
            "received": 0,
            "connects": 0,
            "bad_frames": 0,
            "rejected_connections": 0,
        }

    def send(self, message: Message) -> None:
        queue = self._queues.get(message.dst)
        if queue is None:
            self._stats["dropped"] += 1
            return
        try:
            queue[0].send_nowait(message)
        except trio.WouldBlock:
            self._stats["dropped"] += 1

    def stats(self) -> dict[str, Any]:
        return dict(self._stats)

    async def run(self, deliver: Deliver, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Listen and keep the outgoing connections; raises OSError if the address is taken."""
        try:
            listeners = await trio.open_tcp_listeners(self.listen.port, host=self.listen.host)
        except OSError as exc:
            raise OSError(exc.errno, f"cannot listen on peer address {self.listen}: {exc.strerror}") from None
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(trio.serve_listeners, partial(self._serve_peer, deliver), listeners))
            for peer, address in self.peers.items():
                nursery.start_soon(self._sender, peer, address, self._queues[peer][1])
            task_status.started()

    # -- outgoing ------------------------------------------------------------------------------

    async def _sender(self, peer: str, address: Address, queue: trio.MemoryReceiveChannel[Message]) -> None:
        backoff = 0.02
        hello = codec.encode_frame(codec.FrameKind.HELLO, codec.encode_hello(self.node_id, self.cluster))
        while True:
            try:
                stream = await trio.open_tcp_stream(address.host, address.port)
            except OSError:
                self._stats["dropped"] += _drain(queue)  # stale by the time the peer is back
                await trio.sleep(backoff)
                backoff = min(backoff * 2, 1.0)
                continue
            backoff = 0.02
            self._stats["connects"] += 1
            try:
                async with stream:
                    await stream.send_all(hello)
                    while True:
                        batch = [await queue.receive()]
                        while len(batch) < _SEND_BATCH:
                            try:
                                batch.append(queue.receive_nowait())
                            except trio.WouldBlock:
                                break
                        data = b"".join(
                            codec.encode_frame(codec.FrameKind.PEER, codec.encode_message(m)) for m in batch
                        )
                        await stream.send_all(data)
                        self._stats["sent"] += len(batch)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                log.debug("%s: connection to %s lost: %s", self.node_id, peer, exc)

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


def _drain(queue: trio.MemoryReceiveChannel[Message]) -> int:
    count = 0
    while True:
        try:
            queue.receive_nowait()
        except trio.WouldBlock:
            return count
        count += 1
