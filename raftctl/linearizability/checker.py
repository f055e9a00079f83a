"""Is a history linearizable? Wing & Gong's search as Lowe improved it, one key at a time.

For each key (P-compositionality: a history is linearizable iff each key's sub-history is), the
search walks the key's calls and returns in history order. At a call it tries to linearize the
operation now — step the model; if the output matches and the pair (set of linearized
operations, state) is new, take it and start again from the first remaining entry. At a return
whose operation is not linearized yet it backtracks. The memo of pairs already tried
(Lowe, "Testing for linearizability", 2017; Porcupine) is what makes it fast.

What counts: ``ok`` operations with their results; ``fail`` ones are left out (they did not take
effect); an ``info`` or never-completed one may take effect at any point after its invoke or not
at all — its return is placed after everything, where linearizing it means "never". Reads whose
outcome is unknown change nothing and are left out.

Two exact reductions keep many unknown outcomes cheap: a model may replace values no operation
can observe by one token (``KeyValueModel.reduce``), so states that differ only there are
memoized as one; and unknown-outcome operations with the same effect are interchangeable, so
they are linearized in invoke order only.

Each key gets a budget (steps, and seconds if given); a key that exhausts it is ``unknown``. For
a key that is not linearizable the checker finds the first completion at which its history stops
being linearizable (binary search over prefixes) and, within that prefix, the longest order of
operations it could linearize: that is the anomaly a report draws.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .history import History, Operation
from .models import Model

OK = "ok"
ANOMALY = "anomaly"
UNKNOWN = "unknown"

#: The output of an operation whose outcome is unknown: any output matches.
_ANY = object()
_CLOCK_EVERY = 1024


class ModelMismatch(ValueError):
    """The history uses an operation the model does not have (names the line)."""


@dataclass(frozen=True)
class Budget:
    """What the search of one key may use: ``steps`` and ``seconds`` (each unless None), and
    about ``memory_bytes`` for its memo (each entry is counted as the bytes of its set of
    operations plus 120)."""

    steps: int | None = 5_000_000
    seconds: float | None = None
    memory_bytes: int = 512 << 20


@dataclass(frozen=True)
class Step:
    """One operation of a linearization and the state it leaves."""

    op: Operation
    state: Any


@dataclass(frozen=True)
class Anomaly:
    """Why one key's history is not linearizable.

    Attributes:
        op: The operation whose completion makes the history non-linearizable: the prefix
            ending with it is not linearizable, and every shorter one is (or, where the budget
            ran out, could not be shown not to be).
        prefix: The operations of that shortest failing prefix (those invoked by then).
        linearized: The longest order of the prefix's operations the search could linearize.
        state: The model state after ``linearized``.
        unplaced: The prefix's operations that order leaves out (``op`` among them unless it
            was placed and another could not follow).
        explanation: A sentence a report prints.
    """

    key: str | None
    op: Operation
    prefix: tuple[Operation, ...]
    linearized: tuple[Step, ...]
    state: Any
    unplaced: tuple[Operation, ...]
    explanation: str

    def to_json(self, model: Model) -> dict[str, Any]:
        return {
            "key": self.key,
            "op": self.op.to_json(),
            "prefix_end_line": self.op.complete_line,
            "prefix": [op.id for op in self.prefix],
            "linearized": [{"op": s.op.id, "state": model.describe(s.state)} for s in self.linearized],
            "state": model.describe(self.state),
            "unplaced": [op.to_json() for op in self.unplaced],
            "explanation": self.explanation,
        }


@dataclass(frozen=True)
class KeyVerdict:
    """One key's result; ``exhausted`` names the budget (steps, seconds, memory) of an unknown."""

    key: str | None
    status: str
    operations: int
    steps: int
    anomaly: Anomaly | None = None
    exhausted: str | None = None


@dataclass(frozen=True)
class Verdict:
    """The result of a whole history: ``status`` is anomaly if any key has one, else unknown if
    any key ran out of budget, else ok."""

    model: Model
    keys: tuple[KeyVerdict, ...]
    operations: int
    status: str = field(init=False)

    def __post_init__(self) -> None:
        statuses = {k.status for k in self.keys}
        status = ANOMALY if ANOMALY in statuses else UNKNOWN if UNKNOWN in statuses else OK
        object.__setattr__(self, "status", status)

    @property
    def anomalies(self) -> list[Anomaly]:
        return [k.anomaly for k in self.keys if k.anomaly is not None]

    @property
    def unknown_keys(self) -> list[str | None]:
        return [k.key for k in self.keys if k.status == UNKNOWN]

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": {OK: "linearizable", ANOMALY: "anomaly", UNKNOWN: "unknown"}[self.status],
            "model": self.model.name,
            "operations": self.operations,
            "keys": len(self.keys),
            "keys_linearizable": sum(k.status == OK for k in self.keys),
            "anomaly_keys": [k.key for k in self.keys if k.status == ANOMALY],
            "unknown_keys": self.unknown_keys,
            "unknown": [{"key": k.key, "exhausted": k.exhausted} for k in self.keys if k.status == UNKNOWN],
            "steps": sum(k.steps for k in self.keys),
            "anomalies": [a.to_json(self.model) for a in self.anomalies],
        }


def check_history(history: History, model: Model, budget: Budget = Budget(), *,
                  clock: Callable[[], float] = time.monotonic) -> Verdict:
    """Check every key of ``history`` against ``model``, each within ``budget``.

    Raises:
        ModelMismatch: An operation's ``f`` is not one of the model's functions.
    """
    for op in history.operations:
        if op.f not in model.functions:
            raise ModelMismatch(
                f"line {op.invoke_line}: the {model.name} model has no {op.f} "
                f"(it knows {', '.join(sorted(model.functions))})")
    verdicts = tuple(check_key(key, ops, model, budget, clock=clock) for key, ops in history.by_key().items())
    return Verdict(model, verdicts, len(history.operations))


def check_key(key: str | None, ops: Sequence[Operation], model: Model, budget: Budget = Budget(), *,
              clock: Callable[[], float] = time.monotonic) -> KeyVerdict:
    """Check one key's operations (in invoke order); explain an anomaly."""
    search = _Search(_entries(ops, model, cut=None), model, budget, clock)
    result = search.run()
    if result != ANOMALY:
        return KeyVerdict(key, result, len(ops), search.steps, exhausted=search.exhausted)
    anomaly, steps = _explain(key, ops, model, budget, clock)
    return KeyVerdict(key, ANOMALY, len(ops), search.steps + steps, anomaly)


@dataclass(frozen=True)
class _Entry:
    op: Operation
    call: int
    ret: float
    input: Any
    output: Any


def _entries(ops: Sequence[Operation], model: Model, cut: int | None) -> list[_Entry]:
    """What the search linearizes, in invoke order: the operations invoked by line ``cut`` (all if
    None), with the model's reduced inputs and outputs; those not completed ok by then have an
    unknown outcome, placed after everything."""
    reduce = getattr(model, "reduce", None)
    reduced = reduce(ops) if reduce is not None else {}
    entries = []
    for op in ops:
        if op.status == "fail" or (cut is not None and op.invoke_line > cut):
            continue
        known = op.status == "ok" and (cut is None or op.complete_line <= cut)
        if not known and op.f == "get":
            continue
        input, output = reduced.get(op.id, (op.input, op.output))
        entries.append(_Entry(op, op.invoke_line, op.complete_line if known else float("inf"), input,
                              output if known else _ANY))
    return entries


class _Search:
    """One run of the search over ``entries``; ``run()`` says ok, anomaly or unknown.

    With ``track``, it keeps the longest linearization it reached (``best``, entry indexes).
    """

    def __init__(self, entries: list[_Entry], model: Model, budget: Budget,
                 clock: Callable[[], float], track: bool = False) -> None:
        self.entries = entries
        self.model = model
        self.budget = budget
        self.clock = clock
        self.track = track
        self.steps = 0
        self.exhausted: str | None = None
        self.best: list[int] = []

    def run(self) -> str:
        """Search for a linearization; sets ``steps``, and ``exhausted`` when the budget ran out."""
        return self._walk(_CallList(self.entries), _twins(self.entries))

    def _walk(self, calls: _CallList, twin: list[int]) -> str:
        entries = self.entries
        nxt, match, op_of = calls.nxt, calls.match, calls.op_of
        fs = [e.op.f for e in entries]
        inputs = [e.input for e in entries]
        outputs = [e.output for e in entries]
        apply, any_output = self.model.apply, _ANY
        state = self.model.initial
        linearized = 0
        seen: set[tuple[int, Any]] = set()
        chosen: list[tuple[int, Any]] = []  # (call node, state before it) of each operation linearized
        max_steps, deadline, max_memo = self._limits(len(entries))
        steps = 0
        node = nxt[0]
        try:
            while nxt[0] != -1:
                steps += 1
                if steps > max_steps or (deadline is not None and steps % _CLOCK_EVERY == 0 and self.clock() > deadline):
                    self.exhausted = "steps" if steps > max_steps else "seconds"
                    return UNKNOWN
                if match[node]:
                    i = op_of[node]
                    if twin[i] < 0 or (linearized >> twin[i]) & 1:
                        output, new_state = apply(state, fs[i], inputs[i])
                        wanted = outputs[i]
                        if wanted is any_output or output == wanted:
                            memo = (linearized | (1 << i), new_state)
                            if memo not in seen:
                                if len(seen) >= max_memo:
                                    self.exhausted = "memory"
                                    return UNKNOWN
                                seen.add(memo)
                                chosen.append((node, state))
                                state, linearized = new_state, memo[0]
                                calls.lift(node)
                                node = nxt[0]
                                continue
                    node = nxt[node]
                    continue
                # a return whose call is not linearized: undo the last choice
                if not chosen:
                    return ANOMALY
                if self.track and len(chosen) > len(self.best):
                    self.best = [op_of[c] for c, _ in chosen]
                node, state = chosen.pop()
                linearized &= ~(1 << op_of[node])
                node = calls.put_back(node)
            if self.track:
                self.best = [op_of[c] for c, _ in chosen]
            return OK
        finally:
            self.steps = steps

    def _limits(self, n: int) -> tuple[float, float | None, int]:
        """The most steps, the clock's deadline (if any) and the most memo entries the budget allows."""
        budget = self.budget
        max_steps = budget.steps if budget.steps is not None else float("inf")
        deadline = None if budget.seconds is None else self.clock() + budget.seconds
        return max_steps, deadline, budget.memory_bytes // (n // 8 + 120)


class _CallList:
    """A doubly linked list of 2n nodes after a head (0): node 1 + k is the k-th of the calls and
    returns in history order; a call node's ``match`` is its return node (0 for a return node),
    ``op_of`` the entry a node belongs to."""

    def __init__(self, entries: Sequence[_Entry]) -> None:
        n = len(entries)
        order = sorted([(e.call, 0, i) for i, e in enumerate(entries)] + [(e.ret, 1, i) for i, e in enumerate(entries)])
        size = 2 * n + 1
        self.nxt = list(range(1, size + 1))
        self.nxt[-1] = -1
        self.prv = list(range(-1, size - 1))
        self.match = [0] * size
        self.op_of = [0] * size
        return_node = [0] * n
        for node, (_, kind, i) in enumerate(order, start=1):
            self.op_of[node] = i
            if kind:
                return_node[i] = node
        for node, (_, kind, i) in enumerate(order, start=1):
            if not kind:
                self.match[node] = return_node[i]

    def lift(self, call: int) -> None:
        """Take the call node and its return out of the list."""
        nxt, prv, ret = self.nxt, self.prv, self.match[call]
        nxt[prv[call]] = nxt[call]
        prv[nxt[call]] = prv[call]
        nxt[prv[ret]] = nxt[ret]
        if nxt[ret] != -1:
            prv[nxt[ret]] = prv[ret]

    def put_back(self, call: int) -> int:
        """Undo ``lift(call)``; returns the node after the call, where the search goes on."""
        nxt, prv, ret = self.nxt, self.prv, self.match[call]
        nxt[prv[ret]] = ret
        if nxt[ret] != -1:
            prv[nxt[ret]] = ret
        nxt[prv[call]] = call
        prv[nxt[call]] = call
        return nxt[call]


def _twins(entries: Sequence[_Entry]) -> list[int]:
    """Operations with an unknown outcome and the same effect are interchangeable (their returns
    are all at the end): linearize them in invoke order only. ``twin[i]`` is the one before
    ``i``, or -1."""
    twin = [-1] * len(entries)
    last_of: dict[tuple[str, Any], int] = {}
    for i, e in enumerate(entries):
        if e.output is _ANY:
            key = (e.op.f, e.input)
            twin[i] = last_of.get(key, -1)
            last_of[key] = i
    return twin


def _explain(key: str | None, ops: Sequence[Operation], model: Model, budget: Budget,
             clock: Callable[[], float]) -> tuple[Anomaly, int]:
    """Find the shortest failing prefix (by completions) and the longest linearization in it."""
    ends = sorted(op.complete_line for op in ops if op.status == "ok")
    steps = 0
    low, high = 0, len(ends) - 1  # the prefix ending at ends[high] fails (the whole history does)
    while low < high:
        middle = (low + high) // 2
        search = _Search(_entries(ops, model, cut=ends[middle]), model, budget, clock)
        result = search.run()
        steps += search.steps
        if result == ANOMALY:
            high = middle
        else:  # linearizable, or unknown: either way the failing prefix we know stays the shortest
            low = middle + 1
    cut = ends[high]
    entries = _entries(ops, model, cut=cut)
    search = _Search(entries, model, budget, clock, track=True)
    search.run()
    steps += search.steps
    culprit = next(op for op in ops if op.complete_line == cut)
    prefix = tuple(op for op in ops if op.invoke_line <= cut)
    linearized: list[Step] = []
    state = model.initial
    for i in search.best:
        _, state = model.apply(state, entries[i].op.f, entries[i].op.input)
        linearized.append(Step(entries[i].op, state))
    placed = {step.op.id for step in linearized}
    unplaced = tuple(e.op for e in entries if e.op.id not in placed)
    explanation = _sentence(culprit, len(entries), linearized, state, model)
    return Anomaly(key, culprit, prefix, tuple(linearized), state, unplaced, explanation), steps


def _sentence(culprit: Operation, candidates: int, linearized: Sequence[Step], state: Any, model: Model) -> str:
    where = f"process {culprit.process}, lines {culprit.invoke_line}–{culprit.complete_line}"
    actual, _ = model.apply(state, culprit.f, culprit.input)
    found = (f"The longest order found places {len(linearized)} of the {candidates} operations that may "
             f"have taken effect by then and leaves {model.describe(state)}")
    if culprit.f != "set" and all(step.op is not culprit for step in linearized):
        found += f", where it would return {model.describe(actual)}"
    return (f"{culprit.describe()} ({where}) cannot be linearized: the history is linearizable until it "
            f"completes, and no order of the operations then explains its result. {found}.")
