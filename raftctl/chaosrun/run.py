"""``raftctl chaos``: clients and faults against a real cluster, then the verdict.

Theory of operation
-------------------
A run makes its own cluster (``nodes`` processes on the ``kv`` state machine, on free loopback
ports, in the run's directory), starts it, and for ``duration`` seconds runs ``clients``
concurrent clients (one ``ClusterClient`` each, so one client session each) on the workload of
``raftctl.chaosrun.plan`` while a nemesis injects the seeded fault schedule, one fault at a time,
through the same domain functions as ``raftctl partition``/``kill``/``slow``/... A watcher
records every change of leader. Everything goes to ``history.jsonl`` as it happens.

After the run every fault is recovered, each key the run touched is read once more (a lost write
shows up there), and the cluster is left to converge: every node must reach the same applied
index with the same state digest (the applied prefixes agree). Then the cluster is stopped (its
data kept with ``keep``) and the history is checked for linearizability, key by key.

An operation's outcome is recorded as the client saw it: ``ok`` with the answer; ``fail`` when
it certainly had no effect (a read that got no answer, or a command the state machine refused);
``info`` for a write whose fate is unknown (a timeout, a lost connection, no leader in time).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w
import trio

from raftnode.client.trioclient import ClientError, ClusterClient
from raftnode.config import ClusterConfig, load_config
from raftnode.wire import requests as wire

from .. import cluster, membership, oneshot, supervisor
from ..errors import RaftctlError
from ..linearizability import Budget, check_history, parse_history
from ..linearizability.checker import Verdict
from ..linearizability.models import KEY_VALUE
from ..linearizability.report import html_report
from .plan import Fault, Operation, Workload, fault_schedule
from .recorder import Recorder

#: Link faults the ``slow`` and ``flaky`` kinds inject.
SLOW_LINKS = {"delay_ms": 50.0, "jitter_ms": 20.0}
FLAKY_LINKS = {"drop_pct": 20.0}


@dataclass(frozen=True)
class ChaosOptions:
    directory: Path
    seed: int
    duration: float = 60.0
    nodes: int = 5
    clients: int = 8
    faults: tuple[str, ...] = ("partition", "kill", "restart", "slow", "flaky", "transfer", "membership")
    keys: int = 6
    rotate_s: float = 2.0
    op_timeout: float = 2.0
    check_seconds: float = 60.0
    keep: bool = False
    #: ``kv`` or a class with kv's commands (set, get, cas, incr) to put under test instead.
    state_machine: str = "kv"


@dataclass
class ChaosResult:
    """What a run found. ``exit_code``: 0 linearizable and converged, 1 an anomaly or diverged
    nodes, 4 the checker ran out of budget on some key (named in the verdict)."""

    directory: Path
    history: Path
    report: Path
    seed: int
    counts: dict[str, int]
    faults: list[dict[str, Any]]
    verdict: Verdict
    converged: bool
    convergence: str
    elapsed: float
    notes: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        if self.verdict.status == "anomaly" or not self.converged:
            return 1
        return 4 if self.verdict.status == "unknown" else 0

    def to_json(self) -> dict[str, Any]:
        return {
            "directory": str(self.directory),
            "history": str(self.history),
            "report": str(self.report),
            "seed": self.seed,
            "outcomes": self.counts,
            "faults": self.faults,
            "converged": self.converged,
            "convergence": self.convergence,
            "elapsed": round(self.elapsed, 3),
            "notes": self.notes,
            "exit_code": self.exit_code,
            **self.verdict.to_json(),
        }


def write_cluster_file(directory: Path, nodes: int, seed: int, state_machine: str = "kv") -> Path:
    """A cluster of ``nodes`` nodes on free loopback ports, its state under ``directory``."""
    ports = supervisor.free_ports(2 * nodes)
    cluster_table = {"name": f"chaos-{seed}", "state_machine": state_machine, "state_dir": "state"}
    # One [[nodes]] block per node, as `raftctl init` writes them (add-node/remove-node edit those).
    chunks = [tomli_w.dumps({"cluster": cluster_table})]
    for k in range(nodes):
        node = {"id": f"n{k + 1}", "peer": f"127.0.0.1:{ports[k]}", "client": f"127.0.0.1:{ports[nodes + k]}"}
        chunks.append("[[nodes]]\n" + tomli_w.dumps(node))
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "cluster.toml"
    path.write_text("\n".join(chunks), encoding="utf-8")
    return path


async def run_chaos(options: ChaosOptions, *, progress: Callable[[str, float], None] | None = None) -> ChaosResult:
    """Run one chaos test as the module docstring says; ``progress(phase, fraction)`` is told how
    far it has come."""
    tell = progress or (lambda phase, fraction: None)
    began = trio.current_time()
    path = write_cluster_file(options.directory, options.nodes, options.seed, options.state_machine)
    config = load_config(path)
    tell("starting the cluster", 0.0)
    await cluster.up(config, timeout=20.0)
    recorder = Recorder(options.directory / "history.jsonl", trio.current_time)
    run = _Run(options, config, recorder)
    schedule = fault_schedule(options.seed, options.faults, duration=options.duration)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run.watch_leader)
            async with trio.open_nursery() as work:
                work.start_soon(run.nemesis, schedule)
                for client in range(options.clients):
                    work.start_soon(run.client, client)
                work.start_soon(_report_progress, tell, recorder, options.duration)
            tell("final reads", 1.0)
            await run.recover_everything()
            await run.final_reads()
            converged, convergence = await run.converge(timeout=30.0)
            nursery.cancel_scope.cancel()
    finally:
        recorder.close()
        with trio.CancelScope(shield=True):
            await cluster.down(run.config, purge=not options.keep)
    tell("checking the history", 1.0)
    with recorder.path.open(encoding="utf-8") as lines:
        history = parse_history(lines)
    verdict = await trio.to_thread.run_sync(
        lambda: check_history(history, KEY_VALUE, Budget(steps=None, seconds=options.check_seconds)))
    report = options.directory / "report.html"
    report.write_text(html_report(history, verdict, title=f"raftctl chaos, seed {options.seed}"), encoding="utf-8")
    return ChaosResult(options.directory, recorder.path, report, options.seed, dict(recorder.counts),
                       run.applied_faults, verdict, converged, convergence, trio.current_time() - began, run.notes)


async def _report_progress(tell: Callable[[str, float], None], recorder: Recorder, duration: float) -> None:
    while recorder.elapsed() < duration:
        tell(f"{recorder.counts['ok']} ok, {recorder.counts['info']} info, {recorder.counts['fault']} faults",
             min(1.0, recorder.elapsed() / duration))
        await trio.sleep(0.5)


class _Run:
    """The moving parts of one run: the clients, the nemesis and the leader watcher."""

    def __init__(self, options: ChaosOptions, config: ClusterConfig, recorder: Recorder) -> None:
        self.options = options
        self.config = config
        self.recorder = recorder
        self.addresses = config.client_addresses()
        self.tls = oneshot.client_tls(config)
        self.workload = Workload(options.seed, options.clients + 1, keys=options.keys, rotate_s=options.rotate_s)
        self.rng = random.Random(f"{options.seed}/targets")
        self.applied_faults: list[dict[str, Any]] = []
        self.notes: list[str] = []
        self.touched: set[str] = set()
        self._down: set[str] = set()  # killed nodes to start again
        self._missing = 0  # nodes removed and not yet replaced
        self._next_id = len(config.nodes) + 1  # ids are never reused
        self._clients: list[ClusterClient] = []

    # -- clients --------------------------------------------------------------------------------

    async def client(self, process: int) -> None:
        async with ClusterClient(self.addresses, connect_timeout=0.5, tls=self.tls) as client:
            self._clients.append(client)
            while self.recorder.elapsed() < self.options.duration:
                await self.one(client, process, self.workload.next(process, self.recorder.elapsed()))

    async def one(self, client: ClusterClient, process: int, op: Operation) -> None:
        self.touched.add(op.key)
        self.recorder.invoke(process, op)
        try:
            if op.read:  # a linearizable read without a log entry (ReadIndex), at any node
                outcome = await client.query(op.command, timeout=self.options.op_timeout)
            else:
                outcome = await client.run_command(op.command, timeout=self.options.op_timeout)
        except ClientError as exc:
            self.recorder.complete(process, op, "fail" if op.read else "info", error=str(exc) or type(exc).__name__)
            return
        answer = outcome.result
        if answer.error is not None:
            self.recorder.complete(process, op, "fail", node=outcome.node, error=answer.error)
        else:
            self.recorder.complete(process, op, "ok", _recorded(op, answer.result), node=outcome.node)

    async def final_reads(self) -> None:
        """Read every key the run touched once more, from a fresh client (a lost write shows)."""
        process = self.options.clients  # the workload has one stream more than there are clients
        async with ClusterClient(self.addresses, connect_timeout=0.5, tls=self.tls) as client:
            for key in sorted(self.touched):
                await self.one(client, process, Operation("get", key, None, f"get {key}"))

    # -- the leader watcher ---------------------------------------------------------------------

    async def watch_leader(self) -> None:
        last: tuple[str | None, int | None] | None = None
        while True:
            try:
                async with cluster.session(self.config, connect_timeout=0.3) as s:
                    while True:
                        status = await s.status(timeout=0.5)
                        row = status.leader_row
                        now = (row.id, row.term) if row else (None, None)
                        if now != last and (row is not None or last is None or last[0] is not None):
                            self.recorder.leader(*now)
                            last = now
                        await trio.sleep(0.2)
            except (ClientError, RaftctlError, OSError):
                await trio.sleep(0.2)

    # -- the nemesis ----------------------------------------------------------------------------

    async def nemesis(self, schedule: Sequence[Fault]) -> None:
        for fault in schedule:
            await trio.sleep(max(0.0, fault.at - self.recorder.elapsed()))
            recover = await self._inject(fault)
            await trio.sleep(fault.hold)
            if recover is not None:
                await self._attempt(recover[0], recover[1], recover[2])

    async def _inject(self, fault: Fault) -> tuple[str, str | None, Callable[[], Any]] | None:
        """Inject ``fault``; returns how to recover it (what, node, coroutine function), if anything."""
        try:
            node = await self._pick(fault.target)
        except (RaftctlError, ClientError, trio.TooSlowError) as exc:
            self.recorder.fault(fault.kind, error=f"no target: {exc}")
            return None
        config = self.config
        if fault.kind == "partition":
            side = self._minority(node)
            ok = await self._attempt("partition", None, lambda: cluster.partition(config, [",".join(side)]),
                                     value=[side])
            return ("heal", None, lambda: cluster.heal(config)) if ok else None
        if fault.kind == "kill":
            if await self._attempt("kill", node, lambda: cluster.kill(config, node)):
                self._down.add(node)
                return ("start", node, lambda: self._start(node))
            return None
        if fault.kind == "restart":
            await self._attempt("restart", node, lambda: cluster.restart(config, node))
            return None
        if fault.kind in ("slow", "flaky"):
            links = SLOW_LINKS if fault.kind == "slow" else FLAKY_LINKS
            if await self._attempt(fault.kind, node, lambda: cluster.link_faults(config, [node], fault.kind, links),
                                   value=links):
                return ("fast", node, lambda: cluster.link_faults(config, [node], "fast", {}))
            return None
        if fault.kind == "transfer":
            await self._attempt("transfer", node, lambda: cluster.transfer_leader(config, node))
            return None
        return await self._remove(node)

    async def _remove(self, node: str) -> tuple[str, str | None, Callable[[], Any]] | None:
        """Remove ``node``; the recovery adds a new node in its place (a new id: a removed id is
        not reused, as a new node of that id replays the log that removed the old one)."""
        if not await self._attempt("remove-node", node, lambda: membership.remove_node(self.config, node)):
            return None
        self.config = load_config(self.config.path)
        self._missing += 1
        return ("add-node", None, self._add_replacement)

    async def _add_replacement(self) -> str:
        node = f"n{self._next_id}"
        self._next_id += 1
        peer, client = supervisor.free_ports(2)
        await membership.add_node(self.config, node, f"127.0.0.1:{peer}", f"127.0.0.1:{client}", timeout=30.0)
        self._missing -= 1
        self.config = load_config(self.config.path)
        self.addresses = self.config.client_addresses()
        for client in self._clients:  # the clients may be redirected to it
            client.addresses[node] = self.addresses[node]
        return node

    async def _start(self, node: str) -> None:
        await cluster.start(self.config, node)
        self._down.discard(node)

    async def _attempt(self, what: str, node: str | None, action: Callable[[], Any], *, value: Any = None) -> bool:
        """Run one fault action, recording it (with its error, if it failed); True if it worked."""
        try:
            returned = await action()
        except (RaftctlError, ClientError, trio.TooSlowError, OSError) as exc:
            self.recorder.fault(what, node=node, value=value, error=str(exc) or type(exc).__name__)
            return False
        node = node or (returned if isinstance(returned, str) else None)  # e.g. the id a node was added as
        self.recorder.fault(what, node=node, value=value)
        self.applied_faults.append({"f": what, "node": node, "time": round(self.recorder.elapsed(), 3)})
        return True

    async def _pick(self, target: str) -> str:
        """The node a fault acts on: the leader, a follower, or any running voter."""
        running = [n for n in self.config.node_ids if n not in self._down]
        if target == "random":
            return self.rng.choice(running)
        leader = (await cluster.leader(self.config, timeout=3.0)).id
        if target == "leader":
            return leader
        followers = [n for n in running if n != leader]
        if not followers:
            raise RaftctlError("no running follower to act on")
        return self.rng.choice(followers)

    def _minority(self, node: str) -> list[str]:
        """``node`` and others, together a minority of the voters."""
        others = [n for n in self.config.node_ids if n != node]
        size = (len(self.config.node_ids) - 1) // 2
        return sorted([node, *self.rng.sample(others, max(0, size - 1))])

    async def recover_everything(self) -> None:
        """Heal every fault a cancelled nemesis may have left (the schedule recovers its own)."""
        await self._attempt("heal", None, lambda: cluster.heal(self.config, everything=True))
        for node in sorted(self._down):
            await self._attempt("start", node, lambda node=node: self._start(node))
        while self._missing:
            if not await self._attempt("add-node", None, self._add_replacement):
                break

    # -- convergence ----------------------------------------------------------------------------

    async def converge(self, *, timeout: float) -> tuple[bool, str]:
        """Wait until every node has applied the same prefix with the same state digest."""
        last = "no picture"
        with trio.move_on_after(timeout):
            async with ClusterClient(self.config.client_addresses(), connect_timeout=0.5, tls=self.tls) as client:
                while True:
                    seen: dict[str, tuple[int, str]] = {}
                    for node in self.config.node_ids:
                        try:
                            status = await client.call(node, wire.Status(digest=True), timeout=1.0)
                        except ClientError as exc:
                            last = f"{node}: {exc}"
                            break
                        seen[node] = (int(status.get("applied_index") or 0), str(status.get("state_digest")))
                    else:
                        if len(set(seen.values())) == 1:
                            index, digest = next(iter(seen.values()))
                            return True, f"every node applied through {index}, state digest {digest}"
                        indexes = {index for index, _ in seen.values()}
                        if len(indexes) == 1:
                            return False, "the nodes applied the same index but hold different states: " + ", ".join(
                                f"{n} {d}" for n, (_, d) in seen.items())
                        last = ", ".join(f"{n} at {i}" for n, (i, _) in seen.items())
                    await trio.sleep(0.2)
        return False, f"the nodes did not converge within {timeout:g} s ({last})"


def _recorded(op: Operation, result: Any) -> Any:
    """The history's value of an ok answer (``set`` answers the value it wrote)."""
    if op.f == "incr" and isinstance(result, str):
        return int(result)
    return result
