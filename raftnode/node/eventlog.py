"""A node's events on disk: a bounded, rotating JSON-lines file that outlives the process.

``EventFile.append`` is an event handler (``RaftNode.add_event_handler``): each event is one
JSON line appended with a single ``write`` to a file opened for appending. When the file passes
``max_bytes`` it becomes ``<name>.1`` (replacing the previous one) and a new file starts, so a
node keeps at most about ``2 * max_bytes`` of history. Nothing is fsynced: the file is for
people, and losing its last lines in a power cut is acceptable; a write that fails (disk full,
directory gone) drops that event and counts it in ``dropped``, never stopping the node.

``read_events`` is the reader's side (``raftctl events``): both files of a node, oldest first,
reading at most ``max_bytes`` from the end of each, skipping torn or foreign lines.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

#: Bytes after which a node's event file is rotated.
DEFAULT_MAX_BYTES = 1 << 20


class _Event(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


def event_file(state_dir: Path, node_id: str) -> Path:
    """Where node ``node_id`` of the cluster whose state is in ``state_dir`` keeps its events."""
    return state_dir / "events" / f"{node_id}.jsonl"


class EventFile:
    """Appends events to ``path`` as JSON lines, rotating at ``max_bytes`` (see the module docstring)."""

    def __init__(self, path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.dropped = 0
        self._size: int | None = None

    def append(self, event: _Event) -> None:
        """Append one event; on any OSError drop it (counted in ``dropped``)."""
        line = (json.dumps(event.to_dict()) + "\n").encode()
        try:
            if self._size is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._size = self.path.stat().st_size if self.path.exists() else 0
            if self._size + len(line) > self.max_bytes and self._size > 0:
                os.replace(self.path, rotated(self.path))
                self._size = 0
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)
            self._size += len(line)
        except OSError:
            self.dropped += 1
            self._size = None  # look at the file again next time


def rotated(path: Path) -> Path:
    """Where ``path`` goes when it is rotated: ``<name>.1``."""
    return path.with_name(path.name + ".1")


def read_events(path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Iterator[dict[str, Any]]:
    """The events of ``path`` and its rotated predecessor, oldest first; each file read from at
    most ``max_bytes`` before its end (a first, partial line is skipped); bad lines are skipped."""
    for part in (rotated(path), path):
        try:
            with part.open("rb") as stream:
                size = stream.seek(0, os.SEEK_END)
                stream.seek(max(0, size - max_bytes))
                data = stream.read(max_bytes)
        except OSError:
            continue
        lines = data.split(b"\n")
        if size > max_bytes:
            lines = lines[1:]  # started mid-line
        for raw in lines:
            document = _parse(raw)
            if document is not None:
                yield document


def _parse(raw: bytes) -> dict[str, Any] | None:
    try:
        document = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(document, dict) or not isinstance(document.get("time"), (int, float)):
        return None
    if not isinstance(document.get("kind"), str):
        return None
    return document
