"""Fault commands: ``partition``, ``heal``, ``slow``, ``flaky``, ``duplicate``, ``fast`` (the
domain is ``raftctl.cluster``; a partition with --netns goes through ``raftctl.netns``)."""

from __future__ import annotations

from typing import Any

import click

from raftctl.cli import (
    App,
    complete_nodes,
    echo_json,
    json_option,
    main,
    nodes_argument,
    pass_app,
    resolve_timeout_option,
    run_domain,
    select_nodes,
    warn,
)


def _faults_output(as_json: bool, result: Any, summary: str) -> None:
    if result.skipped:
        warn(f"{', '.join(result.skipped)} not running: the faults apply when started")
    if as_json:
        echo_json(result.to_json())
        return
    click.echo(summary)


@main.command()
@click.argument("groups", nargs=-1, required=True, metavar="GROUP [GROUP...]", shell_complete=complete_nodes)
@resolve_timeout_option
@json_option
@pass_app
def partition(app: App, groups: tuple[str, ...], timeout: float, as_json: bool) -> None:
    """Cut the cluster into groups that cannot talk to each other.

    Each GROUP is node ids separated by commas; the nodes not named form one more group; a new
    partition replaces any earlier one. `partition n2` isolates n2; `partition n1,n2 n3,n4,n5`
    makes two sides; `partition leader` isolates the leader, `partition leader,follower` puts it
    with one follower. Only Raft traffic is cut: raftctl still reaches every node. A node that
    is down gets its side of the partition when it starts.
    """
    from .. import chaos, cluster, netns, selectors

    config = app.config()
    parsed = selectors.parse_groups(groups, config.node_ids)
    learners = iter(selectors.resolve(config, [w for g in parsed for w in g if w == "learner"], timeout=timeout))
    named = [",".join(next(learners) if w == "learner" else w for w in group) for group in parsed]
    if netns.load(config) is not None:  # `up --netns`: the kernel cuts the links
        plan = run_domain(cluster.partition_plan, config, named, timeout=timeout)
        netns.partition(config, plan)
        if as_json:
            echo_json({"partition": plan, "kernel": True})
        else:
            click.echo(f"Partitioned in the kernel: {chaos.describe_partition(plan)}")
        return
    result = run_domain(cluster.partition, config, named, timeout=timeout)
    _faults_output(as_json, result, f"Partitioned: {chaos.describe_partition(result.partition)}")


@main.command()
@click.option("--all", "everything", is_flag=True, help="Also clear every node's slow/flaky/duplicate faults.")
@json_option
@pass_app
def heal(app: App, everything: bool, as_json: bool) -> None:
    """Remove the partition: every node talks to every node again.

    Slow, flaky and duplicating links stay (`fast NODE` or `heal --all` clears them)."""
    from .. import cluster, netns

    if netns.load(app.config()) is not None:
        netns.heal(app.config())  # the kernel's partition; the fault layer's is cleared below
    result = run_domain(cluster.heal, app.config(), everything=everything)
    _faults_output(as_json, result, "Healed: all faults cleared." if everything else "Healed: no partition.")


def _links(app: App, nodes: tuple[str, ...], everything: bool, kind: str, values: dict[str, float], as_json: bool,
           timeout: float) -> None:
    from .. import chaos, cluster

    node_ids = select_nodes(app, nodes, everything, timeout)
    result = run_domain(cluster.link_faults, app.config(), node_ids, kind, values, timeout=timeout)
    names = ", ".join(result.applied) or "no node"
    detail = "link faults cleared" if kind == "fast" else chaos.describe_links(values)
    _faults_output(as_json, result, f"{names}: {detail}.")


@main.command()
@nodes_argument
@click.option("--delay", type=click.FloatRange(0, 60_000), required=True, metavar="MS", help="Delay of every message, ms.")
@click.option("--jitter", type=click.FloatRange(0, 60_000), default=0, show_default=True, metavar="MS", help="Plus a random 0..MS.")
@resolve_timeout_option
@json_option
@pass_app
def slow(app: App, nodes: tuple[str, ...], everything: bool, delay: float, jitter: float, timeout: float,
         as_json: bool) -> None:
    """Delay every message on all links of each NODE (both directions). NODE... as for `kill`."""
    _links(app, nodes, everything, "slow", {"delay_ms": delay, "jitter_ms": jitter}, as_json, timeout)


@main.command()
@nodes_argument
@click.option("--drop", type=click.FloatRange(0, 100), required=True, metavar="PCT", help="Percent of messages lost.")
@resolve_timeout_option
@json_option
@pass_app
def flaky(app: App, nodes: tuple[str, ...], everything: bool, drop: float, timeout: float, as_json: bool) -> None:
    """Drop PCT percent of the messages on all links of each NODE. NODE... as for `kill`."""
    _links(app, nodes, everything, "flaky", {"drop_pct": drop}, as_json, timeout)


@main.command()
@nodes_argument
@click.option("--pct", type=click.FloatRange(0, 100), required=True, metavar="PCT", help="Percent of messages sent twice.")
@resolve_timeout_option
@json_option
@pass_app
def duplicate(app: App, nodes: tuple[str, ...], everything: bool, pct: float, timeout: float, as_json: bool) -> None:
    """Deliver PCT percent of the messages on all links of each NODE twice. NODE... as for `kill`."""
    _links(app, nodes, everything, "duplicate", {"duplicate_pct": pct}, as_json, timeout)


@main.command()
@nodes_argument
@resolve_timeout_option
@json_option
@pass_app
def fast(app: App, nodes: tuple[str, ...], everything: bool, timeout: float, as_json: bool) -> None:
    """Clear the slow, flaky and duplicate faults of each NODE (partitions stay: see `heal`).

    `fast --all` clears them on every node. NODE... as for `kill`."""
    _links(app, nodes, everything, "fast", {}, as_json, timeout)
