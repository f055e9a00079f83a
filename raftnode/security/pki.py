"""A cluster's certificates: a CA of its own, and a certificate and key per node and for clients.

``raftctl init --tls`` calls ``make_cluster_pki``; ``raftctl add-node`` calls ``issue_node`` for
the new node. The files (names from ``raftnode.config.TlsConfig``) are PEM; every private key is
written mode 0600 and created exclusively, so an existing key is never overwritten. Node
certificates name the node (common name = node id) and carry its addresses as subject
alternative names (an IP address as an IP, a host name as DNS), plus 127.0.0.1 and localhost so
that a client on the node's host can always verify it; they serve as both server and client
certificates (peer links are mutual). Needs the ``cryptography`` package; nothing on a node's hot
path imports this module.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Iterable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..config import ClusterConfig, TlsConfig

__all__ = ["CLIENT_NAME", "CERT_DAYS", "issue_node", "make_cluster_pki"]

#: The common name of the client certificate raftctl (and user programs) present.
CLIENT_NAME = "raftctl"
#: How long the certificates ``raftctl init --tls`` makes are valid.
CERT_DAYS = 825
_CA_DAYS = 3650


def make_cluster_pki(config: ClusterConfig) -> list[Path]:
    """Make the CA, each node's certificate and the client certificate in ``config.tls.dir``.

    Files that exist are kept (a second ``init --tls`` adds what is missing); returns the files
    written. Raises ValueError if ``config`` has no ``[tls]`` table.
    """
    tls = _tls_of(config)
    tls.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    written = []
    if not tls.ca.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        _write_key(tls.ca_key, key)
        _write_cert(tls.ca, _ca_certificate(config.name, key))
        written += [tls.ca_key, tls.ca]
    for node in config.nodes:
        if not tls.node_cert(node.id).exists():
            written += issue_node(config, node.id, [node.peer.host, node.client.host])
    if not tls.client_cert.exists():
        written += _issue(tls, CLIENT_NAME, tls.client_cert, tls.client_key, ())
    return written


def issue_node(config: ClusterConfig, node_id: str, hosts: Iterable[str]) -> list[Path]:
    """Sign a certificate for ``node_id`` reachable at ``hosts`` with the cluster CA; the files written."""
    tls = _tls_of(config)
    return _issue(tls, node_id, tls.node_cert(node_id), tls.node_key(node_id), hosts)


def _tls_of(config: ClusterConfig) -> TlsConfig:
    if config.tls is None:
        raise ValueError(f"{config.path}: has no [tls] table")
    return config.tls


def _issue(tls: TlsConfig, name: str, cert_path: Path, key_path: Path, hosts: Iterable[str]) -> list[Path]:
    ca_key = serialization.load_pem_private_key(tls.ca_key.read_bytes(), password=None)
    ca_cert = x509.load_pem_x509_certificate(tls.ca.read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CERT_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    )
    names = _alt_names(hosts)
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    _write_key(key_path, key)
    _write_cert(cert_path, builder.sign(ca_key, hashes.SHA256()))
    return [key_path, cert_path]


def _alt_names(hosts: Iterable[str]) -> list[x509.GeneralName]:
    """Each host as an IP or DNS name, with 127.0.0.1 and localhost; none for a client (no hosts)."""
    hosts = list(hosts)
    if not hosts:
        return []
    names: list[x509.GeneralName] = []
    for host in [*hosts, "127.0.0.1", "localhost"]:
        try:
            name: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
        except ValueError:
            name = x509.DNSName(host)
        if name not in names:
            names.append(name)
    return names


def _ca_certificate(cluster: str, key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"raftctl cluster CA ({cluster})"[:64])])
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=_CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                          encipher_only=False, decipher_only=False),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
