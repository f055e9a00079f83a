"""Simulated clients that use sessions (thesis §6.3) and resend, as real clients do.

Each client registers a session, then runs commands — several in flight at once now and then —
and resends each one, with the same stamp, a tick or two after a redirect, a retry, a timeout or
a node that crashed under it, until it gets the command's own outcome or gives up; now and then it sends
the same request twice at once (a duplicated delivery). Some commands go several at once in one
batch entry (``batch``: a ``run_many``, ``raftnode.wire.batches``), and commands due for a resend
to the same node at the same time are resent in one batch half of the time. Every final answer is reported to the
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

    def __init__(self, cluster: SimCluster, rng: random.Random, *, batch_rng: random.Random | None = None,
                 count: int = 3, give_up_after: int = 600,
                 duplicate_rate: float = 0.1, max_in_flight: int = 4):
        self.cluster = cluster
        self.rng = rng
        # Batches draw from a stream of their own: the other draws stay as they were without them.
        self.batch_rng = batch_rng if batch_rng is not None else random.Random("batches")
        self.clients = [_Client(f"c{i}") for i in range(1, count + 1)]
        self.give_up_after = give_up_after
        self.duplicate_rate = duplicate_rate
        self.max_in_flight = max_in_flight
        self.stats = {"commands": 0, "batches": 0, "resent": 0, "acknowledged": 0, "expired": 0, "abandoned": 0, "registered": 0}

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

    def batch(self, commands: list[str]) -> None:
        """A client with a session and room for them sends ``commands`` in one batch entry (as
        many as it has room for, if at least two)."""
        ready = [c for c in self.clients if c.session is not None and self.max_in_flight - len(c.commands) >= 2]
        if not ready:
            return
        client = self.batch_rng.choice(ready)
        session = client.session
        assert session is not None
        commands = commands[: self.max_in_flight - len(client.commands)]
        seqs = [session.begin() for _ in commands]
        self.stats["commands"] += len(commands)
        self.stats["batches"] += 1
        give_up_at = self.cluster.now + self.give_up_after
        attempts = self._send_batch(session, seqs, commands)
        client.commands.extend(_Command(session, seq, command, give_up_at, attempt)
                               for seq, command, attempt in zip(seqs, commands, attempts))

    def step(self) -> None:
        for client in self.clients:
            if client.session is None:
                self._register(client)
            if client.commands:
                due: list[tuple[_Command, str]] = []
                client.commands = [c for c in client.commands if not self._settled(client, c, due)]
                self._resend(due)

    def _resend(self, due: list[tuple[_Command, str]]) -> None:
        """Resend ``due`` (command, target): the ones bound for the same node in one batch, half of the time."""
        by_target: dict[str, list[_Command]] = {}
        for command, target in due:
            by_target.setdefault(target, []).append(command)
        for target, commands in by_target.items():
            self.stats["resent"] += len(commands)
            if len(commands) >= 2 and len({c.session for c in commands}) == 1 and self.batch_rng.random() < 0.5:
                attempts = self._send_batch(commands[0].session, [c.seq for c in commands],
                                            [c.command for c in commands], target)
                for command, attempt in zip(commands, attempts):
                    command.attempt = attempt
                continue
            for command in commands:
                command.attempt = self._send(command.session, command.seq, command.command, target)

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

    def _settled(self, client: _Client, command: _Command, due: list[tuple[_Command, str]]) -> bool:
        """Whether ``command`` is finished with (answered or given up); adds it to ``due`` with its
        target when it is to be resent now."""
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
        due.append((command, target))
        return False

    def _send_batch(self, session: ClientSession, seqs: list[int], commands: list[str],
                    target: str | None = None) -> list[ClientRequest]:
        """``commands`` of ``session`` (sequences ``seqs``) in one batch entry, now and then delivered twice."""
        target = target or self._target(None, self.batch_rng)
        stamps = [session.stamp(seq) for seq in seqs]
        if target is None:
            return [ClientRequest(id=0, node="-", command=command, submitted=self.cluster.now, lost=True, session=stamp)
                    for command, stamp in zip(commands, stamps)]
        if self.batch_rng.random() < self.duplicate_rate:
            self.cluster.propose_batch(target, commands, stamps=stamps)  # a duplicated delivery
        return self.cluster.propose_batch(target, commands, stamps=stamps)

    def _send(self, session: ClientSession, seq: int, command: str, target: str | None = None) -> ClientRequest:
        target = target or self._target(None)
        stamp = session.stamp(seq)
        if target is None:
            return ClientRequest(id=0, node="-", command=command, submitted=self.cluster.now, lost=True, session=stamp)
        propose: Callable[[], ClientRequest] = lambda: self.cluster.propose(target, command, session=stamp)
        if self.rng.random() < self.duplicate_rate:
            propose()  # a duplicated delivery: the same request twice
        return propose()

    def _target(self, redirect: str | None, rng: random.Random | None = None) -> str | None:
        """Where to send: the node a redirect named, else the leader, else any live node."""
        rng = rng or self.rng
        live = [n.id for n in self.cluster.live()]
        if redirect in live:
            return redirect
        leader = self.cluster.leader()
        if leader is not None and rng.random() < 0.9:
            return leader
        return rng.choice(live) if live else None
