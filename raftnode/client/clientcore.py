"""The client without I/O, in the h11 style: what both of raftnode's clients do, written once.

Two pieces, each driven by ``raftnode.client.ClusterClient`` (trio) and
``raftnode.client.SyncClusterClient`` (blocking sockets):

- :class:`ClientConnection`, one connection's protocol: a request in, the bytes to send out
  (``send``); bytes in, the answers and pushed events they complete out (``receive_data``).
- :class:`ClientCore`, the rules of ``run_command`` over the whole cluster: a command is a
  generator of *steps* -- :class:`Call` (ask a node; the driver sends back its answer or throws
  NodeUnreachable/Timeout in), :class:`Pause` (sleep) and :class:`NeedSession` (the driver sends
  back the client's session, registering one first with ``ClientCore.register``) -- that ends
  in a :class:`CommandOutcome`. A driver runs it with :func:`advance` and does only the I/O.

The rules themselves (which node next, what an answer means, backoff, sessions: register once,
stamp every command with (session, seq, ack), resend after a lost connection with the same
stamp, reopen an expired session only for a command never sent) are ``raftnode.client.clientproto``'s.

Standard library, ``raftnode.wire.framing``, ``raftnode.wire.records`` and ``raftnode.client.clientproto`` only: no trio, no
``raftnode.core`` (``CommandOutcome.result`` imports it when asked).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Generator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Union

from ..wire.framing import FrameDecoder, FrameKind, decode_json, encode_frame, encode_json
from ..wire.records import Record
from .clientproto import BatchPlan, ClientError, ClientSession, CommandPlan, NodeUnreachable, SessionExpired, Timeout

if TYPE_CHECKING:
    from ..core.commands import CommandResult

__all__ = [
    "Advanced", "Answer", "Call", "ClientConnection", "ClientCore", "CommandOutcome", "NeedSession", "Pause",
    "Pushed", "advance", "refusal",
]


# -- one connection ------------------------------------------------------------------------------


class Answer(Record):
    """A response frame: the answer to the request with ``request_id`` (what the node echoed)."""

    __slots__ = ("request_id", "document")
    request_id: Any
    document: dict[str, Any]


class Pushed(Record):
    """An EVENT frame of a subscribed connection."""

    __slots__ = ("document",)
    document: dict[str, Any]


class ClientConnection:
    """The client side of one connection to a node's client endpoint, without I/O.

    ``fields`` go with every request (the cluster id and tokens, ``Credentials.client_fields``).
    """

    def __init__(self, node: str, fields: Mapping[str, Any] | None = None) -> None:
        self.node = node
        self.fields = dict(fields) if fields else None
        self._ids = itertools.count(1)
        self._decoder = FrameDecoder()

    def send(self, request: Mapping[str, Any]) -> tuple[int, bytes]:
        """The id ``request`` (a request document, ``raftnode.wire.requests``) goes under, and its frame."""
        request_id = next(self._ids)
        document = {**request, **self.fields, "id": request_id} if self.fields else {**request, "id": request_id}
        return request_id, encode_frame(FrameKind.CLIENT_REQUEST, encode_json(document))

    def receive_data(self, data: bytes) -> list[Answer | Pushed]:
        """What the bytes received complete, in order.

        Raises:
            CodecError: the bytes are not frames of JSON objects; the connection is unusable.
        """
        events: list[Answer | Pushed] = []
        for frame in self._decoder.feed(data):
            document = decode_json(frame.payload)
            if frame.kind == FrameKind.EVENT:
                events.append(Pushed(document))
            else:
                events.append(Answer(document.get("id"), document))
        return events


def refusal(received: Answer | Pushed) -> bool:
    """Whether ``received`` refuses the whole connection: an error answer to no request (what a
    TLS-only node answers a plaintext client); the driver closes the connection with its error."""
    return isinstance(received, Answer) and received.request_id is None and received.document.get("ok") is False \
        and "error" in received.document


# -- the rules over the cluster ------------------------------------------------------------------


class CommandOutcome(Record):
    """The final answer to a command: the node's response document (the seed's CommandResult
    fields ``result``, ``error``, ``index``; never a redirect, retry or timeout), the node that
    gave it, and how many attempts it took."""

    __slots__ = ("response", "node", "attempts")
    response: Mapping[str, Any]
    node: str
    attempts: int

    @property
    def result(self) -> CommandResult:
        """The response as the seed's ``CommandResult`` (imports ``raftnode.core``)."""
        from ..core.commands import CommandResult

        answer = self.response
        return CommandResult(
            result=answer.get("result"), error=answer.get("error"), redirect=answer.get("redirect"),
            retry=bool(answer.get("retry")), timeout_expired=bool(answer.get("timeout_expired")),
            index=answer.get("index"),
        )


class Call(Record):
    """Step: send ``request`` to ``node`` and wait up to ``timeout`` seconds; the driver sends the
    answer back, or throws the NodeUnreachable / Timeout (any error) it met instead."""

    __slots__ = ("node", "request", "timeout")
    node: str
    request: dict[str, Any]
    timeout: float


class Pause(Record):
    """Step: sleep ``seconds`` (the driver sends back None)."""

    __slots__ = ("seconds",)
    seconds: float


class NeedSession(Record):
    """Step: the driver sends back the client's session, first running ``ClientCore.register``
    with these arguments if it has none (one registration at a time)."""

    __slots__ = ("node", "started", "timeout")
    node: str | None
    started: float
    timeout: float


Step = Union[Call, Pause, NeedSession]
Steps = Generator[Step, Any, Any]


class Advanced(Record):
    """What :func:`advance` gives when the steps have ended: their value."""

    __slots__ = ("value",)
    value: Any


def advance(steps: Steps, reply: Any = None, error: BaseException | None = None) -> Step | Advanced:
    """The next step of ``steps`` after ``reply`` (or ``error``, thrown in), or Advanced(value)
    when they end; an exception the steps raise propagates."""
    try:
        return steps.throw(error) if error is not None else steps.send(reply)
    except StopIteration as done:
        return Advanced(done.value)


class ClientCore:
    """The state a client keeps across commands (leader hint, session) and its commands as steps.

    ``clock`` is the driver's monotonic clock (``time.monotonic``, ``trio.current_time``).
    """

    def __init__(self, nodes: Sequence[str], *, clock: Callable[[], float], sessions: bool = True) -> None:
        self.nodes = list(nodes)
        self.clock = clock
        self.sessions = sessions
        self.leader_hint: str | None = None
        self.session: ClientSession | None = None

    def run_command(self, command: str, *, node: str | None, timeout: float, op: str = "run_command") -> Steps:
        """The steps of ``run_command`` (or ``op="query"``); see ``ClusterClient.run_command``."""
        started = self.clock()
        if not self.sessions or op != "run_command":  # a read changes nothing: no session needed
            plan = CommandPlan(command, self.nodes, node=node, leader_hint=self.leader_hint, timeout=timeout,
                               now=started, op=op)
            return (yield from self.drive(plan))

        def stamped(session: ClientSession, seqs: list[int]) -> CommandPlan:
            return CommandPlan(command, self.nodes, node=node, leader_hint=self.leader_hint, timeout=timeout,
                               now=started, stamp=session.stamp(seqs[0]))

        return (yield from self._in_session(stamped, 1, node, started, timeout, repr(command) + " was"))

    def run_many(self, commands: Sequence[str], *, node: str | None, timeout: float) -> Steps:
        """The steps of ``run_many`` (``ClusterClient.run_many``): one CommandOutcome per command."""
        started = self.clock()

        def plan(session: ClientSession | None, seqs: list[int] | None) -> BatchPlan:
            return BatchPlan(commands, self.nodes, node=node, leader_hint=self.leader_hint, timeout=timeout,
                             now=started, session=session, seqs=seqs)

        if not self.sessions:
            return (yield from self.drive(plan(None, None)))
        return (yield from self._in_session(plan, len(commands), node, started, timeout,
                                            f"{len(commands)} commands were"))

    def query_many(self, commands: Sequence[str], *, node: str | None, timeout: float) -> Steps:
        """The steps of ``query_many`` (``ClusterClient.query_many``): one CommandOutcome per read."""
        return (yield from self.drive(BatchPlan(commands, self.nodes, node=node, leader_hint=self.leader_hint,
                                                timeout=timeout, now=self.clock(), op="query_many")))

    def _in_session(self, make_plan: Callable[[ClientSession, list[int]], CommandPlan], count: int,
                    node: str | None, started: float, timeout: float, what: str) -> Steps:
        """Drive the plan of ``count`` commands numbered in the client's session (registered first
        if needed); once more in a new session if the cluster forgot it before the first send."""
        for _ in range(2):
            session: ClientSession = yield NeedSession(node, started, timeout)
            seqs = [session.begin() for _ in range(count)]
            plan = make_plan(session, seqs)
            try:
                return (yield from self.drive(plan))
            except SessionExpired:
                if self.session is session:
                    self.session = None
                if plan.attempts > 1:  # an earlier copy may have been applied
                    raise
            finally:
                for seq in seqs:
                    session.end(seq)
        raise SessionExpired(f"the cluster forgot a session it had just opened; {what} not applied")

    def register(self, node: str | None, started: float, timeout: float) -> Steps:
        """The steps that register a session (through ``node`` or the leader); ends in it."""
        plan = CommandPlan("register a session", self.nodes, node=node, leader_hint=self.leader_hint,
                           timeout=timeout, now=started, register=True)
        outcome: CommandOutcome = yield from self.drive(plan)
        session_id = outcome.response.get("result")
        if outcome.response.get("error") is not None or not isinstance(session_id, int):
            raise ClientError(f"{outcome.node} could not register a session: {outcome.response.get('error')}")
        self.session = ClientSession(session_id)
        return self.session

    def drive(self, plan: CommandPlan) -> Steps:
        """The steps of one plan: ask, follow, pause, until its final answer (or its error)."""
        while True:
            target, request, wait = plan.next_request(self.clock())
            try:
                response = yield Call(target, request, wait)
            except (NodeUnreachable, Timeout) as exc:
                plan.unreachable(exc)
            else:
                final = plan.answer(response)
                if plan.learned is not None:
                    self.leader_hint = plan.learned
                if final is not None:
                    if isinstance(plan, BatchPlan):
                        return [CommandOutcome(answer, answer.get("node") or target, plan.attempts) for answer in final]
                    return CommandOutcome(final, target, plan.attempts)
            pause = plan.pause(self.clock())
            if pause is not None:
                yield Pause(pause)
