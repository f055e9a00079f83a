"""Where things live inside a container, and the cluster file the containers run with.

Every exported engine runs the same image: the cluster file at ``CONFIG_PATH``, the state dir
(secrets, data) at ``STATE_DIR`` on a volume of its own per node. The containers' cluster file is
the user's with each node's addresses replaced by names the engine resolves (a compose service,
a StatefulSet pod), every node on the same two ports (each has a host of its own), ``state_dir``
set to ``STATE_DIR`` and ``peer_auth`` on: the nodes listen on ``0.0.0.0``, so peers must prove
they hold the cluster secret (``raftnode.config`` refuses a non-loopback address without it).
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable

import tomli_w

from raftnode.config import Address, ClusterConfig, NodeConfig, parse_config

CONFIG_PATH = "/etc/raftctl/cluster.toml"
STATE_DIR = "/var/lib/raftctl"
#: Where the engine puts the secrets file; the entrypoint copies it into STATE_DIR, mode 0600.
SECRETS_MOUNT = "/run/secrets/raftctl/secrets.toml"
LISTEN_HOST = "0.0.0.0"
IMAGE_USER = "raft"
IMAGE_UID = 10001


def ports(config: ClusterConfig) -> tuple[int, int]:
    """The (peer, client) ports every node of the exported cluster listens on: the first node's."""
    first = config.nodes[0]
    return first.peer.port, first.client.port


def exported_config_text(config: ClusterConfig, addresses: Callable[[int, NodeConfig], tuple[Address, Address]]) -> str:
    """The cluster file the exported nodes run with: node ``i`` at ``addresses(i, node)`` (peer,
    client), ``state_dir = STATE_DIR``, ``peer_auth = true``, ``[tls]`` (if any) naming the same
    certificates by their absolute directory, everything else as in ``config``.

    The result passes ``parse_config`` (checked here, so a bad host name fails the export, not
    the nodes).
    """
    document = tomllib.loads(config.path.read_text(encoding="utf-8"))
    cluster = dict(document.get("cluster", {}))
    cluster.update(state_dir=STATE_DIR, peer_auth=True)
    chunks = [f"# The nodes' cluster file, exported by raftctl from {config.path.name}.\n", tomli_w.dumps({"cluster": cluster})]
    for index, node in enumerate(config.nodes):
        peer, client = addresses(index, node)
        entry: dict[str, object] = {"id": node.id, "peer": str(peer), "client": str(client)}
        if node.join:
            entry["join"] = True
        chunks.append("\n[[nodes]]\n" + tomli_w.dumps(entry))
    if config.tls is not None:  # the same certificates, named by their absolute directory
        chunks.append("\n[tls]\n" + tomli_w.dumps({"dir": str(config.tls.dir.resolve())}))
    text = "".join(chunks)
    parse_config(text, path=CONFIG_PATH)
    return text


def container_config_text(config: ClusterConfig, host_of: Callable[[int, str], str]) -> str:
    """``exported_config_text`` for containers: node ``i`` on host ``host_of(i, id)`` at ``ports``."""
    peer_port, client_port = ports(config)
    return exported_config_text(
        config, lambda i, node: (Address(host_of(i, node.id), peer_port), Address(host_of(i, node.id), client_port))
    )


def node_command(node_id: str) -> list[str]:
    """The container's command that runs ``node_id`` (through the image's entrypoint)."""
    return ["python", "-m", "raftnode", "--config", CONFIG_PATH, "--node", node_id, "--listen-host", LISTEN_HOST]


def probe_command(config: ClusterConfig, *, ready: bool) -> list[str]:
    """A container probe: the local node answers (``ready``: ok, with a known leader)."""
    _, client_port = ports(config)
    command = ["python", "-m", "raftnode.probe", "--config", CONFIG_PATH, "--port", str(client_port)]
    return command + (["--ready"] if ready else [])
