"""Commands that watch the cluster over time: ``watch`` (a live view, ``raftctl.dashboard``) and
``events`` (the events log, ``raftctl.events``; --follow streams it)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

from raftctl import errors
from raftctl import output as formats
from raftctl.cli import (
    App,
    console,
    current_output,
    echo_json,
    interruptible,
    json_option,
    main,
    pass_app,
    run_domain,
    select_nodes,
    warn,
)
from raftnode.config import ClusterConfig


@main.command()
@click.option(
    "--interval",
    type=click.FloatRange(0.05, 5),
    default=0.25,
    show_default=True,
    metavar="S",
    help="Seconds between refreshes (0.25: four a second).",
)
@click.option("--duration", type=click.FloatRange(0), default=None, metavar="S", help="Leave after S seconds.")
@json_option
@pass_app
def watch(app: App, interval: float, duration: float | None, as_json: bool) -> None:
    """A live view: the status table and a feed of elections, leader changes, faults and node
    deaths and returns, with the commit rate; until Ctrl-C (or --duration).

    Repeats (a cut-off node's "pre-vote for term 2") collapse into one line with a count. With
    -o json/jsonl, prints one JSON object per line as it happens, not the table. Into a file or
    pipe, prints plain lines: the status table once, then one line per event. In both, a repeat
    is printed again at its 2nd, 10th, 100th... time and once more with its final count when
    its run ends; each JSON line has `count` (so far, cumulative) and `first` (its first time).
    """
    import sys

    from .. import dashboard

    config = app.config()
    if not as_json and not sys.stdout.isatty():
        _watch_plain(config, interval, duration)
        return
    if as_json:

        def emit(event: dict[str, Any]) -> None:
            click.echo(json.dumps(event))

        interruptible(lambda: run_domain(dashboard.watch_stream, config, emit, interval=interval, duration=duration))
        return
    out = console()

    def draw() -> None:
        from ..render.terminal import open_live

        with open_live(out) as live:
            run_domain(dashboard.watch, config, live, interval=interval, duration=duration)

    interruptible(draw)


def _watch_plain(config: ClusterConfig, interval: float, duration: float | None) -> None:
    """``watch`` into a file or pipe: the status table once, then a plain line per feed event."""
    from .. import dashboard, oneshot
    from ..render import events_view, status_view

    out = console()
    try:
        out.print(status_view(oneshot.status(config)))
    except errors.NotRunning as exc:
        warn(str(exc))

    def emit(event: dict[str, Any]) -> None:
        out.print(events_view([event]), end="", soft_wrap=True)
        out.file.flush()

    interruptible(lambda: run_domain(dashboard.watch_stream, config, emit, interval=interval, duration=duration))


@main.command("events")
@click.option("-f", "--follow", is_flag=True, help="Keep printing events as they happen (until Ctrl-C).")
@click.option("--node", "nodes", multiple=True, metavar="NODE...",
              help="Only events of these nodes (and cluster-wide ones); the NODE grammar, repeatable.")
@click.option("--kind", "kinds", multiple=True, metavar="KIND[,KIND]",
              help="Only events of these kinds (e.g. killed,leader-change,role); repeatable.")
@click.option("--since", default=None, metavar="WHEN", help="Only events since 90s/5m/2h/1d ago or a local time "
                                                            "(2026-12-07 13:05).")
@json_option
@pass_app
def events_command(app: App, follow: bool, nodes: tuple[str, ...], kinds: tuple[str, ...], since: str | None,
                   as_json: bool) -> None:
    """The audit log: faults injected and cleared, processes started, stopped and killed,
    leadership transfers and snapshots asked for (by raftctl), with the nodes' own elections,
    leader changes, commits, faults, snapshots and apply errors; one line each: time, node, kind,
    detail, merged in time order. raftctl's own actions are marked [raftctl].

    Each node also appends its events to <state_dir>/events/<id>.jsonl (bounded, rotated), so a
    killed node's history stays. With --follow, a node add-node adds joins the stream and a node
    remove-node removes leaves it, and repeats collapse into one line with a count (×37) as in
    `watch`. With --json: one document {"events": [...]}; with -o jsonl, or --json and --follow,
    one JSON object per line (following: with `count` and `first`, as `watch`). Nothing recorded
    and nothing running: exit 5.
    """
    import time

    from .. import cluster, events, supervisor
    from ..render import events_view
    from ..selectors import split_words

    config = app.config()
    node_ids = select_nodes(app, nodes, False, 5.0) if nodes else None
    kind_set = split_words(kinds) or None
    try:
        after = events.parse_since(since, time.time()) if since is not None else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--since'") from None

    def wanted(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return events.select(items, nodes=node_ids, kinds=kind_set, since=after)

    if not follow:
        everything = run_domain(cluster.fetch_events, config)
        if not everything and not supervisor.live_pids(config):
            raise errors.ClusterNotRunning(config.path, "and no events recorded")
        found = wanted(everything)
        if current_output() == formats.JSONL:
            for event in found:
                click.echo(json.dumps(event))
        elif as_json:
            echo_json({"events": found})
        else:
            console().print(events_view(found), end="", soft_wrap=True)
        return
    _follow_events(config, wanted, as_json)


def _follow_events(config: ClusterConfig, wanted: Callable[[list[Any]], list[Any]], as_json: bool) -> None:
    """``events --follow``: the ``wanted`` events, repeats collapsed with their ``count``
    (``feed.FeedStream``), as JSON lines or lines of text; the final counts at Ctrl-C."""
    from .. import cluster
    from ..feed import FeedStream
    from ..render import events_view

    out, stream = console(), FeedStream()

    def show(record: dict[str, Any]) -> None:
        if as_json:
            click.echo(json.dumps(record))
        else:
            out.print(events_view([record]), end="", soft_wrap=True)

    def emit(event: dict[str, Any]) -> None:
        for record in stream.offer(event) if wanted([event]) else ():
            show(record)

    try:
        interruptible(lambda: run_domain(cluster.follow_events, config, emit))
    finally:
        for record in stream.close():
            show(record)
