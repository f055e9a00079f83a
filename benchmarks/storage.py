"""Storage throughput against the disk's own fsync rate, measured in one run on the same disk.

Measures, in a temporary directory under ``--dir`` (default: the current directory):

- the raw fsync rate: write 64 bytes, ``os.fsync``, repeat (and the same with ``os.fdatasync``,
  which is what the segmented log calls);
- for the segmented log (``raftnode.storage.disk.DiskStorage``) and an SQLite prototype (WAL mode,
  synchronous=FULL; it lives only in this file), at batch sizes 1, 64 and 1,024 entries of a
  16-byte payload, each batch being ``append(batch)`` then ``sync()``: entries per second, syncs
  per second, and fsyncs per 1,000 entries. The segmented log counts its own fsyncs; SQLite's
  are counted with ``strace -c`` in a short separate run when strace works (else "n/a").

Targets (issue 3): at batch 1, at least 80% of the raw fsync rate; at batch 1,024, at least
200,000 entries/s. Disks drift (a shared virtual disk by a factor of two within a second), so
every case runs in ``--rounds`` short slices interleaved with the raw measurement, and the batch-1
verdict uses the median over rounds of (the round's rate / the raw fsync rate measured just
before and after it). Run: ``python3 benchmarks/storage.py [--dir DIR] [--seconds S] [--json]``.
Whole run: about 20 s with the defaults.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from raftnode.core.messages import Entry, EntryKind
from raftnode.core.ready import HardState
from raftnode.storage.disk import DiskStorage

PAYLOAD = b"0123456789abcdef"  # 16 bytes
BATCHES = (1, 64, 1024)


class SqliteLog:
    """A prototype of the storage contract's write path on SQLite (WAL, synchronous=FULL).

    One transaction per sync: ``append``/``set_hard_state`` run inside an open transaction and
    ``sync`` commits it, which in WAL mode with synchronous=FULL fsyncs the WAL once.
    """

    def __init__(self, path: Path):
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("CREATE TABLE IF NOT EXISTS log (idx INTEGER PRIMARY KEY, term INTEGER, kind INTEGER, data BLOB)")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS hard_state (id INTEGER PRIMARY KEY CHECK (id = 0), term INTEGER, vote TEXT, commit_index INTEGER)"
        )
        row = self.db.execute("SELECT max(idx) FROM log").fetchone()
        self.last = row[0] or 0
        self.in_tx = False
        self.syncs = 0

    def _begin(self) -> None:
        if not self.in_tx:
            self.db.execute("BEGIN")
            self.in_tx = True

    def append(self, entries: Sequence[Entry]) -> None:
        self._begin()
        first = entries[0].index
        if first <= self.last:
            self.db.execute("DELETE FROM log WHERE idx >= ?", (first,))
        self.db.executemany(
            "INSERT INTO log (idx, term, kind, data) VALUES (?, ?, ?, ?)",
            [(index, term, int(kind), data) for term, index, data, kind in entries],
        )
        self.last = entries[-1].index

    def set_hard_state(self, hs: HardState) -> None:
        self._begin()
        self.db.execute("INSERT OR REPLACE INTO hard_state VALUES (0, ?, ?, ?)", (hs.term, hs.vote, hs.commit))

    def sync(self) -> None:
        if self.in_tx:
            self.db.execute("COMMIT")
            self.in_tx = False
        self.syncs += 1

    def stats(self) -> dict:
        return {"syncs": self.syncs}

    def close(self) -> None:
        self.sync()
        self.db.close()


def open_impl(name: str, directory: Path):
    if name == "segmented":
        return DiskStorage(directory / "log")
    return SqliteLog(directory / "log.sqlite")


def raw_sync_rate(directory: Path, seconds: float, sync=os.fsync) -> tuple[float, float]:
    """Writes of 64 bytes, each followed by ``sync``: (per second, seconds measured)."""
    fd = os.open(directory / f"raw-{sync.__name__}", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        block = b"x" * 64
        n = 0
        start = time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds or n < 20:
            os.write(fd, block)
            sync(fd)
            n += 1
        return n / elapsed, elapsed
    finally:
        os.close(fd)


class Case:
    """One implementation at one batch size, on its own storage, kept open across rounds."""

    def __init__(self, impl: str, batch: int, directory: Path):
        self.impl, self.batch = impl, batch
        self.dir = Path(tempfile.mkdtemp(prefix=f"{impl}-{batch}-", dir=directory))
        self.storage = open_impl(impl, self.dir)
        self.index = 1
        self.parts: list[dict] = []

    def run(self, seconds: float, max_batches: int | None = None) -> dict:
        """append(batch) + sync() repeatedly for ``seconds`` (or ``max_batches``).

        Only the append and sync calls are timed (building the entries is the core's work).
        """
        fsyncs_before = self.storage.stats().get("fsyncs")
        first = self.index
        timed = 0.0
        batches = 0
        wall_start = time.perf_counter()
        while True:
            entries = [Entry(1, i, PAYLOAD, EntryKind.COMMAND) for i in range(self.index, self.index + self.batch)]
            t0 = time.perf_counter()
            self.storage.append(entries)
            self.storage.sync()
            timed += time.perf_counter() - t0
            self.index += self.batch
            batches += 1
            if max_batches is not None:
                if batches >= max_batches:
                    break
            elif time.perf_counter() - wall_start >= seconds and batches >= 3:
                break
        fsyncs_after = self.storage.stats().get("fsyncs")
        part = {
            "entries": self.index - first,
            "timed": timed,
            "batches": batches,
            "fsyncs": None if fsyncs_before is None else fsyncs_after - fsyncs_before,
        }
        self.parts.append(part)
        return part

    def close(self) -> None:
        self.storage.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def summarize(impl: str, batch: int, parts: list[dict]) -> dict:
    count = sum(p["entries"] for p in parts)
    timed = sum(p["timed"] for p in parts)
    fsyncs = None if parts[0]["fsyncs"] is None else sum(p["fsyncs"] for p in parts)
    return {
        "impl": impl,
        "batch": batch,
        "entries": count,
        "seconds": round(timed, 3),
        "entries_per_s": round(count / timed),
        "syncs_per_s": round(sum(p["batches"] for p in parts) / timed),
        "fsyncs_per_1000": None if fsyncs is None else round(fsyncs / count * 1000, 2),
        "fsyncs_counted_by": None if fsyncs is None else "storage stats",
    }


def strace_fsyncs(impl: str, batch: int, directory: Path, batches: int) -> int | None:
    """fsync+fdatasync calls in a separate short run under ``strace -c`` (None if strace fails).

    With ``batches=0`` the run only opens and closes the storage: the baseline to subtract.
    """
    if shutil.which("strace") is None:
        return None
    out = directory / f"strace-{impl}-{batch}.txt"
    cmd = [
        "strace", "-f", "-c", "-e", "trace=fsync,fdatasync", "-o", str(out),
        sys.executable, __file__, "--count-run", impl, "--batch", str(batch),
        "--batches", str(batches), "--dir", str(directory),
    ]  # fmt: skip
    try:
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    except (subprocess.SubprocessError, OSError):
        return None
    calls = 0
    for line in out.read_text().splitlines():
        parts = line.split()
        if parts and parts[-1] in ("fsync", "fdatasync"):
            calls += int(parts[3])  # % time, seconds, usecs/call, calls, [errors,] syscall
    return calls


def count_run(impl: str, batch: int, batches: int, directory: Path) -> None:
    case = Case(impl, batch, directory)
    if batches:
        case.run(0, max_batches=batches)
    case.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=".", help="where to put the temporary directory (same disk as the data)")
    parser.add_argument("--seconds", type=float, default=2.0, help="time per case, over all rounds")
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds")
    parser.add_argument("--impls", default="segmented,sqlite")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--count-run", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--batches", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.count_run:
        count_run(args.count_run, args.batch, args.batches, Path(args.dir))
        return

    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="raftctl-storage-bench-", dir=args.dir))
    try:
        # Disks (virtual ones especially) drift: interleave every case in short rounds so each
        # sees the same conditions, and aggregate. Batch 1 runs between two raw measurements.
        impls = args.impls.split(",")
        raw = {"fsync": [0.0, 0.0], "fdatasync": [0.0, 0.0]}  # [syncs, seconds]
        runs = {(i, b): Case(i, b, work) for i in impls for b in BATCHES}
        ratios: dict[str, list[float]] = {i: [] for i in impls}
        slice_s = args.seconds / args.rounds

        def measure_raw(name: str, fn, secs: float) -> float:
            rate, elapsed = raw_sync_rate(work, secs, fn)
            raw[name][0] += rate * elapsed
            raw[name][1] += elapsed
            return rate

        try:
            for _ in range(args.rounds):
                before = measure_raw("fsync", os.fsync, slice_s / 2)
                single = {i: runs[(i, 1)].run(slice_s) for i in impls}
                after = measure_raw("fsync", os.fsync, slice_s / 2)
                for i, part in single.items():
                    ratios[i].append(part["entries"] / part["timed"] / ((before + after) / 2))
                measure_raw("fdatasync", os.fdatasync, slice_s / 2)
                for (impl, batch), case in runs.items():
                    if batch != 1:
                        case.run(slice_s)
        finally:
            for case in runs.values():
                case.close()
        raw_fsync = raw["fsync"][0] / raw["fsync"][1]
        raw_fdatasync = raw["fdatasync"][0] / raw["fdatasync"][1]
        cases = [summarize(c.impl, c.batch, c.parts) for c in runs.values()]
        for case in cases:
            if case["batch"] == 1:
                # Each round's rate over the raw fsync rate measured around it: robust to drift.
                case["paired_ratio_median"] = round(statistics.median(ratios[case["impl"]]), 2)
        for case in cases:
            if case["fsyncs_per_1000"] is None:
                batches = {1: 200, 64: 100, 1024: 200}[case["batch"]]
                empty = strace_fsyncs(case["impl"], case["batch"], work, 0)
                calls = strace_fsyncs(case["impl"], case["batch"], work, batches)
                if calls is not None and empty is not None:
                    case["fsyncs_per_1000"] = round((calls - empty) / (batches * case["batch"]) * 1000, 2)
                    case["fsyncs_counted_by"] = "strace"
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def target(case: dict) -> dict:
        if case["batch"] == 1:
            ratio = case["entries_per_s"] / raw_fsync
            return {"target": ">= 80% of raw fsync", "ratio_to_raw_fsync": round(ratio, 2),
                    "ratio_to_raw_fdatasync": round(case["entries_per_s"] / raw_fdatasync, 2),
                    "met": case["paired_ratio_median"] >= 0.8}
        if case["batch"] == 1024:
            return {"target": ">= 200,000 entries/s", "met": case["entries_per_s"] >= 200_000}
        return {}

    for case in cases:
        case.update(target(case))
    result = {
        "dir": os.path.abspath(args.dir),
        "raw_fsync_per_s": round(raw_fsync),
        "raw_fdatasync_per_s": round(raw_fdatasync),
        "cases": cases,
        "run_seconds": round(time.perf_counter() - started, 1),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"disk under {result['dir']} ({args.rounds} interleaved rounds): raw fsync {result['raw_fsync_per_s']:,}/s, "
          f"raw fdatasync {result['raw_fdatasync_per_s']:,}/s (64-byte write + sync)")
    print(f"{'impl':<10} {'batch':>5} {'entries/s':>11} {'syncs/s':>8} {'fsyncs/1000':>12}  target")
    for c in cases:
        fs = "n/a" if c["fsyncs_per_1000"] is None else f"{c['fsyncs_per_1000']:g}"
        verdict = ""
        if "met" in c:
            verdict = ("met" if c["met"] else "MISSED") + f" ({c['target']}"
            if c["batch"] == 1:
                verdict += (f"; per-round median {c['paired_ratio_median']:.0%} of fsync; overall "
                            f"{c['ratio_to_raw_fsync']:.0%} of fsync, {c['ratio_to_raw_fdatasync']:.0%} of fdatasync")
            verdict += ")"
        print(f"{c['impl']:<10} {c['batch']:>5} {c['entries_per_s']:>11,} {c['syncs_per_s']:>8,} {fs:>12}  {verdict}")
    print(f"run time {result['run_seconds']} s")


if __name__ == "__main__":
    main()
