"""A 3-node cluster under mutual TLS, as a user runs it: ``raftctl init --tls``, ``up``,
``run-command``, ``status``, the leader killed and a new one committing; a plaintext client (and a
raftctl whose cluster file lacks [tls]) refused with an error that says why."""

from __future__ import annotations

import json
from pathlib import Path

from raftnode import wire
from raftnode.config import load_config
from raftnode.syncclient import SyncClusterClient

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
