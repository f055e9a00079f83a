"""What ``raftctl bench`` shows: its report as a table and its progress bar while it runs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Self

from rich.console import Group
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from ..bench import Workload


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def report_view(report: dict[str, Any]) -> Any:
    """A rich renderable of a report (``raftctl.bench.build_report``)."""
    seconds = report["seconds"]
    batch = report.get("batch", 1)
    ops = {row.get("op") for row in report.get("mix", ())}
    kinds = "/".join(kind for op, kind in (("run_command", "run_many"), ("query", "query_many")) if op in ops)
    batched = f" in {kinds or 'run_many'} batches of {batch}" if batch > 1 else ""
    head = Text(
        f"{report['acknowledged']:,} commands acknowledged in {seconds:.2f} s, in-flight "
        f"{report['in_flight']} over {report['connections']} connection"
        f"{'s' * (report['connections'] != 1)}{batched}, leader {report['leader']}"
    )
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("throughput", f"{report['throughput']:,.0f} commands/s")
    lat = report["latency_ms"]
    table.add_row(
        "latency ms",
        f"p50 {_ms(lat['p50'])}  p90 {_ms(lat['p90'])}  p99 {_ms(lat['p99'])}  max {_ms(lat['max'])}  "
        f"mean {_ms(lat['mean'])}",
    )
    table.add_row(
        "outcomes",
        f"ok {report['acknowledged']:,}  errors {report['errors']:,}  timeouts {report['timeouts']:,}  "
        f"lost {report['lost']:,}  unanswered {report['unanswered']:,}"
        + (f"  answered after the window {report['late']:,}" if report.get("late") else ""),
    )
    table.add_row(
        "resent",
        f"redirects {report['redirects']:,}  retries {report['retries']:,}  reconnects {report['reconnects']:,}"
        + (f"  after a lost connection {report['resent_after_loss']:,}" if report.get("resent_after_loss") else ""),
    )
    if len(report["per_command"]) > 1:
        table.add_row("per command", "  ".join(f"{c!r} {n:,}" for c, n in report["per_command"].items()))
    cpu = report["cpu_seconds"]
    parts = [f"{node} {_seconds(value)}" for node, value in cpu["nodes"].items()]
    share = cpu["client_share_of_a_core"]
    client = f"client {cpu['client']:.2f}" + (f" ({share * 100:.0f}% of a core)" if share is not None else "")
    table.add_row("CPU seconds", "  ".join([*parts, client]))
    if report["error_samples"]:
        table.add_row("error samples", "; ".join(f"{m} (x{n})" for m, n in report["error_samples"].items()))
    rows: list[Any] = [head, table]
    if report["stalled"]:
        rows.append(Text("The run stalled: no answer came for a while; see `raftctl status`.", style="bold red"))
    elif share is not None and share > 0.9:
        rows.append(Text("The client used most of a core: it may be the bottleneck; try fewer in flight.", style="yellow"))
    return Group(*rows)


def _seconds(value: float | None) -> str:
    return "?" if value is None else f"{value:.2f}"


class ProgressBar:
    """A rich progress bar for a run (count: commands done; duration: seconds elapsed)."""

    def __init__(self, console: Any, workload: Workload) -> None:
        self.workload = workload
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=console,
            auto_refresh=False,  # refreshed from the run's own loop: no extra thread
            transient=True,
        )
        total = workload.count if workload.count is not None else workload.duration
        self._task = self._progress.add_task("bench", total=total, detail="")
        self._last = (0, 0.0)

        self._started = False

    def __enter__(self) -> Self:
        return self  # shown from the first update on: a run that cannot start prints nothing

    def __exit__(self, *exc: object) -> None:
        if self._started:
            self._progress.stop()

    def update(self, done: int, elapsed: float, warming: bool) -> None:
        if not self._started:
            self._started = True
            self._progress.start()
        if warming:
            self._progress.update(self._task, description="warming up", completed=0, detail="")
        else:
            last_done, last_elapsed = self._last
            rate = (done - last_done) / (elapsed - last_elapsed) if elapsed > last_elapsed else 0.0
            self._last = (done, elapsed)
            completed = done if self.workload.count is not None else min(elapsed, self.workload.duration or 0)
            self._progress.update(
                self._task, description="bench", completed=completed, detail=f"{done:,} done, {rate:,.0f}/s"
            )
        self._progress.refresh()
