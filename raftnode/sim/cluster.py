"""A deterministic cluster of Raft cores over the simulated network.

:class:`SimCluster` runs the nodes, the clock and delivery, and answers what the scenarios ask
(who leads, has it converged); its scenario verbs live in rooms of their own, mixed in: the
clients' requests (``raftnode.sim.requests``: ``propose``, ``register_session``, ``read``),
membership (``raftnode.sim.membership``: ``transfer``, ``add_node``, ``remove_node``), network
faults (``raftnode.sim.netfaults``: ``isolate``, ``cut``, ``partition``, ``drop``, ``delay``,
``duplicate``, ``reorder``, ``heal``) and disk faults (``raftnode.sim.diskfaults``:
``fail_next_write``, ``fill_disk``, ``corrupt_record`` / ``repair_disk``, ``rewind_log``,
``replace_disk``); plus ``crash``, ``restart``, ``tick`` and ``stabilize`` here. A node that
applies a committed configuration without itself stops, as the runtime does. After every input
each node runs the runtime's own Ready loop (``raftnode.node.driver.drive``, in the order the core
states in ``core/ready.py``) over simulated ports (``raftnode.sim.shell``): a leader's appends
leave before its persist and it applies before it, a follower acknowledges and applies only
after. A crash throws away everything but the disk (``raftnode.sim.disk``), and a write fault
stops a node in the middle of a Ready's persist, after what the order let leave already left.

Every report is checked by :class:`InvariantChecker` as it happens, and ``check_step`` runs the
per-step checks, so a violation surfaces at the step that caused it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence

from ..core.commands import CommandResult, CommandTracker
from ..core.raft import Raft, RaftConfig
from ..core.ready import Role
from ..node.apply import Applier
from ..node.driver import ReadyStep, drive, hand_over, lead_without_disk, run_to_completion
from ..node.statemachines import Counter, StateMachine
from ..wire.sessions import SessionTable
from .disk import DISK_WRITE_FAULTS, SimDisk
from .diskfaults import DiskFaults
from .invariants import InvariantChecker
from .membership import Membership
from .netfaults import NetworkFaults
from .network import SimNetwork
from .node import ClientRequest, SimNode
from .requests import ClientRequests
from .shell import SimPorts
from .trace import TraceLine

__all__ = ["DISK_WRITE_FAULTS", "ClientRequest", "SimCluster", "SimDisk", "SimNode"]


class SimCluster(ClientRequests, Membership, NetworkFaults, DiskFaults):
    """N Raft cores, one seeded network, one invariant checker.

    Args:
        size: number of nodes, named n1..nN (or pass ``ids``).
        seed: seeds every random choice (network faults and each node's timeouts).
        raft_class: the engine to run — a test-only seam for planting bugs.
        state_machine: factory of each node's state machine.
        trace: collect one line per event in ``self.trace``.
        snapshot_every: each node snapshots its state machine and compacts its log once this many
            applied entries follow its latest snapshot (None: never).
        corrupt_as_torn: a test-only seam for a planted bug: a restarting node takes a corrupt
            record for a torn tail and drops the log from it, instead of refusing to start.
        session_table: factory of each node's client session table (a seam for planted bugs too).
        applier_class: each node's applier (a seam for planted bugs in applying batch entries).
        ready_step: replaces ``raftnode.node.driver.process_ready`` — a seam for planting a reordering.
        config: overrides of RaftConfig fields for every node.
    """

    def __init__(
        self,
        size: int = 3,
        *,
        seed: int = 0,
        ids: Sequence[str] | None = None,
        raft_class: type[Raft] = Raft,
        state_machine: Callable[[], StateMachine] = Counter,
        trace: bool = False,
        client_timeout: int = 100,
        snapshot_every: int | None = None,
        corrupt_as_torn: bool = False,
        session_table: Callable[[], SessionTable] = SessionTable,
        ready_step: ReadyStep | None = None,
        applier_class: type[Applier] = Applier,
        **config: object,
    ):
        self.ids = tuple(ids) if ids else tuple(f"n{i}" for i in range(1, size + 1))
        self.seed = seed
        self.rng = random.Random(seed)
        self.network = SimNetwork(rng=random.Random(self.rng.random()))
        self.checker = InvariantChecker(self.ids)
        self.raft_class = raft_class
        self.state_machine = state_machine
        self.client_timeout = client_timeout
        self.snapshot_every = snapshot_every
        self.corrupt_as_torn = corrupt_as_torn
        self.session_table = session_table
        self.ready_step = ready_step
        self.applier_class = applier_class
        self.config_overrides = config
        self.now = 0
        self.trace: list[TraceLine] | None = [] if trace else None
        self.requests: list[ClientRequest] = []
        self.nodes: dict[str, SimNode] = {node_id: SimNode(node_id, SimDisk(), self.ids) for node_id in self.ids}
        for node in self.nodes.values():
            self._boot(node)

    # -- node life -------------------------------------------------------------------------------

    def _boot(self, node: SimNode) -> None:
        config = RaftConfig(node_id=node.id, voters=node.bootstrap, **self.config_overrides)  # type: ignore[arg-type]
        disk = node.disk
        node.raft = self.raft_class(
            config,
            rng=random.Random(self.rng.random()),
            hard_state=disk.hard_state,
            entries=list(disk.entries),
            snapshot=disk.snapshot,
        )
        node.applier = self.applier_class(self.state_machine(), sessions=self.session_table())
        if disk.snapshot is not None:
            node.applier.restore(disk.snapshot[0].index, disk.snapshot[1])
        self.checker.state_machine_built(node.id, node.applier.applied_index)
        node.tracker = CommandTracker()
        node.reads, node.ready_reads = {}, []
        node.last_commit = node.raft.commit
        node.last_applied = node.applier.applied_index

    def crash(self, node_id: str) -> None:
        """Stop a node at once: memory, pending clients and its state machine are lost; its disk is kept."""
        node = self.node(node_id)
        if node.alive:
            self._stop(node, "crashed")

    def _stop(self, node: SimNode, why: str, kind: str = "crash") -> None:
        """Memory, pending clients and the state machine are gone; the disk stays."""
        for req, _ in node.tracker.leadership_lost(None):
            req.lost = True
        for req in [*node.reads.values(), *(req for _, req in node.ready_reads)]:
            req.lost = True
        node.raft = None
        node.applier = None
        node.leading_without_disk = False  # the process that noticed is gone
        self._log(node, why, kind)

    def restart(self, node_id: str) -> None:
        """Start a crashed node again from its disk (a no-op for a live node).

        A disk with a corrupt record is refused, as DiskStorage refuses it: the node stays down
        (``refused`` says why) — unless ``corrupt_as_torn`` (a planted bug) drops the log from it.
        """
        node = self.node(node_id)
        if node.alive or node.removed or node.refused:
            return
        corrupt_at = node.disk.corrupt_at
        if corrupt_at is not None:
            if not self.corrupt_as_torn:
                node.refused = f"refused to start: the record of entry {corrupt_at} fails its checksum"
                self._log(node, node.refused, "restart")
                return
            self.rewind_log(node_id, corrupt_at - 1)
        node.incarnation += 1
        self._boot(node)
        self._log(node, f"restarted from disk (term {node.disk.hard_state.term}, {len(node.disk.entries)} entries)", "restart")

    def node(self, node_id: str) -> SimNode:
        try:
            return self.nodes[node_id]
        except KeyError:
            raise KeyError(f"unknown node {node_id!r}; nodes are {', '.join(self.ids)}") from None

    def raft(self, node_id: str) -> Raft:
        raft = self.node(node_id).raft
        if raft is None:
            raise RuntimeError(f"node {node_id} is crashed")
        return raft

    def live(self) -> list[SimNode]:
        return [n for n in self.nodes.values() if n.alive]

    # -- time ------------------------------------------------------------------------------------

    def tick(self, ticks: int = 1) -> None:
        """Advance time: every live node ticks, then every message due is delivered."""
        for _ in range(ticks):
            self.now += 1
            for node in self.live():
                assert node.raft is not None
                node.raft.tick()
                for req, result in node.tracker.expire(self.now):
                    self._answer(node, req, result)
                if node.reads or node.ready_reads:
                    SimPorts(self, node).expire_reads()
                self._process(node)
            self.deliver()

    def deliver(self) -> int:
        """Deliver every message due now, including the answers they provoke; returns how many."""
        count = 0
        while (m := self.network.pop_due(self.now)) is not None:
            node = self.nodes.get(m.dst)
            if node is None or node.raft is None:
                continue
            node.raft.step(m)
            self._process(node)
            count += 1
        return count

    def run_until(self, predicate: Callable[[], bool], *, max_ticks: int = 1000) -> bool:
        """Tick until ``predicate()`` holds; False if it still does not after ``max_ticks``."""
        for _ in range(max_ticks):
            if predicate():
                return True
            self.tick()
        return predicate()

    def stabilize(self, *, max_ticks: int = 1000, nodes: Iterable[str] | None = None) -> bool:
        """Tick until the given (default: live) nodes share one leader and have applied its whole log."""
        members = list(nodes) if nodes is not None else None
        return self.run_until(lambda: self.converged(members), max_ticks=max_ticks)

    def wait_leader(self, *, max_ticks: int = 1000) -> str:
        """Tick until a leader is known to every live node; returns it."""
        if not self.run_until(lambda: self._agreed_leader() is not None, max_ticks=max_ticks):
            raise AssertionError(f"no leader within {max_ticks} ticks (seed {self.seed})")
        leader = self._agreed_leader()
        assert leader is not None
        return leader

    def wait_answered(self, req: ClientRequest, *, max_ticks: int = 1000) -> CommandResult:
        if not self.run_until(lambda: req.done, max_ticks=max_ticks):
            raise AssertionError(f"request {req.command!r} unanswered after {max_ticks} ticks (seed {self.seed})")
        assert req.result is not None, f"request {req.command!r} lost: its node crashed"
        return req.result

    # -- observation -----------------------------------------------------------------------------

    def leader(self) -> str | None:
        """The live leader of the highest term, if any."""
        leaders = [n for n in self.live() if n.raft is not None and n.raft.role is Role.LEADER]
        if not leaders:
            return None
        return max(leaders, key=lambda n: n.raft.term).id  # type: ignore[union-attr]

    def _agreed_leader(self) -> str | None:
        leader = self.leader()
        if leader is None:
            return None
        term = self.raft(leader).term
        members = self.raft(leader).configuration.members()
        if all(n.raft.leader == leader and n.raft.term == term  # type: ignore[union-attr]
               for n in self.live() if n.id in members):
            return leader
        return None

    def converged(self, nodes: Sequence[str] | None = None) -> bool:
        leader = self.leader()
        if leader is None:
            return False
        lraft = self.raft(leader)
        if lraft.commit != lraft.log.last_index:
            return False
        if nodes is not None:
            members = [self.node(n) for n in nodes]
        else:
            members = [n for n in self.live() if n.id in lraft.configuration.members()]
        for node in members:
            raft = node.raft
            if raft is None or raft.leader != leader or raft.term != lraft.term:
                return False
            if raft.commit != lraft.commit or node.applier is None or node.applier.applied_index != lraft.commit:
                return False
        return True

    def state(self, node_id: str) -> StateMachine:
        applier = self.node(node_id).applier
        if applier is None:
            raise RuntimeError(f"node {node_id} is crashed")
        return applier.state_machine

    def acknowledged(self) -> list[ClientRequest]:
        """Requests answered with the command's own outcome (a result or the state machine's error)."""
        return [r for r in self.requests if r.result is not None and r.result.index is not None
                and not r.result.timeout_expired and not r.result.outcome_unknown and not r.read]


    # -- the shell's part ------------------------------------------------------------------------

    def _process(self, node: SimNode) -> None:
        """Play the shell's part for ``node``: the one Ready loop the runtime runs too."""
        raft = node.raft
        assert raft is not None and node.applier is not None
        if node.leading_without_disk and node.disk_full and raft.role is Role.LEADER:
            hand_over(raft)
            lead_without_disk(raft, SimPorts(self, node))  # as the runtime's _while_disk_full
        elif not run_to_completion(drive(raft, SimPorts(self, node), self.ready_step)):
            if node.leading_without_disk and node.raft is not None and raft.role is Role.LEADER:
                hand_over(raft)  # as the runtime's _step_aside
            return  # a write fault or a full disk dropped the Ready (see SimPorts.persist)
        if raft.removed:
            node.removed = True
            self._stop(node, "applied its own removal from the configuration: stopped", "removed")

    def retry_apply(self) -> None:
        """Give every live node's applier another go at entries that failed to apply."""
        for node in self.live():
            SimPorts(self, node).run_applier()

    def _log(self, node: SimNode | None, what: str, kind: str, about: tuple[str, ...] = ()) -> None:
        """Tell one event in ``self.trace`` (if tracing): ``kind`` is one of TRACE_KINDS, ``about``
        the nodes a network fault touches."""
        if self.trace is None:
            return
        raft = node.raft if node is not None else None
        state = "down" if node is not None and raft is None else ""
        if raft is not None:
            state = f"{raft.role.value:<13} t={raft.term:<3} c={raft.commit:<5}"
        self.trace.append(TraceLine(self.now, node.id if node else None, kind, what, state, about))

