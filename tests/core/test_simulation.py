"""Randomized simulation: many seeds of faults and commands, every invariant checked each step.

CI runs a few hundred seeds here; ``raftctl sim --seeds 5000`` is the soak.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from raftctl.simulate import SimSettings, run_seeds
from raftnode.sim.runner import run_seed

from .planted_bugs import AcknowledgesBeforePersisting, NeverCampaigns, QuorumOneShort, VotesForStaleLogs


def _violations(seeds, settings):
    return [f"seed {r.seed}: {r.violation}: {r.detail} (replay: {r.replay_command()})"
            for r in run_seeds(seeds, settings) if not r.ok]


@pytest.mark.parametrize(
    ("nodes", "seeds", "pre_vote", "check_quorum"),
    [
        (5, range(0, 100), True, True),
        (3, range(1000, 1060), True, True),
        (5, range(2000, 2030), False, False),
        (5, range(3000, 3030), True, False),
        (3, range(4000, 4030), False, True),
    ],
)
def test_random_fault_schedules_never_break_an_invariant_and_end_live(nodes, seeds, pre_vote, check_quorum):
    """Safety under any schedule of partitions, loss, delay, reordering, duplication, crashes and
    transfers; liveness (a leader, a commit, convergence) once faults stop."""
    settings = SimSettings(nodes=nodes, steps=1500, pre_vote=pre_vote, check_quorum=check_quorum)
    assert _violations(seeds, settings) == []


def test_a_seed_replays_exactly():
    """One seed fixes everything: two runs tell the same story, line for line."""
    first = run_seed(7, nodes=5, steps=600, trace=True)
    second = run_seed(7, nodes=5, steps=600, trace=True)
    assert first.trace and first.trace == second.trace
    assert (first.ticks, first.commit_index, first.acknowledged) == (second.ticks, second.commit_index, second.acknowledged)


def test_a_seed_replays_exactly_in_another_process_whatever_its_hash_seed():
    """Nothing depends on set or dict ordering of strings: a replay command works anywhere."""
    stories = []
    for hash_seed in ("1", "2"):
        out = subprocess.run(
            [sys.executable, "-m", "raftctl.cli", "sim", "--seed", "5", "--nodes", "5", "--steps", "500", "--trace"],
            capture_output=True, text=True, check=True, env={**os.environ, "PYTHONHASHSEED": hash_seed}, timeout=120,
        ).stdout.splitlines()
        stories.append(out[:-1])  # the last line carries the elapsed time
    assert len(stories[0]) > 100 and stories[0] == stories[1]


@pytest.mark.parametrize(
    ("bug", "invariants"),
    [
        (QuorumOneShort, {"election safety", "durability", "state machine safety", "leader completeness", "log matching"}),
        (VotesForStaleLogs, {"leader completeness", "state machine safety", "durability", "core assertion"}),
    ],
)
def test_the_checker_catches_a_planted_bug_within_twenty_seeds(bug, invariants):
    """The invariants have teeth: a core with a planted safety bug is reported, with its seed."""
    for seed in range(20):
        report = run_seed(seed, nodes=5, steps=2000, raft_class=bug)
        if not report.ok:
            assert report.violation in invariants, report.detail
            assert f"--seed {seed} " in report.replay_command()
            return
    pytest.fail(f"{bug.__name__} survived 20 seeds unnoticed")


def test_the_simulator_catches_a_follower_acknowledging_before_its_persist() -> None:
    """A planted reordering in the shared driver — append acknowledgements sent before the
    persist they promise — is reported within 200 seeds: a write lost at a crash (disk faults)
    leaves an entry acknowledged to a client on fewer than a majority of disks."""
    for seed in range(200):
        report = run_seed(seed, nodes=5, steps=2000, disk_faults=True, ready_step=AcknowledgesBeforePersisting)
        if not report.ok:
            assert report.violation in {"durability", "state machine safety", "leader completeness"}, report.detail
            assert f"--seed {seed} " in report.replay_command() and "--disk-faults" in report.replay_command()
            return
    pytest.fail("a driver acknowledging before its persist survived 200 seeds unnoticed")


def test_the_liveness_check_reports_a_cluster_that_never_elects():
    report = run_seed(0, nodes=3, steps=200, raft_class=NeverCampaigns)
    assert report.violation == "liveness"
    assert report.leaders == 0


def test_leader_completeness_counts_from_the_term_an_entry_was_committed_in():
    """Seed 30060 (3 nodes, no pre-vote, no check-quorum): an entry of term 10 committed by the
    leader of term 16 was reported missing from a stale leader of term 15 — a false alarm. The
    property concerns leaders of terms after the commit, and it still catches a real miss."""
    from raftnode.core.messages import Entry
    from raftnode.sim.invariants import InvariantChecker, InvariantViolation

    checker = InvariantChecker(["n1", "n2", "n3"])
    entry = Entry(10, 23, b"incr 9")
    lacks = lambda index: None  # noqa: E731 - a log without the entry
    checker.committed_to("n3", [entry], [("n2", 15, lacks), ("n3", 16, lambda index: 10)], 16)
    assert run_seed(30060, nodes=3, steps=2000, pre_vote=False, check_quorum=False).ok
    with pytest.raises(InvariantViolation, match="leader completeness"):
        checker.became_leader("n1", 17, lacks)
    with pytest.raises(InvariantViolation, match="leader completeness"):
        checker.committed_to("n1", [entry], [("n2", 17, lacks)], 17)


def test_each_state_machine_applies_every_index_once_in_order_from_where_it_was_built():
    from raftnode.core.messages import Entry
    from raftnode.sim.invariants import InvariantChecker, InvariantViolation

    checker = InvariantChecker(["n1", "n2"])
    for index in (1, 2, 3):
        checker.applied_entry("n1", Entry(1, index, b"incr 1"))
    with pytest.raises(InvariantViolation, match="n1 applied index 3 again"):
        checker.applied_entry("n1", Entry(1, 3, b"incr 1"))
    with pytest.raises(InvariantViolation, match="n2 applied index 2 skipping 1-1"):
        checker.applied_entry("n2", Entry(1, 2, b"incr 1"))
    checker.state_machine_built("n1", 0)  # a restart from an empty state machine applies from 1 again
    checker.applied_entry("n1", Entry(1, 1, b"incr 1"))
    checker.state_machine_built("n2", 3)  # restored from a snapshot at 3
    checker.applied_entry("n2", Entry(1, 4, b"incr 1"))
