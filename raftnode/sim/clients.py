"""Simulated clients that use sessions (thesis §6.3) and resend, as real clients do.

Each client registers a session, then runs commands — several in flight at once now and then —
and resends each one, with the same stamp, a tick or two after a redirect, a retry, a timeout or
a node that crashed under it, until it gets the command's own outcome or gives up; now and then it sends
the same request twice at once (a duplicated delivery). Every final answer is reported to the
invariant checker (``acknowledged_in_session``: the command was applied exactly once, with that
outcome); a ``session expired`` answer makes the client register a new session.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from ..client.clientproto import ClientSession
from ..wire.sessions import SESSION_EXPIRED
from .cluster import ClientRequest, SimCluster


@dataclass(eq=False)
class _Command:
    session: ClientSession
    seq: int
    command: str
    give_up_at: int
    attempt: ClientRequest
    resend_at: int = 0  # the tick from which a failed attempt may be resent


@dataclass(eq=False)
class _Client:
    name: str
    session: ClientSession | None = None
    registering: ClientRequest | None = None
    commands: list[_Command] = field(default_factory=list)


class SimClients:
    """``count`` clients of ``cluster``; ``step()`` after every action resends what needs it."""

    def __init__(self, cluster: SimCluster, rng: random.Random, *, count: int = 3, give_up_after: int = 600,
                 duplicate_rate: float = 0.1, max_in_flight: int = 4):
        self.cluster = cluster
        self.rng = rng
        self.clients = [_Client(f"c{i}") for i in range(1, count + 1)]
        self.give_up_after = give_up_after
        self.duplicate_rate = duplicate_rate
        self.max_in_flight = max_in_flight
        self.stats = {"commands": 0, "resent": 0, "acknowledged": 0, "expired": 0, "abandoned": 0, "registered": 0}

    def command(self, command: str) -> None:
        """A client with a session and room for one more sends ``command``."""
        ready = [c for c in self.clients if c.session is not None and len(c.commands) < self.max_in_flight]
        if not ready:
            return
        client = self.rng.choice(ready)
        assert client.session is not None
        seq = client.session.begin()
        self.stats["commands"] += 1
        attempt = self._send(client.session, seq, command)
        client.commands.append(_Command(client.session, seq, command, self.cluster.now + self.give_up_after, attempt))

    def step(self) -> None:
        for client in self.clients:
            if client.session is None:
                self._register(client)
            if client.commands:
                client.commands = [c for c in client.commands if not self._settled(client, c)]

    def _register(self, client: _Client) -> None:
        request = client.registering
        if request is not None and not request.done:
            return
        if request is not None and request.result is not None and request.result.ok:
            client.session = ClientSession(request.result.result)
            client.registering = None
            self.stats["registered"] += 1
            return
        target = self._target(request.result.redirect if request is not None and request.result else None)
        if target is not None:
            client.registering = self.cluster.register_session(target)

    def _settled(self, client: _Client, command: _Command) -> bool:
        """Whether ``command`` is finished with (answered or given up); resends it otherwise."""
        attempt = command.attempt
        if not attempt.done:
            return False
        result = attempt.result
        if result is not None and (result.ok or (result.error is not None and not result.retry)):  # a retry may say why
            command.session.end(command.seq)
            if result.error is not None and result.error.startswith(SESSION_EXPIRED):
                self.stats["expired"] += 1
                if client.session is command.session:
                    client.session = None  # the outcome is unknown: an earlier copy may have been applied
                return True
            assert attempt.session is not None
            self.cluster.checker.acknowledged_in_session(attempt.session, result.result, result.error)
            self.stats["acknowledged"] += 1
            return True
        if self.cluster.now >= command.give_up_at or client.session is not command.session:
            command.session.end(command.seq)
            self.stats["abandoned"] += 1
            return True
        if command.resend_at == 0:
            command.resend_at = self.cluster.now + self.rng.randint(1, 2)
        if self.cluster.now < command.resend_at:
            return False
        target = self._target(result.redirect if result is not None else None)
        if target is None:
            return False
        command.resend_at = 0
        self.stats["resent"] += 1
        command.attempt = self._send(command.session, command.seq, command.command, target)
        return False

    def _send(self, session: ClientSession, seq: int, command: str, target: str | None = None) -> ClientRequest:
        target = target or self._target(None)
        stamp = session.stamp(seq)
        if target is None:
            return ClientRequest(id=0, node="-", command=command, submitted=self.cluster.now, lost=True, session=stamp)
        propose: Callable[[], ClientRequest] = lambda: self.cluster.propose(target, command, session=stamp)
        if self.rng.random() < self.duplicate_rate:
            propose()  # a duplicated delivery: the same request twice
        return propose()

    def _target(self, redirect: str | None) -> str | None:
        """Where to send: the node a redirect named, else the leader, else any live node."""
        live = [n.id for n in self.cluster.live()]
        if redirect in live:
            return redirect
        leader = self.cluster.leader()
        if leader is not None and self.rng.random() < 0.9:
            return leader
        return self.rng.choice(live) if live else None
