"""A local cluster of real ``python -m raftnode`` processes for benchmarks: free loopback ports, a
cluster file in a directory of its own, start, stop, waiting for a leader, and per-process CPU
and memory readings."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from raftctl.bench import cpu_seconds, percentile  # noqa: E402,F401 - shared with the benchmarks
from raftctl.supervisor import free_base_port, free_ports  # noqa: E402,F401 - one free-port search for raftctl, tests and benchmarks
from raftnode.client.syncclient import ClientError, SyncClusterClient  # noqa: E402
from raftnode.config import Address  # noqa: E402
from raftnode.security.credentials import ensure_credentials, secrets_path  # noqa: E402
from raftnode.wire import requests as wire  # noqa: E402

IDS = ("n1", "n2", "n3")


def node_ids(count: int = 3) -> tuple[str, ...]:
    """``n1`` .. ``n<count>``."""
    return tuple(f"n{k}" for k in range(1, count + 1))


def write_cluster(directory: Path, nodes: int = 3, *, fsync: bool = True) -> dict[str, Address]:
    """A cluster file of ``nodes`` nodes (``node_ids``) on free loopback ports; ``fsync=False``
    writes ``fsync = false`` (UNSAFE: for the like-for-like benchmark row only)."""
    ids = node_ids(nodes)
    ports = free_ports(2 * len(ids))
    text = '[cluster]\nname = "bench"\nstate_machine = "counter"\nstate_dir = "state"\n'
    if not fsync:
        text += "fsync = false\n"
    clients = {}
    for i, node_id in enumerate(ids):
        peer, client = ports[i], ports[i + len(ids)]
        text += f'\n[[nodes]]\nid = "{node_id}"\npeer = "127.0.0.1:{peer}"\nclient = "127.0.0.1:{client}"\n'
        clients[node_id] = Address("127.0.0.1", client)
    (directory / "cluster.toml").write_text(text)
    ensure_credentials(secrets_path(directory / "state"))  # what `raftctl up` makes on a first start
    return clients


def spawn(directory: Path, node_id: str, argv: list[str]) -> subprocess.Popen[bytes]:
    """Run ``argv`` as node ``node_id`` in ``directory``, in a session of its own, with this
    repository importable; its output goes to ``<id>.log`` there."""
    with open(directory / f"{node_id}.log", "ab") as log:
        return subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=directory,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            start_new_session=True,
        )


def start_node(directory: Path, node_id: str) -> subprocess.Popen[bytes]:
    """Start one node of the cluster in ``directory``; its output goes to ``<id>.log`` there."""
    argv = [sys.executable, "-m", "raftnode", "--config", str(directory / "cluster.toml"), "--node", node_id]
    return spawn(directory, node_id, argv)


def start_cluster(directory: Path, ids: tuple[str, ...] = IDS) -> list[subprocess.Popen[bytes]]:
    return [start_node(directory, node_id) for node_id in ids]


def stop_cluster(procs: list[subprocess.Popen[bytes]]) -> list[int | None]:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    codes = []
    for proc in procs:
        try:
            codes.append(proc.wait(timeout=5))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            codes.append(proc.wait())
    return codes


def wait_for_leader(addresses: dict[str, Address], *, timeout: float = 15.0) -> str:
    """The leader that every node names in its ``status``, once an ``incr 1`` has committed
    through it (so a new leader has committed in its term); TimeoutError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    # No session: PySyncObj's front-end (compare_pysyncobj.py) has none, and one probe needs none.
    with SyncClusterClient(addresses, connect_timeout=0.3, sessions=False) as client:
        while (left := deadline - time.monotonic()) > 0:
            answers = client.call_each({node: wire.Status() for node in addresses}, timeout=min(0.5, left))
            leaders = {None if isinstance(answer, ClientError) else answer.get("leader") for answer in answers.values()}
            if len(leaders) == 1 and None not in leaders:
                leader = leaders.pop()
                try:
                    committed = client.run_command("incr 1", node=leader, timeout=min(5.0, left))
                except ClientError:
                    committed = None
                if committed is not None and committed.node == leader and committed.response.get("error") is None:
                    return leader
            time.sleep(0.05)
    raise TimeoutError(f"no leader that all of {', '.join(addresses)} name within {timeout:g} s")


def memory_kib(pid: int) -> dict[str, int]:
    """Resident memory now (VmRSS) and at its peak (VmHWM), in KiB, from /proc."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def log_tails(directory: Path, label: str, ids: Iterable[str], lines: int = 8) -> str:
    """The last ``lines`` lines of each node's ``<id>.log`` in ``directory`` that exists, each under
    a ``--- <label> <id> ---`` heading (a cluster that failed says why)."""
    parts = []
    for node_id in ids:
        path = directory / f"{node_id}.log"
        if path.exists():
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {label} {node_id} ---\n" + "\n".join(tail))
    return "\n".join(parts)


def dump_logs(directory: Path, ids: tuple[str, ...] = IDS) -> None:
    """Print the tail of every node's log to stderr (a benchmark that failed says why)."""
    for node_id in ids:
        print(f"--- {node_id} log ---\n" + (directory / f"{node_id}.log").read_text(errors="replace")[-2000:], file=sys.stderr)
