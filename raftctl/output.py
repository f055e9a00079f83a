"""Output modes and the JSON shape of failures: the scripting contract of cli.md.

``-o/--output table|json|jsonl`` (``--json`` is ``-o json``) may come before or after the
subcommand. Click parses the options; :func:`sniff` reads the mode from the raw arguments as well,
because a usage error can stop parsing before the option was reached, and its error document
must still be JSON.

In JSON mode every failure is one document on stdout (:func:`error_document`):
``{"error": message, "code": symbolic name, "exit_code": n}``; the human line still goes to
stderr. ``jsonl`` is ``json`` except that commands printing a list of records (``events``,
``watch``, ``logs -f``) print one record per line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

TABLE, JSON, JSONL = "table", "json", "jsonl"
MODES = (TABLE, JSON, JSONL)

#: Exit code -> the symbolic ``code`` of an error document.
CODE_NAMES = {
    1: "refused",
    2: "usage",
    3: "no_leader",
    4: "timeout",
    5: "not_running",
    130: "interrupted",
}


def sniff(argv: Sequence[str]) -> str:
    """The output mode the raw arguments ask for (the last one given wins), before ``--``."""
    mode = TABLE
    words = list(argv)
    for i, word in enumerate(words):
        if word == "--":
            break
        if word == "--json":
            mode = JSON
        elif word in ("-o", "--output") and i + 1 < len(words):
            mode = words[i + 1] if words[i + 1] in MODES else mode
        elif word.startswith("--output="):
            mode = _known(word.partition("=")[2], mode)
        elif word.startswith("-o") and len(word) > 2 and not word.startswith("--"):
            mode = _known(word[2:], mode)
    return mode


def _known(value: str, fallback: str) -> str:
    return value if value in MODES else fallback


def error_document(message: str, exit_code: int, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The JSON document of a failure: ``extra`` (what was measured or answered) plus
    ``error`` (``message``, unless ``extra`` carries the answer's own error), ``code`` and
    ``exit_code``."""
    document = dict(extra or {})
    if not document.get("error"):
        document["error"] = message
    document.update(code=CODE_NAMES.get(exit_code, "error"), exit_code=exit_code)
    return document
