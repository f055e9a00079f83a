"""The embedding API, named as in the seed document (``state_machine_commands.rst``).

An application implements :class:`PilotAPI` — at least ``process_command`` — and creates a
:class:`HullAPI`, which it runs inside its own trio program::

    hull = HullAPI.from_config(load_config("cluster.toml"), "n1", pilot=MyStateMachine())
    async with trio.open_nursery() as nursery:
        await nursery.start(hull.run)
        outcome = await hull.run_command("incr 5", timeout=2.0)   # a CommandResult

``run_command`` follows the seed's contract: at the leader the command is persisted,
replicated, committed, applied through ``process_command`` and its result returned; an error in
``process_command`` returns ``error``; a follower answers ``redirect`` with the leader's id; with
no known leader the answer is ``retry``; a command that cannot commit in time answers
``timeout_expired``.

``query`` is a linearizable read without a log entry (ReadIndex, thesis §6.4), at the leader or
a follower: it reflects every command acknowledged before the call, through the pilot's
read-only ``query`` method.

A redirect, retry or timeout after the command entered the log means "outcome unknown": it may
still commit. To resend safely, run commands in a client session (thesis §6.3,
``raftnode.wire.sessions``): ``register_session`` returns its id, and each command carries a
:class:`~raftnode.wire.sessions.SessionStamp` (``raftnode.client.clientproto.ClientSession`` numbers them); a
command resent with the same stamp is applied at most once and answered with its first outcome::

    session = ClientSession((await hull.register_session()).result)
    seq = session.begin()
    outcome = await hull.run_command("incr 5", session=session.stamp(seq))  # resend: same stamp
    session.end(seq)

Because the seed's library runs over the application's own messaging, a HullAPI may be given the
application's own :class:`~raftnode.transport.Transport` and its own
:class:`~raftnode.storage.Storage` instead of the built-in TCP transport and disk storage.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import trio

from .config import TICK_MS, Address, ClusterConfig, parse_context, raft_config
from .core.commands import CommandResult
from .core.quorum import Configuration
from .node.runtime import NodeEvent, NodeStatus, RaftNode
from .security.credentials import Credentials, ensure_credentials, secrets_path
from .security.tls import NodeTls, node_tls
from .storage import Storage
from .transport import Transport
from .wire.sessions import SessionStamp, SessionTable

__all__ = ["CommandResult", "HullAPI", "NodeEvent", "NodeStatus", "PilotAPI"]


@runtime_checkable
class PilotAPI(Protocol):
    """What the application supplies: its state machine.

    ``process_command`` applies one committed command and returns its result; it must be
    deterministic. Raise :class:`raftnode.node.statemachines.CommandError` to refuse a command (the
    refusal is the replicated outcome). Implement ``snapshot() -> bytes`` and
    ``restore(data: bytes)`` too, so logs can be compacted; an optional ``validate(command)``
    that raises CommandError lets the leader refuse a malformed command before it enters the log.
    An optional ``query(command)`` answers a read-only command from the current state without
    changing it (raise CommandError for a command that is not a read): ``HullAPI.query`` then
    serves reads without the log; without it queries go through the log like commands.
    """

    def process_command(self, command: str) -> Any: ...


#: What a node started with ``cluster.fsync = false`` logs (node id, cluster file).
UNSAFE_NO_FSYNC = (
    "!!! UNSAFE: node %s runs with fsync = false (%s): nothing it writes is made durable, so a crash "
    "or power loss can lose commands already acknowledged and break Raft's safety. For benchmarks "
    "and tests only; never for data you keep. !!!"
)


def _disk_storage(config: ClusterConfig, node_id: str, data_dir: Path | None) -> Storage:
    """The node's DiskStorage (``<state_dir>/data/<id>`` unless ``data_dir``); with
    ``cluster.fsync = false`` without fsyncs, and the node says so loudly."""
    from .storage.disk import DiskStorage

    if not config.fsync:
        logging.getLogger("raftnode").warning(UNSAFE_NO_FSYNC, node_id, config.path)
    return DiskStorage(data_dir or config.state_dir / "data" / node_id, fsync=config.fsync)


class HullAPI:
    """One replicated node inside an application (a thin face over :class:`RaftNode`)."""

    def __init__(self, node: RaftNode, *, owns_storage: bool = False, credentials: Credentials | None = None):
        self.node = node
        self.credentials = credentials
        self._owns_storage = owns_storage

    @classmethod
    def from_config(
        cls,
        config: ClusterConfig,
        node_id: str,
        *,
        pilot: PilotAPI,
        transport: Transport | None = None,
        storage: Storage | None = None,
        data_dir: Path | None = None,
        rng: random.Random | None = None,
        credentials: Credentials | None = None,
        sessions: SessionTable | None = None,
        listen_host: str | None = None,
        tls: NodeTls | None = None,
    ) -> HullAPI:
        """A node of the cluster in ``config``; built-in TCP transport and disk storage unless given.

        ``credentials`` (the cluster id and secrets of the built-in transport) default to
        ``<state_dir>/secrets.toml``, made there if it does not exist yet (nodes sharing a state
        dir share it). ``listen_host`` (e.g. ``0.0.0.0`` in a container) replaces the host the
        node listens on for peers; it keeps the port, and peers still dial the file's address.
        ``tls`` (the node's contexts) defaults to those of the file's ``[tls]`` table, if any
        (ConfigError if its files are unusable).
        """
        if transport is None:
            if credentials is None:
                credentials, _ = ensure_credentials(secrets_path(config.state_dir))
            transport = _tcp_transport(config, node_id, credentials, listen_host, tls)
        owns_storage = storage is None
        if storage is None:
            storage = _disk_storage(config, node_id, data_dir)
        node = RaftNode(
            raft_config(config, node_id),
            storage=storage,
            transport=transport,
            state_machine=pilot,  # type: ignore[arg-type]
            tick_seconds=TICK_MS / 1000,
            snapshot_every=config.snapshot_entries,
            snapshot_bytes=config.snapshot_bytes,
            rng=rng,
            contexts={n.id: n.context for n in config.nodes if not n.join},
            sessions=sessions,
        )
        add_peers = getattr(transport, "add_peers", None)
        if add_peers is not None:
            node.add_configuration_handler(lambda configuration: add_peers(member_peer_addresses(configuration)))
        return cls(node, owns_storage=owns_storage, credentials=credentials)

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Start the node (use ``await nursery.start(hull.run)``); returns after ``stop()``.

        Storage the hull opened itself is closed when it returns, so it can be started again.
        """
        try:
            await self.node.run(task_status=task_status)
        finally:
            if self._owns_storage:
                self.node.storage.close()

    def stop(self) -> None:
        self.node.stop()

    async def run_command(
        self, command: str, timeout: float = 5.0, *, session: SessionStamp | None = None
    ) -> CommandResult:
        """The seed's ``run_command``; see the module documentation for the possible answers.

        With ``session`` (a stamp of a registered session) it is applied at most once however
        often it is resent with that stamp.
        """
        return await self.node.run_command(command, timeout=timeout, session=session)

    async def register_session(self, timeout: float = 5.0) -> CommandResult:
        """Open a client session through the log; ``result`` is its id (or redirect, retry, timeout)."""
        return await self.node.register_session(timeout=timeout)

    async def query(self, command: str, timeout: float = 5.0) -> CommandResult:
        """A linearizable read served by this node (leader or follower) without a log entry; a
        refusal is ``redirect``/``retry``, never a stale result. See the module documentation."""
        return await self.node.query(command, timeout=timeout)

    def status(self) -> NodeStatus:
        return self.node.status()

    async def add_node(self, node_id: str, context: str = "", *, timeout: float = 30.0) -> None:
        """Add ``node_id`` (at the leader): a learner first, a voter once caught up (§4.2.1).

        ``context`` tells the other members how to reach it; with the built-in transport it is
        ``"peer-address client-address"`` (``NodeConfig.context``). Raises NotLeader,
        MembershipError (with the reason) or TimeoutError.
        """
        await self.node.add_node(node_id, context, timeout=timeout)

    async def remove_node(self, node_id: str, *, timeout: float = 30.0) -> None:
        """Remove ``node_id`` (at the leader; the leader itself too) and wait for the commit."""
        await self.node.remove_node(node_id, timeout=timeout)

    def add_event_handler(self, handler: Callable[[NodeEvent], None]) -> None:
        """Call ``handler`` for each event: elections, role and leader changes, commits, apply errors, snapshots."""
        self.node.add_event_handler(handler)


def member_peer_addresses(configuration: Configuration) -> dict[str, Any]:
    """The peer address of every member whose context is ``"peer client"`` (others are skipped)."""
    peers = {}
    for member, context in configuration.contexts.items():
        try:
            peers[member] = parse_context(context)[0]
        except ValueError as exc:
            logging.getLogger("raftnode").warning("member %s has an unusable address: %s", member, exc)
    return peers


def _tcp_transport(config: ClusterConfig, node_id: str, credentials: Credentials, listen_host: str | None,
                   tls: NodeTls | None) -> Transport:
    """The built-in transport of ``node_id``: TCP (under ``tls``, else the file's [tls]) in the fault layer."""
    from .transport.faults import FaultyTransport
    from .transport.tcp import TcpTransport

    me = config.node(node_id)
    return FaultyTransport(
        TcpTransport(
            node_id,
            cluster=config.name,
            listen=Address(listen_host, me.peer.port) if listen_host else me.peer,
            peers={n.id: n.peer for n in config.nodes},
            credentials=credentials,
            peer_auth=config.peer_auth,
            max_connections=config.max_peer_connections,
            handshake_timeout=config.handshake_timeout_ms / 1000,
            tls=tls if tls is not None else node_tls(config, node_id),
        )
    )
