"""Log compaction and snapshots (§5): bounded logs, InstallSnapshot in chunks, restart from a snapshot."""

from __future__ import annotations

import random

import pytest

from raftnode.core.messages import (
    Entry,
    InstallSnapshot,
    InstallSnapshotResponse,
    SnapshotMeta,
)
from raftnode.core.quorum import Configuration
from raftnode.core.raft import Raft, RaftConfig
from raftnode.core.ready import Role
from raftnode.node.statemachines import Counter
from raftnode.sim.cluster import SimCluster
from raftnode.sim.invariants import InvariantViolation

from .helpers import assert_no_acknowledged_command_lost


def run_commands(cluster: SimCluster, count: int, *, at: str | None = None) -> None:
    leader = at or cluster.wait_leader()
    for i in range(count):
        cluster.propose(leader, f"incr {i % 7 + 1}")
        if i % 25 == 24:
            cluster.tick()
    assert cluster.stabilize(), f"seed {cluster.seed}: did not converge"


def in_memory_log_length(raft: Raft) -> int:
    return raft.log.last_index - raft.log.offset


@pytest.mark.parametrize("seed", range(3))
def test_nodes_snapshot_past_the_threshold_and_keep_their_logs_bounded(seed):
    """§5.1: each node snapshots once its log passes the threshold; memory and disk stay bounded."""
    cluster = SimCluster(3, seed=seed, snapshot_every=50)
    run_commands(cluster, 1000)
    for node in cluster.nodes.values():
        raft = cluster.raft(node.id)
        assert raft.log.offset >= 1000 - 50, f"seed {seed}: {node.id} never compacted (offset {raft.log.offset})"
        assert in_memory_log_length(raft) <= 50 + 25, f"seed {seed}: {node.id} keeps {in_memory_log_length(raft)}"
        assert len(node.disk.entries) <= 50 + 25
        assert node.disk.snapshot is not None and node.disk.snapshot[0].index == raft.log.offset
    values = {cluster.state(n).value for n in cluster.ids}
    assert len(values) == 1


@pytest.mark.parametrize("seed", range(4))
def test_a_follower_far_behind_installs_the_snapshot_in_chunks_and_continues_from_it(seed):
    """§5.3: a follower whose next entry was compacted away receives the snapshot, chunk by chunk."""
    cluster = SimCluster(3, seed=seed, snapshot_every=40, snapshot_chunk_bytes=3)
    leader = cluster.wait_leader()
    laggard = next(n for n in cluster.ids if n != leader)
    cluster.crash(laggard)
    run_commands(cluster, 400, at=leader)
    assert cluster.raft(leader).log.offset > 1, "the leader must have compacted past the laggard"

    sent: list[InstallSnapshot] = []
    send = cluster.network.send

    def spy(m, now):
        if isinstance(m, InstallSnapshot):
            sent.append(m)
        send(m, now)

    cluster.network.send = spy  # type: ignore[method-assign]
    cluster.restart(laggard)
    assert cluster.stabilize(), f"seed {seed}: laggard did not catch up"
    snapshot_size = len(cluster.node(leader).disk.snapshot[1])
    to_laggard = [m for m in sent if m.dst == laggard]
    assert len({m.offset for m in to_laggard}) >= snapshot_size // 3, f"seed {seed}: not sent in chunks"
    assert to_laggard[-1].done
    assert cluster.state(laggard).value == cluster.state(leader).value
    assert cluster.node(laggard).disk.snapshot is not None

    run_commands(cluster, 30, at=cluster.leader())
    assert cluster.state(laggard).value == cluster.state(cluster.leader()).value
    assert_no_acknowledged_command_lost(cluster, f"seed {seed}")


def test_each_snapshot_chunk_resets_the_followers_election_timer():
    """§5.3 / §3.4: a long InstallSnapshot counts as hearing from the leader; no election starts."""
    config = RaftConfig(node_id="n2", voters=("n1", "n2", "n3"), election_timeout=(10, 20))
    follower = Raft(config, rng=random.Random(1))
    meta = SnapshotMeta(100, 3, Configuration(frozenset(("n1", "n2", "n3"))))
    data = bytes(range(60))
    for offset in range(0, 60, 2):
        for _ in range(8):  # 8 ticks between chunks; 30 chunks span 240 ticks, 12 election timeouts
            follower.tick()
        follower.step(InstallSnapshot(term=3, src="n1", dst="n2", meta=meta, offset=offset,
                                      data=data[offset : offset + 2], done=offset + 2 >= 60))
        assert follower.role is Role.FOLLOWER and follower.term == 3
    ready = follower.ready()
    assert ready.snapshot == (meta, data)
    assert follower.commit == 100 and follower.log.last_index == 100 and follower.log.offset == 100
    acks = [m for m in ready.messages if isinstance(m, InstallSnapshotResponse)]
    assert [m.offset for m in acks] == list(range(2, 60, 2))


def test_installing_a_snapshot_keeps_the_log_after_it_when_the_follower_holds_its_last_entry():
    """§5.3: 'If an existing log entry has the same index and term as the snapshot's last included
    entry, retain log entries following it.'"""
    config = RaftConfig(node_id="n2", voters=("n1", "n2", "n3"))
    entries = [Entry(1, i, b"incr 1") for i in range(1, 11)]
    follower = Raft(config, rng=random.Random(1), entries=entries)
    follower.step(InstallSnapshot(term=1, src="n1", dst="n2", meta=SnapshotMeta(6, 1, Configuration(frozenset(("n1", "n2", "n3")))),
                                  offset=0, data=b'{"value": 6}', done=True))
    assert (follower.log.offset, follower.log.last_index, follower.commit) == (6, 10, 6)
    other = Raft(config, rng=random.Random(1), entries=[Entry(1, i, b"x") for i in range(1, 5)])
    other.step(InstallSnapshot(term=2, src="n1", dst="n2", meta=SnapshotMeta(6, 2, Configuration(frozenset(("n1", "n2", "n3")))),
                               offset=0, data=b'{"value": 6}', done=True))
    assert (other.log.offset, other.log.last_index) == (6, 6), "a log not matching the snapshot is discarded"


@pytest.mark.parametrize("seed", range(3))
def test_a_node_restarted_after_a_snapshot_recovers_from_the_snapshot_plus_the_remaining_log(seed):
    """A restart restores the state machine from the snapshot and re-applies only the log after it."""
    applied_after_restart: list[int] = []

    class Recording(Counter):
        def process_command(self, command):
            applied_after_restart.append(1)
            return super().process_command(command)

    cluster = SimCluster(3, seed=seed, snapshot_every=60)
    run_commands(cluster, 250)
    victim = next(n for n in cluster.ids if n != cluster.leader())
    value_before = cluster.state(victim).value
    disk = cluster.node(victim).disk
    snap_index, log_after = disk.snapshot[0].index, len(disk.entries)
    cluster.crash(victim)
    cluster.state_machine = Recording
    cluster.restart(victim)
    node = cluster.node(victim)
    assert node.applier.applied_index >= snap_index
    assert cluster.raft(victim).log.offset == snap_index
    assert cluster.stabilize(), f"seed {seed}"
    assert cluster.state(victim).value == value_before
    assert len(applied_after_restart) <= log_after, "entries covered by the snapshot were applied again"
    assert_no_acknowledged_command_lost(cluster, f"seed {seed}")


def test_the_checker_catches_a_state_machine_whose_snapshots_diverge():
    """Planted bug: a restore that is off by one makes two nodes' states differ at the same index."""

    class BadRestore(Counter):
        def restore(self, data):
            super().restore(data)
            self.value += 1

    cluster = SimCluster(3, seed=1, snapshot_every=20, state_machine=BadRestore)
    leader = cluster.wait_leader()
    laggard = next(n for n in cluster.ids if n != leader)
    cluster.crash(laggard)
    run_commands(cluster, 100, at=leader)
    cluster.restart(laggard)
    with pytest.raises(InvariantViolation, match="state machine safety"):
        cluster.stabilize()
        run_commands(cluster, 100, at=cluster.leader())


def test_a_follower_restarted_in_the_middle_of_a_snapshot_transfer_still_receives_it():
    """Regression (found by `raftctl sim --seeds 2000`, seed 1870): the leader believed the follower
    held part of the snapshot after the follower restarted with nothing; it must start over."""
    cluster = SimCluster(3, seed=3, snapshot_every=40, snapshot_chunk_bytes=2)
    leader = cluster.wait_leader()
    laggard = next(n for n in cluster.ids if n != leader)
    cluster.crash(laggard)
    run_commands(cluster, 400, at=leader)
    chunks_seen = 0
    pop_due = cluster.network.pop_due

    def crash_after_a_few_chunks(now):
        nonlocal chunks_seen
        m = pop_due(now)
        if isinstance(m, InstallSnapshot) and m.dst == laggard and cluster.node(laggard).alive:
            chunks_seen += 1
            if chunks_seen == 4:
                cluster.crash(laggard)  # it loses the chunks it held; the leader does not know
        return m

    cluster.network.pop_due = crash_after_a_few_chunks  # type: ignore[method-assign]
    cluster.restart(laggard)
    cluster.tick(5)
    assert not cluster.node(laggard).alive and chunks_seen == 4
    assert cluster.raft(leader).progress(laggard).snapshot_offset > 0
    cluster.restart(laggard)
    assert cluster.stabilize(max_ticks=300), "the snapshot transfer never completed"
    assert cluster.state(laggard).value == cluster.state(leader).value
