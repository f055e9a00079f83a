"""Linearizability checking of a long history: parse and check 100,000 operations.

The history is made up (``raftctl.linearizability.generate``): 8 concurrent clients on rotating
keys (a new key every 100 invocations), 1% of operations ending ``info`` and 1% ``fail``; it is
serialized to JSON lines first, so the figure covers what ``raftctl check-history`` does after
reading the file: parse, then check every key. The issue's target is under a minute.
Run: ``python3 benchmarks/linearizability.py [--operations N] [--model kv|counter] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import random
import time

from raftctl.linearizability import MODELS, Budget, check_history, parse_history
from raftctl.linearizability.generate import linearizable_history


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--operations", type=int, default=100_000)
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--keys-every", type=int, default=100)
    parser.add_argument("--model", choices=sorted(MODELS), default="kv")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    model = MODELS[args.model]
    records = linearizable_history(random.Random(args.seed), model, operations=args.operations,
                                   processes=args.processes, keys_every=args.keys_every)
    lines = [json.dumps(record) for record in records]
    started = time.perf_counter()
    history = parse_history(lines)
    parsed = time.perf_counter()
    verdict = check_history(history, model, Budget())
    checked = time.perf_counter()
    result = {
        "operations": len(history.operations),
        "records": len(lines),
        "keys": len(verdict.keys),
        "unknown_outcomes": sum(op.status in ("info", "open") for op in history.operations),
        "verdict": verdict.to_json()["verdict"],
        "search_steps": sum(k.steps for k in verdict.keys),
        "parse_s": round(parsed - started, 2),
        "check_s": round(checked - parsed, 2),
        "total_s": round(checked - started, 2),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['operations']:,} operations ({result['unknown_outcomes']:,} with unknown outcome) "
              f"on {result['keys']:,} keys, model {args.model}: {result['verdict']}")
        print(f"parse {result['parse_s']} s + check {result['check_s']} s = {result['total_s']} s "
              f"({result['search_steps']:,} search steps)")


if __name__ == "__main__":
    main()
