"""Following a cluster's events while its membership changes: the part ``raftctl watch``
(``raftctl.dashboard``) and ``raftctl events --follow`` (``raftctl.cluster.follow_events``) share.

Theory of operation
-------------------
- :class:`Members` keeps one event subscriber per node the cluster file names. When
  ``add-node``/``remove-node`` rewrite the file, :meth:`Members.reload` reads it again: a subscriber
  starts for each node it now names and the subscriber of a node it no longer names is cancelled
  (its CancelScope), so a removed node is not retried forever. Who notices the rewrite is up to
  the caller: the watch poller compares :meth:`Members.stamp` between two status pictures (it must
  reopen its session on the new file anyway); ``events --follow`` runs :meth:`Members.follow_file`.
- a subscriber (:func:`follow_node_events`) streams the node's events (the ``events`` op) and,
  when the node dies, subscribes again every ``reconnect_interval``, so a node that comes back
  reappears by itself.
- a re-subscription or a second source can hand over the same event twice; :class:`RecentKeys`
  drops such copies by ``events.key`` while remembering only the last ``RECENT_KEYS`` keys, so a
  follow that runs for days does not grow.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable, Hashable

import trio

from raftnode.client.trioclient import ClientError, ClusterClient
from raftnode.config import ClusterConfig, ConfigError, load_config

from . import events, oneshot

#: How many event keys the de-duplication remembers: copies come close behind the original
#: (a re-subscription, the audit-log tail catching up with the history it was given).
RECENT_KEYS = 2000

Deliver = Callable[[events.Event], Awaitable[None] | None]


async def hand(deliver: Deliver, event: events.Event) -> None:
    """Give ``event`` to ``deliver``, awaiting it if it is a coroutine function."""
    outcome = deliver(event)
    if outcome is not None:
        await outcome


class RecentKeys:
    """The last ``size`` keys seen (default ``RECENT_KEYS``); ``add`` tells a new key from a copy."""

    def __init__(self, size: int | None = None) -> None:
        self.size = RECENT_KEYS if size is None else size
        self._order: deque[Hashable] = deque()
        self._known: set[Hashable] = set()

    def add(self, key: Hashable) -> bool:
        """Remember ``key``; False if it is among the last ``size`` keys already."""
        if key in self._known:
            return False
        if len(self._order) >= self.size:
            self._known.discard(self._order.popleft())
        self._order.append(key)
        self._known.add(key)
        return True

    def fresh(self, event: events.Event) -> bool:
        """``add(events.key(event))``: True the first time (lately) this event is seen."""
        return self.add(events.key(event))

    def __contains__(self, key: object) -> bool:
        return key in self._known

    def __len__(self) -> int:
        return len(self._order)


async def follow_node_events(
    config: ClusterConfig,
    node_id: str,
    deliver: Deliver,
    *,
    reconnect_interval: float = 0.5,
) -> None:
    """Forever: hand every event of ``node_id`` to ``deliver``, subscribing again whenever the node
    goes away and comes back."""
    address = config.node(node_id).client
    fields = oneshot.client_fields(config, admin=False)  # this cluster's id: another cluster's node never answers
    tls = oneshot.client_tls(config)
    while True:
        try:
            async with ClusterClient({node_id: address}, connect_timeout=0.5, fields=fields, tls=tls) as client:
                connection = await client.connect(node_id)
                async for document in await connection.events():
                    await hand(deliver, events.from_node(document, node_id))
        except ClientError:
            pass
        await trio.sleep(reconnect_interval)


async def tail_audit_log(follower: events.LogFollower, deliver: Deliver, interval: float) -> None:
    """Forever: hand every event appended to the audit log to ``deliver``, looking every ``interval``."""
    while True:
        for event in events.parse_lines(follower.read_new()):
            await hand(deliver, event)
        await trio.sleep(interval)


class Members:
    """One event subscriber per node of the cluster file (see the module docstring).

    ``start(nursery)`` subscribes to the nodes of ``config``; ``reload()`` reads the file again and
    starts and cancels subscribers to match; ``config`` is the last file read.
    """

    def __init__(self, config: ClusterConfig, deliver: Deliver, *, reconnect_interval: float = 0.5) -> None:
        self.config = config
        self.deliver = deliver
        self.reconnect_interval = reconnect_interval
        #: The node ids subscribed to, each with the scope that cancels its subscriber.
        self.subscriptions: dict[str, trio.CancelScope] = {}
        self._nursery: trio.Nursery | None = None
        #: The stamp of the file when this object last read it: None at first, since ``config``
        #: was read by the caller at a moment unknown, so ``follow_file``'s first look reads it again.
        self._loaded: tuple[int, int, int] | None = None

    def start(self, nursery: trio.Nursery) -> None:
        """Run the subscribers in ``nursery`` from now on; subscribe to the nodes of ``config``."""
        self._nursery = nursery
        self.sync()

    def sync(self) -> None:
        """One subscriber per node of ``config``; stop those of nodes it no longer names."""
        assert self._nursery is not None, "call start(nursery) first"
        for node_id, scope in list(self.subscriptions.items()):
            if node_id not in self.config.node_ids:
                scope.cancel()
                del self.subscriptions[node_id]
        for node_id in self.config.node_ids:
            if node_id not in self.subscriptions:
                scope = self.subscriptions[node_id] = trio.CancelScope()
                self._nursery.start_soon(self._subscribe, node_id, self.config, scope)

    @property
    def loaded(self) -> tuple[int, int, int] | None:
        """The stamp of the file as this object last read it (None before its first ``reload``)."""
        return self._loaded

    def stamp(self) -> tuple[int, int, int] | None:
        """What changes when the cluster file is rewritten (None while it is missing)."""
        try:
            stat = self.config.path.stat()
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size, stat.st_ino

    def reload(self) -> bool:
        """Read the cluster file again (add-node / remove-node rewrote it); False if unusable."""
        stamp = self.stamp()
        try:
            self.config = load_config(self.config.path)
        except (ConfigError, OSError):
            return False
        self._loaded = stamp
        if self._nursery is not None:
            self.sync()
        return True

    async def follow_file(self, interval: float) -> None:
        """Forever: look at the cluster file every ``interval``; read it again when it changed.

        An unusable file (half written by hand, missing) is tried again at the next look.
        """
        while True:
            await trio.sleep(interval)
            if self.stamp() != self.loaded:
                self.reload()

    async def _subscribe(self, node_id: str, config: ClusterConfig, scope: trio.CancelScope) -> None:
        with scope:
            await follow_node_events(config, node_id, self.deliver, reconnect_interval=self.reconnect_interval)

