"""Linearizable reads against writes, in one run: issue 14's target (reads ≥ 3× the writes/s at 512
in flight) and issue 19's (reads ≥ 150,000/s on 3 nodes), each printed with met / not met.

    python3 benchmarks/reads_vs_writes.py [--in-flight 512] [--duration 5] [--rounds 2] [--spread] [--batch B]

A fresh 3-node ``counter`` cluster in a temporary directory (``raftctl init --base-port auto``,
``up``), then ``raftctl bench --command "incr 1"`` and ``raftctl bench --command get`` (a query:
ReadIndex, no log entry) in turn, ``--rounds`` times, as a user would run them; the machine is
shared, so the two alternate and the ratio is of the totals over all rounds. ``--spread`` sends
the reads to every node (followers ask the leader for the read index); ``--batch B`` sends them as
``query_many`` requests of up to B reads (``raftctl bench --batch``; the writes still go one per
request, so the ratio then compares batched reads with plain writes). Exit 0 when the ratio
target is met, 1 when not, 2 when the cluster or a bench run failed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RATIO_TARGET = 3.0
READS_TARGET = 150_000


def raftctl(config: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    argv = [sys.executable, "-m", "raftctl", "--config", str(config), *args]
    return subprocess.run(argv, env=env, capture_output=True, text=True, check=check, timeout=600)


def bench(config: Path, command: str, args: argparse.Namespace, *extra: str) -> dict:
    done = raftctl(config, "bench", "--command", command, "--in-flight", str(args.in_flight),
                   "--duration", str(args.duration), "--warmup", "0.5", "--json", *extra, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"bench {command!r} exited {done.returncode}: {done.stderr.strip()[-500:]}")
    return json.loads(done.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--in-flight", type=int, default=512)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--spread", action="store_true", help="reads to every node, not only the leader")
    parser.add_argument("--batch", type=int, default=1, help="reads per query_many request (1: one query each)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="reads-vs-writes-") as directory:
        config = Path(directory) / "cluster.toml"
        try:
            raftctl(config, "init", "--base-port", "auto")
            raftctl(config, "up")
            runs = {"writes": [], "reads": []}
            for _ in range(args.rounds):
                runs["writes"].append(bench(config, "incr 1", args))
                runs["reads"].append(bench(config, "get", args, *reads_options(args)))
        except (subprocess.CalledProcessError, RuntimeError) as exc:
            print(f"failed: {getattr(exc, 'stderr', None) or exc}", file=sys.stderr)
            return 2
        finally:
            raftctl(config, "down", check=False)
    return report(runs, args)


def reads_options(args: argparse.Namespace) -> list[str]:
    """The reads run's bench options beyond the writes': ``--spread``, ``--batch``."""
    batch = getattr(args, "batch", 1)
    return (["--spread"] if args.spread else []) + (["--batch", str(batch)] if batch > 1 else [])


def report(runs: dict[str, list[dict]], args: argparse.Namespace) -> int:
    batch = getattr(args, "batch", 1)
    print(f"3 nodes, {args.in_flight} in flight, {args.rounds} × {args.duration:g} s each, alternating"
          f"{' (reads spread over every node)' if args.spread else ''}"
          f"{f' (reads in query_many batches of {batch})' if batch > 1 else ''}")
    print(f"{'':8} {'cmds/s per round':>28} {'p50 / p99 ms (last)':>22} {'leader CPU µs/cmd':>18}")
    rates = {}
    for name, results in runs.items():
        rates[name] = sum(r["acknowledged"] for r in results) / sum(r["seconds"] for r in results)
        last = results[-1]
        cpu = sum(r["cpu_seconds"]["nodes"][r["leader"]] for r in results)
        per = 1e6 * cpu / max(1, sum(r["acknowledged"] + r.get("warmup_acknowledged", 0) for r in results))
        per_round = ", ".join(f"{r['throughput']:,.0f}" for r in results)
        print(f"{name:8} {per_round:>28} "
              f"{last['latency_ms']['p50']:>10.2f} / {last['latency_ms']['p99']:<9.2f} {per:>18.1f}")
    ratio = rates["reads"] / rates["writes"]
    ratio_met = ratio >= RATIO_TARGET
    print(f"reads / writes: {rates['reads']:,.0f} / {rates['writes']:,.0f} = {ratio:.2f}×  "
          f"(target ≥ {RATIO_TARGET:g}×: {'met' if ratio_met else 'not met'})")
    print(f"reads/s: {rates['reads']:,.0f}  (target ≥ {READS_TARGET:,}: "
          f"{'met' if rates['reads'] >= READS_TARGET else 'not met'})")
    return 0 if ratio_met else 1


if __name__ == "__main__":
    sys.exit(main())
