"""Where a Ready's fsync runs (raftnode.node.fsyncplace): inline or in the disk thread."""

from pathlib import Path

from raftnode.core import RaftConfig
from raftnode.node.fsyncplace import FAST_FSYNC_SHARE, INLINE_FSYNC_ENTRIES, FsyncPlacement
from raftnode.node.runtime import RaftNode
from raftnode.node.statemachines import Counter
from raftnode.storage.disk import DiskStorage
from raftnode.transport.memory import MemoryNetwork

HEARTBEAT = 0.05  # seconds


def test_a_follower_syncs_a_small_ready_inline_and_a_large_one_in_the_disk_thread() -> None:
    place = FsyncPlacement(fsyncs=True, heartbeat_seconds=HEARTBEAT)
    assert place.inline(1, leader=False)
    assert place.inline(INLINE_FSYNC_ENTRIES, leader=False)
    assert not place.inline(INLINE_FSYNC_ENTRIES + 1, leader=False)


def test_a_follower_syncs_a_small_ready_inline_however_slow_its_disk() -> None:
    place = FsyncPlacement(fsyncs=True, heartbeat_seconds=HEARTBEAT)
    place.observe(10 * HEARTBEAT)
    assert place.inline(1, leader=False)


def test_a_leader_syncs_a_small_ready_inline_only_while_its_last_fsync_was_fast() -> None:
    place = FsyncPlacement(fsyncs=True, heartbeat_seconds=HEARTBEAT)
    assert place.inline(1, leader=True)
    assert not place.inline(INLINE_FSYNC_ENTRIES + 1, leader=True)
    place.observe(HEARTBEAT * FAST_FSYNC_SHARE * 1.01)  # one slow fsync: back to the thread
    assert not place.inline(1, leader=True)
    place.observe(HEARTBEAT * FAST_FSYNC_SHARE)  # the disk is fast again
    assert place.inline(1, leader=True)


def test_without_fsync_every_sync_runs_inline() -> None:
    place = FsyncPlacement(fsyncs=False, heartbeat_seconds=HEARTBEAT)
    place.observe(10 * HEARTBEAT)
    assert place.inline(100 * INLINE_FSYNC_ENTRIES, leader=True)
    assert place.inline(100 * INLINE_FSYNC_ENTRIES, leader=False)


def test_a_node_on_a_disk_storage_without_fsync_places_every_sync_inline(tmp_path: Path) -> None:
    def node(fsync: bool) -> RaftNode:
        return RaftNode(
            RaftConfig(node_id="n1", voters=("n1", "n2", "n3")),
            storage=DiskStorage(tmp_path / str(fsync), fsync=fsync),
            transport=MemoryNetwork().transport("n1"),
            state_machine=Counter(),
        )

    assert node(fsync=False)._disk.fsync_place.inline(100 * INLINE_FSYNC_ENTRIES, leader=True)
    assert not node(fsync=True)._disk.fsync_place.inline(100 * INLINE_FSYNC_ENTRIES, leader=True)
