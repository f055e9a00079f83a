"""Hand-made histories for the linearizability tests: a tiny recorder with a logical clock."""

from __future__ import annotations

import json
from typing import Any

from raftctl.linearizability import History, parse_history


class Recorder:
    """Appends history records in the order they are made; time is the record's index."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def _add(self, record: dict[str, Any]) -> int:
        record["time"] = float(len(self.records))
        self.records.append(record)
        return len(self.records)  # the record's line number

    def invoke(self, process: int, f: str, value: Any = None, key: str | None = "k") -> int:
        return self._add({"type": "invoke", "process": process, "f": f, "key": key, "value": value})

    def ok(self, process: int, value: Any = None) -> int:
        return self._add({"type": "ok", "process": process, "value": value})

    def fail(self, process: int) -> int:
        return self._add({"type": "fail", "process": process})

    def info(self, process: int) -> int:
        return self._add({"type": "info", "process": process})

    def call(self, process: int, f: str, value: Any = None, result: Any = None, key: str | None = "k") -> int:
        """An operation that nothing overlaps: invoke, then ok; returns the ok's line."""
        self.invoke(process, f, value, key)
        return self.ok(process, result)

    def fault(self, f: str, **fields: Any) -> int:
        return self._add({"type": "fault", "f": f, **fields})

    def leader(self, node: str | None, term: int | None = None) -> int:
        return self._add({"type": "leader", "node": node, "term": term})

    def lines(self) -> list[str]:
        return [json.dumps(record) for record in self.records]

    def history(self) -> History:
        return parse_history(self.lines())
