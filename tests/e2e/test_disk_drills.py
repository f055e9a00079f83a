"""Disk-fault drills on real ``python -m raftnode`` processes and real files (issue 16).

Each drill runs a 3-node cluster under two closed-loop ``incr 1`` clients and damages one node's
disk: a bit flipped mid-segment or in the last record, the last record cut short, the log or the
hard state deleted (the node killed -9 first, its files edited, then restarted); a full disk on
a follower and on the leader, and a failing fsync (the node's fsyncs fail through the test-only
``RAFTNODE_DISK_FAULTS`` trigger files, ``raftnode/storage/injected_faults.py``). After each:

- the cluster keeps committing while a majority is healthy (new acknowledgements while the
  damaged node is down, refusing or full);
- the damaged node recovers and catches up, or refuses to start naming the file, the byte offset
  (or what is missing) and the safe way on, as its log shows;
- no acknowledged command is lost: the counter's final value, on which every healthy node agrees,
  counts every acknowledgement (each reports a distinct value), and at most the unanswered
  commands besides.
"""

from __future__ import annotations

import signal
import struct
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from raftnode.client.trioclient import ClusterClient
from raftnode.storage.injected_faults import ENV_VAR

from .processes import IDS, Processes, closed_loop_incr, status, wait_caught_up, wait_exit, wait_leader

pytestmark = pytest.mark.trio

DRILL_SECONDS = 90  # a bound for a whole drill (real processes on a busy machine), not an expectation
RECORD_HEAD = struct.Struct("<II")  # length, checksum (raftnode/storage/disk.py)
HS_KIND_AT, HS_KIND = 24, 0xFF  # a record's kind byte; the hard-state record's kind


class DiskDrill:
    """Three node processes, each with a fault-trigger directory, and the load's bookkeeping."""

    def __init__(self, processes: Processes, client: ClusterClient):
        self.processes, self.client = processes, client
        self.faults = {n: processes.dir / "faults" / n for n in IDS}
        for directory in self.faults.values():
            directory.mkdir(parents=True)
        self.acked: list[int] = []
        self.unknown: list[int] = []

    def start(self, node_id: str) -> None:
        self.processes.start(node_id, env={ENV_VAR: str(self.faults[node_id])})

    def data(self, node_id: str) -> Path:
        return self.processes.dir / "state" / "data" / node_id

    def fault(self, node_id: str, name: str, *, on: bool = True) -> None:
        """Turn the node's ``enospc`` or ``eio`` fsync fault on or off."""
        trigger = self.faults[node_id] / name
        trigger.touch() if on else trigger.unlink()

    def kill(self, node_id: str) -> None:
        self.processes.signal(node_id, signal.SIGKILL)
        self.processes.procs[node_id].wait()

    async def exit_code(self, node_id: str) -> int | None:
        return await trio.to_thread.run_sync(wait_exit, self.processes.procs[node_id], 30)

    @asynccontextmanager
    async def under_load(self) -> AsyncIterator[str]:
        """Start the cluster, then two closed-loop clients until the block ends; yields the leader."""
        for node_id in IDS:
            self.start(node_id)
        leader = await wait_leader(self.client, list(IDS))
        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            for _ in range(2):
                nursery.start_soon(closed_loop_incr, self.client, self.acked, self.unknown, stop)
            yield leader
            stop.set()

    async def commits(self, count: int, why: str) -> None:
        """Until ``count`` more commands are acknowledged: the cluster keeps committing."""
        target = len(self.acked) + count
        with trio.move_on_after(30) as waited:
            while len(self.acked) < target:
                await trio.sleep(0.05)
        assert not waited.cancelled_caught, f"stopped committing ({why}): {self.context()}"

    async def caught_up(self, node_id: str) -> dict:
        """The node serves again and applied what the leader had committed when asked."""
        leader = await wait_leader(self.client, [n for n in IDS if n != node_id])
        commit = (await wait_caught_up(self.client, leader, 0))["commit_index"]
        return await wait_caught_up(self.client, node_id, commit)

    async def no_acknowledged_command_lost(self, nodes: list[str]) -> int:
        """Every node of ``nodes`` applies the leader's commit index and holds the same value, which
        counts each acknowledgement; returns it."""
        leader = await wait_leader(self.client, nodes)
        commit = (await wait_caught_up(self.client, leader, 0))["commit_index"]
        values = {(await wait_caught_up(self.client, n, commit))["state"]["value"] for n in nodes}
        context = self.context()
        assert len(values) == 1, f"nodes disagree: {values} {context}"
        (final,) = values
        assert len(self.acked) > 40 and len(set(self.acked)) == len(self.acked), context
        assert max(self.acked) <= final and len(self.acked) <= final <= len(self.acked) + len(self.unknown), context
        return final

    def context(self) -> str:
        return f"{len(self.acked)} acked, {len(self.unknown)} unknown\n{self.processes.logs_tail()}"


def segment_records(segment: Path) -> tuple[bytes, list[tuple[int, int]]]:
    """The segment's bytes and the (start, end) of each whole record in it."""
    buf, spans, pos = segment.read_bytes(), [], 0
    while pos + RECORD_HEAD.size <= len(buf):
        end = pos + RECORD_HEAD.size + RECORD_HEAD.unpack_from(buf, pos)[0]
        if end > len(buf):
            break
        spans.append((pos, end))
        pos = end
    return buf, spans


def only_segment(data: Path) -> Path:
    (segment,) = sorted(data.glob("log-*.seg"))
    return segment


def flip_a_bit(data: Path, pick: Callable[[list[tuple[int, int]]], tuple[int, int]]) -> list[str]:
    """Flip one bit inside the payload of the record ``pick`` chooses; the text the refusal must show."""
    segment = only_segment(data)
    buf, spans = segment_records(segment)
    assert len(spans) > 20, f"too few records to damage: {len(spans)}"
    start, end = pick(spans)
    damaged = bytearray(buf)
    damaged[start + RECORD_HEAD.size + (end - start - RECORD_HEAD.size) // 2] ^= 0x10
    segment.write_bytes(bytes(damaged))
    return [f"corrupt storage file {segment} at byte offset {start}", "raftctl remove-node", "restore the file"]


def flip_mid_segment(data: Path) -> list[str]:
    return flip_a_bit(data, lambda spans: spans[len(spans) // 2])


def flip_last_record(data: Path) -> list[str]:
    return [*flip_a_bit(data, lambda spans: spans[-1]), "full-length record", "not a torn write"]


def truncate_last_record(data: Path) -> list[str]:
    """Cut the last record 5 bytes short, as a crash mid-write leaves it: a torn tail, recovered."""
    segment = only_segment(data)
    _, spans = segment_records(segment)
    with segment.open("r+b") as f:
        f.truncate(spans[-1][1] - 5)
    return []


def delete_log(data: Path) -> list[str]:
    for segment in data.glob("log-*.seg"):
        segment.unlink()
    return [f"data directory {data} holds", "but no log", "restore the missing files", "raftctl remove-node"]


def delete_hard_state(data: Path) -> list[str]:
    """Remove every hard-state record from the log, and the hardstate file."""
    segment = only_segment(data)
    buf, spans = segment_records(segment)
    segment.write_bytes(b"".join(buf[s:e] for s, e in spans if buf[s + HS_KIND_AT] != HS_KIND))
    (data / "hardstate").unlink(missing_ok=True)
    return [f"data directory {data} holds", "but no hard state", "raftctl remove-node"]


DAMAGE = {
    "flip-mid-segment": flip_mid_segment,
    "flip-last-record": flip_last_record,
    "truncate-last-record": truncate_last_record,
    "delete-log": delete_log,
    "delete-hard-state": delete_hard_state,
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
async def test_a_follower_with_damaged_files_recovers_or_refuses_naming_where_and_the_way_on(
    processes: Processes, damage: str
) -> None:
    with trio.fail_after(DRILL_SECONDS):
        async with ClusterClient(processes.addresses) as client:
            drill = DiskDrill(processes, client)
            async with drill.under_load() as leader:
                victim = next(n for n in IDS if n != leader)
                await drill.commits(30, "before the damage")
                drill.kill(victim)
                refusal = DAMAGE[damage](drill.data(victim))
                await drill.commits(10, f"{victim} down")
                drill.start(victim)
                if refusal:
                    assert await drill.exit_code(victim) == 1, drill.context()
                    log = processes.log(victim)
                    assert "cannot start" in log and all(text in log for text in refusal), (refusal, log)
                else:
                    await drill.caught_up(victim)
                    assert "cannot start" not in processes.log(victim)
                await drill.commits(10, f"after {victim} {'refused' if refusal else 'recovered'}")
            healthy = [n for n in IDS if n != victim] if refusal else list(IDS)
            await drill.no_acknowledged_command_lost(healthy)


@pytest.mark.parametrize("role", ["follower", "leader"])
async def test_a_full_disk_keeps_the_node_up_and_it_resumes_once_space_frees(processes: Processes, role: str) -> None:
    with trio.fail_after(DRILL_SECONDS):
        async with ClusterClient(processes.addresses) as client:
            drill = DiskDrill(processes, client)
            async with drill.under_load() as leader:
                victim = leader if role == "leader" else next(n for n in IDS if n != leader)
                await drill.commits(30, "before the disk fills")
                drill.fault(victim, "enospc")
                others = [n for n in IDS if n != victim]
                new_leader = await wait_leader(client, others, other_than=victim if role == "leader" else None)
                await drill.commits(20, f"{victim}'s disk full")
                full = await status(client, victim)
                assert full is not None and full["stats"]["disk_full"] == 1 and full["role"] == "follower", full
                assert full["leader"] == new_leader and processes.procs[victim].poll() is None
                drill.fault(victim, "enospc", on=False)
                resumed = await drill.caught_up(victim)
                assert resumed["stats"]["disk_full"] == 0, resumed
                await drill.commits(10, f"after {victim} resumed")
            await drill.no_acknowledged_command_lost(list(IDS))
    log = processes.log(victim)
    assert "disk full" in log and "staying up" in log and "resumed" in log, log
    assert ("handing leadership over" in log) == (role == "leader"), log


async def test_a_failing_fsync_stops_the_leader_saying_so_and_a_restart_recovers(processes: Processes) -> None:
    with trio.fail_after(DRILL_SECONDS):
        async with ClusterClient(processes.addresses) as client:
            drill = DiskDrill(processes, client)
            async with drill.under_load() as victim:
                await drill.commits(30, "before the fsync fails")
                drill.fault(victim, "eio")
                assert await drill.exit_code(victim) == 1, drill.context()
                log = processes.log(victim)
                assert "disk write or fsync failed" in log and "never retries" in log, log
                await drill.commits(20, f"{victim} stopped")
                drill.fault(victim, "eio", on=False)
                drill.start(victim)
                await drill.caught_up(victim)
                await drill.commits(10, f"after {victim} restarted")
            await drill.no_acknowledged_command_lost(list(IDS))
