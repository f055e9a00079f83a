"""A kv state machine with a planted bug, loaded by node processes in the chaos tests."""

from __future__ import annotations

from typing import Any

from raftnode.node.statemachines import KeyValue


class LosesEveryFifthWrite(KeyValue):
    """Acknowledges every fifth ``set`` without storing it: a lost write, the same on every node
    (so the nodes still converge: only the history can show it)."""

    def __init__(self) -> None:
        super().__init__()
        self.sets = 0

    def _apply(self, op: tuple) -> Any:
        if op[0] == "set":
            self.sets += 1
            if self.sets % 5 == 0:
                return op[2]
        return super()._apply(op)


class DivergesInSnapshots(KeyValue):
    """Answers every command correctly but holds state that differs per process (its snapshot
    carries the process id): divergence no client read shows, only the nodes' state digests."""

    def snapshot(self) -> bytes:
        import os

        return super().snapshot() + b"#" + str(os.getpid()).encode()
