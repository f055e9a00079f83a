"""Process supervision: starting, finding and stopping the node processes of a cluster.

Theory of operation
-------------------
Every ``raftctl`` invocation is a new process, so what they share lives on disk, in the cluster's
state directory (``state_dir`` of cluster.toml, relative to that file)::

    <state_dir>/pids/<id>.pid     the process id of the running node
    <state_dir>/logs/<id>.log     the node's stdout and stderr (appended to across restarts)
    <state_dir>/data/<id>/        the node's log, hard state and snapshots (``--data-dir``)
    <state_dir>/events.jsonl      raftctl's audit log (see ``raftctl.events``)
    <state_dir>/faults.json       the faults raftctl wants on each node (see ``raftctl.chaos``)

A node runs as ``python -m raftnode --config PATH --node ID --data-dir DIR`` in its own session
(so a Ctrl-C in the terminal that ran ``raftctl up`` does not reach it), with the cluster file's
directory as working directory. A pid file is trusted only while ``/proc/<pid>/cmdline`` still
shows that node of that cluster file, so a recycled pid is never signalled; a zombie counts as
dead. Stopping is SIGTERM (the node finishes its last fsync and exits) and SIGKILL after a grace
period.

Everything here is synchronous and quick except the ``wait_*`` helpers, which poll with short
sleeps; ``raftctl.cluster`` calls them from trio through ``trio.to_thread`` when it must not block.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from raftnode.config import Address, ClusterConfig

from .errors import PortInUse

#: How long ``stop`` waits after SIGTERM before it sends SIGKILL.
DEFAULT_GRACE = 5.0

# Popen objects of nodes this process started, so it can reap them (and read their exit status).
_children: dict[int, subprocess.Popen[bytes]] = {}
_exit_statuses: dict[int, int] = {}


@dataclass(frozen=True)
class StatePaths:
    """Where a cluster's state lives (see the module docstring)."""

    root: Path

    @classmethod
    def of(cls, config: ClusterConfig) -> StatePaths:
        return cls(config.state_dir)

    @property
    def pids(self) -> Path:
        return self.root / "pids"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def events(self) -> Path:
        return self.root / "events.jsonl"

    @property
    def faults(self) -> Path:
        return self.root / "faults.json"

    @property
    def node_events(self) -> Path:
        """The nodes' own event files (``raftnode.node.eventlog``), one per node."""
        return self.root / "events"

    def node_event_file(self, node_id: str) -> Path:
        from raftnode.node.eventlog import event_file

        return event_file(self.root, node_id)

    def pid_file(self, node_id: str) -> Path:
        return self.pids / f"{node_id}.pid"

    def log_file(self, node_id: str) -> Path:
        return self.logs / f"{node_id}.log"

    def data_dir(self, node_id: str) -> Path:
        return self.data / node_id

    def ensure(self) -> None:
        for directory in (self.pids, self.logs, self.data):
            directory.mkdir(parents=True, exist_ok=True)


@dataclass(frozen=True)
class Stopped:
    """What ``stop`` did to one node: the pid and how it ended (``"SIGTERM"`` or ``"SIGKILL"``)."""

    node: str
    pid: int
    signal: str


# -- liveness --------------------------------------------------------------------------------------


#: Without /proc (macOS, BSD) liveness falls back to ``kill(pid, 0)`` and pid files are trusted.
HAVE_PROC = Path("/proc/self/stat").exists()


def process_state(pid: int) -> str | None:
    """The one-letter state of process ``pid`` (``R``, ``S``, ``Z``...), or None if it is gone."""
    if not HAVE_PROC:
        return _kill_zero(pid)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return _kill_zero(pid)
    # The command name may contain spaces and parentheses: the state follows the last ')'.
    return stat.rpartition(")")[2].split()[0]


def _kill_zero(pid: int) -> str | None:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return "?"
    return "?"


def _reap(pid: int) -> int | None:
    """Collect ``pid`` if ``spawn`` started it and it exited; returns its exit status if known.

    Other processes are never waited for (their zombies count as dead all the same), so the
    exit status of a child someone else started is never stolen.
    """
    child = _children.get(pid)
    if child is not None:
        code = child.poll()
        if code is not None:
            _children.pop(pid, None)
            _exit_statuses[pid] = code
        return code
    return _exit_statuses.get(pid)


def is_alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (not a zombie); reaps it if it is our exited child."""
    state = process_state(pid)
    if state is None:
        return False
    if state in ("Z", "X"):
        _reap(pid)
        return False
    return True


def _cmdline(pid: int) -> list[str] | None:
    if not HAVE_PROC:
        return []
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return None
    except OSError:
        return []  # no /proc (not Linux): trust the pid file
    return raw.decode(errors="replace").split("\0")


def is_node_process(pid: int, config: ClusterConfig, node_id: str) -> bool:
    """Whether ``pid`` is alive and is node ``node_id`` of this cluster file (not a recycled pid)."""
    if not is_alive(pid):
        return False
    argv = _cmdline(pid)
    if argv is None:
        return False
    if not argv:
        return True
    return "raftnode" in " ".join(argv) and _arg(argv, "--node") == node_id and (
        _same_file(_arg(argv, "--config"), config.path, pid)
    )


def _arg(argv: list[str], flag: str) -> str | None:
    for i, word in enumerate(argv[:-1]):
        if word == flag:
            return argv[i + 1]
    return None


def _same_file(named: str | None, path: Path, pid: int) -> bool:
    """Whether the ``--config`` argument of process ``pid`` names ``path`` (relative to its cwd)."""
    if named is None:
        return False
    try:
        where = Path(named)
        if not where.is_absolute() and HAVE_PROC:
            where = Path(os.readlink(f"/proc/{pid}/cwd")) / where
        return where.resolve() == path
    except OSError:
        return False


def read_pid(paths: StatePaths, node_id: str) -> int | None:
    """The pid in the node's pid file, or None if there is no readable one."""
    try:
        return int(paths.pid_file(node_id).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def live_pid(config: ClusterConfig, node_id: str) -> int | None:
    """The pid of the running node ``node_id`` according to its pid file, or None.

    Only reads: a stale pid file (the process is gone, or the pid now belongs to another
    program) is left for ``spawn`` to overwrite, so a reader can never delete the pid file a
    concurrent ``start`` has just written.
    """
    pid = read_pid(StatePaths.of(config), node_id)
    if pid is None:
        return None
    return pid if is_node_process(pid, config, node_id) else None


def live_pids(config: ClusterConfig) -> dict[str, int]:
    """``{node id: pid}`` of every running node with a pid file, in file order."""
    found = {}
    for node in config.nodes:
        pid = live_pid(config, node.id)
        if pid is not None:
            found[node.id] = pid
    return found


# -- starting --------------------------------------------------------------------------------------


EPHEMERAL_RANGE_FILE = "/proc/sys/net/ipv4/ip_local_port_range"


def listening_port_range() -> range:
    """Ports to pick listening ports from: the larger stretch of 10000-65535 outside the kernel's
    ephemeral range, so an outgoing connection of another process (a node's peer link, a client)
    can never take a port between the moment it was found free and the moment a node binds it."""
    try:
        low, high = (int(word) for word in Path(EPHEMERAL_RANGE_FILE).read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999  # Linux's default
    below, above = range(10_000, max(10_000, low)), range(min(high + 1, 65_536), 65_536)
    return below if len(below) >= len(above) else above


def _bindable(ports: Iterable[int]) -> bool:
    import contextlib

    with contextlib.ExitStack() as stack:
        try:
            for port in ports:
                stack.enter_context(socket.socket()).bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int, *, attempts: int = 500) -> list[int]:
    """``count`` distinct loopback ports, free a moment ago, from ``listening_port_range()``.

    Raises:
        RuntimeError: no such set found in ``attempts`` tries.
    """
    import random

    pool = listening_port_range()
    for _ in range(attempts):
        ports = random.sample(pool, count)
        if _bindable(ports):
            return ports
    raise RuntimeError("no free ports found")


def free_base_port(nodes: int, *, attempts: int = 500) -> int:
    """A base port for ``raftctl init --base-port`` whose 2 * ``nodes`` loopback ports
    (BASE+K and BASE+100+K) are all free now, chosen at random in ``listening_port_range()``.

    Raises:
        RuntimeError: no such range found in ``attempts`` tries.
    """
    import random

    pool = listening_port_range()
    for _ in range(attempts):
        base = random.randrange(pool.start, pool.stop - 100 - nodes)
        if _bindable([base + k for k in range(1, nodes + 1)] + [base + 100 + k for k in range(1, nodes + 1)]):
            return base
    raise RuntimeError("no free port range found")


def check_ports(config: ClusterConfig, node_ids: Iterable[str]) -> None:
    """Raise PortInUse for the first peer or client address of ``node_ids`` that cannot be bound
    (a node in a network namespace of its own has nothing else there: it is not checked)."""
    from .netns import load

    namespaced = load(config)
    for node_id in node_ids:
        if namespaced is not None and node_id in namespaced.nodes:
            continue
        node = config.node(node_id)
        for what, address in (("peer", node.peer), ("client", node.client)):
            problem = bind_problem(address)
            if problem is not None:
                raise PortInUse(node_id, what, str(address), problem)


def bind_problem(address: Address) -> str | None:
    """Why ``address`` cannot be listened on now, or None if it can.

    Binds with SO_REUSEADDR, as the node does, so connections lingering in TIME_WAIT from an
    earlier run do not count as "in use".
    """
    family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
    try:
        infos = socket.getaddrinfo(address.host, address.port, family, socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return f"cannot resolve {address.host!r}: {exc.strerror}"
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(infos[0][4])
            sock.listen(1)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return "another process listens there"
            return exc.strerror or str(exc)
    return None


def node_command(config: ClusterConfig, node_id: str) -> list[str]:
    """The command line that runs node ``node_id`` (in its namespace under ``up --netns``)."""
    from .netns import exec_prefix

    paths = StatePaths.of(config)
    return [
        *exec_prefix(config, node_id),
        sys.executable,
        "-m",
        "raftnode",
        "--config",
        str(config.path),
        "--node",
        node_id,
        "--data-dir",
        str(paths.data_dir(node_id)),
    ]


def spawn(config: ClusterConfig, node_id: str) -> int:
    """Start node ``node_id`` in the background, in its own session; returns its pid.

    Appends a marker line to the node's log first, so ``log_tail(..., since_marker=True)`` shows
    only this run. Does not check that the node is not already running (see ``live_pid``).
    """
    paths = StatePaths.of(config)
    paths.ensure()
    paths.data_dir(node_id).mkdir(parents=True, exist_ok=True)
    log_path = paths.log_file(node_id)
    with log_path.open("ab") as log:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        log.write(f"{MARKER} {node_id} at {stamp} ---\n".encode())
        log.flush()
        process = subprocess.Popen(
            node_command(config, node_id),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=config.path.parent,
            start_new_session=True,
            close_fds=True,
        )
    _children[process.pid] = process
    _write_pid(paths.pid_file(node_id), process.pid)
    return process.pid


MARKER = "--- raftctl: starting"


def _write_pid(path: Path, pid: int) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{pid}\n")
    os.replace(tmp, path)


def exit_status(pid: int) -> int | None:
    """The exit status of a node process this process started and that has exited, if known."""
    _reap(pid)
    return _exit_statuses.get(pid)


def log_tail(config: ClusterConfig, node_id: str, lines: int = 15, *, since_marker: bool = True) -> list[str]:
    """The last ``lines`` lines of the node's log (of its latest run only, with ``since_marker``)."""
    path = StatePaths.of(config).log_file(node_id)
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    if since_marker:
        at = text.rfind(MARKER)
        if at >= 0:
            text = text[at:].partition("\n")[2]
    return text.splitlines()[-lines:]


def start_failure(config: ClusterConfig, node_id: str) -> str | None:
    """Why the node's latest run refused to start (e.g. a corrupt log: file and offset), if it did."""
    for line in reversed(log_tail(config, node_id, 40)):
        _, found, reason = line.partition("cannot start: ")
        if found:
            return reason.strip()
    return None


# -- stopping --------------------------------------------------------------------------------------


def signal_pid(pid: int, signum: int) -> bool:
    """Send ``signum`` to ``pid``; False if it is already gone."""
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        return False
    return True


def wait_gone(pids: Iterable[int], timeout: float, *, interval: float = 0.02) -> set[int]:
    """Wait until every pid has exited or ``timeout`` passed; returns those still alive."""
    remaining = set(pids)
    deadline = time.monotonic() + timeout
    while True:
        remaining = {pid for pid in remaining if is_alive(pid)}
        if not remaining or time.monotonic() >= deadline:
            return remaining
        time.sleep(interval)


def stop(config: ClusterConfig, pids: dict[str, int], *, grace: float = DEFAULT_GRACE, kill: bool = False) -> list[Stopped]:
    """Stop the given ``{node: pid}``: SIGTERM, then SIGKILL after ``grace`` (only SIGKILL with ``kill``).

    Waits until every process has exited and removes the pid files.
    """
    paths = StatePaths.of(config)
    how: dict[str, str] = {}
    first = signal.SIGKILL if kill else signal.SIGTERM
    for node_id, pid in pids.items():
        if signal_pid(pid, first):
            how[node_id] = first.name
    if not kill:
        stubborn = wait_gone(pids.values(), grace)
        for node_id, pid in pids.items():
            if pid in stubborn and signal_pid(pid, signal.SIGKILL):
                how[node_id] = "SIGKILL"
    wait_gone(pids.values(), 5.0)
    for node_id, pid in pids.items():
        if read_pid(paths, node_id) == pid:
            paths.pid_file(node_id).unlink(missing_ok=True)
    return [Stopped(node_id, pid, how.get(node_id, "gone")) for node_id, pid in pids.items()]


def purge(config: ClusterConfig) -> list[Path]:
    """Delete the cluster's data, logs, pid files, events and faults; returns what was deleted.

    Deletes only the entries raftctl creates, then the state directory itself if that left it
    empty, so a ``state_dir`` that also holds other files keeps them.
    """
    paths = StatePaths.of(config)
    deleted = []
    for directory in (paths.data, paths.logs, paths.pids, paths.node_events):
        if directory.exists():
            shutil.rmtree(directory)
            deleted.append(directory)
    for file in (paths.events, paths.faults):
        if file.exists():
            file.unlink()
            deleted.append(file)
    try:
        paths.root.rmdir()
    except OSError:
        pass
    return deleted
