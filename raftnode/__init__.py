"""raftnode: a Raft consensus node, in layers.

- ``raftnode.core``: the protocol as a pure, deterministic state machine (standard library only);
- ``raftnode.storage``, ``raftnode.transport``: the durable log and the peer network;
- ``raftnode.wire``: the client protocol as bytes and records: frames, codec, requests, sessions;
  below node and client;
- ``raftnode.node``: one node at run time: the trio shell around the core, its state machine and its
  client endpoint;
- ``raftnode.client``: the client of a cluster: one connection without I/O and two drivers, trio and
  blocking;
- ``raftnode.security``: who may talk to a cluster: its secrets, certificates and TLS contexts;
- ``raftnode.sim``: the deterministic simulator, running the node's driver;
- at the top: ``raftnode.api`` (``HullAPI``, the embedding API), ``raftnode.config`` (the cluster file), the
  entry points (``python -m raftnode``, ``python -m raftnode.probe``) and modules kept where users import them.

Nothing in this package imports ``raftctl``, click or rich. The public names below are
importable from here too; each is imported on first use, so ``import raftnode`` stays cheap.
"""

__version__ = "0.1.0"

from raftnode.lazy import lazy_exports

# The public names, imported on first use.
__getattr__, __dir__, __all__ = lazy_exports(
    globals(),
    {
        "HullAPI": "raftnode.api",
        "PilotAPI": "raftnode.api",
        "CommandResult": "raftnode.api",
        "ClusterClient": "raftnode.client.trioclient",
        "SyncClusterClient": "raftnode.client.syncclient",
    },
)
