"""The client and admin endpoint of a node: JSON requests in length-prefixed frames over TCP.

Every request is a JSON object with ``op`` and an optional ``id`` that the response echoes, so a
client may keep many requests in flight on one connection (each is served in its own task). The
requests are ``raftnode.wire``'s records: a request is decoded there (strictly) and served by the
handler of its record type (``_HANDLERS``); a well-formed command or query takes a faster path
that checks the same fields in place (``_submit``), and the queries read together from one
connection go to the node as one read per (command, timeout) (``raftnode.readgroups``).

| op | request fields | response |
|---|---|---|
| ``run_command`` | ``command``, ``timeout`` (s); in a session ``session``, ``seq``, ``ack`` | the seed's CommandResult fields, ``node``, ``leader`` |
| ``run_many`` | ``commands`` (at most ``wire.MAX_BATCH_COMMANDS``), ``timeout``; in a session ``session``, ``seqs``, ``ack`` | ``results``: each command's CommandResult fields, in order; ``node``, ``leader`` |
| ``query`` | ``command``, ``timeout`` (s) | the same; a linearizable read served here without the log |
| ``register_session`` | ``timeout`` (s) | as ``run_command``; ``result`` is the new session's id |
| ``status`` | | the node's status (``status --json`` fields) |
| ``events`` | | then a stream of EVENT frames until the client hangs up |
| ``recent_events`` | | ``events``: the node's recent events (oldest first), without subscribing |
| ``set_faults`` | ``faults``: partitioned_from, drop_pct, delay_ms, jitter_ms, duplicate_pct | ``faults`` |
| ``clear_faults`` | | ``faults`` |
| ``transfer`` | ``target`` | ``ok`` |
| ``snapshot`` | | ``index`` |
| ``stop`` | | ``ok``, then the node stops |

A malformed request gets ``{"ok": false, "error": ...}`` naming what is wrong; a malformed frame
drops the connection. Neither disturbs the node.

Hostile input. A command longer than ``max_command_bytes`` (utf-8) is refused by name; an answer
longer than ``max_command_bytes`` plus headroom becomes an error answer; a request frame longer
than that closes the connection. No encoding or decoding error leaves a connection's tasks. The
endpoint holds at most ``max_connections`` connections; one that sends no complete request within
``handshake_timeout``, or has nothing in progress and sends nothing for ``idle_timeout``, is
closed; all partial frames together hold at most ``max_buffered_bytes``.

With ``tls`` (the node's server context, ``raftnode.tls``) every connection must complete a TLS
handshake with a client certificate of the cluster CA within ``handshake_timeout`` before its
first byte is read as a frame; a plaintext client or one without such a certificate is closed.

With ``credentials`` (as ``raftnode`` runs it): a request naming another ``cluster_id`` closes
its connection unanswered, and the admin ops (``wire.ADMIN_OPS``) need ``token`` = the admin token;
with ``client_auth`` every other request needs the client token (or the admin token).
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import trio

from . import codec, framing, wire
from .config import Address, NodeConfig, check_node_id, parse_address, parse_context
from .core.commands import CommandResult
from .core.errors import RaftError
from .credentials import Credentials
from .readgroups import ReadGroups
from .runtime import NodeNotRunning, RaftNode
from .streams import FrameWriter
from .transport.faults import Faults, FaultyTransport

log = logging.getLogger("raftnode.service")

#: The first byte of a TLS client's first record (a handshake record): anything else is plaintext.
_TLS_HANDSHAKE_RECORD = 0x16
#: Events queued for a client that reads too slowly are dropped beyond this many.
_MAX_EVENT_BACKLOG = 1000
#: Requests a connection's reader handles before it lets other tasks run (the node's among them).
_FRAMES_PER_TURN = 64
#: What a request frame and an answer may hold beyond ``max_command_bytes``: the other fields.
REQUEST_HEADROOM = 64 * 1024


class Unauthorized(Exception):
    """An admin request without the admin token; the message says what it needs."""


class RefusedConnection(Exception):
    """The connection is closed without an answer (another cluster's request, a timeout, too much buffered)."""


class BadRequest(Exception):
    """The request is not one this endpoint serves; the message says why."""


class _ConnectionState:
    """What the endpoint tracks of one connection: requests in progress, bytes buffered, and the
    queries read and not yet handed to the node (``raftnode.readgroups``)."""

    __slots__ = ("in_flight", "buffered", "reads")

    def __init__(self) -> None:
        self.in_flight = 0
        self.buffered = 0
        self.reads = ReadGroups()


class ClientService:
    """Args:
    node: the node served.
    listen: the client address.
    faults: the node's fault layer, for ``set_faults``.
    max_command_bytes: the longest command (utf-8 bytes); frames and answers get ``REQUEST_HEADROOM`` more.
    max_connections: connections held at once; more are closed at once.
    handshake_timeout / idle_timeout: seconds (see the module documentation).
    max_buffered_bytes: partial request frames of all connections together (default: 8 frames).
    credentials: the cluster id and admin token to require; None serves everyone (tests).
    client_auth: client requests need ``credentials.client_token`` (or the admin token) too.
    tls: serve over TLS with this server context (a client certificate required); None: plain TCP.
    """

    def __init__(
        self,
        node: RaftNode,
        listen: Address,
        *,
        faults: FaultyTransport | None = None,
        max_command_bytes: int = 1 << 20,
        max_connections: int = 256,
        handshake_timeout: float = 5.0,
        idle_timeout: float = 60.0,
        max_buffered_bytes: int | None = None,
        credentials: Credentials | None = None,
        client_auth: bool = False,
        on_stop: Any = None,
        tls: ssl.SSLContext | None = None,
    ):
        self.node = node
        self.listen = listen
        self.faults = faults
        self.max_command_bytes = max_command_bytes
        self.max_frame_bytes = max_command_bytes + REQUEST_HEADROOM
        self._max_command_chars = max_command_bytes // 4  # surely within max_command_bytes as utf-8
        self.max_connections = max_connections
        self.handshake_timeout = handshake_timeout
        self.idle_timeout = idle_timeout
        self.max_buffered_bytes = max_buffered_bytes if max_buffered_bytes is not None else 8 * self.max_frame_bytes
        self.credentials = credentials
        #: The tokens a client request may carry under client_auth (None: client requests are open).
        self._client_tokens = (
            (credentials.client_token.encode(), credentials.admin_token.encode())
            if credentials is not None and client_auth
            else None
        )
        self.on_stop = on_stop or node.stop
        self.tls = tls
        self.stats = {
            "client_connections": 0,
            "bad_client_frames": 0,
            "bad_requests": 0,
            "refused_client_connections": 0,
            "unsendable_answers": 0,
        }
        self._connections = 0
        self._buffered = 0  # bytes of partial request frames, all connections together
        self._dirty: set[FrameWriter] = set()  # writers holding answers to flush after a batch
        self._json_names: dict[str | None, bytes] = {}  # node ids as JSON, for _success_frame
        node.add_flush_handler(self._flush)

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Serve clients until cancelled; raises OSError if the address is taken."""
        try:
            listeners = await trio.open_tcp_listeners(self.listen.port, host=self.listen.host)
        except OSError as exc:
            raise OSError(exc.errno, f"cannot listen on client address {self.listen}: {exc.strerror}") from None
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(trio.serve_listeners, self._serve_connection, listeners))
            task_status.started()

    async def _serve_connection(self, stream: trio.SocketStream) -> None:
        if self._connections >= self.max_connections:
            self.stats["refused_client_connections"] += 1
            log.debug("%s: refused a client connection: %d are open", self.node.id, self._connections)
            with trio.CancelScope(shield=True):
                await stream.aclose()
            return
        self._connections += 1
        try:
            secure = await self._secure(stream)
            if secure is not None:
                await self._serve(secure)
        finally:
            self._connections -= 1

    async def _secure(self, stream: trio.SocketStream) -> trio.abc.Stream | None:
        """``stream`` under TLS once its handshake is done (as it is without ``tls``); None, and
        the connection closed, if the client does not complete one in time with a valid certificate."""
        if self.tls is None:
            return stream
        secure = trio.SSLStream(stream, self.tls, server_side=True)
        with trio.move_on_after(self.handshake_timeout):
            try:
                first = await stream.socket.recv(1, socket.MSG_PEEK)
                if first and first[0] != _TLS_HANDSHAKE_RECORD:
                    await self._refuse_plaintext(stream)
                else:
                    await secure.do_handshake()
                    return secure
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                from .tls import failure_reason

                log.info("%s: refused a client connection: TLS handshake failed: %s", self.node.id, failure_reason(exc))
        self.stats["refused_client_connections"] += 1
        with trio.CancelScope(shield=True):
            await stream.aclose()
        return None

    async def _serve(self, stream: trio.abc.Stream) -> None:
        self.stats["client_connections"] += 1
        decoder = codec.FrameDecoder(max_frame_bytes=self.max_frame_bytes)
        writer = FrameWriter(stream)
        state = _ConnectionState()
        async with _bounded_close(stream), trio.open_nursery() as nursery:
            nursery.start_soon(_quietly, writer.run)
            node = self.node
            checkpoint = trio.lowlevel.checkpoint
            deadline = trio.current_time() + self.handshake_timeout
            greeted = False
            try:
                while True:
                    with trio.move_on_at(deadline) as waiting:
                        data = await stream.receive_some()
                    if waiting.cancelled_caught:
                        if state.in_flight:
                            deadline = trio.current_time() + self.idle_timeout
                            continue
                        limit = self.idle_timeout if greeted else self.handshake_timeout
                        raise RefusedConnection(f"no complete request within {limit:g} s")
                    if not data:
                        break
                    frames = decoder.feed(data)
                    self._account(state, decoder.buffered)
                    if frames:
                        greeted = True
                        deadline = trio.current_time() + self.idle_timeout
                    for count, frame in enumerate(frames, 1):
                        if frame.kind != codec.FrameKind.CLIENT_REQUEST:
                            raise codec.CodecError(f"expected a CLIENT_REQUEST frame, got {frame.kind.name}")
                        request = codec.decode_json(frame.payload, max_bytes=self.max_frame_bytes)
                        if self.credentials is not None:
                            self._check_cluster(request)
                        if not self._submit(request, writer, state):
                            state.in_flight += 1
                            nursery.start_soon(self._dispatch, request, writer, state)
                        if count % _FRAMES_PER_TURN == 0:
                            self._ask_reads(writer, state)
                            await checkpoint()  # a chunk holds ~1,000 requests: do not hog the thread
                    self._ask_reads(writer, state)
                    if node.proposals_backlogged():
                        # Enough commands wait for the node: leave the rest in the socket (TCP
                        # pushes back on the client) rather than queue without bound.
                        await node.wait_for_room()
                    if writer.backlog > _FRAMES_PER_TURN and writer.backlog_bytes() > self.max_frame_bytes:
                        raise RefusedConnection(
                            f"the client does not read its answers ({writer.backlog_bytes()} bytes wait)"
                        )
                if decoder.buffered:
                    raise codec.FrameError("the client closed the connection mid-frame")
            except codec.CodecError as exc:
                self.stats["bad_client_frames"] += 1
                log.warning("%s: dropped a client connection: %s", self.node.id, exc)
            except RefusedConnection as exc:
                self.stats["refused_client_connections"] += 1
                log.info("%s: closed a client connection: %s", self.node.id, exc)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                pass
            finally:
                writer.closed = True  # answers still to come are dropped, never written to a reused fd
                self._dirty.discard(writer)
                self._account(state, 0)
            nursery.cancel_scope.cancel()  # the client hung up or misbehaved: stop its requests

    async def _refuse_plaintext(self, stream: trio.SocketStream) -> None:
        """Tell a client that sent a frame instead of a TLS hello why it is refused, in a frame it
        can read: an answer with no id (the clients close the connection with its error)."""
        log.info("%s: refused a plaintext client connection: this node serves TLS only", self.node.id)
        error = (f"node {self.node.id} serves clients over TLS only: the cluster file needs the cluster's [tls] "
                 "table and its client certificate (`raftctl init --tls`)")
        await stream.send_all(codec.encode_frame(codec.FrameKind.CLIENT_RESPONSE,
                                                 codec.encode_json({"ok": False, "error": error, "id": None})))

    def _account(self, state: _ConnectionState, buffered: int) -> None:
        """Note that a connection now holds ``buffered`` bytes of a partial frame; refuse it if all
        connections together would hold more than ``max_buffered_bytes``."""
        grown = buffered - state.buffered
        if grown:
            state.buffered = buffered
            self._buffered += grown
            if grown > 0 and self._buffered > self.max_buffered_bytes:
                raise RefusedConnection(
                    f"client connections hold {self._buffered} bytes of partial requests, "
                    f"more than the {self.max_buffered_bytes} allowed"
                )

    def _check_cluster(self, request: dict[str, Any]) -> None:
        """A request naming another cluster is never answered."""
        assert self.credentials is not None
        cluster_id = request.get("cluster_id")
        if cluster_id is not None and cluster_id != self.credentials.cluster_id:
            raise RefusedConnection(f"a request for cluster {str(cluster_id)[:40]!r}, this is {self.credentials.cluster_id!r}")

    def _submit(self, request: dict[str, Any], writer: FrameWriter, state: _ConnectionState) -> bool:
        """The hot path: a well-formed run_command or query goes to the node without a task of its
        own; its answer is queued on the connection from the node's task and flushed after the
        batch. Returns False for anything else (served by ``_dispatch`` in a task)."""
        op = request.get("op")
        if op == "run_many":
            return self._submit_many(request, writer, state)
        if (op != "run_command" and op != "query") or self.node.raft is None:
            return False
        if self._client_tokens is not None and not self._client_token_ok(request):
            return False  # _dispatch answers why
        command = request.get("command")
        timeout = request.get("timeout", 5.0)
        if not isinstance(command, str) or not command.strip() or len(command) > self._max_command_chars:
            return False  # _run_command says what is wrong (or measures a long one exactly)
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not 0 < timeout <= wire.MAX_TIMEOUT:
            return False
        request_id = request.get("id")
        if op == "query":  # a query has no session stamp (wire.Query ignores one)
            state.in_flight += 1
            state.reads.add(command, float(timeout), request_id)  # asked with its group: _ask_reads
            return True
        try:
            session = wire.stamp_of(request)
        except wire.WireError:
            return False

        def answer(result: CommandResult) -> None:
            state.in_flight -= 1
            frame = self._success_frame(result, request_id) if result.ok else None
            if frame is None:
                response = self._command_response(result)
                response["id"] = request_id
                frame = self._frame(codec.FrameKind.CLIENT_RESPONSE, response)
            writer.write_soon(frame)
            self._dirty.add(writer)

        state.in_flight += 1
        self.node.submit_command(command, answer, timeout=float(timeout), session=session)
        if self._dirty:  # answered at once (a follower's redirect, a retry): not from the node's task
            self._flush()
        return True

    def _submit_many(self, request: dict[str, Any], writer: FrameWriter, state: _ConnectionState) -> bool:
        """A well-formed run_many: its commands go to the node as one batch; one answer frame
        carries each command's own outcome once the last has one. Returns False for a request that
        is not one (or lacks the client token): ``_dispatch`` says what is wrong."""
        if self._client_tokens is not None and not self._client_token_ok(request):
            return False
        try:
            record = wire.decode_request(request)
        except wire.WireError:
            return False
        assert isinstance(record, wire.RunMany)
        request_id = request.get("id")

        def done(results: list[CommandResult]) -> None:
            state.in_flight -= 1
            frame = self._batch_frame(results, request_id)
            if frame is None:
                frame = self._frame(codec.FrameKind.CLIENT_RESPONSE, self._batch_response(results, request_id))
            writer.write_soon(frame)
            self._dirty.add(writer)

        batch = BatchAnswer(len(record.commands), done)
        stamps = record.stamps
        state.in_flight += 1
        positions = []  # of the commands fit to propose
        for position, command in enumerate(record.commands):
            try:
                self._command(command, wire.RunMany.OP)
                positions.append(position)
            except BadRequest as exc:
                batch.set(position, CommandResult(error=str(exc)))
        if len(positions) == len(record.commands):
            self.node.submit_commands(record.commands, batch.set, timeout=record.timeout, stamps=stamps)
        elif positions:
            self.node.submit_commands(
                [record.commands[p] for p in positions], lambda at, result: batch.set(positions[at], result),
                timeout=record.timeout, stamps=None if stamps is None else [stamps[p] for p in positions])
        if self._dirty:  # answered at once (a follower's redirects): not from the node's task
            self._flush()
        return True

    def _batch_frame(self, results: list[CommandResult], request_id: Any) -> bytes | None:
        """The answer to a run_many whose commands were all applied, formatted without a dict per
        command (the JSON ``_batch_response`` makes); None for anything else (the general path)."""
        rid = _json_scalar(request_id)
        if rid is None:
            return None
        parts = []
        for result in results:
            value = _json_scalar(result.result) if result.ok else None
            if value is None or type(result.index) is not int:
                return None
            parts.append(_BATCH_RESULT % (value, result.index))
        raft = self.node.raft
        names = self._json_names
        leader = raft.leader if raft else None
        node_json = names.get(self.node.id) or names.setdefault(self.node.id, _json_scalar(self.node.id))
        leader_json = names.get(leader) or names.setdefault(leader, _json_scalar(leader))
        payload = _BATCH % (b",".join(parts), node_json, leader_json, rid)
        if len(payload) > self.max_frame_bytes - 2:
            return None
        return _RESPONSE_HEAD.pack(len(payload) + 2, codec.PROTOCOL_VERSION, codec.FrameKind.CLIENT_RESPONSE) + payload

    def _batch_response(self, results: list[CommandResult], request_id: Any) -> dict[str, Any]:
        """The answer to a run_many: each command's outcome (``wire.RunMany``), in order."""
        raft = self.node.raft
        return {"ok": True, "results": [_result_document(result) for result in results], "node": self.node.id,
                "leader": raft.leader if raft else None, "id": request_id}

    def _ask_reads(self, writer: FrameWriter, state: _ConnectionState) -> None:
        """Hand the connection's queries read so far to the node, one read per group; the answer
        goes to every request of the group (``raftnode.readgroups``)."""
        if not state.reads:
            return
        for command, timeout, ids in state.reads.take():
            self.node.submit_query(command, partial(self._answer_reads, ids, writer, state), timeout=timeout)
        if self._dirty:  # answered at once (a follower's redirect, a retry): not from the node's task
            self._flush()

    def _answer_reads(self, ids: list[Any], writer: FrameWriter, state: _ConnectionState, result: CommandResult) -> None:
        state.in_flight -= len(ids)
        prefix = self._success_prefix(result) if result.ok else None
        write, limit = writer.write_soon, self.max_frame_bytes
        for request_id in ids:
            frame = _with_id(prefix, request_id, limit) if prefix is not None else None
            if frame is None:
                response = self._command_response(result)
                response["id"] = request_id
                frame = self._frame(codec.FrameKind.CLIENT_RESPONSE, response)
            write(frame)
        self._dirty.add(writer)

    def _frame(self, kind: codec.FrameKind, document: dict[str, Any]) -> bytes:
        """``document`` as a frame; an error answer instead if it cannot be encoded or is too long."""
        try:
            return codec.encode_frame(kind, codec.encode_json(document, max_bytes=self.max_frame_bytes - 2))
        except codec.CodecError as exc:
            self.stats["unsendable_answers"] += 1
            log.warning("%s: an answer could not be sent: %.300s", self.node.id, exc)
            request_id = document.get("id")
            fallback = {
                "ok": False,
                "error": f"the answer could not be sent: {str(exc)[:300]} "
                f"(answers are bounded by cluster.max_command_bytes = {self.max_command_bytes} plus {REQUEST_HEADROOM})",
                "id": request_id if _json_scalar(request_id) is not None and len(str(request_id)) <= 256 else None,
            }
            return codec.encode_frame(kind, codec.encode_json(fallback))

    def _flush(self) -> None:
        if self._dirty:
            dirty, self._dirty = self._dirty, set()
            for writer in dirty:
                writer.flush()

    async def _dispatch(self, request: dict[str, Any], writer: FrameWriter, state: _ConnectionState) -> None:
        request_id = request.get("id")
        op = request.get("op")
        try:
            if isinstance(op, str) and op in wire.ADMIN_OPS and self.credentials is not None:
                self._check_admin(op, request)
            elif self._client_tokens is not None and not self._client_token_ok(request):
                raise Unauthorized(
                    f"{str(op)[:40]} needs the client token (client_auth is on; the client_token of the "
                    "cluster's secrets.toml in its state_dir)"
                )
            try:
                record = wire.decode_request(request)
            except wire.WireError as exc:
                raise BadRequest(str(exc)) from None
            if isinstance(record, wire.Subscribe):
                await self._stream_events(request_id, writer)
                return
            response = await _HANDLERS[type(record)](self, record)
        except BadRequest as exc:
            self.stats["bad_requests"] += 1
            response = {"ok": False, "error": str(exc)}
        except Unauthorized as exc:
            self.stats["unauthorized_requests"] = self.stats.get("unauthorized_requests", 0) + 1
            log.warning("%s: refused an admin request: %s", self.node.id, exc)
            response = {"ok": False, "error": str(exc), "unauthorized": True}
        except RaftError as exc:
            response = {"ok": False, "error": str(exc), "leader": self.node.raft.leader if self.node.raft else None}
        except TimeoutError as exc:
            response = {"ok": False, "error": str(exc), "timeout_expired": True}
        except NodeNotRunning as exc:
            # The endpoint listens before the node has loaded its storage (or after it stopped):
            # answer instead of letting the error take the whole process down.
            response = {"ok": False, "error": str(exc), "retry": True}
        except Exception as exc:  # noqa: BLE001 - no request may take the node down; say what failed
            log.exception("%s: serving %.40r failed", self.node.id, op)
            response = {"ok": False, "error": f"the node failed to serve {str(op)[:40]!r}: {type(exc).__name__}: {str(exc)[:300]}"}
        finally:
            state.in_flight -= 1
        response["id"] = request_id
        writer.write(self._frame(codec.FrameKind.CLIENT_RESPONSE, response))

    def _client_token_ok(self, request: dict[str, Any]) -> bool:
        assert self._client_tokens is not None
        token = request.get("token")
        if not isinstance(token, str):
            return False
        given = token.encode("utf-8", "surrogatepass")
        return any([hmac.compare_digest(given, expected) for expected in self._client_tokens])

    def _check_admin(self, op: str, request: dict[str, Any]) -> None:
        assert self.credentials is not None
        token = request.get("token")
        expected = self.credentials.admin_token.encode()
        if not isinstance(token, str) or not hmac.compare_digest(token.encode("utf-8", "surrogatepass"), expected):
            what = "a wrong admin token" if isinstance(token, str) else "no admin token"
            raise Unauthorized(
                f"{op} needs the admin token and the request carried {what} "
                "(the admin_token of the cluster's secrets.toml in its state_dir; raftctl sends it)"
            )

    async def _stream_events(self, request_id: Any, writer: FrameWriter) -> None:
        events = self.node.subscribe()
        writer.write(self._frame(codec.FrameKind.CLIENT_RESPONSE, {"id": request_id, "ok": True}))
        async with events:
            async for event in events:
                if writer.backlog > _MAX_EVENT_BACKLOG:
                    self.stats["events_dropped_slow_client"] = self.stats.get("events_dropped_slow_client", 0) + 1
                    continue
                writer.write(self._frame(codec.FrameKind.EVENT, event.to_dict()))

    # -- ops -----------------------------------------------------------------------------------

    async def _run_command(self, request: wire.RunCommand) -> dict[str, Any]:
        result = await self.node.run_command(
            self._command(request.command, "run_command"), timeout=request.timeout, session=request.stamp)
        return self._command_response(result)

    async def _query(self, request: wire.Query) -> dict[str, Any]:
        result = await self.node.query(self._command(request.command, "query"), timeout=request.timeout)
        return self._command_response(result)

    def _command(self, command: str, op: str) -> str:
        """The request's command; BadRequest if it is empty or over max_command_bytes."""
        if not command.strip():
            raise BadRequest(f"{op} needs a non-empty string 'command'")
        if len(command) > self._max_command_chars:
            size = len(command.encode("utf-8", "surrogatepass"))
            if size > self.max_command_bytes:
                raise BadRequest(
                    f"the command is {size} bytes, more than cluster.max_command_bytes = {self.max_command_bytes}"
                )
        return command

    async def _register_session(self, request: wire.RegisterSession) -> dict[str, Any]:
        return self._command_response(await self.node.register_session(timeout=request.timeout))

    def _success_frame(self, result: CommandResult, request_id: Any) -> bytes | None:
        """The answer to an applied command, formatted without building and encoding a dict (the
        same JSON object ``_command_response`` makes, keys in the same order, ``id`` last); None
        for a result or id of a type it does not format (the caller takes the general path)."""
        prefix = self._success_prefix(result)
        return None if prefix is None else _with_id(prefix, request_id, self.max_frame_bytes)

    def _success_prefix(self, result: CommandResult) -> bytes | None:
        """``_success_frame``'s JSON up to the id's value, formatted once for many answers; None
        for a result of a type it does not format."""
        value = _json_scalar(result.result)
        if value is None:
            return None
        raft = self.node.raft
        leader = raft.leader if raft else None
        names = self._json_names
        node_json = names.get(self.node.id) or names.setdefault(self.node.id, _json_scalar(self.node.id))
        leader_json = names.get(leader) or names.setdefault(leader, _json_scalar(leader))
        index = result.index
        return _SUCCESS % (value, b"null" if index is None else b"%d" % index, node_json, leader_json)

    def _command_response(self, result: CommandResult) -> dict[str, Any]:
        raft = self.node.raft
        return {
            "ok": result.ok,
            "result": _jsonable(result.result),
            "error": result.error,
            "redirect": result.redirect,
            "retry": result.retry,
            "timeout_expired": result.timeout_expired,
            "index": result.index,
            "node": self.node.id,
            "leader": raft.leader if raft else None,
        }

    async def _status(self, request: wire.Status) -> dict[str, Any]:
        status = self.node.status().to_dict()
        status["stats"].update(self.stats)
        status.update(
            ok=True,
            node=self.node.id,  # "id" in every response is the request's id
            alive=True,
            pid=os.getpid(),
            faults=self.faults.faults.to_dict() if self.faults else None,
            cluster_id=self.credentials.cluster_id if self.credentials else None,
        )
        if request.digest:
            # A digest of the whole state, for checking that nodes agree: costs a snapshot, so only on request.
            status["state_digest"] = self.node.state_digest()
        return status

    async def _recent_events(self, request: wire.RecentEvents) -> dict[str, Any]:
        return {"ok": True, "events": [event.to_dict() for event in self.node.recent_events()]}

    async def _set_faults(self, request: wire.SetFaults) -> dict[str, Any]:
        if self.faults is None:
            raise BadRequest("this node has no fault layer")
        try:
            self.faults.faults = Faults.from_dict(request.faults)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        self.node._emit("fault", f"faults set: {json.dumps(self.faults.faults.to_dict())}")
        return {"ok": True, "faults": self.faults.faults.to_dict()}

    async def _clear_faults(self, request: wire.ClearFaults) -> dict[str, Any]:
        if self.faults is None:
            raise BadRequest("this node has no fault layer")
        self.faults.faults = Faults()
        self.node._emit("fault", "faults cleared")
        return {"ok": True, "faults": self.faults.faults.to_dict()}

    async def _transfer(self, request: wire.Transfer) -> dict[str, Any]:
        await self.node.transfer_leadership(request.target)
        return {"ok": True}

    async def _add_node(self, request: wire.AddNode) -> dict[str, Any]:
        node_id = request.node
        problem = check_node_id(node_id)
        if problem:
            raise BadRequest(problem)
        try:
            new = NodeConfig(node_id, parse_address(request.peer), parse_address(request.client))
        except ValueError as exc:
            raise BadRequest(f"add_node: {exc}") from None
        raft = self.node.raft
        if raft is not None:
            for member, context in sorted(raft.configuration.contexts.items()):
                try:
                    used = parse_context(context)
                except ValueError:
                    continue
                for address in (new.peer, new.client):
                    if address in used and member != node_id:
                        raise BadRequest(f"cannot add {node_id}: address {address} is already used by {member}")
        await self.node.add_node(node_id, new.context, timeout=request.timeout)
        return {"ok": True, **self._membership()}

    async def _remove_node(self, request: wire.RemoveNode) -> dict[str, Any]:
        await self.node.remove_node(request.node, timeout=request.timeout)
        return {"ok": True, **self._membership()}

    def _membership(self) -> dict[str, Any]:
        status = self.node.status()
        return {"node": self.node.id, "voters": status.voters, "learners": status.learners}

    async def _snapshot(self, request: wire.Snapshot) -> dict[str, Any]:
        return {"ok": True, "index": await self.node.take_snapshot()}

    async def _stop(self, request: wire.Stop) -> dict[str, Any]:
        self.on_stop()
        return {"ok": True}


#: The handler of each request record (``wire.Subscribe`` streams instead: ``_stream_events``).
_HANDLERS: dict[type[Any], Any] = {
    wire.RunCommand: ClientService._run_command,
    wire.RegisterSession: ClientService._register_session,
    wire.Query: ClientService._query,
    wire.Status: ClientService._status,
    wire.RecentEvents: ClientService._recent_events,
    wire.SetFaults: ClientService._set_faults,
    wire.ClearFaults: ClientService._clear_faults,
    wire.Transfer: ClientService._transfer,
    wire.Snapshot: ClientService._snapshot,
    wire.AddNode: ClientService._add_node,
    wire.RemoveNode: ClientService._remove_node,
    wire.Stop: ClientService._stop,
}


class BatchAnswer:
    """The outcomes of one run_many's commands, gathered until each has one; then
    ``on_done(results)`` is called, once."""

    __slots__ = ("results", "waiting", "on_done")

    def __init__(self, count: int, on_done: Any) -> None:
        self.results: list[Any] = [None] * count
        self.waiting = count
        self.on_done = on_done

    def set(self, position: int, result: CommandResult) -> None:
        if self.results[position] is None:
            self.results[position] = result
            self.waiting -= 1
            if not self.waiting:
                self.on_done(self.results)


def _result_document(result: CommandResult) -> dict[str, Any]:
    """One command's outcome in a run_many answer: ``result`` and ``index``, the flags when set."""
    value = result.result
    document = {"result": value if value is None or type(value) in (int, str) else _jsonable(value),
                "index": result.index}
    if result.error is not None:
        document["error"] = result.error
    if result.redirect is not None:
        document["redirect"] = result.redirect
    if result.retry:
        document["retry"] = True
    if result.timeout_expired:
        document["timeout_expired"] = True
    return document


@asynccontextmanager
async def _bounded_close(stream: trio.abc.Stream) -> AsyncIterator[trio.abc.Stream]:
    """Close ``stream`` on exit within a second: a TLS close sends an alert, which must not wait
    forever on a client that reads nothing (closed by force then)."""
    try:
        yield stream
    finally:
        with trio.CancelScope(deadline=trio.current_time() + 1.0, shield=True):
            await stream.aclose()


async def _quietly(run: Any) -> None:
    """Run a connection's writer; a client that went away is not an error of the node."""
    try:
        await run()
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        pass


_SUCCESS = (
    b'{"ok":true,"result":%s,"error":null,"redirect":null,"retry":false,"timeout_expired":false,'
    b'"index":%s,"node":%s,"leader":%s,"id":'
)
_BATCH = b'{"ok":true,"results":[%s],"node":%s,"leader":%s,"id":%s}'
_BATCH_RESULT = b'{"result":%s,"index":%d}'
_RESPONSE_HEAD = framing._FRAME_HEAD  # the frame header
_pack_head, _VERSION, _ANSWER_KIND = _RESPONSE_HEAD.pack, codec.PROTOCOL_VERSION, int(codec.FrameKind.CLIENT_RESPONSE)


def _with_id(prefix: bytes, request_id: Any, max_frame_bytes: int) -> bytes | None:
    """The answer frame of ``_success_prefix``'s ``prefix`` for ``request_id``; None for an id
    of a type it does not format or a frame over ``max_frame_bytes``."""
    rid = b"%d" % request_id if type(request_id) is int else _json_scalar(request_id)
    if rid is None:
        return None
    size = len(prefix) + len(rid) + 3  # the version and kind bytes, the closing brace
    if size > max_frame_bytes:
        return None
    return b"".join((_pack_head(size, _VERSION, _ANSWER_KIND), prefix, rid, b"}"))


def _json_scalar(value: Any) -> bytes | None:
    """``value`` as JSON if it is None, an int or a str; None for anything else."""
    kind = type(value)
    if kind is int:
        return b"%d" % value
    if value is None:
        return b"null"
    if kind is str:
        try:
            return json.dumps(value, ensure_ascii=False).encode()
        except UnicodeEncodeError:  # a lone surrogate: the general path reports it
            return None
    return None


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value
