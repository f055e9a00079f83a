"""The history of a chaos run, written as it happens: one JSON line per record.

The format is ``raftctl.linearizability.history``'s (invoke / ok / fail / info operations, and
fault and leader records on the same timeline). Lines go to the file as they are recorded, in
the order the run saw them, so memory stays flat however long the run and a run that is
interrupted still leaves a history that can be checked.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from .plan import Operation


class Recorder:
    """Appends records to ``path``; ``time`` in each is seconds since the recorder was made.

    Args:
        path: The history file (created, or truncated).
        clock: Monotonic seconds (``trio.current_time`` in a run; anything in tests).
    """

    def __init__(self, path: Path, clock: Callable[[], float]) -> None:
        self.path = path
        self._clock = clock
        self._start = clock()
        self._file: IO[str] = path.open("w", encoding="utf-8")
        self.counts = {"invoke": 0, "ok": 0, "fail": 0, "info": 0, "fault": 0, "leader": 0}

    def elapsed(self) -> float:
        return self._clock() - self._start

    def _write(self, record: dict[str, Any]) -> None:
        record["time"] = round(self.elapsed(), 6)
        self._file.write(json.dumps(record, separators=(",", ":")) + "\n")
        self.counts[record["type"]] += 1

    def invoke(self, process: int, op: Operation) -> None:
        self._write({"type": "invoke", "process": process, "f": op.f, "key": op.key, "value": op.value})

    def complete(self, process: int, op: Operation, kind: str, value: Any = None, *,
                 node: str | None = None, error: str | None = None) -> None:
        """End ``process``'s operation: ``ok`` with its ``value``, ``fail`` (certainly no effect)
        or ``info`` (unknown)."""
        record: dict[str, Any] = {"type": kind, "process": process, "f": op.f, "key": op.key, "value": value}
        if node is not None:
            record["node"] = node
        if error is not None:
            record["error"] = error
        self._write(record)

    def fault(self, f: str, *, node: str | None = None, value: Any = None, error: str | None = None) -> None:
        record: dict[str, Any] = {"type": "fault", "f": f, "node": node, "value": value}
        if error is not None:
            record["error"] = error
        self._write(record)

    def leader(self, node: str | None, term: int | None) -> None:
        self._write({"type": "leader", "node": node, "term": term})

    def close(self) -> None:
        self._file.close()
