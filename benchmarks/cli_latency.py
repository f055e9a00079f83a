"""How long a ``raftctl`` command takes as a new process, interpreter start-up included.

Writes a cluster file for N nodes (``raftctl init``, free loopback ports) in a temporary
directory, starts the cluster (``raftctl up``), then times R runs of each command as a user runs
it -- a new ``python -m raftctl`` process each time, wall clock from spawn to exit -- and prints
min / median / p90 / max per command. With ``--importtime`` it also runs each command under
``python -X importtime`` and reports the median total import time, a figure much less noisy
than wall clock on a shared machine. The cluster is stopped and purged at the end
(``raftctl down --purge``), whatever happens.

    python3 benchmarks/cli_latency.py [--nodes 5] [--runs 10] [--importtime] [--cached-bytecode] [--json]

Issue 5's targets: ``raftctl status`` on a running 5-node cluster within 300 ms, and a
``run-command`` round trip within 400 ms.

Bytecode: with ``PYTHONDONTWRITEBYTECODE=1`` in the environment (as on CI machines and in some
containers) every run compiles raftctl's and raftnode's sources again; a normal install has them
compiled once. ``--cached-bytecode`` measures the normal case: the compiled files go to a
temporary ``PYTHONPYCACHEPREFIX`` (nothing is written into the repository), warmed by the first
runs, which are not counted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from local_cluster import free_base_port, percentile  # noqa: E402

COMMANDS = {
    "status": ["status"],
    "status --json": ["status", "--json"],
    "run-command incr 1": ["run-command", "incr", "1"],
    "leader": ["leader"],
}
TARGETS_MS = {"status": 300, "status --json": 300, "run-command incr 1": 400}


class Raftctl:
    """``python -m raftctl --config <file>`` as a new process, in an environment of our choosing."""

    def __init__(self, config: Path, env: dict[str, str]) -> None:
        self.config = config
        self.env = env

    def argv(self, args: list[str], *, python_flags: tuple[str, ...] = ()) -> list[str]:
        return [sys.executable, *python_flags, "-m", "raftctl", "--config", str(self.config), *args]

    def run(self, args: list[str], *, timeout: float = 60, python_flags: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(args, python_flags=python_flags),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env,
            cwd=self.config.parent,
            check=False,
        )

    def must(self, args: list[str], *, timeout: float = 60) -> str:
        done = self.run(args, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"raftctl {' '.join(args)}: exit {done.returncode}\n{done.stdout}{done.stderr}")
        return done.stdout

    def timed(self, args: list[str]) -> tuple[float, float]:
        """Seconds from spawn to exit of one run (which must succeed), and the CPU seconds
        (user + system) it used: less sensitive than wall clock to other load on the machine."""
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run(
            self.argv(args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=self.env, cwd=self.config.parent, timeout=60, check=False
        )
        elapsed = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            raise RuntimeError(f"raftctl {' '.join(args)}: exit {done.returncode}: {done.stderr.decode(errors='replace')}")
        return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)

    def import_seconds(self, args: list[str]) -> float:
        """Total import time of one run, from ``-X importtime`` (the sum over top-level imports)."""
        done = self.run(args, python_flags=("-X", "importtime"))
        if done.returncode != 0:
            raise RuntimeError(f"raftctl {' '.join(args)}: exit {done.returncode}: {done.stderr}")
        total = 0
        for line in done.stderr.splitlines():
            if not line.startswith("import time:") or "cumulative" in line:
                continue
            _, cumulative, name = line[len("import time:") :].split("|")
            if not name.startswith("  "):  # one space of indentation: a top-level import
                total += int(cumulative)
        return total / 1e6


def summary(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    return {
        "min_ms": round(ordered[0] * 1000, 1),
        "median_ms": round(statistics.median(ordered) * 1000, 1),
        "p90_ms": round(percentile(ordered, 90) * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
    }


@contextlib.contextmanager
def running_cluster(nodes: int, env: dict[str, str]) -> Iterator[Raftctl]:
    with tempfile.TemporaryDirectory(prefix="raftctl-cli-latency-") as directory:
        raftctl = Raftctl(Path(directory) / "cluster.toml", env)
        raftctl.must(["init", "--nodes", str(nodes), "--base-port", str(free_base_port(nodes))])
        try:
            raftctl.must(["up", "--timeout", "20"], timeout=60)
            raftctl.must(["wait", "--converged", "--timeout", "20"], timeout=60)
            yield raftctl
        finally:
            raftctl.run(["down", "--purge", "--grace", "2"], timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=5)
    parser.add_argument("--runs", type=int, default=10, help="timed runs of each command")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs of each command first")
    parser.add_argument("--importtime", action="store_true", help="also report -X importtime totals")
    parser.add_argument("--cached-bytecode", action="store_true", help="compile once, as a normal install does")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args()

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with contextlib.ExitStack() as stack:
        if args.cached_bytecode:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = stack.enter_context(tempfile.TemporaryDirectory(prefix="raftctl-pyc-"))
            args.warmup = max(args.warmup, 1)
        bytecode = "cached" if "PYTHONDONTWRITEBYTECODE" not in env else "compiled every run (PYTHONDONTWRITEBYTECODE)"
        results: dict[str, Any] = {}
        with running_cluster(args.nodes, env) as raftctl:
            for name, command in COMMANDS.items():
                for _ in range(args.warmup):
                    raftctl.timed(command)
                # Interleave nothing: each command's runs back to back, as a user repeats one.
                runs = [raftctl.timed(command) for _ in range(args.runs)]
                results[name] = summary([wall for wall, _ in runs])
                results[name]["cpu_median_ms"] = round(statistics.median(cpu for _, cpu in runs) * 1000, 1)
                if args.importtime:
                    imports = [raftctl.import_seconds(command) for _ in range(max(3, args.runs // 2))]
                    results[name]["imports_min_ms"] = round(min(imports) * 1000, 1)
                    results[name]["imports_median_ms"] = round(statistics.median(imports) * 1000, 1)
        python_start = []
        for _ in range(args.runs):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", "pass"], env=env, check=True)
            python_start.append(time.perf_counter() - started)

    report = {
        "nodes": args.nodes,
        "runs": args.runs,
        "bytecode": bytecode,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python_start_median_ms": round(statistics.median(python_start) * 1000, 1),
        "commands": results,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(
        f"raftctl as a new process, {args.nodes}-node cluster on loopback, {args.runs} runs each; "
        f"Python {report['python']}, {report['cpus']} CPUs, load {report['load_average']}; bytecode {bytecode}"
    )
    print(f"  bare `python -c pass`: median {report['python_start_median_ms']} ms")
    for name, r in results.items():
        target = TARGETS_MS.get(name)
        verdict = ""
        if target is not None:
            verdict = f"   target {target} ms: {'met' if r['median_ms'] <= target else 'MISSED'} (median)"
        imports = ""
        if "imports_median_ms" in r:
            imports = f"; imports min {r['imports_min_ms']:.0f} median {r['imports_median_ms']:.0f}"
        print(
            f"  {name:<20} wall min {r['min_ms']:4.0f}  median {r['median_ms']:4.0f}  p90 {r['p90_ms']:4.0f}  "
            f"max {r['max_ms']:4.0f}; cpu median {r['cpu_median_ms']:.0f}{imports} ms{verdict}"
        )


if __name__ == "__main__":
    main()
