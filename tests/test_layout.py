"""The folders of raftnode/ show its layers (issue 13), and the import lines users copy keep working.

The top of raftnode/ holds only entry points, the composition root, the cluster file and modules
kept where users import them; everything else lives in the package of its layer. A new module
at the top fails here: put it in its layer's package.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RAFTNODE = REPO / "raftnode"

TOP_LEVEL_MODULES = {
    "__init__", "__main__", "api", "clientproto", "concurrency", "config", "lazy", "probe",
    "statemachines", "syncclient", "tls",
}
PACKAGES = {"client", "core", "node", "security", "sim", "storage", "transport", "wire"}
#: Old module -> where it moved: the old one re-exports the new one's public names.
FACADES = {
    "raftnode.syncclient": "raftnode.client.syncclient",
    "raftnode.clientproto": "raftnode.client.clientproto",
    "raftnode.statemachines": "raftnode.node.statemachines",
    "raftnode.tls": "raftnode.security.tls",
}
#: Packages that took a module's name -> the modules whose names they re-export on first use.
LAZY_PACKAGES = {
    "raftnode.client": ["raftnode.client.syncclient", "raftnode.client.trioclient"],
    "raftnode.wire": ["raftnode.wire.requests"],
}
#: The public API's names, importable from ``raftnode`` itself.
TOP_EXPORTS = {
    "HullAPI": "raftnode.api",
    "PilotAPI": "raftnode.api",
    "CommandResult": "raftnode.api",
    "ClusterClient": "raftnode.client.trioclient",
    "SyncClusterClient": "raftnode.client.syncclient",
}


def top_level(path: Path) -> tuple[set[str], set[str]]:
    modules = {p.stem for p in path.glob("*.py")}
    packages = {p.name for p in path.iterdir() if (p / "__init__.py").is_file()}
    return modules, packages


def test_the_top_of_raftnode_holds_entry_points_shared_modules_and_facades_only() -> None:
    modules, packages = top_level(RAFTNODE)
    assert modules <= TOP_LEVEL_MODULES, f"put {sorted(modules - TOP_LEVEL_MODULES)} in the package of its layer"
    assert packages == PACKAGES


def test_the_layout_check_catches_a_module_left_at_the_top(tmp_path: Path) -> None:
    for name in TOP_LEVEL_MODULES | {"ticker"}:
        (tmp_path / f"{name}.py").write_text("")
    modules, _ = top_level(tmp_path)
    assert modules - TOP_LEVEL_MODULES == {"ticker"}


@pytest.mark.parametrize("old, new", sorted(FACADES.items()))
def test_a_moved_module_keeps_its_old_import_path(old: str, new: str) -> None:
    before, after = importlib.import_module(old), importlib.import_module(new)
    assert before.__all__
    for name in before.__all__:
        assert getattr(before, name) is getattr(after, name), name


@pytest.mark.parametrize("package, modules", sorted(LAZY_PACKAGES.items()))
def test_a_package_that_took_a_modules_name_exports_its_names(package: str, modules: list[str]) -> None:
    lazy = importlib.import_module(package)
    for module in map(importlib.import_module, modules):
        for name in module.__all__:
            assert getattr(lazy, name) is getattr(module, name), (package, name)
    assert set(lazy.__all__) <= set(dir(lazy))
    with pytest.raises(AttributeError, match="no attribute 'NoSuchName'"):
        lazy.NoSuchName  # noqa: B018


def test_the_public_names_import_from_raftnode_itself() -> None:
    import raftnode

    for name, module in TOP_EXPORTS.items():
        assert getattr(raftnode, name) is getattr(importlib.import_module(module), name), name


def test_the_public_import_lines_of_the_readme_and_examples_still_work() -> None:
    code = (
        "from raftnode.api import CommandResult, HullAPI, PilotAPI\n"
        "from raftnode.client import ClientError, ClusterClient\n"
        "from raftnode.syncclient import SyncClusterClient\n"
        "from raftnode.clientproto import ClientSession\n"
        "from raftnode.statemachines import CommandError, Counter\n"
        "from raftnode.tls import client_context\n"
        "from raftnode import wire\n"
        "assert wire.RunMany and wire.RegisterSession\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=60)


def test_the_packages_and_the_blocking_client_import_no_trio() -> None:
    code = (
        "import sys, raftnode, raftnode.client, raftnode.wire, raftnode.client.syncclient, raftnode.syncclient\n"
        "from raftnode import wire, SyncClusterClient\n"
        "wire.RunMany, raftnode.client.SyncClusterClient\n"
        "print(sorted(m for m in ('trio', 'raftnode.core') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout.strip() == "[]"
