"""Committed proposals per second through a 3-node cluster of pure cores, with no I/O.

A closed loop keeps WINDOW proposals outstanding at the leader; each round every node hands
out its Ready (entries "persisted" to a list, messages queued, committed entries counted), then
every queued message is delivered. This measures the protocol core alone: no sockets, no disk,
no state machine. Run: ``python3 benchmarks/core_throughput.py [--count N] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections import deque

from raftnode.core import Raft, RaftConfig, Role


def build_cluster(size: int, seed: int) -> dict[str, Raft]:
    ids = tuple(f"n{i}" for i in range(1, size + 1))
    rng = random.Random(seed)
    nodes = {
        i: Raft(RaftConfig(node_id=i, voters=ids, max_msg_entries=4096, max_inflight=16), rng=random.Random(rng.random()))
        for i in ids
    }
    return nodes


def run(count: int, window: int, size: int = 3, seed: int = 1) -> dict:
    nodes = build_cluster(size, seed)
    disks: dict[str, list] = {i: [] for i in nodes}
    inbox: deque = deque()
    applied = 0

    def process(node_id: str) -> int:
        raft = nodes[node_id]
        done = 0
        while raft.has_ready():
            ready = raft.ready()
            if ready.entries:
                disk = disks[node_id]
                del disk[ready.entries[0].index - 1 :]
                disk.extend(ready.entries)
            inbox.extend(ready.messages)
            if node_id == leader_id:
                done += len(ready.committed)
            raft.advance(ready)
        return done

    # Elect n1 deterministically: tick it past its timeout first.
    leader_id = "n1"
    while nodes[leader_id].role is not Role.LEADER:
        nodes[leader_id].tick()
        for node_id in nodes:
            process(node_id)
        while inbox:
            m = inbox.popleft()
            nodes[m.dst].step(m)
            process(m.dst)
    leader = nodes[leader_id]
    for node_id in nodes:
        process(node_id)
    base = leader.applied
    payload = b"incr 1"
    proposed = 0
    started_wall, started_cpu = time.perf_counter(), time.process_time()
    rounds = 0
    while applied < count:
        outstanding = proposed - applied
        for _ in range(min(window - outstanding, count - proposed)):
            leader.propose(payload)
            proposed += 1
        applied += process(leader_id)
        while inbox:
            m = inbox.popleft()
            nodes[m.dst].step(m)
            applied += process(m.dst)
        rounds += 1
    wall, cpu = time.perf_counter() - started_wall, time.process_time() - started_cpu
    assert leader.role is Role.LEADER and leader.commit >= base + count
    return {
        "window": window,
        "committed": applied,
        "rounds": rounds,
        "seconds": round(wall, 3),
        "entries_per_s": round(applied / wall),
        "cpu_us_per_entry": round(cpu / applied * 1e6, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200_000)
    parser.add_argument("--windows", default="1,64,1024,8192")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = [run(args.count if int(w) > 1 else min(args.count, 20_000), int(w)) for w in args.windows.split(",")]
    if args.json:
        print(json.dumps(results))
        return
    print(f"{'window':>8} {'committed':>10} {'entries/s':>12} {'CPU us/entry':>13}")
    for r in results:
        print(f"{r['window']:>8} {r['committed']:>10} {r['entries_per_s']:>12,} {r['cpu_us_per_entry']:>13}")


if __name__ == "__main__":
    main()
