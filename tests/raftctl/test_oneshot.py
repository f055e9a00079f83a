"""`status`, `leader`, `run-command` and `query` through the one-shot path (raftctl.oneshot over
raftnode.client.syncclient), against fake nodes that answer what each test wants: redirects are
followed, a cluster without a leader is retried until --timeout (exit 3), a node that is down or
silent is skipped or reported, and nothing of it imports trio, rich (for --json) or the core.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from raftctl.cli import main
from raftctl.clusterfile import write_config

from ..e2e.raftctl_harness import free_base_port
from ..fake_nodes import (
    HANG_UP,
    SILENT,
    command_result,
    fake_cluster,
    redirect,
    retry,
    status_document,
)

REPO = Path(__file__).resolve().parents[2]


def run(config: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--config", str(config), *args])


def led_by(leader: str | None, *, value: int = 0, term: int = 1) -> Any:
    """A handler for a cluster led by ``leader`` (None: nobody leads, every node says retry); it
    registers client sessions (id 5) by the same rules as it runs commands."""

    def handle(node_id: str, request: dict[str, Any]) -> Any:
        if request["op"] == "status":
            role = "leader" if node_id == leader else "follower"
            return status_document(node_id, role=role, term=term, leader=leader, value=value)
        if request["op"] in ("run_command", "register_session", "query"):
            if leader is None:
                return retry(node_id)
            if node_id != leader and request["op"] != "query":  # any node serves a query
                return redirect(node_id, leader)
            return command_result(node_id, 7 if request["op"] != "register_session" else 5, leader=leader)
        return {"ok": False, "error": f"unknown op {request['op']!r}"}

    return handle


def test_run_command_follows_a_redirect_to_the_leader(tmp_path: Path) -> None:
    with fake_cluster(led_by("n2")) as fake:
        config = fake.cluster_file(tmp_path / "cluster.toml")
        human = run(config, "run-command", "incr", "1")
        assert human.exit_code == 0, human.output
        assert human.stdout.startswith("7  (n2 answered, log index 3, ")
        document = json.loads(run(config, "run-command", "--json", "incr", "1").stdout)
        assert document["node"] == "n2" and document["result"] == 7 and document["attempts"] == 1
        assert set(document) == {"ok", "command", "result", "error", "node", "index", "attempts", "elapsed_ms"}
        # A new process looks at the cluster first and goes straight to the leader it finds.
        assert fake.ops("register_session") == ["n2", "n2"]
        assert fake.ops("run_command") == ["n2", "n2"]
        stamps = [(r["session"], r["seq"], r["ack"]) for _, r in fake.requests if r["op"] == "run_command"]
        assert stamps == [(5, 1, 1), (5, 1, 1)]
        assert run(config, "query", "get", "--expect", "7").exit_code == 0
        assert fake.ops("register_session") == ["n2", "n2"]  # a read needs no session
        assert "session" not in fake.requests[-1][1]
        assert run(config, "query", "-q", "get").stdout == "7\n"
        assert len(fake.ops("query")) == 2  # a query is its own op: no log entry
        follower = run(config, "query", "--node", "n3", "get")
        assert follower.stdout.startswith("7  (n3 answered, read index 3, "), follower.output


def test_run_command_to_a_named_follower_is_redirected_and_no_follow_refuses(tmp_path: Path) -> None:
    with fake_cluster(led_by("n2")) as fake:
        config = fake.cluster_file(tmp_path / "cluster.toml")
        assert json.loads(run(config, "run-command", "--json", "--node", "n3", "incr", "1").stdout)["node"] == "n2"
        assert json.loads(run(config, "run-command", "--json", "--node", "follower", "incr", "1").stdout)["node"] == "n2"
        refused = run(config, "run-command", "--node", "n3", "--no-follow", "incr", "1")
        assert refused.exit_code == 1 and "node n3 is not the leader (it names n2)" in refused.stderr
        once = json.loads(run(config, "run-command", "--json", "--node", "leader", "--no-follow", "incr", "1").stdout)
        assert once["node"] == "n2" and once["attempts"] == 1


def n1_answers(op: str, answers: dict[str, Any]) -> Any:
    """A cluster led by n2 where n1 answers ``op`` of each command with ``answers[command]``."""

    def handle(node_id: str, request: dict[str, Any]) -> Any:
        if node_id == "n1" and request["op"] == op:
            return answers[request["command"]]
        return led_by("n2")(node_id, request)

    return handle


def test_no_follow_tells_a_command_taken_then_orphaned_by_lost_leadership_from_one_never_taken(tmp_path: Path) -> None:
    """A redirect or retry with an index: the node appended the command, then lost leadership --
    the outcome is unknown (exit 4, as a deadline), not "nothing was done" (exit 1)."""
    lost = {"redirect": {**redirect("n1", "n2"), "index": 9}, "retry": {**retry("n1"), "index": 9},
            "old": redirect("n1", "n2"), "garbled": {**redirect("n1", "n2"), "index": "9"}}
    with fake_cluster(n1_answers("run_command", lost)) as fake:
        config = fake.cluster_file(tmp_path / "cluster.toml")
        orphaned = run(config, "run-command", "--node", "n1", "--no-follow", "redirect")
        assert orphaned.exit_code == 4, orphaned.output
        assert "took 'redirect' into its log at index 9, then lost leadership (n2 leads now)" in orphaned.stderr
        assert "the outcome is unknown" in orphaned.stderr and "nothing was done" not in orphaned.stderr
        leaderless = run(config, "run-command", "--node", "n1", "--no-follow", "retry")
        assert leaderless.exit_code == 4 and "(it knows no leader now): the outcome is unknown" in leaderless.stderr
        # A node that predates the index (null on every redirect): refused before proposing, as before.
        old = run(config, "run-command", "--node", "n1", "--no-follow", "old")
        assert old.exit_code == 1 and "not the leader (it names n2); nothing was done there" in old.stderr
        garbled = run(config, "run-command", "--node", "n1", "--no-follow", "garbled")
        assert garbled.exit_code == 1 and "malformed 'index'" in garbled.stderr and "'9'" in garbled.stderr
        # Following (in a session), the orphaned command is resent to the new leader with the same
        # stamp: the cluster applies it at most once.
        followed = run(config, "run-command", "--node", "n1", "--json", "redirect")
        assert followed.exit_code == 0 and json.loads(followed.stdout)["node"] == "n2"
        sent = [(node, r["session"], r["seq"]) for node, r in fake.requests
                if r["op"] == "run_command" and "session" in r]
        assert sent == [("n1", 5, 1), ("n2", 5, 1)]


def test_a_read_refused_by_a_leader_that_cannot_confirm_its_leadership_says_so(tmp_path: Path) -> None:
    with fake_cluster(n1_answers("query", {"get": redirect("n1", "n1")})) as fake:  # a deposed leader names itself
        config = fake.cluster_file(tmp_path / "cluster.toml")
        refused = run(config, "query", "--node", "n1", "--no-follow", "get")
        assert refused.exit_code == 1, refused.output
        assert "node n1 claims to lead but could not confirm it with a majority" in refused.stderr
        assert "'get' was not served there" in refused.stderr and "it names n1" not in refused.stderr


def test_without_node_a_command_goes_first_to_the_claimant_of_the_newest_term(tmp_path: Path) -> None:
    """n1 was cut off (check_quorum off) and still says leader in term 1; n2 leads term 2. n1,
    first in the file, would take the command and never commit it."""

    def handle(node_id: str, request: dict[str, Any]) -> Any:
        if request["op"] == "status":
            if node_id == "n1":
                return status_document("n1", role="leader", term=1, leader="n1")
            return led_by("n2", term=2)(node_id, request)
        if node_id == "n1":
            return {**command_result("n1", None), "ok": False, "timeout_expired": True}
        return led_by("n2", term=2)(node_id, request)

    for down in ((), ("n3",)):  # n2 backed by a majority, or only its own claim (n3 silent)
        with fake_cluster(handle, down=down) as fake:
            config = fake.cluster_file(tmp_path / f"cluster{len(down)}.toml")
            result = run(config, "run-command", "--json", "--timeout", "2", "incr", "1")
            assert result.exit_code == 0, result.output
            assert json.loads(result.stdout)["node"] == "n2"
            assert fake.ops("register_session") == ["n2"] and fake.ops("run_command") == ["n2"]


def test_no_leader_is_retried_on_every_node_until_the_timeout_then_exit_3(tmp_path: Path) -> None:
    with fake_cluster(led_by(None)) as fake:
        config = fake.cluster_file(tmp_path / "cluster.toml")
        started = time.monotonic()
        result = run(config, "run-command", "--timeout", "0.6", "incr", "1")
        elapsed = time.monotonic() - started
        assert result.exit_code == 3, result.output
        assert "no leader answered within 0.6 s (n" in result.stderr and "knows no leader" in result.stderr
        assert 0.55 <= elapsed < 3
        asked = fake.ops("register_session")  # the session first, which no leader registers
        assert set(asked) == {"n1", "n2", "n3"} and len(asked) >= 6  # round and round, backing off
        assert len(asked) < 60  # ... not spinning
        once = run(config, "run-command", "--node", "n1", "--no-follow", "incr", "1")
        assert once.exit_code == 3 and "knows none right now" in once.stderr
        leader = run(config, "leader", "--timeout", "0.3")
        assert leader.exit_code == 3 and "the cluster has no leader within 0.3 s" in leader.stderr


def test_a_deadline_too_short_to_reach_an_existing_leader_is_exit_4_not_no_leader(tmp_path: Path) -> None:
    with fake_cluster(led_by("n2")) as fake:
        config = fake.cluster_file(tmp_path / "cluster.toml")
        result = run(config, "run-command", "--timeout", "0", "incr", "1")
        assert result.exit_code == 4, result.output
        assert "though n2 leads: the deadline passed first" in result.stderr


def test_a_command_the_leader_cannot_commit_in_time_is_exit_4(tmp_path: Path) -> None:
    def handle(node_id: str, request: dict[str, Any]) -> Any:
        if request["op"] == "run_command":
            return {**command_result(node_id, None), "ok": False, "timeout_expired": True}
        return led_by("n1")(node_id, request)

    with fake_cluster(handle) as fake:
        config = fake.cluster_file(tmp_path / "cluster.toml")
        result = run(config, "run-command", "--timeout", "1", "incr", "1")
        assert result.exit_code == 4 and "may still commit later" in result.stderr


def test_state_machine_errors_and_refused_requests_are_exit_1(tmp_path: Path) -> None:
    def handle(node_id: str, request: dict[str, Any]) -> Any:
        if request["op"] == "run_command" and request["command"] == "bogus":
            return {**command_result(node_id, None), "ok": False, "error": "unknown command 'bogus'"}
        if request["op"] == "run_command" and request["command"] == "refuse me":
            return {"ok": False, "error": "run_command needs a non-empty string 'command'"}
        return led_by("n1")(node_id, request)

    with fake_cluster(handle) as fake:
        config = fake.cluster_file(tmp_path / "cluster.toml")
        bogus = run(config, "run-command", "bogus")
        assert bogus.exit_code == 1 and "n1: unknown command 'bogus'" in bogus.stderr
        document = json.loads(run(config, "run-command", "--json", "bogus").stdout)
        assert document["ok"] is False and document["error"] == "unknown command 'bogus'"
        refused = run(config, "run-command", "refuse", "me")
        assert refused.exit_code == 1 and "non-empty string" in refused.stderr
        assert run(config, "query", "get", "--expect", "8").exit_code == 1


def test_an_unreachable_node_is_skipped_and_a_named_one_is_exit_5(tmp_path: Path) -> None:
    with fake_cluster(led_by("n2"), down=("n1",)) as fake:
        config = fake.cluster_file(tmp_path / "cluster.toml")
        document = json.loads(run(config, "run-command", "--json", "incr", "1").stdout)
        assert document["node"] == "n2" and document["attempts"] == 1  # n1 refused the session's registration
        assert fake.ops("register_session") == ["n2"]
        named = run(config, "run-command", "--node", "n1", "incr", "1")
        assert named.exit_code == 5 and "node n1 is not running" in named.stderr
        once = run(config, "run-command", "--node", "n1", "--no-follow", "incr", "1")
        assert once.exit_code == 5 and "node n1 is not running" in once.stderr
        status = json.loads(run(config, "status", "--json").stdout)
        assert status["leader"] == "n2"  # n2 and n3: a majority of three
        rows = {row["id"]: row for row in status["nodes"]}
        assert rows["n1"]["alive"] is False and rows["n1"]["pid"] is None
        assert rows["n2"]["role"] == "leader" and rows["n3"]["leader"] == "n2"


def test_status_reports_silent_and_hung_up_nodes_as_down_within_a_second(tmp_path: Path) -> None:
    def handle(node_id: str, request: dict[str, Any]) -> Any:
        if node_id == "n4":
            return SILENT
        if node_id == "n5":
            return HANG_UP
        return led_by("n1", value=5)(node_id, request)

    with fake_cluster(handle, ("n1", "n2", "n3", "n4", "n5")) as fake:
        config = fake.cluster_file(tmp_path / "cluster.toml")
        started = time.monotonic()
        document = json.loads(run(config, "status", "--json").stdout)
        assert time.monotonic() - started < 2.5  # one second for n4, all nodes asked at once
        assert document["leader"] == "n1"  # 3 of 5 follow n1
        assert [row["alive"] for row in document["nodes"]] == [True, True, True, False, False]
        assert document["nodes"][0]["state"] == {"value": 5}
        human = run(config, "status")
        assert human.exit_code == 0 and "cluster fake · leader n1 · term 1" in human.stdout
        assert "value=5" in human.stdout and "down" in human.stdout
        assert run(config, "leader").stdout == "n1\n"
        assert json.loads(run(config, "leader", "--json").stdout) == {"leader": "n1", "term": 1}


def test_a_starting_node_is_down_with_a_note(tmp_path: Path) -> None:
    def handle(node_id: str, request: dict[str, Any]) -> Any:
        if node_id == "n3":
            return {"ok": False, "error": "node not running yet"}
        return led_by("n1")(node_id, request)

    with fake_cluster(handle) as fake:
        config = fake.cluster_file(tmp_path / "cluster.toml")
        human = run(config, "status")
        assert "n3: starting (node not running yet)" in human.stdout


def test_a_cluster_that_is_not_running_is_exit_5_at_once(tmp_path: Path) -> None:
    config = write_config(tmp_path / "cluster.toml", 5, free_base_port(5))
    for command in (["status"], ["status", "--json"], ["leader"], ["run-command", "incr", "1"], ["query", "get"]):
        started = time.monotonic()
        result = run(config, *command)
        assert result.exit_code == 5, (command, result.output)
        assert "not running" in result.stderr and "raftctl up" in result.stderr
        assert time.monotonic() - started < 1.5, command


SCRIPT = """
import json, sys
from raftctl.cli import main
try:
    main(sys.argv[1:], prog_name="raftctl")
except SystemExit as exc:
    code = exc.code
heavy = sorted(m for m in ("trio", "rich", "raftnode.core", "raftnode.client.trioclient", "raftctl.cluster") if m in sys.modules)
print(json.dumps({"code": code, "heavy": heavy}), file=sys.stderr)
"""


def loaded(config: Path, *args: str) -> dict[str, Any]:
    """Run raftctl ARGS in a new interpreter; which heavy modules it imported, and its exit code."""
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, "--config", str(config), *args],
        capture_output=True, text=True, timeout=30, check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    return json.loads(done.stderr.strip().splitlines()[-1])


def test_the_one_shot_commands_import_neither_trio_nor_the_core(tmp_path: Path) -> None:
    with fake_cluster(led_by("n2")) as fake:
        config = fake.cluster_file(tmp_path / "cluster.toml")
        for command in (["status", "--json"], ["run-command", "incr", "1"], ["run-command", "--json", "incr", "1"],
                        ["query", "get"], ["leader"], ["run-command", "--node", "follower", "incr", "1"]):
            assert loaded(config, *command) == {"code": 0, "heavy": []}, command
        # The table needs rich, and only rich.
        assert loaded(config, "status") == {"code": 0, "heavy": ["rich"]}
    stopped = write_config(tmp_path / "stopped.toml", 3, free_base_port(3))
    assert loaded(stopped, "status") == {"code": 5, "heavy": []}


def test_the_domain_functions_see_the_leader_and_run_the_command_there(tmp_path: Path) -> None:
    """``oneshot.status/leader/run_command`` (what the CLI calls), and ``cluster.leader`` (the same
    from trio, for ``raftctl bench``), called as functions."""
    import trio

    from raftctl import cluster, oneshot
    from raftnode.config import load_config

    with fake_cluster(led_by("n2")) as fake:
        config = load_config(fake.cluster_file(tmp_path / "cluster.toml"))
        assert oneshot.status(config).leader == "n2"
        assert oneshot.leader(config).id == "n2"
        assert trio.run(lambda: cluster.leader(config)).id == "n2"
        reply = oneshot.run_command(config, "incr 1")
        assert reply.node == "n2" and reply.result == 7
