"""The summary of ``benchmarks/sessions_cost.py``: throughput over the totals of all rounds, and
what sessions add in CPU per command, per cluster."""

from __future__ import annotations

from .benchmark_scripts import load_benchmark


def test_the_summary_is_of_the_totals_per_cluster() -> None:
    script = load_benchmark("sessions_cost")
    totals = {
        ("this", True): [9_000, 3.0, 10_000, 0.7, 1.2],
        ("this", False): [12_000, 3.0, 12_500, 0.5, 1.0],
        ("against", True): [6_000, 3.0, 8_000, 0.8, 1.6],
        ("against", False): [12_000, 3.0, 12_500, 0.5, 1.0],
    }
    this, against = script.summary(totals)
    assert this.startswith("this: with sessions 3,000 cmds/s, without 4,000: sessions keep 75.0%")
    assert "leader 70.0/40.0 us (+30.0), 3 nodes 120.0/80.0 us (+40.0)" in this
    assert against.startswith("against: with sessions 2,000 cmds/s") and "leader 100.0/40.0 us (+60.0)" in against
