"""The client verbs of the simulated cluster: commands, sessions and linearizable reads.

``propose`` (a client's ``run_command``, in a session or not), ``propose_batch`` (a client's
``run_many``: one batch entry, ``raftnode.wire.batches``), ``register_session`` and ``read``
(ReadIndex, §6.4) each record a :class:`ClientRequest` in ``requests``, hand it to the node's core
and track it until it is answered (``_answer``), expires or its node crashes. Session entries are
stamped with the simulated time (ticks). A mixin of :class:`SimCluster`: it needs ``node``,
``now``, ``checker``, ``client_timeout``, ``_process`` and ``_log``.
"""

from __future__ import annotations

from collections.abc import Callable

from ..core.commands import CommandResult
from ..core.errors import RaftError
from ..core.messages import EntryKind
from ..core.ready import Role
from ..wire.batches import encode_batch_entry
from ..wire.sessions import SessionStamp, encode_register, encode_session_command
from .invariants import InvariantChecker
from .node import ClientRequest, SimBatch, SimNode


class ClientRequests:
    """Requests of simulated clients, and their answers."""

    requests: list[ClientRequest]
    now: int
    client_timeout: int
    checker: InvariantChecker
    node: Callable[[str], SimNode]
    _process: Callable[[SimNode], None]
    _log: Callable[..., None]  # (node, what, kind, about=())

    def propose(
        self, node_id: str, command: str, *, timeout: int | None = None, session: SessionStamp | None = None
    ) -> ClientRequest:
        """A client's ``run_command`` at ``node_id`` (in a session with ``session``); answered at
        once or after apply, expiry or step-down."""
        if session is None:
            return self._submit(node_id, command, command.encode(), EntryKind.COMMAND, timeout, None)
        data = encode_session_command(session, float(self.now), command.encode())
        return self._submit(node_id, command, data, EntryKind.SESSION, timeout, session)

    def propose_batch(
        self, node_id: str, commands: list[str], *, timeout: int | None = None,
        stamps: list[SessionStamp] | None = None,
    ) -> list[ClientRequest]:
        """A client's ``run_many`` at ``node_id``: ``commands`` (each in its session with
        ``stamps``) in one batch entry; each request is answered with its command's own outcome."""
        data = encode_batch_entry(float(self.now), [c.encode() for c in commands], stamps)
        batch = SimBatch([ClientRequest(id=len(self.requests) + 1 + n, node=node_id, command=command, submitted=self.now,
                                        session=None if stamps is None else stamps[n])
                          for n, command in enumerate(commands)])
        self.requests.extend(batch.requests)
        self._propose_entry(node_id, batch, " / ".join(commands), data, EntryKind.BATCH, timeout)
        return batch.requests

    def register_session(self, node_id: str, *, timeout: int | None = None) -> ClientRequest:
        """A client registers a session at ``node_id``; the answer's result is the session id."""
        data = encode_register(float(self.now))
        return self._submit(node_id, "register session", data, EntryKind.SESSION, timeout, None)

    def _submit(self, node_id: str, command: str, data: bytes, kind: EntryKind, timeout: int | None,
                session: SessionStamp | None) -> ClientRequest:
        req = ClientRequest(id=len(self.requests) + 1, node=node_id, command=command, submitted=self.now,
                            session=session)
        self.requests.append(req)
        self._propose_entry(node_id, req, command, data, kind, timeout)
        return req

    def _propose_entry(self, node_id: str, req: ClientRequest | SimBatch, what: str, data: bytes, kind: EntryKind,
                       timeout: int | None) -> None:
        """Propose the entry ``data`` of kind ``kind`` at ``node_id`` for ``req`` and track it."""
        node = self.node(node_id)
        if node.raft is None:
            req.lost = True
            return
        if node.leading_without_disk and node.raft.role is Role.LEADER:  # as the runtime's _propose
            self._answer(node, req, CommandResult(retry=True, error=f"disk full at leader {node_id}"))
            return
        try:
            index = node.raft.propose(data, kind)
        except RaftError as exc:
            self._answer(node, req, CommandResult.from_refusal(exc))
            return
        deadline = self.now + (timeout if timeout is not None else self.client_timeout)
        node.tracker.track(index, node.raft.term, req, deadline=deadline)
        self._log(node, f"proposed {what!r} at index {index}", "propose")
        self._process(node)

    def read(self, node_id: str, command: str = "get", *, timeout: int | None = None) -> ClientRequest:
        """A client's linearizable query at ``node_id`` (ReadIndex, no log entry); answered once
        the node has applied through the read index, or refused, or expired."""
        node = self.node(node_id)
        req = ClientRequest(id=len(self.requests) + 1, node=node_id, command=command, submitted=self.now, read=True,
                            floor=self.checker.highest_acked)
        self.requests.append(req)
        if node.raft is None:
            req.lost = True
            return req
        try:
            node.raft.read_index(req.id)
        except RaftError as exc:
            self._answer(node, req, CommandResult.from_refusal(exc))
            return req
        req.deadline = self.now + (timeout if timeout is not None else self.client_timeout)
        node.reads[req.id] = req
        self._log(node, f"read {command!r} (request {req.id})", "read")
        self._process(node)
        return req
    def _answer(self, node: SimNode, req: ClientRequest | SimBatch, result: CommandResult) -> None:
        if type(req) is SimBatch:  # the same answer for each command (a redirect, a retry, a timeout)
            for each in req.requests:
                self._answer(node, each, result)
            return
        assert type(req) is ClientRequest
        req.result = result
        req.answered_at = self.now
        self._log(node, f"answered {req.command!r}: {_describe(result)}", "answer")


def _describe(result: CommandResult) -> str:
    if result.timeout_expired:
        return "timeout_expired"
    if result.retry:
        return "retry"
    if result.redirect is not None:
        return f"redirect to {result.redirect}"
    if result.error is not None:
        return f"error: {result.error}"
    return f"result {result.result!r} at index {result.index}"
