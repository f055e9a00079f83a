"""``raftctl bench``: a closed-loop load generator for a running cluster, and its report.

Theory of operation
-------------------
The load is *closed-loop*: ``in_flight`` commands are outstanding at every moment, spread over
``connections`` TCP connections to the leader's client endpoint; each answer sends the next
command at once. A connection is one trio task that pipelines its share of the window on the
node's client protocol (``raftnode.node.service``): length-prefixed frames (``raftnode.wire.codec``) holding
JSON requests whose ``id`` the answer echoes. The task sends every request it has room for in one
``send_all``, reads whatever answers arrived in one ``receive_some``, and answers them all before
the next system call: no task per request, no event per request, so the client spends a few
microseconds per command (the report shows its CPU seconds next to the nodes').

Each connection's commands run in a client session (thesis §6.3, ``raftnode.wire.sessions``; off with
``Workload.sessions`` for servers without them): the connection's task registers one first and
stamps every command with its sequence number and the lowest one still unanswered, so its
pipelined window is one session's window, and a command sent again is applied at most once.

What an answer means (the seed's ``CommandResult``):

- a result: acknowledged — committed and applied (``ok``); its latency counts from the first send
  of the command, through any redirects and retries, to this answer;
- ``error``: refused by the node or the state machine (``errors``);
- ``redirect``: that node is not the leader, or the leader lost leadership with the command in
  its log (which may still commit); the command is sent again, with the same stamp, to the node
  named, once the connection's other requests are answered (``redirects``);
- ``retry``: no leader known (or the leader's inbox is full, or it lost leadership); the command
  is sent again, with the same stamp, after a short pause (``retries``);
- ``timeout_expired``: the leader did not commit in time; the outcome is unknown (``timeouts``).

Reads: a ``get`` (the read of every built-in state machine) goes as a ``query`` — a linearizable
read the leader serves without a log entry (ReadIndex, thesis §6.4) — unless ``reads_through_log``
sends it through the log like any command; so ``--command get`` measures reads and
``--command 'incr 1'`` writes. With ``spread`` the connections go to every node in turn, not
only the leader: reads are served where they arrive (a follower asks the leader for the read
index), writes are redirected to the leader. With ``batch`` above 1 a connection's commands go
``batch`` to a request, each still answered on its own: writes as ``run_many`` (one batch in the
leader's log), reads as ``query_many`` (one read per distinct command); a mix of both sends them in
separate requests, since each request kind has its own path through the node (and a write waits
for an fsync that a read does not).

A connection that breaks leaves its outstanding commands with an unknown outcome: in a session
they are sent again (``resent_after_loss``), without one they are given up (``lost``); the
connection is opened again to the next node, which will redirect it to the leader.

What is measured. An optional warm-up (``warmup`` seconds) runs the same load first, unmeasured.
With ``count`` the run issues exactly that many commands after the warm-up and measures them all,
from the end of the warm-up to the last answer. With ``duration`` the measurement is a window of
that many seconds: the answers that arrive in it, whenever their command was sent, over its
length — a closed loop's throughput even when a command takes longer than the window (counting
only the commands sent in the window would not be). Then no more commands are issued and the
outstanding ones are waited for (``late`` answers, not measured) for at most ``drain`` seconds.
If no answer at all arrives for ``stall_seconds`` the run is abandoned (``stalled``). Commands
still without an answer when a run ends are ``unanswered``: every run ends by itself.

The generator knows nothing of raftctl's cluster file: ``LoadGenerator`` takes the client
addresses and the leader's id, so ``benchmarks/compare_pysyncobj.py`` drives other systems that
speak the same protocol with the same code. ``cluster_bench`` is the ``raftctl bench`` command:
it finds the leader, reads the node processes' CPU time before and after, and builds the report,
which ``raftctl.render.bench`` shows (with the progress bar of a run).
"""

from __future__ import annotations

import itertools
import json
import os
import random
import ssl
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from raftnode.client.clientproto import ClientSession
from raftnode.config import Address, ClusterConfig
from raftnode.wire import codec, requests as wire
from raftnode.wire.sessions import SESSION_WINDOW

#: Default number of connections: the window is spread over at most this many.
DEFAULT_CONNECTIONS = 4
#: Seconds a connection attempt may take.
CONNECT_TIMEOUT = 1.0
#: Bytes asked of the kernel per read.
RECEIVE_BYTES = 1 << 18
#: First pause before re-sending a command answered ``retry``; doubles up to RETRY_PAUSE_MAX.
RETRY_PAUSE = 0.005
RETRY_PAUSE_MAX = 0.2


# -- the command mix ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mix:
    """Commands and their relative weights; ``choose`` picks one index at random by weight."""

    commands: tuple[str, ...]
    weights: tuple[int, ...]

    def describe(self) -> str:
        if len(self.commands) == 1:
            return self.commands[0]
        total = sum(self.weights)
        return ", ".join(f"{c!r} {100 * w / total:.0f}%" for c, w in zip(self.commands, self.weights))


def parse_mix(specs: Sequence[str]) -> Mix:
    """The mix of ``--command`` values: ``COMMAND`` (weight 1) or ``WEIGHT:COMMAND``.

    ``["incr 1", "get"]`` is half and half; ``["3:incr 1", "get"]`` is three increments for
    each get. The same command given twice adds up its weights.

    Raises:
        ValueError: an empty command or a weight that is not a positive integer.
    """
    merged: dict[str, int] = {}
    for spec in specs or ("incr 1",):
        weight_text, colon, rest = spec.partition(":")
        weight = 1
        command = spec
        if colon and weight_text.strip().isdigit():
            weight = int(weight_text)
            command = rest
            if weight < 1:
                raise ValueError(f"{spec!r}: the weight must be a positive integer")
        command = " ".join(command.split())
        if not command:
            raise ValueError(f"{spec!r}: the command is empty")
        merged[command] = merged.get(command, 0) + weight
    return Mix(tuple(merged), tuple(merged.values()))


def is_read(command: str) -> bool:
    """A ``get``: the read-only command of the built-in state machines, sent as a query."""
    return command.split(maxsplit=1)[0] == "get"


# -- settings, tallies, reports ----------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    """What to send: the mix, the window, and when to stop (``count`` or ``duration``)."""

    mix: Mix
    in_flight: int = 64
    connections: int | None = None  # None: min(in_flight, DEFAULT_CONNECTIONS)
    count: int | None = None
    duration: float | None = None
    warmup: float = 0.0
    command_timeout: float = 10.0  # seconds the leader may take to commit one command
    stall_seconds: float | None = None  # None: command_timeout + 5
    drain: float | None = None  # with duration: most seconds to wait for answers after the window; None: command_timeout + 1
    seed: int = 0
    batch: int = 1  # commands per request: above 1 writes go as run_many requests of up to this many, reads as query_many
    sessions: bool = True  # each connection's commands in a client session (False: servers without sessions)
    reads_through_log: bool = False  # send a get as run_command (a log entry), not as a query
    spread: bool = False  # connections to every node in turn, not only the leader

    def op(self, command: str) -> str:
        """The client-protocol op that carries ``command``."""
        return "query" if is_read(command) and not self.reads_through_log else "run_command"

    @property
    def in_sessions(self) -> bool:
        """Whether connections open client sessions: asked for, and some command is a write
        (reads change nothing, so a read-only load registers none)."""
        return self.sessions and any(self.op(c) == "run_command" for c in self.mix.commands)

    def __post_init__(self) -> None:
        if self.in_flight < 1:
            raise ValueError("in_flight must be at least 1")
        if self.connections is not None and not 1 <= self.connections <= self.in_flight:
            raise ValueError(f"connections must be between 1 and in_flight ({self.in_flight})")
        if self.in_sessions and self.in_flight > self.connection_count * SESSION_WINDOW:
            raise ValueError(f"a connection's session has at most {SESSION_WINDOW} commands in flight: "
                             f"give at least {-(-self.in_flight // SESSION_WINDOW)} connections")
        if not 1 <= self.batch <= wire.MAX_BATCH_COMMANDS:
            raise ValueError(f"batch must be between 1 and {wire.MAX_BATCH_COMMANDS}")
        if (self.count is None) == (self.duration is None):
            raise ValueError("give exactly one of count and duration")
        if self.count is not None and self.count < 1:
            raise ValueError("count must be at least 1")
        if self.duration is not None and self.duration <= 0:
            raise ValueError("duration must be positive")

    @property
    def connection_count(self) -> int:
        """The connections given, else up to DEFAULT_CONNECTIONS, more if a session's window
        (SESSION_WINDOW commands in flight) needs it."""
        if self.connections is not None:
            return self.connections
        needed = -(-self.in_flight // SESSION_WINDOW) if self.in_sessions else 1
        return max(min(self.in_flight, DEFAULT_CONNECTIONS), needed)

    def windows(self) -> list[int]:
        """The in-flight share of each connection (they add up to ``in_flight``)."""
        n = self.connection_count
        base, extra = divmod(self.in_flight, n)
        return [base + (1 if i < extra else 0) for i in range(n)]


@dataclass
class Tally:
    """What the measured part of a run produced (warm-up and late answers are counted apart)."""

    latencies: list[float] = field(default_factory=list)  # seconds, one per acknowledged command
    ok: int = 0
    errors: int = 0
    timeouts: int = 0
    lost: int = 0
    resent_after_loss: int = 0
    unanswered: int = 0
    redirects: int = 0
    retries: int = 0
    reconnects: int = 0
    issued: int = 0
    warmup_ok: int = 0
    late: int = 0  # final answers after a duration's window
    per_command: dict[str, int] = field(default_factory=dict)
    error_samples: dict[str, int] = field(default_factory=dict)
    leaders_seen: list[str] = field(default_factory=list)
    stalled: bool = False
    interrupted: bool = False  # Ctrl-C ended the run early (what was measured so far is reported)
    seconds: float = 0.0  # the measured time (see the module docstring)

    @property
    def completed(self) -> int:
        """Commands with a final answer (acknowledged, refused or timed out)."""
        return self.ok + self.errors + self.timeouts

    def note_error(self, message: str) -> None:
        if message in self.error_samples or len(self.error_samples) < 5:
            self.error_samples[message] = self.error_samples.get(message, 0) + 1


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """The nearest-rank ``p``-th percentile of an ascending sequence (p in 0..100).

    The smallest value with at least ``p`` percent of the values at or below it: p50 of
    [1, 2, 3, 4] is 2, p99 of 100 values is the 99th, p100 the largest.
    """
    if not sorted_values:
        raise ValueError("no values")
    if not 0 <= p <= 100:
        raise ValueError(f"percentile {p} is not between 0 and 100")
    n = len(sorted_values)
    rank = max(1, -(-p * n // 100))  # ceil(p * n / 100), at least the first
    return sorted_values[min(n, int(rank)) - 1]


def latency_summary(latencies: Sequence[float]) -> dict[str, float | None]:
    """p50/p90/p99/max/mean of latencies in seconds, as milliseconds (None without any)."""
    if not latencies:
        return {"p50": None, "p90": None, "p99": None, "max": None, "mean": None}
    ordered = sorted(latencies)
    ms = 1000.0
    return {
        "p50": round(percentile(ordered, 50) * ms, 3),
        "p90": round(percentile(ordered, 90) * ms, 3),
        "p99": round(percentile(ordered, 99) * ms, 3),
        "max": round(ordered[-1] * ms, 3),
        "mean": round(sum(ordered) / len(ordered) * ms, 3),
    }


def throughput(acknowledged: int, seconds: float) -> float:
    """Acknowledged commands per second (0 for an empty or instant run)."""
    return acknowledged / seconds if seconds > 0 and acknowledged else 0.0


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU seconds of process ``pid`` so far (Linux /proc), None if unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def cpu_deltas(before: dict[str, float | None], after: dict[str, float | None]) -> dict[str, float | None]:
    """CPU seconds spent between two readings, per name (None where either reading is missing)."""
    out: dict[str, float | None] = {}
    for name, start in before.items():
        end = after.get(name)
        out[name] = round(end - start, 3) if start is not None and end is not None else None
    return out


def build_report(
    workload: Workload,
    tally: Tally,
    *,
    leader: str | None,
    node_cpu: dict[str, float | None],
    client_cpu: float,
    wall_seconds: float,
) -> dict[str, Any]:
    """The JSON document of a run (``raftctl bench --json``); the human report renders it."""
    seconds = tally.seconds
    return {
        "leader": leader,
        "leaders_seen": tally.leaders_seen,
        "mix": [{"command": c, "weight": w, "op": workload.op(c)}
                for c, w in zip(workload.mix.commands, workload.mix.weights)],
        "in_flight": workload.in_flight,
        "batch": workload.batch,
        "connections": workload.connection_count,
        "count": workload.count,
        "duration": workload.duration,
        "warmup": workload.warmup,
        "seconds": round(seconds, 4),
        "issued": tally.issued,
        "acknowledged": tally.ok,
        "completed": tally.completed,
        "throughput": round(throughput(tally.ok, seconds), 1),
        "latency_ms": latency_summary(tally.latencies),
        "errors": tally.errors,
        "error_samples": tally.error_samples,
        "timeouts": tally.timeouts,
        "lost": tally.lost,
        "resent_after_loss": tally.resent_after_loss,
        "unanswered": tally.unanswered,
        "late": tally.late,
        "redirects": tally.redirects,
        "retries": tally.retries,
        "reconnects": tally.reconnects,
        "per_command": tally.per_command,
        "warmup_acknowledged": tally.warmup_ok,
        "stalled": tally.stalled,
        "interrupted": tally.interrupted,
        "cpu_seconds": {
            "nodes": node_cpu,
            "client": round(client_cpu, 3),
            # A client near 1.0 (one core) would be the bottleneck: it is single-threaded.
            "client_share_of_a_core": round(client_cpu / wall_seconds, 3) if wall_seconds > 0 else None,
            "wall_seconds": round(wall_seconds, 3),
        },
    }


# -- the load generator ------------------------------------------------------------------------------


class BatchFramer:
    """A connection's framer for ``Workload.batch`` above 1: ``frame(command, seq, request_id)``
    gathers the command (and returns nothing to send); ``frames(ids)`` makes the frames of those
    gathered, ``batch`` commands to a frame -- writes as run_many, reads (``Workload.op`` query)
    as query_many, never the two in one frame -- each under a new id from ``ids`` whose commands'
    request ids ``members`` keeps until its answer."""

    def __init__(self, commands: Sequence[str], workload: Workload, session: ClientSession | None,
                 fields: dict[str, Any]) -> None:
        self.commands = commands
        self.batch = workload.batch
        self.timeout = workload.command_timeout
        self.session = session
        self.fields = fields
        self.reads = [workload.op(command) == wire.Query.OP for command in commands]
        self.any_reads = any(self.reads)
        # A query_many's JSON up to its commands' list, and each command's JSON in it.
        head = codec.encode_json({**wire.document(wire.QueryMany([], self.timeout)), **fields})
        self.query_head = head.replace(b'"commands":[],', b"", 1)[:-1] + b',"commands":['
        self.command_json = [json.dumps(command).encode() for command in commands]
        self.gathered: list[tuple[int, int, int]] = []  # (command, seq, request id)
        self.members: dict[int, list[int]] = {}  # frame id -> its commands' request ids

    def __call__(self, command: int, seq: int, request_id: int) -> bytes:
        self.gathered.append((command, seq, request_id))
        return b""

    def reset(self) -> None:
        """Forget the frames of a lost connection (their commands are sent again, or given up)."""
        self.gathered.clear()
        self.members.clear()

    def frames(self, ids: Iterator[int]) -> list[bytes]:
        gathered, out = self.gathered, []
        if not self.any_reads:
            self._write_frames(gathered, ids, out)
        else:
            reads = self.reads
            self._write_frames([entry for entry in gathered if not reads[entry[0]]], ids, out)
            self._query_frames([entry for entry in gathered if reads[entry[0]]], ids, out)
        gathered.clear()
        return out

    def _write_frames(self, gathered: list[tuple[int, int, int]], ids: Iterator[int], out: list[bytes]) -> None:
        session = self.session
        for start in range(0, len(gathered), self.batch):
            chunk = gathered[start : start + self.batch]
            frame_id = next(ids)
            self.members[frame_id] = [request_id for _, _, request_id in chunk]
            commands = [self.commands[command] for command, _, _ in chunk]
            request = wire.RunMany(commands, self.timeout)
            if session is not None:
                request = request.replace(session=session.id, seqs=[seq for _, seq, _ in chunk],
                                          ack=session.lowest_unanswered())
            document = {**wire.document(request), **self.fields, "id": frame_id}
            out.append(codec.encode_frame(codec.FrameKind.CLIENT_REQUEST, codec.encode_json(document)))

    def _query_frames(self, gathered: list[tuple[int, int, int]], ids: Iterator[int], out: list[bytes]) -> None:
        """query_many frames of the reads ``gathered``, formatted without a document per frame."""
        head, command_json, members, kind = self.query_head, self.command_json, self.members, codec.FrameKind.CLIENT_REQUEST
        for start in range(0, len(gathered), self.batch):
            chunk = gathered[start : start + self.batch]
            frame_id = next(ids)
            members[frame_id] = [request_id for _, _, request_id in chunk]
            body = b",".join([command_json[command] for command, _, _ in chunk])
            out.append(codec.encode_frame(kind, b"%s%s],\"id\":%d}" % (head, body, frame_id)))


class LoadGenerator:
    """Drives ``workload`` against the nodes at ``addresses``, starting at node ``leader``.

    ``progress(done, elapsed_measured, warming_up)`` is called about ten times a second.
    """

    def __init__(
        self,
        addresses: dict[str, Address],
        leader: str,
        workload: Workload,
        *,
        progress: Callable[[int, float, bool], None] | None = None,
        fields: dict[str, Any] | None = None,
        stop_on_sigint: bool = False,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        """``stop_on_sigint``: the first Ctrl-C ends the run like its end (the report says
        ``interrupted``) instead of raising KeyboardInterrupt; for the CLI, in the main thread.
        ``tls``: connect over TLS with this client context."""
        self.stop_on_sigint = stop_on_sigint
        self.tls = tls
        if leader not in addresses:
            raise ValueError(f"unknown leader {leader!r}")
        self.addresses = dict(addresses)
        self.order = list(addresses)
        self.leader = leader
        self.workload = workload
        self.progress = progress
        self.tally = Tally()
        self._fields = fields or {}
        mix = workload.mix
        self._commands = mix.commands
        self._counts = [0] * len(mix.commands)
        # The JSON of each request up to its stamp (in a session) or its id: what changes.
        self._prefixes = [
            codec.encode_json({**wire.document(wire.command_request(c, timeout=workload.command_timeout, op=workload.op(c))),
                               **(fields or {})})[:-1]
            for c in mix.commands
        ]
        rng = random.Random(workload.seed)
        if len(mix.commands) == 1:
            self._choose: Callable[[], int] = lambda: 0
        else:
            population = range(len(mix.commands))
            cumulative = list(itertools.accumulate(mix.weights))
            choices = rng.choices

            def choose() -> int:
                return choices(population, cum_weights=cumulative)[0]

            self._choose = choose
        self._stopping = False
        self._start = 0.0
        self._measure_start = 0.0
        self._measure_end = float("inf")
        self._by_time = workload.duration is not None
        self._last_answer = 0.0
        self._last_measured_answer = 0.0

    # Issuing ------------------------------------------------------------------------------------

    def _ticket(self, now: float) -> bool:
        """Whether a new command may be issued now (and count it)."""
        if self._stopping:
            return False
        if now < self._measure_start:
            return True
        w = self.workload
        if w.count is not None:
            if self.tally.issued >= w.count:
                self._stopping = True
                return False
        elif now >= self._measure_end:
            self._stopping = True
            return False
        self.tally.issued += 1
        return True

    def _framer(self, session: ClientSession | None) -> Callable[[int, int, int], bytes]:
        """``frame(command, seq, request_id)``: the request frame, stamped in ``session`` if any;
        with a ``batch`` over 1 a BatchFramer, which gathers the commands into run_many frames."""
        if self.workload.batch > 1:
            return BatchFramer(self._commands, self.workload, session, self._fields)
        encode_frame, kind = codec.encode_frame, codec.FrameKind.CLIENT_REQUEST
        if session is None:
            plain = [prefix + b',"id":' for prefix in self._prefixes]
            return lambda command, seq, request_id: encode_frame(kind, plain[command] + b"%d}" % request_id)
        stamped = [prefix + b',"session":%d,"seq":' % session.id for prefix in self._prefixes]
        lowest = session.lowest_unanswered
        return lambda command, seq, request_id: encode_frame(
            kind, stamped[command] + b'%d,"ack":%d,"id":%d}' % (seq, lowest(), request_id)
        )

    async def _open_session(self) -> ClientSession:
        """A client session registered through the leader (following redirects)."""
        from raftnode.client.trioclient import ClusterClient

        async with ClusterClient(self.addresses, connect_timeout=CONNECT_TIMEOUT, tls=self.tls,
                                 fields=self._fields) as client:
            client.leader_hint = self.leader
            return await client.open_session(timeout=self.workload.command_timeout)

    async def _connect(self, address: Address) -> trio.abc.Stream:
        """A connection to ``address``, under TLS if the generator has a context."""
        stream = await trio.open_tcp_stream(address.host, address.port)
        if self.tls is None:
            return stream
        secure = trio.SSLStream(stream, self.tls, server_hostname=address.host)
        try:
            await secure.do_handshake()
        except BaseException:
            with trio.CancelScope(shield=True):
                await stream.aclose()
            raise
        return secure

    def _next_node(self, node: str) -> str:
        return self.order[(self.order.index(node) + 1) % len(self.order)]

    # Running --------------------------------------------------------------------------------------

    async def run(self) -> Tally:
        w = self.workload
        self._start = self._last_answer = time.perf_counter()
        self._measure_start = self._start + w.warmup
        if w.duration is not None:
            self._measure_end = self._measure_start + w.duration
        self.tally.leaders_seen.append(self.leader)
        async with trio.open_nursery() as outer:
            async with trio.open_nursery() as workers:
                outer.start_soon(self._watch, workers.cancel_scope)
                if self.stop_on_sigint:
                    outer.start_soon(self._stop_on_sigint, workers.cancel_scope)
                for i, window in enumerate(w.windows()):
                    target = self.order[(self.order.index(self.leader) + i) % len(self.order)] if w.spread else self.leader
                    workers.start_soon(self._worker, window, target)
            outer.cancel_scope.cancel()
        if self._by_time:
            end = min(time.perf_counter(), self._measure_end)
        else:
            end = self._last_measured_answer if self._last_measured_answer else time.perf_counter()
        self.tally.seconds = max(0.0, end - self._measure_start)
        for i, n in enumerate(self._counts):
            if n:
                self.tally.per_command[self._commands[i]] = n
        return self.tally

    async def _watch(self, workers: trio.CancelScope) -> None:
        """Report progress; end the drain after ``drain`` seconds; abandon the run when no
        answer came for ``stall_seconds``."""
        w = self.workload
        stall = w.stall_seconds if w.stall_seconds is not None else w.command_timeout + 5
        drain = w.drain if w.drain is not None else w.command_timeout + 1
        while True:
            await trio.sleep(0.1)
            now = time.perf_counter()
            if self.progress is not None:
                warming = now < self._measure_start
                self.progress(self.tally.completed, max(0.0, min(now, self._measure_end) - self._measure_start), warming)
            if now - self._last_answer > stall:
                self.tally.stalled = True
            elif not now > self._measure_end + drain:
                continue
            self._stopping = True
            workers.cancel()
            return

    async def _stop_on_sigint(self, workers: trio.CancelScope) -> None:
        """On the first SIGINT: stop issuing, cancel the workers, mark the tally interrupted."""
        import signal

        with trio.open_signal_receiver(signal.SIGINT) as signals:
            async for _ in signals:
                self.tally.interrupted = True
                self._measure_end = min(self._measure_end, time.perf_counter())
                self._stopping = True
                workers.cancel()
                return

    async def _worker(self, window: int, target: str) -> None:
        """One connection's share of the load, reconnecting (and following redirects) as needed."""
        session = await self._open_session() if self.workload.in_sessions else None
        frame_of = self._framer(session)
        pending: deque[tuple[float, int, int]] = deque()  # (first send, command, seq) to send again
        delayed: deque[tuple[float, float, int, int]] = deque()  # (when to resend, first send, command, seq)
        failures = 0
        first = True
        while True:
            if self._stopping and not pending and not delayed:
                return
            address = self.addresses[target]
            try:
                with trio.fail_after(CONNECT_TIMEOUT):
                    stream = await self._connect(address)
            except (OSError, trio.TooSlowError, trio.BrokenResourceError):
                failures += 1
                target = self._next_node(target)
                await trio.sleep(min(0.02 * failures, 0.5))
                continue
            if not first:
                self.tally.reconnects += 1
            first = False
            failures = 0
            async with stream:
                target = await _Pipeline(self, target, window, pending, delayed, frame_of, session).run(stream)
            if target is None:
                return

    def _counted(self, outstanding: dict[int, tuple[float, int]]) -> int:
        """How many of ``outstanding`` are not warm-up commands (whose fate is not reported)."""
        if self._by_time:
            return len(outstanding) if time.perf_counter() >= self._measure_start else 0
        return sum(1 for sent, _, _ in outstanding.values() if sent >= self._measure_start)


class _Pipeline:
    """Commands pipelined on one connection of ``generator`` (its ``_worker`` makes one per
    connection it opens): ``run`` sends and answers until the connection's work is done, breaks
    or is redirected. ``pending`` and ``delayed`` are the worker's: commands to send again outlive
    the connection. Commands carry a sequence number of ``session`` (0 without one), ended at
    their final answer."""

    __slots__ = ("generator", "target", "window", "pending", "delayed", "frame_of", "session", "begin", "end",
                 "decoder", "outstanding", "ids", "switch_to", "pause", "batching")

    def __init__(
        self,
        generator: LoadGenerator,
        target: str,
        window: int,
        pending: deque[tuple[float, int, int]],
        delayed: deque[tuple[float, float, int, int]],
        frame_of: Callable[[int, int, int], bytes],
        session: ClientSession | None,
    ) -> None:
        self.generator = generator
        self.target = target
        self.window = window
        self.pending = pending
        self.delayed = delayed
        self.frame_of = frame_of
        self.session = session
        self.begin: Callable[[], int] = session.begin if session is not None else lambda: 0
        self.end: Callable[[int], None] = session.end if session is not None else lambda seq: None
        self.decoder = codec.FrameDecoder()
        self.outstanding: dict[int, tuple[float, int, int]] = {}  # request id -> (first send, command, seq)
        self.ids = itertools.count(1)
        self.switch_to: str | None = None
        self.pause = RETRY_PAUSE
        self.batching = frame_of if isinstance(frame_of, BatchFramer) else None
        if self.batching is not None:
            self.batching.reset()

    async def run(self, stream: trio.abc.Stream) -> str | None:
        """Pipeline commands on ``stream``; returns the node to go to next, None when done."""
        perf = time.perf_counter
        outstanding, pending, delayed = self.outstanding, self.pending, self.delayed
        try:
            while True:
                out = self._to_send(perf())
                if out:
                    await stream.send_all(out[0] if len(out) == 1 else b"".join(out))
                if not outstanding:
                    if self.switch_to is not None:
                        return self.switch_to
                    if delayed:
                        await trio.sleep(max(0.0, delayed[0][0] - perf()))
                        continue
                    if pending:
                        continue
                    return None  # nothing left to send or to wait for
                data = await stream.receive_some(RECEIVE_BYTES)
                if not data:
                    raise trio.BrokenResourceError("the node closed the connection")
                self._take_answers(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError, codec.CodecError, ValueError):
            return self._lost()
        finally:
            # Left only when the run is cut short (stalled, or the drain ran out): never answered.
            self.generator.tally.unanswered += self.generator._counted(outstanding)

    def _to_send(self, now: float) -> list[bytes]:
        """The frames to send now: the commands due again first, then new ones, while the window has room."""
        delayed, pending, outstanding, ids, frame_of = self.delayed, self.pending, self.outstanding, self.ids, self.frame_of
        while delayed and delayed[0][0] <= now:
            pending.append(delayed.popleft()[1:])
        out: list[bytes] = []
        if self.switch_to is None:
            room = self.window - len(outstanding)
            while room > 0 and pending:
                entry = pending.popleft()
                request_id = next(ids)
                outstanding[request_id] = entry
                out.append(frame_of(entry[1], entry[2], request_id))
                room -= 1
            room -= len(delayed)
            ticket, choose, begin = self.generator._ticket, self.generator._choose, self.begin
            while room > 0 and ticket(now):
                command = choose()
                seq = begin()
                request_id = next(ids)
                outstanding[request_id] = (now, command, seq)
                out.append(frame_of(command, seq, request_id))
                room -= 1
            if self.batching is not None:
                out = self.batching.frames(ids)
        return out

    def _take_answers(self, data: bytes) -> None:
        """Settle the commands answered by the frames that ``data`` completes."""
        generator = self.generator
        tally, counts, latencies, outstanding, end = (
            generator.tally, generator._counts, generator.tally.latencies, self.outstanding, self.end)
        now = time.perf_counter()
        generator._last_answer = now
        measure_start = generator._measure_start
        # By time, an answer counts when it arrives in the window, whenever it was sent.
        in_window = measure_start <= now < generator._measure_end
        by_time = generator._by_time
        late = now >= generator._measure_end
        measured_answers = False
        plain = self._plain_successes
        for frame in self.decoder.feed(data):
            payload = frame.payload
            answered = plain(payload)
            if answered is None:
                if self._settle(payload, now, in_window if by_time else None, late):
                    measured_answers = True
                continue
            for request_id in answered:
                entry = outstanding.pop(request_id, None)
                if entry is None:
                    continue
                sent, command, seq = entry
                end(seq)
                if in_window if by_time else sent >= measure_start:
                    tally.ok += 1
                    counts[command] += 1
                    latencies.append(now - sent)
                    measured_answers = True
                elif late:
                    tally.late += 1
                else:
                    tally.warmup_ok += 1
            self.pause = RETRY_PAUSE
        if measured_answers:
            generator._last_measured_answer = now

    def _plain_successes(self, payload: bytes) -> Sequence[int] | None:
        """The request ids that a plain success answers -- one command's ``{"ok":true,...,"id":N}``,
        or a batch's whose every result is a success -- read without decoding the JSON; None for
        any other answer (``_settle`` decodes it). The id is the last key, so a trailing
        ``"id":<digits>}`` can only be it; a batch result that is not a success has a key that a
        success never has (a string value holding one is escaped: ``\\"error\\"``)."""
        if not (payload.startswith(b'{"ok":true') and payload.endswith(b"}")):
            return None
        at = payload.rfind(b'"id":')
        digits = payload[at + 5 : -1]
        if at <= 0 or not digits.isdigit():
            return None
        batching = self.batching
        if batching is None:
            return (int(digits),)
        if b'"error"' in payload or b'"redirect"' in payload or b'"retry"' in payload or b'"timeout_expired"' in payload:
            return None
        return batching.members.pop(int(digits), None)

    def _settle(self, payload: bytes, now: float, in_window: bool | None, late: bool) -> bool:
        """Settle the commands one answer (not a plain success) answers: a redirect or a retry
        sends the command again; ``in_window``: whether it is measured (None: by its first send).
        Returns whether any measured command was answered."""
        generator, outstanding, end = self.generator, self.outstanding, self.end
        tally, counts, latencies = generator.tally, generator._counts, generator.tally.latencies
        measure_start = generator._measure_start
        batching = self.batching
        measured_answers = False
        document = json.loads(payload)
        members = batching.members.pop(document.get("id"), None) if batching is not None else None
        if members is None:
            pairs: Any = ((document.get("id"), document),)
        else:  # a run_many answer: each command's own outcome (a refusal: the same for all)
            pairs = zip(members, document.get("results") or [document] * len(members))
        for request_id, document in pairs:
            entry = outstanding.pop(request_id, None)
            if entry is None:
                continue
            sent, command, seq = entry
            measured = in_window if in_window is not None else sent >= measure_start
            redirect = document.get("redirect")
            if redirect or document.get("retry"):
                self._send_again(entry, redirect, measured, now)
                continue
            self.pause = RETRY_PAUSE
            end(seq)
            if not measured:
                if late:
                    tally.late += 1
                elif not (document.get("ok") is False or document.get("error") or document.get("timeout_expired")):
                    tally.warmup_ok += 1
                continue
            measured_answers = True
            if document.get("timeout_expired"):
                tally.timeouts += 1
            elif document.get("ok") is False or document.get("error"):
                tally.errors += 1
                tally.note_error(str(document.get("error")))
            else:
                tally.ok += 1
                counts[command] += 1
                latencies.append(now - sent)
        return measured_answers

    def _send_again(self, entry: tuple[float, int, int], redirect: Any, measured: bool, now: float) -> None:
        """``entry`` (first send, command, seq) was answered with a redirect or a retry: to a
        node of the cluster named, it goes there once this connection's other answers are in;
        otherwise again after a pause that doubles, up to ``RETRY_PAUSE_MAX``."""
        tally = self.generator.tally
        if redirect:
            if measured:
                tally.redirects += 1
            if redirect in self.generator.addresses and redirect != self.target:
                self.pending.append(entry)
                if self.switch_to is None:
                    self.switch_to = redirect
                    if redirect not in tally.leaders_seen:
                        tally.leaders_seen.append(redirect)
                return
        elif measured:
            tally.retries += 1
        self.delayed.append((now + self.pause, *entry))
        self.pause = min(self.pause * 2, RETRY_PAUSE_MAX)

    def _lost(self) -> str:
        """The connection broke. Whatever was outstanding may or may not have been committed: in
        a session it is safe to send again (applied at most once); without one it is given up.
        Returns the node to go to next."""
        generator, outstanding = self.generator, self.outstanding
        if self.session is not None:
            generator.tally.resent_after_loss += generator._counted(outstanding)
            self.pending.extend(outstanding.values())
        else:
            generator.tally.lost += generator._counted(outstanding)
            for _, _, seq in outstanding.values():
                self.end(seq)
        outstanding.clear()
        return self.switch_to or generator._next_node(self.target)


# -- finding a leader over the client protocol -------------------------------------------------------


async def find_leader(addresses: dict[str, Address], *, timeout: float = 10.0, tls: ssl.SSLContext | None = None) -> str:
    """The node that a majority of the nodes name as leader (asked with ``status``), waiting up
    to ``timeout``; raises ``trio.TooSlowError`` if there is none by then.

    Works with any server of the client protocol whose ``status`` answer has ``leader``.
    """
    from raftnode.client.trioclient import ClientError, ClusterClient

    majority = len(addresses) // 2 + 1
    with trio.fail_after(timeout):
        async with ClusterClient(addresses, connect_timeout=0.5, tls=tls) as client:
            while True:
                named: dict[str, int] = {}

                async def ask(node: str, named: dict[str, int]) -> None:
                    try:
                        answer = await client.call(node, wire.Status(), timeout=0.5)
                    except ClientError:
                        return
                    leader = answer.get("leader")
                    if isinstance(leader, str) and leader in addresses:
                        named[leader] = named.get(leader, 0) + 1

                async with trio.open_nursery() as nursery:
                    for node in addresses:
                        nursery.start_soon(ask, node, named)
                for leader, votes in named.items():
                    if votes >= majority:
                        return leader
                await trio.sleep(0.05)


async def run_load(
    addresses: dict[str, Address],
    workload: Workload,
    *,
    pids: dict[str, int] | None = None,
    leader: str | None = None,
    leader_timeout: float = 10.0,
    progress: Callable[[int, float, bool], None] | None = None,
    fields: dict[str, Any] | None = None,
    stop_on_sigint: bool = False,
    tls: ssl.SSLContext | None = None,
) -> dict[str, Any]:
    """Find the leader (unless given), run ``workload`` and return the report (``build_report``),
    with the CPU seconds of the processes ``pids`` (by name) and of this process; ``fields`` go
    with every command (the cluster id)."""
    if leader is None:
        leader = await find_leader(addresses, timeout=leader_timeout, tls=tls)
    pids = pids or {}
    cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    client_before = time.process_time()
    wall_before = time.perf_counter()
    generator = LoadGenerator(addresses, leader, workload, progress=progress, fields=fields,
                              stop_on_sigint=stop_on_sigint, tls=tls)
    tally = await generator.run()
    wall = time.perf_counter() - wall_before
    client_cpu = time.process_time() - client_before
    node_cpu = cpu_deltas(cpu_before, {name: cpu_seconds(pid) for name, pid in pids.items()})
    return build_report(workload, tally, leader=leader, node_cpu=node_cpu, client_cpu=client_cpu, wall_seconds=wall)


async def cluster_bench(
    config: ClusterConfig,
    workload: Workload,
    *,
    leader_timeout: float = 5.0,
    progress: Callable[[int, float, bool], None] | None = None,
    stop_on_sigint: bool = False,
) -> dict[str, Any]:
    """``raftctl bench``: ``workload`` against the cluster of ``config``, whose leader must be
    known within ``leader_timeout``; node CPU from the pids the supervisor keeps.

    Raises:
        ClusterNotRunning: no node answers (exit 5).
        NoLeaderError: no leader within ``leader_timeout`` (exit 3).
    """
    from . import cluster, oneshot, supervisor

    row = await cluster.leader(config, timeout=leader_timeout)
    pids = supervisor.live_pids(config)
    addresses = {node.id: node.client for node in config.nodes}
    fields = oneshot.client_fields(config, admin=False)  # commands need the cluster id only
    return await run_load(addresses, workload, pids=pids, leader=row.id, progress=progress, fields=fields,
                          stop_on_sigint=stop_on_sigint, tls=oneshot.client_tls(config))
