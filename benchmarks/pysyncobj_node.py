"""One node of a PySyncObj counter cluster behind raftnode's client protocol (for
``compare_pysyncobj.py``; needs the ``bench`` extra: ``pip install -e '.[bench]'``).

    python3 benchmarks/pysyncobj_node.py --id n1 \\
        --nodes n1=127.0.0.1:PEER:CLIENT,n2=127.0.0.1:PEER:CLIENT,n3=127.0.0.1:PEER:CLIENT [--no-batch]

The replicated state is a counter (``incr N``, ``decr N``, ``get`` — ``get`` goes through the log
too; raftnode's ``query`` op reads without it, ReadIndex). PySyncObj keeps its log in memory and does not fsync (its
defaults, which is what its users run).

The front-end speaks the same protocol as a raftnode node's client endpoint (``raftnode.node.service``):
length-prefixed frames (``raftnode.wire.codec``) with JSON requests ``{"op": "run_command", "command":
..., "id": ...}`` and ``{"op": "status"}``, answered with the request's ``id``, many in flight per
connection, so the very same load generator (``raftctl.bench``) drives both systems.

Why this front-end, and why it is fair to PySyncObj: it runs in PySyncObj's own thread. The node
is built with ``autoTick=False``; the front-end's sockets are registered in PySyncObj's own poller
and the process calls ``doTick`` in a loop, so a request is read, handed to the replicated method
(``incr(n, callback=...)``) and its answer written in the same thread that runs Raft — no
thread hand-off, no lock, no extra wakeup per command (the default ``autoTick`` thread would add
all three). Answers completed in one tick leave in one ``send`` (an on-tick callback flushes
them). A command sent to a follower is forwarded to the leader by PySyncObj itself; the load
generator sends to the leader anyway, as it does for raftnode.

Failure reasons map to the protocol as: MISSING_LEADER and QUEUE_FULL -> ``retry`` (nothing was
applied, send again); every other failure -> ``error`` naming the reason.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import sys
from functools import partial
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf, replicated
from pysyncobj.poller import POLL_EVENT_TYPE

from raftnode.wire import codec

READ = POLL_EVENT_TYPE.READ
WRITE = POLL_EVENT_TYPE.WRITE
ERROR = POLL_EVENT_TYPE.ERROR
_RETRY_REASONS = {FAIL_REASON.MISSING_LEADER, FAIL_REASON.QUEUE_FULL}
_REASON_NAMES = {v: k for k, v in vars(FAIL_REASON).items() if k.isupper()}
_RESPONSE = int(codec.FrameKind.CLIENT_RESPONSE)


class Counter(SyncObj):
    def __init__(self, self_address: str, partners: list[str], conf: SyncObjConf) -> None:
        super().__init__(self_address, partners, conf)
        self.__value = 0

    @replicated
    def incr(self, n: int) -> int:
        self.__value += n
        return self.__value

    @replicated
    def get(self) -> int:
        return self.__value


class Client:
    __slots__ = ("closed", "decoder", "fd", "out", "sock", "writing")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.decoder = codec.FrameDecoder()
        self.out: list[bytes] = []
        self.closed = False
        self.writing = False


class FrontEnd:
    def __init__(self, node: Counter, node_id: str, listen: tuple[str, int], ids_by_peer: dict[str, str]) -> None:
        self.node = node
        self.node_id = node_id
        self.ids_by_peer = ids_by_peer
        self.poller = node._poller
        self.server = socket.create_server(listen, backlog=128)
        self.server.setblocking(False)
        self.clients: dict[int, Client] = {}
        self.dirty: set[Client] = set()
        self.poller.subscribe(self.server.fileno(), self._accept, READ | ERROR)
        node.addOnTickCallback(self._flush_all)

    # -- connections ---------------------------------------------------------------------------

    def _accept(self, fd: int, event: int) -> None:
        while True:
            try:
                sock, _ = self.server.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            client = Client(sock)
            self.clients[client.fd] = client
            self.poller.subscribe(client.fd, self._on_event, READ | ERROR)

    def _close(self, client: Client) -> None:
        if client.closed:
            return
        client.closed = True
        self.poller.unsubscribe(client.fd)
        self.clients.pop(client.fd, None)
        self.dirty.discard(client)
        try:
            client.sock.close()
        except OSError:
            pass

    def _on_event(self, fd: int, event: int) -> None:
        client = self.clients.get(fd)
        if client is None:
            return
        if event & WRITE:
            self._flush(client)
        if event & READ:
            try:
                data = client.sock.recv(1 << 18)
            except (BlockingIOError, InterruptedError):
                data = None
            except OSError:
                self._close(client)
                return
            if data is not None:
                if not data:
                    self._close(client)
                    return
                try:
                    for frame in client.decoder.feed(data):
                        self._handle(client, json.loads(frame.payload))
                except (codec.CodecError, ValueError):
                    self._close(client)
                    return
                self._flush(client)
        elif event & ERROR:
            self._close(client)

    # -- requests ------------------------------------------------------------------------------

    def _handle(self, client: Client, request: dict[str, Any]) -> None:
        op = request.get("op")
        request_id = request.get("id")
        if op == "run_command":
            words = str(request.get("command", "")).split()
            verb = words[0] if words else ""
            done = partial(self._done, client, request_id)
            try:
                if verb == "incr" and len(words) == 2:
                    self.node.incr(int(words[1]), callback=done)
                    return
                if verb == "decr" and len(words) == 2:
                    self.node.incr(-int(words[1]), callback=done)
                    return
                if verb == "get" and len(words) == 1:
                    self.node.get(callback=done)
                    return
            except ValueError:
                pass
            self._answer(client, {"ok": False, "error": f"unknown command {request.get('command')!r}", "id": request_id})
        elif op == "status":
            leader = self.node._getLeader()
            address = getattr(leader, "address", leader)
            self._answer(
                client,
                {
                    "ok": True,
                    "node": self.node_id,
                    "role": "leader" if self.node._isLeader() else "follower",
                    "leader": self.ids_by_peer.get(address) if address is not None else None,
                    "term": self.node._getTerm(),
                    "id": request_id,
                },
            )
        else:
            self._answer(client, {"ok": False, "error": f"unknown op {op!r}", "id": request_id})

    def _done(self, client: Client, request_id: Any, result: Any, error: int) -> None:
        if client.closed:
            return
        if error == FAIL_REASON.SUCCESS:
            self._answer(client, {"ok": True, "result": result, "id": request_id})
        elif error in _RETRY_REASONS:
            self._answer(client, {"ok": False, "retry": True, "error": _REASON_NAMES.get(error), "id": request_id})
        else:
            self._answer(client, {"ok": False, "error": f"pysyncobj {_REASON_NAMES.get(error, error)}", "id": request_id})

    def _answer(self, client: Client, document: dict[str, Any]) -> None:
        client.out.append(codec.encode_frame(_RESPONSE, json.dumps(document, separators=(",", ":")).encode()))
        self.dirty.add(client)

    # -- writing -------------------------------------------------------------------------------

    def _flush_all(self) -> None:
        if self.dirty:
            for client in list(self.dirty):
                self._flush(client)

    def _flush(self, client: Client) -> None:
        self.dirty.discard(client)
        if client.closed or not client.out:
            return
        data = b"".join(client.out)
        client.out.clear()
        try:
            sent = client.sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self._close(client)
            return
        if sent < len(data):
            client.out.append(data[sent:])
            if not client.writing:
                client.writing = True
                self.poller.subscribe(client.fd, self._on_event, READ | WRITE | ERROR)
        elif client.writing:
            client.writing = False
            self.poller.subscribe(client.fd, self._on_event, READ | ERROR)


def parse_nodes(spec: str) -> dict[str, tuple[str, int, int]]:
    """``n1=127.0.0.1:7101:7201,...`` -> ``{"n1": ("127.0.0.1", 7101, 7201), ...}``."""
    nodes = {}
    for item in spec.split(","):
        node_id, _, rest = item.partition("=")
        host, peer, client = rest.rsplit(":", 2)
        nodes[node_id] = (host, int(peer), int(client))
    return nodes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--id", required=True)
    parser.add_argument("--nodes", required=True, help="id=host:peer_port:client_port,...")
    parser.add_argument("--no-batch", action="store_true", help="appendEntriesUseBatch=False")
    parser.add_argument("--tick", type=float, default=0.05, help="most seconds one doTick waits (autoTickPeriod's default)")
    args = parser.parse_args()
    nodes = parse_nodes(args.nodes)
    peers = {node_id: f"{host}:{peer}" for node_id, (host, peer, _) in nodes.items()}
    conf = SyncObjConf(autoTick=False, appendEntriesUseBatch=not args.no_batch)
    node = Counter(peers[args.id], [p for n, p in peers.items() if n != args.id], conf)
    host, _, client_port = nodes[args.id]
    FrontEnd(node, args.id, (host, client_port), {p: n for n, p in peers.items()})
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(True))
    print(f"pysyncobj node {args.id} on {peers[args.id]}, clients on {host}:{client_port}, "
          f"batch={not args.no_batch}", flush=True)
    while not stopping:
        node.doTick(args.tick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
