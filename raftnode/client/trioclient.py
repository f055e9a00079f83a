"""A client for the nodes' client endpoint, shared by raftctl and user programs: the trio driver
of ``raftnode.client.clientcore``.

``ClusterClient.run_command`` sends to a node (the last known leader first), follows redirects,
retries with backoff while no leader is known or a node is unreachable, and gives up at a
deadline. The rules live in ``raftnode.client.clientcore.ClientCore`` (steps without I/O), shared with
``raftnode.client.SyncClusterClient``, the blocking client for one-shot command-line calls;
so do the errors, re-exported here. This module only does the I/O: trio sockets, one reader task
per connection, many requests in flight.

Commands run in a client session (thesis §6.3) unless ``sessions=False``: the client registers one
on its first command and stamps every command, so the cluster applies each at most once however
often it is resent (after a lost connection, a redirect, a retry). Many commands may be in flight
at once in the one session.

    async with ClusterClient(config.client_addresses()) as client:
        outcome = await client.run_command("incr 5", timeout=5)
        print(outcome.result.result, "answered by", outcome.node)
"""

from __future__ import annotations

import math
import ssl
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

import trio

from ..concurrency import unwrapped
from ..config import Address
from ..wire import requests as wire
from ..wire.framing import CodecError
from ..wire.streams import FrameWriter
from .clientcore import Advanced, Answer, Call, ClientConnection, ClientCore, CommandOutcome, NeedSession, Pause, Steps, advance, refusal
from .clientproto import (
    ClientError,
    ClientSession,
    NodeUnreachable,
    NoLeader,
    SessionExpired,
    Timeout,
    address_of,
    call_timeout,
    connect_timeout,
    tls_failure,
)

__all__ = [
    "ClientError",
    "ClusterClient",
    "CommandOutcome",
    "Connection",
    "NoLeader",
    "NodeUnreachable",
    "SessionExpired",
    "Timeout",
]


class _Refused(Exception):
    """The node refused the connection with an answer to no request (``clientcore.refusal``)."""


class Connection:
    """One TCP connection to a node's client endpoint; many requests may be in flight."""

    def __init__(self, node: str, stream: trio.abc.Stream, nursery: trio.Nursery, fields: dict[str, Any] | None = None):
        self.node = node
        self.fields = fields
        self._protocol = ClientConnection(node, fields)
        self._stream = stream
        self._waiting: dict[int, tuple[trio.Event, list[Any]]] = {}
        self._events: trio.MemorySendChannel[dict[str, Any]] | None = None
        self._closed: str | None = None
        self._writer = FrameWriter(stream)
        nursery.start_soon(self._reader)
        nursery.start_soon(self._write)

    async def call(self, request: Mapping[str, Any] | wire.Request) -> dict[str, Any]:
        """Send ``request`` and wait for its response."""
        if self._closed is not None:
            raise NodeUnreachable(self.node, self._closed)
        request_id, frame = self._protocol.send(wire.as_document(request))
        event, box = trio.Event(), []
        self._waiting[request_id] = (event, box)
        try:
            self._writer.write_soon(frame)
            self._writer.flush()  # straight to the socket when it is idle: no task switch
            await event.wait()
        finally:
            self._waiting.pop(request_id, None)
        if not box:
            raise NodeUnreachable(self.node, self._closed or "connection closed")
        return box[0]

    async def events(self) -> trio.MemoryReceiveChannel[dict[str, Any]]:
        """Subscribe this connection to the node's events (use a dedicated connection)."""
        send, receive = trio.open_memory_channel[dict[str, Any]](math.inf)
        self._events = send
        await self.call(wire.Subscribe())
        return receive

    async def _write(self) -> None:
        try:
            await self._writer.run()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            self._closed = str(exc) or type(exc).__name__
            for event, _ in self._waiting.values():
                event.set()

    async def _reader(self) -> None:
        try:
            async for data in self._stream:
                for received in self._protocol.receive_data(data):
                    if refusal(received):
                        raise _Refused(str(received.document["error"]))
                    if not isinstance(received, Answer):
                        if self._events is not None:
                            self._events.send_nowait(received.document)
                        continue
                    waiting = self._waiting.get(received.request_id)
                    if waiting is not None:
                        waiting[1].append(received.document)
                        waiting[0].set()
            self._closed = "the node closed the connection"
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            self._closed = str(exc) or type(exc).__name__
        except CodecError as exc:
            self._closed = f"bad response: {exc}"
        except _Refused as exc:
            self._closed = str(exc)
        finally:
            self._close_writer(self._closed or "connection closed")
            for event, _ in self._waiting.values():
                event.set()
            if self._events is not None:
                self._events.close()
            with trio.CancelScope(shield=True):
                await self._stream.aclose()  # the writer task ends with it; no socket left behind

    def _close_writer(self, reason: str) -> None:
        """No request is written from now on: the writer writes to the socket's file descriptor,
        which the system may hand to another socket once this one is closed."""
        if self._closed is None:
            self._closed = reason
        self._writer.closed = True

    async def aclose(self) -> None:
        self._close_writer("connection closed")
        await self._stream.aclose()


async def _secure(node: str, stream: trio.SocketStream, context: ssl.SSLContext, host: str) -> trio.SSLStream:
    """``stream`` under TLS to ``node`` at ``host``; NodeUnreachable naming the reason if the handshake fails."""
    secure = trio.SSLStream(stream, context, server_hostname=host)
    try:
        await secure.do_handshake()
    except trio.BrokenResourceError as exc:
        with trio.CancelScope(shield=True):
            await stream.aclose()
        raise NodeUnreachable(node, tls_failure(exc.__cause__ or exc)) from None
    except BaseException:
        with trio.CancelScope(shield=True):
            await stream.aclose()
        raise
    return secure


class ClusterClient:
    """Connections to the nodes of one cluster, by node id (an async context manager).

    ``fields`` go with every request: the cluster id and admin token (``Credentials.client_fields``).
    ``sessions``: run commands in a client session (registered on the first command).
    ``tls``: connect over TLS with this client context (``raftnode.security.tls.client_context``).
    """

    def __init__(self, addresses: dict[str, Address], *, connect_timeout: float = 1.0,
                 fields: dict[str, Any] | None = None, sessions: bool = True, tls: ssl.SSLContext | None = None):
        self.addresses = dict(addresses)
        self.tls = tls
        self.fields = dict(fields) if fields else None
        self.connect_timeout = connect_timeout
        self.core = ClientCore(list(self.addresses), clock=trio.current_time, sessions=sessions)
        self._registering = trio.Lock()
        self._connections: dict[str, Connection] = {}
        self._nursery: trio.Nursery | None = None
        self._nursery_manager: Any = None

    leader_hint = property(lambda self: self.core.leader_hint, lambda self, node: setattr(self.core, "leader_hint", node))
    session = property(lambda self: self.core.session, lambda self, s: setattr(self.core, "session", s))
    sessions = property(lambda self: self.core.sessions)

    async def __aenter__(self) -> ClusterClient:
        self._nursery_manager = trio.open_nursery()
        self._nursery = await self._nursery_manager.__aenter__()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> bool | None:
        assert self._nursery is not None
        self._nursery.cancel_scope.cancel()
        with unwrapped():  # the caller's own error, not a group around it
            return await self._nursery_manager.__aexit__(exc_type, exc, tb)

    async def connect(self, node: str) -> Connection:
        """The open connection to ``node``, opening it if needed; raises NodeUnreachable."""
        connection = self._connections.get(node)
        if connection is not None and connection._closed is None:
            return connection
        address = address_of(self.addresses, node)
        assert self._nursery is not None, "use ClusterClient as 'async with'"
        with trio.move_on_after(self.connect_timeout) as scope:
            try:
                stream = await trio.open_tcp_stream(address.host, address.port)
            except OSError as exc:
                raise NodeUnreachable(node, exc.strerror or str(exc)) from None
            if self.tls is not None:
                stream = await _secure(node, stream, self.tls, address.host)
        if scope.cancelled_caught:
            raise connect_timeout(node, address, self.connect_timeout)
        connection = self._connections[node] = Connection(node, stream, self._nursery, self.fields)
        return connection

    async def call(self, node: str, request: Mapping[str, Any] | wire.Request, *, timeout: float = 5.0) -> dict[str, Any]:
        """One request to one node; raises NodeUnreachable or Timeout."""
        with trio.move_on_after(timeout):
            connection = await self.connect(node)
            return await connection.call(request)
        raise call_timeout(node, wire.as_document(request), timeout)

    async def call_each(
        self, requests: Mapping[str, Mapping[str, Any] | wire.Request], *, timeout: float = 5.0
    ) -> dict[str, dict[str, Any] | ClientError]:
        """One request to each of several nodes, all at once (``SyncClusterClient.call_each``)."""
        outcomes: dict[str, dict[str, Any] | ClientError] = {}

        async def ask(node: str, request: Mapping[str, Any] | wire.Request) -> None:
            try:
                outcomes[node] = await self.call(node, request, timeout=timeout)
            except ClientError as exc:
                outcomes[node] = exc

        async with trio.open_nursery() as nursery:
            for node, request in requests.items():
                nursery.start_soon(ask, node, request)
        return {node: outcomes[node] for node in requests}

    async def query(self, command: str, *, node: str | None = None, timeout: float = 5.0) -> CommandOutcome:
        """A linearizable read (e.g. ``get``) without a log entry, served by ``node`` if given
        (a follower asks the leader for a read index), else by the leader; as ``run_command``."""
        return await self.run_command(command, node=node, timeout=timeout, op="query")

    async def run_command(
        self, command: str, *, node: str | None = None, timeout: float = 5.0, op: str = "run_command"
    ) -> CommandOutcome:
        """Run ``command`` on the cluster: follow redirects, retry with backoff, stop at ``timeout``.

        Returns the first final answer (a result, an error, or a timeout from the leader). In a
        session, resending is safe: the command is applied at most once.

        Raises:
            NoLeader: no node acted as leader before the deadline.
            Timeout: the deadline passed while the command was in the leader's hands.
            SessionExpired: the cluster forgot the session after the command was first sent
                (its outcome is unknown; the next command opens a new session).
        """
        return await self._run(self.core.run_command(command, node=node, timeout=timeout, op=op))

    async def run_many(
        self, commands: Sequence[str], *, node: str | None = None, timeout: float = 5.0
    ) -> list[CommandOutcome]:
        """Run ``commands`` (at most ``wire.MAX_BATCH_COMMANDS``) as one batch: one request, which
        the leader proposes as one batch, and one CommandOutcome per command, in order. A
        command answered with a redirect or retry is sent again with the others still unsettled;
        in a session each is applied at most once however often it is sent.

        Raises as ``run_command`` does; Timeout if the leader timed out on any of the commands
        (the others' outcomes are then unknown to the caller, though each is applied at most once).
        """
        return await self._run(self.core.run_many(commands, node=node, timeout=timeout))

    async def query_many(
        self, commands: Sequence[str], *, node: str | None = None, timeout: float = 5.0
    ) -> list[CommandOutcome]:
        """Linearizable reads of ``commands`` (at most ``wire.MAX_BATCH_COMMANDS``) in one request,
        served by ``node`` if given, else by the leader, as ``query`` is; one CommandOutcome per
        command, in order (``outcome.result`` is its CommandResult). Redirects and retries are
        followed for the reads still unsettled, as ``run_many`` does; raises as ``run_many``."""
        return await self._run(self.core.query_many(commands, node=node, timeout=timeout))

    async def open_session(self, *, node: str | None = None, timeout: float = 5.0) -> ClientSession:
        """The client's session, registered first (through ``node`` or the leader) if it has none.

        Raises NoLeader, Timeout or ClientError as ``run_command`` does.
        """
        return await self._session(NeedSession(node, trio.current_time(), timeout))

    async def _session(self, need: NeedSession) -> ClientSession:
        async with self._registering:  # one registration at a time
            if self.core.session is None:
                await self._run(self.core.register(need.node, need.started, need.timeout))
            assert self.core.session is not None
            return self.core.session

    async def _run(self, steps: Steps) -> Any:
        """Do the I/O that ``steps`` ask for, until they end; their value."""
        step = advance(steps)
        while not isinstance(step, Advanced):
            try:
                if isinstance(step, Call):
                    reply: Any = await self.call(step.node, step.request, timeout=step.timeout)
                else:
                    reply = await (trio.sleep(step.seconds) if isinstance(step, Pause) else self._session(step))
            except BaseException as exc:  # noqa: BLE001 - thrown into the steps, which decide
                step = advance(steps, error=exc)
            else:
                step = advance(steps, reply)
        return step.value
