"""``raftnode.syncclient`` moved to ``raftnode.client.syncclient``; this module keeps the imports
written against the old name working."""

from raftnode.client.syncclient import *  # noqa: F403
from raftnode.client.syncclient import __all__  # noqa: F401
