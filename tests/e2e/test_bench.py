"""`raftctl bench` against a real 3-node cluster on loopback: what it acknowledges is exactly what
the replicated counter gained, read back through the cluster with a linearizable query."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .raftctl_harness import Cluster, cluster, deadline


@pytest.fixture
def three(tmp_path: Path) -> Iterator[Cluster]:
    with cluster(tmp_path, 3) as c:
        yield c


def counter(c: Cluster) -> int:
    return int(c.json("query", "get")["result"])


def test_bench_acknowledges_exactly_what_the_counter_gained(three: Cluster) -> None:
    with deadline(60):
        three.cli("up")
        before = counter(three)

        report = three.json("bench", "--count", "200", "--in-flight", "8")
        assert report["acknowledged"] == 200 == report["issued"]
        assert report["errors"] == report["timeouts"] == report["lost"] == report["unanswered"] == 0
        assert not report["stalled"]
        assert report["connections"] == 4 and report["in_flight"] == 8
        assert report["throughput"] > 0 and report["seconds"] > 0
        lat = report["latency_ms"]
        assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
        cpu = report["cpu_seconds"]
        assert sorted(cpu["nodes"]) == ["n1", "n2", "n3"]
        assert all(isinstance(v, float) and v >= 0 for v in cpu["nodes"].values())
        assert cpu["client"] >= 0
        after = counter(three)  # a query reads without a log entry
        assert after - before == report["acknowledged"]

        logged = max(row["last_index"] for row in three.status()["nodes"])
        reads = three.json("bench", "--count", "300", "--in-flight", "16", "--command", "get")
        assert reads["acknowledged"] == 300 and reads["errors"] == 0 and reads["mix"][0]["op"] == "query"
        assert max(row["last_index"] for row in three.status()["nodes"]) == logged  # no entry per read
        assert counter(three) == after

        mixed = three.json("bench", "--count", "60", "--in-flight", "4", "--command", "2:incr 3", "--command", "get")
        assert mixed["acknowledged"] == 60
        assert set(mixed["per_command"]) == {"incr 3", "get"}
        assert counter(three) - after == 3 * mixed["per_command"]["incr 3"]

        human = three.cli("bench", "--duration", "0.5", "--in-flight", "2").stdout
        assert "commands/s" in human and "p99" in human and "CPU seconds" in human


def test_bench_runs_in_sessions_on_a_cluster_whose_clients_need_the_client_token(tmp_path: Path) -> None:
    """With ``client_auth = true`` even the session registration carries the client token (it
    once went without, and bench failed at once: "register_session needs the client token")."""
    with cluster(tmp_path, 3) as c, deadline(60):
        c.config.write_text(c.config.read_text().replace("heartbeat_ms = 50\n", "heartbeat_ms = 50\nclient_auth = true\n"))
        c.cli("up")
        before = counter(c)
        report = c.json("bench", "--count", "100", "--in-flight", "8")
        assert report["acknowledged"] == 100 and report["errors"] == 0
        assert counter(c) - before == 100
