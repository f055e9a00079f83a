"""The dependency direction of architecture.md, checked statically with ast:

- nothing under ``raftnode/`` imports ``raftctl``, click or rich (raftctl is a client of raftnode);
- ``raftnode/core`` imports only the standard library and ``raftnode.core`` itself (the protocol
  stays pure, so it can be simulated deterministically).
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

RAFTNODE = Path(__file__).resolve().parents[1] / "raftnode"
FORBIDDEN_IN_RAFTNODE = ("raftctl", "click", "rich")


def module_name(path: Path) -> str:
    """The dotted module name of a file under the repository root (``raftnode/core/log.py``)."""
    parts = list(path.relative_to(RAFTNODE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(source: str, module: str, *, is_package: bool = False) -> Iterator[str]:
    """Yield the absolute name of every module that ``source`` (the text of ``module``) imports.

    Relative imports are resolved against ``module``. ``from pkg import name`` yields
    ``pkg.name`` as well as ``pkg``, since ``name`` may be a submodule. Imports anywhere count,
    including inside functions and ``if TYPE_CHECKING:`` blocks.
    """
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names if alias.name != "*")


def is_within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def source_files() -> list[Path]:
    return sorted(RAFTNODE.rglob("*.py"))


def imports_of(path: Path) -> set[str]:
    return set(
        imported_modules(
            path.read_text(encoding="utf-8"),
            module_name(path),
            is_package=path.name == "__init__.py",
        )
    )


def test_the_scanner_sees_absolute_relative_and_nested_imports() -> None:
    source = (
        "import click\n"
        "from rich.table import Table\n"
        "from . import log\n"
        "from .. import config\n"
        "from ..core.errors import NotLeader\n"
        "def f():\n"
        "    import trio\n"
    )
    found = set(imported_modules(source, "raftnode.core.raft"))
    assert {
        "click",
        "rich.table",
        "raftnode.core.log",
        "raftnode.config",
        "raftnode.core.errors",
        "trio",
    } <= found
    in_package = imported_modules("from . import x", "raftnode.core", is_package=True)
    assert "raftnode.core.x" in set(in_package)


def test_raftnode_sources_exist() -> None:
    assert (RAFTNODE / "config.py").is_file()


@pytest.mark.parametrize("path", source_files(), ids=lambda p: str(p.relative_to(RAFTNODE.parent)))
def test_raftnode_never_imports_raftctl_click_or_rich(path: Path) -> None:
    bad = sorted(
        name
        for name in imports_of(path)
        if any(is_within(name, forbidden) for forbidden in FORBIDDEN_IN_RAFTNODE)
    )
    assert not bad, f"{path} imports {', '.join(bad)}; raftnode must not depend on raftctl's tools"


@pytest.mark.parametrize(
    "path",
    sorted((RAFTNODE / "core").rglob("*.py")),
    ids=lambda p: str(p.relative_to(RAFTNODE.parent)),
)
def test_raftnode_core_imports_only_the_standard_library_and_itself(path: Path) -> None:
    def allowed(name: str) -> bool:
        return (
            is_within(name, "raftnode.core")
            or name.split(".")[0] in sys.stdlib_module_names
            # `from raftnode import core` / `from .. import core` name the package on the way.
            or name == "raftnode"
        )

    bad = sorted(name for name in imports_of(path) if not allowed(name))
    assert not bad, f"{path} imports {', '.join(bad)}; raftnode.core must stay pure"
