"""A cluster of RaftNodes in one trio program, over the in-memory network, for runtime tests.

Every node gets a MemoryStorage, a MemoryTransport wrapped in a FaultyTransport (so a test can
partition it) and an rng seeded from its position, so a run under
``MockClock(autojump_threshold=0)`` is the same every time: elections happen at virtual times
that follow from the seeds (see ``first_election_time``).
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import trio

from raftnode.core import RaftConfig
from raftnode.node.runtime import NodeEvent, RaftNode
from raftnode.node.statemachines import Counter
from raftnode.storage.memory import MemoryStorage
from raftnode.transport.faults import FaultyTransport
from raftnode.transport.memory import MemoryNetwork

IDS = ("n1", "n2", "n3")
TICK = 0.01  # seconds per tick
ELECTION_TICKS = (15, 30)  # as raftnode.__main__.raft_config gives for the default 150-300 ms
HEARTBEAT_TICKS = 5
ELECTION_TIMEOUT_MAX = ELECTION_TICKS[1] * TICK


def memory_storage() -> MemoryStorage:
    """A MemoryStorage the runtime calls inline rather than in a worker thread.

    The runtime looks for ``needs_thread`` and defaults to a worker thread; under an autojump
    MockClock a thread lets virtual time jump while it runs, so results would vary run to run.
    """
    storage = MemoryStorage()
    storage.needs_thread = False  # type: ignore[attr-defined]
    return storage


def first_election_time(seeds: dict[str, int]) -> float:
    """When the first election of a fresh cluster completes, in virtual seconds.

    Each node draws its first election timeout with ``randrange`` from its seeded rng; the
    earliest one campaigns at that tick, and on the in-memory network the pre-vote and vote
    rounds take no virtual time.
    """
    return min(random.Random(seed).randrange(*ELECTION_TICKS) for seed in seeds.values()) * TICK


class Cluster:
    """Nodes ``IDS`` running in ``nursery``; each can be stopped, crashed and restarted."""

    def __init__(
        self,
        nursery: trio.Nursery,
        *,
        machines: Callable[[str], Any] = lambda node_id: Counter(),
        snapshot_every: int | None = None,
        snapshot_bytes: int | None = None,
        seed: int = 0,
        ids: tuple[str, ...] = IDS,
    ):
        self.nursery = nursery
        self.ids = ids
        self.initial_ids = ids
        self.machines = machines
        self.snapshot_every = snapshot_every
        self.snapshot_bytes = snapshot_bytes
        self.network = MemoryNetwork()
        self.seeds = {node_id: seed + i for i, node_id in enumerate(ids)}
        self.nodes: dict[str, RaftNode] = {}
        self.storages: dict[str, MemoryStorage] = {}
        self.transports: dict[str, FaultyTransport] = {}
        self.events: list[tuple[float, NodeEvent]] = []  # (virtual time, event), every node
        self._stopped: dict[str, trio.Event] = {}
        self._incarnation: dict[str, int] = {}

    async def start_all(self) -> None:
        for node_id in self.ids:
            await self.start(node_id)

    async def start(self, node_id: str, *, storage: MemoryStorage | None = None, join: bool = False) -> RaftNode:
        """Start (or restart) ``node_id`` on ``storage`` (default: its previous one, or a new one).

        ``join``: a node new to the cluster, started with no configuration (to be added).
        """
        if node_id not in self.ids:
            self.ids = (*self.ids, node_id)
            self.seeds[node_id] = max(self.seeds.values()) + 1
        if storage is None:
            storage = self.storages.get(node_id) or memory_storage()
        self.storages[node_id] = storage
        incarnation = self._incarnation[node_id] = self._incarnation.get(node_id, -1) + 1
        transport = FaultyTransport(
            self.network.transport(node_id), rng=random.Random(1000 + self.seeds[node_id])
        )
        node = RaftNode(
            RaftConfig(
                node_id=node_id,
                voters=() if join else self.initial_ids,
                election_timeout=ELECTION_TICKS,
                heartbeat_interval=HEARTBEAT_TICKS,
            ),
            storage=storage,
            transport=transport,
            state_machine=self.machines(node_id),
            tick_seconds=TICK,
            snapshot_every=self.snapshot_every,
            snapshot_bytes=self.snapshot_bytes,
            rng=random.Random(self.seeds[node_id] + 100 * incarnation),
        )
        node.add_event_handler(lambda event: self.events.append((trio.current_time(), event)))
        self.nodes[node_id] = node
        self.transports[node_id] = transport
        stopped = self._stopped[node_id] = trio.Event()

        async def run(task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
            try:
                await node.run(task_status=task_status)
            finally:
                stopped.set()

        await self.nursery.start(run)
        return node

    async def stop(self, node_id: str) -> None:
        """Stop ``node_id`` gracefully and wait until its ``run`` returned."""
        self.nodes[node_id].stop()
        await self._stopped[node_id].wait()

    async def crash(self, node_id: str) -> MemoryStorage:
        """Stop ``node_id`` and return what its storage would hold after a power loss."""
        await self.stop(node_id)
        return self.storages[node_id].crash()

    def stopped(self, node_id: str) -> bool:
        return self._stopped[node_id].is_set()

    def running(self) -> list[RaftNode]:
        return [self.nodes[n] for n in self.ids if n in self.nodes and not self._stopped[n].is_set()]

    def leaders(self) -> list[RaftNode]:
        return [node for node in self.running() if node.status().role == "leader"]

    async def wait_leader(self, *, timeout: float = 10 * ELECTION_TIMEOUT_MAX, other_than: str | None = None) -> RaftNode:
        """The leader once exactly one running node leads (and it is not ``other_than``)."""
        with trio.fail_after(timeout):
            while True:
                leaders = [n for n in self.leaders() if n.id != other_than]
                if len(leaders) == 1:
                    return leaders[0]
                await trio.sleep(TICK / 10)

    async def wait_until(self, condition: Callable[[], bool], *, timeout: float = 5.0) -> None:
        with trio.fail_after(timeout):
            while not condition():
                await trio.sleep(TICK / 10)

    async def wait_applied(self, index: int, *, nodes: list[str] | None = None, timeout: float = 5.0) -> None:
        """Until every running node (or ``nodes``) has applied ``index``."""
        ids = nodes or [n.id for n in self.running()]
        await self.wait_until(lambda: all(self.nodes[n].status().applied_index >= index for n in ids), timeout=timeout)

    def values(self, nodes: list[str] | None = None) -> dict[str, Any]:
        """Each node's counter value (from status)."""
        ids = nodes or [n.id for n in self.running()]
        return {n: self.nodes[n].status().state.get("value") for n in ids}

    def followers(self) -> list[RaftNode]:
        return [node for node in self.running() if node.status().role == "follower"]

    def partition(self, node_id: str) -> None:
        """Cut ``node_id`` off from every other node (its fault layer blocks both directions)."""
        self.transports[node_id].faults.partitioned_from = set(self.ids) - {node_id}

    def heal(self, node_id: str) -> None:
        self.transports[node_id].faults.partitioned_from = set()

    def events_of(self, node_id: str, kind: str) -> list[tuple[float, NodeEvent]]:
        return [(t, e) for t, e in self.events if e.node == node_id and e.kind == kind]


@asynccontextmanager
async def running_cluster(**kwargs: Any) -> AsyncIterator[Cluster]:
    """A started ``Cluster`` (kwargs as for it), cancelled on leaving."""
    async with trio.open_nursery() as nursery:
        cluster = Cluster(nursery, **kwargs)
        await cluster.start_all()
        yield cluster
        nursery.cancel_scope.cancel()
