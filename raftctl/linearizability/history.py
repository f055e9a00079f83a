"""The history of a linearizability test: its JSON-lines format and a strict loader.

One JSON object per line, in the real-time order the recorder saw them (the order of the lines
is the order the checker uses; ``time`` must not go backwards and is what a report draws).

Operation records (``process`` an int or a string; ``key`` a string, or null for a state machine
with a single value such as ``counter``; ``time`` in seconds)::

    {"type": "invoke", "process": 3, "f": "cas", "key": "k7", "value": ["v1", "v2"], "time": 12.5}
    {"type": "ok",     "process": 3, "f": "cas", "key": "k7", "value": false,        "time": 12.6}

``invoke`` starts an operation; the same process's next ``ok``, ``fail`` or ``info`` ends it:

- ``ok``: it took effect once, with the result in ``value``;
- ``fail``: it certainly did not take effect (refused, or an error before it was proposed);
- ``info``: unknown — it may take effect at any moment after its invoke, or never. An invoke the
  history never completes means the same. The process may invoke again after an ``info``.

Values by ``f`` (the invoke's value / the ok's value):

- ``get``: null / the value read, null when the key is absent;
- ``set``: the value written / null or the same value;
- ``cas``: ``[old, new]`` (old null: "absent") / true if it swapped, false if not — a cas the
  state machine answered false is ``ok``, not ``fail``;
- ``delete``: null / true if the key existed;
- ``incr``: the amount / the new value.

Values are strings or integers. ``node`` (who answered) and ``error`` (why it failed) may be added.

Timeline records, ignored by the checker and drawn by reports::

    {"type": "fault",  "f": "partition", "value": [["n1"], ["n2", "n3"]], "time": 30.0}
    {"type": "leader", "node": "n2", "term": 4, "time": 31.2}

A ``fault`` has a kind ``f`` (``partition``, ``heal``, ``kill``, ...), and may name a ``node`` and
give a ``value``; a ``leader`` names the new leader ``node`` (null: none known) and may give its
``term``. Anything else — bad JSON, an unknown type or field, a wrong value, a completion with no
operation in flight — is refused with the line and the problem.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

OPERATION_TYPES = ("invoke", "ok", "fail", "info")
TIMELINE_TYPES = ("fault", "leader")
FUNCTIONS = ("get", "set", "cas", "delete", "incr")

#: The longest line the loader reads; a longer one is refused rather than held.
MAX_LINE_CHARS = 1 << 16

_OPERATION_FIELDS = frozenset({"type", "process", "f", "key", "value", "time", "node", "error"})
_TIMELINE_FIELDS = {
    "fault": frozenset({"type", "f", "node", "value", "time", "error"}),
    "leader": frozenset({"type", "node", "term", "time"}),
}

#: The status of an operation whose outcome is unknown: an ``info``, or an invoke never completed.
UNKNOWN_STATUSES = ("info", "open")


class HistoryError(ValueError):
    """A record that breaks the format; ``str()`` names the line and the problem."""

    def __init__(self, line: int, problem: str) -> None:
        self.line = line
        self.problem = problem
        super().__init__(f"line {line}: {problem}")


@dataclass(frozen=True)
class Operation:
    """One operation: its invoke and, if it had one, its completion.

    Attributes:
        id: Its index in ``History.operations`` (invoke order).
        status: ``ok``, ``fail``, ``info`` (completed as unknown) or ``open`` (never completed).
        input: The invoke's value (a cas's ``[old, new]`` as a tuple).
        output: The ok's value; None unless ``status == "ok"``.
        complete_line, complete_time: The completion's line and time; None for ``open``.
    """

    id: int
    process: int | str
    f: str
    key: str | None
    input: Any
    status: str
    output: Any
    invoke_line: int
    invoke_time: float
    complete_line: int | None
    complete_time: float | None
    node: str | None = None
    error: str | None = None

    @property
    def outcome_known(self) -> bool:
        return self.status == "ok"

    def describe(self) -> str:
        """``cas k7 'v1'→'v2' → false``, ``set k1 'v3' (info)``: the op as a reader would say it."""
        target = f"{self.f} {self.key}" if self.key is not None else self.f
        if self.f == "cas":
            argument = f" {_show(self.input[0])}→{_show(self.input[1])}"
        elif self.f in ("set", "incr"):
            argument = f" {_show(self.input)}"
        else:
            argument = ""
        if self.status == "ok":
            tail = "" if self.f == "set" else f" → {_show(self.output)}"
        else:
            tail = f" ({self.status})"
        return f"{target}{argument}{tail}"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "process": self.process,
            "f": self.f,
            "key": self.key,
            "value": list(self.input) if isinstance(self.input, tuple) else self.input,
            "type": self.status,
            "result": self.output,
            "invoke_line": self.invoke_line,
            "complete_line": self.complete_line,
            "invoke_time": self.invoke_time,
            "complete_time": self.complete_time,
            "text": self.describe(),
        }


@dataclass(frozen=True)
class TimelineEvent:
    """A fault or a leader change, in the same timeline as the operations."""

    type: str
    time: float
    line: int
    f: str | None = None
    node: str | None = None
    value: Any = None
    term: int | None = None

    def describe(self) -> str:
        if self.type == "leader":
            who = self.node if self.node is not None else "none"
            return f"leader {who}" + (f" (term {self.term})" if self.term is not None else "")
        parts = [str(self.f)]
        if self.node is not None:
            parts.append(str(self.node))
        if self.value is not None:
            parts.append(json.dumps(self.value))
        return " ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "time": self.time, "line": self.line, "f": self.f,
                "node": self.node, "value": self.value, "term": self.term, "text": self.describe()}


@dataclass(frozen=True)
class History:
    """The operations (in invoke order) and timeline events of one recorded run."""

    operations: tuple[Operation, ...]
    events: tuple[TimelineEvent, ...] = ()

    def by_key(self) -> dict[str | None, list[Operation]]:
        """The operations of each key, in invoke order (the P-compositionality split)."""
        keys: dict[str | None, list[Operation]] = {}
        for op in self.operations:
            keys.setdefault(op.key, []).append(op)
        return keys


def parse_history(lines: Iterable[str | bytes]) -> History:
    """Parse JSON lines (text, or UTF-8 bytes; blank lines skipped) into a History.

    Raises:
        HistoryError: The first bad record, with its line number and the problem.
    """

    def records() -> Iterable[tuple[int, Any]]:
        for number, text in enumerate(lines, start=1):
            if len(text) > MAX_LINE_CHARS:
                raise HistoryError(number, f"longer than {MAX_LINE_CHARS} characters")
            if isinstance(text, bytes):
                try:
                    text = text.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise HistoryError(number, f"not UTF-8 ({exc.reason} at byte {exc.start})") from None
            if not text.strip():
                continue
            try:
                yield number, json.loads(text)
            except ValueError as exc:
                raise HistoryError(number, f"not valid JSON ({exc})") from None

    return history_from_records(records())


def history_from_records(records: Iterable[tuple[int, Any]]) -> History:
    """Build a History from ``(line, decoded JSON)`` pairs in history order, checking each."""
    builder = _Builder()
    for line, record in records:
        builder.add(line, record)
    return builder.finish()


class _Builder:
    def __init__(self) -> None:
        self.operations: list[dict[str, Any]] = []
        self.in_flight: dict[int | str, dict[str, Any]] = {}
        self.events: list[TimelineEvent] = []
        self.last_time: tuple[float, int] | None = None

    def add(self, line: int, record: Any) -> None:
        if not isinstance(record, Mapping):
            raise HistoryError(line, f"a record must be a JSON object, not {type(record).__name__}")
        kind = record.get("type")
        if kind not in OPERATION_TYPES and kind not in TIMELINE_TYPES:
            expected = ", ".join(OPERATION_TYPES + TIMELINE_TYPES)
            raise HistoryError(line, f"unknown type {kind!r}; a record's type is one of {expected}")
        allowed = _OPERATION_FIELDS if kind in OPERATION_TYPES else _TIMELINE_FIELDS[kind]
        if not allowed.issuperset(record):
            unknown = sorted(set(record) - allowed)
            raise HistoryError(line, f"unknown field {unknown[0]!r}; a {kind} record has {', '.join(sorted(allowed))}")
        time = self._time(line, record)
        if kind == "invoke":
            self._invoke(line, time, record)
        elif kind in OPERATION_TYPES:
            self._complete(line, time, kind, record)
        elif kind == "fault":
            self.events.append(TimelineEvent("fault", time, line, f=_text(line, record, "f"),
                                             node=_optional_text(line, record, "node"), value=record.get("value")))
        else:
            term = record.get("term")
            if term is not None and not _is_int(term):
                raise HistoryError(line, f"a leader's term must be an integer, not {term!r}")
            node = _optional_text(line, record, "node")
            self.events.append(TimelineEvent("leader", time, line, node=node, term=term))

    def _time(self, line: int, record: Mapping[str, Any]) -> float:
        time = record.get("time")
        if not _is_number(time) or not math.isfinite(time):
            raise HistoryError(line, f"\"time\" must be a finite number of seconds, not {time!r}")
        if self.last_time is not None and time < self.last_time[0]:
            raise HistoryError(
                line, f"time {time} is earlier than line {self.last_time[1]}'s {self.last_time[0]}; "
                "records must be in the order they happened")
        self.last_time = (time, line)
        return float(time)

    def _invoke(self, line: int, time: float, record: Mapping[str, Any]) -> None:
        process = _process(line, record)
        earlier = self.in_flight.get(process)
        if earlier is not None:
            raise HistoryError(line, f"process {process!r} invokes again while its {earlier['f']} of line "
                                     f"{earlier['invoke_line']} has not completed")
        f = record.get("f")
        if f not in FUNCTIONS:
            raise HistoryError(line, f"unknown f {f!r}; an operation is one of {', '.join(FUNCTIONS)}")
        key = _optional_text(line, record, "key")
        op = {"id": len(self.operations), "process": process, "f": f, "key": key,
              "input": _invoke_value(line, f, record.get("value")), "status": "open", "output": None,
              "invoke_line": line, "invoke_time": time, "complete_line": None, "complete_time": None,
              "node": None, "error": None}
        self.operations.append(op)
        self.in_flight[process] = op

    def _complete(self, line: int, time: float, kind: str, record: Mapping[str, Any]) -> None:
        process = _process(line, record)
        op = self.in_flight.pop(process, None)
        if op is None:
            raise HistoryError(line, f"{kind} for process {process!r}, which has no operation in flight")
        if "f" in record and record["f"] != op["f"]:
            raise HistoryError(line, f"completes a {record['f']!r} but process {process!r} invoked "
                                     f"{op['f']} on line {op['invoke_line']}")
        if "key" in record and record["key"] != op["key"]:
            raise HistoryError(line, f"completes key {record['key']!r} but process {process!r} invoked "
                                     f"key {op['key']!r} on line {op['invoke_line']}")
        if kind == "ok":
            op["output"] = _ok_value(line, op["f"], op["input"], record.get("value"))
        op.update(status=kind, complete_line=line, complete_time=time,
                  node=_optional_text(line, record, "node"), error=_optional_text(line, record, "error"))

    def finish(self) -> History:
        return History(tuple(Operation(**op) for op in self.operations), tuple(self.events))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_value(value: Any) -> bool:
    return isinstance(value, str) or _is_int(value)


def _process(line: int, record: Mapping[str, Any]) -> int | str:
    process = record.get("process")
    if not (isinstance(process, str) or _is_int(process)):
        raise HistoryError(line, f"\"process\" must be an integer or a string, not {process!r}")
    return process


def _text(line: int, record: Mapping[str, Any], field: str) -> str:
    value = record.get(field)
    if not isinstance(value, str):
        raise HistoryError(line, f"{field!r} must be a string, not {value!r}")
    return value


def _optional_text(line: int, record: Mapping[str, Any], field: str) -> str | None:
    return None if record.get(field) is None else _text(line, record, field)


def _is_cas_pair(value: Any) -> bool:
    return (isinstance(value, list) and len(value) == 2 and (value[0] is None or _is_value(value[0]))
            and _is_value(value[1]))


#: For each f: what its invoke's value must be, and what its ok's value must be (given the
#: invoke's), each as (words for the error, test).
_VALUE_RULES: dict[str, tuple[tuple[str, Callable[[Any], bool]], tuple[str, Callable[[Any, Any], bool]]]] = {
    "get": (("null", lambda v: v is None),
            ("a string, an integer or null", lambda v, _: v is None or _is_value(v))),
    "set": (("a string or an integer", _is_value),
            ("null or the value written", lambda v, written: v is None or v == written)),
    "cas": (("[old, new] (old may be null)", _is_cas_pair), ("true or false", lambda v, _: isinstance(v, bool))),
    "delete": (("null", lambda v: v is None), ("true or false", lambda v, _: isinstance(v, bool))),
    "incr": (("an integer", _is_int), ("the new integer", lambda v, _: _is_int(v))),
}


def _a(f: str) -> str:
    return f"{'an' if f[0] in 'aeiou' else 'a'} {f}"


def _invoke_value(line: int, f: str, value: Any) -> Any:
    words, valid = _VALUE_RULES[f][0]
    if not valid(value):
        raise HistoryError(line, f"{_a(f)}'s invoke value is {words}, not {value!r}")
    return tuple(value) if f == "cas" else value


def _ok_value(line: int, f: str, invoked: Any, value: Any) -> Any:
    words, valid = _VALUE_RULES[f][1]
    if not valid(value, invoked):
        raise HistoryError(line, f"{_a(f)}'s ok value is {words}, not {value!r}")
    return invoked if f == "set" else value


def _show(value: Any) -> str:
    return "absent" if value is None else json.dumps(value)
