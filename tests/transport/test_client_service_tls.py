"""The client endpoint under TLS, with both clients: the trio ClusterClient and the blocking
SyncClusterClient (TLS over memory buffers) commit through it; a plaintext client is told the
node serves TLS only; a TLS client without a certificate of the cluster CA gets nothing."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trio

from raftnode.client.syncclient import SyncClusterClient
from raftnode.client.trioclient import ClusterClient, NodeUnreachable
from raftnode.config import Address, ClusterConfig
from raftnode.security import tls
from raftnode.wire import requests as wire

from .helpers import wait_until
from .test_client_service import endpoint
from .test_tls_transport import cluster_pki

pytestmark = pytest.mark.trio


def certificates(tmp_path: Path, name: str = "ours") -> ClusterConfig:
    """A CA and a certificate for node n1 (whose client port the endpoint takes) and for clients."""
    return cluster_pki(tmp_path / name, {"n1": Address("127.0.0.1", 1)})


async def test_both_clients_commit_over_tls_and_others_are_refused(tmp_path: Path) -> None:
    config = certificates(tmp_path)
    other = certificates(tmp_path, "theirs")
    async with endpoint(tls=tls.server_context(config, "n1"), handshake_timeout=2.0) as e:
        async with ClusterClient({"n1": e.address}, tls=tls.client_context(config)) as client:
            assert (await client.run_command("incr 2", timeout=5)).response["result"] == 2

        def blocking(context: ssl.SSLContext | None) -> dict | Exception:
            with SyncClusterClient({"n1": e.address}, tls=context, sessions=False) as sync:
                return sync.call_each({"n1": wire.command_request("incr 3", timeout=5)}, timeout=5)["n1"]

        answer = await trio.to_thread.run_sync(blocking, tls.client_context(config))
        assert isinstance(answer, dict) and answer["result"] == 5, answer

        plain = await trio.to_thread.run_sync(blocking, None)
        assert "node n1 serves clients over TLS only" in str(plain)
        foreign = await trio.to_thread.run_sync(blocking, tls.client_context(other))
        assert "TLS handshake failed" in str(foreign) and "certificate" in str(foreign)
        anonymous = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        anonymous.load_verify_locations(config.tls.ca)  # type: ignore[union-attr]
        refused = await trio.to_thread.run_sync(blocking, anonymous)
        assert "closed the connection right after the TLS handshake" in str(refused)

        async with ClusterClient({"n1": e.address}, tls=tls.client_context(other)) as client:
            with pytest.raises(NodeUnreachable, match="TLS handshake failed"):
                await client.call("n1", wire.Status(), timeout=5)
        await wait_until(lambda: e.service.stats["refused_client_connections"] >= 4, what="4 refusals counted")
        assert e.node.status().commit_index >= 2  # nothing else reached the node
