"""Many seeded simulation runs, spread over processes (the domain side of ``raftctl sim``)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial

from raftnode.sim.runner import RunReport, run_seed
from raftnode.sim.trace import TRACE_HEADER, TraceFilter


@dataclass(frozen=True)
class SimSettings:
    nodes: int = 5
    steps: int = 2000
    pre_vote: bool = True
    check_quorum: bool = True
    membership: bool = True
    disk_faults: bool = False


def _run(settings: SimSettings, seed: int) -> RunReport:
    report = run_seed(
        seed,
        nodes=settings.nodes,
        steps=settings.steps,
        pre_vote=settings.pre_vote,
        check_quorum=settings.check_quorum,
        membership=settings.membership,
        disk_faults=settings.disk_faults,
    )
    report.trace = None
    return report


def run_seeds(
    seeds: Iterable[int], settings: SimSettings, *, jobs: int | None = None
) -> Iterator[RunReport]:
    """Run every seed; yields reports in seed order. ``jobs`` processes (default: one per core)."""
    seeds = list(seeds)
    jobs = jobs or os.cpu_count() or 1
    work: Callable[[int], RunReport] = partial(_run, settings)
    if jobs == 1 or len(seeds) == 1:
        yield from map(work, seeds)
        return
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        yield from pool.map(work, seeds, chunksize=max(1, min(16, len(seeds) // (jobs * 4))))


def summarize(reports: list[RunReport], settings: SimSettings, seconds: float) -> dict:
    """The ``--json`` document of a batch of runs."""
    faults: dict[str, int] = {}
    for r in reports:
        for kind, n in r.faults.items():
            faults[kind] = faults.get(kind, 0) + n
    return {
        "seeds": len(reports),
        "nodes": settings.nodes,
        "steps": settings.steps,
        "pre_vote": settings.pre_vote,
        "check_quorum": settings.check_quorum,
        "membership": settings.membership,
        "disk_faults": settings.disk_faults,
        "violations": [
            {"seed": r.seed, "invariant": r.violation, "detail": r.detail, "replay": r.replay_command()}
            for r in reports
            if not r.ok
        ],
        "totals": {
            "ticks": sum(r.ticks for r in reports),
            "leaders_elected": sum(r.leaders for r in reports),
            "commands": sum(r.commands for r in reports),
            "acknowledged": sum(r.acknowledged for r in reports),
            "session_commands": sum(r.session_commands for r in reports),
            "session_acknowledged": sum(r.session_acknowledged for r in reports),
            "batch_entries": sum(r.batch_entries for r in reports),
            "reads_served": sum(r.reads_served for r in reports),
            "committed_entries": sum(r.commit_index for r in reports),
            "faults": dict(sorted(faults.items())),
        },
        "seconds": round(seconds, 2),
    }


def summary_lines(summary: dict, nodes: int, steps: int) -> list[str]:
    """The human verdict of ``summarize``: one line of totals, then one line per violation."""
    bad = len(summary["violations"])
    totals = summary["totals"]
    lines = [
        f"{summary['seeds']} seed{'s' * (summary['seeds'] != 1)}, {nodes} nodes, {steps} steps: "
        f"{bad} violation{'s' * (bad != 1)}; {totals['leaders_elected']} leaders elected, "
        f"{totals['acknowledged']} commands acknowledged ({totals['session_acknowledged']} in sessions, "
        f"each applied exactly once; {totals['batch_entries']} batch entries), {totals['reads_served']} reads served, "
        f"{totals['ticks']} ticks "
        f"in {summary['seconds']:.1f} s"
    ]
    lines += [f"  seed {v['seed']}: {v['invariant']} — replay: {v['replay']}" for v in summary["violations"]]
    return lines


def trace_filter(nodes: Iterable[str], kinds: Iterable[str], from_tick: int | None, to_tick: int | None) -> TraceFilter:
    """The filter of ``sim --trace``: ``nodes`` and ``kinds`` as given on the command line (each
    possibly comma-separated). Raises ValueError naming an unknown kind or an empty tick range."""
    return TraceFilter(_words(nodes), _words(kinds), from_tick, to_tick)


def traced_lines(report: RunReport, shown: TraceFilter) -> Iterator[str]:
    """The header, then the lines of ``report``'s trace that ``shown`` keeps. Raises ValueError
    if ``shown`` names a node the run never had."""
    shown.check_nodes(report.node_ids)
    yield TRACE_HEADER
    yield from (str(line) for line in report.trace or () if shown(line))


def _words(values: Iterable[str]) -> frozenset[str]:
    return frozenset(word for value in values for word in value.replace(",", " ").split())
