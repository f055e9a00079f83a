"""Linearizable histories made up from a model, for tests, benchmarks and report demos.

``linearizable_history`` simulates concurrent clients: at each moment one process invokes an
operation, or its operation takes effect (it runs on the model then: its linearization point), or
it completes — ``ok`` with the model's result, or sometimes ``info`` (the outcome lost; such an
operation takes effect later or never) or ``fail`` (only if it never took effect). Every history
it makes is linearizable by construction, with real-time windows that overlap at random.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from .models import Model


@dataclass
class _Pending:
    record: dict[str, Any]
    applied: bool = False
    output: Any = None


def linearizable_history(
    rng: random.Random,
    model: Model,
    *,
    operations: int,
    processes: int = 8,
    keys_every: int = 100,
    info_rate: float = 0.01,
    fail_rate: float = 0.01,
) -> list[dict[str, Any]]:
    """Records (as ``history`` defines them) of ``operations`` operations by ``processes``
    clients; the key in use moves on every ``keys_every`` invocations, with the previous one
    still in use by operations in flight. ``set`` values are unique."""
    clients = _Clients(rng, model, keys_every=keys_every, info_rate=info_rate, fail_rate=fail_rate)
    while clients.invoked < operations or clients.pending:
        clients.lost_take_effect()
        process = rng.randrange(processes)
        if process in clients.pending:
            clients.progress(process)
        elif clients.invoked < operations:
            clients.invoke(process)
    return clients.records


class _Clients:
    """The simulated clients' shared state: the records so far, each key's value, what is in flight."""

    def __init__(self, rng: random.Random, model: Model, *, keys_every: int, info_rate: float,
                 fail_rate: float) -> None:
        self.rng, self.model = rng, model
        self.keys_every, self.info_rate, self.fail_rate = keys_every, info_rate, fail_rate
        self.records: list[dict[str, Any]] = []
        self.states: dict[str, Any] = {}
        self.pending: dict[int, _Pending] = {}
        self.lost: list[_Pending] = []  # completed as info; may still take effect
        self.invoked = 0
        self.written = 0
        self.clock = 0

    def emit(self, record: dict[str, Any]) -> None:
        self.clock += self.rng.randint(1, 20)
        record["time"] = self.clock / 1000
        self.records.append(record)

    def take_effect(self, op: _Pending) -> None:
        key = op.record["key"]
        op.output, self.states[key] = self.model.apply(
            self.states.get(key, self.model.initial), op.record["f"], op.record["value"])
        op.applied = True

    def lost_take_effect(self) -> None:
        """Some of the operations whose outcome was lost take effect now."""
        for op in [op for op in self.lost if self.rng.random() < 0.05]:
            self.lost.remove(op)
            self.take_effect(op)

    def invoke(self, process: int) -> None:
        record = self._new_operation(process)
        self.invoked += 1
        self.pending[process] = _Pending(record)
        self.emit(record)

    def _new_operation(self, process: int) -> dict[str, Any]:
        rng, model = self.rng, self.model
        key = f"k{self.invoked // self.keys_every}"
        # kv keys hold the written strings here, which kv's incr refuses: leave incr to counters.
        f = rng.choice(sorted(model.functions - {"incr"} if "set" in model.functions else model.functions))
        value: Any = None
        if f in ("set", "cas"):
            self.written += 1
            new = f"v{self.written}"
            if f == "set":
                value = new
            else:
                current = self.states.get(key, model.initial)
                value = [current if rng.random() < 0.6 else rng.choice([None, f"v{rng.randint(1, self.written)}"]), new]
        elif f == "incr":
            value = rng.randint(1, 5)
        return {"type": "invoke", "process": process, "f": f, "key": key, "value": value}

    def progress(self, process: int) -> None:
        """``process``'s operation fails, loses its outcome, takes effect or completes ok."""
        op = self.pending[process]
        done = {"process": process, "f": op.record["f"], "key": op.record["key"]}
        roll = self.rng.random()
        if not op.applied and roll < self.fail_rate:
            self.emit({"type": "fail", **done})
        elif roll < self.fail_rate + self.info_rate:
            self.emit({"type": "info", **done})
            if not op.applied and self.rng.random() < 0.5:
                self.lost.append(op)
        elif not op.applied:
            self.take_effect(op)
            return
        else:
            value = op.output if op.record["f"] != "set" else None
            self.emit({"type": "ok", **done, "value": value})
        del self.pending[process]
