"""Real ``python -m raftnode`` processes for end-to-end tests: a cluster file with free loopback
ports, process control, and waiting helpers over the client protocol.

Every process runs in its own session with its output in ``<tmp>/logs/<id>.log``; the
``processes`` fixture kills whatever is still running at the end, whatever happened.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import trio

from raftnode.client.trioclient import ClientError, ClusterClient
from raftnode.config import Address
from raftnode.security.credentials import ensure_credentials, secrets_path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

from local_cluster import free_ports  # noqa: E402,F401 - one free-port search for tests and benchmarks
IDS = ("n1", "n2", "n3")
#: The resident memory no node may exceed under attack (a node idles at ~40 MB; see test_hostile).
RSS_BOUND = 160 << 20


def rss(pid: int) -> int:
    """Resident bytes of process ``pid``."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


def cluster_toml(peer_ports: list[int], client_ports: list[int], *, state_dir: str = "state", **settings: Any) -> str:
    """A cluster file for IDS on these ports; ``settings`` are more ``[cluster]`` keys (TOML values as text)."""
    lines = [
        "[cluster]",
        'name = "e2e"',
        'state_machine = "counter"',
        f'state_dir = "{state_dir}"',
        f"heartbeat_ms = {settings.pop('heartbeat_ms', 50)}",
        f"election_timeout_ms = {settings.pop('election_timeout_ms', '[150, 300]')}",
        *(f"{key} = {value}" for key, value in settings.items()),
        "",
    ]
    for node_id, peer, client in zip(IDS, peer_ports, client_ports):
        lines += ["[[nodes]]", f'id = "{node_id}"', f'peer = "127.0.0.1:{peer}"', f'client = "127.0.0.1:{client}"', ""]
    return "\n".join(lines)


class Processes:
    """The node processes of one cluster file; ``close`` SIGKILLs whatever still runs."""

    def __init__(self, tmp_path: Path, **settings: Any):
        self.dir = tmp_path
        ports = free_ports(2 * len(IDS))
        self.peer_ports, self.client_ports = ports[: len(IDS)], ports[len(IDS) :]
        self.config = tmp_path / "cluster.toml"
        self.config.write_text(cluster_toml(self.peer_ports, self.client_ports, **settings))
        self.credentials, _ = ensure_credentials(secrets_path(tmp_path / "state"))
        self.addresses = {n: Address("127.0.0.1", p) for n, p in zip(IDS, self.client_ports)}
        self.logs = tmp_path / "logs"
        self.logs.mkdir()
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, node_id: str, *, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start ``node_id``'s process; ``env`` adds environment variables (test-only switches)."""
        log = open(self.logs / f"{node_id}.log", "ab")  # noqa: SIM115 - the child owns it
        env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
        proc = subprocess.Popen(
            [sys.executable, "-m", "raftnode", "--config", str(self.config), "--node", node_id],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.dir,
            env=env,
            start_new_session=True,
        )
        log.close()
        self.procs[node_id] = proc
        return proc

    def signal(self, node_id: str, signum: int) -> None:
        self.procs[node_id].send_signal(signum)

    def log(self, node_id: str) -> str:
        path = self.logs / f"{node_id}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def logs_tail(self) -> str:
        return "\n".join(f"--- {n} ---\n" + "\n".join(self.log(n).splitlines()[-15:]) for n in IDS)

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for proc in self.procs.values():
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass


async def closed_loop_incr(client: ClusterClient, acked: list[int], unknown: list[int], stop: trio.Event) -> None:
    """One closed-loop client: ``incr 1`` until ``stop``; records the value each ack reports.

    The client resends in its session, so a command with an answer was applied exactly once:
    only one without an answer (an error) may or may not have been applied.
    """
    while not stop.is_set():
        try:
            outcome = await client.run_command("incr 1", timeout=3)
        except ClientError:
            unknown.append(1)  # timed out, no leader, session expired: it may or may not have been applied
            continue
        if outcome.result.ok:
            acked.append(outcome.result.result)
        else:
            unknown.append(1)


async def status(client: ClusterClient, node_id: str) -> dict[str, Any] | None:
    """The node's status, or None while it is unreachable or not serving yet."""
    try:
        answer = await client.call(node_id, {"op": "status"}, timeout=0.5)
    except ClientError:
        return None
    return answer if answer.get("ok") else None


async def wait_leader(client: ClusterClient, nodes: list[str], *, other_than: str | None = None) -> str:
    """The leader that every node in ``nodes`` names."""
    while True:
        statuses = [await status(client, n) for n in nodes]
        leaders = {s["leader"] for s in statuses if s is not None}
        if None not in statuses and len(leaders) == 1:
            (leader,) = leaders
            if leader is not None and leader != other_than:
                return leader
        await trio.sleep(0.05)


async def converged_value(client: ClusterClient, context: str = "") -> int:
    """The counter's value once every node has applied the leader's commit index (all equal)."""
    leader = await wait_leader(client, list(IDS))
    leader_status = await wait_caught_up(client, leader, 0)
    commit = leader_status["commit_index"]
    values = set()
    for node_id in IDS:
        values.add((await wait_caught_up(client, node_id, commit))["state"]["value"])
    assert len(values) == 1, f"nodes disagree after converging: {values} {context}"
    return values.pop()


async def wait_caught_up(client: ClusterClient, node_id: str, index: int) -> dict[str, Any]:
    while True:
        s = await status(client, node_id)
        if s is not None and s["applied_index"] >= index:
            return s
        await trio.sleep(0.05)


def wait_exit(proc: subprocess.Popen[bytes], timeout: float) -> int | None:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
