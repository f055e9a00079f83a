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
    records: list[dict[str, Any]] = []
    states: dict[str, Any] = {}
    pending: dict[int, _Pending] = {}
    lost: list[_Pending] = []  # completed as info; may still take effect
    invoked = 0
    written = 0
    clock = 0

    def emit(record: dict[str, Any]) -> None:
        nonlocal clock
        clock += rng.randint(1, 20)
        record["time"] = clock / 1000
        records.append(record)

    def take_effect(op: _Pending) -> None:
        key = op.record["key"]
        op.output, states[key] = model.apply(states.get(key, model.initial), op.record["f"], op.record["value"])
        op.applied = True

    def new_operation(process: int) -> dict[str, Any]:
        nonlocal written
        key = f"k{invoked // keys_every}"
        # kv keys hold the written strings here, which kv's incr refuses: leave incr to counters.
        f = rng.choice(sorted(model.functions - {"incr"} if "set" in model.functions else model.functions))
        value: Any = None
        if f in ("set", "cas"):
            written += 1
            new = f"v{written}"
            if f == "set":
                value = new
            else:
                current = states.get(key, model.initial)
                value = [current if rng.random() < 0.6 else rng.choice([None, f"v{rng.randint(1, written)}"]), new]
        elif f == "incr":
            value = rng.randint(1, 5)
        return {"type": "invoke", "process": process, "f": f, "key": key, "value": value}

    while invoked < operations or pending:
        for op in [op for op in lost if rng.random() < 0.05]:
            lost.remove(op)
            take_effect(op)
        process = rng.randrange(processes)
        op = pending.get(process)
        if op is None:
            if invoked < operations:
                record = new_operation(process)
                invoked += 1
                pending[process] = _Pending(record)
                emit(record)
            continue
        done = {"process": process, "f": op.record["f"], "key": op.record["key"]}
        roll = rng.random()
        if not op.applied and roll < fail_rate:
            emit({"type": "fail", **done})
        elif roll < fail_rate + info_rate:
            emit({"type": "info", **done})
            if not op.applied and rng.random() < 0.5:
                lost.append(op)
        elif not op.applied:
            take_effect(op)
            continue
        else:
            value = op.output if op.record["f"] != "set" else None
            emit({"type": "ok", **done, "value": value})
        del pending[process]
    return records
