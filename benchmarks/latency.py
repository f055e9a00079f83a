"""Single-client run_command latency on a local 3-node cluster of real ``raftnode`` processes.

Starts three ``python -m raftnode`` processes (a temporary directory for the cluster file, the
data and the logs; free loopback ports), waits for a leader, then one client — a
``ClusterClient`` with one connection to the leader and one command in flight — sends N
``incr 1`` commands. Each latency is client -> leader -> fsync and replication to a majority
(each follower fsyncs before it acknowledges) -> apply -> reply. Reports p50/p90/p99/max in ms
and commands per second, then stops the cluster (SIGTERM, SIGKILL after 5 s).

    python3 benchmarks/latency.py [--count 2000] [--warmup 200] [--json]

Issue 4's target on this kind of machine: p50 <= 1 ms and p99 <= 3 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from local_cluster import (  # noqa: E402
    IDS,
    cpu_seconds,
    dump_logs,
    percentile,
    start_cluster,
    stop_cluster,
    wait_for_leader,
    write_cluster,
)

from raftnode.client.trioclient import ClusterClient  # noqa: E402
from raftnode.config import Address  # noqa: E402
from raftnode.wire import requests as wire  # noqa: E402


async def measure(addresses: dict[str, Address], pids: dict[str, int], count: int, warmup: int) -> dict[str, Any]:
    async with ClusterClient(addresses) as client:
        for _ in range(warmup):
            await client.run_command("incr 1", timeout=5)
        latencies = []
        redirects = 0
        perf = time.perf_counter
        cpu_before = {n: cpu_seconds(pid) for n, pid in pids.items()}
        client_cpu_before = time.process_time()
        started = perf()
        for _ in range(count):
            t0 = perf()
            outcome = await client.run_command("incr 1", timeout=5)
            latencies.append(perf() - t0)
            redirects += outcome.attempts - 1
        elapsed = perf() - started
        client_cpu = time.process_time() - client_cpu_before
        cpu_after = {n: cpu_seconds(pid) for n, pid in pids.items()}
        leader = client.leader_hint
        final = await client.call(leader, wire.Status())
    latencies.sort()
    ms = [x * 1000 for x in latencies]
    return {
        "count": count,
        "p50_ms": round(percentile(ms, 50), 3),
        "p90_ms": round(percentile(ms, 90), 3),
        "p99_ms": round(percentile(ms, 99), 3),
        "max_ms": round(ms[-1], 3),
        "mean_ms": round(sum(ms) / len(ms), 3),
        "commands_per_s": round(count / elapsed, 1),
        "leader": leader,
        "extra_attempts": redirects,
        "final_value": final["state"].get("value"),
        # CPU time per command (ms): how much of the latency is computation, whatever the load.
        "cpu_ms_per_command": {
            **{
                n: round((cpu_after[n] - cpu_before[n]) * 1000 / count, 3)  # type: ignore[operator]
                for n in pids
                if cpu_before[n] is not None and cpu_after[n] is not None
            },
            "client": round(client_cpu * 1000 / count, 3),
        },
        "fsyncs_on_leader": final["stats"].get("fsyncs"),
        "leader_stats": {k: final["stats"].get(k) for k in ("fsync_max_ms", "turn_max_ms", "batches")},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="timed commands (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=200, help="untimed commands first (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if args.count < 1:
        parser.error("--count must be at least 1")

    with tempfile.TemporaryDirectory(prefix="raftnode-latency-") as tmp:
        directory = Path(tmp)
        addresses = write_cluster(directory)
        procs = start_cluster(directory)
        try:
            pids = {node_id: proc.pid for node_id, proc in zip(IDS, procs)}
            wait_for_leader(addresses)
            report = trio.run(measure, addresses, pids, args.count, args.warmup)
        except BaseException:
            dump_logs(directory)
            raise
        finally:
            exit_codes = stop_cluster(procs)
    report["python"] = platform.python_version()
    report["cpus"] = os.cpu_count()
    report["node_exit_codes"] = exit_codes
    if args.json:
        print(json.dumps(report))
    else:
        print(
            f"{report['count']} x incr 1, one client, in-flight 1, leader {report['leader']}:\n"
            f"  p50 {report['p50_ms']:.3f} ms  p90 {report['p90_ms']:.3f} ms  p99 {report['p99_ms']:.3f} ms  "
            f"max {report['max_ms']:.3f} ms  mean {report['mean_ms']:.3f} ms\n"
            f"  {report['commands_per_s']:.0f} commands/s  (node exit codes {exit_codes})\n"
            f"  CPU ms per command: {report['cpu_ms_per_command']}\n"
            f"  leader fsyncs {report['fsyncs_on_leader']}, stats {report['leader_stats']}, load {os.getloadavg()[0]:.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
