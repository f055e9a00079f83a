"""FaultyTransport: partitions, loss, delay and duplication on both directions of a node's links.

Three FaultyTransports over one MemoryNetwork, driven under an autojump MockClock; faults are set
on one node ("n1") only, and must act on what it sends and on what it receives.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio

from raftnode.core.messages import Heartbeat, Message
from raftnode.transport import Transport
from raftnode.transport.faults import Faults, FaultyTransport
from raftnode.transport.memory import MemoryNetwork

IDS = ("n1", "n2", "n3")


class Net:
    def __init__(self) -> None:
        self.network = MemoryNetwork()
        self.transports = {n: FaultyTransport(self.network.transport(n), rng=random.Random(i)) for i, n in enumerate(IDS)}
        self.received: dict[str, list[tuple[float, Message]]] = {n: [] for n in IDS}

    def deliver_to(self, node_id: str):
        return lambda message: self.received[node_id].append((trio.current_time(), message))

    def send(self, src: str, dst: str, commit: int = 0) -> Heartbeat:
        message = Heartbeat(term=1, src=src, dst=dst, commit=commit)
        self.transports[src].send(message)
        return message

    def got(self, node_id: str) -> list[Message]:
        return [m for _, m in self.received[node_id]]


@asynccontextmanager
async def network() -> AsyncIterator[Net]:
    net = Net()
    async with trio.open_nursery() as nursery:
        for node_id, transport in net.transports.items():
            await nursery.start(transport.run, net.deliver_to(node_id))
        yield net
        nursery.cancel_scope.cancel()


async def settle() -> None:
    await trio.sleep(1.0)  # virtual: every delayed copy has long arrived


@pytest.mark.trio
async def test_a_faulty_transport_is_a_transport(autojump_clock: trio.testing.MockClock) -> None:
    async with network() as net:
        assert isinstance(net.transports["n1"], Transport)
        assert set(net.transports["n1"].stats()) >= {"sent", "dropped", "received", "fault_dropped"}


@pytest.mark.trio
async def test_without_faults_every_message_arrives_once_and_at_once(autojump_clock: trio.testing.MockClock) -> None:
    async with network() as net:
        sent = [net.send("n1", "n2", c) for c in range(10)] + [net.send("n2", "n1", 99)]
        await settle()
        assert net.got("n2") == sent[:10] and net.got("n1") == sent[10:]
        assert {t for t, _ in net.received["n2"]} == {0.0}


@pytest.mark.trio
async def test_a_partition_blocks_both_directions_of_the_named_links_only(autojump_clock: trio.testing.MockClock) -> None:
    async with network() as net:
        net.transports["n1"].faults.partitioned_from = {"n2"}  # set on n1 alone
        net.send("n1", "n2", 1)
        net.send("n2", "n1", 2)
        to_n3 = net.send("n1", "n3", 3)
        from_n3 = net.send("n3", "n1", 4)
        between_others = net.send("n2", "n3", 5)
        await settle()
        assert net.got("n2") == []
        assert net.got("n1") == [from_n3]
        assert net.got("n3") == [to_n3, between_others]
        assert net.transports["n1"].stats()["fault_dropped"] == 2

        net.transports["n1"].faults = Faults()  # heal
        healed = [net.send("n1", "n2", 6), net.send("n2", "n1", 7)]
        await settle()
        assert net.got("n2") == [healed[0]] and net.got("n1") == [from_n3, healed[1]]


@pytest.mark.trio
async def test_dropping_100_percent_loses_everything_in_and_out(autojump_clock: trio.testing.MockClock) -> None:
    async with network() as net:
        net.transports["n1"].faults = Faults(drop_pct=100)
        for c in range(20):
            net.send("n1", "n2", c)
            net.send("n3", "n1", c)
        unaffected = net.send("n2", "n3", 1)
        await settle()
        assert net.got("n1") == [] and net.got("n2") == [] and net.got("n3") == [unaffected]
        assert net.transports["n1"].stats()["fault_dropped"] == 40


@pytest.mark.trio
async def test_dropping_a_percentage_loses_about_that_share(autojump_clock: trio.testing.MockClock) -> None:
    async with network() as net:
        net.transports["n1"].faults = Faults(drop_pct=30)
        for c in range(1000):
            net.send("n1", "n2", c)
        await settle()
        assert 600 <= len(net.got("n2")) <= 800
        assert len(net.got("n2")) + net.transports["n1"].stats()["fault_dropped"] == 1000


@pytest.mark.trio
async def test_a_delay_holds_each_direction_for_exactly_that_long_under_the_mock_clock(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with network() as net:
        net.transports["n1"].faults = Faults(delay_ms=50)
        start = trio.current_time()
        out = net.send("n1", "n2", 1)
        back = net.send("n2", "n1", 2)
        direct = net.send("n2", "n3", 3)
        await settle()
        assert net.received["n2"] == [(pytest.approx(start + 0.05), out)]
        assert net.received["n1"] == [(pytest.approx(start + 0.05), back)]
        assert net.received["n3"] == [(start, direct)]
        assert net.transports["n1"].stats()["fault_delayed"] == 2


@pytest.mark.trio
async def test_jitter_spreads_delays_within_delay_plus_jitter(autojump_clock: trio.testing.MockClock) -> None:
    async with network() as net:
        net.transports["n1"].faults = Faults(delay_ms=20, jitter_ms=30)
        start = trio.current_time()
        for c in range(200):
            net.send("n1", "n2", c)
        await settle()
        delays = [t - start for t, _ in net.received["n2"]]
        assert len(delays) == 200
        assert min(delays) >= 0.02 - 1e-9 and max(delays) <= 0.05 + 1e-9
        assert max(delays) - min(delays) > 0.02  # actually spread
        # reordering is allowed: Raft copes; every message still arrives exactly once
        assert sorted(m.commit for m in net.got("n2")) == list(range(200))  # type: ignore[attr-defined]


@pytest.mark.trio
async def test_duplicating_100_percent_delivers_every_message_twice_both_ways(autojump_clock: trio.testing.MockClock) -> None:
    async with network() as net:
        net.transports["n1"].faults = Faults(duplicate_pct=100)
        out = [net.send("n1", "n2", c) for c in range(5)]
        back = [net.send("n3", "n1", c) for c in range(5)]
        await settle()
        assert sorted(net.got("n2"), key=lambda m: m.commit) == sorted(out * 2, key=lambda m: m.commit)  # type: ignore[attr-defined]
        assert sorted(net.got("n1"), key=lambda m: m.commit) == sorted(back * 2, key=lambda m: m.commit)  # type: ignore[attr-defined]
        assert net.transports["n1"].stats()["fault_duplicated"] == 10


@pytest.mark.trio
async def test_duplicates_with_a_delay_arrive_after_the_delay(autojump_clock: trio.testing.MockClock) -> None:
    async with network() as net:
        net.transports["n1"].faults = Faults(duplicate_pct=100, delay_ms=10)
        message = net.send("n1", "n2", 1)
        await settle()
        assert net.received["n2"] == [(pytest.approx(0.01), message)] * 2


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"drop_pct": 101}, "drop_pct"),
        ({"duplicate_pct": -1}, "duplicate_pct"),
        ({"delay_ms": "slow"}, "delay_ms"),
        ({"jitter_ms": 60_001}, "jitter_ms"),
        ({"partitioned_from": "n2"}, "partitioned_from"),
        ({"partitioned_from": [2]}, "partitioned_from"),
        ({"loss": 5}, "loss"),
    ],
)
def test_faults_from_dict_refuses_a_bad_field_by_name(spec: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        Faults.from_dict(spec)


def test_faults_round_trip_through_dicts() -> None:
    faults = Faults(partitioned_from={"n3", "n2"}, drop_pct=5, delay_ms=10, jitter_ms=2, duplicate_pct=1)
    assert faults.to_dict()["partitioned_from"] == ["n2", "n3"]
    assert Faults.from_dict(faults.to_dict()) == faults
    assert faults.any() and not Faults().any()
