"""raftnode: a Raft consensus node.

``raftnode.core`` is the protocol as a pure, deterministic state machine (standard library
only); the rest of the package adapts it to configuration, storage, the network and time.
Nothing in this package imports ``raftctl``, click or rich.
"""

__version__ = "0.1.0"
