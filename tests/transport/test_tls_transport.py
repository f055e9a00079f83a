"""TcpTransport under mutual TLS: a peer without a certificate of the cluster CA is refused before
any frame of it is decoded as Raft, even when it holds the cluster secret.

Real loopback sockets and real time (bounded), like test_tcp: TLS runs over the kernel's
sockets, where a mock clock would fire the handshake deadline while OpenSSL waits for bytes.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from raftnode.config import Address, ClusterConfig, parse_config
from raftnode.security import pki, tls
from raftnode.transport.greeting import Greeter
from raftnode.wire import codec

from .helpers import free_ports, wait_until
from .test_tcp import CREDENTIALS, Node, deliver_until_received, heartbeat

pytestmark = pytest.mark.trio


def cluster_pki(directory: Path, addresses: dict[str, Address]) -> ClusterConfig:
    """A cluster file in ``directory`` with these nodes and [tls], and its CA and certificates."""
    directory.mkdir(parents=True, exist_ok=True)
    nodes = "".join(
        f'[[nodes]]\nid = "{n}"\npeer = "{a}"\nclient = "127.0.0.1:{a.port + 1000}"\n' for n, a in addresses.items()
    )
    config = parse_config(f'[cluster]\nname = "test"\n[tls]\ndir = "tls"\n{nodes}', path=directory / "cluster.toml")
    pki.make_cluster_pki(config)
    return config


@pytest.fixture
def addresses() -> dict[str, Address]:
    return {n: Address("127.0.0.1", p) for n, p in zip(("n1", "n2", "n3"), free_ports(3))}


@pytest.fixture
def ours(tmp_path: Path, addresses: dict[str, Address]) -> ClusterConfig:
    return cluster_pki(tmp_path / "ours", addresses)


@pytest.fixture
def theirs(tmp_path: Path, addresses: dict[str, Address]) -> ClusterConfig:
    """Another cluster CA, with certificates for the same node ids and addresses."""
    return cluster_pki(tmp_path / "theirs", addresses)


@pytest.fixture
def decoded(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bytes]]:
    """Every payload decoded as a Raft message, in this process."""
    calls: list[bytes] = []
    real = codec.decode_message

    def counting(payload: bytes):  # noqa: ANN202
        calls.append(bytes(payload))
        return real(payload)

    monkeypatch.setattr(codec, "decode_message", counting)
    yield calls


def forged(config: ClusterConfig, node_id: str) -> tls.NodeTls:
    """``node_id``'s certificate of ``config``'s CA, presented by an attacker who does not care
    whom it talks to (it verifies nothing)."""
    client = tls.client_context(config, node_id)
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE
    return tls.NodeTls(tls.server_context(config, node_id), client)


def without_certificate(config: ClusterConfig) -> tls.NodeTls:
    """Contexts that trust the cluster CA but present no certificate."""
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.load_verify_locations(config.tls.ca)  # type: ignore[union-attr]
    return tls.NodeTls(tls.server_context(config, "n2"), client)


async def test_tls_transports_exchange_messages_both_ways(ours: ClusterConfig, addresses: dict[str, Address]) -> None:
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            n1 = Node("n1", addresses, nursery, credentials=CREDENTIALS, tls=tls.node_tls(ours, "n1"))
            n2 = Node("n2", addresses, nursery, credentials=CREDENTIALS, tls=tls.node_tls(ours, "n2"))
            await n1.start()
            await n2.start()
            await deliver_until_received(n1, n2, commit=7)
            await deliver_until_received(n2, n1, commit=8)
            assert n1.stats()["rejected_connections"] == n2.stats()["rejected_connections"] == 0
            nursery.cancel_scope.cancel()


async def send_as_forged_n2(n1_tls: tls.NodeTls, forged_tls: tls.NodeTls | None, addresses: dict[str, Address]) -> Node:
    """Start n1, and a forged n2 holding the cluster secret (stolen) with ``forged_tls``; let the
    forged n2 send heartbeats for a while; return n1."""
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            n1 = Node("n1", addresses, nursery, credentials=CREDENTIALS, tls=n1_tls)
            forged = Node("n2", addresses, nursery, credentials=CREDENTIALS, tls=forged_tls)
            await n1.start()
            await forged.start()
            for commit in range(15):
                forged.transport.send(heartbeat("n2", "n1", commit))  # type: ignore[union-attr]
                await trio.sleep(0.02)
            await wait_until(lambda: n1.stats()["rejected_connections"] >= 1 or bool(n1.received),
                             timeout=10, what="n1 to refuse or deliver the forged peer")
            nursery.cancel_scope.cancel()
    return n1


@pytest.mark.parametrize("credential", ["another CA", "no certificate (TLS)", "no TLS at all"])
async def test_a_peer_without_a_certificate_of_the_cluster_ca_is_refused_before_anything_is_decoded(
    credential: str, ours: ClusterConfig, theirs: ClusterConfig, addresses: dict[str, Address], decoded: list[bytes],
) -> None:
    forged_tls = {
        "another CA": lambda: forged(theirs, "n2"),
        "no certificate (TLS)": lambda: without_certificate(ours),
        "no TLS at all": lambda: None,
    }[credential]()
    n1 = await send_as_forged_n2(tls.node_tls(ours, "n1"), forged_tls, addresses)
    assert n1.received == [] and decoded == []
    assert n1.stats()["rejected_connections"] >= 1


async def test_a_certificate_of_the_cluster_must_name_the_node_the_hello_claims(
    ours: ClusterConfig, addresses: dict[str, Address], decoded: list[bytes],
) -> None:
    """n3's certificate (a real one of this cluster) does not make its holder n2."""
    n1 = await send_as_forged_n2(tls.node_tls(ours, "n1"), forged(ours, "n3"), addresses)
    assert n1.received == [] and decoded == []


def verification_off(config: ClusterConfig) -> tls.NodeTls:
    """PLANTED BUG: n1's port takes any certificate, or none."""
    server = tls.server_context(config, "n1")
    server.verify_mode = ssl.CERT_NONE
    return tls.NodeTls(server, tls.client_context(config, "n1"))


async def test_planted_bug_with_verification_off_the_same_forged_peer_gets_through(
    ours: ClusterConfig, theirs: ClusterConfig, addresses: dict[str, Address], decoded: list[bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With n1 verifying nothing, the certificate-name check still refuses the forged peer (it
    sees no verified certificate: defence in depth); with that check off too, the forged n2 of
    another CA gets its messages decoded and delivered -- what the refusal tests above catch."""
    n1 = await send_as_forged_n2(verification_off(ours), forged(theirs, "n2"), addresses)
    assert n1.received == [] and decoded == []

    monkeypatch.setattr(Greeter, "_check_certificate", lambda self, stream, node_id: None)
    n1 = await send_as_forged_n2(verification_off(ours), forged(theirs, "n2"), addresses)
    assert n1.received and decoded
    assert all(message.src == "n2" for message in n1.received)
