"""Linearizability checking of recorded histories, pure (no I/O, no trio, no rich).

``history`` is the JSON-lines format and its loader, ``models`` the sequential specifications,
``checker`` the search, ``generate`` linearizable histories made up for tests and benchmarks, and
``report`` the self-contained HTML page of a checked run.
"""

from .checker import ANOMALY, OK, UNKNOWN, Anomaly, Budget, KeyVerdict, ModelMismatch, Verdict, check_history
from .history import History, HistoryError, Operation, TimelineEvent, parse_history
from .models import COUNTER, KEY_VALUE, MODELS, Model

__all__ = [
    "ANOMALY", "COUNTER", "KEY_VALUE", "MODELS", "OK", "UNKNOWN", "Anomaly", "Budget", "History",
    "HistoryError", "KeyVerdict", "Model", "ModelMismatch", "Operation", "TimelineEvent", "Verdict",
    "check_history", "parse_history",
]
