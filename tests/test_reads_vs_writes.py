"""The report of ``benchmarks/reads_vs_writes.py``: the ratio of the totals over all rounds, the
targets met or not, and the exit code that says whether the ratio target is met."""

from __future__ import annotations

import argparse
from types import ModuleType
from typing import Any

import pytest

from .benchmark_scripts import load_benchmark


@pytest.fixture(scope="module")
def script() -> ModuleType:
    return load_benchmark("reads_vs_writes")


def run(acknowledged: int, seconds: float = 5.0, leader_cpu: float = 1.0) -> dict[str, Any]:
    return {"acknowledged": acknowledged, "seconds": seconds, "throughput": acknowledged / seconds,
            "warmup_acknowledged": 0, "leader": "n1", "cpu_seconds": {"nodes": {"n1": leader_cpu}},
            "latency_ms": {"p50": 1.0, "p99": 2.0}}


ARGS = argparse.Namespace(in_flight=512, duration=5.0, rounds=2, spread=False)


def test_the_ratio_is_of_the_totals_and_met_at_three(script: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    runs = {"writes": [run(10_000), run(30_000)], "reads": [run(50_000), run(70_000)]}
    assert script.report(runs, ARGS) == 0
    out = capsys.readouterr().out
    # 120,000 reads and 40,000 writes in 10 s each: exactly 3×, met.
    assert "12,000 / 4,000 = 3.00×  (target ≥ 3×: met)" in out and "target ≥ 150,000: not met" in out
    assert "16.7" in out  # the leader's µs per read: 2 CPU seconds for 120,000 reads


def test_a_ratio_under_three_is_not_met_and_exits_one(script: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    runs = {"writes": [run(10_000)], "reads": [run(29_000)]}
    assert script.report(runs, ARGS) == 1
    assert "2.90×  (target ≥ 3×: not met)" in capsys.readouterr().out


def test_batched_reads_go_as_query_many_and_the_report_says_so(script: ModuleType,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    batched = argparse.Namespace(in_flight=4096, duration=3.0, rounds=1, spread=True, batch=64)
    assert script.reads_options(batched) == ["--spread", "--batch", "64"]
    assert script.reads_options(ARGS) == []
    runs = {"writes": [run(100_000)], "reads": [run(1_000_000)]}
    assert script.report(runs, batched) == 0
    out = capsys.readouterr().out
    assert "(reads in query_many batches of 64)" in out and "reads/s: 200,000  (target ≥ 150,000: met)" in out
