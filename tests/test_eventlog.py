"""A node's event file (raftnode.node.eventlog): bounded, rotated, read back in order, hostile bytes
skipped, a failing disk drops events without stopping the node."""

from __future__ import annotations

import json
from pathlib import Path

from raftnode.node.eventlog import EventFile, event_file, read_events, rotated
from raftnode.node.runtime import NodeEvent


def node_event(at: float, node: str, kind: str, detail: str) -> NodeEvent:
    return NodeEvent(time=at, node=node, kind=kind, detail=detail)


def test_events_are_appended_and_read_back_in_order(tmp_path: Path) -> None:
    path = event_file(tmp_path, "n1")
    log = EventFile(path)
    for i in range(5):
        log.append(node_event(float(i), "n1", "role", f"event {i}"))
    assert [e["detail"] for e in read_events(path)] == [f"event {i}" for i in range(5)]
    assert path == tmp_path / "events" / "n1.jsonl"


def test_the_file_rotates_so_at_most_two_files_of_max_bytes_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "n1.jsonl"
    log = EventFile(path, max_bytes=1000)
    for i in range(200):
        log.append(node_event(float(i), "n1", "pre-vote", f"pre-vote for term {i}"))
    assert path.stat().st_size <= 1000 and rotated(path).stat().st_size <= 1000
    assert not rotated(rotated(path)).exists()
    kept = [e["time"] for e in read_events(path, max_bytes=1000)]
    assert kept == sorted(kept) and kept[-1] == 199.0 and 10 < len(kept) < 40


def test_torn_foreign_and_oversized_content_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "n1.jsonl"
    good = json.dumps({"time": 1.5, "node": "n1", "kind": "role", "detail": "ok"})
    path.write_text("x" * 5000 + "\n" + '{"time": "soon", "kind": "role"}\n[1, 2]\n\x00\xff\n' + good + '\n{"time": 2, "kin')
    assert [e["detail"] for e in read_events(path, max_bytes=2000)] == ["ok"]


def test_a_write_that_fails_drops_the_event_and_counts_it(tmp_path: Path) -> None:
    blocker = tmp_path / "events"
    blocker.write_text("a file where the directory should be")
    log = EventFile(event_file(tmp_path, "n1"))
    log.append(node_event(1.0, "n1", "role", "lost"))
    assert log.dropped == 1
    blocker.unlink()
    log.append(node_event(2.0, "n1", "role", "kept"))
    assert [e["detail"] for e in read_events(event_file(tmp_path, "n1"))] == ["kept"]
