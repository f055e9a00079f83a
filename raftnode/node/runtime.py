"""The trio node: the shell around the pure core.

Theory of operation
-------------------
One task (``ReadyLoop.serve``, ``raftnode.node.readyloop``) owns the :class:`~raftnode.core.raft.Raft` core. Everything else puts items
into one of two inboxes (``raftnode.node.inbox``): the *urgent* one — peer messages from the transport, ticks, admin calls —
and the *proposals* — client commands from ``run_command`` and ``submit_command``. Each turn,
``ReadyLoop.serve`` takes everything urgent that is waiting, then at most ``max_batch`` proposals (so work
that arrives while the disk is busy is batched: a batch is whatever arrived while the previous
one was in flight, no timers), then processes the core's Ready. Client work can neither delay
nor crowd out the peer traffic (acknowledgements, heartbeats, votes) that keeps the leader in
office, and the bound on a turn's proposals bounds its work (proposals, applies, answers), so a
leader under any load sends its AppendEntries and heartbeats every few milliseconds, well within
the followers' election timeout. A proposal that finds ``inbox_size`` proposals waiting is
answered ``retry`` at once; endpoints that read many commands (the client service) stop reading
while ``proposals_backlogged()`` (``wait_for_room``), which pushes back on their clients through TCP.
Each turn processes the core's Readies through the one Ready loop, ``raftnode.node.driver.drive``,
in the order the core states (``core/ready.py``; the simulator runs the same function). The
node's ports (``NodePorts``) fill in the steps:

1. a leader's AppendEntries, heartbeats and snapshot chunks leave at once, before its own fsync
   (thesis §10.2.1: they promise nothing about its disk);
2. a leader applies the committed entries through the :class:`~raftnode.node.apply.Applier` and
   answers the callers whose commands they were (the seed's CommandResult): a ``run_command``
   caller's task is woken; a ``submit_command`` caller (the client service) is called back inline
   and the flush handlers write the answers, one write per connection, before the fsync below.
   Committed entries were made durable on a majority by earlier fsyncs (a leader counts its own
   copy only once ``advance`` reports it stable), so their answers need not wait for this turn's
   fsync of newer entries;
3. write the snapshot, entries and hard state to storage and fsync them — one fsync for the
   whole batch (group commit), in one long-lived disk thread (``raftnode.node.nodedisk``: cheaper than a
   ``trio.to_thread`` handoff per batch) — or, for a small batch (and with ``fsync = false``),
   in this task (``raftnode.node.fsyncplace``);
4. send every other message (votes, append acknowledgements: they promise durability), between
   ``cork()`` and ``uncork()`` when the transport offers them, so the TCP transport writes each
   peer's share of a Ready straight to its socket in one system call, from this task; a follower
   applies its committed entries now, after its acknowledgement is on its way;
5. ``advance`` the core, and snapshot the state machine when the log has grown past the threshold.

Ticks are counted lazily: the ticker wakes the node's task only when a timer is due
(``Raft.ticks_until_timer``, command deadlines, apply retries, membership waiters), and each
turn gives the core the ticks that passed (``Ticker.catch_up``, ``raftnode.node.ticker``), the one that fires a timer only
after the turn's waiting input.

While the node's task waits on the disk thread for longer than a heartbeat interval (a slow
fsync or snapshot write), the ticker sends a leader's heartbeats itself (``Ticker._keepalive``), so a
stalled disk does not look like a dead leader.

Linearizable reads (``query``, ``submit_query``; thesis §6.4) ride the proposal inbox without a
log entry: the node's task asks the core for a read index (``Raft.read_index``), and once a
Ready reports it (after the leader's heartbeat round, or the leader's answer to a follower) the
read waits until the applier has reached that index, then calls the state machine's read-only
``query``. A refused read (leadership lost, not confirmed in time) is answered redirect or retry,
never from a possibly stale state. A state machine without ``query`` gets its queries through
the log, like ``run_command``.

After each batch: configuration handlers hear of a new configuration (the composition root
connects to members it did not know), membership waiters (``add_node`` / ``remove_node``) are
answered once their change is committed here, and a node that applied its own removal stops.

Order rules: nothing that promises durability (a vote, an append acknowledgement, a client's
answer, which follows an apply, which follows a commit that counts this node's fsync) is sent
before the fsync that backs it. ``submit_command`` deadlines are kept in one queue per timeout
value (submission order is deadline order within it) and checked whenever ticks are counted;
the answered ones at the front are dropped then.

Time is ``trio.sleep``, so tests drive a node on ``trio.testing.MockClock(autojump_threshold=0)``.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

import trio

from ..core.commands import CommandResult, CommandTracker
from ..core.messages import EntryKind
from ..core.quorum import Configuration
from ..core.raft import Raft, RaftConfig
from ..storage import Storage
from ..transport import Transport
from ..wire.sessions import SessionStamp, SessionTable, encode_register
from .apply import Applier
from .deadlines import CommandDeadlines
from .eventbus import EventBus, NodeEvent
from .inbox import CALL, SNAPSHOT, NodeInbox, proposal_of
from .intake import CommandIntake
from .nodedisk import NodeDisk
from .nodestatus import NodeStatus, node_stats, node_status
from .readserver import ReadServer
from .readyloop import NodePorts, ReadyLoop
from .snapshotpolicy import SnapshotPolicy
from .snapshotter import Snapshotter
from .statemachines import StateMachine
from .ticker import Ticker
from .waiters import MembershipCheck, MembershipWaiters, Waiter, is_removed, is_voter

__all__ = ["NodeEvent", "NodeNotRunning", "NodeStatus", "RaftNode"]


class NodeNotRunning(RuntimeError):
    """The node is not running (not started yet, or stopped)."""


class RaftNode:
    """One Raft node in a trio program.

    Args:
        config: the core's settings (timeouts are in ticks).
        storage: where the log, hard state and snapshots live.
        transport: how messages reach the peers.
        state_machine: the application's ``process_command``/``snapshot``/``restore``.
        tick_seconds: wall time of one tick.
        snapshot_every: snapshot and compact once this many applied entries follow the last
            snapshot (None: never automatically)...
        snapshot_bytes: ...or once the commands applied since hold this many bytes (None: no limit).
        max_apply_attempts: attempts at applying a committed entry whose ``process_command``
            raises something other than CommandError, before the node stops applying.
        rng: seeds the election timeouts (default: from the OS).
        inbox_size: proposals waiting beyond this many are answered ``retry`` at once (and peer
            messages beyond this many are dropped, which the protocol survives: it never happens
            unless the node cannot keep up with its peers at all).
        max_batch: proposals taken per turn of the node's task: bounds the work between two
            sends to the peers (a turn's proposals are also its applies and answers).
        sessions: the client session table, with its bounds and timeout (``raftnode.wire.sessions``).
    """

    def __init__(
        self,
        config: RaftConfig,
        *,
        storage: Storage,
        transport: Transport,
        state_machine: StateMachine,
        tick_seconds: float = 0.01,
        snapshot_every: int | None = 10_000,
        snapshot_bytes: int | None = 64 << 20,
        max_apply_attempts: int = 3,
        rng: random.Random | None = None,
        inbox_size: int = 1 << 16,
        max_batch: int = 256,
        contexts: dict[str, str] | None = None,
        sessions: SessionTable | None = None,
    ):
        self.id = config.node_id
        self.config = config
        self.storage = storage
        self.transport = transport
        self.tick_seconds = tick_seconds
        self.raft: Raft | None = None
        self._rng = rng or random.Random()
        self._contexts = contexts
        self.stats = node_stats()
        self._events = EventBus(self.id, self.stats)  # start, stop, disk, elections, transfers ...
        self.applier = Applier(state_machine, max_attempts=max_apply_attempts, sessions=sessions)
        query = getattr(state_machine, "query", None)  # the read-only path of linearizable reads
        self._reads = ReadServer(self.applier, query) if query is not None else None  # None: reads go through the log
        self._inbox = NodeInbox(inbox_size, max_batch, self.stats)
        self._deadlines = CommandDeadlines(tick_seconds)  # of submit_command callers
        self._intake = CommandIntake(self._inbox, self._deadlines, reads_served=self._reads is not None)
        self._membership_waiters = MembershipWaiters()  # add_node / remove_node callers
        self._disk = NodeDisk(storage, self.id, self.stats, self._emit,
                              heartbeat_seconds=config.heartbeat_interval * tick_seconds)
        self._snapshots = Snapshotter(SnapshotPolicy(snapshot_every, snapshot_bytes), self.applier, self._disk)
        self._tracker: CommandTracker[Waiter] = CommandTracker()
        self._ports = NodePorts(  # what the shared Ready loop (raftnode.node.driver) calls
            self.id, transport, self.applier, self._tracker, self._reads, self._disk, self._snapshots,
            self._events, self.stats,
        )
        self._ticker = Ticker(
            tick_seconds, config.heartbeat_interval, self.stats, deadlines=self._deadlines,
            membership=self._membership_waiters, disk=self._disk, wake=self._inbox.tick,
            send=self._ports.send, retry_apply=self._ports.run_applier,
        )
        self._disk.before_wait = self._ticker.rearm
        validate = getattr(state_machine, "validate", None)  # refuses unparsable commands before the log
        self._loop = ReadyLoop(self._inbox, self._ticker, self._ports, self._membership_waiters, validate, self.stop)
        self._cancel_scope: trio.CancelScope | None = None
        self._started = trio.Event()

    @property
    def _running(self) -> bool:
        return self._inbox.open

    # -- lifecycle -----------------------------------------------------------------------------

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Load storage, then serve until ``stop()`` or cancellation; started once it serves."""
        self._disk.open()
        try:
            stored = await self._disk.run(self.storage.load)
            snapshot = await self._disk.run(self.storage.read_snapshot) if stored.snapshot is not None else None
        except BaseException:
            self._disk.close()
            raise
        self.raft = Raft(
            self.config, rng=self._rng, hard_state=stored.hard_state, entries=stored.entries, snapshot=snapshot,
            contexts=self._contexts,
        )
        self._loop.start(self.raft)
        self._disk.synced_vote = (stored.hard_state.term, stored.hard_state.vote)
        if snapshot is not None:
            self.applier.restore(snapshot[0].index, snapshot[1])
        self._emit("start", f"started at term {self.raft.term} with log {self.raft.log.offset}..{self.raft.log.last_index}")
        self._ticker.start(self.raft)
        try:
            with trio.CancelScope() as self._cancel_scope:
                async with trio.open_nursery() as nursery:
                    await nursery.start(self.transport.run, self._inbox.deliver)
                    nursery.start_soon(self._ticker.run)
                    nursery.start_soon(self._loop.serve)
                    self._inbox.open = True
                    self._started.set()
                    task_status.started()
        finally:
            await self._stopped()

    async def _stopped(self) -> None:
        """Answer everyone still waiting (redirect or retry, or NodeNotRunning for calls,
        snapshots and membership changes), then the last fsync."""
        self._inbox.open = False
        for waiter, result in self._tracker.leadership_lost(None):
            waiter.set(result)
        self._inbox.refuse_proposals()
        if self._reads is not None:
            self._reads.refuse(CommandResult(retry=True))
        error = NodeNotRunning(f"node {self.id} stopped")
        self._inbox.fail_calls(error)
        self._snapshots.fail_waiters(error)
        self._membership_waiters.fail(error)
        self._inbox.release_waiting_for_room()
        try:
            await self._disk.sync_at_stop()
        finally:
            self._disk.close()
            self._emit("stop", "stopped")
            self._events.close()

    def stop(self) -> None:
        """Stop serving: ``run`` returns once the last fsync finished."""
        if self._cancel_scope is not None:
            self._cancel_scope.cancel()

    async def wait_started(self) -> None:
        await self._started.wait()

    # -- the embedding API ---------------------------------------------------------------------

    async def run_command(
        self, command: str, *, timeout: float = 5.0, session: SessionStamp | None = None
    ) -> CommandResult:
        """The seed's ``run_command``: result after commit and apply, or redirect, retry, error or timeout.

        With ``session`` the command is applied at most once however often it is resent with the
        same stamp (``raftnode.wire.sessions``): a resent copy is answered with the first one's outcome.
        """
        return await self._intake.wait(proposal_of(command, session), timeout)

    async def query(self, command: str, *, timeout: float = 5.0) -> CommandResult:
        """A linearizable read (ReadIndex, §6.4), served here — leader or follower — without a log
        entry, from a state that holds every command acknowledged before the call: the result,
        or the state machine's error (a command that is not a read), redirect or retry (leadership
        lost or not confirmed; no leader known), or timeout. Through the log when the state
        machine has no ``query`` method."""
        return await self._intake.wait(self._intake.read_proposal(command), timeout)

    async def register_session(self, *, timeout: float = 5.0) -> CommandResult:
        """Open a client session through the log: ``result`` is its id (or redirect, retry, timeout)."""
        return await self._intake.wait((None, encode_register(time.time()), EntryKind.SESSION), timeout)

    def submit_command(
        self,
        command: str,
        on_result: Callable[[CommandResult], None],
        *,
        timeout: float = 5.0,
        session: SessionStamp | None = None,
    ) -> None:
        """``run_command`` without a task: ``on_result(result)`` is called once, from the node's task.

        For endpoints that serve many commands at once (the client service): no task, event or
        cancel scope per command. The node's flush handlers run after each batch of answers.
        """
        self._intake.submit(proposal_of(command, session), on_result, timeout)

    def submit_commands(
        self,
        commands: Sequence[str],
        on_result: Callable[[int, CommandResult], None],
        *,
        timeout: float = 5.0,
        stamps: Sequence[SessionStamp] | None = None,
    ) -> None:
        """``submit_command`` for a batch, proposed as one log entry (``EntryKind.BATCH``; a few if
        too big for one) in one turn, or all refused ``retry`` when the inbox has no room; each is
        applied on its own, in order: ``on_result(position, result)`` once per command, with the
        entry's index. ``stamps``: each command's session stamp."""
        self._intake.submit_batch(commands, on_result, timeout, stamps)

    def submit_query(self, command: str, on_result: Callable[[CommandResult], None], *, timeout: float = 5.0) -> None:
        """``query`` without a task, as ``submit_command`` is ``run_command`` without one."""
        self._intake.submit(self._intake.read_proposal(command), on_result, timeout)

    def proposals_backlogged(self) -> bool:
        """Enough proposals wait for the next turns: an endpoint should stop reading commands."""
        return self._inbox.backlogged()

    async def wait_for_room(self) -> None:
        """Wait until ``proposals_backlogged()`` is no longer true (or the node stops)."""
        await self._inbox.wait_for_room()

    def add_flush_handler(self, handler: Callable[[], None]) -> None:
        """Call ``handler()`` from the node's task after each batch of inputs and answers
        (an endpoint sends the answers it gathered from ``submit_command`` callbacks)."""
        self._ports.flush_handlers.append(handler)

    async def transfer_leadership(self, target: str) -> None:
        """Ask this node, the leader, to hand over to ``target``; raises NotLeader or UnknownNode."""
        await self._call(lambda: self._core().transfer_leadership(target))

    async def add_node(self, node: str, context: str = "", *, timeout: float = 30.0) -> None:
        """Add ``node`` through this node, the leader: returns once it is a voter here (§4.2.1).

        ``context`` is what the other members need to reach it (the composition root's format).
        Raises NotLeader or MembershipError at once; MembershipError if the leader gave up
        catching it up; TimeoutError if it is not a voter within ``timeout`` seconds.
        """
        await self._call(lambda: self._core().add_node(node, context))
        await self._wait_membership(is_voter(node), timeout, f"{node} is not a voter yet")

    async def remove_node(self, node: str, *, timeout: float = 30.0) -> None:
        """Remove ``node`` through this node, the leader: returns once the change is committed here.

        Raises NotLeader, UnknownNode or MembershipError at once; TimeoutError if the change does
        not commit within ``timeout`` seconds. Removing this node itself stops it afterwards.
        """
        await self._call(lambda: self._core().remove_node(node))
        await self._wait_membership(is_removed(node), timeout, f"the removal of {node} is not committed yet")

    async def _wait_membership(self, check: MembershipCheck, timeout: float, pending: str) -> None:
        if check(self._core()) is None:  # done already: answered even if the node stopped since
            self._check_running()
        await self._membership_waiters.wait(check, self._core(), timeout, pending)

    def add_configuration_handler(self, handler: Callable[[Configuration], None]) -> None:
        """Call ``handler(configuration)`` now (if running) and whenever this node's configuration changes."""
        self._loop.configuration_handlers.append(handler)
        if self._loop.configuration is not None:
            handler(self._loop.configuration)

    async def take_snapshot(self) -> int:
        """Snapshot the state machine now and compact the log; returns the snapshot's index once durable."""
        self._check_running()
        waiter = Waiter()
        self._inbox.put_urgent((SNAPSHOT, None, waiter))
        await waiter.event.wait()
        if waiter.error is not None:
            raise waiter.error
        return waiter.result

    def state_digest(self) -> str:
        """A short hash of the state machine's snapshot as of ``applied_index``: nodes that have
        applied the same prefix of the log hold the same digest."""
        return hashlib.sha256(self.applier.state_machine.snapshot()).hexdigest()[:16]

    def status(self) -> NodeStatus:
        return node_status(self.id, self._core(), self.applier, self.stats, self.transport.stats())

    def add_event_handler(self, handler: Callable[[NodeEvent], None]) -> None:
        """Call ``handler(event)`` for every event (from the node's task: keep it quick)."""
        self._events.add_handler(handler)

    def subscribe(self, max_buffer: int = 1000) -> trio.MemoryReceiveChannel[NodeEvent]:
        """A channel of events from now on (recent ones first); a slow reader loses events, not the node."""
        return self._events.subscribe(max_buffer)

    def recent_events(self) -> list[NodeEvent]:
        return self._events.recent()

    # -- inputs --------------------------------------------------------------------------------

    def _check_running(self) -> None:
        if not self._running:
            raise NodeNotRunning(f"node {self.id} is not running")

    def _core(self) -> Raft:
        if self.raft is None:
            raise NodeNotRunning(f"node {self.id} is not running")
        return self.raft

    async def _call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` in the task that owns the core; return its result or raise its error."""
        self._check_running()
        waiter = Waiter()
        self._inbox.put_urgent((CALL, fn, waiter))
        await waiter.event.wait()
        if waiter.error is not None:
            raise waiter.error
        return waiter.result

    def _emit(self, kind: str, detail: str) -> None:
        self._events.emit(kind, detail)
