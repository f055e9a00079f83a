"""The pure parts of ``benchmarks/compare_pysyncobj.py`` (picking PySyncObj's better mode, the
ratios, the table, the failover medians), imported without PySyncObj installed."""

from __future__ import annotations

import argparse
from types import ModuleType
from typing import Any

import pytest

from .benchmark_scripts import BENCHMARKS, load_benchmark


@pytest.fixture(scope="module")
def compare() -> ModuleType:
    return load_benchmark("compare_pysyncobj")


def report(throughput: float, p50: float | None, p99: float | None, errors: int = 0) -> dict[str, Any]:
    return {"throughput": throughput, "latency_ms": {"p50": p50, "p90": None, "p99": p99, "max": None, "mean": None},
            "errors": errors}


def test_the_script_imports_without_pysyncobj(compare: ModuleType) -> None:
    assert compare.DEFAULT_LEVELS == (1, 8, 64, 512, 4096, 16384)
    source = (BENCHMARKS / "compare_pysyncobj.py").read_text()
    top_level = source.split("# -- the clusters")[0]
    assert "import pysyncobj" not in top_level and "from pysyncobj" not in top_level


def test_ratio(compare: ModuleType) -> None:
    assert compare.ratio(300.0, 100.0) == 3.0
    assert compare.ratio(1.0, 4.0) == 0.25
    assert compare.ratio(None, 1.0) is None
    assert compare.ratio(1.0, None) is None
    assert compare.ratio(1.0, 0) is None


def test_better_mode_takes_the_higher_throughput_then_the_lower_p99(compare: ModuleType) -> None:
    batch, nobatch = report(100, 100, 110), report(900, 1, 4)
    assert compare.better_mode({"b": batch, "n": nobatch}) == ("n", nobatch)
    assert compare.better_mode({"b": report(500, 5, 9), "n": report(500, 5, 8)})[0] == "n"
    assert compare.better_mode({"b": None, "n": nobatch}) == ("n", nobatch)
    assert compare.better_mode({"b": None, "n": None}) == (None, None)


def test_comparison_rows_and_table(compare: ModuleType) -> None:
    results = {
        64: {
            compare.RAFTNODE: report(9000, 6.0, 10.0),
            compare.PSO_BATCH: report(600, 105.0, 114.0),
            compare.PSO_NOBATCH: report(3000, 20.0, 50.0),
        },
        1: {
            compare.RAFTNODE: report(2000, 0.45, 0.9),
            compare.PSO_BATCH: report(10, 100.0, 110.0),
            compare.PSO_NOBATCH: None,
        },
        8: {compare.RAFTNODE: None, compare.PSO_BATCH: report(80, 100.0, 110.0), compare.PSO_NOBATCH: None},
    }
    rows = compare.comparison_rows(results)
    assert [row["in_flight"] for row in rows] == [1, 8, 64]
    one, eight, sixty_four = rows
    assert sixty_four["pysyncobj"] == {"throughput": 3000, "p50_ms": 20.0, "p99_ms": 50.0, "mode": compare.PSO_NOBATCH}
    assert sixty_four["throughput_ratio"] == 3.0
    assert sixty_four["p50_ratio"] == 0.3 and sixty_four["p99_ratio"] == 0.2
    assert one["pysyncobj"]["mode"] == compare.PSO_BATCH and one["throughput_ratio"] == 200.0
    assert eight["raftnode"]["throughput"] is None and eight["throughput_ratio"] is None

    table = compare.format_table(rows).splitlines()
    assert table[0].split()[:2] == ["in", "flight"] and "PySyncObj cmds/s" in table[0]
    assert set(table[1]) <= {"-", " "}
    assert len({len(line) for line in table[:2]}) == 1  # the rule is as wide as the header
    assert table[2].split() == ["1", "2,000", "0.45", "0.90", "10", "100", "110", "batch", "200x", "0.0045x", "0.0082x"]
    assert table[3].split()[:4] == ["8", "-", "-", "-"] and "-" in table[3].split()[-1]
    assert table[4].split() == ["64", "9,000", "6.00", "10.0", "3,000", "20.0", "50.0", "no", "batch", "3x", "0.3x", "0.2x"]


def test_failover_median_and_text(compare: ModuleType) -> None:
    summary = compare.failover_summary(
        {compare.RAFTNODE: [0.31, 0.25, 0.4, 0.2, 0.3], compare.PSO_BATCH: [1.8, 1.5]},
        {compare.PSO_BATCH: 1},
    )
    assert summary[compare.RAFTNODE] == {"runs_s": [0.31, 0.25, 0.4, 0.2, 0.3], "median_s": 0.3, "failed_runs": 0}
    assert summary[compare.PSO_BATCH]["median_s"] == 1.65 and summary[compare.PSO_BATCH]["failed_runs"] == 1
    text = compare.format_failover(summary)
    assert "median 0.300 s" in text and "1 found no new leader" in text and "0.18x" in text
    assert compare.median([]) is None


def test_levels_argument(compare: ModuleType) -> None:
    assert compare.parse_levels("1,8, 64") == (1, 8, 64)
    for bad in ("", "1,x", "0,8"):
        with pytest.raises(argparse.ArgumentTypeError):
            compare.parse_levels(bad)


def test_extra_rows_and_the_targets_say_met_or_not(compare: ModuleType) -> None:
    results = {
        1: {compare.RAFTNODE: report(900, 1.0, 2.0), compare.RAFTNODE_NOFSYNC: report(2000, 0.5, 1.0),
            compare.PSO_BATCH: report(10, 100.0, 110.0), compare.PSO_NOBATCH: report(1600, 0.6, 1.2)},
        64: {compare.RAFTNODE: report(30000, 2.0, 4.0), compare.RAFTNODE_NOFSYNC: report(40000, 1.5, 3.0),
             compare.RAFTNODE_BATCH: report(120000, 3.0, 6.0),
             compare.PSO_BATCH: report(9000, 5.0, 13.0), compare.PSO_NOBATCH: report(10000, 5.0, 14.0)},
    }
    rows, extras = compare.comparison_rows(results), compare.extra_rows(results)
    assert rows[1]["pysyncobj"]["mode"] == compare.PSO_NOBATCH  # our extra systems are never PySyncObj's
    assert extras[0][compare.RAFTNODE_BATCH]["throughput"] is None
    assert extras[1][compare.RAFTNODE_NOFSYNC]["throughput_ratio"] == 4.0
    assert extras[1][compare.RAFTNODE_BATCH]["throughput_ratio"] == 12.0
    table = compare.format_extra_table(extras, 256).splitlines()
    assert "batch 256 cmds/s" in table[0] and table[3].split()[0] == "64" and "12x" in table[3]

    found = {t["target"]: t for t in compare.targets(rows, extras, fsync_ms=0.5)}
    low = found["1 in flight: p50 <= PySyncObj's p50 + median fsync"]
    assert low["measured"] == "1.00 ms vs 0.60 + 0.50 ms" and low["met"] is True
    assert found["64 in flight: >= 3x PySyncObj"] == {"target": "64 in flight: >= 3x PySyncObj", "measured": "3x",
                                                      "met": True}
    assert found["p99 <= 1/3 of PySyncObj's, 64 to 4,096 in flight"]["met"] is True  # 4 / 14
    assert found["fsync = false: >= 1.0x PySyncObj at every level"]["met"] is True  # 2000 / 1600 at 1
    assert found["peak with a batching client: >= 100,000 cmds/s on 3 nodes"]["met"] is True
    assert found["reads through ReadIndex >= 150,000/s"]["met"] is None
    text = compare.format_targets(list(found.values()))
    assert "NOT MET" not in text and " met" in text
    rows[0]["raftnode"]["p50_ms"] = 1.2
    assert not {t["target"]: t for t in compare.targets(rows, extras, 0.5)}[low["target"]]["met"]


def test_etcd_rows_table_and_targets(compare: ModuleType) -> None:
    results = {
        1: {compare.RAFTNODE: report(800, 1.1, 2.0), compare.ETCD: report(1000, 0.9, 1.5),
            compare.PSO_NOBATCH: report(1600, 0.6, 1.2)},
        8: {compare.RAFTNODE: report(4000, 2.0, 3.0), compare.PSO_NOBATCH: report(5000, 1.6, 3.0)},  # etcd left out
        64: {compare.RAFTNODE: report(25000, 2.5, 5.0), compare.ETCD: report(10000, 6.0, 12.0, errors=3101)},
        512: {compare.RAFTNODE: report(45000, 11.0, 20.0), compare.ETCD: None},  # etcd's run failed
        4096: {compare.RAFTNODE: report(48000, 80.0, 110.0), compare.ETCD: report(16000, 250.0, 300.0)},
    }
    rows = compare.etcd_rows(results)
    assert [row["in_flight"] for row in rows] == [1, 64, 512, 4096]
    assert rows[0]["etcd"] == {"throughput": 1000, "p50_ms": 0.9, "p99_ms": 1.5, "errors": 0}
    assert rows[0]["throughput_ratio"] == 0.8
    assert rows[1]["throughput_ratio"] == 2.5 and rows[1]["p99_ratio"] == 0.4167
    assert rows[2]["etcd"]["throughput"] is None and rows[2]["throughput_ratio"] is None
    assert compare.comparison_rows(results)[0]["pysyncobj"]["mode"] == compare.PSO_NOBATCH  # etcd is never PySyncObj

    table = compare.format_etcd_table(rows).splitlines()
    assert "etcd cmds/s" in table[0] and set(table[1]) <= {"-", " "} and len(table) == 6
    assert table[2].split() == ["1", "800", "1.10", "2.00", "1,000", "0.90", "1.50", "0", "0.8x", "1.22x", "1.33x"]
    assert table[3].split()[7] == "3,101"
    assert table[4].split() == ["512", "45,000", "11.0", "20.0", "-", "-", "-", "-", "-", "-", "-"]

    found = {t["target"]: t for t in compare.etcd_targets(rows, None)}
    assert found["etcd: >= 1x at 1 in flight"] == {"target": "etcd: >= 1x at 1 in flight",
                                                  "measured": "0.8x (p50 1.10 vs 0.90 ms)", "met": False}
    high = found["etcd: >= 2x at every level from 64 up"]
    assert high["measured"] == "lowest - at 512" and high["met"] is None  # a gap is no pass
    del rows[2]
    high = {t["target"]: t for t in compare.etcd_targets(rows, None)}["etcd: >= 2x at every level from 64 up"]
    assert high == {"target": "etcd: >= 2x at every level from 64 up", "measured": "lowest 2.5x at 64", "met": True}
    rows[2]["throughput_ratio"] = 1.99
    assert not compare.etcd_targets(rows, None)[1]["met"]


def test_the_targets_say_why_etcd_was_not_measured(compare: ModuleType) -> None:
    skipped = compare.etcd_targets([], "etcd and go not found (apt-get install etcd-server golang-go golang-etcd-server-dev)")
    assert skipped == [{"target": "etcd: >= 1x at 1 in flight, >= 2x from 64 up",
                        "measured": "not measured: etcd and go not found (apt-get install etcd-server golang-go "
                                    "golang-etcd-server-dev)", "met": None}]
    listed = [t["target"] for t in compare.targets([], [], None, 3, skipped)]
    assert listed[-2] == skipped[0]["target"] and "resident memory" in listed[-1]
    assert any(t["measured"] == "not measured: not run" for t in compare.targets([], [], None))


def test_the_reads_run_takes_the_highest_level_up_to_4096(compare: ModuleType) -> None:
    assert compare.reads_level((1, 8, 64, 512, 4096, 16384)) == 4096
    assert compare.reads_level((16384, 512, 1)) == 512
    assert compare.reads_level((8192, 16384)) == 8192  # none eligible: the lowest


def test_reads_target_met_not_met_failed_and_not_run(compare: ModuleType) -> None:
    name = "reads through ReadIndex >= 150,000/s"
    met = compare.reads_target(report(150_000, 20.0, 40.0), 4096)
    assert met == {"target": name, "measured": "150,000 reads/s at 4,096 in flight, one query per request "
                                               "(p50 20.0 / p99 40.0 ms)", "met": True}
    assert compare.reads_target(report(149_999, 20.0, 40.0), 4096)["met"] is False
    failed = compare.reads_target(None, 512)
    assert failed["met"] is None and "512" in failed["measured"] and "failed" in failed["measured"]
    assert compare.reads_target(None, None)["met"] is None
    listed = {t["target"]: t for t in compare.targets([], [], None, reads=met)}
    assert listed[name]["met"] is True


def test_with_a_batch_the_reads_target_is_judged_on_the_batched_run_and_says_so(compare: ModuleType) -> None:
    batched = compare.reads_target(report(210_000, 9.0, 20.0), 4096, batch=64, unbatched=report(120_000, 30.0, 60.0))
    assert batched == {"target": "reads through ReadIndex >= 150,000/s", "met": True,
                       "measured": "210,000 reads/s at 4,096 in flight, query_many batches of 64 (p50 9.00 / p99 "
                                   "20.0 ms); one query per request: 120,000 reads/s"}
    short = compare.reads_target(report(140_000, 9.0, 20.0), 4096, batch=8, unbatched=report(160_000, 9.0, 20.0))
    assert short["met"] is False and "batches of 8" in short["measured"]  # the batched run is the one judged
    assert compare.reads_target(report(200_000, 9.0, 20.0), 512, batch=64)["measured"].endswith(
        "one query per request: failed")
    failed = compare.reads_target(None, 512, batch=64, unbatched=report(1, 1.0, 1.0))
    assert failed["met"] is None and "(query_many batches of 64) failed" in failed["measured"]


def memory_result(*resident: float | None, commands: int = 1_000_000) -> dict[str, Any]:
    return {"commands": commands,
            "memory_mib": {f"n{i}": ({} if mib is None else {"VmRSS": mib, "VmHWM": mib + 1})
                           for i, mib in enumerate(resident, 1)}}


def test_memory_target_takes_the_worst_node_against_the_baseline(compare: ModuleType) -> None:
    assert compare.MEMORY_BASELINE_MIB == 34.0
    found = compare.memory_target(memory_result(31.4, 34.0, 31.5))
    assert found["measured"] == "worst 34 MiB (n2) after 1,000,000 commands" and found["met"] is True
    assert compare.memory_target(memory_result(31.4, None, 34.1))["met"] is False  # n3 above, n2 unread
    assert compare.memory_target(memory_result(None, None))["met"] is None
    short = compare.memory_target(memory_result(20.0, commands=20_000))
    assert short["met"] is None and short["measured"] == "worst 20 MiB (n1) after 20,000 commands: too few for a verdict"
    absent = compare.memory_target(None)
    assert absent["met"] is None and "--memory 1000000" in absent["measured"]
    listed = compare.targets([], [], None, memory=found)
    assert listed[-1] == found


def test_scale_targets_compare_each_level_with_the_three_node_ratio(compare: ModuleType) -> None:
    three = compare.comparison_rows({
        64: {compare.RAFTNODE: report(30000, 2.0, 4.0), compare.PSO_BATCH: report(10000, 5.0, 13.0)},
        512: {compare.RAFTNODE: report(45000, 10.0, 20.0), compare.PSO_BATCH: report(9000, 48.0, 86.0)},
    })
    five = compare.comparison_rows({
        64: {compare.RAFTNODE: report(24000, 2.5, 5.0), compare.PSO_BATCH: report(8000, 6.0, 15.0)},  # 3x = 3x
        512: {compare.RAFTNODE: report(40000, 12.0, 25.0), compare.PSO_BATCH: report(10000, 50.0, 90.0)},  # 4x < 5x
        4096: {compare.RAFTNODE: report(40000, 80.0, 110.0), compare.PSO_BATCH: None},
    })
    found = compare.scale_targets(three, five, 3)
    assert found[0] == {"target": "5 nodes, 64 in flight: ratio >= 3 nodes'", "measured": "3x vs 3x", "met": True}
    assert found[1]["measured"] == "4x vs 5x" and found[1]["met"] is False
    assert found[2]["measured"] == "- vs -" and found[2]["met"] is None  # a gap is no pass
    absent = compare.scale_targets(three, None, 3)
    assert len(absent) == 1 and absent[0]["met"] is None and "--scale" in absent[0]["measured"]
    listed = [t["target"] for t in compare.targets(three, [], None, scale=found)]
    assert listed.index(found[0]["target"]) < listed.index("etcd: >= 1x at 1 in flight, >= 2x from 64 up")


def test_a_level_window_holds_the_rounds_asked_for(compare: ModuleType) -> None:
    """At a high level the window is stretched so the closed loop completes ``--rounds`` rounds
    at ``ROUND_RATE``; below that it is ``--duration``."""
    args = compare.argparse.Namespace(duration=3.0, rounds=20.0)
    assert compare.level_window(args, 1) == 3.0
    assert compare.level_window(args, 16384) == 20 * 16384 / compare.ROUND_RATE
    assert compare.level_window(compare.argparse.Namespace(duration=3.0, rounds=0.0), 16384) == 3.0
