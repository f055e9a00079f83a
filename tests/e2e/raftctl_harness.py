"""Real raftctl clusters on loopback for the end-to-end tests: free ports, a cluster file in a temp
directory, the CLI run in-process (fast) or as a process (real), and a cleanup that leaves no node
running whatever happened.

Free ports are found by binding port 0 and closing the sockets just before the cluster file is
written; the nodes bind with SO_REUSEADDR, so a port in TIME_WAIT is no problem.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from raftctl import supervisor
from raftctl.cli import main
from raftnode.config import load_config

from .processes import free_ports

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

from local_cluster import free_base_port  # noqa: E402,F401 - one free-port search for tests and benchmarks


def cluster_text(nodes: int, *, name: str = "e2e", state_machine: str = "counter") -> str:
    ports = free_ports(2 * nodes)
    lines = [
        "[cluster]",
        f'name = "{name}"',
        f'state_machine = "{state_machine}"',
        'state_dir = "state"',
        "heartbeat_ms = 50",
        "election_timeout_ms = [150, 300]",
        "",
    ]
    for k in range(nodes):
        lines += [
            "[[nodes]]",
            f'id = "n{k + 1}"',
            f'peer = "127.0.0.1:{ports[k]}"',
            f'client = "127.0.0.1:{ports[nodes + k]}"',
            "",
        ]
    return "\n".join(lines)


@dataclass
class Cluster:
    """One cluster file in a temp directory and the CLI pointed at it."""

    dir: Path
    config: Path
    runner: CliRunner = field(default_factory=CliRunner)

    @property
    def ids(self) -> tuple[str, ...]:
        return load_config(self.config).node_ids

    def cli(self, *args: str, code: int | None = 0) -> Result:
        """Run ``raftctl ARGS`` in-process; check the exit code unless ``code`` is None."""
        result = self.runner.invoke(main, ["--config", str(self.config), *args])
        if code is not None and result.exit_code != code:
            raise AssertionError(
                f"raftctl {' '.join(args)}: exit {result.exit_code}, expected {code}\n"
                f"stdout: {result.stdout}\nstderr: {result.stderr}\n{self.logs_tail()}"
            ) from result.exception if not isinstance(result.exception, SystemExit) else None
        return result

    def json(self, *args: str, code: int | None = 0) -> Any:
        return json.loads(self.cli(*args, "--json", code=code).stdout)

    def process(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run ``raftctl ARGS`` as a new process (``python -m raftctl``), as a user would."""
        return subprocess.run(
            [sys.executable, "-m", "raftctl", "--config", str(self.config), *args],
            check=False,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.dir,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )

    def status(self) -> dict[str, Any]:
        return self.json("status")

    def leader(self) -> str:
        return self.cli("leader").stdout.strip()

    def logs_tail(self, lines: int = 12) -> str:
        logs = self.dir / "state" / "logs"
        if not logs.is_dir():
            return "(no node logs)"
        parts = []
        for path in sorted(logs.glob("*.log")):
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {path.name} ---\n" + "\n".join(tail))
        return "\n".join(parts)

    def node_pids(self) -> list[int]:
        """Every live process that runs a node of this cluster file (found through /proc)."""
        config = load_config(self.config)
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                pid = int(entry.name)
                if any(supervisor.is_node_process(pid, config, n) for n in config.node_ids):
                    pids.append(pid)
        return pids

    def close(self) -> None:
        """``down``, then SIGKILL whatever node of this cluster still runs."""
        with contextlib.suppress(Exception):
            self.runner.invoke(main, ["--config", str(self.config), "down", "--grace", "1"])
        for pid in self.node_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        supervisor.wait_gone(self.node_pids(), 5.0)


@contextlib.contextmanager
def cluster(tmp_path: Path, nodes: int = 3, **kwargs: Any) -> Iterator[Cluster]:
    path = tmp_path / "cluster.toml"
    path.write_text(cluster_text(nodes, **kwargs))
    c = Cluster(tmp_path, path)
    try:
        yield c
    finally:
        c.close()


class Deadline(Exception):
    """A test ran out of its time budget."""


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Fail the block with Deadline after ``seconds`` (SIGALRM; main thread only)."""

    def expire(signum: int, frame: Any) -> None:
        raise Deadline(f"the test took longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
