"""The pure parts of ``benchmarks/etcd_peer.py`` (what is missing, the load generator's output
read as a report), and the comparison's one-line skip where etcd cannot run: none needs etcd or
Go installed."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from .benchmark_scripts import BENCHMARKS, load_benchmark


@pytest.fixture(scope="module")
def peer() -> ModuleType:
    return load_benchmark("etcd_peer")


def load_output(**changes: Any) -> dict[str, Any]:
    document = {
        "endpoint": "http://127.0.0.1:2379", "leader": "8e9e05c52164694d", "in_flight": 4, "connections": 4,
        "seconds": 2.0, "acknowledged": 4, "errors": 1, "error_samples": ["context deadline exceeded"],
        "warmup_acknowledged": 10, "latencies_us": [1000, 4000, 2000, 3000],
    }
    document.update(changes)
    return document


def test_the_load_generator_source_is_there_and_no_binary_is(peer: ModuleType) -> None:
    assert peer.LOAD_SOURCE == BENCHMARKS / "etcd_load" / "main.go" and peer.LOAD_SOURCE.is_file()
    assert '"go.etcd.io/etcd/clientv3"' in peer.LOAD_SOURCE.read_text()
    assert sorted(p.name for p in peer.LOAD_SOURCE.parent.iterdir()) == ["main.go"]


def test_unavailable_names_what_is_missing_and_the_packages(peer: ModuleType, tmp_path: Path) -> None:
    (tmp_path / "src" / peer.CLIENT_PACKAGE).mkdir(parents=True)
    assert peer.unavailable(lambda name: f"/usr/bin/{name}", tmp_path) is None
    no_go = peer.unavailable(lambda name: None if name == "go" else f"/usr/bin/{name}", tmp_path)
    assert no_go == f"go not found (apt-get install {peer.APT_PACKAGES})"
    nothing = peer.unavailable(lambda name: None, tmp_path / "elsewhere")
    assert nothing.startswith("etcd and go and etcd's client sources (") and "golang-etcd-server-dev" in nothing
    assert "\n" not in nothing


def test_parse_load_output_gives_the_report_shape_the_comparison_reads(peer: ModuleType) -> None:
    report = peer.parse_load_output(json.dumps(load_output()) + "\n")
    assert report["throughput"] == 2.0  # 4 answers in the 2 s window
    assert report["latency_ms"] == {"p50": 2.0, "p90": 4.0, "p99": 4.0, "max": 4.0, "mean": 2.5}
    assert report["errors"] == 1 and report["error_samples"] == ["context deadline exceeded"]
    assert report["in_flight"] == 4 and report["warmup_acknowledged"] == 10 and report["lost"] == 0
    empty = peer.parse_load_output(json.dumps(load_output(acknowledged=0, latencies_us=[])))
    assert empty["throughput"] == 0.0 and empty["latency_ms"]["p50"] is None


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("etcd_load: no leader", "did not print JSON"),
        ("[1, 2]", "not an object"),
        (json.dumps(load_output(acknowledged=-1)), "'acknowledged' is -1"),
        (json.dumps(load_output(errors="1")), "'errors' is '1'"),
        (json.dumps(load_output(seconds=0)), "'seconds' is 0"),
        (json.dumps(load_output(seconds=True)), "'seconds' is True"),
        (json.dumps(load_output(latencies_us=[1, -2, 3, 4])), "'latencies_us'"),
        (json.dumps(load_output(latencies_us=[1.5, 2, 3, 4])), "'latencies_us'"),
        (json.dumps(load_output(latencies_us=None)), "'latencies_us'"),
        (json.dumps(load_output(latencies_us=[1, 2])), "counted 4 answers but gave 2 latencies"),
        (json.dumps(load_output(in_flight=None)), "'in_flight' is None"),
    ],
)
def test_parse_load_output_refuses_what_is_malformed(peer: ModuleType, text: str, named: str) -> None:
    with pytest.raises(ValueError, match=named.replace("(", r"\(")):
        peer.parse_load_output(text)


def test_the_comparison_skips_etcd_in_one_line_where_it_is_missing(monkeypatch: pytest.MonkeyPatch,
                                                                   tmp_path: Path) -> None:
    compare = load_benchmark("compare_pysyncobj")
    import etcd_peer  # the module compare_pysyncobj imports, from benchmarks/ on sys.path

    def args(**changes: Any) -> argparse.Namespace:
        return argparse.Namespace(**{"no_etcd": False, "count": None, "nodes": 3, **changes})

    monkeypatch.setattr(etcd_peer, "unavailable", lambda: "etcd not found (apt-get install etcd-server)")
    assert compare.etcd_peer_for(args(), tmp_path / "etcd") == (None, None, "etcd not found (apt-get install etcd-server)")
    assert compare.etcd_peer_for(args(no_etcd=True), tmp_path / "etcd") == (None, None, "--no-etcd")
    assert compare.etcd_peer_for(args(count=100), tmp_path / "etcd")[2].startswith("--count")

    def broken_build(say: Any) -> Path:
        raise etcd_peer.EtcdUnavailable("building benchmarks/etcd_load/main.go failed: cannot find package")

    monkeypatch.setattr(etcd_peer, "unavailable", lambda: None)
    monkeypatch.setattr(etcd_peer, "build_load_generator", broken_build)
    assert compare.etcd_peer_for(args(), tmp_path / "etcd")[2] == "building benchmarks/etcd_load/main.go failed: cannot find package"
    assert not (tmp_path / "etcd").exists()


def test_log_tails_gives_the_last_lines_of_each_log_there_is(tmp_path: Path) -> None:
    local_cluster = load_benchmark("local_cluster")
    (tmp_path / "n1.log").write_text("".join(f"line {k}\n" for k in range(20)))
    (tmp_path / "n3.log").write_text("only\n")
    text = local_cluster.log_tails(tmp_path, "etcd", ["n1", "n2", "n3"], lines=2)
    assert text == "--- etcd n1 ---\nline 18\nline 19\n--- etcd n3 ---\nonly"
