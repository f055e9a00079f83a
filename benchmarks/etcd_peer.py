"""etcd as a second peer for ``compare_pysyncobj.py``: a local etcd cluster, its closed-loop load
generator, and the raftnode-against-etcd rows and targets of issue 19.

What it needs, from Debian's packages (``apt-get install etcd-server golang-go
golang-etcd-server-dev``): the ``etcd`` server, the ``go`` toolchain, and etcd's client sources
under ``/usr/share/gocode``. The load generator (``benchmarks/etcd_load/main.go``) is built from
them in GOPATH mode, offline, once per version of its source, into a cache directory
(``$XDG_CACHE_HOME/raftctl-bench``, else ``~/.cache/raftctl-bench``); nothing built is kept in the
repository. ``unavailable()`` says in one line what is missing, and the comparison then skips the
etcd columns.

The cluster: ``nodes`` members on 127.0.0.1 (free ports), data directories in the run's
temporary directory, etcd's defaults otherwise (every write fsynced by a majority before it is
acknowledged). The load: the same shape as ``raftctl bench`` — ``in_flight`` Puts of a 16-byte
value outstanding at the leader over ``connections`` connections, a warm-up, then a window of
``duration`` seconds in which every answer counts with its latency from send to answer.

The pure parts (``unavailable``, ``parse_load_output``) need neither etcd nor Go and are tested in
``tests/test_etcd_peer.py``; the rows, the table and the targets are ``compare_pysyncobj.py``'s.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for entry in (str(REPO), str(HERE)):
    if entry not in sys.path:
        sys.path.insert(0, entry)

from raftctl.bench import cpu_deltas, cpu_seconds, latency_summary, throughput  # noqa: E402

ETCD = "etcd"
LOAD_SOURCE = HERE / "etcd_load" / "main.go"
#: Where Debian's golang-*-dev packages put their sources (a GOPATH).
GOPATH = Path("/usr/share/gocode")
CLIENT_PACKAGE = "go.etcd.io/etcd/clientv3"
APT_PACKAGES = "etcd-server golang-go golang-etcd-server-dev"


class EtcdUnavailable(Exception):
    """etcd, Go or the client sources are missing, or the load generator does not build."""


# -- the pure parts --------------------------------------------------------------------------------


def unavailable(which: Callable[[str], str | None] = shutil.which, gopath: Path = GOPATH) -> str | None:
    """Why the etcd columns cannot run here (one line), or None when they can."""
    missing = [name for name in ("etcd", "go") if which(name) is None]
    if not (gopath / "src" / CLIENT_PACKAGE).is_dir():
        missing.append(f"etcd's client sources ({gopath / 'src' / CLIENT_PACKAGE})")
    if missing:
        return f"{' and '.join(missing)} not found (apt-get install {APT_PACKAGES})"
    return None


def _count(document: dict[str, Any], key: str) -> int:
    value = document.get(key)
    if type(value) is not int or value < 0:
        raise ValueError(f"etcd_load's {key!r} is {value!r}, not a count")
    return value


def parse_load_output(text: str) -> dict[str, Any]:
    """The report of one etcd_load run (its stdout), in the shape of ``raftctl.bench.build_report``
    as far as the comparison reads it; ValueError naming what is wrong with a malformed one."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"etcd_load did not print JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ValueError("etcd_load printed JSON that is not an object")
    acknowledged, errors = _count(document, "acknowledged"), _count(document, "errors")
    seconds = document.get("seconds")
    if type(seconds) not in (int, float) or not 0 < seconds < 1e6:
        raise ValueError(f"etcd_load's 'seconds' is {seconds!r}, not a positive duration")
    latencies = document.get("latencies_us")
    if not isinstance(latencies, list) or any(type(us) is not int or us < 0 for us in latencies):
        raise ValueError("etcd_load's 'latencies_us' is not a list of microsecond counts")
    if len(latencies) != acknowledged:
        raise ValueError(f"etcd_load counted {acknowledged} answers but gave {len(latencies)} latencies")
    samples = document.get("error_samples") or []
    return {
        "leader": str(document.get("leader")),
        "endpoint": str(document.get("endpoint")),
        "in_flight": _count(document, "in_flight"),
        "connections": _count(document, "connections"),
        "seconds": seconds,
        "acknowledged": acknowledged,
        "throughput": round(throughput(acknowledged, seconds), 1),
        "latency_ms": latency_summary([us / 1e6 for us in latencies]),
        "errors": errors,
        "error_samples": [str(s)[:200] for s in samples[:5]] if isinstance(samples, list) else [],
        "warmup_acknowledged": _count(document, "warmup_acknowledged"),
        "lost": 0,
    }


# -- building the load generator -------------------------------------------------------------------


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "raftctl-bench"


def build_load_generator(cache: Path | None = None, say: Callable[[str], None] = print) -> Path:
    """The etcd_load binary for the current source, built in GOPATH mode (offline) if not cached
    (``say`` tells that it is building: the first build takes a minute or two)."""
    cache = cache or cache_dir()
    digest = hashlib.sha256(LOAD_SOURCE.read_bytes()).hexdigest()[:16]
    binary = cache / f"etcd_load-{digest}"
    if binary.exists():
        return binary
    cache.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GOPATH": str(GOPATH), "GO111MODULE": "off", "GOFLAGS": "", "GOPROXY": "off",
           "GOCACHE": str(cache / "go-build")}
    partial = binary.with_suffix(".partial")
    say(f"building {LOAD_SOURCE.relative_to(REPO)} into {binary} (once per version of its source)")
    done = subprocess.run(["go", "build", "-o", str(partial), "."], cwd=LOAD_SOURCE.parent, env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        tail = " | ".join(done.stderr.strip().splitlines()[-3:])
        raise EtcdUnavailable(f"building {LOAD_SOURCE.relative_to(REPO)} failed: {tail}")
    partial.rename(binary)
    for stale in cache.glob("etcd_load-*"):  # builds of earlier versions of the source
        if stale != binary:
            stale.unlink()
    return binary


def etcd_version() -> str:
    """``etcd --version``'s version, e.g. ``3.4.23`` (``?`` if it does not say)."""
    done = subprocess.run(["etcd", "--version"], capture_output=True, text=True)
    for line in done.stdout.splitlines():
        if line.startswith("etcd Version:"):
            return line.split(":", 1)[1].strip()
    return "?"


# -- the cluster -----------------------------------------------------------------------------------


class EtcdCluster:
    """``nodes`` etcd members on 127.0.0.1 with their data under ``directory``; ``measure`` runs
    the load generator against them."""

    name = ETCD

    def __init__(self, directory: Path, nodes: int, load_generator: Path) -> None:
        from local_cluster import free_ports, node_ids

        self.directory = directory
        self.load_generator = load_generator
        ids = node_ids(nodes)
        ports = free_ports(2 * len(ids))
        self.peer_urls = {node: f"http://127.0.0.1:{ports[i]}" for i, node in enumerate(ids)}
        self.client_urls = {node: f"http://127.0.0.1:{ports[i + len(ids)]}" for i, node in enumerate(ids)}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def _argv(self, node: str) -> list[str]:
        initial = ",".join(f"{n}={url}" for n, url in self.peer_urls.items())
        return ["etcd", "--name", node, "--data-dir", str(self.directory / f"{node}.etcd"),
                "--listen-peer-urls", self.peer_urls[node], "--initial-advertise-peer-urls", self.peer_urls[node],
                "--listen-client-urls", self.client_urls[node], "--advertise-client-urls", self.client_urls[node],
                "--initial-cluster", initial, "--initial-cluster-state", "new",
                "--initial-cluster-token", "raftctl-bench", "--logger", "zap", "--log-level", "warn"]

    def start(self) -> None:
        from local_cluster import spawn

        for node in self.peer_urls:
            self.procs[node] = spawn(self.directory, node, self._argv(node))

    def stop(self) -> None:
        from local_cluster import stop_cluster

        stop_cluster(list(self.procs.values()))

    def log_tail(self, lines: int = 8) -> str:
        from local_cluster import log_tails

        return log_tails(self.directory, self.name, self.peer_urls, lines)

    def measure(self, level: int, *, duration: float, warmup: float, connections: int | None) -> dict[str, Any]:
        """One closed-loop run at ``level`` in flight: the parsed report, with the members' and
        the load generator's CPU seconds; RuntimeError with its stderr if it fails."""
        argv = [str(self.load_generator), "-endpoints", ",".join(self.client_urls.values()),
                "-in-flight", str(level), "-duration", str(duration), "-warmup", str(warmup)]
        if connections:
            argv += ["-connections", str(connections)]
        pids = {node: proc.pid for node, proc in self.procs.items() if proc.poll() is None}
        before = {node: cpu_seconds(pid) for node, pid in pids.items()}
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        began = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + warmup + 120)
        wall = time.perf_counter() - began
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            raise RuntimeError(f"etcd_load exited {done.returncode}: {done.stderr.strip()[-500:]}")
        report = parse_load_output(done.stdout)
        client = (children.ru_utime + children.ru_stime) - (children_before.ru_utime + children_before.ru_stime)
        report["cpu_seconds"] = {
            "nodes": cpu_deltas(before, {node: cpu_seconds(pid) for node, pid in pids.items()}),
            "client": round(client, 3),
            "client_share_of_a_core": round(client / wall, 3) if wall > 0 else None,
            "wall_seconds": round(wall, 3),
        }
        return report
