"""Membership commands: ``add-node``, ``remove-node`` and ``transfer-leader`` (the domain is
``raftctl.membership`` and ``raftctl.cluster``)."""

from __future__ import annotations

from typing import Any

import click

from raftctl.cli import (
    App,
    echo_json,
    json_option,
    main,
    node_argument,
    pass_app,
    run_domain,
    select_one,
    timeout_option,
)


@main.command("transfer-leader")
@node_argument
@timeout_option(5.0, "for NODE to become leader")
@json_option
@pass_app
def transfer_leader(app: App, node: str, timeout: float, as_json: bool) -> None:
    """Ask the leader to hand leadership to NODE, and wait until NODE leads.

    NODE already leads: says so, exit 0. Refused: exit 1; not done in time: exit 4.
    NODE is a node id, `leader` (the node a majority follows), `follower` (any live follower) or
    `learner`.
    """
    from .. import cluster

    new, previous = run_domain(cluster.transfer_leader, app.config(), select_one(app, node, timeout), timeout=timeout)
    if as_json:
        echo_json({"leader": new, "previous": previous})
    elif previous is None:
        click.echo(f"{new} is already the leader.")
    else:
        click.echo(f"Leadership moved from {previous} to {new}.")


@main.command("add-node")
@click.argument("node_id", metavar="ID")
@click.option("--peer", required=True, metavar="HOST:PORT", help="Where the new node listens for Raft traffic.")
@click.option("--client", required=True, metavar="HOST:PORT", help="Where it serves clients and raftctl.")
@timeout_option(60.0, "for the node to catch up and become a voter")
@json_option
@pass_app
def add_node(app: App, node_id: str, peer: str, client: str, timeout: float, as_json: bool) -> None:
    """Add node ID to the running cluster: append it to cluster.toml, start it, and wait until the
    leader has caught it up as a learner and made it a voter.

    A bad or duplicate id or address, or a port in use: exit 2, nothing changed. Refused by the
    leader (another change pending; the node could not catch up): exit 1; not a voter in time:
    exit 4 — in both cases the node is stopped and taken out of cluster.toml again.
    """
    from .. import membership

    result = run_domain(membership.add_node, app.config(), node_id, peer, client, timeout=timeout)
    _membership_report(result, as_json)


@main.command("remove-node")
@node_argument
@timeout_option(30.0, "for the removal to commit")
@json_option
@pass_app
def remove_node(app: App, node: str, timeout: float, as_json: bool) -> None:
    """Remove NODE from the running cluster through the leader (the leader itself too: it hands
    over), wait for the change to commit, then stop its process, delete its data and drop it from
    cluster.toml.

    Refused (the last voter; another change pending): exit 1; not committed in time: exit 4.
    """
    from .. import membership

    result = run_domain(membership.remove_node, app.config(), select_one(app, node, min(timeout, 5.0)), timeout=timeout)
    _membership_report(result, as_json)


def _membership_report(result: Any, as_json: bool) -> None:
    if as_json:
        echo_json(result.to_json())
        return
    click.echo(f"{result.node} {result.action} (by leader {result.leader}). "
               f"Voters: {', '.join(result.voters)}"
               + (f"; learners: {', '.join(result.learners)}" if result.learners else "") + ".")
    for note in result.notes:
        click.echo(f"  {note}")
