"""The dependency direction of architecture.md, checked statically with ast:

- nothing under ``raftnode/`` imports ``raftctl``, click or rich (raftctl is a client of raftnode);
- ``raftnode/core`` imports only the standard library and ``raftnode.core`` itself (the protocol
  stays pure, so it can be simulated deterministically), and of the standard library not socket,
  os, time, threading, json (one explicit exception) or trio;
- the layers below the node stay below it: ``raftnode/storage`` and ``raftnode/transport`` import
  neither the node, the client, the simulator nor ``raftnode.api``; ``raftnode/wire`` (the client
  protocol, shared by node and client) imports neither of its two users; ``raftnode/client``
  never imports the node. A public name taken from ``raftnode`` itself counts as the module it
  comes from (``from raftnode import HullAPI`` imports ``raftnode.api``);
- in ``raftctl``, rich is imported only by the rendering modules: the ``raftctl/render``
  package and ``raftctl/dashboard.py`` (issue 13).
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

RAFTNODE = Path(__file__).resolve().parents[1] / "raftnode"
RAFTCTL = RAFTNODE.parent / "raftctl"
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


# I/O, clocks, threads and the event loop belong to the shells around the core (issue 13).
DENIED_IN_CORE = ("socket", "os", "time", "threading", "json", "trio")
# The one exception, explicit: a configuration log entry's data is JSON (``quorum.Configuration``
# encode/decode), stored in every log and snapshot; moving that codec out of the core means a
# codec seam or a new on-disk encoding, work of its own.
DENIED_IN_CORE_EXCEPTIONS = {("raftnode/core/quorum.py", "json")}


def denied_core_imports(imports: set[str], path: str) -> list[str]:
    """The imports of the core module at ``path`` (``raftnode/core/x.py``) that it may not have."""
    return sorted(
        name
        for name in imports
        for denied in DENIED_IN_CORE
        if is_within(name, denied) and (path, denied) not in DENIED_IN_CORE_EXCEPTIONS
    )


def test_the_core_denial_catches_a_planted_clock_and_socket() -> None:
    planted = set(imported_modules("import time\nfrom os import path\ndef f():\n    import socket\n",
                                   "raftnode.core.raft"))
    assert denied_core_imports(planted, "raftnode/core/raft.py") == ["os", "os.path", "socket", "time"]
    assert denied_core_imports({"json"}, "raftnode/core/raft.py") == ["json"]
    assert denied_core_imports({"json"}, "raftnode/core/quorum.py") == []
    assert denied_core_imports({"timeit", "trio_util", "ossaudiodev"}, "raftnode/core/raft.py") == []


@pytest.mark.parametrize(
    "path",
    sorted((RAFTNODE / "core").rglob("*.py")),
    ids=lambda p: str(p.relative_to(RAFTNODE.parent)),
)
def test_raftnode_core_does_no_io_keeps_no_clock_and_starts_no_thread(path: Path) -> None:
    bad = denied_core_imports(imports_of(path), path.relative_to(RAFTNODE.parent).as_posix())
    assert not bad, f"{path} imports {', '.join(bad)}; raftnode.core must stay pure (no I/O, clock, thread, loop)"


# -- the layers below the node ------------------------------------------------------------------

ABOVE_THE_WIRE = ("raftnode.node", "raftnode.api", "raftnode.client", "raftnode.sim")
#: A layer's folder -> the packages and modules it may not import (issue 13).
LAYER_DENIED = {
    "raftnode/storage": ABOVE_THE_WIRE,
    "raftnode/transport": ABOVE_THE_WIRE,
    "raftnode/wire": ABOVE_THE_WIRE,
    "raftnode/client": ("raftnode.node", "raftnode.api", "raftnode.sim"),
}


def top_level_exports() -> dict[str, str]:
    """``raftnode.Name`` -> the module that ``raftnode/__init__.py``'s ``lazy_exports`` imports for it."""
    tree = ast.parse((RAFTNODE / "__init__.py").read_text(encoding="utf-8"))
    calls = [node for node in ast.walk(tree)
             if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "lazy_exports"]
    assert len(calls) == 1, "raftnode/__init__.py names its public exports in one lazy_exports call"
    exports = ast.literal_eval(calls[0].args[1])
    return {f"raftnode.{name}": module for name, module in exports.items()}


def layer_violations(imports: set[str], denied: tuple[str, ...], exports: dict[str, str]) -> list[str]:
    """The ``imports`` (a public name of ``raftnode`` as its module, per ``exports``) within ``denied``."""
    return sorted(
        name
        for name in imports
        if any(is_within(exports.get(name, name), package) for package in denied)
    )


def test_the_layer_rule_catches_a_planted_import_of_the_node_api_client_or_simulator() -> None:
    exports = top_level_exports()
    assert exports["raftnode.HullAPI"] == "raftnode.api"
    planted = set(imported_modules(
        "from raftnode.node import runtime\n"
        "from ..api import HullAPI\n"
        "from raftnode import ClusterClient\n"
        "from ..core.log import Log\n"
        "from ..config import Address\n"
        "import raftnode.nodes_of_a_tree\n"
        "def f():\n"
        "    import raftnode.sim.cluster\n",
        "raftnode.storage.disk",
    ))
    assert layer_violations(planted, ABOVE_THE_WIRE, exports) == [
        "raftnode.ClusterClient",
        "raftnode.api",
        "raftnode.api.HullAPI",
        "raftnode.node",
        "raftnode.node.runtime",
        "raftnode.sim.cluster",
    ]
    assert layer_violations(planted, LAYER_DENIED["raftnode/client"], exports) == [
        "raftnode.api", "raftnode.api.HullAPI", "raftnode.node", "raftnode.node.runtime", "raftnode.sim.cluster",
    ]


def layer_files() -> list[object]:
    return [
        pytest.param(path, denied, id=str(path.relative_to(RAFTNODE.parent)))
        for folder, denied in sorted(LAYER_DENIED.items())
        for path in sorted((RAFTNODE.parent / folder).rglob("*.py"))
    ]


def test_every_layer_folder_of_the_rule_exists() -> None:
    assert all((RAFTNODE.parent / folder / "__init__.py").is_file() for folder in LAYER_DENIED)


@pytest.mark.parametrize("path, denied", layer_files())
def test_the_layers_below_the_node_never_import_the_layers_above(path: Path, denied: tuple[str, ...]) -> None:
    bad = layer_violations(imports_of(path), denied, top_level_exports())
    assert not bad, f"{path} imports {', '.join(bad)}; move what both need down into its own layer"


# -- rich in raftctl -------------------------------------------------------------------------------

#: The rendering modules of raftctl, the only ones that import rich.
RICH_ALLOWED = ("raftctl/render/", "raftctl/dashboard.py")


def imports_rich_outside_rendering(imports: set[str], path: str) -> list[str]:
    """The rich modules among ``imports`` of the raftctl module at ``path`` (``raftctl/x.py``),
    unless it is a rendering module."""
    if any(path == allowed or (allowed.endswith("/") and path.startswith(allowed)) for allowed in RICH_ALLOWED):
        return []
    return sorted(name for name in imports if is_within(name, "rich"))


def test_the_rich_rule_catches_a_planted_table_outside_the_rendering_modules() -> None:
    planted = set(imported_modules(
        "import richer\nfrom .render import status_view\ndef f():\n    from rich.table import Table\n",
        "raftctl.bench",
    ))
    assert imports_rich_outside_rendering(planted, "raftctl/bench.py") == ["rich.table", "rich.table.Table"]
    assert imports_rich_outside_rendering({"rich"}, "raftctl/commands/tools.py") == ["rich"]
    assert imports_rich_outside_rendering(planted, "raftctl/render/bench.py") == []
    assert imports_rich_outside_rendering(planted, "raftctl/dashboard.py") == []
    assert imports_rich_outside_rendering(planted, "raftctl/rendering.py") == ["rich.table", "rich.table.Table"]


def test_the_rendering_modules_exist() -> None:
    assert (RAFTCTL / "render" / "__init__.py").is_file() and (RAFTCTL / "dashboard.py").is_file()


@pytest.mark.parametrize("path", sorted(RAFTCTL.rglob("*.py")), ids=lambda p: str(p.relative_to(RAFTCTL.parent)))
def test_raftctl_imports_rich_only_in_its_rendering_modules(path: Path) -> None:
    bad = imports_rich_outside_rendering(imports_of(path), path.relative_to(RAFTCTL.parent).as_posix())
    assert not bad, f"{path} imports {', '.join(bad)}; draw it in raftctl/render (rich stays in the rendering modules)"
