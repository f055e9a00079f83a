"""The domain coroutines behind raftctl's commands: one per command, each given a ClusterConfig.

Theory of operation
-------------------
A command opens a :class:`Session` (the cluster file, its state directory and a
``raftnode.client.ClusterClient``), does its work and returns plain data for ``raftctl.cli`` to
render. Everything that can go wrong in a way a user should understand is raised as one of
``raftctl.errors``; raftnode's client errors never escape this module untranslated.

What "running" means: a node runs when its client endpoint answers ``status``. The pid files of
the state directory (``raftctl.supervisor``) tell which processes raftctl started; they are how
``kill``/``stop`` find a process, and how a command tells "nothing is running" apart from "the
cluster has no leader" without waiting for a timeout.

``NODE`` arguments go through :meth:`Session.resolve`: a node id of the cluster file, ``leader``
(the node a majority acknowledges, see ``raftctl.model``) or ``follower`` (a live follower of that
leader, the first in file order).
"""

from __future__ import annotations

import contextlib
import time
from functools import partial
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

import trio

from raftctl.clusterfile import clear_join_flags
from raftnode.client.clientcore import Advanced, advance
from raftnode.client.trioclient import ClientError, ClusterClient, NodeUnreachable
from raftnode.client.trioclient import Timeout as ClientTimeout
from raftnode.config import ClusterConfig
from raftnode.wire import requests as wire

from . import chaos, events, follow, oneshot, supervisor
from .errors import (
    ClusterNotRunning,
    NodeCrashed,
    NoLeaderError,
    NotRunning,
    PortInUse,
    Refused,
    UnknownNode,
    UsageProblem,
    WaitTimeout,
)
from .model import ClusterStatus, NodeRow
from .oneshot import POLL_INTERVAL, SPECIAL_NODES, STATUS_TIMEOUT, PollTimeout
from .oneshot import claims as _claims


class Session(oneshot.SessionCore):
    """One command's view of one cluster: config, state directory, connections -- the trio shell
    of ``raftctl.oneshot.SessionCore`` (whose rules ``QuickSession`` runs blocking).

    Use :func:`session` to open one.
    """

    def __init__(self, config: ClusterConfig, client: ClusterClient) -> None:
        super().__init__(config, client)
        self.clock = trio.current_time
        self.paths = supervisor.StatePaths.of(config)

    async def status(self, *, timeout: float = STATUS_TIMEOUT) -> ClusterStatus:
        """One picture of the cluster: every node asked at once, a row per node."""
        return self.picture_of(await self.client.call_each(self.status_requests(), timeout=timeout))

    async def node_row(self, node_id: str, *, timeout: float = STATUS_TIMEOUT) -> NodeRow:
        try:
            answer: dict[str, Any] | ClientError = await self.client.call(node_id, wire.Status(), timeout=timeout)
        except ClientError as exc:
            answer = exc
        return oneshot.node_row(self.config, node_id, answer)

    async def running_status(self, *, timeout: float = STATUS_TIMEOUT) -> ClusterStatus:
        return await self._run(self.running_status_steps(timeout))

    async def ensure_running(self) -> None:
        return await self._run(self.ensure_running_steps())

    async def poll(
        self, check: Callable[[ClusterStatus], Any], *, timeout: float, interval: float = POLL_INTERVAL
    ) -> tuple[Any, ClusterStatus]:
        """``SessionCore.poll_steps``: PollTimeout when ``timeout`` passes."""
        return await self._run(self.poll_steps(check, timeout, interval))

    async def resolve(self, name: str, *, timeout: float = 5.0, exclude: Sequence[str] = ()) -> str:
        """``SessionCore.resolve_steps``."""
        return await self._run(self.resolve_steps(name, timeout, exclude))

    async def _run(self, steps: Generator[oneshot.Look | oneshot.Wait, Any, Any]) -> Any:
        step = advance(steps)
        while not isinstance(step, Advanced):
            look = isinstance(step, oneshot.Look)
            step = advance(steps, await (self.status(timeout=step.timeout) if look else trio.sleep(step.seconds)))
        return step.value

    def record(self, kind: str, detail: str, *, node: str | None = None) -> None:
        events.record(self.paths, kind, detail, node=node)


@contextlib.asynccontextmanager
async def session(config: ClusterConfig, *, connect_timeout: float = 0.5) -> AsyncIterator[Session]:
    """Open a Session on ``config``'s cluster (closing its connections on exit)."""
    addresses = {n.id: n.client for n in config.nodes}
    if config.tls is not None:
        connect_timeout = max(connect_timeout, 2 * oneshot.TLS_PICTURE_FLOOR)  # the deadline covers the handshake too
    async with ClusterClient(addresses, connect_timeout=connect_timeout, fields=oneshot.client_fields(config),
                             tls=oneshot.client_tls(config)) as client:
        yield Session(config, client)


async def resolve_name(config: ClusterConfig, name: str, *, timeout: float = 5.0) -> str:
    """The node id ``name`` stands for (see ``Session.resolve``)."""
    async with session(config) as s:
        return await s.resolve(name, timeout=timeout)


# -- status, leader, wait --------------------------------------------------------------------------


async def leader(config: ClusterConfig, *, timeout: float = 0.0) -> NodeRow:
    """The leader's row for trio callers (``raftctl bench``), waiting up to ``timeout``;
    NoLeaderError if none, ClusterNotRunning if nothing runs.

    The work is ``oneshot.leader`` (what ``raftctl leader`` runs), in a worker thread.
    """
    return await trio.to_thread.run_sync(partial(oneshot.leader, config, timeout=timeout))


@dataclass(frozen=True)
class WaitResult:
    status: ClusterStatus
    waited: float


async def wait(
    config: ClusterConfig,
    *,
    leader: bool = False,
    applied: int | None = None,
    converged: bool = False,
    timeout: float = 10.0,
) -> WaitResult:
    """``raftctl wait``: block until every requested condition holds at once.

    - ``leader``: a node is leader and a majority acknowledges it;
    - ``applied``: every node is alive and has applied at least that index;
    - ``converged``: see ``ClusterStatus.convergence_problems``.

    Raises:
        ClusterNotRunning: no node answered at the start (nothing started) or at the deadline.
        NoLeaderError: the deadline passed with no leader (exit 3).
        WaitTimeout: the deadline passed with a leader but another condition unmet (exit 4).
    """
    started = time.monotonic()

    def problems(status: ClusterStatus) -> list[str]:
        found = []
        if (leader or converged) and status.leader is None:
            found.append(f"no leader{_claims(status)}")
        if applied is not None:
            behind = status.lagging(applied)
            if behind:
                found.append(
                    "applied index below "
                    + str(applied)
                    + ": "
                    + ", ".join(f"{r.id} ({r.applied_index if r.alive else 'down'})" for r in behind)
                )
        if converged:
            found.extend(p for p in status.convergence_problems() if p != "no leader")
        return found

    async with session(config) as s:
        await s.ensure_running()
        try:
            _, final = await s.poll(lambda st: not problems(st), timeout=timeout)
        except PollTimeout:
            last = s.last_status
            if last is None or not last.any_alive:
                raise ClusterNotRunning(config.path, f"nothing answered within {timeout:g} s") from None
            left = problems(last)
            if (leader or converged) and last.leader is None:
                raise NoLeaderError(f"no leader within {timeout:g} s{_claims(last)}") from None
            raise WaitTimeout(f"timed out after {timeout:g} s: {'; '.join(left)}") from None
        return WaitResult(final, time.monotonic() - started)


# -- processes -------------------------------------------------------------------------------------


@dataclass
class UpResult:
    started: dict[str, int] = field(default_factory=dict)
    already_running: dict[str, int] = field(default_factory=dict)
    status: ClusterStatus | None = None
    elapsed: float = 0.0


async def up(config: ClusterConfig, *, timeout: float = 10.0) -> UpResult:
    """``raftctl up``: start every node that is not running, then wait for an elected leader.

    Ports are checked before anything starts; if any node cannot start (its port is taken, or it
    exits while starting) every node this call started is stopped again, so no half-started
    cluster is left behind.

    Raises:
        PortInUse: an address is taken (exit 2); nothing was started.
        NodeCrashed: a node exited while starting; its last log lines are in the message (exit 5).
        NoLeaderError: the nodes run but elected no leader within ``timeout`` (exit 3).
    """
    began = time.monotonic()
    result = UpResult()
    paths = supervisor.StatePaths.of(config)
    oneshot.cluster_credentials(config)  # the first start makes the cluster's id and secrets
    oneshot.cluster_certificates(config)  # and, with [tls], its certificates
    async with session(config) as s:
        result.already_running = supervisor.live_pids(config)
        todo = [n for n in config.node_ids if n not in result.already_running]
        # A node started by hand (no pid file) answers on its port: leave it be.
        for node_id in list(todo):
            row = await s.node_row(node_id, timeout=0.3)
            if row.alive:
                todo.remove(node_id)
                result.already_running[node_id] = row.pid or 0
        if not todo:
            result.status = await s.status()
            result.elapsed = time.monotonic() - began
            return result
        try:
            supervisor.check_ports(config, todo)
        except PortInUse as exc:
            holder = await trio.to_thread.run_sync(oneshot.other_cluster, config, exc.node)
            if holder is not None:
                raise PortInUse(exc.node, "client", str(config.node(exc.node).client), f"held by {holder}") from None
            raise
        if not result.already_running:
            # A fresh start: faults wanted by an earlier life of this cluster no longer apply.
            paths.faults.unlink(missing_ok=True)
        try:
            for node_id in todo:
                pid = supervisor.spawn(config, node_id)
                result.started[node_id] = pid
                s.record("started", f"process {pid} (raftctl up)", node=node_id)
            await _wait_started(s, result.started, timeout=timeout)
            await _push_wanted(s, list(result.started), fresh=True)
        except BaseException:
            with trio.CancelScope(shield=True):
                await _abandon(s, result.started)
            raise
        try:
            _, result.status = await s.poll(lambda st: st.leader is not None, timeout=max(0.1, timeout - (time.monotonic() - began)))
        except PollTimeout:
            raise NoLeaderError(
                f"the nodes run but elected no leader within {timeout:g} s{_claims(s.last_status)}; "
                "see `raftctl logs NODE`"
            ) from None
        result.elapsed = time.monotonic() - began
        return result


async def _wait_started(s: Session, started: dict[str, int], *, timeout: float) -> None:
    """Wait until every node of ``started`` answers; NodeCrashed if one exits first."""
    waiting = dict(started)
    with trio.move_on_after(timeout):
        while waiting:
            crashed = [node_id for node_id, pid in waiting.items() if not supervisor.is_alive(pid)]
            if crashed:
                first = crashed[0]
                raise NodeCrashed(
                    first,
                    supervisor.exit_status(waiting[first]),
                    s.paths.log_file(first),
                    supervisor.log_tail(s.config, first),
                    others=crashed[1:],
                )
            answered: list[str] = []
            async with trio.open_nursery() as nursery:
                for node_id in waiting:
                    nursery.start_soon(_note_if_alive, s, node_id, answered)
            for node_id in answered:
                del waiting[node_id]
            if waiting:
                await trio.sleep(POLL_INTERVAL)
    if waiting:
        names = ", ".join(waiting)
        raise NotRunning(f"{names} did not answer within {timeout:g} s of starting; see `raftctl logs NODE`")


async def _note_if_alive(s: Session, node_id: str, answered: list[str]) -> None:
    if (await s.node_row(node_id, timeout=0.5)).alive:
        answered.append(node_id)


async def _abandon(s: Session, started: dict[str, int]) -> None:
    if not started:
        return
    await trio.to_thread.run_sync(lambda: supervisor.stop(s.config, started, grace=2.0))
    for node_id, pid in started.items():
        s.record("stopped", f"process {pid} (up failed)", node=node_id)


@dataclass
class DownResult:
    stopped: list[supervisor.Stopped]
    purged: list[str]


async def down(config: ClusterConfig, *, purge: bool = False, grace: float = supervisor.DEFAULT_GRACE) -> DownResult:
    """``raftctl down``: SIGTERM every node, SIGKILL after ``grace``; ``purge`` deletes the state.

    Nodes are found by their pid files and, for a node without one that still answers on its
    port, by the pid it reports (if that process is this node of this cluster file).
    """
    pids = supervisor.live_pids(config)
    missing = [n for n in config.node_ids if n not in pids]
    if missing:
        async with session(config, connect_timeout=0.3) as s:
            for node_id in missing:
                pid = await _find_pid(s, node_id)
                if pid is not None:
                    pids[node_id] = pid
    stopped = await trio.to_thread.run_sync(lambda: supervisor.stop(config, pids, grace=grace))
    paths = supervisor.StatePaths.of(config)
    for item in stopped:
        events.record(paths, "stopped", f"process {item.pid} ({item.signal}, raftctl down)", node=item.node)
    purged: list[str] = []
    if purge:
        purged = [str(p) for p in supervisor.purge(config)]
        # The data is gone: nodes added since the cluster began now found the next one with the rest.
        if clear_join_flags(config.path):
            purged.append(f"join = true in {config.path.name}")
    else:
        paths.faults.unlink(missing_ok=True)
    return DownResult(stopped, purged)


@dataclass(frozen=True)
class ProcessResult:
    """What ``kill``/``stop``/``start``/``restart`` did to one node."""

    node: str
    action: str  # killed, stopped, started, restarted, not-running, already-running
    pid: int | None = None
    old_pid: int | None = None
    signal: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"node": self.node, "action": self.action, "pid": self.pid, "old_pid": self.old_pid, "signal": self.signal}


async def _find_pid(s: Session, node_id: str) -> int | None:
    pid = supervisor.live_pid(s.config, node_id)
    if pid is not None:
        return pid
    # No pid file (started by hand, or the file was lost): a node that answers tells its pid,
    # trusted only if that process runs this node of this cluster file (pids are reused).
    row = await s.node_row(node_id, timeout=0.5)
    if row.alive and row.pid and supervisor.is_node_process(row.pid, s.config, node_id):
        return row.pid
    return None


async def kill(config: ClusterConfig, name: str, *, timeout: float = 5.0) -> ProcessResult:
    """``raftctl kill``: SIGKILL the node's process and wait until it is gone (idempotent)."""
    async with session(config) as s:
        node_id = await s.resolve(name, timeout=timeout)
        pid = await _find_pid(s, node_id)
        if pid is None:
            return ProcessResult(node_id, "not-running")
        await trio.to_thread.run_sync(lambda: supervisor.stop(config, {node_id: pid}, kill=True))
        s.record("killed", f"process {pid} (SIGKILL)", node=node_id)
        return ProcessResult(node_id, "killed", old_pid=pid, signal="SIGKILL")


async def stop(config: ClusterConfig, name: str, *, grace: float = supervisor.DEFAULT_GRACE, timeout: float = 5.0) -> ProcessResult:
    """``raftctl stop``: SIGTERM, then SIGKILL after ``grace`` (idempotent)."""
    async with session(config) as s:
        node_id = await s.resolve(name, timeout=timeout)
        return await _stop(s, node_id, grace=grace)


async def _stop(s: Session, node_id: str, *, grace: float) -> ProcessResult:
    pid = await _find_pid(s, node_id)
    if pid is None:
        return ProcessResult(node_id, "not-running")
    [done] = await trio.to_thread.run_sync(lambda: supervisor.stop(s.config, {node_id: pid}, grace=grace))
    s.record("stopped", f"process {pid} ({done.signal})", node=node_id)
    return ProcessResult(node_id, "stopped", old_pid=pid, signal=done.signal)


async def start(config: ClusterConfig, name: str, *, timeout: float = 10.0) -> ProcessResult:
    """``raftctl start``: start the node if it is not running and wait until it answers."""
    async with session(config) as s:
        if name in SPECIAL_NODES:
            raise UsageProblem(f"`start {name}` names a running node; start a node by its id")
        node_id = await s.resolve(name)
        return await _start(s, node_id, timeout=timeout)


async def _start(s: Session, node_id: str, *, timeout: float, old_pid: int | None = None) -> ProcessResult:
    pid = await _find_pid(s, node_id)
    if pid is not None:
        return ProcessResult(node_id, "already-running", pid=pid)
    await trio.to_thread.run_sync(lambda: supervisor.check_ports(s.config, [node_id]))
    pid = supervisor.spawn(s.config, node_id)
    s.record("started", f"process {pid}", node=node_id)
    try:
        await _wait_started(s, {node_id: pid}, timeout=timeout)
    except BaseException:
        with trio.CancelScope(shield=True):
            await _abandon(s, {node_id: pid})
        raise
    await _push_wanted(s, [node_id], fresh=True)
    return ProcessResult(node_id, "restarted" if old_pid else "started", pid=pid, old_pid=old_pid)


async def restart(config: ClusterConfig, name: str, *, grace: float = supervisor.DEFAULT_GRACE, timeout: float = 10.0) -> ProcessResult:
    """``raftctl restart``: graceful stop (if running), then start."""
    async with session(config) as s:
        node_id = await s.resolve(name, timeout=timeout)
        stopped = await _stop(s, node_id, grace=grace)
        started = await _start(s, node_id, timeout=timeout, old_pid=stopped.old_pid)
        return ProcessResult(node_id, "restarted", pid=started.pid, old_pid=stopped.old_pid, signal=stopped.signal)


# -- faults ----------------------------------------------------------------------------------------


@dataclass
class FaultsResult:
    """The faults now on each node; ``skipped`` nodes were down (they get theirs when they start)."""

    applied: dict[str, dict[str, Any]]
    skipped: list[str]
    partition: list[list[str]]

    def to_json(self) -> dict[str, Any]:
        return {"partition": self.partition, "faults": self.applied, "skipped": self.skipped}


async def _push_wanted(s: Session, node_ids: Sequence[str], *, fresh: bool = False) -> FaultsResult:
    """Give each of ``node_ids`` its wanted faults (see ``raftctl.chaos``).

    With ``fresh`` (nodes that just started, so have no faults yet) a node whose wanted record is
    empty is left alone.
    """
    wanted = chaos.WantedFaults.load(s.paths.faults)
    if fresh:
        empty = chaos.WantedFaults()
        node_ids = [n for n in node_ids if wanted.node_faults(n) != empty.node_faults(n)]
    applied: dict[str, dict[str, Any]] = {}
    skipped: list[str] = []

    async def push(node_id: str) -> None:
        try:
            response = await s.client.call(node_id, wire.SetFaults(wanted.node_faults(node_id)), timeout=2.0)
        except ClientError:
            skipped.append(node_id)
            return
        if not response.get("ok"):
            raise Refused(f"node {node_id} refused the faults: {response.get('error')}")
        applied[node_id] = response["faults"]

    async with trio.open_nursery() as nursery:
        for node_id in node_ids:
            nursery.start_soon(push, node_id)
    order = {n: i for i, n in enumerate(s.config.node_ids)}
    return FaultsResult(
        dict(sorted(applied.items(), key=lambda kv: order[kv[0]])),
        sorted(skipped, key=order.__getitem__),
        wanted.partition,
    )


async def _change_faults(s: Session, change: Callable[[chaos.WantedFaults], None], node_ids: Sequence[str]) -> FaultsResult:
    await s.ensure_running()
    wanted = chaos.WantedFaults.load(s.paths.faults)
    change(wanted)
    wanted.save(s.paths.faults)
    result = await _push_wanted(s, node_ids)
    if not result.applied:
        raise ClusterNotRunning(s.config.path, "no node took the faults")
    return result


async def partition(config: ClusterConfig, groups: Sequence[str], *, timeout: float = 5.0) -> FaultsResult:
    """``raftctl partition``: cut the cluster into ``groups`` (+ one group of the nodes not named)."""
    async with session(config) as s:
        plan = await _partition_plan(s, groups, timeout=timeout)

        def change(wanted: chaos.WantedFaults) -> None:
            wanted.partition = plan

        result = await _change_faults(s, change, config.node_ids)
        s.record("partition", chaos.describe_partition(plan))
        return result


async def partition_plan(config: ClusterConfig, groups: Sequence[str], *, timeout: float = 5.0) -> list[list[str]]:
    """The full partition ``groups`` name (``leader``/``follower`` resolved), for ``up --netns``'s kernel."""
    async with session(config) as s:
        plan = await _partition_plan(s, groups, timeout=timeout)
        s.record("partition", f"{chaos.describe_partition(plan)} (kernel)")
        return plan


async def _partition_plan(s: Session, groups: Sequence[str], *, timeout: float) -> list[list[str]]:
    """The full partition of ``groups``: names checked, ``leader``/``follower`` resolved, the
    nodes not named as one more group."""
    parsed = chaos.parse_groups(groups)
    config = s.config
    for group in parsed:
        for name in group:
            s.check_name(name)
    named: list[list[str]] = []
    taken: list[str] = [n for g in parsed for n in g if n not in SPECIAL_NODES]
    for group in parsed:
        ids = []
        for name in group:
            node_id = await s.resolve(name, timeout=timeout, exclude=taken)
            if name in SPECIAL_NODES:
                taken.append(node_id)
            ids.append(node_id)
        named.append(ids)
    return chaos.plan_partition(named, config.node_ids)


async def heal(config: ClusterConfig, *, everything: bool = False) -> FaultsResult:
    """``raftctl heal``: remove the partition (and with ``everything`` all link faults too)."""
    async with session(config) as s:

        def change(wanted: chaos.WantedFaults) -> None:
            wanted.partition = []
            if everything:
                wanted.links = {}

        result = await _change_faults(s, change, config.node_ids)
        s.record("heal", "all faults cleared" if everything else "partition removed")
        return result


async def link_faults(config: ClusterConfig, names: Sequence[str], kind: str, values: dict[str, float], *, timeout: float = 5.0) -> FaultsResult:
    """``slow``/``flaky``/``duplicate``/``fast``: set (or with ``fast`` clear) link faults of nodes."""
    async with session(config) as s:
        for name in names:
            s.check_name(name)
        node_ids: list[str] = []
        for name in names:
            node_id = await s.resolve(name, timeout=timeout, exclude=node_ids)
            if node_id not in node_ids:
                node_ids.append(node_id)

        def change(wanted: chaos.WantedFaults) -> None:
            for node_id in node_ids:
                if kind == "fast":
                    wanted.links.pop(node_id, None)
                else:
                    wanted.set_links(node_id, **values)

        result = await _change_faults(s, change, node_ids)
        detail = "link faults cleared" if kind == "fast" else chaos.describe_links(values)
        for node_id in node_ids:
            s.record(kind, detail, node=node_id)
        return result


# -- leadership and snapshots ----------------------------------------------------------------------


async def transfer_leader(config: ClusterConfig, name: str, *, timeout: float = 5.0) -> tuple[str, str | None]:
    """``raftctl transfer-leader``: ask the leader to hand over to ``name``; wait until it has.

    Returns ``(new leader, previous leader)``; the previous one is None if ``name`` already led.
    """
    async with session(config) as s:
        target = await s.resolve(name, timeout=timeout)
        current = await s.running_status()
        if not current.row(target).alive:
            raise NotRunning(f"node {target} is not running")
        if current.leader is None:
            try:
                _, current = await s.poll(lambda st: st.leader is not None, timeout=timeout)
            except PollTimeout:
                raise NoLeaderError(f"the cluster has no leader to transfer from{_claims(s.last_status)}") from None
        previous = current.leader
        assert previous is not None
        if previous == target:
            return target, None
        try:
            response = await s.client.call(previous, wire.Transfer(target), timeout=timeout)
        except ClientError as exc:
            raise NotRunning(str(exc)) from None
        if not response.get("ok"):
            raise Refused(f"{previous} refused the transfer to {target}: {response.get('error')}")
        s.record("transfer-leader", f"from {previous} to {target}", node=target)
        try:
            await s.poll(lambda st: st.leader == target, timeout=timeout)
        except PollTimeout:
            now = s.last_status.leader if s.last_status else None
            raise WaitTimeout(f"{target} did not become leader within {timeout:g} s (leader now: {now or 'none'})") from None
        return target, previous


async def snapshot(config: ClusterConfig, name: str, *, timeout: float = 30.0) -> tuple[str, int]:
    """``raftctl snapshot``: the node snapshots its state machine now; returns ``(node, index)``."""
    async with session(config) as s:
        node_id = await s.resolve(name, timeout=min(timeout, 5.0))
        try:
            response = await s.client.call(node_id, wire.Snapshot(), timeout=timeout)
        except NodeUnreachable:
            raise NotRunning(f"node {node_id} is not running") from None
        except ClientTimeout:
            raise WaitTimeout(f"node {node_id} did not finish its snapshot within {timeout:g} s") from None
        if not response.get("ok"):
            raise Refused(f"node {node_id} refused: {response.get('error')}")
        s.record("snapshot", f"snapshot at index {response['index']} (requested)", node=node_id)
        return node_id, int(response["index"])


# -- events ----------------------------------------------------------------------------------------


async def fetch_events(config: ClusterConfig, *, node: str | None = None) -> list[events.Event]:
    """``raftctl events``: raftctl's audit log merged with every running node's recent events."""
    paths = supervisor.StatePaths.of(config)
    async with session(config) as s:
        if node is not None and node not in config.node_ids:
            raise UnknownNode(node, config.node_ids)
        from_nodes: list[events.Event] = []

        async def fetch(node_id: str) -> None:
            try:
                response = await s.client.call(node_id, wire.RecentEvents(), timeout=STATUS_TIMEOUT)
            except ClientError:
                return
            from_nodes.extend(events.from_node(e, node_id) for e in response.get("events", []))

        async with trio.open_nursery() as nursery:
            for node_id in config.node_ids:
                nursery.start_soon(fetch, node_id)
        merged = events.merge(events.read_log(paths.events), events.node_files(paths), from_nodes)
        if node is not None:
            merged = [e for e in merged if e.get("node") in (node, None)]
        return merged


async def follow_events(
    config: ClusterConfig,
    emit: Callable[[events.Event], Awaitable[None] | None],
    *,
    history: bool = True,
    reconnect_interval: float = 0.5,
    reload_interval: float = 0.25,
) -> None:
    """``raftctl events --follow``: call ``emit`` for every event as it happens, until cancelled.

    Tails the audit log and subscribes to the event stream of every node the cluster file names,
    re-subscribing to a node that comes back after dying. The file is looked at every
    ``reload_interval``: a node ``add-node`` put in it is subscribed to, the subscription of a node
    ``remove-node`` took out of it ends (``follow.Members``). With ``history`` the events so far
    are emitted first. Copies are dropped by key among the last ``follow.RECENT_KEYS`` events.
    """
    paths = supervisor.StatePaths.of(config)
    seen = follow.RecentKeys()
    send, receive = trio.open_memory_channel[events.Event](1000)

    async def offer(event: events.Event) -> None:
        if seen.fresh(event):
            await send.send(event)

    async def offer_new(event: events.Event) -> None:
        if history or event["time"] >= started_at:
            await offer(event)

    audit_log = events.LogFollower(paths.events, from_end=True)
    members = follow.Members(config, offer_new, reconnect_interval=reconnect_interval)
    if history:
        for event in await fetch_events(config):
            seen.fresh(event)
            await follow.hand(emit, event)
    started_at = time.time()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(follow.tail_audit_log, audit_log, offer, 0.1)
        members.start(nursery)
        nursery.start_soon(members.follow_file, reload_interval)
        async for event in receive:
            await follow.hand(emit, event)
