"""What authentication and mutual TLS cost: ``raftctl bench`` against three clusters, in one run.

Three 3-node clusters run side by side for the whole run: ``none`` (``peer_auth = false``, no
tokens: allowed on loopback only), ``auth`` (the defaults of ``raftctl init`` -- the HMAC peer
handshake -- plus ``client_auth = true``, a client token in every request) and ``TLS``
(``raftctl init --tls``, with the same authentication inside). At each in-flight level the runs
go in a mirrored order (none, auth, TLS, TLS, auth, none; ``--repeats`` times) so that a change of
the machine's load falls on all, and the table gives the median of each, as ratios to ``none``.
Only one cluster is loaded at a time.

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
        configs = {mode: make_cluster(Path(tmp) / mode, mode) for mode in MODES}
        try:
            for config in configs.values():
                raftctl(config, "up")
            rows = []
            for in_flight in args.in_flight:
                runs: dict[str, list[dict]] = {mode: [] for mode in MODES}
                for _ in range(args.repeats):
                    for mode in (*MODES, *reversed(MODES)):
                        runs[mode].append(bench(configs[mode], in_flight, args.duration))
                rows.append((in_flight, {mode: summary(reports) for mode, reports in runs.items()}))
                print_row(*rows[-1], flush=True)
        finally:
            for config in configs.values():
                subprocess.run([sys.executable, "-m", "raftctl", "--config", str(config), "down", "--purge"],
                               capture_output=True, env={**os.environ, "PYTHONPATH": str(REPO)}, check=False)
    print("\n| in flight | commands/s none | auth | TLS | auth/none | TLS/none | p50 ms none | auth | TLS | p99 ms none | auth | TLS |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for in_flight, modes in rows:
        none, auth, tls = (modes[mode] for mode in MODES)
        print(f"| {in_flight} | {none['throughput']:,.0f} | {auth['throughput']:,.0f} | {tls['throughput']:,.0f} "
              f"| {auth['throughput'] / none['throughput']:.2f} | {tls['throughput'] / none['throughput']:.2f} "
              f"| {none['p50']:.2f} | {auth['p50']:.2f} | {tls['p50']:.2f} "
              f"| {none['p99']:.2f} | {auth['p99']:.2f} | {tls['p99']:.2f} |")


MODES = ("none", "auth", "TLS")


def make_cluster(directory: Path, mode: str) -> Path:
    """A cluster file for ``mode`` (see the module docstring) in ``directory``, on free ports."""
    directory.mkdir()
    config = directory / "cluster.toml"
    raftctl(config, "init", "--base-port", str(free_base_port(3)), *(["--tls"] if mode == "TLS" else []))
    text = config.read_text()
    assert "peer_auth = true\nclient_auth = false\n" in text, "raftctl init's defaults changed"
    auth = "peer_auth = false\nclient_auth = false\n" if mode == "none" else "peer_auth = true\nclient_auth = true\n"
    config.write_text(text.replace("peer_auth = true\nclient_auth = false\n", auth))
    return config


def summary(reports: list[dict]) -> dict[str, float]:
    """Medians over the runs: throughput and the p50 and p99 latencies."""
    return {
        "throughput": statistics.median(r["throughput"] for r in reports),
        "p50": statistics.median(r["latency_ms"]["p50"] for r in reports),
        "p99": statistics.median(r["latency_ms"]["p99"] for r in reports),
    }


def print_row(in_flight: int, modes: dict[str, dict[str, float]], *, flush: bool = False) -> None:
    print(f"in flight {in_flight}: " + ", ".join(f"{mode} {summary}" for mode, summary in modes.items()), flush=flush)


if __name__ == "__main__":
    main()
