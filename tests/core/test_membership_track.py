"""A follower takes up a configuration entry wherever it sits in an appended batch
(``Membership.track`` looks for one at C speed first, then walks the batch)."""

from __future__ import annotations

import random

import pytest

from raftnode.core import RaftConfig
from raftnode.core.membership import Membership
from raftnode.core.messages import AppendEntries, Entry, EntryKind
from raftnode.core.quorum import Configuration
from raftnode.core.raft import Raft


def _follower() -> Raft:
    return Raft(RaftConfig(node_id="b", voters=("a", "b", "c")), rng=random.Random(1))


def _batch(config_at: int | None, count: int = 8) -> tuple[Entry, ...]:
    grown = Configuration(voters=frozenset({"a", "b", "c", "d"}))
    return tuple(
        Entry(1, index, grown.encode(), EntryKind.CONFIG) if index == config_at else Entry(1, index, b"incr 1")
        for index in range(1, count + 1)
    )


def _append(raft: Raft, entries: tuple[Entry, ...]) -> None:
    raft.step(AppendEntries(term=1, src="a", dst="b", prev_index=0, prev_term=0, entries=entries, commit=0))


@pytest.mark.parametrize("config_at", [1, 4, 8])
def test_a_configuration_anywhere_in_an_appended_batch_is_taken_up(config_at: int) -> None:
    raft = _follower()
    _append(raft, _batch(config_at))
    assert raft.configuration.voters == {"a", "b", "c", "d"}


def test_a_batch_without_a_configuration_changes_nothing() -> None:
    raft = _follower()
    before = raft.configuration
    _append(raft, _batch(None))
    assert raft.configuration is before


def test_planted_bug_a_look_at_the_batch_ends_only_misses_a_configuration_in_the_middle(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = Membership.track

    def ends_only(self: Membership, entries: tuple[Entry, ...], truncated_from: int | None) -> None:
        real(self, entries[:1] + entries[-1:], truncated_from)

    monkeypatch.setattr(Membership, "track", ends_only)
    raft = _follower()
    _append(raft, _batch(4))
    assert raft.configuration.voters == {"a", "b", "c"}  # missed: the real track is what takes it up
