"""raftctl.linearizability stays pure: the standard library and itself, nothing else."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.test_import_boundaries import imported_modules, is_within

PACKAGE = Path(__file__).resolve().parents[2] / "raftctl" / "linearizability"


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("*.py")), ids=lambda p: p.name)
def test_the_checker_imports_only_the_standard_library_and_itself(path):
    module = "raftctl.linearizability" + ("" if path.stem == "__init__" else f".{path.stem}")
    names = imported_modules(path.read_text(), module, is_package=path.stem == "__init__")
    bad = sorted(n for n in names if not (is_within(n, "raftctl.linearizability") or n == "raftctl"
                                          or n.split(".")[0] in sys.stdlib_module_names))
    assert not bad, f"{path.name} imports {', '.join(bad)}"
