"""The client side of the client protocol, without I/O: errors, request frames and the rules of
``run_command`` (which node to ask next, what an answer means, how long to back off).

``raftnode.client.clientcore`` turns these rules into steps without I/O, which two drivers run:
``raftnode.client.ClusterClient`` (trio, many requests in flight, for programs) and
``raftnode.client.SyncClusterClient`` (blocking sockets, for one-shot command-line calls that
must not pay for importing trio). Both raise the errors defined here, so
``except raftnode.client.NoLeader`` catches either; ``raftnode.client.trioclient`` re-exports them.

Client sessions (thesis §6.3, ``raftnode.wire.sessions``): a client registers a session once
(``CommandPlan(..., register=True)``) and numbers its commands with a :class:`ClientSession`; each
request carries ``session``, ``seq`` and ``ack``, so resending it after a lost connection, a
``redirect`` or a ``retry`` is safe — the cluster applies it at most once and answers every copy
with the first one's outcome.

Standard library, ``raftnode.wire.requests`` and ``raftnode.wire.sessions`` only: no trio, no ``raftnode.core``.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from typing import Any

from ..wire import requests as wire
from ..wire.sessions import SESSION_EXPIRED, SessionStamp

__all__ = [
    "BatchPlan",
    "ClientError",
    "ClientSession",
    "CommandPlan",
    "NoLeader",
    "NodeUnreachable",
    "SessionExpired",
    "Timeout",
    "call_timeout",
    "address_of",
    "proposed_index",
    "connect_timeout",
    "unknown_node",
    "tls_failure",
]

#: The first pause between two attempts of a command, and the most it grows to (doubling).
FIRST_BACKOFF = 0.01
MAX_BACKOFF = 0.2


class ClientError(Exception):
    """Base class of the client's errors."""


class NodeUnreachable(ClientError):
    """A node did not accept a connection or hung up."""

    def __init__(self, node: str, reason: str):
        self.node = node
        super().__init__(f"node {node} is unreachable: {reason}")


def tls_failure(exc: BaseException) -> str:
    """What went wrong in a TLS handshake (an ``ssl.SSLError``, as a NodeUnreachable's reason)."""
    reason = getattr(exc, "verify_message", None) or getattr(exc, "reason", None) or str(exc) or type(exc).__name__
    return f"TLS handshake failed: {reason}"


class NoLeader(ClientError):
    """No node acted as leader before the deadline."""


class Timeout(ClientError):
    """The deadline passed before the cluster answered."""


class SessionExpired(ClientError):
    """The cluster no longer knows the client's session (idle too long, or evicted): the command
    was not applied by the copy that got this answer, but an earlier copy may have been."""


class ClientSession:
    """The client's half of a session: its id, the next sequence number, and the sequences that
    still wait for their answer — the lowest is the ``ack`` each request carries, below which the
    cluster may forget the results. Every ``begin`` must be matched by one ``end``, whatever the
    outcome (an abandoned command ends too: a late copy of it is then refused, never applied)."""

    def __init__(self, session_id: int) -> None:
        self.id = session_id
        self._next = 1
        self._waiting: set[int] = set()
        self._heap: list[int] = []  # the waiting sequences, with ended ones popped lazily

    def begin(self) -> int:
        """The sequence number of a new command."""
        seq = self._next
        self._next += 1
        self._waiting.add(seq)
        heapq.heappush(self._heap, seq)
        return seq

    def end(self, seq: int) -> None:
        """The command ``seq`` has its final answer (or was given up)."""
        self._waiting.discard(seq)

    @property
    def in_flight(self) -> int:
        return len(self._waiting)

    def lowest_unanswered(self) -> int:
        heap, waiting = self._heap, self._waiting
        while heap and heap[0] not in waiting:
            heapq.heappop(heap)
        return heap[0] if heap else self._next

    def stamp(self, seq: int) -> SessionStamp:
        """What the command ``seq`` carries now."""
        return SessionStamp(self.id, seq, self.lowest_unanswered())




def proposed_index(answer: Mapping[str, Any]) -> int | None:
    """The log index a ``redirect``/``retry`` answer says the command took before its leader lost
    leadership (the outcome is then unknown: it may still commit); None if it was refused before
    proposing (or the node predates the field: its redirects carry ``index`` null).

    Raises:
        ClientError: the answer's ``index`` is neither null nor a positive integer.
    """
    index = answer.get("index")
    if index is None or not (answer.get("redirect") is not None or answer.get("retry")):
        return None
    if type(index) is not int or index < 1:
        raise ClientError(f"a malformed 'index' in a redirect or retry answer: {index!r} (expected a positive integer or null)")
    return index


def unknown_node(node: str, known: Sequence[str]) -> ClientError:
    return ClientError(f"unknown node {node!r}; known: {', '.join(sorted(known))}")


def address_of(addresses: Mapping[str, Any], node: str) -> Any:
    """``node``'s client address; ClientError (``unknown_node``) if the client has none."""
    address = addresses.get(node)
    if address is None:
        raise unknown_node(node, list(addresses))
    return address


def connect_timeout(node: str, address: object, seconds: float) -> NodeUnreachable:
    return NodeUnreachable(node, f"no answer from {address} within {seconds} s")


def call_timeout(node: str, request: Mapping[str, Any], seconds: float) -> Timeout:
    return Timeout(f"node {node} did not answer {request.get('op')!r} within {seconds} s")


class CommandPlan:
    """One ``run_command`` (or ``query``, with ``op="query"``: a linearizable read that any node
    serves): send to a node (the given one, else the last known leader, else the
    first), follow redirects at once, move on to the next node with a growing pause while a node is
    unreachable or knows no leader, and give up at the deadline.

    The caller loops::

        plan = CommandPlan(command, nodes, node=node, leader_hint=hint, timeout=t, now=clock())
        while True:
            target, request, call_timeout = plan.next_request(clock())  # NoLeader at the deadline
            try:
                response = call(target, request, timeout=call_timeout)
            except (NodeUnreachable, Timeout) as exc:
                plan.unreachable(exc)
            else:
                final = plan.answer(response)  # Timeout / ClientError when the answer says so
                if final is not None:
                    return final, target, plan.attempts
            pause = plan.pause(clock())
            if pause is not None:
                sleep(pause)

    ``learned`` is the leader the last answer revealed (a redirect, or the node that answered),
    for the caller's own leader hint; None when the last answer taught nothing.

    With ``stamp`` the request carries the command's session stamp (resending is then safe);
    with ``register`` the plan registers a session instead of running a command (the final
    answer's ``result`` is the session id).
    """

    def __init__(
        self,
        command: str,
        nodes: Sequence[str],
        *,
        node: str | None = None,
        leader_hint: str | None = None,
        timeout: float,
        now: float,
        stamp: SessionStamp | None = None,
        register: bool = False,
        op: str = "run_command",
    ) -> None:
        self.command = command
        self.op = op
        self.order = list(nodes)
        self.timeout = timeout
        self.deadline = now + timeout
        self.target = node or leader_hint or self.order[0]
        self.attempts = 0
        self.learned: str | None = None
        self._backoff = FIRST_BACKOFF
        self._redirected = False
        self._last_problem = "no node answered"
        self._request: wire.RegisterSession | wire.RunCommand | wire.Query
        if register:
            self._request = wire.RegisterSession(timeout)
        else:
            self._request = wire.command_request(command, timeout=timeout, op=op)
            if stamp is not None:
                self._request = self._request.replace(session=stamp.session, seq=stamp.seq, ack=stamp.ack)

    def next_request(self, now: float) -> tuple[str, dict[str, Any], float]:
        """``(node, request, seconds to wait for the answer)`` of the next attempt.

        Raises:
            NoLeader: the deadline has passed.
        """
        remaining = self.deadline - now
        if remaining <= 0:
            raise NoLeader(f"no leader answered within {self.timeout} s ({self._last_problem})")
        self.attempts += 1
        self._redirected = False
        self.learned = None
        return self.target, wire.document(self._request.replace(timeout=remaining)), remaining + 1

    def unreachable(self, problem: ClientError) -> None:
        """The target did not answer: try the next node after a pause."""
        self._last_problem = str(problem)
        self._next_node()

    def answer(self, response: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """The target's answer: the final response, or None to go on (see ``pause``).

        Raises:
            Timeout: the leader took the command but did not commit it before its timeout.
            SessionExpired: the cluster no longer knows the command's session.
            ClientError: the node refused the request itself (a bad request).
        """
        if "error" in response and "retry" not in response:
            raise ClientError(response["error"])  # the request itself was refused
        error = response.get("error")
        if isinstance(error, str) and error.startswith(SESSION_EXPIRED):
            raise SessionExpired(error)
        redirect = response.get("redirect")
        if redirect is not None and redirect in self.order and redirect != self.target:
            self.learned = self.target = redirect
            self._redirected = True
            return None
        if not response.get("retry") and redirect is None:
            if response.get("timeout_expired"):
                raise Timeout(f"the leader {self.target} did not commit {self.command!r} within {self.timeout} s")
            self.learned = self.target
            return response
        self._last_problem = error if isinstance(error, str) else f"{self.target} knows no leader"
        self._next_node()
        return None

    def pause(self, now: float) -> float | None:
        """Seconds to sleep before the next attempt; None to go at once (after a redirect)."""
        if self._redirected:
            return None
        pause = min(self._backoff, max(0.0, self.deadline - now))
        self._backoff = min(self._backoff * 2, MAX_BACKOFF)
        return pause

    def _next_node(self) -> None:
        self.target = self.order[(self.order.index(self.target) + 1) % len(self.order)]


class BatchPlan(CommandPlan):
    """One ``run_many``: the commands go to a node as one ``run_many`` request, and each is
    settled on its own -- a command answered with a result or an error is done, one answered
    with a redirect or retry is sent again (with its own sequence number, so at most once) with
    the others still unsettled, to the node named or the next one, until none is left. With
    ``op="query_many"`` the same for reads (``wire.QueryMany``, no session).

    With ``session`` the commands are numbered ``seqs`` (from ``session.begin()``); ``answer``
    returns, once every command is settled, the list of their answers (each with the ``node``
    and ``leader`` of the response that settled it), in order.
    """

    def __init__(
        self,
        commands: Sequence[str],
        nodes: Sequence[str],
        *,
        node: str | None = None,
        leader_hint: str | None = None,
        timeout: float,
        now: float,
        session: ClientSession | None = None,
        seqs: Sequence[int] | None = None,
        op: str = "run_many",
    ) -> None:
        super().__init__(f"a batch of {len(commands)} commands", nodes, node=node, leader_hint=leader_hint,
                         timeout=timeout, now=now)
        self.op = op
        self.commands = list(commands)
        self.session = session
        self.seqs = list(seqs) if seqs is not None else None
        self.outcomes: list[Mapping[str, Any] | None] = [None] * len(self.commands)
        self.pending = list(range(len(self.commands)))  # the positions still unsettled
        self._prepare()

    def _prepare(self) -> None:
        """The request of the unsettled commands (stamped with the session's current ack)."""
        commands = [self.commands[position] for position in self.pending]
        if self.op == wire.QueryMany.OP:
            self._request = wire.QueryMany(commands, self.timeout)  # type: ignore[assignment]
            return
        if self.session is None or self.seqs is None:
            self._request = wire.RunMany(commands, self.timeout)  # type: ignore[assignment]
            return
        seqs = [self.seqs[position] for position in self.pending]
        self._request = wire.RunMany(commands, self.timeout, self.session.id, seqs,  # type: ignore[assignment]
                                     self.session.lowest_unanswered())

    def answer(self, response: Mapping[str, Any]) -> Any:
        """The answers of every command once all are settled, else None (see ``pause``).

        Raises:
            Timeout: the leader took a command but did not commit it before its timeout.
            SessionExpired: the cluster no longer knows the session.
            ClientError: the node refused the request itself, or answered it malformed.
        """
        results = response.get("results")
        if results is None:  # the request as a whole was refused or redirected
            if super().answer(response) is not None:
                raise ClientError(f"{self.target} answered {self.op} without 'results'")
            return None
        if not isinstance(results, list) or len(results) != len(self.pending) or \
                not all(isinstance(result, dict) for result in results):
            raise ClientError(f"{self.target} answered {self.op} with malformed 'results'")
        unsettled, redirect, problem = [], None, None
        for position, result in zip(self.pending, results):
            error = result.get("error")
            if isinstance(error, str) and error.startswith(SESSION_EXPIRED):
                raise SessionExpired(error)
            if result.get("redirect") is not None or result.get("retry"):
                unsettled.append(position)
                redirect = redirect or result.get("redirect")
                problem = error if isinstance(error, str) else problem
            elif result.get("timeout_expired"):
                raise Timeout(f"the leader {self.target} did not commit {self.commands[position]!r} "
                              f"within {self.timeout} s")
            else:
                self.outcomes[position] = {**result, "node": response.get("node"), "leader": response.get("leader")}
        self.pending = unsettled
        if not unsettled:
            self.learned = self.target
            return self.outcomes
        self._prepare()
        if redirect is not None and redirect in self.order and redirect != self.target:
            self.learned = self.target = redirect
            self._redirected = True
            return None
        self._last_problem = problem or f"{self.target} knows no leader"
        self._next_node()
        return None
