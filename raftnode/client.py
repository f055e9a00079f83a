"""A client for the nodes' client endpoint, shared by raftctl and user programs.

``ClusterClient.run_command`` implements the seed's client side once, correctly: it sends to a
node (the last known leader first), follows redirects, retries with backoff while no leader is
known or a node is unreachable, and gives up at a deadline. The rules themselves live in
``raftnode.clientproto.CommandPlan``, shared with ``raftnode.syncclient.SyncClusterClient``, the
blocking client for one-shot command-line calls; so do the errors, re-exported here.

Commands run in a client session (thesis §6.3) unless ``sessions=False``: the client registers one
on its first command and stamps every command, so the cluster applies each at most once however
often it is resent (after a lost connection, a redirect, a retry). Many commands may be in flight
at once in the one session.

    async with ClusterClient(config.client_addresses()) as client:
        outcome = await client.run_command("incr 5", timeout=5)
        print(outcome.result.result, "answered by", outcome.node)
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import trio

from . import codec
from .clientproto import (
    ClientError,
    ClientSession,
    CommandPlan,
    NodeUnreachable,
    NoLeader,
    SessionExpired,
    Timeout,
    call_timeout,
    connect_timeout,
    request_frame,
    unknown_node,
)
from .config import Address
from .concurrency import unwrapped
from .core.commands import CommandResult
from .streams import FrameWriter

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


@dataclass(frozen=True)
class CommandOutcome:
    """The final answer to a command, the node that gave it, and how many hops it took."""

    result: CommandResult
    node: str
    attempts: int


class Connection:
    """One TCP connection to a node's client endpoint; many requests may be in flight."""

    def __init__(self, node: str, stream: trio.SocketStream, nursery: trio.Nursery, fields: dict[str, Any] | None = None):
        self.node = node
        self.fields = fields
        self._stream = stream
        self._ids = itertools.count(1)
        self._waiting: dict[int, tuple[trio.Event, list[Any]]] = {}
        self._events: trio.MemorySendChannel[dict[str, Any]] | None = None
        self._closed: str | None = None
        self._writer = FrameWriter(stream)
        nursery.start_soon(self._reader)
        nursery.start_soon(self._write)

    async def call(self, request: dict[str, Any]) -> dict[str, Any]:
        """Send ``request`` and wait for its response."""
        if self._closed is not None:
            raise NodeUnreachable(self.node, self._closed)
        request_id = next(self._ids)
        event, box = trio.Event(), []
        self._waiting[request_id] = (event, box)
        frame = request_frame(request, request_id, self.fields)
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
        await self.call({"op": "events"})
        return receive

    async def _write(self) -> None:
        try:
            await self._writer.run()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            self._closed = str(exc) or type(exc).__name__
            for event, _ in self._waiting.values():
                event.set()

    async def _reader(self) -> None:
        decoder = codec.FrameDecoder()
        try:
            async for data in self._stream:
                for frame in decoder.feed(data):
                    document = codec.decode_json(frame.payload)
                    if frame.kind == codec.FrameKind.EVENT:
                        if self._events is not None:
                            self._events.send_nowait(document)
                        continue
                    waiting = self._waiting.get(document.get("id"))
                    if waiting is not None:
                        waiting[1].append(document)
                        waiting[0].set()
            self._closed = "the node closed the connection"
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            self._closed = str(exc) or type(exc).__name__
        except codec.CodecError as exc:
            self._closed = f"bad response: {exc}"
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


class ClusterClient:
    """Connections to the nodes of one cluster, by node id (an async context manager).

    ``fields`` go with every request: the cluster id and admin token (``Credentials.client_fields``).
    ``sessions``: run commands in a client session (registered on the first command).
    """

    def __init__(self, addresses: dict[str, Address], *, connect_timeout: float = 1.0,
                 fields: dict[str, Any] | None = None, sessions: bool = True):
        self.addresses = dict(addresses)
        self.fields = dict(fields) if fields else None
        self.connect_timeout = connect_timeout
        self.leader_hint: str | None = None
        self.sessions = sessions
        self.session: ClientSession | None = None
        self._registering = trio.Lock()
        self._connections: dict[str, Connection] = {}
        self._nursery: trio.Nursery | None = None
        self._nursery_manager: Any = None

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
        address = self.addresses.get(node)
        if address is None:
            raise unknown_node(node, list(self.addresses))
        assert self._nursery is not None, "use ClusterClient as 'async with'"
        with trio.move_on_after(self.connect_timeout) as scope:
            try:
                stream = await trio.open_tcp_stream(address.host, address.port)
            except OSError as exc:
                raise NodeUnreachable(node, exc.strerror or str(exc)) from None
        if scope.cancelled_caught:
            raise connect_timeout(node, address, self.connect_timeout)
        connection = self._connections[node] = Connection(node, stream, self._nursery, self.fields)
        return connection

    async def call(self, node: str, request: dict[str, Any], *, timeout: float = 5.0) -> dict[str, Any]:
        """One request to one node; raises NodeUnreachable or Timeout."""
        with trio.move_on_after(timeout):
            connection = await self.connect(node)
            return await connection.call(request)
        raise call_timeout(node, request, timeout)

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
        started = trio.current_time()
        if not self.sessions or op != "run_command":  # a read changes nothing: no session needed
            return await self._drive(CommandPlan(command, list(self.addresses), node=node, leader_hint=self.leader_hint,
                                                 timeout=timeout, now=trio.current_time(), op=op))
        for _ in range(2):
            session = await self._open_session(node, started, timeout)
            seq = session.begin()
            plan = CommandPlan(command, list(self.addresses), node=node, leader_hint=self.leader_hint,
                               timeout=timeout, now=started, stamp=session.stamp(seq))
            try:
                return await self._drive(plan)
            except SessionExpired:
                if self.session is session:
                    self.session = None
                if plan.attempts > 1:  # an earlier copy may have been applied
                    raise
            finally:
                session.end(seq)
        raise SessionExpired(f"the cluster forgot a session it had just opened; {command!r} was not applied")

    async def open_session(self, *, node: str | None = None, timeout: float = 5.0) -> ClientSession:
        """The client's session, registered first (through ``node`` or the leader) if it has none.

        Raises NoLeader, Timeout or ClientError as ``run_command`` does.
        """
        return await self._open_session(node, trio.current_time(), timeout)

    async def _open_session(self, node: str | None, started: float, timeout: float) -> ClientSession:
        """The client's session, registered first if it has none."""
        async with self._registering:
            if self.session is None:
                plan = CommandPlan("register a session", list(self.addresses), node=node,
                                   leader_hint=self.leader_hint, timeout=timeout, now=started, register=True)
                outcome = await self._drive(plan)
                if outcome.result.error is not None or not isinstance(outcome.result.result, int):
                    raise ClientError(f"{outcome.node} could not register a session: {outcome.result.error}")
                self.session = ClientSession(outcome.result.result)
            return self.session

    async def _drive(self, plan: CommandPlan) -> CommandOutcome:
        while True:
            target, request, wait = plan.next_request(trio.current_time())
            try:
                response = await self.call(target, request, timeout=wait)
            except (NodeUnreachable, Timeout) as exc:
                plan.unreachable(exc)
            else:
                final = plan.answer(response)
                if plan.learned is not None:
                    self.leader_hint = plan.learned
                if final is not None:
                    result = CommandResult(
                        result=final.get("result"),
                        error=final.get("error"),
                        redirect=final.get("redirect"),
                        retry=bool(final.get("retry")),
                        timeout_expired=bool(final.get("timeout_expired")),
                        index=final.get("index"),
                    )
                    return CommandOutcome(result=result, node=target, attempts=plan.attempts)
            pause = plan.pause(trio.current_time())
            if pause is not None:
                await trio.sleep(pause)
