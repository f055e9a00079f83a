"""The client protocol as bytes and records: frames, codec, requests, sessions; below node and client."""

from raftnode.lazy import lazy_exports

# What `raftnode.wire` was before it became a package; imported on first use, so that
# importing one module of the package does not import the others.
__getattr__, __dir__, __all__ = lazy_exports(
    globals(),
    {
        "AddNode": "raftnode.wire.requests",
        "ClearFaults": "raftnode.wire.requests",
        "MAX_BATCH_COMMANDS": "raftnode.wire.requests",
        "Query": "raftnode.wire.requests",
        "QueryMany": "raftnode.wire.requests",
        "RecentEvents": "raftnode.wire.requests",
        "RegisterSession": "raftnode.wire.requests",
        "RemoveNode": "raftnode.wire.requests",
        "Request": "raftnode.wire.requests",
        "RunCommand": "raftnode.wire.requests",
        "RunMany": "raftnode.wire.requests",
        "SetFaults": "raftnode.wire.requests",
        "Snapshot": "raftnode.wire.requests",
        "Status": "raftnode.wire.requests",
        "Stop": "raftnode.wire.requests",
        "Subscribe": "raftnode.wire.requests",
        "Transfer": "raftnode.wire.requests",
        "WireError": "raftnode.wire.requests",
        "as_document": "raftnode.wire.requests",
        "command_request": "raftnode.wire.requests",
        "decode_request": "raftnode.wire.requests",
        "document": "raftnode.wire.requests",
        "stamp_of": "raftnode.wire.requests",
        "timeout_of": "raftnode.wire.requests",
    },
)
