"""The client endpoint's commands and answers (a room of ``raftnode.node.service``): the hot path
that hands a well-formed ``run_command``, ``run_many`` or ``query`` to the node without a task of
its own (``_submit``), the queries of a connection grouped into one read each
(``raftnode.node.readgroups``), the handlers of those ops on the general path, and the answers:
formatted in place for a success (``_success_frame``, ``_batch_frame``; an applied command's
straight from its outcome, without a CommandResult: ``CommandAnswer``, ``BatchAnswer``), as a JSON
document otherwise, queued on the connection and flushed once per batch of the node's work (``_flush``).
"""

from __future__ import annotations

import json
import logging
from functools import partial
from typing import Any

from ..core.commands import CommandResult
from ..wire import codec, framing, requests as wire
from ..wire.streams import FrameWriter
from .runtime import RaftNode
from .service_connections import _ConnectionState
from .waiters import Callback, Positions

log = logging.getLogger("raftnode.service")

#: What a request frame and an answer may hold beyond ``max_command_bytes``: the other fields.
REQUEST_HEADROOM = 64 * 1024


class BadRequest(Exception):
    """The request is not one this endpoint serves; the message says why."""


class CommandRoom:
    """``ClientService``'s commands, queries and their answers. Uses the service's settings and
    counters below and its ``_client_token_ok``; what ``_submit`` does not take goes to
    the service's ``_dispatch``."""

    node: RaftNode
    stats: dict[str, int]
    max_command_bytes: int
    max_frame_bytes: int
    _max_command_chars: int
    _client_tokens: tuple[bytes, ...] | None
    _dirty: set[FrameWriter]
    _json_names: dict[str | None, bytes]
    _answer_tails: dict[str | None, bytes]

    def _submit(self, request: dict[str, Any], writer: FrameWriter, state: _ConnectionState) -> bool:
        """The hot path: a well-formed run_command or query goes to the node without a task of its
        own; its answer is queued on the connection from the node's task and flushed after the
        batch. Returns False for anything else (served by ``_dispatch`` in a task)."""
        op = request.get("op")
        if op == "run_many":
            return self._submit_many(request, writer, state)
        if op == "query_many":
            return self._submit_query_many(request, writer, state)  # the read room (service_reads)
        if (op != "run_command" and op != "query") or self.node.raft is None:
            return False
        if self._client_tokens is not None and not self._client_token_ok(request):
            return False  # _dispatch answers why
        command = request.get("command")
        timeout = request.get("timeout", 5.0)
        if type(command) is not str or not command or command.isspace() or len(command) > self._max_command_chars:
            return False  # _run_command says what is wrong (or measures a long one exactly)
        number = type(timeout)  # of a JSON document: int, float or bool (refused)
        if (number is not float and number is not int) or not 0 < timeout <= wire.MAX_TIMEOUT:
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
        state.in_flight += 1
        self.node.submit_command(command, CommandAnswer(self, writer, state, request_id), timeout=float(timeout),
                                 session=session)
        if self._dirty:  # answered at once (a follower's redirect, a retry): not from the node's task
            self._flush()
        return True

    def _submit_many(self, request: dict[str, Any], writer: FrameWriter, state: _ConnectionState) -> bool:
        """A well-formed run_many: its commands go to the node as one batch; one answer frame
        carries each command's own outcome once the last has one. Returns False for a request that
        is not one (or lacks the client token): ``_dispatch`` says what is wrong."""
        record = self._well_formed(request)
        if record is None:
            return False
        assert isinstance(record, wire.RunMany)
        batch = BatchAnswer(len(record.commands), self._batch_answer(request.get("id"), writer, state))
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
            self.node.submit_commands(record.commands, batch, timeout=record.timeout, stamps=stamps)
        elif positions:
            self.node.submit_commands(
                [record.commands[p] for p in positions], lambda at, result: batch.set(positions[at], result),
                timeout=record.timeout, stamps=None if stamps is None else [stamps[p] for p in positions])
        if self._dirty:  # answered at once (a follower's redirects): not from the node's task
            self._flush()
        return True

    def _well_formed(self, request: dict[str, Any]) -> wire.Request | None:
        """The record of a request the hot path may serve (with the client token if one is
        needed, decoded strictly); None for one ``_dispatch`` must answer."""
        if self._client_tokens is not None and not self._client_token_ok(request):
            return None
        try:
            return wire.decode_request(request)
        except wire.WireError:
            return None

    def _batch_answer(self, request_id: Any, writer: FrameWriter, state: _ConnectionState) -> Any:
        """``done(results)`` of a run_many or query_many: its answer frame queued on ``writer``."""

        def done(results: list[CommandResult]) -> None:
            state.in_flight -= 1
            frame = self._batch_frame(results, request_id)
            if frame is None:
                frame = self._frame(codec.FrameKind.CLIENT_RESPONSE, self._batch_response(results, request_id))
            writer.write_soon(frame)
            self._dirty.add(writer)  # a new set after each flush: never keep it

        return done

    def _batch_frame(self, results: list[CommandResult], request_id: Any) -> bytes | None:
        """The answer to a run_many whose commands were all applied (a query_many whose queries were
        all served), formatted without a dict per command (the JSON ``_batch_response`` makes);
        None for anything else (the general path)."""
        rid = _json_scalar(request_id)
        if rid is None:
            return None
        parts = []
        last = part = None  # the queries of a query_many's group share one result: formatted once
        for result in results:
            if result is not last:
                if type(result) is tuple:  # BatchAnswer.applied's (JSON, index)
                    value, index = result
                else:
                    value, index = (_json_scalar(result.result) if result.ok else None), result.index
                if value is None or type(index) is not int:
                    return None
                last, part = result, _BATCH_RESULT % (value, index)
            parts.append(part)
        payload = _BATCH % (b",".join(parts), *self._node_and_leader(), rid)
        if len(payload) > self.max_frame_bytes - 2:
            return None
        return _RESPONSE_HEAD.pack(len(payload) + 2, codec.PROTOCOL_VERSION, codec.FrameKind.CLIENT_RESPONSE) + payload

    def _batch_response(self, results: list[CommandResult], request_id: Any) -> dict[str, Any]:
        """The answer to a run_many: each command's outcome (``wire.RunMany``), in order."""
        raft = self.node.raft
        return {"ok": True, "results": [_result_document(_as_result(result)) for result in results], "node": self.node.id,
                "leader": raft.leader if raft else None, "id": request_id}

    def _ask_reads(self, writer: FrameWriter, state: _ConnectionState) -> None:
        """Hand the connection's queries read so far to the node, one read per group; the answer
        goes to every request of the group (``raftnode.node.readgroups``)."""
        if not state.reads:
            return
        for command, timeout, ids, batches in state.reads.take():
            answer = (partial(self._answer_reads, ids, writer, state) if not batches
                      else partial(self._answer_group, ids, batches, writer, state))  # query_many: service_reads
            self.node.submit_query(command, answer, timeout=timeout)
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
        index = result.index
        return _SUCCESS % (value, b"null" if index is None else b"%d" % index) + self._answer_tail()

    def _answer_tail(self) -> bytes:
        """The end of a success answer's JSON up to the id's value: this node's id and its
        leader's (formatted once per leader)."""
        raft = self.node.raft
        leader = raft.leader if raft else None
        tail = self._answer_tails.get(leader)
        if tail is None:
            tail = self._answer_tails[leader] = _TAIL % self._node_and_leader()
        return tail

    def _node_and_leader(self) -> tuple[bytes, bytes]:
        """This node's id and its leader's, as JSON (formatted once per name)."""
        raft = self.node.raft
        leader = raft.leader if raft else None
        names = self._json_names
        node_json = names.get(self.node.id) or names.setdefault(self.node.id, _json_scalar(self.node.id))
        leader_json = names.get(leader) or names.setdefault(leader, _json_scalar(leader))
        return node_json, leader_json

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


class CommandAnswer(Callback):
    """The answer to one run_command on the hot path, queued on its connection from the node's
    task: an applied command's straight from its outcome (``applied``), anything else through
    its CommandResult."""

    __slots__ = ("room", "writer", "state", "request_id")

    def __init__(self, room: CommandRoom, writer: FrameWriter, state: _ConnectionState, request_id: Any) -> None:
        self.done = False
        self.room, self.writer, self.state, self.request_id = room, writer, state, request_id

    def set(self, result: Any = None, error: BaseException | None = None) -> None:
        if not self.done:
            self.done = True
            room = self.room
            frame = room._success_frame(result, self.request_id) if result.ok else None
            if frame is None:
                response = room._command_response(result)
                response["id"] = self.request_id
                frame = room._frame(codec.FrameKind.CLIENT_RESPONSE, response)
            self._send(frame)

    def applied(self, result: Any, error: str | None, index: int) -> None:
        if self.done:
            return
        room, request_id = self.room, self.request_id
        if error is None and type(result) is int and type(request_id) is int:  # the common answer, at once
            payload = _APPLIED_INT % (result, index, room._answer_tail(), request_id)
            if len(payload) + 2 <= room.max_frame_bytes:
                self.done = True
                self._send(_pack_head(len(payload) + 2, _VERSION, _ANSWER_KIND) + payload)
                return
        self.set(CommandResult(result=result, error=error, index=index))

    def _send(self, frame: bytes) -> None:
        self.state.in_flight -= 1
        self.writer.write_soon(frame)
        self.room._dirty.add(self.writer)


class BatchAnswer(Positions):
    """The outcomes of one run_many's commands, gathered until each has one; then
    ``on_done(results)`` is called, once. An outcome is a CommandResult, or for a command
    applied with a result ``_json_scalar`` formats, ``(that JSON, index)`` (``_as_result``)."""

    __slots__ = ("results", "waiting", "on_done")

    def __init__(self, count: int, on_done: Any) -> None:
        self.results: list[Any] = [None] * count
        self.waiting = count
        self.on_done = on_done

    def set(self, position: int, result: CommandResult | tuple[bytes, int]) -> None:
        if self.results[position] is None:
            self.results[position] = result
            self.waiting -= 1
            if not self.waiting:
                self.on_done(self.results)

    def applied(self, position: int, result: Any, error: str | None, index: int) -> None:
        value = _json_scalar(result) if error is None else None
        self.set(position, (value, index) if value is not None else CommandResult(result=result, error=error, index=index))


def _as_result(outcome: CommandResult | tuple[bytes, int]) -> CommandResult:
    """A ``BatchAnswer`` outcome as a CommandResult."""
    if type(outcome) is tuple:
        return CommandResult(result=json.loads(outcome[0]), index=outcome[1])
    return outcome  # type: ignore[return-value]


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


_SUCCESS = b'{"ok":true,"result":%s,"error":null,"redirect":null,"retry":false,"timeout_expired":false,"index":%s'
_TAIL = b',"node":%s,"leader":%s,"id":'  # _SUCCESS's rest: _answer_tail
_APPLIED_INT = _SUCCESS.replace(b"%s", b"%d") + b"%s%d}"  # with an int result, index, the tail and an int id
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
