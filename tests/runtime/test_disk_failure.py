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
from raftnode.runtime import RaftNode
from raftnode.statemachines import Counter
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
    storages = {}
    async with trio.open_nursery() as nursery:
        cluster = Cluster(nursery)
        for node_id in cluster.ids:
            storage = storages[node_id] = DiskStorage(tmp_path / node_id)
            storage.needs_thread = False  # type: ignore[misc]  # deterministic under the MockClock
            await cluster.start(node_id, storage=storage)  # type: ignore[arg-type]
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
