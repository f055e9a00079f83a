"""The client protocol's request records (``raftnode.wire.requests``): one encoding, a strict decoding, and
no request written as a dict literal anywhere else."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from raftnode.wire import requests as wire
from raftnode.wire.sessions import SessionStamp

REPO = Path(__file__).resolve().parents[1]

EVERY_RECORD = [
    wire.RunCommand("incr 1", 2.5),
    wire.RunCommand("incr 1", 3, session=7, seq=4, ack=2),
    wire.RunMany(["incr 1", "get"], 2.5),
    wire.RunMany(["incr 1", "incr 2"], 3, session=7, seqs=[5, 4], ack=2),
    wire.Query("get", 1),
    wire.QueryMany(["get", "get", "get x"], 2),
    wire.RegisterSession(9),
    wire.Status(),
    wire.Status(digest=True),
    wire.Subscribe(),
    wire.RecentEvents(),
    wire.SetFaults({"drop_pct": 5}),
    wire.ClearFaults(),
    wire.Transfer("n2"),
    wire.Snapshot(),
    wire.AddNode("n4", "127.0.0.1:9000", "127.0.0.1:9100", 30),
    wire.RemoveNode("n4", 10),
    wire.Stop(),
]


def test_every_op_has_a_record_in_the_list_above() -> None:
    assert {type(r) for r in EVERY_RECORD} == set(wire.RECORDS.values())


@pytest.mark.parametrize("record", EVERY_RECORD, ids=repr)
def test_a_record_survives_its_document_with_an_envelope(record: Any) -> None:
    document = wire.document(record)
    assert next(iter(document)) == "op" and document["op"] == record.OP
    enveloped = {**document, "id": 12, "cluster_id": "c0ffee", "token": "secret"}
    assert wire.decode_request(enveloped) == record


def test_the_document_is_the_one_the_nodes_have_always_read() -> None:
    # The wire format is unchanged: these are the objects the clients sent before the records.
    assert wire.document(wire.RunCommand("incr 1", 30)) == {"op": "run_command", "command": "incr 1", "timeout": 30}
    assert wire.document(wire.RunCommand("a", 1, 7, 3, 2)) == {
        "op": "run_command", "command": "a", "timeout": 1, "session": 7, "seq": 3, "ack": 2}
    assert wire.document(wire.Subscribe()) == {"op": "events"}
    assert wire.document(wire.Status()) == {"op": "status"}  # no "digest": false
    assert wire.document(wire.Status(True)) == {"op": "status", "digest": True}
    assert wire.document(wire.Transfer("n2")) == {"op": "transfer", "target": "n2"}
    assert wire.RunCommand("a", 1, 7, 3, 2).stamp == SessionStamp(7, 3, 2) and wire.RunCommand("a").stamp is None
    assert wire.document(wire.RunMany(["a", "b"], 1, 7, [3, 4], 2)) == {
        "op": "run_many", "commands": ["a", "b"], "timeout": 1, "session": 7, "seqs": [3, 4], "ack": 2}
    assert wire.RunMany(["a", "b"], 1, 7, [3, 4], 2).stamps == [SessionStamp(7, 3, 2), SessionStamp(7, 4, 2)]
    assert wire.RunMany(["a"]).stamps is None
    assert wire.document(wire.QueryMany(["get", "get x"], 2)) == {"op": "query_many", "commands": ["get", "get x"],
                                                                  "timeout": 2}


def test_query_many_takes_as_many_commands_as_run_many_and_ignores_a_session_stamp() -> None:
    most = {"op": "query_many", "commands": ["get"] * wire.MAX_BATCH_COMMANDS, "session": 1, "seqs": [1], "ack": 9}
    assert wire.decode_request(most) == wire.QueryMany(["get"] * wire.MAX_BATCH_COMMANDS, 5.0)
    assert wire.decode_request({"op": "query_many", "commands": [" "]}).commands == [" "]  # blank: the service's


BAD = {
    "no op": ({"command": "x"}, "unknown op None"),
    "an unknown op": ({"op": "frobnicate"}, "unknown op 'frobnicate'; known: add_node"),
    "an op that is a list": ({"op": ["status"]}, "unknown op ['status']"),
    "a command that is a number": ({"op": "run_command", "command": 5}, "run_command needs a non-empty string 'command'"),
    "a query without a command": ({"op": "query"}, "query needs a non-empty string 'command'"),
    "a string timeout": ({"op": "query", "command": "get", "timeout": "5"}, "'timeout' must be a number"),
    "a boolean timeout": ({"op": "register_session", "timeout": True}, "'timeout' must be a number"),
    "a timeout over an hour": ({"op": "remove_node", "node": "n2", "timeout": 3601}, "'timeout' must be a number"),
    "seq without a session": ({"op": "run_command", "command": "x", "seq": 1, "ack": 1}, "'seq' and 'ack' need a 'session'"),
    "a float seq": ({"op": "run_command", "command": "x", "session": 1, "seq": 1.0, "ack": 1}, "'seq' must be an integer"),
    "an ack beyond seq": ({"op": "run_command", "command": "x", "session": 1, "seq": 1, "ack": 2}, "'ack' (2) cannot exceed"),
    "run_many without commands": ({"op": "run_many"}, "run_many needs a list 'commands' of 1 to 1024"),
    "run_many with no command": ({"op": "run_many", "commands": []}, "run_many needs a list 'commands' of 1 to"),
    "run_many with too many commands": ({"op": "run_many", "commands": ["x"] * 1025}, "of 1 to 1024 commands"),
    "run_many with a number command": ({"op": "run_many", "commands": ["x", 5]}, "run_many: command 1 is not a string"),
    "run_many seqs without a session": ({"op": "run_many", "commands": ["x"], "seqs": [1]}, "'seqs' and 'ack' need a"),
    "run_many seqs too short": ({"op": "run_many", "commands": ["x", "y"], "session": 1, "seqs": [1], "ack": 1},
                                "needs a list 'seqs' as long as 'commands' (2)"),
    "run_many float seq": ({"op": "run_many", "commands": ["x"], "session": 1, "seqs": [1.0], "ack": 1},
                           "every one of 'seqs' must be an integer"),
    "run_many repeated seq": ({"op": "run_many", "commands": ["x", "y"], "session": 1, "seqs": [2, 2], "ack": 1},
                              "'seqs' must be distinct"),
    "run_many ack beyond a seq": ({"op": "run_many", "commands": ["x", "y"], "session": 1, "seqs": [3, 1], "ack": 2},
                                  "run_many: 'ack' (2) cannot exceed 'seq' (1)"),
    "run_many seq of zero": ({"op": "run_many", "commands": ["x"], "session": 1, "seqs": [0], "ack": 1},
                             "'seq' must be an integer from 1"),
    "run_many no ack": ({"op": "run_many", "commands": ["x"], "session": 1, "seqs": [1]}, "'ack' must be an integer"),
    "query_many without commands": ({"op": "query_many"}, "query_many needs a list 'commands' of 1 to 1024"),
    "query_many commands not a list": ({"op": "query_many", "commands": "get"}, "query_many needs a list 'commands'"),
    "query_many commands an object": ({"op": "query_many", "commands": {"get": 1}}, "query_many needs a list"),
    "query_many with no command": ({"op": "query_many", "commands": []}, "query_many needs a list 'commands' of 1 to"),
    "query_many with too many": ({"op": "query_many", "commands": ["get"] * 1025}, "of 1 to 1024 commands"),
    "query_many with a number": ({"op": "query_many", "commands": ["get", 5]}, "query_many: command 1 is not a string"),
    "query_many with a null": ({"op": "query_many", "commands": [None]}, "query_many: command 0 is not a string"),
    "query_many with an empty command": ({"op": "query_many", "commands": ["get", "get", ""]},
                                         "query_many: command 2 is empty"),
    "query_many with a string timeout": ({"op": "query_many", "commands": ["get"], "timeout": "1"},
                                         "'timeout' must be a number"),
    "faults that are a list": ({"op": "set_faults", "faults": []}, "set_faults needs an object 'faults'"),
    "no faults": ({"op": "set_faults"}, "set_faults needs an object 'faults'"),
    "an empty target": ({"op": "transfer", "target": ""}, "transfer needs a non-empty string 'target'"),
    "add_node without a peer": ({"op": "add_node", "node": "n4", "client": "h:1"}, "add_node needs a non-empty string 'peer'"),
}


@pytest.mark.parametrize(("obj", "message"), BAD.values(), ids=BAD.keys())
def test_decoding_is_strict_and_names_what_is_wrong(obj: dict[str, Any], message: str) -> None:
    with pytest.raises(wire.WireError) as caught:
        wire.decode_request(obj)
    assert message in str(caught.value)


def test_a_command_goes_as_run_command_or_query_only() -> None:
    assert wire.command_request("get", timeout=1, op="query") == wire.Query("get", 1)
    with pytest.raises(wire.WireError, match="not 'status'"):
        wire.command_request("get", timeout=1, op="status")


# -- no request outside the wire module -------------------------------------------------------------

#: Dict literals with an "op" key that are not requests: (file, the function they stand in, why).
NOT_REQUESTS = {
    ("raftctl/linearizability/checker.py", "to_json"): "an operation of a checked history",
    ("raftctl/bench.py", "build_report"): "the workload mix in bench's JSON report",
}


def request_literals(source: str) -> list[tuple[str, int]]:
    """``(enclosing function, line)`` of each dict literal with an ``"op"`` key, and of each string
    or bytes constant that spells a request object (``"op":"run_command"``), docstrings aside."""
    tree = ast.parse(source)
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                  and node.body and isinstance(node.body[0], ast.Expr)}
    spelled = [f'"op":"{op}"'.encode() for op in wire.RECORDS] + [f'"op": "{op}"'.encode() for op in wire.RECORDS]
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST, function: str) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            function = node.name
        if isinstance(node, ast.Dict) and any(isinstance(k, ast.Constant) and k.value == "op" for k in node.keys):
            found.append((function, node.lineno))
        if isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes)) and id(node) not in docstrings:
            text = node.value.encode() if isinstance(node.value, str) else node.value
            if any(s in text for s in spelled):
                found.append((function, node.lineno))
        for child in ast.iter_child_nodes(node):
            visit(child, function)

    visit(tree, "<module>")
    return found


def test_the_scanner_finds_a_planted_request_literal() -> None:
    planted = 'def f(client):\n    """Sends {"op": "status"}."""\n    return client.call("n1", {"op": "status"})\n'
    assert request_literals(planted) == [("f", 3)]
    assert request_literals("X = b'{\"op\":\"run_command\",\"command\":\"incr 1\"}'\n") == [("<module>", 1)]
    assert request_literals("def g(c):\n    return c.call('n1', wire.Status())\n") == []


def test_no_request_is_written_as_a_dict_literal_outside_the_wire_module() -> None:
    offenders = []
    for folder in ("raftnode", "raftctl", "benchmarks"):
        for path in sorted((REPO / folder).rglob("*.py")):
            relative = path.relative_to(REPO).as_posix()
            if relative == "raftnode/wire/requests.py":
                continue
            for function, line in request_literals(path.read_text(encoding="utf-8")):
                if (relative, function) not in NOT_REQUESTS:
                    offenders.append(f"{relative}:{line} (in {function})")
    assert not offenders, "requests written by hand; use raftnode.wire.requests's records: " + ", ".join(offenders)


def test_a_record_is_frozen_compared_by_value_and_checks_its_arguments() -> None:
    record = wire.AddNode("n4", "h:1", client="h:2")
    assert record == wire.AddNode("n4", "h:1", "h:2", 60.0) and record != wire.AddNode("n5", "h:1", "h:2")
    assert record.replace(timeout=5) == wire.AddNode("n4", "h:1", "h:2", 5) and record.timeout == 60.0
    assert repr(wire.Transfer("n2")) == "Transfer(target='n2')" and hash(wire.Query("a")) == hash(wire.Query("a", 5.0))
    with pytest.raises(AttributeError, match="frozen"):
        record.node = "n9"  # type: ignore[misc]
    with pytest.raises(TypeError, match="missing the argument 'client'"):
        wire.AddNode("n4", "h:1")
    with pytest.raises(TypeError, match="unexpected or repeated argument 'peer'"):
        wire.AddNode("n4", "h:1", peer="h:3")
