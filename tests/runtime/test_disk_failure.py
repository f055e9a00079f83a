"""A failed write or fsync stops the node, says so, and is never retried (issue 16).

After a failed fsync the page cache may claim data that never reached the disk (the PostgreSQL
fsync lesson): the node acknowledges nothing of that write, does not call sync again — not even
at stop — and a restart recovers from what is really on disk.
"""

from __future__ import annotations

import errno
import random

import pytest
import trio

from raftnode.concurrency import unwrapped
from raftnode.core import RaftConfig
from raftnode.node.runtime import RaftNode
from raftnode.node.statemachines import Counter
from raftnode.storage import DiskFailure
from raftnode.transport.memory import MemoryNetwork

from .harness import ELECTION_TICKS, ELECTION_TIMEOUT_MAX, HEARTBEAT_TICKS, TICK, memory_storage

pytestmark = pytest.mark.trio


@pytest.mark.parametrize(("error", "says"), [(errno.ENOSPC, "disk full"), (errno.EIO, "disk write or fsync failed")])
async def test_a_failed_fsync_stops_the_node_says_why_and_is_never_retried(error, says):
    storage = memory_storage()
    syncs = []

    def failing_sync() -> None:
        syncs.append(1)
        raise OSError(error, "injected")

    storage.sync = failing_sync  # type: ignore[method-assign]
    node = RaftNode(
        RaftConfig(node_id="n1", voters=("n1",), election_timeout=ELECTION_TICKS, heartbeat_interval=HEARTBEAT_TICKS),
        storage=storage, transport=MemoryNetwork().transport("n1"), state_machine=Counter(), tick_seconds=TICK,
        rng=random.Random(1),
    )
    events = []
    node.add_event_handler(events.append)
    with trio.fail_after(5 * ELECTION_TIMEOUT_MAX):
        with pytest.raises(DiskFailure, match=says), unwrapped():
            async with trio.open_nursery() as nursery:
                nursery.start_soon(node.run)  # it elects itself, appends its no-op: the fsync fails
    assert len(syncs) == 1  # never retried, not even by the last sync at stop
    disk_events = [e.detail for e in events if e.kind == "disk"]
    assert len(disk_events) == 1 and says in disk_events[0] and "never retries" in disk_events[0]
    assert node.status().commit_index == 0  # nothing of the failed write was committed


async def start_on_disks(cluster, tmp_path, *, faults: bool = False) -> dict:
    """Start every node of ``cluster`` on a DiskStorage under ``tmp_path`` (called inline, for a
    deterministic MockClock run); ``faults``: each honours ``tmp_path/faults-<id>``'s trigger files."""
    from raftnode.storage.disk import DiskStorage
    from raftnode.storage.injected_faults import inject_disk_faults

    storages = {}
    for node_id in cluster.ids:
        storage = storages[node_id] = DiskStorage(tmp_path / node_id)
        storage.needs_thread = False  # type: ignore[misc]
        if faults:
            (tmp_path / f"faults-{node_id}").mkdir()
            inject_disk_faults(storage, tmp_path / f"faults-{node_id}")
        await cluster.start(node_id, storage=storage)  # type: ignore[arg-type]
    return storages


async def test_a_follower_whose_disk_fills_stays_up_acknowledges_nothing_and_resumes_when_space_frees(
    autojump_clock: trio.testing.MockClock, tmp_path, monkeypatch
) -> None:
    from raftnode.storage import disk as disk_module
    from raftnode.storage.disk import DiskStorage

    from .harness import Cluster

    full = {"on": False}
    real_usage = disk_module.shutil.disk_usage
    monkeypatch.setattr(disk_module.shutil, "disk_usage",
                        lambda path: real_usage(path)._replace(free=0) if full["on"] else real_usage(path))
    async with trio.open_nursery() as nursery:
        cluster = Cluster(nursery)
        storages = await start_on_disks(cluster, tmp_path)
        leader = await cluster.wait_leader()
        assert (await leader.run_command("incr 1")).ok
        victim = cluster.followers()[0]
        storage = storages[victim.id]
        real_fsync = storage._fsync

        def fsync(fd: int) -> None:
            if full["on"]:
                raise OSError(errno.ENOSPC, "No space left on device")
            real_fsync(fd)

        storage._fsync = fsync  # type: ignore[method-assign]
        full["on"] = True
        before = victim.status().last_index
        for n in range(2, 6):
            assert (await leader.run_command(f"incr {n}")).ok  # the other follower makes the majority
        await trio.sleep(3 * ELECTION_TIMEOUT_MAX)
        assert victim.status().role == "follower" and victim.status().stats["disk_full"] == 1  # still up
        assert victim.status().applied_index <= before
        progress = leader.raft.progress(victim.id)
        assert progress is not None and progress.match <= before  # it acknowledged nothing new
        (_, event), = cluster.events_of(victim.id, "disk")
        assert "disk full" in event.detail and "staying up" in event.detail

        full["on"] = False
        await cluster.wait_applied(leader.status().commit_index, timeout=5.0)
        assert victim.status().stats["disk_full"] == 0 and cluster.values()[victim.id] == 15
        assert "resumed" in cluster.events_of(victim.id, "disk")[-1][1].detail
        nursery.cancel_scope.cancel()
    for storage in storages.values():
        storage.close()
    with DiskStorage(tmp_path / victim.id) as reopened:  # what it acknowledged is really on disk
        assert reopened.load().entries[-1].index >= leader.status().commit_index


async def test_a_leader_whose_disk_fills_refuses_commands_hands_over_and_resumes_as_a_follower(
    autojump_clock: trio.testing.MockClock, tmp_path
) -> None:
    """The leader's fsync fails with ENOSPC (the test-only trigger file of injected_faults): it
    stays up, answers no command from its own unpersisted copy, hands leadership to a follower
    that holds its whole log, and catches up once the trigger is gone. Every acknowledged
    ``incr`` is in the final value, which every node agrees on."""
    from raftnode.storage.disk import DiskStorage

    from .harness import Cluster

    async with trio.open_nursery() as nursery:
        cluster = Cluster(nursery)
        storages = await start_on_disks(cluster, tmp_path, faults=True)
        old = await cluster.wait_leader()
        acked = [(await old.run_command("incr 1")).result]
        (tmp_path / f"faults-{old.id}" / "enospc").touch()
        first = await old.run_command("incr 1")  # its write fails; the followers may still commit it
        assert first.ok or first.redirect is not None or first.retry, first
        acked += [first.result] if first.ok else []
        refused = await old.run_command("incr 1")  # handing over (retry, saying why) or handed over (redirect)
        assert (refused.retry or refused.redirect) and not refused.ok, refused
        assert refused.error is None or "disk full at leader" in refused.error, refused
        new = await cluster.wait_leader(other_than=old.id, timeout=3 * ELECTION_TIMEOUT_MAX)
        for _ in range(5):
            result = await new.run_command("incr 1")
            assert result.ok, result
            acked.append(result.result)
        assert not cluster.stopped(old.id) and old.status().role == "follower"
        assert old.status().stats["disk_full"] == 1
        details = [e.detail for _, e in cluster.events_of(old.id, "disk")]
        assert any("disk full at the leader" in d and "handing leadership over" in d for d in details), details
        assert any(e.kind == "transfer" and e.node == old.id for _, e in cluster.events)
        redirected = await old.run_command("incr 1")
        assert redirected.redirect == new.id, redirected

        (tmp_path / f"faults-{old.id}" / "enospc").unlink()
        await cluster.wait_applied(new.status().commit_index, timeout=5.0)
        values = cluster.values()
        assert set(values.values()) == {max(acked)} and sorted(acked) == list(range(1, len(acked) + 1)), (values, acked)
        assert old.status().stats["disk_full"] == 0
        nursery.cancel_scope.cancel()
    for storage in storages.values():
        storage.close()
    with DiskStorage(tmp_path / old.id) as reopened:  # what it holds now is really on disk
        assert reopened.load().entries[-1].index >= new.status().commit_index



def lonely_leader(tmp_path) -> tuple[RaftNode, object, object]:
    """A one-node cluster on a DiskStorage whose fsyncs fail while ``tmp_path/faults/enospc`` exists."""
    from raftnode.storage.disk import DiskStorage
    from raftnode.storage.injected_faults import inject_disk_faults

    faults = tmp_path / "faults"
    faults.mkdir()
    storage = DiskStorage(tmp_path / "n1")
    storage.needs_thread = False  # type: ignore[misc]  # deterministic under the MockClock
    inject_disk_faults(storage, faults)
    node = RaftNode(
        RaftConfig(node_id="n1", voters=("n1",), election_timeout=ELECTION_TICKS, heartbeat_interval=HEARTBEAT_TICKS),
        storage=storage, transport=MemoryNetwork().transport("n1"), state_machine=Counter(), tick_seconds=TICK,
        rng=random.Random(1),
    )
    return node, storage, faults / "enospc"


async def fill_the_lonely_leaders_disk(node: RaftNode, trigger, nursery: trio.Nursery) -> tuple[list, int]:
    """Elect ``node``, fill its disk, send ``incr 1`` and wait 10 election timeouts: the answers so
    far, and how many fsyncs had succeeded when the disk filled."""
    answers: list = []

    async def waiting_command() -> None:
        answers.append(await node.run_command("incr 1", timeout=60))

    await nursery.start(node.run)
    with trio.fail_after(5):
        while node.status().role != "leader" or node.status().commit_index < 1:
            await trio.sleep(TICK)
    fsyncs = node.storage.stats()["fsyncs"]  # type: ignore[attr-defined]
    trigger.touch()
    nursery.start_soon(waiting_command)
    await trio.sleep(10 * ELECTION_TIMEOUT_MAX)
    return answers, fsyncs


async def test_a_leader_alone_with_a_full_disk_refuses_commands_saying_why_and_commits_once_space_frees(
    autojump_clock: trio.testing.MockClock, tmp_path
) -> None:
    """With no follower to hand over to, the leader stays leader: the command whose write failed
    waits (nothing unpersisted is acknowledged), later ones are refused with a retry that says
    "disk full", and once the trigger is gone the waiting command commits, once."""
    node, storage, trigger = lonely_leader(tmp_path)
    async with trio.open_nursery() as nursery:
        answers, _ = await fill_the_lonely_leaders_disk(node, trigger, nursery)
        assert answers == [] and node.status().stats["disk_full"] == 1 and node.status().role == "leader"
        refused = await node.run_command("incr 5")
        assert refused.retry and not refused.ok and "disk full at leader n1" in (refused.error or ""), refused
        assert node.status().state["value"] == 0
        trigger.unlink()
        with trio.fail_after(5):
            while not answers:
                await trio.sleep(TICK)
        assert answers[0].ok and answers[0].result == 1, answers
        assert (await node.run_command("incr 1")).result == 2 and node.status().stats["disk_full"] == 0
        nursery.cancel_scope.cancel()
    storage.close()


async def test_planted_bug_a_full_disk_leader_that_counts_its_unwritten_entries_acknowledges_them(
    autojump_clock: trio.testing.MockClock, tmp_path, monkeypatch
) -> None:
    """Planted bug: the leader advances the whole Ready while its disk is full (its entries taken
    for persisted). The lonely leader then acknowledges a command its disk does not hold — what
    the test above rules out."""
    import raftnode.node.driver as driver_module

    monkeypatch.setattr(driver_module, "_advance_unwritten", lambda raft, ready: raft.advance(ready))
    node, storage, trigger = lonely_leader(tmp_path)
    async with trio.open_nursery() as nursery:
        answers, fsyncs = await fill_the_lonely_leaders_disk(node, trigger, nursery)
        assert answers and answers[0].ok  # acknowledged, though no fsync succeeded since the disk filled
        assert storage.stats()["fsyncs"] == fsyncs and node.status().stats["disk_full"] == 1  # type: ignore[attr-defined]
        nursery.cancel_scope.cancel()
    storage.close()
