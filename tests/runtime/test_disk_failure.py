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
