"""The README's exit-code table is the contract (issue 17): walk it against the CLI — every code
is one of raftctl's, has its JSON name, and every command it names exists."""

from __future__ import annotations

import re
from pathlib import Path

import click

from raftctl import cli, output
from raftctl.cli import main

README = Path(__file__).resolve().parents[2] / "README.md"


def table() -> dict[int, tuple[str, str]]:
    """``{code: (meaning, commands)}`` from the README's exit-code table."""
    text = README.read_text()
    start = text.index("| code | meaning | commands that give it |")
    rows = {}
    for line in text[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        code, meaning, commands = (cell.strip() for cell in line.strip("|").split(" | "))
        rows[int(code)] = (meaning, commands)
    return rows


def test_the_table_lists_exactly_raftctls_exit_codes_each_with_its_json_name() -> None:
    constants = {value for name, value in vars(cli).items() if name.startswith("EXIT_") and isinstance(value, int)}
    assert set(table()) == constants == {0, 1, 2, 3, 4, 5, 130}
    assert all(code in output.CODE_NAMES for code in constants - {0})


def test_every_command_the_table_names_exists() -> None:
    for code, (_, commands) in table().items():
        if commands.startswith("every command"):
            continue
        names = [name.strip() for name in commands.split(",")]
        unknown = [name for name in names if main.get_command(click.Context(main), name) is None]
        assert not unknown, f"exit {code}: no such command {unknown}"


def test_the_help_epilog_and_the_table_agree() -> None:
    for code in table():
        assert re.search(rf"\b{code} ", cli.EXIT_CODES_HELP), code
