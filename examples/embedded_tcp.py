"""Embed raftnode in an application: three replicas of a counter in one trio program, over TCP.

Each replica is a ``HullAPI`` built from a cluster description, with the built-in TCP transport
and disk storage; the application's state machine is the counter that ships with raftnode. The
replicas talk over loopback exactly as separate processes would.

    python examples/embedded_tcp.py
"""

from __future__ import annotations

import socket
import tempfile
from pathlib import Path

import trio

from raftnode.api import HullAPI
from raftnode.config import parse_config
from raftnode.node.statemachines import Counter


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def cluster_text(ports: list[int]) -> str:
    text = '[cluster]\nname = "embedded"\nstate_machine = "counter"\nstate_dir = "state"\n'
    for i in range(3):
        text += f'\n[[nodes]]\nid = "n{i + 1}"\npeer = "127.0.0.1:{ports[i]}"\nclient = "127.0.0.1:{ports[i + 3]}"\n'
    return text


async def wait_for_leader(hulls: dict[str, HullAPI]) -> str:
    while True:
        leaders = {hull.status().leader for hull in hulls.values()}
        if len(leaders) == 1 and None not in leaders:
            return leaders.pop()
        await trio.sleep(0.02)


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config = parse_config(cluster_text(free_ports(6)), path=Path(tmp) / "cluster.toml")
        hulls = {node_id: HullAPI.from_config(config, node_id, pilot=Counter()) for node_id in config.node_ids}
        hulls["n1"].add_event_handler(lambda e: e.kind == "role" and print(f"n1 event: {e.detail}"))

        async with trio.open_nursery() as nursery:
            for hull in hulls.values():
                await nursery.start(hull.run)
            with trio.fail_after(10):
                leader = await wait_for_leader(hulls)
            print(f"leader: {leader}")

            for command in ("incr 5", "incr 10", "decr 3", "get"):
                outcome = await hulls[leader].run_command(command, timeout=2.0)
                print(f"{command} -> {outcome.result}")

            follower = next(n for n in hulls if n != leader)
            outcome = await hulls[follower].run_command("incr 1", timeout=2.0)
            print(f"at follower {follower}: redirect to {outcome.redirect}")
            outcome = await hulls[leader].run_command("launch rockets", timeout=2.0)
            print(f"refused: {outcome.error}")

            with trio.fail_after(5):  # replication to every replica
                while len({hull.status().applied_index for hull in hulls.values()}) > 1:
                    await trio.sleep(0.02)
            print("values: " + " ".join(f"{n}={h.status().state['value']}" for n, h in hulls.items()))

            for hull in hulls.values():
                hull.stop()
        print("stopped")


if __name__ == "__main__":
    trio.run(main)
