"""The trio node: the shell around the pure core.

Theory of operation
-------------------
One task (``_serve``) owns the :class:`~raftnode.core.raft.Raft` core. Everything else puts items
into one of two inboxes: the *urgent* one — peer messages from the transport, ticks, admin calls —
and the *proposals* — client commands from ``run_command`` and ``submit_command``. Each turn,
``_serve`` takes everything urgent that is waiting, then at most ``max_batch`` proposals (so work
that arrives while the disk is busy is batched: a batch is whatever arrived while the previous
one was in flight, no timers), then processes the core's Ready. Client work can neither delay
nor crowd out the peer traffic (acknowledgements, heartbeats, votes) that keeps the leader in
office, and the bound on a turn's proposals bounds its work (proposals, applies, answers), so a
leader under any load sends its AppendEntries and heartbeats every few milliseconds, well within
the followers' election timeout. A proposal that finds ``inbox_size`` proposals waiting is
answered ``retry`` at once; endpoints that read many commands (the client service) stop reading
while ``proposals_backlogged()`` (``wait_for_room``), which pushes back on their clients through TCP.
Each turn processes the core's Readies through the one Ready loop, ``raftnode.driver.drive``,
in the order the core states (``core/ready.py``; the simulator runs the same function). The
node's ports (``_NodePorts``) fill in the steps:

1. a leader's AppendEntries, heartbeats and snapshot chunks leave at once, before its own fsync
   (thesis §10.2.1: they promise nothing about its disk);
2. a leader applies the committed entries through the :class:`~raftnode.apply.Applier` and
   answers the callers whose commands they were (the seed's CommandResult): a ``run_command``
   caller's task is woken; a ``submit_command`` caller (the client service) is called back inline
   and the flush handlers write the answers, one write per connection, before the fsync below.
   Committed entries were made durable on a majority by earlier fsyncs (a leader counts its own
   copy only once ``advance`` reports it stable), so their answers need not wait for this turn's
   fsync of newer entries;
3. write the snapshot, entries and hard state to storage and fsync them — one fsync for the
   whole batch (group commit), in one long-lived disk thread (``_DiskThread``: cheaper than a
   ``trio.to_thread`` handoff per batch) — or, for a small batch (and with ``fsync = false``),
   in this task (``raftnode.fsyncplace``);
4. send every other message (votes, append acknowledgements: they promise durability), between
   ``cork()`` and ``uncork()`` when the transport offers them, so the TCP transport writes each
   peer's share of a Ready straight to its socket in one system call, from this task; a follower
   applies its committed entries now, after its acknowledgement is on its way;
5. ``advance`` the core, and snapshot the state machine when the log has grown past the threshold.

Ticks are counted lazily: the ticker wakes the node's task only when a timer is due
(``Raft.ticks_until_timer``, command deadlines, apply retries, membership waiters), and each
turn gives the core the ticks that passed (``_catch_up_ticks``), the one that fires a timer only
after the turn's waiting input.

While the node's task waits on the disk thread for longer than a heartbeat interval (a slow
fsync or snapshot write), the ticker sends a leader's heartbeats itself (``_keepalive``), so a
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

import errno
import hashlib
import logging
import math
import queue
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

import outcome
import trio

from .apply import Applier
from .core.commands import CommandResult, CommandTracker
from .core.errors import RaftError
from .core.messages import Entry, EntryKind, Message
from .core.quorum import Configuration
from .core.raft import Raft, RaftConfig
from .core.readindex import ReadState
from .core.ready import Ready, Role
from .driver import drive, hand_over, lead_without_disk
from .eventbus import EventBus, NodeEvent
from .fsyncplace import FsyncPlacement
from .readserver import ReadServer
from .snapshotpolicy import SnapshotPolicy
from .waiters import Callback, MembershipWaiters, Waiter
from .sessions import SessionStamp, SessionTable, encode_register, encode_session_command
from .statemachines import CommandError, StateMachine
from .storage import DiskFailure, Storage, StorageError
from .transport import Transport

log = logging.getLogger("raftnode")

_TICK, _MESSAGE, _CALL, _SNAPSHOT = range(4)
_TICK_ITEM = (_TICK, None, None)


@dataclass(frozen=True, kw_only=True)
class NodeStatus:
    """A consistent picture of one node, cheap to take (``RaftNode.status()``)."""

    id: str
    role: str
    term: int
    leader: str | None
    voters: list[str]
    learners: list[str]
    membership_change: str | None  # the leader's pending change, if any
    last_index: int
    commit_index: int
    applied_index: int
    snapshot_index: int
    apply_halted: str | None
    state: dict[str, Any]
    stats: dict[str, Any] = field(default_factory=dict)
    #: On the leader: how far each other member's log is known to match its own; else empty.
    match_index: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


DISK_FULL_RETRY_SECONDS = 1.0
"""How often a follower whose disk is full tries its storage again."""


class _DiskFull(Exception):
    """This turn's write hit a full disk: its entries and hard state are dropped, never advanced."""


class _DiskThread:
    """One long-lived thread for the blocking storage calls (fsync), handed work without
    ``trio.to_thread``: a queue put wakes it, ``run_sync_soon`` wakes the waiting task. Measured
    on the 2-core VM: about 85 us of CPU per round trip against 150-250 us for ``to_thread``.
    A caller cancelled meanwhile still waits for its call to finish (an fsync is never abandoned).
    """

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._token = trio.lowlevel.current_trio_token()
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def _work(self) -> None:
        jobs, token, reschedule = self._jobs, self._token, trio.lowlevel.reschedule
        while True:
            job = jobs.get()
            if job is None:
                return
            task, fn, args = job
            result = outcome.capture(fn, *args)
            try:
                token.run_sync_soon(reschedule, task, result)
            except trio.RunFinishedError:  # pragma: no cover - the run ended under us
                return

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        await trio.lowlevel.checkpoint_if_cancelled()
        self._jobs.put((trio.lowlevel.current_task(), fn, args))
        return await trio.lowlevel.wait_task_rescheduled(lambda _: trio.lowlevel.Abort.FAILED)

    def close(self) -> None:
        self._jobs.put(None)


class _NodePorts:
    """The node's side of the one Ready loop (``raftnode.driver``): which of its methods does what."""

    __slots__ = ("_node",)

    def __init__(self, node: RaftNode) -> None:
        self._node = node

    def send(self, messages: Sequence[Message]) -> None:
        self._node._send(messages)

    def report(self, ready: Ready) -> None:
        self._node.stats["batches"] += 1
        self._node._report(ready)

    def apply(self, ready: Ready) -> None:
        node = self._node
        if ready.snapshot is not None:
            node.applier.restore(ready.snapshot[0].index, ready.snapshot[1])
            node._snapshots.reset()
        if ready.committed:
            node._apply(ready.committed)

    def flush(self) -> None:
        self._node._flush()

    async def persist(self, ready: Ready) -> bool:
        try:
            await self._node._persist(ready)
        except _DiskFull:
            return False
        return True

    def serve_reads(self, reads: Sequence[ReadState]) -> None:
        node = self._node
        if reads:
            node._reads_answered(reads)
        if node._reads is not None and node._reads.due:
            node._reads.serve()

    async def advanced(self) -> None:
        node = self._node
        if node._snapshot_due(node._core()):
            await node._disk_snapshot(node._compact())


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
        sessions: the client session table, with its bounds and timeout (``raftnode.sessions``).
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
        self.applier = Applier(state_machine, max_attempts=max_apply_attempts, sessions=sessions)
        self._validate = getattr(state_machine, "validate", None)  # refuses unparsable commands before the log
        query = getattr(state_machine, "query", None)  # the read-only path of linearizable reads
        self._reads = ReadServer(self.applier, query) if query is not None else None  # None: reads go through the log
        self.tick_seconds = tick_seconds
        self._snapshots = SnapshotPolicy(snapshot_every, snapshot_bytes)
        self.raft: Raft | None = None
        self._rng = rng or random.Random()
        self._tracker: CommandTracker[Waiter] = CommandTracker()
        if max_batch < 1 or inbox_size < 1:
            raise ValueError("max_batch and inbox_size must be positive")
        self._urgent: deque[tuple] = deque()  # (kind, payload, waiter): peer messages, ticks, calls
        # (command or None for a session registration, the entry's data or None for a read served by
        # ``query``, its kind, waiter)
        self._proposals: deque[tuple[str | None, bytes | None, EntryKind, Any]] = deque()
        self._inbox_size = inbox_size
        self._max_batch = max_batch
        self._high_water = 4 * max_batch  # proposals_backlogged() above this
        self._next_turn_takes = 0  # proposals the next turn takes at least (a client batch kept whole)
        self._serve_task: Any = None  # the node's task while it waits for input
        self._room = trio.lowlevel.ParkingLot()  # endpoints waiting for proposals to drain
        self._cancel_scope: trio.CancelScope | None = None
        self._synced_vote: tuple[int, str | None] | None = None
        self._thread_storage = getattr(storage, "needs_thread", True)
        self._fsync_place = FsyncPlacement(fsyncs=getattr(storage, "fsync", True) is not False,
                                           heartbeat_seconds=self.config.heartbeat_interval * tick_seconds)
        self._ticks = 0
        self._apply_retry_at: int | None = None
        self._last_commit_event: tuple[int, float] | None = None  # (commit index, trio time) of the last commit event
        self._started = trio.Event()
        self._running = False
        self._snapshot_waiters: list[Waiter] = []
        # submit_command deadlines, in submission order per timeout (so each queue is sorted).
        self._deadlines: dict[int, deque[tuple[float, Callback]]] = {}  # timeout in ticks -> (deadline, caller)
        self._next_deadline = math.inf  # the earliest deadline at the queues' fronts (_expire keeps it)
        self._flush_handlers: list[Callable[[], None]] = []
        self._ports = _NodePorts(self)  # what the shared Ready loop (raftnode.driver) calls
        self._disk_thread: _DiskThread | None = None
        self._disk_since: float | None = None  # when the node's task began waiting on the disk thread
        self._keepalive_at = float("-inf")
        self._tick_scope: trio.CancelScope | None = None  # the ticker's sleep
        self._tick_last = 0.0  # when the last tick delivered was due
        self._tick_held = False  # a timer's tick waits for this turn's input (_catch_up_ticks)
        self._contexts = contexts
        self._configuration: Configuration | None = None
        self._configuration_handlers: list[Callable[[Configuration], None]] = []
        self._membership_waiters = MembershipWaiters()  # add_node / remove_node callers
        self._disk_failed = False
        self._disk_full_since: float | None = None  # waiting for space (see _persist)
        self._disk_retry_at = 0.0
        self._cork = getattr(transport, "cork", None)
        self._uncork = getattr(transport, "uncork", None)
        self.stats: dict[str, int] = {
            "inbox_dropped": 0, "peer_dropped": 0, "fsyncs": 0, "batches": 0, "events_dropped": 0,
            "turn_max_ms": 0, "turns_over_50ms": 0,
            "fsync_max_ms": 0, "keepalive_heartbeats": 0, "ticker_wakeups": 0, "disk_full": 0,
        }
        self._events = EventBus(self.id, self.stats)  # start, stop, disk, elections, transfers ...

    # -- lifecycle -----------------------------------------------------------------------------

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Load storage, then serve until ``stop()`` or cancellation; started once it serves."""
        if self._thread_storage:
            self._disk_thread = _DiskThread(f"raftnode-disk-{self.id}")
        try:
            stored = await self._disk(self.storage.load)
            snapshot = await self._disk(self.storage.read_snapshot) if stored.snapshot is not None else None
        except BaseException:
            if self._disk_thread is not None:
                self._disk_thread.close()
            raise
        self.raft = Raft(
            self.config, rng=self._rng, hard_state=stored.hard_state, entries=stored.entries, snapshot=snapshot,
            contexts=self._contexts,
        )
        self._configuration_seen()
        self._synced_vote = (stored.hard_state.term, stored.hard_state.vote)
        if snapshot is not None:
            self.applier.restore(snapshot[0].index, snapshot[1])
        self._emit("start", f"started at term {self.raft.term} with log {self.raft.log.offset}..{self.raft.log.last_index}")
        self._tick_last = trio.current_time()
        try:
            with trio.CancelScope() as self._cancel_scope:
                async with trio.open_nursery() as nursery:
                    await nursery.start(self.transport.run, self._deliver)
                    nursery.start_soon(self._ticker)
                    nursery.start_soon(self._serve)
                    self._running = True
                    self._started.set()
                    task_status.started()
        finally:
            self._running = False
            for waiter, result in self._tracker.leadership_lost(None):
                waiter.set(result)
            while self._proposals:
                self._proposals.popleft()[3].set(CommandResult(retry=True))
            if self._reads is not None:
                self._reads.refuse(CommandResult(retry=True))
            self._fail_waiters(NodeNotRunning(f"node {self.id} stopped"))
            self._room.unpark_all()
            try:
                with trio.CancelScope(shield=True):
                    if not self._disk_failed:  # after a failed write or fsync: never again
                        await self._disk(self.storage.sync)
            except Exception as exc:  # noqa: BLE001 - e.g. storage refusing after an fsync error
                log.error("%s: last sync at stop failed: %s", self.id, exc)
            finally:
                if self._disk_thread is not None:
                    self._disk_thread.close()
                self._emit("stop", "stopped")
                self._events.close()

    def _fail_waiters(self, error: BaseException) -> None:
        """Answer everyone waiting on the node's task (calls, snapshots, membership changes)."""
        for kind, _, waiter in self._urgent:
            if kind in (_CALL, _SNAPSHOT):
                waiter.set(error=error)
        self._urgent.clear()
        for waiter in self._snapshot_waiters:
            waiter.set(error=error)
        self._snapshot_waiters = []
        self._membership_waiters.fail(error)

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
        same stamp (``raftnode.sessions``): a resent copy is answered with the first one's outcome.
        """
        return await self._wait(self._enqueue(command, session), timeout)

    async def query(self, command: str, *, timeout: float = 5.0) -> CommandResult:
        """A linearizable read (ReadIndex, §6.4), served here — leader or follower — without a log
        entry, from a state that holds every command acknowledged before the call: the result,
        or the state machine's error (a command that is not a read), redirect or retry (leadership
        lost or not confirmed; no leader known), or timeout. Through the log when the state
        machine has no ``query`` method."""
        return await self._wait(self._enqueue_read(command), timeout)

    async def register_session(self, *, timeout: float = 5.0) -> CommandResult:
        """Open a client session through the log: ``result`` is its id (or redirect, retry, timeout)."""
        return await self._wait((None, encode_register(time.time()), EntryKind.SESSION), timeout)

    async def _wait(
        self, proposal: tuple[str | None, bytes | None, EntryKind] | CommandResult, timeout: float
    ) -> CommandResult:
        waiter = Waiter()
        refused = self._put_proposal(proposal, waiter)
        if refused is not None:
            return refused
        with trio.move_on_after(timeout):
            await waiter.event.wait()
            return waiter.result
        return CommandResult(timeout_expired=True)

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
        self._submit(self._enqueue(command, session), on_result, timeout)

    def submit_commands(
        self,
        commands: Sequence[str],
        on_result: Callable[[int, CommandResult], None],
        *,
        timeout: float = 5.0,
        stamps: Sequence[SessionStamp] | None = None,
    ) -> None:
        """``submit_command`` for a batch: all of ``commands`` are queued together (or all refused
        with ``retry`` when the inbox has no room for them), so the node proposes them in one
        turn -- one Ready, one fsync -- when they fit in ``max_batch``; ``on_result(position,
        result)`` is called once per command. ``stamps``: each command's session stamp."""
        callbacks = [Callback(partial(on_result, position)) for position in range(len(commands))]
        proposals = []
        for position, command in enumerate(commands):
            proposal = self._enqueue(command, stamps[position] if stamps is not None else None)
            if isinstance(proposal, CommandResult):
                callbacks[position].set(proposal)
            else:
                proposals.append((*proposal, callbacks[position]))
        if proposals and (not self._running or len(self._proposals) + len(proposals) > self._inbox_size):
            self.stats["inbox_dropped"] += len(proposals) if self._running else 0
            for proposal in proposals:
                proposal[3].set(CommandResult(retry=True))
            return
        self._proposals.extend(proposals)
        # The next turn takes the whole batch even beyond max_batch (up to the high-water mark).
        self._next_turn_takes = max(self._next_turn_takes, min(len(self._proposals), self._high_water))
        self._wake()
        for proposal in proposals:
            self._expire_after(proposal[3], timeout)

    def submit_query(self, command: str, on_result: Callable[[CommandResult], None], *, timeout: float = 5.0) -> None:
        """``query`` without a task, as ``submit_command`` is ``run_command`` without one."""
        self._submit(self._enqueue_read(command), on_result, timeout)

    def _submit(
        self,
        proposal: tuple[str | None, bytes | None, EntryKind] | CommandResult,
        on_result: Callable[[CommandResult], None],
        timeout: float,
    ) -> None:
        callback = Callback(on_result)
        refused = self._put_proposal(proposal, callback)
        if refused is not None:
            callback.set(refused)
            return
        self._expire_after(callback, timeout)

    def _expire_after(self, callback: Callback, timeout: float) -> None:
        """Answer ``callback`` with ``timeout_expired`` if nothing else did within ``timeout`` s."""
        # One queue per timeout in whole ticks (clients send their remaining time, a new float each
        # time): each queue stays in deadline order and a command expires at most a tick late.
        ticks = max(1, math.ceil(timeout / self.tick_seconds))
        waiting = self._deadlines.get(ticks)
        if waiting is None:
            waiting = self._deadlines[ticks] = deque()
        deadline = trio.current_time() + ticks * self.tick_seconds
        waiting.append((deadline, callback))
        if deadline < self._next_deadline:
            self._next_deadline = deadline

    def _enqueue_read(self, command: str) -> tuple[str, bytes | None, EntryKind] | CommandResult:
        """The proposal of the read ``command``: no data (served by ReadIndex) when the state machine
        has a read-only ``query``, else a plain command through the log."""
        proposal = self._enqueue(command, None)
        if self._reads is None or isinstance(proposal, CommandResult):
            return proposal
        return command, None, EntryKind.COMMAND

    @staticmethod
    def _enqueue(command: str, session: SessionStamp | None) -> tuple[str, bytes, EntryKind] | CommandResult:
        """The proposal of ``command``: the text, the entry's data and kind (a session command
        carries its stamp and this node's wall clock, ``raftnode.sessions``); or the answer at
        once when the text is not Unicode."""
        try:
            data = command.encode()
        except UnicodeEncodeError:
            return CommandResult(error=f"command {command!r} is not valid Unicode text")
        if session is None:
            return command, data, EntryKind.COMMAND
        return command, encode_session_command(session, time.time(), data), EntryKind.SESSION

    def _put_proposal(
        self, proposal: tuple[str | None, bytes | None, EntryKind] | CommandResult, waiter: Waiter | Callback
    ) -> CommandResult | None:
        """Queue ``proposal`` for the node's task; or the answer at once when it is one already,
        the node is not running, or the inbox is full."""
        if isinstance(proposal, CommandResult):
            return proposal
        if not self._running:
            return CommandResult(retry=True)
        if len(self._proposals) >= self._inbox_size:
            self.stats["inbox_dropped"] += 1
            return CommandResult(retry=True)
        self._proposals.append((*proposal, waiter))
        self._wake()
        return None

    def proposals_backlogged(self) -> bool:
        """Enough proposals wait for the next turns: an endpoint should stop reading commands."""
        return len(self._proposals) >= self._high_water

    async def wait_for_room(self) -> None:
        """Wait until ``proposals_backlogged()`` is no longer true (or the node stops)."""
        while self._running and len(self._proposals) >= self._high_water:
            await self._room.park()

    def add_flush_handler(self, handler: Callable[[], None]) -> None:
        """Call ``handler()`` from the node's task after each batch of inputs and answers
        (an endpoint sends the answers it gathered from ``submit_command`` callbacks)."""
        self._flush_handlers.append(handler)

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

        def check(raft: Raft) -> str | None:
            if node in raft.committed_configuration().voters:
                return ""
            failure = raft.catchup_failures.get(node)
            return failure if failure is not None and node not in raft.configuration.members() else None

        await self._wait_membership(check, timeout, f"{node} is not a voter yet")

    async def remove_node(self, node: str, *, timeout: float = 30.0) -> None:
        """Remove ``node`` through this node, the leader: returns once the change is committed here.

        Raises NotLeader, UnknownNode or MembershipError at once; TimeoutError if the change does
        not commit within ``timeout`` seconds. Removing this node itself stops it afterwards.
        """
        await self._call(lambda: self._core().remove_node(node))
        await self._wait_membership(
            lambda raft: "" if node not in raft.committed_configuration().members() else None,
            timeout, f"the removal of {node} is not committed yet",
        )

    async def _wait_membership(self, check: Callable[[Raft], str | None], timeout: float, pending: str) -> None:
        self._check_running()
        await self._membership_waiters.wait(check, timeout, pending)

    def add_configuration_handler(self, handler: Callable[[Configuration], None]) -> None:
        """Call ``handler(configuration)`` now (if running) and whenever this node's configuration changes."""
        self._configuration_handlers.append(handler)
        if self._configuration is not None:
            handler(self._configuration)

    async def take_snapshot(self) -> int:
        """Snapshot the state machine now and compact the log; returns the snapshot's index once durable."""
        self._check_running()
        waiter = Waiter()
        self._put_urgent((_SNAPSHOT, None, waiter))
        await waiter.event.wait()
        if waiter.error is not None:
            raise waiter.error
        return waiter.result

    def state_digest(self) -> str:
        """A short hash of the state machine's snapshot as of ``applied_index``: nodes that have
        applied the same prefix of the log hold the same digest."""
        return hashlib.sha256(self.applier.state_machine.snapshot()).hexdigest()[:16]

    def status(self) -> NodeStatus:
        raft = self._core()
        return NodeStatus(
            id=self.id,
            role=raft.role.value,
            term=raft.term,
            leader=raft.leader,
            voters=sorted(raft.configuration.voters),
            learners=sorted(raft.configuration.learners),
            membership_change=raft.pending_membership_change() if raft.role is Role.LEADER else None,
            last_index=raft.log.last_index,
            commit_index=raft.commit,
            applied_index=self.applier.applied_index,
            snapshot_index=raft.log.offset,
            apply_halted=self.applier.halted.reason if self.applier.halted else None,
            state=_summary(self.applier.state_machine),
            stats={**self.stats, **raft.stats, **self.transport.stats(), "client_sessions": len(self.applier.sessions)},
            match_index=self._match_index(raft),
        )

    @staticmethod
    def _match_index(raft: Raft) -> dict[str, int]:
        """The leader's match index of every other member (empty unless ``raft`` leads)."""
        if raft.role is not Role.LEADER:
            return {}
        members = (*raft.configuration.voters, *raft.configuration.learners)
        return {n: progress.match for n in sorted(members) if n != raft.id and (progress := raft.progress(n)) is not None}

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

    def _wake(self) -> None:
        """Input arrived: wake the node's task if it waits for some."""
        task = self._serve_task
        if task is not None:
            self._serve_task = None
            trio.lowlevel.reschedule(task)

    def _put_urgent(self, item: tuple) -> None:
        self._urgent.append(item)
        self._wake()

    def _deliver(self, message: Message) -> None:
        if len(self._urgent) >= self._inbox_size:
            self.stats["peer_dropped"] += 1
            return
        self._urgent.append((_MESSAGE, message, None))
        self._wake()

    async def _call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` in the task that owns the core; return its result or raise its error."""
        self._check_running()
        waiter = Waiter()
        self._put_urgent((_CALL, fn, waiter))
        await waiter.event.wait()
        if waiter.error is not None:
            raise waiter.error
        return waiter.result

    async def _ticker(self) -> None:
        """Wake the node's task when a tick is due to do something, not every tick: an idle
        follower wakes about once per election timeout, a leader once per heartbeat interval (a
        wake-up costs 100-200 us of CPU on a small VM). The node's task counts the ticks that
        passed at the start of each turn (``_catch_up_ticks``)."""
        tick = self.tick_seconds
        woke = trio.current_time()
        while True:
            # Until the node's task has counted the ticks and set the next wake-up (_rearm_ticker),
            # wake every tick: a task stuck on a slow disk still gets its keepalives.
            deadline = max(self._next_tick_at(), woke + tick)
            with trio.CancelScope(deadline=deadline) as self._tick_scope:
                await trio.sleep_forever()
            woke = trio.current_time()
            self.stats["ticker_wakeups"] += 1
            self._put_urgent(_TICK_ITEM)
            if self._disk_since is not None:
                self._keepalive()

    def _catch_up_ticks(self, *, input_waits: bool) -> None:
        """Give the core the whole ticks that passed since the last ones; called at the start of a
        turn (``input_waits``: the turn has input, which may have come before a timer was due) and
        again after its input.

        Ticks that fire nothing are counted at once. The tick that fires a timer waits for the
        input and comes only if the timer is still due after it: a heartbeat that waited in the
        queue resets an election timer first, as it would have with a tick every 10 ms. Time
        overslept beyond one fired timer (a stalled loop) is dropped.
        """
        held, self._tick_held = self._tick_held, False
        now = trio.current_time()
        elapsed = int((now - self._tick_last) / self.tick_seconds + 1e-9)
        if elapsed < 1:
            return
        due = self._ticks_due()
        if elapsed < due:
            self._give_ticks(elapsed)
        elif input_waits:
            self._give_ticks(due - 1)
            self._tick_held = True
        elif held and due > 1:  # the input pushed the timer out: what it waited for was there all along
            self._tick_last = now
        else:
            self._give_ticks(due)  # a timer fires
            rest = elapsed - due
            due = self._ticks_due()
            if rest < due:
                self._give_ticks(rest)
            else:
                self._give_ticks(due - 1)
                self._tick_last = now

    def _give_ticks(self, count: int) -> None:
        if count < 1:
            return
        raft = self.raft
        assert raft is not None
        self._tick_last += count * self.tick_seconds
        self._ticks += count
        for _ in range(count):
            raft.tick()
        if self._deadlines:
            self._expire()
        if self._apply_retry_at is not None and self._ticks >= self._apply_retry_at:
            self._apply_retry_at = None
            self._run_applier()

    def _ticks_due(self) -> int:
        """Ticks from the last one delivered until the core, a command deadline, an apply retry
        or a membership waiter needs the next."""
        raft = self.raft
        assert raft is not None  # the ticker starts once the core exists
        if self._membership_waiters:
            return 1
        due = raft.ticks_until_timer()
        if self._apply_retry_at is not None:
            due = min(due, self._apply_retry_at - self._ticks)
        if self._deadlines:
            due = min(due, math.ceil((self._next_deadline - self._tick_last) / self.tick_seconds - 1e-9))
        return max(1, due)

    def _rearm_ticker(self) -> None:
        """After a turn: set the ticker's wake-up from what is due now (the turn may have brought
        a timer forward — a new leader heartbeats sooner than a follower times out — or counted
        the ticks the ticker woke for)."""
        scope = self._tick_scope
        if scope is not None:
            at = self._next_tick_at()
            if at != scope.deadline:
                scope.deadline = at

    def _next_tick_at(self) -> float:
        return self._tick_last + self._ticks_due() * self.tick_seconds

    def _keepalive(self) -> None:
        """The node's task has waited on the disk for a heartbeat interval (a slow fsync or
        snapshot): a leader sends its followers a heartbeat from here, so a disk stall does not
        look like a dead leader (``Raft.heartbeats``: read-only, safe in the middle of a turn)."""
        raft = self.raft
        if raft is None or raft.role is not Role.LEADER or self._disk_since is None:
            return
        now = trio.current_time()
        interval = self.config.heartbeat_interval * self.tick_seconds
        if now - self._disk_since < interval or now - self._keepalive_at < interval:
            return
        self._keepalive_at = now
        beats = raft.heartbeats()
        if beats:
            self.stats["keepalive_heartbeats"] += len(beats)
            self._send(beats)

    # -- the task that owns the core -----------------------------------------------------------

    async def _wait_for_input(self) -> None:
        """Return once there is input; always a checkpoint (other tasks run between turns)."""
        if self._urgent or self._proposals:
            await trio.lowlevel.checkpoint()
            return
        self._serve_task = trio.lowlevel.current_task()

        def abort(_: Any) -> trio.lowlevel.Abort:
            self._serve_task = None
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)

    async def _serve(self) -> None:
        urgent, proposals, handle = self._urgent, self._proposals, self._handle
        perf = time.perf_counter
        stats = self.stats
        while True:
            await self._wait_for_input()
            started = perf()
            self._catch_up_ticks(input_waits=bool(urgent))
            for _ in range(len(urgent)):  # what waits now; later arrivals go in the next turn
                handle(urgent.popleft())
            self._catch_up_ticks(input_waits=False)
            if proposals:
                self._propose_batch(proposals)
            await self._process_ready()
            self._flush()
            if self._membership_waiters or self.raft.configuration is not self._configuration or self.raft.removed:
                self._after_membership_change()
            self._rearm_ticker()
            # A turn's wall time (its fsync included) is the longest the peers wait for our news.
            took = (perf() - started) * 1000
            if took > stats["turn_max_ms"]:
                stats["turn_max_ms"] = round(took, 1)
            if took > 50:
                stats["turns_over_50ms"] += 1

    def _propose_batch(self, proposals: deque[tuple[str | None, bytes | None, EntryKind, Any]]) -> None:
        raft = self.raft
        assert raft is not None
        propose = self._propose
        for _ in range(min(len(proposals), max(self._max_batch, self._next_turn_takes))):
            propose(raft, *proposals.popleft())
        self._next_turn_takes = 0
        if self._room and len(proposals) < self._high_water:
            self._room.unpark_all()

    def _configuration_seen(self) -> None:
        raft = self.raft
        assert raft is not None
        self._configuration = raft.configuration
        for handler in self._configuration_handlers:
            handler(raft.configuration)

    def _after_membership_change(self) -> None:
        """Tell handlers of a new configuration, answer membership waiters, stop once removed."""
        raft = self.raft
        assert raft is not None
        if raft.configuration is not self._configuration:
            self._configuration_seen()
        if self._membership_waiters:
            self._membership_waiters.check(raft, trio.current_time())
        if raft.removed and self._running:
            self._emit("removed", "this node was removed from the cluster: stopping")
            self.stop()

    def _flush(self) -> None:
        for handler in self._flush_handlers:
            handler()

    def _expire(self) -> None:
        """Answer ``submit_command`` callers whose deadline passed (``timeout_expired``); forget
        the answered ones at the front of each queue (answers come mostly in submission order)."""
        now = trio.current_time()
        emptied = []
        for timeout, waiting in list(self._deadlines.items()):
            while waiting and (waiting[0][1].done or waiting[0][0] <= now):
                callback = waiting.popleft()[1]
                if not callback.done:
                    callback.set(CommandResult(timeout_expired=True))
            if not waiting:
                emptied.append(timeout)
        for timeout in emptied:
            del self._deadlines[timeout]
        self._next_deadline = min((waiting[0][0] for waiting in self._deadlines.values()), default=math.inf)

    def _handle(self, item: tuple) -> None:
        kind, payload, waiter = item
        raft = self.raft
        assert raft is not None
        if kind == _MESSAGE:
            raft.step(payload)
        elif kind == _TICK:
            pass  # the ticker woke this turn: _catch_up_ticks counted the time
        elif kind == _SNAPSHOT:
            self._snapshot_waiters.append(waiter)
        else:
            try:
                waiter.set(payload())
            except Exception as exc:  # noqa: BLE001 - handed back to the caller
                waiter.set(error=exc)

    def _propose(self, raft: Raft, command: str | None, data: bytes | None, kind: EntryKind, waiter: Waiter) -> None:
        if data is None:  # a read: enqueued without data only with a ReadServer (_enqueue_read)
            assert command is not None and self._reads is not None
            self._reads.ask(raft, command, waiter)
            return
        validate = self._validate
        if self._disk_full_since is not None and raft.role is Role.LEADER:
            waiter.set(CommandResult(retry=True, error=f"disk full at leader {self.id}: it takes no commands and "
                                                       "is handing leadership over; retry at another node"))
            return
        if validate is not None and command is not None and raft.role is Role.LEADER:
            try:
                validate(command)
            except CommandError as exc:
                waiter.set(CommandResult(error=str(exc)))
                return
        try:
            index = raft.propose(data, kind)
        except RaftError as exc:
            waiter.set(CommandResult.from_refusal(exc))
            return
        self._tracker.track(index, raft.term, waiter)

    async def _process_ready(self) -> None:
        raft = self.raft
        assert raft is not None
        if self._disk_full_since is not None and not await self._disk_has_room_again():
            self._while_disk_full(raft)  # inputs still reach the core; nothing it must persist leaves it
            return
        if not await drive(raft, self._ports):
            # A full disk dropped a Ready (see _persist): nothing of it written, nothing acknowledged.
            if raft.role is Role.LEADER:
                self._step_aside(raft)
            return
        if self._snapshot_waiters:
            await self._answer_snapshot_waiters(raft)
        if self._disk_full_since is not None:
            self._leave_disk_full()

    async def _answer_snapshot_waiters(self, raft: Raft) -> None:
        waiters, self._snapshot_waiters = self._snapshot_waiters, []
        if self.applier.applied_index > raft.log.offset:
            await self._disk_snapshot(self._compact())
        for waiter in waiters:
            waiter.set(raft.log.offset)

    def _send(self, messages: Sequence[Message]) -> None:
        """Send ``messages``; a transport that gathers sends (``cork``) writes once per peer."""
        send = self.transport.send
        if self._cork is None or self._uncork is None:
            for m in messages:
                send(m)
            return
        self._cork()
        try:
            for m in messages:
                send(m)
        finally:
            self._uncork()

    async def _persist(self, ready: Ready) -> None:
        """Write and fsync ``ready``. A full disk (without a snapshot to install) raises _DiskFull:
        the node stays up, this Ready's entries and hard state are dropped unacknowledged and
        written again once space frees; a leader hands over (``_step_aside``). Any other failure
        stops the node (DiskFailure), never retried."""
        leader = self._core().role is Role.LEADER
        try:
            await self._write(ready, leader)
        except (StorageError, OSError) as exc:
            cause = exc.__cause__ or exc
            full = isinstance(cause, OSError) and cause.errno == errno.ENOSPC
            if full and ready.snapshot is None and hasattr(self.storage, "recover"):
                self._enter_disk_full(exc)
                raise _DiskFull from exc
            self._disk_failed = True
            detail = (f"{'disk full' if full else 'disk write or fsync failed'} ({exc}): node {self.id} stops; "
                      "it never retries the same data, and acknowledged nothing of it. Restart it to recover from "
                      "what is really on disk" + (" once the disk has room" if full else ""))
            self._emit("disk", detail)
            raise DiskFailure(detail) from exc

    def _enter_disk_full(self, exc: BaseException) -> None:
        self._disk_retry_at = trio.current_time() + DISK_FULL_RETRY_SECONDS
        if self._disk_full_since is None:
            self._disk_full_since = trio.current_time()
            self.stats["disk_full"] = 1
            self._emit("disk", f"disk full ({exc}): staying up, acknowledging nothing it cannot persist; "
                               f"trying again every {DISK_FULL_RETRY_SECONDS:g} s")

    async def _disk_has_room_again(self) -> bool:
        """While the disk is full: is it time to try again, and does the storage reopen?"""
        if trio.current_time() < self._disk_retry_at:
            return False
        self._disk_retry_at = trio.current_time() + DISK_FULL_RETRY_SECONDS
        try:
            await self._disk(self.storage.recover)  # type: ignore[attr-defined]
        except OSError:
            return False
        return True

    def _step_aside(self, raft: Raft) -> None:
        """A leader's write hit a full disk. What its Ready committed was applied before the write
        and is advanced as applied only, never twice (``driver.drive``); its entries stay
        unpersisted here (a majority of the others may still commit them). Leadership goes to the
        most caught-up follower; meanwhile ``_propose`` refuses commands with a retry."""
        self._emit("disk", "disk full at the leader: taking no commands, handing leadership over")
        hand_over(raft)

    def _while_disk_full(self, raft: Raft) -> None:
        """A turn while the disk is full. A leader leads on without its disk until the hand-over
        ends it (``driver.lead_without_disk``), starting the transfer again if one aborted.
        Nothing else leaves the core; a node that stopped leading redirects the callers it still
        holds."""
        if raft.role is not Role.LEADER:
            if len(self._tracker):
                for waiter, result in self._tracker.leadership_lost(raft.leader):
                    waiter.set(result)
            return
        hand_over(raft)
        lead_without_disk(raft, self._ports)

    def _leave_disk_full(self) -> None:
        since, self._disk_full_since = self._disk_full_since, None
        self.stats["disk_full"] = 0
        self._emit("disk", f"disk has room again after {trio.current_time() - since:.1f} s: resumed")  # type: ignore[operator]

    async def _write(self, ready: Ready, leader: bool) -> None:
        storage = self.storage
        if ready.snapshot is not None:
            await self._disk(storage.save_snapshot, *ready.snapshot)
        hard_state = ready.hard_state
        vote_changed = hard_state is not None and (hard_state.term, hard_state.vote) != self._synced_vote
        if hard_state is not None:
            storage.set_hard_state(hard_state)
        if ready.entries:
            storage.append(ready.entries)
        if ready.entries or vote_changed:
            # One fsync for everything this batch wrote: entries, term and vote. A commit index
            # that changed alone is a hint and rides along with the next fsync.
            started = time.perf_counter()
            if self._fsync_place.inline(len(ready.entries), leader=leader):
                storage.sync()  # see raftnode.fsyncplace
            else:
                await self._disk(storage.sync)
            took = time.perf_counter() - started
            self._fsync_place.observe(took)
            if took * 1000 > self.stats["fsync_max_ms"]:
                self.stats["fsync_max_ms"] = round(took * 1000, 1)
            self.stats["fsyncs"] += 1
            if hard_state is not None:
                self._synced_vote = (hard_state.term, hard_state.vote)

    async def _disk(self, fn: Callable[..., Any], *args: Any) -> Any:
        if not self._thread_storage:
            return fn(*args)
        self._disk_since = trio.current_time()
        self._rearm_ticker()  # this turn may have made the node leader: keepalives from its heartbeat timer on
        try:
            if self._disk_thread is not None:
                return await self._disk_thread.run(fn, *args)
            return await trio.to_thread.run_sync(fn, *args)
        finally:
            self._disk_since = None

    # -- applying ------------------------------------------------------------------------------

    def _apply(self, committed: Sequence[Entry]) -> None:
        self.applier.submit(committed)
        self._snapshots.applied(committed)
        if self._apply_retry_at is None:  # a failed entry waits for its retry tick
            self._run_applier()

    def _run_applier(self) -> None:
        raft = self.raft
        assert raft is not None
        done, failure = self.applier.run()
        for applied in done:
            entry = applied.entry
            answer = self._tracker.applied(
                entry.index, entry.term, result=applied.result, error=applied.error, leader=raft.leader
            )
            if answer is not None:
                answer[0].set(answer[1])
        if self._reads is not None and self._reads.due:
            self._reads.serve()
        if failure is None:
            return
        if failure.halted:
            message = (
                f"STOPPED APPLYING: index {failure.index} failed {failure.attempt} times ({failure.reason}); "
                "this node no longer applies commands and needs an operator"
            )
            log.error("%s: %s", self.id, message)
            self._emit("apply-halted", message)
            answer = self._tracker.failed(failure.index, f"apply halted at index {failure.index}: {failure.reason}")
            if answer is not None:
                answer[0].set(answer[1])
        else:
            self._emit("apply-error", f"index {failure.index} attempt {failure.attempt}: {failure.reason}; retrying")
            self._apply_retry_at = self._ticks + 2**failure.attempt

    # -- linearizable reads (§6.4) -----------------------------------------------------------------

    def _reads_answered(self, states: Sequence[ReadState]) -> None:
        """The core's answers to reads asked of it (only asked when there is a ReadServer)."""
        assert self._reads is not None and self.raft is not None
        self._reads.answered(states, self.raft.leader)

    # -- snapshots -----------------------------------------------------------------------------

    def _snapshot_due(self, raft: Raft) -> bool:
        return self._snapshots.due(self.applier.applied_index, raft.log.offset)

    def _compact(self) -> tuple[Any, bytes]:
        raft = self.raft
        assert raft is not None
        data = self.applier.snapshot()
        meta = raft.compact(self.applier.applied_index, data)
        self._snapshots.reset()
        return meta, data

    async def _disk_snapshot(self, snapshot: tuple[Any, bytes]) -> None:
        meta, data = snapshot

        def save() -> None:
            self.storage.save_snapshot(meta, data)
            self.storage.compact(meta.index)

        await self._disk(save)
        self._emit("snapshot", f"snapshot at index {meta.index}; log compacted")

    # -- events --------------------------------------------------------------------------------

    def _report(self, ready: Ready) -> None:
        raft = self.raft
        assert raft is not None
        for event in ready.events:
            self._emit(event.kind, event.detail)
        if ready.soft_state is not None:
            soft = ready.soft_state
            self._emit("role", f"{soft.role.value} in term {raft.term}, leader {soft.leader or 'unknown'}")
            if soft.role is not Role.LEADER and len(self._tracker):
                for waiter, result in self._tracker.leadership_lost(soft.leader):
                    waiter.set(result)
        if ready.committed:
            now = trio.current_time()
            last = self._last_commit_event
            if last is None or now - last[1] >= 1.0:
                rate = f" ({(raft.commit - last[0]) / (now - last[1]):.0f}/s)" if last is not None else ""
                self._emit("commit", f"commit index {raft.commit}{rate}")
                self._last_commit_event = (raft.commit, now)

    def _emit(self, kind: str, detail: str) -> None:
        self._events.emit(kind, detail)

def _summary(state_machine: StateMachine) -> dict[str, Any]:
    summary = getattr(state_machine, "summary", None)
    return summary() if summary is not None else {}
