"""One contract, two implementations: MemoryStorage and DiskStorage behave the same.

Each case runs against both. ``reopen()`` gives what a restart finds: for DiskStorage the
directory opened again, for MemoryStorage its crash model (the state as of the last sync), so
cases that reopen sync first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from raftnode.core.quorum import Configuration
from raftnode.core.messages import Entry, EntryKind
from raftnode.core.ready import HardState
from raftnode.storage import SnapshotMeta, Storage, StorageError
from raftnode.storage.disk import DiskStorage
from raftnode.storage.memory import MemoryStorage


@dataclass
class Env:
    kind: str
    storage: Storage
    _reopen: Callable[[Storage], Storage]

    def reopen(self) -> Storage:
        self.storage = self._reopen(self.storage)
        return self.storage


@pytest.fixture(params=["memory", "disk"])
def env(request, tmp_path):
    if request.param == "memory":
        e = Env("memory", MemoryStorage(), lambda s: s.crash())
    else:
        def reopen(s: Storage) -> Storage:
            s.close()
            return DiskStorage(tmp_path / "node")

        e = Env("disk", DiskStorage(tmp_path / "node"), reopen)
    yield e
    e.storage.close()


def entries(lo: int, hi: int, term: int = 1) -> list[Entry]:
    """Entries lo..hi inclusive."""
    return [Entry(term, i, f"cmd-{term}-{i}".encode()) for i in range(lo, hi + 1)]


def ids(es) -> list[tuple[int, int]]:
    return [(e.term, e.index) for e in es]


def test_both_implementations_satisfy_the_protocol(env):
    assert isinstance(env.storage, Storage)


def test_a_new_storage_loads_empty(env):
    state = env.storage.load()
    assert state.hard_state == HardState()
    assert state.snapshot is None
    assert state.entries == []
    assert env.storage.read_snapshot() is None


def test_appended_entries_load_back_identically_before_and_after_reopen(env):
    written = [
        Entry(1, 1, b"", EntryKind.NOOP),
        Entry(1, 2, b"set x 1"),
        Entry(2, 3, bytes(range(256)) * 40),
        Entry(2, 4, "ünïcode".encode()),
    ]
    env.storage.append(written[:2])
    env.storage.append(written[2:])
    assert env.storage.load().entries == written
    env.storage.sync()
    loaded = env.reopen().load().entries
    assert loaded == written
    assert [type(e.kind) for e in loaded] == [EntryKind] * 4


def test_a_conflicting_suffix_is_truncated_and_replaced(env):
    env.storage.append(entries(1, 5, term=1))
    env.storage.sync()
    env.storage.append(entries(3, 4, term=2))  # a new leader's entries overwrite 3..5
    assert ids(env.storage.load().entries) == [(1, 1), (1, 2), (2, 3), (2, 4)]
    env.storage.append(entries(5, 6, term=2))
    env.storage.sync()
    assert ids(env.reopen().load().entries) == [(1, 1), (1, 2), (2, 3), (2, 4), (2, 5), (2, 6)]


def test_truncating_to_the_very_first_entry_leaves_only_the_replacement(env):
    env.storage.append(entries(1, 3, term=1))
    env.storage.append(entries(1, 2, term=3))
    env.storage.sync()
    assert ids(env.reopen().load().entries) == [(3, 1), (3, 2)]


def test_hard_state_round_trips_and_the_last_synced_one_wins(env):
    env.storage.set_hard_state(HardState(term=1, vote="n1", commit=0))
    env.storage.set_hard_state(HardState(term=2, vote=None, commit=4))
    assert env.storage.load().hard_state == HardState(term=2, vote=None, commit=4)
    env.storage.sync()
    assert env.reopen().load().hard_state == HardState(term=2, vote=None, commit=4)
    env.storage.set_hard_state(HardState(term=3, vote="nœud-2", commit=7))
    env.storage.sync()
    assert env.reopen().load().hard_state == HardState(term=3, vote="nœud-2", commit=7)


def test_hard_state_survives_a_truncation_of_the_log_it_was_written_with(env):
    env.storage.append(entries(1, 4, term=1))
    env.storage.set_hard_state(HardState(term=2, vote="n2", commit=1))
    env.storage.sync()
    env.storage.append(entries(2, 2, term=2))
    env.storage.sync()
    state = env.reopen().load()
    assert state.hard_state == HardState(term=2, vote="n2", commit=1)
    assert ids(state.entries) == [(1, 1), (2, 2)]


def test_a_snapshot_is_saved_read_back_and_loaded_with_the_log_after_it(env):
    env.storage.append(entries(1, 8))
    env.storage.sync()
    meta = SnapshotMeta(5, 1, Configuration(frozenset(("n1", "n2", "n3"))))
    env.storage.save_snapshot(meta, b"state at 5")
    assert env.storage.read_snapshot() == (meta, b"state at 5")
    state = env.storage.load()
    assert state.snapshot == meta
    assert ids(state.entries) == ids(entries(6, 8))
    reopened = env.reopen()
    assert reopened.read_snapshot() == (meta, b"state at 5")
    assert reopened.load().snapshot == meta
    assert ids(reopened.load().entries) == ids(entries(6, 8))


def test_a_newer_snapshot_replaces_the_older_one(env):
    env.storage.append(entries(1, 8))
    env.storage.save_snapshot(SnapshotMeta(3, 1, Configuration(frozenset(("a",)))), b"three")
    env.storage.save_snapshot(SnapshotMeta(6, 1, Configuration(frozenset(("a", "b")))), b"six")
    env.storage.sync()
    assert env.reopen().read_snapshot() == (SnapshotMeta(6, 1, Configuration(frozenset(("a", "b")))), b"six")


def test_a_snapshot_older_than_the_stored_one_is_refused(env):
    env.storage.append(entries(1, 8))
    env.storage.save_snapshot(SnapshotMeta(6, 1), b"six")
    with pytest.raises(ValueError, match="older"):
        env.storage.save_snapshot(SnapshotMeta(3, 1), b"three")
    assert env.storage.read_snapshot() == (SnapshotMeta(6, 1), b"six")


def test_a_snapshot_the_log_does_not_extend_discards_the_log_after_it(env):
    # §5.3 InstallSnapshot: the entry at the snapshot's index has another term, so the log
    # after it belongs to a different history and must go.
    env.storage.append(entries(1, 10, term=1))
    env.storage.sync()
    env.storage.save_snapshot(SnapshotMeta(5, 2), b"leader's state")
    assert env.storage.load().entries == []
    env.storage.append(entries(6, 7, term=2))
    env.storage.sync()
    state = env.reopen().load()
    assert state.snapshot == SnapshotMeta(5, 2)
    assert ids(state.entries) == [(2, 6), (2, 7)]


def test_a_snapshot_beyond_the_end_of_the_log_restarts_the_log_after_it(env):
    env.storage.append(entries(1, 3))
    env.storage.sync()
    env.storage.save_snapshot(SnapshotMeta(10, 4), b"far ahead")
    assert env.storage.load().entries == []
    with pytest.raises(ValueError, match="non-contiguous"):
        env.storage.append(entries(12, 12, term=4))
    env.storage.append(entries(11, 12, term=4))
    env.storage.sync()
    state = env.reopen().load()
    assert state.snapshot == SnapshotMeta(10, 4)
    assert ids(state.entries) == [(4, 11), (4, 12)]


def test_compaction_drops_the_prefix_and_load_returns_only_the_rest(env):
    env.storage.append(entries(1, 10))
    env.storage.sync()
    env.storage.save_snapshot(SnapshotMeta(6, 1), b"six")
    env.storage.compact(6)
    assert ids(env.storage.load().entries) == ids(entries(7, 10))
    env.storage.append(entries(11, 12))
    env.storage.sync()
    assert ids(env.reopen().load().entries) == ids(entries(7, 12))


def test_compaction_beyond_the_snapshot_is_refused(env):
    env.storage.append(entries(1, 10))
    with pytest.raises(ValueError, match="snapshot covers only up to 0"):
        env.storage.compact(1)
    env.storage.save_snapshot(SnapshotMeta(4, 1), b"four")
    with pytest.raises(ValueError, match="up to index 5: the saved snapshot covers only up to 4"):
        env.storage.compact(5)
    env.storage.compact(4)
    env.storage.compact(2)  # already gone: nothing to do
    assert ids(env.storage.load().entries) == ids(entries(5, 10))


def test_a_non_contiguous_append_is_refused_and_changes_nothing(env):
    env.storage.append(entries(1, 3))
    with pytest.raises(ValueError, match="non-contiguous append: entries start at index 5 but the log ends at 3"):
        env.storage.append(entries(5, 6))
    with pytest.raises(ValueError, match="entry index 6 where 5 was expected"):
        env.storage.append([*entries(4, 4), *entries(6, 6)])
    # Even one that would have truncated first leaves the log intact.
    with pytest.raises(ValueError, match="entry index 4 where 3 was expected"):
        env.storage.append([Entry(2, 2, b""), Entry(2, 4, b"")])
    assert ids(env.storage.load().entries) == ids(entries(1, 3))


def test_an_append_into_the_snapshot_is_refused(env):
    env.storage.append(entries(1, 6))
    env.storage.save_snapshot(SnapshotMeta(4, 1), b"four")
    with pytest.raises(ValueError, match="covered by the snapshot"):
        env.storage.append(entries(3, 5, term=2))
    assert ids(env.storage.load().entries) == ids(entries(5, 6))


def test_an_empty_append_is_a_no_op(env):
    env.storage.append([])
    assert env.storage.load().entries == []


def test_one_sync_makes_every_append_and_hard_state_change_since_the_last_durable(env):
    before = env.storage.stats()["fsyncs"]
    for i in range(1, 21):
        env.storage.append(entries(i, i))
        env.storage.set_hard_state(HardState(term=1, vote="n1", commit=i - 1))
    env.storage.sync()
    assert env.storage.stats()["fsyncs"] - before == 1  # group commit
    env.storage.sync()
    assert env.storage.stats()["fsyncs"] - before == 1  # nothing new: no fsync
    state = env.reopen().load()
    assert ids(state.entries) == ids(entries(1, 20))
    assert state.hard_state == HardState(term=1, vote="n1", commit=19)


def test_what_was_synced_survives_and_what_was_not_may_be_lost_but_only_as_a_suffix(env):
    env.storage.append(entries(1, 5))
    env.storage.sync()
    env.storage.append(entries(6, 9))  # never synced
    got = ids(env.reopen().load().entries)
    everything = ids(entries(1, 9))
    assert got[:5] == everything[:5] and got == everything[: len(got)]


def test_stats_report_counters(env):
    env.storage.append(entries(1, 3))
    env.storage.sync()
    stats = env.storage.stats()
    assert stats["syncs"] == 1 and stats["appends"] == 1 and stats["entries_appended"] == 3
    assert stats["compactions"] == 0
    assert {"fsyncs", "bytes_written", "segments"} <= set(stats)
    assert stats["last_index"] == 3


def test_a_closed_storage_refuses_calls(env):
    env.storage.close()
    env.storage.close()  # idempotent
    with pytest.raises(StorageError, match="closed"):
        env.storage.append(entries(1, 1))
    with pytest.raises(StorageError):
        env.storage.load()


# -- both implementations agree on random histories ---------------------------------------------


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_disk_and_memory_agree_on_any_sequence_of_operations(tmp_path_factory, data):
    """A random history of appends (overwriting suffixes), hard states, syncs, snapshots (matching,
    conflicting, beyond the log), compactions and restarts, on tiny segments: DiskStorage always
    loads exactly what MemoryStorage does."""
    directory = tmp_path_factory.mktemp("model")
    disk: Storage = DiskStorage(directory, segment_bytes=160)
    memory = MemoryStorage()
    term = 1
    for _ in range(data.draw(st.integers(5, 40), label="steps")):
        state = memory.load()
        snap = state.snapshot.index if state.snapshot else 0
        last = state.entries[-1].index if state.entries else snap
        op = data.draw(st.sampled_from(["append", "append", "append", "hs", "sync", "snapshot", "compact", "reopen"]))
        if op == "append":
            start = data.draw(st.integers(snap + 1, last + 1), label="start")
            term += start <= last
            batch = [Entry(term, i, b"d%d" % i) for i in range(start, start + data.draw(st.integers(1, 8)))]
            for s in (disk, memory):
                s.append(batch)
        elif op == "hs":
            hs = HardState(term=term, vote=data.draw(st.sampled_from([None, "n1", "n2"])), commit=last)
            for s in (disk, memory):
                s.set_hard_state(hs)
        elif op == "sync":
            for s in (disk, memory):
                s.sync()
        elif op == "snapshot":
            index = data.draw(st.integers(snap, last + 3), label="snap index")
            stored = {e.index: e.term for e in state.entries}
            snap_term = data.draw(st.sampled_from([stored.get(index, term), term + 1]), label="snap term")
            if index == snap and state.snapshot is not None:
                snap_term = state.snapshot.term
            meta = SnapshotMeta(index, snap_term, Configuration(frozenset(("n1",))))
            term = max(term, snap_term)
            for s in (disk, memory):
                s.save_snapshot(meta, b"state %d" % index)
        elif op == "compact":
            index = data.draw(st.integers(0, snap), label="compact to")
            for s in (disk, memory):
                s.compact(index)
        else:
            for s in (disk, memory):
                s.sync()
            disk.close()
            disk = DiskStorage(directory, segment_bytes=160)
            memory = memory.crash()
        got, want = disk.load(), memory.load()
        assert got == want, op
        assert disk.read_snapshot() == memory.read_snapshot()
    disk.close()
