"""Two cluster directories initialised on the same ports: the second ``raftctl up`` refuses the
ports, naming the node of the other cluster, and none of its commands reaches that cluster."""

from __future__ import annotations

import json
from pathlib import Path

from raftnode.security.credentials import load_credentials, secrets_path

from .raftctl_harness import Cluster, cluster, cluster_text, deadline


def test_a_second_cluster_on_the_same_ports_is_refused_by_name_and_never_answered(tmp_path: Path) -> None:
    text = cluster_text(3)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    with deadline(45), cluster(tmp_path / "a") as first:
        first.config.write_text(text)  # the same ports in both directories
        second = Cluster(tmp_path / "b", tmp_path / "b" / "cluster.toml")
        second.config.write_text(text)
        try:
            first.cli("up")
            assert first.cli("run-command", "incr 5").stdout.startswith("5")
            first_id = load_credentials(secrets_path(first.dir / "state")).cluster_id

            refused = second.cli("up", code=2)
            assert "of another cluster" in refused.stderr and first_id in refused.stderr, refused.stderr
            assert "node n1" in refused.stderr
            second_id = load_credentials(secrets_path(second.dir / "state")).cluster_id
            assert second_id != first_id

            # Its commands carry its own cluster id: the first cluster's nodes answer none of them.
            second.cli("run-command", "incr 7", "--timeout", "1", code=5)
            assert json.loads(first.cli("query", "get", "--json").stdout)["result"] == 5
        finally:
            second.close()
