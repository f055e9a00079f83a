"""The seed's command contract, as pure bookkeeping.

``run_command`` at a node ends in exactly one :class:`CommandResult`:

- the leader proposed it, it committed and was applied → ``result`` (or ``error`` if the state
  machine refused it);
- the node is a follower that knows the leader → ``redirect`` naming it, at once;
- no leader is known, or leadership is being transferred → ``retry``, at once;
- the leader lost leadership before the entry applied → ``redirect`` or ``retry`` with the
  entry's ``index`` (see :attr:`CommandResult.outcome_unknown`);
- the entry was overwritten by another term's entry → ``redirect`` or ``retry`` without an
  index: it can never commit, so nothing was done;
- the deadline passed first → ``timeout_expired``.

A redirect or retry that carries an ``index`` (given after the command entered the log), like a
timeout, means "outcome unknown": the entry may still commit through a later leader. One without
an index means the command was refused before it was proposed (or its entry was overwritten). A client that resubmits such a
command without a session may apply it twice; in a client session (§6.3, ``raftnode.wire.sessions``)
the apply layer answers the second copy with the first one's outcome.

:class:`CommandTracker` maps proposed log positions to the caller's tokens and turns what the
node observes (entries applied, leadership lost, time passing) into those answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from .errors import NotLeader, RaftError, TransferInProgress

Token = TypeVar("Token")


@dataclass(frozen=True, slots=True, kw_only=True, init=False)  # __init__ below: one per command, made cheap
class CommandResult:
    """The answer to one ``run_command``, named as in the seed document.

    Exactly one of ``result``-with-no-other-flag, ``error``, ``redirect``, ``retry`` or
    ``timeout_expired`` describes the outcome; ``index`` is the log index the command took, if any.
    A ``retry`` may carry an ``error`` saying why (a leader whose disk is full): retry elsewhere.
    A ``redirect`` or ``retry`` with an ``index`` was proposed at that index before its leader
    lost leadership (:attr:`outcome_unknown`).
    """

    result: Any = None
    error: str | None = None
    redirect: str | None = None
    retry: bool = False
    timeout_expired: bool = False
    index: int | None = None

    def __init__(
        self,
        *,
        result: Any = None,
        error: str | None = None,
        redirect: str | None = None,
        retry: bool = False,
        timeout_expired: bool = False,
        index: int | None = None,
    ) -> None:
        # The dataclass's frozen __init__ sets each field through object.__setattr__ by name;
        # the slots' own setters cost half as much (the fields stay read-only: __setattr__ refuses).
        _set_result(self, result)
        _set_error(self, error)
        _set_redirect(self, redirect)
        _set_retry(self, retry)
        _set_timeout_expired(self, timeout_expired)
        _set_index(self, index)

    @property
    def ok(self) -> bool:
        """The command was applied and the state machine accepted it."""
        return self.error is None and self.redirect is None and not self.retry and not self.timeout_expired

    @property
    def outcome_unknown(self) -> bool:
        """The command entered the log at ``index`` and its leader lost leadership before it
        applied: it may still commit through a later leader (resend only within a session)."""
        return (self.redirect is not None or self.retry) and self.index is not None

    @classmethod
    def from_refusal(cls, exc: RaftError) -> CommandResult:
        """The immediate answer when the core refuses a proposal."""
        if isinstance(exc, NotLeader) and exc.leader is not None:
            return cls(redirect=exc.leader)
        if isinstance(exc, (NotLeader, TransferInProgress)):
            return cls(retry=True)
        return cls(error=str(exc))

    @classmethod
    def not_leader_any_more(cls, leader: str | None, index: int | None = None) -> CommandResult:
        """Go to ``leader`` (retry if unknown); ``index``: the command was proposed there first."""
        return cls(redirect=leader, index=index) if leader is not None else cls(retry=True, index=index)


_set_result, _set_error, _set_redirect, _set_retry, _set_timeout_expired, _set_index = (
    CommandResult.__dict__[name].__set__ for name in ("result", "error", "redirect", "retry", "timeout_expired", "index")
)


class CommandTracker(Generic[Token]):
    """Which caller waits for which log position, and what to answer them."""

    def __init__(self) -> None:
        self._pending: dict[int, tuple[int, Token, int | None]] = {}  # index -> (term, token, deadline)

    def __len__(self) -> int:
        return len(self._pending)

    def track(self, index: int, term: int, token: Token, *, deadline: int | None = None) -> None:
        """Remember that ``token`` waits for the entry proposed at (index, term)."""
        self._pending[index] = (term, token, deadline)

    def applied(
        self, index: int, term: int, *, result: Any = None, error: str | None = None, leader: str | None = None
    ) -> tuple[Token, CommandResult] | None:
        """The entry at ``index`` was applied with this outcome; answers its waiter, if any.

        If the applied entry is not the one proposed (another term took the index), the waiter is
        told to go to ``leader`` or retry, without an index: its entry is gone, nothing was done.
        """
        taken = self.take(index, term, leader)
        if taken is None or taken[1] is not None:
            return taken  # type: ignore[return-value]
        return taken[0], CommandResult(result=result, error=error, index=index)

    def take(self, index: int, term: int, leader: str | None) -> tuple[Token, CommandResult | None] | None:
        """``applied`` leaving the answer of an applied command to the caller: ``(token, None)``
        when the entry applied at ``index`` is the one ``token`` proposed (answer it from the
        outcome, with ``index``); ``(token, answer)`` when another term's entry took the index."""
        pending = self._pending.pop(index, None)
        if pending is None:
            return None
        if pending[0] != term:
            return pending[1], CommandResult.not_leader_any_more(leader)
        return pending[1], None

    def failed(self, index: int, error: str) -> tuple[Token, CommandResult] | None:
        """The entry at ``index`` can never be applied here (the applier halted); answer its waiter."""
        pending = self._pending.pop(index, None)
        return None if pending is None else (pending[1], CommandResult(error=error, index=index))

    def leadership_lost(self, leader: str | None) -> list[tuple[Token, CommandResult]]:
        """Every waiter is answered with a redirect to ``leader`` (or retry if unknown) carrying
        its entry's index: proposed, outcome unknown."""
        answers = [(p[1], CommandResult.not_leader_any_more(leader, index)) for index, p in self._pending.items()]
        self._pending.clear()
        return answers

    def expire(self, now: int) -> list[tuple[Token, CommandResult]]:
        """Waiters whose deadline is at or before ``now`` are answered ``timeout_expired``."""
        expired = [i for i, p in self._pending.items() if p[2] is not None and p[2] <= now]
        return [(self._pending.pop(i)[1], CommandResult(timeout_expired=True, index=i)) for i in expired]
