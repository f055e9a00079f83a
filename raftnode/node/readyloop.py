"""The task that owns a node's core: its turns, and its side of the one Ready loop.

Each turn (:meth:`ReadyLoop.serve`) takes everything urgent that is waiting in the node's inbox
(``raftnode.node.inbox``), counts the ticks that passed (``raftnode.node.ticker``), takes at most a batch
of proposals, then processes the core's Readies through ``raftnode.node.driver.drive`` in the order
the core states (``core/ready.py``; the simulator runs the same function). :class:`NodePorts`
fill in the steps; the runtime's module docstring (``raftnode.node.runtime``) tells the order.

Turns run only in this task, woken by the inbox. Running a turn instead in the task that
delivered the input, while this one sleeps, was tried and measured (issue 19): it saves one
pass of trio's loop per hop (~7 us on the 2-core VM) but needs a shielded cancel scope (~7.5 us)
to never leave a turn half done, so it gained nothing at one command in flight; and from the
client connections it cost half the throughput at 8 in flight, each read's turn fsyncing alone
where this task's turn gathers what several tasks delivered (group commit).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import trio

from ..core.commands import CommandResult, CommandTracker
from ..core.errors import RaftError
from ..core.messages import Entry, EntryKind, Message
from ..core.quorum import Configuration
from ..core.raft import Raft
from ..core.readindex import ReadState
from ..core.ready import Ready, Role
from ..transport import Transport
from .apply import Applier
from .driver import drive, hand_over, lead_without_disk
from .eventbus import EventBus
from .inbox import MESSAGE, SNAPSHOT, TICK, BatchProposal, NodeInbox
from .nodedisk import DiskFull, NodeDisk
from .readserver import ReadServer
from .snapshotter import Snapshotter
from .statemachines import CommandError
from .waiters import BatchCallback, MembershipWaiters, Waiter

if TYPE_CHECKING:
    from .ticker import Ticker

log = logging.getLogger("raftnode")
_BATCH = EntryKind.BATCH


class NodePorts:
    """The node's side of the one Ready loop (``raftnode.node.driver``): sends through the transport,
    applies through the applier and answers the callers (``tracker``), persists through the disk,
    serves reads, snapshots by the policy. ``raft`` and ``ticker`` are set before the first turn.
    """

    def __init__(
        self,
        node_id: str,
        transport: Transport,
        applier: Applier,
        tracker: CommandTracker[Waiter],
        reads: ReadServer | None,
        disk: NodeDisk,
        snapshots: Snapshotter,
        events: EventBus,
        stats: dict[str, Any],
    ) -> None:
        self.node_id = node_id
        self.transport = transport
        self.applier = applier
        self.tracker = tracker
        self.reads = reads
        self.disk = disk
        self.snapshots = snapshots
        self.events = events
        self.stats = stats
        self.flush_handlers: list[Callable[[], None]] = []
        self.raft: Raft | None = None
        self.ticker: Ticker | None = None
        self._cork = getattr(transport, "cork", None)
        self._uncork = getattr(transport, "uncork", None)
        self._policy_asked_at = -1  # the applied index the snapshot policy was last asked at

    def send(self, messages: Sequence[Message]) -> None:
        """Send ``messages``; a transport that gathers sends (``cork``) writes once per peer (one
        message goes straight through: there is nothing to gather)."""
        send = self.transport.send
        if len(messages) == 1 or self._cork is None or self._uncork is None:
            for m in messages:
                send(m)
            return
        self._cork()
        try:
            for m in messages:
                send(m)
        finally:
            self._uncork()

    def report(self, ready: Ready) -> None:
        self.stats["batches"] += 1
        raft = self.raft
        assert raft is not None
        emit = self.events.emit
        for event in ready.events:
            emit(event.kind, event.detail)
        if ready.soft_state is not None:
            soft = ready.soft_state
            emit("role", f"{soft.role.value} in term {raft.term}, leader {soft.leader or 'unknown'}")
            if soft.role is not Role.LEADER and len(self.tracker):
                for waiter, result in self.tracker.leadership_lost(soft.leader):
                    waiter.set(result)
        if ready.committed:
            self.events.commit_progress(raft.commit)

    def apply(self, ready: Ready) -> None:
        if ready.snapshot is not None:
            self.applier.restore(ready.snapshot[0].index, ready.snapshot[1])
            self.snapshots.policy.reset()
        if ready.committed:
            self._apply(ready.committed)

    def flush(self) -> None:
        for handler in self.flush_handlers:
            handler()

    async def persist(self, ready: Ready) -> bool:
        raft = self.raft
        assert raft is not None
        try:
            await self.disk.persist(ready, raft.role is Role.LEADER)
        except DiskFull:
            return False
        return True

    def serve_reads(self, reads: Sequence[ReadState]) -> None:
        server = self.reads
        if reads:
            # The core's answers to reads asked of it (only asked when there is a ReadServer).
            assert server is not None and self.raft is not None
            server.answered(reads, self.raft.leader)
        if server is not None and server.due:
            server.serve()

    async def advanced(self) -> None:
        """Take a snapshot if the policy says one is due; asked only once something more was applied
        (nothing else makes one due: compaction and an installed snapshot only put it off)."""
        applied = self.applier.applied_index
        if applied == self._policy_asked_at:
            return
        self._policy_asked_at = applied
        raft = self.raft
        assert raft is not None
        if self.snapshots.due(raft):
            await self.snapshots.take(raft)

    # -- applying ------------------------------------------------------------------------------

    def _apply(self, committed: Sequence[Entry]) -> None:
        self.applier.submit(committed)
        self.snapshots.policy.applied(committed)
        assert self.ticker is not None
        if self.ticker.apply_retry_at is None:  # a failed entry waits for its retry tick
            self.run_applier()

    def run_applier(self) -> None:
        """Apply what the applier holds, answer the callers, serve the reads now due; a failed
        entry is retried after 2**attempt ticks, or halts the applier."""
        raft = self.raft
        assert raft is not None
        failure = self.applier.apply_each(self._answer_applied if len(self.tracker) else _no_waiter)
        if self.reads is not None and self.reads.due:
            self.reads.serve()
        if failure is None:
            return
        if failure.halted:
            message = (
                f"STOPPED APPLYING: index {failure.index} failed {failure.attempt} times ({failure.reason}); "
                "this node no longer applies commands and needs an operator"
            )
            log.error("%s: %s", self.node_id, message)
            self.events.emit("apply-halted", message)
            answer = self.tracker.failed(failure.index, f"apply halted at index {failure.index}: {failure.reason}")
            if answer is not None:
                answer[0].set(answer[1])
        else:
            self.events.emit("apply-error", f"index {failure.index} attempt {failure.attempt}: {failure.reason}; retrying")
            assert self.ticker is not None
            self.ticker.apply_retry_at = self.ticker.ticks + 2**failure.attempt

    def _answer_applied(self, entry: Entry, result: Any, error: str | None, stamp: Any, duplicate: bool) -> None:
        """Answer the caller waiting for ``entry``, if any (``Applier.apply_each``'s sink): straight
        from the outcome when it is the entry the caller proposed (``Waiter.applied``)."""
        raft = self.raft
        assert raft is not None
        taken = self.tracker.take(entry.index, entry.term, raft.leader)
        if taken is not None:
            waiter, answer = taken
            if answer is None:
                waiter.applied(result, error, entry.index)
            else:
                waiter.set(answer)


def _no_waiter(entry: Entry, result: Any, error: str | None, stamp: Any, duplicate: bool) -> None:
    """The sink of an applier run that no caller waits for (a follower's)."""


class ReadyLoop:
    """The node's task: one turn after another until cancelled.

    ``validate`` refuses unparsable commands before the log (None: none refused); ``stop`` is
    called once this node applied its own removal. ``configuration`` is the last configuration
    the ``configuration_handlers`` were told of. ``raft`` is set before :meth:`serve`.
    """

    def __init__(
        self,
        inbox: NodeInbox,
        ticker: Ticker,
        ports: NodePorts,
        membership: MembershipWaiters,
        validate: Callable[[str], Any] | None,
        stop: Callable[[], None],
    ) -> None:
        self.inbox = inbox
        self.ticker = ticker
        self.ports = ports
        self.membership = membership
        self._validate = validate
        self._stop = stop
        self.raft: Raft | None = None
        self.configuration: Configuration | None = None
        self.configuration_handlers: list[Callable[[Configuration], None]] = []

    def start(self, raft: Raft) -> None:
        """The core exists: attach it to the rooms that drive it (the ticker starts on its own)."""
        self.raft = self.ports.raft = raft
        self.ports.ticker = self.ticker
        self.configuration_seen()

    async def serve(self) -> None:
        inbox, ticker, ports = self.inbox, self.ticker, self.ports
        urgent, proposals, handle = inbox.urgent, inbox.proposals, self._handle
        perf = time.perf_counter
        stats = ports.stats
        raft = self.raft
        assert raft is not None
        while True:
            await inbox.wait_for_input()
            started = perf()
            ticker.catch_up(input_waits=bool(urgent))
            for _ in range(len(urgent)):  # what waits now; later arrivals go in the next turn
                handle(urgent.popleft())
            ticker.catch_up(input_waits=False)
            if proposals:
                inbox.take(self._propose, raft)
            await self._process_ready()
            ports.flush()
            if self.membership or raft.configuration is not self.configuration or raft.removed:
                self._after_membership_change()
            ticker.rearm()
            # A turn's wall time (its fsync included) is the longest the peers wait for our news.
            took = (perf() - started) * 1000
            if took > stats["turn_max_ms"]:
                stats["turn_max_ms"] = round(took, 1)
            if took > 50:
                stats["turns_over_50ms"] += 1

    def configuration_seen(self) -> None:
        raft = self.raft
        assert raft is not None
        self.configuration = raft.configuration
        for handler in self.configuration_handlers:
            handler(raft.configuration)

    def _after_membership_change(self) -> None:
        """Tell handlers of a new configuration, answer membership waiters, stop once removed."""
        raft = self.raft
        assert raft is not None
        if raft.configuration is not self.configuration:
            self.configuration_seen()
        if self.membership:
            self.membership.check(raft, trio.current_time())
        if raft.removed and self.inbox.open:
            self.ports.events.emit("removed", "this node was removed from the cluster: stopping")
            self._stop()

    def _handle(self, item: tuple) -> None:
        kind, payload, waiter = item
        raft = self.raft
        assert raft is not None
        if kind == MESSAGE:
            raft.step(payload)
        elif kind == TICK:
            pass  # the ticker woke this turn: catch_up counted the time
        elif kind == SNAPSHOT:
            self.ports.snapshots.waiters.append(waiter)
        else:
            try:
                waiter.set(payload())
            except Exception as exc:  # noqa: BLE001 - handed back to the caller
                waiter.set(error=exc)

    def _propose(self, raft: Raft, command: Any, data: bytes | None, kind: EntryKind, waiter: Any) -> None:
        """Propose one entry (a batch entry's ``command`` is its :class:`BatchProposal`), or ask a read."""
        if data is None:  # a read: enqueued without data only with a ReadServer (RaftNode._enqueue_read)
            assert command is not None and self.ports.reads is not None
            self.ports.reads.ask(raft, command, waiter)
            return
        if raft.role is Role.LEADER:
            if self.ports.disk.full_since is not None:
                waiter.set(CommandResult(retry=True, error=f"disk full at leader {self.ports.node_id}: it takes no "
                                                           "commands and is handing leadership over; retry at another node"))
                return
            validate = self._validate
            if validate is not None and command is not None:
                if kind is _BATCH:
                    if not self._validate_batch(validate, command, waiter):
                        return
                else:
                    try:
                        validate(command)
                    except CommandError as exc:
                        waiter.set(CommandResult(error=str(exc)))
                        return
        if kind is _BATCH:
            data = command.data()
        try:
            index = raft.propose(data, kind)
        except RaftError as exc:
            waiter.set(CommandResult.from_refusal(exc))
            return
        self.ports.tracker.track(index, raft.term, waiter)

    @staticmethod
    def _validate_batch(validate: Callable[[str], Any], batch: BatchProposal, waiter: BatchCallback) -> bool:
        """A leader refuses the commands of ``batch`` that ``validate`` refuses: each is answered
        with its own error and left out of the entry. False if none is left to propose."""
        refused = []
        for place, command in enumerate(batch.commands):
            try:
                validate(command)
            except CommandError as exc:
                refused.append((place, str(exc)))
        if refused:
            waiter.refuse(refused)
            if not waiter.at:
                return False
            batch.drop({place for place, _ in refused})
        return True

    async def _process_ready(self) -> None:
        raft = self.raft
        assert raft is not None
        disk = self.ports.disk
        if disk.full_since is not None and not await disk.has_room_again():
            self._while_disk_full(raft)  # inputs still reach the core; nothing it must persist leaves it
            return
        if not await drive(raft, self.ports):
            # A full disk dropped a Ready (see NodeDisk.persist): nothing of it written, nothing acknowledged.
            if raft.role is Role.LEADER:
                self._step_aside(raft)
            return
        if self.ports.snapshots.waiters:
            await self.ports.snapshots.answer_waiters(raft)
        if disk.full_since is not None:
            disk.leave_full()

    def _step_aside(self, raft: Raft) -> None:
        """A leader's write hit a full disk. What its Ready committed was applied before the write
        and is advanced as applied only, never twice (``driver.drive``); its entries stay
        unpersisted here (a majority of the others may still commit them). Leadership goes to the
        most caught-up follower; meanwhile ``_propose`` refuses commands with a retry."""
        self.ports.events.emit("disk", "disk full at the leader: taking no commands, handing leadership over")
        hand_over(raft)

    def _while_disk_full(self, raft: Raft) -> None:
        """A turn while the disk is full. A leader leads on without its disk until the hand-over
        ends it (``driver.lead_without_disk``), starting the transfer again if one aborted.
        Nothing else leaves the core; a node that stopped leading redirects the callers it still
        holds."""
        if raft.role is not Role.LEADER:
            tracker = self.ports.tracker
            if len(tracker):
                for waiter, result in tracker.leadership_lost(raft.leader):
                    waiter.set(result)
            return
        hand_over(raft)
        lead_without_disk(raft, self.ports)
