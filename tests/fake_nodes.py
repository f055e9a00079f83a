"""Fake nodes for client tests: real TCP listeners on loopback that speak the client protocol
(length-prefixed frames, JSON) and answer each request with whatever a test's handler says.

A handler gets ``(node id, request)`` and returns the response document (its ``id`` is added), or
``SILENT`` to never answer, or ``HANG_UP`` to close the connection. Every request is recorded in
``FakeCluster.requests`` as ``(node id, request)``. Threads, not trio: the clients under test
may be blocking ones.

Event streams: a connection whose ``events`` request was answered ``ok`` subscribes to its node;
``FakeCluster.push`` sends an event frame to the node's subscribers and ``subscribers`` counts
them (a subscriber that hangs up stops counting).
"""

from __future__ import annotations

import selectors
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from raftnode.wire.framing import (
    FrameDecoder,
    FrameKind,
    decode_json,
    encode_frame,
    encode_json,
)

SILENT = object()
HANG_UP = object()

Handler = Callable[[str, dict[str, Any]], Any]


def status_document(node_id: str, *, role: str = "follower", term: int = 1, leader: str | None = None, value: int = 0) -> dict[str, Any]:
    """A node's answer to ``status`` (the fields raftctl reads)."""
    return {
        "ok": True,
        "node": node_id,
        "alive": True,
        "pid": 4242,
        "role": role,
        "term": term,
        "leader": leader,
        "last_index": 3,
        "commit_index": 3,
        "applied_index": 3,
        "snapshot_index": 0,
        "faults": {"partitioned_from": [], "delay_ms": 0, "drop_pct": 0},
        "state": {"value": value},
    }


def command_result(node_id: str, result: Any, *, index: int = 3, leader: str | None = None) -> dict[str, Any]:
    """A node's final answer to ``run_command``."""
    return {
        "ok": True, "result": result, "error": None, "redirect": None, "retry": False,
        "timeout_expired": False, "index": index, "node": node_id, "leader": leader or node_id,
    }


def redirect(node_id: str, leader: str) -> dict[str, Any]:
    return {
        "ok": False, "result": None, "error": None, "redirect": leader, "retry": False,
        "timeout_expired": False, "index": None, "node": node_id, "leader": leader,
    }


def retry(node_id: str) -> dict[str, Any]:
    return {
        "ok": False, "result": None, "error": None, "redirect": None, "retry": True,
        "timeout_expired": False, "index": None, "node": node_id, "leader": None,
    }


class FakeCluster:
    """Listeners for the node ids given (``None`` handler entries: a port nobody listens on)."""

    def __init__(self, handler: Handler, ids: tuple[str, ...], down: tuple[str, ...] = ()) -> None:
        self.handler = handler
        self.ids = ids
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.ports: dict[str, int] = {}
        self._listeners: dict[socket.socket, str] = {}
        self._selector = selectors.DefaultSelector()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._subscribers: dict[str, list[socket.socket]] = {node_id: [] for node_id in ids}
        for node_id in ids:
            listener = socket.socket()
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", 0))
            self.ports[node_id] = listener.getsockname()[1]
            if node_id in down:
                listener.close()  # the port was free a moment ago: connections are refused
                continue
            listener.listen()
            listener.setblocking(False)
            self._listeners[listener] = node_id
            self._selector.register(listener, selectors.EVENT_READ, ("accept", node_id, None))
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def ops(self, op: str) -> list[str]:
        """The nodes that got a request with ``op``, in order."""
        with self._lock:
            return [node for node, request in self.requests if request.get("op") == op]

    def subscribers(self, node_id: str) -> int:
        """How many connections follow ``node_id``'s events now."""
        with self._lock:
            return len(self._subscribers[node_id])

    def push(self, node_id: str, document: dict[str, Any]) -> int:
        """Send ``document`` as an event of ``node_id`` to its subscribers; returns how many got it."""
        frame = encode_frame(FrameKind.EVENT, encode_json(document))
        sent = 0
        with self._lock:
            for conn in self._subscribers[node_id]:
                try:
                    conn.sendall(frame)
                    sent += 1
                except OSError:
                    pass
        return sent

    def cluster_file(self, path: Path, *, name: str = "fake", ids: tuple[str, ...] | None = None) -> Path:
        """Write a cluster file naming ``ids`` (default: every node) at their fake addresses."""
        lines = ["[cluster]", f'name = "{name}"', 'state_machine = "counter"', 'state_dir = "state"', ""]
        for k, node_id in enumerate(self.ids):
            if ids is None or node_id in ids:
                lines += ["[[nodes]]", f'id = "{node_id}"', f'peer = "127.0.0.1:{1 + k}"',
                          f'client = "127.0.0.1:{self.ports[node_id]}"', ""]
        path.write_text("\n".join(lines))
        return path

    def _serve(self) -> None:
        while not self._stop.is_set():
            for key, _ in self._selector.select(0.05):
                what, node_id, decoder = key.data
                if what == "accept":
                    try:
                        conn, _ = key.fileobj.accept()  # type: ignore[union-attr]
                    except OSError:
                        continue
                    conn.setblocking(True)
                    self._selector.register(conn, selectors.EVENT_READ, ("read", node_id, FrameDecoder()))
                    continue
                conn = key.fileobj
                try:
                    data = conn.recv(65536)  # type: ignore[union-attr]
                except OSError:
                    data = b""
                if not data:
                    self._drop(conn)
                    continue
                for frame in decoder.feed(data):
                    request = decode_json(frame.payload)
                    with self._lock:
                        self.requests.append((node_id, request))
                    answer = self.handler(node_id, request)
                    if answer is SILENT:
                        continue
                    if answer is HANG_UP:
                        self._drop(conn)
                        break
                    document = {**answer, "id": request.get("id")}
                    try:
                        conn.sendall(encode_frame(FrameKind.CLIENT_RESPONSE, encode_json(document)))  # type: ignore[union-attr]
                    except OSError:  # the client went away first
                        self._drop(conn)
                        break
                    if request.get("op") == "events" and answer.get("ok"):
                        with self._lock:
                            self._subscribers[node_id].append(conn)  # type: ignore[arg-type]

    def _drop(self, conn: Any) -> None:
        try:
            self._selector.unregister(conn)
        except (KeyError, ValueError):
            pass
        with self._lock:
            for followers in self._subscribers.values():
                if conn in followers:
                    followers.remove(conn)
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for key in list(self._selector.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        self._selector.close()


@contextmanager
def fake_cluster(handler: Handler, ids: tuple[str, ...] = ("n1", "n2", "n3"), *, down: tuple[str, ...] = ()) -> Iterator[FakeCluster]:
    cluster = FakeCluster(handler, ids, down)
    try:
        yield cluster
    finally:
        cluster.close()
