"""``raftnode.tls`` moved to ``raftnode.security.tls``; this module keeps the imports written
against the old name working."""

from raftnode.security.tls import *  # noqa: F403
from raftnode.security.tls import __all__  # noqa: F401
