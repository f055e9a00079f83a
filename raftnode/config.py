"""Load and validate ``cluster.toml``, the file that describes one cluster.

Theory of operation: the file is parsed with the standard library's ``tomllib`` and checked key by
key into frozen dataclasses, so everything downstream can trust a ``ClusterConfig`` without
re-validating it. Every problem raises ``ConfigError`` whose message names the file, the key
(``cluster.heartbeat_ms``, ``nodes[1].peer`` -- node indexes count from 0 in file order) and what
is wrong, so the CLI can print it as is and exit 2 instead of showing a traceback.

The layout of the file::

    [cluster]                       # optional; every key has a default
    name = "demo"
    state_machine = "counter"       # counter | totals | kv | "package.module:Class"
    state_dir = ".raftctl"          # relative to the file
    heartbeat_ms = 50
    election_timeout_ms = [150, 300]
    pre_vote = true
    check_quorum = true
    max_command_bytes = 1048576     # a longer command is refused at submit; answers too
    max_client_connections = 256    # per node, on its client port
    max_peer_connections = 64       # per node, on its peer port
    handshake_timeout_ms = 5000     # a peer must authenticate, a client send a request, by then
    idle_timeout_ms = 60000         # a client connection with nothing to do is closed after it
    peer_auth = true                # HMAC challenge-response with the secret in the state dir
    client_auth = false             # client requests (run_command, status, events) need the client token
    fsync = true                    # false is UNSAFE (benchmarks, tests): a crash loses acknowledged commands

    [tls]                           # optional: peer and client traffic over mutual TLS
    dir = ".raftctl/tls"            # the CA and certificates (`raftctl init --tls`); relative to the file
                                    # (default: state_dir/tls); `enabled = false` keeps the table but not TLS

    [[nodes]]                       # at least one
    id = "n1"
    peer = "127.0.0.1:7101"         # Raft traffic between nodes
    client = "127.0.0.1:7201"       # client and admin requests
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:  # the core is imported only when needed: raftctl commands start faster
    from .core.raft import RaftConfig

__all__ = [
    "TICK_MS",
    "raft_config",
    "DEFAULT_CLUSTER",
    "Address",
    "ClusterConfig",
    "ConfigError",
    "TlsConfig",
    "NodeConfig",
    "check_node_id",
    "is_loopback",
    "load_config",
    "parse_address",
    "parse_config",
    "parse_context",
]

#: Values used for keys omitted from ``[cluster]`` (and written by raftctl's ``default_config_text``).
DEFAULT_CLUSTER: Mapping[str, Any] = MappingProxyType(
    {
        "name": "demo",
        "state_machine": "counter",
        "state_dir": ".raftctl",
        "heartbeat_ms": 50,
        "election_timeout_ms": (150, 300),
        "pre_vote": True,
        "check_quorum": True,
        "snapshot_entries": 10_000,
        "snapshot_bytes": 64 << 20,
        "max_command_bytes": 1 << 20,
        "max_client_connections": 256,
        "max_peer_connections": 64,
        "handshake_timeout_ms": 5000,
        "idle_timeout_ms": 60_000,
        "peer_auth": True,
        "client_auth": False,
        "fsync": True,
    }
)

#: Bounds of ``max_command_bytes``: a command and its answer must fit a client's 16 MiB frame
#: with JSON escaping to spare.
MIN_COMMAND_BYTES = 1024
MAX_COMMAND_BYTES = 8 << 20

_BUILTIN_STATE_MACHINES = ("counter", "totals", "kv")
_STATE_MACHINE_IMPORT = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*")
# Node ids appear in file names, in `partition n1,n2 n3` and as CLI arguments.
_NODE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
# `raftctl` accepts these words wherever it takes a node id.
_RESERVED_NODE_IDS = ("leader", "follower")
_NODE_KEYS = ("id", "peer", "client")
_OPTIONAL_NODE_KEYS = ("join",)
_TOP_LEVEL_KEYS = ("cluster", "nodes", "tls")
_TLS_KEYS = ("enabled", "dir")


class ConfigError(Exception):
    """A cluster file is missing, unreadable or invalid, or names no such node.

    ``str(error)`` is the complete user-facing message: ``"<file>: <key>: <what is wrong>"``
    (``"<file>: <what is wrong>"`` when no single key is at fault).

    Attributes:
        path: The cluster file, as it was given.
        key: The offending key in dotted form (``"nodes[1].peer"``), or None.
        reason: What is wrong, without the file and key.
    """

    def __init__(self, path: str | os.PathLike[str], key: str | None, reason: str) -> None:
        self.path = os.fspath(path)
        self.key = key
        self.reason = reason
        where = f"{self.path}: {key}" if key else self.path
        super().__init__(f"{where}: {reason}")


class Address(NamedTuple):
    """A ``(host, port)`` pair; ``str()`` gives the ``"host:port"`` form used in the file."""

    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """One ``[[nodes]]`` entry.

    Attributes:
        id: The node id: letters, digits, ``_`` and ``-``; never ``leader`` or ``follower``.
        peer: Where the node listens for Raft traffic from other nodes.
        client: Where the node listens for client and admin requests.
        join: The node was added to a running cluster (``raftctl add-node``): it starts with no
            configuration of its own and waits for the leader, instead of bootstrapping.
    """

    id: str
    peer: Address
    client: Address
    join: bool = False

    @property
    def context(self) -> str:
        """The node's addresses as replicated in the cluster configuration: ``"peer client"``."""
        return f"{self.peer} {self.client}"


@dataclass(frozen=True, slots=True)
class TlsConfig:
    """The ``[tls]`` table: where the cluster's CA and certificates are (``raftnode.security.pki`` makes
    them, ``raftnode.security.tls`` loads them). Names in ``dir``: ``ca.crt``/``ca.key``, each node's
    ``node-<id>.crt``/``.key``, and the clients' ``client.crt``/``client.key``."""

    dir: Path

    @property
    def ca(self) -> Path:
        return self.dir / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.dir / "ca.key"

    @property
    def client_cert(self) -> Path:
        return self.dir / "client.crt"

    @property
    def client_key(self) -> Path:
        return self.dir / "client.key"

    def node_cert(self, node_id: str) -> Path:
        return self.dir / f"node-{node_id}.crt"

    def node_key(self, node_id: str) -> Path:
        return self.dir / f"node-{node_id}.key"


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """A validated cluster file.

    Invariants: at least one node; node ids are unique; no two addresses (peer or client, across
    all nodes) are equal; ``0 < heartbeat_ms < election_timeout_ms[0] <= election_timeout_ms[1]``.

    Attributes:
        path: Absolute path of the file this was loaded from.
        name: The cluster's name.
        state_machine: ``counter``, ``totals``, ``kv`` or an import path ``package.module:Class``
            (checked for form only; importing it is the runtime's job).
        state_dir: Absolute directory for the cluster's pids, logs, data and events; a relative
            ``state_dir`` in the file is relative to the file's directory.
        heartbeat_ms: Interval between leader heartbeats.
        election_timeout_ms: ``(min, max)``; each election timeout is drawn from this range.
        pre_vote: Whether candidates run a pre-vote round first (thesis §9.6).
        check_quorum: Whether a leader steps down when it stops hearing from a quorum.
        snapshot_entries: A node snapshots its state machine and compacts its log once this many
            applied entries follow its latest snapshot...
        snapshot_bytes: ...or once the commands applied since then hold this many bytes.
        max_command_bytes: The longest command (utf-8 bytes) a node accepts, and the longest
            answer (JSON bytes) it sends; longer ones are refused with an error answer.
        max_client_connections: Connections a node's client port holds at once; more are closed.
        max_peer_connections: Connections a node's peer port holds at once; more are closed.
        handshake_timeout_ms: A peer connection must authenticate, and a client connection send
            its first request, within this time.
        idle_timeout_ms: A client connection with no request in progress and no new request for
            this long is closed.
        peer_auth: Peers prove they hold the cluster secret (``raftnode.security.credentials``) in HELLO.
        client_auth: Client requests need the client token (admin requests always need the admin token).
        fsync: Storage fsyncs before anything is acknowledged. ``false`` is UNSAFE -- for benchmarks
            and tests only: a crash (or power loss) of a majority loses acknowledged commands and
            may break Raft's safety; a node logs it loudly at start and ``raftctl up`` refuses it
            without ``--unsafe-no-fsync``.
        nodes: The nodes, in file order.
        tls: The ``[tls]`` table (peer and client traffic over mutual TLS), or None: plain TCP.
    """

    path: Path
    name: str
    state_machine: str
    state_dir: Path
    heartbeat_ms: int
    election_timeout_ms: tuple[int, int]
    pre_vote: bool
    check_quorum: bool
    snapshot_entries: int
    snapshot_bytes: int
    max_command_bytes: int
    max_client_connections: int
    max_peer_connections: int
    handshake_timeout_ms: int
    idle_timeout_ms: int
    peer_auth: bool
    client_auth: bool
    nodes: tuple[NodeConfig, ...]
    fsync: bool = True
    tls: TlsConfig | None = None

    @property
    def node_ids(self) -> tuple[str, ...]:
        """The node ids in file order."""
        return tuple(node.id for node in self.nodes)

    @property
    def bootstrap_ids(self) -> tuple[str, ...]:
        """The voters a brand-new cluster starts with: every node not marked ``join``."""
        return tuple(node.id for node in self.nodes if not node.join)

    def client_addresses(self) -> dict[str, Address]:
        """Each node's client endpoint, by id (what :class:`raftnode.client.ClusterClient` takes)."""
        return {node.id: node.client for node in self.nodes}

    def node(self, node_id: str) -> NodeConfig:
        """Return the node with id ``node_id``.

        Raises:
            ConfigError: No node has that id; the message lists the valid ids.
        """
        for node in self.nodes:
            if node.id == node_id:
                return node
        valid = ", ".join(self.node_ids)
        raise ConfigError(self.path, "nodes", f"no node with id {node_id!r} (valid ids: {valid})")


def check_node_id(node_id: str) -> str | None:
    """Why ``node_id`` cannot name a node, or None if it can."""
    if not _NODE_ID.fullmatch(node_id):
        return (f"{node_id!r} is not a valid node id (letters, digits, '_' and '-', "
                "starting with a letter or digit)")
    if node_id in _RESERVED_NODE_IDS:
        return f"{node_id!r} is reserved (raftctl uses it to pick a node)"
    return None


def parse_address(text: str) -> Address:
    """Parse ``"host:port"`` (IPv6 hosts in brackets: ``"[::1]:7101"``).

    Raises:
        ValueError: The text is not of that form or the port is not in 1-65535; the message says
            which.
    """
    host, sep, port_text = text.rpartition(":")
    if not sep:
        raise ValueError(f'expected "host:port", got {text!r}')
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f'an IPv6 host must be in brackets, e.g. "[::1]:7101", got {text!r}')
    if not host or any(c.isspace() or c in "[]" for c in host):
        raise ValueError(f'expected "host:port" with a non-empty host, got {text!r}')
    if not (port_text.isascii() and port_text.isdigit()):
        raise ValueError(f"port {port_text!r} is not a number in {text!r}")
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} is out of range 1-65535 in {text!r}")
    return Address(host, port)


def load_config(path: str | os.PathLike[str]) -> ClusterConfig:
    """Read and validate the cluster file at ``path``.

    Raises:
        ConfigError: The file is missing, unreadable, not UTF-8 TOML, or invalid.
    """
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise ConfigError(path, None, "file not found (`raftctl init` writes one)") from None
    except IsADirectoryError:
        raise ConfigError(path, None, "is a directory, not a cluster file") from None
    except OSError as exc:
        raise ConfigError(path, None, f"cannot read: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(path, None, f"not UTF-8 text (byte {exc.start})") from None
    return parse_config(text, path=path)


def parse_config(text: str, *, path: str | os.PathLike[str]) -> ClusterConfig:
    """Validate cluster-file ``text`` as if it had been read from ``path``.

    ``path`` names the file in error messages and anchors a relative ``state_dir``; the file
    itself is not read.

    Raises:
        ConfigError: The text is not TOML (the message gives the line) or is invalid.
    """
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, None, f"invalid TOML: {exc}") from None
    return _Validator(path).cluster(document)


def parse_context(text: str) -> tuple[Address, Address]:
    """A member's ``"peer client"`` context from the replicated configuration.

    Raises:
        ValueError: it is not two ``host:port`` addresses.
    """
    parts = text.split()
    if len(parts) != 2:
        raise ValueError(f"expected 'peer-address client-address', got {text!r}")
    return parse_address(parts[0]), parse_address(parts[1])


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (``localhost`` counts; a wildcard does not)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve anywhere


def _toml_type(value: object) -> str:
    """The TOML name of a parsed value's type, for error messages."""
    match value:
        case bool():
            return "boolean"
        case int():
            return "integer"
        case float():
            return "float"
        case str():
            return "string"
        case list():
            return "array"
        case dict():
            return "table"
        case _:
            return "date/time"


class _Validator:
    """Turns a parsed TOML document into a ClusterConfig, raising ConfigError on the first fault."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = path

    def fail(self, key: str | None, reason: str) -> ConfigError:
        return ConfigError(self.path, key, reason)

    def reject_unknown(
        self, table: Mapping[str, Any], allowed: tuple[str, ...], prefix: str
    ) -> None:
        for key in table:
            if key not in allowed:
                raise self.fail(f"{prefix}{key}", f"unknown key (valid keys: {', '.join(allowed)})")

    def typed(
        self, value: object, expected: type | tuple[type, ...], what: str, key: str
    ) -> Any:
        # bool is a subclass of int, but `heartbeat_ms = true` is a mistake, not 1.
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise self.fail(key, f"expected {what}, got {_toml_type(value)} {value!r}")
        return value

    def positive_int(self, value: object, key: str) -> int:
        number = self.typed(value, int, "a positive integer", key)
        if number <= 0:
            raise self.fail(key, f"expected a positive integer, got {number}")
        return number

    def cluster(self, document: dict[str, Any]) -> ClusterConfig:
        self.reject_unknown(document, _TOP_LEVEL_KEYS, "")
        table = document.get("cluster", {})
        if not isinstance(table, dict):
            raise self.fail("cluster", f"expected a table ([cluster]), got {_toml_type(table)}")
        self.reject_unknown(table, tuple(DEFAULT_CLUSTER), "cluster.")
        raw = {**DEFAULT_CLUSTER, **table}
        # Checked in this order: the first fault found is the one reported.
        fields = {**self.identity(raw), **self.elections(raw), **self.limits(raw), **self.switches(raw)}

        nodes = self.nodes(document.get("nodes"))
        base = Path(self.path).resolve().parent
        resolved_state_dir = (base / Path(fields.pop("state_dir")).expanduser()).resolve()
        tls = self.tls(document.get("tls"), base, resolved_state_dir)
        self.check_exposure(nodes, fields["peer_auth"])
        return ClusterConfig(
            path=Path(self.path).resolve(),
            state_dir=resolved_state_dir,
            nodes=nodes,
            tls=tls,
            **fields,
        )

    def identity(self, raw: dict[str, Any]) -> dict[str, Any]:
        """``name``, ``state_machine`` and ``state_dir`` (as written: resolved by ``cluster``)."""
        name = self.typed(raw["name"], str, "a string", "cluster.name")
        if not name.strip():
            raise self.fail("cluster.name", "must not be empty")
        state_machine = self.typed(raw["state_machine"], str, "a string", "cluster.state_machine")
        if state_machine not in _BUILTIN_STATE_MACHINES and not _STATE_MACHINE_IMPORT.fullmatch(
            state_machine
        ):
            raise self.fail(
                "cluster.state_machine",
                f"expected one of {', '.join(_BUILTIN_STATE_MACHINES)} or "
                f'"package.module:Class", got {state_machine!r}',
            )
        state_dir = self.typed(raw["state_dir"], str, "a string", "cluster.state_dir")
        if not state_dir:
            raise self.fail("cluster.state_dir", "must not be empty")
        return {"name": name, "state_machine": state_machine, "state_dir": state_dir}

    def elections(self, raw: dict[str, Any]) -> dict[str, Any]:
        """``heartbeat_ms`` (below the election timeout), ``election_timeout_ms``, ``pre_vote``, ``check_quorum``."""
        heartbeat_ms = self.positive_int(raw["heartbeat_ms"], "cluster.heartbeat_ms")
        timeouts = self.typed(
            raw["election_timeout_ms"],
            (list, tuple),
            "an array [min, max]",
            "cluster.election_timeout_ms",
        )
        if len(timeouts) != 2:
            raise self.fail(
                "cluster.election_timeout_ms",
                f"expected an array of two integers [min, max], got {len(timeouts)} elements",
            )
        low = self.positive_int(timeouts[0], "cluster.election_timeout_ms[0]")
        high = self.positive_int(timeouts[1], "cluster.election_timeout_ms[1]")
        if low > high:
            raise self.fail("cluster.election_timeout_ms", f"min {low} is greater than max {high}")
        if heartbeat_ms >= low:
            raise self.fail(
                "cluster.heartbeat_ms",
                f"must be less than the minimum election timeout ({low}), got {heartbeat_ms}",
            )
        pre_vote = self.typed(raw["pre_vote"], bool, "a boolean", "cluster.pre_vote")
        check_quorum = self.typed(raw["check_quorum"], bool, "a boolean", "cluster.check_quorum")
        return {"heartbeat_ms": heartbeat_ms, "election_timeout_ms": (low, high),
                "pre_vote": pre_vote, "check_quorum": check_quorum}

    def limits(self, raw: dict[str, Any]) -> dict[str, Any]:
        """The snapshot thresholds, the longest command, the connection counts and timeouts."""
        snapshot_entries = self.positive_int(raw["snapshot_entries"], "cluster.snapshot_entries")
        snapshot_bytes = self.positive_int(raw["snapshot_bytes"], "cluster.snapshot_bytes")
        max_command_bytes = self.positive_int(raw["max_command_bytes"], "cluster.max_command_bytes")
        if not MIN_COMMAND_BYTES <= max_command_bytes <= MAX_COMMAND_BYTES:
            raise self.fail(
                "cluster.max_command_bytes",
                f"must be between {MIN_COMMAND_BYTES} and {MAX_COMMAND_BYTES}, got {max_command_bytes}",
            )
        max_client_connections = self.positive_int(raw["max_client_connections"], "cluster.max_client_connections")
        max_peer_connections = self.positive_int(raw["max_peer_connections"], "cluster.max_peer_connections")
        handshake_timeout_ms = self.positive_int(raw["handshake_timeout_ms"], "cluster.handshake_timeout_ms")
        idle_timeout_ms = self.positive_int(raw["idle_timeout_ms"], "cluster.idle_timeout_ms")
        if idle_timeout_ms < handshake_timeout_ms:
            raise self.fail(
                "cluster.idle_timeout_ms",
                f"must be at least handshake_timeout_ms ({handshake_timeout_ms}), got {idle_timeout_ms}",
            )
        return {"snapshot_entries": snapshot_entries, "snapshot_bytes": snapshot_bytes,
                "max_command_bytes": max_command_bytes, "max_client_connections": max_client_connections,
                "max_peer_connections": max_peer_connections, "handshake_timeout_ms": handshake_timeout_ms,
                "idle_timeout_ms": idle_timeout_ms}

    def switches(self, raw: dict[str, Any]) -> dict[str, Any]:
        """``peer_auth``, ``client_auth`` and ``fsync``."""
        return {key: self.typed(raw[key], bool, "a boolean", f"cluster.{key}")
                for key in ("peer_auth", "client_auth", "fsync")}

    def tls(self, table: object, base: Path, state_dir: Path) -> TlsConfig | None:
        if table is None:
            return None
        if not isinstance(table, dict):
            raise self.fail("tls", f"expected a table ([tls]), got {_toml_type(table)}")
        self.reject_unknown(table, _TLS_KEYS, "tls.")
        if not self.typed(table.get("enabled", True), bool, "a boolean", "tls.enabled"):
            return None
        if "dir" not in table:
            return TlsConfig(state_dir / "tls")
        directory = self.typed(table["dir"], str, "a string", "tls.dir")
        if not directory:
            raise self.fail("tls.dir", "must not be empty")
        return TlsConfig((base / Path(directory).expanduser()).resolve())

    def check_exposure(self, nodes: tuple[NodeConfig, ...], peer_auth: bool) -> None:
        """A node on a non-loopback address needs peer authentication (``raftnode`` warns when
        such a node also has no [tls]: its traffic and tokens would cross the network in the clear)."""
        exposed = next((n for n in nodes for a in (n.peer, n.client) if not is_loopback(a.host)), None)
        if exposed is not None and not peer_auth:
            raise self.fail(
                "cluster.peer_auth",
                f"node {exposed.id} binds a non-loopback address ({exposed.peer}, {exposed.client}): "
                "set peer_auth = true (peers must prove they hold the cluster secret) or bind 127.0.0.1",
            )

    def nodes(self, entries: object) -> tuple[NodeConfig, ...]:
        if entries is None:
            raise self.fail("nodes", "missing: at least one [[nodes]] entry is required")
        if not isinstance(entries, list):
            raise self.fail(
                "nodes", f"expected an array of tables ([[nodes]]), got {_toml_type(entries)}"
            )
        if not entries:
            raise self.fail("nodes", "empty: at least one [[nodes]] entry is required")
        ids: dict[str, str] = {}
        addresses: dict[Address, str] = {}
        result = []
        for index, entry in enumerate(entries):
            prefix = f"nodes[{index}]"
            if not isinstance(entry, dict):
                raise self.fail(prefix, f"expected a table ([[nodes]]), got {_toml_type(entry)}")
            self.reject_unknown(entry, _NODE_KEYS + _OPTIONAL_NODE_KEYS, f"{prefix}.")
            for key in _NODE_KEYS:
                if key not in entry:
                    raise self.fail(f"{prefix}.{key}", "missing required key")

            node_id = self.typed(entry["id"], str, "a string", f"{prefix}.id")
            problem = check_node_id(node_id)
            if problem:
                raise self.fail(f"{prefix}.id", problem)
            if node_id in ids:
                raise self.fail(
                    f"{prefix}.id", f"duplicate node id {node_id!r} (also {ids[node_id]})"
                )
            ids[node_id] = f"{prefix}.id"

            peer = self.address(entry["peer"], f"{prefix}.peer", addresses)
            client = self.address(entry["client"], f"{prefix}.client", addresses)
            join = self.typed(entry.get("join", False), bool, "a boolean", f"{prefix}.join")
            result.append(NodeConfig(id=node_id, peer=peer, client=client, join=join))
        return tuple(result)

    def address(self, value: object, key: str, seen: dict[Address, str]) -> Address:
        text = self.typed(value, str, 'a string "host:port"', key)
        try:
            address = parse_address(text)
        except ValueError as exc:
            raise self.fail(key, str(exc)) from None
        if address in seen:
            raise self.fail(key, f"duplicate address {address} (also {seen[address]})")
        seen[address] = key
        return address


#: Wall time of one core tick; heartbeats and election timeouts are whole numbers of ticks.
TICK_MS = 10


def raft_config(config: ClusterConfig, node_id: str, *, tick_ms: int = TICK_MS) -> RaftConfig:
    """The core's settings for ``node_id``: cluster.toml's milliseconds turned into ticks."""
    from .core.raft import RaftConfig

    low, high = config.election_timeout_ms
    low_ticks = max(2, round(low / tick_ms))
    return RaftConfig(
        node_id=node_id,
        voters=() if config.node(node_id).join else config.bootstrap_ids,
        election_timeout=(low_ticks, max(low_ticks + 1, round(high / tick_ms))),
        heartbeat_interval=min(low_ticks - 1, max(1, round(config.heartbeat_ms / tick_ms))),
        pre_vote=config.pre_vote,
        check_quorum=config.check_quorum,
    )
