"""TLS contexts from a cluster's ``[tls]`` table: mutual TLS with the cluster's own CA.

Both ends of every connection present a certificate signed by the cluster CA (``ca.crt``) and
check the other's: a node's peer port and client port require one (``server_context``), and a
connecting node or client verifies the node's certificate against the address it dialled
(``client_context``; node certificates carry their addresses, ``raftnode.security.pki``). A node
additionally checks that a peer's certificate names the node its HELLO claims to be
(``certificate_name``). TLS 1.2 at least.

Every problem with the files raises ``ConfigError`` naming the cluster file, ``tls.dir`` and the
file: missing, unreadable, a key open to other users, not a certificate, a key that does not
match; ``check_certificates`` (a node at start: it imports ``cryptography``) adds expired, not
yet valid and not signed by the cluster CA. Standard library only otherwise (raftctl's one-shot
commands import this).
"""

from __future__ import annotations

import os
import ssl
import stat
from dataclasses import dataclass
from pathlib import Path

from ..config import ClusterConfig, ConfigError, TlsConfig

__all__ = ["NodeTls", "certificate_name", "check_certificates", "client_context", "failure_reason", "node_tls",
           "server_context"]

_KEY = "tls.dir"
_FIX = "`raftctl init --tls` makes it"


@dataclass(frozen=True, slots=True)
class NodeTls:
    """A node's two contexts: ``server`` for its ports, ``client`` for its connections to peers."""

    server: ssl.SSLContext
    client: ssl.SSLContext


def node_tls(config: ClusterConfig, node_id: str) -> NodeTls | None:
    """The TLS contexts of node ``node_id`` (None if the cluster has no [tls]); ConfigError as above."""
    if config.tls is None:
        return None
    check_certificates(config, node_id)
    return NodeTls(server_context(config, node_id), client_context(config, node_id))


def server_context(config: ClusterConfig, node_id: str) -> ssl.SSLContext:
    """What node ``node_id`` listens with: its certificate; a client certificate from the CA required."""
    tls = _tls(config)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    _load(config, context, tls, tls.node_cert(node_id), tls.node_key(node_id))
    return context


def client_context(config: ClusterConfig, node_id: str | None = None) -> ssl.SSLContext:
    """What a node (``node_id``) or a client (None: ``client.crt``) connects with; it verifies the
    node's certificate against the address dialled."""
    tls = _tls(config)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # check_hostname and CERT_REQUIRED
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if node_id is None:
        _load(config, context, tls, tls.client_cert, tls.client_key)
    else:
        _load(config, context, tls, tls.node_cert(node_id), tls.node_key(node_id))
    return context


def certificate_name(connection: object) -> str | None:
    """The common name of the verified certificate the other end of ``connection`` (an
    ``ssl.SSLObject``, ``ssl.SSLSocket`` or ``trio.SSLStream``) presented; None: none."""
    certificate = connection.getpeercert()  # type: ignore[attr-defined]
    for rdn in (certificate or {}).get("subject", ()):
        for name, value in rdn:
            if name == "commonName":
                return value
    return None


def failure_reason(exc: BaseException) -> str:
    """Why a TLS handshake failed, from trio's BrokenResourceError (its cause is the ssl error)."""
    cause = exc.__cause__ or exc
    return str(getattr(cause, "verify_message", None) or getattr(cause, "reason", None) or cause or "connection lost")


def check_certificates(config: ClusterConfig, node_id: str | None = None) -> None:
    """Check the CA and the certificate of ``node_id`` (or the client's) beyond what ``ssl`` does
    when it loads them: within their validity period, and signed by the cluster CA."""
    import datetime

    from cryptography import x509

    tls = _tls(config)
    cert_path = tls.client_cert if node_id is None else tls.node_cert(node_id)
    now = datetime.datetime.now(datetime.timezone.utc)
    ca = _certificate(config, tls.ca, x509)
    for path, certificate in ((tls.ca, ca), (cert_path, _certificate(config, cert_path, x509))):
        if certificate.not_valid_after_utc < now:
            raise _fail(config, path, f"the certificate expired on {certificate.not_valid_after_utc:%Y-%m-%d %H:%M} UTC")
        if certificate.not_valid_before_utc > now:
            raise _fail(config, path, f"the certificate is not valid before {certificate.not_valid_before_utc:%Y-%m-%d %H:%M} UTC")
        try:
            certificate.verify_directly_issued_by(ca)
        except Exception as exc:  # noqa: BLE001 - InvalidSignature, ValueError (another key type), TypeError
            raise _fail(config, path, f"the certificate is not signed by the cluster CA {tls.ca} ({type(exc).__name__})") from None


def _certificate(config: ClusterConfig, path: Path, x509):  # noqa: ANN001, ANN202 - x509 module passed in
    data = _read(config, path)
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError:
        raise _fail(config, path, "not a PEM certificate") from None


def _tls(config: ClusterConfig) -> TlsConfig:
    if config.tls is None:
        raise ConfigError(config.path, "tls", "the cluster has no [tls] table")
    return config.tls


def _fail(config: ClusterConfig, path: Path, reason: str) -> ConfigError:
    return ConfigError(config.path, _KEY, f"{path}: {reason}")


def _read(config: ClusterConfig, path: Path, *, private: bool = False) -> bytes:
    try:
        with open(path, "rb") as f:
            mode = os.fstat(f.fileno()).st_mode
            if private and mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise _fail(config, path, f"the private key is accessible to other users (mode {stat.S_IMODE(mode):o}); "
                                          f"run `chmod 600 {path}`")
            return f.read(1 << 20)
    except FileNotFoundError:
        raise _fail(config, path, f"file not found ({_FIX})") from None
    except IsADirectoryError:
        raise _fail(config, path, "is a directory, not a PEM file") from None
    except OSError as exc:
        raise _fail(config, path, f"cannot read: {exc.strerror or exc}") from None


def _load(config: ClusterConfig, context: ssl.SSLContext, tls: TlsConfig, cert: Path, key: Path) -> None:
    """The CA to verify with and the certificate and key to present, each file checked first."""
    ca_data = _read(config, tls.ca)
    try:
        context.load_verify_locations(cadata=ca_data.decode("ascii", "replace"))
    except (ssl.SSLError, ValueError):
        raise _fail(config, tls.ca, "not a PEM certificate (the cluster CA)") from None
    _read(config, cert)
    _read(config, key, private=True)
    try:
        context.load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        reason = "the key does not match the certificate" if "MISMATCH" in str(exc) else "not a PEM certificate and key"
        raise _fail(config, cert, f"{reason} ({key.name}): {exc.reason or exc}") from None
