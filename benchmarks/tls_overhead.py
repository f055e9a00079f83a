"""What mutual TLS costs: ``raftctl bench`` against a plaintext and a TLS cluster, in one run.

Both 3-node clusters (``raftctl init`` and ``raftctl init --tls``, on free ports) run side by side
for the whole run; at each in-flight level the runs alternate ABBA (``--repeats`` times) so that
a change of the machine's load falls on both, and the table gives the median of each. Only one
cluster is loaded at a time.

    PYTHONPATH=$PWD python3 benchmarks/tls_overhead.py --duration 3 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from raftctl.supervisor import free_base_port  # noqa: E402


def raftctl(config: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "raftctl", "--config", str(config), *args], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "PYTHONPATH": str(REPO)}, check=False)
    if done.returncode != 0:
        raise SystemExit(f"raftctl {' '.join(args)}: exit {done.returncode}\n{done.stdout}{done.stderr}")
    return done


def bench(config: Path, in_flight: int, duration: float) -> dict:
    return json.loads(raftctl(config, "bench", "--in-flight", str(in_flight), "--duration", str(duration),
                              "--json").stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per bench run (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=2, help="ABBA rounds per level (default: %(default)s)")
    parser.add_argument("--in-flight", type=int, nargs="+", default=[1, 64, 512])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tls-bench-") as tmp:
        configs = {}
        for mode in ("off", "on"):
            directory = Path(tmp) / mode
            directory.mkdir()
            configs[mode] = directory / "cluster.toml"
            raftctl(configs[mode], "init", "--base-port", str(free_base_port(3)), *(["--tls"] if mode == "on" else []))
        try:
            for config in configs.values():
                raftctl(config, "up")
            rows = []
            for in_flight in args.in_flight:
                runs: dict[str, list[dict]] = {"off": [], "on": []}
                for _ in range(args.repeats):
                    for mode in ("off", "on", "on", "off"):
                        runs[mode].append(bench(configs[mode], in_flight, args.duration))
                rows.append((in_flight, {mode: summary(reports) for mode, reports in runs.items()}))
                print_row(*rows[-1], flush=True)
        finally:
            for config in configs.values():
                subprocess.run([sys.executable, "-m", "raftctl", "--config", str(config), "down", "--purge"],
                               capture_output=True, env={**os.environ, "PYTHONPATH": str(REPO)}, check=False)
    print("\n| in flight | commands/s off | commands/s TLS | TLS/off | p50 ms off | p50 ms TLS | p99 ms off | p99 ms TLS |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for in_flight, modes in rows:
        off, on = modes["off"], modes["on"]
        print(f"| {in_flight} | {off['throughput']:,.0f} | {on['throughput']:,.0f} | {on['throughput'] / off['throughput']:.2f} "
              f"| {off['p50']:.2f} | {on['p50']:.2f} | {off['p99']:.2f} | {on['p99']:.2f} |")


def summary(reports: list[dict]) -> dict[str, float]:
    """Medians over the runs: throughput and the p50 and p99 latencies."""
    return {
        "throughput": statistics.median(r["throughput"] for r in reports),
        "p50": statistics.median(r["latency_ms"]["p50"] for r in reports),
        "p99": statistics.median(r["latency_ms"]["p99"] for r in reports),
    }


def print_row(in_flight: int, modes: dict[str, dict[str, float]], *, flush: bool = False) -> None:
    print(f"in flight {in_flight}: off {modes['off']}, TLS {modes['on']}", flush=flush)


if __name__ == "__main__":
    main()
