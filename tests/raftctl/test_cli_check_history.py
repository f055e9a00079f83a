"""`raftctl check-history`: the verdict, its exit codes (0, 1, 4, 2) and its JSON document."""

from __future__ import annotations

import json

from click.testing import CliRunner

import raftctl.linearizability as linearizability
from raftctl.cli import main

from .linearizability_helpers import Recorder


def run(tmp_path, rec_or_text, *args: str):
    path = tmp_path / "history.jsonl"
    text = rec_or_text if isinstance(rec_or_text, str) else "\n".join(rec_or_text.lines()) + "\n"
    path.write_text(text)
    return CliRunner().invoke(main, ["check-history", str(path), *args])


def words(text: str) -> str:
    """The text with every run of whitespace (rich's wrapping included) as one space."""
    return " ".join(text.split())


def stale_read() -> Recorder:
    rec = Recorder()
    rec.call(1, "set", "v1", key="a")
    rec.call(1, "set", "v1", key="b")
    rec.call(2, "set", "v2", key="b")
    rec.call(3, "get", result="v1", key="b")
    return rec


def test_a_linearizable_history_exits_0(tmp_path):
    rec = Recorder()
    rec.call(1, "set", "v1")
    rec.leader("n1", term=2)
    rec.call(2, "get", result="v1")
    result = run(tmp_path, rec)
    assert result.exit_code == 0, result.output
    assert "history.jsonl: linearizable (2 operations, model kv)" in words(result.stdout)


def test_an_anomaly_exits_1_naming_the_key_and_the_operation(tmp_path):
    result = run(tmp_path, stale_read())
    assert result.exit_code == 1, result.output
    assert "NOT LINEARIZABLE — 1 of 2 keys with an anomaly" in words(result.stdout)
    assert 'key b: get b → "v1" (process 3, lines 7–8) cannot be linearized' in words(result.stdout)
    doc = json.loads(run(tmp_path, stale_read(), "--json").stdout)
    assert (doc["verdict"], doc["anomaly_keys"], doc["keys_linearizable"]) == ("anomaly", ["b"], 1)
    (anomaly,) = doc["anomalies"]
    assert anomaly["op"]["text"] == 'get b → "v1"' and anomaly["prefix_end_line"] == 8
    assert [step["state"] for step in anomaly["linearized"]] == ['"v1"', '"v2"']


def test_a_key_beyond_the_budget_exits_4_and_is_named(tmp_path, monkeypatch):
    real_budget = linearizability.Budget
    monkeypatch.setattr(linearizability, "Budget", lambda **_: real_budget(steps=5))
    rec = Recorder()
    for p in range(4):
        rec.invoke(p, "set", f"v{p}", key="crowded")
    for p in range(4):
        rec.ok(p)
    rec.call(9, "get", result="v0", key="crowded")  # the first order tried fails: the search backtracks
    result = run(tmp_path, rec)
    assert result.exit_code == 4, result.output
    assert "gave up (budget exhausted) on: crowded (steps)" in words(result.stdout)
    doc = json.loads(run(tmp_path, rec, "--json").stdout)
    assert (doc["unknown_keys"], doc["unknown"]) == (["crowded"], [{"key": "crowded", "exhausted": "steps"}])


def test_a_bad_file_exits_2_with_the_line_and_the_problem(tmp_path):
    result = run(tmp_path, '{"type": "invoke", "process": 1, "f": "get", "key": "k", "time": 0}\n{"type": "ok"}\n')
    assert result.exit_code == 2
    assert 'history.jsonl: line 2: "time" must be a finite number' in result.stderr
    rec = Recorder()
    rec.call(1, "set", "v", result="v")
    result = run(tmp_path, rec, "--model", "counter")
    assert result.exit_code == 2
    assert "line 1: the counter model has no set" in result.stderr
    assert run(tmp_path, rec).exit_code == 0
    missing = CliRunner().invoke(main, ["check-history", str(tmp_path / "absent.jsonl")])
    assert missing.exit_code == 2 and "cannot read" in missing.stderr
