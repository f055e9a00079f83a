"""``raftnode.clientproto`` moved to ``raftnode.client.clientproto``; this module keeps the imports
written against the old name working."""

from raftnode.client.clientproto import *  # noqa: F403
from raftnode.client.clientproto import __all__  # noqa: F401
