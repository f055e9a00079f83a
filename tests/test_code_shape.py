"""The shape of the code, measured with ast: no class over 300 lines, no function over 60.

A definition's size is its lines from the ``class``/``def`` line to its last line, docstring,
comments and blank lines included (decorators not: click's options are declarations). Methods
and nested functions are measured on their own as well as inside their class or function.

The rule has no exceptions: the last offenders that predated it (``RaftNode``, ``ClientService``,
the cluster-table validator, bench's load generator) were split by issue 13.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("raftnode", "raftctl")
MAX_CLASS_LINES = 300
MAX_FUNCTION_LINES = 60


def definitions(tree: ast.AST, prefix: str = "") -> Iterator[tuple[str, str, int]]:
    """Yield (qualified name, "class" or "function", lines) for every definition in ``tree``."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            name = prefix + node.name
            kind = "class" if isinstance(node, ast.ClassDef) else "function"
            assert node.end_lineno is not None
            yield name, kind, node.end_lineno - node.lineno + 1
            yield from definitions(node, name + ".")
        else:
            yield from definitions(node, prefix)


def oversized(source: str) -> list[tuple[str, str, int]]:
    """The definitions in ``source`` over the limit for their kind."""
    limit = {"class": MAX_CLASS_LINES, "function": MAX_FUNCTION_LINES}
    return [(name, kind, lines) for name, kind, lines in definitions(ast.parse(source)) if lines > limit[kind]]


@functools.cache
def offenders() -> dict[str, str]:
    """``path::qualified name`` -> "kind of N lines", over both packages."""
    found = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            relative = path.relative_to(REPO).as_posix()
            for name, kind, lines in oversized(path.read_text(encoding="utf-8")):
                found[f"{relative}::{name}"] = f"{kind} of {lines} lines"
    return found


def test_the_measure_sees_classes_methods_and_nested_functions() -> None:
    long_body = "".join(f"        x{i} = {i}\n" for i in range(60))
    source = (
        "class Small:\n"
        "    def long(self):\n" + long_body +
        "def outer():\n"
        "    async def inner():\n" + long_body +
        "    return inner\n"
    )
    found = {name: (kind, lines) for name, kind, lines in oversized(source)}
    assert found == {
        "Small.long": ("function", 61),
        "outer": ("function", 63),
        "outer.inner": ("function", 61),
    }
    big_class = "class Big:\n" + "".join(f"    a{i} = {i}\n" for i in range(300))
    assert oversized(big_class) == [("Big", "class", 301)]


def test_no_class_over_300_lines_or_function_over_60() -> None:
    found = offenders()
    assert not found, "split these: " + ", ".join(f"{name} ({size})" for name, size in sorted(found.items()))
