"""A small YAML writer for the manifests (PyYAML is not a dependency of raftctl).

Mappings and sequences are written in block style; every string is a double-quoted scalar
(JSON's escapes are valid YAML) except multi-line strings, written as literal blocks (``|``), so
the output means exactly the data given, whatever the strings hold.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

_INDENT = "  "


def dumps(document: Any) -> str:
    """The YAML text of ``document`` (dicts, lists, str, int, bool, None)."""
    return "\n".join(_lines(document, 0)) + "\n"


def dumps_all(documents: Sequence[Any]) -> str:
    """Several documents in one stream, each starting with ``---``."""
    return "".join("---\n" + dumps(document) for document in documents)


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return "".join(_escaped(c) for c in json.dumps(value, ensure_ascii=False))
    raise TypeError(f"cannot write {type(value).__name__} as YAML")


def _escaped(char: str) -> str:
    """``char`` as it may stand in a double-quoted scalar: escaped unless YAML calls it printable
    and not a line break (JSON's own escapes are left as they are)."""
    code = ord(char)
    if char in "\x09\x0a\x0d" or 0x20 <= code <= 0x7E or 0xA0 <= code <= 0xD7FF or 0xE000 <= code <= 0xFFFD:
        return char if code not in (0x2028, 0x2029) else f"\\u{code:04x}"
    if code >= 0x10000:
        return char
    return f"\\u{code:04x}"


def _is_block_text(value: Any) -> bool:
    """A multi-line string that a literal block keeps exactly: it ends with one newline, has no
    tabs, other control characters or trailing spaces, and its first line does not start with a space (the block's
    indentation is taken from it)."""
    if not isinstance(value, str) or "\n" not in value.rstrip("\n") or not value.endswith("\n") or value.endswith("\n\n"):
        return False
    lines = value[:-1].split("\n")
    if not lines[0] or lines[0].startswith(" "):
        return False
    return all(line == line.rstrip() and line.isprintable() for line in lines)


def _inline(value: Any, depth: int) -> tuple[str, list[str]]:
    """What follows ``key:`` or ``-`` on its line, and the lines under it."""
    if isinstance(value, Mapping) and value:
        return "", list(_lines(value, depth + 1))
    if isinstance(value, list) and value:
        return "", list(_lines(value, depth + 1))
    if isinstance(value, Mapping):
        return " {}", []
    if isinstance(value, list):
        return " []", []
    if _is_block_text(value):
        pad = _INDENT * (depth + 1)
        return " |", [pad + line if line else "" for line in value[:-1].split("\n")]
    return " " + _scalar(value), []


def _lines(value: Any, depth: int) -> list[str]:
    pad = _INDENT * depth
    out: list[str] = []
    if isinstance(value, (Mapping, list)) and not value:
        return [pad + ("{}" if isinstance(value, Mapping) else "[]")]
    if isinstance(value, Mapping):
        for key, item in value.items():
            head, body = _inline(item, depth)
            out.append(f"{pad}{key if _plain_key(key) else _scalar(str(key))}:{head}")
            out.extend(body)
        return out
    if isinstance(value, list):
        for item in value:
            head, body = _inline(item, depth)
            out.append(f"{pad}-{head}")
            out.extend(body)
        return out
    return [pad + _scalar(value)]


def _plain_key(key: Any) -> bool:
    """Keys written without quotes: letters, digits and ``_-./`` (``app.kubernetes.io/name``)."""
    if not isinstance(key, str) or not key or key.lower() in _RESOLVED_WORDS:
        return False
    return key[0].isalpha() and all(c.isalnum() or c in "_-./" for c in key)


#: Plain words a YAML 1.1 reader takes for a boolean or null rather than a string.
_RESOLVED_WORDS = frozenset({"yes", "no", "on", "off", "true", "false", "null", "y", "n"})
