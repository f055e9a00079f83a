"""``Raft.ticks_until_timer``: the promise a lazy ticker relies on.

While more than one tick remains until the timer, a ``tick()`` only counts: no message, no event,
no change of role, term, leader or vote. Checked on every tick of the randomized schedules
(elections, partitions, crashes, leadership transfers, membership changes), several seeds each.
"""

from __future__ import annotations

import pytest

from raftnode.core import Raft
from raftnode.sim.runner import run_seed


def _observable(raft: Raft) -> tuple:
    return (
        raft.role, raft.term, raft.vote, raft.leader, raft.commit, raft.removed,
        len(raft._messages), len(raft._events), raft.has_ready(),
    )


class _CheckedTimer(Raft):
    """Every tick checks that a tick before the timer changed nothing a shell could see."""

    broken: list[str] = []
    quiet_ticks = 0

    def tick(self) -> None:
        due = self.ticks_until_timer()
        assert due >= 1
        before = _observable(self)
        super().tick()
        if due > 1:
            _CheckedTimer.quiet_ticks += 1
            after = _observable(self)
            if after != before:
                _CheckedTimer.broken.append(f"{self.id} at tick {self._ticks} (due {due}): {before} -> {after}")


@pytest.mark.parametrize(("nodes", "seed"), [(3, s) for s in range(5)] + [(5, s) for s in range(100, 105)])
def test_a_tick_before_the_timer_only_counts(nodes: int, seed: int) -> None:
    _CheckedTimer.broken, _CheckedTimer.quiet_ticks = [], 0
    report = run_seed(seed, nodes=nodes, steps=600, raft_class=_CheckedTimer)
    assert report.ok, f"seed {seed}: {report.violation}: {report.detail}"
    assert not _CheckedTimer.broken, f"seed {seed}: " + "; ".join(_CheckedTimer.broken[:5])
    assert _CheckedTimer.quiet_ticks > 100  # the timer is usually more than a tick away
