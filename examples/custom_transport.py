"""Embed raftnode over the application's own messaging, with the application's own state machine.

The seed's library runs over whatever messaging the application already has. Here that is
``QueueTransport``, a tiny in-process transport written below: it implements the three methods
of :class:`raftnode.transport.Transport` (``send``, ``run``, ``stats``). The replicated state
is ``Inventory``, a PilotAPI state machine: ``process_command`` applies a committed command and
returns its result; ``validate`` lets the leader refuse a malformed command before it enters
the log; ``snapshot``/``restore`` allow log compaction. The log lives in a MemoryStorage.

    python examples/custom_transport.py
"""

from __future__ import annotations

import json
import math
from typing import Any

import trio

from raftnode.api import HullAPI
from raftnode.config import parse_config
from raftnode.core.messages import Message
from raftnode.node.statemachines import CommandError
from raftnode.storage.memory import MemoryStorage


class QueueTransport:
    """One node's end of an in-process hub: a trio memory channel per node."""

    def __init__(self, hub: dict[str, trio.MemorySendChannel[Message]], node_id: str):
        self.hub, self.node_id = hub, node_id
        self.counts = {"sent": 0, "dropped": 0, "received": 0}

    def send(self, message: Message) -> None:  # never blocks; Raft tolerates loss
        inbox = self.hub.get(message.dst)
        try:
            assert inbox is not None
            inbox.send_nowait(message)
            self.counts["sent"] += 1
        except (AssertionError, trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
            self.counts["dropped"] += 1

    async def run(self, deliver: Any, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        send, receive = trio.open_memory_channel[Message](math.inf)
        self.hub[self.node_id] = send
        task_status.started()
        async for message in receive:
            self.counts["received"] += 1
            deliver(message)

    def stats(self) -> dict[str, Any]:
        return dict(self.counts)


class Inventory:
    """Stock levels: ``stock ITEM N``, ``take ITEM N`` (refused if short), ``count ITEM``."""

    def __init__(self) -> None:
        self.items: dict[str, int] = {}

    def validate(self, command: str) -> None:
        words = command.split()
        shape = {"stock": 3, "take": 3, "count": 2}
        if not words or shape.get(words[0]) != len(words) or (len(words) == 3 and not words[2].isdigit()):
            raise CommandError(f"cannot parse {command!r}; use: stock ITEM N, take ITEM N, count ITEM")

    def process_command(self, command: str) -> int:
        self.validate(command)
        verb, item, *amount = command.split()
        have = self.items.get(item, 0)
        if verb == "stock":
            self.items[item] = have + int(amount[0])
        elif verb == "take":
            if int(amount[0]) > have:
                raise CommandError(f"only {have} {item} in stock")  # the same refusal on every node
            self.items[item] = have - int(amount[0])
        return self.items.get(item, 0)

    def snapshot(self) -> bytes:
        return json.dumps(self.items).encode()

    def restore(self, data: bytes) -> None:
        self.items = json.loads(data)

    def summary(self) -> dict[str, Any]:
        return dict(self.items)


# Node ids and timings only: the addresses are never opened, the transport is our own.
CLUSTER = """
[cluster]
name = "warehouse"
[[nodes]]
id = "a"
peer = "127.0.0.1:1"
client = "127.0.0.1:2"
[[nodes]]
id = "b"
peer = "127.0.0.1:3"
client = "127.0.0.1:4"
[[nodes]]
id = "c"
peer = "127.0.0.1:5"
client = "127.0.0.1:6"
"""


async def main() -> None:
    config = parse_config(CLUSTER, path="warehouse.toml")
    hub: dict[str, trio.MemorySendChannel[Message]] = {}
    hulls = {
        node_id: HullAPI.from_config(
            config, node_id, pilot=Inventory(), transport=QueueTransport(hub, node_id), storage=MemoryStorage()
        )
        for node_id in config.node_ids
    }
    async with trio.open_nursery() as nursery:
        for hull in hulls.values():
            await nursery.start(hull.run)
        with trio.fail_after(10):
            while not any(h.status().role == "leader" for h in hulls.values()):
                await trio.sleep(0.02)
        leader = next(n for n, h in hulls.items() if h.status().role == "leader")
        print(f"leader: {leader}")
        for command in ("stock apples 10", "take apples 3", "take apples 50", "count apples", "sell apples"):
            outcome = await hulls[leader].run_command(command, timeout=2.0)
            print(f"{command} -> " + (f"error: {outcome.error}" if outcome.error else str(outcome.result)))
        with trio.fail_after(5):
            while len({h.status().applied_index for h in hulls.values()}) > 1:
                await trio.sleep(0.02)
        for node_id, hull in hulls.items():
            print(f"{node_id}: {hull.status().state} via {hull.node.transport.stats()['received']} messages")
        for hull in hulls.values():
            hull.stop()


if __name__ == "__main__":
    trio.run(main)
