"""The peers' mutual authentication: an HMAC-SHA256 challenge-response over the cluster secret.

On a new peer connection, before any frame is decoded as Raft::

    connector -> acceptor   HELLO      node id, cluster name, cluster id, nonce_c (32 random bytes)
    acceptor  -> connector  CHALLENGE  nonce_a, proof("accept")
    connector -> acceptor   PROOF      proof("connect")

where ``proof(role) = HMAC(secret, role | cluster id | connector | acceptor | nonce_c | nonce_a)``.
Each side proves it holds the secret over a nonce the other side just drew (``secrets``), so a
recorded handshake cannot be replayed and a proof cannot be reflected (the role differs); proofs
are compared with ``hmac.compare_digest``. Pure functions, no I/O: ``TcpTransport`` drives them.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from ..wire.framing import CodecError

__all__ = ["NONCE_BYTES", "decode_challenge", "decode_proof", "encode_challenge", "encode_proof", "new_nonce", "proof", "verify"]

NONCE_BYTES = 32
_PROOF_BYTES = hashlib.sha256().digest_size  # 32


def new_nonce() -> bytes:
    return secrets.token_bytes(NONCE_BYTES)


def proof(secret: bytes, role: str, cluster_id: str, connector: str, acceptor: str, nonce_c: bytes, nonce_a: bytes) -> bytes:
    """The HMAC one side sends; ``role`` is ``"accept"`` (acceptor's) or ``"connect"`` (connector's)."""
    fields = (role.encode(), cluster_id.encode(), connector.encode(), acceptor.encode(), nonce_c, nonce_a)
    message = b"".join(len(f).to_bytes(2, "big") + f for f in fields)
    return hmac.new(secret, message, hashlib.sha256).digest()


def verify(expected: bytes, received: bytes) -> bool:
    return hmac.compare_digest(expected, received)


def encode_challenge(nonce: bytes, acceptor_proof: bytes) -> bytes:
    return nonce + acceptor_proof


def decode_challenge(payload: bytes) -> tuple[bytes, bytes]:
    """``(nonce_a, acceptor's proof)``; CodecError if the payload is not exactly both."""
    if len(payload) != NONCE_BYTES + _PROOF_BYTES:
        raise CodecError(f"CHALLENGE: expected {NONCE_BYTES + _PROOF_BYTES} bytes, got {len(payload)}")
    return bytes(payload[:NONCE_BYTES]), bytes(payload[NONCE_BYTES:])


def encode_proof(connector_proof: bytes) -> bytes:
    return connector_proof


def decode_proof(payload: bytes) -> bytes:
    if len(payload) != _PROOF_BYTES:
        raise CodecError(f"PROOF: expected {_PROOF_BYTES} bytes, got {len(payload)}")
    return bytes(payload)
