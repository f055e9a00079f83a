"""Membership changes of a real cluster with raftctl: grow 3 -> 5 and shrink 5 -> 3 while a client
keeps submitting commands, and a node added after many snapshots catching up from one.

Every acknowledged command must be applied on every final member; the cluster file must name
exactly the final members; removed nodes must be stopped.
"""

from __future__ import annotations

import contextlib
import os
import random
from functools import partial
from pathlib import Path
from typing import Any

import trio

from raftctl import membership
from raftnode.client.trioclient import ClientError, ClusterClient
from raftnode.config import Address, load_config

from .processes import closed_loop_incr, free_ports
from .raftctl_harness import cluster, deadline

SEED = int(os.environ.get("RAFT_MEMBERSHIP_SEED", random.randrange(1 << 30)))


async def _converged(client: ClusterClient, members: list[str]) -> dict[str, int]:
    """Each member's counter once all of them applied the leader's commit index."""
    with trio.fail_after(20):
        while True:
            rows = {}
            for node in members:
                try:
                    rows[node] = await client.call(node, {"op": "status"}, timeout=1)
                except ClientError:
                    break
            leaders = {r["leader"] for r in rows.values()}
            if len(rows) == len(members) and len(leaders) == 1 and None not in leaders:
                commit = rows[leaders.pop()]["commit_index"]
                if all(r["applied_index"] >= commit for r in rows.values()):
                    return {n: r["state"]["value"] for n, r in rows.items()}
            await trio.sleep(0.05)


def test_grow_three_to_five_and_shrink_back_under_load_loses_no_acknowledged_command(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    with cluster(tmp_path, 3) as c, deadline(120):
        c.cli("up")
        ports = free_ports(4)
        extra = {"n4": (ports[0], ports[1]), "n5": (ports[2], ports[3])}
        addresses = {**load_config(c.config).client_addresses(),
                     **{n: Address("127.0.0.1", client) for n, (_, client) in extra.items()}}
        acked: list[int] = []
        unknown: list[int] = []

        async def drill() -> list[str]:
            async with ClusterClient(addresses) as client:
                stop = trio.Event()
                async with trio.open_nursery() as nursery:
                    for _ in range(3):
                        nursery.start_soon(closed_loop_incr, client, acked, unknown, stop)
                    for node, (peer, client_port) in extra.items():
                        await trio.sleep(rng.uniform(0.1, 0.4))
                        result = await membership.add_node(
                            load_config(c.config), node, f"127.0.0.1:{peer}", f"127.0.0.1:{client_port}")
                        assert node in result.voters, f"seed {SEED}: {result}"
                    assert sorted(result.voters) == ["n1", "n2", "n3", "n4", "n5"]
                    for victim in (rng.choice(["n1", "n2", "n3"]), "leader"):
                        await trio.sleep(rng.uniform(0.1, 0.4))
                        result = await membership.remove_node(load_config(c.config), victim)
                    await trio.sleep(0.3)
                    stop.set()
                members = sorted(result.voters)
                values = await _converged(client, members)
                assert len(set(values.values())) == 1, f"seed {SEED}: members disagree: {values}"
                return members

        members = trio.run(drill)
        final = load_config(c.config)
        assert sorted(final.node_ids) == members and len(members) == 3, f"seed {SEED}: {final.node_ids}"
        status = c.status()
        value = status["nodes"][0]["state"]["value"]
        context = f"seed {SEED}: {len(acked)} acked, {sum(unknown)} unknown, final {value}\n{c.logs_tail()}"
        assert all(row["alive"] and row["state"]["value"] == value for row in status["nodes"]), context
        assert len(acked) > 20, context
        assert len(set(acked)) == len(acked), f"two acknowledgements report the same value: {context}"
        assert max(acked) <= value and len(acked) <= value <= len(acked) + sum(unknown), context
        # The removed nodes' processes are gone.
        assert len(c.node_pids()) == 3, context


def test_a_node_added_after_many_snapshots_catches_up_through_install_snapshot(tmp_path: Path) -> None:
    with cluster(tmp_path, 3) as c, deadline(60):
        c.config.write_text(c.config.read_text().replace("[cluster]\n", "[cluster]\nsnapshot_entries = 40\n", 1))
        c.cli("up")
        for _ in range(150):
            c.cli("run-command", "incr", "1")
        peer, client_port = free_ports(2)
        added = c.json("add-node", "n4", "--peer", f"127.0.0.1:{peer}", "--client", f"127.0.0.1:{client_port}")
        assert added["voters"] == ["n1", "n2", "n3", "n4"]
        c.cli("wait", "--converged", "--timeout", "10")
        row = next(r for r in c.status()["nodes"] if r["id"] == "n4")
        assert row["state"] == {"value": 150} and row["snapshot_index"] >= 40, row
        log = (c.dir / "state" / "logs" / "n4.log").read_text()
        assert "installed snapshot" in log, log[-2000:]
        assert "voters n1,n2,n3,n4" in c.cli("status").stdout
        assert "join = true" in c.config.read_text()
        c.cli("down", "--purge")
        assert "join" not in c.config.read_text(), "after a purge n4 founds the next cluster with the rest"
        c.cli("up")
        assert c.status()["voters"] == ["n1", "n2", "n3", "n4"]


def test_membership_refusals_exit_with_the_reason_and_change_nothing(tmp_path: Path) -> None:
    with cluster(tmp_path, 1) as c, deadline(40):
        c.cli("up")
        before = c.config.read_text()
        taken = load_config(c.config).node("n1")
        peer, client_port = free_ports(2)
        duplicate = c.cli("add-node", "n1", "--peer", f"127.0.0.1:{peer}", "--client", f"127.0.0.1:{client_port}", code=2)
        assert "already has a node 'n1'" in duplicate.stderr
        busy = c.cli("add-node", "n2", "--peer", str(taken.peer), "--client", f"127.0.0.1:{client_port}", code=2)
        assert f"{taken.peer} is not free" in busy.stderr
        bad = c.cli("add-node", "leader", "--peer", f"127.0.0.1:{peer}", "--client", f"127.0.0.1:{client_port}", code=2)
        assert "reserved" in bad.stderr
        unknown = c.cli("remove-node", "n7", code=2)
        assert "unknown node 'n7'" in unknown.stderr
        last = c.cli("remove-node", "n1", code=1)
        assert "last voter" in last.stderr
        assert c.config.read_text() == before
        assert c.status()["nodes"][0]["alive"] is True


def test_watch_follows_the_cluster_file_through_add_and_remove(tmp_path: Path) -> None:
    from raftctl import dashboard

    with cluster(tmp_path, 3) as c, deadline(60):
        c.cli("up")
        peer, client_port = free_ports(2)

        async def scenario() -> tuple[list[str], list[str]]:
            watcher = dashboard.Watcher(load_config(c.config), interval=0.1)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(watcher.run)

                async def shows(ids: list[str]) -> None:
                    """The table has a row for exactly these nodes, and every one is alive."""
                    def ok() -> bool:
                        status = watcher.state.status
                        return status is not None and sorted(r.id for r in status.nodes) == ids and all(
                            r.alive for r in status.nodes)

                    while not ok():
                        await trio.sleep(0.05)

                with trio.fail_after(40):
                    await shows(["n1", "n2", "n3"])
                    await membership.add_node(load_config(c.config), "n4", f"127.0.0.1:{peer}", f"127.0.0.1:{client_port}")
                    await shows(["n1", "n2", "n3", "n4"])
                    await membership.remove_node(load_config(c.config), "n1")
                    await shows(["n2", "n3", "n4"])
                    while not any(e["kind"] == "membership" and e["node"] == "n4" for e in watcher.state.feed):
                        await trio.sleep(0.05)
                nursery.cancel_scope.cancel()
            return sorted(watcher._subscriptions), [e["kind"] for e in watcher.state.feed]

        subscribed, kinds = trio.run(scenario)
        assert subscribed == ["n2", "n3", "n4"], "a subscriber per node the file names"
        assert "membership" in kinds


def test_events_follow_takes_in_a_node_added_while_it_runs(tmp_path: Path) -> None:
    from raftctl import cluster as domain

    with cluster(tmp_path, 1) as c, deadline(60):
        c.cli("up")
        peer, client_port = free_ports(2)

        async def scenario() -> None:
            seen: list[dict[str, Any]] = []

            def both_sides_of_n2() -> bool:
                """n2's own events, and raftctl's record of adding it (from the audit log)."""
                return any(e["node"] == "n2" and e["source"] == "node" for e in seen) and any(
                    e["node"] == "n2" and e["kind"] == "add-node" for e in seen)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(partial(domain.follow_events, load_config(c.config), seen.append, history=False))
                await membership.add_node(load_config(c.config), "n2", f"127.0.0.1:{peer}", f"127.0.0.1:{client_port}")
                async with ClusterClient(load_config(c.config).client_addresses()) as client:
                    with trio.fail_after(30):
                        while not both_sides_of_n2():  # n2 reports a commit (at most one a second) as it applies these
                            with contextlib.suppress(ClientError):
                                await client.run_command("incr 1", timeout=3)
                            await trio.sleep(0.1)
                nursery.cancel_scope.cancel()

        trio.run(scenario)  # TooSlowError if the follow never took n2 in
