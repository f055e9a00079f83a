"""The trio node runtime: three RaftNodes over the in-memory network under an autojump MockClock.

Every node has a seeded rng and a MemoryStorage called inline, so each test replays exactly; the
virtual times asserted below follow from the seeds (``first_election_time``) and the settings in
``harness`` (tick 10 ms, election timeout 15-30 ticks, heartbeat 5 ticks).
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Callable
from typing import Any

import pytest
import trio

from raftnode.core import NotLeader, RaftConfig, UnknownNode
from raftnode.core.commands import CommandResult
from raftnode.core.ready import Role
from raftnode.node.fsyncplace import FAST_FSYNC_SHARE, FsyncPlacement
from raftnode.node.nodedisk import DiskThread
from raftnode.node.runtime import NodeEvent, NodeNotRunning, RaftNode
from raftnode.node.statemachines import Counter
from raftnode.storage.memory import MemoryStorage
from raftnode.transport.memory import MemoryNetwork

from .harness import (
    ELECTION_TICKS,
    ELECTION_TIMEOUT_MAX,
    HEARTBEAT_TICKS,
    TICK,
    Cluster,
    first_election_time,
    memory_storage,
    running_cluster,
)

pytestmark = pytest.mark.trio


async def commit(leader: RaftNode, command: str, **kwargs: Any) -> CommandResult:
    result = await leader.run_command(command, **kwargs)
    assert result.ok, f"{command!r} at {leader.id}: {result}"
    return result


def stall(storage: MemoryStorage, method: str, *, when: Callable[[], bool] = lambda: True) -> threading.Event:
    """Make ``storage.<method>`` hang (in the disk thread: a stalled disk) whenever ``when()``,
    until the returned event is set."""
    release = threading.Event()
    original = getattr(storage, method)

    def stalled(*args: Any) -> Any:
        if when() and not release.is_set():
            release.wait(10)
        return original(*args)

    setattr(storage, method, stalled)
    return release


SLOW_DISK = FsyncPlacement(fsyncs=True, heartbeat_seconds=1.0, leader_inline=False)
"""Where a leader hands every fsync to the disk thread (whose waits the ticker's keepalives cover)."""


# -- elections and the command contract ----------------------------------------------------------


async def test_a_leader_is_elected_at_the_earliest_election_timeout_and_run_command_returns_the_result(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running_cluster() as cluster:
        leader = await cluster.wait_leader()
        (elected_at, _), = cluster.events_of(leader.id, "leader")
        # The earliest seeded timeout fires; pre-vote and vote take no virtual time in memory.
        assert elected_at == pytest.approx(first_election_time(cluster.seeds))
        assert elected_at <= ELECTION_TIMEOUT_MAX
        statuses = [node.status() for node in cluster.running()]
        assert {(s.term, s.leader) for s in statuses} == {(1, leader.id)}

        start = trio.current_time()
        result = await leader.run_command("incr 5")
        # Index 1 is the new leader's no-op; commit on a majority costs no virtual time here.
        assert result == CommandResult(result=5, index=2)
        assert trio.current_time() == start
        # The commit index reaches the followers with the next heartbeat at the latest.
        await cluster.wait_applied(2)
        assert trio.current_time() - start <= HEARTBEAT_TICKS * TICK + 1e-9  # by the next heartbeat
        assert cluster.values() == {"n1": 5, "n2": 5, "n3": 5}


async def test_at_a_follower_run_command_answers_redirect_naming_the_leader_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running_cluster() as cluster:
        leader = await cluster.wait_leader()
        await cluster.wait_until(lambda: all(f.status().leader == leader.id for f in cluster.followers()))
        for follower in cluster.followers():
            start = trio.current_time()
            assert await follower.run_command("incr 1") == CommandResult(redirect=leader.id)
            assert trio.current_time() == start
        assert leader.status().last_index == 1  # only the no-op: nothing was proposed
        assert cluster.values() == {"n1": 0, "n2": 0, "n3": 0}


async def test_before_any_election_run_command_answers_retry_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running_cluster() as cluster:
        assert trio.current_time() == 0
        for node in cluster.running():
            assert await node.run_command("incr 1", timeout=1.0) == CommandResult(retry=True)
        assert trio.current_time() == 0
        assert all(node.status().last_index == 0 for node in cluster.running())


async def test_a_command_the_cut_off_leader_cannot_commit_answers_timeout_expired_at_its_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running_cluster() as cluster:
        leader = await cluster.wait_leader()
        before = leader.status()
        cluster.partition(leader.id)
        start = trio.current_time()
        # Shorter than check-quorum's step-down (an election timeout after taking office).
        result = await leader.run_command("incr 1", timeout=0.05)
        assert result == CommandResult(timeout_expired=True)
        assert trio.current_time() - start == pytest.approx(0.05)
        after = leader.status()
        assert after.role == "leader" and after.last_index == before.last_index + 1
        assert after.commit_index == before.commit_index
        assert after.state == {"value": 0}
        assert all(f.status().last_index == before.last_index for f in cluster.followers())


async def test_a_cut_off_leader_steps_down_by_check_quorum_and_its_caller_gets_retry_not_a_result(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running_cluster() as cluster:
        old = await cluster.wait_leader()
        appended_at = old.status().last_index + 1
        cluster.partition(old.id)
        start = trio.current_time()
        result = await old.run_command("incr 1", timeout=10.0)
        # Appended, then leadership lost with no known leader: retry, with the entry's index --
        # the outcome is unknown (it might commit under a later leader), not "nothing was done".
        assert result == CommandResult(retry=True, index=appended_at) and result.outcome_unknown
        # The partition began inside a check-quorum window: detected by the end of the next one.
        assert trio.current_time() - start <= 2 * ELECTION_TICKS[0] * TICK + 1e-9
        new = await cluster.wait_leader(other_than=old.id)
        assert new.status().term > 1
        assert (await commit(new, "incr 10")).result == 10

        cluster.heal(old.id)
        await cluster.wait_until(lambda: old.status().leader == new.id)
        await cluster.wait_applied(new.status().commit_index)
        # The uncommitted "incr 1" was overwritten by the new leader's log, everywhere.
        assert cluster.values() == {"n1": 10, "n2": 10, "n3": 10}


async def test_an_unknown_command_answers_an_error_naming_it_and_every_state_stays_equal(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running_cluster() as cluster:
        leader = await cluster.wait_leader()
        await commit(leader, "incr 3")
        for bad in ("bogus", "incr x", "incr", "get 1"):
            result = await leader.run_command(bad)
            assert result.error is not None and not result.ok, (bad, result)
            assert repr(bad) in result.error, result.error
        result = await leader.run_command("bogus")
        assert "incr N, decr N, get" in (result.error or "")
        assert (await commit(leader, "incr 1")).result == 4
        await cluster.wait_applied(leader.status().commit_index)
        assert cluster.values() == {"n1": 4, "n2": 4, "n3": 4}


async def test_an_unparseable_command_is_refused_at_the_leader_before_it_enters_the_log(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Issue 4: "A command the state machine cannot parse is refused at the leader with an error
    # naming the command and what is accepted, before it enters the log."
    async with running_cluster() as cluster:
        leader = await cluster.wait_leader()
        before = leader.status().last_index
        result = await leader.run_command("bogus")
        assert result.error is not None and result.index is None, result
        assert leader.status().last_index == before, "the refused command was appended to the log"


# -- a state machine that fails on one follower --------------------------------------------------


class FailsOnOneNode(Counter):
    """A counter whose ``process_command`` raises RuntimeError for ``command`` on node ``target["node"]``."""

    def __init__(self, node_id: str, target: dict[str, Any]):
        super().__init__()
        self.node_id = node_id
        self.target = target
        self.attempts = 0

    def process_command(self, command: str) -> int:
        if self.node_id == self.target["node"] and command == self.target["command"]:
            self.attempts += 1
            raise RuntimeError("disk on fire")
        return super().process_command(command)


async def test_a_follower_whose_state_machine_keeps_failing_reports_apply_errors_then_halts_loudly(
    autojump_clock: trio.testing.MockClock,
) -> None:
    target: dict[str, Any] = {"node": None, "command": "incr 7"}
    machines: dict[str, FailsOnOneNode] = {}

    def make(node_id: str) -> FailsOnOneNode:
        machines[node_id] = FailsOnOneNode(node_id, target)
        return machines[node_id]

    async with running_cluster(machines=make) as cluster:
        leader = await cluster.wait_leader()
        bad, good = sorted(f.id for f in cluster.followers())
        target["node"] = bad
        events = cluster.nodes[bad].subscribe()
        await commit(leader, "incr 1")
        result = await commit(leader, "incr 7")  # the leader applies it fine
        assert result.result == 8
        failing_index = result.index
        await cluster.wait_until(lambda: cluster.nodes[bad].status().apply_halted is not None)

        errors = cluster.events_of(bad, "apply-error")
        (_, halted), = cluster.events_of(bad, "apply-halted")
        assert len(errors) == 2 and machines[bad].attempts == 3  # max_apply_attempts
        assert f"index {failing_index}" in halted.detail and "RuntimeError: disk on fire" in halted.detail
        assert "STOPPED APPLYING" in halted.detail
        status = cluster.nodes[bad].status()
        assert status.apply_halted is not None and "disk on fire" in status.apply_halted
        assert status.applied_index == failing_index - 1
        assert status.state == {"value": 1}

        # The others carry on; the halted node still replicates and learns commits.
        for n in range(3):
            await commit(leader, "incr 1")
        commit_index = leader.status().commit_index
        await cluster.wait_applied(commit_index, nodes=[leader.id, good])
        await cluster.wait_until(lambda: cluster.nodes[bad].status().commit_index == commit_index)
        assert cluster.values([leader.id, good]) == {leader.id: 11, good: 11}
        assert cluster.nodes[bad].status().applied_index == failing_index - 1
        assert machines[bad].attempts == 3, "a halted node tried again"

        kinds = []
        while True:
            try:
                kinds.append(events.receive_nowait().kind)
            except trio.WouldBlock:
                break
        assert kinds.count("apply-error") == 2 and kinds.count("apply-halted") == 1


async def test_apply_retries_follow_the_backoff_policy_even_while_messages_keep_arriving(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # RaftNode documents retries at 2 ticks, then 4 ticks, then a halt (Ticker.apply_retry_at). A
    # follower also processes a Ready for every heartbeat or AppendEntries it receives; those must
    # not count as extra attempts, or a busy cluster would burn through the attempts at once.
    target: dict[str, Any] = {"node": None, "command": "incr 7"}
    async with running_cluster(machines=lambda node_id: FailsOnOneNode(node_id, target)) as cluster:
        leader = await cluster.wait_leader()
        bad = min(f.id for f in cluster.followers())
        target["node"] = bad
        await commit(leader, "incr 7")
        # Steady client traffic: one command per tick.
        while cluster.nodes[bad].status().apply_halted is None and trio.current_time() < 5:
            await commit(leader, "incr 1")
            await trio.sleep(TICK)
        times = [t for t, _ in cluster.events_of(bad, "apply-error") + cluster.events_of(bad, "apply-halted")]
        gaps = [round((b - a) / TICK, 2) for a, b in itertools.pairwise(times)]
        # Retries are counted in whole ticks from the tick before the failure.
        assert len(gaps) == 2 and 1 <= gaps[0] <= 2 and 3 <= gaps[1] <= 4, f"attempt spacing in ticks: {gaps}"


# -- stopping, restarting, crashing --------------------------------------------------------------


async def test_stopping_the_leader_elects_a_new_one_within_an_election_timeout_and_commands_commit_again(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running_cluster() as cluster:
        old = await cluster.wait_leader()
        await commit(old, "incr 5")
        await cluster.wait_applied(old.status().commit_index)
        old_term = old.status().term
        stopped_at = trio.current_time()
        await cluster.stop(old.id)
        new = await cluster.wait_leader()
        (elected_at, _), = cluster.events_of(new.id, "leader")
        # Followers heard the last heartbeat no later than the stop; the first timeout wins.
        assert elected_at - stopped_at <= ELECTION_TIMEOUT_MAX + 1e-9
        assert new.id != old.id and new.status().term == old_term + 1
        assert (await commit(new, "incr 2")).result == 7
        await cluster.wait_applied(new.status().commit_index)
        assert cluster.values() == {n.id: 7 for n in cluster.running()}


async def test_stopping_a_node_answers_its_waiting_callers_with_retry(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running_cluster() as cluster:
        leader = await cluster.wait_leader()
        cluster.partition(leader.id)  # so the command stays pending
        answers: list[CommandResult] = []

        async def call() -> None:
            answers.append(await leader.run_command("incr 1", timeout=10))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(call)
            await trio.sleep(TICK)
            start = trio.current_time()
            await cluster.stop(leader.id)
        assert answers == [CommandResult(retry=True, index=2)]  # after the no-op: taken, outcome unknown
        assert trio.current_time() == start


async def test_a_node_restarted_on_its_storage_recovers_its_state_before_any_election(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running_cluster() as cluster:
        leader = await cluster.wait_leader()
        for n in (1, 2, 3):
            await commit(leader, f"incr {n}")
        await cluster.wait_applied(leader.status().commit_index)
        expected = {n.id: n.status() for n in cluster.running()}
        for node_id in cluster.ids:
            await cluster.stop(node_id)

        for node_id in cluster.ids:
            node = await cluster.start(node_id)  # alone: no election can happen
            want = expected[node_id].commit_index
            await cluster.wait_until(lambda node=node, want=want: node.status().applied_index == want)
            status = node.status()
            assert status.state == {"value": 6}
            assert (status.term, status.last_index) == (expected[node_id].term, expected[node_id].last_index)
            await cluster.stop(node_id)

        for node_id in cluster.ids:
            await cluster.start(node_id)
        leader = await cluster.wait_leader()
        assert (await commit(leader, "incr 4")).result == 10


async def test_every_acknowledged_command_survives_a_crash_of_every_node(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running_cluster() as cluster:
        leader = await cluster.wait_leader()
        acknowledged = [await commit(leader, f"incr {n}") for n in range(1, 11)]
        survivors = {node_id: await cluster.crash(node_id) for node_id in cluster.ids}
        for node_id, storage in survivors.items():
            storage.needs_thread = False  # type: ignore[attr-defined]
            await cluster.start(node_id, storage=storage)
        leader = await cluster.wait_leader()
        await commit(leader, "incr 0")
        await cluster.wait_applied(leader.status().commit_index)
        assert cluster.values() == {n: 55 for n in cluster.ids}
        last = max(a.index for a in acknowledged if a.index is not None)
        assert all(cluster.nodes[n].status().applied_index > last for n in cluster.ids)


async def test_take_snapshot_compacts_the_log_and_a_restarted_node_recovers_from_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running_cluster() as cluster:
        leader = await cluster.wait_leader()
        for n in range(5):
            await commit(leader, "incr 2")
        applied = leader.status().applied_index
        index = await leader.take_snapshot()
        assert index == applied == 6
        status = leader.status()
        assert status.snapshot_index == 6 and status.last_index == 6
        storage = cluster.storages[leader.id]
        stored = storage.load()
        assert stored.snapshot is not None and stored.snapshot.index == 6 and stored.entries == []
        assert storage.stats()["compactions"] == 1
        assert [e.detail for _, e in cluster.events_of(leader.id, "snapshot")][-1] == "snapshot at index 6; log compacted"
        assert await leader.take_snapshot() == 6  # nothing new applied: the same snapshot

        await commit(leader, "incr 1")
        await cluster.wait_applied(leader.status().commit_index)
        await cluster.stop(leader.id)
        node = await cluster.start(leader.id)
        status = node.status()
        assert status.snapshot_index == 6 and status.applied_index >= 6
        await cluster.wait_until(lambda: node.status().applied_index == 7)
        assert node.status().state == {"value": 11}


async def test_a_node_snapshots_once_the_commands_applied_since_its_last_snapshot_pass_the_byte_threshold(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running_cluster(snapshot_bytes=60) as cluster:  # "incr 1" is 6 bytes
        leader = await cluster.wait_leader()
        for _ in range(9):
            await commit(leader, "incr 1")
        assert leader.status().snapshot_index == 0, "54 bytes: below the threshold"
        await commit(leader, "incr 1")
        first = leader.status().snapshot_index
        assert first == leader.status().applied_index, "60 bytes: snapshot at the applied index"
        for _ in range(9):
            await commit(leader, "incr 1")
        assert leader.status().snapshot_index == first, "the count starts again after a snapshot"


async def test_a_follower_restarted_after_the_leader_compacted_past_its_log_catches_up_by_snapshot(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running_cluster(snapshot_every=5) as cluster:
        leader = await cluster.wait_leader()
        lagging = min(f.id for f in cluster.followers())
        await commit(leader, "incr 1")
        await cluster.wait_applied(leader.status().commit_index)
        await cluster.stop(lagging)
        for n in range(12):
            await commit(leader, "incr 1")
        # snapshot_every=5: the leader snapshotted by itself and compacted past the lagging log.
        assert leader.status().snapshot_index >= 10
        assert leader.status().snapshot_index > cluster.nodes[lagging].status().last_index

        node = await cluster.start(lagging)
        await cluster.wait_applied(leader.status().commit_index)
        assert node.status().state == {"value": 13}
        installed = [e.detail for _, e in cluster.events_of(lagging, "snapshot") if "installed" in e.detail]
        assert installed, cluster.events_of(lagging, "snapshot")
        await cluster.stop(lagging)
        node = await cluster.start(lagging)  # restarts from the installed snapshot and its log
        await cluster.wait_until(lambda: node.status().state == {"value": 13})
        assert node.status().snapshot_index >= 10


async def test_transfer_leadership_moves_the_leader_to_the_target_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running_cluster() as cluster:
        old = await cluster.wait_leader()
        await commit(old, "incr 1")
        target = max(f.id for f in cluster.followers())
        start = trio.current_time()
        await old.transfer_leadership(target)
        new = await cluster.wait_leader(other_than=old.id)
        assert new.id == target
        (elected_at, _), = cluster.events_of(target, "leader")
        assert elected_at - start <= TICK  # caught up already: TimeoutNow goes out at once
        assert new.status().term == 2
        assert (await commit(new, "incr 1")).result == 2
        with pytest.raises(NotLeader) as info:
            await old.transfer_leadership(target)
        assert info.value.leader == target
        with pytest.raises(UnknownNode):
            await new.transfer_leadership("n9")


# -- events and status ---------------------------------------------------------------------------


async def test_events_reach_subscribers_and_event_handlers_alike(autojump_clock: trio.testing.MockClock) -> None:
    async with trio.open_nursery() as nursery:
        cluster = Cluster(nursery)
        await cluster.start_all()
        handled: dict[str, list[NodeEvent]] = {n: [] for n in cluster.ids}
        for node_id, node in cluster.nodes.items():
            node.add_event_handler(handled[node_id].append)
        channels = {node_id: node.subscribe() for node_id, node in cluster.nodes.items()}
        leader = await cluster.wait_leader()
        await commit(leader, "incr 1")
        await cluster.stop(leader.id)

        received = [event async for event in channels[leader.id]]  # closed when the node stops
        kinds = [e.kind for e in received]
        assert kinds[0] == "start" and kinds[-1] == "stop"  # a subscriber gets the recent ones first
        for kind in ("pre-vote", "election", "leader", "role", "commit"):
            assert kind in kinds, kinds
        assert all(e.node == leader.id for e in received)
        assert received[1:] == handled[leader.id]  # the handler was added after "start"
        follower = cluster.followers()[0]
        assert [e.kind for e in handled[follower.id]][:1] == ["role"]
        nursery.cancel_scope.cancel()


async def test_commit_events_are_aggregated_per_second_of_trio_time(autojump_clock: trio.testing.MockClock) -> None:
    # The runtime says time is trio.sleep, so that tests can drive it on a MockClock. Commit
    # events are meant to come at most about once a second while commands flow; over 3 s of
    # steady commits that is 3 or 4 events, whatever the wall clock did meanwhile.
    async with running_cluster() as cluster:
        leader = await cluster.wait_leader()
        start = trio.current_time()
        while trio.current_time() - start < 3.05:
            await commit(leader, "incr 1")
            await trio.sleep(0.05)
        commits = cluster.events_of(leader.id, "commit")
        assert 3 <= len(commits) <= 4, [t for t, _ in commits]


async def test_status_before_run_raises_node_not_running() -> None:
    node = RaftNode(
        RaftConfig(node_id="n1", voters=("n1", "n2", "n3")),
        storage=memory_storage(),
        transport=MemoryNetwork().transport("n1"),
        state_machine=Counter(),
    )
    with pytest.raises(NodeNotRunning):
        node.status()


async def test_memory_storage_is_called_inline_so_mock_clock_runs_replay_exactly() -> None:
    # RaftNode runs storage calls in a worker thread unless the storage sets needs_thread=False.
    # Under MockClock(autojump_threshold=0) virtual time jumps while a thread runs, so a seeded
    # cluster on a plain MemoryStorage elects at 0.17 s in one run and 0.18 s in the next. The
    # harness sets the attribute itself (memory_storage()); MemoryStorage should declare it.
    assert getattr(MemoryStorage(), "needs_thread", True) is False


async def test_a_flood_of_commands_is_taken_a_bounded_batch_per_turn_and_every_one_is_answered(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The leader takes at most max_batch proposals per turn, so the work between two sends to
    # its peers stays bounded however many commands wait.
    async with running_cluster() as cluster:
        leader = await cluster.wait_leader()
        answers: list[CommandResult] = []
        waiting: list[int] = []  # proposals still queued after each turn
        leader.add_flush_handler(lambda: waiting.append(len(leader._inbox.proposals)))
        for _ in range(2000):
            leader.submit_command("incr 1", answers.append, timeout=30)
        assert leader.proposals_backlogged()
        with trio.fail_after(5):
            await leader.wait_for_room()
            while len(answers) < 2000:
                await trio.sleep(0.01)
        taken = [before - after for before, after in zip([2000, *waiting], waiting)]
        assert max(taken) == leader._inbox.max_batch and sum(taken) == 2000
        assert all(a.ok for a in answers)
        assert leader.stats["inbox_dropped"] == 0 and leader.status().term == 1
        await cluster.wait_applied(max(a.index for a in answers))
        assert set(cluster.values().values()) == {2000}


async def test_a_leader_whose_fsync_stalls_keeps_its_followers_with_heartbeats_from_the_ticker(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running_cluster() as cluster:
        leader = await cluster.wait_leader()
        term = leader.status().term
        storage = cluster.storages[leader.id]
        release = stall(storage, "sync")
        leader._disk.thread_storage = True  # the stalled fsync runs in a thread, as on disk
        leader._disk.fsync_place = SLOW_DISK  # a leader's inline fsync (small batches, fast disk) has no keepalives
        answered = threading.Event()
        leader.submit_command("incr 1", lambda result: answered.set(), timeout=30)
        await trio.sleep(1.0)  # virtual: several election timeouts while the fsync hangs
        release.set()
        # The released fsync ends in its thread in real time: no virtual time may pass until the
        # command it held is answered (autojump would race the clock ahead on a busy machine).
        autojump_clock.autojump_threshold = math.inf
        await trio.to_thread.run_sync(answered.wait, 30)
        leader._disk.thread_storage = False  # the stall is over: later syncs inline, off the real clock
        autojump_clock.autojump_threshold = 0
        assert answered.is_set()
        result = await leader.run_command("incr 2", timeout=5)
        assert result.ok and result.result == 3, (result, [(t, e.kind, e.detail) for t, e in cluster.events if t > 0.5])
        assert leader.stats["keepalive_heartbeats"] > 0
        assert {node.status().term for node in cluster.running()} == {term}
        assert not [e for t, e in cluster.events if e.kind in ("election", "pre-vote") and t > 0.5]


async def test_a_leader_fsyncs_a_small_batch_in_its_own_task_while_its_disk_is_fast_and_in_the_disk_thread_after_a_slow_fsync(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running_cluster() as cluster:
        leader = await cluster.wait_leader()
        storage = cluster.storages[leader.id]
        syncs_in: list[threading.Thread] = []
        original = storage.sync

        def sync() -> None:
            syncs_in.append(threading.current_thread())
            original()

        storage.sync = sync  # type: ignore[method-assign]
        leader._disk.thread_storage = True  # as on disk: the slow path is a worker thread
        autojump_clock.autojump_threshold = math.inf  # a worker thread runs in real time
        try:
            assert (await leader.run_command("incr 1", timeout=5)).ok
            assert syncs_in and syncs_in[-1] is threading.main_thread()
            heartbeat = leader.config.heartbeat_interval * leader.tick_seconds
            leader._disk.fsync_place.observe(heartbeat * FAST_FSYNC_SHARE * 2)  # as if the last fsync was slow
            assert (await leader.run_command("incr 1", timeout=5)).ok
            assert syncs_in[-1] is not threading.main_thread()
        finally:
            leader._disk.thread_storage = False
            autojump_clock.autojump_threshold = 0


async def test_an_idle_cluster_wakes_only_when_a_timer_is_due_and_keeps_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running_cluster() as cluster:
        leader = await cluster.wait_leader()
        followers = [node for node in cluster.running() if node is not leader]
        await trio.sleep(TICK * 20)  # settle: every node has heard the leader
        before = {node.id: (node.stats["ticker_wakeups"], node.raft._ticks) for node in cluster.running()}
        term = leader.status().term
        idle = 200  # ticks
        await trio.sleep(TICK * idle)
        for node in cluster.running():
            wakeups = node.stats["ticker_wakeups"] - before[node.id][0]
            ticks = node.raft._ticks - before[node.id][1]
            # Counted when the node next has a turn: at most a heartbeat interval behind.
            assert abs(ticks - idle) <= HEARTBEAT_TICKS, f"{node.id} counted {ticks} ticks in {idle}"
            if node is leader:  # once per heartbeat interval, not once per tick
                assert wakeups <= idle // HEARTBEAT_TICKS + 2, f"leader woke {wakeups} times"
            else:  # the leader's heartbeats keep pushing the election timer out
                assert wakeups == 0, f"{node.id} woke {wakeups} times"
        assert {node.status().term for node in cluster.running()} == {term}
        # A follower still times out on time once the leader is gone.
        leader.stop()
        stopped_at = trio.current_time()
        new_leader = await cluster.wait_leader(other_than=leader.id)
        assert new_leader in followers
        assert trio.current_time() - stopped_at <= 2 * ELECTION_TIMEOUT_MAX


async def test_a_follower_whose_disk_stalls_lets_the_waiting_heartbeats_reset_its_election_timer(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # With ticks counted lazily, the ticks of a long wait must not all run before the heartbeats
    # that came meanwhile: that would fire the election timer the heartbeats had reset.
    async with running_cluster() as cluster:
        leader = await cluster.wait_leader()
        applied = await commit(leader, "incr 1")
        await cluster.wait_applied(applied.index)
        follower = next(node for node in cluster.running() if node is not leader)
        storage = cluster.storages[follower.id]
        release = stall(storage, "save_snapshot")
        follower._disk.thread = DiskThread("test-disk")  # the snapshot write waits in a thread
        follower._disk.thread_storage = True
        term = leader.status().term
        stalled_at = trio.current_time()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(follower.take_snapshot)
            await trio.sleep(1.0)  # virtual: many election timeouts; the leader keeps heartbeating
            release.set()
        await trio.sleep(TICK * 50)
        assert {node.status().term for node in cluster.running()} == {term}
        assert not [e for t, e in cluster.events_of(follower.id, "pre-vote") if t >= stalled_at]


async def test_a_new_leader_whose_first_fsync_stalls_sends_keepalives_from_its_first_heartbeat(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running_cluster() as cluster:
        old = await cluster.wait_leader()
        await commit(old, "incr 1")
        await trio.sleep(TICK * 20)
        new = next(node for node in cluster.running() if node is not old)
        storage = cluster.storages[new.id]
        release = stall(storage, "sync", when=lambda: new.raft is not None and new.raft.role is Role.LEADER)
        new._disk.thread_storage = True  # the stalled fsync runs in a thread, as on disk
        new._disk.fsync_place = SLOW_DISK
        await old.transfer_leadership(new.id)
        await cluster.wait_until(lambda: new.raft is not None and new.raft.role is Role.LEADER, timeout=2)
        term = new.raft.term
        await trio.sleep(1.0)  # virtual: the new leader's first fsync (its no-op) hangs this long
        release.set()
        await trio.sleep(TICK * 50)
        assert new.stats["keepalive_heartbeats"] > 0
        assert {node.status().term for node in cluster.running()} == {term}
