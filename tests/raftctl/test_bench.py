"""`raftctl bench` without a real cluster: option parsing and its errors, the command mix, the
percentile and report arithmetic, and the load generator against small in-process servers of the
client protocol that redirect, refuse with `retry`, fail, answer late or never, or hang up.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio
from click.testing import CliRunner, Result

from raftctl import oneshot
from raftctl.bench import (
    LoadGenerator,
    Mix,
    Tally,
    Workload,
    build_report,
    cpu_deltas,
    find_leader,
    latency_summary,
    parse_mix,
    percentile,
    throughput,
)
from raftctl.cli import main
from raftctl.clusterfile import write_config
from raftctl.render.bench import report_view
from raftnode.config import Address
from raftnode.wire import codec

from ..e2e.raftctl_harness import free_base_port
from ..fake_nodes import HANG_UP, SILENT

INCR = parse_mix(["incr 1"])


# -- the arithmetic -----------------------------------------------------------------------------------


def test_percentile_is_the_nearest_rank() -> None:
    values = [1.0, 2.0, 3.0, 4.0]
    assert percentile(values, 50) == 2.0
    assert percentile(values, 75) == 3.0
    assert percentile(values, 76) == 4.0
    assert percentile(values, 100) == 4.0
    assert percentile(values, 0) == 1.0
    hundred = [float(i) for i in range(1, 101)]
    assert percentile(hundred, 50) == 50.0
    assert percentile(hundred, 90) == 90.0
    assert percentile(hundred, 99) == 99.0
    assert percentile(hundred, 99.5) == 100.0
    assert percentile([7.0], 99) == 7.0
    thousand = [float(i) for i in range(1, 1001)]
    assert percentile(thousand, 99.9) == 999.0
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile(values, 101)


def test_latency_summary_is_in_milliseconds_whatever_the_order() -> None:
    latencies = [i / 1000 for i in range(100, 0, -1)]  # 100 ms .. 1 ms, descending
    summary = latency_summary(latencies)
    assert summary == {"p50": 50.0, "p90": 90.0, "p99": 99.0, "max": 100.0, "mean": 50.5}
    assert latency_summary([]) == {"p50": None, "p90": None, "p99": None, "max": None, "mean": None}


def test_throughput_and_cpu_deltas() -> None:
    assert throughput(1000, 2.0) == 500.0
    assert throughput(0, 2.0) == 0.0
    assert throughput(10, 0.0) == 0.0
    assert cpu_deltas({"n1": 1.0, "n2": None, "n3": 2.0}, {"n1": 3.25, "n2": 5.0}) == {
        "n1": 2.25,
        "n2": None,
        "n3": None,
    }


def test_the_report_adds_up() -> None:
    tally = Tally(latencies=[0.001, 0.002, 0.003, 0.010], ok=4, errors=1, timeouts=1, lost=2, redirects=3, retries=5)
    tally.issued = 8
    tally.seconds = 0.5
    tally.per_command = {"incr 1": 4}
    workload = Workload(INCR, in_flight=8, connections=2, count=8)
    report = build_report(workload, tally, leader="n1", node_cpu={"n1": 0.4, "n2": None}, client_cpu=0.25, wall_seconds=0.5)
    assert report["throughput"] == 8.0
    assert report["acknowledged"] == 4 and report["completed"] == 6
    assert report["issued"] == report["completed"] + report["lost"] + report["unanswered"]
    assert report["latency_ms"]["p50"] == 2.0 and report["latency_ms"]["max"] == 10.0
    assert report["cpu_seconds"] == {
        "nodes": {"n1": 0.4, "n2": None},
        "client": 0.25,
        "client_share_of_a_core": 0.5,
        "wall_seconds": 0.5,
    }
    json.dumps(report)  # the --json document is plain JSON
    from rich.console import Console

    console = Console(width=120, record=True)
    console.print(report_view(report))
    text = console.export_text()
    assert "8 commands/s" in text and "p99 10.00" in text and "redirects 3" in text and "n2 ?" in text


# -- the mix and the workload ----------------------------------------------------------------------------


def test_parse_mix_weights_merges_and_refuses_nonsense() -> None:
    assert parse_mix([]) == Mix(("incr 1",), (1,))
    assert parse_mix(["incr 1", "get"]) == Mix(("incr 1", "get"), (1, 1))
    assert parse_mix(["3:incr  1", "get", "2:get"]) == Mix(("incr 1", "get"), (3, 3))
    assert parse_mix(["set a:b 1"]) == Mix(("set a:b 1",), (1,))  # a colon that is no weight
    for bad in ("0:incr 1", "3:", "  "):
        with pytest.raises(ValueError):
            parse_mix([bad])


def test_workload_checks_itself_and_spreads_the_window() -> None:
    assert Workload(INCR, in_flight=10, connections=4, count=1).windows() == [3, 3, 2, 2]
    assert Workload(INCR, in_flight=1, duration=1).windows() == [1]
    assert Workload(INCR, in_flight=64, duration=1).connection_count == 4
    assert Workload(INCR, in_flight=20_000, duration=1).connection_count == 5  # a session's window is 4,096
    with pytest.raises(ValueError, match="give at least 5 connections"):
        Workload(INCR, in_flight=20_000, connections=4, duration=1)
    assert Workload(INCR, in_flight=20_000, connections=4, duration=1, sessions=False).connection_count == 4
    for bad in (
        {"in_flight": 0, "count": 1},
        {"in_flight": 2, "connections": 3, "count": 1},
        {"in_flight": 2, "count": 1, "duration": 1.0},
        {"in_flight": 2},
        {"in_flight": 2, "count": 0},
        {"in_flight": 2, "duration": 0.0},
    ):
        with pytest.raises(ValueError):
            Workload(INCR, **bad)  # type: ignore[arg-type]


# -- the command line --------------------------------------------------------------------------------


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    return write_config(tmp_path / "cluster.toml", 3, free_base_port(3))


def run(config_path: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--config", str(config_path), *args])


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ("--count 10 --duration 2", "not both"),
        ("--in-flight 4 --connections 5", "more than --in-flight"),
        ("--in-flight 0", "--in-flight"),
        ("--count 0", "--count"),
        ("--duration 0", "--duration"),
        ("--duration -1", "--duration"),
        ("--timeout 0", "--timeout"),
        ("--command 0:incr", "positive integer"),
        ("--command 2:", "empty"),
        ("--connections 0", "--connections"),
    ],
)
def test_bench_usage_errors_are_exit_2(config_path: Path, args: str, needle: str) -> None:
    result = run(config_path, "bench", *args.split())
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert needle in result.stderr, result.stderr


@pytest.mark.parametrize("json_flag", [(), ("--json",)])
def test_bench_against_a_cluster_that_is_not_running_is_exit_5_at_once(
    config_path: Path, json_flag: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    def poll(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("bench waited for a leader of a cluster that is not running")

    monkeypatch.setattr(oneshot.QuickSession, "poll", poll)  # "at once": found without waiting
    result = run(config_path, "bench", "--count", "10", *json_flag)
    assert result.exit_code == 5, (result.output, result.exception)
    if json_flag:  # issue 17: in JSON mode the error is a document on stdout too
        assert json.loads(result.stdout)["exit_code"] == 5
    else:
        assert result.stdout == ""
    assert "not running" in result.stderr and "raftctl up" in result.stderr


def test_bench_help_names_the_options() -> None:
    text = CliRunner().invoke(main, ["bench", "--help"]).stdout
    for option in ("--in-flight", "--connections", "--count", "--duration", "--command", "--warmup", "--json"):
        assert option in text


# -- the load generator against fake nodes ----------------------------------------------------------------


Answer = Callable[[str, dict[str, Any]], Any]


async def serve(answer: Answer, node: str, *, delay: float = 0.0, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """A node of the client protocol, started with its Address: each request, ``delay`` seconds
    after it came and each on its own, gets ``answer(node, request)``: a response (its ``id``
    added), ``SILENT`` (no answer ever) or ``HANG_UP`` (close the connection)."""

    async def handle(stream: trio.SocketStream) -> None:
        decoder = codec.FrameDecoder()
        sending = trio.Lock()

        async def respond(request: dict[str, Any], connection: trio.CancelScope) -> None:
            await trio.sleep(delay)
            response = answer(node, request)
            if response is SILENT:
                return
            if response is HANG_UP:
                connection.cancel()
                return
            frame = codec.encode_frame(codec.FrameKind.CLIENT_RESPONSE, codec.encode_json({**response, "id": request["id"]}))
            try:
                async with sending:
                    await stream.send_all(frame)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                connection.cancel()

        async with stream, trio.open_nursery() as nursery:
            try:
                async for data in stream:
                    for frame in decoder.feed(data):
                        nursery.start_soon(respond, json.loads(frame.payload), nursery.cancel_scope)
            except trio.BrokenResourceError:
                pass
            nursery.cancel_scope.cancel()

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    task_status.started(Address("127.0.0.1", listeners[0].socket.getsockname()[1]))
    await trio.serve_listeners(handle, listeners)


async def fake_cluster(nursery: trio.Nursery, answer: Answer, nodes: tuple[str, ...] = ("a", "b"), *, delay: float = 0.0) -> dict[str, Address]:
    return {node: await nursery.start(partial(serve, answer, node, delay=delay)) for node in nodes}


def success(value: Any = 1) -> dict[str, Any]:
    return {"ok": True, "result": value, "error": None, "redirect": None, "retry": False, "timeout_expired": False}


@pytest.mark.trio
async def test_the_generator_keeps_the_window_follows_redirects_and_resends_retries() -> None:
    retries_left = [5]
    applied: list[str] = []
    ops: dict[str, set[str]] = {}

    def answer(node: str, request: dict[str, Any]) -> dict[str, Any]:
        if request["op"] == "status":
            return {"ok": True, "leader": "b"}
        if node == "a":
            return {"ok": False, "redirect": "b", "result": None, "error": None}
        if retries_left[0] > 0:
            retries_left[0] -= 1
            return {"ok": False, "retry": True, "result": None, "error": None}
        applied.append(request["command"])
        ops.setdefault(request["command"], set()).add(request["op"])
        return success(len(applied)) if request["command"] != "frob" else {"ok": False, "error": "unknown command 'frob'"}

    async with trio.open_nursery() as nursery:
        addresses = await fake_cluster(nursery, answer)
        assert await find_leader(addresses, timeout=5) == "b"
        workload = Workload(parse_mix(["3:incr 1", "get", "frob"]), in_flight=8, connections=2, count=300, seed=7,
                            sessions=False)
        generator = LoadGenerator(addresses, "a", workload)
        tally = await generator.run()
        nursery.cancel_scope.cancel()
    assert tally.issued == 300
    assert tally.completed == 300 and tally.lost == 0 and tally.unanswered == 0
    assert tally.ok + tally.errors == 300
    assert tally.errors == applied.count("frob") > 0
    assert tally.per_command["incr 1"] == applied.count("incr 1") > tally.per_command["get"] == applied.count("get") > 0
    assert len(tally.latencies) == tally.ok
    assert tally.redirects >= 2  # each connection was sent to b by a
    assert tally.retries == 5
    assert tally.leaders_seen == ["a", "b"]
    assert "unknown command 'frob'" in tally.error_samples
    # A get is a linearizable query (no log entry); everything else a command.
    assert ops == {"incr 1": {"run_command"}, "get": {"query"}, "frob": {"run_command"}}


@pytest.mark.trio
async def test_spread_opens_the_connections_to_every_node_in_turn() -> None:
    served: dict[str, int] = {}

    def answer(node: str, request: dict[str, Any]) -> dict[str, Any]:
        if request["op"] == "query":  # (each connection registers its session with the leader first)
            served[node] = served.get(node, 0) + 1
        return success(0)

    async with trio.open_nursery() as nursery:
        addresses = await fake_cluster(nursery, answer, ("a", "b", "c"))
        workload = Workload(parse_mix(["get"]), in_flight=6, connections=3, count=300, spread=True)
        tally = await LoadGenerator(addresses, "b", workload).run()
        nursery.cancel_scope.cancel()
    assert tally.ok == 300 and sorted(served) == ["a", "b", "c"]
    assert sum(served.values()) == 300 and min(served.values()) > 0


def test_reads_go_as_queries_unless_sent_through_the_log() -> None:
    mix = parse_mix(["incr 1", "get", "get x"])
    assert [Workload(mix, count=1).op(c) for c in mix.commands] == ["run_command", "query", "query"]
    assert {Workload(mix, count=1, reads_through_log=True).op(c) for c in mix.commands} == {"run_command"}


@pytest.mark.trio
async def test_a_node_that_hangs_up_loses_the_outstanding_commands_and_the_run_goes_on() -> None:
    served = itertools.count(1)

    def answer(node: str, request: dict[str, Any]) -> Any:
        n = next(served)
        if n == 50:
            return HANG_UP  # with requests outstanding
        return success(n)

    async with trio.open_nursery() as nursery:
        addresses = await fake_cluster(nursery, answer, ("a",))
        tally = await LoadGenerator(addresses, "a", Workload(INCR, in_flight=4, connections=1, count=200,
                                                            sessions=False)).run()
        nursery.cancel_scope.cancel()
    assert tally.lost >= 1
    assert tally.reconnects == 1
    assert tally.ok + tally.lost == 200


@pytest.mark.trio
async def test_in_a_session_the_commands_of_a_broken_connection_are_resent_with_their_stamps() -> None:
    served = itertools.count(1)
    stamps: list[tuple[int, int, int]] = []

    def answer(node: str, request: dict[str, Any]) -> Any:
        if request["op"] == "register_session":
            return success(42) if node == "b" else {"ok": False, "redirect": "b", "result": None, "error": None}
        n = next(served)
        if n == 50:
            return HANG_UP  # with requests outstanding
        stamps.append((request["session"], request["seq"], request["ack"]))
        return success(n)

    async with trio.open_nursery() as nursery:
        addresses = await fake_cluster(nursery, answer)
        tally = await LoadGenerator(addresses, "b", Workload(INCR, in_flight=4, connections=2, count=200)).run()
        nursery.cancel_scope.cancel()
    assert tally.lost == 0 and tally.resent_after_loss >= 1 and tally.reconnects == 1
    assert tally.ok == 200
    by_session: dict[int, list[tuple[int, int]]] = {}
    for session, seq, ack in stamps:
        assert ack <= seq
        by_session.setdefault(session, []).append((seq, ack))
    assert set(by_session) == {42}  # each connection registered its session at the leader (b)
    seqs = [seq for seq, _ in by_session[42]]
    assert len(seqs) > len(set(seqs))  # some were sent twice, with the same sequence number


@pytest.mark.trio
async def test_a_run_that_gets_no_answers_stalls_and_ends_by_itself() -> None:
    async with trio.open_nursery() as nursery:
        addresses = await fake_cluster(nursery, lambda node, request: SILENT, ("a",))
        workload = Workload(INCR, in_flight=3, duration=10.0, stall_seconds=0.5, sessions=False)
        tally = await LoadGenerator(addresses, "a", workload).run()
        nursery.cancel_scope.cancel()
    # Abandoned as stalled, its measured window cut short: only the first 3 commands went out.
    assert tally.stalled and tally.seconds < workload.duration
    assert tally.issued == tally.unanswered == 3 and tally.ok == 0

    def late(node: str, request: dict[str, Any]) -> dict[str, Any]:
        return {"ok": False, "timeout_expired": True}

    async with trio.open_nursery() as nursery:
        addresses = await fake_cluster(nursery, late, ("a",))
        tally = await LoadGenerator(addresses, "a", Workload(parse_mix(["late"]), in_flight=2, count=10, sessions=False)).run()
        nursery.cancel_scope.cancel()
    assert tally.timeouts == 10 and tally.ok == 0 and not tally.stalled


@pytest.mark.trio
async def test_warmup_commands_are_not_measured() -> None:
    async with trio.open_nursery() as nursery:
        addresses = await fake_cluster(nursery, lambda node, request: success(), ("a",))
        workload = Workload(INCR, in_flight=2, count=50, warmup=0.2, sessions=False)
        tally = await LoadGenerator(addresses, "a", workload).run()
        nursery.cancel_scope.cancel()
    assert tally.ok == 50 == len(tally.latencies)
    assert tally.warmup_ok > 0
    assert tally.issued == 50 and tally.unanswered == 0 and not tally.stalled  # ended by --count


@pytest.mark.trio
async def test_by_duration_the_answers_in_the_window_count_even_when_commands_outlast_it() -> None:
    # Each command takes 0.4 s, longer than the 0.3 s window: a closed loop of 8 still runs at
    # 8 / 0.4 = 20 commands/s, and the window sees the answers to the commands sent before it.
    async with trio.open_nursery() as nursery:
        addresses = await fake_cluster(nursery, lambda node, request: success(), ("a",), delay=0.4)
        workload = Workload(INCR, in_flight=8, connections=2, duration=0.6, warmup=0.5, sessions=False)
        tally = await LoadGenerator(addresses, "a", workload).run()
        nursery.cancel_scope.cancel()
    assert tally.seconds == pytest.approx(0.6, abs=0.01)
    assert 8 <= tally.ok <= 16  # one or two rounds of 8 land in the window
    assert tally.late == 8 and tally.unanswered == 0 and not tally.stalled
    assert all(0.35 < latency < 1.0 for latency in tally.latencies)


@pytest.mark.trio
async def test_by_duration_the_drain_is_bounded() -> None:
    answered = itertools.count(1)

    def first_twenty(node: str, request: dict[str, Any]) -> Any:
        return success() if next(answered) <= 20 else SILENT

    async with trio.open_nursery() as nursery:
        addresses = await fake_cluster(nursery, first_twenty, ("a",), delay=0.01)
        workload = Workload(INCR, in_flight=4, duration=0.3, drain=0.3, sessions=False)
        tally = await LoadGenerator(addresses, "a", workload).run()
        nursery.cancel_scope.cancel()
    # Not stalled (that would take 15 s without answers): the 0.3 s drain ended the run.
    assert tally.ok == 20 and tally.unanswered == 4 and not tally.stalled
