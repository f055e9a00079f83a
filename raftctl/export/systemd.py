"""``raftctl export systemd``: a template unit ``raftnode@.service`` and the nodes' cluster file.

On each host, with the cluster file at ``CONFIG_PATH`` and the secrets at
``STATE_DIR/secrets.toml`` (owner ``raft``, mode 0600), ``systemctl enable --now raftnode@n2``
runs node ``n2``. Nodes listen on their addresses in the cluster file, as they are (those are the
hosts' addresses); the state dir is systemd's ``StateDirectory``.
"""

from __future__ import annotations

from raftnode.config import ClusterConfig

from . import layout
from .files import ExportFile

UNIT_FILE = "raftnode@.service"
CONFIG_FILE = "cluster.toml"


def unit_text(config: ClusterConfig, python: str) -> str:
    """The template unit; the instance name (``%i``) is the node id."""
    state_name = layout.STATE_DIR.removeprefix("/var/lib/")
    return f"""\
# raftnode of cluster {config.name!r}, written by `raftctl export systemd`.
# Instance name = node id: systemctl enable --now raftnode@<id>
[Unit]
Description=raftnode %i of Raft cluster {config.name}
Wants=network-online.target
After=network-online.target

[Service]
Type=exec
User={layout.IMAGE_USER}
Group={layout.IMAGE_USER}
ExecStart={python} -m raftnode --config {layout.CONFIG_PATH} --node %i
StateDirectory={state_name}
StateDirectoryMode=0700
KillSignal=SIGTERM
TimeoutStopSec=15
Restart=on-failure
RestartSec=2
NoNewPrivileges=yes
PrivateTmp=yes
ProtectSystem=strict
ProtectHome=yes

[Install]
WantedBy=multi-user.target
"""


def systemd_files(config: ClusterConfig, python: str) -> list[ExportFile]:
    """The template unit and the cluster file for ``CONFIG_PATH`` (addresses as given)."""
    text = layout.exported_config_text(config, lambda _index, node: (node.peer, node.client))
    return [ExportFile(UNIT_FILE, unit_text(config, python)), ExportFile(CONFIG_FILE, text)]
