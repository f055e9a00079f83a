"""Crash safety with real processes and real disks: kill -9 under load, then restart everything.

Every command is ``incr 1``, so the counter's value after a command is the number of commands
applied up to it. An acknowledged command that got lost would show as a final value below the
number of acknowledgements, or as two acknowledgements carrying the same value.
"""

from __future__ import annotations

import os
import random
import signal

import pytest
import trio

from raftnode.client.trioclient import ClusterClient

from .processes import IDS, Processes, closed_loop_incr, converged_value, status, wait_leader

SEED = int(os.environ.get("RAFT_CRASH_SEED", random.randrange(1 << 30)))


@pytest.mark.trio
async def test_kill_9_of_any_minority_under_load_loses_no_acknowledged_command(processes: Processes) -> None:
    rng = random.Random(SEED)
    for node_id in IDS:
        processes.start(node_id)
    acked: list[int] = []
    unknown: list[int] = []
    with trio.fail_after(60):
        async with ClusterClient(processes.addresses) as client:
            await wait_leader(client, list(IDS))
            stop = trio.Event()
            async with trio.open_nursery() as nursery:
                for _ in range(4):
                    nursery.start_soon(closed_loop_incr, client, acked, unknown, stop)
                for _ in range(4):
                    await trio.sleep(rng.uniform(0.2, 0.6))
                    victim = rng.choice(IDS)
                    processes.signal(victim, signal.SIGKILL)
                    processes.procs[victim].wait()
                    await trio.sleep(rng.uniform(0.05, 0.4))
                    processes.start(victim)
                await trio.sleep(0.3)
                stop.set()
            final = await converged_value(client, f"(seed {SEED})")
    context = f"seed {SEED}: {len(acked)} acked, {sum(unknown)} unknown, final value {final}\n{processes.logs_tail()}"
    assert len(acked) > 20, context
    assert len(set(acked)) == len(acked), f"two acknowledgements report the same value: {context}"
    assert max(acked) <= final, context
    assert len(acked) <= final <= len(acked) + sum(unknown), context


@pytest.mark.trio
async def test_restarting_every_node_at_once_keeps_every_committed_command(processes: Processes) -> None:
    for node_id in IDS:
        processes.start(node_id)
    with trio.fail_after(40):
        async with ClusterClient(processes.addresses) as client:
            await wait_leader(client, list(IDS))
            for _ in range(50):
                assert (await client.run_command("incr 1", timeout=5)).result.ok
            before = await converged_value(client)
        for node_id in IDS:
            processes.signal(node_id, signal.SIGKILL)
        for node_id in IDS:
            processes.procs[node_id].wait()
            processes.start(node_id)
        async with ClusterClient(processes.addresses) as client:
            after_restart = await converged_value(client)
            assert after_restart == before == 50, processes.logs_tail()
            assert (await client.run_command("incr 1", timeout=5)).result.result == 51
            for node_id in IDS:
                assert await status(client, node_id) is not None
