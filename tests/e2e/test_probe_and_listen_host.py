"""The container probe (`python -m raftnode.probe`) tells a ready node from a dead one, and
`raftnode --listen-host` listens where it is told, at the ports of the cluster file."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from raftnode.client.clientproto import NodeUnreachable
from raftnode.client.syncclient import SyncClusterClient
from raftnode.config import Address, load_config
from raftnode.security.credentials import ensure_credentials, secrets_path

from .raftctl_harness import REPO, cluster, deadline

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="127.0.0.2 is a loopback address on Linux")


def probe(config: Path, port: int, *ready: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "raftnode.probe", "--config", str(config), "--port", str(port), *ready],
        capture_output=True, text=True, timeout=30, env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def test_probe_passes_on_a_ready_node_and_fails_on_a_killed_one(tmp_path: Path) -> None:
    with deadline(90), cluster(tmp_path, nodes=3) as c:
        c.cli("up")
        port = load_config(c.config).node("n2").client.port
        assert probe(c.config, port, "--ready").returncode == 0
        assert probe(c.config, port).returncode == 0
        c.cli("kill", "n2")
        dead = probe(c.config, port)
        assert dead.returncode == 1 and "no answer" in dead.stderr


def answer_when_up(address: Address, fields: dict[str, str], node: subprocess.Popen[bytes]) -> dict:
    """The node's status once it answers at ``address`` (it is starting); fails if it exits."""
    while True:
        with SyncClusterClient({"n1": address}, connect_timeout=0.5, fields=fields) as client:
            try:
                return client.call("n1", {"op": "status"}, timeout=5)
            except NodeUnreachable:
                assert node.poll() is None, node.stderr.read().decode() if node.stderr else ""
        time.sleep(0.05)


def test_listen_host_moves_the_listening_address(tmp_path: Path) -> None:
    with deadline(60), cluster(tmp_path, nodes=1) as c:
        config = load_config(c.config)
        ensure_credentials(secrets_path(config.state_dir))
        node = subprocess.Popen(
            [sys.executable, "-m", "raftnode", "--config", str(c.config), "--node", "n1", "--listen-host", "127.0.0.2"],
            env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        try:
            port = config.node("n1").client.port
            fields = {"cluster_id": ensure_credentials(secrets_path(config.state_dir))[0].cluster_id}
            assert answer_when_up(Address("127.0.0.2", port), fields, node)["node"] == "n1"
            with SyncClusterClient({"n1": Address("127.0.0.1", port)}, connect_timeout=0.5, fields=fields) as client:
                with pytest.raises(NodeUnreachable):
                    client.call("n1", {"op": "status"}, timeout=1)
        finally:
            node.terminate()
            node.wait(timeout=20)
