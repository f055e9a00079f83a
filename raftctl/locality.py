"""Whether a node of the cluster file runs on this machine, for the commands that handle its
process (``up``, ``down``, ``kill``, ``start``, ``stop``, ``restart``, ``logs``).

A node is local when both of its hosts are addresses of this machine: loopback, or an address
some interface here holds. That is asked of the kernel by binding a socket to the address (port
0, closed at once, nothing sent): the bind fails with EADDRNOTAVAIL for an address this machine
does not have. A host name counts as local when it resolves to an address that is; a node in a
network namespace made by ``up --netns`` is local too. The commands that only talk to nodes
(``status``, ``run-command``, ...) need none of this: they go through the client endpoints,
wherever those are.
"""

from __future__ import annotations

import errno
import functools
import ipaddress
import socket
from collections.abc import Iterable

from raftnode.config import ClusterConfig, NodeConfig

from .errors import UsageProblem

SPECIAL_NODES = ("leader", "follower")


class RemoteNode(UsageProblem):
    """A command that handles a local process was asked about a node on another host (exit 2)."""


@functools.lru_cache(maxsize=64)
def is_local_host(host: str) -> bool:
    """Whether ``host`` (an address or a name) is an address of this machine."""
    try:
        if ipaddress.ip_address(host).is_loopback:
            return True
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return False
    return any(_can_bind(family, sockaddr[0]) for family, _, _, _, sockaddr in infos)


def _can_bind(family: int, address: str) -> bool:
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((address, 0))
        except OSError as exc:
            if exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
                return False
            return True  # e.g. EACCES: the address is here, the bind is not allowed
    return True


def is_local(node: NodeConfig) -> bool:
    """Whether ``node`` listens on this machine (both its peer and its client host are local)."""
    return is_local_host(node.peer.host) and is_local_host(node.client.host)


def require_local(config: ClusterConfig, command: str, names: Iterable[str] | None = None) -> None:
    """Refuse ``command`` if a node it would handle runs on another host.

    ``names``: node ids, or ``leader``/``follower`` (which may be any node, so every node must be
    local); None: every node. Unknown ids are left for the command to report.

    Raises:
        RemoteNode: naming the remote nodes and their addresses.
    """
    from .netns import load

    wanted = None if names is None else set(names)
    if wanted is not None and wanted & set(SPECIAL_NODES):
        wanted = None
    namespaced = load(config)
    here = set(namespaced.nodes) if namespaced else set()
    remote = [n for n in config.nodes if (wanted is None or n.id in wanted) and n.id not in here and not is_local(n)]
    if not remote:
        return
    where = ", ".join(f"{n.id} at {n.client.host}" for n in remote)
    raise RemoteNode(
        f"`raftctl {command}` handles a node's process on this machine, but {where} "
        f"{'is' if len(remote) == 1 else 'are'} not an address of this machine: run it on the node's "
        "host (status, run-command, query, partition and heal work from here through the client port)"
    )
