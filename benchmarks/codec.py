"""Peer codec throughput: encode+decode of an AppendEntries of 1, 64 and 1,024 16-byte commands.

Compares raftnode.wire.codec's struct encoding with json (a dict form; entry data as base64, or as
latin-1 text), with pickle (a reference only: unpickling bytes from a peer runs code of the
peer's choosing, so it is never used on the wire) and, only when it happens to be importable,
msgpack (not a dependency). Every codec must give back an equal message, with Entry values and
EntryKind kinds, so each pays for building the same objects. Times are the best of repeated
batches (the least disturbed by other load); "entries/s" is entries through encode then decode.
Run: ``python3 benchmarks/codec.py [--json] [--budget SECONDS] [--sizes 1,64,1024]``.
"""

from __future__ import annotations

import argparse
import base64
import json
import pickle
import random
import time
from collections.abc import Callable
from typing import Any

from raftnode.core.messages import AppendEntries, Entry, EntryKind
from raftnode.wire.codec import decode_message, encode_message

try:  # measured only if already installed; never a dependency
    import msgpack  # type: ignore[import-not-found]
except ImportError:
    msgpack = None

Codec = tuple[Callable[[AppendEntries], bytes], Callable[[bytes], AppendEntries]]


def make_message(count: int, seed: int = 1) -> AppendEntries:
    rng = random.Random(seed)
    entries = tuple(Entry(7, 1001 + i, rng.randbytes(16)) for i in range(count))
    return AppendEntries(term=7, src="n1", dst="n2", prev_index=1000, prev_term=7, entries=entries, commit=998)


def _json_codec(to_text: Callable[[bytes], str], from_text: Callable[[str], bytes]) -> Codec:
    def encode(m: AppendEntries) -> bytes:
        return json.dumps(
            {
                "type": "AppendEntries",
                "term": m.term,
                "src": m.src,
                "dst": m.dst,
                "prev_index": m.prev_index,
                "prev_term": m.prev_term,
                "commit": m.commit,
                "entries": [[e.term, e.index, int(e.kind), to_text(e.data)] for e in m.entries],
            },
            separators=(",", ":"),
        ).encode()

    def decode(payload: bytes) -> AppendEntries:
        d = json.loads(payload)
        return AppendEntries(
            term=d["term"],
            src=d["src"],
            dst=d["dst"],
            prev_index=d["prev_index"],
            prev_term=d["prev_term"],
            commit=d["commit"],
            entries=tuple(Entry(t, i, from_text(data), EntryKind(k)) for t, i, k, data in d["entries"]),
        )

    return encode, decode


def _msgpack_codec() -> Codec:
    def encode(m: AppendEntries) -> bytes:
        return msgpack.packb(
            [3, m.term, m.src, m.dst, m.prev_index, m.prev_term, m.commit, [[e.term, e.index, int(e.kind), e.data] for e in m.entries]],
            use_bin_type=True,
        )

    def decode(payload: bytes) -> AppendEntries:
        _, term, src, dst, prev_index, prev_term, commit, entries = msgpack.unpackb(payload, raw=False, use_list=False)
        return AppendEntries(
            term=term,
            src=src,
            dst=dst,
            prev_index=prev_index,
            prev_term=prev_term,
            commit=commit,
            entries=tuple(Entry(t, i, data, EntryKind(k)) for t, i, k, data in entries),
        )

    return encode, decode


def codecs() -> dict[str, Codec]:
    found: dict[str, Codec] = {
        "struct (raftnode.wire.codec)": (encode_message, decode_message),
        "json + base64": _json_codec(lambda b: base64.b64encode(b).decode("ascii"), base64.b64decode),
        "json + latin-1": _json_codec(lambda b: b.decode("latin-1"), lambda s: s.encode("latin-1")),
        "pickle (reference only)": (lambda m: pickle.dumps(m, protocol=5), pickle.loads),
    }
    if msgpack is not None:
        found["msgpack"] = _msgpack_codec()
    return found


def best_seconds_per_call(fn: Callable[[Any], Any], arg: Any, budget: float) -> float:
    """The fastest per-call time over batches of about 20 ms, run for about ``budget`` seconds."""
    number = 1
    while True:
        started = time.perf_counter()
        for _ in range(number):
            fn(arg)
        elapsed = time.perf_counter() - started
        if elapsed >= 0.02 or number >= 1 << 20:
            break
        number *= 2
    best = elapsed / number
    deadline = time.perf_counter() + budget
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        for _ in range(number):
            fn(arg)
        best = min(best, (time.perf_counter() - started) / number)
    return best


def run(sizes: list[int], budget: float) -> list[dict[str, Any]]:
    table = codecs()
    per_measurement = budget / (2 * len(sizes) * len(table))
    results = []
    for count in sizes:
        m = make_message(count)
        for name, (encode, decode) in table.items():
            payload = encode(m)
            back = decode(payload)
            assert back == m and all(type(e.kind) is EntryKind for e in back.entries), f"{name} does not round-trip"
            enc = best_seconds_per_call(encode, m, per_measurement)
            dec = best_seconds_per_call(decode, payload, per_measurement)
            results.append(
                {
                    "entries": count,
                    "codec": name,
                    "encode_us": round(enc * 1e6, 2),
                    "decode_us": round(dec * 1e6, 2),
                    "entries_per_s": round(count / (enc + dec)),
                    "bytes": len(payload),
                    "bytes_per_entry": round(len(payload) / count, 1),
                }
            )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,64,1024", help="entries per AppendEntries, comma separated")
    parser.add_argument("--budget", type=float, default=12.0, help="seconds of measuring in all (default 12)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    results = run([int(s) for s in args.sizes.split(",")], args.budget)
    if args.json:
        print(json.dumps({"msgpack_available": msgpack is not None, "results": results}))
        return
    base = {r["entries"]: r["entries_per_s"] for r in results if r["codec"].startswith("struct")}
    print(
        f"{'entries':>7}  {'codec':<24} {'encode us':>10} {'decode us':>10} {'entries/s':>11} "
        f"{'bytes/entry':>11} {'vs struct':>9}"
    )
    for r in results:
        print(
            f"{r['entries']:>7}  {r['codec']:<24} {r['encode_us']:>10,.1f} {r['decode_us']:>10,.1f} "
            f"{r['entries_per_s']:>11,} {r['bytes_per_entry']:>11} {r['entries_per_s'] / base[r['entries']]:>8.2f}x"
        )
    if msgpack is None:
        print("(msgpack is not installed, so it is not measured; it is not a dependency)")
    print("bytes/entry is the whole message over its entries; each entry carries 16 bytes of command.")


if __name__ == "__main__":
    main()
