"""A blocking client for the nodes' client endpoint, for one-shot programs such as ``raftctl``.

The blocking driver of ``raftnode.client.clientcore``: same wire protocol, same rules (``ClientCore``'s
steps) and same errors as ``raftnode.client.ClusterClient``, without trio or ``raftnode.core``: a
command-line call that asks a few questions and exits should not spend a quarter of its life
importing an event loop.

    with SyncClusterClient(config.client_addresses()) as client:  # wire: raftnode.wire.requests
        answer = client.run_command("incr 5", timeout=5)
        print(answer.response["result"], "answered by", answer.node)
        pictures = client.call_each({node: wire.Status() for node in client.addresses}, timeout=1)

``call_each`` asks many nodes at once over non-blocking sockets (one ``selectors`` loop), so a
status of five nodes costs one round trip, not five. With ``tls`` (an ``ssl.SSLContext``,
``raftnode.security.tls.client_context``) each connection runs TLS through memory buffers
(``ssl.MemoryBIO``) in the same loop, and a request is written once the handshake is done.
Connections stay open for the client's life and are reused; a node that hung up is reconnected
on the next call.

Like ``ClusterClient``, it runs commands in a client session (registered on the first command)
unless ``sessions=False``, so resending a command is safe: it is applied at most once.
"""

from __future__ import annotations

import errno
import os
import selectors
import socket
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from ..wire import requests as wire
from ..wire.framing import CodecError
from .clientcore import Advanced, Answer, Call, ClientConnection, ClientCore, CommandOutcome, NeedSession, Pause, Steps, advance, refusal
from .clientproto import ClientError, ClientSession, NodeUnreachable, NoLeader, SessionExpired, Timeout  # (re-exported)
from .clientproto import address_of, call_timeout, connect_timeout, tls_failure

if TYPE_CHECKING:
    import ssl  # imported when a connection uses TLS: a plain one-shot call does not pay for it

    from ..config import Address

__all__ = [
    "ClientError", "CommandAnswer", "NoLeader", "NodeUnreachable", "SessionExpired", "SyncClusterClient", "Timeout",
]

#: The final answer to a command: ``raftnode.client.clientcore.CommandOutcome`` (``response``, ``node``,
#: ``attempts``), the same type ``ClusterClient`` returns.
CommandAnswer = CommandOutcome

_RECV_BYTES = 65536


def _resolve(address: Address) -> list[tuple[Any, ...]]:
    """``getaddrinfo`` for ``address``; an IP address is taken as it is (no name lookup, and no
    import of the idna codec that ``getaddrinfo`` makes for any str host)."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, address.host)
        except OSError:
            continue
        return [(family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address.host, address.port))]
    return socket.getaddrinfo(address.host, address.port, type=socket.SOCK_STREAM)


class _TlsLayer:
    """TLS over memory buffers: ciphertext in and out of a non-blocking socket's loop."""

    def __init__(self, context: ssl.SSLContext, host: str) -> None:
        import ssl

        self._ssl = ssl
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._object = context.wrap_bio(self._incoming, self._outgoing, server_hostname=host)
        self.done = False
        self.received = False  # any plaintext yet

    def handshake(self) -> None:
        """Advance the handshake as far as the bytes received allow; ssl.SSLError if it failed."""
        if not self.done:
            try:
                self._object.do_handshake()
                self.done = True
            except self._ssl.SSLWantReadError:
                pass

    def encrypt(self, plain: bytearray) -> bytes:
        """The ciphertext to send now: the handshake's, and ``plain`` (emptied) once it is done."""
        if self.done and plain:
            self._object.write(plain)
            plain.clear()
        return self._outgoing.read()

    def decrypt(self, data: bytes) -> bytes:
        """The plaintext ``data`` completes (b"" if none yet); ssl.SSLError if the node refused."""
        self._incoming.write(data)
        self.handshake()
        chunks = []
        while self.done:
            try:
                chunk = self._object.read(_RECV_BYTES)
            except (self._ssl.SSLWantReadError, self._ssl.SSLZeroReturnError):
                break
            if not chunk:
                break
            chunks.append(chunk)
            self.received = True
        return b"".join(chunks)


class _Connection:
    """One non-blocking TCP connection to one node's client endpoint (over ``tls`` if given).

    A host name with several addresses is tried one address after the other until one accepts.
    """

    def __init__(self, node: str, address: Address, connect_by: float, fields: Mapping[str, Any] | None = None,
                 tls: ssl.SSLContext | None = None) -> None:
        self.node = node
        self.fields = fields
        self.address = address
        self.connect_by = connect_by
        self.connected = False
        #: Why the connection is unusable (NodeUnreachable), or None while it is usable.
        self.failure: NodeUnreachable | None = None
        self.out = bytearray()  # requests to send (plaintext)
        self.tls = _TlsLayer(tls, address.host) if tls is not None else None
        self._wire = bytearray() if tls is not None else self.out  # bytes for the socket
        self.protocol = ClientConnection(node, fields)
        self.answers: dict[int, dict[str, Any]] = {}
        self.sock: socket.socket | None = None
        try:
            self._candidates = _resolve(address)
        except OSError as exc:
            self._close(exc.strerror or str(exc))
            return
        self._connect_next()

    def _connect_next(self) -> None:
        """Start connecting to the next address of the host; fail when none is left."""
        while True:
            family, kind, proto, _, sockaddr = self._candidates.pop(0)
            try:
                self.sock = socket.socket(family, kind, proto)
                self.sock.setblocking(False)
                self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                code = self.sock.connect_ex(sockaddr)
            except OSError as exc:
                code, reason = -1, exc.strerror or str(exc)
            else:
                reason = os.strerror(code) if code else ""
            if code == 0:
                self._on_connected()
                return
            if code in (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN):
                return
            if not self._refused(reason):
                return

    def _refused(self, reason: str) -> bool:
        """The current address refused: True to try the next one, False if that was the last."""
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if not self._candidates:
            self._close(reason)
            return False
        return True

    @property
    def ready(self) -> bool:
        """Connected, with the TLS handshake done: requests can be written."""
        return self.connected and (self.tls is None or self.tls.done)

    @property
    def wants_write(self) -> bool:
        return bool(self._wire or (self.out and self.ready))

    def _on_connected(self) -> None:
        self.connected = True
        if self.tls is not None:
            self._write()  # the TLS ClientHello

    def send(self, request: Mapping[str, Any] | wire.Request) -> int:
        """Queue ``request``; on an open, idle connection it is written at once (no poll first)."""
        request_id, frame = self.protocol.send(wire.as_document(request))
        self.out += frame
        if self.connected and self.failure is None:
            self._write()
        return request_id

    def fileno(self) -> int:
        assert self.sock is not None
        return self.sock.fileno()

    def on_writable(self) -> None:
        assert self.sock is not None
        if not self.connected:
            code = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code:
                if self._refused(os.strerror(code)):
                    self._connect_next()
                return
            self._on_connected()
            return
        self._write()

    def _write(self) -> None:
        assert self.sock is not None
        if self.tls is not None:
            try:
                self.tls.handshake()
            except OSError as exc:  # ssl.SSLError
                self._close(tls_failure(exc))
                return
            self._wire += self.tls.encrypt(self.out)
        if self._wire:
            try:
                sent = self.sock.send(self._wire)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._close(str(exc) or type(exc).__name__)
                return
            del self._wire[:sent]

    def on_readable(self) -> None:
        assert self.sock is not None
        try:
            data = self.sock.recv(_RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._close(str(exc) or type(exc).__name__)
            return
        if not data:
            self._close("the node closed the connection" + (self._tls_hint() if self.tls is not None else ""))
            return
        if self.tls is not None:
            try:
                data = self.tls.decrypt(data)
            except OSError as exc:  # ssl.SSLError
                self._close(tls_failure(exc))
                return
            self._write()  # the handshake's next bytes, or requests that waited for it
        try:
            for received in self.protocol.receive_data(data):
                if isinstance(received, Answer) and isinstance(received.request_id, int):
                    self.answers[received.request_id] = received.document
                elif refusal(received):
                    self._close(str(received.document["error"]))
                    return
        except CodecError as exc:
            self._close(f"bad response: {exc}")

    def _tls_hint(self) -> str:
        assert self.tls is not None
        if not self.tls.done:
            return " during the TLS handshake"
        if not self.tls.received:
            return " right after the TLS handshake (did it refuse this client's certificate? its log says why)"
        return ""

    def _close(self, reason: str) -> None:
        self.fail(NodeUnreachable(self.node, reason))

    def fail(self, failure: NodeUnreachable) -> None:
        if self.failure is None:
            self.failure = failure
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def close(self) -> None:
        self._close("connection closed")


class SyncClusterClient:
    """Connections to the nodes of one cluster, by node id (a context manager); not thread-safe.

    ``fields`` go with every request: the cluster id and admin token (``Credentials.client_fields``).
    ``sessions``: run commands in a client session (registered on the first command).
    ``tls``: connect over TLS with this client context (``raftnode.security.tls.client_context``).
    """

    def __init__(
        self, addresses: Mapping[str, Address], *, connect_timeout: float = 1.0,
        fields: Mapping[str, Any] | None = None, sessions: bool = True, tls: ssl.SSLContext | None = None,
    ) -> None:
        self.addresses = dict(addresses)
        self.tls = tls
        self.fields = dict(fields) if fields else None
        self.connect_timeout = connect_timeout
        self.core = ClientCore(list(self.addresses), clock=time.monotonic, sessions=sessions)
        self._connections: dict[str, _Connection] = {}

    leader_hint = property(lambda self: self.core.leader_hint, lambda self, node: setattr(self.core, "leader_hint", node))
    session = property(lambda self: self.core.session, lambda self, s: setattr(self.core, "session", s))
    sessions = property(lambda self: self.core.sessions)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        for connection in self._connections.values():
            connection.close()
        self._connections.clear()

    def _connection(self, node: str, now: float) -> _Connection:
        connection = self._connections.get(node)
        if connection is not None and connection.failure is None:
            return connection
        address = address_of(self.addresses, node)
        connection = self._connections[node] = _Connection(node, address, now + self.connect_timeout, self.fields, self.tls)
        return connection

    def connect(self, node: str) -> None:
        """Open the connection to ``node`` if it is not open; raises NodeUnreachable."""
        outcome = self._exchange({node: None}, timeout=self.connect_timeout)[node]
        if isinstance(outcome, ClientError):
            raise outcome

    def call(self, node: str, request: Mapping[str, Any] | wire.Request, *, timeout: float = 5.0) -> dict[str, Any]:
        """One request to one node; raises NodeUnreachable or Timeout."""
        outcome = self.call_each({node: request}, timeout=timeout)[node]
        if isinstance(outcome, ClientError):
            raise outcome
        return outcome

    def call_each(
        self, requests: Mapping[str, Mapping[str, Any] | wire.Request], *, timeout: float = 5.0
    ) -> dict[str, dict[str, Any] | ClientError]:
        """One request to each of several nodes, all at once; waits at most ``timeout`` in all.

        Returns each node's response, or the error it met instead (NodeUnreachable, Timeout;
        a ClientError for a node that is not in the cluster).
        """
        return self._exchange(dict(requests), timeout=timeout)

    def query(self, command: str, *, node: str | None = None, timeout: float = 5.0) -> CommandAnswer:
        """A linearizable read without a log entry (``ClusterClient.query``)."""
        return self.run_command(command, node=node, timeout=timeout, op="query")

    def run_command(
        self, command: str, *, node: str | None = None, timeout: float = 5.0, op: str = "run_command"
    ) -> CommandAnswer:
        """Run ``command`` on the cluster: follow redirects, retry with backoff, stop at ``timeout``.

        Exactly the rules of ``ClusterClient.run_command`` (``CommandPlan``), sessions included.

        Raises:
            NoLeader: no node acted as leader before the deadline.
            Timeout: the deadline passed while the command was in the leader's hands.
            SessionExpired: the cluster forgot the session after the command was first sent.
            ClientError: the node refused the request itself.
        """
        return self._run(self.core.run_command(command, node=node, timeout=timeout, op=op))

    def run_many(self, commands: Sequence[str], *, node: str | None = None, timeout: float = 5.0) -> list[CommandAnswer]:
        """Run ``commands`` as one batch, each answered on its own (``ClusterClient.run_many``)."""
        return self._run(self.core.run_many(commands, node=node, timeout=timeout))

    def query_many(self, commands: Sequence[str], *, node: str | None = None,
                   timeout: float = 5.0) -> list[CommandAnswer]:
        """Linearizable reads of ``commands`` in one request, each answered on its own
        (``ClusterClient.query_many``)."""
        return self._run(self.core.query_many(commands, node=node, timeout=timeout))

    def open_session(self, *, node: str | None = None, timeout: float = 5.0) -> ClientSession:
        """The client's session, registered first (through ``node`` or the leader) if it has none."""
        return self._session(NeedSession(node, time.monotonic(), timeout))

    def _session(self, need: NeedSession) -> ClientSession:
        if self.core.session is None:
            self._run(self.core.register(need.node, need.started, need.timeout))
        assert self.core.session is not None
        return self.core.session

    def _run(self, steps: Steps) -> Any:
        """Do the I/O that ``steps`` ask for, until they end; their value."""
        step = advance(steps)
        while not isinstance(step, Advanced):
            try:
                if isinstance(step, Call):
                    reply: Any = self.call(step.node, step.request, timeout=step.timeout)
                else:
                    reply = time.sleep(step.seconds) if isinstance(step, Pause) else self._session(step)
            except BaseException as exc:  # noqa: BLE001 - thrown into the steps, which decide
                step = advance(steps, error=exc)
            else:
                step = advance(steps, reply)
        return step.value

    # -- the event loop ------------------------------------------------------------------------

    def _exchange(
        self, requests: dict[str, Mapping[str, Any] | wire.Request | None], *, timeout: float
    ) -> dict[str, dict[str, Any] | ClientError]:
        """Send each request (None: only connect) and wait for the answers, all at once."""
        now = time.monotonic()
        deadline = now + timeout
        outcomes: dict[str, dict[str, Any] | ClientError] = {}
        waiting: dict[str, tuple[_Connection, int | None]] = {}
        for node, request in requests.items():
            try:
                connection = self._connection(node, now)
            except ClientError as exc:
                outcomes[node] = exc
                continue
            waiting[node] = (connection, connection.send(request) if request is not None else None)
        with selectors.DefaultSelector() as selector:
            while True:
                now = time.monotonic()
                for node, (connection, request_id) in list(waiting.items()):
                    if not connection.ready and connection.failure is None and now >= connection.connect_by:
                        connection.fail(connect_timeout(node, connection.address, self.connect_timeout))
                    outcome = self._outcome(connection, request_id)
                    if outcome is not None:
                        outcomes[node] = outcome
                        del waiting[node]
                if not waiting:
                    break
                if now >= deadline:
                    for node in waiting:
                        outcomes[node] = call_timeout(node, wire.as_document(requests[node] or {}), timeout)
                    break
                wake = deadline
                registered: list[int] = []
                for connection, _ in waiting.values():
                    if connection.failure is not None or connection.fileno() in registered:
                        continue
                    events = selectors.EVENT_READ
                    if not connection.ready:
                        wake = min(wake, connection.connect_by)
                    if not connection.connected or connection.wants_write:
                        events |= selectors.EVENT_WRITE
                    registered.append(connection.fileno())
                    selector.register(connection.fileno(), events, connection)
                for key, mask in selector.select(max(0.0, wake - now)):
                    connection = key.data
                    if mask & selectors.EVENT_WRITE:
                        connection.on_writable()
                    if mask & selectors.EVENT_READ and connection.failure is None:
                        connection.on_readable()
                for fd in registered:
                    selector.unregister(fd)
        return outcomes

    @staticmethod
    def _outcome(connection: _Connection, request_id: int | None) -> dict[str, Any] | ClientError | None:
        """The answer or error that ``request_id`` met on ``connection``, or None while it waits
        (``request_id`` None: the connection itself, answered by ``{}`` once it is open)."""
        if request_id is None:
            if connection.failure is not None:
                return connection.failure
            return {} if connection.ready else None
        answer = connection.answers.pop(request_id, None)
        if answer is not None:
            return answer
        return connection.failure
