"""The commands that ask the cluster a few questions and exit: ``status``, ``leader``,
``run-command`` and ``query``, without trio.

Theory of operation
-------------------
Every ``raftctl`` call is a new process, and these are the ones users and scripts run most often
(and time). Importing trio alone costs about as much as the whole rest of such a call, so these
commands talk to the nodes through ``raftnode.client.SyncClusterClient`` (blocking sockets,
the same wire protocol and the same ``run_command`` rules as ``raftnode.client.trioclient``), and this module
imports neither trio nor ``raftnode.core``.

The rules raftctl adds on top of the client -- what a node that does not answer is called, which
node ``leader``/``follower`` name, how client errors become the contract's exit codes -- are
written once, here, as plain functions, and ``raftctl.cluster`` (the trio side, for the commands
that run longer or do many things at once) uses the same functions; ``cluster.leader`` (for
``raftctl bench``) runs ``leader`` of this module in a worker thread.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from raftnode.client.clientcore import Advanced, CommandOutcome, advance
from raftnode.client.clientproto import ClientError, NodeUnreachable, proposed_index
from raftnode.client.clientproto import NoLeader as ClientNoLeader
from raftnode.client.clientproto import Timeout as ClientTimeout
from raftnode.client.syncclient import SyncClusterClient
from raftnode.config import ClusterConfig, ConfigError
from raftnode.security.credentials import Credentials, CredentialsError, ensure_credentials, load_credentials, secrets_path
from raftnode.wire import requests as wire
from raftnode.wire.records import Record

from .errors import (
    ClusterNotRunning,
    NoLeaderError,
    NotRunning,
    Refused,
    UnknownNode,
    UsageProblem,
    WaitTimeout,
)
from .model import ClusterStatus, NodeRow

if TYPE_CHECKING:
    import ssl

#: Seconds one ``status`` request may take before its node counts as down.
STATUS_TIMEOUT = 1.0
#: The least time a picture of a cluster gets, and with TLS (a handshake before the first answer).
PICTURE_FLOOR = 0.1
TLS_PICTURE_FLOOR = 0.5
#: Seconds between two looks at the cluster while waiting for something.
POLL_INTERVAL = 0.05
SPECIAL_NODES = ("leader", "follower")


class PollTimeout(Exception):
    """``poll`` (of either session shell) ran out of time (``last_status`` holds its last picture)."""


# -- rules shared with raftctl.cluster ---------------------------------------------------------------


def node_row(config: ClusterConfig, node_id: str, answer: Mapping[str, Any] | ClientError) -> NodeRow:
    """The row of ``node_id`` from its answer to ``status`` (or the error it met instead).

    A node that did not answer is down, and its note says why: it refuses this client over TLS, a
    live pid that does not answer, the reason it refused to start (from its log), or simply not running.
    """
    if isinstance(answer, ClientError):
        # Imported only for a node that is down: a healthy status does not pay for it.
        from . import supervisor

        if "TLS" in str(answer):  # something answers, and refuses this client: say why
            return NodeRow.down(node_id, f"refuses this client: {str(answer).split(': ', 1)[-1]}")
        pid = supervisor.live_pid(config, node_id)
        if pid:
            return NodeRow.down(node_id, f"pid {pid} not answering")
        failure = supervisor.start_failure(config, node_id)
        return NodeRow.down(node_id, f"refused to start: {failure}" if failure else "not running")
    if not answer.get("ok", True):
        return NodeRow.down(node_id, f"starting ({answer.get('error')})")
    return NodeRow.from_response(node_id, answer)


def client_fields(config: ClusterConfig, *, admin: bool = True) -> dict[str, str] | None:
    """What raftctl adds to every request: the cluster id and (``admin``) the admin token, from the
    state dir's secrets file; None while the cluster has none (nothing was started yet).

    Raises:
        UsageProblem: the file exists but is unusable (open to other users, malformed).
    """
    path = secrets_path(config.state_dir)
    if not path.exists():
        return None
    try:
        return load_credentials(path).client_fields(admin=admin)
    except CredentialsError as exc:
        raise UsageProblem(str(exc)) from None


def client_tls(config: ClusterConfig) -> ssl.SSLContext | None:
    """raftctl's TLS client context from the ``[tls]`` table (None without one): the cluster CA
    and the client certificate. UsageProblem naming the file if one is unusable."""
    if config.tls is None:
        return None
    from raftnode.security.tls import client_context

    try:
        return client_context(config)
    except ConfigError as exc:
        raise UsageProblem(str(exc)) from None


def cluster_certificates(config: ClusterConfig) -> list[Path]:
    """With ``[tls]``, the cluster CA and every certificate still missing, made now (``raftnode.security.pki``:
    ``init --tls``, ``up``, ``add-node``); the files written. UsageProblem if they cannot be made."""
    if config.tls is None:
        return []
    from raftnode.security import pki

    try:
        return pki.make_cluster_pki(config)
    except (OSError, ValueError) as exc:
        raise UsageProblem(f"{config.tls.dir}: cannot make the cluster's certificates: {exc}") from None


def cluster_credentials(config: ClusterConfig) -> tuple[Credentials, bool]:
    """The cluster's credentials, made now if its state dir has none (``raftctl init`` and ``up``);
    returns them and whether they were made. UsageProblem if the file is unusable."""
    try:
        return ensure_credentials(secrets_path(config.state_dir))
    except CredentialsError as exc:
        raise UsageProblem(str(exc)) from None
    except OSError as exc:
        raise UsageProblem(f"{secrets_path(config.state_dir)}: cannot create the secrets file: {exc.strerror or exc}") from None


def other_cluster(config: ClusterConfig, node_id: str) -> str | None:
    """Who holds node ``node_id``'s client address if it is a node of another cluster (asked
    without this cluster's id, which such a node would not answer), e.g.
    ``"node n1 of another cluster (id 3f..., pid 123)"``; None if it is not one."""
    try:
        own_id = load_credentials(secrets_path(config.state_dir)).cluster_id
    except CredentialsError:
        own_id = None
    with SyncClusterClient({node_id: config.node(node_id).client}, connect_timeout=0.5, tls=client_tls(config)) as client:
        answer = client.call_each({node_id: wire.Status()}, timeout=1.0)[node_id]
    if isinstance(answer, ClientError) or not isinstance(answer.get("cluster_id"), str):
        return None
    if answer["cluster_id"] == own_id:
        return None
    return f"node {answer.get('node')} of another cluster (id {answer['cluster_id']}, pid {answer.get('pid')})"


def picture(config: ClusterConfig, rows: Mapping[str, NodeRow]) -> ClusterStatus:
    """A ClusterStatus from one row per node, in file order."""
    return ClusterStatus(config.name, tuple(rows[i] for i in config.node_ids), time.time())


def picture_floor(config: ClusterConfig) -> float:
    """The least time one picture of the cluster may take: a new TLS connection needs a handshake
    (both ends sign and verify) before the first answer, a plain one a round trip."""
    return TLS_PICTURE_FLOOR if config.tls is not None else PICTURE_FLOOR


def not_running(config: ClusterConfig, status: ClusterStatus) -> Exception:
    """The error when no node answered: ClusterNotRunning, or UsageProblem when the nodes run but
    refuse this client over TLS (the cluster file and the cluster disagree on [tls])."""
    refusals = [f"{row.id}: {row.note}" for row in status.nodes if "refuses this client" in (row.note or "")]
    if refusals:
        return UsageProblem(f"the nodes of {config.path} run but refuse this client ({'; '.join(refusals)})")
    return ClusterNotRunning(config.path)


def check_name(config: ClusterConfig, name: str) -> None:
    """Raise UnknownNode unless ``name`` is a node id, ``leader`` or ``follower``."""
    if name not in SPECIAL_NODES and name not in config.node_ids:
        raise UnknownNode(name, config.node_ids)


def chooser(name: str, exclude: Sequence[str] = ()) -> Callable[[ClusterStatus], str | None]:
    """What ``leader`` or ``follower`` names in a picture (None: nothing yet)."""

    def pick(status: ClusterStatus) -> str | None:
        if name == "leader":
            return status.leader
        return next((r.id for r in status.followers() if r.id not in exclude), None)

    return pick


def likely_leader(status: ClusterStatus) -> str | None:
    """The node a command without ``--node`` goes to first: the leader a majority acknowledges,
    else the node claiming to lead in the newest term (a deposed leader cut off with a minority
    claims an older one, and would take the command and never commit it), else None."""
    row = status.leader_row
    if row is not None:
        return row.id
    claimants = status.claimed_leaders()
    return claimants[0].id if claimants else None


def unresolved(config: ClusterConfig, name: str, timeout: float, last: ClusterStatus | None) -> Exception:
    """The error when ``leader``/``follower`` named no node within ``timeout``."""
    if last is not None and not last.any_alive:
        return not_running(config, last)
    if name == "leader":
        return NoLeaderError(f"no leader within {timeout:g} s{claims(last)}")
    return NotRunning(f"no live follower within {timeout:g} s")


def no_leader(config: ClusterConfig, timeout: float, last: ClusterStatus | None) -> Exception:
    """The error of ``raftctl leader`` when no leader showed within ``timeout``."""
    if last is not None and not last.any_alive:
        return not_running(config, last)
    within = f" within {timeout:g} s" if timeout > 0 else ""
    return NoLeaderError(f"the cluster has no leader{within}{claims(last)}")


def claims(status: ClusterStatus | None) -> str:
    """`` (n1 claims term 3 without a majority)``, or how many nodes answer; for error messages."""
    if status is None:
        return ""
    found = status.claimed_leaders()
    if not found:
        alive = len(status.alive)
        return f" ({alive} of {len(status.nodes)} nodes answer, none is leader)"
    return " (" + ", ".join(f"{r.id} claims term {r.term} without a majority" for r in found) + ")"


@dataclass(frozen=True)
class CommandReply:
    """The answer to ``run-command``/``query``: the client's final answer (the one result type
    from the client to the printed line), the command and how long it took."""

    command: str
    outcome: CommandOutcome
    elapsed: float = 0.0

    node = property(lambda self: self.outcome.node)
    attempts = property(lambda self: self.outcome.attempts)
    result = property(lambda self: self.outcome.response.get("result"))
    error = property(lambda self: self.outcome.response.get("error"))
    index = property(lambda self: self.outcome.response.get("index"))

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "command": self.command,
            "result": self.result,
            "error": self.error,
            "node": self.node,
            "index": self.index,
            "attempts": self.attempts,
            "elapsed_ms": round(self.elapsed * 1000, 1),
        }


def single_reply(target: str, command: str, timeout: float, answer: Mapping[str, Any] | ClientError, started: float,
                 op: str = "run_command") -> CommandReply:
    """``run-command --no-follow``: the one answer of ``target`` is final; anything but a result
    or a state-machine error is an error of the contract."""
    if isinstance(answer, NodeUnreachable):
        raise NotRunning(f"node {target} is not running")
    if isinstance(answer, ClientTimeout):
        raise WaitTimeout(f"node {target} did not answer within {timeout:g} s")
    if isinstance(answer, ClientError):
        raise Refused(str(answer))
    if answer.get("timeout_expired"):
        raise WaitTimeout(f"node {target} did not commit {command!r} within {timeout:g} s (it may still commit later)")
    if answer.get("redirect") or answer.get("retry"):
        raise not_done_there(target, command, answer, op)
    if "error" in answer and "result" not in answer:
        raise Refused(f"node {target} refused the request: {answer['error']}")
    return CommandReply(command, CommandOutcome(answer, target, 1), time.monotonic() - started)


def not_done_there(target: str, command: str, answer: Mapping[str, Any], op: str) -> Exception:
    """The error of a redirect or retry answered to a single request (``--no-follow``).

    Refused before proposing: nothing was done (Refused, exit 1; "no leader": NoLeaderError, 3).
    Proposed, then leadership lost (the answer carries the entry's index): the command may still
    commit under the next leader, and without a session a resend may apply it twice -- the
    outcome is unknown, as at a deadline (WaitTimeout, exit 4).
    """
    try:
        index = proposed_index(answer)
    except ClientError as exc:
        return Refused(f"node {target}: {exc}")
    leader, error = answer.get("redirect"), answer.get("error")
    if index is not None:
        successor = f"{leader} leads now" if leader and leader != target else "it knows no leader now"
        return WaitTimeout(f"node {target} took {command!r} into its log at index {index}, then lost leadership "
                           f"({successor}): the outcome is unknown, it may still commit; resending it outside "
                           "a session may apply it twice")
    what = "served" if op == "query" else "committed"
    if leader == target:  # a leader that could not confirm its leadership with a majority (a read)
        return Refused(f"node {target} claims to lead but could not confirm it with a majority (cut off or "
                       f"deposed); {command!r} was not {what} there")
    if leader:
        return Refused(f"node {target} is not the leader (it names {leader}); nothing was done there")
    why = f" ({error})" if isinstance(error, str) else ""
    return NoLeaderError(f"node {target} is not the leader and knows none right now{why}; "
                         f"{command!r} was not {what} there")


def command_failure(config: ClusterConfig, error: ClientError, current: Callable[[], ClusterStatus]) -> Exception:
    """The contract's error for a client error of ``run_command`` (``current`` takes a picture,
    to tell a cluster without a leader from one that is not running at all)."""
    if isinstance(error, ClientNoLeader):
        picture = current()
        if not picture.any_alive:
            return not_running(config, picture)
        if picture.leader_row is not None:  # the deadline ran out, not the leader (exit 4, not 3)
            return WaitTimeout(f"{error}, though {picture.leader_row.id} leads: the deadline passed first")
        return NoLeaderError(str(error))
    if isinstance(error, ClientTimeout):
        return WaitTimeout(f"{error} (it may still commit later)")
    return Refused(str(error))


# -- the session: one core, two thin shells ------------------------------------------------------------


class Look(Record):
    """Step: take a picture of the cluster, each node given ``timeout`` seconds; the shell sends
    the ClusterStatus back."""

    __slots__ = ("timeout",)
    timeout: float


class Wait(Record):
    """Step: sleep ``seconds``."""

    __slots__ = ("seconds",)
    seconds: float


class SessionCore:
    """One command's view of one cluster -- its config and a client -- and the session's rules as
    steps (:class:`Look`, :class:`Wait`) without I/O, run by :class:`QuickSession` (blocking,
    ``SyncClusterClient``) and ``raftctl.cluster.Session`` (trio, ``ClusterClient``)."""

    def __init__(self, config: ClusterConfig, client: Any) -> None:
        self.config = config
        self.client = client
        #: The shell's monotonic clock (``poll``'s deadline).
        self.clock: Callable[[], float] = time.monotonic
        #: The last picture ``poll`` took (what a timeout reports on).
        self.last_status: ClusterStatus | None = None

    def status_requests(self) -> dict[str, wire.Status]:
        return {node_id: wire.Status() for node_id in self.config.node_ids}

    def picture_of(self, answers: Mapping[str, Mapping[str, Any] | ClientError]) -> ClusterStatus:
        """The picture the answers to ``status_requests`` make."""
        return picture(self.config, {node_id: node_row(self.config, node_id, answers[node_id]) for node_id in answers})

    def check_name(self, name: str) -> None:
        """Raise UnknownNode unless ``name`` is a node id, ``leader`` or ``follower``."""
        check_name(self.config, name)

    def running_status_steps(self, timeout: float = STATUS_TIMEOUT) -> Generator[Look | Wait, Any, ClusterStatus]:
        """``status()``, raising ClusterNotRunning if no node answers."""
        status: ClusterStatus = yield Look(timeout)
        if not status.any_alive:
            raise not_running(self.config, status)
        return status

    def ensure_running_steps(self) -> Generator[Look | Wait, Any, None]:
        """Raise ClusterNotRunning at once if no node can be running; cheap when one is.

        A live pid file settles it without the network; otherwise every node is probed.
        """
        from . import supervisor

        if not supervisor.live_pids(self.config):
            yield from self.running_status_steps(0.5)

    def poll_steps(
        self, check: Callable[[ClusterStatus], Any], timeout: float, interval: float = POLL_INTERVAL
    ) -> Generator[Look | Wait, Any, tuple[Any, ClusterStatus]]:
        """Take pictures until ``check(picture)`` is truthy; ends in it and the picture.

        The first picture is always taken, even with ``timeout`` 0.

        Raises:
            PollTimeout: ``timeout`` passed; ``self.last_status`` is the last picture.
        """
        deadline = self.clock() + timeout
        per_picture = min(STATUS_TIMEOUT, max(timeout, picture_floor(self.config)))
        self.last_status = None
        status = yield Look(per_picture)
        while True:
            self.last_status = status
            found = check(status)
            if found:
                return found, status
            left = deadline - self.clock()
            if left <= 0:
                raise PollTimeout
            yield Wait(min(interval, left))
            left = deadline - self.clock()
            if left <= 0:
                raise PollTimeout
            status = yield Look(min(per_picture, left))
            if self.clock() >= deadline:
                raise PollTimeout  # a picture cut short by the deadline is not a picture

    def resolve_steps(self, name: str, timeout: float = 5.0, exclude: Sequence[str] = ()) -> Generator[Look | Wait, Any, str]:
        """The node id that ``name`` stands for (an id, ``leader`` or ``follower``).

        ``leader`` and ``follower`` wait up to ``timeout`` for such a node; ``exclude`` names ids
        ``follower`` must not pick.

        Raises:
            UnknownNode: ``name`` is none of these (exit 2).
            ClusterNotRunning: no node answers (exit 5).
            NoLeaderError: no leader within ``timeout`` (exit 3).
            NotRunning: no live follower within ``timeout`` (exit 5).
        """
        check_name(self.config, name)
        if name not in SPECIAL_NODES:
            return name
        yield from self.ensure_running_steps()
        try:
            found, _ = yield from self.poll_steps(chooser(name, exclude), timeout)
        except PollTimeout:
            raise unresolved(self.config, name, timeout, self.last_status) from None
        return found


def run_steps(steps: Generator[Look | Wait, Any, Any], look: Callable[[float], ClusterStatus]) -> Any:
    """Run a session's steps blocking: ``look(timeout)`` takes a picture."""
    step = advance(steps)
    while not isinstance(step, Advanced):
        step = advance(steps, look(step.timeout) if isinstance(step, Look) else time.sleep(step.seconds))
    return step.value


class QuickSession(SessionCore):
    """The blocking shell of :class:`SessionCore` (see ``quick_session``); ``client`` is a
    ``SyncClusterClient``."""

    def status(self, *, timeout: float = STATUS_TIMEOUT) -> ClusterStatus:
        """One picture of the cluster: every node asked at once, a row per node."""
        return self.picture_of(self.client.call_each(self.status_requests(), timeout=timeout))

    def running_status(self, *, timeout: float = STATUS_TIMEOUT) -> ClusterStatus:
        return run_steps(self.running_status_steps(timeout), self._look)

    def ensure_running(self) -> None:
        return run_steps(self.ensure_running_steps(), self._look)

    def poll(
        self, check: Callable[[ClusterStatus], Any], *, timeout: float, interval: float = POLL_INTERVAL
    ) -> tuple[Any, ClusterStatus]:
        return run_steps(self.poll_steps(check, timeout, interval), self._look)

    def resolve(self, name: str, *, timeout: float = 5.0, exclude: Sequence[str] = ()) -> str:
        return run_steps(self.resolve_steps(name, timeout, exclude), self._look)

    def _look(self, timeout: float) -> ClusterStatus:
        return self.status(timeout=timeout)


@contextlib.contextmanager
def quick_session(
    config: ClusterConfig, *, connect_timeout: float = 0.5, client_session: bool = False
) -> Iterator[QuickSession]:
    """Open a QuickSession on ``config``'s cluster (closing its connections on exit); with
    ``client_session`` its commands run in a client session (registered on the first one)."""
    addresses = {n.id: n.client for n in config.nodes}
    if config.tls is not None:
        connect_timeout = max(connect_timeout, 2 * TLS_PICTURE_FLOOR)  # the deadline covers the handshake too
    with SyncClusterClient(addresses, connect_timeout=connect_timeout, fields=client_fields(config),
                           sessions=client_session, tls=client_tls(config)) as client:
        yield QuickSession(config, client)


# -- the commands ----------------------------------------------------------------------------------


def status(config: ClusterConfig) -> ClusterStatus:
    """``raftctl status``: a picture of the cluster; ClusterNotRunning if no node answers."""
    with quick_session(config) as s:
        return s.running_status()


def leader(config: ClusterConfig, *, timeout: float = 0.0) -> NodeRow:
    """``raftctl leader``: the leader's row, waiting up to ``timeout``; NoLeaderError if none."""
    with quick_session(config) as s:
        s.ensure_running()
        try:
            found, _ = s.poll(lambda st: st.leader_row, timeout=timeout)
        except PollTimeout:
            raise no_leader(config, timeout, s.last_status) from None
        return found


def run_command(
    config: ClusterConfig,
    command: str,
    *,
    node: str | None = None,
    timeout: float = 5.0,
    follow: bool = True,
    op: str = "run_command",
) -> CommandReply:
    """``raftctl run-command`` and ``query``: commit ``command`` through the leader and apply it,
    or with ``op="query"`` read it without the log (ReadIndex) at ``node`` or the leader.

    A command (and ``follow``) registers a client session first (one more commit), so the
    command, resent after a lost connection, a redirect or a retry, is applied at most once; the
    session is left to expire (the cluster evicts the least recently active beyond its bound). A
    query needs none: a read changes nothing.

    With ``node``, the request goes to that node first (``leader``/``follower`` resolved first);
    with ``follow`` (the default) redirects are followed and the command is retried on other
    nodes while there is no leader, until ``timeout``. Without ``follow`` exactly one request
    goes to ``node`` and its answer is final: a redirect or "no leader" is a refusal.

    A state-machine error comes back as ``CommandReply.error`` (the CLI exits 1).

    Raises:
        ClusterNotRunning / NotRunning: nothing runs, or the named node does not (exit 5).
        NoLeaderError: no leader answered within ``timeout`` (exit 3).
        WaitTimeout: the leader took the command but did not commit it in time (exit 4).
        Refused: the node refused the request (exit 1).
    """
    started = time.monotonic()
    with quick_session(config, client_session=op == "run_command") as s:
        target: str | None = None
        if node is not None:
            target = s.resolve(node, timeout=timeout)
        if not follow:
            if target is None:
                raise UsageProblem("--no-follow needs --node: the one node to ask")
            request = wire.command_request(command, timeout=timeout, op=op)
            answer = s.client.call_each({target: request}, timeout=timeout + 1)[target]
            return single_reply(target, command, timeout, answer, started, op)
        if target is not None:
            # An explicitly named node must be up: a command for a dead node is an error (5).
            try:
                s.client.connect(target)
            except ClientError:
                raise NotRunning(f"node {target} is not running") from None
        else:
            s.client.leader_hint = likely_leader(s.running_status(timeout=max(picture_floor(config), min(timeout, 0.5))))
        try:
            outcome = s.client.run_command(command, node=target, timeout=timeout, op=op)
        except ClientError as exc:
            raise command_failure(config, exc, lambda: s.status(timeout=0.5)) from None
        return CommandReply(command, outcome, time.monotonic() - started)
