"""raftnode against PySyncObj, side by side on this machine: closed-loop throughput and latency at
each in-flight level, and failover time.

    python3 -m pip install -e '.[bench]'        # PySyncObj, pinned
    python3 benchmarks/compare_pysyncobj.py [--levels 1,8,64,512,4096,16384] [--duration 2]
        [--count N] [--warmup 0.5] [--connections C] [--failover-runs 5] [--dir DIR] [--json]
        [--nodes 3] [--batch B] [--no-etcd] [--scale] [--memory N]

Four clusters (five with etcd) of ``--nodes`` processes each (3 by default) run on 127.0.0.1
(free ports, a temporary directory):

- raftnode: ``python -m raftnode`` nodes (``local_cluster.py``) with the counter state machine;
  every command is fsynced by a majority before it is acknowledged (its data directory is on
  the disk of ``--dir``, the system temp directory by default);
- PySyncObj with its defaults (``appendEntriesUseBatch=True``: entries go out with a timer) and
  PySyncObj with ``appendEntriesUseBatch=False`` (each command sent at once), each node a
  ``pysyncobj_node.py`` process: a replicated counter behind a front-end that speaks raftnode's
  client protocol in PySyncObj's own thread (see that file for why that is fair). PySyncObj keeps
  its log in memory and never fsyncs;
- raftnode with ``fsync = false`` (UNSAFE, for this like-for-like row only): the same nodes
  without a single fsync, so the fsync is the only difference left;
- etcd 3.4 (Debian's ``etcd-server``), ``--nodes`` members with their defaults (every write
  fsynced), loaded with Puts of 16 B by a small Go load generator of the same shape
  (``etcd_peer.py``, ``etcd_load/main.go``), against the fsync-on raftnode cluster. It needs
  ``apt-get install etcd-server golang-go golang-etcd-server-dev``; without them (or with
  ``--no-etcd``) one line says why the etcd columns are skipped and the rest runs as before.

With ``--batch B`` the fsync-on raftnode cluster is measured once more at each level from 64 up
with a batching client (``raftctl bench --batch``: ``run_many`` requests of up to B commands,
each command still answered on its own): the peak row.

Reads: after the levels, the fsync-on raftnode cluster is loaded once more for ``--duration`` with
``get`` only (queries: ReadIndex, no log entry; one per request, as ``raftctl bench --command get``
sends them) at the highest of ``--levels`` up to 4,096 in flight; with ``--batch B`` once more with
a batching client (``query_many`` requests of up to B reads, each answered on its own), and the
reads target is judged on that run (its line says so, with the one-query-per-request figure beside).

With ``--scale`` raftnode and PySyncObj are compared once more at 5 nodes, at each level from 64
up, each ratio against the ``--nodes`` one. With ``--memory N`` a fresh 3-node cluster is driven
with N commands by ``memory_restart.py`` and the worst node's resident memory is set against
today's (issue 3's figure); a million commands take about 5 minutes.

Last, every target of issue 19 is printed with its measured value and met / not met (the median
fsync of ``--dir``'s disk is measured in the same run, for the low-concurrency target); targets
left out (``--scale``, ``--memory``, etcd) say how to measure them.

Every run but etcd's uses the same load generator, ``raftctl.bench`` (what ``raftctl bench`` runs):
``incr 1`` commands, ``in-flight`` of them outstanding at every moment over ``--connections``
connections to the leader, ``--warmup`` seconds unmeasured and then ``--duration`` seconds (or
``--count`` commands) measured -- at high levels longer, so that the window holds at least
``--rounds`` rounds of the loop (``level_window``). For each level the systems run one after the
other, the order alternating from one level to the next so that drift of the machine's load hits
both alike. Of
PySyncObj's two modes the one with the higher throughput at that level is shown.

Failover: kill -9 of the leader, then every surviving node is asked to commit ``incr 1`` (again
every 5 ms after a refusal or a redirect, and every 250 ms without an answer); the time from the
kill to the first acknowledgement, i.e. the first command committed by a new leader. The median of
``--failover-runs`` runs per system (alternating), PySyncObj in its default mode; the killed node
is restarted and the cluster is whole again before the next run. Both use their default election
timeouts (raftnode 150-300 ms, PySyncObj 0.4-1.4 s).

The table's pure parts (``ratio``, ``better_mode``, ``comparison_rows``, ``format_table``,
``median``, the ``*_target(s)`` functions) are importable without PySyncObj and tested in ``tests/test_compare_pysyncobj.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
for entry in (str(REPO), str(HERE)):
    if entry not in sys.path:
        sys.path.insert(0, entry)

DEFAULT_LEVELS = (1, 8, 64, 512, 4096, 16384)
RAFTNODE = "raftnode"
PSO_BATCH = "pysyncobj-batch"
PSO_NOBATCH = "pysyncobj-nobatch"
RAFTNODE_NOFSYNC = "raftnode-nofsync"  # fsync = false: UNSAFE, the like-for-like row
RAFTNODE_BATCH = "raftnode-batch"  # the fsync-on cluster with a batching client (--batch)
ETCD = "etcd"  # etcd 3.4 with its own load generator (etcd_peer.py), where installed
RAFTNODE_READS = "raftnode-reads"  # the fsync-on cluster loaded with `get` queries (ReadIndex)
RAFTNODE_READS_BATCH = "raftnode-reads-batch"  # the same with a batching client (--batch: query_many)
#: The lowest in-flight level a batching client is measured at.
BATCH_FROM_LEVEL = 64
#: A closed loop of N commands completes in waves of up to N, so a window holding only a few rounds
#: is off by up to one wave: at 16,384 in flight and ~25,000 cmds/s a 3 s window held 4.5 rounds,
#: and one run gave 18,273 cmds/s where the fsync = false and batch rows beside it gave 26-28k.
#: Each level's window is stretched to ``--rounds`` rounds at this rate, of the order every system
#: reaches at the top levels on 2 vCPUs (a slower system gets fewer, a faster one more).
ROUND_RATE = 20_000
PYSYNCOBJ_VERSION = "0.3.17"


# -- the pure parts: picking, ratios, tables -----------------------------------------------------------


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """``numerator / denominator``, None when either is missing or the denominator is 0."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


def better_mode(runs: dict[str, dict[str, Any] | None]) -> tuple[str | None, dict[str, Any] | None]:
    """The mode with the higher throughput (then the lower p99) among ``runs`` (None: failed)."""
    best: tuple[str | None, dict[str, Any] | None] = (None, None)
    for mode, report in runs.items():
        if report is None:
            continue
        _, current = best
        if current is None:
            best = (mode, report)
            continue
        key = (report["throughput"], -(report["latency_ms"]["p99"] or float("inf")))
        current_key = (current["throughput"], -(current["latency_ms"]["p99"] or float("inf")))
        if key > current_key:
            best = (mode, report)
    return best


def _cell(report: dict[str, Any] | None) -> dict[str, Any]:
    if report is None:
        return {"throughput": None, "p50_ms": None, "p99_ms": None}
    lat = report["latency_ms"]
    return {"throughput": report["throughput"], "p50_ms": lat["p50"], "p99_ms": lat["p99"]}


def comparison_rows(results: dict[int, dict[str, dict[str, Any] | None]]) -> list[dict[str, Any]]:
    """One row per level: raftnode's figures, PySyncObj's better mode's, and the ratios.

    ``results[level]`` maps a system (``RAFTNODE``, ``PSO_BATCH``, ``PSO_NOBATCH``) to its run's
    report (``raftctl.bench.build_report``) or None if the run failed. ``throughput_ratio`` is
    raftnode's throughput over PySyncObj's (higher is better for raftnode); ``p50_ratio`` and
    ``p99_ratio`` are raftnode's latency over PySyncObj's (lower is better for raftnode).
    """
    rows = []
    for level in sorted(results):
        runs = results[level]
        mode, best = better_mode({k: v for k, v in runs.items() if k in (PSO_BATCH, PSO_NOBATCH)})
        row = _versus(level, runs.get(RAFTNODE), best, "pysyncobj")
        row["pysyncobj"]["mode"] = mode
        rows.append(row)
    return rows


def _versus(level: int, ours_report: dict[str, Any] | None, theirs_report: dict[str, Any] | None,
            peer: str) -> dict[str, Any]:
    """One level's row: raftnode's and ``peer``'s figures, raftnode's throughput over the peer's
    and raftnode's p50/p99 over the peer's."""
    ours, theirs = _cell(ours_report), _cell(theirs_report)
    return {
        "in_flight": level,
        "raftnode": ours,
        peer: theirs,
        "throughput_ratio": _round(ratio(ours["throughput"], theirs["throughput"]), 2),
        "p50_ratio": _round(ratio(ours["p50_ms"], theirs["p50_ms"]), 4),
        "p99_ratio": _round(ratio(ours["p99_ms"], theirs["p99_ms"]), 4),
    }


def etcd_rows(results: dict[int, dict[str, dict[str, Any] | None]]) -> list[dict[str, Any]]:
    """One row per level where etcd ran: raftnode (fsync on) against etcd, and the Puts etcd
    refused or did not answer in time (``errors``: a ratio over a refusing etcd flatters us)."""
    rows = []
    for level, runs in sorted(results.items()):
        if ETCD in runs:
            row = _versus(level, runs.get(RAFTNODE), runs[ETCD], "etcd")
            row["etcd"]["errors"] = None if runs[ETCD] is None else runs[ETCD]["errors"]
            rows.append(row)
    return rows


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}" if value < 100 else f"{value:.0f}"


def _times(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}x"


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """The side-by-side table of ``comparison_rows`` as aligned plain text."""
    header = [
        "in flight",
        "raftnode cmds/s",
        "p50 ms",
        "p99 ms",
        "PySyncObj cmds/s",
        "p50 ms",
        "p99 ms",
        "mode",
        "cmds/s ratio",
        "p50 ratio",
        "p99 ratio",
    ]
    lines = [header]
    for row in rows:
        ours, theirs = row["raftnode"], row["pysyncobj"]
        mode = {PSO_BATCH: "batch", PSO_NOBATCH: "no batch"}.get(theirs["mode"], theirs["mode"] or "-")
        lines.append(
            [
                f"{row['in_flight']:,}",
                _num(ours["throughput"], ",.0f"),
                _ms(ours["p50_ms"]),
                _ms(ours["p99_ms"]),
                _num(theirs["throughput"], ",.0f"),
                _ms(theirs["p50_ms"]),
                _ms(theirs["p99_ms"]),
                mode,
                _times(row["throughput_ratio"]),
                _times(row["p50_ratio"]),
                _times(row["p99_ratio"]),
            ]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for n, line in enumerate(lines):
        cells = [cell.ljust(widths[i]) if i == 7 else cell.rjust(widths[i]) for i, cell in enumerate(line)]
        out.append("  ".join(cells).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def extra_rows(results: dict[int, dict[str, dict[str, Any] | None]]) -> list[dict[str, Any]]:
    """One row per level: raftnode with fsync = false and with a batching client, each with its
    throughput ratio to PySyncObj's better mode (None where not measured)."""
    rows = []
    for level in sorted(results):
        runs = results[level]
        _, best = better_mode({k: v for k, v in runs.items() if k in (PSO_BATCH, PSO_NOBATCH)})
        theirs = _cell(best)["throughput"]
        row: dict[str, Any] = {"in_flight": level}
        for name in (RAFTNODE_NOFSYNC, RAFTNODE_BATCH):
            cell = _cell(runs.get(name))
            row[name] = {**cell, "throughput_ratio": _round(ratio(cell["throughput"], theirs), 2)}
        rows.append(row)
    return rows


def format_extra_table(rows: Sequence[dict[str, Any]], batch: int | None) -> str:
    """The fsync = false and batching-client rows of ``extra_rows`` as aligned plain text."""
    header = ["in flight", "fsync=false cmds/s", "p50 ms", "p99 ms", "vs PySyncObj",
              f"batch {batch or '-'} cmds/s", "p50 ms", "p99 ms", "vs PySyncObj"]
    lines = [header]
    for row in rows:
        line = [f"{row['in_flight']:,}"]
        for name in (RAFTNODE_NOFSYNC, RAFTNODE_BATCH):
            cell = row[name]
            line += [_num(cell["throughput"], ",.0f"), _ms(cell["p50_ms"]), _ms(cell["p99_ms"]),
                     _times(cell["throughput_ratio"])]
        lines.append(line)
    return _aligned(lines)


def format_etcd_table(rows: Sequence[dict[str, Any]]) -> str:
    """The raftnode-against-etcd rows of ``etcd_rows`` as aligned plain text."""
    lines = [["in flight", "raftnode cmds/s", "p50 ms", "p99 ms", "etcd cmds/s", "p50 ms", "p99 ms", "etcd errors",
              "cmds/s ratio", "p50 ratio", "p99 ratio"]]
    for row in rows:
        line = [f"{row['in_flight']:,}"]
        for side in ("raftnode", "etcd"):
            cell = row[side]
            line += [_num(cell["throughput"], ",.0f"), _ms(cell["p50_ms"]), _ms(cell["p99_ms"])]
        line.append(_num(row["etcd"]["errors"], ","))
        lines.append(line + [_times(row["throughput_ratio"]), _times(row["p50_ratio"]), _times(row["p99_ratio"])])
    return _aligned(lines)


def _aligned(lines: list[list[str]]) -> str:
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    out = ["  ".join(cell.rjust(widths[i]) for i, cell in enumerate(line)).rstrip() for line in lines]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


#: The throughput ratios issue 19 asks for at these levels (fsync on).
RATIO_TARGETS = {8: 1.0, 64: 3.0, 512: 5.0, 4096: 2.0, 16384: 1.5}
PEAK_TARGET = 100_000
#: Reads through ReadIndex per second on 3 nodes (issue 19's peak target; reads_vs_writes.py's READS_TARGET).
READS_TARGET = 150_000
#: The highest in-flight level the reads run may take from --levels.
READS_MAX_LEVEL = 4096
#: "Today's" resident memory: the worst node after 1,000,000 commands in issue 3's stop note,
#: benchmarks/memory_restart.py: 31.4 / 33.7 / 31.4 MiB per node, 31.5 / 31.4 / 34.0 MiB at --in-flight 512.
MEMORY_BASELINE_MIB = 34.0
#: The commands the memory target is about; a shorter --memory run is shown without a verdict.
MEMORY_TARGET_COMMANDS = 1_000_000
#: The in-flight level of the --memory run (memory_restart.py's default).
MEMORY_IN_FLIGHT = 256
#: The nodes and the lowest in-flight level of the --scale comparison.
SCALE_NODES = 5
SCALE_FROM_LEVEL = 64
#: raftnode over etcd's throughput: at 1 in flight, and at every level from 64 up.
ETCD_AT_ONE_TARGET = 1.0
ETCD_FROM_64_TARGET = 2.0


def etcd_targets(rows: Sequence[dict[str, Any]], skipped: str | None) -> list[dict[str, Any]]:
    """Issue 19's etcd targets as ``targets`` gives them; one unmeasured line when ``skipped``
    says why etcd did not run."""
    at_one = f"etcd: >= {ETCD_AT_ONE_TARGET:g}x at 1 in flight"
    from_64 = f"etcd: >= {ETCD_FROM_64_TARGET:g}x at every level from 64 up"
    if skipped is not None:
        return [{"target": f"{at_one}, >= {ETCD_FROM_64_TARGET:g}x from 64 up", "measured": f"not measured: {skipped}",
                 "met": None}]
    out = []
    for row in rows:
        if row["in_flight"] == 1:
            got = row["throughput_ratio"]
            measured = f"{_times(got)} (p50 {_ms(row['raftnode']['p50_ms'])} vs {_ms(row['etcd']['p50_ms'])} ms)"
            out.append({"target": at_one, "measured": measured, "met": None if got is None else got >= ETCD_AT_ONE_TARGET})
    high = [(row["in_flight"], row["throughput_ratio"]) for row in rows if row["in_flight"] >= 64]
    if high:
        level, got = min(high, key=lambda pair: -1.0 if pair[1] is None else pair[1])
        out.append({"target": from_64, "measured": f"lowest {_times(got)} at {level:,}",
                    "met": None if got is None else got >= ETCD_FROM_64_TARGET})
    return out


def reads_level(levels: Sequence[int]) -> int:
    """The in-flight level of the reads run: the highest of ``levels`` up to ``READS_MAX_LEVEL``
    (the lowest of them when all are above)."""
    eligible = [level for level in levels if level <= READS_MAX_LEVEL]
    return max(eligible) if eligible else min(levels)


def reads_target(report: dict[str, Any] | None, level: int | None, *, batch: int | None = None,
                 unbatched: dict[str, Any] | None = None) -> dict[str, Any]:
    """The reads target from the ``get`` run at ``level`` (``level`` None: not run; ``report``
    None: the run failed). With ``batch`` the run judged is the batching client's (query_many
    requests of up to ``batch`` reads) and ``unbatched``, the one-query-per-request run, is shown
    beside it; the line says which run the verdict is on."""
    target = f"reads through ReadIndex >= {READS_TARGET:,}/s"
    if level is None:
        return {"target": target, "measured": "not measured here (raftctl bench --command get)", "met": None}
    how = f"query_many batches of {batch}" if batch else "one query per request"
    if report is None:
        return {"target": target, "measured": f"the reads run at {level:,} in flight ({how}) failed", "met": None}
    lat = report["latency_ms"]
    measured = (f"{report['throughput']:,.0f} reads/s at {level:,} in flight, {how} "
                f"(p50 {_ms(lat['p50'])} / p99 {_ms(lat['p99'])} ms)")
    if batch:
        alone = "failed" if unbatched is None else f"{unbatched['throughput']:,.0f} reads/s"
        measured += f"; one query per request: {alone}"
    return {"target": target, "measured": measured, "met": report["throughput"] >= READS_TARGET}


def memory_target(result: dict[str, Any] | None) -> dict[str, Any]:
    """The memory target from ``memory_restart.measure``'s result (None: not run): the node with
    the highest resident memory against ``MEMORY_BASELINE_MIB``; no verdict (met None) after
    fewer than ``MEMORY_TARGET_COMMANDS`` commands."""
    target = f"resident memory per node after 1M commands <= {MEMORY_BASELINE_MIB:g} MiB (today)"
    if result is None:
        return {"target": target, "measured": "not measured (give --memory 1000000, ~5 min; "
                                              "or benchmarks/memory_restart.py)", "met": None}
    resident = {node: m.get("VmRSS") for node, m in result["memory_mib"].items()}
    known = {node: mib for node, mib in resident.items() if mib is not None}
    if not known:
        return {"target": target, "measured": "no resident memory read", "met": None}
    node = max(known, key=lambda n: known[n])
    measured = f"worst {known[node]:g} MiB ({node}) after {result['commands']:,} commands"
    if result["commands"] < MEMORY_TARGET_COMMANDS:
        return {"target": target, "measured": f"{measured}: too few for a verdict", "met": None}
    return {"target": target, "measured": measured, "met": known[node] <= MEMORY_BASELINE_MIB}


def scale_targets(rows: Sequence[dict[str, Any]], scale_rows: Sequence[dict[str, Any]] | None,
                  nodes: int = 3) -> list[dict[str, Any]]:
    """One target per level of the ``SCALE_NODES``-node comparison (``comparison_rows``): its
    throughput ratio at least the ``nodes``-node ratio of ``rows`` at that level; one unmeasured
    line when ``scale_rows`` is None."""
    if scale_rows is None:
        return [{"target": f"{SCALE_NODES} nodes: ratios >= {nodes} nodes' from {SCALE_FROM_LEVEL} up",
                 "measured": "not measured (give --scale)", "met": None}]
    base = {row["in_flight"]: row["throughput_ratio"] for row in rows}
    out = []
    for row in scale_rows:
        level, got, wanted = row["in_flight"], row["throughput_ratio"], base.get(row["in_flight"])
        out.append({"target": f"{SCALE_NODES} nodes, {level:,} in flight: ratio >= {nodes} nodes'",
                    "measured": f"{_times(got)} vs {_times(wanted)}",
                    "met": None if got is None or wanted is None else got >= wanted})
    return out


def targets(rows: Sequence[dict[str, Any]], extras: Sequence[dict[str, Any]], fsync_ms: float | None,
            nodes: int = 3, etcd: Sequence[dict[str, Any]] | None = None, *,
            reads: dict[str, Any] | None = None, scale: Sequence[dict[str, Any]] | None = None,
            memory: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every target of issue 19: ``{"target", "measured", "met"}`` (met None: not measured here);
    ``etcd``, ``reads``, ``scale`` and ``memory`` are ``etcd_targets``', ``reads_target``'s,
    ``scale_targets``' and ``memory_target``'s (each default: not run)."""
    by_level = {row["in_flight"]: row for row in rows}
    out: list[dict[str, Any]] = []

    def add(target: str, measured: str, met: bool | None) -> None:
        out.append({"target": target, "measured": measured, "met": met})

    one = by_level.get(1)
    if one is not None and one["raftnode"]["p50_ms"] is not None and one["pysyncobj"]["p50_ms"] is not None:
        bound = one["pysyncobj"]["p50_ms"] + (fsync_ms or 0.0)
        add("1 in flight: p50 <= PySyncObj's p50 + median fsync",
            f"{one['raftnode']['p50_ms']:.2f} ms vs {one['pysyncobj']['p50_ms']:.2f} + {_ms(fsync_ms)} ms",
            one["raftnode"]["p50_ms"] <= bound)
    for level, wanted in RATIO_TARGETS.items():
        row = by_level.get(level)
        if row is not None:
            got = row["throughput_ratio"]
            add(f"{level:,} in flight: >= {wanted:g}x PySyncObj", _times(got), None if got is None else got >= wanted)
    p99s = [(row["in_flight"], row["p99_ratio"]) for row in rows if 64 <= row["in_flight"] <= 4096]
    if p99s:
        worst = max(p99s, key=lambda pair: pair[1] if pair[1] is not None else float("inf"))
        add("p99 <= 1/3 of PySyncObj's, 64 to 4,096 in flight", f"worst {_times(worst[1])} at {worst[0]:,}",
            None if worst[1] is None else worst[1] <= 1 / 3)
    unsafe = [(row["in_flight"], row[RAFTNODE_NOFSYNC]["throughput_ratio"]) for row in extras]
    if unsafe:
        worst = min(unsafe, key=lambda pair: pair[1] if pair[1] is not None else -1.0)
        add("fsync = false: >= 1.0x PySyncObj at every level", f"lowest {_times(worst[1])} at {worst[0]:,}",
            None if worst[1] is None else worst[1] >= 1.0)
    peaks = [row[RAFTNODE_BATCH]["throughput"] for row in extras if row[RAFTNODE_BATCH]["throughput"] is not None]
    add(f"peak with a batching client: >= {PEAK_TARGET:,} cmds/s on {nodes} nodes",
        f"{max(peaks):,.0f} cmds/s" if peaks else "not measured (give --batch)", max(peaks) >= PEAK_TARGET if peaks else None)
    out.append(reads if reads is not None else reads_target(None, None))
    out.extend(scale if scale is not None else scale_targets(rows, None, nodes))
    out.extend(etcd if etcd is not None else etcd_targets([], "not run"))
    out.append(memory if memory is not None else memory_target(None))
    return out


def format_targets(found: Sequence[dict[str, Any]]) -> str:
    verdict = {True: "met", False: "NOT MET", None: "-"}
    lines = [["target", "measured", ""]] + [[t["target"], t["measured"], verdict[t["met"]]] for t in found]
    widths = [max(len(line[i]) for line in lines) for i in range(3)]
    out = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip() for line in lines]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


def median_fsync_ms(directory: Path, count: int = 50) -> float:
    """The median time of an fdatasync of a 4 KiB append in ``directory`` (the disk of the run)."""
    path = directory / "fsync-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    times = []
    try:
        for _ in range(count):
            os.write(fd, bytes(4096))
            began = time.perf_counter()
            os.fdatasync(fd)
            times.append((time.perf_counter() - began) * 1000)
    finally:
        os.close(fd)
        path.unlink()
    return statistics.median(times)


def median(values: Sequence[float]) -> float | None:
    """The median of ``values`` (None for none)."""
    return statistics.median(values) if values else None


def failover_summary(times: dict[str, list[float]], failures: dict[str, int]) -> dict[str, Any]:
    """Per system: the runs' seconds, their median, and runs that found no new leader."""
    return {
        system: {
            "runs_s": [round(t, 3) for t in times.get(system, [])],
            "median_s": _round(median(times.get(system, [])), 3),
            "failed_runs": failures.get(system, 0),
        }
        for system in sorted(set(times) | set(failures))
    }


def format_failover(summary: dict[str, Any]) -> str:
    lines = []
    for system, figures in summary.items():
        runs = ", ".join(f"{t:.2f}" for t in figures["runs_s"]) or "none"
        failed = f", {figures['failed_runs']} found no new leader" if figures["failed_runs"] else ""
        lines.append(f"  {system:<18} median {_num(figures['median_s'], '.3f')} s  (runs: {runs}{failed})")
    ours = summary.get(RAFTNODE, {}).get("median_s")
    theirs = summary.get(PSO_BATCH, {}).get("median_s")
    r = ratio(ours, theirs)
    if r is not None:
        lines.append(f"  raftnode / PySyncObj: {r:.2f}x")
    return "\n".join(lines)


# -- the clusters --------------------------------------------------------------------------------------


class System:
    """Three node processes on loopback answering raftnode's client protocol."""

    name = ""
    sessions = False  # whether its nodes serve client sessions (raftnode's do; PySyncObj's front does not)

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.addresses: dict[str, Any] = {}

    @property
    def pids(self) -> dict[str, int]:
        return {node: proc.pid for node, proc in self.procs.items() if proc.poll() is None}

    def start(self) -> None:
        for node in self.addresses:
            self.procs[node] = self._spawn(node)

    def _spawn(self, node: str) -> subprocess.Popen[bytes]:
        raise NotImplementedError

    def kill(self, node: str) -> None:
        proc = self.procs[node]
        proc.kill()
        proc.wait()

    def restart(self, node: str) -> None:
        self.procs[node] = self._spawn(node)

    def stop(self) -> None:
        from local_cluster import stop_cluster

        stop_cluster(list(self.procs.values()))

    def log_tail(self, lines: int = 8) -> str:
        from local_cluster import log_tails

        return log_tails(self.directory, self.name, self.addresses, lines)


class RaftnodeSystem(System):
    name = RAFTNODE
    sessions = True

    def __init__(self, directory: Path, nodes: int = 3, *, fsync: bool = True) -> None:
        from local_cluster import write_cluster

        super().__init__(directory)
        self.name = RAFTNODE if fsync else RAFTNODE_NOFSYNC
        self.addresses = write_cluster(directory, nodes, fsync=fsync)

    def _spawn(self, node: str) -> subprocess.Popen[bytes]:
        from local_cluster import start_node

        return start_node(self.directory, node)


class PySyncObjSystem(System):
    def __init__(self, directory: Path, nodes: int = 3, *, batch: bool) -> None:
        from local_cluster import free_ports, node_ids

        from raftnode.config import Address

        super().__init__(directory)
        self.batch = batch
        self.name = PSO_BATCH if batch else PSO_NOBATCH
        ids = node_ids(nodes)
        ports = free_ports(2 * len(ids))
        self.spec = {node: ("127.0.0.1", ports[i], ports[i + len(ids)]) for i, node in enumerate(ids)}
        self.addresses = {node: Address(host, client) for node, (host, _, client) in self.spec.items()}

    def _spawn(self, node: str) -> subprocess.Popen[bytes]:
        from local_cluster import spawn

        nodes = ",".join(f"{n}={h}:{p}:{c}" for n, (h, p, c) in self.spec.items())
        argv = [sys.executable, str(HERE / "pysyncobj_node.py"), "--id", node, "--nodes", nodes]
        if not self.batch:
            argv.append("--no-batch")
        return spawn(self.directory, node, argv)


# -- measuring -----------------------------------------------------------------------------------------


async def all_agree(system: System, *, timeout: float) -> str:
    """The leader every node of ``system`` names, once it has committed a command in its term
    (``local_cluster.wait_for_leader``, in a worker thread)."""
    import trio
    from local_cluster import wait_for_leader

    return await trio.to_thread.run_sync(partial(wait_for_leader, system.addresses, timeout=timeout))


async def measure(system: System, level: int, args: argparse.Namespace, batch: int = 1,
                  command: str = "incr 1") -> dict[str, Any]:
    from raftctl.bench import Workload, parse_mix, run_load

    workload = Workload(
        parse_mix([command]),
        in_flight=level,
        connections=min(args.connections, level) if args.connections else None,
        count=args.count,
        duration=None if args.count else level_window(args, level),
        warmup=args.warmup,
        command_timeout=10.0,
        sessions=system.sessions,
        batch=batch,
    )
    leader = await all_agree(system, timeout=30)
    return await run_load(system.addresses, workload, pids=system.pids, leader=leader)


async def failover_once(system: System) -> float | None:
    """Seconds from kill -9 of the leader to the first command a survivor acknowledges."""
    import trio

    from raftnode.wire import requests as wire
    from raftnode.client.trioclient import ClientError, ClusterClient

    leader = await all_agree(system, timeout=30)
    survivors = [n for n in system.addresses if n != leader]
    found: list[float] = []
    async with ClusterClient({n: system.addresses[n] for n in survivors}, connect_timeout=0.25) as client:
        for node in survivors:  # connections open before the kill
            await client.connect(node)
        killed_at = time.perf_counter()
        system.kill(leader)

        async def probe(node: str, done: trio.CancelScope) -> None:
            while True:
                try:
                    answer = await client.call(
                        node, wire.RunCommand("incr 1", 1.0), timeout=0.25
                    )
                except ClientError:
                    await trio.sleep(0.005)
                    continue
                if not (answer.get("error") or answer.get("retry") or answer.get("redirect") or answer.get("timeout_expired")):
                    found.append(time.perf_counter() - killed_at)
                    done.cancel()
                    return
                await trio.sleep(0.005)

        with trio.move_on_after(30):
            async with trio.open_nursery() as nursery:
                for node in survivors:
                    nursery.start_soon(probe, node, nursery.cancel_scope)
    system.restart(leader)
    await all_agree(system, timeout=30)
    return found[0] if found else None


def _log(args: argparse.Namespace, message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def level_window(args: argparse.Namespace, level: int) -> float:
    """The measured seconds at ``level`` in flight: ``--duration``, or ``--rounds`` rounds of the
    loop at ``ROUND_RATE`` if that is longer."""
    return max(args.duration, args.rounds * level / ROUND_RATE)


def measure_one(name: str, systems: dict[str, System], etcd: Any, level: int,
                args: argparse.Namespace) -> dict[str, Any] | None:
    """One run of system ``name`` at ``level`` in flight (logged), None if it failed."""
    import trio

    try:
        if name == ETCD:
            report = etcd.measure(level, duration=level_window(args, level), warmup=args.warmup, connections=args.connections)
        else:
            system = systems[RAFTNODE if name in (RAFTNODE_BATCH, RAFTNODE_READS, RAFTNODE_READS_BATCH) else name]
            batch = args.batch if name in (RAFTNODE_BATCH, RAFTNODE_READS_BATCH) else 1
            # A get goes as a query (ReadIndex); batched, as query_many.
            command = "get" if name in (RAFTNODE_READS, RAFTNODE_READS_BATCH) else "incr 1"
            report = trio.run(measure, system, level, args, batch, command)
    except Exception as exc:  # noqa: BLE001 - a system that fails a level leaves a gap, not a crash
        _log(args, f"  {name} at in-flight {level}: failed: {exc!r}")
        return None
    lat = report["latency_ms"]
    _log(
        args,
        f"in-flight {level:>6} {name:<18} {report['throughput']:>10,.0f} cmds/s  "
        f"p50 {_ms(lat['p50'])} ms  p99 {_ms(lat['p99'])} ms  "
        f"(lost {report['lost']}, errors {report['errors']}, client CPU "
        f"{report['cpu_seconds']['client_share_of_a_core']})"
        + (f"  first errors: {report['error_samples'][:2]}" if report["errors"] and report.get("error_samples") else ""),
    )
    return report


def etcd_peer_for(args: argparse.Namespace, directory: Path) -> tuple[Any, str | None, str | None]:
    """The etcd cluster to compare with (not started), its version, and why not when it is None."""
    import etcd_peer

    if args.no_etcd:
        return None, None, "--no-etcd"
    if args.count:
        return None, None, "--count (etcd's load generator measures a --duration window)"
    reason = etcd_peer.unavailable()
    if reason is None:
        try:
            load_generator = etcd_peer.build_load_generator(say=partial(_log, args))
        except (etcd_peer.EtcdUnavailable, OSError) as exc:
            reason = str(exc)
    if reason is not None:
        return None, None, reason
    directory.mkdir()
    return etcd_peer.EtcdCluster(directory, args.nodes, load_generator), etcd_peer.etcd_version(), None


def scale_comparison(args: argparse.Namespace, directory: Path) -> list[dict[str, Any]]:
    """raftnode (fsync on) against PySyncObj's two modes at ``SCALE_NODES`` nodes, at each level of
    ``--levels`` from ``SCALE_FROM_LEVEL`` up, alternating as the main run does: ``comparison_rows``."""
    from local_cluster import wait_for_leader

    systems: dict[str, System] = {}
    for name in (RAFTNODE, PSO_BATCH, PSO_NOBATCH):
        (directory / name).mkdir(parents=True)
    systems[RAFTNODE] = RaftnodeSystem(directory / RAFTNODE, SCALE_NODES)
    for name, batch in ((PSO_BATCH, True), (PSO_NOBATCH, False)):
        systems[name] = PySyncObjSystem(directory / name, SCALE_NODES, batch=batch)
    results: dict[int, dict[str, dict[str, Any] | None]] = {}
    try:
        for system in systems.values():
            system.start()
        for system in systems.values():
            wait_for_leader(system.addresses, timeout=30)
        levels = [level for level in args.levels if level >= SCALE_FROM_LEVEL]
        for i, level in enumerate(levels):
            order = list(systems)[::-1] if i % 2 else list(systems)
            _log(args, f"({SCALE_NODES} nodes)")
            results[level] = {name: measure_one(name, systems, None, level, args) for name in order}
    except BaseException:
        for system in systems.values():
            print(system.log_tail(), file=sys.stderr)
        raise
    finally:
        for system in systems.values():
            system.stop()
    return comparison_rows(results)


def run(args: argparse.Namespace) -> dict[str, Any]:
    import trio

    try:
        import pysyncobj  # noqa: F401
    except ImportError:
        raise SystemExit("PySyncObj is not installed: python3 -m pip install -e '.[bench]'") from None
    from local_cluster import wait_for_leader
    from pysyncobj.version import VERSION as pso_version

    base = Path(args.dir) if args.dir else None
    with tempfile.TemporaryDirectory(prefix="compare-pysyncobj-", dir=base) as tmp:
        root = Path(tmp)
        dirs = {}
        for name in (RAFTNODE, RAFTNODE_NOFSYNC, PSO_BATCH, PSO_NOBATCH):
            dirs[name] = root / name
            dirs[name].mkdir()
        systems: dict[str, System] = {
            RAFTNODE: RaftnodeSystem(dirs[RAFTNODE], args.nodes),
            RAFTNODE_NOFSYNC: RaftnodeSystem(dirs[RAFTNODE_NOFSYNC], args.nodes, fsync=False),
            PSO_BATCH: PySyncObjSystem(dirs[PSO_BATCH], args.nodes, batch=True),
            PSO_NOBATCH: PySyncObjSystem(dirs[PSO_NOBATCH], args.nodes, batch=False),
        }
        etcd, etcd_version, etcd_skipped = etcd_peer_for(args, root / ETCD)
        if etcd_skipped is not None:
            _log(args, f"etcd columns skipped: {etcd_skipped}")
        fsync_ms = median_fsync_ms(dirs[RAFTNODE])
        results: dict[int, dict[str, dict[str, Any] | None]] = {}
        failover_times: dict[str, list[float]] = {RAFTNODE: [], PSO_BATCH: []}
        failover_failures: dict[str, int] = {}
        started = time.perf_counter()
        clusters: list[Any] = [*systems.values(), *([etcd] if etcd is not None else [])]
        try:
            for cluster in clusters:
                cluster.start()
            for system in systems.values():
                try:
                    wait_for_leader(system.addresses, timeout=30)
                except TimeoutError as exc:
                    raise TimeoutError(f"{system.name}: {exc}") from None
            for i, level in enumerate(args.levels):
                order = [RAFTNODE, RAFTNODE_NOFSYNC, PSO_BATCH, PSO_NOBATCH]
                if args.batch and level >= BATCH_FROM_LEVEL:
                    order.insert(1, RAFTNODE_BATCH)
                if etcd is not None:
                    order.insert(1, ETCD)
                if i % 2:
                    order.reverse()
                results[level] = {name: measure_one(name, systems, etcd, level, args) for name in order}
            reads_at = reads_level(args.levels)
            reads_report = measure_one(RAFTNODE_READS, systems, etcd, reads_at, args)
            reads_batch_report = measure_one(RAFTNODE_READS_BATCH, systems, etcd, reads_at, args) if args.batch else None
            for run_index in range(args.failover_runs):
                order = [RAFTNODE, PSO_BATCH] if run_index % 2 == 0 else [PSO_BATCH, RAFTNODE]
                for name in order:
                    try:
                        seconds = trio.run(failover_once, systems[name])
                    except Exception as exc:  # noqa: BLE001 - a failed run is counted, not fatal
                        _log(args, f"  failover {name}: failed: {exc!r}")
                        seconds = None
                    if seconds is None:
                        failover_failures[name] = failover_failures.get(name, 0) + 1
                    else:
                        failover_times[name].append(seconds)
                        _log(args, f"failover {run_index + 1} {name:<18} {seconds:.3f} s")
        except BaseException:
            for cluster in clusters:
                print(cluster.log_tail(), file=sys.stderr)
            raise
        finally:
            for cluster in clusters:
                cluster.stop()
        rows, extras, etcd_table = comparison_rows(results), extra_rows(results), etcd_rows(results)
        scale_rows = scale_comparison(args, root / "scale") if args.scale else None
        memory = None
        if args.memory:
            import memory_restart

            _log(args, f"memory: {args.memory:,} commands at {MEMORY_IN_FLIGHT} in flight (memory_restart.py)")
            memory = memory_restart.run_measurement(args.memory, MEMORY_IN_FLIGHT, root)
        found = targets(rows, extras, fsync_ms, args.nodes, etcd_targets(etcd_table, etcd_skipped),
                        reads=reads_target(reads_batch_report, reads_at, batch=args.batch, unbatched=reads_report)
                        if args.batch else reads_target(reads_report, reads_at), scale=None if scale_rows is None else
                        scale_targets(rows, scale_rows, args.nodes), memory=None if memory is None else memory_target(memory))
        return {
            "rows": rows,
            "extra_rows": extras,
            "etcd_rows": etcd_table,
            "etcd": {"version": etcd_version, "skipped": etcd_skipped},
            "targets": found,
            "reads": {"in_flight": reads_at, "report": reads_report, "batch": args.batch,
                      "batch_report": reads_batch_report},
            "scale_rows": scale_rows,
            "memory": memory,
            "median_fsync_ms": round(fsync_ms, 3),
            "runs": {str(level): runs for level, runs in results.items()},
            "failover": failover_summary(failover_times, failover_failures),
            "settings": {
                "levels": list(args.levels),
                "duration": None if args.count else args.duration,
                "rounds": None if args.count else args.rounds,
                "count": args.count,
                "warmup": args.warmup,
                "connections": args.connections,
                "failover_runs": args.failover_runs,
                "nodes": args.nodes,
                "batch": args.batch,
                "scale": args.scale,
                "memory": args.memory,
            },
            "machine": {
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
                "load_average": os.getloadavg(),
                "pysyncobj": pso_version,
            },
            "seconds": round(time.perf_counter() - started, 1),
        }


def parse_levels(text: str) -> tuple[int, ...]:
    try:
        levels = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers") from None
    if not levels or any(level < 1 for level in levels):
        raise argparse.ArgumentTypeError("levels must be positive integers")
    return levels


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", type=parse_levels, default=DEFAULT_LEVELS, help="in-flight levels (default: %(default)s)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--duration", type=float, default=2.0, help="measured seconds per run (default: %(default)s)")
    group.add_argument("--count", type=int, default=None, help="measured commands per run instead of --duration")
    parser.add_argument("--rounds", type=float, default=20.0,
                        help=f"stretch a level's window to this many rounds of the loop at {ROUND_RATE:,} cmds/s "
                             "(default: %(default)s; 16,384 in flight: 16 s)")
    parser.add_argument("--warmup", type=float, default=0.5, help="unmeasured seconds first (default: %(default)s)")
    parser.add_argument("--connections", type=int, default=None, help="client connections (default: min(in-flight, 4))")
    parser.add_argument("--failover-runs", type=int, default=5, help="failover runs per system (default: %(default)s)")
    parser.add_argument("--dir", default=None, help="where the clusters' files go (default: the system temp directory)")
    parser.add_argument("--nodes", type=int, default=3, help="nodes per cluster (default: %(default)s)")
    parser.add_argument("--batch", type=int, default=None,
                        help=f"also measure raftnode with a batching client of up to B commands per request, "
                             f"from {BATCH_FROM_LEVEL} in flight up")
    parser.add_argument("--no-etcd", action="store_true", help="leave out the etcd columns (etcd_peer.py)")
    parser.add_argument("--scale", action="store_true",
                        help=f"also compare at {SCALE_NODES} nodes, from {SCALE_FROM_LEVEL} in flight up")
    parser.add_argument("--memory", type=int, default=None, metavar="N",
                        help="also measure resident memory per node after N commands (memory_restart.py; "
                             "1000000 takes ~5 minutes)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args(argv)
    if args.duration <= 0 or (args.count is not None and args.count < 1) or args.failover_runs < 0 or args.rounds < 0:
        parser.error("--duration, --count, --rounds and --failover-runs must be positive")
    if not 1 <= args.nodes <= 9 or (args.batch is not None and not 2 <= args.batch <= 1024):
        parser.error("--nodes must be 1 to 9 and --batch 2 to 1024")
    if args.memory is not None and args.memory < 1:
        parser.error("--memory must be a positive number of commands")
    report = run(args)
    if args.json:
        print(json.dumps(report))
    else:
        machine = report["machine"]
        print(
            f"raftnode (fsync on) vs PySyncObj {machine['pysyncobj']} (no fsync, better of its two modes), "
            f"{args.nodes} nodes each on 127.0.0.1, {machine['cpus']} CPUs, load average "
            f"{', '.join(f'{x:.2f}' for x in machine['load_average'])}; median fsync {report['median_fsync_ms']} ms"
        )
        print(format_table(report["rows"]))
        print("raftnode with fsync = false (UNSAFE, like for like) and with a batching client (fsync on):")
        print(format_extra_table(report["extra_rows"], args.batch))
        etcd = report["etcd"]
        if etcd["skipped"] is None:
            print(f"raftnode (fsync on) vs etcd {etcd['version']} (fsync on, Put of 16 B), {args.nodes} members, "
                  f"measured alternately at each level:")
            print(format_etcd_table(report["etcd_rows"]))
        else:
            print(f"etcd columns skipped: {etcd['skipped']}")
        if report["scale_rows"] is not None:
            print(f"the same at {SCALE_NODES} nodes, from {SCALE_FROM_LEVEL} in flight up:")
            print(format_table(report["scale_rows"]))
        print("issue 19's targets:")
        print(format_targets(report["targets"]))
        if report["failover"] and args.failover_runs:
            print("failover (kill -9 of the leader -> first command committed by a new leader):")
            print(format_failover(report["failover"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
