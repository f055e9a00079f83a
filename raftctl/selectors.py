"""The one grammar of the nodes a command acts on (cli.md: ``NODE``), parsed and resolved.

Grammar: one or more words, space- or comma-separated (``kill n1 n2`` is ``kill n1,n2``); a
word is a node id of the cluster file, ``leader`` (the node a majority follows), ``follower``
(a live follower, a different one each time the word repeats), ``learner`` (a live learner of
the leader's configuration) or ``all`` (every node of the file, like ``--all``). A repeated id
counts once. A word that is none of these is a usage error naming it and the valid ids (exit 2).

:func:`parse` checks the words against the cluster file (no network); :func:`resolve` turns the
role words into ids by asking the running cluster (``raftctl.oneshot``'s session), once, before
the command acts, so ``kill leader follower`` kills two different nodes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from raftnode.config import ClusterConfig

from .errors import NoLeaderError, NotRunning, UnknownNode, UsageProblem

if TYPE_CHECKING:
    from .model import ClusterStatus
    from .oneshot import QuickSession

#: Words that name a node by its role; resolved against the running cluster.
ROLE_WORDS = ("leader", "follower", "learner")
#: The word that names every node of the cluster file.
ALL_WORD = "all"
#: Everything a NODE word may be besides an id, for error messages.
KEYWORDS = (*ROLE_WORDS, ALL_WORD)

_SEPARATORS = re.compile(r"[,\s]+")


def split_words(words: Iterable[str]) -> list[str]:
    """``["n1,n2", "n3"]`` -> ``["n1", "n2", "n3"]``: commas and blanks both separate."""
    return [word for text in words for word in _SEPARATORS.split(text) if word]


def parse(
    words: Iterable[str],
    node_ids: Sequence[str],
    *,
    everything: bool = False,
    roles: Sequence[str] = ROLE_WORDS,
    allow_all: bool = True,
) -> list[str]:
    """The ids and role words ``words`` names, in the order given; ``all``/``everything`` expand
    to every id. ``roles`` are the role words this command accepts.

    Raises:
        UnknownNode: a word is no id, role word or ``all`` (exit 2).
        UsageProblem: no node named, or a word this command does not take (exit 2).
    """
    chosen: list[str] = list(node_ids) if everything else []
    for word in split_words(words):
        if word == ALL_WORD and allow_all:
            chosen.extend(n for n in node_ids if n not in chosen)
        elif word in node_ids:
            if word not in chosen:
                chosen.append(word)
        elif word in roles:
            chosen.append(word)
        elif word in KEYWORDS:
            raise UsageProblem(f"`{word}` cannot be used here: name each node by its id")
        else:
            raise UnknownNode(word, node_ids)
    if not chosen:
        raise UsageProblem(f"name at least one node (one of {', '.join(node_ids)}, or --all)")
    return chosen


def parse_one(words: Iterable[str], node_ids: Sequence[str], *, roles: Sequence[str] = ROLE_WORDS) -> str:
    """The single id or role word ``words`` names (``all`` and several nodes are refused)."""
    chosen = parse(words, node_ids, roles=roles, allow_all=False)
    if len(chosen) != 1:
        raise UsageProblem(f"this command takes one node, not {len(chosen)} ({', '.join(chosen)})")
    return chosen[0]


def parse_groups(groups: Sequence[str], node_ids: Sequence[str]) -> list[list[str]]:
    """``partition``'s groups: each argument is one group of comma-separated NODE words.

    The group syntax is ``raftctl.chaos.parse_groups``'s; each word is checked as in
    :func:`parse`, except ``all`` (a group of every node is no partition). Repeats are kept so
    ``partition`` can name them ("n1 twice").
    """
    from .chaos import parse_groups as split_groups

    parsed = split_groups(groups)
    for word in (w for group in parsed for w in group):
        if word == ALL_WORD:
            raise UsageProblem("`all` cannot be a partition group: name the nodes of each side")
        parse([word], node_ids)
    return parsed


def resolve(config: ClusterConfig, chosen: Sequence[str], *, timeout: float = 5.0) -> list[str]:
    """The node ids ``chosen`` (from :func:`parse`) stands for, each once, in order.

    Role words are resolved against one running cluster: a repeated ``follower`` picks another
    follower each time. Ids need no network.

    Raises:
        ClusterNotRunning: a role word was given and no node answers (exit 5).
        NoLeaderError: ``leader`` or ``learner`` and no leader within ``timeout`` (exit 3).
        NotRunning: no (further) live follower or learner within ``timeout`` (exit 5).
    """
    if not any(word in ROLE_WORDS for word in chosen):
        return list(chosen)
    from . import oneshot

    ids: list[str] = []
    with oneshot.quick_session(config) as session:
        for word in chosen:
            if word == "learner":
                node_id = _learner(session, [*ids, *chosen], timeout)
            elif word in ROLE_WORDS:
                node_id = session.resolve(word, timeout=timeout, exclude=[*ids, *chosen])
            else:
                node_id = word
            if node_id not in ids:
                ids.append(node_id)
    return ids


def _learner(session: QuickSession, exclude: Sequence[str], timeout: float) -> str:
    """A live learner of the leader's configuration not in ``exclude``, waiting up to ``timeout``."""
    from . import oneshot

    def pick(status: ClusterStatus) -> str | None:
        members = status.membership()
        if members is None:
            return None
        return next((n for n in members[1] if n not in exclude and status.row(n).alive), None)

    session.ensure_running()
    try:
        found, _ = session.poll(pick, timeout=timeout)
    except oneshot.PollTimeout:
        last = session.last_status
        if last is None or last.leader is None:
            raise NoLeaderError(f"no leader within {timeout:g} s to name its learners") from None
        raise NotRunning(f"no live learner within {timeout:g} s") from None
    return found
