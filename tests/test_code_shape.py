"""The shape of the code, measured with ast: no class over 300 lines, no function over 60.

A definition's size is its lines from the ``class``/``def`` line to its last line, docstring,
comments and blank lines included (decorators not: click's options are declarations). Methods
and nested functions are measured on their own as well as inside their class or function.

``ALLOWED`` lists the offenders that predate the rule, each to be split by the work named in its
comment. The list can only shrink: a new offender fails, and so does an entry that no longer
offends (delete it, so that it cannot grow back).
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("raftnode", "raftctl")
MAX_CLASS_LINES = 300
MAX_FUNCTION_LINES = 60

ALLOWED = {
    # The node runtime: being split into rooms (issue 13, another branch).
    "raftnode/runtime.py::RaftNode",
    "raftnode/runtime.py::RaftNode.__init__",
}


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


def test_no_new_class_over_300_lines_or_function_over_60() -> None:
    new = {name: size for name, size in offenders().items() if name not in ALLOWED}
    assert not new, "split these (or, if they predate the rule, say why in ALLOWED): " + ", ".join(
        f"{name} ({size})" for name, size in sorted(new.items())
    )


@pytest.mark.parametrize("name", sorted(ALLOWED))
def test_each_allowed_offender_still_offends(name: str) -> None:
    assert name in offenders(), f"{name} is no longer over the limit: delete it from ALLOWED so it stays that way"


def test_the_protocol_core_has_no_offender_at_all() -> None:
    assert not [name for name in ALLOWED | set(offenders()) if name.startswith("raftnode/core/")]
