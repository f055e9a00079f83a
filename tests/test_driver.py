"""The one Ready loop (``raftnode.node.driver``): the runtime and the simulator both run it, and the
simulator exercises the order the core states — the leader's early sends and early applies, and
a follower's acknowledgement only after its persist (the planted reordering that breaks this is
caught in ``tests/core/test_simulation.py``)."""

from __future__ import annotations

import types
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
import trio

from raftnode.core.messages import AppendEntries, Message
from raftnode.core.raft import Raft
from raftnode.core.ready import Ready, Role
from raftnode.node import driver
from raftnode.node.driver import PortSuspended, ReadyPorts, run_to_completion
from raftnode.sim.cluster import SimCluster

from .runtime.harness import running_cluster


class _Readies:
    """Every Ready the driver processed, and every Ready a core was told was done (``advance``)."""

    def __init__(self) -> None:
        self.driven: list[Ready] = []
        self.advanced: list[Ready] = []

    def bypassed(self) -> list[Ready]:
        driven = {id(r) for r in self.driven}
        return [r for r in self.advanced if id(r) not in driven]


@pytest.fixture
def readies(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Readies]:
    seen = _Readies()
    process, advance = driver.process_ready, Raft.advance

    async def recorded_process(ready: Ready, ports: ReadyPorts) -> bool:
        seen.driven.append(ready)
        return await process(ready, ports)

    def recorded_advance(self: Raft, ready: Ready) -> None:
        seen.advanced.append(ready)
        advance(self, ready)

    monkeypatch.setattr(driver, "process_ready", recorded_process)
    monkeypatch.setattr(Raft, "advance", recorded_advance)
    yield seen


def test_the_simulator_runs_every_ready_through_the_driver(readies: _Readies) -> None:
    cluster = SimCluster(3, seed=4)
    leader = cluster.wait_leader()
    for i in range(5):
        cluster.wait_answered(cluster.propose(leader, f"incr {i}"))
    assert cluster.stabilize()
    assert len(readies.advanced) > 20
    assert readies.bypassed() == []


@pytest.mark.trio
async def test_the_runtime_runs_every_ready_through_the_driver(
    readies: _Readies, autojump_clock: trio.testing.MockClock
) -> None:
    async with running_cluster() as cluster:
        leader = await cluster.wait_leader()
        for i in range(5):
            assert (await leader.run_command(f"incr {i}")).ok
        await cluster.wait_applied(leader.status().commit_index)
    assert len(readies.advanced) > 20
    assert readies.bypassed() == []


class _Witness:
    """Ports that note, as the driver calls them, what the node's disk holds at that moment."""

    def __init__(self, cluster: SimCluster, node: str, ports: ReadyPorts) -> None:
        self.cluster, self.node, self.ports = cluster, node, ports

    def on_disk(self) -> int:
        return self.cluster.node(self.node).disk.last_index

    def __getattr__(self, name: str) -> Any:
        return getattr(self.ports, name)

    def send(self, messages: Sequence[Message]) -> None:
        for m in messages:
            if isinstance(m, AppendEntries) and m.entries:
                self.cluster.witnessed.append(("append sent", self.node, m.entries[-1].index, self.on_disk()))
        self.ports.send(messages)

    def apply(self, ready: Ready) -> None:
        if ready.committed and ready.entries:
            newer = ready.entries[0].index
            self.cluster.witnessed.append(("applied", self.node, ready.committed[-1].index, newer, self.on_disk()))
        self.ports.apply(ready)


class _WitnessedCluster(SimCluster):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.witnessed: list[tuple] = []
        super().__init__(*args, ready_step=self._witnessed_step, **kwargs)

    async def _witnessed_step(self, ready: Ready, ports: ReadyPorts) -> bool:
        node = ports._node.id  # type: ignore[attr-defined]  # the simulated node these ports serve
        return await driver.process_ready(ready, _Witness(self, node, ports))  # type: ignore[arg-type]


def test_in_the_simulator_a_leader_replicates_and_applies_before_its_own_persist() -> None:
    """§10.2.1 in the simulator: the leader's AppendEntries leave while its disk lacks the entries
    they carry, and an entry committed meanwhile is applied (answered) before the persist of the
    newer entries that arrived in the same Ready — and every invariant still holds."""
    cluster = _WitnessedCluster(3, seed=2)
    leader = cluster.wait_leader()
    first = cluster.propose(leader, "incr 1")
    sent = [w for w in cluster.witnessed if w[0] == "append sent" and w[1] == leader]
    assert sent and any(index > on_disk for _, _, index, on_disk in sent), sent
    # The followers' acknowledgements and a new proposal reach the leader in one turn, as in the
    # runtime (acks and proposals batched into one Ready): it commits the first and appends the next.
    cluster.raft(leader).propose(b"incr 2")
    cluster.deliver()
    assert first.result is not None and first.result.ok
    applied = [w for w in cluster.witnessed if w[0] == "applied" and w[1] == leader]
    assert applied, cluster.witnessed
    _, _, committed, newer, on_disk = applied[0]
    assert committed < newer and on_disk < newer  # answered while the newer entry was not durable
    assert cluster.stabilize()


def test_a_follower_acknowledges_and_applies_only_after_its_persist() -> None:
    """The core's statement for a follower: nothing before its persist, apply after its ack."""
    cluster = SimCluster(3, seed=2)
    leader = cluster.wait_leader()
    follower = next(n for n in cluster.ids if n != leader)
    cluster.propose(leader, "incr 1")
    raft = cluster.raft(follower)
    cluster.network.heal()
    while (m := cluster.network.pop_due(cluster.now + 100)) is not None:
        if m.dst == follower and isinstance(m, AppendEntries) and m.entries:
            raft.step(m)
            break
    ready = raft.ready()
    assert raft.role is Role.FOLLOWER and ready.entries
    assert ready.messages_before_persist == () and ready.messages_after_persist
    assert not ready.apply_before_persist


def test_a_synchronous_shell_refuses_a_port_that_suspends() -> None:
    @types.coroutine
    def waits() -> Iterator[str]:
        yield "a disk that is not done yet"

    async def suspends() -> None:
        await waits()

    with pytest.raises(PortSuspended):
        run_to_completion(suspends())

    async def finishes() -> int:
        return 7

    assert run_to_completion(finishes()) == 7
