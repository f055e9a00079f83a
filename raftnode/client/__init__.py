"""The client of a cluster: one connection without I/O and two drivers, trio and blocking."""

from raftnode.lazy import lazy_exports

# What `raftnode.client` was before it became a package; imported on first use, so that
# importing one module of the package does not import the others.
__getattr__, __dir__, __all__ = lazy_exports(
    globals(),
    {
        "ClientError": "raftnode.client.syncclient",
        "CommandAnswer": "raftnode.client.syncclient",
        "NoLeader": "raftnode.client.syncclient",
        "NodeUnreachable": "raftnode.client.syncclient",
        "SessionExpired": "raftnode.client.syncclient",
        "SyncClusterClient": "raftnode.client.syncclient",
        "Timeout": "raftnode.client.syncclient",
        "ClusterClient": "raftnode.client.trioclient",
        "CommandOutcome": "raftnode.client.trioclient",
        "Connection": "raftnode.client.trioclient",
    },
)
