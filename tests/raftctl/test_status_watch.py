"""`raftctl status --watch` (issue 17): the picture again every interval — in place on a terminal,
one JSON document per line with -o jsonl, one table per picture into a pipe — going on while no
node answers. The pictures are scripted: no node runs."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from rich.console import Console

from raftctl import errors, oneshot, statuswatch
from raftctl.cli import main
from raftctl.clusterfile import write_config
from raftnode.config import load_config

from ..e2e.raftctl_harness import free_base_port
from .test_render_and_model import picture, row


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    return write_config(tmp_path / "cluster.toml", 3, free_base_port(3))


def scripted(monkeypatch: pytest.MonkeyPatch, *seen: Any) -> None:
    """``oneshot.status`` answers ``seen`` in turn (an exception is raised), then the last forever."""
    answers = list(seen)

    def status(config: Any) -> Any:
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(oneshot, "status", status)


DOWN = errors.ClusterNotRunning("cluster.toml")
UP = picture(row("n1", "leader", term=2), row("n2", term=2), row("n3", term=4, leader=None))


def test_refresh_looks_every_interval_from_the_start_of_each_look() -> None:
    now = [0.0]
    slept: list[float] = []

    def look() -> float:
        now[0] += 0.3  # each look takes 0.3 s
        return now[0]

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    shown: list[float] = []
    last = statuswatch.refresh(look, shown.append, interval=1.0, count=3, sleep=sleep, clock=lambda: now[0])
    assert shown == [0.3, 1.3, 2.3] and last == 2.3
    assert slept == pytest.approx([0.7, 0.7])


def test_status_watch_as_json_lines_goes_on_while_no_node_answers(config_path: Path, monkeypatch) -> None:
    scripted(monkeypatch, DOWN, UP)
    result = CliRunner().invoke(main, ["--config", str(config_path), "status", "n1,n3", "--watch", "--count", "3",
                                       "--interval", "0.1", "-o", "jsonl"])
    assert result.exit_code == 0, result.output
    documents = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(documents) == 3 and all("time" in d for d in documents)
    assert documents[0]["code"] == "not_running" and documents[0]["exit_code"] == 5
    assert [[n["id"] for n in d["nodes"]] for d in documents[1:]] == [["n1", "n3"]] * 2
    assert documents[1]["nodes"][0]["client"]  # the addresses, as in `status --json`


def test_status_watch_into_a_pipe_prints_each_picture_under_its_time(config_path: Path, monkeypatch) -> None:
    scripted(monkeypatch, UP)
    result = CliRunner().invoke(main, ["--config", str(config_path), "status", "--watch", "--count", "2",
                                       "--interval", "0.1"])
    assert result.exit_code == 0, result.output
    assert result.stdout.count("status at ") == 2 and result.stdout.count("leader") >= 2
    assert "\x1b[" not in result.stdout


def test_status_watch_whose_last_look_found_no_node_is_exit_5(config_path: Path, monkeypatch) -> None:
    scripted(monkeypatch, UP, DOWN)
    result = CliRunner().invoke(main, ["--config", str(config_path), "status", "--count", "2", "--interval", "0.1"])
    assert result.exit_code == 5
    assert "no node answers" in result.stdout


def test_status_watch_on_a_terminal_redraws_in_place(config_path: Path, monkeypatch) -> None:
    scripted(monkeypatch, UP)
    screen = io.StringIO()
    terminal = Console(file=screen, force_terminal=True, width=120, color_system=None)
    statuswatch.watch_status(load_config(config_path), None, interval=0.1, count=3, as_json=False,
                             echo=print, console=terminal)
    drawn = screen.getvalue()
    assert "status at" not in drawn
    assert drawn.count("\x1b[2K") > 0  # each frame erases the last one's lines: one table on screen


def test_a_bad_interval_is_exit_2(config_path: Path) -> None:
    result = CliRunner().invoke(main, ["--config", str(config_path), "status", "--watch", "--interval", "0"])
    assert result.exit_code == 2
