"""A 3-node cluster under mutual TLS, as a user runs it: ``raftctl init --tls``, ``up``,
``run-command``, ``status``, the leader killed and a new one committing; a plaintext client (and a
raftctl whose cluster file lacks [tls]) refused with an error that says why. And a cluster bound
to 0.0.0.0: refused without peer authentication, running with it, TLS and tokens."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from raftnode.client.syncclient import SyncClusterClient
from raftnode.config import Address, load_config
from raftnode.security.credentials import load_credentials, secrets_path
from raftnode.security.tls import client_context
from raftnode.wire import requests as wire

from .processes import free_ports
from .raftctl_harness import Cluster, deadline, free_base_port


def test_a_tls_cluster_runs_survives_its_leader_and_refuses_plaintext_clients(tmp_path: Path) -> None:
    c = Cluster(tmp_path, tmp_path / "cluster.toml")
    try:
        with deadline(150):
            init = c.process("init", "--tls", "--base-port", str(free_base_port(3)))
            assert init.returncode == 0, init.stderr
            assert "TLS CA and certificates in" in init.stdout
            config = load_config(c.config)
            assert config.tls is not None and (config.tls.dir / "node-n3.crt").exists()

            up = c.process("up", "--json", timeout=60)
            assert up.returncode == 0, up.stderr + c.logs_tail()
            first = json.loads(up.stdout)["status"]["leader"]
            done = c.process("run-command", "incr 5", "--json")
            assert done.returncode == 0 and json.loads(done.stdout)["result"] == 5, done.stderr
            status = json.loads(c.process("status", "--json").stdout)
            assert [row["alive"] for row in status["nodes"]] == [True] * 3

            killed = c.process("kill", first)
            assert killed.returncode == 0, killed.stderr
            after = c.process("run-command", "incr 1", "--timeout", "30", "--json", timeout=60)
            assert after.returncode == 0, after.stderr + c.logs_tail()
            assert json.loads(after.stdout)["result"] == 6
            assert json.loads(after.stdout)["node"] != first

            # A client without TLS: the node answers once, in plaintext, that it serves TLS only.
            with SyncClusterClient(config.client_addresses()) as plain:
                answers = plain.call_each({n: wire.Status() for n in config.node_ids if n != first}, timeout=5)
            for answer in answers.values():
                assert "serves clients over TLS only" in str(answer), answer
            # raftctl with a cluster file that has no [tls]: status says why each node refuses it.
            plain_file = tmp_path / "plain.toml"
            plain_file.write_text(c.config.read_text().replace("enabled = true", "enabled = false"))
            refused = Cluster(tmp_path, plain_file).process("status")
            assert refused.returncode == 2, refused.stdout + refused.stderr
            assert "run but refuse this client" in refused.stderr and "serves clients over TLS only" in refused.stderr
    finally:
        c.close()


def test_a_cluster_on_0_0_0_0_refuses_to_start_without_credentials_and_runs_with_tls_and_tokens(tmp_path: Path) -> None:
    """Nodes bound to every interface: without peer authentication raftctl refuses to start them,
    naming cluster.peer_auth; with it, [tls] and client_auth they run, and a client on 127.0.0.1
    needs the CA, a client certificate and the client token."""
    ports = free_ports(6)
    nodes = "".join(f'[[nodes]]\nid = "n{k + 1}"\npeer = "0.0.0.0:{ports[k]}"\nclient = "0.0.0.0:{ports[3 + k]}"\n\n'
                    for k in range(3))
    exposed = ('[cluster]\nname = "open"\nstate_dir = "state"\npeer_auth = false\nclient_auth = true\n\n'
               '[tls]\nenabled = true\n\n' + nodes)
    c = Cluster(tmp_path, tmp_path / "cluster.toml")
    c.config.write_text(exposed)
    try:
        with deadline(120):
            refused = c.process("up")
            assert refused.returncode == 2, refused.stdout + refused.stderr
            assert "cluster.peer_auth: node n1 binds a non-loopback address" in refused.stderr
            assert "set peer_auth = true" in refused.stderr and not (tmp_path / "state" / "pids").exists()

            c.config.write_text(exposed.replace("peer_auth = false", "peer_auth = true"))
            up = c.process("up", timeout=60)  # makes the secrets and, for [tls], the certificates
            assert up.returncode == 0, up.stderr + c.logs_tail()
            config = load_config(c.config)
            local = {n.id: Address("127.0.0.1", n.client.port) for n in config.nodes}
            credentials = load_credentials(secrets_path(config.state_dir))
            with SyncClusterClient(local, tls=client_context(config), fields=credentials.client_fields(admin=False)) as client:
                assert client.run_command("incr 3", timeout=20).response["result"] == 3
            with SyncClusterClient(local, tls=client_context(config), sessions=False) as tokenless:
                answer = tokenless.call("n1", wire.Status(), timeout=5)
                assert answer["ok"] is False and "needs the client token" in answer["error"]
            with SyncClusterClient(local, sessions=False) as plain:
                assert "serves clients over TLS only" in str(plain.call_each({"n1": wire.Status()}, timeout=5)["n1"])
            with socket.create_connection(("127.0.0.2", config.nodes[0].client.port), timeout=5):
                pass  # bound to every interface indeed: another loopback address reaches it
    finally:
        c.close()
