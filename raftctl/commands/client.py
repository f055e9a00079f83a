"""Client commands, one round trip each: ``status``, ``members``, ``health``, ``leader``, ``wait``,
``run-command`` and ``query``. The one-shot ones import neither trio nor rich (``raftctl.oneshot``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

from raftctl import errors
from raftctl.cli import (
    App,
    CommandError,
    EXIT_NOT_RUNNING,
    EXIT_NO_LEADER,
    EXIT_OK,
    EXIT_REFUSED,
    F,
    complete_nodes,
    console,
    echo_json,
    finish,
    interruptible,
    json_option,
    main,
    pass_app,
    run_domain,
    timeout_option,
)
from raftnode.config import ClusterConfig


@main.command()
@click.argument("nodes", nargs=-1, metavar="[NODE...]", shell_complete=complete_nodes)
@click.option("-w", "--watch", "watching", is_flag=True,
              help="Again every --interval until Ctrl-C: in place on a terminal; with -o json/jsonl one "
                   "document per line.")
@click.option("--interval", type=click.FloatRange(0.1), default=1.0, show_default=True, metavar="S",
              help="With --watch: seconds between two pictures.")
@click.option("--count", type=click.IntRange(1), default=None, metavar="N", help="With --watch: stop after N pictures.")
@json_option
@pass_app
def status(app: App, nodes: tuple[str, ...], watching: bool, interval: float, count: int | None,
           as_json: bool) -> None:
    """One row per node: id, alive, pid, role, term, leader, last/commit/applied/snapshot index,
    link faults and the state machine's summary (--json: also peer and client addresses).

    NODE... shows only those rows: ids, `all`, or role words, which here name every node in that
    role at this moment (`follower`: every follower). A node that is down has a row with alive
    false (nulls in --json). No node answers: exit 5. A cluster without a leader is still a
    status (exit 0): scripts ask `raftctl leader` or `raftctl health` (exit 3). --watch keeps
    going while no node answers, and shows it; with --count, that last is exit 5.
    """
    from .. import oneshot  # no trio: a status is a new process every time
    from ..members import status_document

    config = app.config()
    only = _status_filter(config, nodes)  # an unknown word fails before asking the cluster
    if watching or count is not None:
        _status_watch(config, only, interval, count, as_json)
        return
    picture = oneshot.status(config)
    shown = only(picture) if only else None
    if as_json:
        echo_json(status_document(config, picture, shown))
        return
    from ..render import status_view

    console().print(status_view(picture, only=shown))


def _status_watch(config: ClusterConfig, only: Any, interval: float, count: int | None, as_json: bool) -> None:
    """``status --watch`` (``raftctl.statuswatch``); exit 5 if no node answered the last look."""
    from ..statuswatch import watch_status

    def run() -> None:
        last = watch_status(config, only, interval=interval, count=count, as_json=as_json, echo=click.echo,
                            console=console())
        if isinstance(last, errors.NotRunning):
            raise SystemExit(EXIT_NOT_RUNNING)

    interruptible(run)


def _status_filter(config: ClusterConfig, nodes: tuple[str, ...]) -> Callable[[Any], set[str]] | None:
    """For ``status NODE...``: the ids a picture's rows are filtered to (None: every row)."""
    if not nodes:
        return None
    from .. import selectors

    chosen = selectors.parse(nodes, config.node_ids)

    def ids(picture: Any) -> set[str]:
        members = picture.membership()
        by_role = {
            "leader": {picture.leader} - {None},
            "follower": {r.id for r in picture.followers()} - set(members[1] if members else ()),
            "learner": {n for n in (members[1] if members else ()) if n in config.node_ids},
        }
        return {n for word in chosen for n in by_role.get(word, {word})}

    return ids


@main.command()
@json_option
@pass_app
def members(app: App, as_json: bool) -> None:
    """The member list (like `etcdctl member list`): id, voter or learner (as the leader's
    configuration says), peer and client addresses, alive, and the leader's match index of each
    member; the leader is starred.

    Without a leader the roles are `unknown` (exit 0: the list is still true). No node answers: exit 5.
    """
    from .. import oneshot
    from ..members import member_list

    config = app.config()
    picture = oneshot.status(config)
    listed = member_list(config, picture)
    if as_json:
        echo_json({"cluster": config.name, "leader": picture.leader, "members": [m.to_json() for m in listed]})
        return
    from ..render import members_table

    console().print(members_table(listed))


@main.command()
@click.option("--max-lag", type=click.IntRange(0), default=None, metavar="N",
              help="Entries a node may have left to apply behind the leader's commit and count healthy  "
                   "[default: 1000]")
@json_option
@pass_app
def health(app: App, max_lag: int | None, as_json: bool) -> None:
    """Per node: reachable, knows the leader, applied lag behind the leader's commit, disk full,
    applying; then a verdict.

    Exit 0 every node healthy; 1 degraded (a leader, but some node down, lagging, disk full or
    not applying); 3 no leader; 5 no node answers. A quorum alone is not healthy: a node down is
    a degraded cluster (exit 1), though it still serves.
    """
    from .. import oneshot
    from ..members import DEFAULT_MAX_LAG, cluster_health

    picture = oneshot.status(app.config())
    verdict = cluster_health(picture, max_lag=DEFAULT_MAX_LAG if max_lag is None else max_lag)
    if not as_json:
        from ..render import health_view

        console().print(health_view(verdict))
    code = {"healthy": EXIT_OK, "no-leader": EXIT_NO_LEADER}.get(verdict.verdict, EXIT_REFUSED)
    unhealthy = ", ".join(n.id for n in verdict.nodes if not n.healthy)
    finish(as_json, verdict.to_json(), code, f"cluster {verdict.verdict}: unhealthy {unhealthy}")


@main.command()
@timeout_option(0.0, "for a leader (0: answer at once)")
@json_option
@pass_app
def leader(app: App, timeout: float, as_json: bool) -> None:
    """Print the leader's id (the node a majority follows), for scripts.

    No leader (within --timeout): exit 3. No node answers: exit 5.
    """
    from .. import oneshot

    row = oneshot.leader(app.config(), timeout=timeout)
    if as_json:
        echo_json({"leader": row.id, "term": row.term})
    else:
        click.echo(row.id)


@main.command()
@click.option("--leader", "want_leader", is_flag=True, help="A leader that a majority follows.")
@click.option("--applied", type=click.IntRange(0), default=None, metavar="N", help="Every node has applied index N or later.")
@click.option(
    "--converged",
    is_flag=True,
    help="Every node is up, follows one leader in one term and has the same last, commit and "
    "applied index and state.",
)
@timeout_option(10.0, "for the conditions")
@json_option
@pass_app
def wait(app: App, want_leader: bool, applied: int | None, converged: bool, timeout: float, as_json: bool) -> None:
    """Block until every given condition holds at once, or --timeout.

    Exit 3 if the time ran out without a leader (for --leader and --converged), 4 if it ran out
    on another condition, 5 if no node answers.
    """
    from .. import cluster

    if not (want_leader or applied is not None or converged):
        raise click.UsageError("name a condition: --leader, --applied N or --converged")
    result = run_domain(
        cluster.wait, app.config(), leader=want_leader, applied=applied, converged=converged, timeout=timeout
    )
    picture = result.status
    if as_json:
        echo_json({"ok": True, "seconds": round(result.waited, 3), "status": picture.to_json()})
        return
    head = picture.leader_row
    what = []
    if head is not None:
        what.append(f"leader {head.id} (term {head.term})")
    if applied is not None:
        what.append(f"every node applied index {applied}")
    if converged and head is not None:
        from ..model import describe_state

        what.append(f"converged at index {head.applied_index}, {describe_state(head.state)}")
    click.echo(f"{'; '.join(what)} after {result.waited:.2f} s")


def _command_options(command: F) -> F:
    command = click.argument("words", nargs=-1, required=True)(command)
    command = click.option(
        "--node",
        default=None,
        metavar="NODE",
        help="Send to this node first (an id, `leader` or `follower`); default: the leader.",
    )(command)
    command = timeout_option(5.0, "for the cluster to commit and apply the command")(command)
    command = click.option(
        "--no-follow",
        is_flag=True,
        help="Ask only --node, once: no redirects, no retries. A redirect is a refusal (exit 1), "
        "no known leader exit 3, no commit in time (or taken, then leadership lost) exit 4.",
    )(command)
    command = click.option(
        "--expect",
        default=None,
        metavar="VALUE",
        help="Exit 1 unless the result printed equals VALUE (for scripts and drills).",
    )(command)
    command = click.option("-q", "--quiet", is_flag=True, help="Print only the result.")(command)
    command = json_option(command)
    return pass_app(command)


def _run_words(
    app: App,
    words: tuple[str, ...],
    node: str | None,
    timeout: float,
    no_follow: bool,
    expect: str | None,
    quiet: bool,
    as_json: bool,
    op: str = "run_command",
) -> None:
    from .. import oneshot  # no trio: a round trip as a new process is what users time

    command = " ".join(words)
    reply = oneshot.run_command(app.config(), command, node=node, timeout=timeout, follow=not no_follow, op=op)
    shown = reply.result if isinstance(reply.result, str) else json.dumps(reply.result)
    if not reply.ok:
        raise CommandError(f"{reply.node}: {reply.error}", EXIT_REFUSED, document=reply.to_json())
    mismatch = CommandError(f"expected {expect}, got {shown}", EXIT_REFUSED, document=reply.to_json())
    if as_json:
        if expect is not None and shown != expect:
            raise mismatch
        echo_json(reply.to_json())
        return
    if quiet:
        click.echo(shown)
    else:
        where = "read index" if op == "query" else "log index"
        click.echo(f"{shown}  ({reply.node} answered, {where} {reply.index}, {reply.elapsed * 1000:.0f} ms)")
    if expect is not None and shown != expect:
        raise mismatch


@main.command(
    "run-command",
    context_settings={"ignore_unknown_options": True},
    short_help="Run a command on the cluster (e.g. incr 5) and print its result.",
)
@_command_options
def run_command(app: App, **options: Any) -> None:
    """Run a command on the cluster, e.g. `raftctl run-command incr 5`.

    Sends WORDS (joined by spaces) to the leader (or --node), follows redirects, retries while
    there is no leader, and gives up after --timeout. Prints the result and which node answered.
    The command runs in a client session registered for the call, so it is applied at most once
    however often it is resent.
    A state-machine error: exit 1; no leader: exit 3; not committed in time: exit 4; nothing
    running: exit 5. A negative number is an argument, not an option: `run-command decr -5`.
    """
    _run_words(app, **options)


@main.command(
    context_settings={"ignore_unknown_options": True},
    short_help="A linearizable read (e.g. get), without the log (ReadIndex).",
)
@_command_options
def query(app: App, **options: Any) -> None:
    """A linearizable read, e.g. `raftctl query get`, served without a log entry (ReadIndex).

    The leader notes its commit index, confirms with one heartbeat round that a majority still
    follows it, and answers once it has applied that far; `--node follower` reads at a follower,
    which asks the leader for that index and waits until it has applied it. Either way the answer
    reflects every command acknowledged before the query started, and a deposed leader (cut off
    with a minority) never answers: it cannot confirm. A command that changes the state is
    refused (exit 1). Use --expect VALUE in scripts to check the answer through the exit code.
    """
    _run_words(app, op="query", **options)
