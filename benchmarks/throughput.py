"""Closed-loop throughput on a local 3-node cluster of real ``raftnode`` processes (fsync on).

Starts three ``python -m raftnode`` processes (as ``latency.py`` does), waits for a leader, then
for each in-flight level keeps exactly that many ``incr 1`` commands outstanding at the leader,
pipelined over a few client connections: each answer is replaced by a new request at once
(closed loop). Reports committed commands/s, latency p50/p99/max and CPU seconds per node
process (and per command), then stops the cluster.

    python3 benchmarks/throughput.py [--levels 1,8,64,512,4096] [--duration 5] [--warmup 1]
                                     [--connections 4] [--clients 1] [--json]

The load generator must not be the bottleneck, so it is lean and off trio: blocking sockets and
``selectors`` in one thread per client process, request frames built by formatting bytes, and
answers matched to requests by reading only the ``id`` field (a full JSON parse only for
answers that are not plain successes). Its own CPU use is reported too (``client_cpu_s``): on a
2-core machine it competes with the three nodes, which is part of what the figures include.

Issue 7's targets (fsync on): >= 6,000 cmds/s at 8 in flight, >= 9,400 at 64, >= 13,400 at
512, >= 43,000 at 4,096, and a peak of >= 100,000 committed commands/s.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import selectors
import socket
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from local_cluster import IDS, cpu_seconds, dump_logs, percentile, start_cluster, stop_cluster, wait_for_leader, write_cluster  # noqa: E402

from raftnode.client.trioclient import ClientError, ClusterClient  # noqa: E402
from raftnode.config import Address  # noqa: E402
from raftnode.wire import requests as wire  # noqa: E402
from raftnode.wire.codec import PROTOCOL_VERSION, FrameKind, encode_json  # noqa: E402

_HEAD = struct.Struct(">IBB")
_LEN = struct.Struct(">I")
_REQUEST = encode_json(wire.document(wire.RunCommand("incr 1", 30)))[:-1] + b',"id":%d}'


def _frame(request_id: int) -> bytes:
    payload = _REQUEST % request_id
    return _HEAD.pack(len(payload) + 2, PROTOCOL_VERSION, FrameKind.CLIENT_REQUEST) + payload


def _answer_id(payload: bytes) -> tuple[int, bool]:
    """(request id, plain success) of a response; the node puts ``id`` last."""
    at = payload.rfind(b'"id":')
    if at != -1 and payload.endswith(b"}") and payload.startswith(b'{"ok":true'):
        try:
            return int(payload[at + 5 : -1]), True
        except ValueError:
            pass
    document = json.loads(payload)
    return int(document["id"]), bool(document.get("ok"))


def client_worker(
    address: tuple[str, int], in_flight: int, connections: int, warmup: float, duration: float, out: Any
) -> None:
    """One client process: ``in_flight`` commands outstanding over ``connections`` connections."""
    sel = selectors.DefaultSelector()
    conns = []
    for i in range(min(connections, in_flight)):
        sock = socket.create_connection(address)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        share = in_flight // connections + (1 if i < in_flight % connections else 0)
        state = {"sock": sock, "buf": bytearray(), "share": share, "out": bytearray()}
        conns.append(state)
        sel.register(sock, selectors.EVENT_READ, state)
    perf = time.perf_counter
    sent_at: dict[int, float] = {}
    next_id = 1
    latencies: list[float] = []
    done = errors = 0
    start = perf()
    measure_from = start + warmup
    stop_at = measure_from + duration
    cpu_start = None

    def send(state: dict[str, Any], count: int) -> None:
        nonlocal next_id
        now = perf()
        frames = []
        for _ in range(count):
            sent_at[next_id] = now
            frames.append(_frame(next_id))
            next_id += 1
        state["out"] += b"".join(frames)
        flush(state)

    def flush(state: dict[str, Any]) -> None:
        out = state["out"]
        if out:
            try:
                n = state["sock"].send(out)
            except BlockingIOError:
                n = 0
            del out[:n]
            sel.modify(state["sock"], selectors.EVENT_READ | (selectors.EVENT_WRITE if out else 0), state)

    for state in conns:
        send(state, state["share"])
    measuring = False
    while True:
        now = perf()
        if not measuring and now >= measure_from:
            measuring, done, errors, latencies = True, 0, 0, []
            cpu_start = time.process_time()
            measured_start = now
        if now >= stop_at:
            break
        for key, mask in sel.select(timeout=0.5):
            state = key.data
            if mask & selectors.EVENT_WRITE:
                flush(state)
            if not mask & selectors.EVENT_READ:
                continue
            data = state["sock"].recv(1 << 20)
            if not data:
                raise SystemExit("the node closed a client connection")
            buf = state["buf"]
            buf += data
            pos, n, answered = 0, len(buf), 0
            arrived = perf()
            while n - pos >= 6:
                (length,) = _LEN.unpack_from(buf, pos)
                end = pos + 4 + length
                if end > n:
                    break
                request_id, ok = _answer_id(bytes(buf[pos + 6 : end]))
                pos = end
                t0 = sent_at.pop(request_id, None)
                if t0 is None:
                    continue
                answered += 1
                if measuring:
                    if ok:
                        done += 1
                        latencies.append(arrived - t0)
                    else:
                        errors += 1
            del buf[:pos]
            if answered:
                send(state, answered)
    elapsed = perf() - measured_start
    cpu = time.process_time() - (cpu_start or 0.0)
    for state in conns:
        state["sock"].close()
    out.put({"done": done, "errors": errors, "elapsed": elapsed, "cpu": cpu, "latencies": latencies})


async def leader_status(addresses: dict[str, Address], leader: str) -> dict[str, Any]:
    async with ClusterClient(addresses) as client:
        return await client.call(leader, wire.Status())


async def cluster_view(addresses: dict[str, Address]) -> dict[str, Any]:
    """Every node's term, role, leader and election events so far (to count elections per level)."""
    view: dict[str, Any] = {}
    async with ClusterClient(addresses) as client:
        for node in IDS:
            try:
                status = await client.call(node, wire.Status(), timeout=2)
                events = (await client.call(node, wire.RecentEvents(), timeout=2)).get("events", [])
            except ClientError:
                continue
            view[node] = {
                "term": status.get("term"),
                "role": status.get("role"),
                "leader": status.get("leader"),
                "inbox_dropped": status.get("stats", {}).get("inbox_dropped"),
                "elections": sum(1 for e in events if e["kind"] in ("election", "pre-vote")),
                "step_downs": [e["detail"] for e in events if e["kind"] == "step-down"],
            }
    return view


def run_level(
    address: Address, pids: dict[str, int], in_flight: int, args: argparse.Namespace
) -> dict[str, Any]:
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    clients = max(1, min(args.clients, in_flight))
    workers = []
    for i in range(clients):
        share = in_flight // clients + (1 if i < in_flight % clients else 0)
        workers.append(
            ctx.Process(
                target=client_worker,
                args=((address.host, address.port), share, args.connections, args.warmup, args.duration, out),
            )
        )
    for w in workers:
        w.start()
    time.sleep(args.warmup)
    cpu_before = {n: cpu_seconds(pid) for n, pid in pids.items()}
    results = [out.get(timeout=args.warmup + args.duration + 60) for _ in workers]
    cpu_after = {n: cpu_seconds(pid) for n, pid in pids.items()}
    for w in workers:
        w.join()
    done = sum(r["done"] for r in results)
    elapsed = max(r["elapsed"] for r in results)
    latencies = sorted(x for r in results for x in r["latencies"])
    ms = [x * 1000 for x in latencies]
    cpu = {n: round(cpu_after[n] - cpu_before[n], 2) for n in pids if cpu_before[n] is not None}
    return {
        "in_flight": in_flight,
        "commands": done,
        "errors": sum(r["errors"] for r in results),
        "cmds_per_s": round(done / elapsed, 1),
        "p50_ms": round(percentile(ms, 50), 3) if ms else float("nan"),
        "p99_ms": round(percentile(ms, 99), 3) if ms else float("nan"),
        "max_ms": round(ms[-1], 3) if ms else None,
        "cpu_s": cpu,  # CPU seconds of each node process over (about) the measured window
        "cpu_us_per_cmd": {n: round(c * 1e6 / done, 1) for n, c in cpu.items()} if done else {},
        "client_cpu_s": round(sum(r["cpu"] for r in results), 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="1,8,64,512,4096", help="in-flight levels (default: %(default)s)")
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds per level (default: %(default)s)")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds first (default: %(default)s)")
    parser.add_argument("--connections", type=int, default=4, help="connections per client process (default: %(default)s)")
    parser.add_argument("--clients", type=int, default=1, help="client processes (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]

    with tempfile.TemporaryDirectory(prefix="raftnode-throughput-") as tmp:
        directory = Path(tmp)
        addresses = write_cluster(directory)
        procs = start_cluster(directory)
        rows = []
        try:
            pids = {node_id: proc.pid for node_id, proc in zip(IDS, procs)}
            leader = wait_for_leader(addresses, timeout=20)
            for level in levels:
                before = trio.run(cluster_view, addresses)
                row = run_level(addresses[leader], pids, level, args)
                after = trio.run(cluster_view, addresses)
                terms = [v["term"] for v in after.values()], [v["term"] for v in before.values()]
                row["term_changes"] = max(terms[0]) - max(terms[1])
                row["elections"] = sum(after[n]["elections"] - before.get(n, after[n])["elections"] for n in after)
                row["step_downs"] = [d for n in after for d in after[n]["step_downs"][len(before.get(n, {}).get("step_downs", [])):]]
                row["inbox_dropped"] = {n: after[n]["inbox_dropped"] for n in after}
                if row["term_changes"] or row["elections"]:
                    leader = wait_for_leader(addresses, timeout=20)  # follow the new leader
                rows.append(row)
                if not args.json:
                    print(
                        f"in-flight {level:>5}: {row['cmds_per_s']:>9,.0f} cmds/s  p50 {row['p50_ms']:8.3f} ms  "
                        f"p99 {row['p99_ms']:8.3f} ms  errors {row['errors']}  CPU s/node {row['cpu_s']}  "
                        f"CPU us/cmd {row['cpu_us_per_cmd']}  client CPU s {row['client_cpu_s']}  "
                        f"elections {row['elections']} term changes {row['term_changes']} "
                        f"inbox dropped {row['inbox_dropped']} {row['step_downs'] or ''} load {os.getloadavg()[0]:.1f}",
                        flush=True,
                    )
            status = trio.run(leader_status, addresses, leader)
        except BaseException:
            dump_logs(directory)
            raise
        finally:
            exit_codes = stop_cluster(procs)
    report = {
        "leader": leader,
        "levels": rows,
        "peak_cmds_per_s": max(r["cmds_per_s"] for r in rows),
        "leader_stats": {k: status["stats"].get(k) for k in ("fsyncs", "fsync_max_ms", "keepalive_heartbeats", "batches", "inbox_dropped", "peer_dropped", "turn_max_ms", "turns_over_50ms", "sent", "dropped")},
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "node_exit_codes": exit_codes,
    }
    if args.json:
        print(json.dumps(report))
    else:
        print(f"peak {report['peak_cmds_per_s']:,.0f} cmds/s; leader {leader} stats {report['leader_stats']}; exit codes {exit_codes}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
