"""Opening a peer connection, both ends: TLS first (with ``[tls]``), then the HELLO and the HMAC
challenge-response (``raftnode.transport.handshake``), before anything is decoded as Raft.

With TLS, the connector verifies the acceptor's certificate against the address it dialled, the
acceptor requires a certificate signed by the cluster CA, and the name in that certificate must
be the node id the HELLO claims: a peer without a valid certificate never gets past
``Greeter.accept``. The frames of the exchange are at most ``HANDSHAKE_FRAME_BYTES``.
"""

from __future__ import annotations

import trio

from ..config import Address
from ..wire import codec
from . import handshake

__all__ = ["HANDSHAKE_FRAME_BYTES", "Greeter", "PeerProtocolError"]

#: The largest frame a connection may send before it has authenticated.
HANDSHAKE_FRAME_BYTES = 4096


class PeerProtocolError(Exception):
    """A peer broke the wire protocol (not a codec error: a well-formed frame that is not allowed)."""


class Greeter:
    """One node's side of every connection's opening.

    ``secret``: the HMAC key (None: no challenge-response); ``peers``: the node ids accepted, a
    live view; ``tls``: the node's server and client contexts (``raftnode.security.tls.NodeTls``) or None.
    """

    def __init__(self, node_id: str, cluster: str, cluster_id: str, secret: bytes | None,
                 peers: dict[str, Address], tls: object | None = None) -> None:
        self.node_id = node_id
        self.cluster = cluster
        self.cluster_id = cluster_id
        self.secret = secret
        self.peers = peers
        self.tls = tls

    async def secure_outgoing(self, stream: trio.SocketStream, address: Address) -> trio.abc.Stream:
        """``stream`` under TLS to the node at ``address`` (as it is without [tls])."""
        if self.tls is None:
            return stream
        secure = trio.SSLStream(stream, self.tls.client, server_hostname=address.host)  # type: ignore[attr-defined]
        await _tls_handshake(secure, f"the node at {address}")
        return secure

    async def secure_incoming(self, stream: trio.SocketStream) -> trio.abc.Stream:
        """``stream`` under TLS with a client certificate of the cluster CA (as it is without [tls])."""
        if self.tls is None:
            return stream
        secure = trio.SSLStream(stream, self.tls.server, server_side=True)  # type: ignore[attr-defined]
        await _tls_handshake(secure, "a peer")
        return secure

    async def connect(self, stream: trio.abc.Stream, peer_id: str) -> bytes:
        """Open a connection to ``peer_id``: returns what still has to be sent before Raft messages
        (the HELLO without authentication, else the PROOF after ``peer_id`` proved itself)."""
        nonce = handshake.new_nonce() if self.secret is not None else b""
        hello = codec.encode_frame(
            codec.FrameKind.HELLO, codec.encode_hello(self.node_id, self.cluster, self.cluster_id, nonce)
        )
        if self.secret is None:
            return hello
        await stream.send_all(hello)
        frame = await next_frame(stream, codec.FrameDecoder(max_frame_bytes=HANDSHAKE_FRAME_BYTES))
        if frame.kind != codec.FrameKind.CHALLENGE:
            raise PeerProtocolError(f"expected a CHALLENGE, got {frame.kind.name}")
        their_nonce, their_proof = handshake.decode_challenge(frame.payload)
        expected = handshake.proof(self.secret, "accept", self.cluster_id, self.node_id, peer_id, nonce, their_nonce)
        if not handshake.verify(expected, their_proof):
            raise PeerProtocolError("the peer did not prove it holds the cluster secret")
        mine = handshake.proof(self.secret, "connect", self.cluster_id, self.node_id, peer_id, nonce, their_nonce)
        return codec.encode_frame(codec.FrameKind.PROOF, handshake.encode_proof(mine))

    async def accept(self, stream: trio.abc.Stream, decoder: codec.FrameDecoder) -> str:
        """The authenticated id of the node that opened ``stream``; PeerProtocolError or CodecError if none."""
        hello = self._check_hello(await next_frame(stream, decoder))
        self._check_certificate(stream, hello.node_id)
        if self.secret is None:
            return hello.node_id
        if len(hello.nonce) != handshake.NONCE_BYTES:
            raise PeerProtocolError(f"HELLO from {hello.node_id} without a nonce: this cluster authenticates its peers")
        nonce = handshake.new_nonce()
        mine = handshake.proof(self.secret, "accept", self.cluster_id, hello.node_id, self.node_id, hello.nonce, nonce)
        await stream.send_all(codec.encode_frame(codec.FrameKind.CHALLENGE, handshake.encode_challenge(nonce, mine)))
        frame = await next_frame(stream, decoder)
        if frame.kind != codec.FrameKind.PROOF:
            raise PeerProtocolError(f"expected a PROOF from {hello.node_id}, got {frame.kind.name}")
        expected = handshake.proof(self.secret, "connect", self.cluster_id, hello.node_id, self.node_id, hello.nonce, nonce)
        if not handshake.verify(expected, handshake.decode_proof(frame.payload)):
            raise PeerProtocolError(f"a connection claiming to be {hello.node_id} did not prove it holds the cluster secret")
        return hello.node_id

    def _check_certificate(self, stream: trio.abc.Stream, node_id: str) -> None:
        """Under TLS, the peer's certificate must name the node its HELLO claims to be."""
        if self.tls is None:
            return
        from ..security.tls import certificate_name

        name = certificate_name(stream)  # trio.SSLStream offers getpeercert()
        if name != node_id:
            raise PeerProtocolError(f"HELLO from {node_id} over TLS with the certificate of {name!r}")

    def _check_hello(self, frame: codec.Frame) -> codec.Hello:
        if frame.kind != codec.FrameKind.HELLO:
            raise PeerProtocolError(f"the first frame must be HELLO, got {frame.kind.name}")
        hello = codec.decode_hello(frame.payload)
        if hello.cluster != self.cluster:
            raise PeerProtocolError(f"HELLO from cluster {hello.cluster!r}, this is {self.cluster!r}")
        if hello.cluster_id != self.cluster_id:
            raise PeerProtocolError(
                f"HELLO from {hello.node_id} of cluster id {hello.cluster_id!r}, this cluster's id is {self.cluster_id!r}"
            )
        if hello.node_id not in self.peers:
            raise PeerProtocolError(
                f"HELLO from unknown node {hello.node_id!r}; known: {', '.join(sorted(self.peers))}"
            )
        return hello


async def _tls_handshake(stream: trio.SSLStream, whom: str) -> None:
    """The TLS handshake; PeerProtocolError naming ``whom`` and OpenSSL's reason if it fails."""
    try:
        await stream.do_handshake()
    except trio.BrokenResourceError as exc:
        from ..security.tls import failure_reason

        raise PeerProtocolError(f"TLS handshake with {whom} failed: {failure_reason(exc)}") from None


async def next_frame(stream: trio.abc.ReceiveStream, decoder: codec.FrameDecoder) -> codec.Frame:
    """The next frame of a connection in its handshake: read at most one small chunk at a time."""
    frames = decoder.feed(b"", max_frames=1)
    while not frames:
        data = await stream.receive_some(HANDSHAKE_FRAME_BYTES)
        if not data:
            raise PeerProtocolError("the connection closed during the handshake")
        frames = decoder.feed(data, max_frames=1)
    return frames[0]

