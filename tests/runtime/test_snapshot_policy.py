"""The node's snapshot policy: due by applied entries or by applied bytes, reset by a snapshot."""

from __future__ import annotations

from raftnode.core.messages import Entry
from raftnode.node.snapshotpolicy import SnapshotPolicy


def entries(count: int, size: int) -> list[Entry]:
    return [Entry(index=i + 1, term=1, data=b"x" * size) for i in range(count)]


def test_a_snapshot_is_due_by_entries_or_by_bytes_and_not_before() -> None:
    by_entries = SnapshotPolicy(every=5, max_bytes=None)
    assert not by_entries.due(applied_index=14, snapshot_index=10)
    assert by_entries.due(applied_index=15, snapshot_index=10)
    assert not by_entries.due(applied_index=10, snapshot_index=10)  # nothing new: never due
    by_bytes = SnapshotPolicy(every=None, max_bytes=60)
    by_bytes.applied(entries(9, 6))
    assert not by_bytes.due(applied_index=9, snapshot_index=0)
    by_bytes.applied(entries(1, 6))
    assert by_bytes.due(applied_index=10, snapshot_index=0)
    by_bytes.reset()
    assert not by_bytes.due(applied_index=11, snapshot_index=10)
    assert not SnapshotPolicy(every=None, max_bytes=None).due(applied_index=10**9, snapshot_index=0)
