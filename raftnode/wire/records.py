"""Frozen records that cost nothing to define: the client's requests and steps.

A ``@dataclass`` runs generated code when its class is made -- about half a millisecond each on an
idle machine, several on a busy one -- and every one-shot ``raftctl`` call imports the client's
twenty-odd records. A :class:`Record` subclass names its fields in ``__slots__`` (in order) and
the defaults of the optional ones in ``DEFAULTS``; it gets a constructor (positional or keyword),
equality, a hash, a repr and ``replace``, and refuses to be changed.

Standard library only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar

__all__ = ["Record"]

R = TypeVar("R", bound="Record")


class Record:
    """A frozen record; see the module documentation."""

    __slots__: ClassVar[tuple[str, ...]] = ()
    DEFAULTS: ClassVar[Mapping[str, Any]] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        names = self.__slots__
        name = type(self).__name__
        if len(args) > len(names):
            raise TypeError(f"{name}() takes {len(names)} arguments, {len(args)} given")
        values = dict(zip(names, args))
        for key, value in kwargs.items():
            if key not in names or key in values:
                raise TypeError(f"{name}() got an unexpected or repeated argument {key!r}")
            values[key] = value
        for key in names:
            if key in values:
                value = values[key]
            elif key in self.DEFAULTS:
                value = self.DEFAULTS[key]
            else:
                raise TypeError(f"{name}() is missing the argument {key!r}")
            object.__setattr__(self, key, value)

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen: cannot set {key!r}")

    def __delattr__(self, key: str) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen: cannot delete {key!r}")

    def values(self) -> tuple[Any, ...]:
        """The field values, in field order."""
        return tuple(getattr(self, key) for key in self.__slots__)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self.values() == other.values()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), self.values()))

    def __repr__(self) -> str:
        shown = ", ".join(f"{key}={value!r}" for key, value in zip(self.__slots__, self.values()))
        return f"{type(self).__name__}({shown})"

    def replace(self: R, **changes: Any) -> R:
        """A copy with ``changes``."""
        return type(self)(**{**dict(zip(self.__slots__, self.values())), **changes})
