"""A follower that comes back with less than the leader last knew of it is caught up.

Scenario catalog, "Crash and restart": a follower restored from an older copy, or restarted with
an empty log, answers the leader's heartbeats and appends with less than the leader's ``match``
for it. The leader must notice, forget that match and probe again (or send its snapshot) — else
it keeps probing just past the old match forever and the follower never catches up (issue 16).
"""

from __future__ import annotations

import copy

import pytest

from raftnode.core.progress import Progress, ProgressState
from raftnode.core.raft import Raft
from raftnode.sim.cluster import SimDisk

from .helpers import ELECTION_TIMEOUT_MAX, stable_cluster


class _KeepsMatch(Progress):
    __slots__ = ()

    def lost_entries(self, last_index: int) -> None:
        """The bug of issue 16: keep ``match`` (and so keep probing just past it)."""


class NeverResetsProgress(Raft):
    """Planted bug: a follower's answers showing it lost entries never reset its progress."""

    def _become_leader(self) -> None:
        super()._become_leader()
        for pr in self._progress.values():
            pr.__class__ = _KeepsMatch


def _caught_up(cluster, leader: str, follower: str) -> bool:
    lraft, fraft = cluster.raft(leader), cluster.raft(follower)
    return fraft.log.last_index == lraft.log.last_index and fraft.commit == lraft.commit


def _commit_commands(cluster, leader: str, count: int) -> None:
    for i in range(count):
        cluster.propose(leader, f"incr {i + 1}")
    assert cluster.stabilize(max_ticks=10 * ELECTION_TIMEOUT_MAX)


def _lose_state_and_restart(cluster, follower: str, older_copy: SimDisk | None) -> None:
    cluster.crash(follower)
    cluster.replace_disk(follower, older_copy or SimDisk())
    cluster.restart(follower)


@pytest.mark.parametrize("how", ["empty disk", "older copy"])
@pytest.mark.parametrize("snapshot_every", [None, 10])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_follower_that_lost_acknowledged_entries_is_caught_up_within_one_election_timeout(seed, how, snapshot_every):
    cluster, leader, term = stable_cluster(3, seed, snapshot_every=snapshot_every)
    follower = next(n for n in cluster.ids if n != leader)
    _commit_commands(cluster, leader, 15)
    older_copy = copy.deepcopy(cluster.nodes[follower].disk) if how == "older copy" else None
    _commit_commands(cluster, leader, 40)
    _lose_state_and_restart(cluster, follower, older_copy)
    assert not _caught_up(cluster, leader, follower)

    assert cluster.run_until(lambda: _caught_up(cluster, leader, follower), max_ticks=ELECTION_TIMEOUT_MAX), (
        f"seed {seed}: {follower} not caught up within one election timeout"
    )
    assert cluster.leader() == leader and cluster.raft(leader).term == term  # no election was needed
    assert cluster.raft(leader).stats.get("follower_lost_entries", 0) >= 1


def test_a_leader_that_still_counts_the_lost_entries_never_catches_the_follower_up():
    """Planted bug: with the reset disabled the follower stays behind for good (issue 16)."""
    cluster, leader, _ = stable_cluster(3, 4, raft_class=NeverResetsProgress)
    follower = next(n for n in cluster.ids if n != leader)
    _commit_commands(cluster, leader, 15)
    older_copy = copy.deepcopy(cluster.nodes[follower].disk)
    _commit_commands(cluster, leader, 40)
    _lose_state_and_restart(cluster, follower, older_copy)
    assert not cluster.run_until(lambda: _caught_up(cluster, leader, follower), max_ticks=20 * ELECTION_TIMEOUT_MAX)


def test_a_follower_does_not_commit_on_a_heartbeat_whose_match_it_lacks():
    """A heartbeat's commit is only safe if the follower holds the entry the leader counted it at."""
    cluster, leader, _ = stable_cluster(3, 5)
    follower = next(n for n in cluster.ids if n != leader)
    _commit_commands(cluster, leader, 10)
    cluster.isolate(follower)
    cluster.crash(follower)
    cluster.rewind_log(follower, 2)
    cluster.restart(follower)
    fraft = cluster.raft(follower)
    heartbeat = cluster.raft(leader).heartbeats()
    hb = next(m for m in heartbeat if m.dst == follower)
    assert hb.match > 2
    fraft.step(hb)
    assert fraft.commit <= 2
    answer = fraft.ready().messages[-1]
    assert answer.reject and answer.last_index == 2


def test_a_follower_that_holds_its_match_commits_on_a_heartbeat_and_does_not_reject():
    cluster, leader, _ = stable_cluster(3, 6)
    _commit_commands(cluster, leader, 10)
    for node in cluster.ids:
        if node != leader:
            assert cluster.raft(node).stats.get("heartbeat_rejected_lost_entries", 0) == 0
    assert cluster.raft(leader).stats.get("follower_lost_entries", 0) == 0


def test_progress_lost_entries_forgets_match_and_probes_after_the_followers_last_index():
    pr = Progress(next_index=51, max_inflight=4)
    pr.acknowledged(50)
    pr.become_replicate()
    pr.lost_entries(7)
    assert (pr.state, pr.match, pr.next, pr.is_paused()) == (ProgressState.PROBE, 0, 8, False)


def test_a_refused_probe_at_match_itself_means_the_follower_lost_entries():
    pr = Progress(next_index=11, max_inflight=4)
    pr.acknowledged(10)  # PROBE: next = 11, the probe goes at prev_index 10
    assert pr.rejected(10, next_guess=4)
    assert (pr.match, pr.next) == (0, 4)
