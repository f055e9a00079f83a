"""Sequential specifications the checker linearizes against: one object per key.

A model is pure data plus ``apply(state, f, input) -> (output, new_state)``: what one operation
returns and leaves when it runs alone on ``state``. States must be hashable (the checker
memoizes on them). ``KEY_VALUE`` follows ``raftnode.node.statemachines.KeyValue`` (``kv``) exactly;
``COUNTER`` follows ``Counter`` (one value, key null) and ``Totals`` (one total per key).
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .history import Operation

#: What ``kv`` compares a cas's OLD with when the key is absent (``cas K - NEW`` creates K).
KV_ABSENT = "-"


class _Unread:
    """The one value that stands for every written value no operation ever looks at."""

    def __repr__(self) -> str:
        return "UNREAD"


UNREAD = _Unread()

#: The output of an operation the state machine refuses (an incr of a value that is no integer).
REFUSED = "<refused>"


def _integer(value: Any) -> int | None:
    """``value`` as kv's incr reads it: an integer written as text, else None."""
    if not isinstance(value, str):
        return None
    try:
        return int(value)
    except ValueError:
        return None


class Model(Protocol):
    name: str
    #: The ``f`` values this model knows.
    functions: frozenset[str]
    initial: Hashable

    def apply(self, state: Any, f: str, input: Any) -> tuple[Any, Any]:
        """The output of ``f(input)`` on ``state`` and the state after it."""

    def describe(self, state: Any) -> str:
        """The state as a report shows it."""


class Reducing(Protocol):
    """A model that can tell the checker which values no operation of a key can observe."""

    def reduce(self, ops: Sequence[Operation]) -> dict[int, tuple[Any, Any]]:
        """For some of ``ops`` (by id), an (input, output) to search with instead of theirs, such
        that every operation's result is the same from the reduced states as from the real ones."""


@dataclass(frozen=True)
class KeyValueModel:
    """One key of ``kv``: absent (None) or a value; get, set, delete, cas, incr.

    cas compares like ``kv``: an absent key reads as ``-``, and an OLD of null means ``-``.
    incr adds to the value read as an integer (absent: 0), stores the sum as text and returns it
    as an integer.
    """

    name: str = "kv"
    functions: frozenset[str] = frozenset({"get", "set", "cas", "delete", "incr"})
    initial: Hashable = None

    def apply(self, state: Any, f: str, input: Any) -> tuple[Any, Any]:
        if f == "get":
            return state, state
        if f == "set":
            return input, input
        if f == "delete":
            return state is not None, None
        if f == "incr":
            current = 0 if state is None else _integer(state)
            if current is None:
                return REFUSED, state  # kv refuses it: recorded as fail, so no ok can match this
            return current + input, str(current + input)
        old, new = input
        current = KV_ABSENT if state is None else state
        if current != (KV_ABSENT if old is None else old):
            return False, state
        return True, new

    def reduce(self, ops: Sequence[Operation]) -> dict[int, tuple[Any, Any]]:
        """Values that no get returned and no cas compared with become ``UNREAD``: states that
        differ only in such values answer every operation alike, so the search memoizes them as
        one, and writes of such values with unknown outcomes become interchangeable."""
        if any(op.f == "incr" for op in ops):
            return {}  # incr reads the value: every value is observed
        observed = {KV_ABSENT, None}
        for op in ops:
            if op.f == "get" and op.status == "ok":
                observed.add(op.output)
            elif op.f == "cas":
                observed.add(op.input[0])

        def reduced(value: Any) -> Any:
            return value if value in observed else UNREAD

        changed = {}
        for op in ops:
            if op.f == "set":
                changed[op.id] = (reduced(op.input), reduced(op.output) if op.status == "ok" else None)
            elif op.f == "cas":
                changed[op.id] = ((op.input[0], reduced(op.input[1])), op.output)
        return changed

    def describe(self, state: Any) -> str:
        return "absent" if state is None else json.dumps(state)


@dataclass(frozen=True)
class CounterModel:
    """An integer from 0: ``incr N`` returns the new value, ``get`` the value."""

    name: str = "counter"
    functions: frozenset[str] = frozenset({"get", "incr"})
    initial: Hashable = 0

    def apply(self, state: Any, f: str, input: Any) -> tuple[Any, Any]:
        if f == "incr":
            return state + input, state + input
        return state, state

    def describe(self, state: Any) -> str:
        return str(state)


KEY_VALUE = KeyValueModel()
COUNTER = CounterModel()
MODELS: dict[str, Model] = {"kv": KEY_VALUE, "counter": COUNTER}
