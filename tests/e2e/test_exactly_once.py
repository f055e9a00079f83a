"""The issue's one-client repro, with real processes: a counter, the leader's links slowed by
80 ms, ``incr 1`` sent by the retrying client, and the leader killed (``kill -9``) 120 ms later —
or its leadership transferred. The leader has appended the command but cannot commit it before
it goes; the client resends it elsewhere and the next leader commits both copies. Without client
sessions the counter moved by 2 in most trials; with them it must move by exactly 1, and the
client's answer must be that one application's result.

With links that slow the leader also hears its followers' acknowledgements 160 ms late, so
check-quorum may depose it before the transfer request arrives: either way leadership changes
with the command in the log and uncommitted, which is the point.

Each test makes ``TRIALS`` trials (``RAFT_EXACTLY_ONCE_TRIALS`` to run more by hand).
"""

from __future__ import annotations

import os
import signal
from typing import Any

import pytest
import trio

from raftnode.client.trioclient import ClusterClient

from .processes import IDS, Processes, converged_value, wait_leader

TRIALS = int(os.environ.get("RAFT_EXACTLY_ONCE_TRIALS", "5"))
SLOW = {"partitioned_from": [], "drop_pct": 0, "delay_ms": 80, "jitter_ms": 0, "duplicate_pct": 0}


async def incr_while(client: ClusterClient, disrupt: Any) -> Any:
    """``incr 1`` through the retrying client; ``disrupt()`` runs 120 ms after it was sent."""
    answers: list[Any] = []

    async def send() -> None:
        answers.append(await client.run_command("incr 1", timeout=15))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(send)
        await trio.sleep(0.12)
        await disrupt()
    return answers[0]


async def trials(processes: Processes, disrupt_leader: Any) -> list[tuple[int, int, int]]:
    """``TRIALS`` times: slow the leader's links, send ``incr 1``, disrupt the leader; returns
    (value before, the answer's result, value after) per trial."""
    for node_id in IDS:
        processes.start(node_id)
    outcomes = []
    async with ClusterClient(processes.addresses, fields=processes.credentials.client_fields()) as client:
        await wait_leader(client, list(IDS))
        await client.run_command("incr 0", timeout=10)  # registers the client's session
        for _ in range(TRIALS):
            before = await converged_value(client)
            leader = await wait_leader(client, list(IDS))
            answer = await client.call(leader, {"op": "set_faults", "faults": SLOW}, timeout=2)
            assert answer["ok"], answer
            outcome = await incr_while(client, lambda leader=leader: disrupt_leader(client, leader))
            after = await converged_value(client)
            outcomes.append((before, outcome.result.result, after))
    return outcomes


@pytest.mark.trio
async def test_a_command_resent_after_the_slow_leader_is_killed_moves_the_counter_by_exactly_one(
    processes: Processes,
) -> None:
    async def kill(client: ClusterClient, leader: str) -> None:
        processes.signal(leader, signal.SIGKILL)
        processes.procs[leader].wait()
        processes.start(leader)  # back, without the slow links: the next trial has three nodes

    with trio.fail_after(30 + 10 * TRIALS):
        outcomes = await trials(processes, kill)
    moved = [after - before for before, _, after in outcomes]
    assert moved == [1] * TRIALS, (outcomes, processes.logs_tail())
    assert all(result == before + 1 for before, result, _ in outcomes), outcomes


@pytest.mark.trio
async def test_a_command_resent_after_the_slow_leader_hands_over_moves_the_counter_by_exactly_one(
    processes: Processes,
) -> None:
    async def transfer(client: ClusterClient, leader: str) -> None:
        target = next(n for n in IDS if n != leader)
        answer = await client.call(leader, {"op": "transfer", "target": target}, timeout=5)
        assert answer["ok"] or answer["error"].startswith("not the leader"), answer  # or deposed already
        await wait_leader(client, list(IDS), other_than=leader)
        await client.call(leader, {"op": "clear_faults"}, timeout=2)

    with trio.fail_after(30 + 10 * TRIALS):
        outcomes = await trials(processes, transfer)
    moved = [after - before for before, _, after in outcomes]
    assert moved == [1] * TRIALS, (outcomes, processes.logs_tail())
    assert all(result == before + 1 for before, result, _ in outcomes), outcomes
