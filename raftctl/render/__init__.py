"""Pure functions from status records and events to rich renderables.

Nothing here talks to a node or reads a clock: give the same records, get the same picture, so
tests print into ``Console(file=io.StringIO(), width=100, color_system=None)`` and compare text.

raftctl imports rich only in this package and ``raftctl.dashboard`` (tests/test_import_boundaries.py):
``render.bench`` draws ``raftctl bench``'s report and progress bar, ``render.terminal`` makes the
console and the live display. Commands import them inside the function that draws, so a command
that prints no table (``status --json``, ``run-command``) imports no rich at all.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ..members import Health, Member
from ..model import (
    ClusterStatus,
    NodeRow,
    describe_faults,
    describe_state,
    faults_active,
)

ROLE_STYLES = {
    "leader": "bold green",
    "follower": "cyan",
    "candidate": "bold yellow",
    "pre-candidate": "yellow",
}

#: Styles of event kinds in the feeds (``watch``, ``events``).
KIND_STYLES = {
    "leader": "bold green",
    "leader-change": "bold green",
    "election": "yellow",
    "pre-vote": "yellow",
    "step-down": "yellow",
    "role": "cyan",
    "died": "bold red",
    "killed": "bold red",
    "stopped": "red",
    "started": "green",
    "returned": "green",
    "start": "green",
    "stop": "red",
    "partition": "magenta",
    "heal": "magenta",
    "fault": "magenta",
    "slow": "magenta",
    "flaky": "magenta",
    "duplicate": "magenta",
    "fast": "magenta",
    "commit": "dim",
    "apply-error": "bold red",
    "apply-halted": "bold red",
    "snapshot": "blue",
    "transfer": "blue",
    "transfer-leader": "blue",
}


def role_text(row: NodeRow) -> Text:
    """The role, colored; ``down`` in red for a node that did not answer."""
    if not row.alive:
        return Text("down", style="bold red")
    role = row.role or "?"
    return Text(role, style=ROLE_STYLES.get(role, ""))


def _num(value: int | None) -> str:
    return "-" if value is None else str(value)


def status_table(status: ClusterStatus, *, title: bool = True, only: Collection[str] | None = None) -> Table:
    """The status table: one row per node (of ``only`` if given), in the spirit of
    ``etcdctl endpoint status -w table``."""
    leader = status.leader_row
    if leader is not None:
        heading = f"cluster {status.name} · leader {leader.id} · term {leader.term} · voters {','.join(leader.voters)}"
        if leader.learners:
            heading += f" · learners {','.join(leader.learners)}"
        if leader.membership_change:
            heading += f" · changing: {leader.membership_change}"
    else:
        heading = f"cluster {status.name} · no leader"
    table = Table(
        title=heading if title else None,
        box=box.SIMPLE_HEAD,
        padding=(0, 1, 0, 0),
        collapse_padding=True,
        header_style="bold",
        title_justify="left",
        title_style="bold",
    )
    for name in ("ID", "ALIVE", "PID", "ROLE", "TERM", "LEADER", "LAST", "COMMIT", "APPLIED", "SNAP"):
        numeric = name in ("PID", "TERM", "LAST", "COMMIT", "APPLIED", "SNAP")
        table.add_column(name, justify="right" if numeric else "left", no_wrap=True)
    table.add_column("FAULTS", min_width=12)
    table.add_column("STATE", min_width=9)
    for row in status.nodes:
        if only is not None and row.id not in only:
            continue
        if not row.alive:
            table.add_row(
                Text(row.id, style="bold"),
                Text("no", style="red"),
                "-",
                role_text(row),
                *(["-"] * 8),
            )
            continue
        faults = describe_faults(row.faults)
        table.add_row(
            Text(row.id, style="bold"),
            Text("yes", style="green"),
            _num(row.pid),
            role_text(row),
            _num(row.term),
            row.leader or "-",
            _num(row.last_index),
            _num(row.commit_index),
            _num(row.applied_index),
            _num(row.snapshot_index),
            Text(faults, style="magenta" if faults_active(row.faults) else "dim"),
            Text("APPLY HALTED", style="bold red") if row.apply_halted
            else Text("DISK FULL", style="bold red") if row.disk_full else Text(describe_state(row.state)),
        )
    return table


def status_notes(status: ClusterStatus) -> list[Text]:
    """Lines under the table for what the table cannot say: halted appliers, rival leaders."""
    notes = []
    leader = status.leader_row
    for row in status.claimed_leaders():
        if leader is None or row.id != leader.id:
            notes.append(
                Text(f"{row.id} says it leads term {row.term} but no majority follows it", style="yellow")
            )
    for row in status.nodes:
        if not row.alive and row.note and row.note != "not running":
            notes.append(Text(f"{row.id}: {row.note}", style="yellow"))
        if row.apply_halted:
            notes.append(Text(f"{row.id} stopped applying: {row.apply_halted}", style="bold red"))
        if row.disk_full:
            notes.append(Text(f"{row.id}: disk full — up, acknowledging nothing until space frees", style="bold red"))
    return notes


def status_view(status: ClusterStatus, *, only: Collection[str] | None = None) -> RenderableType:
    """The table and its notes: what ``raftctl status`` (and ``up``) prints; ``only`` these nodes."""
    notes = status_notes(status)
    table = status_table(status, only=only)
    return Group(table, *notes) if notes else table


def no_answer_view(at: str, reason: object) -> Text:
    """What ``status --watch`` shows for a look that no node answered: its time ``at`` and why."""
    return Text(f"{at}  no node answers: {reason}", style="red")


def _plain_table() -> Table:
    return Table(box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0), collapse_padding=True, header_style="bold")


def members_table(members: Iterable[Member]) -> Table:
    """``raftctl members``: id (the leader starred), role, addresses, alive, match index."""
    table = _plain_table()
    for name in ("ID", "ROLE", "PEER", "CLIENT", "ALIVE", "MATCH"):
        table.add_column(name, no_wrap=True, justify="right" if name == "MATCH" else "left")
    for m in members:
        table.add_row(
            Text(m.id + (" *" if m.leader else ""), style="bold green" if m.leader else "bold"),
            Text(m.role, style="dim" if m.role in ("unknown", "none") else ""),
            m.peer or "-",
            m.client or "-",
            Text("yes", style="green") if m.alive else Text("no", style="red"),
            _num(m.match_index),
        )
    return table


def health_view(health: Health) -> RenderableType:
    """``raftctl health``: the verdict, then one row per node with what is wrong with it."""
    styles = {"healthy": "bold green", "degraded": "bold yellow", "no-leader": "bold red"}
    heading = Text(f"{health.verdict}" + (f" · leader {health.leader}" if health.leader else ""),
                   style=styles.get(health.verdict, ""))
    table = _plain_table()
    for name in ("ID", "HEALTHY", "REACHABLE", "LEADER", "LAG", "DISK", "PROBLEMS"):
        table.add_column(name, no_wrap=name != "PROBLEMS", justify="right" if name == "LAG" else "left")
    for n in health.nodes:
        table.add_row(
            Text(n.id, style="bold"),
            Text("yes", style="green") if n.healthy else Text("no", style="red"),
            "yes" if n.reachable else "no",
            "yes" if n.leader_known else "no",
            _num(n.lag),
            Text("FULL", style="bold red") if n.disk_full else "ok",
            "; ".join(n.problems) or "-",
        )
    return Group(heading, table)


def event_text(event: dict[str, Any]) -> Text:
    """One event as a line: time, node, kind (colored), detail; raftctl's actions marked."""
    # Imported here, not at the top: `raftctl status` renders no events.
    from .. import events as events_mod

    line = Text()
    line.append(events_mod.format_time(event["time"])[11:], style="dim")
    line.append("  ")
    line.append(f"{(event.get('node') or '*'):<6}", style="bold")
    line.append(" ")
    kind = str(event.get("kind", "?"))
    line.append(f"{kind:<14}", style=KIND_STYLES.get(kind, ""))
    line.append(" ")
    line.append(str(event.get("detail", "")))
    if event.get("count", 1) > 1:
        line.append(f" ×{event['count']}", style="bold")
    if event.get("source") == "raftctl":
        line.append("  [raftctl]", style="dim magenta")
    return line


def events_view(items: Iterable[dict[str, Any]], *, dates: bool = True) -> Text:
    """Many events, one per line (``raftctl events``)."""
    from .. import events as events_mod

    out = Text()
    for event in items:
        if dates:
            out.append(events_mod.format_time(event["time"])[:11], style="dim")
        out.append_text(event_text(event))
        out.append("\n")
    return out


def dashboard(
    status: ClusterStatus | None,
    feed: Sequence[dict[str, Any]],
    *,
    commit_rate: float | None = None,
    clock: str = "",
    feed_lines: int = 12,
    problem: str | None = None,
) -> RenderableType:
    """The ``watch`` screen: a header, the status table and the newest ``feed_lines`` events."""
    header = Text()
    header.append("raftctl watch", style="bold")
    if clock:
        header.append(f"  {clock}", style="dim")
    if commit_rate is not None:
        header.append(f"  commits {commit_rate:,.0f}/s", style="green" if commit_rate else "dim")
    header.append("  (Ctrl-C to leave)", style="dim")
    parts: list[RenderableType] = [header]
    if problem:
        parts.append(Text(problem, style="bold red"))
    if status is not None:
        parts.append(status_view(status))
    shown = list(feed)[-feed_lines:]
    body = Text("\n").join(event_text(e) for e in shown) if shown else Text("no events yet", style="dim")
    parts.append(Panel(body, title="events", title_align="left", box=box.ROUNDED, padding=(0, 1)))
    return Group(*parts)


# -- linearizability ------------------------------------------------------------------------------

from typing import TYPE_CHECKING  # noqa: E402

if TYPE_CHECKING:
    from ..linearizability import Operation, Verdict


def linearizability_view(verdict: Verdict, source: str) -> RenderableType:
    """What ``raftctl check-history`` prints for a ``linearizability.Verdict``: the verdict line,
    each anomaly explained with the longest linearization found, and the keys given up on."""
    from ..linearizability import ANOMALY, OK, UNKNOWN

    keys = len(verdict.keys)
    heading = Text(f"{source}: ", style="bold")
    if verdict.status == OK:
        heading.append("linearizable", style="bold green")
    elif verdict.status == ANOMALY:
        heading.append("NOT LINEARIZABLE", style="bold red")
        heading.append(f" — {len(verdict.anomalies)} of {keys:,} keys with an anomaly")
    else:
        heading.append("unknown", style="bold yellow")
        heading.append(f" — the budget ran out on {len(verdict.unknown_keys)} of {keys:,} keys")
    heading.append(f"  ({verdict.operations:,} operations, model {verdict.model.name})", style="dim")
    parts: list[RenderableType] = [heading]
    for anomaly in verdict.anomalies:
        parts.append(Text(f"\nkey {anomaly.key}: ", style="bold red").append(anomaly.explanation, style=""))
        table = Table(box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0), collapse_padding=True, header_style="bold",
                      title="the longest linearization found", title_justify="left", title_style="dim")
        for name, justify in (("LINES", "right"), ("PROCESS", "left"), ("OPERATION", "left"), ("AFTER", "left")):
            table.add_column(name, justify=justify, no_wrap=True)
        for step in anomaly.linearized:
            op = step.op
            table.add_row(_op_lines(op), str(op.process), op.describe(), verdict.model.describe(step.state))
        for op in anomaly.unplaced:
            style = "bold red" if op is anomaly.op else "yellow"
            table.add_row(_op_lines(op), str(op.process), Text(op.describe(), style=style),
                          Text("not placed", style=style))
        parts.append(table)
    if verdict.unknown_keys:
        names = ", ".join(f"{k.key} ({k.exhausted})" for k in verdict.keys if k.status == UNKNOWN)
        parts.append(Text(f"gave up (budget exhausted) on: {names}", style="yellow"))
    return Group(*parts)


def _op_lines(op: Operation) -> str:
    return f"{op.invoke_line}–{op.complete_line}" if op.complete_line is not None else f"{op.invoke_line}–"


def chaos_view(result: Any) -> RenderableType:
    """What ``raftctl chaos`` prints for a ``chaosrun.run.ChaosResult``: what ran, whether the
    nodes converged, then the linearizability verdict as ``check-history`` prints it."""
    counts = result.counts
    summary = Text(
        f"{counts['invoke']:,} operations: {counts['ok']:,} ok, {counts['fail']:,} failed, "
        f"{counts['info']:,} unknown; {len(result.faults)} faults; {counts['leader']} leader changes seen; "
        f"{result.elapsed:.1f} s",
        style="dim",
    )
    converged = Text("converged: ", style="bold").append(
        result.convergence, style="green" if result.converged else "bold red")
    where = Text(f"history: {result.history}\nreport:  {result.report}\nseed:    {result.seed}", style="dim")
    return Group(summary, converged, linearizability_view(result.verdict, "history"), where)
