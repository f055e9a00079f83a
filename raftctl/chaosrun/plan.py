"""What a chaos run does, decided up front from its seed: the clients' operations and the faults.

Pure: no I/O, no clock, no global randomness. Two runs with the same seed and options ask the
same operations of the same keys and inject the same faults at the same offsets (what the
cluster answers, and so the history, still depends on timing).

Workload
--------
Every client draws from a rotating window of keys: the window moves every ``rotate_s`` seconds of
the run, so each key sees a short burst of concurrent operations (which keeps the per-key
linearizability search small) and the run as a whole touches many keys. Register keys (``r…``)
get ``get``, ``set`` (values unique across the run: ``<client>.<n>``) and ``cas``; counter keys
(``c…``) get ``get`` and ``incr``. The two families never share a key, so every key's history is
checked against one model.

Faults
------
One fault at a time (Jepsen's nemesis cycle): wait ``quiet_s``, inject for ``hold_s``, recover,
repeat until the run's end. Every fault touches at most a minority of the voters, so a correct
cluster can always make progress once it has recovered, and every fault is recovered before
the next one starts (and before the run ends).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

#: Fault kinds a run may inject, as ``--faults`` names them.
FAULT_KINDS = ("partition", "kill", "restart", "slow", "flaky", "transfer", "membership")

#: Operation mix: (f, weight) for register keys and for counter keys.
REGISTER_MIX = (("get", 4), ("set", 3), ("cas", 3))
COUNTER_MIX = (("get", 1), ("incr", 1))


@dataclass(frozen=True)
class Operation:
    """One client operation: the history's ``f``/``key``/``value`` and the command that runs it.

    ``read`` operations change nothing: one that fails certainly had no effect.
    """

    f: str
    key: str
    value: object
    command: str

    @property
    def read(self) -> bool:
        return self.f == "get"


class Workload:
    """The operations of the clients of one run: ``next(client, elapsed)`` draws the next one.

    Args:
        seed: The run's seed (each client gets its own stream of it).
        clients: How many clients.
        keys: How many keys are in the window at a time (half registers, half counters; at
            least one of each).
        rotate_s: Seconds of the run after which the window moves to fresh keys.
    """

    def __init__(self, seed: int, clients: int, *, keys: int = 6, rotate_s: float = 2.0) -> None:
        if clients < 1 or keys < 2 or rotate_s <= 0:
            raise ValueError("a workload needs at least one client, two keys and a positive rotation")
        self._random = [random.Random(f"{seed}/client/{c}") for c in range(clients)]
        self._written = [0] * clients
        self.keys = keys
        self.rotate_s = rotate_s
        self._seen: dict[str, str] = {}  # register key -> a value some client wrote to it

    def window(self, elapsed: float) -> tuple[list[str], list[str]]:
        """The register keys and the counter keys in use ``elapsed`` seconds into the run."""
        generation = int(elapsed // self.rotate_s)
        registers = max(1, self.keys // 2)
        counters = max(1, self.keys - registers)
        return ([f"r{generation}.{i}" for i in range(registers)], [f"c{generation}.{i}" for i in range(counters)])

    def next(self, client: int, elapsed: float) -> Operation:
        rng = self._random[client]
        registers, counters = self.window(elapsed)
        if rng.random() < len(registers) / (len(registers) + len(counters)):
            key = rng.choice(registers)
            f = _weighted(rng, REGISTER_MIX)
        else:
            key = rng.choice(counters)
            f = _weighted(rng, COUNTER_MIX)
        if f == "get":
            return Operation("get", key, None, f"get {key}")
        if f == "incr":
            amount = rng.randint(1, 5)
            return Operation("incr", key, amount, f"incr {key} {amount}")
        self._written[client] += 1
        value = f"{client}.{self._written[client]}"
        if f == "set":
            self._seen[key] = value
            return Operation("set", key, value, f"set {key} {value}")
        # cas from a value that was written (often the current one), or from absent
        old = self._seen.get(key) if rng.random() < 0.8 else None
        self._seen[key] = value
        return Operation("cas", key, [old, value], f"cas {key} {old if old is not None else '-'} {value}")


def _weighted(rng: random.Random, mix: Sequence[tuple[str, int]]) -> str:
    return rng.choices([f for f, _ in mix], weights=[w for _, w in mix])[0]


@dataclass(frozen=True)
class Fault:
    """One fault of the schedule: injected at ``at`` seconds into the run, recovered ``hold`` later.

    ``target`` is what the fault acts on, chosen when it is injected (the schedule cannot know
    who leads then): ``leader``, ``follower``, ``minority`` (a partition of a minority, the
    leader included or not), or ``random`` (any voter).
    """

    at: float
    kind: str
    target: str
    hold: float


def fault_schedule(
    seed: int,
    kinds: Sequence[str],
    *,
    duration: float,
    quiet_s: float = 2.0,
    hold_s: float = 3.0,
    settle_s: float = 3.0,
) -> list[Fault]:
    """The faults of a run of ``duration`` seconds, in time order.

    Every fault is recovered ``settle_s`` or more before the end, so the last seconds of a run
    are healthy and every client can finish. ``kinds`` may be empty (no faults).

    Raises:
        ValueError: an unknown kind.
    """
    unknown = sorted(set(kinds) - set(FAULT_KINDS))
    if unknown:
        raise ValueError(f"unknown fault kind {', '.join(unknown)}; known: {', '.join(FAULT_KINDS)}")
    rng = random.Random(f"{seed}/faults")
    faults: list[Fault] = []
    at = quiet_s
    while kinds:
        kind = rng.choice(list(kinds))
        hold = hold_s * rng.uniform(0.5, 1.5)
        if at + hold + settle_s > duration:
            break
        faults.append(Fault(round(at, 3), kind, _target(rng, kind), round(hold, 3)))
        at += hold + quiet_s * rng.uniform(0.5, 1.5)
    return faults


def _target(rng: random.Random, kind: str) -> str:
    if kind == "partition":
        return rng.choice(("minority", "leader"))  # "leader": the leader with a minority
    if kind in ("transfer", "membership"):
        return "follower"
    return rng.choice(("leader", "follower", "random"))
