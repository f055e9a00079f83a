"""``raftctl export compose``: the image recipe and a docker compose file, one service per node.

Node ``n1`` runs as service ``n1`` (its host name on the compose network) with a volume of its own
for its state, the containers' cluster file and the cluster's secrets mounted read-only, and its
client port published on the host at the client address it has in the user's cluster file, so
``raftctl`` on the host, with that file, talks to the containers as to any remote cluster.
"""

from __future__ import annotations

import ipaddress
import re

from raftnode.config import ClusterConfig

from . import image, layout, yamltext
from .files import ExportFile

COMPOSE_FILE = "compose.yaml"
CONFIG_FILE = "cluster.toml"
SECRETS_FILE = "secrets.toml"


def project_name(config: ClusterConfig) -> str:
    """The compose project: the cluster's name in the characters compose allows."""
    return re.sub(r"[^a-z0-9_-]+", "-", config.name.lower()).strip("-_") or "raftctl"


def _published(config: ClusterConfig, node_id: str) -> str:
    """``host:port:container-port`` for the node's client port (no host part for a host name)."""
    client = config.node(node_id).client
    _, container_port = layout.ports(config)
    try:
        ipaddress.ip_address(client.host)
    except ValueError:
        return f"{client.port}:{container_port}"
    host = f"[{client.host}]" if ":" in client.host else client.host
    return f"{host}:{client.port}:{container_port}"


def compose_document(config: ClusterConfig, image_name: str) -> dict:
    """The compose file as data."""
    services = {}
    for node in config.nodes:
        services[node.id] = {
            "build": ".",
            "image": image_name,
            "hostname": node.id,
            "command": layout.node_command(node.id),
            "volumes": [f"{node.id}-state:{layout.STATE_DIR}", f"./{CONFIG_FILE}:{layout.CONFIG_PATH}:ro"],
            "secrets": [{"source": "raftctl-secrets", "target": layout.SECRETS_MOUNT}],
            "ports": [_published(config, node.id)],
            "healthcheck": {
                "test": ["CMD", *layout.probe_command(config, ready=True)],
                "interval": "5s",
                "timeout": "3s",
                "retries": 6,
            },
            "restart": "unless-stopped",
            "stop_grace_period": "10s",
        }
    return {
        "name": project_name(config),
        "services": services,
        "volumes": {f"{node.id}-state": {} for node in config.nodes},
        "secrets": {"raftctl-secrets": {"file": f"./{SECRETS_FILE}"}},
    }


def compose_files(config: ClusterConfig, secrets_text: str, image_name: str) -> list[ExportFile]:
    """The image recipe, the compose file, the containers' cluster file and the secrets (0600)."""
    text = layout.container_config_text(config, lambda _index, node_id: node_id)
    return image.image_files() + [
        ExportFile(COMPOSE_FILE, yamltext.dumps(compose_document(config, image_name))),
        ExportFile(CONFIG_FILE, text),
        ExportFile(SECRETS_FILE, secrets_text, 0o600),
    ]
