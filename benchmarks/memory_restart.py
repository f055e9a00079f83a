"""Memory after a million commands, and restart time from snapshot plus log (issue 3's targets).

Starts a local 3-node cluster of real processes with the default snapshot threshold, drives
``--count`` ``incr 1`` commands through the leader with ``--in-flight`` outstanding at once, then
reports each node's resident memory (now and peak). Then it kills a follower with SIGKILL,
starts it again, and reports how long it took to serve again (storage loaded: snapshot plus the
log after it) and to catch up with the leader.

    python3 benchmarks/memory_restart.py [--count 1000000] [--in-flight 256] [--json]

Targets: under 100 MB resident after 1,000,000 applied commands; restart in under 2 s.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from local_cluster import IDS, memory_kib, start_cluster, start_node, stop_cluster, write_cluster  # noqa: E402

from raftnode.client.trioclient import ClientError, ClusterClient  # noqa: E402
from raftnode.wire import requests as wire  # noqa: E402


async def node_status(client: ClusterClient, node_id: str) -> dict[str, Any] | None:
    try:
        answer = await client.call(node_id, wire.Status(), timeout=1)
    except ClientError:
        return None
    return answer if answer.get("ok") else None


async def wait_leader(client: ClusterClient) -> str:
    while True:
        for node_id in IDS:
            status = await node_status(client, node_id)
            if status is not None and status["role"] == "leader":
                return node_id
        await trio.sleep(0.05)


async def drive(client: ClusterClient, leader: str, count: int, in_flight: int) -> float:
    connection = await client.connect(leader)
    sent = done = 0
    started = time.perf_counter()

    async def worker() -> None:
        nonlocal sent, done
        while sent < count:
            sent += 1
            answer = await connection.call(wire.RunCommand("incr 1", 30))
            if not answer.get("ok"):
                raise RuntimeError(f"command refused: {answer}")
            done += 1
            if done % 100_000 == 0:
                print(f"  {done:,} commands, {done / (time.perf_counter() - started):,.0f}/s", file=sys.stderr)

    async with trio.open_nursery() as nursery:
        for _ in range(in_flight):
            nursery.start_soon(worker)
    return time.perf_counter() - started


async def measure(directory: Path, addresses: dict, procs: list, count: int, in_flight: int) -> dict[str, Any]:
    async with ClusterClient(addresses) as client:
        leader = await wait_leader(client)
        seconds = await drive(client, leader, count, in_flight)
        statuses = {n: await node_status(client, n) for n in IDS}
        memory = {n: memory_kib(p.pid) for n, p in zip(IDS, procs)}
        victim = next(n for n in IDS if n != leader)
        index = IDS.index(victim)
        procs[index].send_signal(signal.SIGKILL)
        procs[index].wait()
        restarted_at = time.perf_counter()
        procs[index] = start_node(directory, victim)
        while (status := await node_status(client, victim)) is None:
            await trio.sleep(0.01)
        serving = time.perf_counter() - restarted_at
        recovered_index = status["applied_index"]
        target = statuses[leader]["commit_index"]
        while (status := await node_status(client, victim)) is None or status["applied_index"] < target:
            await trio.sleep(0.01)
        caught_up = time.perf_counter() - restarted_at
    return {
        "commands": count,
        "in_flight": in_flight,
        "seconds": round(seconds, 1),
        "commands_per_s": round(count / seconds),
        "memory_mib": {n: {k: round(v / 1024, 1) for k, v in m.items()} for n, m in memory.items()},
        "snapshot_index": {n: s["snapshot_index"] for n, s in statuses.items() if s},
        "restart": {
            "node": victim,
            "serving_s": round(serving, 3),
            "recovered_applied_index": recovered_index,
            "caught_up_s": round(caught_up, 3),
        },
    }


def run_measurement(count: int, in_flight: int, base: Path | None = None) -> dict[str, Any]:
    """``measure`` on a fresh 3-node cluster in a temporary directory (under ``base``), stopped after."""
    with tempfile.TemporaryDirectory(prefix="raft-memory-", dir=base) as tmp:
        directory = Path(tmp)
        addresses = write_cluster(directory)
        procs = start_cluster(directory)
        try:
            return trio.run(measure, directory, addresses, procs, count, in_flight)
        finally:
            stop_cluster(procs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--in-flight", type=int, default=256)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run_measurement(args.count, args.in_flight)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{result['commands']:,} commands in {result['seconds']} s ({result['commands_per_s']:,}/s, in-flight {result['in_flight']})")
    for node_id, m in result["memory_mib"].items():
        print(f"  {node_id}: resident {m.get('VmRSS')} MiB, peak {m.get('VmHWM')} MiB, snapshot at {result['snapshot_index'].get(node_id)}")
    r = result["restart"]
    print(f"  restart of {r['node']} after kill -9: serving after {r['serving_s']} s "
          f"(recovered applied index {r['recovered_applied_index']:,}), caught up after {r['caught_up_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
